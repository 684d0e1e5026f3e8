/* SPDX-License-Identifier: MIT */
/*
 * libvmshare-shm-shim.so: LD_PRELOAD it into an unmodified wl_shm client
 * and the client's wl_shm buffers reach the compositor as dma-bufs of the
 * client's own pool pages, through vmemexp and zwp_linux_dmabuf_v1.
 *
 * The scanner's request wrappers (wl_shm_create_pool...) are static
 * inline, so the shim interposes libwayland-client's marshalling entry
 * points instead: wl_proxy_marshal_flags (libwayland >= 1.20) and the
 * older wl_proxy_marshal* family.  Every request funnels into marshal();
 * only wl_shm.create_pool and the requests of the pools it made are
 * intercepted, everything else goes to the real libwayland untouched.
 *
 * A pool the shim takes over never reaches the compositor: the client
 * gets a proxy wrapper of its wl_shm as the "pool" (a wrapper has no id of
 * its own, so the object ids the client allocates stay in step with the
 * compositor's), and each create_buffer becomes a
 * zwp_linux_buffer_params_v1 import of a dma-buf of that buffer's bytes
 * of the pool, which the shim maps from the pool's fd and exports through
 * vmemexp: only buffers are pinned, never a whole pool.  The linux-dmabuf
 * global lives on a private event queue; the `created` wl_buffer moves to
 * the queue the client's buffer would have had, where its release events
 * reach the client's listener.
 *
 * Pass-through: when the compositor offers no linux-dmabuf or the module
 * is missing, the pool is forwarded as it is; when a buffer's format is
 * not offered, vmemexp refuses its memory or its import fails, the shim
 * creates the real wl_shm pool after all (from its own dup of the fd, on
 * its own wl_shm) and forwards that buffer to it.  VMSHARE_SHIM_DEBUG=1
 * logs every decision and a summary at exit.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <wayland-client.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "vmshare.h"

#define SHIM_EXPORT __attribute__((visibility("default")))
#define DRM_FORMAT_MOD_LINEAR 0ull
#define DRM_FORMAT_MOD_INVALID 0x00ffffffffffffffull
#define FOURCC_ARGB8888 0x34325241u
#define FOURCC_XRGB8888 0x34325258u
#define MAX_ARGS 20		/* WL_CLOSURE_MAX_ARGUMENTS */
#define MAX_FORMATS 128
#define MAX_REASONS 16

/* wl_shm, wl_shm_pool and wl_buffer opcodes (wayland.xml). */
enum {
	SHM_CREATE_POOL = 0,
	POOL_CREATE_BUFFER = 0,
	POOL_DESTROY = 1,
	POOL_RESIZE = 2,
};

/*
 * The head of libwayland-client's struct wl_proxy, unchanged in every 1.x
 * release (wl_proxy_get_class() reads the same first field).  The shim
 * needs a proxy's interface to read a variadic request's arguments, and
 * its display and queue, for which libwayland < 1.23 has no getters.
 */
struct proxy_head {
	const struct wl_interface *interface;
	const void *implementation;
	uint32_t id;
	struct wl_display *display;
	struct wl_event_queue *queue;
};

typedef struct wl_proxy *(*marshal_array_flags_fn)(struct wl_proxy *,
	uint32_t, const struct wl_interface *, uint32_t, uint32_t,
	union wl_argument *);
typedef struct wl_proxy *(*marshal_array_constructor_versioned_fn)(
	struct wl_proxy *, uint32_t, union wl_argument *,
	const struct wl_interface *, uint32_t);

static struct {
	marshal_array_flags_fn marshal_array_flags;	/* >= 1.20 only */
	marshal_array_constructor_versioned_fn marshal_array_constructor_versioned;
	void (*proxy_destroy)(struct wl_proxy *);
	struct wl_display *(*connect)(const char *);
	struct wl_display *(*connect_to_fd)(int);
	void (*disconnect)(struct wl_display *);
	struct wl_display *(*proxy_get_display)(struct wl_proxy *); /* 1.23 */
	struct wl_event_queue *(*proxy_get_queue)(const struct wl_proxy *);
} real;

/* What one compositor connection allows. */
struct shim_display {
	struct wl_display *display;
	struct wl_list link;		/* shim.displays */
	bool probed;
	const char *reason;		/* why no pool goes dma-buf, NULL if they can */
	struct wl_event_queue *queue;
	struct wl_display *wrapper;
	struct wl_registry *registry;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	/*
	 * The shim's own wl_shm, for the real pools of buffers that pass
	 * through: the client's may be gone by then (wl_shm.release).
	 */
	struct wl_proxy *shm;
	struct {
		uint32_t fourcc;
		bool linear, implicit, refused;
	} formats[MAX_FORMATS];
	size_t n_formats;
};

