/* SPDX-License-Identifier: MIT */
/*
 * What the wl_shm shim (shim/shm-shim.c, which links libvmshare
 * statically) takes from vms_wl instead of speaking linux-dmabuf itself:
 * the discovery vms_wl_create() makes on its private queue (versions 1 to
 * 4, the feedback's format table included) and the import of a dma-buf.
 */
#ifndef VMS_WAYLAND_PRIVATE_H
#define VMS_WAYLAND_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <wayland-client.h>

#include "vmshare.h"

/* The compositor's wl_shm, bound on @wl's private queue; NULL without one. */
struct wl_shm *vms_wl_shm(const struct vms_wl *wl);

/*
 * Why no dma-buf can go to this compositor (no linux-dmabuf, disabled,
 * unusable feedback, no linear format at all), or NULL when some can.
 * The text lives as long as @wl.
 */
const char *vms_wl_dmabuf_unusable(const struct vms_wl *wl);

/*
 * Whether the compositor takes @fourcc as a linear dma-buf: 0 with the
 * modifier to import it with in *@modifier (DRM_FORMAT_MOD_LINEAR, or
 * DRM_FORMAT_MOD_INVALID where only the implicit modifier is offered),
 * else ENOTSUP with why not in @reason.
 */
int vms_wl_dmabuf_modifier(const struct vms_wl *wl, uint32_t fourcc,
			   uint64_t *modifier, char *reason, size_t size);

/*
 * Asks the compositor to import @n_planes planes of dma-buf @fd and waits
 * for its answer on @wl's private queue.  Returns the wl_buffer, still on
 * that queue, or NULL with errno EINVAL (the compositor refused it) or
 * EPIPE (the connection failed first).
 */
struct wl_buffer *vms_wl_dmabuf_import(struct vms_wl *wl, int fd,
				       uint32_t n_planes,
				       const uint32_t *offsets,
				       const uint32_t *strides,
				       uint64_t modifier, uint32_t width,
				       uint32_t height, uint32_t fourcc);

#endif
