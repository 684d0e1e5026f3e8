/* SPDX-License-Identifier: MIT */
/**
 * @file vmshare-x11.h
 * libvmshare for X11 clients: exported memory as MIT-SHM segments.
 *
 * Always exported; it works when libvmshare was built with xcb and xcb-shm
 * (its pkg-config file then defines VMSHARE_HAVE_X11), and otherwise
 * vms_x11_create() fails with ENOTSUP.  Since MIT-SHM 1.2 a client can hand
 * the server a file descriptor as a segment (xcb_shm_attach_fd); the
 * server maps it whole, from offset 0, at the size fstat() reports.  A
 * dma-buf exported by vms_buffer_export() is such a fd, so the server reads
 * (and, for SHM pixmaps, writes) the application's own memory: no
 * preallocated segment, no copy.  Where that cannot work (no MIT-SHM 1.2,
 * the buffer only a copy because vmemexp is missing or the memory is not
 * page-aligned, the server refusing the fd) images go through plain
 * PutImage requests instead, and vms_x11_image_fallback_reason() says
 * why.  Memory from vms_frame_alloc() is always page-aligned.
 *
 * Conventions as in vmshare.h: int functions return 0 or a negative errno,
 * constructors return NULL and set errno, destroy functions accept NULL.
 * Every call that waits for the server does so on the application's
 * connection, so it may queue events the application then dispatches.
 */
#ifndef VMSHARE_X11_H
#define VMSHARE_X11_H

#include <stdbool.h>
#include <stdint.h>

#include <xcb/xcb.h>
#include <vmshare.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A connection's MIT-SHM (and DRI3) capabilities, as libvmshare uses them. */
struct vms_x11;
/** One image in exported memory, presented to the server. */
struct vms_x11_image;

/** Flags of vms_x11_create(). */
enum vms_x11_flags {
	/** Never attach SHM segments (as if the server lacked MIT-SHM 1.2). */
	VMS_X11_NO_SHM = 1u << 0,
	/** Never use DRI3 (as if the server lacked it). */
	VMS_X11_NO_DRI3 = 1u << 1,
};

/** How a vms_x11_image reaches the server. */
enum vms_x11_path {
	/** An MIT-SHM segment of the buffer's fd: the server reads the memory. */
	VMS_X11_PATH_SHM_FD = 1,
	/** PutImage requests carrying a copy of the pixels on every put. */
	VMS_X11_PATH_PUT_IMAGE = 2,
};

/**
 * Learns what the server of @p conn offers: the MIT-SHM version (1.2 or
 * later passes fds) and whether it has shared pixmaps, and DRI3 when
 * libvmshare was built with xcb-dri3 (one round trip each).
 *
 * @param ctx    the context buffers come from; the result holds a
 *               reference on it
 * @param conn   the application's connection; must outlive the result
 * @param flags  enum vms_x11_flags
 * @return the object, or NULL with errno set: EINVAL for bad arguments,
 *         EPIPE when the connection has failed, ENOTSUP when libvmshare
 *         was built without X11 support
 */
struct vms_x11 *vms_x11_create(struct vms_context *ctx, xcb_connection_t *conn,
			       uint32_t flags);

/** Adds a reference. */
struct vms_x11 *vms_x11_ref(struct vms_x11 *x11);

/**
 * Drops a reference.  Its images hold one each; the last frees the object
 * and drops its reference on the context.
 */
struct vms_x11 *vms_x11_unref(struct vms_x11 *x11);

/** @return whether the server takes fds as SHM segments (MIT-SHM >= 1.2). */
bool vms_x11_has_shm_fd(const struct vms_x11 *x11);

/** @return whether the server creates pixmaps in SHM segments. */
bool vms_x11_has_shared_pixmaps(const struct vms_x11 *x11);

/**
 * @return whether the server offers DRI3 1.2 (pixmaps from dma-bufs at an
 *         offset); false also when libvmshare was built without xcb-dri3
 */
bool vms_x11_has_dri3(const struct vms_x11 *x11);

/**
 * Presents @p height rows of @p width pixels, @p stride bytes apart,
 * starting at vms_buffer_data(@p buf), to the server: 32 bits per pixel in
 * the server's ZPixmap layout for @p depth (XRGB8888 for depth 24 or
 * ARGB8888 for depth 32 on little-endian servers).
 *
 * When the server takes fds and @p buf shares the memory itself (a
 * VMS_BUFFER_DMABUF or VMS_BUFFER_MEMFD), a duplicate of vms_buffer_fd()
 * is attached as an SHM segment (checked: this waits for the server).
 * Otherwise, or when the server refuses the fd, the image falls back to
 * PutImage requests from the memory; vms_x11_image_path() and
 * vms_x11_image_fallback_reason() say so.  The segment is attached
 * read-only when @p buf is.
 *
 * @param x11     the connection's vms_x11; the image holds a reference
 * @param width   pixels, 1 to 65535
 * @param height  rows, 1 to 65535
 * @param stride  bytes per row, a multiple of 4, at least width * 4
 * @param depth   24 or 32
 * @param buf  the image holds a reference on it.  Its fd stays the
 *             buffer's: the server receives (and owns) a duplicate.
 * @return the image, or NULL with errno set: EINVAL for NULL arguments, a
 *         zero size, a width or height over 65535, a stride below
 *         width * 4, not a multiple of 4 or over 262140, or a depth other
 *         than 24 and 32; ENOTSUP when the server has no 32-bit pixmap
 *         format of that depth; EOVERFLOW when stride * height exceeds
 *         vms_buffer_length(@p buf); EPIPE when the connection failed
 */