/* A pool the client created, taken over or passed through. */
struct shim_pool {
	struct wl_proxy *proxy;		/* what the client holds */
	struct shim_display *sd;
	struct wl_list link;		/* shim.pools */
	bool stand_in;			/* proxy is a wrapper of the client's wl_shm */
	bool destroyed;			/* destroy sent, wl_proxy_destroy() pending */
	const char *reason;		/* why it passes through, NULL if it does not */
	int fd;				/* stand-ins: a dup of the pool's fd */
	int32_t size;
	struct wl_proxy *real_pool;	/* created on the first pass-through */
};

static struct {
	pthread_mutex_t lock;
	pthread_once_t once;
	bool debug;
	struct vms_context *ctx;
	struct wl_list displays, pools;
	unsigned dmabuf_buffers, passed_buffers;
	struct {
		const char *reason;
		unsigned count;
	} reasons[MAX_REASONS];
} shim = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.once = PTHREAD_ONCE_INIT,
};

/*
 * Non-zero while the shim itself talks to libwayland: its own requests,
 * and libwayland's internal calls through its PLT (wl_display_roundtrip
 * sends wl_display.sync through wl_proxy_marshal_flags), go straight to
 * the real functions, without taking the lock again.
 */
static __thread int shim_depth;

static void shim_log(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void shim_log(const char *fmt, ...)
{
	va_list ap;

	if (!shim.debug)
		return;
	va_start(ap, fmt);
	fputs("vmshare-shm-shim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *must_resolve(const char *name)
{
	void *sym = dlsym(RTLD_NEXT, name);

	if (!sym) {
		fprintf(stderr, "vmshare-shm-shim: %s not found in libwayland-client: %s\n",
			name, dlerror());
		abort();
	}
	return sym;
}

static void resolve(void)
{
	const char *debug = getenv("VMSHARE_SHIM_DEBUG");

	shim.debug = debug && *debug && strcmp(debug, "0");
	real.marshal_array_flags = (marshal_array_flags_fn)
		dlsym(RTLD_NEXT, "wl_proxy_marshal_array_flags");
	real.marshal_array_constructor_versioned =
		(marshal_array_constructor_versioned_fn)must_resolve(
			"wl_proxy_marshal_array_constructor_versioned");
	real.proxy_destroy = (void (*)(struct wl_proxy *))
		must_resolve("wl_proxy_destroy");
	real.connect = (struct wl_display *(*)(const char *))
		must_resolve("wl_display_connect");
	real.connect_to_fd = (struct wl_display *(*)(int))
		must_resolve("wl_display_connect_to_fd");
	real.disconnect = (void (*)(struct wl_display *))
		must_resolve("wl_display_disconnect");
	real.proxy_get_display = (struct wl_display *(*)(struct wl_proxy *))
		dlsym(RTLD_NEXT, "wl_proxy_get_display");
	real.proxy_get_queue = (struct wl_event_queue *(*)(const struct wl_proxy *))
		dlsym(RTLD_NEXT, "wl_proxy_get_queue");
	wl_list_init(&shim.displays);
	wl_list_init(&shim.pools);
}

static void init(void)
{
	pthread_once(&shim.once, resolve);
}

static void count_passed(const char *reason)
{
	shim.passed_buffers++;
	for (int i = 0; i < MAX_REASONS; i++) {
		if (!shim.reasons[i].reason)
			shim.reasons[i].reason = reason;
		if (shim.reasons[i].reason == reason) {
			shim.reasons[i].count++;
			return;
		}
	}
}

/* ---- forwarding ------------------------------------------------------ */

static struct wl_proxy *forward(struct wl_proxy *proxy, uint32_t opcode,
				const struct wl_interface *interface,
				uint32_t version, uint32_t flags,
				union wl_argument *args)
{
	struct wl_proxy *new_proxy;

	if (real.marshal_array_flags)
		return real.marshal_array_flags(proxy, opcode, interface,
						version, flags, args);
	/* libwayland < 1.20: what wl_proxy_marshal_array_flags() does. */
	new_proxy = real.marshal_array_constructor_versioned(proxy, opcode,
						args, interface, version);
	if (flags & WL_MARSHAL_FLAG_DESTROY)
		real.proxy_destroy(proxy);
	return new_proxy;
}

static bool is_class(struct wl_proxy *proxy, const char *name)
{
	return !strcmp(wl_proxy_get_class(proxy), name);
}

static struct shim_pool *pool_find(struct wl_proxy *proxy);

/*
 * The interface whose request the client makes: a stand-in pool is a
 * wl_shm wrapper to libwayland but a wl_shm_pool to the client.
 */
static const struct wl_interface *request_interface(struct wl_proxy *proxy)
{
	const struct wl_interface *interface =
		((const struct proxy_head *)proxy)->interface;

	if (!shim_depth && is_class(proxy, "wl_shm")) {
		pthread_mutex_lock(&shim.lock);
		if (pool_find(proxy))
			interface = &wl_shm_pool_interface;
		pthread_mutex_unlock(&shim.lock);
	}
	return interface;
}

/*
 * The arguments of a variadic request, read the way libwayland's
 * wl_argument_from_va_list() does: one per type letter of the signature
 * (new_id included, as a placeholder), skipping versions and '?'.
 */
static void args_from_va(struct wl_proxy *proxy, uint32_t opcode,
			 union wl_argument *args, va_list ap)
{
	const char *sig = request_interface(proxy)->methods[opcode].signature;
	int n = 0;

	for (; *sig && n < MAX_ARGS; sig++) {
		switch (*sig) {
		case 'i': args[n++].i = va_arg(ap, int32_t); break;
		case 'u': args[n++].u = va_arg(ap, uint32_t); break;
		case 'f': args[n++].f = va_arg(ap, wl_fixed_t); break;
		case 'h': args[n++].h = va_arg(ap, int32_t); break;
		case 's': args[n++].s = va_arg(ap, const char *); break;
		case 'o': args[n++].o = va_arg(ap, struct wl_object *); break;
		case 'n': args[n++].o = va_arg(ap, struct wl_object *); break;
		case 'a': args[n++].a = va_arg(ap, struct wl_array *); break;
		default: break;	/* a since-version digit or '?' */
		}
	}
}

/* ---- the compositor: linux-dmabuf on a private queue ------------------ */

static struct shim_display *display_find(struct wl_display *display)
{
	struct shim_display *sd;

	wl_list_for_each(sd, &shim.displays, link)
		if (sd->display == display)
			return sd;
	return NULL;
}

static struct shim_display *display_of(struct wl_proxy *proxy)
{
	if (real.proxy_get_display)
		return display_find(real.proxy_get_display(proxy));
	/* Only a known display proves the layout assumption right. */
	return display_find(((const struct proxy_head *)proxy)->display);
}

static struct wl_event_queue *queue_of(struct wl_proxy *proxy)
{
	if (real.proxy_get_queue)
		return real.proxy_get_queue(proxy);
	return ((const struct proxy_head *)proxy)->queue;
}

static void dmabuf_add(struct shim_display *sd, uint32_t fourcc,
		       uint64_t modifier)
{
	size_t i;

	for (i = 0; i < sd->n_formats; i++)
		if (sd->formats[i].fourcc == fourcc)
			break;
	if (i == sd->n_formats) {
		if (i == MAX_FORMATS)
			return;
		sd->formats[sd->n_formats++].fourcc = fourcc;
	}
	if (modifier == DRM_FORMAT_MOD_LINEAR)
		sd->formats[i].linear = true;
	else if (modifier == DRM_FORMAT_MOD_INVALID)
		sd->formats[i].implicit = true;
}

static void dmabuf_format(void *data, struct zwp_linux_dmabuf_v1 *dmabuf,
			  uint32_t fourcc)
{
	/* Version 3 repeats every format in modifier events. */
	if (wl_proxy_get_version((struct wl_proxy *)dmabuf) < 3)
		dmabuf_add(data, fourcc, DRM_FORMAT_MOD_INVALID);
}

static void dmabuf_modifier(void *data, struct zwp_linux_dmabuf_v1 *dmabuf,
			    uint32_t fourcc, uint32_t hi, uint32_t lo)
{
	(void)dmabuf;
	dmabuf_add(data, fourcc, (uint64_t)hi << 32 | lo);
}

static const struct zwp_linux_dmabuf_v1_listener dmabuf_listener = {
	.format = dmabuf_format,
	.modifier = dmabuf_modifier,
};

static void registry_global(void *data, struct wl_registry *registry,
			    uint32_t name, const char *interface,
			    uint32_t version)
{
	struct shim_display *sd = data;

	if (!strcmp(interface, wl_shm_interface.name) && !sd->shm) {
		sd->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
		return;
	}
	if (strcmp(interface, zwp_linux_dmabuf_v1_interface.name) || sd->dmabuf)
		return;
	/* Version 4 replaces modifier events by feedback objects. */
	sd->dmabuf = wl_registry_bind(registry, name,
				      &zwp_linux_dmabuf_v1_interface,
				      version < 3 ? version : 3);
	zwp_linux_dmabuf_v1_add_listener(sd->dmabuf, &dmabuf_listener, sd);
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

static void display_teardown(struct shim_display *sd)
{
	if (sd->dmabuf)
		zwp_linux_dmabuf_v1_destroy(sd->dmabuf);
	if (sd->shm)
		wl_proxy_destroy(sd->shm);
	if (sd->registry)
		wl_registry_destroy(sd->registry);
	if (sd->wrapper)
		wl_proxy_wrapper_destroy(sd->wrapper);
	if (sd->queue)
		wl_event_queue_destroy(sd->queue);
	sd->dmabuf = NULL;
	sd->shm = NULL;
	sd->registry = NULL;
	sd->wrapper = NULL;
	sd->queue = NULL;
}

/*
 * Learns, once per connection, whether pools can go dma-buf at all: the
 * compositor's side first, so that against a compositor without
 * linux-dmabuf the log names that rather than the module.
 */
static const char *display_check(struct shim_display *sd)
{
	bool usable = false;

	sd->queue = wl_display_create_queue(sd->display);
	sd->wrapper = sd->queue ? wl_proxy_create_wrapper(sd->display) : NULL;
	if (!sd->wrapper)
		return "out of memory";
	wl_proxy_set_queue((struct wl_proxy *)sd->wrapper, sd->queue);
	sd->registry = wl_display_get_registry(sd->wrapper);
	wl_registry_add_listener(sd->registry, &registry_listener, sd);
	/* The globals, then the formats of the dmabuf bound in between. */
	if (wl_display_roundtrip_queue(sd->display, sd->queue) < 0 ||
	    (sd->dmabuf &&
	     wl_display_roundtrip_queue(sd->display, sd->queue) < 0))
		return "the connection failed";
	if (!sd->dmabuf)
		return "the compositor offers no zwp_linux_dmabuf_v1";
	for (size_t i = 0; i < sd->n_formats; i++)
		usable |= sd->formats[i].linear || sd->formats[i].implicit;
	if (!usable)
		return "the compositor takes no linear dma-buf";
	if (!shim.ctx)
		shim.ctx = vms_context_create(0);
	if (!shim.ctx || !vms_context_has_module(shim.ctx)) {
		shim_log("vmemexp: %s", strerror(shim.ctx ?
			 -vms_context_module_status(shim.ctx) : errno));
		return "vmemexp is not available";
	}
	shim_log("wl_display %p: zwp_linux_dmabuf_v1 v%u, %zu formats, vmemexp loaded",
		 (void *)sd->display,
		 wl_proxy_get_version((struct wl_proxy *)sd->dmabuf),
		 sd->n_formats);
	return NULL;
}

static void display_probe(struct shim_display *sd)
{
	if (sd->probed)
		return;
	sd->probed = true;
	sd->reason = display_check(sd);
	/* Nothing would dispatch the private queue again. */
	if (sd->reason)
		display_teardown(sd);
}

/* ---- pools ----------------------------------------------------------- */

static struct shim_pool *pool_find(struct wl_proxy *proxy)
{
	struct shim_pool *pool;

	wl_list_for_each(pool, &shim.pools, link)
		if (pool->proxy == proxy)
			return pool;
	return NULL;
}

/*
 * A dma-buf of one buffer's bytes, [@offset, @offset + @len) of the pool:
 * the pool's pages there, mapped as the client maps them (MAP_SHARED: the
 * same pages) and exported.  Only the buffer is pinned, never the whole
 * pool: a sparse pool (a terminal's scrollback) stays sparse, and growing
 * a pool pins nothing more.  The mapping can go at once: the dma-buf pins
 * the pages for as long as anyone holds it, and the compositor holds its
 * own fd of it once the import is made.  *@data_offset receives where the
 * buffer starts in the dma-buf.
 */
static struct vms_buffer *buffer_export(struct shim_pool *pool, int32_t offset,
					size_t len, uint64_t *data_offset)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t first = (size_t)offset / page * page;
	size_t map_len = (size_t)offset - first + len;
	struct vms_buffer *export;
	uint8_t *map;
	int err;

	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, pool->fd,
		   (off_t)first);
	if (map == MAP_FAILED)
		return NULL;
	/*
	 * A buffer need not start or end on a page; the rest of its first
	 * and last page is more of the client's pool (or zeroes past the
	 * file's end), which the compositor could map from the pool's fd
	 * without the shim: the whole pages give away nothing of anyone
	 * else's.
	 */
	export = vms_buffer_export(shim.ctx, map + ((size_t)offset - first),
				   len, VMS_EXPORT_ZERO_COPY |
				   VMS_EXPORT_EXPOSE_WHOLE_PAGES);
	err = errno;
	munmap(map, map_len);
	if (export)
		*data_offset = vms_buffer_offset(export);
	errno = err;
	return export;
}

static void pool_free(struct shim_pool *pool)
{
	wl_list_remove(&pool->link);
	if (pool->fd >= 0)
		close(pool->fd);
	free(pool);
}

static struct wl_proxy *shm_create_pool(struct wl_proxy *shm, uint32_t opcode,
					const struct wl_interface *interface,
					uint32_t version, uint32_t flags,
					union wl_argument *args)
{
	struct shim_display *sd = display_of(shm);
	struct shim_pool *pool = calloc(1, sizeof(*pool));
	struct wl_proxy *proxy;

	if (!pool)
		return forward(shm, opcode, interface, version, flags, args);
	pool->fd = -1;
	pool->size = args[2].i;
	pool->sd = sd;
	if (sd)
		display_probe(sd);
	if (!sd)
		pool->reason = "an unknown wl_display";
	else if (sd->reason)
		pool->reason = sd->reason;
	else if (pool->size <= 0)
		pool->reason = "an invalid pool size";
	else if ((pool->fd = fcntl(args[1].h, F_DUPFD_CLOEXEC, 3)) < 0)
		pool->reason = "the pool fd cannot be duplicated";

	if (!pool->reason)
		proxy = wl_proxy_create_wrapper(shm);
	else
		proxy = NULL;
	if (!proxy) {
		if (!pool->reason)
			pool->reason = "out of memory";
		shim_log("pool of %d bytes passes through: %s", pool->size,
			 pool->reason);
		if (pool->fd >= 0)
			close(pool->fd);
		pool->fd = -1;
		proxy = forward(shm, opcode, interface, version, flags, args);
		pool->real_pool = proxy;
	} else {
		pool->stand_in = true;
		shim_log("pool of %d bytes: taken over, not sent to the compositor; its buffers are exported one by one",
			 pool->size);
	}
	pool->proxy = proxy;
	if (proxy)
		wl_list_insert(&shim.pools, &pool->link);
	else
		free(pool);
	return proxy;
}

/*
 * The compositor's own pool, for buffers the shim cannot take over.  It
 * is made on the shim's wl_shm, not the client's: a client may have
 * released its wl_shm (version 2) once its pools existed, and a request
 * on a released object is a fatal protocol error.  The pool moves to the
 * client pool's queue, so that its buffers' release events reach the
 * client's listeners.
 */
static struct wl_proxy *pool_real(struct shim_pool *pool)
{
	struct wl_proxy *shm = pool->sd ? pool->sd->shm : NULL;
	union wl_argument args[3];

	if (pool->real_pool || !shm)
		return pool->real_pool;
	args[0].o = NULL;
	args[1].h = pool->fd;
	args[2].i = pool->size;
	pool->real_pool = forward(shm, SHM_CREATE_POOL, &wl_shm_pool_interface,
				  wl_proxy_get_version(shm), 0, args);
	if (pool->real_pool)
		wl_proxy_set_queue(pool->real_pool, queue_of(pool->proxy));
	return pool->real_pool;
}

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

static void params_failed(void *data,
			  struct zwp_linux_buffer_params_v1 *params)
{
	struct import *import = data;

	(void)params;
	import->answered = true;
}

static const struct zwp_linux_buffer_params_v1_listener params_listener = {
	.created = params_created,
	.failed = params_failed,
};

static uint32_t shm_to_fourcc(uint32_t format)
{
	/* The only two wl_shm codes that are not their DRM fourcc. */
	if (format == WL_SHM_FORMAT_ARGB8888)
		return FOURCC_ARGB8888;
	if (format == WL_SHM_FORMAT_XRGB8888)
		return FOURCC_XRGB8888;
	return format;
}

static void fourcc_name(uint32_t fourcc, char name[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(fourcc >> (8 * i));

		name[i] = c >= ' ' && c <= '~' ? c : '?';
	}
	name[4] = '\0';
}

/*
 * One import of a dma-buf of the buffer's bytes, answered on the private
 * queue; then the wl_buffer goes to the queue the client's pool (and so
 * its buffer) is on.  NULL and *reason set when the buffer must pass
 * through.
 */
static struct wl_buffer *pool_import(struct shim_pool *pool, int32_t offset,
				     int32_t width, int32_t height,
				     int32_t stride, uint32_t format,
				     const char **reason)
{
	struct shim_display *sd = pool->sd;
	uint32_t fourcc = shm_to_fourcc(format);
	struct zwp_linux_buffer_params_v1 *params;
	struct import import = { 0 };
	struct vms_buffer *export;
	uint64_t modifier, data_offset = 0;
	size_t i;
	char name[5];

	fourcc_name(fourcc, name);
	for (i = 0; i < sd->n_formats; i++)
		if (sd->formats[i].fourcc == fourcc)
			break;
	if (i == sd->n_formats ||
	    (!sd->formats[i].linear && !sd->formats[i].implicit)) {
		*reason = "the format is not offered as a linear dma-buf";
		return NULL;
	}
	if (sd->formats[i].refused) {
		*reason = "the compositor refused the import";
		return NULL;
	}
	/*
	 * The pool is linear.  Weston 10 on a software renderer lists only
	 * the implicit modifier and takes linear buffers that way.
	 */
	modifier = sd->formats[i].linear ? DRM_FORMAT_MOD_LINEAR :
					   DRM_FORMAT_MOD_INVALID;
	export = buffer_export(pool, offset, (size_t)stride * (size_t)height,
			       &data_offset);
	if (!export) {
		shim_log("buffer %dx%d at %d: vmemexp: %s", width, height,
			 offset, strerror(errno));
		*reason = "vmemexp refused the buffer's memory";
		return NULL;
	}
	params = zwp_linux_dmabuf_v1_create_params(sd->dmabuf);
	zwp_linux_buffer_params_v1_add_listener(params, &params_listener,
						&import);
	zwp_linux_buffer_params_v1_add(params, vms_buffer_fd(export), 0,
		(uint32_t)data_offset, (uint32_t)stride,
		(uint32_t)(modifier >> 32), (uint32_t)modifier);
	zwp_linux_buffer_params_v1_create(params, width, height, fourcc, 0);
	while (!import.answered)
		if (wl_display_dispatch_queue(sd->display, sd->queue) < 0)
			break;
	zwp_linux_buffer_params_v1_destroy(params);
	/* The compositor has its own fd of the dma-buf now, or none at all. */
	vms_buffer_unref(export);
	if (!import.buffer) {
		/* Later buffers of this format would fail the same way. */
		if (import.answered)
			sd->formats[i].refused = true;
		*reason = import.answered ? "the compositor refused the import" :
					    "the connection failed";
		return NULL;
	}
	/*
	 * Its version is the params' (3); wl_buffer has had one version
	 * only, so the client cannot tell.
	 */
	wl_proxy_set_queue((struct wl_proxy *)import.buffer,
			   queue_of(pool->proxy));
	shim_log("buffer %dx%d %s stride %d at %d: dma-buf, modifier %s, created",
		 width, height, name, stride, offset,
		 modifier == DRM_FORMAT_MOD_LINEAR ? "linear" : "implicit");
	return import.buffer;
}

static bool buffer_fits(const struct shim_pool *pool, int32_t offset,
			int32_t width, int32_t height, int32_t stride)
{
	return offset >= 0 && width > 0 && height > 0 && stride >= width &&
	       (int64_t)offset + (int64_t)stride * height <= pool->size;
}

static struct wl_proxy *pool_create_buffer(struct shim_pool *pool,
					   uint32_t opcode,
					   const struct wl_interface *interface,
					   uint32_t version, uint32_t flags,
					   union wl_argument *args)
{
	int32_t offset = args[1].i, width = args[2].i, height = args[3].i;
	int32_t stride = args[4].i;
	const char *reason = pool->reason;
	struct wl_proxy *real_pool;
	struct wl_buffer *buffer = NULL;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!reason && !buffer_fits(pool, offset, width, height, stride))
		reason = "invalid buffer (the compositor will say so)";
	else if (!reason)
		buffer = pool_import(pool, offset, width, height, stride,
				     args[5].u, &reason);
	if (buffer) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		shim.dmabuf_buffers++;
		shim_log("buffer created in %ld us",
			 (long)((t1.tv_sec - t0.tv_sec) * 1000000 +
				(t1.tv_nsec - t0.tv_nsec) / 1000));
		return (struct wl_proxy *)buffer;
	}
	count_passed(reason);
	shim_log("buffer %dx%d stride %d at %d, wl_shm format %u passes through: %s",
		 width, height, stride, offset, args[5].u, reason);
	real_pool = pool->stand_in ? pool_real(pool) : pool->proxy;
	if (!real_pool)
		return NULL;
	return forward(real_pool, opcode, interface, version, flags, args);
}

