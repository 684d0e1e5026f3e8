/* SPDX-License-Identifier: MIT */
/*
 * VMEMEXP_EXPORT_TRACK and VMEMEXP_IOC_STATUS: an export stays "current"
 * while the exporter's range shows the exported pages, and stops being so
 * after anything that changed the range's page tables.  The status page
 * (mmap of /dev/vmemexp) must say the same as the ioctl every time.  Plus
 * every bad input to VMEMEXP_IOC_STATUS and to the mmap with its errno.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul
#define LEN (64 * PAGE)

static int status_of(int fd, uint32_t *flags)
{
	struct vmemexp_status st = { .fd = fd };
	int dev = vmx_open();
	int ret = ioctl(dev, VMEMEXP_IOC_STATUS, &st);
	int err = errno;

	close(dev);
	*flags = st.flags;
	errno = err;
	return ret;
}

/*
 * Every tracked export here goes through one open file, whose status page
 * is mapped once, before the tests (each runs in a child of the process
 * that opened it); slot_of[fd] is the slot of the export fd stands for.
 */
static int dev_fd = -1;
static const volatile uint32_t *status_page;
static uint32_t slot_of[4096];

static int tracking_dev(void)
{
	if (dev_fd < 0) {
		dev_fd = vmx_open();
		status_page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev_fd, 0);
		VMT_ASSERT(status_page != MAP_FAILED);
	}
	return dev_fd;
}

/* The ioctl's answer, after checking that the status page agrees. */
static bool is_current(int fd)
{
	uint32_t flags;
	bool current;

	VMT_ASSERT_OK(status_of(fd, &flags));
	current = flags & VMEMEXP_STATUS_CURRENT;
	VMT_ASSERT(fd >= 0 && fd < (int)(sizeof(slot_of) / sizeof(slot_of[0])));
	VMT_ASSERT(slot_of[fd] != VMEMEXP_STATUS_NO_SLOT);
	VMT_ASSERT_EQ(status_page[slot_of[fd]] == 0, current);
	return current;
}

static int export_tracked(const void *p, size_t len)
{
	struct vmemexp_export e;
	int fd = vmx_export_ok(tracking_dev(), p, len, VMEMEXP_EXPORT_TRACK, &e);

	VMT_ASSERT(fd < (int)(sizeof(slot_of) / sizeof(slot_of[0])));
	slot_of[fd] = e.status_slot;
	return fd;
}

/* Fresh, written anonymous memory and a tracked export of it. */
static uint8_t *tracked(int *fd)
{
	uint8_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 0x5a, LEN);
	*fd = export_tracked(p + 100, LEN - 200);
	return p;
}

static void current_after_export_and_writes(void)
{
	int fd;
	uint8_t *p = tracked(&fd);
	void *other = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(is_current(fd));
	memset(p, 0xa5, LEN);
	/* Changes elsewhere in the address space do not count. */
	VMT_ASSERT(other != MAP_FAILED);
	munmap(other, PAGE);
	VMT_ASSERT(is_current(fd));
	close(fd);
	munmap(p, LEN);
}

static void stale_after_munmap(void)
{
	int fd;
	uint8_t *p = tracked(&fd);

	munmap(p + 10 * PAGE, PAGE);
	VMT_ASSERT(!is_current(fd));
	close(fd);
	munmap(p, LEN);
}

static void stale_after_madv_dontneed(void)
{
	int fd;
	uint8_t *p = tracked(&fd);

	VMT_ASSERT_OK(madvise(p + LEN - PAGE, PAGE, MADV_DONTNEED));
	VMT_ASSERT(!is_current(fd));
	close(fd);
	munmap(p, LEN);
}

/*
 * arm64 ignores a pointer's top byte (TBI), and a process that enables the
 * tagged-address ABI (HWASan, MTE) hands tagged pointers to the kernel.
 * The export must be of the untagged range: the same pages, and a tracker
 * that sees a change to them (a notifier on the tagged range never would).
 */
