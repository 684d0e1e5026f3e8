/* SPDX-License-Identifier: MIT */
/*
 * vmemexp-fuzz: random and mutated VMEMEXP_IOC_EXPORT (and _STATUS) calls
 * over a memory layout that several threads keep changing, raced against
 * mmap of the dma-bufs, DMA_BUF_IOCTL_SYNC, close and fork.
 *
 *   vmemexp-fuzz [--seed N] [--ops N] [--long] [--threads T] [--user UID]
 *                [--verbose]
 *
 * VMSHARE_FUZZ_SEED and VMSHARE_FUZZ_OPS set the defaults of --seed and
 * --ops (the seed is otherwise random; --long is 1000000 operations).
 *
 * Every result is checked against the errnos docs/module.md documents for
 * the class of input (an export of a range no thread touches is predicted
 * exactly); at the end, with every fd closed, the FOLL_PIN counters must be
 * back where they were and no fd may be left over.  Any failure prints the
 * seed, thread and operation index.  Each thread draws from its own stream
 * of the seed, so --threads 1 replays a run operation by operation; with
 * more threads the operations are the same but their interleaving is not.
 *
 * --user UID runs the operations as that user, with no capabilities, as a
 * user at the seat would (the device is opened first, as logind or a portal
 * would hand it over); the pin counters are checked by the root parent.
 *
 * Exit status: 0 passed, 1 failed, 77 when /dev/vmemexp is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/dma-buf.h>
#include <linux/vmemexp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmtest.h"

/* 64-bit even on 32-bit machines: ~(PAGE - 1) must not clear bits 32-63. */
#define PAGE ((uint64_t)4096)
#define HUGE_PAGE ((uint64_t)2 << 20)
/* The arena every thread reshapes; 2 MiB aligned so THP can appear. */
#define ARENA_PAGES 1024ul
#define ARENA_SIZE (ARENA_PAGES * PAGE)
/* Each thread's own stretch, whose layout only it changes. */
#define PRIV_PAGES 32ul
#define PRIV_SIZE (PRIV_PAGES * PAGE)
/* Each thread's reservation for mapping dma-bufs it touches. */
#define WINDOWS 4
#define WINDOW_SIZE (256 * PAGE)
/*
 * Each thread's reservation for its transient mappings (a private export's
 * pages, a struct on a page of its own, the status page): mmap(NULL) could
 * put them into a hole of another thread's stretch, whose export would
 * then see memory its prediction does not know (seen on 32-bit ARM, whose
 * smaller address space is reused sooner).
 */
#define SCRATCH_SIZE (PRIV_SIZE + 4 * PAGE)
#define SLOTS 96
#define MAX_THREADS 16
#define MAX_VMAS 256
#define MAX_FAILURES 10
/* Under the 1024-fd default, with room for every thread's transient fds. */
#define MEMLOCK_LIMIT (64ul << 20)
/*
 * Where mmap() places nothing unless asked to go higher: x86-64's 4-level
 * window (5-level paging reaches 2^56 for mappings asked there), arm64's
 * 48-bit one (52-bit likewise).  Elsewhere the top of the address space.
 */
#if defined(__x86_64__)
#define MAP_WINDOW_TOP 0x7ffffffff000ull
#elif defined(__aarch64__)
#define MAP_WINDOW_TOP (1ull << 48)
#else
#define MAP_WINDOW_TOP UINT64_MAX
#endif

#ifdef VMEMEXP_EXPORT_TRACK
#define TRACK VMEMEXP_EXPORT_TRACK
#else
#define TRACK 0u
#endif

/* Errno sets as bitmasks; bit 0 stands for success. */
#define R_OK_ (1u << 0)
#define R_EINVAL (1u << 1)
#define R_EFAULT (1u << 2)
#define R_EACCES (1u << 3)
#define R_EPERM (1u << 4)
#define R_ENOMEM (1u << 5)
#define R_E2BIG (1u << 6)
#define R_ENOTTY (1u << 7)
#define R_EBADF (1u << 8)
#define R_EOPNOTSUPP (1u << 9)
#define R_USER (R_OK_ | R_EFAULT | R_EACCES | R_EPERM | R_ENOMEM)

enum op {
	OP_EXPORT_MUTATED,
	OP_EXPORT_ARENA,
	OP_EXPORT_PRIVATE,
	OP_EXPORT_VMA,
	OP_EXPORT_BAD_POINTER,
	OP_BAD_COMMAND,
	OP_LAYOUT_ARENA,
	OP_LAYOUT_PRIVATE,
	OP_TOUCH_ARENA,
	OP_MAP_DMABUF,
	OP_SYNC,
	OP_DMABUF_BAD_IOCTL,
	OP_CLOSE,
	OP_UNMAP_WINDOW,
	OP_STATUS,
	OP_FORK,
	NR_OPS
};

static const char *const op_names[NR_OPS] = {
	"export_mutated", "export_arena", "export_private", "export_vma",
	"export_bad_pointer", "bad_command", "layout_arena", "layout_private",
	"touch_arena", "map_dmabuf", "sync", "dmabuf_bad_ioctl", "close",
	"unmap_window", "status", "fork",
};

/* Relative frequencies; fork is scheduled separately (it is slow). */
static const unsigned int op_weights[NR_OPS] = {
	[OP_EXPORT_MUTATED] = 20, [OP_EXPORT_ARENA] = 14,
	[OP_EXPORT_PRIVATE] = 12, [OP_EXPORT_VMA] = 3,
	[OP_EXPORT_BAD_POINTER] = 3, [OP_BAD_COMMAND] = 2,
	[OP_LAYOUT_ARENA] = 12, [OP_LAYOUT_PRIVATE] = 8,
	[OP_TOUCH_ARENA] = 5, [OP_MAP_DMABUF] = 10, [OP_SYNC] = 6,
	[OP_DMABUF_BAD_IOCTL] = 1, [OP_CLOSE] = 6, [OP_UNMAP_WINDOW] = 3,
	[OP_STATUS] = 4,
};

/* What a page of a private stretch currently is. */
enum page_kind {
	PK_HOLE,
	PK_ANON_RW,
	PK_ANON_RO,
	PK_ANON_WO,
	PK_NONE,
	PK_MEMFD_SHARED_RW,
	PK_MEMFD_SHARED_RO,
	PK_MEMFD_PRIVATE_RW,
	PK_DMABUF,
	NR_PAGE_KINDS
};

struct slot {
	int fd;
	uint64_t size;
	bool rdonly;
	/*
	 * Its pages are arena pages: writing through it harms nothing (the
	 * fuzzer's own heap and stacks, and each thread's private pages,
	 * whose contents are checked, are never written through a dma-buf).
	 */
	bool scratch;
	/* Exported with VMEMEXP_EXPORT_TRACK. */
	bool track;
};

struct vma {
	uint64_t start, end;
};

struct thread {
	int index;
	pthread_t tid;
	uint64_t rng;
	uint64_t op_index;
	uint64_t nr_ops;
	uint8_t *priv;
	uint8_t kinds[PRIV_PAGES];
	/* The operation whose pattern each private page was last filled
	 * with (0: none), to name what a wrong page holds. */
	uint64_t filled_by[PRIV_PAGES];
	int priv_memfd;
	uint8_t *windows;
	uint8_t *scratch;
	bool window_used[WINDOWS];
};

struct counter {
	atomic_ulong by_result[16];
	/* Runs and time spent, all threads: where a run goes. */
	atomic_ulong runs;
	atomic_ulong ns;
};