static void pool_resize(struct shim_pool *pool, union wl_argument *args)
{
	/* Pools only grow; a real pool has had the compositor's error. */
	if (args[0].i <= pool->size)
		return;
	/* Nothing is pinned for the pool itself: its buffers pin their bytes. */
	pool->size = args[0].i;
	shim_log("pool resized to %d bytes", pool->size);
}

/* ---- the funnel ------------------------------------------------------ */

static struct wl_proxy *pool_request(struct shim_pool *pool, uint32_t opcode,
				     const struct wl_interface *interface,
				     uint32_t version, uint32_t flags,
				     union wl_argument *args)
{
	struct wl_proxy *proxy = pool->proxy, *ret = NULL;
	union wl_argument none[1] = { { .i = 0 } };

	if (opcode == POOL_CREATE_BUFFER)
		return pool_create_buffer(pool, opcode, interface, version,
					  flags, args);
	if (!pool->stand_in) {
		ret = forward(proxy, opcode, interface, version, flags, args);
		if (opcode == POOL_DESTROY)
			pool_free(pool);
		return ret;
	}
	if (opcode == POOL_RESIZE) {
		if (pool->real_pool)
			forward(pool->real_pool, opcode, NULL,
				wl_proxy_get_version(pool->real_pool), 0, args);
		pool_resize(pool, args);
		return NULL;
	}
	if (opcode != POOL_DESTROY) {
		/* wl_shm_pool has three requests in every version so far. */
		shim_log("unknown wl_shm_pool request %u ignored", opcode);
		return NULL;
	}
	/*
	 * Buffers made from the pool hold their own dma-bufs, so the pages
	 * stay pinned until the compositor lets go of the last one.
	 */
	if (pool->real_pool)
		forward(pool->real_pool, POOL_DESTROY, NULL,
			wl_proxy_get_version(pool->real_pool),
			WL_MARSHAL_FLAG_DESTROY, none);
	pool->real_pool = NULL;
	close(pool->fd);
	pool->fd = -1;
	if (flags & WL_MARSHAL_FLAG_DESTROY) {
		wl_proxy_wrapper_destroy(proxy);
		pool_free(pool);
	} else {
		/* Old-style destructors call wl_proxy_destroy() next. */
		pool->destroyed = true;
	}
	return NULL;
}

