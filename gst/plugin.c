/* SPDX-License-Identifier: MIT */
/* The vmshare GStreamer plugin: its one element, vmshareexport. */
#include <gst/gst.h>

#include "gstvmshareexport.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  return GST_ELEMENT_REGISTER (vmshareexport, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vmshare,
    "Zero-copy dma-bufs of ordinary process memory (vmemexp)",
    plugin_init, VMSHARE_VERSION, "MIT/X11", "vmshare",
    "https://example.invalid/vmshare")
