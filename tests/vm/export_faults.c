/* SPDX-License-Identifier: MIT */
/*
 * Fault injection in the export path: every allocation a system call on
 * /dev/vmemexp or on its dma-buf makes is failed in turn, and each failure
 * must come back as an error with nothing left behind.
 *
 * Only a kernel with CONFIG_FAULT_INJECTION, FAILSLAB and FAIL_PAGE_ALLOC
 * (tests/vm/build-debug-kernel) can do this; elsewhere every test skips.
 *
 * The Nth allocation is chosen with /proc/thread-self/fail-nth rather than
 * with probability, interval and times: fail-nth counts exactly the fault
 * points this thread passes (so only this test's allocations fail), and
 * reading it back tells whether the failure fired at all.  For N = 1, 2, ...
 * the call runs with its Nth allocation failing until N is past its last
 * allocation and the call succeeds untouched.  failslab and fail_page_alloc
 * are set to count GFP_KERNEL allocations (ignore-gfp-wait N) of every
 * order (fail_page_alloc's min-order defaults to 1), to report each failure
 * in one log line (verbose 1: no stack trace, which the log check would
 * take for a kernel complaint) and never to fail anything on their own
 * (probability 0, task-filter Y, and /proc/self/make-it-fail stays 0).
 *
 * After each failed call: a negative return and ENOMEM, no new fd, as many
 * FOLL_PIN pins as before (also after each injected-but-survived call
 * once its fd is closed) and the same pinned_vm (VmPin).  Leaks are left to
 * kmemleak, which vmrun's guest scans at the end of the run, and kernel
 * complaints to its log check.  VMSHARE_FAULTS_VERBOSE=2 makes the kernel
 * log a stack trace per failure, to find out which allocation each N is
 * (the run then fails the log check).
 */
#include <linux/dma-buf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "vmx.h"

#define PAGE 4096ul
#define HUGE (2ul << 20)
/* More fault points than any call here has: a loop that never ends fails. */
#define MAX_N 20000

static const char *const fault_dirs[] = {
	"/sys/kernel/debug/failslab",
	"/sys/kernel/debug/fail_page_alloc",
};

static void write_file(const char *path, const char *value)
{
	FILE *f = fopen(path, "w");

	if (!f)
		vmt_fail(__FILE__, __LINE__, "cannot open %s: %s", path,
			 vmt_errname(errno));
	if (fputs(value, f) < 0 || fclose(f))
		vmt_fail(__FILE__, __LINE__, "cannot write %s to %s: %s",
			 value, path, vmt_errname(errno));
}

static void set_attr(const char *dir, const char *attr, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	write_file(path, value);
}

/* Configures both fault types; returns the open fail-nth file. */
static int faults_setup(void)
{
	const char *verbose = getenv("VMSHARE_FAULTS_VERBOSE");
	int nth;

	if (access(fault_dirs[0], F_OK))
		vmt_skip("%s is missing: not a fault-injection kernel (tests/vm/build-debug-kernel)",
			 fault_dirs[0]);
	for (size_t i = 0; i < sizeof(fault_dirs) / sizeof(fault_dirs[0]); i++) {
		const char *d = fault_dirs[i];

		set_attr(d, "probability", "0");
		set_attr(d, "interval", "1");
		set_attr(d, "times", "-1");
		set_attr(d, "space", "0");
		set_attr(d, "task-filter", "Y");
		set_attr(d, "ignore-gfp-wait", "N");
		set_attr(d, "verbose", verbose ? verbose : "1");
	}
	set_attr(fault_dirs[1], "ignore-gfp-highmem", "N");
	set_attr(fault_dirs[1], "min-order", "0");

	nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (nth < 0 && errno == ENOENT)
		vmt_skip("/proc/thread-self/fail-nth is missing");
	VMT_ASSERT_OK(nth);
	return nth;
}

/*
 * Arms fail-nth for the next system call.  pwrite/pread on an fd already
 * open allocate nothing, so they move no fault point themselves.
 */
