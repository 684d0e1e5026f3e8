/* SPDX-License-Identifier: MIT */
/* libvmshare internals shared between its source files. */
#ifndef VMS_PRIVATE_H
#define VMS_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmshare.h"

#define VMS_EXPORT __attribute__((visibility("default")))

struct vms_buffer;
struct vms_frame_block;

struct vms_context {
	/* The application's, and one held by each object made from it. */
	atomic_int refs;
	int vmemexp_fd;		/* -1 without the module */
	int module_status;	/* 0, or why vmemexp_fd is -1 (an errno) */
	uint32_t flags;
	/* vms_context_set_log_handler() and _priority(): see vms_log_at(). */
	vms_log_handler log_handler;
	enum vms_log_priority log_priority;
	void *user_data;
	/* Live tracked exports vms_buffer_export() may hand out again. */
	pthread_mutex_t lock;	/* protects @reusable, buffers' refs, @frame_blocks */
	struct vms_buffer *reusable;
	/* Live memory of vms_frame_alloc(), whose pages hold nothing else. */
	struct vms_frame_block *frame_blocks;
	/* The module predates VMEMEXP_EXPORT_TRACK; set by any exporting thread. */
	atomic_bool no_track;
	/*
	 * vmemexp's status page of @vmemexp_fd, mapped read-only, or NULL
	 * (an older module): a tracked export's word there reads 0 while it
	 * is current, so reuse needs no system call.  Only the process that
	 * mapped it may trust it: *@status_owner reads 1 there and 0 in a
	 * child, which has copies of the parent's pages (MADV_WIPEONFORK).
	 */
	const volatile uint32_t *status_page;
	volatile uint32_t *status_owner;
};

/* Whether environment variable @name is set to anything but "" or "0". */
bool vms_env_flag(const char *name);

/*
 * Logs through @ctx's handler when @priority is at least its priority; a
 * NULL @ctx (functions that take none, as vms_recv) logs to stderr with
 * the default priority (VMSHARE_DEBUG=1: debug, else errors only).
 */
void vms_log_at(const struct vms_context *ctx, enum vms_log_priority priority,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A decision the library made (debug), a fallback (info), a failure. */
#define vms_log(ctx, ...) vms_log_at(ctx, VMS_LOG_PRIORITY_DEBUG, __VA_ARGS__)
#define vms_log_info(ctx, ...) vms_log_at(ctx, VMS_LOG_PRIORITY_INFO, __VA_ARGS__)
#define vms_log_error(ctx, ...) vms_log_at(ctx, VMS_LOG_PRIORITY_ERROR, __VA_ARGS__)

/* The page size, and @len rounded up to whole pages (no overflow check). */
size_t vms_page_size(void);
size_t vms_round_up_to_pages(size_t len);

/*
 * The PMD size (2 MiB with 4 KiB pages), and mmap() at an address aligned
 * to it when @len is at least that large (huge-align.c).
 */
size_t vms_huge_page_size(void);
void *vms_mmap_huge_aligned(size_t len, int prot, int flags, int fd,
			    off_t offset);

/*
 * Whether [start, end) lies in one block of vms_frame_alloc(): then the
 * whole pages around it are the block's own.  Called with ctx->lock held.
 */
bool vms_frame_block_holds(const struct vms_context *ctx, uintptr_t start,
			   uintptr_t end);

/* Frees the blocks of vms_frame_alloc() still allocated. */
void vms_frame_blocks_release(struct vms_context *ctx);

/*
 * Whether vms_buffer_export() of [ptr, ptr + len) with @flags would give
 * peers bytes around the range that no one allowed them to see: a range
 * that is not page-aligned, outside vms_frame_alloc() memory, without
 * VMS_EXPORT_EXPOSE_WHOLE_PAGES.  Such a range is never exported through
 * vmemexp.
 */
bool vms_export_would_expose(struct vms_context *ctx, const void *ptr,
			     size_t len, uint32_t flags);

/* Opens a memfd of @size bytes, sealed against shrinking and growing. */
int vms_memfd_create(const char *name, size_t size);

/* DMA_BUF_IOCTL_SYNC on a dma-buf; 0 on anything that is not one. */
int vms_sync(int fd, uint32_t access, bool end);

/*
 * Layout of a known format: bytes per pixel unit of each plane and the
 * horizontal and vertical subsampling of planes after the first.
 */
struct vms_format {
	uint32_t fourcc;
	uint32_t n_planes;
	uint32_t cpp[VMS_MAX_PLANES];	/* bytes per (subsampled) pixel */
	uint32_t hsub, vsub;		/* for planes 1 and later */
};

const struct vms_format *vms_format_lookup(uint32_t fourcc);

/*
 * Packed plane layout of a frame with @stride bytes per row of plane 0:
 * fills offsets (from 0) and strides, returns the total length.
 */
uint64_t vms_format_layout(const struct vms_format *fmt, uint32_t height,
			   uint32_t stride, uint64_t plane_offsets[],
			   uint32_t strides[]);

/* Checks a frame's layout against an object of @fd_size bytes. */
int vms_frame_check(const struct vms_frame *frame, uint64_t fd_size);

/* Number of ranges a buffer was exported from (planes). */
size_t vms_buffer_range_count(const struct vms_buffer *buf);

/*
 * Whether @buf still shares the memory at its address: false once a
 * tracked export's range was unmapped or remapped (the memory freed and
 * the address reused), and for an export that is not tracked, whose
 * staleness cannot be known.  A copy is current while its holder says so.
 */
bool vms_buffer_still_shares(const struct vms_buffer *buf);

/*
 * Whether vmemexp tracks @buf's range (VMEMEXP_EXPORT_TRACK): only then
 * can vms_buffer_still_shares() tell a stale export from a current one.
 */
bool vms_buffer_is_tracked(const struct vms_buffer *buf);

/* Retrying wrappers: EINTR never reaches a caller. */
int vms_ioctl(int fd, unsigned long request, void *arg);

#endif /* VMS_PRIVATE_H */