static struct wl_proxy *marshal(struct wl_proxy *proxy, uint32_t opcode,
				const struct wl_interface *interface,
				uint32_t version, uint32_t flags,
				union wl_argument *args)
{
	struct shim_pool *pool;
	struct wl_proxy *ret;
	bool shm, shm_pool;

	if (shim_depth)
		return forward(proxy, opcode, interface, version, flags, args);
	shm = is_class(proxy, "wl_shm");
	shm_pool = is_class(proxy, "wl_shm_pool");
	if (!shm && !shm_pool)
		return forward(proxy, opcode, interface, version, flags, args);

	pthread_mutex_lock(&shim.lock);
	shim_depth++;
	pool = pool_find(proxy);
	if (pool)
		ret = pool_request(pool, opcode, interface, version, flags,
				   args);
	else if (shm && opcode == SHM_CREATE_POOL)
		ret = shm_create_pool(proxy, opcode, interface, version, flags,
				      args);
	else
		ret = forward(proxy, opcode, interface, version, flags, args);
	shim_depth--;
	pthread_mutex_unlock(&shim.lock);
	return ret;
}

/* ---- the hooks ------------------------------------------------------- */

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_array_flags(struct wl_proxy *proxy, uint32_t opcode,
			     const struct wl_interface *interface,
			     uint32_t version, uint32_t flags,
			     union wl_argument *args)
{
	init();
	return marshal(proxy, opcode, interface, version, flags, args);
}

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_flags(struct wl_proxy *proxy, uint32_t opcode,
		       const struct wl_interface *interface, uint32_t version,
		       uint32_t flags, ...)
{
	union wl_argument args[MAX_ARGS];
	va_list ap;

	init();
	va_start(ap, flags);
	args_from_va(proxy, opcode, args, ap);
	va_end(ap);
	return marshal(proxy, opcode, interface, version, flags, args);
}

