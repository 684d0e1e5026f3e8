/* SPDX-License-Identifier: MIT */
/*
 * Every way VMEMEXP_IOC_EXPORT and the dma-buf it returns can be misused,
 * one thing wrong per case, each with its own errno.  The harness checks
 * after each test that no fd was left open and no page left pinned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul

static char valid[4 * PAGE] __attribute__((aligned(4096)));

static struct vmemexp_export valid_args(void)
{
	return (struct vmemexp_export){
		.addr = (uintptr_t)valid + PAGE,
		.len = 2 * PAGE,
	};
}

static void expect_errno(struct vmemexp_export e, int err)
{
	int dev = vmx_open();

	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, &e), err);
	close(dev);
}

/* The export must succeed, with @e's range at @offset of @size bytes. */
static void expect_export(struct vmemexp_export e, uint64_t offset,
			  uint64_t size)
{
	int dev = vmx_open();

	VMT_ASSERT_OK(ioctl(dev, VMEMEXP_IOC_EXPORT, &e));
	VMT_ASSERT_EQ(e.offset, offset);
	VMT_ASSERT_EQ(e.size, size);
	close(e.fd);
	close(dev);
}

static void valid_args_succeed(void)
{
	expect_export(valid_args(), 0, 2 * PAGE);
}

/*
 * A range that does not start and end on a page boundary would hand the
 * importer its neighbours in the first and last page (a malloc() chunk's
 * header, another chunk): refused unless the exporter opts in.
 */
static void unaligned_start(void)
{
	struct vmemexp_export e = valid_args();

	e.addr += 100;
	e.len -= 100;
	expect_errno(e, EINVAL);
}

static void unaligned_end(void)
{
	struct vmemexp_export e = valid_args();

	e.len -= 1;
	expect_errno(e, EINVAL);
}

static void unaligned_opted_in(void)
{
	struct vmemexp_export e = valid_args();

	e.addr += 100;
	e.flags = VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES;
	expect_export(e, 100, 3 * PAGE);
}

static void len_zero(void)
{
	struct vmemexp_export e = valid_args();

	e.len = 0;
	expect_errno(e, EINVAL);
}

static void range_wraps(void)
{
	struct vmemexp_export e = valid_args();

	e.len = UINT64_MAX - e.addr + 2;
	expect_errno(e, EINVAL);
}

static void page_rounding_wraps(void)
{
	struct vmemexp_export e = valid_args();

	e.addr = UINT64_MAX - 100;
	e.len = 50;
	e.flags = VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES;
	expect_errno(e, EINVAL);
}

static void unknown_flags(void)
{
	for (int bit = 0; bit < 32; bit++) {
		struct vmemexp_export e = valid_args();

		/*
		 * RDONLY, CLOEXEC, PFNMAP, TRACK, EXPOSE_WHOLE_PAGES: spelt
		 * out, not taken from the header.
		 */
		if (0x1fu & 1u << bit)
			continue;
		e.flags = 1u << bit;
		expect_errno(e, EINVAL);
	}
}

/* Each output, padding and reserved field must be zero on input. */
static void nonzero_fields(void)
{
	for (int field = 0; field < 7; field++) {
		struct vmemexp_export e = valid_args();

		switch (field) {
		case 0: e.fd = 3; break;
		case 1: e.offset = 1; break;
		case 2: e.size = PAGE; break;
		case 3: e.nr_segments = 1; break;
		case 4: e.status_slot = 1; break;
		case 5: e.reserved[0] = 1; break;
		case 6: e.reserved[1] = 1ull << 63; break;
		}
		expect_errno(e, EINVAL);
	}
}

static void bad_struct_pointer(void)
{
	int dev = vmx_open();

	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, NULL), EFAULT);
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, (void *)1), EFAULT);
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT,
			       (void *)0xffffffff81000000ul), EFAULT);
	close(dev);
}

/* The result cannot be written back: the fd must not be installed. */
static void unwritable_struct(void)
{
	struct vmemexp_export *e = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int dev = vmx_open(), fds;

	VMT_ASSERT(e != MAP_FAILED);
	*e = valid_args();
	VMT_ASSERT_OK(mprotect(e, PAGE, PROT_READ));
	fds = vmt_count_fds();
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, e), EFAULT);
	VMT_ASSERT_EQ(vmt_count_fds(), fds);
	munmap(e, PAGE);
	close(dev);
}