static struct {
	uint64_t seed;
	uint64_t ops;
	int threads;
	long user;	/* --user, or -1 */
	bool verbose;
	int dev;
	uint8_t *arena;
	int arena_memfd;
	uint8_t *huge;
	size_t huge_size;
	uint64_t max_export;
	uint64_t user_top;	/* the end of the user address space */
	uint64_t mapped_top;	/* above it nothing is mapped */
	struct vma vmas[MAX_VMAS];
	int nr_vmas;
	atomic_bool stop;
	atomic_int failures;
	atomic_ulong ops_done;
	struct counter counters[NR_OPS];
} g;

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * No thread starts its operations before every thread exists: until then
 * the main thread and pthread_create() place mappings with mmap(NULL),
 * which would land in the holes the first threads punch into the arena
 * (seed 744825938872: thread 3's scratch reservation in the arena, its
 * mapping of a private export replaced by another thread's layout_arena).
 */
static pthread_barrier_t start_barrier;
static struct slot slots[SLOTS];
/* Only one thread forks at a time: two overlapping forks are just slower. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local struct thread *self;
/*
 * Read by on_fault(), which the compiler does not see called: volatile,
 * or an optimizing build drops touch()'s store to it as dead (the store
 * of NULL follows) and a guarded fault kills the fuzzer.
 */
static _Thread_local sigjmp_buf *volatile guard_jmp;

static const int result_errnos[] = {
	0, EINVAL, EFAULT, EACCES, EPERM, ENOMEM, E2BIG, ENOTTY, EBADF,
	EOPNOTSUPP,
};
#define NR_RESULTS (int)(sizeof(result_errnos) / sizeof(result_errnos[0]))

static int result_bit(int err)
{
	for (int i = 0; i < NR_RESULTS; i++)
		if (result_errnos[i] == err)
			return i;
	return -1;
}

static void count(enum op op, int err)
{
	int bit = result_bit(err);

	atomic_fetch_add(&g.counters[op].by_result[bit < 0 ? 15 : bit], 1);
}

static uint64_t rnd(void)
{
	/* splitmix64: tiny, full period, good enough to steer a fuzzer */
	uint64_t z = (self->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned int one_in)
{
	return below(one_in) == 0;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_fetch_add(&g.failures, 1) < MAX_FAILURES)
		printf("# FAIL seed=%" PRIu64 " thread=%d op=%" PRIu64 ": %s\n",
		       g.seed, self ? self->index : -1,
		       self ? self->op_index : 0, msg);
	g.stop = true;
}

static const char *set_string(unsigned int set, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < NR_RESULTS; i++)
		if (set & (1u << i))
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? "|" : "",
					      vmt_errname(result_errnos[i]));
	return buf;
}

/* Checks a result against the allowed set; returns true when allowed. */
static bool check_result(enum op op, int err, unsigned int allowed,
			 const char *what)
{
	int bit = result_bit(err);
	char buf[128];

	count(op, err);
	if (bit >= 0 && (allowed & (1u << bit)))
		return true;
	fail("%s: %s gave %s, expected %s", op_names[op], what,
	     vmt_errname(err), set_string(allowed, buf, sizeof(buf)));
	return false;
}

