/* SPDX-License-Identifier: MIT */
#ifndef GST_VMS_ALLOCATOR_H
#define GST_VMS_ALLOCATOR_H

#include <gst/allocators/gstdmabuf.h>
#include <vmshare.h>

G_BEGIN_DECLS

#define GST_TYPE_VMS_ALLOCATOR (gst_vms_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstVmsAllocator, gst_vms_allocator, GST, VMS_ALLOCATOR,
    GstDmaBufAllocator)

GstAllocator *gst_vms_allocator_new (struct vms_context *ctx);

gboolean gst_is_vms_memory (GstMemory * mem);

G_END_DECLS

#endif
