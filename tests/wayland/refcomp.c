/* SPDX-License-Identifier: MIT */
/*
 * refcomp: the reference Wayland compositor of the tests.  It renders
 * nothing; it maps every committed buffer (wl_shm or linux-dmabuf),
 * checksums the pixels and logs one line per event the tests look at.
 * Its globals: wl_compositor, wl_subcompositor (sub-surfaces' commits
 * apply at once, as in desync mode), wl_shm, xdg_wm_base, wl_output,
 * wp_presentation and, unless --no-dmabuf, zwp_linux_dmabuf_v1.
 *
 *   refcomp [--socket NAME] [--log FILE] [--size WxH]
 *           [--frame-interval-ms MS] [--no-dmabuf] [--refuse-dmabuf]
 *           [--formats LIST] [--modifier linear|implicit] [--hold-buffers]
 *           [--hold-count N] [--release-delay-ms MS]
 *           [--exit-after-frames N] [--timeout S] [--exit-on-client-gone]
 *           [--frame-time-step MS]
 *           [--dmabuf-version 3|4] [--bad-feedback size|index|unmappable]
 *           [--shm-nv12]
 *
 * --socket NAME          listen on $XDG_RUNTIME_DIR/NAME (default: the
 *                        first free wayland-N)
 * --log FILE             the log below (default stdout); line-buffered
 * --size WxH             size sent in xdg_toplevel.configure (default 0x0:
 *                        the client chooses)
 * --frame-interval-ms MS frame callbacks and presentation feedback fire
 *                        on a timer this long after the commit (default 16;
 *                        0 fires them within the commit)
 * --no-dmabuf            no zwp_linux_dmabuf_v1 global
 * --refuse-dmabuf        every import fails: create sends `failed`,
 *                        create_immed posts INVALID_WL_BUFFER
 * --formats LIST         fourcc names offered over linux-dmabuf, comma
 *                        separated, or "none" (default AR24,XR24,NV12;
 *                        known: AR24 XR24 AB24 XB24 RG16 NV12)
 * --modifier M           the one modifier offered: linear
 *                        (DRM_FORMAT_MOD_LINEAR, default) or implicit
 *                        (DRM_FORMAT_MOD_INVALID, what Weston 10 lists);
 *                        a buffer with any other modifier is `failed`
 * --hold-buffers         keep the current buffer until the next commit
 *                        replaces it, as a compositor that samples it would
 * --hold-count N         keep the last N committed buffers (1 to 4; 1 is
 *                        --hold-buffers): 2 is what a compositor scanning
 *                        buffers out holds, one on screen and one queued
 * --release-delay-ms MS  send each wl_buffer.release MS after it is due:
 *                        a compositor still reading, or a late flip
 * --exit-after-frames N  exit 0 after N frames
 * --timeout S            exit 2 after S seconds unless the run ended first
 * --exit-on-client-gone  when the last client disconnects, exit 0 if N
 *                        frames (--exit-after-frames, default 0) were seen,
 *                        else 2
 * --frame-time-step MS   frame callbacks carry the number of ticks so far
 *                        times MS as their time, not the clock: clients
 *                        that draw from that time (weston-simple-shm) then
 *                        draw the same frames in every run
 * --dmabuf-version V     the zwp_linux_dmabuf_v1 version advertised: 3
 *                        (default: format and modifier events) or 4 (no
 *                        such events; get_default_feedback and
 *                        get_surface_feedback answer with a format table
 *                        memfd of the offered formats with --modifier, one
 *                        tranche of all of them, main_device and the
 *                        tranche's target device 0)
 * --bad-feedback KIND    with version 4, feedback a buggy or hostile
 *                        compositor might send: size, a format table size 8
 *                        bytes more than its entries, not a multiple of 16;
 *                        index, a tranche index one past the table's end;
 *                        unmappable, the table fd opened write-only
 * --shm-nv12             also offer NV12 over wl_shm, laid out as
 *                        compositors that take it assume (wl_shm has no
 *                        plane offsets): the UV plane follows the Y plane's
 *                        height rows directly, with the same stride
 * SIGTERM or SIGINT end the run with status 0.
 *
 * Buffer release: refcomp reads a buffer once, when the commit that
 * attached it is applied, and keeps neither a copy nor a reference, so it
 * sends wl_buffer.release right after that read.  A client can therefore
 * reuse one buffer for every frame; --hold-buffers instead releases a
 * buffer only when a later commit replaces it, to exercise double
 * buffering.  A buffer attached and committed while refcomp has not yet
 * released it (held, or its release still delayed) is a client drawing
 * into memory the compositor reads: refcomp logs busy-reuse and counts it.
 *
 * The log, one line per event, "key=value" fields separated by spaces
 * (a contract: tests/wayland/run-refcomp-test parses it):
 *
 *   ready socket=<name>
 *   shm-pool id=<wl_shm_pool id> size=<bytes>
 *   dmabuf-feedback id=<feedback id> kind=default|surface formats=<n>
 *       table_size=<bytes>
 *   dmabuf-params id=<params id> planes=<n> width=<w> height=<h>
 *       format=0x%08x modifier=0x%016llx result=created|failed reason=<word>
 *   frame seq=<n> path=dmabuf|shm width=<w> height=<h> stride=<plane 0>
 *       format=0x%08x checksum=%016llx
 *   busy-reuse seq=<n of the frame that reused a held buffer>
 *   summary frames=<n> dmabuf=<n> shm=<n> shm_pools=<n> dmabuf_created=<n>
 *       dmabuf_failed=<n> busy_reuse=<n>
 *       dmabuf_created=<n> dmabuf_failed=<n>
 *
 * (dmabuf-feedback, dmabuf-params, frame and summary are one line each.)  One
 * dmabuf-params line per create or create_immed request; reason is "ok"
 * when created, else one of refused, format-not-offered,
 * modifier-not-offered, flags, mmap (the import failed: `failed` event or
 * INVALID_WL_BUFFER) or already-used, incomplete, invalid-format,
 * invalid-dimensions, out-of-bounds (protocol errors).  modifier is plane
 * 0's.  One frame line per commit that applies a newly attached buffer
 * (to any wl_surface, whether it has a role or not);
 * seq counts them from 0 over all surfaces, like the `committed <n>` lines
 * the frame tap (tests/wayland/frame-tap.c) prints.  format is the DRM fourcc
 * (wl_shm's codes 0 and 1 are translated).  checksum is FNV-1a 64 (offset
 * basis 1469598103934665603, prime 1099511628211) over the visible bytes of
 * every row of every plane in order: width * 4 bytes per row for the
 * 32-bit formats; for NV12 width bytes of each of the height Y rows, then
 * the UV plane's rows.  summary is written at every exit but SIGKILL.
 *
 * Client errors are protocol errors with the interface's own code, never
 * a crash: a buffer truncated under refcomp's mapping is caught (SIGBUS)
 * and posted as an error on that wl_buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/dma-buf.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <wayland-server.h>

#include "linux-dmabuf-unstable-v1-server-protocol.h"
#include "presentation-time-server-protocol.h"
#include "xdg-shell-server-protocol.h"

#define FOURCC(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | \
			    (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define DRM_FORMAT_MOD_LINEAR 0ull
#define DRM_FORMAT_MOD_INVALID 0x00ffffffffffffffull
#define MAX_PLANES 4
#define MAX_PENDING_SERIALS 16
#define OUTPUT_WIDTH 640
#define OUTPUT_HEIGHT 480

struct format {
	uint32_t fourcc;
	const char *name;
	int32_t shm;		/* wl_shm code, -1: not over wl_shm */
	uint32_t n_planes;
	uint32_t cpp[2], hsub[2], vsub[2];
};

static const struct format formats[] = {
	{ FOURCC('A', 'R', '2', '4'), "AR24", WL_SHM_FORMAT_ARGB8888, 1,
	  { 4 }, { 1 }, { 1 } },
	{ FOURCC('X', 'R', '2', '4'), "XR24", WL_SHM_FORMAT_XRGB8888, 1,
	  { 4 }, { 1 }, { 1 } },
	{ FOURCC('A', 'B', '2', '4'), "AB24", WL_SHM_FORMAT_ABGR8888, 1,
	  { 4 }, { 1 }, { 1 } },
	{ FOURCC('X', 'B', '2', '4'), "XB24", WL_SHM_FORMAT_XBGR8888, 1,
	  { 4 }, { 1 }, { 1 } },
	{ FOURCC('R', 'G', '1', '6'), "RG16", WL_SHM_FORMAT_RGB565, 1,
	  { 2 }, { 1 }, { 1 } },
	/* wl_shm has no plane offsets, so NV12 comes only as a dma-buf. */
	{ FOURCC('N', 'V', '1', '2'), "NV12", -1, 2,
	  { 1, 2 }, { 1, 2 }, { 1, 2 } },
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

static struct {
	const char *socket, *log_path;
	int32_t width, height;
	uint32_t frame_interval_ms, exit_after_frames, timeout_s;
	uint32_t frame_time_step;
	bool no_dmabuf, refuse_dmabuf, exit_on_client_gone;
	uint32_t hold_count, release_delay_ms;
	bool offered[N_FORMATS];
	uint64_t modifier;
	uint32_t dmabuf_version;
	const char *bad_feedback;
	bool shm_nv12;
} opt = {
	.frame_interval_ms = 16,
	.dmabuf_version = 3,
	.modifier = DRM_FORMAT_MOD_LINEAR,
};

static struct {
	struct wl_display *display;
	FILE *log;
	int status;
	struct wl_list surfaces;	/* surface.link */
	struct wl_event_source *tick;
	bool tick_armed;
	uint64_t present_seq;
	unsigned int clients;
	unsigned int frames, dmabuf_frames, shm_frames, shm_pools;
	unsigned int dmabuf_created, dmabuf_failed, busy_reuses;
	struct wl_list delayed;		/* delayed_release.link */
} rc;

/* ---- buffers ---------------------------------------------------------- */

struct shm_pool {
	int refs;
	int fd;			/* kept for resize */
	void *data;
	int32_t size;
};

struct plane {
	int fd;			/* kept for DMA_BUF_IOCTL_SYNC around reads */
	void *map;
	size_t map_len;
	uint32_t offset, stride;
};

struct buffer {
	struct wl_resource *resource;
	const struct format *fmt;
	int32_t width, height;
	bool dmabuf;
	struct shm_pool *pool;	/* wl_shm: planes[0] is offset and stride */
	uint32_t n_planes;
	struct plane planes[MAX_PLANES];
};

/*
 * A new resource with its implementation, or NULL after telling the client
 * it ran out of memory: every object refcomp creates goes through here.
 */
static struct wl_resource *new_resource(struct wl_client *client,
					const struct wl_interface *iface,
					int version, uint32_t id,
					const void *impl, void *data,
					wl_resource_destroy_func_t destroy)
{
	struct wl_resource *res = wl_resource_create(client, iface, version,
						     id);

	if (!res) {
		wl_client_post_no_memory(client);
		return NULL;
	}
	wl_resource_set_implementation(res, impl, data, destroy);
	return res;
}

static const struct format *format_by_fourcc(uint32_t fourcc)
{
	for (size_t i = 0; i < N_FORMATS; i++)
		if (formats[i].fourcc == fourcc)
			return &formats[i];
	return NULL;
}

static const struct format *format_by_shm(uint32_t code)
{
	if (opt.shm_nv12 && code == WL_SHM_FORMAT_NV12)
		return format_by_fourcc(FOURCC('N', 'V', '1', '2'));
	for (size_t i = 0; i < N_FORMATS; i++)
		if (formats[i].shm >= 0 && (uint32_t)formats[i].shm == code)
			return &formats[i];
	return NULL;
}

static uint64_t plane_row_bytes(const struct format *fmt, uint32_t i,
				int32_t width)
{
	return ((uint64_t)width + fmt->hsub[i] - 1) / fmt->hsub[i] * fmt->cpp[i];
}

static uint64_t plane_rows(const struct format *fmt, uint32_t i,
			   int32_t height)
{
	return ((uint64_t)height + fmt->vsub[i] - 1) / fmt->vsub[i];
}

static void pool_unref(struct shm_pool *pool)
{
	if (--pool->refs > 0)
		return;
	munmap(pool->data, (size_t)pool->size);
	close(pool->fd);
	free(pool);
}

static void buffer_free(struct wl_resource *resource)
{
	struct buffer *buf = wl_resource_get_user_data(resource);

	if (buf->pool)
		pool_unref(buf->pool);
	for (uint32_t i = 0; buf->dmabuf && i < buf->n_planes; i++) {
		munmap(buf->planes[i].map, buf->planes[i].map_len);
		close(buf->planes[i].fd);
	}
	free(buf);
}

static void resource_destroy(struct wl_client *client,
			     struct wl_resource *resource)
{
	(void)client;
	wl_resource_destroy(resource);
}

static const struct wl_buffer_interface buffer_impl = {
	.destroy = resource_destroy,
};

/*
 * A client may shrink the file behind a mapping at any time; the read
 * then faults with SIGBUS, which must become a protocol error, not a
 * crash.
 */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t reading;

static void on_sigbus(int sig)
{
	if (reading)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *row, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		h = (h ^ row[i]) * 1099511628211ull;
	return h;
}

static void dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags | DMA_BUF_SYNC_READ };

	/* A memfd is a fine linear buffer too; it has no caches to sync. */
	while (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			continue;
		if (errno != ENOTTY)
			fprintf(stderr, "refcomp: DMA_BUF_IOCTL_SYNC: %s\n",
				strerror(errno));
		return;
	}
}

