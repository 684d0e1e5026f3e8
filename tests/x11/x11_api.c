/* SPDX-License-Identifier: MIT */
/*
 * libvmshare's X11 API against a real X server (Xvfb, started by
 * tests/x11/run-x11-tests, which sets DISPLAY).  Runs on the host, where
 * exports are memfd copies and only vms_buffer_alloc() memory can be an
 * SHM segment, and in the guest, where vms_frame_alloc() memory reaches
 * the server as a dma-buf and memory that is not page-aligned as a copy.  Every test ends with a round trip after releasing its
 * segments, so the server has unmapped them (and the dma-buf's pages are
 * unpinned) before the harness counts pins.
 */
#include <stdlib.h>
#include <unistd.h>

#include <xcb/xcb.h>
#include <vmshare-x11.h>

#include "vmtest.h"

#define W 64
#define H 48

struct fixture {
	xcb_connection_t *conn;
	xcb_screen_t *screen;
	xcb_window_t window;
	xcb_gcontext_t gc;
	struct vms_context *ctx;
	struct vms_x11 *x11;
};

static bool module_present(void)
{
	return access("/dev/vmemexp", F_OK) == 0;
}

static void sync_server(xcb_connection_t *conn)
{
	free(xcb_get_input_focus_reply(conn, xcb_get_input_focus(conn), NULL));
}

static void setup(struct fixture *f, uint32_t ctx_flags, uint32_t x11_flags)
{
	uint32_t values[] = { 0, XCB_EVENT_MASK_EXPOSURE };
	xcb_generic_event_t *event;

	if (!getenv("DISPLAY"))
		vmt_skip("DISPLAY is unset: run through tests/x11/run-x11-tests");
	f->conn = xcb_connect(NULL, NULL);
	VMT_ASSERT(!xcb_connection_has_error(f->conn));
	f->screen = xcb_setup_roots_iterator(xcb_get_setup(f->conn)).data;
	VMT_ASSERT_EQ(f->screen->root_depth, 24);
	f->window = xcb_generate_id(f->conn);
	xcb_create_window(f->conn, 24, f->window, f->screen->root, 0, 0, W, H,
			  0, XCB_WINDOW_CLASS_INPUT_OUTPUT,
			  f->screen->root_visual,
			  XCB_CW_BACK_PIXEL | XCB_CW_EVENT_MASK, values);
	f->gc = xcb_generate_id(f->conn);
	xcb_create_gc(f->conn, f->gc, f->window, XCB_GC_GRAPHICS_EXPOSURES,
		      (uint32_t[]){ 0 });
	xcb_map_window(f->conn, f->window);
	xcb_flush(f->conn);
	while ((event = xcb_wait_for_event(f->conn))) {
		bool exposed = (event->response_type & 0x7f) == XCB_EXPOSE;

		free(event);
		if (exposed)
			break;
	}
	f->ctx = vms_context_create(ctx_flags);
	VMT_ASSERT(f->ctx);
	f->x11 = vms_x11_create(f->ctx, f->conn, x11_flags);
	VMT_ASSERT(f->x11);
}

static void teardown(struct fixture *f)
{
	xcb_generic_event_t *event;

	vms_x11_unref(f->x11);
	vms_context_unref(f->ctx);
	xcb_free_gc(f->conn, f->gc);
	xcb_destroy_window(f->conn, f->window);
	sync_server(f->conn);
	/* Checked requests: no error may have reached the event queue. */
	while ((event = xcb_poll_for_event(f->conn))) {
		bool error = event->response_type == 0;

		free(event);
		VMT_ASSERT(!error);
	}
	xcb_disconnect(f->conn);
}

static void fill(uint8_t *p, uint32_t width, uint32_t height, uint32_t stride,
		 uint32_t seed)
{
	for (uint32_t y = 0; y < height; y++)
		vmt_fill(p + (size_t)y * stride, width * 4, (size_t)y * width * 4,
			 seed);
}