static void arm(int nth, int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	VMT_ASSERT_EQ(pwrite(nth, buf, (size_t)len, 0), len);
}

/* Disarms fail-nth; returns whether the failure fired. */
static bool disarm(int nth)
{
	char buf[16] = { 0 };
	bool fired;

	VMT_ASSERT_OK(pread(nth, buf, sizeof(buf) - 1, 0));
	fired = atoi(buf) == 0;
	VMT_ASSERT_EQ(pwrite(nth, "0", 1, 0), 1);
	return fired;
}

/* The pinned_vm this process is charged, in kB (VmPin in /proc/self/status). */
static long vm_pin_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = -1;

	VMT_ASSERT(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	VMT_ASSERT(kb >= 0);
	return kb;
}

struct snapshot {
	int fds;
	long long pins;
	long vm_pin;
};

static struct snapshot snap(void)
{
	return (struct snapshot){ vmt_count_fds(), vmt_pins_outstanding(),
				  vm_pin_kb() };
}

static void expect_unchanged(const struct snapshot *before, const char *what,
			     int n)
{
	struct snapshot now = snap();

	if (now.fds != before->fds || now.pins != before->pins ||
	    now.vm_pin != before->vm_pin)
		vmt_fail(__FILE__, __LINE__,
			 "%s, allocation %d failed: fds %d -> %d, pins %lld -> %lld, VmPin %ld -> %ld kB",
			 what, n, before->fds, now.fds, before->pins, now.pins,
			 before->vm_pin, now.vm_pin);
}

/* Collects "N=a..b ERR" ranges for one summary line per call. */
struct tally {
	char text[512];
	int first, last, err;
	int failed, survived;
};

static void tally_flush(struct tally *t)
{
	size_t len = strlen(t->text);
	char range[32];

	if (!t->first)
		return;
	if (t->first == t->last)
		snprintf(range, sizeof(range), "%d", t->first);
	else
		snprintf(range, sizeof(range), "%d..%d", t->first, t->last);
	snprintf(t->text + len, sizeof(t->text) - len, "%sN=%s %s",
		 len ? ", " : "", range,
		 t->err ? vmt_errname(t->err) : "survived");
	t->first = 0;
}

/* Allocation N failed and the call returned ERR (0: it coped). */
static void tally_add(struct tally *t, int n, int err)
{
	if (err)
		t->failed++;
	else
		t->survived++;
	if (t->first && t->err == err && t->last == n - 1) {
		t->last = n;
		return;
	}
	tally_flush(t);
	t->first = t->last = n;
	t->err = err;
}

static void tally_done(struct tally *t, const char *what, int points)
{
	tally_flush(t);
	vmt_note("%s: %d fault points; %d failed, %d survived (%s)", what,
		 points, t->failed, t->survived, t->text[0] ? t->text : "-");
}

/* Memory to export, made by a layout function; fresh or reused per call. */
struct region {
	uint8_t *base, *addr;
	size_t map_len, len;
};

static void region_free(struct region *r)
{
	if (r->base)
		VMT_ASSERT_OK(munmap(r->base, r->map_len));
	r->base = NULL;
}

/* One page, written, so pinning it allocates nothing. */
static struct region layout_page(void)
{
	struct region r = { .map_len = PAGE, .len = PAGE };

	r.base = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(r.base != MAP_FAILED);
	r.addr = r.base;
	vmt_fill(r.addr, r.len, 0, 1);
	return r;
}

/* One page never written: pinning faults it in (page and page tables). */
static struct region layout_fresh_page(void)
{
	struct region r = { .map_len = 4 * HUGE, .len = PAGE };