SHIM_EXPORT void wl_proxy_marshal_array(struct wl_proxy *proxy,
					uint32_t opcode,
					union wl_argument *args)
{
	init();
	marshal(proxy, opcode, NULL, wl_proxy_get_version(proxy), 0, args);
}

SHIM_EXPORT void wl_proxy_marshal(struct wl_proxy *proxy, uint32_t opcode, ...)
{
	union wl_argument args[MAX_ARGS];
	va_list ap;

	init();
	va_start(ap, opcode);
	args_from_va(proxy, opcode, args, ap);
	va_end(ap);
	marshal(proxy, opcode, NULL, wl_proxy_get_version(proxy), 0, args);
}

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_array_constructor(struct wl_proxy *proxy, uint32_t opcode,
				   union wl_argument *args,
				   const struct wl_interface *interface)
{
	init();
	return marshal(proxy, opcode, interface, wl_proxy_get_version(proxy),
		       0, args);
}

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_array_constructor_versioned(struct wl_proxy *proxy,
					     uint32_t opcode,
					     union wl_argument *args,
					     const struct wl_interface *interface,
					     uint32_t version)
{
	init();
	return marshal(proxy, opcode, interface, version, 0, args);
}

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_constructor(struct wl_proxy *proxy, uint32_t opcode,
			     const struct wl_interface *interface, ...)
{
	union wl_argument args[MAX_ARGS];
	va_list ap;

	init();
	va_start(ap, interface);
	args_from_va(proxy, opcode, args, ap);
	va_end(ap);
	return marshal(proxy, opcode, interface, wl_proxy_get_version(proxy),
		       0, args);
}

