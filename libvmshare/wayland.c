/* SPDX-License-Identifier: MIT */
/*
 * Memory to wl_buffers: a dma-buf of the memory through
 * zwp_linux_dmabuf_v1 where the compositor and vmemexp allow it, else a
 * wl_shm pool the memory is copied into.  libvmshare's globals live on a
 * private event queue so the application's own dispatching never sees
 * them; only the wl_buffers move to the default queue, where the
 * application expects their release events.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <drm_fourcc.h>
#include <wayland-client.h>
#include <xf86drm.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "private.h"
#include "wayland-private.h"

/* Room for libdrm's longest format name and a bit. */
#define FORMAT_NAME_SIZE 48

#define MAX_FORMATS 128
/* A format table entry: u32 format, u32 padding, u64 modifier. */
#define FORMAT_TABLE_ENTRY 16

/* What the compositor takes as a dma-buf, per format. */
struct dmabuf_format {
	uint32_t fourcc;
	bool linear;	/* DRM_FORMAT_MOD_LINEAR offered */
	bool implicit;	/* DRM_FORMAT_MOD_INVALID offered (or v1/v2 format) */
};

/* The formats of one feedback batch, valid once `done` arrives. */
struct format_set {
	struct dmabuf_format formats[MAX_FORMATS];
	size_t n_formats;
};

struct vms_wl {
	/* The application's, and one held by each of its buffers. */
	atomic_int refs;
	struct vms_context *ctx;	/* a reference */
	struct wl_display *display;
	struct wl_event_queue *queue;
	struct wl_registry *registry;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	uint32_t dmabuf_version;
	struct wl_shm *shm;
	struct format_set dmabuf_formats;
	/* Version 4: the default feedback and its batch being received. */
	struct zwp_linux_dmabuf_feedback_v1 *feedback;
	const void *table;	/* read-only private map of the format table */
	size_t table_size;
	bool table_received;
	struct format_set pending;
	char pending_error[128];
	/* Why the last feedback batch gave no formats; empty when it did. */
	char feedback_error[160];
	uint32_t shm_formats[MAX_FORMATS];
	size_t n_shm_formats;
	struct wl_list buffers;	/* vms_wl_buffer.link, for reuse */
	uint32_t flags;
	bool no_dmabuf_env;	/* VMSHARE_WL_NO_DMABUF is set */
};

struct vms_wl_buffer {
	struct vms_wl *wl;		/* a reference */
	struct wl_list link;
	atomic_int refs;
	void *data;
	uint32_t width, height, stride, fourcc;
	size_t len;
	enum vms_wl_path path;
	struct wl_buffer *buffer;
	struct vms_buffer *export;	/* dma-buf path */
	void *pool;			/* shm path: our mapping of the pool */
	/*
	 * Held by the compositor: set by vms_wl_buffer_attach(), cleared by
	 * wl_buffer.release, which may be dispatched on another thread than
	 * the one drawing.
	 */
	atomic_bool busy;
	vms_wl_release_handler release_handler;
	void *release_data;
	char reason[256];
};

static const struct dmabuf_format *lookup_format(const struct format_set *set,
						 uint32_t fourcc)
{
	for (size_t i = 0; i < set->n_formats; i++)
		if (set->formats[i].fourcc == fourcc)
			return &set->formats[i];
	return NULL;
}

/* @fourcc's entry, added if it is new and there is room. */
static struct dmabuf_format *add_format(struct format_set *set,
					uint32_t fourcc)
{
	const struct dmabuf_format *known = lookup_format(set, fourcc);

	if (known)
		return &set->formats[known - set->formats];
	if (set->n_formats == MAX_FORMATS)
		return NULL;
	set->formats[set->n_formats] = (struct dmabuf_format){ .fourcc = fourcc };
	return &set->formats[set->n_formats++];
}

static void add_modifier(struct format_set *set, uint32_t fourcc,
			 uint64_t modifier)
{
	struct dmabuf_format *f = add_format(set, fourcc);

	if (f && modifier == DRM_FORMAT_MOD_LINEAR)
		f->linear = true;
	if (f && modifier == DRM_FORMAT_MOD_INVALID)
		f->implicit = true;
}

