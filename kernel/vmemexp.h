/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interfaces shared by the parts of vmemexp.ko.
 */
#ifndef _VMEMEXP_H
#define _VMEMEXP_H

#include <linux/err.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/vmemexp.h>

struct cred;
struct dma_buf;
struct file;
struct vm_area_struct;
struct vmemexp_status_page;
struct vmemexp_track;

/**
 * struct vmemexp_run - physically contiguous pages of a buffer
 * @pfn: the first page frame of the run
 * @pgoff: where the run starts in the buffer, in pages; a run ends where
 *	the next begins
 *
 * Runs hold page frame numbers rather than struct pages because carve-out
 * memory may have none.
 */
struct vmemexp_run {
	unsigned long pfn;
	pgoff_t pgoff;
};

/**
 * struct vmemexp_carveout - physical memory the administrator declared
 *	exportable from VM_IO/VM_PFNMAP mappings
 * @start_pfn: first page frame
 * @end_pfn: one past the last
 * @struct_pages: the range has struct pages, all PageReserved (RAM held
 *	back at boot); otherwise it has none at all
 * @linear: the range is System RAM in the kernel's linear map, so the
 *	page-based interfaces (page_address(), swiotlb bouncing, cache
 *	maintenance by virtual address) work on it.  Memory held back with
 *	memmap=nn$ss or a no-map reserved-memory node has struct pages but
 *	no linear mapping: it goes to importers as DMA addresses only.
 * @writecombine: map it write-combined for the CPU rather than cached
 */
struct vmemexp_carveout {
	unsigned long start_pfn;
	unsigned long end_pfn;
	bool struct_pages;
	bool linear;
	bool writecombine;
};

/**
 * struct vmemexp_buffer - the memory behind one exported dma-buf
 * @runs: the pages as physically contiguous runs, in address order;
 *	merged once at export so unpinning, DMA tables and faults work per
 *	run instead of per page
 * @nr_runs: entries in @runs
 * @runs_room: entries @runs has room for; it doubles when full, up to
 *	@runs_max
 * @runs_max: one run per page of the buffer, the most it can need
 * @nr_pages: pages in the buffer
 * @writable: pinned with FOLL_WRITE; importers may write.
 * @carveout: NULL for pinned user memory; else the declared carve-out all
 *	of the buffer lies in.
 * @owner_files: for a carve-out, a reference to the file of every driver
 *	mapping the buffer was exported from: the owner keeps the memory
 *	behind a file's mappings allocated until the file is released
 *	(docs/module.md, "Carve-outs"), so these replace the pins.
 * @nr_owner_files: entries in @owner_files
 * @track: with VMEMEXP_EXPORT_TRACK, whether the exporter's range still
 *	shows these pages; else NULL
 * @pinned: @runs hold pins of user pages, to be unpinned at release
 * @folio_pins: those pins are one per folio (memfd_pin_folios()), not one
 *	per page (GUP)
 * @charged: pages charged to @charged_cred's user and to @mm's pinned_vm
 * @charged_cred: the exporter's credentials, whose user is charged in
 *	locked_vm against RLIMIT_MEMLOCK; NULL for a caller with
 *	CAP_IPC_LOCK and for a carve-out
 * @mm: the exporter's mm, whose pinned_vm shows @charged; held with
 *	mmgrab() so the count can be returned after the exporter exits.
 *	NULL for a carve-out, which pins and charges nothing.
 * @attachments: &struct vmemexp_attachment of every importer.
 * @vaddr: kernel mapping while vmapped, for cache maintenance.
 */
struct vmemexp_buffer {
	struct vmemexp_run *runs;
	unsigned int nr_runs;
	unsigned int runs_room;
	unsigned int runs_max;
	unsigned long nr_pages;
	bool writable;
	const struct vmemexp_carveout *carveout;
	struct file **owner_files;
	unsigned int nr_owner_files;
	struct vmemexp_track *track;
	bool pinned;
	bool folio_pins;
	unsigned long charged;
	const struct cred *charged_cred;
	struct mm_struct *mm;
	struct mutex lock;	/* protects @attachments and @vaddr */
	struct list_head attachments;
	void *vaddr;
};

