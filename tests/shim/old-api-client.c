/* SPDX-License-Identifier: MIT */
/*
 * old-api-client: a wl_shm client that makes its requests the way
 * binaries built against libwayland < 1.20 do, through wl_proxy_marshal,
 * wl_proxy_marshal_constructor(_versioned) and a separate
 * wl_proxy_destroy, which libvmshare-shm-shim.so hooks besides
 * wl_proxy_marshal_flags.  It also does what Debian's weston clients do
 * not: it grows its pool (wl_shm_pool.resize) before creating the buffer
 * in the grown part, and destroys the pool before attaching the buffer.
 *
 *   old-api-client [--release-shm] [--pool-size BYTES] [--punch-hole]
 *
 * One 64x64 XRGB8888 frame, attached to a role-less surface and
 * committed; exits 0 once the compositor has released it, 1 otherwise.
 * --release-shm releases its wl_shm (wl_shm.release, version 2, in
 * libwayland 1.22 and later) right after creating the pool, as a client
 * may once it has all the pools it needs: the pool and its buffers live
 * on.  It prints "wl_shm released" then, or exits 77 when the compositor
 * or the libwayland it runs with has no version 2.  --pool-size makes the
 * pool BYTES (a multiple of pages) before it grows by one frame, and
 * leaves it sparse: only the frame is written.  The client then prints
 * how many pages were pinned (/proc/vmstat's nr_foll_pin_acquired less
 * nr_foll_pin_released) from before the pool to after the buffer:
 *
 *   pinned pages while the buffer lives: N
 *
 * --punch-hole frees the frame's pages once the buffer exists
 * (MADV_REMOVE: a hole in the pool's file) and draws another frame there,
 * which lands in new pages: the compositor must show that frame.
 */
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wayland-client.h>

#define WIDTH 64
#define HEIGHT 64
#define STRIDE (WIDTH * 4)
#define FRAME (STRIDE * HEIGHT)

static struct wl_proxy *shm, *compositor;
static uint32_t shm_version = 1;
static bool released, release_shm;

static void draw(uint32_t *pixels, uint32_t seed)
{
	for (uint32_t i = 0; i < WIDTH * HEIGHT; i++)
		pixels[i] = 0xff000000u | (i + seed) * 2654435761u >> 8;
}

