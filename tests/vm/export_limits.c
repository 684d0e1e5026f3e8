/* SPDX-License-Identifier: MIT */
/*
 * Limits an exporter cannot escape (issue 18, findings 3 and 5).
 *
 * RLIMIT_MEMLOCK is charged to the user, so it holds for a user without
 * CAP_IPC_LOCK across execve(), across children that export and pass their
 * fds on, and across many processes at once; each case runs as a user of
 * its own.  The largest export an administrator allows succeeds even
 * when every page is a run of its own, without a warning from the page
 * allocator.  And pinned pages never stay in ZONE_MOVABLE
 * (pinned_pages_leave_zone_movable, in a guest booted with movablecore=).
 */
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul
#define LIMIT_PAGES 64

/* This process becomes @uid, without capabilities, locking @pages at most. */
static void become_user(uid_t uid, unsigned long pages)
{
	struct rlimit lim = { pages * PAGE, pages * PAGE };

	VMT_ASSERT_OK(setrlimit(RLIMIT_MEMLOCK, &lim));
	VMT_ASSERT_OK(setgroups(0, NULL));
	VMT_ASSERT_OK(setresgid(uid, uid, uid));
	VMT_ASSERT_OK(setresuid(uid, uid, uid));
}

static char *fresh_memory(unsigned long pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 3, pages * PAGE);
	return p;
}

/* Exports @pages fresh pages through @dev: the fd, or -errno. */
static int export_pages(int dev, unsigned long pages, uint32_t flags)
{
	struct vmemexp_export e;
	char *p = fresh_memory(pages);
	int ret = vmx_export(dev, p, pages * PAGE, flags, &e) ? -errno : e.fd;

	munmap(p, pages * PAGE);
	return ret;
}

/*
 * The peer after execve(): a new mm, but the same user, who still holds
 * 48 pages through the inherited dma-buf.
 */
static int after_exec(int dev)
{
	int fd, ret;

	ret = export_pages(dev, 48, VMEMEXP_EXPORT_CLOEXEC);
	if (ret != -ENOMEM) {
		printf("# 48 more pages after exec: %s, not ENOMEM\n",
		       ret < 0 ? vmt_errname(-ret) : "exported");
		return 1;
	}
	fd = export_pages(dev, LIMIT_PAGES - 48, VMEMEXP_EXPORT_CLOEXEC);
	if (fd < 0) {
		printf("# the rest of the limit: %s\n", vmt_errname(-fd));
		return 1;
	}
	close(fd);
	return 0;
}

static int peer(const char *role, int fd)
{
	if (!strcmp(role, "after-exec"))
		return after_exec(fd);
	return 2;
}

/* Export without CLOEXEC, then execve(): the charge must follow the user. */
static void memlock_across_exec(void)
{
	int dev = vmx_open(), kept, fd;
	char arg[16];

	become_user(40001, LIMIT_PAGES);
	fd = export_pages(dev, 48, 0);
	VMT_ASSERT_OK(fd);
	kept = fcntl(dev, F_DUPFD, 0);
	VMT_ASSERT_OK(kept);
	snprintf(arg, sizeof(arg), "%d", kept);
	fflush(stdout);
	execl("/proc/self/exe", "export_limits", "--peer", "after-exec", arg,
	      (char *)NULL);
	vmt_fail(__FILE__, __LINE__, "execl: %s", vmt_errname(errno));
}

/*
 * A child exports @pages and sends the fd over @sock; its exit status is
 * 0 on success, else the errno.
 */
static pid_t export_in_child(int dev, int sock, unsigned long pages)
{
	pid_t pid = fork();
	int fd;

	VMT_ASSERT_OK(pid);
	if (pid)
		return pid;
	fd = export_pages(dev, pages, VMEMEXP_EXPORT_CLOEXEC);
	if (fd < 0)
		_exit(-fd);
	_exit(vmt_send_fd(sock, fd, "x", 1) ? 100 : 0);
}

/* Children export, pass their fds up and exit: the user still holds them. */
static void memlock_fork_and_pass(void)
{
	int dev = vmx_open(), sv[2], first;
	char byte;

	VMT_ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	become_user(40002, LIMIT_PAGES);

	VMT_ASSERT_EQ(vmt_wait(export_in_child(dev, sv[1], 48)), 0);
	first = vmt_recv_fd(sv[0], &byte, 1);
	VMT_ASSERT_OK(first);
	VMT_ASSERT_EQ(vmt_wait(export_in_child(dev, sv[1], 48)), ENOMEM);
	/* Closing the passed fd returns its pages to the user. */
	close(first);
	VMT_ASSERT_EQ(vmt_wait(export_in_child(dev, sv[1], 48)), 0);
	close(vmt_recv_fd(sv[0], &byte, 1));
	close(sv[0]);
	close(sv[1]);
	close(dev);
}

