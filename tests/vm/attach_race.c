/* SPDX-License-Identifier: MIT */
/*
 * Two maps of one attachment racing (issue 18, finding 9): exactly one may
 * succeed, or the first unmap frees the table the other still uses.  The
 * racing importer is tests/vm/importer/vmemexp_test_importer.ko, which maps
 * from two CPUs at once; on Linux 6.2 and later the dma-buf core already
 * serialises maps, so the race it shows is 6.1's.
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

static void racing_maps(void)
{
	int importer = open("/dev/vmemexp-test-importer", O_RDWR | O_CLOEXEC);
	struct vmemexp_test_map_race race = { .rounds = 2000 };
	char *p = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int dev = vmx_open();
	struct vmemexp_export e;

	if (importer < 0)
		vmt_skip("vmemexp_test_importer.ko is not loaded");
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

static const struct vmt_test tests[] = {
	VMT_TEST(racing_maps),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
