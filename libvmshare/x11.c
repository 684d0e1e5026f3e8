/* SPDX-License-Identifier: MIT */
/*
 * Exported memory to an X server: the buffer's fd attached as an MIT-SHM
 * segment (SHM 1.2's AttachFd), so ShmPutImage and SHM pixmaps read the
 * application's memory itself; else plain PutImage requests carrying the
 * pixels.  Every request whose failure changes what we do is checked, so
 * no X error of ours reaches the application's event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xcb/shm.h>
#ifdef VMSHARE_HAVE_X11_DRI3
#include <xcb/dri3.h>
#endif

#include <drm_fourcc.h>

#include "private.h"
#include "vmshare-x11.h"

/* PutImage's header with the BIG-REQUESTS length word, rounded up. */
#define PUT_IMAGE_HEADER 32u

struct vms_x11 {
	/* The application's, and one held by each of its images. */
	atomic_int refs;
	struct vms_context *ctx;	/* a reference */
	xcb_connection_t *conn;
	bool shm_fd, shared_pixmaps, dri3;
	uint64_t max_request;		/* bytes */
	char no_shm_reason[128];	/* when !shm_fd */
};

struct vms_x11_image {
	atomic_int refs;
	struct vms_x11 *x11;		/* a reference */
	struct vms_buffer *buf;		/* a reference */
	uint32_t width, height, stride;
	uint8_t depth;
	enum vms_x11_path path;
	xcb_shm_seg_t seg;
	bool readonly;
	bool detached;
	char reason[384];	/* room for a buffer's copy reason */
};

/* An error the server sent back, or EPIPE when the connection died. */
static int check(struct vms_x11 *x11, xcb_void_cookie_t cookie,
		 const char *what)
{
	xcb_generic_error_t *error = xcb_request_check(x11->conn, cookie);
	uint8_t code;

	if (!error)
		return xcb_connection_has_error(x11->conn) ? -EPIPE : 0;
	code = error->error_code;
	free(error);
	vms_log_error(x11->ctx, "x11: %s: X error %u", what, code);
	return -EIO;
}

/* Fd passing needs a UNIX socket: xcb cannot send SCM_RIGHTS over TCP. */
static bool connection_is_local(xcb_connection_t *conn)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);

	if (getsockname(xcb_get_file_descriptor(conn),
			(struct sockaddr *)&addr, &len) < 0)
		return false;
	return addr.ss_family == AF_UNIX;
}

static void query_shm(struct vms_x11 *x11, uint32_t flags)
{
	const xcb_query_extension_reply_t *ext;
	xcb_shm_query_version_reply_t *version;

	if (flags & VMS_X11_NO_SHM) {
		snprintf(x11->no_shm_reason, sizeof(x11->no_shm_reason),
			 "MIT-SHM disabled by VMS_X11_NO_SHM");
		return;
	}
	ext = xcb_get_extension_data(x11->conn, &xcb_shm_id);
	if (!ext || !ext->present) {
		snprintf(x11->no_shm_reason, sizeof(x11->no_shm_reason),
			 "the server has no MIT-SHM extension");
		return;
	}
	version = xcb_shm_query_version_reply(x11->conn,
			xcb_shm_query_version(x11->conn), NULL);
	if (!version) {
		snprintf(x11->no_shm_reason, sizeof(x11->no_shm_reason),
			 "the server did not answer MIT-SHM QueryVersion");
		return;
	}
	x11->shared_pixmaps = version->shared_pixmaps;
	if (version->major_version < 1 ||
	    (version->major_version == 1 && version->minor_version < 2))
		snprintf(x11->no_shm_reason, sizeof(x11->no_shm_reason),
			 "the server's MIT-SHM is version %u.%u; fd passing needs 1.2",
			 version->major_version, version->minor_version);
	else if (!connection_is_local(x11->conn))
		snprintf(x11->no_shm_reason, sizeof(x11->no_shm_reason),
			 "the connection is not a local socket: no fd passing");
	else
		x11->shm_fd = true;
	vms_log(x11->ctx, "x11: MIT-SHM %u.%u, shared pixmaps %s%s%s",
		version->major_version, version->minor_version,
		version->shared_pixmaps ? "yes" : "no",
		x11->shm_fd ? "" : ": ", x11->no_shm_reason);
	free(version);
}

