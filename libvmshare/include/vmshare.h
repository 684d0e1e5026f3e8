/* SPDX-License-Identifier: MIT */
/**
 * @file vmshare.h
 * libvmshare: share ordinary memory between processes without copying.
 *
 * Export a pointer and a length as a file descriptor (a dma-buf from
 * vmemexp.ko, or a sealed memfd where the module is missing), pass it with
 * a small frame descriptor over a UNIX socket, and map it in the peer.
 *
 * Conventions: functions returning int return 0 (or a count) on success
 * and a negative errno on failure; constructors return NULL and set errno.
 * Every object is reference-counted: a constructor returns it with one
 * reference, _ref() adds one and returns the object, _unref() drops one,
 * accepts NULL and returns NULL, and the last frees the object.  An object
 * holds a reference on what it was made from (a buffer on its context, a
 * vms_wl_buffer on its vms_wl, an X11 image on its vms_x11 and buffer), so
 * the application may drop its references in any order.  Every fd the
 * library creates is close-on-exec.  Who owns each fd is stated at every
 * function that takes or returns one.
 */
#ifndef VMSHARE_H
#define VMSHARE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A library context: the /dev/vmemexp handle and options. */
struct vms_context;
/** Memory made shareable: a fd whose pages are (or mirror) the memory. */
struct vms_buffer;
/** A peer's mapping of a received buffer. */
struct vms_mapping;
/** Receives messages piece by piece from a non-blocking socket. */
struct vms_receiver;

/** Flags of vms_context_create(). */
enum vms_context_flags {
	/** Fail with ENODEV instead of falling back when vmemexp is missing. */
	VMS_CONTEXT_REQUIRE_MODULE = 1u << 0,
	/** Never use vmemexp (as if it were missing): copies and memfds only. */
	VMS_CONTEXT_NO_MODULE = 1u << 1,
};

/**
 * Creates a context.  Opens /dev/vmemexp when it exists; otherwise the
 * context works without it (see vms_buffer_export()).  It logs to stderr,
 * errors only, or every decision the library makes when the environment
 * variable VMSHARE_DEBUG=1 is set; vms_context_set_log_handler() and
 * vms_context_set_log_priority() change both.
 *
 * @param flags  a combination of enum vms_context_flags
 * @return the context, or NULL with errno set (EINVAL for unknown flags,
 *         ENODEV when the module is required and missing)
 */
struct vms_context *vms_context_create(uint32_t flags);

/** How much a message matters; a handler gets those at or above its priority. */
enum vms_log_priority {
	/** A decision the library made: which path, why, what it reused. */
	VMS_LOG_PRIORITY_DEBUG = 10,
	/** A fallback that costs performance: a copy, wl_shm, PutImage. */
	VMS_LOG_PRIORITY_INFO = 20,
	/** A failure or a misbehaving peer: a dropped message, an X error. */
	VMS_LOG_PRIORITY_ERROR = 30,
};

/**
 * Receives the context's messages: @p format and @p args as for
 * vprintf(), one line without its newline.  Called on the thread that
 * made the call that logs.
 */
typedef void (*vms_log_handler)(struct vms_context *ctx,
				enum vms_log_priority priority,
				const char *format, va_list args);

/**
 * Sets the context's log handler; NULL restores the default, which writes
 * "vmshare: " and the message to stderr.  Messages of functions that
 * take no context (vms_recv(), vms_receiver_read(), vms_mapping_create())
 * go to the default handler with the default priority.
 */
void vms_context_set_log_handler(struct vms_context *ctx,
				 vms_log_handler handler);

/**
 * Sets the lowest priority the handler gets.  The default is
 * VMS_LOG_PRIORITY_ERROR, or VMS_LOG_PRIORITY_DEBUG when VMSHARE_DEBUG=1
 * was set when the context was created.
 */
void vms_context_set_log_priority(struct vms_context *ctx,
				  enum vms_log_priority priority);

/** @return the lowest priority the handler gets. */
enum vms_log_priority vms_context_get_log_priority(
	const struct vms_context *ctx);

/** Stores a pointer for the application (a log handler may want it). */
void vms_context_set_user_data(struct vms_context *ctx, void *data);

