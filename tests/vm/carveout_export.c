/* SPDX-License-Identifier: MIT */
/*
 * Export of carve-out memory that a driver mapped with remap_pfn_range()
 * (VMEMEXP_EXPORT_PFNMAP).  The guest is booted and loaded as the
 * carveout_export_in_guest test does it (tests/meson.build):
 *
 *   region 0  0x30000000+16M  RAM held back with memmap=: struct pages but
 *                             no linear mapping, declared
 *   region 1  0x70000000+16M  above mem=1792M: no struct pages, declared
 *   region 2  0x32000000+16M  RAM held back with memmap=, NOT declared
 *   region 3  0x38000000+16M  crashkernel=: reserved RAM in the linear
 *                             map, declared
 *
 * tests/vm/carveout/vmemexp_test_carveout.ko maps region N through
 * /dev/vmemexp-test-carveoutN.  Exports must succeed only with the flag,
 * CAP_SYS_RAWIO and a declared range, each refusal with its errno, and a
 * peer must see the carve-out's data both ways; nothing is ever pinned.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <xf86drm.h>

#include "vmx.h"

#define PAGE 4096ul
#define MIB (1024ul * 1024)

/* Maps @len bytes of region @n from byte @offset, read-write unless @ro. */
static void *map_region(int n, size_t offset, size_t len, bool ro, void *at)
{
	char path[64];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/dev/vmemexp-test-carveout%d", n);
	fd = open(path, ro ? O_RDONLY : O_RDWR);
	if (fd < 0 && errno == ENOENT)
		vmt_skip("%s is missing: the test carve-out driver is not loaded", path);
	VMT_ASSERT_OK(fd);
	p = mmap(at, len, ro ? PROT_READ : PROT_READ | PROT_WRITE,
		 MAP_SHARED | (at ? MAP_FIXED : 0), fd, (off_t)offset);
	VMT_ASSERT(p != MAP_FAILED);
	close(fd);
	return p;
}

static int export_flags(void *addr, size_t len, uint32_t flags,
			struct vmemexp_export *e)
{
	int dev = vmx_open();
	int ret = vmx_export(dev, addr, len, flags, e);
	int err = errno;

	close(dev);
	errno = err;
	return ret;
}

/*
 * A peer process maps the dma-buf, checks what the exporter wrote through
 * the driver's mapping, and writes its own pattern into the second half.
 */
static void peer_sees_and_writes(int fd, size_t offset, size_t len)
{
	int pid = fork();

	VMT_ASSERT(pid >= 0);
	if (pid == 0) {
		uint8_t *map = mmap(NULL, offset + len, PROT_READ | PROT_WRITE,
				    MAP_SHARED, fd, 0);

		if (map == MAP_FAILED)
			_exit(2);
		if (vmt_check(map + offset, len / 2, 0, 1) != -1)
			_exit(3);
		vmt_fill(map + offset + len / 2, len / 2, len / 2, 2);
		_exit(0);
	}
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
}

static void roundtrip(int region, uint32_t expect_segments)
{
	size_t len = 1 * MIB, offset = 64 * 1024;
	long long pins = vmt_pins_outstanding();
	struct vmemexp_export e;
	uint8_t *p = map_region(region, offset, len, false, NULL);

	vmt_fill(p, len / 2, 0, 1);
	VMT_ASSERT_OK(export_flags(p + 100, len - 100, VMEMEXP_EXPORT_PFNMAP, &e));
	VMT_ASSERT_EQ(e.offset, 100);
	VMT_ASSERT_EQ(e.size, len);
	VMT_ASSERT_EQ(e.nr_segments, expect_segments);
	VMT_ASSERT_EQ(vmt_pins_outstanding(), pins);
	peer_sees_and_writes(e.fd, 0, len);
	VMT_ASSERT_EQ(vmt_check(p + len / 2, len / 2, len / 2, 2), -1);
	close(e.fd);
	munmap(p, len);
}

/* Reserved RAM in the linear map: the page-based DMA path. */
static void reserved_ram_roundtrip(void)
{
	roundtrip(3, 1);
}

/* Struct pages without a linear mapping: DMA as a physical resource. */
static void unmapped_ram_roundtrip(void)
{
	roundtrip(0, 1);
}

/* Memory without struct pages: DMA through dma_map_resource(). */
static void no_struct_pages_roundtrip(void)
{
	roundtrip(1, 1);
}

/* Pages mapped out of order make one segment per discontinuity. */
static void scattered_pages_make_segments(void)
{
	uint8_t *p = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	struct vmemexp_export e;

	VMT_ASSERT(p != MAP_FAILED);
	map_region(0, 5 * PAGE, PAGE, false, p);
	map_region(0, 2 * PAGE, PAGE, false, p + PAGE);
	map_region(0, 3 * PAGE, PAGE, false, p + 2 * PAGE);
	VMT_ASSERT_OK(export_flags(p, 3 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e));
	VMT_ASSERT_EQ(e.nr_segments, 2);
	close(e.fd);
	munmap(p, 3 * PAGE);
}

