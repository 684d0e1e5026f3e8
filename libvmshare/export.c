/* SPDX-License-Identifier: MIT */
/* Making memory shareable: vmemexp exports, memfd copies, memfd memory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/vmemexp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "private.h"

struct vms_buffer {
	struct vms_context *ctx;
	enum vms_buffer_kind kind;
	int fd;			/* owned */
	uint64_t size;
	uint32_t segments;	/* dma-buf only */
	uint64_t range_offsets[VMS_MAX_PLANES];
	size_t n_ranges;
	void *data;		/* the memory shared */
	size_t len;
	void *memfd_map;	/* our mapping of a memfd, or NULL */
	bool rdonly;
	char copy_reason[320];
	/* Reuse by vms_buffer_export() of the same memory (tracked exports). */
	bool tracked;
	uint32_t status_slot;		/* in ctx->status_page, or NO_SLOT */
	uint32_t export_flags;		/* those that change the export */
	unsigned int refs;		/* under ctx->lock */
	struct vms_buffer *next_reusable;
};

/* Why a range that plan_range() may not widen is copied. */
#define NOT_ALIGNED_REASON "the memory is not page-aligned, so a dma-buf " \
	"would give peers the rest of its first and last page (allocate it " \
	"with vms_frame_alloc(), or pass VMS_EXPORT_EXPOSE_WHOLE_PAGES)"

/* The flags of vms_buffer_export() that make another export. */
#define EXPORT_IDENTITY_FLAGS (VMS_EXPORT_RDONLY | VMS_EXPORT_CARVEOUT | \
			       VMS_EXPORT_EXPOSE_WHOLE_PAGES)

/*
 * The range to ask vmemexp for when exporting [ptr, ptr + len), in @e's
 * addr, len and flags.  A dma-buf holds whole pages, and vmemexp widens a
 * range that does not start and end on page boundaries only when told,
 * since whatever else lives in its first and last page is then exposed.
 * Inside a block of vms_frame_alloc() those pages are the block's own, so
 * the library asks for them itself; anywhere else only the caller's
 * VMS_EXPORT_EXPOSE_WHOLE_PAGES has the module widen the range.  Returns
 * false when the range may not be widened.
 */
static bool plan_range(struct vms_context *ctx, const void *ptr, size_t len,
		       uint32_t flags, struct vmemexp_export *e)
{
	uintptr_t page = vms_page_size(), start = (uintptr_t)ptr;
	uintptr_t first = start / page * page, end = start + len;
	bool in_block;

	e->addr = start;
	e->len = len;
	if (!(start % page) && !(end % page))
		return true;
	/* A block is whole pages: holding @end, it holds the rest of its page. */
	pthread_mutex_lock(&ctx->lock);
	in_block = vms_frame_block_holds(ctx, first, end);
	pthread_mutex_unlock(&ctx->lock);
	if (in_block) {
		e->addr = first;
		e->len = vms_round_up_to_pages(end) - first;
		return true;
	}
	if (flags & VMS_EXPORT_EXPOSE_WHOLE_PAGES) {
		e->flags |= VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES;
		return true;
	}
	return false;
}

bool vms_export_would_expose(struct vms_context *ctx, const void *ptr,
			     size_t len, uint32_t flags)
{
	struct vmemexp_export e = { 0 };

	return !plan_range(ctx, ptr, len, flags, &e);
}