static void query_dri3(struct vms_x11 *x11, uint32_t flags)
{
#ifdef VMSHARE_HAVE_X11_DRI3
	const xcb_query_extension_reply_t *ext;
	xcb_dri3_query_version_reply_t *version;

	if (flags & VMS_X11_NO_DRI3)
		return;
	ext = xcb_get_extension_data(x11->conn, &xcb_dri3_id);
	if (!ext || !ext->present) {
		vms_log(x11->ctx, "x11: the server has no DRI3");
		return;
	}
	/* 1.2 brings PixmapFromBuffers, the first request with an offset. */
	version = xcb_dri3_query_version_reply(x11->conn,
			xcb_dri3_query_version(x11->conn, 1, 2), NULL);
	if (!version)
		return;
	x11->dri3 = version->major_version > 1 || version->minor_version >= 2;
	vms_log(x11->ctx, "x11: DRI3 %u.%u%s", version->major_version,
		version->minor_version, x11->dri3 ? "" : ": too old for offsets");
	free(version);
#else
	(void)flags;
	vms_log(x11->ctx, "x11: built without xcb-dri3");
#endif
}

VMS_EXPORT struct vms_x11 *vms_x11_create(struct vms_context *ctx,
					  xcb_connection_t *conn,
					  uint32_t flags)
{
	const uint32_t known = VMS_X11_NO_SHM | VMS_X11_NO_DRI3;
	struct vms_x11 *x11;

	if (!ctx || !conn || (flags & ~known)) {
		errno = EINVAL;
		return NULL;
	}
	if (xcb_connection_has_error(conn)) {
		errno = EPIPE;
		return NULL;
	}
	x11 = calloc(1, sizeof(*x11));
	if (!x11)
		return NULL;
	atomic_init(&x11->refs, 1);
	x11->ctx = ctx;
	x11->conn = conn;
	/* Both in 4-byte units, extended by BIG-REQUESTS where offered. */
	x11->max_request = (uint64_t)xcb_get_maximum_request_length(conn) * 4;
	query_shm(x11, flags);
	query_dri3(x11, flags);
	if (xcb_connection_has_error(conn)) {
		free(x11);
		errno = EPIPE;
		return NULL;
	}
	vms_context_ref(ctx);
	return x11;
}

VMS_EXPORT struct vms_x11 *vms_x11_ref(struct vms_x11 *x11)
{
	atomic_fetch_add(&x11->refs, 1);
	return x11;
}

VMS_EXPORT struct vms_x11 *vms_x11_unref(struct vms_x11 *x11)
{
	if (!x11 || atomic_fetch_sub(&x11->refs, 1) > 1)
		return NULL;
	vms_context_unref(x11->ctx);
	free(x11);
	return NULL;
}

VMS_EXPORT bool vms_x11_has_shm_fd(const struct vms_x11 *x11)
{
	return x11->shm_fd;
}

VMS_EXPORT bool vms_x11_has_shared_pixmaps(const struct vms_x11 *x11)
{
	return x11->shm_fd && x11->shared_pixmaps;
}

VMS_EXPORT bool vms_x11_has_dri3(const struct vms_x11 *x11)
{
	return x11->dri3;
}

/* Our pixels are 32 bits each; the server must store this depth so. */
static bool has_32bpp_format(xcb_connection_t *conn, uint8_t depth)
{
	xcb_format_iterator_t it =
		xcb_setup_pixmap_formats_iterator(xcb_get_setup(conn));

	for (; it.rem; xcb_format_next(&it))
		if (it.data->depth == depth && it.data->bits_per_pixel == 32 &&
		    it.data->scanline_pad <= 32)
			return true;
	return false;
}

