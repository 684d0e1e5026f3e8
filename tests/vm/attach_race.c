/* SPDX-License-Identifier: MIT */
/*
 * What a kernel importer gets, through tests/vm/importer/
 * vmemexp_test_importer.ko:
 * - Two maps of one attachment racing (issue 18, finding 9): exactly one
 *   may succeed, or the first unmap frees the table the other still uses.
 *   The module maps from two CPUs at once; on Linux 6.2 and later the
 *   dma-buf core already serialises maps, so the race it shows is 6.1's.
 * - Segments no larger than swiotlb can bounce (finding 10), for a device
 *   with no segment limit of its own: run under swiotlb=force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "vmx.h"

#define PAGE 4096ul

struct vmemexp_test_map_race {
	int32_t fd;
	uint32_t rounds;
	uint32_t both_mapped;
	uint32_t none_mapped;
};

#define VMEMEXP_TEST_MAP_RACE _IOWR(0xB6, 0x40, struct vmemexp_test_map_race)

struct vmemexp_test_map_once {
	int32_t fd;
	uint32_t nr_segments;
};

#define VMEMEXP_TEST_MAP_ONCE _IOWR(0xB6, 0x42, struct vmemexp_test_map_once)

static int open_importer(void)
{
	int importer = open("/dev/vmemexp-test-importer", O_RDWR | O_CLOEXEC);

	if (importer < 0)
		vmt_skip("vmemexp_test_importer.ko is not loaded");
	return importer;
}

static void racing_maps(void)
{
	int importer = open_importer();
	struct vmemexp_test_map_race race = { .rounds = 2000 };
	char *p = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int dev = vmx_open();
	struct vmemexp_export e;

	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 1, 64 * PAGE);
	race.fd = vmx_export_ok(dev, p, 64 * PAGE, VMEMEXP_EXPORT_CLOEXEC, &e);
	VMT_ASSERT_OK(ioctl(importer, VMEMEXP_TEST_MAP_RACE, &race));
	vmt_note("%u rounds: both mapped in %u, neither in %u", race.rounds,
		 race.both_mapped, race.none_mapped);
	VMT_ASSERT_EQ(race.both_mapped, 0);
	VMT_ASSERT_EQ(race.none_mapped, 0);
	close(e.fd);
	close(importer);
	close(dev);
	munmap(p, 64 * PAGE);
}

/*
 * A 2 MiB huge page is one physically contiguous run.  swiotlb bounces at
 * most 256 KiB at once (dma_max_mapping_size()): one 2 MiB segment
 * cannot be mapped under swiotlb=force, eight of 256 KiB can.
 */
static void segments_fit_swiotlb(void)
{
	int importer = open_importer(), dev = vmx_open(), sysctl;
	struct vmemexp_test_map_once once = { 0 };
	size_t huge = 2ul << 20;
	struct vmemexp_export e;
	char cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "r");
	char *p;

	VMT_ASSERT(f);
	VMT_ASSERT(fgets(cmdline, sizeof(cmdline), f));
	fclose(f);
	if (!strstr(cmdline, "swiotlb=force"))
		vmt_skip("the guest does not run with swiotlb=force");
	sysctl = open("/proc/sys/vm/nr_hugepages", O_WRONLY | O_CLOEXEC);
	VMT_ASSERT_OK(sysctl);
	VMT_ASSERT_EQ(write(sysctl, "1", 1), 1);
	close(sysctl);
	p = mmap(NULL, huge, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		vmt_skip("no huge page: %s", vmt_errname(errno));
	memset(p, 1, huge);
	once.fd = vmx_export_ok(dev, p, huge, VMEMEXP_EXPORT_CLOEXEC, &e);
	VMT_ASSERT_EQ(e.nr_segments, 1);
	VMT_ASSERT_OK(ioctl(importer, VMEMEXP_TEST_MAP_ONCE, &once));
	vmt_note("2 MiB in %u DMA segments", once.nr_segments);
	close(once.fd);
	close(importer);
	close(dev);
	munmap(p, huge);
}

static const struct vmt_test tests[] = {
	VMT_TEST(racing_maps),
	VMT_TEST(segments_fit_swiotlb),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
