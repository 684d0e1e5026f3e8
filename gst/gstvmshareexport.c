/* SPDX-License-Identifier: MIT */
/*
 * vmshareexport: system-memory video frames in, the same frames out as
 * dma-bufs of the very same pages, exported through vmemexp (libvmshare),
 * so that waylandsink, kmssink, V4L2 and GL elements take them without a
 * copy.
 *
 *   videotestsrc ! vmshareexport ! waylandsink
 *
 * Caps: what comes in is any raw video in system memory; what goes out is
 * the same video in memory:DMABuf where downstream takes it, else plain
 * system memory, passed through untouched.
 *
 * Upstream is offered a buffer pool of GstVmsAllocator memory: process
 * memory already exported, which the element passes on as it is.  Any
 * other memory (an upstream element's own allocator) is exported when it
 * first passes, and the dma-buf memory made of it is kept with it and
 * reused for as long as it lives; each output buffer holds its input
 * buffer until downstream releases it, so upstream never reuses memory
 * that a compositor or device may still read.
 *
 * Where the export is impossible (no module, memory vmemexp refuses or
 * libvmshare will not export without a copy) the element says why once,
 * as a warning on the bus, drops that one frame and negotiates plain
 * system memory from then on: the pipeline plays on, downstream copying
 * as it would without this element.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <gst/allocators/gstdmabuf.h>
#include <gst/video/video.h>
#include <vmshare.h>

#include "gstvmsallocator.h"
#include "gstvmshareexport.h"

GST_DEBUG_CATEGORY_STATIC (gst_vmshare_export_debug);
#define GST_CAT_DEFAULT gst_vmshare_export_debug

struct _GstVmshareExport
{
  GstBaseTransform parent;

  struct vms_context *ctx;
  /* Wraps the exports of memory from elsewhere. */
  GstAllocator *dmabuf_allocator;
  /* What upstream gets in propose_allocation. */
  GstAllocator *vms_allocator;
  GstVideoInfo info;
  /* Set once exporting has failed: only system memory from then on.
   * Written on the streaming thread, read by caps queries on any. */
  gint refused;
};

#define gst_vmshare_export_parent_class parent_class
G_DEFINE_TYPE (GstVmshareExport, gst_vmshare_export, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (vmshareexport, "vmshareexport", GST_RANK_NONE,
    GST_TYPE_VMSHARE_EXPORT);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (GST_VIDEO_FORMATS_ALL)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE_WITH_FEATURES
        (GST_CAPS_FEATURE_MEMORY_DMABUF, GST_VIDEO_FORMATS_ALL) ";"
        GST_VIDEO_CAPS_MAKE (GST_VIDEO_FORMATS_ALL)));

/* wrapped_quark (): the dma-buf memory made of a memory, kept on it
 * while it lives; export_quark (): the export a wrapped memory holds,
 * released with it. */
G_DEFINE_QUARK (GstVmshareExportWrapped, wrapped);
G_DEFINE_QUARK (GstVmshareExportBuffer, export);

static gboolean
is_dmabuf_caps (GstCaps * caps)
{
  GstCapsFeatures *features = gst_caps_get_features (caps, 0);

  return features && gst_caps_features_contains (features,
      GST_CAPS_FEATURE_MEMORY_DMABUF);
}

static GstCaps *
gst_vmshare_export_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);
  GstCaps *plain = gst_caps_new_empty (), *out;
  guint i;

  /* The same video either way; only the memory differs. */
  for (i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *s = gst_structure_copy (gst_caps_get_structure (caps, i));

    gst_caps_append_structure_full (plain, s,
        gst_caps_features_new_empty ());
  }
  plain = gst_caps_simplify (plain);

  if (direction == GST_PAD_SINK && !g_atomic_int_get (&self->refused)) {
    GstCaps *dmabuf = gst_caps_copy (plain);

    gst_caps_set_features_simple (dmabuf,
        gst_caps_features_new (GST_CAPS_FEATURE_MEMORY_DMABUF, NULL));
    /* Preferred first: downstream picks the dma-bufs when it takes them. */
    out = gst_caps_merge (dmabuf, plain);
  } else {
    out = plain;
  }

  if (filter) {
    GstCaps *filtered = gst_caps_intersect_full (filter, out,
        GST_CAPS_INTERSECT_FIRST);

    gst_caps_unref (out);
    out = filtered;
  }
  GST_DEBUG_OBJECT (self, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, out);
  return out;
}

