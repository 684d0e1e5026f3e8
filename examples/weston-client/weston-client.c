/* SPDX-License-Identifier: MIT */
/*
 * vmshare-weston-client: a Wayland window animated from plain process
 * memory, shared with the compositor through libvmshare.
 *
 * Each of three frames is an ordinary block from vms_frame_alloc(), which
 * is page-aligned so that a dma-buf of it holds nothing but the frame.
 * Three, because a compositor that scans a buffer out holds two at once
 * (the one on screen and the one queued for the next flip); when it
 * holds all three, the client waits for a release before it draws.
 * libvmshare exports it once and hands the compositor a
 * zwp_linux_dmabuf_v1 buffer of that very memory, so drawing a frame is
 * all it costs; where the compositor or the kernel cannot take that, the
 * frame is copied into a wl_shm pool instead, and the client says why.
 *
 *   vmshare-weston-client [--frames N] [--width W] [--height H]
 *                         [--fullscreen] [--no-dmabuf]
 *
 * --frames N stops after N frames (0, the default: until interrupted);
 * --no-dmabuf takes the wl_shm path even where linux-dmabuf is offered.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <drm_fourcc.h>
#include <wayland-client.h>
#include <vmshare.h>

#include "xdg-shell-client-protocol.h"

#define N_FRAMES 3

struct display {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct xdg_wm_base *wm_base;
	struct vms_context *vms;
	struct vms_wl *vms_wl;
};

struct frame {
	uint32_t *pixels;		/* from vms_frame_alloc() */
	struct vms_wl_buffer *buffer;
};

struct window {
	struct display *display;
	uint32_t width, height, stride;
	struct wl_surface *surface;
	struct xdg_surface *xdg_surface;
	struct xdg_toplevel *xdg_toplevel;
	struct frame frames[N_FRAMES];
	struct wl_callback *callback;
	bool configured, fullscreen, failed;
	bool waiting;	/* every frame is held: draw at the next release */
	uint32_t committed, wanted;
};

static volatile sig_atomic_t running = 1;

/* A pattern that depends only on the position and the frame number. */
static void draw(struct window *window, uint32_t *pixels, uint32_t n)
{
	for (uint32_t y = 0; y < window->height; y++) {
		uint32_t *row = pixels + (size_t)y * window->stride / 4;

		for (uint32_t x = 0; x < window->width; x++) {
			uint32_t band = ((x + n * 3) / 16 + y / 16) & 1;

			row[x] = 0xff000000u |
				 ((band ? 0x2080f0u : 0xf08020u) ^
				  (x * 255 / window->width) << 8 ^
				  y * 255 / window->height);
		}
	}
}

static struct frame *free_frame(struct window *window)
{
	for (int i = 0; i < N_FRAMES; i++)
		if (!vms_wl_buffer_is_busy(window->frames[i].buffer))
			return &window->frames[i];
	return NULL;
}

static void redraw(void *data, struct wl_callback *callback, uint32_t time);

static const struct wl_callback_listener frame_listener = {
	.done = redraw,
};

static void redraw(void *data, struct wl_callback *callback, uint32_t time)
{
	struct window *window = data;
	struct frame *frame = free_frame(window);
	int ret;

	(void)time;
	if (callback)
		wl_callback_destroy(callback);
	window->callback = NULL;
	/* The last frame's callback can fire in the final roundtrip. */
	if (!running)
		return;
	if (!frame) {
		window->waiting = true;
		return;
	}

	draw(window, frame->pixels, window->committed);
	ret = vms_wl_buffer_update(frame->buffer);
	if (!ret)
		ret = vms_wl_buffer_attach(frame->buffer, window->surface, 0, 0);
	if (ret) {
		fprintf(stderr, "presenting a frame: %s\n", strerror(-ret));
		window->failed = true;
		running = 0;
		return;
	}

	wl_surface_damage_buffer(window->surface, 0, 0, (int32_t)window->width,
				 (int32_t)window->height);
	window->callback = wl_surface_frame(window->surface);
	wl_callback_add_listener(window->callback, &frame_listener, window);
	wl_surface_commit(window->surface);
	if (++window->committed == window->wanted)
		running = 0;
}

