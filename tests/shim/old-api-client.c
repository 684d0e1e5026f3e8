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
 *   old-api-client [--release-shm]
 *
 * One 64x64 XRGB8888 frame, attached to a role-less surface and
 * committed; exits 0 once the compositor has released it, 1 otherwise.
 * --release-shm releases its wl_shm (wl_shm.release, version 2, in
 * libwayland 1.22 and later) right after creating the pool, as a client
 * may once it has all the pools it needs: the pool and its buffers live
 * on.  It prints "wl_shm released" then, or exits 77 when the compositor
 * or the libwayland it runs with has no version 2.
 */
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

int main(int argc, char **argv)
{
	struct wl_display *display = wl_display_connect(NULL);
	struct wl_proxy *registry, *pool, *buffer, *surface;
	uint32_t *pixels;
	int fd;

	release_shm = argc == 2 && !strcmp(argv[1], "--release-shm");
	if (argc > 2 || (argc == 2 && !release_shm)) {
		fprintf(stderr, "usage: old-api-client [--release-shm]\n");
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
	if (fd < 0 || ftruncate(fd, 2 * FRAME) < 0) {
		perror("old-api-client: memfd");
		return 1;
	}
	pixels = mmap(NULL, 2 * FRAME, PROT_READ | PROT_WRITE, MAP_SHARED,
		      fd, 0);
	if (pixels == MAP_FAILED) {
		perror("old-api-client: mmap");
		return 1;
	}
	for (uint32_t i = 0; i < 2 * WIDTH * HEIGHT; i++)
		pixels[i] = 0xff000000u | i * 2654435761u >> 8;

	/* A pool of one frame, grown to two; the buffer is the second. */
	pool = wl_proxy_marshal_constructor(shm, WL_SHM_CREATE_POOL,
					    &wl_shm_pool_interface, NULL, fd,
					    FRAME);
	wl_proxy_marshal(pool, WL_SHM_POOL_RESIZE, 2 * FRAME);
	if (release_shm) {
		wl_proxy_marshal(shm, SHM_RELEASE);
		wl_proxy_destroy(shm);
		shm = NULL;
		printf("wl_shm released\n");
	}
	buffer = wl_proxy_marshal_constructor(pool, WL_SHM_POOL_CREATE_BUFFER,
					      &wl_buffer_interface, NULL,
					      FRAME, WIDTH, HEIGHT, STRIDE,
					      WL_SHM_FORMAT_XRGB8888);
	wl_proxy_add_listener(buffer, (void (**)(void))&buffer_listener, NULL);
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
	munmap(pixels, 2 * FRAME);
	return released ? 0 : 1;
}
