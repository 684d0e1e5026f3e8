/* SPDX-License-Identifier: MIT */
/*
 * libvmshare-frame-tap.so: LD_PRELOAD it into a client of libvmshare's
 * Wayland API (the weston-client example) to see what the client shows,
 * without a line of test code in the client.  It wraps the client's calls
 * of vms_wl_create(), vms_wl_buffer_create() and vms_wl_buffer_attach();
 * VMSHARE_FRAME_TAP says what to do, as a comma-separated list:
 *
 *   checksums  print "committed N checksum X" on stdout for every attach:
 *              N counts from 0, X is FNV-1a over the visible bytes of each
 *              row (width * 4: the 32-bit formats the example draws)
 *   stats      at exit, "stats: N frames after the first, X ms CPU per
 *              frame, Y frames/s": process CPU and wall time from the
 *              first attach to the last, so start-up is not in them
 *   probe      at the first attach, attach nothing: make a roundtrip (a
 *              dead connection means the buffers' import killed the
 *              compositor), print "probe: ..." and exit 0 or 1
 *
 * The client's memory is read when the attach is made, after
 * vms_wl_buffer_update(): what the compositor is handed.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vmshare.h>

#include "tap.h"

#define MAX_BUFFERS 64

/* What vms_wl_buffer_create() was given, for each buffer it returned. */
struct tapped_buffer {
	const struct vms_wl_buffer *buffer;
	const uint8_t *data;
	uint32_t width, height, stride;
};

static struct {
	bool checksums, stats, probe;
	struct wl_display *display;
	struct tapped_buffer buffers[MAX_BUFFERS];
	unsigned int attached;
	struct timespec cpu_first, wall_first, cpu_last, wall_last;
} tap;

__attribute__((constructor)) static void tap_init(void)
{
	static const char *const words[] = { "checksums", "stats", "probe", NULL };
	bool *const flags[] = { &tap.checksums, &tap.stats, &tap.probe };

	tap_words("VMSHARE_FRAME_TAP", words, flags);
}

static struct tapped_buffer *find(const struct vms_wl_buffer *buffer)
{
	for (int i = 0; i < MAX_BUFFERS; i++)
		if (tap.buffers[i].buffer == buffer)
			return &tap.buffers[i];
	return NULL;
}

struct vms_wl *vms_wl_create(struct vms_context *ctx,
			     struct wl_display *display, uint32_t flags)
{
	struct vms_wl *(*create)(struct vms_context *, struct wl_display *,
				 uint32_t) = tap_real("vms_wl_create");

	tap.display = display;
	return create(ctx, display, flags);
}

struct vms_wl_buffer *vms_wl_buffer_create(struct vms_wl *wl, void *data,
					   uint32_t width, uint32_t height,
					   uint32_t stride, uint32_t fourcc)
{
	struct vms_wl_buffer *(*create)(struct vms_wl *, void *, uint32_t,
					uint32_t, uint32_t, uint32_t) =
		tap_real("vms_wl_buffer_create");
	struct vms_wl_buffer *buffer = create(wl, data, width, height, stride,
					      fourcc);
	struct tapped_buffer *slot = find(buffer);

	/* A buffer returned again for the same memory keeps its slot. */
	if (buffer && !slot)
		slot = find(NULL);
	if (buffer && slot)
		*slot = (struct tapped_buffer){
			.buffer = buffer, .data = data, .width = width,
			.height = height, .stride = stride,
		};
	return buffer;
}

static void probe_and_exit(void)
{
	int (*roundtrip)(struct wl_display *) =
		tap_real("wl_display_roundtrip");
	bool gone = !tap.display || roundtrip(tap.display) < 0;

	printf("probe: %s\n", gone ? "the compositor went away" :
	       "the compositor kept the buffers; none was shown");
	fflush(stdout);
	exit(gone);
}

int vms_wl_buffer_attach(struct vms_wl_buffer *buffer,
			 struct wl_surface *surface, int32_t x, int32_t y)
{
	int (*attach)(struct vms_wl_buffer *, struct wl_surface *, int32_t,
		      int32_t) = tap_real("vms_wl_buffer_attach");
	const struct tapped_buffer *t = find(buffer);
	int ret;

	if (tap.probe)
		probe_and_exit();
	ret = attach(buffer, surface, x, y);
	if (ret)
		return ret;
	if (tap.checksums && t)
		printf("committed %u checksum %016llx\n", tap.attached,
		       (unsigned long long)frame_checksum(t->data, t->width,
							  t->height, t->stride));
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &tap.cpu_last);
	clock_gettime(CLOCK_MONOTONIC, &tap.wall_last);
	if (tap.attached++ == 0) {
		tap.cpu_first = tap.cpu_last;
		tap.wall_first = tap.wall_last;
	}
	return 0;
}

static double seconds(const struct timespec *from, const struct timespec *to)
{
	return (double)(to->tv_sec - from->tv_sec) +
	       (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

__attribute__((destructor)) static void tap_stats(void)
{
	unsigned int n = tap.attached - 1;

	if (!tap.stats || tap.attached < 2)
		return;
	printf("stats: %u frames after the first, %.3f ms CPU per frame, "
	       "%.1f frames/s\n", n,
	       seconds(&tap.cpu_first, &tap.cpu_last) * 1e3 / n,
	       n / seconds(&tap.wall_first, &tap.wall_last));
	fflush(stdout);
}