/*
 * FNV-1a over the visible bytes of each plane, the dma-bufs' reads
 * bracketed by their CPU sync; @synced counts the planes whose sync has
 * begun.  A function of its own, so that nothing of the sum lives in
 * buffer_checksum()'s frame across its siglongjmp().
 */
static uint64_t planes_checksum(const struct buffer *buf,
				volatile uint32_t *synced)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < buf->n_planes; i++) {
		const struct plane *p = &buf->planes[i];
		const uint8_t *base;
		uint64_t len = plane_row_bytes(buf->fmt, i, buf->width);
		uint64_t rows = plane_rows(buf->fmt, i, buf->height);

		if (buf->dmabuf) {
			dmabuf_sync(p->fd, DMA_BUF_SYNC_START);
			*synced = i + 1;
			base = (const uint8_t *)p->map + p->offset;
		} else {
			base = (const uint8_t *)buf->pool->data + p->offset;
		}
		for (uint64_t y = 0; y < rows; y++)
			h = fnv1a(h, base + y * p->stride, len);
	}
	return h;
}

/* Returns false, with the error posted, when the memory went away. */
static bool buffer_checksum(struct buffer *buf, uint64_t *sum)
{
	volatile uint32_t synced = 0;

	if (sigsetjmp(bus_jmp, 1)) {
		reading = 0;
		for (uint32_t i = 0; i < synced; i++)
			dmabuf_sync(buf->planes[i].fd, DMA_BUF_SYNC_END);
		wl_resource_post_error(buf->resource,
				       buf->dmabuf ?
				       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_OUT_OF_BOUNDS :
				       WL_SHM_ERROR_INVALID_FD,
				       "the buffer's memory was truncated");
		return false;
	}
	reading = 1;
	*sum = planes_checksum(buf, &synced);
	reading = 0;
	for (uint32_t i = 0; i < synced; i++)
		dmabuf_sync(buf->planes[i].fd, DMA_BUF_SYNC_END);
	return true;
}

/* ---- wl_shm ------------------------------------------------------------ */

static void shm_pool_create_buffer(struct wl_client *client,
				   struct wl_resource *resource, uint32_t id,
				   int32_t offset, int32_t width,
				   int32_t height, int32_t stride,
				   uint32_t format)
{
	struct shm_pool *pool = wl_resource_get_user_data(resource);
	const struct format *fmt = format_by_shm(format);
	struct buffer *buf;

	if (!fmt) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_FORMAT,
				       "format 0x%x is not offered", format);
		return;
	}
	if (offset < 0 || width <= 0 || height <= 0 || stride <= 0 ||
	    (uint64_t)stride < plane_row_bytes(fmt, 0, width) ||
	    (uint64_t)offset + (uint64_t)stride * (uint64_t)height >
	    (uint64_t)pool->size) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_STRIDE,
				       "offset %d, %dx%d, stride %d do not fit "
				       "the pool of %d bytes", offset, width,
				       height, stride, pool->size);
		return;
	}
	if (fmt->n_planes == 2 &&
	    ((uint64_t)stride < plane_row_bytes(fmt, 1, width) ||
	     (uint64_t)offset + (uint64_t)stride * (uint64_t)height +
	     (uint64_t)stride * plane_rows(fmt, 1, height) >
	     (uint64_t)pool->size)) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_STRIDE,
				       "the NV12 UV plane of %dx%d, stride %d "
				       "does not fit the pool of %d bytes",
				       width, height, stride, pool->size);
		return;
	}
	buf = calloc(1, sizeof(*buf));
	if (!buf) {
		wl_client_post_no_memory(client);
		return;
	}
	buf->resource = wl_resource_create(client, &wl_buffer_interface, 1, id);
	if (!buf->resource) {
		free(buf);
		wl_client_post_no_memory(client);
		return;
	}
	buf->fmt = fmt;
	buf->width = width;
	buf->height = height;
	buf->pool = pool;
	pool->refs++;
	buf->n_planes = 1;
	buf->planes[0] = (struct plane){ .fd = -1, .offset = (uint32_t)offset,
					 .stride = (uint32_t)stride };
	/* --shm-nv12: UV right after Y, as wide in bytes, half as tall. */
	if (fmt->n_planes == 2) {
		buf->n_planes = 2;
		buf->planes[1] = (struct plane){ .fd = -1,
			.offset = (uint32_t)(offset + stride * height),
			.stride = (uint32_t)stride };
	}
	wl_resource_set_implementation(buf->resource, &buffer_impl, buf,
				       buffer_free);
}

static void shm_pool_resize(struct wl_client *client,
			    struct wl_resource *resource, int32_t size)
{
	struct shm_pool *pool = wl_resource_get_user_data(resource);
	void *data;

	(void)client;
	if (size < pool->size) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_FD,
				       "a pool cannot shrink");
		return;
	}
	/* Buffers read through pool->data at commit time: no stale pointers. */
	data = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, pool->fd, 0);
	if (data == MAP_FAILED) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_FD,
				       "cannot map %d bytes: %s", size,
				       strerror(errno));
		return;
	}
	munmap(pool->data, (size_t)pool->size);
	pool->data = data;
	pool->size = size;
}

static const struct wl_shm_pool_interface shm_pool_impl = {
	.create_buffer = shm_pool_create_buffer,
	.destroy = resource_destroy,
	.resize = shm_pool_resize,
};

static void shm_pool_free(struct wl_resource *resource)
{
	pool_unref(wl_resource_get_user_data(resource));
}

static void shm_create_pool(struct wl_client *client,
			    struct wl_resource *resource, uint32_t id,
			    int32_t fd, int32_t size)
{
	struct shm_pool *pool;
	struct wl_resource *res;

	if (size <= 0) {
		close(fd);
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_STRIDE,
				       "invalid pool size %d", size);
		return;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool) {
		close(fd);
		wl_client_post_no_memory(client);
		return;
	}
	pool->data = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (pool->data == MAP_FAILED) {
		wl_resource_post_error(resource, WL_SHM_ERROR_INVALID_FD,
				       "cannot map %d bytes: %s", size,
				       strerror(errno));
		close(fd);
		free(pool);
		return;
	}
	pool->refs = 1;
	pool->fd = fd;
	pool->size = size;
	res = wl_resource_create(client, &wl_shm_pool_interface, 1, id);
	if (!res) {
		pool_unref(pool);
		wl_client_post_no_memory(client);
		return;
	}
	wl_resource_set_implementation(res, &shm_pool_impl, pool,
				       shm_pool_free);
	rc.shm_pools++;
	fprintf(rc.log, "shm-pool id=%u size=%d\n", id, size);
}

/*
 * wl_shm's requests as of version 2 (libwayland 1.22): create_pool and
 * release.  The headers refcomp may be built against (Debian 12's 1.21)
 * know only the first, so the table is spelled out; refcomp offers
 * version 2 where the libwayland it runs with does.
 */
static const struct {
	void (*create_pool)(struct wl_client *client,
			    struct wl_resource *resource, uint32_t id,
			    int32_t fd, int32_t size);
	void (*release)(struct wl_client *client, struct wl_resource *resource);
} shm_impl = {
	.create_pool = shm_create_pool,
	.release = resource_destroy,
};
#define SHM_VERSION (wl_shm_interface.version < 2 ? wl_shm_interface.version : 2)

static void bind_shm(struct wl_client *client, void *data, uint32_t version,
		     uint32_t id)
{
	struct wl_resource *res = new_resource(client, &wl_shm_interface,
					       (int)version, id, &shm_impl,
					       NULL, NULL);

	(void)data;
	if (!res)
		return;
	for (size_t i = 0; i < N_FORMATS; i++)
		if (formats[i].shm >= 0)
			wl_shm_send_format(res, (uint32_t)formats[i].shm);
	if (opt.shm_nv12)
		wl_shm_send_format(res, WL_SHM_FORMAT_NV12);
}