struct vms_x11_image *vms_x11_image_create(struct vms_x11 *x11,
					   struct vms_buffer *buf,
					   uint32_t width, uint32_t height,
					   uint32_t stride, uint8_t depth);

/**
 * Detaches the SHM segment from the server (checked).  Pixmaps made from
 * it stay valid: the server keeps its mapping until they are freed.  After
 * this, every put and pixmap call on the image returns -ENOENT.
 *
 * @return 0 (also on the PutImage path, where there is nothing to
 *         detach), -ENOENT when already detached, -EPIPE when the
 *         connection failed, or -EIO when the server reported an error
 */
int vms_x11_image_detach(struct vms_x11_image *img);

/** Adds a reference. */
struct vms_x11_image *vms_x11_image_ref(struct vms_x11_image *img);

/**
 * Drops a reference; the last detaches the segment if still attached,
 * frees the image and drops its references on the buffer and the
 * vms_x11.  Pixmaps made from it are the caller's to free.
 */
struct vms_x11_image *vms_x11_image_unref(struct vms_x11_image *img);

/**
 * Draws the whole image at (@p dst_x, @p dst_y) of @p drawable with @p gc.
 * On the SHM path this is one ShmPutImage, checked: when it returns, the
 * server has read the memory and the application may draw the next frame
 * into it.  On the PutImage path the pixels are copied into as many
 * requests as the server's maximum request length needs.
 *
 * @return 0, or a negative errno: ENOENT after vms_x11_image_detach(),
 *         EIO when the server reported an error (a bad drawable or gc, a
 *         depth mismatch), EPIPE when the connection failed
 */
int vms_x11_image_put(struct vms_x11_image *img, xcb_drawable_t drawable,
		      xcb_gcontext_t gc, int16_t dst_x, int16_t dst_y);

/**
 * Creates an SHM pixmap of the image's size and depth whose pixels are the
 * memory itself (ShmCreatePixmap, checked): what the application draws
 * into the memory is the pixmap's content, and what the server renders
 * into the pixmap lands in the memory.
 *
 * @param img       the image
 * @param drawable  selects the screen
 * @param pixmap    receives the pixmap id; the caller owns the pixmap and
 *                  frees it with xcb_free_pixmap()
 * @return 0, or a negative errno: ENOTSUP on the PutImage path or when the
 *         server has no shared pixmaps, EACCES when the segment is
 *         read-only, EINVAL when the stride is not width * 4 (a pixmap's
 *         rows are packed), ENOENT after vms_x11_image_detach(), EIO when
 *         the server refused, EPIPE when the connection failed
 */
int vms_x11_image_create_pixmap(struct vms_x11_image *img,
				xcb_drawable_t drawable, xcb_pixmap_t *pixmap);

/**
 * Creates a pixmap from the buffer's dma-buf through DRI3
 * (PixmapFromBuffers with the linear modifier and the image's offset,
 * checked).  The server's driver imports the pages itself, so this works
 * only where it can import a vmemexp dma-buf (a GPU driver with glamor).
 *
 * @param img       the image
 * @param drawable  a window: selects the screen
 * @param pixmap    receives the pixmap id; the caller owns it
 * @return 0, or a negative errno: EACCES for read-only memory (a pixmap
 *         is a render target, as vms_x11_image_create_pixmap() says);
 *         ENOTSUP when the server lacks DRI3 1.2, libvmshare was built
 *         without xcb-dri3 or the buffer is not a dma-buf; ENOENT after
 *         vms_x11_image_detach(); EIO when the server refused the buffer;
 *         EPIPE when the connection failed
 */
int vms_x11_image_create_dri3_pixmap(struct vms_x11_image *img,
				     xcb_drawable_t drawable,
				     xcb_pixmap_t *pixmap);

/** @return the path the image takes. */
enum vms_x11_path vms_x11_image_path(const struct vms_x11_image *img);

/** @return why a VMS_X11_PATH_PUT_IMAGE image is not an SHM segment, or NULL. */
const char *vms_x11_image_fallback_reason(const struct vms_x11_image *img);

#ifdef __cplusplus
}
#endif

#endif /* VMSHARE_X11_H */