/* Reads @drawable back and compares it with the memory (24 bits a pixel). */
static void expect_pixels(struct fixture *f, xcb_drawable_t drawable,
			  const uint8_t *p, uint32_t width, uint32_t height,
			  uint32_t stride)
{
	xcb_get_image_reply_t *reply;
	const uint8_t *seen;

	reply = xcb_get_image_reply(f->conn,
		xcb_get_image(f->conn, XCB_IMAGE_FORMAT_Z_PIXMAP, drawable, 0,
			      0, (uint16_t)width, (uint16_t)height, ~0u), NULL);
	VMT_ASSERT(reply);
	VMT_ASSERT_EQ(xcb_get_image_data_length(reply), width * 4 * height);
	seen = xcb_get_image_data(reply);
	for (uint32_t y = 0; y < height; y++)
		for (uint32_t x = 0; x < width; x++)
			for (int c = 0; c < 3; c++) {
				size_t s = ((size_t)y * width + x) * 4 + c;
				size_t d = (size_t)y * stride + x * 4 + c;

				if (seen[s] != p[d])
					vmt_fail(__FILE__, __LINE__,
						 "pixel (%u,%u) byte %d is %02x, drew %02x",
						 x, y, c, seen[s], p[d]);
			}
	free(reply);
}

static void create_bad_args(void)
{
	struct vms_context *ctx = vms_context_create(0);
	xcb_connection_t *conn;

	if (!getenv("DISPLAY"))
		vmt_skip("DISPLAY is unset");
	conn = xcb_connect(NULL, NULL);
	VMT_ASSERT(ctx && !xcb_connection_has_error(conn));
	VMT_ASSERT_ERRNO(vms_x11_create(NULL, conn, 0) ? 0 : -1, EINVAL);
	VMT_ASSERT_ERRNO(vms_x11_create(ctx, NULL, 0) ? 0 : -1, EINVAL);
	VMT_ASSERT_ERRNO(vms_x11_create(ctx, conn, 1u << 7) ? 0 : -1, EINVAL);
	xcb_disconnect(conn);

	/* A connection that never came up. */
	conn = xcb_connect("/nonexistent/vmshare:0", NULL);
	VMT_ASSERT(xcb_connection_has_error(conn));
	VMT_ASSERT_ERRNO(vms_x11_create(ctx, conn, 0) ? 0 : -1, EPIPE);
	xcb_disconnect(conn);

	vms_x11_unref(NULL);
	vms_x11_image_unref(NULL);
	VMT_ASSERT_EQ(vms_x11_image_put(NULL, 1, 1, 0, 0), -EINVAL);
	VMT_ASSERT_EQ(vms_x11_image_detach(NULL), -EINVAL);
	vms_context_unref(ctx);
}

static void image_bad_args(void)
{
	struct fixture f = { 0 };
	struct vms_buffer *buf;
	struct vms_x11_image *img;
	xcb_pixmap_t pixmap;
	size_t len = W * 4 * H;
	void *mem = malloc(len);

	setup(&f, 0, 0);
	buf = vms_buffer_export(f.ctx, mem, len, 0);
	VMT_ASSERT(buf);
#define BAD(x11, b, w, h, s, d, err)                                          \
	VMT_ASSERT_ERRNO(vms_x11_image_create(x11, b, w, h, s, d) ? 0 : -1, err)
	BAD(NULL, buf, W, H, W * 4, 24, EINVAL);
	BAD(f.x11, NULL, W, H, W * 4, 24, EINVAL);
	BAD(f.x11, buf, 0, H, W * 4, 24, EINVAL);
	BAD(f.x11, buf, W, 0, W * 4, 24, EINVAL);
	BAD(f.x11, buf, W, H, 0, 24, EINVAL);
	BAD(f.x11, buf, W, H, W * 4 - 4, 24, EINVAL);
	BAD(f.x11, buf, W, H, W * 4 + 2, 24, EINVAL);
	BAD(f.x11, buf, 65536, 1, 65536 * 4, 24, EINVAL);
	BAD(f.x11, buf, 1, 65536, 4, 24, EINVAL);
	BAD(f.x11, buf, W, H, W * 4, 16, EINVAL);
	/* One row more than the memory holds; one pixel wider. */
	BAD(f.x11, buf, W, H + 1, W * 4, 24, EOVERFLOW);
	BAD(f.x11, buf, W + 1, H, (W + 1) * 4, 24, EOVERFLOW);
#undef BAD
	img = vms_x11_image_create(f.x11, buf, W, H, W * 4, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(img, f.window, NULL), -EINVAL);
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(NULL, f.window, &pixmap), -EINVAL);
	VMT_ASSERT_EQ(vms_x11_image_create_dri3_pixmap(img, f.window, NULL), -EINVAL);
	/* The server's errors come back as EIO, not as events. */
	VMT_ASSERT_EQ(vms_x11_image_put(img, 0, f.gc, 0, 0), -EIO);
	VMT_ASSERT_EQ(vms_x11_image_put(img, f.window, 0, 0, 0), -EIO);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	free(mem);
	teardown(&f);
}

