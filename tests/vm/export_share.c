/* SPDX-License-Identifier: MIT */
/*
 * Memory exported through vmemexp reaches an unrelated peer process over
 * SCM_RIGHTS: the peer sees what the exporter wrote after the export, and
 * the exporter sees the peer's writes in its own original memory.  For every
 * kind of memory, for unaligned ranges from 1 byte to 64 MiB, across several
 * VMAs, after the exporter exits, and across fork.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul
#define HUGE (2ul << 20)

/* What the test tells the peer along with the fd. */
struct share_msg {
	uint64_t size;
	uint64_t offset;
	uint64_t len;
	uint32_t seed;	/* the peer must see this pattern */
	uint32_t reply;	/* and then writes this one, unless read-only */
};

static uint32_t seed_counter = 1;

/* The peer: map, check, answer, exit.  Runs in a fresh process image. */
static int peer_main(const char *role, int sock)
{
	bool writable = !strcmp(role, "readwrite");
	struct share_msg m;
	uint8_t *map;
	long bad;
	int fd;

	fd = vmt_recv_fd(sock, &m, sizeof(m));
	if (fd < 0) {
		printf("# peer: no fd: %s\n", vmt_errname(errno));
		return 2;
	}
	map = mmap(NULL, m.size, PROT_READ | (writable ? PROT_WRITE : 0),
		   MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		printf("# peer: mmap: %s\n", vmt_errname(errno));
		return 3;
	}
	bad = vmt_check(map + m.offset, m.len, 0, m.seed);
	if (bad >= 0) {
		printf("# peer: byte %ld of %llu differs\n", bad,
		       (unsigned long long)m.len);
		return 4;
	}
	if (writable)
		vmt_fill(map + m.offset, m.len, 0, m.reply);
	munmap(map, m.size);
	close(fd);
	return 0;
}

/*
 * The round trip: export, write after the export, let a peer check and
 * overwrite through the dma-buf, and find the peer's bytes in @mem (a
 * read-only export's peer only checks).  @mem must be writable.
 */
static void roundtrip(void *mem, size_t len, uint32_t flags)
{
	bool rdonly = flags & VMEMEXP_EXPORT_RDONLY;
	struct vmemexp_export e;
	struct share_msg m;
	int dev = vmx_open(), fd, sock, pid;

	m.seed = seed_counter++;
	m.reply = seed_counter++;
	fd = vmx_export_ok(dev, mem, len, flags | VMEMEXP_EXPORT_CLOEXEC, &e);
	vmt_fill(mem, len, 0, m.seed);
	m.size = e.size;
	m.offset = e.offset;
	m.len = len;

	pid = vmt_spawn_peer(rdonly ? "read" : "readwrite", &sock);
	VMT_ASSERT(pid > 0);
	VMT_ASSERT_OK(vmt_send_fd(sock, fd, &m, sizeof(m)));
	close(fd);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	close(sock);
	if (!rdonly)
		VMT_ASSERT_EQ(vmt_check(mem, len, 0, m.reply), -1);
	close(dev);
}

static void *map_anon(size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       flags | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(p != MAP_FAILED);
	return p;
}

static const size_t sweep_lengths[] = {
	1, 7, 4095, 4096, 4097, 65539, (1 << 20) + 1, 8 << 20, 64 << 20,
};

static void sweep(void *(*get)(size_t), void (*put)(void *, size_t))
{
	for (size_t i = 0; i < sizeof(sweep_lengths) / sizeof(*sweep_lengths);
	     i++) {
		static const size_t starts[] = { 0, 1, 4095 };

		for (size_t s = 0; s < 3; s++) {
			size_t len = sweep_lengths[i], total = len + starts[s];
			uint8_t *mem;

			/* The largest size once: it is about volume. */
			if (len >= (64 << 20) && s != 1)
				continue;
			mem = get(total);
			roundtrip(mem + starts[s], len, 0);
			put(mem, total);
		}
	}
}

