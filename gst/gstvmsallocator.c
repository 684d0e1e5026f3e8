/* SPDX-License-Identifier: MIT */
/*
 * GstVmsAllocator: memory that is at once ordinary process memory and a
 * dma-buf of it.  Each block comes from vms_frame_alloc() (a mapping of
 * its own, page-aligned, nothing else in its pages) and is exported
 * through vmemexp when it is made, so an element upstream draws or
 * captures into plain process memory and every element downstream, and
 * any device, gets a dma-buf of those very pages.
 *
 * The memory is a GstDmaBufAllocator subclass's: gst_is_dmabuf_memory()
 * holds and gst_dmabuf_memory_get_fd() gives the dma-buf.  Mapping it
 * returns the process's own pointer, never an mmap of the dma-buf, and
 * brackets the access with the dma-buf's CPU-access sync (a no-op on
 * cache-coherent machines, the cache maintenance a device needs on the
 * others).
 *
 * Where the export fails (no module, the lock limit reached), the block
 * is given as plain system memory instead, and the reason is logged:
 * the element using the allocator sees memory that is no dma-buf and
 * handles it as any other (gstvmshareexport.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "gstvmsallocator.h"

GST_DEBUG_CATEGORY_STATIC (gst_vms_allocator_debug);
#define GST_CAT_DEFAULT gst_vms_allocator_debug

struct _GstVmsAllocator
{
  GstDmaBufAllocator parent;
  struct vms_context *ctx;
};

G_DEFINE_TYPE (GstVmsAllocator, gst_vms_allocator, GST_TYPE_DMABUF_ALLOCATOR);

/* What a GstMemory of this allocator holds besides its dma-buf fd: the
 * process memory and its export, freed with the memory. */
struct vms_block
{
  struct vms_context *ctx;
  void *data;
  struct vms_buffer *export;
};

G_DEFINE_QUARK (GstVmsAllocatorBlock, vms_block);

static void
vms_block_free (gpointer data)
{
  struct vms_block *block = data;

  /* The export first: vms_frame_free() wants none left of the block.
   * A peer holding the dma-buf keeps the pages; the fd this memory
   * held is closed after this, by GstFdMemory. */
  vms_buffer_unref (block->export);
  vms_frame_free (block->ctx, block->data);
  vms_context_unref (block->ctx);
  g_free (block);
}

/* The block of MEM, or of the memory MEM was shared from. */
static struct vms_block *
vms_block_of (GstMemory * mem)
{
  GstMemory *root = mem->parent ? mem->parent : mem;

  return gst_mini_object_get_qdata (GST_MINI_OBJECT_CAST (root),
      vms_block_quark ());
}

static uint32_t
vms_access_of (GstMapFlags flags)
{
  return ((flags & GST_MAP_READ) ? VMS_ACCESS_READ : 0) |
      ((flags & GST_MAP_WRITE) ? VMS_ACCESS_WRITE : 0);
}

static gpointer
gst_vms_mem_map (GstMemory * mem, gsize maxsize, GstMapFlags flags)
{
  struct vms_block *block = vms_block_of (mem);
  int ret;

  (void) maxsize;
  ret = vms_buffer_begin_cpu_access (block->export, vms_access_of (flags));
  if (ret < 0) {
    GST_WARNING ("begin_cpu_access: %s", g_strerror (-ret));
    return NULL;
  }
  return block->data;
}

/* Unmap is not told the map's flags: the access ends as read-write,
 * which covers either (nothing on a cache-coherent machine; elsewhere
 * the cache clean a write needs, harmless after a read). */
static void
gst_vms_mem_unmap (GstMemory * mem)
{
  struct vms_block *block = vms_block_of (mem);
  int ret;

  ret = vms_buffer_end_cpu_access (block->export,
      VMS_ACCESS_READ | VMS_ACCESS_WRITE);
  if (ret < 0)
    GST_WARNING ("end_cpu_access: %s", g_strerror (-ret));
}

static GstMemory *
gst_vms_allocator_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  GstVmsAllocator *self = GST_VMS_ALLOCATOR (allocator);
  gsize total = params->prefix + size + params->padding;
  struct vms_block *block;
  GstMemory *mem;
  int fd;

  /* Page-aligned: any alignment params->align asks for (a mask below
   * the page size) holds. */
  block = g_new0 (struct vms_block, 1);
  block->data = vms_frame_alloc (self->ctx, total);
  if (!block->data) {
    GST_ERROR_OBJECT (self, "vms_frame_alloc of %" G_GSIZE_FORMAT
        " bytes: %s", total, g_strerror (errno));
    g_free (block);
    return NULL;
  }
  block->export = vms_buffer_export (self->ctx, block->data, total,
      VMS_EXPORT_ZERO_COPY);
  if (!block->export) {
    GST_WARNING_OBJECT (self, "cannot export %" G_GSIZE_FORMAT " bytes, "
        "giving system memory: %s", total, g_strerror (errno));
    vms_frame_free (self->ctx, block->data);
    g_free (block);
    return gst_allocator_alloc (NULL, size, params);
  }
  block->ctx = vms_context_ref (self->ctx);

  fd = fcntl (vms_buffer_fd (block->export), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    GST_ERROR_OBJECT (self, "dup: %s", g_strerror (errno));
    vms_block_free (block);
    return NULL;
  }
  mem = gst_fd_allocator_alloc (allocator, fd, vms_buffer_size (block->export),
      GST_FD_MEMORY_FLAG_NONE);
  if (!mem) {
    close (fd);
    vms_block_free (block);
    return NULL;
  }
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (mem), vms_block_quark (),
      block, vms_block_free);
  gst_memory_resize (mem, params->prefix, size);
  GST_DEBUG_OBJECT (self, "%" G_GSIZE_FORMAT " bytes at %p, dma-buf fd %d",
      total, block->data, fd);
  return mem;
}

static void
gst_vms_allocator_finalize (GObject * object)
{
  GstVmsAllocator *self = GST_VMS_ALLOCATOR (object);

  vms_context_unref (self->ctx);
  G_OBJECT_CLASS (gst_vms_allocator_parent_class)->finalize (object);
}

static void
gst_vms_allocator_class_init (GstVmsAllocatorClass * klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GstAllocatorClass *allocator_class = GST_ALLOCATOR_CLASS (klass);

  object_class->finalize = gst_vms_allocator_finalize;
  allocator_class->alloc = gst_vms_allocator_alloc;
  GST_DEBUG_CATEGORY_INIT (gst_vms_allocator_debug, "vmsallocator", 0,
      "vmshare frame memory exported as dma-bufs");
}

static void
gst_vms_allocator_init (GstVmsAllocator * self)
{
  GstAllocator *allocator = GST_ALLOCATOR_CAST (self);

  /* The type stays the dma-buf allocator's ("dmabuf"): downstream
   * recognises the memory as a dma-buf.  Only mapping differs. */
  allocator->mem_map = gst_vms_mem_map;
  allocator->mem_unmap = gst_vms_mem_unmap;
  GST_OBJECT_FLAG_UNSET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

/* A new allocator exporting through CTX (one more reference kept). */
GstAllocator *
gst_vms_allocator_new (struct vms_context *ctx)
{
  GstVmsAllocator *self = g_object_new (GST_TYPE_VMS_ALLOCATOR, NULL);

  self->ctx = vms_context_ref (ctx);
  gst_object_ref_sink (self);
  return GST_ALLOCATOR_CAST (self);
}

gboolean
gst_is_vms_memory (GstMemory * mem)
{
  return mem && GST_IS_VMS_ALLOCATOR (mem->allocator) && vms_block_of (mem);
}
