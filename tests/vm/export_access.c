/* SPDX-License-Identifier: MIT */
/*
 * What may be exported, and with which access (issue 18, findings 1, 2 and
 * 6).  Importers do not honour a read-only dma-buf, and without an IOMMU
 * nothing stops a device from writing it: so even a read-only export is
 * allowed only of memory the exporter could write itself, never of a page
 * it shares with the system (the zero page, a file's page cache).  A writable
 * export of a regular file's shared mapping is refused on every kernel (a
 * device would dirty page cache behind the file system's back).  Failures
 * to fault memory in get their own errno.
 *
 * The ext4 cases need loop and ext4 (vmrun --modprobe loop --modprobe
 * ext4) and mkfs.ext4; the hugetlb case an empty huge page pool; the DAX
 * case a persistent-memory disk (meson's export_dax_in_guest emulates one
 * with memmap=SIZE!START and nd_e820).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul
#define HUGE (2ul << 20)
#define TMP_FILE "/tmp/export_access"
#define EXT4_IMAGE "/tmp/export_access.ext4"
#define EXT4_DIR "/tmp/export_access.mnt"
#define SMALL_TMPFS "/tmp/export_access.tmpfs"
#define PMEM_DISK "/dev/pmem0"
#define DAX_DIR "/tmp/export_access.dax"

static void expect_export_errno(const void *p, size_t len, uint32_t flags,
				int err)
{
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT_ERRNO(vmx_export(dev, p, len, flags, &e), err);
	close(dev);
}

static void expect_export_ok(const void *p, size_t len, uint32_t flags)
{
	struct vmemexp_export e;
	int dev = vmx_open();

	vmx_export_ok(dev, p, len, flags, &e);
	close(e.fd);
	close(dev);
}

/* The page frame mapped at @p, from /proc/self/pagemap (0: none). */
static uint64_t pfn_of(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t entry = 0;

	VMT_ASSERT_OK(fd);
	VMT_ASSERT_EQ(pread(fd, &entry, sizeof(entry),
			    (off_t)((uintptr_t)p / PAGE * sizeof(entry))),
		      (ssize_t)sizeof(entry));
	close(fd);
	return entry >> 63 ? entry & ((1ull << 55) - 1) : 0;
}

/*
 * Pages of a private mapping the exporter may not write, which it does
 * not own (the zero page, a file's page cache): 6.1 pins them as they are,
 * and vmemexp refuses (EACCES); 6.12's GUP (seen here) unshares them for a
 * long-term pin, copying each into a fresh anonymous page of the exporter
 * (which its mapping shows from then on), and exporting that copy is
 * sound.  Either way no device gets the shared page.
 */
static void expect_refused_or_copied(const volatile char *p, size_t len)
{
	uint64_t before = pfn_of((const void *)p), after;
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT(before);
	if (vmx_export(dev, (const void *)p, len, VMEMEXP_EXPORT_RDONLY,
		       &e)) {
		VMT_ASSERT_EQ(errno, EACCES);
		vmt_note("refused: EACCES");
	} else {
		after = pfn_of((const void *)p);
		vmt_note("exported a copy: page frame %#" PRIx64 ", was %#"
			 PRIx64, after, before);
		VMT_ASSERT(after && after != before);
		close(e.fd);
	}
	close(dev);
}

/* A file of @len bytes of pattern, in the tmpfs at /tmp. */
static void make_file(const char *path, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char *buf = malloc(len);

	VMT_ASSERT_OK(fd);
	VMT_ASSERT(buf);
	vmt_fill(buf, len, 0, 7);
	VMT_ASSERT_EQ(write(fd, buf, len), (ssize_t)len);
	free(buf);
	close(fd);
}

