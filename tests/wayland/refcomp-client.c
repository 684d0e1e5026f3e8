/* SPDX-License-Identifier: MIT */
/*
 * refcomp-client: tests refcomp itself, with requests libvmshare never
 * sends.  TAP output; one fresh connection per case.
 *
 *   refcomp-client LOG      (WAYLAND_DISPLAY names a running refcomp
 *                            started with the defaults and --log LOG)
 *
 * Imports: memfds stand in for dma-bufs (refcomp reads any mappable fd),
 * with a plane offset that is not page aligned, a stride wider than the
 * row, odd NV12 sizes and create_immed; each frame's checksum in LOG must
 * equal the one computed here, so refcomp honours offsets and strides.
 * Bad clients: each case breaks exactly one rule and must end in the
 * protocol error of the interface the rule belongs to, and refcomp must
 * live on (the next case connects again), even when the memory behind a
 * committed buffer is truncated (SIGBUS in refcomp).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wayland-client.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "presentation-time-client-protocol.h"
#include "xdg-shell-client-protocol.h"

#define XR24 0x34325258u
#define AB24 0x34324241u
#define NV12 0x3231564eu
#define DRM_FORMAT_MOD_LINEAR 0ull

struct conn {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct wl_shm *shm;
	struct xdg_wm_base *wm_base;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	struct wp_presentation *presentation;
	uint32_t configure_serial;
	bool frame_done, presented;
	unsigned int releases;
	int params_result;	/* 1 created, -1 failed */
	struct wl_buffer *created;
};

static const char *log_path;

