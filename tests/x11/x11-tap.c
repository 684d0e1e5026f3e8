/* SPDX-License-Identifier: MIT */
/*
 * libvmshare-x11-tap.so: LD_PRELOAD it into a client of libvmshare's X11
 * API (the x11-client example) to see what the client shows, without a
 * line of test code in the client.  It wraps the client's calls of
 * vms_x11_create(), vms_x11_image_create() and vms_x11_image_put();
 * VMSHARE_X11_TAP says what to do, as a comma-separated list:
 *
 *   checksums  before each put, print "frame N checksum X" on stdout: N
 *              counts from 0, X is the checksum of the image's memory
 *              (tests/frame-checksum.h)
 *   verify     after each put, read the drawable back (GetImage) and
 *              compare every pixel with the image's memory: "verify:
 *              frame N: all WxH pixels match", or the first pixel that
 *              does not, and then the put fails with EIO, so the client
 *              fails too
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xcb/xcb.h>
#include <vmshare-x11.h>

#include "tap.h"

#define MAX_IMAGES 16

/* What the image was made of, for each image the client made. */
struct tapped_image {
	const struct vms_x11_image *image;
	xcb_connection_t *conn;
	const uint8_t *data;
	uint32_t width, height, stride, mask;
};

static struct {
	bool checksums, verify;
	/* The connection of the last vms_x11 made: one per client here. */
	xcb_connection_t *conn;
	struct tapped_image images[MAX_IMAGES];
	unsigned int frame;
} tap;

__attribute__((constructor)) static void tap_init(void)
{
	static const char *const words[] = { "checksums", "verify", NULL };
	bool *const flags[] = { &tap.checksums, &tap.verify };

	tap_words("VMSHARE_X11_TAP", words, flags);
}

static struct tapped_image *find(const struct vms_x11_image *image)
{
	for (int i = 0; i < MAX_IMAGES; i++)
		if (tap.images[i].image == image)
			return &tap.images[i];
	return NULL;
}

struct vms_x11 *vms_x11_create(struct vms_context *ctx, xcb_connection_t *conn,
			       uint32_t flags)
{
	struct vms_x11 *(*create)(struct vms_context *, xcb_connection_t *,
				  uint32_t) = tap_real("vms_x11_create");

	tap.conn = conn;
	return create(ctx, conn, flags);
}

struct vms_x11_image *vms_x11_image_create(struct vms_x11 *x11,
					   struct vms_buffer *buf,
					   uint32_t width, uint32_t height,
					   uint32_t stride, uint8_t depth)
{
	struct vms_x11_image *(*create)(struct vms_x11 *, struct vms_buffer *,
					uint32_t, uint32_t, uint32_t,
					uint8_t) = tap_real("vms_x11_image_create");
	void *(*data_of)(const struct vms_buffer *) = tap_real("vms_buffer_data");
	struct vms_x11_image *image = create(x11, buf, width, height, stride,
					     depth);
	struct tapped_image *slot = image ? find(NULL) : NULL;

	if (slot)
		*slot = (struct tapped_image){
			.image = image, .conn = tap.conn, .data = data_of(buf),
			.width = width, .height = height, .stride = stride,
			/* Depth 24 leaves the top byte of each pixel undefined. */
			.mask = depth == 32 ? 0xffffffffu : 0x00ffffffu,
		};
	return image;
}

/* The drawable's pixels against the image's memory. */
static int verify(const struct tapped_image *t, xcb_drawable_t drawable,
		  int16_t x, int16_t y)
{
	xcb_get_image_reply_t *reply;
	const uint8_t *seen;

	reply = xcb_get_image_reply(t->conn,
		xcb_get_image(t->conn, XCB_IMAGE_FORMAT_Z_PIXMAP, drawable, x,
			      y, (uint16_t)t->width, (uint16_t)t->height, ~0u),
		NULL);
	if (!reply || (uint64_t)xcb_get_image_data_length(reply) <
		      (uint64_t)t->width * 4 * t->height) {
		printf("verify: frame %u: GetImage of the drawable failed\n",
		       tap.frame);
		free(reply);
		return -EIO;
	}
	seen = xcb_get_image_data(reply);
	for (uint32_t row = 0; row < t->height; row++) {
		for (uint32_t col = 0; col < t->width; col++) {
			uint32_t got, drew;

			memcpy(&got, seen + ((size_t)row * t->width + col) * 4,
			       sizeof(got));
			memcpy(&drew, t->data + (size_t)row * t->stride + col * 4,
			       sizeof(drew));
			if ((got & t->mask) != (drew & t->mask)) {
				printf("verify: frame %u: pixel (%u,%u) is %08x, drew %08x\n",
				       tap.frame, col, row, got & t->mask,
				       drew & t->mask);
				free(reply);
				return -EIO;
			}
		}
	}
	printf("verify: frame %u: all %ux%u pixels match\n", tap.frame,
	       t->width, t->height);
	free(reply);
	return 0;
}

int vms_x11_image_put(struct vms_x11_image *image, xcb_drawable_t drawable,
		      xcb_gcontext_t gc, int16_t x, int16_t y)
{
	int (*put)(struct vms_x11_image *, xcb_drawable_t, xcb_gcontext_t,
		   int16_t, int16_t) = tap_real("vms_x11_image_put");
	const struct tapped_image *t = find(image);
	int ret;

	if (tap.checksums && t)
		printf("frame %u checksum %016llx\n", tap.frame,
		       (unsigned long long)frame_checksum(t->data, t->width,
							  t->height, t->stride));
	ret = put(image, drawable, gc, x, y);
	if (!ret && tap.verify && t)
		ret = verify(t, drawable, x, y);
	fflush(stdout);
	tap.frame++;
	return ret;
}