/* ---- zwp_linux_dmabuf_v1 ------------------------------------------------ */

struct params {
	struct wl_resource *resource;
	bool used;
	struct {
		int fd;
		uint32_t offset, stride;
		uint64_t modifier;
	} planes[MAX_PLANES];
};

static void params_close_fds(struct params *p)
{
	for (int i = 0; i < MAX_PLANES; i++) {
		if (p->planes[i].fd >= 0)
			close(p->planes[i].fd);
		p->planes[i].fd = -1;
	}
}

static void params_free(struct wl_resource *resource)
{
	struct params *p = wl_resource_get_user_data(resource);

	params_close_fds(p);
	free(p);
}

static void params_add(struct wl_client *client, struct wl_resource *resource,
		       int32_t fd, uint32_t plane_idx, uint32_t offset,
		       uint32_t stride, uint32_t modifier_hi,
		       uint32_t modifier_lo)
{
	struct params *p = wl_resource_get_user_data(resource);
	uint64_t modifier = (uint64_t)modifier_hi << 32 | modifier_lo;

	(void)client;
	if (p->used) {
		close(fd);
		wl_resource_post_error(resource,
				       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_ALREADY_USED,
				       "params already used");
		return;
	}
	if (plane_idx >= MAX_PLANES) {
		close(fd);
		wl_resource_post_error(resource,
				       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_PLANE_IDX,
				       "plane %u of at most %d", plane_idx,
				       MAX_PLANES);
		return;
	}
	if (p->planes[plane_idx].fd >= 0) {
		close(fd);
		wl_resource_post_error(resource,
				       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_PLANE_SET,
				       "plane %u already set", plane_idx);
		return;
	}
	for (int i = 0; i < MAX_PLANES; i++) {
		if (p->planes[i].fd >= 0 && p->planes[i].modifier != modifier) {
			close(fd);
			wl_resource_post_error(resource,
					       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_FORMAT,
					       "planes with different modifiers");
			return;
		}
	}
	p->planes[plane_idx].fd = fd;
	p->planes[plane_idx].offset = offset;
	p->planes[plane_idx].stride = stride;
	p->planes[plane_idx].modifier = modifier;
}

/*
 * What an import request ends in: a protocol error for what the client
 * could have known (the protocol's list), else `failed` (or
 * INVALID_WL_BUFFER for create_immed) for what it could not.
 */
struct verdict {
	const char *reason;	/* NULL: created */
	int error;		/* -1: not a protocol error */
	char message[128];
};

static void check_params(struct params *p, int32_t width, int32_t height,
			 uint32_t format, uint32_t flags, uint32_t *n_planes,
			 struct verdict *v)
{
	const struct format *fmt = format_by_fourcc(format);
	uint32_t n = 0;

	v->error = -1;
	v->reason = NULL;
	while (n < MAX_PLANES && p->planes[n].fd >= 0)
		n++;
	*n_planes = n;
	if (!fmt) {
		v->reason = "invalid-format";
		v->error = ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_FORMAT;
		snprintf(v->message, sizeof(v->message),
			 "unknown format 0x%08x", format);
		return;
	}
	for (uint32_t i = n; i <= MAX_PLANES; i++) {
		if (n != fmt->n_planes ||
		    (i < MAX_PLANES && p->planes[i].fd >= 0)) {
			v->reason = "incomplete";
			v->error = ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INCOMPLETE;
			snprintf(v->message, sizeof(v->message),
				 "%s takes planes 0 to %u", fmt->name,
				 fmt->n_planes - 1);
			return;
		}
	}
	if (width <= 0 || height <= 0) {
		v->reason = "invalid-dimensions";
		v->error = ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_DIMENSIONS;
		snprintf(v->message, sizeof(v->message), "size %dx%d",
			 width, height);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t end = p->planes[i].offset +
			       (uint64_t)p->planes[i].stride *
			       plane_rows(fmt, i, height);
		off_t size = lseek(p->planes[i].fd, 0, SEEK_END);

		if (p->planes[i].stride < plane_row_bytes(fmt, i, width) ||
		    (size >= 0 && end > (uint64_t)size)) {
			v->reason = "out-of-bounds";
			v->error = ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_OUT_OF_BOUNDS;
			snprintf(v->message, sizeof(v->message),
				 "plane %u: offset %u, stride %u, %dx%d do not "
				 "fit %lld bytes", i, p->planes[i].offset,
				 p->planes[i].stride, width, height,
				 (long long)size);
			return;
		}
	}
	if (opt.refuse_dmabuf)
		v->reason = "refused";
	else if (!opt.offered[fmt - formats])
		v->reason = "format-not-offered";
	else if (p->planes[0].modifier != opt.modifier)
		v->reason = "modifier-not-offered";
	else if (flags)
		v->reason = "flags";	/* no y-invert or interlacing here */
	if (v->reason)
		snprintf(v->message, sizeof(v->message), "import %s",
			 v->reason);
}

/* Maps every plane; the buffer takes the params' fds on success. */
static struct buffer *import_dmabuf(struct params *p, uint32_t n_planes,
				    int32_t width, int32_t height,
				    uint32_t format)
{
	struct buffer *buf = calloc(1, sizeof(*buf));

	if (!buf)
		return NULL;
	buf->fmt = format_by_fourcc(format);
	buf->width = width;
	buf->height = height;
	buf->dmabuf = true;
	for (uint32_t i = 0; i < n_planes; i++) {
		struct plane *pl = &buf->planes[i];

		pl->offset = p->planes[i].offset;
		pl->stride = p->planes[i].stride;
		/* From 0: a dma-buf maps only from its start. */
		pl->map_len = (size_t)(pl->offset + (uint64_t)pl->stride *
				       plane_rows(buf->fmt, i, height));
		pl->map = mmap(NULL, pl->map_len, PROT_READ, MAP_SHARED,
			       p->planes[i].fd, 0);
		if (pl->map == MAP_FAILED) {
			fprintf(stderr, "refcomp: plane %u: mmap of %zu bytes: %s\n",
				i, pl->map_len, strerror(errno));
			for (uint32_t j = 0; j < i; j++)
				munmap(buf->planes[j].map,
				       buf->planes[j].map_len);
			free(buf);
			return NULL;
		}
	}
	for (uint32_t i = 0; i < n_planes; i++) {
		buf->planes[i].fd = p->planes[i].fd;
		p->planes[i].fd = -1;
	}
	buf->n_planes = n_planes;
	return buf;
}

static void params_create_common(struct wl_client *client,
				 struct wl_resource *resource,
				 uint32_t buffer_id, int32_t width,
				 int32_t height, uint32_t format,
				 uint32_t flags)
{
	struct params *p = wl_resource_get_user_data(resource);
	bool immed = buffer_id != 0;
	struct buffer *buf = NULL;
	struct verdict v;
	uint32_t n_planes = 0;
	uint64_t modifier = p->planes[0].fd >= 0 ? p->planes[0].modifier : 0;

	if (p->used) {
		v = (struct verdict){ .reason = "already-used",
			.error = ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_ALREADY_USED };
		snprintf(v.message, sizeof(v.message), "params already used");
	} else {
		p->used = true;
		check_params(p, width, height, format, flags, &n_planes, &v);
	}
	if (!v.reason) {
		buf = import_dmabuf(p, n_planes, width, height, format);
		if (!buf) {
			v.reason = "mmap";
			snprintf(v.message, sizeof(v.message),
				 "cannot map the planes");
		}
	}
	if (buf) {
		buf->resource = wl_resource_create(client, &wl_buffer_interface,
						   1, buffer_id);
		if (!buf->resource) {
			wl_client_post_no_memory(client);
			for (uint32_t i = 0; i < buf->n_planes; i++) {
				munmap(buf->planes[i].map, buf->planes[i].map_len);
				close(buf->planes[i].fd);
			}
			free(buf);
			return;
		}
		wl_resource_set_implementation(buf->resource, &buffer_impl,
					       buf, buffer_free);
	}
	fprintf(rc.log, "dmabuf-params id=%u planes=%u width=%d height=%d "
		"format=0x%08x modifier=0x%016llx result=%s reason=%s\n",
		wl_resource_get_id(resource), n_planes, width, height, format,
		(unsigned long long)modifier, buf ? "created" : "failed",
		buf ? "ok" : v.reason);
	if (buf) {
		rc.dmabuf_created++;
		if (!immed)
			zwp_linux_buffer_params_v1_send_created(resource,
								buf->resource);
		return;
	}
	rc.dmabuf_failed++;
	params_close_fds(p);
	if (v.error < 0 && !immed) {
		zwp_linux_buffer_params_v1_send_failed(resource);
		return;
	}
	wl_resource_post_error(resource, v.error < 0 ?
			       ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_WL_BUFFER :
			       (uint32_t)v.error, "%s", v.message);
}

static void params_create(struct wl_client *client,
			  struct wl_resource *resource, int32_t width,
			  int32_t height, uint32_t format, uint32_t flags)
{
	params_create_common(client, resource, 0, width, height, format, flags);
}

static void params_create_immed(struct wl_client *client,
				struct wl_resource *resource,
				uint32_t buffer_id, int32_t width,
				int32_t height, uint32_t format,
				uint32_t flags)
{
	params_create_common(client, resource, buffer_id, width, height,
			     format, flags);
}

static const struct zwp_linux_buffer_params_v1_interface params_impl = {
	.destroy = resource_destroy,
	.add = params_add,
	.create = params_create,
	.create_immed = params_create_immed,
};

static void dmabuf_create_params(struct wl_client *client,
				 struct wl_resource *resource, uint32_t id)
{
	struct params *p = calloc(1, sizeof(*p));

	if (!p) {
		wl_client_post_no_memory(client);
		return;
	}
	for (int i = 0; i < MAX_PLANES; i++)
		p->planes[i].fd = -1;
	p->resource = wl_resource_create(client,
					 &zwp_linux_buffer_params_v1_interface,
					 wl_resource_get_version(resource), id);
	if (!p->resource) {
		free(p);
		wl_client_post_no_memory(client);
		return;
	}
	wl_resource_set_implementation(p->resource, &params_impl, p,
				       params_free);
}

static const struct zwp_linux_dmabuf_feedback_v1_interface feedback_impl = {
	.destroy = resource_destroy,
};