static void tagged_pointer_tracks_untagged_range(void)
{
#if defined(__aarch64__)
	const uint64_t tag = 0x2aull << 56;
	struct vmemexp_export e;
	uint8_t *p, *map;
	int fd;

	if (prctl(PR_SET_TAGGED_ADDR_CTRL, PR_TAGGED_ADDR_ENABLE, 0, 0, 0))
		vmt_skip("no tagged-address ABI: %s", vmt_errname(errno));
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(p != MAP_FAILED);
	vmt_fill(p, LEN, 0, 7);
	e = (struct vmemexp_export){
		.addr = (uintptr_t)p | tag,
		.len = LEN,
		.flags = VMEMEXP_EXPORT_TRACK,
	};
	VMT_ASSERT_OK(ioctl(tracking_dev(), VMEMEXP_IOC_EXPORT, &e));
	VMT_ASSERT_EQ(e.offset, 0);
	VMT_ASSERT_EQ(e.size, LEN);
	fd = e.fd;
	slot_of[fd] = e.status_slot;
	map = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(map, LEN, 0, 7), -1);
	munmap(map, LEN);
	VMT_ASSERT(is_current(fd));
	VMT_ASSERT_OK(madvise(p + 3 * PAGE, PAGE, MADV_DONTNEED));
	VMT_ASSERT(!is_current(fd));
	close(fd);
	munmap(p, LEN);
	VMT_ASSERT_OK(prctl(PR_SET_TAGGED_ADDR_CTRL, 0, 0, 0, 0));
#else
	vmt_skip("pointers carry no tag on this architecture");
#endif
}

/* A protection change cannot replace pinned pages: still current. */
static void current_after_mprotect(void)
{
	int fd;
	uint8_t *p = tracked(&fd);

	VMT_ASSERT_OK(mprotect(p, PAGE, PROT_READ));
	VMT_ASSERT(is_current(fd));
	close(fd);
	munmap(p, LEN);
}

static void stale_after_mremap(void)
{
	int fd;
	uint8_t *p = tracked(&fd);
	void *q = mremap(p, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED,
			 (uint8_t *)mmap(NULL, LEN, PROT_NONE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));

	VMT_ASSERT(q != MAP_FAILED);
	VMT_ASSERT(!is_current(fd));
	close(fd);
	munmap(q, LEN);
}

static void untracked_export_eopnotsupp(void)
{
	static char mem[PAGE] __attribute__((aligned(4096)));
	struct vmemexp_export e;
	uint32_t flags;
	int dev = vmx_open();
	int fd = vmx_export_ok(dev, mem, PAGE, 0, &e);

	VMT_ASSERT_ERRNO(status_of(fd, &flags), EOPNOTSUPP);
	close(fd);
	close(dev);
}

static void bad_fd_ebadf(void)
{
	uint32_t flags;

	VMT_ASSERT_ERRNO(status_of(-1, &flags), EBADF);
	VMT_ASSERT_ERRNO(status_of(1000000, &flags), EBADF);
}

static void not_a_dmabuf_einval(void)
{
	uint32_t flags;
	int dev = vmx_open();

	VMT_ASSERT_ERRNO(status_of(dev, &flags), EINVAL);
	close(dev);
}

static void nonzero_input_einval(void)
{
	int fd, dev = vmx_open();
	uint8_t *p = tracked(&fd);
	struct vmemexp_status st = { .fd = fd, .flags = 1 };

	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_STATUS, &st), EINVAL);
	st = (struct vmemexp_status){ .fd = fd, .reserved[2] = 1 };
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_STATUS, &st), EINVAL);
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_STATUS, (void *)8), EFAULT);
	close(fd);
	close(dev);
	munmap(p, LEN);
}

/* The status is the exporter's to ask: another mm gets EPERM. */
static void other_process_eperm(void)
{
	int fd, pid;
	uint8_t *p = tracked(&fd);

	pid = fork();
	VMT_ASSERT(pid >= 0);
	if (pid == 0) {
		struct vmemexp_status st = { .fd = fd };
		int dev = open("/dev/vmemexp", O_RDWR);

		_exit(ioctl(dev, VMEMEXP_IOC_STATUS, &st) == -1 &&
		      errno == EPERM ? 0 : 1);
	}
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	close(fd);
	munmap(p, LEN);
}

/*
 * The exporter exits while a peer holds the tracked dma-buf: the notifier
 * must go away cleanly after the exporter's mm did.
 */
static void exporter_exits_first(void)
{
	int sv[2], pid, fd;
	char byte;

	VMT_ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	VMT_ASSERT(pid >= 0);
	if (pid == 0) {
		int dfd;
		uint8_t *p = tracked(&dfd);

		p[0] = 1;
		_exit(vmt_send_fd(sv[1], dfd, "x", 1) < 0 ? 1 : 0);
	}
	close(sv[1]);
	fd = vmt_recv_fd(sv[0], &byte, 1);
	VMT_ASSERT(fd >= 0);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	{
		uint32_t flags;

		VMT_ASSERT_ERRNO(status_of(fd, &flags), EPERM);
	}
	close(fd);
	close(sv[0]);
}

