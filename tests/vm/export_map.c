/* SPDX-License-Identifier: MIT */
/*
 * A peer's mapping of an export: one fault maps the whole 2 MiB block
 * around it, whatever order the peer reads in; on kernels with huge PFN
 * mappings (6.12 and later, x86-64 and arm64) a block of THP or hugetlb
 * memory becomes one PMD entry where the peer's address is 2 MiB-aligned;
 * and partial mappings, offsets, read-only exports, fork, munmap and
 * mremap of such mappings keep showing the exporter's bytes.
 *
 * Whether a block was mapped as one PMD entry is seen from the faults a
 * peer takes after a partial munmap: splitting a PMD entry of a PFN
 * mapping drops the whole block, which the remaining pages fault back in;
 * page table entries stay.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "vmx.h"

#define PAGE 4096ul
#define BLOCK (2ul << 20)
#define LEN (8ul << 20)		/* every export here: four blocks */

enum kind { PAGES_4K, THP, HUGETLB };
static const char *const kind_names[] = { "4 KiB pages", "THP", "hugetlb" };

/* The exporter's memory of one kind, 2 MiB-aligned, filled with @seed. */
struct source {
	enum kind kind;
	uint8_t *mem;
	uint32_t seed;
	int fd;			/* the export */
	uint32_t segments;
};

/*
 * Every page is filled with one value, its stamp, which depends on the
 * page's place in the export and on a seed: a page mapped in the wrong
 * place shows another stamp (with a 255 in 256 chance), and checking a
 * few bytes of each page is enough.  Byte-wise patterns cost seconds
 * per pass under TCG.
 */
static uint8_t stamp(uint32_t seed, size_t page)
{
	return (uint8_t)(((uint32_t)page * 2654435761u ^ seed * 40503u) >> 24);
}

static void stamp_pages(uint8_t *p, size_t len, size_t offset, uint32_t seed)
{
	for (size_t i = 0; i < len; i += PAGE)
		memset(p + i, stamp(seed, (offset + i) / PAGE), PAGE);
}

/* The offset of the first page not stamped so, or -1. */
static long stamped(const uint8_t *p, size_t len, size_t offset,
		    uint32_t seed)
{
	for (size_t i = 0; i < len; i += PAGE) {
		uint8_t want = stamp(seed, (offset + i) / PAGE);

		if (p[i] != want || p[i + PAGE / 2 + 17] != want ||
		    p[i + PAGE - 1] != want)
			return (long)(offset + i);
	}
	return -1;
}

