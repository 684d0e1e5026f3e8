/* SPDX-License-Identifier: MIT */
/*
 * The X11 API of a libvmshare built without xcb: the same symbols, so
 * that the ABI does not depend on how the library was configured, none of
 * which can do anything.  No vms_x11 can be created, so the functions on
 * one are never reached with a real object.
 *
 * Without xcb there is no <xcb/xcb.h> to include vmshare-x11.h with, so
 * the prototypes are written out here with xcb's own types (an opaque
 * connection, 32-bit ids).  The build with xcb compiles this file once
 * more against the header (VMS_CHECK_AGAINST_HEADER, libvmshare's
 * meson.build), so the two cannot drift apart unnoticed.
 */
#include <errno.h>

#include "private.h"

#ifdef VMS_CHECK_AGAINST_HEADER
#include "vmshare-x11.h"
#else
typedef struct xcb_connection_t xcb_connection_t;
typedef uint32_t xcb_drawable_t;
typedef uint32_t xcb_gcontext_t;
typedef uint32_t xcb_pixmap_t;

struct vms_x11;
struct vms_x11_image;
enum vms_x11_path {
	VMS_X11_PATH_SHM_FD = 1,
	VMS_X11_PATH_PUT_IMAGE = 2,
};

struct vms_x11 *vms_x11_create(struct vms_context *ctx, xcb_connection_t *conn,
			       uint32_t flags);
struct vms_x11 *vms_x11_ref(struct vms_x11 *x11);
struct vms_x11 *vms_x11_unref(struct vms_x11 *x11);
bool vms_x11_has_shm_fd(const struct vms_x11 *x11);
bool vms_x11_has_shared_pixmaps(const struct vms_x11 *x11);
bool vms_x11_has_dri3(const struct vms_x11 *x11);
struct vms_x11_image *vms_x11_image_create(struct vms_x11 *x11,
					   struct vms_buffer *buf,
					   uint32_t width, uint32_t height,
					   uint32_t stride, uint8_t depth);
int vms_x11_image_detach(struct vms_x11_image *img);
struct vms_x11_image *vms_x11_image_ref(struct vms_x11_image *img);
struct vms_x11_image *vms_x11_image_unref(struct vms_x11_image *img);
int vms_x11_image_put(struct vms_x11_image *img, xcb_drawable_t drawable,
		      xcb_gcontext_t gc, int16_t dst_x, int16_t dst_y);
int vms_x11_image_create_pixmap(struct vms_x11_image *img,
				xcb_drawable_t drawable, xcb_pixmap_t *pixmap);
int vms_x11_image_create_dri3_pixmap(struct vms_x11_image *img,
				     xcb_drawable_t drawable,
				     xcb_pixmap_t *pixmap);
enum vms_x11_path vms_x11_image_path(const struct vms_x11_image *img);
const char *vms_x11_image_fallback_reason(const struct vms_x11_image *img);
#endif

VMS_EXPORT struct vms_x11 *vms_x11_create(struct vms_context *ctx,
					  xcb_connection_t *conn,
					  uint32_t flags)
{
	(void)conn;
	(void)flags;
	vms_log(ctx, "vms_x11_create: libvmshare was built without X11 support");
	errno = ENOTSUP;
	return NULL;
}

VMS_EXPORT struct vms_x11 *vms_x11_ref(struct vms_x11 *x11)
{
	return x11;
}

VMS_EXPORT struct vms_x11 *vms_x11_unref(struct vms_x11 *x11)
{
	(void)x11;
	return NULL;
}

VMS_EXPORT bool vms_x11_has_shm_fd(const struct vms_x11 *x11)
{
	(void)x11;
	return false;
}

VMS_EXPORT bool vms_x11_has_shared_pixmaps(const struct vms_x11 *x11)
{
	(void)x11;
	return false;
}

VMS_EXPORT bool vms_x11_has_dri3(const struct vms_x11 *x11)
{
	(void)x11;
	return false;
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_create(struct vms_x11 *x11,
						      struct vms_buffer *buf,
						      uint32_t width,
						      uint32_t height,
						      uint32_t stride,
						      uint8_t depth)
{
	(void)x11;
	(void)buf;
	(void)width;
	(void)height;
	(void)stride;
	(void)depth;
	errno = ENOTSUP;
	return NULL;
}

VMS_EXPORT int vms_x11_image_detach(struct vms_x11_image *img)
{
	(void)img;
	return -ENOTSUP;
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_ref(struct vms_x11_image *img)
{
	return img;
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_unref(struct vms_x11_image *img)
{
	(void)img;
	return NULL;
}

VMS_EXPORT int vms_x11_image_put(struct vms_x11_image *img,
				 xcb_drawable_t drawable, xcb_gcontext_t gc,
				 int16_t dst_x, int16_t dst_y)
{
	(void)img;
	(void)drawable;
	(void)gc;
	(void)dst_x;
	(void)dst_y;
	return -ENOTSUP;
}

VMS_EXPORT int vms_x11_image_create_pixmap(struct vms_x11_image *img,
					   xcb_drawable_t drawable,
					   xcb_pixmap_t *pixmap)
{
	(void)img;
	(void)drawable;
	(void)pixmap;
	return -ENOTSUP;
}

VMS_EXPORT int vms_x11_image_create_dri3_pixmap(struct vms_x11_image *img,
						xcb_drawable_t drawable,
						xcb_pixmap_t *pixmap)
{
	(void)img;
	(void)drawable;
	(void)pixmap;
	return -ENOTSUP;
}

VMS_EXPORT enum vms_x11_path vms_x11_image_path(const struct vms_x11_image *img)
{
	(void)img;
	return VMS_X11_PATH_PUT_IMAGE;
}

VMS_EXPORT const char *vms_x11_image_fallback_reason(
	const struct vms_x11_image *img)
{
	(void)img;
	return "libvmshare was built without X11 support";
}
