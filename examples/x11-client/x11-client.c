/* SPDX-License-Identifier: MIT */
/*
 * vmshare-x11-client: an X11 window animated from plain process memory,
 * shown through MIT-SHM with no preallocated segment.
 *
 * The frame is one ordinary block from vms_frame_alloc(), page-aligned so
 * that a dma-buf of it holds nothing but the frame.  libvmshare exports it
 * once and attaches the dma-buf to the X server as an SHM segment, so each
 * frame costs its drawing and one ShmPutImage that the server serves from
 * our memory.  Where the server, the kernel or the flags rule that out, the
 * pixels travel in PutImage requests instead, and the client says why.
 *
 *   vmshare-x11-client [--frames N] [--width W] [--height H]
 *                      [--no-shm] [--no-module]
 *
 * --frames 0 (the default) runs until interrupted.  --no-shm forces the
 * PutImage fallback, --no-module makes libvmshare act as if vmemexp were
 * missing.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xcb/xcb.h>
#include <vmshare-x11.h>

struct options {
	uint32_t frames, width, height;
	bool no_shm, no_module;
};

struct window {
	xcb_connection_t *conn;
	xcb_screen_t *screen;
	xcb_window_t id;
	xcb_gcontext_t gc;
	uint32_t width, height, stride;
	uint32_t *pixels;		/* from vms_frame_alloc() */
	struct vms_context *vms;
	struct vms_buffer *buffer;	/* the pixels, exported */
	struct vms_x11 *vms_x11;
	struct vms_x11_image *image;
};

static volatile sig_atomic_t running = 1;

/* A pattern that depends only on the position and the frame number. */
static void draw(struct window *window, uint32_t n)
{
	for (uint32_t y = 0; y < window->height; y++) {
		uint32_t *row = window->pixels + (size_t)y * window->stride / 4;

		for (uint32_t x = 0; x < window->width; x++) {
			uint32_t band = ((x + n * 3) / 16 + y / 16) & 1;

			row[x] = 0xff000000u |
				 ((band ? 0x2080f0u : 0xf08020u) ^
				  (x * 255 / window->width) << 8 ^
				  (y + n) * 255 / window->height % 256);
		}
	}
}

/* Maps the window and waits until the server shows it. */
static int create_window(struct window *window)
{
	uint32_t values[] = {
		window->screen->black_pixel,
		XCB_EVENT_MASK_EXPOSURE | XCB_EVENT_MASK_STRUCTURE_NOTIFY,
	};
	uint32_t no_exposures = 0;
	xcb_generic_event_t *event;

	window->id = xcb_generate_id(window->conn);
	xcb_create_window(window->conn, window->screen->root_depth, window->id,
			  window->screen->root, 0, 0, (uint16_t)window->width,
			  (uint16_t)window->height, 0,
			  XCB_WINDOW_CLASS_INPUT_OUTPUT,
			  window->screen->root_visual,
			  XCB_CW_BACK_PIXEL | XCB_CW_EVENT_MASK, values);
	xcb_change_property(window->conn, XCB_PROP_MODE_REPLACE, window->id,
			    XCB_ATOM_WM_NAME, XCB_ATOM_STRING, 8,
			    strlen("vmshare x11-client"), "vmshare x11-client");
	window->gc = xcb_generate_id(window->conn);
	xcb_create_gc(window->conn, window->gc, window->id,
		      XCB_GC_GRAPHICS_EXPOSURES, &no_exposures);
	xcb_map_window(window->conn, window->id);
	xcb_flush(window->conn);
	while ((event = xcb_wait_for_event(window->conn))) {
		bool exposed = (event->response_type & 0x7f) == XCB_EXPOSE;

		free(event);
		if (exposed)
			return 0;
	}
	return -EPIPE;
}

/* The frame: process memory, exported once and attached once. */
static int create_frame(struct window *window, const struct options *opt)
{
	size_t len;

	window->stride = window->width * 4;
	len = (size_t)window->stride * window->height;
	window->vms = vms_context_create(opt->no_module ? VMS_CONTEXT_NO_MODULE : 0);
	if (!window->vms)
		return -errno;
	window->pixels = vms_frame_alloc(window->vms, len);
	if (!window->pixels)
		return -errno;
	/* Pages never written would be pinned as they are faulted in. */
	draw(window, 0);
	window->buffer = vms_buffer_export(window->vms, window->pixels, len, 0);
	if (!window->buffer)
		return -errno;
	window->vms_x11 = vms_x11_create(window->vms, window->conn,
					 opt->no_shm ? VMS_X11_NO_SHM : 0);
	if (!window->vms_x11)
		return -errno;
	window->image = vms_x11_image_create(window->vms_x11, window->buffer,
					     window->width, window->height,
					     window->stride,
					     window->screen->root_depth);
	return window->image ? 0 : -errno;
}