static uint8_t *reserve_aligned(size_t len)
{
	uint8_t *p = mmap(NULL, len + BLOCK, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	VMT_ASSERT(p != MAP_FAILED);
	a = ((uintptr_t)p + BLOCK - 1) & ~(BLOCK - 1);
	if (a != (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + BLOCK - a);
	return (uint8_t *)a;
}

static bool source_open(struct source *s, enum kind kind, uint32_t flags)
{
	struct vmemexp_export e;
	int dev = vmx_open();

	s->kind = kind;
	s->seed = (uint32_t)kind * 16 + 1 + flags;
	if (kind == HUGETLB) {
		FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
		int memfd;

		if (f) {
			fprintf(f, "8\n");
			fclose(f);
		}
		memfd = memfd_create("export-map", MFD_CLOEXEC | MFD_HUGETLB);
		if (memfd < 0 || ftruncate(memfd, LEN) < 0) {
			vmt_note("no hugetlb memfd: %s", vmt_errname(errno));
			if (memfd >= 0)
				close(memfd);
			close(dev);
			return false;
		}
		s->mem = mmap(reserve_aligned(LEN), LEN, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_FIXED, memfd, 0);
		close(memfd);
		VMT_ASSERT(s->mem != MAP_FAILED);
	} else {
		s->mem = mmap(reserve_aligned(LEN), LEN, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		VMT_ASSERT(s->mem != MAP_FAILED);
		VMT_ASSERT_OK(madvise(s->mem, LEN, kind == THP ?
				      MADV_HUGEPAGE : MADV_NOHUGEPAGE));
	}
	stamp_pages(s->mem, LEN, 0, s->seed);
	s->fd = vmx_export_ok(dev, s->mem, LEN, flags | VMEMEXP_EXPORT_CLOEXEC,
			      &e);
	s->segments = e.nr_segments;
	close(dev);
	return true;
}

static void source_close(struct source *s)
{
	close(s->fd);
	munmap(s->mem, LEN);
}

/*
 * Whether this kernel maps a 2 MiB block of @s as one PMD entry: huge PFN
 * mappings exist from 6.12 on, on x86-64 and arm64, and the memory must
 * come in 2 MiB-aligned physical runs (THP may not have been granted).
 */
static bool expect_pmd(const struct source *s)
{
	struct utsname u;
	int major, minor;

	if (s->kind == PAGES_4K || s->segments > LEN / BLOCK)
		return false;
	VMT_ASSERT_OK(uname(&u));
	if (sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return (major > 6 || (major == 6 && minor >= 12)) &&
	       (!strcmp(u.machine, "x86_64") || !strcmp(u.machine, "aarch64"));
}

/* A peer's mapping of @len bytes at @offset, @misalign bytes past 2 MiB. */
static uint8_t *peer_map(int fd, size_t len, size_t offset, size_t misalign,
			 int prot)
{
	uint8_t *at = reserve_aligned(len + misalign), *p;

	if (misalign)
		munmap(at, misalign);
	p = mmap(at + misalign, len, prot, MAP_SHARED | MAP_FIXED, fd,
		 (off_t)offset);
	VMT_ASSERT(p == at + misalign);
	return p;
}

static long minor_faults(void)
{
	struct rusage ru;

	VMT_ASSERT_OK(getrusage(RUSAGE_SELF, &ru));
	return ru.ru_minflt;
}

/* Reads one byte of every page, first to last or last to first. */
static long touch(const uint8_t *p, size_t len, bool backwards)
{
	volatile const uint8_t *v = p;
	long before = minor_faults();

	for (size_t i = 0; i < len; i += PAGE)
		(void)v[backwards ? len - PAGE - i : i];
	return minor_faults() - before;
}

static void check_pages(const struct source *s, const uint8_t *p, size_t len,
			size_t offset)
{
	long bad = stamped(p, len, offset, s->seed);

	if (bad >= 0)
		vmt_fail(__FILE__, __LINE__, "%s: page at %ld of the export differs",
			 kind_names[s->kind], bad);
}

/*
 * Four blocks, four faults, read forwards or backwards; a mapping 4 KiB
 * past a 2 MiB boundary meets five blocks.  Writes reach the exporter.
 */
static void one_fault_per_block(void)
{
	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		struct source s;
		uint8_t *p;

		if (!source_open(&s, k, 0))
			continue;
		for (int backwards = 0; backwards < 2; backwards++) {
			p = peer_map(s.fd, LEN, 0, 0, PROT_READ | PROT_WRITE);
			VMT_ASSERT_EQ(touch(p, LEN, backwards), LEN / BLOCK);
			check_pages(&s, p, LEN, 0);
			munmap(p, LEN);
		}
		p = peer_map(s.fd, LEN, 0, PAGE, PROT_READ);
		VMT_ASSERT_EQ(touch(p, LEN, false), LEN / BLOCK + 1);
		check_pages(&s, p, LEN, 0);
		munmap(p, LEN);

		p = peer_map(s.fd, LEN, 0, 0, PROT_READ | PROT_WRITE);
		stamp_pages(p + BLOCK - PAGE, 2 * BLOCK, BLOCK - PAGE, s.seed + 100);
		VMT_ASSERT_EQ(stamped(s.mem + BLOCK - PAGE, 2 * BLOCK,
				      BLOCK - PAGE, s.seed + 100), -1);
		munmap(p, LEN);
		source_close(&s);
	}
}

/*
 * munmap of a few pages inside a block: a PMD entry is split (dropped and
 * faulted back in, once for each side of the hole), page table entries
 * are not; either way the rest of the mapping keeps its bytes.
 */
static void huge_mapping_split_by_munmap(void)
{
	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		size_t hole = BLOCK + 37 * PAGE, hole_len = 5 * PAGE;
		struct source s;
		long refaults;
		uint8_t *p;

		if (!source_open(&s, k, 0))
			continue;
		p = peer_map(s.fd, LEN, 0, 0, PROT_READ);
		VMT_ASSERT_EQ(touch(p, LEN, false), LEN / BLOCK);
		VMT_ASSERT_OK(munmap(p + hole, hole_len));
		refaults = touch(p, hole, false) +
			   touch(p + hole + hole_len, LEN - hole - hole_len,
				 false);
		vmt_note("%s, %u segments: %ld faults after the split",
			 kind_names[k], s.segments, refaults);
		VMT_ASSERT_EQ(refaults, expect_pmd(&s) ? 2 : 0);
		check_pages(&s, p, hole, 0);
		check_pages(&s, p + hole + hole_len, LEN - hole - hole_len,
			    hole + hole_len);
		munmap(p, LEN);
		source_close(&s);
	}
}

/*
 * Mappings of part of an export, at offsets on and off block boundaries,
 * at aligned and unaligned addresses; and one reaching past the end.
 */
static void partial_mappings_and_offsets(void)
{
	static const struct { size_t offset, len, misalign; } maps[] = {
		{ 0, PAGE, 0 },
		{ 3 * PAGE, BLOCK + 5 * PAGE, 0 },
		{ 3 * PAGE, BLOCK + 5 * PAGE, 3 * PAGE },
		{ BLOCK, 2 * BLOCK, 0 },
		{ BLOCK, 2 * BLOCK, PAGE },
		{ LEN - PAGE, PAGE, 0 },
	};

	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		struct source s;

		if (!source_open(&s, k, 0))
			continue;
		for (size_t i = 0; i < sizeof(maps) / sizeof(*maps); i++) {
			uint8_t *p = peer_map(s.fd, maps[i].len, maps[i].offset,
					      maps[i].misalign, PROT_READ);

			check_pages(&s, p, maps[i].len, maps[i].offset);
			munmap(p, maps[i].len);
		}
		VMT_ASSERT(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, s.fd,
				LEN - PAGE) == MAP_FAILED);
		VMT_ASSERT_EQ(errno, EINVAL);
		source_close(&s);
	}
}