/** @return the pointer vms_context_set_user_data() stored, or NULL. */
void *vms_context_get_user_data(const struct vms_context *ctx);

/**
 * Creates a context on a /dev/vmemexp the caller opened: for a process
 * that may not open the device itself, to which a portal, logind
 * (TakeDevice) or a sandbox's broker hands one.  The context then behaves
 * as vms_context_create(VMS_CONTEXT_REQUIRE_MODULE) would.
 *
 * @param fd     /dev/vmemexp, opened read-write; the context owns it from
 *               this call on (it is made close-on-exec) and closes it,
 *               also when the call fails (unless it was no open fd)
 * @param flags  0: none defined yet
 * @return the context, or NULL with errno set: EINVAL for flags, EBADF
 *         when @p fd is not open, ENOTTY when it is not /dev/vmemexp
 */
struct vms_context *vms_context_create_from_fd(int fd, uint32_t flags);

/** Adds a reference. */
struct vms_context *vms_context_ref(struct vms_context *ctx);

/**
 * Drops a reference.  The context lives on while a buffer, vms_wl or
 * vms_x11 made from it does; the last reference closes /dev/vmemexp and
 * frees the memory of its vms_frame_alloc() still allocated, so frame
 * memory is the application's to use only while it holds the context.
 *
 * Threads: a context may be shared by threads that export and release
 * buffers and allocate and free frame memory concurrently (the reuse of
 * exports and the list of frame memory are locked; references are
 * atomic); one buffer, wl or x11 object must not be used by two threads
 * at once.
 */
struct vms_context *vms_context_unref(struct vms_context *ctx);

/**
 * @return true when exports go through vmemexp, false when they fall back,
 *         and why in vms_context_module_status(): 0 when in use, else a
 *         negative errno (-ENODEV when /dev/vmemexp is missing, -EACCES
 *         when it may not be opened...), like every int this library
 *         returns
 */
bool vms_context_has_module(const struct vms_context *ctx);
int vms_context_module_status(const struct vms_context *ctx);

/** How a buffer's fd relates to the memory it was made from. */
enum vms_buffer_kind {
	/** A dma-buf of the very pages: zero-copy, through vmemexp. */
	VMS_BUFFER_DMABUF = 1,
	/** A sealed memfd holding a copy; vms_buffer_refresh() updates it. */
	VMS_BUFFER_MEMFD_COPY = 2,
	/** Memory allocated by vms_buffer_alloc(): a memfd, zero-copy. */
	VMS_BUFFER_MEMFD = 3,
};

/** Flags of vms_buffer_export(). */
enum vms_export_flags {
	/** Peers and devices may only read the buffer. */
	VMS_EXPORT_RDONLY = 1u << 0,
	/** Fail instead of falling back to a copy. */
	VMS_EXPORT_ZERO_COPY = 1u << 1,
	/**
	 * The memory is a carve-out another driver mapped (VM_IO/VM_PFNMAP,
	 * e.g. an RTOS's shared memory): export it through vmemexp's
	 * carve-out path, which needs CAP_SYS_RAWIO and a range the
	 * administrator declared (docs/module.md, "Carve-outs").
	 */
	VMS_EXPORT_CARVEOUT = 1u << 2,
	/**
	 * Export a range that does not start and end on page boundaries as
	 * it is.  A dma-buf holds whole pages, so every peer and device that
	 * gets the buffer also gets the rest of the range's first and last
	 * page, with the buffer's access (read-write unless
	 * VMS_EXPORT_RDONLY): whatever else lives there, such as the
	 * neighbouring malloc() blocks and the allocator's own bookkeeping
	 * in front of this one, which a hostile peer can then read and
	 * overwrite.  Without this flag such a range is copied instead (or
	 * refused under VMS_EXPORT_ZERO_COPY) unless it lies in memory from
	 * vms_frame_alloc(), whose pages hold nothing else.
	 */
	VMS_EXPORT_EXPOSE_WHOLE_PAGES = 1u << 3,
};