/* The table is written once per feedback: no sharing, no sealing to get wrong. */
static int feedback_table(uint32_t *size, uint16_t *indices, size_t *n)
{
	struct table_entry { uint32_t format, pad; uint64_t modifier; } entry;
	size_t len = 0;
	int fd = memfd_create("refcomp-format-table", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	*n = 0;
	for (size_t i = 0; i < N_FORMATS; i++) {
		if (!opt.offered[i])
			continue;
		entry = (struct table_entry){ .format = formats[i].fourcc,
					      .modifier = opt.modifier };
		if (write(fd, &entry, sizeof(entry)) != sizeof(entry))
			goto err;
		indices[*n] = (uint16_t)*n;
		(*n)++;
		len += sizeof(entry);
	}
	if (opt.bad_feedback && !strcmp(opt.bad_feedback, "size")) {
		len += 8;
		if (ftruncate(fd, (off_t)len) < 0)
			goto err;
	}
	if (opt.bad_feedback && !strcmp(opt.bad_feedback, "index")) {
		indices[*n] = (uint16_t)*n;
		(*n)++;
	}
	if (opt.bad_feedback && !strcmp(opt.bad_feedback, "unmappable")) {
		char path[64];
		int wronly;

		/* Read-only private mappings of a write-only fd fail (EACCES). */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		wronly = open(path, O_WRONLY | O_CLOEXEC);
		close(fd);
		fd = wronly;
	}
	*size = (uint32_t)len;
	return fd;
err:
	close(fd);
	return -1;
}

static void send_feedback(struct wl_client *client,
			  struct wl_resource *resource, uint32_t id,
			  const char *kind)
{
	struct wl_resource *res;
	struct wl_array device, tranche;
	dev_t dev = 0;
	uint16_t indices[N_FORMATS + 1];	/* + 1: --bad-feedback index */
	uint32_t size;
	size_t n;
	int fd;

	res = wl_resource_create(client, &zwp_linux_dmabuf_feedback_v1_interface,
				 wl_resource_get_version(resource), id);
	fd = res ? feedback_table(&size, indices, &n) : -1;
	if (fd < 0) {
		if (res)
			wl_resource_destroy(res);
		wl_client_post_no_memory(client);
		return;
	}
	wl_resource_set_implementation(res, &feedback_impl, NULL, NULL);
	/* Devices as arrays of dev_t: 0 here, as refcomp renders nowhere. */
	wl_array_init(&device);
	wl_array_init(&tranche);
	if (!wl_array_add(&device, sizeof(dev)) ||
	    (n && !wl_array_add(&tranche, n * sizeof(indices[0])))) {
		wl_array_release(&device);
		wl_array_release(&tranche);
		close(fd);
		wl_client_post_no_memory(client);
		return;
	}
	memcpy(device.data, &dev, sizeof(dev));
	if (n)
		memcpy(tranche.data, indices, n * sizeof(indices[0]));
	zwp_linux_dmabuf_feedback_v1_send_format_table(res, fd, size);
	close(fd);
	zwp_linux_dmabuf_feedback_v1_send_main_device(res, &device);
	zwp_linux_dmabuf_feedback_v1_send_tranche_target_device(res, &device);
	zwp_linux_dmabuf_feedback_v1_send_tranche_flags(res, 0);
	zwp_linux_dmabuf_feedback_v1_send_tranche_formats(res, &tranche);
	zwp_linux_dmabuf_feedback_v1_send_tranche_done(res);
	zwp_linux_dmabuf_feedback_v1_send_done(res);
	wl_array_release(&device);
	wl_array_release(&tranche);
	fprintf(rc.log, "dmabuf-feedback id=%u kind=%s formats=%zu table_size=%u\n",
		id, kind, n, size);
}

static void dmabuf_get_default_feedback(struct wl_client *client,
					struct wl_resource *resource,
					uint32_t id)
{
	send_feedback(client, resource, id, "default");
}

static void dmabuf_get_surface_feedback(struct wl_client *client,
					struct wl_resource *resource,
					uint32_t id, struct wl_resource *surface)
{
	/* One renderer, no planes: a surface gets the default feedback. */
	(void)surface;
	send_feedback(client, resource, id, "surface");
}

static const struct zwp_linux_dmabuf_v1_interface dmabuf_impl = {
	.destroy = resource_destroy,
	.create_params = dmabuf_create_params,
	.get_default_feedback = dmabuf_get_default_feedback,
	.get_surface_feedback = dmabuf_get_surface_feedback,
};

static void bind_dmabuf(struct wl_client *client, void *data,
			uint32_t version, uint32_t id)
{
	struct wl_resource *res;

	(void)data;
	res = new_resource(client, &zwp_linux_dmabuf_v1_interface, (int)version,
			   id, &dmabuf_impl, NULL, NULL);
	if (!res)
		return;
	/*
	 * Like Weston: modifiers from version 3, the bare format before;
	 * version 4 clients learn them only from feedback objects.
	 */
	for (size_t i = 0; version < 4 && i < N_FORMATS; i++) {
		if (!opt.offered[i])
			continue;
		if (version >= ZWP_LINUX_DMABUF_V1_MODIFIER_SINCE_VERSION)
			zwp_linux_dmabuf_v1_send_modifier(res, formats[i].fourcc,
				(uint32_t)(opt.modifier >> 32),
				(uint32_t)opt.modifier);
		else
			zwp_linux_dmabuf_v1_send_format(res, formats[i].fourcc);
	}
}

/* ---- wl_surface, wl_region, wl_compositor ------------------------------ */

/* A buffer a surface points to, forgotten when the client destroys it. */
struct buffer_ref {
	struct wl_resource *resource;
	struct wl_listener destroy;
};

static void buffer_ref_destroyed(struct wl_listener *listener, void *data)
{
	struct buffer_ref *ref = wl_container_of(listener, ref, destroy);

	(void)data;
	ref->resource = NULL;
	wl_list_remove(&ref->destroy.link);
	wl_list_init(&ref->destroy.link);
}

static void buffer_ref_set(struct buffer_ref *ref,
			   struct wl_resource *resource)
{
	wl_list_remove(&ref->destroy.link);
	wl_list_init(&ref->destroy.link);
	ref->resource = resource;
	if (resource)
		wl_resource_add_destroy_listener(resource, &ref->destroy);
}

static void buffer_ref_init(struct buffer_ref *ref)
{
	ref->resource = NULL;
	ref->destroy.notify = buffer_ref_destroyed;
	wl_list_init(&ref->destroy.link);
}

#define MAX_HOLD 4

/* A wl_buffer.release sent --release-delay-ms late. */
struct delayed_release {
	struct buffer_ref buffer;
	struct wl_event_source *timer;
	struct wl_list link;		/* rc.delayed */
};

static int delayed_release_fire(void *data)
{
	struct delayed_release *d = data;

	if (d->buffer.resource)
		wl_buffer_send_release(d->buffer.resource);
	buffer_ref_set(&d->buffer, NULL);
	if (d->timer)
		wl_event_source_remove(d->timer);
	wl_list_remove(&d->link);
	free(d);
	return 0;
}

static void release_buffer(struct wl_resource *buffer)
{
	struct delayed_release *d;

	if (!opt.release_delay_ms || !(d = calloc(1, sizeof(*d)))) {
		wl_buffer_send_release(buffer);
		return;
	}
	buffer_ref_init(&d->buffer);
	buffer_ref_set(&d->buffer, buffer);
	d->timer = wl_event_loop_add_timer(wl_display_get_event_loop(rc.display),
					   delayed_release_fire, d);
	wl_list_insert(&rc.delayed, &d->link);
	if (!d->timer) {
		delayed_release_fire(d);
		return;
	}
	wl_event_source_timer_update(d->timer, (int)opt.release_delay_ms);
}

struct xdg_surface;

struct surface {
	struct wl_resource *resource;
	struct wl_list link;		/* rc.surfaces */
	/* Double-buffered state: pending until commit. */
	struct buffer_ref pending_buffer;
	bool pending_attached;
	struct wl_list pending_frames;	/* wl_callback resource links */
	struct wl_list pending_feedback; /* wp_presentation_feedback links */
	/* Applied, waiting for the next tick. */
	struct wl_list frames;
	struct wl_list feedback;
	/* --hold-count: the last committed buffers, oldest first. */
	struct buffer_ref held[MAX_HOLD];
	uint32_t n_held;
	const char *role;
	struct xdg_surface *xdg;
	bool had_buffer;
};

static void unlink_resource(struct wl_resource *resource)
{
	wl_list_remove(wl_resource_get_link(resource));
}

static void destroy_resource_list(struct wl_list *list, bool discard)
{
	struct wl_resource *res, *tmp;

	wl_resource_for_each_safe(res, tmp, list) {
		if (discard)
			wp_presentation_feedback_send_discarded(res);
		wl_resource_destroy(res);
	}
}

static void fire_surface(struct surface *s, uint32_t msec,
			 const struct timespec *now)
{
	struct wl_resource *res, *tmp;

	if (opt.frame_time_step)
		msec = (uint32_t)rc.present_seq * opt.frame_time_step;
	wl_resource_for_each_safe(res, tmp, &s->frames) {
		wl_callback_send_done(res, msec);
		wl_resource_destroy(res);
	}
	wl_resource_for_each_safe(res, tmp, &s->feedback) {
		uint64_t sec = (uint64_t)now->tv_sec;
		uint64_t seq = rc.present_seq;
		/* In ns; 0 means unknown, for intervals that do not fit. */
		uint32_t refresh = opt.frame_interval_ms <= 4000 ?
				   opt.frame_interval_ms * 1000000u : 0;

		wp_presentation_feedback_send_presented(res,
			(uint32_t)(sec >> 32), (uint32_t)sec,
			(uint32_t)now->tv_nsec, refresh,
			(uint32_t)(seq >> 32), (uint32_t)seq, 0);
		wl_resource_destroy(res);
	}
}

static int tick(void *data)
{
	struct surface *s;
	struct timespec now;

	(void)data;
	clock_gettime(CLOCK_MONOTONIC, &now);
	rc.tick_armed = false;
	rc.present_seq++;
	wl_list_for_each(s, &rc.surfaces, link)
		fire_surface(s, (uint32_t)(now.tv_sec * 1000 +
					   now.tv_nsec / 1000000), &now);
	return 0;
}

static void schedule_tick(struct surface *s)
{
	if (!opt.frame_interval_ms) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		rc.present_seq++;
		fire_surface(s, (uint32_t)(now.tv_sec * 1000 +
					   now.tv_nsec / 1000000), &now);
		return;
	}
	if (!rc.tick_armed &&
	    (!wl_list_empty(&s->frames) || !wl_list_empty(&s->feedback))) {
		wl_event_source_timer_update(rc.tick,
					     (int)opt.frame_interval_ms);
		rc.tick_armed = true;
	}
}

static void surface_attach(struct wl_client *client,
			   struct wl_resource *resource,
			   struct wl_resource *buffer, int32_t x, int32_t y)
{
	struct surface *s = wl_resource_get_user_data(resource);

