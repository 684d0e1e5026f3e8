/* SPDX-License-Identifier: MIT */
/*
 * VMEMEXP_EXPORT_TRACK and VMEMEXP_IOC_STATUS: an export stays "current"
 * while the exporter's range shows the exported pages, and stops being so
 * after anything that changed the range's page tables.  Plus every bad
 * input to VMEMEXP_IOC_STATUS with its errno.
 */
#include <stdlib.h>
#include <sys/mman.h>
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

static bool is_current(int fd)
{
	uint32_t flags;

	VMT_ASSERT_OK(status_of(fd, &flags));
	return flags & VMEMEXP_STATUS_CURRENT;
}

/* Fresh, written anonymous memory and a tracked export of it. */
static uint8_t *tracked(int *fd)
{
	uint8_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 0x5a, LEN);
	*fd = vmx_export_ok(dev, p + 100, LEN - 200, VMEMEXP_EXPORT_TRACK, &e);
	close(dev);
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

int main(int argc, char **argv)
{
	static const struct vmt_test tests[] = {
		VMT_TEST(current_after_export_and_writes),
		VMT_TEST(stale_after_munmap),
		VMT_TEST(stale_after_madv_dontneed),
		VMT_TEST(current_after_mprotect),
		VMT_TEST(stale_after_mremap),
		VMT_TEST(untracked_export_eopnotsupp),
		VMT_TEST(bad_fd_ebadf),
		VMT_TEST(not_a_dmabuf_einval),
		VMT_TEST(nonzero_input_einval),
		VMT_TEST(other_process_eperm),
		VMT_TEST(exporter_exits_first),
	};

	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