/**
 * Makes [ptr, ptr + len) shareable.  Through vmemexp the buffer's fd is a
 * dma-buf of the very pages; where the module is missing or refuses the
 * memory (a driver mapping, over RLIMIT_MEMLOCK...), the data is copied
 * into a sealed memfd instead, unless VMS_EXPORT_ZERO_COPY is given.
 * vms_buffer_kind() says which, and vms_buffer_copy_reason() why.  A copy
 * of a read-only export is sealed against every write.  No copy is made
 * where it could not stand in for the memory: a range with a hole
 * (EFAULT) or larger than the module allows (E2BIG) fails.
 *
 * A dma-buf holds whole pages, so only a range whose start and end are
 * page-aligned, or that lies in memory from vms_frame_alloc(), is
 * exported as it is; any other range is copied (or refused with EINVAL
 * under VMS_EXPORT_ZERO_COPY) unless @p flags has
 * VMS_EXPORT_EXPOSE_WHOLE_PAGES.  Plain malloc() memory is rarely
 * page-aligned: allocate frames with vms_frame_alloc().
 *
 * Exporting the same memory (same @p ptr, @p len and @p flags) again while
 * an earlier dma-buf export of it lives returns that buffer again, with
 * one more reference for vms_buffer_unref(), as long as vmemexp reports
 * that the range still shows the exported pages; after anything remapped
 * it (munmap and a new mapping at the same address, mremap, madvise...)
 * a fresh export is made.  So a producer may export its frame
 * every time it sends it and pay for the export only once.
 *
 * @param ctx    the context
 * @param ptr    start of the memory
 * @param len    length in bytes, greater than zero
 * @param flags  a combination of enum vms_export_flags
 * @return the buffer, or NULL with errno set: EINVAL for bad arguments,
 *         EFAULT or E2BIG from vmemexp (above), and with
 *         VMS_EXPORT_ZERO_COPY EINVAL for a range that is not page-aligned
 *         (see above) or whatever vmemexp refused with (EACCES, EPERM,
 *         ENOMEM, ENOSPC, EAGAIN, ENODEV when missing)
 */
struct vms_buffer *vms_buffer_export(struct vms_context *ctx, const void *ptr,
				     size_t len, uint32_t flags);

/** One range of vms_buffer_export_planes(). */
struct vms_range {
	const void *ptr;
	size_t len;
};

/**
 * Exports several ranges of one frame (the planes of NV12, say) as one
 * buffer, when together they cover one stretch of memory: each range must
 * begin no later than the page after the previous one ends.  Plane i then
 * lies at vms_buffer_range_offset(buf, i) in the fd.  The stretch from the
 * first range's start to the last one's end is what is exported, under
 * vms_buffer_export()'s rules for ranges that are not page-aligned.
 *
 * @param ctx     the context
 * @param ranges  the ranges, in address order, at most 4
 * @param count   number of ranges, at least 1
 * @param flags   a combination of enum vms_export_flags, as for
 *                vms_buffer_export()
 * @return the buffer, or NULL with errno set (EINVAL when the ranges are
 *         not in order or are too far apart to share one buffer; otherwise
 *         as vms_buffer_export())
 */
struct vms_buffer *vms_buffer_export_planes(struct vms_context *ctx,
					    const struct vms_range *ranges,
					    size_t count, uint32_t flags);

/**
 * Allocates memory backed by a memfd, shareable with no copy and no
 * module.  vms_buffer_data() is the memory; it is zero-filled.
 *
 * @param ctx   the context; the buffer holds a reference on it
 * @param size  bytes, greater than zero
 * @return the buffer, or NULL with errno set
 */
struct vms_buffer *vms_buffer_alloc(struct vms_context *ctx, size_t size);

/**
 * Allocates memory for frames that vms_buffer_export() shares with no
 * copy and without exposing anything else, whatever @p size is: a
 * mapping of its own, page-aligned, @p size rounded up to whole pages,
 * zero-filled.  From 2 MiB (the PMD size) on it starts on a 2 MiB
 * boundary and asks for transparent huge pages (MADV_HUGEPAGE), so an
 * export pins a run per huge page and peers map each with one entry.
 * A range inside it is exported without
 * VMS_EXPORT_EXPOSE_WHOLE_PAGES: the library widens it to the whole
 * pages it touches, which belong to this block alone, so a peer of
 * [p, p + size) sees the frame and the zeroes after it, and a peer of a
 * smaller range at most the rest of this block's pages around it (keep
 * in one block only what all its peers may see).
 *
 * The caller owns the memory and frees it with vms_frame_free().  Peers
 * and devices holding an export of it keep its pages after that, never
 * memory the process allocates later at the same address.
 *
 * @param ctx   the context whose exports know the block; blocks still
 *              allocated when it is destroyed are freed with it
 * @param size  bytes, greater than zero
 * @return the memory, or NULL with errno set (EINVAL for a zero @p size
 *         or one that cannot be rounded up, ENOMEM)
 */