	(void)client;
	(void)x;
	(void)y;
	buffer_ref_set(&s->pending_buffer, buffer);
	s->pending_attached = true;
}

static void surface_damage(struct wl_client *client,
			   struct wl_resource *resource, int32_t x, int32_t y,
			   int32_t width, int32_t height)
{
	/* Nothing is rendered, so damage changes nothing. */
	(void)client;
	(void)resource;
	(void)x;
	(void)y;
	(void)width;
	(void)height;
}

static void surface_frame(struct wl_client *client,
			  struct wl_resource *resource, uint32_t callback)
{
	struct surface *s = wl_resource_get_user_data(resource);
	struct wl_resource *res = new_resource(client, &wl_callback_interface,
					       1, callback, NULL, NULL,
					       unlink_resource);

	if (!res)
		return;
	wl_list_insert(s->pending_frames.prev, wl_resource_get_link(res));
}

static void surface_set_region(struct wl_client *client,
			       struct wl_resource *resource,
			       struct wl_resource *region)
{
	(void)client;
	(void)resource;
	(void)region;
}

static void surface_set_buffer_transform(struct wl_client *client,
					 struct wl_resource *resource,
					 int32_t transform)
{
	(void)client;
	if (transform < WL_OUTPUT_TRANSFORM_NORMAL ||
	    transform > WL_OUTPUT_TRANSFORM_FLIPPED_270)
		wl_resource_post_error(resource,
				       WL_SURFACE_ERROR_INVALID_TRANSFORM,
				       "transform %d", transform);
}

static void surface_set_buffer_scale(struct wl_client *client,
				     struct wl_resource *resource,
				     int32_t scale)
{
	(void)client;
	if (scale < 1)
		wl_resource_post_error(resource, WL_SURFACE_ERROR_INVALID_SCALE,
				       "scale %d", scale);
}

static bool xdg_commit_allowed(struct surface *s);
static void xdg_committed(struct surface *s);

/* Whether refcomp still holds @buffer or has its release pending. */
static bool buffer_unreleased(struct wl_resource *buffer)
{
	struct delayed_release *d;
	struct surface *s;

	wl_list_for_each(s, &rc.surfaces, link)
		for (uint32_t i = 0; i < s->n_held; i++)
			if (s->held[i].resource == buffer)
				return true;
	wl_list_for_each(d, &rc.delayed, link)
		if (d->buffer.resource == buffer)
			return true;
	return false;
}

/* Releases @s's held buffers, oldest first, until at most @keep remain. */
static void release_held(struct surface *s, uint32_t keep)
{
	while (s->n_held > keep) {
		struct wl_resource *oldest = s->held[0].resource;

		for (uint32_t i = 1; i < s->n_held; i++)
			buffer_ref_set(&s->held[i - 1], s->held[i].resource);
		buffer_ref_set(&s->held[--s->n_held], NULL);
		if (oldest)
			release_buffer(oldest);
	}
}

/* A buffer just read: released now, or held as --hold-count says. */
static void hold(struct surface *s, struct wl_resource *buffer)
{
	if (!opt.hold_count) {
		release_buffer(buffer);
		return;
	}
	buffer_ref_set(&s->held[s->n_held++], buffer);
	release_held(s, opt.hold_count);
}

static void log_frame(struct buffer *buf, uint64_t sum)
{
	fprintf(rc.log, "frame seq=%u path=%s width=%d height=%d stride=%u "
		"format=0x%08x checksum=%016llx\n", rc.frames,
		buf->dmabuf ? "dmabuf" : "shm", buf->width, buf->height,
		buf->planes[0].stride, buf->fmt->fourcc,
		(unsigned long long)sum);
	rc.frames++;
	if (buf->dmabuf)
		rc.dmabuf_frames++;
	else
		rc.shm_frames++;
	if (opt.exit_after_frames && rc.frames == opt.exit_after_frames) {
		rc.status = 0;
		wl_display_terminate(rc.display);
	}
}

static void surface_commit(struct wl_client *client,
			   struct wl_resource *resource)
{
	struct surface *s = wl_resource_get_user_data(resource);
	struct wl_resource *buffer = s->pending_buffer.resource;

	(void)client;
	if (s->xdg && !xdg_commit_allowed(s))
		return;
	if (s->pending_attached) {
		if (buffer && buffer_unreleased(buffer)) {
			fprintf(rc.log, "busy-reuse seq=%u\n", rc.frames);
			rc.busy_reuses++;
		}
		if (!buffer)
			release_held(s, 0);
		if (buffer) {
			struct buffer *buf = wl_resource_get_user_data(buffer);
			uint64_t sum;

			if (!buffer_checksum(buf, &sum))
				return;
			log_frame(buf, sum);
			hold(s, buffer);
			s->had_buffer = true;
		}
		buffer_ref_set(&s->pending_buffer, NULL);
		s->pending_attached = false;
	}
	/* A new commit replaces content the previous one never showed. */
	destroy_resource_list(&s->feedback, true);
	wl_list_insert_list(s->frames.prev, &s->pending_frames);
	wl_list_init(&s->pending_frames);
	wl_list_insert_list(&s->feedback, &s->pending_feedback);
	wl_list_init(&s->pending_feedback);
	if (s->xdg)
		xdg_committed(s);
	schedule_tick(s);
}

static void surface_damage_buffer(struct wl_client *client,
				  struct wl_resource *resource, int32_t x,
				  int32_t y, int32_t width, int32_t height)
{
	surface_damage(client, resource, x, y, width, height);
}

static const struct wl_surface_interface surface_impl = {
	.destroy = resource_destroy,
	.attach = surface_attach,
	.damage = surface_damage,
	.frame = surface_frame,
	.set_opaque_region = surface_set_region,
	.set_input_region = surface_set_region,
	.commit = surface_commit,
	.set_buffer_transform = surface_set_buffer_transform,
	.set_buffer_scale = surface_set_buffer_scale,
	.damage_buffer = surface_damage_buffer,
};

static void xdg_surface_lost_surface(struct xdg_surface *xdg);

static void surface_free(struct wl_resource *resource)
{
	struct surface *s = wl_resource_get_user_data(resource);

	if (s->xdg)
		xdg_surface_lost_surface(s->xdg);
	buffer_ref_set(&s->pending_buffer, NULL);
	for (uint32_t i = 0; i < s->n_held; i++)
		buffer_ref_set(&s->held[i], NULL);
	destroy_resource_list(&s->pending_frames, false);
	destroy_resource_list(&s->frames, false);
	destroy_resource_list(&s->pending_feedback, true);
	destroy_resource_list(&s->feedback, true);
	wl_list_remove(&s->link);
	free(s);
}

static void compositor_create_surface(struct wl_client *client,
				      struct wl_resource *resource,
				      uint32_t id)
{
	struct surface *s = calloc(1, sizeof(*s));

	if (!s) {
		wl_client_post_no_memory(client);
		return;
	}
	s->resource = wl_resource_create(client, &wl_surface_interface,
					 wl_resource_get_version(resource), id);
	if (!s->resource) {
		free(s);
		wl_client_post_no_memory(client);
		return;
	}
	buffer_ref_init(&s->pending_buffer);
	for (uint32_t i = 0; i < MAX_HOLD; i++)
		buffer_ref_init(&s->held[i]);
	wl_list_init(&s->pending_frames);
	wl_list_init(&s->pending_feedback);
	wl_list_init(&s->frames);
	wl_list_init(&s->feedback);
	wl_list_insert(&rc.surfaces, &s->link);
	wl_resource_set_implementation(s->resource, &surface_impl, s,
				       surface_free);
}

static void region_rect(struct wl_client *client, struct wl_resource *resource,
			int32_t x, int32_t y, int32_t width, int32_t height)
{
	/* Regions only steer input and blending, neither of which exists. */
	(void)client;
	(void)resource;
	(void)x;
	(void)y;
	(void)width;
	(void)height;
}

static const struct wl_region_interface region_impl = {
	.destroy = resource_destroy,
	.add = region_rect,
	.subtract = region_rect,
};

static void compositor_create_region(struct wl_client *client,
				     struct wl_resource *resource,
				     uint32_t id)
{
	struct wl_resource *res = wl_resource_create(client,
						     &wl_region_interface, 1,
						     id);

	(void)resource;
	if (!res) {
		wl_client_post_no_memory(client);
		return;
	}
	wl_resource_set_implementation(res, &region_impl, NULL, NULL);
}

static const struct wl_compositor_interface compositor_impl = {
	.create_surface = compositor_create_surface,
	.create_region = compositor_create_region,
};

static void bind_compositor(struct wl_client *client, void *data,
			    uint32_t version, uint32_t id)
{
	(void)data;
	new_resource(client, &wl_compositor_interface, (int)version, id,
		     &compositor_impl, NULL, NULL);
}

/* ---- wl_subcompositor ---------------------------------------------------- */

/*
 * Sub-surfaces (waylandsink shows its video in one).  refcomp draws no
 * surface tree: a sub-surface's position and stacking mean nothing here,
 * and its commits apply at once, as in desync mode, so that every buffer
 * it is given is read and logged like any other surface's.
 */
static void subsurface_set_position(struct wl_client *client,
				    struct wl_resource *resource,
				    int32_t x, int32_t y)
{
	(void)client;
	(void)resource;
	(void)x;
	(void)y;
}

static void subsurface_place(struct wl_client *client,
			     struct wl_resource *resource,
			     struct wl_resource *sibling)
{
	(void)client;
	(void)resource;
	(void)sibling;
}

static void subsurface_mode(struct wl_client *client,
			    struct wl_resource *resource)
{
	(void)client;
	(void)resource;
}

static const struct wl_subsurface_interface subsurface_impl = {
	.destroy = resource_destroy,
	.set_position = subsurface_set_position,
	.place_above = subsurface_place,
	.place_below = subsurface_place,
	.set_sync = subsurface_mode,
	.set_desync = subsurface_mode,
};

static void subcompositor_get_subsurface(struct wl_client *client,
					 struct wl_resource *resource,
					 uint32_t id,
					 struct wl_resource *surface_res,
					 struct wl_resource *parent_res)
{
	struct surface *s = wl_resource_get_user_data(surface_res);

	if (surface_res == parent_res) {
		wl_resource_post_error(resource,
				       WL_SUBCOMPOSITOR_ERROR_BAD_SURFACE,
				       "a surface cannot be its own parent");
		return;
	}
	if (s->role && strcmp(s->role, "wl_subsurface")) {
		wl_resource_post_error(resource,
				       WL_SUBCOMPOSITOR_ERROR_BAD_SURFACE,
				       "the surface already has the role %s",
				       s->role);
		return;
	}
	s->role = "wl_subsurface";
	new_resource(client, &wl_subsurface_interface,
		     wl_resource_get_version(resource), id, &subsurface_impl,
		     s, NULL);
}