static void wm_base_ping(void *data, struct xdg_wm_base *wm_base,
			 uint32_t serial)
{
	(void)data;
	xdg_wm_base_pong(wm_base, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = {
	.ping = wm_base_ping,
};

static void registry_global(void *data, struct wl_registry *registry,
			    uint32_t name, const char *interface,
			    uint32_t version)
{
	struct conn *c = data;

	(void)version;
	if (!strcmp(interface, wl_compositor_interface.name)) {
		c->compositor = wl_registry_bind(registry, name,
						 &wl_compositor_interface, 4);
	} else if (!strcmp(interface, wl_shm_interface.name)) {
		c->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
	} else if (!strcmp(interface, xdg_wm_base_interface.name)) {
		c->wm_base = wl_registry_bind(registry, name,
					      &xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(c->wm_base, &wm_base_listener, c);
	} else if (!strcmp(interface, wp_presentation_interface.name)) {
		c->presentation = wl_registry_bind(registry, name,
						   &wp_presentation_interface, 1);
	} else if (!strcmp(interface, zwp_linux_dmabuf_v1_interface.name)) {
		c->dmabuf = wl_registry_bind(registry, name,
					     &zwp_linux_dmabuf_v1_interface, 3);
	}
}

static void registry_global_remove(void *data, struct wl_registry *registry,
				   uint32_t name)
{
	(void)data;
	(void)registry;
	(void)name;
}

static const struct wl_registry_listener registry_listener = {
	.global = registry_global,
	.global_remove = registry_global_remove,
};

static struct conn *conn_open(void)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->display = wl_display_connect(NULL);
	if (!c->display) {
		printf("Bail out! cannot connect to refcomp: %s\n",
		       strerror(errno));
		exit(1);
	}
	c->registry = wl_display_get_registry(c->display);
	wl_registry_add_listener(c->registry, &registry_listener, c);
	wl_display_roundtrip(c->display);
	if (!c->compositor || !c->shm || !c->wm_base || !c->dmabuf ||
	    !c->presentation) {
		printf("Bail out! refcomp lacks a global\n");
		exit(1);
	}
	return c;
}

/* Proxies die with the connection; only the display needs closing. */
static void conn_close(struct conn *c)
{
	wl_display_disconnect(c->display);
	free(c);
}

/*
 * The case's last request must have been the one that breaks a rule.
 * @interface NULL: the request destroyed its own proxy, so libwayland no
 * longer knows the interface of the object the error names.
 */
static bool expect_error(struct conn *c, const char *interface, uint32_t code)
{
	const struct wl_interface *iface = NULL;
	uint32_t got, id;

	wl_display_roundtrip(c->display);
	if (wl_display_get_error(c->display) != EPROTO) {
		printf("# no protocol error (error %d)\n",
		       wl_display_get_error(c->display));
		return false;
	}
	got = wl_display_get_protocol_error(c->display, &iface, &id);
	if (got != code || (interface ? !iface || strcmp(iface->name, interface) :
				       iface != NULL)) {
		printf("# protocol error %s.%u, expected %s.%u\n",
		       iface ? iface->name : "?", got,
		       interface ? interface : "?", code);
		return false;
	}
	return true;
}

static bool expect_no_error(struct conn *c)
{
	if (wl_display_roundtrip(c->display) >= 0)
		return true;
	printf("# unexpected error %d\n", wl_display_get_error(c->display));
	return false;
}

/* A memfd of @size bytes holding bytes that differ at every position. */
static int memfd_pattern(size_t size, uint8_t **map)
{
	int fd = memfd_create("refcomp-client", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED)
		abort();
	for (size_t i = 0; i < size; i++)
		(*map)[i] = (uint8_t)(i * 7 + i / 251);
	return fd;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* The checksum of refcomp's last frame line, or 0. */
static uint64_t last_logged_checksum(char *path, size_t path_len)
{
	FILE *f = fopen(log_path, "re");
	char line[512];
	unsigned long long sum = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, " path=");
		const char *s = strstr(line, " checksum=");

		if (strncmp(line, "frame ", 6) || !p || !s)
			continue;
		sscanf(p, " path=%15s", path);
		sscanf(s, " checksum=%llx", &sum);
	}
	fclose(f);
	path[path_len - 1] = '\0';
	return sum;
}

static void buffer_release(void *data, struct wl_buffer *buffer)
{
	struct conn *c = data;

	(void)buffer;
	c->releases++;
}

static const struct wl_buffer_listener buffer_listener = {
	.release = buffer_release,
};

static void params_created(void *data,
			   struct zwp_linux_buffer_params_v1 *params,
			   struct wl_buffer *buffer)
{
	struct conn *c = data;

	(void)params;
	c->created = buffer;
	c->params_result = 1;
}

static void params_failed(void *data, struct zwp_linux_buffer_params_v1 *params)
{
	struct conn *c = data;

	(void)params;
	c->params_result = -1;
}

static const struct zwp_linux_buffer_params_v1_listener params_listener = {
	.created = params_created,
	.failed = params_failed,
};

static struct zwp_linux_buffer_params_v1 *params_new(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p;

	p = zwp_linux_dmabuf_v1_create_params(c->dmabuf);
	zwp_linux_buffer_params_v1_add_listener(p, &params_listener, c);
	return p;
}

static void params_add(struct zwp_linux_buffer_params_v1 *p, int fd,
		       uint32_t plane, uint32_t offset, uint32_t stride)
{
	zwp_linux_buffer_params_v1_add(p, fd, plane, offset, stride,
				       (uint32_t)(DRM_FORMAT_MOD_LINEAR >> 32),
				       (uint32_t)DRM_FORMAT_MOD_LINEAR);
}

/* Commits @buffer on a role-less surface; refcomp logs it all the same. */
static bool commit_and_check(struct conn *c, struct wl_buffer *buffer,
			     uint64_t expected)
{
	struct wl_surface *surface = wl_compositor_create_surface(c->compositor);
	char path[16] = "";
	uint64_t got;

	wl_buffer_add_listener(buffer, &buffer_listener, c);
	wl_surface_attach(surface, buffer, 0, 0);
	wl_surface_commit(surface);
	if (!expect_no_error(c))
		return false;
	got = last_logged_checksum(path, sizeof(path));
	if (got != expected || strcmp(path, "dmabuf")) {
		printf("# refcomp logged path=%s checksum=%016llx, expected "
		       "dmabuf %016llx\n", path, (unsigned long long)got,
		       (unsigned long long)expected);
		return false;
	}
	/* refcomp keeps no reference after reading: released at once. */
	if (c->releases != 1) {
		printf("# %u releases after the commit\n", c->releases);
		return false;
	}
	return true;
}

/* XR24 at an odd plane offset with a stride wider than a row. */
static bool import_xr24_offset(struct conn *c)
{
	const uint32_t width = 50, height = 20, stride = 256, offset = 100;
	size_t size = offset + (size_t)stride * height;
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint64_t h = 1469598103934665603ull;
	uint8_t *map;
	int fd = memfd_pattern(size, &map);

	for (uint32_t y = 0; y < height; y++)
		h = fnv1a(h, map + offset + y * stride, width * 4);
	params_add(p, fd, 0, offset, stride);
	zwp_linux_buffer_params_v1_create(p, width, height, XR24, 0);
	close(fd);
	while (!c->params_result)
		if (wl_display_dispatch(c->display) < 0)
			return false;
	if (c->params_result != 1) {
		printf("# import failed\n");
		return false;
	}
	return commit_and_check(c, c->created, h);
}

/* NV12 of odd size, both planes in one memfd, through create_immed. */
static bool import_nv12_immed(struct conn *c)
{
	const uint32_t width = 33, height = 17, y_stride = 64, uv_stride = 48;
	const uint32_t uv_offset = 64 * 17 + 12;
	size_t size = uv_offset + (size_t)uv_stride * 9;
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint64_t h = 1469598103934665603ull;
	struct wl_buffer *buffer;
	uint8_t *map;
	int fd = memfd_pattern(size, &map);

	for (uint32_t y = 0; y < height; y++)
		h = fnv1a(h, map + y * y_stride, width);
	for (uint32_t y = 0; y < (height + 1) / 2; y++)
		h = fnv1a(h, map + uv_offset + y * uv_stride, (width + 1) / 2 * 2);
	params_add(p, fd, 0, 0, y_stride);
	params_add(p, fd, 1, uv_offset, uv_stride);
	close(fd);
	buffer = zwp_linux_buffer_params_v1_create_immed(p, width, height,
							 NV12, 0);
	return commit_and_check(c, buffer, h);
}

/* A known format that is not offered is a runtime failure, not an error. */
static bool import_not_offered_fails(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, AB24, 0);
	if (!expect_no_error(c))
		return false;
	return c->params_result == -1;
}