	/* In a mapping of its own, so even its page tables are new. */
	r.base = mmap(NULL, r.map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	VMT_ASSERT(r.base != MAP_FAILED);
	VMT_ASSERT_OK(madvise(r.base, r.map_len, MADV_NOHUGEPAGE));
	r.addr = r.base + HUGE;
	return r;
}

/*
 * Two transparent huge pages around 2 MiB of 4 KiB pages written in an
 * interleaved order, so the buffer has many physically contiguous runs of
 * both kinds and the run array grows several times.
 */
static struct region layout_mixed(void)
{
	struct region r = { .map_len = 5 * HUGE, .len = 3 * HUGE };
	uint8_t *p;

	r.base = mmap(NULL, r.map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(r.base != MAP_FAILED);
	p = (uint8_t *)(((uintptr_t)r.base + HUGE - 1) & ~(HUGE - 1));
	r.addr = p;
	VMT_ASSERT_OK(madvise(p, HUGE, MADV_HUGEPAGE));
	VMT_ASSERT_OK(madvise(p + HUGE, HUGE, MADV_NOHUGEPAGE));
	VMT_ASSERT_OK(madvise(p + 2 * HUGE, HUGE, MADV_HUGEPAGE));
	for (size_t off = 0; off < HUGE; off += 2 * PAGE)
		p[HUGE + off] = 1;
	for (size_t off = PAGE; off < HUGE; off += 2 * PAGE)
		p[HUGE + off] = 1;
	vmt_fill(p, r.len, 0, 2);
	return r;
}

/* More pages than one pinning batch (512 page pointers) holds. */
static struct region layout_batches(void)
{
	struct region r = { .map_len = 1100 * PAGE, .len = 1100 * PAGE - 200 };

	r.base = mmap(NULL, r.map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(r.base != MAP_FAILED);
	VMT_ASSERT_OK(madvise(r.base, r.map_len, MADV_NOHUGEPAGE));
	r.addr = r.base + 100;
	vmt_fill(r.base, r.map_len, 0, 3);
	return r;
}

/*
 * The dma-buf must show what the exporter writes now: an export that
 * survived an injected failure has pinned the exporter's very pages (not,
 * say, the zero page after a failed fault-in).
 */
static void check_coherent(const struct region *r,
			   const struct vmemexp_export *e, const char *what,
			   int n)
{
	uint8_t *map = mmap(NULL, e->size, PROT_READ, MAP_SHARED, e->fd, 0);
	long bad;

	VMT_ASSERT(map != MAP_FAILED);
	vmt_fill(r->addr, r->len, 0, 7);
	bad = vmt_check(map + e->offset, r->len, 0, 7);
	if (bad >= 0)
		vmt_fail(__FILE__, __LINE__,
			 "%s survived allocation %d failing, but the dma-buf does not see the exporter's write at offset %ld",
			 what, n, bad);
	VMT_ASSERT_OK(munmap(map, e->size));
}

/*
 * Exports the region made by LAYOUT with its Nth allocation failing, for
 * every N; FRESH makes new memory for every call.
 */
static void export_with_faults(const char *what, struct region (*layout)(void),
			       bool fresh, uint32_t flags)
{
	int dev = vmx_open(), nth = faults_setup(), n;
	struct region r = layout();
	struct tally t = { 0 };

	for (n = 1; n <= MAX_N; n++) {
		struct snapshot before = snap();
		struct vmemexp_export e;
		bool fired;
		int ret, err;

		arm(nth, n);
		ret = vmx_export(dev, r.addr, r.len, flags, &e);
		err = errno;
		fired = disarm(nth);
		if (ret < 0) {
			if (!fired)
				vmt_fail(__FILE__, __LINE__,
					 "%s failed with %s and no failure injected",
					 what, vmt_errname(err));
			if (err != ENOMEM)
				vmt_fail(__FILE__, __LINE__,
					 "%s, allocation %d failed: %s, not ENOMEM",
					 what, n, vmt_errname(err));
			expect_unchanged(&before, what, n);
			tally_add(&t, n, err);
		} else {
			VMT_ASSERT(e.fd >= 0);
			check_coherent(&r, &e, what, n);
			VMT_ASSERT_OK(close(e.fd));
			expect_unchanged(&before, what, n);
			if (!fired)
				break;
			tally_add(&t, n, 0);
		}
		if (fresh) {
			region_free(&r);
			r = layout();
		}
	}
	VMT_ASSERT(n <= MAX_N);
	tally_done(&t, what, n - 1);
	region_free(&r);
	close(nth);
	close(dev);
}

/* Tracking adds an interval notifier and a status page slot. */
static void export_tracked(void)
{
	export_with_faults("tracked export of 1100 pages", layout_batches,
			   false, VMEMEXP_EXPORT_TRACK);
}

static void export_page(void)
{
	export_with_faults("export of 1 page", layout_page, false, 0);
}

static void export_fresh_page(void)
{
	export_with_faults("export of 1 never-written page", layout_fresh_page,
			   true, 0);
}

static void export_fresh_page_rdonly(void)
{
	export_with_faults("read-only export of 1 never-written page",
			   layout_fresh_page, true, VMEMEXP_EXPORT_RDONLY);
}

static void export_mixed(void)
{
	export_with_faults("export of 6 MiB, THP and 4 KiB runs", layout_mixed,
			   false, VMEMEXP_EXPORT_CLOEXEC);
}

static void export_batches(void)
{
	export_with_faults("export of 1100 pages", layout_batches, false, 0);
}

/* A dma-buf of the 1100-page layout, and what is needed to check on it. */
struct exported {
	struct region r;
	struct vmemexp_export e;
	int dev, nth;
};

static struct exported export_plain(void)
{
	struct exported x = { .dev = vmx_open(), .nth = faults_setup() };

