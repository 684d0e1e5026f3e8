/* SPDX-License-Identifier: MIT */
/*
 * The fd-passing demo as a test: it must verify every frame and report the
 * path it used, vmemexp where the module is loaded (with every consumer
 * acknowledgement visible in the producer's own frame memory, from
 * vms_frame_alloc()) and the memfd copy elsewhere.  The harness checks pins and fds afterwards.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmtest.h"

/*
 * Runs the demo with @extra arguments (through PATH, as an installed
 * program is, when @from_path); returns its exit status and its output.
 */
static int run_demo(const char *extra, bool from_path, char *out,
		    size_t size)
{
	const char *demo = getenv("VMSHARE_FDPASS"), *name;
	char cmd[2048];
	size_t n = 0;
	FILE *p;

	if (!demo)
		vmt_skip("VMSHARE_FDPASS does not name the demo");
	name = strrchr(demo, '/');
	if (from_path && name)
		snprintf(cmd, sizeof(cmd), "PATH='%.*s':\"$PATH\" '%s' --frames 4 "
			 "--width 640 --height 480 %s", (int)(name - demo),
			 demo, name + 1, extra);
	else
		snprintf(cmd, sizeof(cmd), "'%s' --frames 4 --width 640 "
			 "--height 480 %s", demo, extra);
	p = popen(cmd, "re");
	VMT_ASSERT(p);
	while (n < size - 1 && fgets(out + n, (int)(size - n), p))
		n += strlen(out + n);
	out[n] = '\0';
	printf("%s", out);
	return WEXITSTATUS(pclose(p));
}

static void demo_default_path(void)
{
	char out[4096];

	VMT_ASSERT_EQ(run_demo("", false, out, sizeof(out)), 0);
	VMT_ASSERT(strstr(out, "4 verified by the consumer, 0 bad"));
	if (access("/dev/vmemexp", F_OK) == 0) {
		VMT_ASSERT(strstr(out, "path: vmemexp: a dma-buf"));
		VMT_ASSERT(strstr(out, "own frame memory: 4/4"));
	} else {
		VMT_ASSERT(strstr(out, "copied into a memfd"));
		VMT_ASSERT(strstr(out, "own frame memory: 0/4"));
	}
}

static void demo_forced_fallback(void)
{
	char out[4096];

	VMT_ASSERT_EQ(run_demo("--no-module", false, out, sizeof(out)), 0);
	VMT_ASSERT(strstr(out, "copied into a memfd"));
	VMT_ASSERT(strstr(out, "own frame memory: 0/4"));
}

/* Started by name from PATH, as vmshare-tools installs it. */
static void demo_from_path(void)
{
	char out[4096];

	VMT_ASSERT_EQ(run_demo("", true, out, sizeof(out)), 0);
	VMT_ASSERT(strstr(out, "4 verified by the consumer, 0 bad"));
}

static const struct vmt_test tests[] = {
	VMT_TEST(demo_default_path),
	VMT_TEST(demo_forced_fallback),
	VMT_TEST(demo_from_path),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