static bool import_not_offered_immed(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create_immed(p, 16, 16, AB24, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_WL_BUFFER);
}

static bool params_plane_idx(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 4, 0, 64);
	close(fd);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_PLANE_IDX);
}

static bool params_plane_set(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	params_add(p, fd, 0, 0, 64);
	close(fd);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_PLANE_SET);
}

static bool params_incomplete(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 16);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, NV12, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INCOMPLETE);
}

static bool params_unknown_format(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, 0x20202020u, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_FORMAT);
}

static bool params_zero_width(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 0, 16, XR24, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INVALID_DIMENSIONS);
}

static bool params_out_of_bounds(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	/* 64 * 16 bytes fit the memfd, but not from offset 3100. */
	params_add(p, fd, 0, 3100, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, XR24, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_OUT_OF_BOUNDS);
}

static bool params_short_stride(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 60);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, XR24, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_OUT_OF_BOUNDS);
}

static bool params_already_used(struct conn *c)
{
	struct zwp_linux_buffer_params_v1 *p = params_new(c);
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	params_add(p, fd, 0, 0, 64);
	close(fd);
	zwp_linux_buffer_params_v1_create(p, 16, 16, XR24, 0);
	zwp_linux_buffer_params_v1_create(p, 16, 16, XR24, 0);
	return expect_error(c, "zwp_linux_buffer_params_v1",
			    ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_ALREADY_USED);
}

static struct wl_shm_pool *pool_new(struct conn *c, size_t size, int *fd_out)
{
	uint8_t *map;
	int fd = memfd_pattern(size, &map);
	struct wl_shm_pool *pool = wl_shm_create_pool(c->shm, fd, (int32_t)size);

	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return pool;
}