void *vms_frame_alloc(struct vms_context *ctx, size_t size);

/**
 * Frees memory from vms_frame_alloc() of the same context.  Destroy the
 * buffers exported from it first: their vms_buffer_data() points into it.
 * Accepts NULL; a pointer that does not start such a block is left alone
 * (VMSHARE_DEBUG=1 logs it).
 */
void vms_frame_free(struct vms_context *ctx, void *ptr);

/** Adds a reference. */
struct vms_buffer *vms_buffer_ref(struct vms_buffer *buf);

/**
 * Drops a reference (vms_buffer_export() may return a buffer again, with
 * one more); the last releases the buffer: closes its fd, unmaps the
 * memory of a buffer from vms_buffer_alloc(), and drops its reference on
 * the context.  Peers that received the fd keep the pages.
 */
struct vms_buffer *vms_buffer_unref(struct vms_buffer *buf);

/** @return the buffer's fd; owned by the buffer, valid until destroy. */
int vms_buffer_fd(const struct vms_buffer *buf);

/** @return the size of the fd's object in bytes (whole pages). */
uint64_t vms_buffer_size(const struct vms_buffer *buf);

/** @return where the exported pointer lies inside the fd. */
uint64_t vms_buffer_offset(const struct vms_buffer *buf);

/**
 * @return where range @p index of vms_buffer_export_planes() lies inside
 *         the fd (index 0 is vms_buffer_offset()), or UINT64_MAX when
 *         there is no such range
 */
uint64_t vms_buffer_range_offset(const struct vms_buffer *buf, size_t index);

/**
 * @return the number of physically contiguous runs of a dma-buf's pages
 *         (1: usable by a device without scatter-gather), or 0 for memfds,
 *         whose layout the kernel does not report
 */
uint32_t vms_buffer_segments(const struct vms_buffer *buf);

/** @return the memory the buffer shares (the pointer it was made from). */
void *vms_buffer_data(const struct vms_buffer *buf);

/** @return the length of the memory the buffer shares, in bytes. */
size_t vms_buffer_length(const struct vms_buffer *buf);

/** @return how the buffer shares its memory. */
enum vms_buffer_kind vms_buffer_kind(const struct vms_buffer *buf);

/** @return whether the buffer is read-only for peers. */
bool vms_buffer_is_readonly(const struct vms_buffer *buf);

/**
 * @return why a VMS_BUFFER_MEMFD_COPY is a copy (a sentence), or NULL for
 *         zero-copy buffers
 */
const char *vms_buffer_copy_reason(const struct vms_buffer *buf);

/**
 * Copies the memory into a VMS_BUFFER_MEMFD_COPY buffer's memfd again,
 * after the producer changed it and before it tells a peer so.  Zero-copy
 * buffers need nothing: returns 0.
 *
 * @return 0, or a negative errno
 */
int vms_buffer_refresh(struct vms_buffer *buf);

/** Access directions for the CPU-access brackets. */
enum vms_access {
	VMS_ACCESS_READ = 1u << 0,
	VMS_ACCESS_WRITE = 1u << 1,
};

/**
 * Brackets CPU access to the memory while devices may also use it
 * (DMA_BUF_IOCTL_SYNC on a dma-buf; nothing to do for memfds).
 *
 * @param buf     the buffer
 * @param access  VMS_ACCESS_READ and/or VMS_ACCESS_WRITE
 * @return 0, or a negative errno (EINVAL for a bad @p access)
 */
int vms_buffer_begin_cpu_access(struct vms_buffer *buf, uint32_t access);
int vms_buffer_end_cpu_access(struct vms_buffer *buf, uint32_t access);