static void dmabuf_format(void *data, struct zwp_linux_dmabuf_v1 *dmabuf,
			  uint32_t fourcc)
{
	struct vms_wl *wl = data;
	struct dmabuf_format *f = add_format(&wl->dmabuf_formats, fourcc);

	/*
	 * Version 1 and 2 formats carry no modifier: the implicit one.  From
	 * version 3 on the modifier events say which, and a compositor may
	 * still send format events that mean nothing more.
	 */
	if (f && wl_proxy_get_version((struct wl_proxy *)dmabuf) < 3)
		f->implicit = true;
}

static void dmabuf_modifier(void *data, struct zwp_linux_dmabuf_v1 *dmabuf,
			    uint32_t fourcc, uint32_t hi, uint32_t lo)
{
	struct vms_wl *wl = data;

	(void)dmabuf;
	add_modifier(&wl->dmabuf_formats, fourcc, (uint64_t)hi << 32 | lo);
}

static const struct zwp_linux_dmabuf_v1_listener dmabuf_listener = {
	.format = dmabuf_format,
	.modifier = dmabuf_modifier,
};

/*
 * Version 4 feedback.  The compositor is not trusted: a table of the
 * wrong size, an index past its end or a table we cannot map poisons the
 * whole batch, which then offers no format at all (so every buffer takes
 * the wl_shm path and says why) rather than a guess.
 */
