/* SPDX-License-Identifier: MIT */
#ifndef GST_VMSHARE_EXPORT_H
#define GST_VMSHARE_EXPORT_H

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_VMSHARE_EXPORT (gst_vmshare_export_get_type ())
G_DECLARE_FINAL_TYPE (GstVmshareExport, gst_vmshare_export, GST,
    VMSHARE_EXPORT, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (vmshareexport);

G_END_DECLS

#endif
