/* SPDX-License-Identifier: MIT */
/*
 * vmemexp beside the exporters a user would otherwise pick, in one loop.
 *
 * For a memfd's memory of each kind (4 KiB pages, THP, hugetlb) and size,
 * each repetition makes a dma-buf three ways: vmemexp's export of the
 * memfd's mapping, udmabuf's UDMABUF_CREATE of the same memfd, and an
 * allocation of the same size from the system dma-heap (new memory, which
 * the kernel zeroes: what an application that allocates its frames from a
 * heap pays instead); and copies the memory once, the yardstick.  Then a
 * peer maps each dma-buf through libvmshare (vms_mapping_create(), at a
 * 2 MiB-aligned address from 2 MiB on) and reads one byte of every page,
 * and each dma-buf is released.  Medians per column; ratios of columns.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <linux/vmemexp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <drm_fourcc.h>
#include <vmshare.h>

#include "common.h"

enum exporter { VMEMEXP, UDMABUF, DMA_HEAP, N_EXPORTERS };

static const size_t sizes[] = { 4096, 65536, MIB, 8 * MIB, 32 * MIB };
#define N_SIZES (sizeof(sizes) / sizeof(*sizes))

/* The medians of one kind and size. */
struct exporter_result {
	double make[N_EXPORTERS], touch[N_EXPORTERS], release[N_EXPORTERS];
	double copy;
	int err[N_EXPORTERS];	/* why an exporter gave nothing, or 0 */
	uint32_t runs;		/* vmemexp's segments: THP granted or not */
	bool skipped;
	int skip_err;
};

static int vmemexp_dev = -1, udmabuf_dev = -1, heap_dev = -1, heap_err;

static uint8_t *map_aligned(size_t len, int prot, int flags, int fd)
{
	uint8_t *r = mmap(NULL, len + HUGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;
	void *p;

	if (r == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)r + HUGE - 1) & ~(HUGE - 1);
	p = mmap((void *)a, len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		munmap(r, len + HUGE);
		return NULL;
	}
	if (a > (uintptr_t)r)
		munmap(r, a - (uintptr_t)r);
	munmap((void *)(a + len), (uintptr_t)r + HUGE - a);
	return p;
}

