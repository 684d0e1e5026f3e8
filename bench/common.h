/* SPDX-License-Identifier: MIT */
/*
 * What the benchmark's parts share: clocks, medians, ratios and the table
 * every row goes to (printed and written to DIR/bench.md).
 */
#ifndef VMSHARE_BENCH_COMMON_H
#define VMSHARE_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define MIB (1ul << 20)
#define HUGE (2ul << 20)
#define MAX_REPS 401

enum kind { PAGES_4K, THP, HUGETLB, N_KINDS };
extern const char *const kind_names[N_KINDS];

extern FILE *table;	/* bench.md */
extern bool quick;	/* --quick: fewer repetitions */

double now_ns(void);
double cpu_ns(void);
/* Sorts @v; its median. */
double median(double *v, int n);
/* "1/N" when @part is the cheaper, "N×" (more expensive) otherwise. */
const char *ratio(double part, double whole);
/* Prints a piece of the table and writes it to bench.md. */
void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Repetitions for a size: fewer for larger, all odd. */
int reps_for(size_t size);

/* vmemexp's, udmabuf's and the system dma-heap's costs (exporters.c). */
void exporter_rows(void);
/* A dma-buf of [0, size) of @memfd from udmabuf, or -1 with errno set. */
int udmabuf_create(int memfd, size_t size);

/* A memfd (sealed against shrinking) mapped 2 MiB-aligned and filled. */
struct memfd_source {
	int memfd;
	unsigned char *map;
	size_t len;		/* whole huge pages for THP and hugetlb */
};
bool memfd_source_open(struct memfd_source *s, enum kind kind, size_t size);
void memfd_source_close(struct memfd_source *s);
/*
 * Lets memfds follow MADV_HUGEPAGE (shmem_enabled "advise") for the run,
 * and puts the mode found back afterwards.
 */
void shmem_thp_advise(bool on);

#endif /* VMSHARE_BENCH_COMMON_H */