	x.r = layout_batches();
	vmx_export_ok(x.dev, x.r.addr, x.r.len, 0, &x.e);
	return x;
}

static void exported_done(struct exported *x)
{
	if (x->e.fd >= 0)
		VMT_ASSERT_OK(close(x->e.fd));
	region_free(&x->r);
	close(x->nth);
	close(x->dev);
}

/*
 * Calls @attempt with each of its allocations failing in turn: a failure
 * must be ENOMEM and leave fds, pins and VmPin as they were; a success is
 * checked and undone by @undo, after which the same holds.  @attempt
 * returns 0, or -1 with errno set.
 */
static void with_faults(const char *what, int nth, int (*attempt)(void),
			void (*undo)(void))
{
	struct tally t = { 0 };
	int n;

	for (n = 1; n <= MAX_N; n++) {
		struct snapshot before = snap();
		bool fired;
		int ret, err;

		arm(nth, n);
		ret = attempt();
		err = errno;
		fired = disarm(nth);
		if (ret < 0) {
			VMT_ASSERT(fired);
			if (err != ENOMEM)
				vmt_fail(__FILE__, __LINE__,
					 "%s, allocation %d failed: %s, not ENOMEM",
					 what, n, vmt_errname(err));
			expect_unchanged(&before, what, n);
			tally_add(&t, n, err);
			continue;
		}
		undo();
		expect_unchanged(&before, what, n);
		if (!fired)
			break;
		tally_add(&t, n, 0);
	}
	VMT_ASSERT(n <= MAX_N);
	tally_done(&t, what, n - 1);
}

/* The mapping with_faults() attempts, and what a good one must show. */
static struct {
	int fd, prot;
	size_t len;
	void (*check)(const uint8_t *map);
	uint8_t *map;
} mapping;

static int try_map(void)
{
	mapping.map = mmap(NULL, mapping.len, mapping.prot, MAP_SHARED,
			   mapping.fd, 0);
	return mapping.map == MAP_FAILED ? -1 : 0;
}

static void undo_map(void)
{
	mapping.check(mapping.map);
	VMT_ASSERT_OK(munmap(mapping.map, mapping.len));
}

/* What export_plain() exported, as a mapping of its dma-buf shows it. */
static struct exported plain;

static void check_plain(const uint8_t *map)
{
	VMT_ASSERT_EQ(vmt_check(map + plain.e.offset, plain.r.len, 100, 3), -1);
}

static void mmap_with_faults(void)
{
	plain = export_plain();
	mapping.fd = plain.e.fd;
	mapping.len = plain.e.size;
	mapping.prot = PROT_READ | PROT_WRITE;
	mapping.check = check_plain;
	with_faults("mmap of the dma-buf", plain.nth, try_map, undo_map);
	exported_done(&plain);
}

static void sync_with_faults(void)
{
	struct exported x = export_plain();
	struct tally t = { 0 };
	int n;

	for (n = 1; n <= MAX_N; n++) {
		struct dma_buf_sync s = {
			.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
		};
		bool fired;
		int ret, err;

		arm(x.nth, n);
		ret = ioctl(x.e.fd, DMA_BUF_IOCTL_SYNC, &s);
		err = errno;
		fired = disarm(x.nth);
		if (ret == 0) {
			s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
			VMT_ASSERT_OK(ioctl(x.e.fd, DMA_BUF_IOCTL_SYNC, &s));
		} else {
			VMT_ASSERT(fired);
			if (err != ENOMEM)
				vmt_fail(__FILE__, __LINE__,
					 "DMA_BUF_IOCTL_SYNC, allocation %d failed: %s",
					 n, vmt_errname(err));
		}
		if (!fired)
			break;
		tally_add(&t, n, ret ? err : 0);
	}
	VMT_ASSERT(n <= MAX_N);
	tally_done(&t, "DMA_BUF_IOCTL_SYNC", n - 1);
	exported_done(&x);
}

static int opened = -1;

static int try_open(void)
{
	opened = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);
	return opened < 0 ? -1 : 0;
}

static void undo_open(void)
{
	VMT_ASSERT_OK(close(opened));
}

/*
 * Opening /dev/vmemexp allocates the file's status page: a failure there
 * is ENOMEM with nothing left open.
 */
static void open_with_faults(void)
{
	int nth = faults_setup();

	with_faults("open of /dev/vmemexp", nth, try_open, undo_open);
	close(nth);
}

/* No tracked export through the file yet: every word reads 0. */
static void check_status_page(const uint8_t *map)
{
	VMT_ASSERT_EQ(((const volatile uint32_t *)map)[0], 0);
}

/* Mapping the status page: ENOMEM or a mapping that reads the page. */
static void status_map_with_faults(void)
{
	int dev = vmx_open(), nth = faults_setup();

	mapping.fd = dev;
	mapping.len = 4096;
	mapping.prot = PROT_READ;
	mapping.check = check_status_page;
	with_faults("mmap of the status page", nth, try_map, undo_map);
	close(nth);
	close(dev);
}

/* The last close runs the dma-buf's release, which must unpin regardless. */
static void close_with_faults(void)
{
	struct tally t = { 0 };
	int n;

	for (n = 1; n <= MAX_N; n++) {
		struct snapshot before = snap();
		struct exported x = export_plain();
		bool fired;

		arm(x.nth, n);
		VMT_ASSERT_OK(close(x.e.fd));
		fired = disarm(x.nth);
		x.e.fd = -1;
		exported_done(&x);
		expect_unchanged(&before, "close", n);
		if (!fired)
			break;
		tally_add(&t, n, 0);
	}
	VMT_ASSERT(n <= MAX_N);
	tally_done(&t, "close of the last dma-buf fd", n - 1);
}

int main(int argc, char **argv)
{
	static const struct vmt_test tests[] = {
		VMT_TEST(export_page),
		VMT_TEST(export_fresh_page),
		VMT_TEST(export_fresh_page_rdonly),
		VMT_TEST(export_mixed),
		VMT_TEST(export_batches),
		VMT_TEST(export_tracked),
		VMT_TEST(open_with_faults),
		VMT_TEST(status_map_with_faults),
		VMT_TEST(mmap_with_faults),
		VMT_TEST(sync_with_faults),
		VMT_TEST(close_with_faults),
	};

	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