static void untracked_export_has_no_slot(void)
{
	static char mem[PAGE] __attribute__((aligned(4096)));
	struct vmemexp_export e;
	int fd = vmx_export_ok(tracking_dev(), mem, PAGE, 0, &e);

	VMT_ASSERT_EQ(e.status_slot, VMEMEXP_STATUS_NO_SLOT);
	close(fd);
}

static void status_page_mmap_errors(void)
{
	int dev = tracking_dev();
	void *p;

	VMT_ASSERT(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
			0) == MAP_FAILED && errno == EPERM);
	VMT_ASSERT(mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_SHARED, dev,
			0) == MAP_FAILED && errno == EPERM);
	VMT_ASSERT(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, dev, 0) ==
		   MAP_FAILED && errno == EINVAL);
	VMT_ASSERT(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev, PAGE) ==
		   MAP_FAILED && errno == EINVAL);
	VMT_ASSERT(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, dev, 0) ==
		   MAP_FAILED && errno == EINVAL);
	/* A good mapping can become neither writable nor larger. */
	p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev, 0);
	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_ERRNO(mprotect(p, PAGE, PROT_READ | PROT_WRITE), EACCES);
	VMT_ASSERT(mremap(p, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == MAP_FAILED &&
		   errno == EFAULT);
	VMT_ASSERT_OK(munmap(p, PAGE));
}

/*
 * MADV_DONTNEED zaps the status page from the mapping: the next read
 * faults it back in (it was a SIGBUS), still showing the live words.
 */
static void status_page_after_dontneed(void)
{
	int fd;
	uint8_t *p = tracked(&fd);
	uint32_t slot = slot_of[fd];

	VMT_ASSERT_OK(madvise((void *)status_page, PAGE, MADV_DONTNEED));
	VMT_ASSERT_EQ(status_page[slot], 0);
	munmap(p + PAGE, PAGE);
	VMT_ASSERT_OK(madvise((void *)status_page, PAGE, MADV_DONTNEED));
	VMT_ASSERT(status_page[slot] != 0);
	close(fd);
	munmap(p, LEN);
}

/*
 * A shared mapping of a file opened read-only has VM_MAYSHARE but not
 * VM_SHARED; the status page is read-only anyway, so it maps (it was
 * EINVAL).
 */
static void status_page_of_rdonly_file(void)
{
	int dev = open("/dev/vmemexp", O_RDONLY | O_CLOEXEC), fd;
	const volatile uint32_t *page;
	uint8_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e;

	VMT_ASSERT_OK(dev);
	VMT_ASSERT(p != MAP_FAILED);
	page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev, 0);
	VMT_ASSERT(page != MAP_FAILED);
	memset(p, 1, LEN);
	fd = vmx_export_ok(dev, p, LEN, VMEMEXP_EXPORT_TRACK, &e);
	VMT_ASSERT_EQ(page[e.status_slot], 0);
	VMT_ASSERT_OK(madvise(p, PAGE, MADV_DONTNEED));
	VMT_ASSERT(page[e.status_slot] != 0);
	close(fd);
	close(dev);
	munmap((void *)page, PAGE);
	munmap(p, LEN);
}

/* A slot given back and handed out again reads 0 for its new export. */
static void reused_slot_starts_current(void)
{
	int fd, again;
	uint8_t *p = tracked(&fd);
	uint32_t slot = slot_of[fd];

	munmap(p + PAGE, PAGE);
	VMT_ASSERT(!is_current(fd));
	VMT_ASSERT(status_page[slot] != 0);
	close(fd);
	again = export_tracked(p + 4 * PAGE, PAGE);
	VMT_ASSERT_EQ(slot_of[again], slot);
	VMT_ASSERT(is_current(again));
	close(again);
	munmap(p, LEN);
}

/*
 * The file the export went through is closed first: its status page still
 * shows the export's changes to whoever mapped it.
 */
static void status_page_outlives_file(void)
{
	int dev = vmx_open(), fd;
	const volatile uint32_t *page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED,
					      dev, 0);
	uint8_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e;

	VMT_ASSERT(page != MAP_FAILED && p != MAP_FAILED);
	memset(p, 1, LEN);
	fd = vmx_export_ok(dev, p, LEN, VMEMEXP_EXPORT_TRACK, &e);
	close(dev);
	VMT_ASSERT_EQ(page[e.status_slot], 0);
	VMT_ASSERT_OK(madvise(p, PAGE, MADV_DONTNEED));
	VMT_ASSERT(page[e.status_slot] != 0);
	close(fd);
	VMT_ASSERT(page[e.status_slot] != 0);
	munmap((void *)page, PAGE);
	munmap(p, LEN);
}

