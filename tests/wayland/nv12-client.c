/* SPDX-License-Identifier: MIT */
/*
 * nv12-client: shows one NV12 frame of process memory through
 * vms_wl_buffer_create() and prints what refcomp must read.
 *
 *   nv12-client [--unaligned | --expose-whole-pages]
 *
 * The frame is vms_frame_alloc() memory, which a dma-buf can share as it
 * is.  --unaligned puts it 8 bytes into a malloc() block instead, which
 * libvmshare must not hand the compositor with the neighbouring bytes
 * around it (the wl_shm path, with the reason); --expose-whole-pages does
 * the same with VMS_WL_EXPOSE_WHOLE_PAGES, the consent to that (a dma-buf
 * in which the frame lies 8 bytes or more into its first page).
 *
 * No client in the tree draws NV12, so this one draws a fixed pattern of
 * odd height with padded rows (the layout vmshare.h documents: the UV
 * plane follows the Y plane's rows directly, with the same stride),
 * commits it on a role-less wl_surface, which refcomp logs like any
 * other, and prints
 *
 *   path: dmabuf | path: wl_shm fallback (one copy per frame): <reason>
 *   committed 0 checksum <refcomp's checksum of the visible bytes>
 *
 * Exit status 0 once refcomp has had the commit, 1 on any failure (the
 * reason on stderr, e.g. when neither path takes NV12).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wayland-client.h>

#include <vmshare.h>

#define NV12 0x3231564eu
/* Odd height: the chroma plane has (HEIGHT + 1) / 2 rows. */
#define WIDTH 318
#define HEIGHT 241
#define STRIDE 320

static struct wl_compositor *compositor;

static void registry_global(void *data, struct wl_registry *registry,
			    uint32_t name, const char *interface,
			    uint32_t version)
{
	(void)data;
	(void)version;
	if (!strcmp(interface, wl_compositor_interface.name))
		compositor = wl_registry_bind(registry, name,
					      &wl_compositor_interface, 1);
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

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t len)
{
	while (len--)
		h = (h ^ *p++) * 1099511628211ull;
	return h;
}

/* refcomp's NV12 checksum: the visible bytes of each Y row, then UV row. */
static uint64_t checksum(const uint8_t *frame)
{
	const uint8_t *uv = frame + (size_t)STRIDE * HEIGHT;
	uint64_t h = 1469598103934665603ull;

	for (size_t y = 0; y < HEIGHT; y++)
		h = fnv1a(h, frame + y * STRIDE, WIDTH);
	for (size_t y = 0; y < (HEIGHT + 1) / 2; y++)
		h = fnv1a(h, uv + y * STRIDE, (WIDTH + 1) / 2 * 2);
	return h;
}

/*
 * Every byte distinct from its neighbours, padding included: a plane
 * read at the wrong offset or stride changes the checksum.
 */
static void draw(uint8_t *frame, size_t len)
{
	for (size_t i = 0; i < len; i++)
		frame[i] = (uint8_t)(i * 7 + i / STRIDE * 13);
}

int main(int argc, char **argv)
{
	size_t len = (size_t)STRIDE * HEIGHT + (size_t)STRIDE * ((HEIGHT + 1) / 2);
	bool expose = argc > 1 && !strcmp(argv[1], "--expose-whole-pages");
	bool in_malloc = expose || (argc > 1 && !strcmp(argv[1], "--unaligned"));
	struct wl_display *display = wl_display_connect(NULL);
	struct vms_context *ctx = vms_context_create(0);
	struct vms_wl_buffer *buf = NULL;
	struct wl_registry *registry;
	struct wl_surface *surface;
	struct vms_wl *wl = NULL;
	uint8_t *alloc, *frame;
	int status = 1;

	if (argc > 2 || (argc == 2 && !in_malloc)) {
		fprintf(stderr, "usage: %s [--unaligned | --expose-whole-pages]\n",
			argv[0]);
		return 2;
	}
	if (!display || !ctx) {
		fprintf(stderr, "cannot connect to a Wayland compositor, or no context\n");
		return 1;
	}
	registry = wl_display_get_registry(display);
	wl_registry_add_listener(registry, &registry_listener, NULL);
	wl_display_roundtrip(display);
	/* malloc's alignment is 16 at most: 8 bytes in is never a page. */
	alloc = in_malloc ? malloc(len + 8) : vms_frame_alloc(ctx, len);
	frame = in_malloc && alloc ? alloc + 8 : alloc;
	if (!compositor || !frame) {
		fprintf(stderr, "no wl_compositor, or no memory\n");
		goto out;
	}
	draw(frame, len);

	wl = vms_wl_create(ctx, display,
			   expose ? VMS_WL_EXPOSE_WHOLE_PAGES : 0);
	buf = wl ? vms_wl_buffer_create(wl, frame, WIDTH, HEIGHT, STRIDE,
					NV12) : NULL;
	if (!buf) {
		fprintf(stderr, "libvmshare: NV12 %ux%u: %s\n", WIDTH, HEIGHT,
			strerror(errno));
		goto out;
	}
	if (vms_wl_buffer_path(buf) == VMS_WL_PATH_DMABUF)
		printf("path: dmabuf\n");
	else
		printf("path: wl_shm fallback (one copy per frame): %s\n",
		       vms_wl_buffer_fallback_reason(buf));
	if (vms_wl_buffer_update(buf) < 0) {
		fprintf(stderr, "vms_wl_buffer_update failed\n");
		goto out;
	}
	printf("committed 0 checksum %016" PRIx64 "\n", checksum(frame));

	surface = wl_compositor_create_surface(compositor);
	wl_surface_attach(surface, vms_wl_buffer_get(buf), 0, 0);
	wl_surface_damage(surface, 0, 0, WIDTH, HEIGHT);
	wl_surface_commit(surface);
	/* refcomp reads the buffer while it applies the commit. */
	if (wl_display_roundtrip(display) >= 0)
		status = 0;
	else
		fprintf(stderr, "the compositor went away\n");
	wl_surface_destroy(surface);
out:
	vms_wl_buffer_destroy(buf);
	vms_wl_destroy(wl);
	if (in_malloc)
		free(alloc);
	else
		vms_frame_free(ctx, alloc);
	vms_context_destroy(ctx);
	if (compositor)
		wl_compositor_destroy(compositor);
	wl_registry_destroy(registry);
	wl_display_disconnect(display);
	return status;
}