SHIM_EXPORT struct wl_proxy *
wl_proxy_marshal_constructor_versioned(struct wl_proxy *proxy,
				       uint32_t opcode,
				       const struct wl_interface *interface,
				       uint32_t version, ...)
{
	union wl_argument args[MAX_ARGS];
	va_list ap;

	init();
	va_start(ap, version);
	args_from_va(proxy, opcode, args, ap);
	va_end(ap);
	return marshal(proxy, opcode, interface, version, 0, args);
}

/*
 * A stand-in pool is a wrapper, which wl_proxy_destroy() refuses; and no
 * record may outlive its proxy, whose address a new proxy may reuse.
 */
SHIM_EXPORT void wl_proxy_destroy(struct wl_proxy *proxy)
{
	struct shim_pool *pool = NULL;
	bool stand_in = false;

	init();
	if (!shim_depth && (is_class(proxy, "wl_shm") ||
			    is_class(proxy, "wl_shm_pool"))) {
		pthread_mutex_lock(&shim.lock);
		shim_depth++;
		pool = pool_find(proxy);
		if (pool && pool->stand_in) {
			stand_in = true;
			if (!pool->destroyed)
				pool_request(pool, POOL_DESTROY, NULL, 0, 0,
					     NULL);
			wl_proxy_wrapper_destroy(proxy);
		}
		if (pool)
			pool_free(pool);
		shim_depth--;
		pthread_mutex_unlock(&shim.lock);
	}
	if (!stand_in)
		real.proxy_destroy(proxy);
}

