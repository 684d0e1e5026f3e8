/* SPDX-License-Identifier: MIT */
/*
 * nv12-client: shows one NV12 frame of process memory through
 * vms_wl_buffer_create() and prints what refcomp must read.
 *
 *   nv12-client [--unaligned | --expose-whole-pages | --remap | --held]
 *
 * The frame is vms_frame_alloc() memory, which a dma-buf can share as it
 * is.  --unaligned puts it 8 bytes into a malloc() block instead, which
 * libvmshare must not hand the compositor with the neighbouring bytes
 * around it (the wl_shm path, with the reason); --expose-whole-pages does
 * the same with VMS_WL_EXPOSE_WHOLE_PAGES, the consent to that (a dma-buf
 * in which the frame lies 8 bytes or more into its first page).  --remap
 * then frees the frame, gets new memory at the same address (as free()
 * and malloc() may), draws another frame there and presents it the same
 * way: a second commit, whose pixels must be the new ones.  --held, against
 * refcomp --hold-buffers, checks what a buffer the compositor holds
 * refuses: vms_wl_buffer_update() and vms_wl_buffer_attach() give EBUSY
 * until the compositor releases it (on the dma-buf path too, where the
 * compositor reads the very memory a new frame would be drawn into), and
 * the release handler runs once when it does; it prints
 *
 *   held: update EBUSY, attach EBUSY, released once, update 0
 *
 * No client in the tree draws NV12, so this one draws a fixed pattern of
 * odd height with padded rows (the layout vmshare.h documents: the UV
 * plane follows the Y plane's rows directly, with the same stride),
 * commits it on a role-less wl_surface, which refcomp logs like any
 * other, and prints
 *
 *   path: dmabuf | path: wl_shm fallback (one copy per frame): <reason>
 *   committed N checksum <refcomp's checksum of the visible bytes>
 *
 * Exit status 0 once refcomp has had the commit, 1 on any failure (the
 * reason on stderr, e.g. when neither path takes NV12).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <wayland-client.h>

#include <vmshare.h>

#define NV12 0x3231564eu
/* Odd height: the chroma plane has (HEIGHT + 1) / 2 rows. */
#define WIDTH 318
#define HEIGHT 241
#define STRIDE 320

static struct wl_compositor *compositor;
static unsigned int releases;

static void released(void *data, struct vms_wl_buffer *buf)
{
	(void)data;
	(void)buf;
	releases++;
}

/*
 * @buf was shown and refcomp --hold-buffers holds it: what must be
 * refused until the compositor lets it go, then allowed again.
 */
static int check_held(struct wl_display *display, struct wl_surface *surface,
		      struct vms_wl_buffer *buf)
{
	int update, attach;

	vms_wl_buffer_set_release_handler(buf, released, NULL);
	if (!vms_wl_buffer_is_busy(buf)) {
		fprintf(stderr, "a held buffer is not busy\n");
		return -1;
	}
	update = vms_wl_buffer_update(buf);
	attach = vms_wl_buffer_attach(buf, surface, 0, 0);
	if (update != -EBUSY || attach != -EBUSY) {
		fprintf(stderr, "held buffer: update %d, attach %d, not -EBUSY\n",
			update, attach);
		return -1;
	}
	/* Nothing attached: the next commit takes the buffer off. */
	wl_surface_attach(surface, NULL, 0, 0);
	wl_surface_commit(surface);
	if (wl_display_roundtrip(display) < 0)
		return -1;
	update = vms_wl_buffer_update(buf);
	if (releases != 1 || vms_wl_buffer_is_busy(buf) || update) {
		fprintf(stderr, "after the release: %u handler calls, busy %d, update %d\n",
			releases, vms_wl_buffer_is_busy(buf), update);
		return -1;
	}
	printf("held: update EBUSY, attach EBUSY, released once, update 0\n");
	return 0;
}

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
 * read at the wrong offset or stride changes the checksum.  Each @seed
 * draws another picture.
 */
static void draw(uint8_t *frame, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		frame[i] = (uint8_t)(i * (7 + 2 * seed) + i / STRIDE * 13 + seed);
}