/** The most planes a frame can have. */
#define VMS_MAX_PLANES 4
/** The most frames one message can carry. */
#define VMS_MAX_FRAMES 16

/** Flags of struct vms_frame. */
enum vms_frame_flags {
	/** The fd is read-only: map it read-only. */
	VMS_FRAME_RDONLY = 1u << 0,
};

/**
 * What a peer needs to know about one buffer: where the frame lies in the
 * fd and how it is laid out.  Sent next to the fd; a receiver checks it
 * against the fd before trusting it.
 */
struct vms_frame {
	uint64_t size;          /**< size of the fd's object */
	uint32_t width;         /**< pixels (bytes when fourcc is 0) */
	uint32_t height;        /**< rows */
	uint32_t fourcc;        /**< DRM_FORMAT_*, or 0: opaque bytes */
	uint32_t n_planes;      /**< 1 to VMS_MAX_PLANES */
	uint64_t plane_offsets[VMS_MAX_PLANES]; /**< where each plane starts in the fd */
	uint32_t strides[VMS_MAX_PLANES];       /**< bytes per row */
	uint64_t tag;           /**< the application's, passed unchanged */
	uint32_t flags;         /**< enum vms_frame_flags */
	uint32_t reserved;      /**< 0 */
	/**
	 * The DRM format modifier: DRM_FORMAT_MOD_LINEAR (0), the layout
	 * of all memory vmshare shares and the only one vms_recv() takes
	 * (the planes' offsets and strides describe no other), so a frame
	 * of a wire version 1 sender, which has no such field, is linear.
	 */
	uint64_t modifier;
};

/**
 * Describes a buffer holding one image of @p fourcc in @p frame: size,
 * offsets (planes packed after plane 0 at @p stride-derived sizes, or from
 * vms_buffer_export_planes()), strides and flags.
 *
 * @param frame   filled in
 * @param buf     the buffer the frame lies in (its size, offset and
 *                planes' ranges)
 * @param width   pixels
 * @param height  rows
 * @param fourcc  DRM_FORMAT_*, one vmshare knows (see vms_frame)
 * @param stride  bytes per row of plane 0; later planes follow the format
 * @return 0, or -EINVAL for an unknown format or a layout that does not
 *         fit in the buffer
 */
int vms_frame_describe(struct vms_frame *frame, const struct vms_buffer *buf,
		       uint32_t width, uint32_t height, uint32_t fourcc,
		       uint32_t stride);

/**
 * Sends frames and their fds in one message over a connected
 * SOCK_STREAM or SOCK_SEQPACKET UNIX socket (SCM_RIGHTS).  Never raises
 * SIGPIPE; retries on EINTR.
 *
 * @param sock   a connected UNIX socket
 * @param frames one description per fd
 * @param fds    one fd per frame; borrowed, the caller still owns them
 * @param count  1 to VMS_MAX_FRAMES
 * @return 0, or a negative errno (EPIPE when the peer is gone)
 */
int vms_send(int sock, const struct vms_frame *frames, const int *fds,
	     size_t count);

/** Sends buffers with their descriptions: vms_send() of their fds. */
int vms_send_buffers(int sock, const struct vms_frame *frames,
		     struct vms_buffer *const *bufs, size_t count);

