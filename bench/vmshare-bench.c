/* SPDX-License-Identifier: MIT */
/*
 * vmshare-bench: what sharing memory through vmemexp costs, against copying
 * it into a shared pool, measured side by side in one run.
 *
 * Every figure is the median of repeated runs, and every comparison is a
 * ratio of two things measured alternately in the same loop, so a shared,
 * noisy machine moves both sides alike.  Prints a markdown table and writes
 * it with a data file for the chart into the directory given (default .).
 *
 *   vmshare-bench [--out DIR] [--quick]
 *                 [--only export|exporters|resend|pipeline]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/vmemexp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <drm_fourcc.h>
#include <vmshare.h>

#include "common.h"

static FILE *data;
static int dev;

/* Source memory of one kind, faulted in. */
static void *source_memory(enum kind kind, size_t size)
{
	size_t len = size < HUGE && kind != PAGES_4K ? HUGE : size;
	uint8_t *p, *aligned;

	if (kind == HUGETLB) {
		p = mmap(NULL, (len + HUGE - 1) & ~(HUGE - 1),
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		memset(p, 1, size);
		return p;
	}
	p = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	madvise(aligned, len, kind == THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(aligned, 1, size);
	return aligned;
}

/* A memfd mapping, faulted in: the wl_shm pool a copying client fills. */
static void *pool_memory(size_t size)
{
	int fd = memfd_create("bench-pool", MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return NULL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, size);
	return p;
}

static int export_fd(void *p, size_t size)
{
	struct vmemexp_export e = { .addr = (uintptr_t)p, .len = size,
				    .flags = VMEMEXP_EXPORT_CLOEXEC };

	return ioctl(dev, VMEMEXP_IOC_EXPORT, &e) ? -1 : e.fd;
}

/* Touches one byte per page of a peer's mapping of the dma-buf. */
static double first_touch_ns(int fd, size_t size)
{
	volatile uint8_t *map;
	double t0 = now_ns(), t;

	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -1;
	for (size_t i = 0; i < size; i += 4096)
		(void)map[i];
	t = now_ns() - t0;
	munmap((void *)map, size);
	return t;
}

static void export_row(enum kind kind, size_t size)
{
	static double exp[MAX_REPS], rel[MAX_REPS], cpy[MAX_REPS], touch[MAX_REPS];
	void *src = source_memory(kind, size), *pool = pool_memory(size);
	int reps = reps_for(size);
	double e, r, c, t;

	if (!src || !pool) {
		out("| %s | %zu KiB | (no memory: %s) | | | | | |\n",
		    kind_names[kind], size >> 10, strerror(errno));
		return;
	}
	/* Export and release against a copy, alternating. */
	for (int i = 0; i < reps; i++) {
		double t0 = now_ns(), t1, t2;
		int fd = export_fd(src, size);

		t1 = now_ns();
		if (fd < 0) {
			out("| %s | %zu KiB | export failed: %s | | | | | |\n",
			    kind_names[kind], size >> 10, strerror(errno));
			return;
		}
		close(fd);
		t2 = now_ns();
		memcpy(pool, src, size);
		cpy[i] = now_ns() - t2;
		exp[i] = t1 - t0;
		rel[i] = t2 - t1;
	}
	/* A peer's first touch of every page, in a loop of its own. */
	for (int i = 0; i < reps; i++) {
		int fd = export_fd(src, size);

		touch[i] = fd < 0 ? -1 : first_touch_ns(fd, size);
		close(fd);
		memcpy(pool, src, size);
	}
	e = median(exp, reps);
	r = median(rel, reps);
	c = median(cpy, reps);
	t = median(touch, reps);
	out("| %s | %zu KiB | %.1f µs | %.0f ns | %.1f µs | %s | %.1f µs | %.1f µs |\n",
	    kind_names[kind], size >> 10, e / 1e3, e / (double)(size / 4096),
	    c / 1e3, ratio(e, c), t / 1e3, r / 1e3);
	fprintf(data, "%d %zu %.1f %.1f %.1f %.1f\n", kind, size, e, c, t, r);
	munmap(pool, size);
	munmap(src, size);
}

static double measure_bandwidth(void)
{
	size_t size = 64 * MIB;
	void *a = source_memory(PAGES_4K, size), *b = pool_memory(size);
	double best = 0;

	if (!a || !b)
		return 0;
	for (int i = 0; i < 5; i++) {
		double t0 = now_ns();

		memcpy(b, a, size);
		double gbs = size / (now_ns() - t0);

		if (gbs > best)
			best = gbs;
	}
	munmap(a, size);
	munmap(b, size);
	return best;
}

/* Re-sending a frame the peer already holds, against copying it. */
static void resend_rows(void)
{
	size_t size = 8 * MIB;
	static double note[MAX_REPS], withfd[MAX_REPS], cache[MAX_REPS],
		asked[MAX_REPS], cpy[MAX_REPS], null[MAX_REPS];
	struct vmemexp_status st;
	int status_err = 0;
	struct vms_context *ctx = vms_context_create(VMS_CONTEXT_REQUIRE_MODULE);
	void *src = source_memory(THP, size), *pool = pool_memory(size);
	struct vms_buffer *buf;
	struct vms_frame frame, got;
	int sv[2], reps = reps_for(size) * 4, fd;
	uint64_t token = 0;

	if (!ctx || !src || !pool ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		out("(re-send rows skipped: %s)\n", strerror(errno));
		return;
	}
	buf = vms_buffer_export(ctx, src, size, 0);
	vms_frame_describe(&frame, buf, (uint32_t)(size / 4 / 1024), 1024,
			   DRM_FORMAT_XRGB8888, (uint32_t)(size / 1024));
	/* Each step right after a copy of its own, as the floor below. */
	for (int i = 0; i < reps; i++) {
		struct vms_buffer *again;
		double t0 = now_ns();

		memcpy(pool, src, size);
		cpy[i] = now_ns() - t0;
		/* A note that the frame changed: the peer maps it already. */
		t0 = now_ns();
		send(sv[0], &token, sizeof(token), 0);
		recv(sv[1], &token, sizeof(token), 0);
		note[i] = now_ns() - t0;

		memcpy(pool, src, size);
		/* The buffer's fd again, with its descriptor. */
		t0 = now_ns();
		vms_send_buffers(sv[0], &frame, &buf, 1);
		vms_recv(sv[1], &got, &fd, 1);
		close(fd);
		withfd[i] = now_ns() - t0;

		memcpy(pool, src, size);
		/* libvmshare asked to export the same memory again. */
		t0 = now_ns();
		again = vms_buffer_export(ctx, src, size, 0);
		vms_buffer_unref(again);
		cache[i] = now_ns() - t0;

		memcpy(pool, src, size);
		/* The check that reuse makes without a system call, by ioctl. */
		t0 = now_ns();
		st = (struct vmemexp_status){ .fd = vms_buffer_fd(buf) };
		if (ioctl(dev, VMEMEXP_IOC_STATUS, &st))
			status_err = errno;
		else if (!(st.flags & VMEMEXP_STATUS_CURRENT))
			status_err = ESTALE;
		asked[i] = now_ns() - t0;
	}
	/*
	 * The floor under every row here: a system call that does nothing,
	 * right after a copy as each of them is, in a loop of its own.
	 */
	for (int i = 0; i < reps; i++) {
		double t0 = now_ns();

		syscall(SYS_getppid);
		null[i] = now_ns() - t0;
		memcpy(pool, src, size);
	}
	double c = median(cpy, reps), n = median(note, reps);
	double w = median(withfd, reps), x = median(cache, reps);
	double a = median(asked, reps);
	double z = median(null, reps);

	out("\n| re-sending an exported 8 MiB frame | time | copying 8 MiB | ratio |\n");
	out("|---|---|---|---|\n");
	out("| a note (the peer keeps its mapping) | %.1f µs | %.0f µs | %s |\n",
	    n / 1e3, c / 1e3, ratio(n, c));
	out("| the fd and descriptor again (SCM_RIGHTS, close) | %.1f µs | %.0f µs | %s |\n",
	    w / 1e3, c / 1e3, ratio(w, c));
	out("| vms_buffer_export() of the same memory again | %.1f µs | %.0f µs | %s |\n",
	    x / 1e3, c / 1e3, ratio(x, c));
	if (status_err)
		out("| the same check by VMEMEXP_IOC_STATUS | failed: %s | | |\n",
		    strerror(status_err));
	else
		out("| the same check by VMEMEXP_IOC_STATUS (no status page) | %.1f µs | %.0f µs | %s |\n",
		    a / 1e3, c / 1e3, ratio(a, c));
	out("| floor: one system call that does nothing (getppid) | %.1f µs | %.0f µs | %s |\n",
	    z / 1e3, c / 1e3, ratio(z, c));
	vms_buffer_unref(buf);
	vms_context_unref(ctx);
	close(sv[0]);
	close(sv[1]);
	munmap(src, size);
	munmap(pool, size);
}

/*
 * The frame pipeline through libvmshare, one consumer per way of sharing,
 * the ways taking turns frame by frame.  The consumer reads one byte per
 * page of every frame, as a compositor sampling it would at least.
 */
enum way {
	COPY_PER_FRAME, EXPORT_PER_FRAME, EXPORT_ONCE, UDMABUF_PER_FRAME, N_WAYS
};
static const char *const way_names[] = {
	"copy into a memfd pool per frame", "export per frame",
	"export once, re-send", "udmabuf of a memfd per frame",
};

static int consume(int sock)
{
	struct vms_mapping *map = NULL;
	struct vms_frame frame;
	uint64_t tag = 0;
	int fd, n;

	while ((n = vms_recv(sock, &frame, &fd, 1)) == 1) {
		volatile uint8_t *p;

		/* A buffer seen before (the same tag) keeps its mapping. */
		if (!map || frame.tag != tag) {
			vms_mapping_unref(map);
			map = vms_mapping_create(fd, &frame);
			tag = frame.tag;
		}
		close(fd);
		if (!map)
			return 1;
		p = vms_mapping_plane(map, 0);
		for (uint64_t i = 0; i < (uint64_t)frame.strides[0] * frame.height;
		     i += 4096)
			(void)p[i];
		if (send(sock, "k", 1, MSG_NOSIGNAL) != 1)
			break;
	}
	vms_mapping_unref(map);
	return n < 0;
}

static void pipeline_rows(uint32_t width, uint32_t height, int frames)
{
	uint32_t stride = width * 4;
	size_t size = (size_t)stride * height;
	static double wall[N_WAYS][64], cpu[N_WAYS][64];
	struct vms_context *ctx = vms_context_create(VMS_CONTEXT_REQUIRE_MODULE);
	struct vms_buffer *once = NULL, *pool = NULL;
	uint8_t *pixels = source_memory(THP, size);
	int socks[N_WAYS], pids[N_WAYS], udmabuf_err = 0;
	struct memfd_source memfd_pixels;
	struct vms_frame frame;

	if (!ctx || !pixels) {
		out("(pipeline rows skipped: %s)\n", strerror(errno));
		return;
	}
	/* udmabuf takes only a memfd: its way draws into one (THP). */
	if (!memfd_source_open(&memfd_pixels, THP, size)) {
		out("(pipeline rows skipped: memfd: %s)\n", strerror(errno));
		return;
	}
	for (int w = 0; w < N_WAYS; w++) {
		int sv[2];

		socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
		pids[w] = fork();
		if (pids[w] == 0) {
			/* Our ends of the earlier consumers' sockets, or they never see EOF. */
			for (int o = 0; o < w; o++)
				close(socks[o]);
			close(sv[0]);
			_exit(consume(sv[1]));
		}
		close(sv[1]);
		socks[w] = sv[0];
	}
	pool = vms_buffer_alloc(ctx, size);
	once = vms_buffer_export(ctx, pixels, size, 0);
	if (!pool || !once)
		return;
	if (frames > 64)
		frames = 64;

	for (int f = 0; f < frames; f++) {
		for (int w = 0; w < N_WAYS; w++) {
			double t0 = now_ns(), c0 = cpu_ns();
			struct vms_buffer *buf = w == COPY_PER_FRAME ? pool :
						 w == EXPORT_ONCE ? once : NULL;
			char ack;
			int fd;

			if (w == UDMABUF_PER_FRAME) {
				if (udmabuf_err)
					continue;
				memfd_pixels.map[f * 4096 % size] = (uint8_t)f;
				fd = udmabuf_create(memfd_pixels.memfd, size);
				if (fd < 0) {
					udmabuf_err = errno;
					continue;
				}
				frame = (struct vms_frame){
					.size = size, .width = width,
					.height = height,
					.fourcc = DRM_FORMAT_XRGB8888,
					.n_planes = 1, .strides = { stride },
					.tag = 200u + (unsigned)f,
				};
				if (vms_send(socks[w], &frame, &fd, 1) ||
				    recv(socks[w], &ack, 1, 0) != 1) {
					close(fd);
					return;
				}
				close(fd);
				wall[w][f] = now_ns() - t0;
				cpu[w][f] = cpu_ns() - c0;
				continue;
			}
			pixels[f * 4096 % size] = (uint8_t)f;	/* the frame changed */
			if (w == COPY_PER_FRAME)
				memcpy(vms_buffer_data(pool), pixels, size);
			if (w == EXPORT_PER_FRAME)
				buf = vms_buffer_export(ctx, pixels, size, 0);
			vms_frame_describe(&frame, buf, width, height, DRM_FORMAT_XRGB8888,
					   stride);
			/* The tag names the buffer: the same one is not remapped. */
			frame.tag = w == EXPORT_PER_FRAME ? 100u + (unsigned)f : (unsigned)w;
			if (vms_send_buffers(socks[w], &frame, &buf, 1) ||
			    recv(socks[w], &ack, 1, 0) != 1)
				return;
			if (w == EXPORT_PER_FRAME)
				vms_buffer_unref(buf);
			wall[w][f] = now_ns() - t0;
			cpu[w][f] = cpu_ns() - c0;
		}
	}
	out("\n| %ux%u XRGB8888 frame pipeline (%d frames each) | frames/s | producer CPU per frame | wall per frame |\n",
	    width, height, frames);
	out("|---|---|---|---|\n");
	for (int w = 0; w < N_WAYS; w++) {
		double wm, cm;

		if (w == UDMABUF_PER_FRAME && udmabuf_err) {
			out("| %s | n/a (%s) | | |\n", way_names[w],
			    strerror(udmabuf_err));
			continue;
		}
		wm = median(wall[w], frames);
		cm = median(cpu[w], frames);
		out("| %s | %.1f | %.2f ms | %.2f ms |\n", way_names[w], 1e9 / wm,
		    cm / 1e6, wm / 1e6);
	}
	for (int w = 0; w < N_WAYS; w++) {
		close(socks[w]);
		waitpid(pids[w], NULL, 0);
	}
	vms_buffer_unref(once);
	vms_buffer_unref(pool);
	vms_context_unref(ctx);
	memfd_source_close(&memfd_pixels);
	munmap(pixels, size);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'O' },
		{ 0 },
	};
	static const size_t sizes[] = { 4096, 65536, MIB, 8 * MIB, 32 * MIB,
					256 * MIB };
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	const char *dir = ".", *only = "";
	char path[4096];
	double bw;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 'o')
			dir = optarg;
		else if (opt == 'q')
			quick = true;
		else if (opt == 'O')
			only = optarg;
		else
			return 2;
	}
	dev = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		fprintf(stderr, "vmshare-bench: /dev/vmemexp: %s (run it in the guest)\n",
			strerror(errno));
		return 77;
	}
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	/* 256 MiB of hugetlb pages, where the system lets us reserve them. */
	FILE *hp = fopen("/proc/sys/vm/nr_hugepages", "w");

	if (hp) {
		fprintf(hp, "%d\n", 136);
		fclose(hp);
	}
	snprintf(path, sizeof(path), "%s/bench.md", dir);
	table = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/export.dat", dir);
	data = fopen(path, "w");
	if (!table || !data) {
		fprintf(stderr, "vmshare-bench: cannot write into %s\n", dir);
		return 1;
	}

	bw = measure_bandwidth();
	out("memcpy bandwidth, measured in this run: %.2f GB/s (%.0f ns per 4 KiB page)\n\n",
	    bw, 4096 / bw);
	out("| memory | size | export | per page | memcpy into a memfd pool | export/copy | peer's first touch | release |\n");
	out("|---|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < N_KINDS && (!*only || !strcmp(only, "export")); k++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++)
			export_row((enum kind)k, sizes[s]);
	shmem_thp_advise(true);
	if (!*only || !strcmp(only, "exporters"))
		exporter_rows();
	if (!*only || !strcmp(only, "resend"))
		resend_rows();
	if (!*only || !strcmp(only, "pipeline")) {
		pipeline_rows(1920, 1080, quick ? 8 : 30);
		pipeline_rows(3840, 2160, quick ? 4 : 12);
	}
	shmem_thp_advise(false);
	fclose(data);
	fclose(table);
	return 0;
}
