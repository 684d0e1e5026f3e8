/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interfaces shared by the parts of vmemexp.ko.
 */
#ifndef _VMEMEXP_H
#define _VMEMEXP_H

#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/types.h>

struct dma_buf;

/**
 * struct vmemexp_run - physically contiguous pinned pages
 * @page: the first page of the run
 * @pgoff: where the run starts in the buffer, in pages; a run ends where
 *	the next begins
 */
struct vmemexp_run {
	struct page *page;
	pgoff_t pgoff;
};

/**
 * struct vmemexp_buffer - pinned pages behind one exported dma-buf
 * @runs: the pinned pages as physically contiguous runs, in address order;
 *	merged once at export so unpinning, DMA tables and faults work per
 *	run instead of per page
 * @nr_runs: entries in @runs
 * @nr_pages: pages in the buffer
 * @writable: pinned with FOLL_WRITE; importers may write.
 * @mm: the exporter's mm, charged in pinned_vm for @nr_pages; held with
 *	mmgrab() so the charge can be returned after the exporter exits.
 * @attachments: &struct vmemexp_attachment of every importer.
 * @vaddr: kernel mapping while vmapped, for cache maintenance.
 */
struct vmemexp_buffer {
	struct vmemexp_run *runs;
	unsigned int nr_runs;
	unsigned long nr_pages;
	bool writable;
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

struct vmemexp_buffer *vmemexp_buffer_pin(unsigned long start,
					  unsigned long nr_pages,
					  bool writable);
void vmemexp_buffer_unpin(struct vmemexp_buffer *buf);

struct dma_buf *vmemexp_dmabuf_export(struct vmemexp_buffer *buf);

#endif /* _VMEMEXP_H */