static inline unsigned long vmemexp_run_pages(const struct vmemexp_buffer *buf,
					      unsigned int i)
{
	pgoff_t end = i + 1 < buf->nr_runs ? buf->runs[i + 1].pgoff :
					     buf->nr_pages;

	return end - buf->runs[i].pgoff;
}

/*
 * Whether the buffer's memory may go through the page-based DMA API and
 * kernel interfaces: pinned user memory and carve-outs of linear-mapped
 * RAM may; carve-outs without struct pages or without a linear mapping
 * are mapped for devices as physical resources instead.
 */
static inline bool vmemexp_page_based(const struct vmemexp_buffer *buf)
{
	return !buf->carveout || buf->carveout->linear;
}

/* Whether the buffer's memory has struct pages at all (for vmap()). */
static inline bool vmemexp_has_struct_pages(const struct vmemexp_buffer *buf)
{
	return !buf->carveout || buf->carveout->struct_pages;
}

struct vmemexp_buffer *vmemexp_buffer_alloc(unsigned long nr_pages,
					    bool writable);
int vmemexp_buffer_append(struct vmemexp_buffer *buf, unsigned long pfn,
			  unsigned long nr);
struct vmemexp_buffer *vmemexp_buffer_pin(unsigned long start,
					  unsigned long nr_pages,
					  bool writable);
void vmemexp_buffer_release(struct vmemexp_buffer *buf);

int vmemexp_carveouts_init(void);
struct vmemexp_buffer *vmemexp_buffer_from_pfnmap(unsigned long start,
						  unsigned long nr_pages,
						  bool writable);
void vmemexp_carveout_release(struct vmemexp_buffer *buf);

struct dma_buf *vmemexp_dmabuf_export(struct vmemexp_buffer *buf);
struct vmemexp_buffer *vmemexp_dmabuf_buffer(struct dma_buf *dmabuf);
int vmemexp_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma);

struct vmemexp_status_page *vmemexp_status_page_alloc(void);
void vmemexp_status_page_put(struct vmemexp_status_page *sp);
int vmemexp_status_page_mmap(struct vmemexp_status_page *sp,
			     struct vm_area_struct *vma);
u32 vmemexp_status_slot_get(struct vmemexp_status_page *sp);
void vmemexp_status_slot_changed(struct vmemexp_status_page *sp, u32 slot);
void vmemexp_status_slot_put(struct vmemexp_status_page *sp, u32 slot);

#ifdef CONFIG_MMU_NOTIFIER
struct vmemexp_track *vmemexp_track_start(struct vmemexp_status_page *status,
					  unsigned long start,
					  unsigned long len);
bool vmemexp_track_current(const struct vmemexp_track *track);
u32 vmemexp_track_slot(const struct vmemexp_track *track);
bool vmemexp_track_owned_by_current(const struct vmemexp_track *track);
void vmemexp_track_stop(struct vmemexp_track *track);
#else
/* Without MMU notifiers nothing can be tracked: the flag is refused. */
static inline struct vmemexp_track *
vmemexp_track_start(struct vmemexp_status_page *status, unsigned long start,
		    unsigned long len)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static inline bool vmemexp_track_current(const struct vmemexp_track *track)
{
	return false;
}

static inline u32 vmemexp_track_slot(const struct vmemexp_track *track)
{
	return VMEMEXP_STATUS_NO_SLOT;
}

static inline bool
vmemexp_track_owned_by_current(const struct vmemexp_track *track)
{
	return false;
}

static inline void vmemexp_track_stop(struct vmemexp_track *track)
{
}
#endif

#endif /* _VMEMEXP_H */