/* Exports the range plan_range() put in @e. */
static int export_vmemexp(struct vms_buffer *buf, struct vmemexp_export *e,
			  uint32_t flags, bool track)
{
	int ret;

	e->flags |= VMEMEXP_EXPORT_CLOEXEC |
		    (track && !atomic_load_explicit(&buf->ctx->no_track,
						    memory_order_relaxed) ?
		     VMEMEXP_EXPORT_TRACK : 0) |
		    (flags & VMS_EXPORT_RDONLY ? VMEMEXP_EXPORT_RDONLY : 0) |
		    (flags & VMS_EXPORT_CARVEOUT ? VMEMEXP_EXPORT_PFNMAP : 0);
	ret = vms_ioctl(buf->ctx->vmemexp_fd, VMEMEXP_IOC_EXPORT, e);
	/*
	 * A module older than VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES rejects the
	 * flag (EINVAL) and widens every range to whole pages without it,
	 * which is what the caller consented to.  A newer one refuses an
	 * unaligned range without the flag, so the retry succeeds only
	 * where the flag was what the module did not know.
	 */
	if (ret == -EINVAL && (e->flags & VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES)) {
		e->flags &= ~VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES;
		ret = vms_ioctl(buf->ctx->vmemexp_fd, VMEMEXP_IOC_EXPORT, e);
		if (ret == 0)
			vms_log(buf->ctx, "vmemexp predates "
				"VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES: exported "
				"without it, widened to whole pages all the same");
	}
	/*
	 * A module older than VMEMEXP_EXPORT_TRACK rejects the flag (EINVAL),
	 * one on a kernel without MMU notifiers refuses it (EOPNOTSUPP).
	 */
	if ((ret == -EINVAL || ret == -EOPNOTSUPP) &&
	    (e->flags & VMEMEXP_EXPORT_TRACK)) {
		e->flags &= ~VMEMEXP_EXPORT_TRACK;
		ret = vms_ioctl(buf->ctx->vmemexp_fd, VMEMEXP_IOC_EXPORT, e);
		if (ret == 0) {
			atomic_store_explicit(&buf->ctx->no_track, true,
					      memory_order_relaxed);
			vms_log_info(buf->ctx, "vmemexp cannot track exports: "
				"exports of the same memory are not reused");
		}
	}
	if (ret < 0)
		return ret;
	buf->tracked = e->flags & VMEMEXP_EXPORT_TRACK;
	buf->status_slot = buf->tracked ? e->status_slot : VMEMEXP_STATUS_NO_SLOT;
	buf->kind = VMS_BUFFER_DMABUF;
	buf->fd = e->fd;
	buf->size = e->size;
	buf->segments = e->nr_segments;
	/* Where the library widened the range, the fd starts before it. */
	buf->range_offsets[0] = e->offset + ((uintptr_t)buf->data - e->addr);
	vms_log(buf->ctx, "exported %zu bytes at %p: dma-buf fd %d of %llu bytes, "
		"%u segments", buf->len, buf->data, e->fd,
		(unsigned long long)e->size, e->nr_segments);
	return 0;
}

/* An O_RDONLY fd of the same memfd, so a peer cannot map it writable. */
static int reopen_rdonly(int fd)
{
	char path[64];
	int ro;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	return ro < 0 ? -errno : ro;
}

/* Copies the memory into a memfd, saying @why there is no dma-buf. */
static int copy_to_memfd(struct vms_buffer *buf, const char *why)
{
	size_t size = vms_round_up_to_pages(buf->len);
	int fd, ret;

	fd = vms_memfd_create("vmshare-copy", size);
	if (fd < 0)
		return fd;
	buf->memfd_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			      fd, 0);
	if (buf->memfd_map == MAP_FAILED) {
		ret = -errno;
		buf->memfd_map = NULL;
		close(fd);
		return ret;
	}
	memcpy(buf->memfd_map, buf->data, buf->len);
	if (buf->rdonly) {
		/*
		 * An O_RDONLY fd alone is not enough: a peer reopens it
		 * read-write through /proc/self/fd.  The seal refuses every
		 * write and writable mapping from now on, except ours, made
		 * before it, through which vms_buffer_refresh() copies.
		 */
		if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0) {
			ret = -errno;
			munmap(buf->memfd_map, size);
			buf->memfd_map = NULL;
			close(fd);
			return ret;
		}
		ret = reopen_rdonly(fd);
		close(fd);
		if (ret < 0) {
			munmap(buf->memfd_map, size);
			buf->memfd_map = NULL;
			return ret;
		}
		fd = ret;
	}
	buf->kind = VMS_BUFFER_MEMFD_COPY;
	buf->fd = fd;
	buf->size = size;
	buf->range_offsets[0] = 0;
	snprintf(buf->copy_reason, sizeof(buf->copy_reason),
		 "%s: copied into a memfd", why);
	vms_log_info(buf->ctx, "%zu bytes at %p: %s", buf->len, buf->data,
		buf->copy_reason);
	return 0;
}