/* Many processes at once: together they get the limit, no more. */
static void memlock_many_processes(void)
{
	enum { CHILDREN = 8, EACH = LIMIT_PAGES / 4 };
	int dev = vmx_open(), sv[2], exported = 0, refused = 0, status, i;
	pid_t pids[CHILDREN];
	char byte;

	VMT_ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	become_user(40003, LIMIT_PAGES);
	for (i = 0; i < CHILDREN; i++)
		pids[i] = export_in_child(dev, sv[1], EACH);
	for (i = 0; i < CHILDREN; i++) {
		status = vmt_wait(pids[i]);
		if (status == 0)
			exported++;
		else if (status == ENOMEM)
			refused++;
		else
			vmt_fail(__FILE__, __LINE__, "child: status %d", status);
	}
	VMT_ASSERT_EQ(exported, LIMIT_PAGES / EACH);
	VMT_ASSERT_EQ(refused, CHILDREN - LIMIT_PAGES / EACH);
	for (i = 0; i < exported; i++)
		close(vmt_recv_fd(sv[0], &byte, 1));
	close(sv[0]);
	close(sv[1]);
	close(dev);
}

/*
 * 1 GiB and 4 MiB of 4 KiB pages touched in a random order, so that no two
 * neighbours are physically adjacent: more runs than a 4 MiB array holds,
 * which a kmalloc()ed array could only get with a warning (order 11).
 */
static void fragmented_largest_export(void)
{
	size_t len = (1ul << 30) + (4ul << 20), pages = len / PAGE, i, j;
	uint32_t *order = malloc(pages * sizeof(*order)), t, seed = 1;
	struct vmemexp_export e;
	int dev = vmx_open();
	char *p;

	VMT_ASSERT(order);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	VMT_ASSERT(p != MAP_FAILED);
	VMT_ASSERT_OK(madvise(p, len, MADV_NOHUGEPAGE));
	for (i = 0; i < pages; i++)
		order[i] = (uint32_t)i;
	for (i = pages - 1; i > 0; i--) {
		seed = seed * 1103515245u + 12345u;
		j = seed % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < pages; i++)
		p[(size_t)order[i] * PAGE] = 1;
	free(order);

	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", "2147483648"));
	vmx_export_ok(dev, p, len, VMEMEXP_EXPORT_CLOEXEC, &e);
	vmt_note("%zu pages in %u runs", pages, e.nr_segments);
	VMT_ASSERT(e.nr_segments > (4u << 20) / 16);
	close(e.fd);
	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", "1073741824"));
	munmap(p, len);
	close(dev);
}

/* The first page frame of ZONE_MOVABLE, from /proc/zoneinfo; 0 without. */
static uint64_t movable_start_pfn(void)
{
	FILE *f = fopen("/proc/zoneinfo", "r");
	char line[256];
	bool movable = false;
	uint64_t pfn = 0;

	VMT_ASSERT(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Node", 4))
			movable = strstr(line, "zone  Movable") != NULL;
		else if (movable && sscanf(line, " start_pfn: %" SCNu64, &pfn) == 1)
			break;
	}
	fclose(f);
	return movable ? pfn : 0;
}

/* How many of @pages at @p are backed by frames at or above @pfn. */
static unsigned long pages_above(const char *p, unsigned long pages,
				 uint64_t pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	unsigned long n = 0;
	uint64_t entry;

	VMT_ASSERT_OK(fd);
	for (unsigned long i = 0; i < pages; i++) {
		off_t at = (off_t)(((uintptr_t)p / PAGE + i) * sizeof(entry));

		VMT_ASSERT_EQ(pread(fd, &entry, sizeof(entry), at),
			      (ssize_t)sizeof(entry));
		VMT_ASSERT(entry >> 63);	/* present */
		n += (entry & ((1ull << 55) - 1)) >= pfn;
	}
	close(fd);
	return n;
}

/*
 * FOLL_LONGTERM migrates pages out of ZONE_MOVABLE before pinning them, so
 * a long-lived export never blocks hot-unplug or compaction there; the
 * exporter's page tables then show the new frames.
 */
static void pinned_pages_leave_zone_movable(void)
{
	unsigned long pages = 16384, before, after;
	uint64_t movable = movable_start_pfn();
	struct vmemexp_export e;
	int dev = vmx_open();
	char *p;

	if (!movable)
		vmt_skip("no ZONE_MOVABLE (boot with movablecore=)");
	p = fresh_memory(pages);
	before = pages_above(p, pages, movable);
	vmt_note("%lu of %lu pages in ZONE_MOVABLE before the export", before,
		 pages);
	if (!before)
		vmt_skip("the memory did not come from ZONE_MOVABLE");
	vmx_export_ok(dev, p, pages * PAGE, VMEMEXP_EXPORT_CLOEXEC, &e);
	after = pages_above(p, pages, movable);
	vmt_note("%lu after", after);
	VMT_ASSERT_EQ(after, 0);
	close(e.fd);
	munmap(p, pages * PAGE);
	close(dev);
}

static const struct vmt_test tests[] = {
	VMT_TEST(memlock_across_exec),
	VMT_TEST(memlock_fork_and_pass),
	VMT_TEST(memlock_many_processes),
	VMT_TEST(fragmented_largest_export),
	VMT_TEST(pinned_pages_leave_zone_movable),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			peer);
}