static void registry_global(void *data, struct wl_registry *registry,
			    uint32_t name, const char *interface,
			    uint32_t version)
{
	const struct wl_interface *want = NULL;
	struct wl_proxy **slot = NULL;

	uint32_t bind_version = 1;

	(void)data;
	if (!strcmp(interface, wl_shm_interface.name)) {
		want = &wl_shm_interface;
		slot = &shm;
		/* wl_shm_interface is the running libwayland's. */
		if (release_shm && version >= 2 && wl_shm_interface.version >= 2)
			bind_version = 2;
		shm_version = bind_version;
	} else if (!strcmp(interface, wl_compositor_interface.name)) {
		want = &wl_compositor_interface;
		slot = &compositor;
	}
	if (want)
		*slot = wl_proxy_marshal_constructor_versioned(
			(struct wl_proxy *)registry, WL_REGISTRY_BIND, want,
			bind_version, name, want->name, bind_version, NULL);
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

static void buffer_release(void *data, struct wl_buffer *buffer)
{
	(void)data;
	(void)buffer;
	released = true;
}

static const struct wl_buffer_listener buffer_listener = {
	.release = buffer_release,
};

/* wl_shm.release: opcode 1 of version 2, unknown to older headers. */
#define SHM_RELEASE 1

/*
 * Pages pinned and not yet released, system-wide; -1 if unknown.  The
 * counters are kept per CPU and summed lazily: vm.stat_refresh (root)
 * sums them first, or a few pages would not show yet.
 */
static long pins_held(void)
{
	FILE *refresh = fopen("/proc/sys/vm/stat_refresh", "w");
	long acquired = -1, released = -1, v;
	char name[64];
	FILE *f;

	if (refresh) {
		fputs("1", refresh);
		fclose(refresh);
	}
	f = fopen("/proc/vmstat", "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (!strcmp(name, "nr_foll_pin_acquired"))
			acquired = v;
		else if (!strcmp(name, "nr_foll_pin_released"))
			released = v;
	}
	fclose(f);
	return acquired < 0 || released < 0 ? -1 : acquired - released;
}

int main(int argc, char **argv)
{
	struct wl_display *display = wl_display_connect(NULL);
	struct wl_proxy *registry, *pool, *buffer, *surface;
	size_t pool_size = FRAME;
	bool report_pins = false, punch_hole = false;
	long pins_before = 0;
	uint32_t *pixels;
	uint8_t *map;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--release-shm")) {
			release_shm = true;
		} else if (!strcmp(argv[i], "--pool-size") && i + 1 < argc) {
			pool_size = strtoul(argv[++i], NULL, 0);
			report_pins = true;
		} else if (!strcmp(argv[i], "--punch-hole")) {
			punch_hole = true;
		} else {
			fprintf(stderr, "usage: old-api-client [--release-shm] [--pool-size BYTES] [--punch-hole]\n");
			return 2;
		}
	}
	if (!pool_size || pool_size % 4096 || pool_size > (1u << 30)) {
		fprintf(stderr, "old-api-client: --pool-size: whole pages, at most 1 GiB\n");
		return 2;
	}
	if (!display) {
		fprintf(stderr, "old-api-client: no compositor\n");
		return 1;
	}
	registry = wl_proxy_marshal_constructor((struct wl_proxy *)display,
			WL_DISPLAY_GET_REGISTRY, &wl_registry_interface, NULL);
	wl_proxy_add_listener(registry, (void (**)(void))&registry_listener,
			      NULL);
	wl_display_roundtrip(display);
	if (!shm || !compositor) {
		fprintf(stderr, "old-api-client: no wl_shm or wl_compositor\n");
		return 1;
	}
	if (release_shm && shm_version < 2) {
		printf("wl_shm release: not offered (wl_shm version 1 here)\n");
		return 77;
	}

	fd = memfd_create("old-api-client", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)(pool_size + FRAME)) < 0) {
		perror("old-api-client: memfd");
		return 1;
	}
	map = mmap(NULL, pool_size + FRAME, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	if (map == MAP_FAILED) {
		perror("old-api-client: mmap");
		return 1;
	}
	/* Only the frame, the pool's last FRAME bytes; the rest stays a hole. */
	pixels = (uint32_t *)(map + pool_size);
	draw(pixels, WIDTH * HEIGHT);
	if (report_pins)
		pins_before = pins_held();

	/* A pool of pool_size, grown by one frame; the buffer is that frame. */
	pool = wl_proxy_marshal_constructor(shm, WL_SHM_CREATE_POOL,
					    &wl_shm_pool_interface, NULL, fd,
					    (int32_t)pool_size);
	wl_proxy_marshal(pool, WL_SHM_POOL_RESIZE, (int32_t)(pool_size + FRAME));
	if (release_shm) {
		wl_proxy_marshal(shm, SHM_RELEASE);
		wl_proxy_destroy(shm);
		shm = NULL;
		printf("wl_shm released\n");
	}
	buffer = wl_proxy_marshal_constructor(pool, WL_SHM_POOL_CREATE_BUFFER,
					      &wl_buffer_interface, NULL,
					      (int32_t)pool_size, WIDTH, HEIGHT,
					      STRIDE, WL_SHM_FORMAT_XRGB8888);
	wl_proxy_add_listener(buffer, (void (**)(void))&buffer_listener, NULL);
	/* A shim imports the buffer as it is created. */
	if (report_pins)
		printf("pinned pages while the buffer lives: %ld\n",
		       pins_held() - pins_before);
	if (punch_hole) {
		if (madvise(map + pool_size, FRAME, MADV_REMOVE) < 0) {
			perror("old-api-client: MADV_REMOVE");
			return 1;
		}
		draw(pixels, 7 * WIDTH * HEIGHT);
		printf("hole punched under the buffer, another frame drawn there\n");
	}
	wl_proxy_marshal(pool, WL_SHM_POOL_DESTROY);
	wl_proxy_destroy(pool);
	close(fd);

	surface = wl_proxy_marshal_constructor(compositor,
					       WL_COMPOSITOR_CREATE_SURFACE,
					       &wl_surface_interface, NULL);
	wl_proxy_marshal(surface, WL_SURFACE_ATTACH, buffer, 0, 0);
	wl_proxy_marshal(surface, WL_SURFACE_COMMIT);
	for (int i = 0; i < 10 && !released; i++)
		if (wl_display_roundtrip(display) < 0)
			break;
	printf("released: %s\n", released ? "yes" : "no");

	wl_proxy_marshal(buffer, WL_BUFFER_DESTROY);
	wl_proxy_destroy(buffer);
	wl_proxy_marshal(surface, WL_SURFACE_DESTROY);
	wl_proxy_destroy(surface);
	wl_proxy_destroy(compositor);
	if (shm)
		wl_proxy_destroy(shm);
	wl_proxy_destroy(registry);
	wl_display_roundtrip(display);
	wl_display_disconnect(display);
	munmap(map, pool_size + FRAME);
	return released ? 0 : 1;
}