static void hole_in_range(void)
{
	char *p = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e = { .len = 3 * PAGE };

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_OK(munmap(p + PAGE, PAGE));
	e.addr = (uintptr_t)p;
	expect_errno(e, EFAULT);
	munmap(p, 3 * PAGE);
}

static void beyond_user_space(void)
{
	struct vmemexp_export e = { .addr = 1ull << 47, .len = PAGE };

	expect_errno(e, EFAULT);
	e.addr = 0xffff888000000000ull;
	expect_errno(e, EFAULT);
}

/*
 * The exporter's own pages, but mapped read-only now: exported read-only
 * only.  (What may not be exported even read-only: export_access.)
 */
static void readonly_mapping_exported_writable(void)
{
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e = { .addr = (uintptr_t)p, .len = PAGE };
	int dev = vmx_open();

	VMT_ASSERT(p != MAP_FAILED);
	p[0] = 1;
	VMT_ASSERT_OK(mprotect(p, PAGE, PROT_READ));
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, &e), EACCES);
	e.flags = VMEMEXP_EXPORT_RDONLY;
	VMT_ASSERT_OK(ioctl(dev, VMEMEXP_IOC_EXPORT, &e));
	close(e.fd);
	munmap(p, PAGE);
	close(dev);
}

static void prot_none_page(void)
{
	char *p = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e = { .len = 3 * PAGE };

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_OK(mprotect(p + PAGE, PAGE, PROT_NONE));
	e.addr = (uintptr_t)p;
	expect_errno(e, EACCES);
	e.flags = VMEMEXP_EXPORT_RDONLY;
	expect_errno(e, EACCES);
	munmap(p, 3 * PAGE);
}

/* A dma-buf mapping is VM_PFNMAP: there are no pages to pin through it. */
static void pfnmap_mapping(void)
{
	struct vmemexp_export e, again = { .len = PAGE };
	int dev = vmx_open(), fd;
	void *map;

	fd = vmx_export_ok(dev, valid, PAGE, 0, &e);
	map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	again.addr = (uintptr_t)map;
	VMT_ASSERT_ERRNO(ioctl(dev, VMEMEXP_IOC_EXPORT, &again), EPERM);
	munmap(map, PAGE);
	close(fd);
	close(dev);
}

static void dev_mem_mapping(void)
{
	struct vmemexp_export e = { .len = PAGE, .flags = VMEMEXP_EXPORT_RDONLY };
	int mem = open("/dev/mem", O_RDONLY | O_CLOEXEC);
	void *map;

	if (mem < 0)
		vmt_skip("/dev/mem: %s", vmt_errname(errno));
	/* The BIOS area stays mappable under STRICT_DEVMEM. */
	map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, mem, 0xf0000);
	close(mem);
	if (map == MAP_FAILED)
		vmt_skip("mmap of /dev/mem: %s", vmt_errname(errno));
	e.addr = (uintptr_t)map;
	expect_errno(e, EPERM);
	munmap(map, PAGE);
}

static void over_memlock_limit(void)
{
	struct rlimit lim = { .rlim_cur = 64 * 1024, .rlim_max = 64 * 1024 };
	size_t len = 16 * PAGE;
	char *p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export first, second, big;
	int dev = vmx_open();

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_OK(setrlimit(RLIMIT_MEMLOCK, &lim));
	VMT_ASSERT_OK(vmx_drop_cap(CAP_IPC_LOCK));

	VMT_ASSERT_ERRNO(vmx_export(dev, p, 2 * len, 0, &big), ENOMEM);
	vmx_export_ok(dev, p, len, 0, &first);
	/* The limit counts what is still pinned, and is returned on close. */
	VMT_ASSERT_ERRNO(vmx_export(dev, p + len, PAGE, 0, &second), ENOMEM);
	close(first.fd);
	vmx_export_ok(dev, p + len, len, 0, &second);
	close(second.fd);
	munmap(p, 2 * len);
	close(dev);
}