/* Presents @buf on @surface and waits until refcomp has read it. */
static int show(struct wl_display *display, struct wl_surface *surface,
		struct vms_wl_buffer *buf, const uint8_t *frame,
		unsigned int seq)
{
	int ret = vms_wl_buffer_update(buf);

	if (!ret)
		ret = vms_wl_buffer_attach(buf, surface, 0, 0);
	if (ret) {
		fprintf(stderr, "presenting the frame: %s\n", strerror(-ret));
		return -1;
	}
	printf("committed %u checksum %016" PRIx64 "\n", seq, checksum(frame));
	fflush(stdout);
	wl_surface_damage(surface, 0, 0, WIDTH, HEIGHT);
	wl_surface_commit(surface);
	/* refcomp reads the buffer while it applies the commit. */
	if (wl_display_roundtrip(display) < 0) {
		fprintf(stderr, "the compositor went away\n");
		return -1;
	}
	return 0;
}

/*
 * Frees the frame's memory and maps new memory at the same address, as
 * free() followed by malloc() may hand out: the address is all that stays.
 */
static bool replace_memory(uint8_t *frame, size_t len)
{
	return munmap(frame, len) == 0 &&
	       mmap(frame, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		    0) == frame;
}

int main(int argc, char **argv)
{
	size_t len = (size_t)STRIDE * HEIGHT + (size_t)STRIDE * ((HEIGHT + 1) / 2);
	bool expose = argc > 1 && !strcmp(argv[1], "--expose-whole-pages");
	bool in_malloc = expose || (argc > 1 && !strcmp(argv[1], "--unaligned"));
	bool remap = argc > 1 && !strcmp(argv[1], "--remap");
	bool held = argc > 1 && !strcmp(argv[1], "--held");
	size_t map_len = (len + 4095) & ~(size_t)4095;
	struct vms_wl_buffer *again = NULL;
	struct wl_display *display = wl_display_connect(NULL);
	struct vms_context *ctx = vms_context_create(0);
	struct vms_wl_buffer *buf = NULL;
	struct wl_registry *registry;
	struct wl_surface *surface;
	struct vms_wl *wl = NULL;
	uint8_t *alloc, *frame;
	int status = 1;

	if (argc > 2 || (argc == 2 && !in_malloc && !remap && !held)) {
		fprintf(stderr, "usage: %s [--unaligned | --expose-whole-pages | "
			"--remap | --held]\n", argv[0]);
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
	if (remap) {
		/* Memory of its own, so that it can be freed and mapped again. */
		alloc = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (alloc == MAP_FAILED)
			alloc = NULL;
	} else {
		alloc = in_malloc ? malloc(len + 8) : vms_frame_alloc(ctx, len);
	}
	frame = in_malloc && alloc ? alloc + 8 : alloc;
	if (!compositor || !frame) {
		fprintf(stderr, "no wl_compositor, or no memory\n");
		goto out;
	}
	draw(frame, len, 0);

	/*
	 * --remap's mapping ends in the frame's last page: the rest of that
	 * page is the client's own, nothing else of the process.
	 */
	wl = vms_wl_create(ctx, display,
			   expose || remap ? VMS_WL_EXPOSE_WHOLE_PAGES : 0);
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
	surface = wl_compositor_create_surface(compositor);
	status = show(display, surface, buf, frame, 0) ? 1 : 0;
	if (!status && held)
		status = check_held(display, surface, buf) ? 1 : 0;
	if (!status && remap) {
		/* The application still holds buf, as a buffer cache would. */
		if (!replace_memory(frame, map_len)) {
			fprintf(stderr, "cannot map memory at %p again: %s\n",
				(void *)frame, strerror(errno));
			status = 1;
		} else {
			draw(frame, len, 1);
			again = vms_wl_buffer_create(wl, frame, WIDTH, HEIGHT,
						     STRIDE, NV12);
			if (!again) {
				fprintf(stderr, "libvmshare: NV12 again: %s\n",
					strerror(errno));
				status = 1;
			} else {
				printf("the same wl_buffer again: %s\n",
				       again == buf ? "yes" : "no");
				status = show(display, surface, again, frame,
					      1) ? 1 : 0;
			}
		}
	}
	wl_surface_destroy(surface);
out:
	vms_wl_buffer_unref(again);
	vms_wl_buffer_unref(buf);
	vms_wl_unref(wl);
	if (remap && alloc)
		munmap(alloc, map_len);
	else if (in_malloc)
		free(alloc);
	else
		vms_frame_free(ctx, alloc);
	vms_context_unref(ctx);
	if (compositor)
		wl_compositor_destroy(compositor);
	wl_registry_destroy(registry);
	wl_display_disconnect(display);
	return status;
}