static bool shm_bad_stride(struct conn *c)
{
	struct wl_shm_pool *pool = pool_new(c, 4096, NULL);

	wl_shm_pool_create_buffer(pool, 0, 16, 16, 60, WL_SHM_FORMAT_XRGB8888);
	return expect_error(c, "wl_shm_pool", WL_SHM_ERROR_INVALID_STRIDE);
}

static bool shm_too_big(struct conn *c)
{
	struct wl_shm_pool *pool = pool_new(c, 4096, NULL);

	wl_shm_pool_create_buffer(pool, 3100, 16, 16, 64, WL_SHM_FORMAT_XRGB8888);
	return expect_error(c, "wl_shm_pool", WL_SHM_ERROR_INVALID_STRIDE);
}

static bool shm_bad_format(struct conn *c)
{
	struct wl_shm_pool *pool = pool_new(c, 4096, NULL);

	wl_shm_pool_create_buffer(pool, 0, 16, 16, 64, WL_SHM_FORMAT_C8);
	return expect_error(c, "wl_shm_pool", WL_SHM_ERROR_INVALID_FORMAT);
}

static bool shm_empty_pool(struct conn *c)
{
	uint8_t *map;
	int fd = memfd_pattern(4096, &map);

	wl_shm_create_pool(c->shm, fd, 0);
	close(fd);
	return expect_error(c, "wl_shm", WL_SHM_ERROR_INVALID_STRIDE);
}

static bool shm_shrink(struct conn *c)
{
	struct wl_shm_pool *pool = pool_new(c, 8192, NULL);

	wl_shm_pool_resize(pool, 4096);
	return expect_error(c, "wl_shm_pool", WL_SHM_ERROR_INVALID_FD);
}

/* The memory shrinks under refcomp's mapping: SIGBUS there, an error here. */
static bool shm_truncated(struct conn *c)
{
	int fd;
	struct wl_shm_pool *pool = pool_new(c, 65536, &fd);
	struct wl_buffer *buffer = wl_shm_pool_create_buffer(pool, 0, 64, 64,
						256, WL_SHM_FORMAT_XRGB8888);
	struct wl_surface *surface = wl_compositor_create_surface(c->compositor);

	if (!expect_no_error(c))
		return false;
	if (ftruncate(fd, 0) < 0)
		abort();
	close(fd);
	wl_surface_attach(surface, buffer, 0, 0);
	wl_surface_commit(surface);
	return expect_error(c, "wl_buffer", WL_SHM_ERROR_INVALID_FD);
}

static void xdg_surface_configure(void *data, struct xdg_surface *surface,
				  uint32_t serial)
{
	struct conn *c = data;

	(void)surface;
	c->configure_serial = serial;
}

static const struct xdg_surface_listener xdg_surface_listener = {
	.configure = xdg_surface_configure,
};

static struct xdg_surface *xdg_new(struct conn *c, struct wl_surface **surface)
{
	struct xdg_surface *xdg;

	*surface = wl_compositor_create_surface(c->compositor);
	xdg = xdg_wm_base_get_xdg_surface(c->wm_base, *surface);
	xdg_surface_add_listener(xdg, &xdg_surface_listener, c);
	return xdg;
}

static bool xdg_unconfigured_buffer(struct conn *c)
{
	struct wl_surface *surface;
	struct xdg_surface *xdg = xdg_new(c, &surface);
	struct wl_shm_pool *pool = pool_new(c, 4096, NULL);

	xdg_surface_get_toplevel(xdg);
	wl_surface_attach(surface, wl_shm_pool_create_buffer(pool, 0, 16, 16,
			  64, WL_SHM_FORMAT_XRGB8888), 0, 0);
	wl_surface_commit(surface);
	return expect_error(c, "xdg_surface",
			    XDG_SURFACE_ERROR_UNCONFIGURED_BUFFER);
}

