/* SPDX-License-Identifier: MIT */
/* Frame layouts: the formats the library knows, and checking a layout. */
#include <errno.h>

#include <drm_fourcc.h>

#include "private.h"

static const struct vms_format formats[] = {
	{ 0, 1, { 1 }, 1, 1 },	/* opaque bytes */
	{ DRM_FORMAT_XRGB8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ARGB8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_XBGR8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ABGR8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_RGB888, 1, { 3 }, 1, 1 },
	{ DRM_FORMAT_BGR888, 1, { 3 }, 1, 1 },
	{ DRM_FORMAT_RGB565, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_YUYV, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_R8, 1, { 1 }, 1, 1 },
	{ DRM_FORMAT_NV12, 2, { 1, 2 }, 2, 2 },
	{ DRM_FORMAT_YUV420, 3, { 1, 1, 1 }, 2, 2 },
};

const struct vms_format *vms_format_lookup(uint32_t fourcc)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].fourcc == fourcc)
			return &formats[i];
	return NULL;
}

/*
 * Far beyond any display or codec (DRM allows 16384), and small enough that
 * no size computed from it comes near overflowing 64 bits.  Opaque byte
 * buffers (fourcc 0) count their width in bytes and are not capped.
 */
#define VMS_MAX_DIMENSION (1u << 16)

/* In 64 bits: (0xffffffff + 1) / 2 in 32 would be a chroma plane of 0 rows. */
static uint64_t plane_dim(uint32_t dim, uint32_t plane, uint32_t sub)
{
	return plane ? ((uint64_t)dim + sub - 1) / sub : dim;
}

int vms_frame_check(const struct vms_frame *frame, uint64_t fd_size)
{
	const struct vms_format *fmt = vms_format_lookup(frame->fourcc);

	if (frame->size > fd_size)
		return -EOVERFLOW;
	if (!fmt || frame->n_planes != fmt->n_planes || !frame->width ||
	    !frame->height || frame->reserved ||
	    frame->modifier != DRM_FORMAT_MOD_LINEAR ||
	    (frame->flags & ~(uint32_t)VMS_FRAME_RDONLY))
		return -EBADMSG;
	if (fmt->fourcc && (frame->width > VMS_MAX_DIMENSION ||
			    frame->height > VMS_MAX_DIMENSION))
		return -EBADMSG;

	for (uint32_t i = 0; i < fmt->n_planes; i++) {
		uint64_t row = plane_dim(frame->width, i, fmt->hsub) *
			       fmt->cpp[i];
		uint64_t rows = plane_dim(frame->height, i, fmt->vsub);
		uint64_t offset = frame->plane_offsets[i];

		/* 32-bit strides and heights: no product overflows 64 bits. */
		if (frame->strides[i] < row || offset > frame->size ||
		    frame->size - offset < (rows - 1) * frame->strides[i] + row)
			return -EBADMSG;
	}
	for (uint32_t i = fmt->n_planes; i < VMS_MAX_PLANES; i++)
		if (frame->plane_offsets[i] || frame->strides[i])
			return -EBADMSG;
	return 0;
}

uint64_t vms_format_layout(const struct vms_format *fmt, uint32_t height,
			   uint32_t stride, uint64_t plane_offsets[],
			   uint32_t strides[])
{
	uint64_t next = 0;

	for (uint32_t i = 0; i < fmt->n_planes; i++) {
		strides[i] = i ? (uint32_t)((uint64_t)stride * fmt->cpp[i] /
					    fmt->cpp[0] / fmt->hsub) : stride;
		plane_offsets[i] = next;
		next += plane_dim(height, i, fmt->vsub) * strides[i];
	}
	return next;
}

VMS_EXPORT int vms_frame_describe(struct vms_frame *frame,
				  const struct vms_buffer *buf, uint32_t width,
				  uint32_t height, uint32_t fourcc,
				  uint32_t stride)
{
	const struct vms_format *fmt = vms_format_lookup(fourcc);

	if (!frame || !buf || !fmt)
		return -EINVAL;
	*frame = (struct vms_frame){
		.size = vms_buffer_size(buf),
		.width = width,
		.height = height,
		.fourcc = fourcc,
		.n_planes = fmt->n_planes,
		.flags = vms_buffer_is_readonly(buf) ? VMS_FRAME_RDONLY : 0,
	};

	/* Later planes: where they were exported from, else packed after. */
	vms_format_layout(fmt, height, stride, frame->plane_offsets,
			  frame->strides);
	for (uint32_t i = 0; i < fmt->n_planes; i++)
		frame->plane_offsets[i] = i < vms_buffer_range_count(buf) ?
			vms_buffer_range_offset(buf, i) :
			frame->plane_offsets[i] + vms_buffer_offset(buf);
	return vms_frame_check(frame, frame->size) ? -EINVAL : 0;
}