static const struct wl_subcompositor_interface subcompositor_impl = {
	.destroy = resource_destroy,
	.get_subsurface = subcompositor_get_subsurface,
};

static void bind_subcompositor(struct wl_client *client, void *data,
			       uint32_t version, uint32_t id)
{
	(void)data;
	new_resource(client, &wl_subcompositor_interface, (int)version, id,
		     &subcompositor_impl, NULL, NULL);
}

/* ---- xdg-shell ---------------------------------------------------------- */

struct wm_base {
	struct wl_resource *resource;
	struct wl_list xdg_surfaces;	/* xdg_surface.link */
};

struct xdg_surface {
	struct wl_resource *resource;
	struct wm_base *wm_base;	/* NULL once destroyed */
	struct wl_list link;
	struct surface *surface;	/* NULL once destroyed */
	struct wl_resource *role;	/* xdg_toplevel or xdg_popup */
	bool is_popup;
	bool initial_commit_done, acked;
	uint32_t serials[MAX_PENDING_SERIALS];
	unsigned int n_serials;
	bool maximized, fullscreen;
	int32_t popup_width, popup_height;
};

static void send_configure(struct xdg_surface *xdg)
{
	uint32_t serial = wl_display_next_serial(rc.display);

	if (xdg->is_popup) {
		xdg_popup_send_configure(xdg->role, 0, 0, xdg->popup_width,
					 xdg->popup_height);
	} else {
		struct wl_array states;
		int32_t width = opt.width, height = opt.height;
		uint32_t *state;

		wl_array_init(&states);
		state = wl_array_add(&states, sizeof(*state));
		if (state)
			*state = XDG_TOPLEVEL_STATE_ACTIVATED;
		if (xdg->maximized || xdg->fullscreen) {
			state = wl_array_add(&states, sizeof(*state));
			if (state)
				*state = xdg->fullscreen ?
					 XDG_TOPLEVEL_STATE_FULLSCREEN :
					 XDG_TOPLEVEL_STATE_MAXIMIZED;
			if (!width || !height) {
				width = OUTPUT_WIDTH;
				height = OUTPUT_HEIGHT;
			}
		}
		xdg_toplevel_send_configure(xdg->role, width, height, &states);
		wl_array_release(&states);
	}
	/* A client that never acks keeps only the newest serials valid. */
	if (xdg->n_serials == MAX_PENDING_SERIALS) {
		memmove(xdg->serials, xdg->serials + 1,
			sizeof(xdg->serials) - sizeof(xdg->serials[0]));
		xdg->n_serials--;
	}
	xdg->serials[xdg->n_serials++] = serial;
	xdg_surface_send_configure(xdg->resource, serial);
}

static bool xdg_commit_allowed(struct surface *s)
{
	struct xdg_surface *xdg = s->xdg;

	if (!xdg->role) {
		wl_resource_post_error(xdg->resource,
				       XDG_SURFACE_ERROR_NOT_CONSTRUCTED,
				       "commit before get_toplevel/get_popup");
		return false;
	}
	if (s->pending_attached && s->pending_buffer.resource && !xdg->acked) {
		wl_resource_post_error(xdg->resource,
				       XDG_SURFACE_ERROR_UNCONFIGURED_BUFFER,
				       "buffer attached before the first "
				       "configure was acked");
		return false;
	}
	return true;
}

static void xdg_committed(struct surface *s)
{
	if (!s->xdg->initial_commit_done) {
		s->xdg->initial_commit_done = true;
		send_configure(s->xdg);
	}
}

static void xdg_reconfigure(struct xdg_surface *xdg)
{
	/* Before the initial commit, that commit's configure says it all. */
	if (xdg && xdg->initial_commit_done)
		send_configure(xdg);
}

static void toplevel_set_parent(struct wl_client *client,
				struct wl_resource *resource,
				struct wl_resource *parent)
{
	(void)client;
	if (parent && wl_resource_get_user_data(parent) &&
	    wl_resource_get_user_data(parent) ==
	    wl_resource_get_user_data(resource))
		wl_resource_post_error(resource,
				       XDG_TOPLEVEL_ERROR_INVALID_PARENT,
				       "a toplevel cannot be its own parent");
}

static void toplevel_set_string(struct wl_client *client,
				struct wl_resource *resource, const char *s)
{
	(void)client;
	(void)resource;
	(void)s;
}

static void toplevel_show_window_menu(struct wl_client *client,
				      struct wl_resource *resource,
				      struct wl_resource *seat,
				      uint32_t serial, int32_t x, int32_t y)
{
	(void)client;
	(void)resource;
	(void)seat;
	(void)serial;
	(void)x;
	(void)y;
}

static void toplevel_move(struct wl_client *client,
			  struct wl_resource *resource,
			  struct wl_resource *seat, uint32_t serial)
{
	(void)client;
	(void)resource;
	(void)seat;
	(void)serial;
}

static void toplevel_resize(struct wl_client *client,
			    struct wl_resource *resource,
			    struct wl_resource *seat, uint32_t serial,
			    uint32_t edges)
{
	(void)client;
	(void)seat;
	(void)serial;
	if (edges > XDG_TOPLEVEL_RESIZE_EDGE_BOTTOM_RIGHT || edges == 3 ||
	    edges == 7)
		wl_resource_post_error(resource,
				       XDG_TOPLEVEL_ERROR_INVALID_RESIZE_EDGE,
				       "edge %u", edges);
}

static void toplevel_set_size(struct wl_client *client,
			      struct wl_resource *resource, int32_t width,
			      int32_t height)
{
	(void)client;
	if (width < 0 || height < 0)
		wl_resource_post_error(resource, XDG_TOPLEVEL_ERROR_INVALID_SIZE,
				       "size %dx%d", width, height);
}

static void toplevel_set_state(struct wl_resource *resource, bool *state,
			       bool value)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	if (!xdg)
		return;
	*state = value;
	xdg_reconfigure(xdg);
}

static void toplevel_set_maximized(struct wl_client *client,
				   struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	if (xdg)
		toplevel_set_state(resource, &xdg->maximized, true);
}

static void toplevel_unset_maximized(struct wl_client *client,
				     struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	if (xdg)
		toplevel_set_state(resource, &xdg->maximized, false);
}

static void toplevel_set_fullscreen(struct wl_client *client,
				    struct wl_resource *resource,
				    struct wl_resource *output)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	(void)output;
	if (xdg)
		toplevel_set_state(resource, &xdg->fullscreen, true);
}

static void toplevel_unset_fullscreen(struct wl_client *client,
				      struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	if (xdg)
		toplevel_set_state(resource, &xdg->fullscreen, false);
}

static void toplevel_set_minimized(struct wl_client *client,
				   struct wl_resource *resource)
{
	(void)client;
	(void)resource;
}

static const struct xdg_toplevel_interface toplevel_impl = {
	.destroy = resource_destroy,
	.set_parent = toplevel_set_parent,
	.set_title = toplevel_set_string,
	.set_app_id = toplevel_set_string,
	.show_window_menu = toplevel_show_window_menu,
	.move = toplevel_move,
	.resize = toplevel_resize,
	.set_max_size = toplevel_set_size,
	.set_min_size = toplevel_set_size,
	.set_maximized = toplevel_set_maximized,
	.unset_maximized = toplevel_unset_maximized,
	.set_fullscreen = toplevel_set_fullscreen,
	.unset_fullscreen = toplevel_unset_fullscreen,
	.set_minimized = toplevel_set_minimized,
};

static void popup_grab(struct wl_client *client, struct wl_resource *resource,
		       struct wl_resource *seat, uint32_t serial)
{
	(void)client;
	(void)resource;
	(void)seat;
	(void)serial;
}

struct positioner {
	int32_t width, height;
};

static void popup_reposition(struct wl_client *client,
			     struct wl_resource *resource,
			     struct wl_resource *positioner, uint32_t token)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);
	struct positioner *pos = wl_resource_get_user_data(positioner);

	(void)client;
	if (!xdg)
		return;
	if (pos->width <= 0 || pos->height <= 0) {
		wl_resource_post_error(xdg->wm_base ? xdg->wm_base->resource :
				       resource,
				       XDG_WM_BASE_ERROR_INVALID_POSITIONER,
				       "positioner without a size");
		return;
	}
	xdg->popup_width = pos->width;
	xdg->popup_height = pos->height;
	xdg_popup_send_repositioned(resource, token);
	xdg_reconfigure(xdg);
}

static const struct xdg_popup_interface popup_impl = {
	.destroy = resource_destroy,
	.grab = popup_grab,
	.reposition = popup_reposition,
};

static void role_free(struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	/* Unmapped: a new role object starts over with an initial commit. */
	if (xdg) {
		xdg->role = NULL;
		xdg->initial_commit_done = false;
		xdg->acked = false;
		xdg->n_serials = 0;
	}
}

static bool assign_role(struct xdg_surface *xdg, const char *role)
{
	struct wl_resource *error_on = xdg->wm_base ? xdg->wm_base->resource :
				       xdg->resource;

	if (!xdg->surface) {
		wl_resource_post_error(error_on,
				       XDG_WM_BASE_ERROR_INVALID_SURFACE_STATE,
				       "the wl_surface is gone");
		return false;
	}
	if (xdg->role) {
		wl_resource_post_error(xdg->resource,
				       XDG_SURFACE_ERROR_ALREADY_CONSTRUCTED,
				       "the xdg_surface already has a role");
		return false;
	}
	if (xdg->surface->role && strcmp(xdg->surface->role, role)) {
		wl_resource_post_error(error_on, XDG_WM_BASE_ERROR_ROLE,
				       "the wl_surface is already a %s",
				       xdg->surface->role);
		return false;
	}
	xdg->surface->role = role;
	return true;
}

static void xdg_surface_get_toplevel(struct wl_client *client,
				     struct wl_resource *resource,
				     uint32_t id)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	if (!assign_role(xdg, "xdg_toplevel"))
		return;
	xdg->role = wl_resource_create(client, &xdg_toplevel_interface,
				       wl_resource_get_version(resource), id);
	if (!xdg->role) {
		wl_client_post_no_memory(client);
		return;
	}
	xdg->is_popup = false;
	wl_resource_set_implementation(xdg->role, &toplevel_impl, xdg,
				       role_free);
}