static void report_path(const struct window *window)
{
	static const char *const kinds[] = {
		[VMS_BUFFER_DMABUF] = "dma-buf (zero-copy)",
		[VMS_BUFFER_MEMFD_COPY] = "memfd copy",
		[VMS_BUFFER_MEMFD] = "memfd",
	};

	if (vms_x11_image_path(window->image) == VMS_X11_PATH_SHM_FD)
		printf("path: shm-fd (the server reads the frame memory itself)\n");
	else
		printf("path: put-image fallback: %s\n",
		       vms_x11_image_fallback_reason(window->image));
	printf("buffer: %s\n", kinds[vms_buffer_kind(window->buffer)]);
	printf("window: %ux%u depth %u; server: MIT-SHM fds %s, shared pixmaps %s, DRI3 %s\n",
	       window->width, window->height, window->screen->root_depth,
	       vms_x11_has_shm_fd(window->vms_x11) ? "yes" : "no",
	       vms_x11_has_shared_pixmaps(window->vms_x11) ? "yes" : "no",
	       vms_x11_has_dri3(window->vms_x11) ? "yes" : "no");
	fflush(stdout);
}

static void destroy_window(struct window *window)
{
	vms_x11_image_unref(window->image);
	vms_x11_unref(window->vms_x11);
	vms_buffer_unref(window->buffer);
	vms_frame_free(window->vms, window->pixels);
	vms_context_unref(window->vms);
	xcb_free_gc(window->conn, window->gc);
	xcb_destroy_window(window->conn, window->id);
	xcb_disconnect(window->conn);
}

static void on_signal(int sig)
{
	(void)sig;
	running = 0;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option options[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "width", required_argument, NULL, 'w' },
		{ "height", required_argument, NULL, 'h' },
		{ "no-shm", no_argument, NULL, 'S' },
		{ "no-module", no_argument, NULL, 'M' },
		{ 0 },
	};
	int c;

	*opt = (struct options){ .width = 256, .height = 256 };
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'n': opt->frames = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': opt->width = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'h': opt->height = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'S': opt->no_shm = true; break;
		case 'M': opt->no_module = true; break;
		default:
			fprintf(stderr, "usage: %s [--frames N] [--width W] "
				"[--height H] [--no-shm] [--no-module]\n",
				argv[0]);
			return -EINVAL;
		}
	}
	if (!opt->width || !opt->height || opt->width > 4096 ||
	    opt->height > 4096) {
		fprintf(stderr, "width and height must be 1 to 4096\n");
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct timespec frame_time = { .tv_nsec = 16 * 1000 * 1000 };
	struct sigaction sa = { .sa_handler = on_signal };
	struct window window = { 0 };
	struct options opt;
	uint32_t n = 0;
	int screen, ret;

	if (parse_options(argc, argv, &opt))
		return 2;
	window.width = opt.width;
	window.height = opt.height;
	window.conn = xcb_connect(NULL, &screen);
	if (xcb_connection_has_error(window.conn)) {
		fprintf(stderr, "cannot connect to the X server %s\n",
			getenv("DISPLAY") ? getenv("DISPLAY") : "(DISPLAY is unset)");
		return 1;
	}
	for (xcb_screen_iterator_t it =
	     xcb_setup_roots_iterator(xcb_get_setup(window.conn));
	     it.rem; xcb_screen_next(&it), screen--)
		if (!screen)
			window.screen = it.data;
	if (!window.screen || create_window(&window)) {
		fprintf(stderr, "cannot create a window\n");
		return 1;
	}
	ret = create_frame(&window, &opt);
	if (ret) {
		fprintf(stderr, "cannot share the frame with the server: %s\n",
			strerror(-ret));
		return 1;
	}
	report_path(&window);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (; running && (!opt.frames || n < opt.frames); n++) {
		xcb_generic_event_t *event;

		draw(&window, n);
		/* Returns once the server has read the frame: safe to redraw. */
		ret = vms_x11_image_put(window.image, window.id, window.gc, 0, 0);
		if (ret) {
			fprintf(stderr, "frame %u: %s\n", n, strerror(-ret));
			break;
		}
		/* Every frame repaints the whole window: exposures need nothing. */
		while ((event = xcb_poll_for_event(window.conn)))
			free(event);
		if (!opt.frames || n + 1 < opt.frames)
			nanosleep(&frame_time, NULL);
	}
	printf("frames shown: %u\n", n);
	destroy_window(&window);
	return ret ? 1 : 0;
}