static void *get_malloc(size_t len)
{
	void *p = malloc(len);

	VMT_ASSERT(p);
	return p;
}

static void put_malloc(void *p, size_t len)
{
	(void)len;
	free(p);
}

static void *get_anon(size_t len)
{
	return map_anon(len, MAP_PRIVATE);
}

static void put_map(void *p, size_t len)
{
	munmap(p, len);
}

static void malloc_sizes(void)
{
	sweep(get_malloc, put_malloc);
}

static void anon_private_sizes(void)
{
	sweep(get_anon, put_map);
}

static void anon_shared(void)
{
	size_t len = (1 << 20) + 5;
	uint8_t *p = map_anon(len, MAP_SHARED);

	roundtrip(p + 3, len - 3, 0);
	munmap(p, len);
}

static int shared_file(const char *name, size_t len)
{
	int fd;

	if (name)
		fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	else
		fd = memfd_create("vmshare-test", MFD_CLOEXEC);
	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ftruncate(fd, (off_t)len));
	if (name)
		unlink(name);
	return fd;
}

static void file_kinds(int map_flags)
{
	static const size_t lengths[] = { 1, 4097, (3 << 20) + 11 };

	for (int kind = 0; kind < 2; kind++) {
		for (size_t i = 0; i < 3; i++) {
			size_t len = lengths[i] + 1;
			int fd = shared_file(kind ? "/tmp/vmshare-share" : NULL,
					     len);
			uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					  map_flags, fd, 0);

			VMT_ASSERT(p != MAP_FAILED);
			close(fd);
			roundtrip(p + 1, lengths[i], 0);
			munmap(p, len);
		}
	}
}

/* memfd and a tmpfs file, mapped shared: the page cache itself. */
static void memfd_and_file_shared(void)
{
	file_kinds(MAP_SHARED);
}

/* Private file mappings: the export pins the copy-on-write copies. */
static void file_private(void)
{
	file_kinds(MAP_PRIVATE);
}

static void *map_aligned(size_t len, size_t align)
{
	uint8_t *p = map_anon(len + align, MAP_PRIVATE);
	uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);

	if (a != (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + align - a);
	return (void *)a;
}

static void thp(void)
{
	size_t len = 8 << 20;
	uint8_t *p = map_aligned(len, HUGE);
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT_OK(madvise(p, len, MADV_HUGEPAGE));
	memset(p, 1, len);
	vmx_export_ok(dev, p, len, 0, &e);
	vmt_note("8 MiB with MADV_HUGEPAGE: %u segments", e.nr_segments);
	close(e.fd);
	close(dev);
	roundtrip(p + 5, len - 10, 0);
	munmap(p, len);
}

/* Moves the page at @from to @to, which must be mapped or reserved. */
static void move_page(uint8_t *from, uint8_t *to)
{
	size_t page = (size_t)getpagesize();

	VMT_ASSERT(mremap(from, page, page, MREMAP_MAYMOVE | MREMAP_FIXED,
			  to) == to);
}

/*
 * A THP whose subpages are mapped out of order (mremap splits the PMD,
 * the folio stays large): the export must follow the virtual order page
 * by page, not assume a large folio is mapped in order end to end.  Pages
 * 100 and 101 trade places, so the range still starts and ends where an
 * in-order folio would; the runs are 0-99, 101, 100 and 102-511.
 */
static void thp_out_of_order(void)
{
	size_t page = (size_t)getpagesize(), len = HUGE;
	uint8_t *p = map_aligned(len, HUGE), *spare = map_anon(page, MAP_PRIVATE);
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT_OK(madvise(p, len, MADV_HUGEPAGE));
	memset(p, 1, len);
	vmx_export_ok(dev, p, len, 0, &e);
	close(e.fd);
	if (e.nr_segments != 1)
		vmt_skip("no THP here: 2 MiB came in %u segments", e.nr_segments);

	move_page(p + 100 * page, spare);
	move_page(p + 101 * page, p + 100 * page);
	move_page(spare, p + 101 * page);
	vmx_export_ok(dev, p, len, 0, &e);
	VMT_ASSERT_EQ(e.nr_segments, 4);
	close(e.fd);
	close(dev);
	roundtrip(p, len, 0);
	roundtrip(p + 99 * page + 7, 3 * page, VMEMEXP_EXPORT_RDONLY);
	munmap(p, len);
}

