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
 * vmemexp: only buffers are pinned, never a whole pool.  linux-dmabuf is
 * libvmshare's (a vms_wl per connection, libvmshare/wayland-private.h):
 * its globals live on libvmshare's private event queue; the `created`
 * wl_buffer moves to the queue the client's buffer would have had, where
 * its release events reach the client's listener.
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

#include <drm_fourcc.h>
#include <wayland-client.h>
#include <xf86drm.h>

#include "private.h"
#include "vmshare.h"
#include "wayland-private.h"

#define SHIM_EXPORT __attribute__((visibility("default")))
#define MAX_ARGS 20		/* WL_CLOSURE_MAX_ARGUMENTS */
#define MAX_FORMATS 128
#define MAX_REASONS 16
#define REASON_SIZE 160

/* wl_shm, wl_shm_pool, wl_buffer and wl_surface opcodes (wayland.xml). */
enum {
	SHM_CREATE_POOL = 0,
	POOL_CREATE_BUFFER = 0,
	POOL_DESTROY = 1,
	POOL_RESIZE = 2,
	BUFFER_DESTROY = 0,
	SURFACE_ATTACH = 1,
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
	char reason_text[REASON_SIZE];	/* where @reason points */
	/*
	 * libvmshare's view of the compositor, on its private queue: the
	 * linux-dmabuf formats, the imports, and the wl_shm the real pools
	 * of buffers that pass through are made on (the client's may be
	 * gone by then: wl_shm.release).
	 */
	struct vms_wl *wl;
	/* Formats whose import the compositor refused: later ones would fail too. */
	uint32_t refused[MAX_FORMATS];
	size_t n_refused;
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

/*
 * A buffer the shim made a dma-buf of.  Its mapping of the buffer's bytes
 * stays for the buffer's life: vmemexp tracks the export's range there,
 * so an attach can tell whether the pool's pages under the buffer are
 * still those exported (a client that punches a hole into its pool and
 * writes there again has new ones) and export them again if not.
 */
struct shim_buffer {
	struct wl_list link;		/* shim.buffers */
	struct wl_proxy *proxy;		/* the client's wl_buffer: the first import */
	struct shim_display *sd;
	uint8_t *map;			/* the buffer's whole pages of the pool */
	size_t map_len, skip;		/* the buffer starts @skip bytes in */
	size_t len;
	uint32_t width, height, stride, fourcc;
	uint64_t modifier;
	struct vms_buffer *export;	/* of the pages attach sends now */
	/* What attach sends: @proxy, or an import of newer pages. */
	struct wl_proxy *current;
};

static struct {
	pthread_mutex_t lock;
	pthread_once_t once;
	bool debug;
	struct vms_context *ctx;
	struct wl_list displays, pools, buffers;
	unsigned dmabuf_buffers, passed_buffers;
	struct {
		char reason[REASON_SIZE];
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
	wl_list_init(&shim.buffers);
}

static void init(void)
{
	pthread_once(&shim.once, resolve);
}

static void count_passed(const char *reason)
{
	shim.passed_buffers++;
	for (int i = 0; i < MAX_REASONS; i++) {
		if (!shim.reasons[i].reason[0])
			snprintf(shim.reasons[i].reason, REASON_SIZE, "%s",
				 reason);
		if (!strcmp(shim.reasons[i].reason, reason)) {
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

static void display_teardown(struct shim_display *sd)
{
	sd->wl = vms_wl_unref(sd->wl);
}

/*
 * Learns, once per connection, whether pools can go dma-buf at all: the
 * compositor's side first, so that against a compositor without
 * linux-dmabuf the log names that rather than the module.
 */
static const char *display_check(struct shim_display *sd)
{
	const char *reason;

	if (!shim.ctx)
		shim.ctx = vms_context_create(0);
	if (!shim.ctx)
		return "out of memory";
	sd->wl = vms_wl_create(shim.ctx, sd->display, 0);
	if (!sd->wl)
		return errno == EPROTO ? "the compositor offers no zwp_linux_dmabuf_v1" :
		       errno == ENOMEM ? "out of memory" : "the connection failed";
	reason = vms_wl_dmabuf_unusable(sd->wl);
	if (reason)
		return reason;
	if (!vms_context_has_module(shim.ctx)) {
		shim_log("vmemexp: %s",
			 strerror(-vms_context_module_status(shim.ctx)));
		return "vmemexp is not available";
	}
	shim_log("wl_display %p: zwp_linux_dmabuf_v1 usable, vmemexp loaded",
		 (void *)sd->display);
	return NULL;
}

static void display_probe(struct shim_display *sd)
{
	const char *reason;

	if (sd->probed)
		return;
	sd->probed = true;
	reason = display_check(sd);
	if (!reason)
		return;
	/* The text may be the vms_wl's, and nothing would dispatch its queue again. */
	snprintf(sd->reason_text, sizeof(sd->reason_text), "%s", reason);
	sd->reason = sd->reason_text;
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
 * Maps the buffer's bytes, [@offset, @offset + @b->len) of the pool, as
 * the client maps them (MAP_SHARED: the same pages), in whole pages.
 */
static int buffer_map(struct shim_buffer *b, const struct shim_pool *pool,
		      int32_t offset)
{
	size_t page = vms_page_size();
	size_t first = (size_t)offset / page * page;

	b->skip = (size_t)offset - first;
	b->map_len = b->skip + b->len;
	b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      pool->fd, (off_t)first);
	if (b->map == MAP_FAILED) {
		b->map = NULL;
		return -1;
	}
	return 0;
}

/*
 * A dma-buf of the pages now under the buffer's mapping.  Only the buffer
 * is pinned, never the whole pool: a sparse pool (a terminal's
 * scrollback) stays sparse, and growing a pool pins nothing more.
 */
static struct vms_buffer *buffer_export(const struct shim_buffer *b)
{
	/*
	 * A buffer need not start or end on a page; the rest of its first
	 * and last page is more of the client's pool (or zeroes past the
	 * file's end), which the compositor could map from the pool's fd
	 * without the shim: the whole pages give away nothing of anyone
	 * else's.
	 */
	return vms_buffer_export(shim.ctx, b->map + b->skip, b->len,
				 VMS_EXPORT_ZERO_COPY |
				 VMS_EXPORT_EXPOSE_WHOLE_PAGES);
}

/* Imports @export as the buffer: a wl_buffer on the client buffer's queue. */
static struct wl_proxy *buffer_import(struct shim_buffer *b,
				      struct vms_buffer *export,
				      struct wl_event_queue *queue)
{
	uint32_t offset = (uint32_t)vms_buffer_offset(export);
	struct wl_buffer *buffer;

	buffer = vms_wl_dmabuf_import(b->sd->wl, vms_buffer_fd(export), 1,
				      &offset, &b->stride, b->modifier,
				      b->width, b->height, b->fourcc);
	/*
	 * Its version is the params' (3 or 4); wl_buffer has had one version
	 * only, so the client cannot tell.
	 */
	if (buffer)
		wl_proxy_set_queue((struct wl_proxy *)buffer, queue);
	return (struct wl_proxy *)buffer;
}

static void buffer_free(struct shim_buffer *b)
{
	union wl_argument none[1] = { { .i = 0 } };

	wl_list_remove(&b->link);
	if (b->current && b->current != b->proxy)
		forward(b->current, BUFFER_DESTROY, NULL,
			wl_proxy_get_version(b->current),
			WL_MARSHAL_FLAG_DESTROY, none);
	vms_buffer_unref(b->export);
	if (b->map)
		munmap(b->map, b->map_len);
	free(b);
}

static struct shim_buffer *buffer_find(struct wl_proxy *proxy)
{
	struct shim_buffer *b;

	wl_list_for_each(b, &shim.buffers, link)
		if (b->proxy == proxy || b->current == proxy)
			return b;
	return NULL;
}

/* The client destroys its buffer: so go the shim's imports and mapping. */
static void buffer_forget(struct wl_proxy *proxy)
{
	struct shim_buffer *b = buffer_find(proxy);

	if (b && b->proxy == proxy)
		buffer_free(b);
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
	struct wl_proxy *shm = pool->sd && pool->sd->wl ?
		(struct wl_proxy *)vms_wl_shm(pool->sd->wl) : NULL;
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

static uint32_t shm_to_fourcc(uint32_t format)
{
	/* The only two wl_shm codes that are not their DRM fourcc. */
	if (format == WL_SHM_FORMAT_ARGB8888)
		return DRM_FORMAT_ARGB8888;
	if (format == WL_SHM_FORMAT_XRGB8888)
		return DRM_FORMAT_XRGB8888;
	return format;
}

static bool format_refused(const struct shim_display *sd, uint32_t fourcc)
{
	for (size_t i = 0; i < sd->n_refused; i++)
		if (sd->refused[i] == fourcc)
			return true;
	return false;
}

/*
 * One import of a dma-buf of the buffer's bytes, answered on libvmshare's
 * private queue; then the wl_buffer goes to the queue the client's pool
 * (and so its buffer) is on.  NULL with @reason set when the buffer must
 * pass through.
 */
static struct wl_buffer *pool_import(struct shim_pool *pool, int32_t offset,
				     int32_t width, int32_t height,
				     int32_t stride, uint32_t format,
				     char reason[REASON_SIZE])
{
	struct shim_display *sd = pool->sd;
	struct shim_buffer *b;
	char *name;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(reason, REASON_SIZE, "out of memory");
		return NULL;
	}
	*b = (struct shim_buffer){
		.sd = sd, .len = (size_t)stride * (size_t)height,
		.width = (uint32_t)width, .height = (uint32_t)height,
		.stride = (uint32_t)stride, .fourcc = shm_to_fourcc(format),
	};
	wl_list_init(&b->link);
	if (vms_wl_dmabuf_modifier(sd->wl, b->fourcc, &b->modifier, reason,
				   REASON_SIZE))
		goto fail;
	if (format_refused(sd, b->fourcc)) {
		snprintf(reason, REASON_SIZE, "the compositor refused the import");
		goto fail;
	}
	if (buffer_map(b, pool, offset) < 0 || !(b->export = buffer_export(b))) {
		shim_log("buffer %dx%d at %d: vmemexp: %s", width, height,
			 offset, strerror(errno));
		snprintf(reason, REASON_SIZE, "vmemexp refused the buffer's memory");
		goto fail;
	}
	b->proxy = buffer_import(b, b->export, queue_of(pool->proxy));
	if (!b->proxy) {
		err = errno;
		/* Later buffers of this format would fail the same way. */
		if (err == EINVAL && sd->n_refused < MAX_FORMATS)
			sd->refused[sd->n_refused++] = b->fourcc;
		snprintf(reason, REASON_SIZE, "%s", err == EINVAL ?
			 "the compositor refused the import" :
			 "the connection failed");
		goto fail;
	}
	b->current = b->proxy;
	wl_list_insert(&shim.buffers, &b->link);
	name = drmGetFormatName(b->fourcc);
	shim_log("buffer %dx%d %s stride %d at %d: dma-buf, modifier %s, created",
		 width, height, name ? name : "?", stride, offset,
		 b->modifier == DRM_FORMAT_MOD_LINEAR ? "linear" : "implicit");
	free(name);
	return (struct wl_buffer *)b->proxy;

fail:
	buffer_free(b);
	return NULL;
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
	struct wl_proxy *real_pool;
	struct wl_buffer *buffer = NULL;
	struct timespec t0, t1;
	char reason[REASON_SIZE];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(reason, sizeof(reason), "%s", pool->reason ? pool->reason : "");
	if (!pool->reason && !buffer_fits(pool, offset, width, height, stride))
		snprintf(reason, sizeof(reason),
			 "invalid buffer (the compositor will say so)");
	else if (!pool->reason)
		buffer = pool_import(pool, offset, width, height, stride,
				     args[5].u, reason);
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

/* ---- buffers whose pages changed -------------------------------------- */

/*
 * The compositor released an import of newer pages: for the client that
 * is its own buffer's release, if that import is still the one attach
 * sends.  Dispatched on the client buffer's queue, like its own events.
 */
static void replacement_release(void *data, struct wl_buffer *buffer)
{
	const struct wl_buffer_listener *listener = NULL;
	struct wl_proxy *proxy = NULL;
	struct shim_buffer *b;
	void *user_data = NULL;

	(void)data;
	pthread_mutex_lock(&shim.lock);
	b = buffer_find((struct wl_proxy *)buffer);
	if (b && b->current == (struct wl_proxy *)buffer) {
		proxy = b->proxy;
		listener = wl_proxy_get_listener(proxy);
		user_data = wl_proxy_get_user_data(proxy);
	}
	pthread_mutex_unlock(&shim.lock);
	if (listener && listener->release)
		listener->release(user_data, (struct wl_buffer *)proxy);
}

static const struct wl_buffer_listener replacement_listener = {
	.release = replacement_release,
};

/*
 * wl_surface.attach of a buffer the shim exported: the dma-buf the
 * compositor gets must show the pool's pages under the buffer now.  When
 * vmemexp says they changed since the export (a hole punched and written
 * again), the pages are exported and imported again, and the attach sends
 * that import in the client's buffer's place; its release reaches the
 * client's listener as the buffer's own.
 */
static void attach_current(union wl_argument *args)
{
	struct shim_buffer *b = buffer_find((struct wl_proxy *)args[0].o);
	struct vms_buffer *export;
	struct wl_proxy *import;
	union wl_argument none[1] = { { .i = 0 } };

	if (!b || b->proxy != (struct wl_proxy *)args[0].o)
		return;
	/* Untracked (an older module): whether they changed is unknowable. */
	if (!vms_buffer_is_tracked(b->export) ||
	    vms_buffer_still_shares(b->export)) {
		args[0].o = (struct wl_object *)b->current;
		return;
	}
	export = buffer_export(b);
	import = export ? buffer_import(b, export, queue_of(b->proxy)) : NULL;
	if (!import) {
		shim_log("buffer %ux%u: its pages changed, but exporting them again failed (%s); the compositor keeps the old ones",
			 b->width, b->height, strerror(errno));
		vms_buffer_unref(export);
		args[0].o = (struct wl_object *)b->current;
		return;
	}
	wl_proxy_add_listener(import, (void (**)(void))&replacement_listener,
			      NULL);
	if (b->current != b->proxy)
		forward(b->current, BUFFER_DESTROY, NULL,
			wl_proxy_get_version(b->current),
			WL_MARSHAL_FLAG_DESTROY, none);
	vms_buffer_unref(b->export);
	b->export = export;
	b->current = import;
	args[0].o = (struct wl_object *)import;
	shim_log("buffer %ux%u: its pages changed since the export; exported and imported again",
		 b->width, b->height);
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
	bool shm, shm_pool, attach, buffer_destroy;

	if (shim_depth)
		return forward(proxy, opcode, interface, version, flags, args);
	shm = is_class(proxy, "wl_shm");
	shm_pool = is_class(proxy, "wl_shm_pool");
	attach = opcode == SURFACE_ATTACH && is_class(proxy, "wl_surface");
	buffer_destroy = opcode == BUFFER_DESTROY && is_class(proxy, "wl_buffer");
	if (!shm && !shm_pool && !attach && !buffer_destroy)
		return forward(proxy, opcode, interface, version, flags, args);

	pthread_mutex_lock(&shim.lock);
	shim_depth++;
	pool = shm || shm_pool ? pool_find(proxy) : NULL;
	if (attach) {
		attach_current(args);
		ret = forward(proxy, opcode, interface, version, flags, args);
	} else if (buffer_destroy) {
		buffer_forget(proxy);
		ret = forward(proxy, opcode, interface, version, flags, args);
	} else if (pool)
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
	if (!shim_depth && is_class(proxy, "wl_buffer")) {
		/* Old-style destructors: the destroy request came first. */
		pthread_mutex_lock(&shim.lock);
		shim_depth++;
		buffer_forget(proxy);
		shim_depth--;
		pthread_mutex_unlock(&shim.lock);
	} else if (!shim_depth && (is_class(proxy, "wl_shm") ||
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
	struct shim_buffer *b, *next;

	init();
	pthread_mutex_lock(&shim.lock);
	shim_depth++;
	sd = display_find(display);
	wl_list_for_each_safe(b, next, &shim.buffers, link)
		if (sd && b->sd == sd)
			buffer_free(b);
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
	for (int i = 0; i < MAX_REASONS && shim.reasons[i].reason[0]; i++) {
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