static void *map_file(const char *path, int open_flags, size_t len, int prot,
		      int map_flags)
{
	int fd = open(path, open_flags | O_CLOEXEC);
	void *p;

	VMT_ASSERT_OK(fd);
	p = mmap(NULL, len, prot, map_flags, fd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	close(fd);
	return p;
}

/* Never-written read-only anonymous memory is the shared zero page. */
static void rdonly_zero_page(void)
{
	volatile char *p = mmap(NULL, 4 * PAGE, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_EQ(p[0] + p[PAGE], 0);
	expect_refused_or_copied(p, PAGE);
	munmap((void *)p, 4 * PAGE);
}

/* The same with transparent huge pages: the huge zero page. */
static void rdonly_huge_zero_page(void)
{
	char *area = mmap(NULL, 2 * HUGE, PROT_READ,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile char *p = (char *)(((uintptr_t)area + HUGE - 1) & ~(HUGE - 1));
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/use_zero_page",
			"r");
	int use_zero_page = 0;

	VMT_ASSERT(area != MAP_FAILED);
	if (f) {
		VMT_ASSERT_EQ(fscanf(f, "%d", &use_zero_page), 1);
		fclose(f);
	}
	if (!use_zero_page || madvise((void *)p, HUGE, MADV_HUGEPAGE))
		vmt_skip("no transparent huge zero page here");
	VMT_ASSERT_EQ(p[0] + p[HUGE - 1], 0);
	expect_refused_or_copied(p, HUGE);
	munmap(area, 2 * HUGE);
}

/* Written, then made read-only: the exporter's own pages. */
static void rdonly_written_private(void)
{
	char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 1, 4 * PAGE);
	VMT_ASSERT_OK(mprotect(p, 4 * PAGE, PROT_READ));
	expect_export_ok(p, 4 * PAGE, VMEMEXP_EXPORT_RDONLY);
	munmap(p, 4 * PAGE);
}

/*
 * A file the exporter opened read-only: a shared mapping (the page cache
 * itself) may not be exported, even read-only; a private one it never
 * wrote shows the page cache too (see expect_refused_or_copied()).
 */
static void rdonly_file_opened_rdonly(void)
{
	volatile char *shared, *private;

	make_file(TMP_FILE, 4 * PAGE);
	shared = map_file(TMP_FILE, O_RDONLY, 4 * PAGE, PROT_READ, MAP_SHARED);
	private = map_file(TMP_FILE, O_RDONLY, 4 * PAGE, PROT_READ,
			   MAP_PRIVATE);
	expect_export_errno((void *)shared, 4 * PAGE, VMEMEXP_EXPORT_RDONLY,
			    EACCES);
	VMT_ASSERT_EQ(private[0] + 256, shared[0] + 256);
	expect_refused_or_copied(private, PAGE);
	munmap((void *)shared, 4 * PAGE);
	munmap((void *)private, 4 * PAGE);
	unlink(TMP_FILE);
}

/* A program's own text, mapped the way the loader does. */
static void rdonly_executable(void)
{
	volatile char *p = map_file("/proc/self/exe", O_RDONLY, 3 * PAGE,
				    PROT_READ, MAP_PRIVATE);

	VMT_ASSERT_EQ(p[0], 0x7f);
	expect_refused_or_copied(p, PAGE);
	munmap((void *)p, 3 * PAGE);
}

/*
 * The same file opened for writing may be exported read-only through a
 * read-only mapping, and a private mapping once written is anonymous.
 */
static void rdonly_file_opened_rdwr(void)
{
	char *shared, *private;

	make_file(TMP_FILE, 4 * PAGE);
	shared = map_file(TMP_FILE, O_RDWR, 4 * PAGE, PROT_READ, MAP_SHARED);
	private = map_file(TMP_FILE, O_RDONLY, 4 * PAGE,
			   PROT_READ | PROT_WRITE, MAP_PRIVATE);
	expect_export_ok(shared, 4 * PAGE, VMEMEXP_EXPORT_RDONLY);
	/* Writable: copy-on-write is broken first, the file stays as it is. */
	expect_export_ok(private, 4 * PAGE, VMEMEXP_EXPORT_RDONLY);
	expect_export_ok(private, 4 * PAGE, 0);
	munmap(shared, 4 * PAGE);
	munmap(private, 4 * PAGE);
	unlink(TMP_FILE);
}

static int sealed_memfd(size_t len, unsigned int seals, void **map, int prot)
{
	int fd = memfd_create("export_access", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ftruncate(fd, (off_t)len));
	*map = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
	VMT_ASSERT(*map != MAP_FAILED);
	memset(*map, 5, prot & PROT_WRITE ? len : 0);
	if (seals)
		VMT_ASSERT_OK(fcntl(fd, F_ADD_SEALS, seals));
	return fd;
}

/*
 * A memfd sealed against writing (as udmabuf refuses it): its readers rely
 * on the seal, so no device may write it either.  A reader maps it shared
 * through a read-only fd (6.1 refuses any shared mapping of a read-write
 * fd of such a memfd).
 */
static void rdonly_memfd_write_sealed(void)
{
	int fd = memfd_create("export_access", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char path[64];
	void *p;

	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ftruncate(fd, 4 * PAGE));
	VMT_ASSERT_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	p = map_file(path, O_RDONLY, 4 * PAGE, PROT_READ, MAP_SHARED);
	expect_export_errno(p, 4 * PAGE, VMEMEXP_EXPORT_RDONLY, EACCES);
	munmap(p, 4 * PAGE);
	close(fd);
}

/* F_SEAL_FUTURE_WRITE after a writable mapping: no new writers. */
static void memfd_future_write_sealed(void)
{
	void *p;
	int fd = sealed_memfd(4 * PAGE, F_SEAL_FUTURE_WRITE, &p,
			      PROT_READ | PROT_WRITE);

	expect_export_errno(p, 4 * PAGE, VMEMEXP_EXPORT_RDONLY, EACCES);
	expect_export_errno(p, 4 * PAGE, 0, EACCES);
	munmap(p, 4 * PAGE);
	close(fd);
}

/* Unsealed (or sealed only against shrinking) memfds export either way. */
static void memfd_unsealed(void)
{
	void *p;
	int fd = sealed_memfd(4 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW, &p,
			      PROT_READ | PROT_WRITE);

	expect_export_ok(p, 4 * PAGE, VMEMEXP_EXPORT_RDONLY);
	expect_export_ok(p, 4 * PAGE, 0);
	munmap(p, 4 * PAGE);
	close(fd);
}

/* A mapping past the end of its file is a hole: EFAULT. */
static void past_end_of_file(void)
{
	void *p;
	int fd = sealed_memfd(4 * PAGE, 0, &p, PROT_READ | PROT_WRITE);

	VMT_ASSERT_OK(ftruncate(fd, 2 * PAGE));
	expect_export_errno(p, 4 * PAGE, 0, EFAULT);
	expect_export_errno(p, 4 * PAGE, VMEMEXP_EXPORT_RDONLY, EFAULT);
	munmap(p, 4 * PAGE);
	close(fd);
}

static void run(const char *cmd)
{
	int status = system(cmd);

	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status))
		vmt_fail(__FILE__, __LINE__, "\"%s\" failed (status %d)", cmd,
			 status);
}