bool memfd_source_open(struct memfd_source *s, enum kind kind, size_t size)
{
	unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;

	s->len = kind == PAGES_4K ? size : (size + HUGE - 1) & ~(HUGE - 1);
	if (kind == HUGETLB)
		flags |= MFD_HUGETLB;
	s->memfd = memfd_create("bench-exporters", flags);
	if (s->memfd < 0)
		return false;
	/* udmabuf takes only memfds that cannot shrink. */
	if (ftruncate(s->memfd, (off_t)s->len) < 0 ||
	    fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		goto err;
	s->map = map_aligned(s->len, PROT_READ | PROT_WRITE, MAP_SHARED,
			     s->memfd);
	if (!s->map)
		goto err;
	if (kind != HUGETLB)
		madvise(s->map, s->len,
			kind == THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(s->map, 1, s->len);
	return true;
err:
	close(s->memfd);
	return false;
}

void memfd_source_close(struct memfd_source *s)
{
	munmap(s->map, s->len);
	close(s->memfd);
}

int udmabuf_create(int memfd, size_t size)
{
	struct udmabuf_create create = {
		.memfd = (uint32_t)memfd,
		.flags = UDMABUF_FLAGS_CLOEXEC,
		.size = size,
	};

	if (udmabuf_dev < 0)
		udmabuf_dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (udmabuf_dev < 0)
		return -1;
	return ioctl(udmabuf_dev, UDMABUF_CREATE, &create);
}

static int make_dmabuf(enum exporter x, const struct memfd_source *s,
		       size_t size, uint32_t *runs)
{
	struct vmemexp_export e = {
		.addr = (uintptr_t)s->map,
		.len = size,
		.flags = VMEMEXP_EXPORT_CLOEXEC,
	};
	struct dma_heap_allocation_data alloc = {
		.len = size,
		.fd_flags = O_RDWR | O_CLOEXEC,
	};

	switch (x) {
	case VMEMEXP:
		if (ioctl(vmemexp_dev, VMEMEXP_IOC_EXPORT, &e))
			return -1;
		*runs = e.nr_segments;
		return e.fd;
	case UDMABUF:
		return udmabuf_create(s->memfd, size);
	default:
		if (ioctl(heap_dev, DMA_HEAP_IOCTL_ALLOC, &alloc))
			return -1;
		return (int)alloc.fd;
	}
}

/* A peer's vms_mapping_create() and read of one byte per page. */
static double peer_first_touch_ns(int fd, size_t size)
{
	struct vms_frame frame = {
		.size = size,
		.width = 1024,
		.height = (uint32_t)(size / 4096),
		.fourcc = DRM_FORMAT_XRGB8888,
		.n_planes = 1,
		.strides = { 4096 },
	};
	struct vms_mapping *map;
	volatile uint8_t *p;
	double t0 = now_ns(), t;

	map = vms_mapping_create(fd, &frame);
	if (!map)
		return -1;
	p = vms_mapping_plane(map, 0);
	for (size_t i = 0; i < size; i += 4096)
		(void)p[i];
	t = now_ns() - t0;
	vms_mapping_unref(map);
	return t;
}

/*
 * The order of the three in a repetition: every permutation in turn, so
 * that each goes first as often as the others and follows each other one
 * as often.  Whatever follows the dma-heap's allocation, which zeroes the
 * whole size, finds cold caches (and under TCG a cold software TLB): a
 * rotation (x + i) % 3 put vmemexp there in two repetitions of three and
 * udmabuf never, which made vmemexp's export of 8 MiB of THP look 1.6
 * times udmabuf's; in every order in turn the two cost about the same.
 */
#define N_ORDERS 6
static const uint8_t orders[N_ORDERS][N_EXPORTERS] = {
	{ VMEMEXP, UDMABUF, DMA_HEAP }, { VMEMEXP, DMA_HEAP, UDMABUF },
	{ UDMABUF, VMEMEXP, DMA_HEAP }, { UDMABUF, DMA_HEAP, VMEMEXP },
	{ DMA_HEAP, VMEMEXP, UDMABUF }, { DMA_HEAP, UDMABUF, VMEMEXP },
};

static void measure(struct exporter_result *r, enum kind kind, size_t size)
{
	static double make[N_EXPORTERS][MAX_REPS], touch[N_EXPORTERS][MAX_REPS],
		release[N_EXPORTERS][MAX_REPS], copy[MAX_REPS];
	int reps = reps_for(size), fds[N_EXPORTERS];
	struct memfd_source s;
	uint8_t *pool;

	memset(r, 0, sizeof(*r));
	if (heap_dev < 0)
		r->err[DMA_HEAP] = heap_err;
	pool = map_aligned(size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (!pool || !memfd_source_open(&s, kind, size)) {
		r->skipped = true;
		r->skip_err = errno;
		if (pool)
			munmap(pool, size);
		return;
	}
	memset(pool, 0, size);
	for (int i = 0; i < reps; i++) {
		double t0;

		const uint8_t *order = orders[i % N_ORDERS];

		for (int j = 0; j < N_EXPORTERS; j++) {
			int x = order[j];

			t0 = now_ns();
			fds[x] = r->err[x] ? -1 :
				 make_dmabuf((enum exporter)x, &s, size, &r->runs);
			make[x][i] = now_ns() - t0;
			if (fds[x] < 0 && !r->err[x])
				r->err[x] = errno;
		}
		t0 = now_ns();
		memcpy(pool, s.map, size);
		copy[i] = now_ns() - t0;
		for (int j = 0; j < N_EXPORTERS; j++) {
			int x = order[j];

			if (fds[x] < 0)
				continue;
			touch[x][i] = peer_first_touch_ns(fds[x], size);
			t0 = now_ns();
			close(fds[x]);
			release[x][i] = now_ns() - t0;
		}
	}
	r->copy = median(copy, reps);
	for (int x = 0; x < N_EXPORTERS; x++) {
		if (r->err[x])
			continue;
		r->make[x] = median(make[x], reps);
		r->touch[x] = median(touch[x], reps);
		r->release[x] = median(release[x], reps);
	}
	memfd_source_close(&s);
	munmap(pool, size);
}

static const char *us(double ns, int err)
{
	static char text[8][48];
	static int next;
	char *t = text[next++ % 8];

	if (err)
		snprintf(t, sizeof(text[0]), "n/a (%s)", strerror(err));
	else
		snprintf(t, sizeof(text[0]), "%.1f µs", ns / 1e3);
	return t;
}

static const char *ratio_or_na(double part, int part_err, double whole,
			       int whole_err)
{
	return part_err || whole_err ? "n/a" : ratio(part, whole);
}

static const char *const what[] = {
	"making the dma-buf (vmemexp: export of the memfd's mapping; udmabuf: UDMABUF_CREATE of the memfd; dma-heap: allocation from the system heap)",
	"a peer's mmap and first touch of every page (vms_mapping_create())",
	"release (close of the last fd)",
};

static void print_table(int which, struct exporter_result r[N_KINDS][N_SIZES])
{
	out("\n%s, memcpy of the same memory alternating with them:\n\n", what[which]);
	out("| memory | size | vmemexp | udmabuf | dma-heap | memcpy | vmemexp/udmabuf | vmemexp/memcpy |\n");
	out("|---|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < N_KINDS; k++) {
		for (size_t s = 0; s < N_SIZES; s++) {
			const struct exporter_result *x = &r[k][s];
			const double *v = which == 0 ? x->make :
					  which == 1 ? x->touch : x->release;

			if (x->skipped) {
				out("| %s | %zu KiB | (no memory: %s) | | | | | |\n",
				    kind_names[k], sizes[s] >> 10,
				    strerror(x->skip_err));
				continue;
			}
			out("| %s (%u runs) | %zu KiB | %s | %s | %s | %s | %s | %s |\n",
			    kind_names[k], x->runs, sizes[s] >> 10,
			    us(v[VMEMEXP], x->err[VMEMEXP]),
			    us(v[UDMABUF], x->err[UDMABUF]),
			    us(v[DMA_HEAP], x->err[DMA_HEAP]),
			    us(x->copy, 0),
			    ratio_or_na(v[VMEMEXP], x->err[VMEMEXP],
					v[UDMABUF], x->err[UDMABUF]),
			    ratio_or_na(v[VMEMEXP], x->err[VMEMEXP], x->copy, 0));
		}
	}
}

void shmem_thp_advise(bool on)
{
	static const char path[] =
		"/sys/kernel/mm/transparent_hugepage/shmem_enabled";
	static char found[32];
	char line[128] = "", *sel, *end;
	FILE *f;

	if (on) {
		/* "always within_size [advise] never deny force" */
		f = fopen(path, "r");
		if (!f)
			return;
		if (fgets(line, sizeof(line), f) && (sel = strchr(line, '[')) &&
		    (end = strchr(sel, ']'))) {
			*end = 0;
			snprintf(found, sizeof(found), "%s", sel + 1);
		}
		fclose(f);
	}
	if (!on && !*found)
		return;
	f = fopen(path, "w");
	if (f) {
		fputs(on ? "advise" : found, f);
		fclose(f);
	}
}

void exporter_rows(void)
{
	static struct exporter_result r[N_KINDS][N_SIZES];

	vmemexp_dev = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);
	heap_dev = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	heap_err = heap_dev < 0 ? errno : 0;
	for (int k = 0; k < N_KINDS; k++)
		for (size_t s = 0; s < N_SIZES; s++)
			measure(&r[k][s], (enum kind)k, sizes[s]);
	out("\n### vmemexp, udmabuf and the system dma-heap, for a memfd's memory\n");
	for (int which = 0; which < 3; which++)
		print_table(which, r);
	close(vmemexp_dev);
	if (heap_dev >= 0)
		close(heap_dev);
}