static bool xdg_configured_buffer(struct conn *c)
{
	struct wl_surface *surface;
	struct xdg_surface *xdg = xdg_new(c, &surface);
	struct wl_shm_pool *pool = pool_new(c, 4096, NULL);

	xdg_toplevel_set_title(xdg_surface_get_toplevel(xdg), "refcomp-client");
	wl_surface_commit(surface);
	wl_display_roundtrip(c->display);
	if (!c->configure_serial) {
		printf("# no configure after the initial commit\n");
		return false;
	}
	xdg_surface_ack_configure(xdg, c->configure_serial);
	wl_surface_attach(surface, wl_shm_pool_create_buffer(pool, 0, 16, 16,
			  64, WL_SHM_FORMAT_XRGB8888), 0, 0);
	wl_surface_commit(surface);
	return expect_no_error(c);
}

static bool xdg_bad_serial(struct conn *c)
{
	struct wl_surface *surface;
	struct xdg_surface *xdg = xdg_new(c, &surface);

	xdg_surface_get_toplevel(xdg);
	wl_surface_commit(surface);
	wl_display_roundtrip(c->display);
	xdg_surface_ack_configure(xdg, c->configure_serial + 1000);
	return expect_error(c, "xdg_surface", XDG_SURFACE_ERROR_INVALID_SERIAL);
}

static bool xdg_not_constructed(struct conn *c)
{
	struct wl_surface *surface;

	xdg_new(c, &surface);
	wl_surface_commit(surface);
	return expect_error(c, "xdg_surface", XDG_SURFACE_ERROR_NOT_CONSTRUCTED);
}

static bool xdg_twice(struct conn *c)
{
	struct wl_surface *surface;

	xdg_new(c, &surface);
	xdg_wm_base_get_xdg_surface(c->wm_base, surface);
	return expect_error(c, "xdg_wm_base", XDG_WM_BASE_ERROR_ROLE);
}

static bool xdg_two_roles(struct conn *c)
{
	struct wl_surface *surface;
	struct xdg_surface *xdg = xdg_new(c, &surface);

	xdg_surface_get_toplevel(xdg);
	xdg_surface_get_toplevel(xdg);
	return expect_error(c, "xdg_surface",
			    XDG_SURFACE_ERROR_ALREADY_CONSTRUCTED);
}

static bool xdg_defunct_role(struct conn *c)
{
	struct wl_surface *surface;
	struct xdg_surface *xdg = xdg_new(c, &surface);

	xdg_surface_get_toplevel(xdg);
	xdg_surface_destroy(xdg);
	return expect_error(c, NULL,
			    XDG_SURFACE_ERROR_DEFUNCT_ROLE_OBJECT);
}

static bool xdg_defunct_surfaces(struct conn *c)
{
	struct wl_surface *surface;

	xdg_new(c, &surface);
	xdg_wm_base_destroy(c->wm_base);
	return expect_error(c, NULL, XDG_WM_BASE_ERROR_DEFUNCT_SURFACES);
}

static void frame_done(void *data, struct wl_callback *callback,
		       uint32_t time)
{
	struct conn *c = data;

	(void)time;
	wl_callback_destroy(callback);
	c->frame_done = true;
}

static const struct wl_callback_listener frame_listener = {
	.done = frame_done,
};

static void feedback_sync_output(void *data,
				 struct wp_presentation_feedback *feedback,
				 struct wl_output *output)
{
	(void)data;
	(void)feedback;
	(void)output;
}

static void feedback_presented(void *data,
			       struct wp_presentation_feedback *feedback,
			       uint32_t tv_sec_hi, uint32_t tv_sec_lo,
			       uint32_t tv_nsec, uint32_t refresh,
			       uint32_t seq_hi, uint32_t seq_lo, uint32_t flags)
{
	struct conn *c = data;

	(void)tv_sec_hi;
	(void)tv_sec_lo;
	(void)tv_nsec;
	(void)refresh;
	(void)seq_hi;
	(void)seq_lo;
	(void)flags;
	wp_presentation_feedback_destroy(feedback);
	c->presented = true;
}

static void feedback_discarded(void *data,
			       struct wp_presentation_feedback *feedback)
{
	(void)data;
	wp_presentation_feedback_destroy(feedback);
}

static const struct wp_presentation_feedback_listener feedback_listener = {
	.sync_output = feedback_sync_output,
	.presented = feedback_presented,
	.discarded = feedback_discarded,
};