static gboolean
gst_vmshare_export_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);

  if (!gst_video_info_from_caps (&self->info, incaps))
    return FALSE;
  /* Plain system memory out: the buffers go through untouched. */
  gst_base_transform_set_passthrough (trans, !is_dmabuf_caps (outcaps));
  GST_INFO_OBJECT (self, "%s %" GST_PTR_FORMAT,
      is_dmabuf_caps (outcaps) ? "exporting as" : "passing through",
      outcaps);
  return TRUE;
}

static gboolean
gst_vmshare_export_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);
  GstAllocationParams params;
  GstStructure *config;
  GstBufferPool *pool;
  GstVideoInfo info;
  GstCaps *caps;

  /* Passing through: downstream's own proposal goes upstream. */
  if (gst_base_transform_is_passthrough (trans))
    return GST_BASE_TRANSFORM_CLASS (parent_class)->propose_allocation
        (trans, decide_query, query);

  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  gst_query_parse_allocation (query, &caps, NULL);
  if (!caps || !gst_video_info_from_caps (&info, caps))
    return TRUE;

  gst_allocation_params_init (&params);
  params.align = (gsize) sysconf (_SC_PAGESIZE) - 1;
  pool = gst_video_buffer_pool_new ();
  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_set_params (config, caps, info.size, 2, 0);
  gst_buffer_pool_config_set_allocator (config, self->vms_allocator, &params);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (pool, config)) {
    GST_WARNING_OBJECT (self, "the pool refused its configuration");
    gst_object_unref (pool);
    return TRUE;
  }
  gst_query_add_allocation_pool (query, pool, info.size, 2, 0);
  gst_query_add_allocation_param (query, self->vms_allocator, &params);
  gst_object_unref (pool);
  return TRUE;
}

static gboolean
gst_vmshare_export_decide_allocation (GstBaseTransform * trans,
    GstQuery * query)
{
  /* Output buffers are made of the input's memory, never allocated: a
   * pool downstream proposes (waylandsink's wl_shm memory) would only
   * be filled for nothing. */
  while (gst_query_get_n_allocation_pools (query) > 0)
    gst_query_remove_nth_allocation_pool (query, 0);
  (void) trans;
  return TRUE;
}

static void
release_export (gpointer export)
{
  vms_buffer_unref (export);
}

/* The dma-buf memory of MEM: MEM itself when it is already one, else
 * MEM's export (made once and kept with MEM).  NULL with errno set when
 * MEM cannot be exported without a copy. */
static GstMemory *
dmabuf_memory_of (GstVmshareExport * self, GstMemory * mem)
{
  struct vms_buffer *export;
  GstMemory *wrapped;
  GstMapInfo map;
  int fd;

  if (gst_is_dmabuf_memory (mem))
    return gst_memory_ref (mem);

  wrapped = gst_mini_object_get_qdata (GST_MINI_OBJECT_CAST (mem),
      wrapped_quark ());
  if (wrapped)
    return gst_memory_ref (wrapped);

  if (!gst_memory_map (mem, &map, GST_MAP_READ)) {
    errno = EINVAL;
    return NULL;
  }
  /* The pointer outlives the map: MEM is system memory, and the output
   * buffer holds the input buffer holding MEM. */
  export = vms_buffer_export (self->ctx, map.data, map.size,
      VMS_EXPORT_ZERO_COPY);
  gst_memory_unmap (mem, &map);
  if (!export)
    return NULL;

  fd = fcntl (vms_buffer_fd (export), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    vms_buffer_unref (export);
    return NULL;
  }
  wrapped = gst_dmabuf_allocator_alloc (self->dmabuf_allocator, fd,
      vms_buffer_size (export));
  if (!wrapped) {
    close (fd);
    vms_buffer_unref (export);
    errno = ENOMEM;
    return NULL;
  }
  /* Where the bytes of MEM lie in the dma-buf's whole pages. */
  gst_memory_resize (wrapped, vms_buffer_offset (export), map.size);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (wrapped), export_quark (),
      export, release_export);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (mem), wrapped_quark (),
      gst_memory_ref (wrapped), (GDestroyNotify) gst_memory_unref);
  return wrapped;
}

static void
refuse (GstVmshareExport * self, int error)
{
  GST_ELEMENT_WARNING (self, RESOURCE, FAILED,
      ("cannot export the frames zero-copy: %s; passing them on in system "
          "memory", g_strerror (error)),
      ("vms_buffer_export: %s (errno %d); one frame dropped while "
          "renegotiating", g_strerror (error), error));
  g_atomic_int_set (&self->refused, TRUE);
  gst_base_transform_reconfigure_src (GST_BASE_TRANSFORM (self));
}