static void xdg_surface_get_popup(struct wl_client *client,
				  struct wl_resource *resource, uint32_t id,
				  struct wl_resource *parent,
				  struct wl_resource *positioner)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);
	struct positioner *pos = wl_resource_get_user_data(positioner);

	(void)parent;
	if (pos->width <= 0 || pos->height <= 0) {
		wl_resource_post_error(xdg->wm_base ? xdg->wm_base->resource :
				       resource,
				       XDG_WM_BASE_ERROR_INVALID_POSITIONER,
				       "positioner without a size");
		return;
	}
	if (!assign_role(xdg, "xdg_popup"))
		return;
	xdg->role = wl_resource_create(client, &xdg_popup_interface,
				       wl_resource_get_version(resource), id);
	if (!xdg->role) {
		wl_client_post_no_memory(client);
		return;
	}
	xdg->is_popup = true;
	xdg->popup_width = pos->width;
	xdg->popup_height = pos->height;
	wl_resource_set_implementation(xdg->role, &popup_impl, xdg, role_free);
}

static void xdg_surface_set_window_geometry(struct wl_client *client,
					    struct wl_resource *resource,
					    int32_t x, int32_t y,
					    int32_t width, int32_t height)
{
	(void)client;
	(void)x;
	(void)y;
	if (width <= 0 || height <= 0)
		wl_resource_post_error(resource, XDG_SURFACE_ERROR_INVALID_SIZE,
				       "window geometry %dx%d", width, height);
}

static void xdg_surface_ack_configure(struct wl_client *client,
				      struct wl_resource *resource,
				      uint32_t serial)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	for (unsigned int i = 0; i < xdg->n_serials; i++) {
		if (xdg->serials[i] != serial)
			continue;
		/* Acking one configure skips the older ones. */
		memmove(xdg->serials, xdg->serials + i + 1,
			(xdg->n_serials - i - 1) * sizeof(xdg->serials[0]));
		xdg->n_serials -= i + 1;
		xdg->acked = true;
		return;
	}
	wl_resource_post_error(resource, XDG_SURFACE_ERROR_INVALID_SERIAL,
			       "serial %u was not sent or was acked", serial);
}

static void xdg_surface_destroy(struct wl_client *client,
				struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	(void)client;
	if (xdg->role) {
		wl_resource_post_error(resource,
				       XDG_SURFACE_ERROR_DEFUNCT_ROLE_OBJECT,
				       "xdg_surface destroyed before its role "
				       "object");
		return;
	}
	wl_resource_destroy(resource);
}

static const struct xdg_surface_interface xdg_surface_impl = {
	.destroy = xdg_surface_destroy,
	.get_toplevel = xdg_surface_get_toplevel,
	.get_popup = xdg_surface_get_popup,
	.set_window_geometry = xdg_surface_set_window_geometry,
	.ack_configure = xdg_surface_ack_configure,
};

static void xdg_surface_lost_surface(struct xdg_surface *xdg)
{
	xdg->surface = NULL;
}

static void xdg_surface_free(struct wl_resource *resource)
{
	struct xdg_surface *xdg = wl_resource_get_user_data(resource);

	/* At client teardown the role object may outlive us. */
	if (xdg->role)
		wl_resource_set_user_data(xdg->role, NULL);
	if (xdg->surface)
		xdg->surface->xdg = NULL;
	if (xdg->wm_base)
		wl_list_remove(&xdg->link);
	free(xdg);
}

static void wm_base_get_xdg_surface(struct wl_client *client,
				    struct wl_resource *resource, uint32_t id,
				    struct wl_resource *surface_resource)
{
	struct wm_base *wm = wl_resource_get_user_data(resource);
	struct surface *s = wl_resource_get_user_data(surface_resource);
	struct xdg_surface *xdg;

	if (s->xdg || (s->role && strncmp(s->role, "xdg_", 4))) {
		wl_resource_post_error(resource, XDG_WM_BASE_ERROR_ROLE,
				       "the wl_surface already has a role");
		return;
	}
	if (s->had_buffer || (s->pending_attached && s->pending_buffer.resource)) {
		wl_resource_post_error(resource,
				       XDG_WM_BASE_ERROR_INVALID_SURFACE_STATE,
				       "the wl_surface already has a buffer");
		return;
	}
	xdg = calloc(1, sizeof(*xdg));
	if (!xdg) {
		wl_client_post_no_memory(client);
		return;
	}
	xdg->resource = wl_resource_create(client, &xdg_surface_interface,
					   wl_resource_get_version(resource),
					   id);
	if (!xdg->resource) {
		free(xdg);
		wl_client_post_no_memory(client);
		return;
	}
	xdg->surface = s;
	xdg->wm_base = wm;
	wl_list_insert(&wm->xdg_surfaces, &xdg->link);
	s->xdg = xdg;
	wl_resource_set_implementation(xdg->resource, &xdg_surface_impl, xdg,
				       xdg_surface_free);
}

static void positioner_set_size(struct wl_client *client,
				struct wl_resource *resource, int32_t width,
				int32_t height)
{
	struct positioner *pos = wl_resource_get_user_data(resource);

	(void)client;
	if (width <= 0 || height <= 0) {
		wl_resource_post_error(resource,
				       XDG_POSITIONER_ERROR_INVALID_INPUT,
				       "size %dx%d", width, height);
		return;
	}
	pos->width = width;
	pos->height = height;
}

static void positioner_set_anchor_rect(struct wl_client *client,
				       struct wl_resource *resource,
				       int32_t x, int32_t y, int32_t width,
				       int32_t height)
{
	(void)client;
	(void)x;
	(void)y;
	if (width < 0 || height < 0)
		wl_resource_post_error(resource,
				       XDG_POSITIONER_ERROR_INVALID_INPUT,
				       "anchor rectangle %dx%d", width, height);
}

static void positioner_set_uint(struct wl_client *client,
				struct wl_resource *resource, uint32_t value)
{
	/* Placement is not modelled: there is nothing on screen. */
	(void)client;
	(void)resource;
	(void)value;
}

static void positioner_set_offset(struct wl_client *client,
				  struct wl_resource *resource, int32_t x,
				  int32_t y)
{
	(void)client;
	(void)resource;
	(void)x;
	(void)y;
}

static void positioner_set_reactive(struct wl_client *client,
				    struct wl_resource *resource)
{
	(void)client;
	(void)resource;
}

static const struct xdg_positioner_interface positioner_impl = {
	.destroy = resource_destroy,
	.set_size = positioner_set_size,
	.set_anchor_rect = positioner_set_anchor_rect,
	.set_anchor = positioner_set_uint,
	.set_gravity = positioner_set_uint,
	.set_constraint_adjustment = positioner_set_uint,
	.set_offset = positioner_set_offset,
	.set_reactive = positioner_set_reactive,
	.set_parent_size = positioner_set_offset,
	.set_parent_configure = positioner_set_uint,
};

static void positioner_free(struct wl_resource *resource)
{
	free(wl_resource_get_user_data(resource));
}

static void wm_base_create_positioner(struct wl_client *client,
				      struct wl_resource *resource,
				      uint32_t id)
{
	struct positioner *pos = calloc(1, sizeof(*pos));
	struct wl_resource *res;

	if (!pos) {
		wl_client_post_no_memory(client);
		return;
	}
	res = wl_resource_create(client, &xdg_positioner_interface,
				 wl_resource_get_version(resource), id);
	if (!res) {
		free(pos);
		wl_client_post_no_memory(client);
		return;
	}
	wl_resource_set_implementation(res, &positioner_impl, pos,
				       positioner_free);
}

static void wm_base_pong(struct wl_client *client,
			 struct wl_resource *resource, uint32_t serial)
{
	(void)client;
	(void)resource;
	(void)serial;
}

static void wm_base_destroy(struct wl_client *client,
			    struct wl_resource *resource)
{
	struct wm_base *wm = wl_resource_get_user_data(resource);

	(void)client;
	if (!wl_list_empty(&wm->xdg_surfaces)) {
		wl_resource_post_error(resource,
				       XDG_WM_BASE_ERROR_DEFUNCT_SURFACES,
				       "xdg_wm_base destroyed before its "
				       "xdg_surfaces");
		return;
	}
	wl_resource_destroy(resource);
}

static const struct xdg_wm_base_interface wm_base_impl = {
	.destroy = wm_base_destroy,
	.create_positioner = wm_base_create_positioner,
	.get_xdg_surface = wm_base_get_xdg_surface,
	.pong = wm_base_pong,
};

static void wm_base_free(struct wl_resource *resource)
{
	struct wm_base *wm = wl_resource_get_user_data(resource);
	struct xdg_surface *xdg, *tmp;

	wl_list_for_each_safe(xdg, tmp, &wm->xdg_surfaces, link) {
		wl_list_remove(&xdg->link);
		xdg->wm_base = NULL;
	}
	free(wm);
}

static void bind_wm_base(struct wl_client *client, void *data,
			 uint32_t version, uint32_t id)
{
	struct wm_base *wm = calloc(1, sizeof(*wm));

	(void)data;
	if (!wm) {
		wl_client_post_no_memory(client);
		return;
	}
	wm->resource = wl_resource_create(client, &xdg_wm_base_interface,
					  (int)version, id);
	if (!wm->resource) {
		free(wm);
		wl_client_post_no_memory(client);
		return;
	}
	wl_list_init(&wm->xdg_surfaces);
	wl_resource_set_implementation(wm->resource, &wm_base_impl, wm,
				       wm_base_free);
	/* A ping on bind shows that a client answering pings is fine. */
	xdg_wm_base_send_ping(wm->resource, wl_display_next_serial(rc.display));
}

/* ---- wl_output, wp_presentation ---------------------------------------- */

static const struct wl_output_interface output_impl = {
	.release = resource_destroy,
};

static void bind_output(struct wl_client *client, void *data,
			uint32_t version, uint32_t id)
{
	struct wl_resource *res = new_resource(client, &wl_output_interface,
					       (int)version, id, &output_impl,
					       NULL, NULL);

	(void)data;
	if (!res)
		return;
	wl_output_send_geometry(res, 0, 0, 169, 127,
				WL_OUTPUT_SUBPIXEL_UNKNOWN, "vmshare",
				"refcomp", WL_OUTPUT_TRANSFORM_NORMAL);
	wl_output_send_mode(res, WL_OUTPUT_MODE_CURRENT |
			    WL_OUTPUT_MODE_PREFERRED, OUTPUT_WIDTH,
			    OUTPUT_HEIGHT,
			    opt.frame_interval_ms ?
			    (int32_t)(1000000 / opt.frame_interval_ms) : 60000);
	if (version >= WL_OUTPUT_SCALE_SINCE_VERSION)
		wl_output_send_scale(res, 1);
	if (version >= WL_OUTPUT_DONE_SINCE_VERSION)
		wl_output_send_done(res);
}