/* Both fire on refcomp's timer after a commit, buffer or not. */
static bool frame_and_feedback(struct conn *c)
{
	struct wl_surface *surface = wl_compositor_create_surface(c->compositor);
	struct wp_presentation_feedback *feedback;

	wl_callback_add_listener(wl_surface_frame(surface), &frame_listener, c);
	feedback = wp_presentation_feedback(c->presentation, surface);
	wp_presentation_feedback_add_listener(feedback, &feedback_listener, c);
	wl_surface_commit(surface);
	while (!c->frame_done || !c->presented)
		if (wl_display_dispatch(c->display) < 0)
			return false;
	return true;
}

static bool surface_bad_scale(struct conn *c)
{
	wl_surface_set_buffer_scale(wl_compositor_create_surface(c->compositor),
				    0);
	return expect_error(c, "wl_surface", WL_SURFACE_ERROR_INVALID_SCALE);
}

static bool surface_bad_transform(struct conn *c)
{
	wl_surface_set_buffer_transform(wl_compositor_create_surface(c->compositor),
					8);
	return expect_error(c, "wl_surface", WL_SURFACE_ERROR_INVALID_TRANSFORM);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		bool (*run)(struct conn *c);
	} cases[] = {
		{ "dmabuf XR24 at offset 100, stride 256: exact checksum, released", import_xr24_offset },
		{ "dmabuf NV12 33x17 create_immed: exact checksum", import_nv12_immed },
		{ "dmabuf format not offered: failed event", import_not_offered_fails },
		{ "dmabuf format not offered, immed: INVALID_WL_BUFFER", import_not_offered_immed },
		{ "params plane 4: PLANE_IDX", params_plane_idx },
		{ "params plane twice: PLANE_SET", params_plane_set },
		{ "params NV12 without plane 1: INCOMPLETE", params_incomplete },
		{ "params unknown fourcc: INVALID_FORMAT", params_unknown_format },
		{ "params width 0: INVALID_DIMENSIONS", params_zero_width },
		{ "params past the fd's end: OUT_OF_BOUNDS", params_out_of_bounds },
		{ "params stride below the row: OUT_OF_BOUNDS", params_short_stride },
		{ "params create twice: ALREADY_USED", params_already_used },
		{ "shm stride below the row: INVALID_STRIDE", shm_bad_stride },
		{ "shm buffer past the pool: INVALID_STRIDE", shm_too_big },
		{ "shm unknown format: INVALID_FORMAT", shm_bad_format },
		{ "shm pool of 0 bytes: INVALID_STRIDE", shm_empty_pool },
		{ "shm pool shrinks: INVALID_FD", shm_shrink },
		{ "shm memory truncated before commit: INVALID_FD", shm_truncated },
		{ "xdg buffer before configure: UNCONFIGURED_BUFFER", xdg_unconfigured_buffer },
		{ "xdg buffer after ack_configure: accepted", xdg_configured_buffer },
		{ "xdg ack of an unsent serial: INVALID_SERIAL", xdg_bad_serial },
		{ "xdg commit without a role: NOT_CONSTRUCTED", xdg_not_constructed },
		{ "xdg_surface twice for a surface: ROLE", xdg_twice },
		{ "xdg get_toplevel twice: ALREADY_CONSTRUCTED", xdg_two_roles },
		{ "xdg_surface destroyed before its toplevel: DEFUNCT_ROLE_OBJECT", xdg_defunct_role },
		{ "xdg_wm_base destroyed first: DEFUNCT_SURFACES", xdg_defunct_surfaces },
		{ "frame callback and presentation feedback fire", frame_and_feedback },
		{ "wl_surface scale 0: INVALID_SCALE", surface_bad_scale },
		{ "wl_surface transform 8: INVALID_TRANSFORM", surface_bad_transform },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	int failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s LOG\n", argv[0]);
		return 2;
	}
	log_path = argv[1];
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		struct conn *c = conn_open();
		bool ok = cases[i].run(c);

		printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1,
		       cases[i].name);
		fflush(stdout);
		failed += !ok;
		conn_close(c);
	}
	return failed ? 1 : 0;
}