/**
 * Receives one message sent by vms_send().  Every frame is checked against
 * its fd (the fd's real size, offsets, strides, format, dimensions up to
 * 65536 pixels) before it is returned, and every fd must be one whose size
 * the sender cannot change: a dma-buf, or a memfd sealed with
 * F_SEAL_SHRINK.  On any error every fd that arrived is closed.
 *
 * For a blocking socket.  On a non-blocking one it returns -EAGAIN only
 * when no message has begun; once one has, it waits up to a second for
 * the rest (-ETIMEDOUT after that), since it cannot keep a part for a
 * later call.  An event loop uses a vms_receiver instead.
 *
 * Senders and receivers of different versions understand each other: a
 * message of an earlier version lacks fields, which read as 0 (the
 * modifier: linear); a later version's fields are skipped (docs/library.md,
 * "Wire format").
 *
 * What the caller does after an error: on SOCK_STREAM, after EPROTO or
 * ECONNRESET the stream may have no boundary left to find the next
 * message by: close it.  After the other errors the bad message was read
 * whole and dropped, and the next one can be received.  On SOCK_SEQPACKET
 * every message is a record of its own: after any error but ECONNRESET,
 * read on.
 *
 * @param sock    a connected UNIX socket
 * @param frames  room for @p max frames
 * @param fds     room for @p max fds; on success the caller owns them
 * @param max     room in @p frames and @p fds, at least 1
 * @return the number of frames, 0 when the peer closed the connection
 *         between messages, or a negative errno: ECONNRESET (closed
 *         mid-message), EPROTO (not a vmshare message: a header of
 *         another magic, a version 0, sizes no version has, a frame
 *         count of 0 or over VMS_MAX_FRAMES, flags asking for what this
 *         version cannot do, or an empty record), ENOMSG (a message of a type this version does not
 *         know, as a later version's release message), EMSGSIZE (more
 *         frames than @p max, fds truncated, a record longer than any
 *         message), EBADMSG (fds missing or in excess, an fd that could
 *         shrink, or a frame that does not fit its own description),
 *         EOVERFLOW (a frame claims more than its fd holds), ETIMEDOUT
 *         (see above), ENOTSOCK (@p sock is not a stream, seqpacket or
 *         datagram socket)
 */
int vms_recv(int sock, struct vms_frame *frames, int *fds, size_t max);

/**
 * A receiver for an event loop: vms_receiver_read() returns -EAGAIN while
 * a message is incomplete on a non-blocking socket and keeps what arrived
 * of it (bytes and fds) for the next call.
 *
 * @param sock  borrowed: the receiver neither closes it nor changes its
 *              flags; it must stay open while the receiver lives
 * @return the receiver, or NULL with errno set (ENOTSOCK, ENOMEM)
 */
struct vms_receiver *vms_receiver_create(int sock);

/** Adds a reference; a receiver is used by one thread at a time. */
struct vms_receiver *vms_receiver_ref(struct vms_receiver *r);

/** Drops a reference; the last closes the fds of a message it had begun. */
struct vms_receiver *vms_receiver_unref(struct vms_receiver *r);

/**
 * Reads what the socket has towards the next message, as vms_recv():
 * the same checks and the same return values, and what to do after an
 * error is the same, except that -EAGAIN means "not yet": call again when
 * the socket is readable.  On SOCK_STREAM, once it returned EPROTO or
 * ECONNRESET it keeps returning that error.
 */
int vms_receiver_read(struct vms_receiver *r, struct vms_frame *frames,
		      int *fds, size_t max);

/**
 * Maps a received fd as described by @p frame: read-only when the frame
 * or the fd says so.  A frame of 2 MiB or more is mapped at a 2 MiB
 * boundary, where huge pages of the exporter's memory can be mapped
 * whole (vmemexp on Linux 6.12 and later).
 *
 * @param fd     borrowed; the mapping keeps its own duplicate
 * @param frame  its description, as vms_recv() checked it
 * @return the mapping, or NULL with errno set (EOVERFLOW when the frame
 *         claims more than the fd holds, or mmap's error)
 */
struct vms_mapping *vms_mapping_create(int fd, const struct vms_frame *frame);

/** Adds a reference. */
struct vms_mapping *vms_mapping_ref(struct vms_mapping *map);

/** Drops a reference; the last unmaps and closes the mapping's fd. */
struct vms_mapping *vms_mapping_unref(struct vms_mapping *map);

/** @return the address of plane @p plane, or NULL when there is none. */
void *vms_mapping_plane(const struct vms_mapping *map, uint32_t plane);

/** @return whether the mapping is read-only. */
bool vms_mapping_is_readonly(const struct vms_mapping *map);

/** CPU-access brackets for the peer's side; see vms_buffer_begin_cpu_access(). */
int vms_mapping_begin_cpu_access(struct vms_mapping *map, uint32_t access);
int vms_mapping_end_cpu_access(struct vms_mapping *map, uint32_t access);

/*
 * Wayland: memory to wl_buffers.  Always declared and exported; they work
 * when libvmshare was built with libwayland-client (its pkg-config file
 * then defines VMSHARE_HAVE_WAYLAND), and otherwise vms_wl_create() fails
 * with ENOTSUP.
 */
