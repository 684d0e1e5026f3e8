/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy scanout of malloc memory through vkms (loaded by the test's
 * vmrun line with enable_writeback=1 enable_overlay=1): the example's
 * frames, captured through the writeback connector, must match what it
 * drew pixel for pixel, before and after in-place updates.  The harness
 * checks afterwards that every page pinned for the display was released.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmtest.h"

static int run_example(const char *args, char *out, size_t size)
{
	const char *exe = getenv("VMSHARE_KMS_DISPLAY");
	char cmd[1024];
	size_t n = 0;
	FILE *p;

	if (!exe)
		vmt_skip("VMSHARE_KMS_DISPLAY does not name the example");
	if (access("/sys/module/vkms", F_OK))
		vmt_skip("vkms is not loaded");
	snprintf(cmd, sizeof(cmd), "'%s' --verify %s", exe, args);
	p = popen(cmd, "re");
	VMT_ASSERT(p);
	while (n < size - 1 && fgets(out + n, (int)(size - n), p))
		n += strlen(out + n);
	out[n] = '\0';
	printf("%s", out);
	return WEXITSTATUS(pclose(p));
}

/* Page-aligned malloc memory: exact pixels, four frames drawn in place. */
static void aligned_frame_exact(void)
{
	char out[8192];

	VMT_ASSERT_EQ(run_example("--frames 4", out, sizeof(out)), 0);
	VMT_ASSERT(strstr(out, "framebuffer offset 0"));
	VMT_ASSERT(strstr(out, "overlay plane: yes"));
	VMT_ASSERT(strstr(out, "composed exactly as drawn: 4/4"));
}

static void aligned_frame_without_overlay(void)
{
	char out[8192];

	VMT_ASSERT_EQ(run_example("--frames 2 --no-overlay", out, sizeof(out)), 0);
	VMT_ASSERT(strstr(out, "composed exactly as drawn: 2/2"));
}

/*
 * A frame 256 bytes into its dma-buf.  vkms on 6.1 adds a framebuffer's
 * offset twice, so it shows the frame shifted by exactly that much; the
 * example recognises that and exits 3.  Anything else is a failure.
 */
static void unaligned_frame_shifted_by_vkms(void)
{
	char out[8192];
	int status = run_example("--frames 2 --unaligned", out, sizeof(out));

	VMT_ASSERT(strstr(out, "framebuffer offset 256"));
	if (status == 0) {
		vmt_note("this kernel's vkms honours the offset: exact pixels");
		VMT_ASSERT(strstr(out, "composed exactly as drawn: 2/2"));
		return;
	}
	VMT_ASSERT_EQ(status, 3);
	VMT_ASSERT(strstr(out, "shifted by the framebuffer offset (256 bytes): 2/2"));
}

static const struct vmt_test tests[] = {
	VMT_TEST(aligned_frame_exact),
	VMT_TEST(aligned_frame_without_overlay),
	VMT_TEST(unaligned_frame_shifted_by_vkms),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