static void hugetlb(void)
{
	size_t len = 8 << 20;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	uint8_t *p;

	if (f) {
		fprintf(f, "16\n");
		fclose(f);
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		vmt_skip("no 2 MiB hugetlb pages: %s", vmt_errname(errno));
	roundtrip(p + 4097, len - 8193, 0);
	roundtrip(p, len, VMEMEXP_EXPORT_RDONLY);
	munmap(p, len);
}

/* Whether this kernel has memfd_pin_folios() (6.11 and later). */
static bool kernel_pins_folios(void)
{
	struct utsname u;
	int major, minor;

	VMT_ASSERT_OK(uname(&u));
	VMT_ASSERT_EQ(sscanf(u.release, "%d.%d", &major, &minor), 2);
	return major > 6 || (major == 6 && minor >= 11);
}

/*
 * A shared mapping of a hugetlb memfd is pinned by its folios from 6.11
 * on (memfd_pin_folios(), as udmabuf does: one pin per 2 MiB folio), by
 * GUP before (one pin per page): the pins an export holds show which.  A
 * range starting and ending inside folios is pinned by the four folios it
 * touches, reaches a peer whole, and lets all four go at release.
 */
static void memfd_pinned_by_folio(void)
{
	size_t len = 8 << 20, start = 3 * PAGE + 5, part = len - 7 * PAGE - start;
	bool folios = kernel_pins_folios();
	struct vmemexp_export e;
	long long before;
	int memfd, dev;
	FILE *f;
	uint8_t *p;

	f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (f) {
		fprintf(f, "16\n");
		fclose(f);
	}
	memfd = memfd_create("export-share", MFD_CLOEXEC | MFD_HUGETLB);
	if (memfd < 0 || ftruncate(memfd, (off_t)len) < 0)
		vmt_skip("no hugetlb memfd: %s", vmt_errname(errno));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 1, len);
	dev = vmx_open();

	before = vmt_pins_outstanding();
	vmx_export_ok(dev, p, len, 0, &e);
	VMT_ASSERT_EQ(vmt_pins_outstanding() - before,
		      folios ? len / HUGE : len / PAGE);
	close(e.fd);
	vmx_export_ok(dev, p + start, part, 0, &e);
	vmt_note("%zu bytes from a folio's page 3: %lld pins", part,
		 vmt_pins_outstanding() - before);
	VMT_ASSERT_EQ(vmt_pins_outstanding() - before,
		      folios ? 4 : (long long)((start + part + PAGE - 1) / PAGE - 3));
	close(e.fd);
	VMT_ASSERT_EQ(vmt_pins_outstanding(), before);
	close(dev);
	roundtrip(p + start, part, 0);
	roundtrip(p + start, part, VMEMEXP_EXPORT_RDONLY);
	munmap(p, len);
	close(memfd);
}

/*
 * Memory never written before the export: the pinned pages must be the
 * ones the exporter writes into afterwards, not the shared zero page.
 */