/*
 * A tmpfs too small for the file mapped from it: pages that cannot be
 * allocated are ENOSPC, not a bad address and not out of memory.
 */
static void tmpfs_full(void)
{
	size_t len = 64 * PAGE;
	void *p;
	int fd;

	mkdir(SMALL_TMPFS, 0755);
	VMT_ASSERT_OK(mount("tmpfs", SMALL_TMPFS, "tmpfs", 0, "size=64k"));
	fd = open(SMALL_TMPFS "/file", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ftruncate(fd, (off_t)len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	expect_export_errno(p, len, 0, ENOSPC);
	expect_export_errno(p, len, VMEMEXP_EXPORT_RDONLY, ENOSPC);
	munmap(p, len);
	close(fd);
	VMT_ASSERT_OK(umount(SMALL_TMPFS));
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long value = -1;

	if (f) {
		if (fscanf(f, "%ld", &value) != 1)
			value = -1;
		fclose(f);
	}
	return value;
}

/* A huge page memfd whose pool is empty: ENOMEM, as for a failed mmap. */
static void hugetlb_pool_empty(void)
{
	int fd = memfd_create("export_access", MFD_CLOEXEC | MFD_HUGETLB);
	void *p;

	if (fd < 0)
		vmt_skip("no hugetlb memfd: %s", vmt_errname(errno));
	if (read_long("/proc/sys/vm/nr_hugepages") != 0)
		vmt_skip("the huge page pool is not empty");
	VMT_ASSERT_OK(ftruncate(fd, (off_t)HUGE));
	p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	expect_export_errno(p, HUGE, 0, ENOMEM);
	expect_export_errno(p, HUGE, VMEMEXP_EXPORT_RDONLY, ENOMEM);
	munmap(p, HUGE);
	close(fd);
}

/* A fresh ext4 file system on a loop device, mounted at EXT4_DIR. */
static void mount_ext4(void)
{
	if (access("/sys/module/ext4", F_OK) || access("/sys/module/loop", F_OK))
		vmt_skip("ext4 or loop is not loaded (vmrun --modprobe)");
	run("truncate -s 64M " EXT4_IMAGE " && mkfs.ext4 -q -F " EXT4_IMAGE
	    " && mkdir -p " EXT4_DIR " && mount -o loop " EXT4_IMAGE " " EXT4_DIR);
}

static void umount_ext4(void)
{
	run("umount " EXT4_DIR " && rm -f " EXT4_IMAGE);
}

/*
 * A writable export of a regular file's shared mapping: the device would
 * write page cache without page_mkwrite (6.5 refuses these pins in GUP).
 * Private mappings and read-only exports of a file opened for writing
 * remain allowed.
 */
static void ext4_shared_writable(void)
{
	const char *path = EXT4_DIR "/file";
	void *shared, *private;

	mount_ext4();
	make_file(path, 16 * PAGE);
	shared = map_file(path, O_RDWR, 16 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_SHARED);
	private = map_file(path, O_RDWR, 16 * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE);
	expect_export_errno(shared, 16 * PAGE, 0, EACCES);
	expect_export_ok(shared, 16 * PAGE, VMEMEXP_EXPORT_RDONLY);
	expect_export_ok(private, 16 * PAGE, 0);
	munmap(shared, 16 * PAGE);
	munmap(private, 16 * PAGE);
	umount_ext4();
}

/*
 * A read-only export of a sparse file's writable shared mapping must not
 * fault it for writing: that allocated blocks for every page (a read-only
 * export of a sparse 1 GiB file allocated 1 GiB).
 */
static void ext4_sparse_rdonly(void)
{
	const char *path = EXT4_DIR "/sparse";
	size_t len = 4ul << 20;
	struct stat before, after;
	void *p;
	int fd;

	mount_ext4();
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ftruncate(fd, (off_t)len));
	VMT_ASSERT_OK(fsync(fd));
	VMT_ASSERT_OK(fstat(fd, &before));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VMT_ASSERT(p != MAP_FAILED);
	expect_export_ok(p, len, VMEMEXP_EXPORT_RDONLY);
	VMT_ASSERT_OK(fsync(fd));
	VMT_ASSERT_OK(fstat(fd, &after));
	vmt_note("blocks before %lld, after %lld", (long long)before.st_blocks,
		 (long long)after.st_blocks);
	VMT_ASSERT_EQ(after.st_blocks, before.st_blocks);
	munmap(p, len);
	close(fd);
	umount_ext4();
}

/* Whether @dir is a mount point whose options include dax. */
static bool mounted_with_dax(const char *dir)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], mnt[256], type[64], opts[512];
	bool dax = false;

	VMT_ASSERT(f);
	while (fscanf(f, "%255s %255s %63s %511s %*d %*d", dev, mnt, type,
		      opts) == 4)
		if (!strcmp(mnt, dir))
			dax = strstr(opts, "dax") != NULL;
	fclose(f);
	return dax;
}