/* A frame came back: draw into it if the animation was waiting for one. */
static void frame_released(void *data, struct vms_wl_buffer *buffer)
{
	struct window *window = data;

	(void)buffer;
	if (!window->waiting)
		return;
	window->waiting = false;
	redraw(window, NULL, 0);
}

static void xdg_surface_configure(void *data, struct xdg_surface *surface,
				  uint32_t serial)
{
	struct window *window = data;

	xdg_surface_ack_configure(surface, serial);
	window->configured = true;
}

static const struct xdg_surface_listener xdg_surface_listener = {
	.configure = xdg_surface_configure,
};

static void toplevel_configure(void *data, struct xdg_toplevel *toplevel,
			       int32_t width, int32_t height,
			       struct wl_array *states)
{
	struct window *window = data;

	(void)toplevel;
	(void)states;
	/* Fullscreen takes the output's size, so the buffer can be scanned out. */
	if (window->fullscreen && width > 0 && height > 0 && !window->committed) {
		window->width = (uint32_t)width;
		window->height = (uint32_t)height;
	}
}

static void toplevel_close(void *data, struct xdg_toplevel *toplevel)
{
	(void)data;
	(void)toplevel;
	running = 0;
}

static const struct xdg_toplevel_listener toplevel_listener = {
	.configure = toplevel_configure,
	.close = toplevel_close,
};

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
	struct display *d = data;

	(void)version;
	if (!strcmp(interface, wl_compositor_interface.name)) {
		d->compositor = wl_registry_bind(registry, name,
						 &wl_compositor_interface, 4);
	} else if (!strcmp(interface, xdg_wm_base_interface.name)) {
		d->wm_base = wl_registry_bind(registry, name,
					      &xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(d->wm_base, &wm_base_listener, d);
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

static struct display *create_display(uint32_t vms_wl_flags)
{
	struct display *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->display = wl_display_connect(NULL);
	if (!d->display) {
		fprintf(stderr, "cannot connect to a Wayland compositor: %s\n",
			strerror(errno));
		exit(1);
	}
	d->registry = wl_display_get_registry(d->display);
	wl_registry_add_listener(d->registry, &registry_listener, d);
	wl_display_roundtrip(d->display);
	if (!d->compositor || !d->wm_base) {
		fprintf(stderr, "the compositor lacks wl_compositor or xdg_wm_base\n");
		exit(1);
	}
	d->vms = vms_context_create(0);
	d->vms_wl = d->vms ? vms_wl_create(d->vms, d->display, vms_wl_flags) : NULL;
	if (!d->vms_wl) {
		fprintf(stderr, "libvmshare: %s\n", strerror(errno));
		exit(1);
	}
	return d;
}

static void destroy_display(struct display *d)
{
	vms_wl_unref(d->vms_wl);
	vms_context_unref(d->vms);
	xdg_wm_base_destroy(d->wm_base);
	wl_compositor_destroy(d->compositor);
	wl_registry_destroy(d->registry);
	wl_display_flush(d->display);
	wl_display_disconnect(d->display);
	free(d);
}

static struct window *create_window(struct display *d, uint32_t width,
				    uint32_t height, bool fullscreen)
{
	struct window *window = calloc(1, sizeof(*window));

	if (!window)
		return NULL;
	window->display = d;
	window->width = width;
	window->height = height;
	window->fullscreen = fullscreen;
	window->surface = wl_compositor_create_surface(d->compositor);
	window->xdg_surface = xdg_wm_base_get_xdg_surface(d->wm_base,
							  window->surface);
	xdg_surface_add_listener(window->xdg_surface, &xdg_surface_listener,
				 window);
	window->xdg_toplevel = xdg_surface_get_toplevel(window->xdg_surface);
	xdg_toplevel_add_listener(window->xdg_toplevel, &toplevel_listener,
				  window);
	xdg_toplevel_set_title(window->xdg_toplevel, "vmshare weston-client");
	if (fullscreen)
		xdg_toplevel_set_fullscreen(window->xdg_toplevel, NULL);
	wl_surface_commit(window->surface);
	while (!window->configured)
		if (wl_display_dispatch(d->display) < 0)
			return NULL;
	return window;
}

/* The frames: process memory, each presented once as a wl_buffer. */
static int create_frames(struct window *window)
{
	window->stride = window->width * 4;
	for (int i = 0; i < N_FRAMES; i++) {
		struct frame *frame = &window->frames[i];

		frame->pixels = vms_frame_alloc(window->display->vms,
						(size_t)window->stride *
						window->height);
		if (!frame->pixels)
			return -errno;
		draw(window, frame->pixels, 0);
		frame->buffer = vms_wl_buffer_create(window->display->vms_wl,
						     frame->pixels, window->width,
						     window->height,
						     window->stride, DRM_FORMAT_XRGB8888);
		if (!frame->buffer)
			return -errno;
		vms_wl_buffer_set_release_handler(frame->buffer, frame_released,
						  window);
	}
	return 0;
}

static void report_path(const struct window *window)
{
	const struct vms_wl_buffer *buffer = window->frames[0].buffer;

	if (vms_wl_buffer_path(buffer) == VMS_WL_PATH_DMABUF)
		printf("path: dmabuf (zero-copy: the compositor reads the frame memory)\n");
	else
		printf("path: wl_shm fallback (one copy per frame): %s\n",
		       vms_wl_buffer_fallback_reason(buffer));
	printf("window: %ux%u XRGB8888\n", window->width, window->height);
	fflush(stdout);
}

static void destroy_window(struct window *window)
{
	if (window->callback)
		wl_callback_destroy(window->callback);
	for (int i = 0; i < N_FRAMES; i++) {
		vms_wl_buffer_unref(window->frames[i].buffer);
		vms_frame_free(window->display->vms, window->frames[i].pixels);
	}
	xdg_toplevel_destroy(window->xdg_toplevel);
	xdg_surface_destroy(window->xdg_surface);
	wl_surface_destroy(window->surface);
	free(window);
}

static void on_signal(int sig)
{
	(void)sig;
	running = 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "width", required_argument, NULL, 'w' },
		{ "height", required_argument, NULL, 'h' },
		{ "fullscreen", no_argument, NULL, 'f' },
		{ "no-dmabuf", no_argument, NULL, 'D' },
		{ 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	uint32_t width = 256, height = 256, frames = 0, flags = 0;
	bool fullscreen = false;
	struct display *display;
	struct window *window;
	int opt, ret = 0;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n': frames = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': width = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'h': height = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'f': fullscreen = true; break;
		case 'D': flags |= VMS_WL_NO_DMABUF; break;
		default:
			fprintf(stderr, "usage: %s [--frames N] [--width W] "
				"[--height H] [--fullscreen] [--no-dmabuf]\n",
				argv[0]);
			return 2;
		}
	}
	if (!width || !height || width > 8192 || height > 8192) {
		fprintf(stderr, "width and height must be 1 to 8192\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	display = create_display(flags);
	window = create_window(display, width, height, fullscreen);
	if (!window || create_frames(window)) {
		fprintf(stderr, "cannot create the window's frames: %s\n",
			strerror(errno));
		return 1;
	}
	window->wanted = frames;
	report_path(window);
	redraw(window, NULL, 0);
	while (running)
		if (wl_display_dispatch(display->display) < 0) {
			fprintf(stderr, "the compositor went away\n");
			ret = 1;
			break;
		}
	/* Let the compositor take the last frame before we go. */
	if (!ret)
		wl_display_roundtrip(display->display);
	if (window->failed)
		ret = 1;
	printf("frames committed: %u\n", window->committed);
	destroy_window(window);
	destroy_display(display);
	return ret;
}