struct wl_display;
struct wl_buffer;
struct wl_surface;

/** A connection's dma-buf and shm globals, bound for libvmshare's use. */
struct vms_wl;
/** One frame's memory presented as a wl_buffer. */
struct vms_wl_buffer;

/** How a vms_wl_buffer reaches the compositor. */
enum vms_wl_path {
	/** zwp_linux_dmabuf_v1 with a dma-buf of the memory: no copy. */
	VMS_WL_PATH_DMABUF = 1,
	/** A wl_shm pool the memory is copied into by vms_wl_buffer_update(). */
	VMS_WL_PATH_SHM = 2,
};

/** Flags of vms_wl_create(). */
enum vms_wl_flags {
	/**
	 * Never use linux-dmabuf (as if the compositor lacked it).  Setting
	 * the environment variable VMSHARE_WL_NO_DMABUF=1 does the same for
	 * an application that cannot be changed.
	 */
	VMS_WL_NO_DMABUF = 1u << 0,
	/**
	 * Export frames that do not start and end on page boundaries with
	 * VMS_EXPORT_EXPOSE_WHOLE_PAGES: the compositor, and every device it
	 * hands the dma-buf to, gets the whole first and last page of each
	 * frame read-write, neighbouring data included.  Without it such a
	 * frame takes the wl_shm path unless it lies in memory from
	 * vms_frame_alloc().
	 */
	VMS_WL_EXPOSE_WHOLE_PAGES = 1u << 1,
};

/**
 * Binds zwp_linux_dmabuf_v1 (version 4 at most) and wl_shm of @p display
 * on a private event queue, and learns which formats the compositor takes
 * with which modifiers (two roundtrips): from format and modifier events
 * up to version 3, from the default feedback's format table with version
 * 4.  Feedback that cannot be trusted (a table whose size is not a
 * multiple of 16 bytes or that cannot be mapped, an index past its end)
 * counts as no dma-buf format at all: every buffer then takes the wl_shm
 * path, and vms_wl_buffer_fallback_reason() says what was wrong.
 *
 * @param ctx      the context exports go through; the result holds a
 *                 reference on it
 * @param display  the application's connection; must outlive the result
 * @param flags    enum vms_wl_flags
 * @return the object, or NULL with errno set (EINVAL for bad arguments,
 *         EPROTO when the compositor offers neither linux-dmabuf nor
 *         wl_shm, EPIPE when the connection failed, ENOTSUP when
 *         libvmshare was built without Wayland support)
 */
struct vms_wl *vms_wl_create(struct vms_context *ctx,
			     struct wl_display *display, uint32_t flags);

/** Adds a reference. */
struct vms_wl *vms_wl_ref(struct vms_wl *wl);

/**
 * Drops a reference.  Its buffers hold one each; the last destroys the
 * private queue and globals and drops the reference on the context.  The
 * wl_display must outlive every vms_wl and vms_wl_buffer made on it.
 */
struct vms_wl *vms_wl_unref(struct vms_wl *wl);

/**
 * @return whether the compositor takes @p fourcc as a dma-buf (with the
 *         linear or the implicit modifier)
 */
bool vms_wl_supports_dmabuf(const struct vms_wl *wl, uint32_t fourcc);