/*
 * File system DAX maps persistent memory itself, with no page cache in
 * between: the file system may move or free a page while it is mapped,
 * so GUP refuses long-term pins of such mappings outright (EOPNOTSUPP).
 * vmemexp reports that as EACCES, the errno of every other mapping it may
 * not export: EOPNOTSUPP means "tracking unsupported" to libvmshare, which
 * then retried untracked and copied.  Any mapping, any access.
 */
static void fsdax_refused(void)
{
	const char *path = DAX_DIR "/file";
	void *shared, *private;

	if (access(PMEM_DISK, F_OK))
		vmt_skip("no " PMEM_DISK " (export_dax_in_guest emulates one)");
	run("mkfs.ext4 -q -F -b 4096 " PMEM_DISK " && mkdir -p " DAX_DIR
	    " && mount -o dax " PMEM_DISK " " DAX_DIR);
	make_file(path, 16 * PAGE);
	shared = map_file(path, O_RDWR, 16 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_SHARED);
	private = map_file(path, O_RDWR, 16 * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE);
	VMT_ASSERT(mounted_with_dax(DAX_DIR));
	expect_export_errno(shared, 16 * PAGE, VMEMEXP_EXPORT_RDONLY, EACCES);
	expect_export_errno(shared, 16 * PAGE, 0, EACCES);
	expect_export_errno(private, 16 * PAGE, 0, EACCES);
	expect_export_errno(private, 16 * PAGE, VMEMEXP_EXPORT_RDONLY, EACCES);
	munmap(shared, 16 * PAGE);
	munmap(private, 16 * PAGE);
	run("umount " DAX_DIR);
}

static const struct vmt_test tests[] = {
	VMT_TEST(rdonly_zero_page),
	VMT_TEST(rdonly_huge_zero_page),
	VMT_TEST(rdonly_written_private),
	VMT_TEST(rdonly_file_opened_rdonly),
	VMT_TEST(rdonly_executable),
	VMT_TEST(rdonly_file_opened_rdwr),
	VMT_TEST(rdonly_memfd_write_sealed),
	VMT_TEST(memfd_future_write_sealed),
	VMT_TEST(memfd_unsealed),
	VMT_TEST(past_end_of_file),
	VMT_TEST(tmpfs_full),
	VMT_TEST(hugetlb_pool_empty),
	VMT_TEST(ext4_shared_writable),
	VMT_TEST(ext4_sparse_rdonly),
	VMT_TEST(fsdax_refused),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