static void untouched_memory(void)
{
	size_t len = 256 * 1024;
	uint8_t *p = map_anon(len, MAP_PRIVATE);
	uint8_t *q = map_anon(len, MAP_PRIVATE);
	struct vmemexp_export e;
	int dev = vmx_open();
	uint8_t *map;

	roundtrip(p + 1, len - 1, 0);

	/* Read-only export of untouched, writable memory, then a write. */
	vmx_export_ok(dev, q, len, VMEMEXP_EXPORT_RDONLY, &e);
	map = mmap(NULL, e.size, PROT_READ, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	vmt_fill(q, len, 0, 77);
	VMT_ASSERT_EQ(vmt_check(map, len, 0, 77), -1);
	munmap(map, e.size);
	close(e.fd);
	close(dev);
	munmap(p, len);
	munmap(q, len);
}

/*
 * A read-only export of a file through a read-only shared mapping: the
 * peer sees the file's contents.  The file is opened for writing, as it
 * must be (export_access: a file the exporter may only read is refused).
 */
static void readonly_file(void)
{
	const char *path = "/tmp/export_share_readonly_file";
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = 3 * PAGE + 123;
	uint8_t *p, *copy = malloc(len);
	struct vmemexp_export e;
	int dev = vmx_open();
	uint8_t *map;

	VMT_ASSERT_OK(fd);
	VMT_ASSERT(copy);
	vmt_fill(copy, len, 0, 11);
	VMT_ASSERT_EQ(write(fd, copy, len), (ssize_t)len);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	close(fd);
	unlink(path);
	VMT_ASSERT_ERRNO(vmx_export(dev, p, len, 0, &e), EACCES);
	vmx_export_ok(dev, p, len, VMEMEXP_EXPORT_RDONLY, &e);
	map = mmap(NULL, e.size, PROT_READ, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT(!memcmp(map, copy, len));
	munmap(map, e.size);
	close(e.fd);
	close(dev);
	munmap(p, len);
	free(copy);
}

/* One range across anonymous, memfd, shared anonymous and file VMAs. */
static void several_vmas(void)
{
	size_t part = 64 * 1024 + PAGE, total = 4 * part;
	uint8_t *base = map_anon(total, MAP_PRIVATE);
	int memfd = shared_file(NULL, part);
	int file = shared_file("/tmp/vmshare-vmas", part);

	VMT_ASSERT(mmap(base + part, part, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED, memfd, 0) != MAP_FAILED);
	VMT_ASSERT(mmap(base + 2 * part, part, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS, -1, 0) !=
		   MAP_FAILED);
	VMT_ASSERT(mmap(base + 3 * part, part, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED, file, 0) != MAP_FAILED);
	close(memfd);
	close(file);
	roundtrip(base + 17, total - 33, 0);
	roundtrip(base + 17, total - 33, VMEMEXP_EXPORT_RDONLY);
	munmap(base, total);
}

/* The exporter unmaps its memory and exits; the dma-buf keeps the data. */
static int exporter_main(int sock)
{
	size_t len = (2 << 20) + 99;
	uint8_t *p = malloc(len);
	struct vmemexp_export e;
	struct share_msg m = { .seed = 4242, .len = len };
	int dev = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);

	if (!p || dev < 0 || vmx_export(dev, p, len, 0, &e))
		return 2;
	vmt_fill(p, len, 0, m.seed);
	m.size = e.size;
	m.offset = e.offset;
	if (vmt_send_fd(sock, e.fd, &m, sizeof(m)))
		return 3;
	free(p);
	return 0;
}

static int peer_or_exporter(const char *role, int sock)
{
	return strcmp(role, "exporter") ? peer_main(role, sock) :
					  exporter_main(sock);
}

static void survives_exporter_exit(void)
{
	struct share_msg m;
	int sock, pid, fd;
	uint8_t *map;

	pid = vmt_spawn_peer("exporter", &sock);
	VMT_ASSERT(pid > 0);
	fd = vmt_recv_fd(sock, &m, sizeof(m));
	VMT_ASSERT_OK(fd);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	close(sock);
	map = mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(map + m.offset, m.len, 0, m.seed), -1);
	vmt_fill(map, m.size, 0, 5);
	VMT_ASSERT_EQ(vmt_check(map, m.size, 0, 5), -1);
	munmap(map, m.size);
	close(fd);
}