/* SIGSEGV/SIGBUS while a guard is armed jump back to it. */
static void on_fault(int sig)
{
	if (guard_jmp)
		siglongjmp(*guard_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Touches every page of [p, p + len): reads, and writes when asked.  Pages
 * another thread has just unmapped or protected fault; returns false then.
 */
static bool touch(volatile uint8_t *p, size_t len, bool write, uint8_t v)
{
	sigjmp_buf jmp;
	bool done = false;

	if (sigsetjmp(jmp, 1) == 0) {
		guard_jmp = &jmp;
		for (size_t i = 0; i < len; i += PAGE) {
			if (write)
				p[i] = v;
			else
				(void)p[i];
		}
		done = true;
	}
	guard_jmp = NULL;
	return done;
}

static int export(const struct vmemexp_export *in, struct vmemexp_export *out)
{
	if (out != in)
		*out = *in;
	return ioctl(g.dev, VMEMEXP_IOC_EXPORT, out) ? errno : 0;
}

/* Takes a random stored fd (or -1); the caller owns it until put_slot(). */
static struct slot take_slot(void)
{
	int i = (int)below(SLOTS);
	struct slot s;

	pthread_mutex_lock(&slots_lock);
	s = slots[i];
	slots[i].fd = -1;
	pthread_mutex_unlock(&slots_lock);
	return s;
}

static void put_slot(struct slot s)
{
	int i = (int)below(SLOTS);
	struct slot old;

	pthread_mutex_lock(&slots_lock);
	old = slots[i];
	slots[i] = s;
	pthread_mutex_unlock(&slots_lock);
	if (old.fd >= 0)
		close(old.fd);
}

static uint64_t round_up_page(uint64_t v)
{
	return (v + PAGE - 1) & ~(PAGE - 1);
}

/* A tracked export may have a status page slot, an untracked one none. */
static bool slot_ok(const struct vmemexp_export *in,
		    const struct vmemexp_export *out)
{
	if (!(in->flags & VMEMEXP_EXPORT_TRACK))
		return out->status_slot == VMEMEXP_STATUS_NO_SLOT;
	return out->status_slot == VMEMEXP_STATUS_NO_SLOT ||
	       out->status_slot < PAGE / sizeof(uint32_t);
}

/* Checks the output fields of a successful export of e_in. */
static void check_output(enum op op, const struct vmemexp_export *in,
			 const struct vmemexp_export *out)
{
	uint64_t start = in->addr & ~(PAGE - 1);
	uint64_t size = round_up_page(in->addr + in->len) - start;
	int fl, fdfl;

	if (out->fd < 0 || out->offset != in->addr - start ||
	    out->size != size || out->nr_segments < 1 ||
	    out->nr_segments > size / PAGE || !slot_ok(in, out) ||
	    out->reserved[0] ||
	    out->reserved[1] || out->addr != in->addr || out->len != in->len ||
	    out->flags != in->flags) {
		fail("%s: export of %#" PRIx64 "+%#" PRIx64
		     " gave fd %d offset %#" PRIx64 " size %#" PRIx64
		     " segments %u", op_names[op], (uint64_t)in->addr,
		     (uint64_t)in->len, out->fd, (uint64_t)out->offset,
		     (uint64_t)out->size, out->nr_segments);
		return;
	}
	fl = fcntl(out->fd, F_GETFL);
	fdfl = fcntl(out->fd, F_GETFD);
	if ((fl & O_ACCMODE) !=
	    (in->flags & VMEMEXP_EXPORT_RDONLY ? O_RDONLY : O_RDWR) ||
	    !(fdfl & FD_CLOEXEC) != !(in->flags & VMEMEXP_EXPORT_CLOEXEC))
		fail("%s: dma-buf file flags %#x, fd flags %#x for export "
		     "flags %#x",
		     op_names[op], fl, fdfl, in->flags);
}

/* Keeps a successful export's fd for the other operations, or closes it. */
static void keep(const struct vmemexp_export *out, bool scratch)
{
	struct slot s = {
		.fd = out->fd,
		.size = out->size,
		.rdonly = out->flags & VMEMEXP_EXPORT_RDONLY,
		.scratch = scratch,
		.track = out->flags & TRACK,
	};

	if (chance(4))
		close(out->fd);
	else
		put_slot(s);
}

/*
 * The address the kernel looks at: arm64 ignores the top byte of a user
 * pointer (untagged_addr() sign-extends bit 55, for every process).
 */
static uint64_t untag(uint64_t addr)
{
#if defined(__aarch64__)
	return (uint64_t)((int64_t)(addr << 8) >> 8);
#else
	return addr;
#endif
}

/* The errnos docs/module.md gives for an export with these field values. */
static unsigned int expected_for(const struct vmemexp_export *e)
{
	unsigned int set = 0;
	uint64_t addr, start, end, size;

	if (e->flags & ~(uint32_t)VMEMEXP_EXPORT_VALID_FLAGS || e->fd ||
	    e->offset || e->size || e->nr_segments || e->status_slot ||
	    e->reserved[0] || e->reserved[1] || !e->len)
		set |= R_EINVAL;
	if (e->addr + e->len < e->addr ||
	    e->addr + e->len > UINT64_MAX - PAGE + 1) {
		/* Nothing else can be said about a range that wraps. */
		return set | R_EINVAL;
	}
	/* Partial pages are refused before anything else is looked at. */
	if (!(e->flags & VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES) &&
	    ((e->addr | (e->addr + e->len)) & (PAGE - 1)))
		return set | R_EINVAL;
	/* Modulo 2^64, as the kernel computes it: an untagged range can wrap. */
	addr = untag(e->addr);
	start = addr & ~(PAGE - 1);
	end = round_up_page(addr + e->len);
	size = end - start;
	if (e->len && size > g.max_export)
		set |= R_E2BIG;
	if (end < start || end > g.user_top) {
		set |= R_EFAULT;
	} else if (end > g.mapped_top) {
		/*
		 * Nothing is mapped there, but the range passes access_ok()
		 * and is charged before it is found empty.
		 */
		set |= R_EFAULT | R_ENOMEM;
	} else if (!set) {
		set = R_USER;
	}
	if (end >= start && end <= g.user_top && size > MEMLOCK_LIMIT)
		set |= R_ENOMEM;
#ifdef VMEMEXP_EXPORT_PFNMAP
	/*
	 * The fuzzer never maps a declared carve-out, so a PFNMAP export can
	 * only be refused: by capability or carve-out (EPERM), or because the
	 * range is not a PFN mapping (EINVAL), besides the usual faults.
	 */
	if (e->flags & VMEMEXP_EXPORT_PFNMAP)
		set = (set & ~R_OK_) | R_EINVAL | R_EPERM;
#endif
	return set;
}

static uint64_t interesting_addr(void)
{
	static const uint64_t fixed[] = {
		0, 1, PAGE - 1, PAGE, 0x10000, 1ull << 32, 0xbf000000,
		0xc0000000, 1ull << 47, (1ull << 47) - 1, 1ull << 48,
		(1ull << 48) - 1, 1ull << 55, 1ull << 56, 0x2a00000000000000ull,
		0x8000000000000000ull, 0xffff800000000000ull,
		0xffff888000000000ull, 0xffffffff81000000ull,
		0xffffffffff600000ull, UINT64_MAX - PAGE, UINT64_MAX - 100,
		UINT64_MAX,
	};

	switch (below(7)) {
	case 0:
		return fixed[below(sizeof(fixed) / sizeof(fixed[0]))];
	case 6:
		return g.user_top - below(3) * PAGE - below(2);
	case 1:
		return rnd();
	case 2:
		return rnd() % g.user_top & ~(PAGE - 1);
	case 3:
		return (uintptr_t)self->priv + below(PRIV_SIZE + PAGE);
	default:
		return (uintptr_t)g.arena + below(ARENA_SIZE + 2 * PAGE) -
		       PAGE;
	}
}

static uint64_t interesting_len(uint64_t addr)
{
	static const uint64_t fixed[] = {
		0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, ARENA_SIZE,
		ARENA_SIZE + 1, 1ull << 32, 1ull << 40, 1ull << 63,
		UINT64_MAX, UINT64_MAX - PAGE,
	};

	switch (below(8)) {
	case 0:
		return fixed[below(sizeof(fixed) / sizeof(fixed[0]))];
	case 1:
		return g.max_export - below(2 * PAGE);
	case 2:
		return g.max_export + below(2 * PAGE);
	case 3:
		/* Ends exactly at, or wraps past, 2^64. */
		return -addr + below(3) - 1;
	case 4:
		return -addr - PAGE + below(2 * PAGE);
	case 5:
		return rnd();
	default:
		return 1 + below(16 * PAGE);
	}
}

/*
 * RDONLY and CLOEXEC in any combination; most exports opt in to whole
 * pages, as most of the ranges drawn are not page-aligned.
 */
static uint32_t export_flags(void)
{
	return (uint32_t)below(4) |
	       (chance(8) ? 0 : VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES);
}

/* A struct with any number of things wrong, and sometimes nothing. */
static void op_export_mutated(void)
{
	struct vmemexp_export in = {
		.addr = interesting_addr(),
		.flags = export_flags(),
	};
	struct vmemexp_export out;
	unsigned int mutations = (unsigned int)below(4);
	char what[160];
	int err;

	in.len = interesting_len(in.addr);
	while (mutations--) {
		switch (below(9)) {
		case 0: in.flags = (uint32_t)rnd(); break;
		case 1: in.flags |= 1u << (2 + below(30)); break;
		case 2: in.fd = (int32_t)rnd() | 1; break;
		case 3: in.offset = rnd() | 1; break;
		case 4: in.size = PAGE << below(8); break;
		case 5: in.nr_segments = 1 + (uint32_t)below(8); break;
		case 6: in.status_slot = (uint32_t)rnd() | 1; break;
		case 7: in.reserved[below(2)] = 1ull << below(64); break;
		default: in.len = 0; break;
		}
	}
	snprintf(what, sizeof(what),
		 "addr %#" PRIx64 " len %#" PRIx64 " flags %#x fd %d",
		 (uint64_t)in.addr, (uint64_t)in.len, in.flags, in.fd);
	err = export(&in, &out);
	if (!check_result(OP_EXPORT_MUTATED, err, expected_for(&in), what) ||
	    err) {
		if (!err)
			close(out.fd);
		return;
	}
	check_output(OP_EXPORT_MUTATED, &in, &out);
	/* Writes through it must not land in a thread's private pages. */
	keep(&out, in.addr >= (uintptr_t)g.arena &&
		   in.addr + in.len <= (uintptr_t)g.arena + ARENA_SIZE);
}

/* A valid struct over a random stretch of the arena, whatever it holds. */
static void op_export_arena(void)
{
	uint64_t off = below(ARENA_SIZE), len;
	struct vmemexp_export in = {
		.flags = export_flags() | (chance(2) ? TRACK : 0),
	};
	struct vmemexp_export out;
	char what[96];
	int err;

	switch (below(4)) {
	case 0: len = 1 + below(PAGE); break;
	case 1: len = 1 + below(8 * PAGE); break;
	case 2: len = 1 + below(64 * PAGE); break;
	default: len = 1 + below(ARENA_SIZE - off); break;
	}
	if (chance(3))
		off &= ~(PAGE - 1);
	in.addr = (uintptr_t)g.arena + off;
	in.len = len;
	if (chance(8) && g.huge) {
		in.addr = (uintptr_t)g.huge + below(g.huge_size);
		in.len = 1 + below(g.huge_size - (in.addr - (uintptr_t)g.huge));
	}
	snprintf(what, sizeof(what), "arena+%#" PRIx64 " len %#" PRIx64
		 " flags %#x", (uint64_t)(in.addr - (uintptr_t)g.arena),
		 (uint64_t)in.len, in.flags);
	err = export(&in, &out);
	if (!check_result(OP_EXPORT_ARENA, err, expected_for(&in), what) ||
	    err) {
		if (!err)
			close(out.fd);
		return;
	}
	check_output(OP_EXPORT_ARENA, &in, &out);
	keep(&out, true);
}

/* A transient mapping of at most SCRATCH_SIZE, in the thread's scratch. */
static void *scratch_map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p;

	if (len > SCRATCH_SIZE) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	p = mmap(self->scratch, len, prot, flags | MAP_FIXED, fd, off);
	/* A failed MAP_FIXED leaves a hole: reserve it again. */
	if (p == MAP_FAILED) {
		int err = errno;

		mmap(self->scratch, len, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		errno = err;
	}
	return p;
}

/* Ends a transient mapping, leaving the range reserved. */
static void scratch_unmap(void *p, size_t len)
{
	mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
	     0);
}

/*
 * What an export of private pages [first, last] must return: the kernel
 * names the first page, in address order, that cannot be exported.
 * Read-only anonymous memory that was never written is the zero page,
 * which not even a read-only export may hand out; write-only memory has
 * no VM_READ.  With @copies, as on 6.12 (not 6.1), GUP unshares the zero page
 * for a read-only long-term pin instead, and a read-only export of such
 * memory exports the exporter's fresh copy.
 */
static int predict_private(size_t first, size_t last, bool writable,
			   bool copies, bool *all_coherent)
{
	*all_coherent = true;
	for (size_t i = first; i <= last; i++) {
		switch (self->kinds[i]) {
		case PK_HOLE:
			return EFAULT;
		case PK_DMABUF:
			return EPERM;
		case PK_ANON_RO:
			if (writable || !copies)
				return EACCES;
			*all_coherent = false;
			break;
		case PK_NONE:
		case PK_ANON_WO:
			return EACCES;
		case PK_MEMFD_SHARED_RO:
			if (writable)
				return EACCES;
			*all_coherent = false;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * After a private export read back wrong: for each page, what the
 * dma-buf holds and what the thread's memory holds now, so that the
 * failure tells a stale or foreign pinned page (the dma-buf holds an
 * earlier fill, or something else, while the memory holds this one) from
 * memory changed behind the thread's back (both differ) and from a wrong
 * mapping of the dma-buf.  How many bytes differ tells a whole wrong page
 * from one written over in a few places: touch() writes the first byte
 * of each page, so a page of this fill but for its byte 0 was written by
 * a touch() through some other mapping of it.
 */
static void describe_wrong_pages(const uint8_t *map, size_t first,
				 size_t last, const uint64_t *earlier_fill)
{
	for (size_t i = first; i <= last; i++) {
		const uint8_t *got = map + (i - first) * PAGE;
		const uint8_t *mem = self->priv + i * PAGE;
		uint32_t fill = (uint32_t)self->op_index;
		size_t unlike = vmt_count_unlike(got, PAGE, i * PAGE, fill);
		long bad = vmt_check(got, PAGE, i * PAGE, fill);
		const char *holds;

		if (!unlike)
			holds = "this fill";
		else if (vmt_check(got, PAGE, i * PAGE,
				   (uint32_t)earlier_fill[i]) < 0)
			holds = "the page's previous fill";
		else if (!memcmp(got, got + 1, PAGE - 1))
			holds = "one repeated byte";
		else if (unlike <= PAGE / 64)
			holds = "this fill, written over in a few places";
		else
			holds = "something else";
		printf("# private page %zu (kind %u): dma-buf holds %s "
		       "(first wrong byte %ld, %#x; %zu bytes unlike this "
		       "fill), memory holds this fill: %s, dma-buf page == "
		       "memory page: %s\n",
		       i, self->kinds[i], holds, bad, bad >= 0 ? got[bad] : 0,
		       unlike,
		       vmt_check(mem, PAGE, i * PAGE, fill) < 0 ? "yes" : "no",
		       memcmp(got, mem, PAGE) ? "no" : "yes");
	}
}

/*
 * An export of the thread's own stretch, whose layout no other thread
 * changes: the result is predicted exactly, and a successful read-write
 * export must show, through a mapping of the dma-buf, what the thread
 * wrote into its memory.
 */
static void op_export_private(void)
{
	size_t first = below(PRIV_PAGES);
	size_t last = first + below(chance(2) ? 2 : PRIV_PAGES - first);
	uint64_t in_page = below(PAGE);
	struct vmemexp_export in = {
		.flags = export_flags() | (chance(2) ? TRACK : 0),
	};
	struct vmemexp_export out;
	uint64_t earlier_fill[PRIV_PAGES];
	bool writable = !(in.flags & VMEMEXP_EXPORT_RDONLY), coherent, copied;
	unsigned int allowed;
	int predicted, err;
	char what[96];

	if (last >= PRIV_PAGES)
		last = PRIV_PAGES - 1;
	in.addr = (uintptr_t)self->priv + first * PAGE + in_page;
	in.len = (last - first) * PAGE + 1 + below(PAGE - in_page);
	predicted = predict_private(first, last, writable, false, &coherent);
	allowed = (1u << result_bit(predicted)) | R_ENOMEM |
		  (1u << result_bit(predict_private(first, last, writable,
						     true, &copied)));
	if (!(in.flags & VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES) &&
	    ((in.addr | (in.addr + in.len)) & (PAGE - 1))) {
		predicted = EINVAL;
		allowed = R_EINVAL;
	}
	snprintf(what, sizeof(what), "private pages %zu..%zu flags %#x",
		 first, last, in.flags);
	memcpy(earlier_fill, self->filled_by, sizeof(earlier_fill));
	if (predicted == 0 && coherent && writable)
		for (size_t i = first; i <= last; i++) {
			vmt_fill(self->priv + i * PAGE, PAGE, i * PAGE,
				 (uint32_t)self->op_index);
			self->filled_by[i] = self->op_index;
		}

	err = export(&in, &out);
	if (!check_result(OP_EXPORT_PRIVATE, err, allowed, what) || err) {
		if (!err)
			close(out.fd);
		return;
	}
	check_output(OP_EXPORT_PRIVATE, &in, &out);

	if (coherent && writable) {
		uint8_t *map = scratch_map(out.size, PROT_READ, MAP_SHARED,
					   out.fd, 0);
		long bad;

		if (map == MAP_FAILED) {
			fail("mmap of a private export: %s",
			     vmt_errname(errno));
		} else {
			bad = vmt_check(map, out.size, first * PAGE,
					(uint32_t)self->op_index);
			if (bad >= 0) {
				fail("%s: byte %ld of the dma-buf is not "
				     "the memory",
				     what, bad);
				describe_wrong_pages(map, first, last,
						     earlier_fill);
			}
			scratch_unmap(map, out.size);
		}
	}
#ifdef VMEMEXP_IOC_STATUS
	/*
	 * A tracked export must stop calling itself current once its range
	 * changed (spurious clears are allowed: they only cost an export).
	 */
	if ((in.flags & TRACK) && chance(2)) {
		struct vmemexp_status st = { .fd = out.fd };
		size_t page = first + below(last - first + 1);

		madvise(self->priv + page * PAGE, PAGE, MADV_DONTNEED);
		if (ioctl(g.dev, VMEMEXP_IOC_STATUS, &st))
			fail("%s: STATUS of a tracked export: %s", what,
			     vmt_errname(errno));
		else if (st.flags & VMEMEXP_STATUS_CURRENT)
			fail("%s: still current after MADV_DONTNEED of page "
			     "%zu", what, page);
	}
#endif
	/* Only this thread may write its private pages: the check above. */
	keep(&out, false);
}

/* Any VMA of the process: libc, the stacks, the heap, [vdso], [vvar]. */
static void op_export_vma(void)
{
	const struct vma *v;
	struct vmemexp_export in = { .flags = export_flags() };
	struct vmemexp_export out;
	char what[96];
	int err;

	if (!g.nr_vmas)
		return;
	v = &g.vmas[below((uint64_t)g.nr_vmas)];
	in.addr = v->start + below(v->end - v->start);
	in.len = 1 + below(chance(4) ? v->end - in.addr + 4 * PAGE : 4 * PAGE);
	snprintf(what, sizeof(what), "vma %#" PRIx64 "-%#" PRIx64
		 " addr %#" PRIx64 " len %#" PRIx64, v->start, v->end,
		 (uint64_t)in.addr, (uint64_t)in.len);
	err = export(&in, &out);
	if (!check_result(OP_EXPORT_VMA, err, expected_for(&in), what) || err) {
		if (!err)
			close(out.fd);
		return;
	}
	check_output(OP_EXPORT_VMA, &in, &out);
	/* Its pages may be our own heap or stack: never write through it. */
	keep(&out, false);
}

/* The struct itself is unreadable, or cannot be written back. */
static void op_export_bad_pointer(void)
{
	/* Kernel addresses of x86-64; on 32-bit the top of the space. */
	static const uint64_t bad[] = {
		0, 1, PAGE - 8, 0xffffffff81000000ull, 0xffff888000000000ull,
		UINTPTR_MAX - 8, 1ull << 47, 0xc0000000, 0xfffff000,
	};
	uint64_t bad_addr = bad[below(sizeof(bad) / sizeof(bad[0]))];
	struct vmemexp_export in = {
		.addr = (uintptr_t)self->priv + below(PRIV_SIZE),
		.len = 1 + below(2 * PAGE),
		.flags = export_flags(),
	};
	uint8_t *page;
	void *arg;
	int err, fds = -1;
	unsigned int allowed = R_EFAULT;

	switch (below(3)) {
	case 0:
		/* A 64-bit address a 32-bit pointer cannot hold: its top. */
		if (bad_addr != (uintptr_t)bad_addr)
			bad_addr = UINTPTR_MAX - 8;
		err = ioctl(g.dev, VMEMEXP_IOC_EXPORT,
			    (void *)(uintptr_t)bad_addr) ? errno : 0;
		check_result(OP_EXPORT_BAD_POINTER, err, R_EFAULT,
			     "unmapped or kernel struct pointer");
		return;
	case 1:
		/*
		 * Straddles into an inaccessible page; not a hole, which
		 * another thread's mmap could fill meanwhile.
		 */
		page = scratch_map(2 * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			return;
		mprotect(page + PAGE, PAGE, PROT_NONE);
		arg = page + PAGE - 1 - below(sizeof(in) - 1);
		memcpy(arg, &in, (size_t)(page + PAGE - (uint8_t *)arg));
		err = ioctl(g.dev, VMEMEXP_IOC_EXPORT, arg) ? errno : 0;
		scratch_unmap(page, 2 * PAGE);
		check_result(OP_EXPORT_BAD_POINTER, err, R_EFAULT,
			     "struct across the end of a mapping");
		return;
	default:
		/* Readable but not writable: the fd must not be installed. */
		page = scratch_map(PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			return;
		memcpy(page, &in, sizeof(in));
		mprotect(page, PAGE, PROT_READ);
		if (g.threads == 1)
			fds = vmt_count_fds();
		err = ioctl(g.dev, VMEMEXP_IOC_EXPORT, page) ? errno : 0;
		scratch_unmap(page, PAGE);
		allowed |= expected_for(&in) & ~R_OK_;
		if (check_result(OP_EXPORT_BAD_POINTER, err, allowed,
				 "read-only struct") &&
		    fds >= 0 && vmt_count_fds() != fds)
			fail("read-only struct: an fd was installed");
		return;
	}
}

/* Commands the driver does not have; VFS-generic numbers are avoided. */
static void op_bad_command(void)
{
	struct vmemexp_export in = { .addr = (uintptr_t)self->priv, .len = 1 };
	unsigned long cmd;

	switch (below(3)) {
	case 0:
		cmd = _IOC(_IOC_READ | _IOC_WRITE, VMEMEXP_IOC_MAGIC,
			   1 + below(255), sizeof(in));
		break;
	case 1:
		/* The right number with the wrong size or direction. */
		cmd = _IOC(below(4), VMEMEXP_IOC_MAGIC, 0, below(128));
		if (cmd == VMEMEXP_IOC_EXPORT)
			cmd ^= 1ul << _IOC_SIZESHIFT;
		break;
	default:
		cmd = _IOC(below(4), 0xB7 + below(8), below(256), below(64));
		break;
	}
	check_result(OP_BAD_COMMAND,
		     ioctl(g.dev, cmd, &in) ? errno : 0, R_ENOTTY,
		     "unknown ioctl");
}

/* Replaces [p, p + len) with one kind of memory; returns success. */
static bool remap_as(uint8_t *p, size_t len, enum page_kind kind, int memfd,
		     off_t memfd_off)
{
	int anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
	void *r = MAP_FAILED;

	switch (kind) {
	case PK_HOLE:
		return munmap(p, len) == 0;
	case PK_ANON_RW:
		r = mmap(p, len, PROT_READ | PROT_WRITE, anon, -1, 0);
		break;
	case PK_ANON_RO:
		r = mmap(p, len, PROT_READ, anon, -1, 0);
		break;
	case PK_ANON_WO:
		r = mmap(p, len, PROT_WRITE, anon, -1, 0);
		break;
	case PK_NONE:
		r = mmap(p, len, PROT_NONE, anon, -1, 0);
		break;
	case PK_MEMFD_SHARED_RW:
		r = mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 memfd, memfd_off);
		break;
	case PK_MEMFD_SHARED_RO:
		r = mmap(p, len, PROT_READ, MAP_SHARED | MAP_FIXED, memfd,
			 memfd_off);
		break;
	case PK_MEMFD_PRIVATE_RW:
		r = mmap(p, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED, memfd, memfd_off);
		break;
	default:
		return false;
	}
	return r != MAP_FAILED;
}

/*
 * Maps one page of some dma-buf at p (the fd stays in its slot): 1 when
 * mapped, 0 when there was nothing to map, -1 when the mmap failed, which
 * for MAP_FIXED leaves a hole at p.
 */
static int map_dmabuf_at(uint8_t *p)
{
	struct slot s = take_slot();
	int ret = 0;

	/* Only scratch memory, so a write through p harms nothing. */
	if (s.fd >= 0 && s.scratch)
		ret = mmap(p, PAGE, PROT_READ | (s.rdonly ? 0 : PROT_WRITE),
			   MAP_SHARED | MAP_FIXED, s.fd, 0) == MAP_FAILED ?
		      -1 : 1;
	if (s.fd >= 0)
		put_slot(s);
	return ret;
}

static void op_layout_arena(void)
{
	size_t first = below(ARENA_PAGES), n = 1 + below(chance(4) ? 256 : 8);
	uint8_t *p;

	if (first + n > ARENA_PAGES)
		n = ARENA_PAGES - first;
	p = g.arena + first * PAGE;
	switch (below(12)) {
	case 0:
		munmap(p, n * PAGE);
		break;
	case 1:
		mprotect(p, n * PAGE, PROT_NONE);
		break;
	case 2:
		mprotect(p, n * PAGE, PROT_READ);
		break;
	case 3:
		mprotect(p, n * PAGE, PROT_READ | PROT_WRITE);
		break;
	case 4:
		madvise(p, n * PAGE, MADV_DONTNEED);
		break;
	case 5: {
		/* Moves pages elsewhere in the arena, leaving a hole behind. */
		size_t to = below(ARENA_PAGES - n + 1);

		if (to + n <= first || first + n <= to)
			mremap(p, n * PAGE, n * PAGE,
			       MREMAP_MAYMOVE | MREMAP_FIXED,
			       g.arena + to * PAGE);
		break;
	}
	case 6:
		if (n > 1)
			mremap(p, n * PAGE, (n / 2) * PAGE, 0);
		break;
	case 7:
		remap_as(p, n * PAGE, chance(2) ? PK_MEMFD_SHARED_RW :
				      PK_MEMFD_PRIVATE_RW,
			 g.arena_memfd, (off_t)(first * PAGE));
		break;
	case 8:
		map_dmabuf_at(p);
		break;
	case 9:
		madvise(g.arena + (first * PAGE & ~(HUGE_PAGE - 1)), HUGE_PAGE,
			MADV_HUGEPAGE);
		break;
	case 10:
		if (g.huge) {
			size_t h = below(g.huge_size / HUGE_PAGE) * HUGE_PAGE;

			/*
			 * Replaced whole, never split: Debian's 6.1.192 warns
			 * (lockdep, i_mmap_rwsem not held in hugetlb_split())
			 * on any split of a hugetlb VMA, vmemexp or not.
			 */
			if (chance(2))
				madvise(g.huge + h, HUGE_PAGE, MADV_DONTNEED);
			else
				mmap(g.huge, g.huge_size,
				     PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
				     MAP_HUGETLB, -1, 0);
			break;
		}
		/* fall through */
	default:
		remap_as(p, n * PAGE, PK_ANON_RW, -1, 0);
		break;
	}
}

static void op_layout_private(void)
{
	size_t first = below(PRIV_PAGES), n = 1 + below(4);
	enum page_kind kind = (enum page_kind)below(NR_PAGE_KINDS);
	uint8_t *p;

	if (first + n > PRIV_PAGES)
		n = PRIV_PAGES - first;
	p = self->priv + first * PAGE;
	if (kind == PK_DMABUF) {
		/* One page: every stored dma-buf is at least that long. */
		n = 1;
		switch (map_dmabuf_at(p)) {
		case 0:
			return;
		case -1:
			kind = PK_HOLE;
			break;
		}
	} else if (chance(6) && (self->kinds[first] == PK_ANON_RW ||
				 self->kinds[first] == PK_MEMFD_SHARED_RW ||
				 self->kinds[first] == PK_MEMFD_PRIVATE_RW)) {
		/* Detaches pinned pages without changing the kind. */
		madvise(p, PAGE, MADV_DONTNEED);
		return;
	} else if (!remap_as(p, n * PAGE, kind, self->priv_memfd,
			     (off_t)(first * PAGE))) {
		fail("remapping private pages %zu+%zu as kind %d: %s", first,
		     n, kind, vmt_errname(errno));
		return;
	}
	for (size_t i = first; i < first + n; i++)
		self->kinds[i] = (uint8_t)kind;
	/* Never-written pages are part of the point; touch only sometimes. */
	if (kind != PK_DMABUF && kind != PK_HOLE && kind != PK_NONE &&
	    chance(2) && !touch(p, n * PAGE, kind == PK_ANON_RW ||
			       kind == PK_MEMFD_SHARED_RW ||
			       kind == PK_MEMFD_PRIVATE_RW ||
			       kind == PK_ANON_WO, 0x5a))
		fail("touching private pages %zu+%zu of kind %d faulted",
		     first, n, kind);
}

static void op_touch_arena(void)
{
	size_t first = below(ARENA_PAGES), n = 1 + below(64);

	if (first + n > ARENA_PAGES)
		n = ARENA_PAGES - first;
	touch(g.arena + first * PAGE, n * PAGE, chance(2), (uint8_t)rnd());
}

/*
 * Maps a dma-buf in one of the thread's windows, with valid or invalid
 * arguments, touches it, and leaves it mapped for a while (closing the fd
 * meanwhile must not free the pages).
 */
static void op_map_dmabuf(void)
{
	struct slot s = take_slot();
	int w = (int)below(WINDOWS);
	uint8_t *win = self->windows + (size_t)w * WINDOW_SIZE;
	uint64_t len, off = 0;
	int prot = PROT_READ, flags = MAP_SHARED | MAP_FIXED;
	unsigned int allowed = R_OK_;
	uint8_t *map;
	char what[96];
	int err;

	if (s.fd < 0)
		return;
	len = s.size < WINDOW_SIZE ? s.size : WINDOW_SIZE;
	if (s.scratch && !s.rdonly && chance(2))
		prot |= PROT_WRITE;
	switch (below(8)) {
	case 0:
		flags = MAP_PRIVATE | MAP_FIXED;
		allowed = R_EINVAL;
		break;
	case 1:
		if (s.size <= WINDOW_SIZE - PAGE) {
			len = s.size + PAGE;
			allowed = R_EINVAL;
		}
		break;
	case 2:
		off = s.size;
		len = PAGE;
		allowed = R_EINVAL;
		break;
	case 3:
		if (s.rdonly) {
			prot |= PROT_WRITE;
			allowed = R_EACCES;
		}
		break;
	case 4:
		off = below(s.size / PAGE) * PAGE;
		len = s.size - off < len ? s.size - off : len;
		break;
	default:
		break;
	}
	map = mmap(win, len, prot, flags, s.fd, (off_t)off);
	err = map == MAP_FAILED ? errno : 0;
	snprintf(what, sizeof(what), "mmap of %#" PRIx64 "+%#" PRIx64
		 " of a %#" PRIx64 " dma-buf, prot %d flags %#x%s", off, len,
		 s.size, prot, flags, s.rdonly ? " (read-only export)" : "");
	if (!check_result(OP_MAP_DMABUF, err, allowed, what) || err) {
		/* A failed MAP_FIXED leaves a hole: reserve it again. */
		mmap(win, WINDOW_SIZE, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		self->window_used[w] = false;
		put_slot(s);
		return;
	}
	self->window_used[w] = true;
	if (!touch(map, len, prot & PROT_WRITE, (uint8_t)rnd()))
		fail("%s: touching the mapping faulted", what);
	if (s.rdonly && mprotect(map, len, PROT_READ | PROT_WRITE) == 0)
		fail("%s: mprotect to writable succeeded", what);
	if (chance(2)) {
		mmap(win, WINDOW_SIZE, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		self->window_used[w] = false;
	}
	if (chance(3))
		close(s.fd);
	else
		put_slot(s);
}

static void op_unmap_window(void)
{
	int w = (int)below(WINDOWS);

	if (!self->window_used[w])
		return;
	mmap(self->windows + (size_t)w * WINDOW_SIZE, WINDOW_SIZE, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	self->window_used[w] = false;
}

static void op_sync(void)
{
	static const uint64_t valid[] = {
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE,
		DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE,
		DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW,
	};
	struct slot s = take_slot();
	struct dma_buf_sync sync;
	unsigned int allowed;
	char what[64];

	if (s.fd < 0)
		return;
	if (chance(3)) {
		sync.flags = chance(2) ? rnd() : (rnd() & 0xff);
		allowed = (sync.flags & ~DMA_BUF_SYNC_VALID_FLAGS_MASK) ||
			  !(sync.flags & DMA_BUF_SYNC_RW) ? R_EINVAL : R_OK_;
	} else {
		sync.flags = valid[below(6)];
		allowed = R_OK_;
	}
	snprintf(what, sizeof(what), "DMA_BUF_IOCTL_SYNC flags %#llx",
		 (unsigned long long)sync.flags);
	check_result(OP_SYNC,
		     ioctl(s.fd, DMA_BUF_IOCTL_SYNC, &sync) ? errno : 0,
		     allowed, what);
	put_slot(s);
}

static void op_dmabuf_bad_ioctl(void)
{
	struct slot s = take_slot();
	uint64_t arg[8] = { 0 };

	if (s.fd < 0)
		return;
	check_result(OP_DMABUF_BAD_IOCTL,
		     ioctl(s.fd, _IOC(below(4), DMA_BUF_BASE, 16 + below(200),
				      below(64)), arg) ? errno : 0,
		     R_ENOTTY, "unknown dma-buf ioctl");
	put_slot(s);
}

/*
 * VMEMEXP_IOC_STATUS on a stored dma-buf, with one thing wrong or none.
 * Whether the range is still current races with every other thread; only
 * the errno is checked.
 */
/*
 * mmap of the status page with random arguments: only one page at offset
 * 0, shared and neither writable nor executable, may succeed; a good
 * mapping is read at a random word and unmapped.
 */
static void status_page_map(void)
{
	static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE,
				     PROT_READ | PROT_EXEC, PROT_NONE };
	int prot = prots[below(4)];
	int flags = chance(4) ? MAP_PRIVATE : MAP_SHARED;
	size_t len = chance(4) ? PAGE * (1 + below(4)) : PAGE;
	off_t off = chance(4) ? (off_t)(PAGE * below(4)) : 0;
	unsigned int allowed = R_OK_;
	void *p;
	int err;

	if (off || len != PAGE || flags != MAP_SHARED)
		allowed = R_EINVAL;
	else if (prot & (PROT_WRITE | PROT_EXEC))
		allowed = R_EPERM;
	p = scratch_map(len, prot, flags, g.dev, off);
	err = p == MAP_FAILED ? errno : 0;
	if (!check_result(OP_STATUS, err, allowed, "mmap of the status page") ||
	    err)
		return;
	if (prot & PROT_READ)
		(void)((volatile uint32_t *)p)[below(PAGE / sizeof(uint32_t))];
	scratch_unmap(p, len);
}

static void op_status(void)
{
#ifdef VMEMEXP_IOC_STATUS
	struct slot s;

	if (chance(4)) {
		status_page_map();
		return;
	}
	s = take_slot();
	struct vmemexp_status st = { .fd = s.fd };
	unsigned int allowed;
	const char *what;
	int err;

	if (s.fd < 0)
		return;
	allowed = s.track ? R_OK_ : R_EOPNOTSUPP;
	what = "STATUS of a stored dma-buf";
	switch (below(6)) {
	case 0:
		st.flags = 1u << below(32);
		allowed = R_EINVAL;
		what = "STATUS with output flags set";
		break;
	case 1:
		st.reserved[below(3)] = 1ull << below(64);
		allowed = R_EINVAL;
		what = "STATUS with a reserved field set";
		break;
	case 2:
		st.fd = chance(2) ? -1 : 100000 + (int)below(1000);
		allowed = R_EBADF;
		what = "STATUS of a bad fd";
		break;
	case 3:
		st.fd = chance(2) ? g.dev : g.arena_memfd;
		allowed = R_EINVAL;
		what = "STATUS of an fd that is not a dma-buf";
		break;
	default:
		break;
	}
	err = ioctl(g.dev, VMEMEXP_IOC_STATUS, &st) ? errno : 0;
	if (check_result(OP_STATUS, err, allowed, what) && !err &&
	    st.flags & ~VMEMEXP_STATUS_CURRENT)
		fail("STATUS returned unknown flags %#x", st.flags);
	put_slot(s);
#endif
}

static void op_close(void)
{
	struct slot s = take_slot();

	if (s.fd >= 0)
		close(s.fd);
}

/*
 * A child forked while other threads hold pins and race: it touches the
 * arena (its pinned anonymous pages were copied for it at fork), exports
 * from its own copy, and maps an inherited dma-buf.  It may only make
 * system calls; it reports through its exit status.
 */
static int fork_child(int fd, uint64_t size)
{
	struct vmemexp_export e = {
		.addr = (uintptr_t)g.arena + below(ARENA_SIZE / 2),
		.len = 1 + below(ARENA_SIZE / 2),
		.flags = VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES,
	};
	int err;

	touch(g.arena, ARENA_SIZE, true, 0xc3);
	err = export(&e, &e);
	if (err == 0)
		close(e.fd);
	else if (result_bit(err) < 0 || !(R_USER & (1u << result_bit(err))))
		return 10 + result_bit(err);
	if (fd >= 0) {
		uint8_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
#ifdef VMEMEXP_IOC_STATUS
		struct vmemexp_status st = { .fd = fd };

		/* The parent's export, tracked or not, is not the child's. */
		if (ioctl(g.dev, VMEMEXP_IOC_STATUS, &st) == 0 ||
		    (errno != EPERM && errno != EOPNOTSUPP))
			return 5;
#endif

		if (map == MAP_FAILED)
			return 3;
		if (!touch(map, size, false, 0))
			return 4;
		munmap(map, size);
	}
	return 0;
}

static void op_fork(void)
{
	struct slot s = take_slot();
	pid_t pid;
	int status;

	pthread_mutex_lock(&fork_lock);
	pid = fork();
	if (pid == 0)
		_exit(fork_child(s.fd, s.size));
	pthread_mutex_unlock(&fork_lock);
	if (pid < 0 && errno == ENOMEM && g.huge) {
		/*
		 * A pinned hugetlb page must be copied for the child at fork;
		 * with the pool held by dma-bufs and the remapped huge area,
		 * there may be none left, and fork says so.
		 */
		count(OP_FORK, ENOMEM);
	} else if (pid < 0) {
		fail("fork: %s", vmt_errname(errno));
	} else {
		status = vmt_wait(pid);
		count(OP_FORK, status ? -1 : 0);
		if (status)
			fail("forked child exited with %d (3, 4: mapping an "
			     "inherited dma-buf; 5: its STATUS was not EPERM; "
			     "10 + n: export errno class)", status);
	}
	if (s.fd >= 0)
		put_slot(s);
}

static enum op pick_op(void)
{
	static unsigned int total;
	unsigned int r;

	if (!total)
		for (int i = 0; i < NR_OPS; i++)
			total += op_weights[i];
	r = (unsigned int)below(total);
	for (int i = 0; i < NR_OPS; i++) {
		if (r < op_weights[i])
			return (enum op)i;
		r -= op_weights[i];
	}
	return OP_EXPORT_MUTATED;
}

static void (*const op_fns[NR_OPS])(void) = {
	[OP_EXPORT_MUTATED] = op_export_mutated,
	[OP_EXPORT_ARENA] = op_export_arena,
	[OP_EXPORT_PRIVATE] = op_export_private,
	[OP_EXPORT_VMA] = op_export_vma,
	[OP_EXPORT_BAD_POINTER] = op_export_bad_pointer,
	[OP_BAD_COMMAND] = op_bad_command,
	[OP_LAYOUT_ARENA] = op_layout_arena,
	[OP_LAYOUT_PRIVATE] = op_layout_private,
	[OP_TOUCH_ARENA] = op_touch_arena,
	[OP_MAP_DMABUF] = op_map_dmabuf,
	[OP_SYNC] = op_sync,
	[OP_DMABUF_BAD_IOCTL] = op_dmabuf_bad_ioctl,
	[OP_CLOSE] = op_close,
	[OP_STATUS] = op_status,
	[OP_UNMAP_WINDOW] = op_unmap_window,
	[OP_FORK] = op_fork,
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	/* A fork every 2000 operations of the first thread. */
	const uint64_t fork_every = 2000;

	self = t;
	pthread_barrier_wait(&start_barrier);
	for (t->op_index = 0; t->op_index < t->nr_ops && !g.stop;
	     t->op_index++) {
		enum op op = t->index == 0 && t->op_index % fork_every ==
			     fork_every - 1 ? OP_FORK : pick_op();
		uint64_t start;

		if (g.verbose)
			printf("# thread %d op %" PRIu64 ": %s\n", t->index,
			       t->op_index, op_names[op]);
		start = now_ns();
		op_fns[op]();
		atomic_fetch_add(&g.counters[op].ns, now_ns() - start);
		atomic_fetch_add(&g.counters[op].runs, 1);
		atomic_fetch_add(&g.ops_done, 1);
	}
	for (int w = 0; w < WINDOWS; w++)
		t->window_used[w] = false;
	munmap(t->windows, WINDOWS * WINDOW_SIZE);
	munmap(t->scratch, SCRATCH_SIZE);
	munmap(t->priv, PRIV_SIZE);
	close(t->priv_memfd);
	return NULL;
}

/* Whether mmap() can place a page at @addr, or something is there. */
static bool user_page(uint64_t addr)
{
	void *p;

	if (addr != (uintptr_t)addr)
		return false;
	p = mmap((void *)(uintptr_t)addr, PAGE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED)
		munmap(p, PAGE);
	return p != MAP_FAILED || errno == EEXIST;
}

/*
 * The end of the user address space (TASK_SIZE): mmap() refuses a fixed
 * address beyond it with ENOMEM, below it a page is free or taken.  It
 * differs between architectures, kernel configurations and machines
 * (x86-64 with 5-level paging, a 32-bit ARM kernel's split), so it is
 * found by bisection between a page that is surely user memory and the
 * highest address a pointer can hold.
 */
static void find_user_top(void)
{
	uint64_t ok = (uintptr_t)&g & ~(PAGE - 1);
	uint64_t bad = ((uint64_t)UINTPTR_MAX & ~(PAGE - 1)) + PAGE;

	if (bad == 0)
		bad = ~(PAGE - 1);	/* 64-bit: the last page, never user */
	while (bad - ok > PAGE) {
		uint64_t mid = (ok + (bad - ok) / 2) & ~(PAGE - 1);

		if (user_page(mid))
			ok = mid;
		else
			bad = mid;
	}
	g.user_top = ok + PAGE;
	g.mapped_top = g.user_top < MAP_WINDOW_TOP ? g.user_top :
						     MAP_WINDOW_TOP;
}

static void read_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long long s, e;
	char line[512];

	if (!f)
		return;
	while (g.nr_vmas < MAX_VMAS && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx", &s, &e) == 2)
			g.vmas[g.nr_vmas++] = (struct vma){ s, e };
	fclose(f);
}

static uint64_t read_max_export(void)
{
	FILE *f = fopen("/sys/module/vmemexp/parameters/max_export_bytes",
			"re");
	unsigned long long v = 1ull << 30;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 1ull << 30;
		fclose(f);
	}
	return v;
}

/* Hugetlb pages for the arena's hugetlb part, when the kernel has them. */
static void setup_hugetlb(void)
{
	const char *path = "/proc/sys/vm/nr_hugepages";
	FILE *f = fopen(path, "re");
	long have = 0;

	if (f) {
		if (fscanf(f, "%ld", &have) != 1)
			have = 0;
		fclose(f);
	}
	/* Room for pinned huge pages, and for copies of them at fork. */
	if (have < 16 && (f = fopen(path, "we"))) {
		fprintf(f, "16\n");
		fclose(f);
	}
	g.huge_size = 2 * HUGE_PAGE;
	g.huge = mmap(NULL, g.huge_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (g.huge == MAP_FAILED) {
		vmt_note("no hugetlb memory (%s): hugetlb layouts left out",
			 vmt_errname(errno));
		g.huge = NULL;
		g.huge_size = 0;
	}
}

/*
 * Without CAP_IPC_LOCK the pins are charged against RLIMIT_MEMLOCK, so the
 * accounting path runs too and ENOMEM is a documented answer.  Capabilities
 * are per thread: this runs before any thread is created.
 */
static void limit_pinning(void)
{
	struct rlimit lim = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	uid_t uid = (uid_t)g.user;

	if (setrlimit(RLIMIT_MEMLOCK, &lim))
		vmt_note("setrlimit(RLIMIT_MEMLOCK): %s", vmt_errname(errno));
	/* A new uid drops every capability. */
	if (g.user >= 0) {
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid)) {
			printf("# cannot become user %ld: %s\n", g.user,
			       vmt_errname(errno));
			exit(1);
		}
		return;
	}
	if (syscall(SYS_capget, &hdr, data) == 0) {
		data[CAP_IPC_LOCK / 32].effective &=
			~(1u << (CAP_IPC_LOCK % 32));
		if (syscall(SYS_capset, &hdr, data))
			vmt_note("capset: %s", vmt_errname(errno));
	}
}

static void setup_arena(void)
{
	uint8_t *r = mmap(NULL, ARENA_SIZE + HUGE_PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t aligned;

	if (r == MAP_FAILED) {
		printf("# mmap of the arena: %s\n", vmt_errname(errno));
		exit(1);
	}
	aligned = ((uintptr_t)r + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	if ((uint8_t *)aligned > r)
		munmap(r, aligned - (uintptr_t)r);
	if (aligned + ARENA_SIZE < (uintptr_t)r + ARENA_SIZE + HUGE_PAGE)
		munmap((uint8_t *)aligned + ARENA_SIZE,
		       (uintptr_t)r + HUGE_PAGE - aligned);
	g.arena = (uint8_t *)aligned;
	g.arena_memfd = memfd_create("vmemexp-fuzz-arena", MFD_CLOEXEC);
	if (g.arena_memfd < 0 || ftruncate(g.arena_memfd, ARENA_SIZE)) {
		printf("# memfd: %s\n", vmt_errname(errno));
		exit(1);
	}
}

static bool overlaps_arena(const uint8_t *p, size_t len)
{
	return p < g.arena + ARENA_SIZE && p + len > g.arena;
}

static void setup_thread(struct thread *t, int index)
{
	t->index = index;
	t->rng = g.seed ^ (0x2545f4914f6cdd1dull * (uint64_t)(index + 1));
	t->nr_ops = g.ops / (uint64_t)g.threads +
		    ((uint64_t)index < g.ops % (uint64_t)g.threads);
	t->priv = mmap(NULL, PRIV_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->windows = mmap(NULL, WINDOWS * WINDOW_SIZE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->scratch = mmap(NULL, SCRATCH_SIZE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->priv_memfd = memfd_create("vmemexp-fuzz-private", MFD_CLOEXEC);
	if (t->priv == MAP_FAILED || t->windows == MAP_FAILED ||
	    t->scratch == MAP_FAILED ||
	    t->priv_memfd < 0 || ftruncate(t->priv_memfd, PRIV_SIZE)) {
		printf("# thread setup: %s\n", vmt_errname(errno));
		exit(1);
	}
	memset(t->kinds, PK_ANON_RW, sizeof(t->kinds));
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--seed N] [--ops N] [--long] "
		"[--threads T] [--user UID] [--verbose] | --describe-test\n",
		argv0);
	exit(2);
}

/*
 * --describe-test: what describe_wrong_pages() says of three pages read
 * back wrong in known ways (the unit test fuzz-describe checks it, with
 * no module): one of this fill but for its byte 0, written by a touch();
 * one holding the page's previous fill; one of zeroes.
 */
static int describe_test(void)
{
	static struct thread t;
	uint64_t earlier_fill[PRIV_PAGES] = { 0 };
	uint8_t *map = malloc(3 * PAGE);

	t.priv = aligned_alloc(PAGE, PRIV_SIZE);
	if (!map || !t.priv)
		return 1;
	self = &t;
	t.op_index = 7377;
	for (size_t i = 0; i < 3; i++) {
		vmt_fill(t.priv + i * PAGE, PAGE, i * PAGE, 7377);
		t.kinds[i] = PK_ANON_RW;
		earlier_fill[i] = 4242;
	}
	memcpy(map, t.priv, 3 * PAGE);
	map[0] = 0x5a;
	vmt_fill(map + PAGE, PAGE, PAGE, 4242);
	memset(map + 2 * PAGE, 0, PAGE);
	describe_wrong_pages(map, 0, 2, earlier_fill);
	free(map);
	free(t.priv);
	return 0;
}

static void print_summary(double seconds)
{
	for (int op = 0; op < NR_OPS; op++) {
		char line[256] = "";
		size_t n = 0;

		for (int r = 0; r < 16; r++) {
			unsigned long c = g.counters[op].by_result[r];

			if (!c)
				continue;
			n += (size_t)snprintf(line + n, sizeof(line) - n,
					      " %s %lu",
					      r < NR_RESULTS ?
					      vmt_errname(result_errnos[r]) :
					      "other", c);
		}
		if (g.counters[op].runs)
			printf("# %-18s %lu in %.1f s:%s\n", op_names[op],
			       (unsigned long)g.counters[op].runs,
			       g.counters[op].ns / 1e9, line);
	}
	printf("# %lu operations in %.1f s: %.0f per second\n",
	       (unsigned long)g.ops_done, seconds, g.ops_done / seconds);
}

static int fuzz(void);

/*
 * --user: the operations run in a child that becomes the user; this
 * parent, still root, checks that every pin is released after it exits.
 */
static int run_as_user(void)
{
	long long pins_before = vmt_pins_outstanding(), pins_after;
	int status, failed;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("# fork: %s\n", vmt_errname(errno));
		return 1;
	}
	if (pid == 0)
		exit(fuzz());
	status = vmt_wait(pid);
	pins_after = vmt_pins_outstanding();
	printf("# user %ld: exit status %d; FOLL_PIN outstanding: %lld "
	       "before, %lld after\n", g.user, status, pins_before,
	       pins_after);
	if (status == 77)
		return 77;
	failed = status || pins_before < 0 || pins_after != pins_before;
	printf("1..1\n%s 1 vmemexp-fuzz seed=%" PRIu64 " ops=%lu threads=%d "
	       "user=%ld\n", failed ? "not ok" : "ok", g.seed,
	       (unsigned long)g.ops, g.threads, g.user);
	return failed;
}

int main(int argc, char **argv)
{
	/* The environment reaches a test run through vmrun; options win. */
	g.seed = getenv("VMSHARE_FUZZ_SEED") ?
		 strtoull(getenv("VMSHARE_FUZZ_SEED"), NULL, 0) :
		 (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	g.ops = getenv("VMSHARE_FUZZ_OPS") ?
		strtoull(getenv("VMSHARE_FUZZ_OPS"), NULL, 0) : 100000;
	g.threads = 4;
	g.user = -1;
	if (argc == 2 && !strcmp(argv[1], "--describe-test"))
		return describe_test();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			g.seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			g.ops = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--long"))
			g.ops = 1000000;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			g.threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--user") && i + 1 < argc)
			g.user = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--verbose"))
			g.verbose = true;
		else
			usage(argv[0]);
	}
	if (g.threads < 1 || g.threads > MAX_THREADS || g.user == 0 ||
	    g.user < -1)
		usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# vmemexp-fuzz --seed %" PRIu64 " --ops %" PRIu64
	       " --threads %d", g.seed, g.ops, g.threads);
	if (g.user >= 0)
		printf(" --user %ld", g.user);
	printf("\n");
	if (g.user >= 0)
		return run_as_user();
	return fuzz();
}

static int fuzz(void)
{
	static struct thread threads[MAX_THREADS];
	struct sigaction sa = { .sa_handler = on_fault };
	long long pins_before, pins_after;
	int fds_before, fds_after;
	uint64_t start;
	double seconds;


	g.dev = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);
	if (g.dev < 0) {
		printf("1..0 # SKIP /dev/vmemexp: %s\n", vmt_errname(errno));
		return 77;
	}
	fds_before = vmt_count_fds();
	pins_before = g.user >= 0 ? 0 : vmt_pins_outstanding();
	g.max_export = read_max_export();
	find_user_top();
	printf("# user address space below %#" PRIx64 ", mapped below %#" PRIx64
	       "\n", g.user_top, g.mapped_top);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < SLOTS; i++)
		slots[i].fd = -1;
	setup_arena();
	setup_hugetlb();
	limit_pinning();
	read_vmas();

	/*
	 * Every reservation is made, and every thread created, before any
	 * thread reshapes the arena (start_barrier); each thread's stretch
	 * must lie outside the arena, which other threads change at will.
	 */
	for (int i = 0; i < g.threads; i++)
		setup_thread(&threads[i], i);
	for (int i = 0; i < g.threads; i++)
		if (overlaps_arena(threads[i].priv, PRIV_SIZE) ||
		    overlaps_arena(threads[i].windows, WINDOWS * WINDOW_SIZE) ||
		    overlaps_arena(threads[i].scratch, SCRATCH_SIZE)) {
			printf("# FAIL seed=%" PRIu64 ": thread %d's own "
			       "mappings overlap the arena\n", g.seed, i);
			return 1;
		}
	pthread_barrier_init(&start_barrier, NULL, (unsigned)g.threads + 1);
	for (int i = 0; i < g.threads; i++) {
		if (pthread_create(&threads[i].tid, NULL, thread_main,
				   &threads[i])) {
			/* The threads made so far wait at the barrier. */
			printf("# pthread_create failed\n");
			exit(1);
		}
	}
	start = now_ns();
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < g.threads; i++)
		pthread_join(threads[i].tid, NULL);
	seconds = (double)(now_ns() - start) / 1e9;

	for (int i = 0; i < SLOTS; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	munmap(g.arena, ARENA_SIZE);
	if (g.huge)
		munmap(g.huge, g.huge_size);
	close(g.arena_memfd);
	close(g.dev);

	print_summary(seconds);
	fds_after = vmt_count_fds() + 1; /* /dev/vmemexp, counted before */
	/* Only root can fold the counters: run_as_user() checks them. */
	pins_after = g.user >= 0 ? 0 : vmt_pins_outstanding();
	printf("# FOLL_PIN outstanding: %lld before, %lld after; "
	       "fds: %d before, %d after\n",
	       pins_before, pins_after, fds_before, fds_after);
	if (pins_before < 0 || pins_after != pins_before) {
		printf("# FAIL seed=%" PRIu64 ": %lld pages left pinned\n",
		       g.seed, pins_after - pins_before);
		g.failures++;
	}
	if (fds_after != fds_before) {
		printf("# FAIL seed=%" PRIu64 ": %d fds leaked\n", g.seed,
		       fds_after - fds_before);
		g.failures++;
	}
	if (g.user >= 0)
		return g.failures ? 1 : 0;
	printf("1..1\n%s 1 vmemexp-fuzz seed=%" PRIu64 " ops=%lu threads=%d\n",
	       g.failures ? "not ok" : "ok", g.seed,
	       (unsigned long)g.ops_done, g.threads);
	return g.failures ? 1 : 0;
}