static GstFlowReturn
gst_vmshare_export_prepare_output_buffer (GstBaseTransform * trans,
    GstBuffer * input, GstBuffer ** outbuf)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);
  guint i, n = gst_buffer_n_memory (input);
  GstBuffer *out;

  /* Passing through, or dma-bufs already (a pool of GstVmsAllocator
   * memory, ours): the input goes on as it is.  The output is then the
   * input itself, with no reference added: GstBaseTransform passes the
   * caller's on (and unrefs the input only when the output differs). */
  for (i = 0; i < n && gst_is_dmabuf_memory (gst_buffer_peek_memory (input,
              i)); i++);
  if (gst_base_transform_is_passthrough (trans) || i == n) {
    *outbuf = input;
    return GST_FLOW_OK;
  }

  out = gst_buffer_new ();
  for (i = 0; i < n; i++) {
    GstMemory *mem = dmabuf_memory_of (self, gst_buffer_peek_memory (input,
            i));

    if (!mem) {
      refuse (self, errno);
      gst_buffer_unref (out);
      return GST_BASE_TRANSFORM_FLOW_DROPPED;
    }
    gst_buffer_append_memory (out, mem);
  }
  gst_buffer_copy_into (out, input, GST_BUFFER_COPY_METADATA, 0, -1);
  if (!gst_buffer_get_video_meta (out))
    gst_buffer_add_video_meta_full (out, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (&self->info), GST_VIDEO_INFO_WIDTH (&self->info),
        GST_VIDEO_INFO_HEIGHT (&self->info),
        GST_VIDEO_INFO_N_PLANES (&self->info), self->info.offset,
        self->info.stride);
  /* Upstream gets its memory back only once downstream lets go. */
  gst_buffer_add_parent_buffer_meta (out, input);
  *outbuf = out;
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_vmshare_export_transform (GstBaseTransform * trans, GstBuffer * inbuf,
    GstBuffer * outbuf)
{
  /* prepare_output_buffer made the output of the input's own memory. */
  (void) trans;
  (void) inbuf;
  (void) outbuf;
  return GST_FLOW_OK;
}

static gboolean
gst_vmshare_export_start (GstBaseTransform * trans)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);
  int status;

  self->ctx = vms_context_create (0);
  if (!self->ctx) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("vms_context_create: %s", g_strerror (errno)));
    return FALSE;
  }
  self->dmabuf_allocator = gst_dmabuf_allocator_new ();
  self->vms_allocator = gst_vms_allocator_new (self->ctx);
  g_atomic_int_set (&self->refused, FALSE);
  status = vms_context_module_status (self->ctx);
  if (!vms_context_has_module (self->ctx)) {
    GST_ELEMENT_WARNING (self, RESOURCE, NOT_FOUND,
        ("no vmemexp module (/dev/vmemexp: %s); passing the frames on in "
            "system memory", g_strerror (-status)), (NULL));
    g_atomic_int_set (&self->refused, TRUE);
  }
  return TRUE;
}

static gboolean
gst_vmshare_export_stop (GstBaseTransform * trans)
{
  GstVmshareExport *self = GST_VMSHARE_EXPORT (trans);

  gst_clear_object (&self->vms_allocator);
  gst_clear_object (&self->dmabuf_allocator);
  self->ctx = vms_context_unref (self->ctx);
  return TRUE;
}

static void
gst_vmshare_export_class_init (GstVmshareExportClass * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "vmshare dma-buf export", "Filter/Video",
      "Passes system-memory video frames on as dma-bufs of the very same "
      "pages (vmemexp), without a copy",
      "vmshare maintainers <maintainers@vmshare.example.org>");

  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_vmshare_export_transform_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_vmshare_export_set_caps);
  trans_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_vmshare_export_propose_allocation);
  trans_class->decide_allocation =
      GST_DEBUG_FUNCPTR (gst_vmshare_export_decide_allocation);
  trans_class->prepare_output_buffer =
      GST_DEBUG_FUNCPTR (gst_vmshare_export_prepare_output_buffer);
  trans_class->transform = GST_DEBUG_FUNCPTR (gst_vmshare_export_transform);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_vmshare_export_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_vmshare_export_stop);

  GST_DEBUG_CATEGORY_INIT (gst_vmshare_export_debug, "vmshareexport", 0,
      "vmshare dma-buf export");
}

static void
gst_vmshare_export_init (GstVmshareExport * self)
{
  (void) self;
}