static void feedback_fail(struct vms_wl *wl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void feedback_fail(struct vms_wl *wl, const char *fmt, ...)
{
	va_list ap;

	/* The first problem explains the batch best. */
	if (wl->pending_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(wl->pending_error, sizeof(wl->pending_error), fmt, ap);
	va_end(ap);
}

static void unmap_table(struct vms_wl *wl)
{
	if (wl->table)
		munmap((void *)wl->table, wl->table_size);
	wl->table = NULL;
	wl->table_size = 0;
	wl->table_received = false;
}

static void feedback_format_table(void *data,
				  struct zwp_linux_dmabuf_feedback_v1 *feedback,
				  int32_t fd, uint32_t size)
{
	struct vms_wl *wl = data;
	struct stat st;
	void *table;

	(void)feedback;
	unmap_table(wl);
	if (size % FORMAT_TABLE_ENTRY) {
		feedback_fail(wl, "a format table of %u bytes, not a multiple of %d",
			      size, FORMAT_TABLE_ENTRY);
		goto out;
	}
	/* Reading past the end of the file would raise SIGBUS in the caller. */
	if (fstat(fd, &st) < 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size < size) {
		feedback_fail(wl, "a format table of %u bytes in a smaller file",
			      size);
		goto out;
	}
	wl->table_received = true;
	if (!size)
		goto out;
	table = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (table == MAP_FAILED) {
		wl->table_received = false;
		feedback_fail(wl, "a format table that cannot be mapped (%s)",
			      strerror(errno));
		goto out;
	}
	wl->table = table;
	wl->table_size = size;
out:
	close(fd);
}

static void feedback_main_device(void *data,
				 struct zwp_linux_dmabuf_feedback_v1 *feedback,
				 struct wl_array *device)
{
	/* Our buffers are plain memory: any device that imports them will do. */
	(void)data;
	(void)feedback;
	(void)device;
}

static void feedback_tranche_target_device(void *data,
	struct zwp_linux_dmabuf_feedback_v1 *feedback, struct wl_array *device)
{
	(void)data;
	(void)feedback;
	(void)device;
}

static void feedback_tranche_flags(void *data,
				   struct zwp_linux_dmabuf_feedback_v1 *feedback,
				   uint32_t flags)
{
	/* Scan-out is a hint about allocation; our memory is already there. */
	(void)data;
	(void)feedback;
	(void)flags;
}

static void feedback_tranche_formats(void *data,
				     struct zwp_linux_dmabuf_feedback_v1 *feedback,
				     struct wl_array *indices)
{
	struct vms_wl *wl = data;
	size_t n_entries = wl->table_size / FORMAT_TABLE_ENTRY;
	const uint8_t *table = wl->table;
	const uint16_t *index;

	(void)feedback;
	if (!wl->table_received) {
		feedback_fail(wl, "tranche formats without a usable format table");
		return;
	}
	if (indices->size % sizeof(*index)) {
		feedback_fail(wl, "a tranche of %zu bytes of 16-bit indices",
			      indices->size);
		return;
	}
	wl_array_for_each(index, indices) {
		uint32_t fourcc;
		uint64_t modifier;

		if (*index >= n_entries) {
			feedback_fail(wl, "format index %u past the %zu entries of the table",
				      *index, n_entries);
			return;
		}
		memcpy(&fourcc, table + *index * FORMAT_TABLE_ENTRY,
		       sizeof(fourcc));
		memcpy(&modifier, table + *index * FORMAT_TABLE_ENTRY + 8,
		       sizeof(modifier));
		add_modifier(&wl->pending, fourcc, modifier);
	}
}

static void feedback_tranche_done(void *data,
				  struct zwp_linux_dmabuf_feedback_v1 *feedback)
{
	/* Every tranche's formats are usable; preference does not matter to us. */
	(void)data;
	(void)feedback;
}

static void feedback_done(void *data,
			  struct zwp_linux_dmabuf_feedback_v1 *feedback)
{
	struct vms_wl *wl = data;

	(void)feedback;
	if (wl->pending_error[0]) {
		wl->dmabuf_formats.n_formats = 0;
		snprintf(wl->feedback_error, sizeof(wl->feedback_error),
			 "unusable linux-dmabuf feedback: %s", wl->pending_error);
		vms_log(wl->ctx, "%s: no dma-buf format taken", wl->feedback_error);
	} else {
		wl->dmabuf_formats = wl->pending;
		wl->feedback_error[0] = '\0';
	}
	/* A later batch starts afresh but may index the same table. */
	wl->pending.n_formats = 0;
	wl->pending_error[0] = '\0';
}

static const struct zwp_linux_dmabuf_feedback_v1_listener feedback_listener = {
	.done = feedback_done,
	.format_table = feedback_format_table,
	.main_device = feedback_main_device,
	.tranche_done = feedback_tranche_done,
	.tranche_target_device = feedback_tranche_target_device,
	.tranche_formats = feedback_tranche_formats,
	.tranche_flags = feedback_tranche_flags,
};

static void shm_format(void *data, struct wl_shm *shm, uint32_t format)
{
	struct vms_wl *wl = data;

	(void)shm;
	if (wl->n_shm_formats < MAX_FORMATS)
		wl->shm_formats[wl->n_shm_formats++] = format;
}

static const struct wl_shm_listener shm_listener = {
	.format = shm_format,
};

static void registry_global(void *data, struct wl_registry *registry,
			    uint32_t name, const char *interface,
			    uint32_t version)
{
	struct vms_wl *wl = data;

	if (!strcmp(interface, zwp_linux_dmabuf_v1_interface.name) &&
	    version >= 2 && !(wl->flags & VMS_WL_NO_DMABUF) &&
	    !wl->no_dmabuf_env && !wl->dmabuf) {
		wl->dmabuf_version = version < 4 ? version : 4;
		wl->dmabuf = wl_registry_bind(registry, name,
					      &zwp_linux_dmabuf_v1_interface,
					      wl->dmabuf_version);
		zwp_linux_dmabuf_v1_add_listener(wl->dmabuf, &dmabuf_listener,
						 wl);
		/*
		 * Version 4 sends no format or modifier events: the formats
		 * come with the feedback, on our queue like its parent.
		 */
		if (wl->dmabuf_version >= 4) {
			snprintf(wl->feedback_error, sizeof(wl->feedback_error),
				 "the compositor sent no complete linux-dmabuf feedback");
			wl->feedback = zwp_linux_dmabuf_v1_get_default_feedback(
				wl->dmabuf);
			zwp_linux_dmabuf_feedback_v1_add_listener(wl->feedback,
				&feedback_listener, wl);
		}
	} else if (!strcmp(interface, wl_shm_interface.name) && !wl->shm) {
		wl->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
		wl_shm_add_listener(wl->shm, &shm_listener, wl);
	}
}

static void registry_global_remove(void *data, struct wl_registry *registry,
				   uint32_t name)
{
	(void)data;
	(void)registry;
	(void)name;
}

static const struct wl_registry_listener registry_listener = {
	.global = registry_global,
	.global_remove = registry_global_remove,
};

/* libdrm's name of @fourcc ("XR24"), for messages. */
static void format_name(uint32_t fourcc, char name[FORMAT_NAME_SIZE])
{
	char *drm = drmGetFormatName(fourcc);

	snprintf(name, FORMAT_NAME_SIZE, "%s", drm ? drm : "an unknown format");
	free(drm);
}

VMS_EXPORT struct vms_wl *vms_wl_create(struct vms_context *ctx,
					struct wl_display *display,
					uint32_t flags)
{
	struct wl_display *wrapper;
	struct vms_wl *wl;
	int err = EPIPE;

	if (!ctx || !display ||
	    (flags & ~(uint32_t)(VMS_WL_NO_DMABUF | VMS_WL_EXPOSE_WHOLE_PAGES))) {
		errno = EINVAL;
		return NULL;
	}
	wl = calloc(1, sizeof(*wl));
	if (!wl)
		return NULL;
	atomic_init(&wl->refs, 1);
	wl->ctx = vms_context_ref(ctx);
	wl->display = display;
	wl->flags = flags;
	/*
	 * A way out for applications that cannot be rebuilt, on compositors
	 * that accept a foreign dma-buf but cannot read it (Weston 10 with
	 * Mesa 22.3's software GBM crashes on the first sample;
	 * docs/wayland.md).
	 */
	wl->no_dmabuf_env = vms_env_flag("VMSHARE_WL_NO_DMABUF");
	wl_list_init(&wl->buffers);
	wl->queue = wl_display_create_queue(display);
	wrapper = wl->queue ? wl_proxy_create_wrapper(display) : NULL;
	if (!wrapper) {
		err = ENOMEM;
		goto err;
	}
	wl_proxy_set_queue((struct wl_proxy *)wrapper, wl->queue);
	wl->registry = wl_display_get_registry(wrapper);
	wl_proxy_wrapper_destroy(wrapper);
	if (!wl->registry)
		goto err;
	wl_registry_add_listener(wl->registry, &registry_listener, wl);

	/* The globals, then the formats the bound globals announce. */
	if (wl_display_roundtrip_queue(display, wl->queue) < 0 ||
	    wl_display_roundtrip_queue(display, wl->queue) < 0)
		goto err;
	if (!wl->dmabuf && !wl->shm) {
		err = EPROTO;
		goto err;
	}
	if (wl->dmabuf)
		vms_log(ctx, "compositor: linux-dmabuf v%u (%zu formats%s), wl_shm %s",
			wl->dmabuf_version, wl->dmabuf_formats.n_formats,
			wl->feedback ? ", from the default feedback" : "",
			wl->shm ? "bound" : "absent");
	else
		vms_log(ctx, "compositor: linux-dmabuf absent, wl_shm %s",
			wl->shm ? "bound" : "absent");
	return wl;

err:
	vms_wl_unref(wl);
	errno = err;
	return NULL;
}

VMS_EXPORT struct vms_wl *vms_wl_ref(struct vms_wl *wl)
{
	atomic_fetch_add(&wl->refs, 1);
	return wl;
}

VMS_EXPORT struct vms_wl *vms_wl_unref(struct vms_wl *wl)
{
	if (!wl || atomic_fetch_sub(&wl->refs, 1) > 1)
		return NULL;
	if (wl->feedback)
		zwp_linux_dmabuf_feedback_v1_destroy(wl->feedback);
	unmap_table(wl);
	if (wl->dmabuf)
		zwp_linux_dmabuf_v1_destroy(wl->dmabuf);
	if (wl->shm)
		wl_shm_destroy(wl->shm);
	if (wl->registry)
		wl_registry_destroy(wl->registry);
	if (wl->queue)
		wl_event_queue_destroy(wl->queue);
	vms_context_unref(wl->ctx);
	free(wl);
	return NULL;
}

VMS_EXPORT bool vms_wl_supports_dmabuf(const struct vms_wl *wl,
				       uint32_t fourcc)
{
	const struct dmabuf_format *f = lookup_format(&wl->dmabuf_formats,
						      fourcc);

	return f && (f->linear || f->implicit);
}

static void buffer_release(void *data, struct wl_buffer *buffer)
{
	struct vms_wl_buffer *buf = data;

	(void)buffer;
	atomic_store(&buf->busy, false);
	if (buf->release_handler)
		buf->release_handler(buf->release_data, buf);
}

static const struct wl_buffer_listener buffer_listener = {
	.release = buffer_release,
};

/* The answer to zwp_linux_buffer_params_v1.create. */
struct import {
	struct wl_buffer *buffer;
	bool answered;
};

static void params_created(void *data,
			   struct zwp_linux_buffer_params_v1 *params,
			   struct wl_buffer *buffer)
{
	struct import *import = data;

	(void)params;
	import->buffer = buffer;
	import->answered = true;
}

static void params_failed(void *data, struct zwp_linux_buffer_params_v1 *params)
{
	struct import *import = data;

	(void)params;
	import->answered = true;
}

static const struct zwp_linux_buffer_params_v1_listener params_listener = {
	.created = params_created,
	.failed = params_failed,
};

struct wl_shm *vms_wl_shm(const struct vms_wl *wl)
{
	return wl->shm;
}

/* Why linux-dmabuf cannot be used at all, or NULL. */
static const char *dmabuf_unavailable(const struct vms_wl *wl)
{
	if (!wl->dmabuf)
		return wl->flags & VMS_WL_NO_DMABUF ?
		       "linux-dmabuf disabled by VMS_WL_NO_DMABUF" :
		       wl->no_dmabuf_env ?
		       "linux-dmabuf disabled by VMSHARE_WL_NO_DMABUF" :
		       "the compositor offers no zwp_linux_dmabuf_v1";
	return wl->feedback_error[0] ? wl->feedback_error : NULL;
}

const char *vms_wl_dmabuf_unusable(const struct vms_wl *wl)
{
	const struct format_set *set = &wl->dmabuf_formats;
	const char *unavailable = dmabuf_unavailable(wl);

	if (unavailable)
		return unavailable;
	for (size_t i = 0; i < set->n_formats; i++)
		if (set->formats[i].linear || set->formats[i].implicit)
			return NULL;
	return "the compositor takes no linear dma-buf";
}

int vms_wl_dmabuf_modifier(const struct vms_wl *wl, uint32_t fourcc,
			   uint64_t *modifier, char *reason, size_t size)
{
	const char *unavailable = dmabuf_unavailable(wl);
	const struct dmabuf_format *f;
	char name[FORMAT_NAME_SIZE];

	if (unavailable) {
		snprintf(reason, size, "%s", unavailable);
		return ENOTSUP;
	}
	f = lookup_format(&wl->dmabuf_formats, fourcc);
	format_name(fourcc, name);
	if (!f || (!f->linear && !f->implicit)) {
		snprintf(reason, size, "the compositor takes no %s dma-buf",
			 name);
		return ENOTSUP;
	}
	/*
	 * Our memory is linear.  A compositor that lists only the implicit
	 * modifier (Weston 10 on a software renderer) takes linear buffers
	 * that way; insisting on LINEAR would leave the dma-buf path unused.
	 */
	*modifier = f->linear ? DRM_FORMAT_MOD_LINEAR : DRM_FORMAT_MOD_INVALID;
	if (!f->linear)
		vms_log(wl->ctx, "%s: only the implicit modifier is offered; using it",
			name);
	return 0;
}

struct wl_buffer *vms_wl_dmabuf_import(struct vms_wl *wl, int fd,
				       uint32_t n_planes,
				       const uint32_t *offsets,
				       const uint32_t *strides,
				       uint64_t modifier, uint32_t width,
				       uint32_t height, uint32_t fourcc)
{
	struct zwp_linux_buffer_params_v1 *params;
	struct import import = { 0 };

	params = zwp_linux_dmabuf_v1_create_params(wl->dmabuf);
	zwp_linux_buffer_params_v1_add_listener(params, &params_listener,
						&import);
	for (uint32_t i = 0; i < n_planes; i++)
		zwp_linux_buffer_params_v1_add(params, fd, i, offsets[i],
					       strides[i],
					       (uint32_t)(modifier >> 32),
					       (uint32_t)modifier);
	zwp_linux_buffer_params_v1_create(params, (int32_t)width,
					  (int32_t)height, fourcc, 0);
	while (!import.answered)
		if (wl_display_dispatch_queue(wl->display, wl->queue) < 0)
			break;
	zwp_linux_buffer_params_v1_destroy(params);
	if (!import.buffer)
		errno = import.answered ? EINVAL : EPIPE;
	return import.buffer;
}

/*
 * Exports the memory and asks the compositor to import it.  Returns 0,
 * a positive errno with buf->reason set when the shm path should be tried
 * instead, or a negative errno for a failed connection.
 */
static int create_dmabuf(struct vms_wl_buffer *buf,
			 const struct vms_format *fmt)
{
	struct vms_wl *wl = buf->wl;
	uint64_t offsets[VMS_MAX_PLANES], modifier;
	uint32_t plane_offsets[VMS_MAX_PLANES], strides[VMS_MAX_PLANES];
	uint32_t export_flags = VMS_EXPORT_ZERO_COPY |
		(wl->flags & VMS_WL_EXPOSE_WHOLE_PAGES ?
		 VMS_EXPORT_EXPOSE_WHOLE_PAGES : 0);
	char name[FORMAT_NAME_SIZE];
	int err;

	err = vms_wl_dmabuf_modifier(wl, buf->fourcc, &modifier, buf->reason,
				     sizeof(buf->reason));
	if (err)
		return err;
	buf->export = vms_buffer_export(wl->ctx, buf->data, buf->len,
					export_flags);
	if (!buf->export) {
		err = errno;
		if (err == EINVAL && vms_export_would_expose(wl->ctx, buf->data,
							     buf->len,
							     export_flags))
			snprintf(buf->reason, sizeof(buf->reason),
				 "the frame is not page-aligned, so a dma-buf "
				 "would give the compositor the rest of its first "
				 "and last page (allocate it with vms_frame_alloc(), "
				 "or pass VMS_WL_EXPOSE_WHOLE_PAGES)");
		else
			snprintf(buf->reason, sizeof(buf->reason),
				 "vmemexp %s (%s)",
				 err == ENODEV ? "is not available" :
						 "refused the memory",
				 strerror(err));
		return err;
	}

	vms_format_layout(fmt, buf->height, buf->stride, offsets, strides);
	for (uint32_t i = 0; i < fmt->n_planes; i++)
		plane_offsets[i] = (uint32_t)(vms_buffer_offset(buf->export) +
					      offsets[i]);
	buf->buffer = vms_wl_dmabuf_import(wl, vms_buffer_fd(buf->export),
					   fmt->n_planes, plane_offsets,
					   strides, modifier, buf->width,
					   buf->height, buf->fourcc);
	if (!buf->buffer) {
		err = errno;
		vms_buffer_unref(buf->export);
		buf->export = NULL;
		if (err == EPIPE)
			return -EPIPE;
		format_name(buf->fourcc, name);
		snprintf(buf->reason, sizeof(buf->reason),
			 "the compositor refused the %s dma-buf import", name);
		return EINVAL;
	}
	buf->path = VMS_WL_PATH_DMABUF;
	return 0;
}

static uint32_t shm_format_of(uint32_t fourcc)
{
	/* wl_shm's two original formats are not their fourccs. */
	if (fourcc == DRM_FORMAT_ARGB8888)
		return WL_SHM_FORMAT_ARGB8888;
	if (fourcc == DRM_FORMAT_XRGB8888)
		return WL_SHM_FORMAT_XRGB8888;
	return fourcc;
}

static int create_shm(struct vms_wl_buffer *buf)
{
	struct vms_wl *wl = buf->wl;
	uint32_t format = shm_format_of(buf->fourcc);
	struct wl_shm_pool *pool;
	bool offered = format <= WL_SHM_FORMAT_XRGB8888;
	int fd, err;

	for (size_t i = 0; i < wl->n_shm_formats; i++)
		offered |= wl->shm_formats[i] == format;
	if (!wl->shm || !offered)
		return -ENOTSUP;

	fd = vms_memfd_create("vmshare-wl-shm", buf->len);
	if (fd < 0)
		return fd;
	buf->pool = mmap(NULL, buf->len, PROT_READ | PROT_WRITE, MAP_SHARED,
			 fd, 0);
	if (buf->pool == MAP_FAILED) {
		err = -errno;
		buf->pool = NULL;
		close(fd);
		return err;
	}
	memcpy(buf->pool, buf->data, buf->len);
	pool = wl_shm_create_pool(wl->shm, fd, (int32_t)buf->len);
	buf->buffer = wl_shm_pool_create_buffer(pool, 0, (int32_t)buf->width,
						(int32_t)buf->height,
						(int32_t)buf->stride, format);
	wl_shm_pool_destroy(pool);
	close(fd);
	if (!buf->buffer)
		return -ENOMEM;
	buf->path = VMS_WL_PATH_SHM;
	return 0;
}

static struct vms_wl_buffer *find_buffer(struct vms_wl *wl, void *data,
					 uint32_t width, uint32_t height,
					 uint32_t stride, uint32_t fourcc)
{
	struct vms_wl_buffer *buf;

	wl_list_for_each(buf, &wl->buffers, link)
		if (buf->data == data && buf->width == width &&
		    buf->height == height && buf->stride == stride &&
		    buf->fourcc == fourcc)
			return buf;
	return NULL;
}

static void free_buffer(struct vms_wl_buffer *buf)
{
	if (buf->buffer)
		wl_buffer_destroy(buf->buffer);
	vms_buffer_unref(buf->export);
	if (buf->pool)
		munmap(buf->pool, buf->len);
	free(buf);
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_create(struct vms_wl *wl,
						      void *data,
						      uint32_t width,
						      uint32_t height,
						      uint32_t stride,
						      uint32_t fourcc)
{
	const struct vms_format *fmt = vms_format_lookup(fourcc);
	struct vms_frame frame = {
		.width = width, .height = height, .fourcc = fourcc,
	};
	struct vms_wl_buffer *buf;
	uint64_t len;
	int ret;
	char name[FORMAT_NAME_SIZE];

	if (!wl || !data || !fmt || !fourcc || !width || !height ||
	    width > INT32_MAX || height > INT32_MAX || stride > INT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	buf = find_buffer(wl, data, width, height, stride, fourcc);
	/*
	 * Found by address only: after free() and a malloc() that returned
	 * the same address, a dma-buf wl_buffer would show the freed pages.
	 * A stale one is left to its holders and no longer found.
	 */
	if (buf && buf->path == VMS_WL_PATH_DMABUF &&
	    !vms_buffer_still_shares(buf->export)) {
		vms_log(wl->ctx, "wl_buffer of %p no longer shows that memory "
			"(freed, or not tracked): creating another", data);
		wl_list_remove(&buf->link);
		wl_list_init(&buf->link);
		buf = NULL;
	}
	if (buf)
		return vms_wl_buffer_ref(buf);
	/*
	 * Every plane's rows must fit its derived stride: an odd-width NV12
	 * frame with stride == width has chroma rows one byte too long.
	 */
	len = vms_format_layout(fmt, height, stride, frame.plane_offsets,
				frame.strides);
	frame.n_planes = fmt->n_planes;
	frame.size = len;
	if (len > INT32_MAX || vms_frame_check(&frame, len)) {
		errno = EINVAL;
		return NULL;
	}

	buf = calloc(1, sizeof(*buf));
	if (!buf)
		return NULL;
	*buf = (struct vms_wl_buffer){
		.wl = wl, .refs = 1, .data = data, .width = width,
		.height = height, .stride = stride, .fourcc = fourcc,
		.len = (size_t)len,
	};
	atomic_init(&buf->busy, false);
	format_name(fourcc, name);

	ret = create_dmabuf(buf, fmt);
	if (ret > 0) {
		vms_log_info(wl->ctx, "%ux%u %s at %p: %s: falling back to wl_shm",
			width, height, name, data, buf->reason);
		ret = create_shm(buf);
	}
	if (ret < 0) {
		free_buffer(buf);
		errno = wl_display_get_error(wl->display) ? EPIPE : -ret;
		return NULL;
	}
	/* The application dispatches the buffer's release events. */
	wl_proxy_set_queue((struct wl_proxy *)buf->buffer, NULL);
	wl_buffer_add_listener(buf->buffer, &buffer_listener, buf);
	wl_list_insert(&wl->buffers, &buf->link);
	if (buf->path == VMS_WL_PATH_DMABUF)
		vms_log(wl->ctx, "%ux%u %s at %p: dma-buf wl_buffer, no copy",
			width, height, name, data);
	vms_wl_ref(wl);
	return buf;
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_ref(struct vms_wl_buffer *buf)
{
	atomic_fetch_add(&buf->refs, 1);
	return buf;
}

VMS_EXPORT struct vms_wl_buffer *vms_wl_buffer_unref(struct vms_wl_buffer *buf)
{
	struct vms_wl *wl;

	if (!buf || atomic_fetch_sub(&buf->refs, 1) > 1)
		return NULL;
	wl = buf->wl;
	wl_list_remove(&buf->link);
	free_buffer(buf);
	vms_wl_unref(wl);
	return NULL;
}

VMS_EXPORT struct wl_buffer *vms_wl_buffer_get(const struct vms_wl_buffer *buf)
{
	return buf->buffer;
}

VMS_EXPORT int vms_wl_buffer_update(struct vms_wl_buffer *buf)
{
	if (atomic_load(&buf->busy))
		return -EBUSY;
	if (buf->path == VMS_WL_PATH_DMABUF)
		return vms_buffer_end_cpu_access(buf->export, VMS_ACCESS_WRITE);
	memcpy(buf->pool, buf->data, buf->len);
	return 0;
}

VMS_EXPORT int vms_wl_buffer_attach(struct vms_wl_buffer *buf,
				    struct wl_surface *surface, int32_t x,
				    int32_t y)
{
	bool idle = false;

	if (!atomic_compare_exchange_strong(&buf->busy, &idle, true))
		return -EBUSY;
	wl_surface_attach(surface, buf->buffer, x, y);
	return 0;
}

VMS_EXPORT bool vms_wl_buffer_is_busy(const struct vms_wl_buffer *buf)
{
	return atomic_load(&((struct vms_wl_buffer *)buf)->busy);
}

VMS_EXPORT void vms_wl_buffer_set_release_handler(struct vms_wl_buffer *buf,
						  vms_wl_release_handler handler,
						  void *data)
{
	buf->release_handler = handler;
	buf->release_data = data;
}

VMS_EXPORT enum vms_wl_path vms_wl_buffer_path(const struct vms_wl_buffer *buf)
{
	return buf->path;
}

VMS_EXPORT const char *vms_wl_buffer_fallback_reason(
	const struct vms_wl_buffer *buf)
{
	return buf->path == VMS_WL_PATH_SHM ? buf->reason : NULL;
}