/*
 * Attaches a duplicate of the buffer's fd as a segment.  Returns 0, a
 * positive errno with img->reason set when PutImage should be used
 * instead, or a negative errno for a failed connection.
 */
static int attach_fd(struct vms_x11_image *img)
{
	struct vms_x11 *x11 = img->x11;
	uint64_t offset = vms_buffer_offset(img->buf);
	xcb_void_cookie_t cookie;
	int fd, ret;

	if (!x11->shm_fd) {
		snprintf(img->reason, sizeof(img->reason), "%s",
			 x11->no_shm_reason);
		return ENOTSUP;
	}
	if (vms_buffer_kind(img->buf) == VMS_BUFFER_MEMFD_COPY) {
		snprintf(img->reason, sizeof(img->reason),
			 "the buffer is a copy, not the memory: %s",
			 vms_buffer_copy_reason(img->buf));
		return ENODEV;
	}
	/* ShmPutImage and ShmCreatePixmap take offsets that are multiples of 4. */
	if (offset % 4 || offset > UINT32_MAX) {
		snprintf(img->reason, sizeof(img->reason),
			 "the memory lies at offset %llu of its fd, which MIT-SHM cannot address",
			 (unsigned long long)offset);
		return EINVAL;
	}
	img->seg = xcb_generate_id(x11->conn);
	if (img->seg == (xcb_shm_seg_t)-1)
		return -EPIPE;
	/* xcb closes the fd it sends, so it gets a copy of the buffer's. */
	fd = fcntl(vms_buffer_fd(img->buf), F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	cookie = xcb_shm_attach_fd_checked(x11->conn, img->seg, fd,
					   img->readonly);
	ret = check(x11, cookie, "ShmAttachFd");
	if (ret == -EIO) {
		snprintf(img->reason, sizeof(img->reason),
			 "the server refused the %s fd as an SHM segment",
			 vms_buffer_kind(img->buf) == VMS_BUFFER_DMABUF ?
			 "dma-buf" : "memfd");
		return EACCES;
	}
	if (ret < 0)
		return ret;
	img->path = VMS_X11_PATH_SHM_FD;
	return 0;
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_create(struct vms_x11 *x11,
						      struct vms_buffer *buf,
						      uint32_t width,
						      uint32_t height,
						      uint32_t stride,
						      uint8_t depth)
{
	struct vms_x11_image *img;
	int ret;

	if (!x11 || !buf || !width || !height || width > UINT16_MAX ||
	    height > UINT16_MAX || stride < (uint64_t)width * 4 ||
	    stride % 4 || stride / 4 > UINT16_MAX ||
	    (depth != 24 && depth != 32)) {
		errno = EINVAL;
		return NULL;
	}
	if (!has_32bpp_format(x11->conn, depth)) {
		errno = ENOTSUP;
		return NULL;
	}
	if ((uint64_t)stride * height > vms_buffer_length(buf)) {
		errno = EOVERFLOW;
		return NULL;
	}
	img = calloc(1, sizeof(*img));
	if (!img)
		return NULL;
	*img = (struct vms_x11_image){
		.refs = 1, .x11 = x11, .buf = buf, .width = width,
		.height = height,
		.stride = stride, .depth = depth,
		.path = VMS_X11_PATH_PUT_IMAGE,
		.readonly = vms_buffer_is_readonly(buf),
	};

	ret = attach_fd(img);
	if (ret < 0) {
		free(img);
		errno = xcb_connection_has_error(x11->conn) ? EPIPE : -ret;
		return NULL;
	}
	if (ret > 0)
		vms_log_info(x11->ctx, "x11: %ux%u at %p: %s: falling back to PutImage",
			width, height, vms_buffer_data(buf), img->reason);
	else
		vms_log(x11->ctx, "x11: %ux%u at %p: SHM segment 0x%x of the buffer's fd, no copy",
			width, height, vms_buffer_data(buf), img->seg);
	vms_buffer_ref(buf);
	vms_x11_ref(x11);
	return img;
}

VMS_EXPORT int vms_x11_image_detach(struct vms_x11_image *img)
{
	if (!img)
		return -EINVAL;
	if (img->detached)
		return -ENOENT;
	img->detached = true;
	if (img->path != VMS_X11_PATH_SHM_FD)
		return 0;
	return check(img->x11,
		     xcb_shm_detach_checked(img->x11->conn, img->seg),
		     "ShmDetach");
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_ref(struct vms_x11_image *img)
{
	atomic_fetch_add(&img->refs, 1);
	return img;
}

VMS_EXPORT struct vms_x11_image *vms_x11_image_unref(struct vms_x11_image *img)
{
	xcb_void_cookie_t cookie;

	if (!img || atomic_fetch_sub(&img->refs, 1) > 1)
		return NULL;
	/* Unchecked, yet never an error event for the application to see. */
	if (img->path == VMS_X11_PATH_SHM_FD && !img->detached) {
		cookie = xcb_shm_detach_checked(img->x11->conn, img->seg);
		xcb_discard_reply(img->x11->conn, cookie.sequence);
	}
	vms_buffer_unref(img->buf);
	vms_x11_unref(img->x11);
	free(img);
	return NULL;
}

static int put_shm(struct vms_x11_image *img, xcb_drawable_t drawable,
		   xcb_gcontext_t gc, int16_t dst_x, int16_t dst_y)
{
	xcb_void_cookie_t cookie;

	/* The server's rows are total_width pixels: our stride. */
	cookie = xcb_shm_put_image_checked(img->x11->conn, drawable, gc,
		(uint16_t)(img->stride / 4), (uint16_t)img->height, 0, 0,
		(uint16_t)img->width, (uint16_t)img->height, dst_x, dst_y,
		img->depth, XCB_IMAGE_FORMAT_Z_PIXMAP, 0, img->seg,
		(uint32_t)vms_buffer_offset(img->buf));
	return check(img->x11, cookie, "ShmPutImage");
}

static int put_requests(struct vms_x11_image *img, xcb_drawable_t drawable,
			xcb_gcontext_t gc, int16_t dst_x, int16_t dst_y)
{
	struct vms_x11 *x11 = img->x11;
	const uint8_t *data = vms_buffer_data(img->buf);
	uint32_t row = img->width * 4, rows, n_requests;
	xcb_void_cookie_t *cookies;
	uint8_t *packed = NULL;
	int ret = 0;

	if (x11->max_request < PUT_IMAGE_HEADER + row)
		return -EMSGSIZE;
	rows = (uint32_t)((x11->max_request - PUT_IMAGE_HEADER) / row);
	if (rows > img->height)
		rows = img->height;
	n_requests = (img->height + rows - 1) / rows;
	cookies = calloc(n_requests, sizeof(*cookies));
	/* A request's rows are packed; padded rows are copied together. */
	if (cookies && img->stride != row)
		packed = malloc((size_t)rows * row);
	if (!cookies || (img->stride != row && !packed)) {
		free(cookies);
		return -ENOMEM;
	}

	for (uint32_t i = 0; i < n_requests; i++) {
		uint32_t y = i * rows, n = img->height - y < rows ?
					   img->height - y : rows;
		const uint8_t *src = data + (size_t)y * img->stride;

		if (packed) {
			for (uint32_t r = 0; r < n; r++)
				memcpy(packed + (size_t)r * row,
				       src + (size_t)r * img->stride, row);
			src = packed;
		}
		cookies[i] = xcb_put_image_checked(x11->conn,
			XCB_IMAGE_FORMAT_Z_PIXMAP, drawable, gc,
			(uint16_t)img->width, (uint16_t)n, dst_x,
			(int16_t)(dst_y + (int32_t)y), 0, img->depth,
			n * row, src);
	}
	for (uint32_t i = 0; i < n_requests; i++) {
		int r = check(x11, cookies[i], "PutImage");

		if (!ret)
			ret = r;
	}
	free(packed);
	free(cookies);
	return ret;
}

VMS_EXPORT int vms_x11_image_put(struct vms_x11_image *img,
				 xcb_drawable_t drawable, xcb_gcontext_t gc,
				 int16_t dst_x, int16_t dst_y)
{
	if (!img)
		return -EINVAL;
	if (img->detached)
		return -ENOENT;
	if (img->path == VMS_X11_PATH_SHM_FD)
		return put_shm(img, drawable, gc, dst_x, dst_y);
	return put_requests(img, drawable, gc, dst_x, dst_y);
}

VMS_EXPORT int vms_x11_image_create_pixmap(struct vms_x11_image *img,
					   xcb_drawable_t drawable,
					   xcb_pixmap_t *pixmap)
{
	xcb_void_cookie_t cookie;
	xcb_pixmap_t id;
	int ret;

	if (!img || !pixmap)
		return -EINVAL;
	if (img->detached)
		return -ENOENT;
	if (img->path != VMS_X11_PATH_SHM_FD || !img->x11->shared_pixmaps)
		return -ENOTSUP;
	/* The server would render into a mapping it holds read-only. */
	if (img->readonly)
		return -EACCES;
	if (img->stride != img->width * 4)
		return -EINVAL;
	id = xcb_generate_id(img->x11->conn);
	if (id == (xcb_pixmap_t)-1)
		return -EPIPE;
	cookie = xcb_shm_create_pixmap_checked(img->x11->conn, id, drawable,
		(uint16_t)img->width, (uint16_t)img->height, img->depth,
		img->seg, (uint32_t)vms_buffer_offset(img->buf));
	ret = check(img->x11, cookie, "ShmCreatePixmap");
	if (!ret)
		*pixmap = id;
	return ret;
}

VMS_EXPORT int vms_x11_image_create_dri3_pixmap(struct vms_x11_image *img,
						xcb_drawable_t drawable,
						xcb_pixmap_t *pixmap)
{
#ifdef VMSHARE_HAVE_X11_DRI3
	xcb_void_cookie_t cookie;
	xcb_pixmap_t id;
	int32_t fd;
	int ret;

	if (!img || !pixmap)
		return -EINVAL;
	if (img->detached)
		return -ENOENT;
	/*
	 * A pixmap is a render target: the server's GPU would write memory
	 * exported read-only, which its exporter may not write itself.
	 * Refused before asking whether DRI3 exists, since no server could
	 * take it.
	 */
	if (img->readonly)
		return -EACCES;
	if (!img->x11->dri3 || vms_buffer_kind(img->buf) != VMS_BUFFER_DMABUF ||
	    vms_buffer_offset(img->buf) > UINT32_MAX)
		return -ENOTSUP;
	id = xcb_generate_id(img->x11->conn);
	if (id == (xcb_pixmap_t)-1)
		return -EPIPE;
	/* As for AttachFd, xcb closes what it sends. */
	fd = fcntl(vms_buffer_fd(img->buf), F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	cookie = xcb_dri3_pixmap_from_buffers_checked(img->x11->conn, id,
		drawable, 1, (uint16_t)img->width, (uint16_t)img->height,
		img->stride, (uint32_t)vms_buffer_offset(img->buf), 0, 0, 0, 0,
		0, 0, img->depth, 32, DRM_FORMAT_MOD_LINEAR, &fd);
	ret = check(img->x11, cookie, "DRI3 PixmapFromBuffers");
	if (!ret)
		*pixmap = id;
	return ret;
#else
	(void)drawable;
	if (!img || !pixmap)
		return -EINVAL;
	if (img->detached)
		return -ENOENT;
	return img->readonly ? -EACCES : -ENOTSUP;
#endif
}

VMS_EXPORT enum vms_x11_path vms_x11_image_path(const struct vms_x11_image *img)
{
	return img->path;
}

VMS_EXPORT const char *vms_x11_image_fallback_reason(
	const struct vms_x11_image *img)
{
	return img->path == VMS_X11_PATH_PUT_IMAGE ? img->reason : NULL;
}
