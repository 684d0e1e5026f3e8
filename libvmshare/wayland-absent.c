/* SPDX-License-Identifier: MIT */
/*
 * The Wayland API of a libvmshare built without libwayland-client: the
 * same symbols, so that the ABI does not depend on how the library was
 * configured, none of which can do anything.  No vms_wl can be created,
 * so the functions on one are never reached with a real object; they
 * answer as they would for a bad argument.
 */
#include <errno.h>

#include "private.h"

VMS_EXPORT struct vms_wl *vms_wl_create(struct vms_context *ctx,
					struct wl_display *display,
					uint32_t flags)
{
	(void)display;
	(void)flags;
	vms_log(ctx, "vms_wl_create: libvmshare was built without Wayland support");
	errno = ENOTSUP;
	return NULL;
}

VMS_EXPORT struct vms_wl *vms_wl_ref(struct vms_wl *wl)
{
	return wl;
}

VMS_EXPORT struct vms_wl *vms_wl_unref(struct vms_wl *wl)
{
	(void)wl;
	return NULL;
}

VMS_EXPORT bool vms_wl_supports_dmabuf(const struct vms_wl *wl,
				       uint32_t fourcc)
{
	(void)wl;
	(void)fourcc;
	return false;
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_create(struct vms_wl *wl,
						      void *data,
						      uint32_t width,
						      uint32_t height,
						      uint32_t stride,
						      uint32_t fourcc)
{
	(void)wl;
	(void)data;
	(void)width;
	(void)height;
	(void)stride;
	(void)fourcc;
	errno = ENOTSUP;
	return NULL;
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_ref(struct vms_wl_buffer *buf)
{
	return buf;
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_unref(struct vms_wl_buffer *buf)
{
	(void)buf;
	return NULL;
}

VMS_EXPORT struct wl_buffer *vms_wl_buffer_get(const struct vms_wl_buffer *buf)
{
	(void)buf;
	return NULL;
}

VMS_EXPORT int vms_wl_buffer_update(struct vms_wl_buffer *buf)
{
	(void)buf;
	return -ENOTSUP;
}

VMS_EXPORT int vms_wl_buffer_attach(struct vms_wl_buffer *buf,
				    struct wl_surface *surface, int32_t x,
				    int32_t y)
{
	(void)buf;
	(void)surface;
	(void)x;
	(void)y;
	return -ENOTSUP;
}

VMS_EXPORT bool vms_wl_buffer_is_busy(const struct vms_wl_buffer *buf)
{
	(void)buf;
	return false;
}

VMS_EXPORT void vms_wl_buffer_set_release_handler(struct vms_wl_buffer *buf,
						  vms_wl_release_handler handler,
						  void *data)
{
	(void)buf;
	(void)handler;
	(void)data;
}

VMS_EXPORT enum vms_wl_path vms_wl_buffer_path(const struct vms_wl_buffer *buf)
{
	(void)buf;
	return VMS_WL_PATH_SHM;
}

VMS_EXPORT const char *vms_wl_buffer_fallback_reason(
	const struct vms_wl_buffer *buf)
{
	(void)buf;
	return "libvmshare was built without Wayland support";
}