static void over_module_cap_checks(void)
{
	size_t cap = 1 << 20;
	char *p = mmap(NULL, cap + PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e;
	int dev = vmx_open();

	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_ERRNO(vmx_export(dev, p, cap + 1, 0, &e), E2BIG);
	/* One byte, but straddling a page boundary past the cap. */
	VMT_ASSERT_ERRNO(vmx_export(dev, p + 1, cap, 0, &e), E2BIG);
	vmx_export_ok(dev, p, cap, 0, &e);
	close(e.fd);
	munmap(p, cap + PAGE);
	close(dev);
}

static void over_module_cap(void)
{
	char saved[32] = "";
	int fd, status;
	pid_t pid;
	ssize_t n;

	fd = open("/sys/module/vmemexp/parameters/max_export_bytes",
		  O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		vmt_skip("no max_export_bytes parameter");
	n = read(fd, saved, sizeof(saved) - 1);
	close(fd);
	VMT_ASSERT(n > 0);
	saved[n] = '\0';

	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", "1048576"));
	pid = fork();
	if (pid == 0) {
		over_module_cap_checks();
		_exit(0);
	}
	status = vmt_wait(pid);
	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", saved));
	VMT_ASSERT_EQ(status, 0);
}

static void unknown_ioctl(void)
{
	struct vmemexp_export e = valid_args();
	int dev = vmx_open();

	VMT_ASSERT_ERRNO(ioctl(dev, _IOWR(VMEMEXP_IOC_MAGIC, 1,
					  struct vmemexp_export), &e), ENOTTY);
	VMT_ASSERT_ERRNO(ioctl(dev, _IOW(VMEMEXP_IOC_MAGIC, 0, __u32), &e),
			 ENOTTY);
	VMT_ASSERT_ERRNO(ioctl(dev, 0, &e), ENOTTY);
	close(dev);
}

static void dmabuf_map_private(void)
{
	struct vmemexp_export e;
	int dev = vmx_open(), fd;

	fd = vmx_export_ok(dev, valid, PAGE, 0, &e);
	VMT_ASSERT_ERRNO((long)mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0),
			 EINVAL);
	close(fd);
	close(dev);
}

static void dmabuf_map_past_end(void)
{
	struct vmemexp_export e;
	int dev = vmx_open(), fd;

	fd = vmx_export_ok(dev, valid, 2 * PAGE, 0, &e);
	VMT_ASSERT_ERRNO((long)mmap(NULL, e.size + PAGE, PROT_READ,
				    MAP_SHARED, fd, 0), EINVAL);
	VMT_ASSERT_ERRNO((long)mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd,
				    (off_t)e.size), EINVAL);
	close(fd);
	close(dev);
}

static void dmabuf_rdonly_map_write(void)
{
	struct vmemexp_export e;
	int dev = vmx_open(), fd;
	void *map;

	fd = vmx_export_ok(dev, valid, PAGE, VMEMEXP_EXPORT_RDONLY, &e);
	VMT_ASSERT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	VMT_ASSERT_ERRNO((long)mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				    MAP_SHARED, fd, 0), EACCES);
	map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT_ERRNO(mprotect(map, PAGE, PROT_READ | PROT_WRITE), EACCES);
	munmap(map, PAGE);
	close(fd);
	close(dev);
}

static void cloexec_and_mode(void)
{
	struct vmemexp_export e;
	int dev = vmx_open(), fd;

	fd = vmx_export_ok(dev, valid, PAGE, 0, &e);
	VMT_ASSERT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	VMT_ASSERT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	close(fd);
	fd = vmx_export_ok(dev, valid, PAGE, VMEMEXP_EXPORT_CLOEXEC, &e);
	VMT_ASSERT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	close(dev);
}

static const struct vmt_test tests[] = {
	VMT_TEST(valid_args_succeed),
	VMT_TEST(unaligned_start),
	VMT_TEST(unaligned_end),
	VMT_TEST(unaligned_opted_in),
	VMT_TEST(len_zero),
	VMT_TEST(range_wraps),
	VMT_TEST(page_rounding_wraps),
	VMT_TEST(unknown_flags),
	VMT_TEST(nonzero_fields),
	VMT_TEST(bad_struct_pointer),
	VMT_TEST(unwritable_struct),
	VMT_TEST(hole_in_range),
	VMT_TEST(beyond_user_space),
	VMT_TEST(readonly_mapping_exported_writable),
	VMT_TEST(prot_none_page),
	VMT_TEST(pfnmap_mapping),
	VMT_TEST(dev_mem_mapping),
	VMT_TEST(over_memlock_limit),
	VMT_TEST(over_module_cap),
	VMT_TEST(unknown_ioctl),
	VMT_TEST(dmabuf_map_private),
	VMT_TEST(dmabuf_map_past_end),
	VMT_TEST(dmabuf_rdonly_map_write),
	VMT_TEST(cloexec_and_mode),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