/* munmap by the exporter while a peer mapping is live. */
static void survives_munmap(void)
{
	size_t len = 1 << 20;
	uint8_t *p = map_anon(len, MAP_PRIVATE);
	struct vmemexp_export e;
	int dev = vmx_open();
	uint8_t *map;

	vmx_export_ok(dev, p, len, 0, &e);
	vmt_fill(p, len, 0, 31);
	map = mmap(NULL, e.size, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	close(e.fd);
	munmap(p, len);
	/* New memory at the same place is not the exported memory. */
	p = mmap(p, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED) {
		memset(p, 0, len);
		munmap(p, len);
	}
	VMT_ASSERT_EQ(vmt_check(map, len, 0, 31), -1);
	munmap(map, e.size);
	close(dev);
}

/*
 * The file shrinks or loses pages under the export (a memfd truncated, a
 * hole punched into it): the pin keeps the pages, so the dma-buf goes on
 * showing the old contents while the file shows the new ones, and
 * nothing is freed under a holder of the fd.
 */
static void survives_truncate_and_punch_hole(void)
{
	size_t len = 64 * PAGE;
	int memfd = memfd_create("export_share", MFD_CLOEXEC);
	struct vmemexp_export e;
	int dev = vmx_open();
	uint8_t *p, *map, page[PAGE];

	VMT_ASSERT_OK(memfd);
	VMT_ASSERT_OK(ftruncate(memfd, (off_t)len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	vmt_fill(p, len, 0, 41);
	vmx_export_ok(dev, p, len, 0, &e);
	munmap(p, len);

	VMT_ASSERT_OK(fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				0, 16 * PAGE));
	VMT_ASSERT_EQ(pread(memfd, page, PAGE, 0), (ssize_t)PAGE);
	VMT_ASSERT_EQ(page[0] | page[PAGE - 1], 0);
	VMT_ASSERT_OK(ftruncate(memfd, 0));

	map = mmap(NULL, e.size, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(map, len, 0, 41), -1);
	vmt_fill(map, len, 0, 42);
	VMT_ASSERT_EQ(vmt_check(map, len, 0, 42), -1);
	munmap(map, e.size);
	close(e.fd);
	close(memfd);
	close(dev);
}

/*
 * A memfd shrunk by its last pages and grown back again and again while
 * its whole mapping is exported: each export pins all of it or fails
 * with EFAULT, what a range past the end of a file gets, and none leaves
 * a pin behind.  32 MiB of 4 KiB pages takes several pin batches, so the
 * file shrinks while the first batches are pinned as well as before; it
 * stays whole for 2 ms at a time, so that some exports get all of it.
 */
static void export_races_truncate(void)
{
	size_t len = 32 << 20;
	int memfd = memfd_create("export_share", MFD_CLOEXEC);
	int dev = vmx_open(), exported = 0, refused = 0, i;
	struct vmemexp_export e;
	long long before;
	uint8_t *p;
	pid_t pid;

	VMT_ASSERT_OK(memfd);
	VMT_ASSERT_OK(ftruncate(memfd, (off_t)len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 1, len);
	before = vmt_pins_outstanding();
	pid = fork();
	VMT_ASSERT_OK(pid);
	if (pid == 0) {
		for (;;) {
			if (ftruncate(memfd, (off_t)(len - 16 * PAGE)) < 0 ||
			    ftruncate(memfd, (off_t)len) < 0)
				_exit(1);
			usleep(2000);
		}
	}
	for (i = 0; i < 100; i++) {
		if (vmx_export(dev, p, len, 0, &e) == 0) {
			close(e.fd);
			exported++;
		} else if (errno == EFAULT) {
			refused++;
		} else {
			kill(pid, SIGKILL);
			vmt_fail(__FILE__, __LINE__,
				 "export %d of a memfd being truncated: %s, not EFAULT",
				 i, vmt_errname(errno));
		}
	}
	kill(pid, SIGKILL);
	VMT_ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	vmt_note("%d exported whole, %d refused with EFAULT", exported, refused);
	VMT_ASSERT_EQ(vmt_pins_outstanding(), before);
	munmap(p, len);
	close(memfd);
	close(dev);
}

/*
 * A memfd mapping that a userfaultfd watches for missing pages: an export
 * reaching a hole fails with EFAULT (GUP does not wait for the monitor)
 * and leaves the hole for the monitor to fill, not filled by the module.
 */
static void userfaultfd_holes_stay_holes(void)
{
	size_t len = 4 * PAGE;
	int memfd = memfd_create("export_share", MFD_CLOEXEC);
	int dev = vmx_open(), uffd;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct vmemexp_export e;
	long long before = vmt_pins_outstanding();
	uint8_t *p;

	VMT_ASSERT_OK(memfd);
	VMT_ASSERT_OK(ftruncate(memfd, (off_t)len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	p[0] = 1;	/* page 0 is there, pages 1 to 3 are holes */
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		vmt_skip("no userfaultfd: %s", vmt_errname(errno));
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		vmt_skip("userfaultfd cannot watch shmem: %s", vmt_errname(errno));

	VMT_ASSERT_ERRNO(vmx_export(dev, p, len, 0, &e), EFAULT);
	VMT_ASSERT_EQ(vmt_pins_outstanding(), before);
	/* No data from page 1 on: the holes are still holes. */
	VMT_ASSERT_ERRNO(lseek(memfd, (off_t)PAGE, SEEK_DATA), ENXIO);
	close(uffd);
	munmap(p, len);
	close(memfd);
	close(dev);
}

static void fork_case(uint8_t *mem, size_t len)
{
	struct vmemexp_export e;
	int dev = vmx_open(), pid;
	uint8_t *map;

	vmt_fill(mem, len, 0, 10);
	vmx_export_ok(dev, mem, len, 0, &e);
	map = mmap(NULL, e.size, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);

	pid = fork();
	if (pid == 0) {
		/* The child's copy-on-write copy, not the exported pages. */
		vmt_fill(mem, len, 0, 11);
		_exit(vmt_check(map + e.offset, len, 0, 10) == -1 &&
		      vmt_check(mem, len, 0, 11) == -1 ? 0 : 1);
	}
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	VMT_ASSERT_EQ(vmt_check(map + e.offset, len, 0, 10), -1);

	/* The parent still writes into the exported pages. */
	vmt_fill(mem, len, 0, 12);
	VMT_ASSERT_EQ(vmt_check(map + e.offset, len, 0, 12), -1);

	/* A child of the parent sees the shared mapping, not a copy. */
	pid = fork();
	if (pid == 0) {
		vmt_fill(map + e.offset, len, 0, 13);
		_exit(0);
	}
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	VMT_ASSERT_EQ(vmt_check(mem, len, 0, 13), -1);

	munmap(map, e.size);
	close(e.fd);
	close(dev);
}

static void fork_after_export(void)
{
	size_t len = (1 << 20) + 77;
	uint8_t *heap = malloc(len);
	uint8_t *anon = map_anon(len, MAP_PRIVATE);
	uint8_t *huge = map_aligned(4 << 20, HUGE);

	VMT_ASSERT(heap);
	fork_case(heap + 3, len - 3);
	fork_case(anon, len);
	VMT_ASSERT_OK(madvise(huge, 4 << 20, MADV_HUGEPAGE));
	fork_case(huge, 4 << 20);
	free(heap);
	munmap(anon, len);
	munmap(huge, 4 << 20);
}

static const struct vmt_test tests[] = {
	VMT_TEST(malloc_sizes),
	VMT_TEST(anon_private_sizes),
	VMT_TEST(anon_shared),
	VMT_TEST(memfd_and_file_shared),
	VMT_TEST(file_private),
	VMT_TEST(thp),
	VMT_TEST(thp_out_of_order),
	VMT_TEST(hugetlb),
	VMT_TEST(memfd_pinned_by_folio),
	VMT_TEST(untouched_memory),
	VMT_TEST(readonly_file),
	VMT_TEST(several_vmas),
	VMT_TEST(survives_exporter_exit),
	VMT_TEST(survives_munmap),
	VMT_TEST(survives_truncate_and_punch_hole),
	VMT_TEST(export_races_truncate),
	VMT_TEST(userfaultfd_holes_stay_holes),
	VMT_TEST(fork_after_export),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			peer_or_exporter);
}
