/* SPDX-License-Identifier: MIT */
/*
 * gst-frame-probe: play a GStreamer pipeline to its end and print what
 * the tests compare with what the sink delivered.
 *
 *   gst-frame-probe 'PIPELINE'
 *
 * PIPELINE is gst-launch-1.0's syntax; the element named "tap" is watched:
 * for every buffer entering it, "produced <n> checksum <x>" on stdout, n
 * counting from 0, x FNV-1a 64 over the visible bytes of each row of each
 * plane (as refcomp and the frame tap compute it, tests/wayland/refcomp.c),
 * then "allocator <type>", the type of the allocator of its first memory
 * (GstVmsAllocator: from vmshareexport's pool); for every buffer leaving
 * it, "passed <n> memory <dmabuf|system>".  Then every warning on the
 * bus, "warning: <message>", and at the end "eos" or "error: <message>"
 * (exit 1).  Exit 2 for a pipeline that does not parse or has no "tap",
 * 77 (skip) when an element it names is not installed.
 */
#include <stdint.h>
#include <stdio.h>

#include <gst/allocators/gstdmabuf.h>
#include <gst/gst.h>
#include <gst/video/video.h>

static guint produced, passed;

static uint64_t checksum (const GstVideoFrame * frame)
{
  uint64_t h = 1469598103934665603ull;
  guint p, row, i;

  for (p = 0; p < GST_VIDEO_FRAME_N_PLANES (frame); p++) {
    const guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (frame, p);
    guint stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, p);
    guint width = GST_VIDEO_FRAME_COMP_WIDTH (frame, p) *
        GST_VIDEO_FRAME_COMP_PSTRIDE (frame, p);
    guint height = GST_VIDEO_FRAME_COMP_HEIGHT (frame, p);

    for (row = 0; row < height; row++)
      for (i = 0; i < width; i++) {
        h ^= data[(gsize) row * stride + i];
        h *= 1099511628211ull;
      }
  }
  return h;
}

static GstPadProbeReturn
on_sink_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMemory *memory = gst_buffer_peek_memory (buffer, 0);
  const char *allocator = memory && memory->allocator ?
      G_OBJECT_TYPE_NAME (memory->allocator) : "none";
  GstCaps *caps = gst_pad_get_current_caps (pad);
  GstVideoFrame frame;
  GstVideoInfo vinfo;

  (void) data;
  if (caps && gst_video_info_from_caps (&vinfo, caps) &&
      gst_video_frame_map (&frame, &vinfo, buffer, GST_MAP_READ)) {
    printf ("produced %u checksum %016llx allocator %s\n", produced,
        (unsigned long long) checksum (&frame), allocator);
    gst_video_frame_unmap (&frame);
  } else {
    printf ("produced %u checksum unreadable allocator %s\n", produced,
        allocator);
  }
  produced++;
  fflush (stdout);
  if (caps)
    gst_caps_unref (caps);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_src_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);

  (void) pad;
  (void) data;
  printf ("passed %u memory %s\n", passed++,
      gst_is_dmabuf_memory (gst_buffer_peek_memory (buffer, 0)) ?
      "dmabuf" : "system");
  fflush (stdout);
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  GstElement *pipeline, *tap;
  GError *error = NULL;
  GstMessage *msg;
  GstPad *pad;
  GstBus *bus;
  int status = 1;

  gst_init (&argc, &argv);
  if (argc != 2) {
    fprintf (stderr, "usage: gst-frame-probe 'PIPELINE'\n");
    return 2;
  }
  pipeline = gst_parse_launch (argv[1], &error);
  /* A machine without the elements the test needs (a package build,
   * whose root has only the Build-Depends) skips it. */
  if (error && g_error_matches (error, GST_PARSE_ERROR,
          GST_PARSE_ERROR_NO_SUCH_ELEMENT)) {
    printf ("SKIP: %s\n", error->message);
    return 77;
  }
  if (!pipeline) {
    fprintf (stderr, "gst-frame-probe: %s\n", error->message);
    return 2;
  }
  tap = gst_bin_get_by_name (GST_BIN (pipeline), "tap");
  if (!tap) {
    fprintf (stderr, "gst-frame-probe: no element named tap\n");
    return 2;
  }
  pad = gst_element_get_static_pad (tap, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_sink_buffer, NULL,
      NULL);
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (tap, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_src_buffer, NULL,
      NULL);
  gst_object_unref (pad);
  gst_object_unref (tap);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  for (;;) {
    msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
      gst_message_parse_warning (msg, &error, NULL);
      printf ("warning: %s\n", error->message);
      g_clear_error (&error);
      gst_message_unref (msg);
      continue;
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
      printf ("eos\n");
      status = 0;
    } else {
      gst_message_parse_error (msg, &error, NULL);
      printf ("error: %s\n", error->message);
      g_clear_error (&error);
    }
    gst_message_unref (msg);
    break;
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return status;
}