/* A write through a read-only peer mapping: the child dies of SIGSEGV. */
static int write_in_child(uint8_t *p)
{
	pid_t pid = fork();

	VMT_ASSERT(pid >= 0);
	if (!pid) {
		*(volatile uint8_t *)p = 0;
		_exit(0);
	}
	return vmt_wait(pid);
}

static void readonly_export(void)
{
	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		struct source s;
		uint8_t *p;

		if (!source_open(&s, k, VMEMEXP_EXPORT_RDONLY))
			continue;
		VMT_ASSERT(mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED,
				s.fd, 0) == MAP_FAILED);
		VMT_ASSERT_EQ(errno, EACCES);
		p = peer_map(s.fd, LEN, 0, 0, PROT_READ);
		VMT_ASSERT_EQ(touch(p, LEN, false), LEN / BLOCK);
		check_pages(&s, p, LEN, 0);
		VMT_ASSERT_ERRNO(mprotect(p, BLOCK, PROT_READ | PROT_WRITE),
				 EACCES);
		VMT_ASSERT_EQ(write_in_child(p + BLOCK + 9), 128 + SIGSEGV);
		check_pages(&s, p, LEN, 0);
		munmap(p, LEN);
		source_close(&s);
	}
}

/*
 * A child forked with the mapping in place, faulted in or not, reads the
 * exporter's bytes and its writes reach the exporter.
 */
static void fork_keeps_mapping(void)
{
	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		struct source s;

		if (!source_open(&s, k, 0))
			continue;
		for (int faulted = 0; faulted < 2; faulted++) {
			uint8_t *p = peer_map(s.fd, LEN, 0, 0,
					      PROT_READ | PROT_WRITE);
			uint32_t reply = s.seed + 50 + (uint32_t)faulted;
			pid_t pid;

			if (faulted)
				touch(p, LEN, false);
			pid = fork();
			VMT_ASSERT(pid >= 0);
			if (!pid) {
				if (stamped(p, 2 * BLOCK, 0, s.seed) >= 0)
					_exit(1);
				stamp_pages(p + 2 * BLOCK, BLOCK, 2 * BLOCK, reply);
				_exit(0);
			}
			VMT_ASSERT_EQ(vmt_wait(pid), 0);
			VMT_ASSERT_EQ(stamped(s.mem + 2 * BLOCK, BLOCK,
					      2 * BLOCK, reply), -1);
			VMT_ASSERT_EQ(stamped(p + 2 * BLOCK, BLOCK,
					      2 * BLOCK, reply), -1);
			stamp_pages(s.mem + 2 * BLOCK, BLOCK, 2 * BLOCK, s.seed);
			munmap(p, LEN);
		}
		source_close(&s);
	}
}

/*
 * mremap of a faulted-in mapping to another aligned address and to an
 * unaligned one, shrinking it; growing is refused (VM_DONTEXPAND).
 */
static void mremap_moves_mapping(void)
{
	for (enum kind k = PAGES_4K; k <= HUGETLB; k++) {
		struct source s;
		uint8_t *p, *to, *q;

		if (!source_open(&s, k, 0))
			continue;
		p = peer_map(s.fd, LEN, 0, 0, PROT_READ | PROT_WRITE);
		touch(p, LEN, false);

		to = reserve_aligned(LEN);
		q = mremap(p, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		VMT_ASSERT(q == to);
		check_pages(&s, q, LEN, 0);

		to = reserve_aligned(LEN + PAGE) + PAGE;
		p = mremap(q, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		VMT_ASSERT(p == to);
		munmap(p - PAGE, PAGE);
		check_pages(&s, p, LEN, 0);
		stamp_pages(p + 3 * PAGE, BLOCK, 3 * PAGE, s.seed + 7);
		VMT_ASSERT_EQ(stamped(s.mem + 3 * PAGE, BLOCK, 3 * PAGE,
				      s.seed + 7), -1);

		VMT_ASSERT(mremap(p, LEN, LEN + PAGE, 0) == MAP_FAILED);
		VMT_ASSERT_EQ(errno, EFAULT);
		VMT_ASSERT(mremap(p, LEN, BLOCK + PAGE, 0) == p);
		check_pages(&s, p, 3 * PAGE, 0);
		munmap(p, BLOCK + PAGE);
		source_close(&s);
	}
}

static const struct vmt_test tests[] = {
	VMT_TEST(one_fault_per_block),
	VMT_TEST(huge_mapping_split_by_munmap),
	VMT_TEST(partial_mappings_and_offsets),
	VMT_TEST(readonly_export),
	VMT_TEST(fork_keeps_mapping),
	VMT_TEST(mremap_moves_mapping),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
