/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vmemexp: export a range of the calling process's memory as a dma-buf.
 *
 * The pages of the range are pinned for as long as the dma-buf exists, so a
 * peer process (mmap of the fd) or a driver (dma_buf_attach) sees the very
 * memory the exporter wrote, without a copy.  Cache maintenance for CPU
 * access is the standard DMA_BUF_IOCTL_SYNC on the returned fd.
 */
#ifndef _UAPI_LINUX_VMEMEXP_H
#define _UAPI_LINUX_VMEMEXP_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Export read-only: the dma-buf file is O_RDONLY and no importer may write. */
#define VMEMEXP_EXPORT_RDONLY	0x1u
/* Set close-on-exec on the new dma-buf fd. */
#define VMEMEXP_EXPORT_CLOEXEC	0x2u
/*
 * Export memory another driver mapped with remap_pfn_range() (VM_IO or
 * VM_PFNMAP), which has no pages to pin.  Needs CAP_SYS_RAWIO, and every
 * page of the range must lie in one carve-out the administrator declared
 * (module parameter "carveouts"); anything else is refused with EPERM, and
 * a range that is not entirely such a mapping with EINVAL.
 */
#define VMEMEXP_EXPORT_PFNMAP	0x4u
/*
 * Keep track of whether the exporter's range still shows the exported
 * pages, for VMEMEXP_IOC_STATUS: an exporter can then reuse the dma-buf
 * for the same memory instead of exporting it again.
 */
#define VMEMEXP_EXPORT_TRACK	0x8u
/*
 * Accept a range whose start or end is not page-aligned.  A dma-buf holds
 * whole pages, so the importers then get all of the first and the last
 * page, the bytes around the range included, with the access of the
 * export: whatever else lives there (another malloc() chunk, the
 * allocator's own chunk headers) is exposed to them.  Without this flag
 * such a range is refused with EINVAL.
 */
#define VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES	0x10u

#define VMEMEXP_EXPORT_VALID_FLAGS (VMEMEXP_EXPORT_RDONLY | \
				    VMEMEXP_EXPORT_CLOEXEC | \
				    VMEMEXP_EXPORT_PFNMAP | \
				    VMEMEXP_EXPORT_TRACK | \
				    VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES)

/**
 * struct vmemexp_export - argument of %VMEMEXP_IOC_EXPORT
 * @addr: in: start of the range in the caller's address space,
 *	page-aligned unless VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES is given.
 * @len: in: length of the range in bytes, greater than zero; @addr + @len
 *	page-aligned unless VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES is given.
 * @flags: in: a combination of VMEMEXP_EXPORT_* flags; unknown bits are
 *	rejected with EINVAL.
 * @fd: out: the new dma-buf file descriptor; must be 0 on input.
 * @offset: out: where @addr lies inside the dma-buf (the range is widened
 *	to whole pages); must be 0 on input.
 * @size: out: size of the dma-buf, a multiple of the page size; must be 0
 *	on input.
 * @nr_segments: out: number of physically contiguous runs of the pinned
 *	pages after merging; 1 means a device without scatter-gather can
 *	use the buffer.  Must be 0 on input.
 * @status_slot: out: with VMEMEXP_EXPORT_TRACK, the export's word in the
 *	status page of the /dev/vmemexp file it was made through (see
 *	below); VMEMEXP_STATUS_NO_SLOT without the flag or when every slot
 *	of that page is taken.  Must be 0 on input.
 * @reserved: must be 0; room for later extensions.
 */
struct vmemexp_export {
	__u64 addr;
	__u64 len;
	__u32 flags;
	__s32 fd;
	__u64 offset;
	__u64 size;
	__u32 nr_segments;
	__u32 status_slot;
	__u64 reserved[2];
};

/*
 * The status page: mmap() of a /dev/vmemexp file, one page at offset 0,
 * MAP_SHARED and PROT_READ only (EINVAL for another size, offset or a
 * private mapping, EPERM for PROT_WRITE or PROT_EXEC).  It holds one
 * __u32 per slot.  The word of a tracked export's @status_slot reads 0
 * while VMEMEXP_IOC_STATUS would report VMEMEXP_STATUS_CURRENT and
 * nonzero from the first change on, so the exporter can check before
 * reusing a dma-buf without a system call.  The slot is the export's
 * until the dma-buf is released; only the exporting process may rely on
 * it (after fork the child's range is another one: ask the ioctl).
 */
#define VMEMEXP_STATUS_NO_SLOT	0xffffffffu

/* The exporter's range still shows the pages the dma-buf holds. */
#define VMEMEXP_STATUS_CURRENT	0x1u

/**
 * struct vmemexp_status - argument of %VMEMEXP_IOC_STATUS
 * @fd: in: a dma-buf this process exported with VMEMEXP_EXPORT_TRACK.
 * @flags: out: VMEMEXP_STATUS_* flags; must be 0 on input.
 * @reserved: must be 0.
 *
 * VMEMEXP_STATUS_CURRENT is clear as soon as anything unmapped or replaced
 * pages of the exported range (munmap, mremap, madvise, copy-on-write...)
 * since the export, even a change that kept the pages; protection changes
 * (mprotect) do not count: a clear flag means "export again", a set one
 * "the dma-buf still is this memory".  Errors: EBADF for a bad fd, EINVAL for an fd that is not
 * a vmemexp dma-buf or nonzero input fields, EOPNOTSUPP for an export
 * without VMEMEXP_EXPORT_TRACK, EPERM for another process's export.
 */
struct vmemexp_status {
	__s32 fd;
	__u32 flags;
	__u64 reserved[3];
};

#define VMEMEXP_IOC_MAGIC	0xB6
#define VMEMEXP_IOC_EXPORT	_IOWR(VMEMEXP_IOC_MAGIC, 0x00, struct vmemexp_export)
#define VMEMEXP_IOC_STATUS	_IOWR(VMEMEXP_IOC_MAGIC, 0x01, struct vmemexp_status)

#endif /* _UAPI_LINUX_VMEMEXP_H */