static void without_flag_eperm(void)
{
	struct vmemexp_export e;
	void *p = map_region(0, 0, PAGE, false, NULL);

	VMT_ASSERT_ERRNO(export_flags(p, PAGE, 0, &e), EPERM);
	munmap(p, PAGE);
}

static void undeclared_range_eperm(void)
{
	struct vmemexp_export e;
	void *p = map_region(2, 0, PAGE, false, NULL);

	VMT_ASSERT_ERRNO(export_flags(p, PAGE, VMEMEXP_EXPORT_PFNMAP, &e), EPERM);
	munmap(p, PAGE);
}

static void without_cap_sys_rawio_eperm(void)
{
	struct vmemexp_export e;
	void *p = map_region(0, 0, PAGE, false, NULL);

	VMT_ASSERT_OK(vmx_drop_cap(CAP_SYS_RAWIO));
	VMT_ASSERT_ERRNO(export_flags(p, PAGE, VMEMEXP_EXPORT_PFNMAP, &e), EPERM);
	munmap(p, PAGE);
}

/* One export, one carve-out: a range over two declared ones is refused. */
static void across_two_carveouts_eperm(void)
{
	uint8_t *p = mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	struct vmemexp_export e;

	VMT_ASSERT(p != MAP_FAILED);
	map_region(0, 0, PAGE, false, p);
	map_region(1, 0, PAGE, false, p + PAGE);
	VMT_ASSERT_ERRNO(export_flags(p, 2 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e),
			 EPERM);
	munmap(p, 2 * PAGE);
}

static void mixed_with_ordinary_memory_einval(void)
{
	uint8_t *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vmemexp_export e;

	VMT_ASSERT(p != MAP_FAILED);
	p[PAGE] = 1;
	map_region(0, 0, PAGE, false, p);
	VMT_ASSERT_ERRNO(export_flags(p, 2 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e),
			 EINVAL);
	munmap(p, 2 * PAGE);
}

static void flag_on_ordinary_memory_einval(void)
{
	static char plain[2 * PAGE] __attribute__((aligned(4096)));
	struct vmemexp_export e;

	plain[0] = 1;
	VMT_ASSERT_ERRNO(export_flags(plain, PAGE, VMEMEXP_EXPORT_PFNMAP, &e),
			 EINVAL);
}

static void hole_in_range_efault(void)
{
	uint8_t *p = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	struct vmemexp_export e;

	/* Unmapping part of a PFN mapping upsets x86 PAT: map each page. */
	VMT_ASSERT(p != MAP_FAILED);
	map_region(0, 0, PAGE, false, p);
	map_region(0, 2 * PAGE, PAGE, false, p + 2 * PAGE);
	munmap(p + PAGE, PAGE);
	VMT_ASSERT_ERRNO(export_flags(p, 3 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e),
			 EFAULT);
	munmap(p, 3 * PAGE);
}

/* A read-only mapping gives a read-only export, never a writable one. */
static void readonly_mapping(void)
{
	uint8_t *p = map_region(1, 0, 2 * PAGE, true, NULL);
	struct vmemexp_export e;

	VMT_ASSERT_ERRNO(export_flags(p, 2 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e),
			 EACCES);
	VMT_ASSERT_OK(export_flags(p, 2 * PAGE,
				   VMEMEXP_EXPORT_PFNMAP | VMEMEXP_EXPORT_RDONLY,
				   &e));
	VMT_ASSERT(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
			e.fd, 0) == MAP_FAILED);
	VMT_ASSERT_EQ(errno, EACCES);
	close(e.fd);
	munmap(p, 2 * PAGE);
}

/* The declaration, not the exporter's mapping, keeps the memory. */
static void outlives_the_driver_mapping(void)
{
	size_t len = 64 * 1024;
	uint8_t *p = map_region(1, MIB, len, false, NULL), *q;
	struct vmemexp_export e;

	vmt_fill(p, len, 0, 7);
	VMT_ASSERT_OK(export_flags(p, len, VMEMEXP_EXPORT_PFNMAP, &e));
	munmap(p, len);
	q = mmap(NULL, len, PROT_READ, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(q != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(q, len, 0, 7), -1);
	munmap(q, len);
	close(e.fd);
}

/*
 * A CMEM-style sub-allocator frees a chunk when the file it was allocated
 * through is released.  The export holds that file: while it lives, the
 * chunk cannot go to another process, whose data would otherwise appear
 * in (and be overwritten through) the first process's dma-buf.
 */
#define VMEMEXP_TEST_CARVEOUT_ALLOC _IOR(0xB6, 0x41, uint64_t)

static int alloc_chunk(int region, uint64_t *offset)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/vmemexp-test-carveout%d", region);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		vmt_skip("%s is missing: the test carve-out driver is not loaded", path);
	VMT_ASSERT_OK(fd);
	VMT_ASSERT_OK(ioctl(fd, VMEMEXP_TEST_CARVEOUT_ALLOC, offset));
	return fd;
}