/*
 * Whether a copy can stand in for the memory after the module answered
 * -@err.  Not for a hole in the range (EFAULT: the copy would fault inside
 * the library), nor for a range over the module's size cap (E2BIG: a
 * silent copy of more than a GiB); the caller gets those errors.
 */
static bool copy_is_sound(int err)
{
	return err != -EFAULT && err != -E2BIG;
}

static struct vms_buffer *export_span(struct vms_context *ctx, const void *ptr,
				      size_t len, uint32_t flags, bool track)
{
	struct vmemexp_export e = { 0 };
	struct vms_buffer *buf;
	char why[296];
	bool exposes;
	int ret;

	if (!ctx || !ptr || !len || len > UINTPTR_MAX - (uintptr_t)ptr ||
	    (flags & ~(uint32_t)(VMS_EXPORT_RDONLY | VMS_EXPORT_ZERO_COPY |
				 VMS_EXPORT_CARVEOUT |
				 VMS_EXPORT_EXPOSE_WHOLE_PAGES))) {
		errno = EINVAL;
		return NULL;
	}
	buf = calloc(1, sizeof(*buf));
	if (!buf)
		return NULL;
	buf->ctx = ctx;
	buf->fd = -1;
	buf->data = (void *)ptr;
	buf->len = len;
	buf->n_ranges = 1;
	buf->rdonly = flags & VMS_EXPORT_RDONLY;
	buf->export_flags = flags & EXPORT_IDENTITY_FLAGS;
	buf->refs = 1;

	exposes = !plan_range(ctx, ptr, len, flags, &e);
	if (ctx->vmemexp_fd < 0)
		ret = -ctx->module_status;
	else if (exposes)
		ret = -EINVAL;
	else
		ret = export_vmemexp(buf, &e, flags, track);
	if (ret < 0 && !(flags & VMS_EXPORT_ZERO_COPY) && copy_is_sound(ret)) {
		/*
		 * Without the module the alignment changes nothing yet, but
		 * such a range stays a copy where the module is: say so now.
		 */
		if (ctx->vmemexp_fd >= 0 && exposes)
			snprintf(why, sizeof(why), "%s", NOT_ALIGNED_REASON);
		else
			snprintf(why, sizeof(why), "vmemexp %s (%s)%s%s",
				 ret == -ENODEV ? "is not available" :
						  "refused the memory",
				 strerror(-ret), exposes ? "; also, " : "",
				 exposes ? NOT_ALIGNED_REASON : "");
		ret = copy_to_memfd(buf, why);
	}
	if (ret < 0) {
		free(buf);
		errno = -ret;
		return NULL;
	}
	vms_context_ref(ctx);
	return buf;
}

/* Called with ctx->lock held. */
static void forget_reusable(struct vms_buffer *buf)
{
	struct vms_buffer **link = &buf->ctx->reusable;

	while (*link && *link != buf)
		link = &(*link)->next_reusable;
	if (*link)
		*link = buf->next_reusable;
	buf->next_reusable = NULL;
}

/*
 * Whether a tracked export's range still shows the exported pages: its
 * word in the status page when it has one and this process mapped the
 * page, else the module's answer to VMEMEXP_IOC_STATUS.
 */
static bool still_current(struct vms_context *ctx, const struct vms_buffer *buf)
{
	struct vmemexp_status st = { .fd = buf->fd };

	if (ctx->status_page && buf->status_slot != VMEMEXP_STATUS_NO_SLOT &&
	    *ctx->status_owner)
		return __atomic_load_n(&ctx->status_page[buf->status_slot],
				       __ATOMIC_ACQUIRE) == 0;
	return vms_ioctl(ctx->vmemexp_fd, VMEMEXP_IOC_STATUS, &st) == 0 &&
	       st.flags & VMEMEXP_STATUS_CURRENT;
}