/* detach, then every use of the image: -ENOENT; destroy still frees it. */
static void check_detach_twice(struct fixture *f, struct vms_x11_image *img)
{
	xcb_pixmap_t pixmap;

	VMT_ASSERT_EQ(vms_x11_image_detach(img), 0);
	VMT_ASSERT_EQ(vms_x11_image_detach(img), -ENOENT);
	VMT_ASSERT_EQ(vms_x11_image_put(img, f->window, f->gc, 0, 0), -ENOENT);
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(img, f->window, &pixmap),
		      -ENOENT);
	VMT_ASSERT_EQ(vms_x11_image_create_dri3_pixmap(img, f->window, &pixmap),
		      -ENOENT);
	vms_x11_image_unref(img);
}

static void detach_twice(void)
{
	struct fixture f = { 0 };
	struct vms_buffer *shm, *put;
	void *mem = malloc(W * 4 * H);

	setup(&f, 0, 0);
	shm = vms_buffer_alloc(f.ctx, W * 4 * H);
	put = vms_buffer_export(f.ctx, mem, W * 4 * H, 0);
	VMT_ASSERT(shm && put);
	check_detach_twice(&f, vms_x11_image_create(f.x11, shm, W, H, W * 4, 24));
	check_detach_twice(&f, vms_x11_image_create(f.x11, put, W, H, W * 4, 24));
	vms_buffer_unref(shm);
	vms_buffer_unref(put);
	free(mem);
	teardown(&f);
}

/* Two frames through @img: the second after the memory changed. */
static void put_twice(struct fixture *f, struct vms_x11_image *img,
		      struct vms_buffer *buf, uint32_t stride)
{
	uint8_t *p = vms_buffer_data(buf);

	fill(p, W, H, stride, 1);
	VMT_ASSERT_EQ(vms_x11_image_put(img, f->window, f->gc, 0, 0), 0);
	expect_pixels(f, f->window, p, W, H, stride);
	fill(p, W, H, stride, 2);
	VMT_ASSERT_EQ(vms_x11_image_put(img, f->window, f->gc, 0, 0), 0);
	expect_pixels(f, f->window, p, W, H, stride);
}

/* vms_buffer_alloc() memory is a memfd: an SHM segment with or without vmemexp. */
static void memfd_segment(void)
{
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;

	setup(&f, 0, 0);
	VMT_ASSERT(vms_x11_has_shm_fd(f.x11));
	buf = vms_buffer_alloc(f.ctx, W * 4 * H);
	VMT_ASSERT(buf);
	img = vms_x11_image_create(f.x11, buf, W, H, W * 4, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_path(img), VMS_X11_PATH_SHM_FD);
	VMT_ASSERT(!vms_x11_image_fallback_reason(img));
	put_twice(&f, img, buf, W * 4);
	VMT_ASSERT_EQ(vms_x11_image_detach(img), 0);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	teardown(&f);
}

/*
 * Frame memory with vmemexp: a dma-buf segment.  An SHM pixmap of it
 * shows what is written into the memory with no request at all, and what
 * the server draws into the pixmap lands in the memory.
 */