static void suballocated_chunk_stays_exported(void)
{
	size_t len = MIB;
	uint64_t mine, theirs, later;
	struct vmemexp_export e;
	int fd = alloc_chunk(1, &mine), other;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			  (off_t)mine), *q;

	VMT_ASSERT(p != MAP_FAILED);
	vmt_fill(p, len, 0, 21);
	VMT_ASSERT_OK(export_flags(p, len, VMEMEXP_EXPORT_PFNMAP, &e));
	munmap(p, len);
	close(fd);

	other = alloc_chunk(1, &theirs);
	vmt_note("exported chunk at %#" PRIx64 ", the next allocation at %#" PRIx64,
		 mine, theirs);
	VMT_ASSERT(theirs != mine);
	q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, other,
		 (off_t)theirs);
	VMT_ASSERT(q != MAP_FAILED);
	vmt_fill(q, len, 0, 22);
	munmap(q, len);
	q = mmap(NULL, len, PROT_READ, MAP_SHARED, e.fd, 0);
	VMT_ASSERT(q != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(q, len, 0, 21), -1);
	munmap(q, len);

	/* The export gone, the chunk is the allocator's again. */
	close(e.fd);
	close(alloc_chunk(1, &later));
	VMT_ASSERT_EQ(later, mine);
	close(other);
}

/*
 * A kernel importer: vgem (loaded with the guest's modprobe) attaches and
 * maps the dma-buf at PRIME import, through the page-based DMA API for
 * region 3 and through dma_map_resource() for regions 0 and 1.
 */
static int open_vgem(void)
{
	for (int i = 0; i < 8; i++) {
		char path[32];
		drmVersionPtr v;
		int fd;

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		if (v && !strcmp(v->name, "vgem")) {
			drmFreeVersion(v);
			return fd;
		}
		drmFreeVersion(v);
		close(fd);
	}
	vmt_skip("no vgem device: modprobe vgem");
}

static void vgem_imports(void)
{
	static const int regions[] = { 0, 1, 3 };
	int vgem = open_vgem();

	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		int region = regions[i];
		uint8_t *p = map_region(region, 0, 16 * PAGE, false, NULL);
		struct vmemexp_export e;
		uint32_t handle, again;
		struct stat a, b;
		int fd2;

		VMT_ASSERT_OK(export_flags(p, 16 * PAGE, VMEMEXP_EXPORT_PFNMAP, &e));
		VMT_ASSERT_OK(drmPrimeFDToHandle(vgem, e.fd, &handle));
		VMT_ASSERT_OK(drmPrimeFDToHandle(vgem, e.fd, &again));
		VMT_ASSERT_EQ(again, handle);
		/* Re-exporting an import hands back the same dma-buf. */
		VMT_ASSERT_OK(drmPrimeHandleToFD(vgem, handle, DRM_CLOEXEC, &fd2));
		VMT_ASSERT_OK(fstat(e.fd, &a));
		VMT_ASSERT_OK(fstat(fd2, &b));
		VMT_ASSERT_EQ(a.st_ino, b.st_ino);
		VMT_ASSERT_OK(drmCloseBufferHandle(vgem, handle));
		close(fd2);
		close(e.fd);
		munmap(p, 16 * PAGE);
	}
	close(vgem);
}

int main(int argc, char **argv)
{
	static const struct vmt_test tests[] = {
		VMT_TEST(reserved_ram_roundtrip),
		VMT_TEST(unmapped_ram_roundtrip),
		VMT_TEST(no_struct_pages_roundtrip),
		VMT_TEST(scattered_pages_make_segments),
		VMT_TEST(without_flag_eperm),
		VMT_TEST(undeclared_range_eperm),
		VMT_TEST(without_cap_sys_rawio_eperm),
		VMT_TEST(across_two_carveouts_eperm),
		VMT_TEST(mixed_with_ordinary_memory_einval),
		VMT_TEST(flag_on_ordinary_memory_einval),
		VMT_TEST(hole_in_range_efault),
		VMT_TEST(readonly_mapping),
		VMT_TEST(outlives_the_driver_mapping),
		VMT_TEST(suballocated_chunk_stays_exported),
		VMT_TEST(vgem_imports),
	};

	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