bool vms_buffer_is_tracked(const struct vms_buffer *buf)
{
	return buf->tracked;
}

bool vms_buffer_still_shares(const struct vms_buffer *buf)
{
	if (buf->kind != VMS_BUFFER_DMABUF)
		return true;
	return buf->tracked && still_current(buf->ctx, buf);
}

/*
 * A live export of exactly this memory whose range vmemexp says still
 * shows the exported pages, with one more reference; NULL otherwise.
 * One that went stale is forgotten (its holders keep it).  Called with
 * ctx->lock held.
 */
static struct vms_buffer *find_reusable(struct vms_context *ctx,
					const void *ptr, size_t len,
					uint32_t flags)
{
	struct vms_buffer *buf;

	for (buf = ctx->reusable; buf; buf = buf->next_reusable) {
		if (buf->data != ptr || buf->len != len ||
		    buf->export_flags != (flags & EXPORT_IDENTITY_FLAGS))
			continue;
		if (still_current(ctx, buf)) {
			buf->refs++;
			vms_log(ctx, "export of %zu bytes at %p reused: dma-buf fd %d",
				len, ptr, buf->fd);
			return buf;
		}
		vms_log(ctx, "export at %p is stale (the memory was remapped): "
			"exporting again", ptr);
		forget_reusable(buf);
		return NULL;
	}
	return NULL;
}

VMS_EXPORT struct vms_buffer *vms_buffer_export(struct vms_context *ctx,
						const void *ptr, size_t len,
						uint32_t flags)
{
	struct vms_buffer *buf = NULL;

	if (ctx && ctx->vmemexp_fd >= 0 && ptr && len) {
		pthread_mutex_lock(&ctx->lock);
		buf = find_reusable(ctx, ptr, len, flags);
		pthread_mutex_unlock(&ctx->lock);
		if (buf)
			return buf;
	}
	buf = export_span(ctx, ptr, len, flags, true);
	if (buf && buf->tracked) {
		pthread_mutex_lock(&ctx->lock);
		buf->next_reusable = ctx->reusable;
		ctx->reusable = buf;
		pthread_mutex_unlock(&ctx->lock);
	}
	return buf;
}

VMS_EXPORT struct vms_buffer *
vms_buffer_export_planes(struct vms_context *ctx,
			 const struct vms_range *ranges, size_t count,
			 uint32_t flags)
{
	uintptr_t first, end = 0, page = vms_page_size();
	struct vms_buffer *buf;

	if (!ranges || !count || count > VMS_MAX_PLANES) {
		errno = EINVAL;
		return NULL;
	}
	first = (uintptr_t)ranges[0].ptr;
	for (size_t i = 0; i < count; i++) {
		uintptr_t start = (uintptr_t)ranges[i].ptr;

		if (!ranges[i].ptr || !ranges[i].len ||
		    start + ranges[i].len < start) {
			errno = EINVAL;
			return NULL;
		}
		/* In order, and no untouched page between two planes. */
		if (i && (start < (uintptr_t)ranges[i - 1].ptr ||
			  start > (end + page - 1) / page * page)) {
			errno = EINVAL;
			return NULL;
		}
		if (start + ranges[i].len > end)
			end = start + ranges[i].len;
	}

	buf = export_span(ctx, ranges[0].ptr, end - first, flags, false);
	if (!buf)
		return NULL;
	buf->n_ranges = count;
	for (size_t i = 1; i < count; i++)
		buf->range_offsets[i] = buf->range_offsets[0] +
					((uintptr_t)ranges[i].ptr - first);
	return buf;
}