static void dmabuf_segment(void)
{
	const uint32_t stride = W * 4;
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;
	xcb_pixmap_t pixmap;
	xcb_rectangle_t rect = { 0, 0, W, H };
	uint32_t *mem;

	if (!module_present())
		vmt_skip("no /dev/vmemexp: exports are copies here");
	setup(&f, VMS_CONTEXT_REQUIRE_MODULE, 0);
	mem = vms_frame_alloc(f.ctx, stride * H);
	VMT_ASSERT(mem);
	fill((uint8_t *)mem, W, H, stride, 0);
	buf = vms_buffer_export(f.ctx, mem, stride * H, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
	img = vms_x11_image_create(f.x11, buf, W, H, stride, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_path(img), VMS_X11_PATH_SHM_FD);
	put_twice(&f, img, buf, stride);

	VMT_ASSERT(vms_x11_has_shared_pixmaps(f.x11));
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(img, f.window, &pixmap), 0);
	fill((uint8_t *)mem, W, H, stride, 3);
	expect_pixels(&f, pixmap, (uint8_t *)mem, W, H, stride);
	xcb_change_gc(f.conn, f.gc, XCB_GC_FOREGROUND, (uint32_t[]){ 0x123456 });
	xcb_poly_fill_rectangle(f.conn, pixmap, f.gc, 1, &rect);
	sync_server(f.conn);
	for (size_t i = 0; i < W * H; i++)
		if ((mem[i] & 0xffffff) != 0x123456)
			vmt_fail(__FILE__, __LINE__,
				 "pixel %zu is %08x after the server filled the pixmap",
				 i, mem[i]);
	/* The pixmap keeps the server's mapping past the detach. */
	VMT_ASSERT_EQ(vms_x11_image_detach(img), 0);
	fill((uint8_t *)mem, W, H, stride, 4);
	expect_pixels(&f, pixmap, (uint8_t *)mem, W, H, stride);
	xcb_free_pixmap(f.conn, pixmap);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	vms_frame_free(f.ctx, mem);
	teardown(&f);
}

/*
 * A read-only export becomes a read-only segment: puts, but no pixmaps,
 * MIT-SHM's or DRI3's (which Xvfb lacks: the refusal comes first, and the
 * DRI3 path used to answer ENOTSUP here and, on a server with DRI3, make
 * a render target of the read-only memory).
 */
static void readonly_segment(void)
{
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;
	xcb_pixmap_t pixmap;
	void *mem;

	if (!module_present())
		vmt_skip("no /dev/vmemexp: a read-only copy is no segment");
	setup(&f, VMS_CONTEXT_REQUIRE_MODULE, 0);
	mem = vms_frame_alloc(f.ctx, W * 4 * H);
	VMT_ASSERT(mem);
	buf = vms_buffer_export(f.ctx, mem, W * 4 * H, VMS_EXPORT_RDONLY);
	VMT_ASSERT(buf);
	img = vms_x11_image_create(f.x11, buf, W, H, W * 4, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_path(img), VMS_X11_PATH_SHM_FD);
	put_twice(&f, img, buf, W * 4);
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(img, f.window, &pixmap),
		      -EACCES);
	VMT_ASSERT_EQ(vms_x11_image_create_dri3_pixmap(img, f.window, &pixmap),
		      -EACCES);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	vms_frame_free(f.ctx, mem);
	teardown(&f);
}

/*
 * The reasons the fallback gives, each with the pixels still right.  The
 * memory starts 4 bytes into a malloc() block, so never on a page.
 */
static void fallback(uint32_t ctx_flags, uint32_t x11_flags,
		     const char *reason)
{
	const uint32_t stride = W * 4 + 36;	/* rows are packed per request */
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;
	xcb_pixmap_t pixmap;
	uint8_t *alloc = malloc(stride * H + 4), *mem = alloc + 4;

	setup(&f, ctx_flags, x11_flags);
	buf = vms_buffer_export(f.ctx, mem, stride * H, 0);
	VMT_ASSERT(buf);
	img = vms_x11_image_create(f.x11, buf, W, H, stride, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_path(img), VMS_X11_PATH_PUT_IMAGE);
	vmt_note("reason: %s", vms_x11_image_fallback_reason(img));
	if (!strstr(vms_x11_image_fallback_reason(img), reason))
		vmt_fail(__FILE__, __LINE__, "the reason lacks \"%s\"", reason);
	put_twice(&f, img, buf, stride);
	VMT_ASSERT_EQ(vms_x11_image_create_pixmap(img, f.window, &pixmap),
		      -ENOTSUP);
	VMT_ASSERT_EQ(vms_x11_image_create_dri3_pixmap(img, f.window, &pixmap),
		      -ENOTSUP);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	free(alloc);
	teardown(&f);
}