/* One page holds PAGE / 4 slots; the next tracked export has none. */
static void slots_run_out(void)
{
	enum { SLOTS = PAGE / sizeof(uint32_t) };
	struct rlimit nofile = { SLOTS + 64, SLOTS + 64 };
	uint8_t *p = mmap(NULL, (SLOTS + 1) * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static int fds[SLOTS + 1];
	struct vmemexp_export e;
	uint32_t flags;
	int dev = vmx_open();

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_OK(setrlimit(RLIMIT_NOFILE, &nofile));
	memset(p, 1, (SLOTS + 1) * PAGE);
	for (unsigned int i = 0; i < SLOTS; i++) {
		fds[i] = vmx_export_ok(dev, p + i * PAGE, PAGE,
				       VMEMEXP_EXPORT_TRACK, &e);
		VMT_ASSERT_EQ(e.status_slot, i);
	}
	fds[SLOTS] = vmx_export_ok(dev, p + SLOTS * PAGE, PAGE,
				   VMEMEXP_EXPORT_TRACK, &e);
	VMT_ASSERT_EQ(e.status_slot, VMEMEXP_STATUS_NO_SLOT);
	/* Without a slot the ioctl still answers. */
	munmap(p + SLOTS * PAGE, PAGE);
	VMT_ASSERT_OK(status_of(fds[SLOTS], &flags));
	VMT_ASSERT_EQ(flags & VMEMEXP_STATUS_CURRENT, 0);
	for (unsigned int i = 0; i <= SLOTS; i++)
		close(fds[i]);
	close(dev);
	munmap(p, (SLOTS + 1) * PAGE);
}

/* Writes vmemexp's track_exports parameter; false when it has none. */
static bool set_track_exports(bool on)
{
	FILE *f = fopen("/sys/module/vmemexp/parameters/track_exports", "w");
	bool ok;

	if (!f)
		return false;
	ok = fputs(on ? "Y" : "N", f) >= 0;
	return fclose(f) == 0 && ok;
}

/*
 * With track_exports=N the module answers a tracked export as a kernel
 * without MMU notifiers does: EOPNOTSUPP, nothing pinned, no fd; plain
 * exports go on.  The parameter is restored before anything is asserted.
 */
static void tracking_off_eopnotsupp(void)
{
	static char mem[PAGE] __attribute__((aligned(4096)));
	struct vmemexp_export e;
	int ret, err, plain;

	if (!set_track_exports(false))
		vmt_skip("vmemexp has no writable track_exports parameter");
	ret = vmx_export(tracking_dev(), mem, PAGE, VMEMEXP_EXPORT_TRACK, &e);
	err = errno;
	plain = vmx_export(tracking_dev(), mem, PAGE, 0, &e);
	VMT_ASSERT(set_track_exports(true));
	VMT_ASSERT_EQ(ret, -1);
	VMT_ASSERT_EQ(err, EOPNOTSUPP);
	VMT_ASSERT_OK(plain);
	close(e.fd);
}

int main(int argc, char **argv)
{
	static const struct vmt_test tests[] = {
		VMT_TEST(current_after_export_and_writes),
		VMT_TEST(stale_after_munmap),
		VMT_TEST(stale_after_madv_dontneed),
		VMT_TEST(current_after_mprotect),
		VMT_TEST(stale_after_mremap),
		VMT_TEST(tagged_pointer_tracks_untagged_range),
		VMT_TEST(untracked_export_eopnotsupp),
		VMT_TEST(bad_fd_ebadf),
		VMT_TEST(not_a_dmabuf_einval),
		VMT_TEST(nonzero_input_einval),
		VMT_TEST(other_process_eperm),
		VMT_TEST(exporter_exits_first),
		VMT_TEST(untracked_export_has_no_slot),
		VMT_TEST(status_page_mmap_errors),
		VMT_TEST(status_page_after_dontneed),
		VMT_TEST(status_page_of_rdonly_file),
		VMT_TEST(reused_slot_starts_current),
		VMT_TEST(status_page_outlives_file),
		VMT_TEST(slots_run_out),
		VMT_TEST(tracking_off_eopnotsupp),
	};

	tracking_dev();
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