VMS_EXPORT struct vms_buffer *vms_buffer_alloc(struct vms_context *ctx,
					       size_t size)
{
	struct vms_buffer *buf;
	int ret;

	if (!ctx || !size || size > SIZE_MAX - vms_page_size()) {
		errno = EINVAL;
		return NULL;
	}
	buf = calloc(1, sizeof(*buf));
	if (!buf)
		return NULL;
	buf->ctx = ctx;
	buf->refs = 1;
	buf->kind = VMS_BUFFER_MEMFD;
	buf->size = vms_round_up_to_pages(size);
	buf->len = size;
	buf->n_ranges = 1;
	buf->fd = vms_memfd_create("vmshare-alloc", buf->size);
	if (buf->fd < 0) {
		ret = buf->fd;
		goto err_free;
	}
	buf->memfd_map = mmap(NULL, buf->size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, buf->fd, 0);
	if (buf->memfd_map == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	buf->data = buf->memfd_map;
	vms_log(ctx, "allocated %zu bytes in memfd %d", size, buf->fd);
	vms_context_ref(ctx);
	return buf;

err_close:
	close(buf->fd);
err_free:
	free(buf);
	errno = -ret;
	return NULL;
}

VMS_EXPORT struct vms_buffer *vms_buffer_ref(struct vms_buffer *buf)
{
	pthread_mutex_lock(&buf->ctx->lock);
	buf->refs++;
	pthread_mutex_unlock(&buf->ctx->lock);
	return buf;
}

VMS_EXPORT struct vms_buffer *vms_buffer_unref(struct vms_buffer *buf)
{
	struct vms_context *ctx;
	bool last;

	if (!buf)
		return NULL;
	ctx = buf->ctx;
	pthread_mutex_lock(&ctx->lock);
	last = --buf->refs == 0;
	if (last)
		forget_reusable(buf);
	pthread_mutex_unlock(&ctx->lock);
	if (!last)
		return NULL;
	if (buf->memfd_map)
		munmap(buf->memfd_map, buf->size);
	close(buf->fd);
	free(buf);
	vms_context_unref(ctx);
	return NULL;
}

VMS_EXPORT int vms_buffer_fd(const struct vms_buffer *buf)
{
	return buf->fd;
}

VMS_EXPORT uint64_t vms_buffer_size(const struct vms_buffer *buf)
{
	return buf->size;
}

VMS_EXPORT uint64_t vms_buffer_offset(const struct vms_buffer *buf)
{
	return buf->range_offsets[0];
}

VMS_EXPORT uint64_t vms_buffer_range_offset(const struct vms_buffer *buf,
					    size_t index)
{
	return index < buf->n_ranges ? buf->range_offsets[index] : UINT64_MAX;
}

size_t vms_buffer_range_count(const struct vms_buffer *buf)
{
	return buf->n_ranges;
}

VMS_EXPORT uint32_t vms_buffer_segments(const struct vms_buffer *buf)
{
	return buf->segments;
}

VMS_EXPORT void *vms_buffer_data(const struct vms_buffer *buf)
{
	return buf->data;
}

VMS_EXPORT size_t vms_buffer_length(const struct vms_buffer *buf)
{
	return buf->len;
}

VMS_EXPORT enum vms_buffer_kind vms_buffer_kind(const struct vms_buffer *buf)
{
	return buf->kind;
}

VMS_EXPORT bool vms_buffer_is_readonly(const struct vms_buffer *buf)
{
	return buf->rdonly;
}

VMS_EXPORT const char *vms_buffer_copy_reason(const struct vms_buffer *buf)
{
	return buf->kind == VMS_BUFFER_MEMFD_COPY ? buf->copy_reason : NULL;
}

VMS_EXPORT int vms_buffer_refresh(struct vms_buffer *buf)
{
	if (buf->kind == VMS_BUFFER_MEMFD_COPY)
		memcpy(buf->memfd_map, buf->data, buf->len);
	return 0;
}

VMS_EXPORT int vms_buffer_begin_cpu_access(struct vms_buffer *buf,
					   uint32_t access)
{
	return vms_sync(buf->fd, access, false);
}

VMS_EXPORT int vms_buffer_end_cpu_access(struct vms_buffer *buf,
					 uint32_t access)
{
	return vms_sync(buf->fd, access, true);
}