static void fallback_no_shm(void)
{
	fallback(0, VMS_X11_NO_SHM, "MIT-SHM disabled by VMS_X11_NO_SHM");
}

static void fallback_no_module(void)
{
	fallback(VMS_CONTEXT_NO_MODULE, 0,
		 "the buffer is a copy, not the memory: vmemexp is not available");
}

/* Memory that is not page-aligned is copied, so it is no segment. */
static void fallback_not_page_aligned(void)
{
	if (!module_present())
		vmt_skip("no /dev/vmemexp: every export is a copy here");
	fallback(0, 0, "the buffer is a copy, not the memory: the memory is not page-aligned");
}

/* Only the host has no module at all: the library's own default. */
static void fallback_host(void)
{
	if (module_present())
		vmt_skip("vmemexp is loaded");
	fallback(0, 0, "the buffer is a copy, not the memory: vmemexp is not available");
}

/*
 * An image larger than the server's maximum request (BIG-REQUESTS: 16 MiB
 * on Xvfb) goes out as several PutImage requests; into a pixmap, since
 * the screen is smaller.
 */
static void put_image_split(void)
{
	const uint32_t w = 1024, h = 4400, stride = w * 4;
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;
	xcb_pixmap_t pixmap;
	uint8_t *mem = malloc((size_t)stride * h);

	/* Userspace only, and 17 MiB each way is slow under TCG. */
	if (module_present())
		vmt_skip("a host test: no kernel path is involved");
	setup(&f, 0, VMS_X11_NO_SHM);
	VMT_ASSERT((uint64_t)xcb_get_maximum_request_length(f.conn) * 4 <
		   (uint64_t)stride * h);
	pixmap = xcb_generate_id(f.conn);
	xcb_create_pixmap(f.conn, 24, pixmap, f.window, (uint16_t)w,
			  (uint16_t)h);
	fill(mem, w, h, stride, 5);
	buf = vms_buffer_export(f.ctx, mem, (size_t)stride * h, 0);
	VMT_ASSERT(buf);
	img = vms_x11_image_create(f.x11, buf, w, h, stride, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_put(img, pixmap, f.gc, 0, 0), 0);
	expect_pixels(&f, pixmap, mem, w, h, stride);
	xcb_free_pixmap(f.conn, pixmap);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	free(mem);
	teardown(&f);
}

/* Xvfb has no DRI3: the path answers ENOTSUP.  A server with it is untested. */
static void dri3_absent(void)
{
	struct fixture f = { 0 };
	struct vms_x11_image *img;
	struct vms_buffer *buf;
	xcb_pixmap_t pixmap;
	void *mem = malloc(W * 4 * H);

	setup(&f, 0, 0);
	if (vms_x11_has_dri3(f.x11))
		vmt_skip("this server offers DRI3: not the server this test knows");
	buf = vms_buffer_export(f.ctx, mem, W * 4 * H, 0);
	VMT_ASSERT(buf);
	img = vms_x11_image_create(f.x11, buf, W, H, W * 4, 24);
	VMT_ASSERT(img);
	VMT_ASSERT_EQ(vms_x11_image_create_dri3_pixmap(img, f.window, &pixmap),
		      -ENOTSUP);
	vms_x11_image_unref(img);
	vms_buffer_unref(buf);
	free(mem);
	teardown(&f);
}

static const struct vmt_test tests[] = {
	VMT_TEST(create_bad_args),
	VMT_TEST(image_bad_args),
	VMT_TEST(detach_twice),
	VMT_TEST(memfd_segment),
	VMT_TEST(dmabuf_segment),
	VMT_TEST(readonly_segment),
	VMT_TEST(fallback_no_shm),
	VMT_TEST(fallback_no_module),
	VMT_TEST(fallback_not_page_aligned),
	VMT_TEST(fallback_host),
	VMT_TEST(put_image_split),
	VMT_TEST(dri3_absent),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