static void presentation_feedback(struct wl_client *client,
				  struct wl_resource *resource,
				  struct wl_resource *surface_resource,
				  uint32_t callback)
{
	struct surface *s = wl_resource_get_user_data(surface_resource);
	struct wl_resource *res;

	res = new_resource(client, &wp_presentation_feedback_interface,
			   wl_resource_get_version(resource), callback, NULL,
			   NULL, unlink_resource);
	if (!res)
		return;
	wl_list_insert(s->pending_feedback.prev, wl_resource_get_link(res));
}

static const struct wp_presentation_interface presentation_impl = {
	.destroy = resource_destroy,
	.feedback = presentation_feedback,
};

static void bind_presentation(struct wl_client *client, void *data,
			      uint32_t version, uint32_t id)
{
	struct wl_resource *res = new_resource(client,
					       &wp_presentation_interface,
					       (int)version, id,
					       &presentation_impl, NULL, NULL);

	(void)data;
	if (!res)
		return;
	wp_presentation_send_clock_id(res, CLOCK_MONOTONIC);
}

/* ---- main loop ---------------------------------------------------------- */

struct client_watch {
	struct wl_listener destroy;
};

static void client_destroyed(struct wl_listener *listener, void *data)
{
	struct client_watch *watch = wl_container_of(listener, watch, destroy);

	(void)data;
	free(watch);
	if (--rc.clients == 0 && opt.exit_on_client_gone) {
		rc.status = rc.frames >= opt.exit_after_frames ? 0 : 2;
		wl_display_terminate(rc.display);
	}
}

static void client_created(struct wl_listener *listener, void *data)
{
	struct client_watch *watch = calloc(1, sizeof(*watch));

	(void)listener;
	if (!watch) {
		wl_client_destroy(data);
		return;
	}
	rc.clients++;
	watch->destroy.notify = client_destroyed;
	wl_client_add_destroy_listener(data, &watch->destroy);
}

static int on_timeout(void *data)
{
	(void)data;
	fprintf(stderr, "refcomp: timed out after %u s with %u frames\n",
		opt.timeout_s, rc.frames);
	rc.status = 2;
	wl_display_terminate(rc.display);
	return 0;
}

static int on_signal(int sig, void *data)
{
	(void)sig;
	(void)data;
	rc.status = 0;
	wl_display_terminate(rc.display);
	return 0;
}

static int parse_formats(const char *list)
{
	char *copy, *name, *save = NULL;

	memset(opt.offered, 0, sizeof(opt.offered));
	if (!strcmp(list, "none"))
		return 0;
	copy = strdup(list);
	if (!copy)
		return -1;
	for (name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < N_FORMATS; i++)
			if (!strcmp(name, formats[i].name))
				break;
		if (i == N_FORMATS) {
			fprintf(stderr, "refcomp: unknown format %s\n", name);
			free(copy);
			return -1;
		}
		opt.offered[i] = true;
	}
	free(copy);
	return 0;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--socket NAME] [--log FILE] [--size WxH] "
		"[--frame-interval-ms MS] [--no-dmabuf] [--refuse-dmabuf] "
		"[--formats LIST|none] [--modifier linear|implicit] "
		"[--hold-buffers] [--hold-count N] [--release-delay-ms MS] "
		"[--exit-after-frames N] [--timeout S] "
		"[--exit-on-client-gone] [--frame-time-step MS] "
		"[--dmabuf-version 3|4] [--bad-feedback size|index|unmappable] "
		"[--shm-nv12]\n",
		argv0);
}

static bool parse_uint(const char *s, uint32_t *value)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > INT32_MAX)
		return false;
	*value = (uint32_t)v;
	return true;
}

static int parse_args(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "log", required_argument, NULL, 'l' },
		{ "size", required_argument, NULL, 'S' },
		{ "frame-interval-ms", required_argument, NULL, 'i' },
		{ "no-dmabuf", no_argument, NULL, 'D' },
		{ "refuse-dmabuf", no_argument, NULL, 'R' },
		{ "formats", required_argument, NULL, 'f' },
		{ "modifier", required_argument, NULL, 'm' },
		{ "hold-buffers", no_argument, NULL, 'H' },
		{ "hold-count", required_argument, NULL, 'h' },
		{ "release-delay-ms", required_argument, NULL, 'r' },
		{ "exit-after-frames", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "exit-on-client-gone", no_argument, NULL, 'g' },
		{ "dmabuf-version", required_argument, NULL, 'V' },
		{ "bad-feedback", required_argument, NULL, 'B' },
		{ "shm-nv12", no_argument, NULL, 'N' },
		{ "frame-time-step", required_argument, NULL, 'T' },
		{ 0 },
	};
	int o;

	parse_formats("AR24,XR24,NV12");
	while ((o = getopt_long(argc, argv, "", options, NULL)) != -1) {
		bool ok = true;

		switch (o) {
		case 's': opt.socket = optarg; break;
		case 'l': opt.log_path = optarg; break;
		case 'S':
			ok = sscanf(optarg, "%dx%d", &opt.width,
				    &opt.height) == 2 &&
			     opt.width >= 0 && opt.height >= 0;
			break;
		case 'i': ok = parse_uint(optarg, &opt.frame_interval_ms); break;
		case 'D': opt.no_dmabuf = true; break;
		case 'R': opt.refuse_dmabuf = true; break;
		case 'f': ok = parse_formats(optarg) == 0; break;
		case 'm':
			if (!strcmp(optarg, "linear"))
				opt.modifier = DRM_FORMAT_MOD_LINEAR;
			else if (!strcmp(optarg, "implicit"))
				opt.modifier = DRM_FORMAT_MOD_INVALID;
			else
				ok = false;
			break;
		case 'H': opt.hold_count = 1; break;
		case 'h':
			ok = parse_uint(optarg, &opt.hold_count) &&
			     opt.hold_count >= 1 && opt.hold_count <= MAX_HOLD;
			break;
		case 'r': ok = parse_uint(optarg, &opt.release_delay_ms); break;
		case 'n': ok = parse_uint(optarg, &opt.exit_after_frames); break;
		case 't': ok = parse_uint(optarg, &opt.timeout_s); break;
		case 'g': opt.exit_on_client_gone = true; break;
		case 'V':
			ok = parse_uint(optarg, &opt.dmabuf_version) &&
			     (opt.dmabuf_version == 3 || opt.dmabuf_version == 4);
			break;
		case 'B':
			opt.bad_feedback = optarg;
			ok = !strcmp(optarg, "size") || !strcmp(optarg, "index") ||
			     !strcmp(optarg, "unmappable");
			break;
		case 'N': opt.shm_nv12 = true; break;
		case 'T': ok = parse_uint(optarg, &opt.frame_time_step); break;
		default: ok = false; break;
		}
		if (!ok) {
			usage(argv[0]);
			return -1;
		}
	}
	if (optind != argc) {
		usage(argv[0]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	struct wl_event_loop *loop;
	struct wl_listener client_listener = { .notify = client_created };
	struct wl_event_source *sources[3] = { NULL };
	const char *name;

	if (parse_args(argc, argv))
		return 2;
	rc.log = opt.log_path ? fopen(opt.log_path, "we") : stdout;
	if (!rc.log) {
		fprintf(stderr, "refcomp: %s: %s\n", opt.log_path,
			strerror(errno));
		return 2;
	}
	setvbuf(rc.log, NULL, _IOLBF, 0);
	sigaction(SIGBUS, &sa, NULL);
	/* A client that hangs up mid-message must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	wl_list_init(&rc.surfaces);
	wl_list_init(&rc.delayed);

	rc.display = wl_display_create();
	if (!rc.display) {
		fprintf(stderr, "refcomp: cannot create the display\n");
		return 2;
	}
	loop = wl_display_get_event_loop(rc.display);
	rc.tick = wl_event_loop_add_timer(loop, tick, NULL);
	sources[0] = wl_event_loop_add_signal(loop, SIGTERM, on_signal, NULL);
	sources[1] = wl_event_loop_add_signal(loop, SIGINT, on_signal, NULL);
	if (opt.timeout_s) {
		sources[2] = wl_event_loop_add_timer(loop, on_timeout, NULL);
		if (sources[2])
			wl_event_source_timer_update(sources[2],
				(int)(opt.timeout_s * 1000));
	}
	wl_display_add_client_created_listener(rc.display, &client_listener);

	if (!wl_global_create(rc.display, &wl_compositor_interface, 4, NULL,
			      bind_compositor) ||
	    !wl_global_create(rc.display, &wl_subcompositor_interface, 1, NULL,
			      bind_subcompositor) ||
	    !wl_global_create(rc.display, &wl_shm_interface, SHM_VERSION, NULL,
			      bind_shm) ||
	    !wl_global_create(rc.display, &xdg_wm_base_interface, 3, NULL,
			      bind_wm_base) ||
	    !wl_global_create(rc.display, &wl_output_interface, 3, NULL,
			      bind_output) ||
	    !wl_global_create(rc.display, &wp_presentation_interface, 1, NULL,
			      bind_presentation) ||
	    (!opt.no_dmabuf &&
	     !wl_global_create(rc.display, &zwp_linux_dmabuf_v1_interface,
			       (int)opt.dmabuf_version, NULL, bind_dmabuf))) {
		fprintf(stderr, "refcomp: cannot create the globals\n");
		return 2;
	}

	if (opt.socket) {
		name = opt.socket;
		if (wl_display_add_socket(rc.display, name) < 0)
			name = NULL;
	} else {
		name = wl_display_add_socket_auto(rc.display);
	}
	if (!name) {
		fprintf(stderr, "refcomp: cannot listen on %s (XDG_RUNTIME_DIR=%s): %s\n",
			opt.socket ? opt.socket : "wayland-N",
			getenv("XDG_RUNTIME_DIR"), strerror(errno));
		return 2;
	}
	fprintf(rc.log, "ready socket=%s\n", name);

	wl_display_run(rc.display);

	fprintf(rc.log, "summary frames=%u dmabuf=%u shm=%u shm_pools=%u "
		"dmabuf_created=%u dmabuf_failed=%u busy_reuse=%u\n", rc.frames,
		rc.dmabuf_frames, rc.shm_frames, rc.shm_pools,
		rc.dmabuf_created, rc.dmabuf_failed, rc.busy_reuses);
	wl_display_destroy_clients(rc.display);
	while (!wl_list_empty(&rc.delayed)) {
		struct delayed_release *d;

		d = wl_container_of(rc.delayed.next, d, link);
		delayed_release_fire(d);
	}
	wl_event_source_remove(rc.tick);
	for (int i = 0; i < 3; i++)
		if (sources[i])
			wl_event_source_remove(sources[i]);
	wl_display_destroy(rc.display);
	if (rc.log != stdout)
		fclose(rc.log);
	return rc.status;
}