static struct wl_display *display_add(struct wl_display *display)
{
	struct shim_display *sd;

	if (!display)
		return NULL;
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return display;	/* unknown displays pass through */
	sd->display = display;
	pthread_mutex_lock(&shim.lock);
	wl_list_insert(&shim.displays, &sd->link);
	pthread_mutex_unlock(&shim.lock);
	return display;
}

SHIM_EXPORT struct wl_display *wl_display_connect(const char *name)
{
	init();
	return display_add(real.connect(name));
}

SHIM_EXPORT struct wl_display *wl_display_connect_to_fd(int fd)
{
	init();
	return display_add(real.connect_to_fd(fd));
}

/* The shim's proxies and queue must go before the display they live on. */
SHIM_EXPORT void wl_display_disconnect(struct wl_display *display)
{
	struct shim_display *sd;
	struct shim_pool *pool, *tmp;

	init();
	pthread_mutex_lock(&shim.lock);
	shim_depth++;
	sd = display_find(display);
	wl_list_for_each_safe(pool, tmp, &shim.pools, link) {
		if (pool->sd != sd || !sd)
			continue;
		if (pool->stand_in)
			wl_proxy_wrapper_destroy(pool->proxy);
		pool_free(pool);
	}
	if (sd) {
		display_teardown(sd);
		wl_list_remove(&sd->link);
		free(sd);
	}
	shim_depth--;
	pthread_mutex_unlock(&shim.lock);
	real.disconnect(display);
}

__attribute__((destructor)) static void shim_summary(void)
{
	char reasons[512] = "";
	size_t len = 0;

	if (!shim.debug)
		return;
	for (int i = 0; i < MAX_REASONS && shim.reasons[i].reason; i++) {
		int n = snprintf(reasons + len, sizeof(reasons) - len,
				 "%s%s: %u", i ? ", " : " (",
				 shim.reasons[i].reason, shim.reasons[i].count);

		if (n < 0 || (size_t)n >= sizeof(reasons) - len)
			break;
		len += (size_t)n;
	}
	fprintf(stderr, "vmshare-shm-shim: %u buffers as dma-buf, %u passed through%s%s\n",
		shim.dmabuf_buffers, shim.passed_buffers, reasons,
		len ? ")" : "");
	/*
	 * The context stays: pools may still hold exports, and other threads
	 * may still be running; the process is going away anyway.
	 */
}