/**
 * Presents the frame at @p data as a wl_buffer.  Plane 0 is @p height rows
 * of @p stride bytes.  Multi-plane formats are one block of memory: each
 * later plane starts right after the previous one's last row, with no gap,
 * and has a stride derived from @p stride (stride * its bytes per pixel /
 * plane 0's / horizontal subsampling) and height rounded up after
 * vertical subsampling.  So NV12 is height rows of Y, then
 * (height + 1) / 2 rows of interleaved UV at offset stride * height, also
 * @p stride bytes apart; YUV420 has U then V at stride / 2.  This is the
 * layout compositors assume for multi-plane wl_shm buffers too, which
 * carry no plane offsets; over linux-dmabuf each plane is added with its
 * own offset and stride into one export of the whole block.  The memory
 * is exported and imported once; when the same memory with the
 * same layout is presented again while its buffer lives, that buffer is
 * returned again with one more reference.  "The same memory" is known,
 * not guessed from the address: memory freed and allocated again at the
 * same address gets a new buffer (the old one, still showing the freed
 * pages, stays its holders'), and so does every call where vmemexp cannot
 * track exports (VMEMEXP_EXPORT_TRACK refused).  Falls back to a wl_shm pool
 * when the compositor lacks linux-dmabuf or the format, vmemexp is
 * missing or refuses the memory, the frame is not page-aligned (see
 * VMS_WL_EXPOSE_WHOLE_PAGES; memory from vms_frame_alloc() always is), or
 * the compositor refuses the import; vms_wl_buffer_path() and
 * vms_wl_buffer_fallback_reason() say so.
 *
 * The wl_buffer's events are dispatched on the display's default queue.
 *
 * @return the buffer, or NULL with errno set: EINVAL for a bad layout
 *         (a plane's rows longer than its derived stride, the frame over
 *         2 GiB), ENOTSUP when neither path takes @p fourcc (wl_shm only
 *         takes the formats the compositor lists for it), EPIPE when the
 *         connection failed
 */
struct vms_wl_buffer *vms_wl_buffer_create(struct vms_wl *wl, void *data,
					   uint32_t width, uint32_t height,
					   uint32_t stride, uint32_t fourcc);

/** Adds a reference. */
struct vms_wl_buffer *vms_wl_buffer_ref(struct vms_wl_buffer *buf);

/**
 * Drops a reference (vms_wl_buffer_create() may return a buffer again,
 * with one more); the last destroys the wl_buffer and drops the buffer's
 * reference on its vms_wl.
 */
struct vms_wl_buffer *vms_wl_buffer_unref(struct vms_wl_buffer *buf);

/** @return the wl_buffer to attach; owned by @p buf. */
struct wl_buffer *vms_wl_buffer_get(const struct vms_wl_buffer *buf);

/**
 * Makes what was drawn into the memory visible to the compositor; call
 * after drawing and before vms_wl_buffer_attach().  The dma-buf path only
 * ends CPU access; the shm path copies the memory into its pool.
 *
 * Draw only into a buffer that is not busy: while the compositor holds
 * it, it may read the memory (a dma-buf is the memory itself) at any
 * moment, so a frame drawn then may be shown half-drawn.
 *
 * @return 0, or -EBUSY when the compositor still holds the buffer (on
 *         both paths: wait for its release), or another negative errno
 */
int vms_wl_buffer_update(struct vms_wl_buffer *buf);

/**
 * Attaches the buffer to @p surface (wl_surface.attach at @p x, @p y) and
 * marks it busy: held by the compositor from the commit that follows
 * until its wl_buffer.release.  Commit the surface next.  Safe against a
 * release handled on another thread.
 *
 * @return 0, or -EBUSY when the buffer is busy (the compositor has not
 *         released it yet; nothing is attached)
 */
int vms_wl_buffer_attach(struct vms_wl_buffer *buf, struct wl_surface *surface,
			 int32_t x, int32_t y);

/** @return whether the compositor holds the buffer (attached, not released). */
bool vms_wl_buffer_is_busy(const struct vms_wl_buffer *buf);

/**
 * Called when the compositor releases the buffer, after it stopped being
 * busy: the moment to draw the next frame into it.  Runs on the thread
 * that dispatches the display's default queue.
 */
typedef void (*vms_wl_release_handler)(void *data, struct vms_wl_buffer *buf);

/**
 * Sets (or, with NULL, clears) the buffer's release handler.  The library
 * owns the wl_buffer's listener, so this is how the application hears of
 * the release.  A buffer returned again for the same memory
 * (vms_wl_buffer_create()) has one handler: the last one set.
 */
void vms_wl_buffer_set_release_handler(struct vms_wl_buffer *buf,
				       vms_wl_release_handler handler,
				       void *data);

/** @return the path the buffer takes. */
enum vms_wl_path vms_wl_buffer_path(const struct vms_wl_buffer *buf);

/** @return why a VMS_WL_PATH_SHM buffer is not a dma-buf, or NULL. */
const char *vms_wl_buffer_fallback_reason(const struct vms_wl_buffer *buf);

#ifdef __cplusplus
}
#endif

#endif /* VMSHARE_H */
