/* SPDX-License-Identifier: MIT */
/* What the benchmark's parts share (common.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "common.h"

const char *const kind_names[N_KINDS] = { "4 KiB pages", "THP", "hugetlb" };
FILE *table;
bool quick;

double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), compare);
	return v[n / 2];
}

const char *ratio(double part, double whole)
{
	static char text[4][32];
	static int next;
	char *t = text[next++ % 4];

	if (part <= whole)
		snprintf(t, sizeof(text[0]), "1/%.0f", whole / part);
	else
		snprintf(t, sizeof(text[0]), "%.1f×", part / whole);
	return t;
}

void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	vfprintf(table, fmt, ap);
	va_end(ap);
	fflush(stdout);
}

int reps_for(size_t size)
{
	int reps = size <= MIB ? 201 : size <= 8 * MIB ? 31 : size <= 32 * MIB ? 11 : 5;

	return quick ? reps / 4 + 3 : reps;
}
