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
 * struct vmemexp_buffer - pinned pages behind one exported dma-buf
 * @pages: the pinned pages, in address order.
 * @nr_pages: number of entries in @pages.
 * @nr_segments: physically contiguous runs in @pages.
 * @writable: pinned with FOLL_WRITE; importers may write.
 * @mm: the exporter's mm, charged in pinned_vm for @nr_pages; held with
 *	mmgrab() so the charge can be returned after the exporter exits.
 * @attachments: &struct vmemexp_attachment of every importer.
 * @vaddr: kernel mapping while vmapped, for cache maintenance.
 */
struct vmemexp_buffer {
	struct page **pages;
	unsigned long nr_pages;
	unsigned int nr_segments;
	bool writable;
	struct mm_struct *mm;
	struct mutex lock;	/* protects @attachments and @vaddr */
	struct list_head attachments;
	void *vaddr;
};

struct vmemexp_buffer *vmemexp_buffer_pin(unsigned long start,
					  unsigned long nr_pages,
					  bool writable);
void vmemexp_buffer_unpin(struct vmemexp_buffer *buf);

struct dma_buf *vmemexp_dmabuf_export(struct vmemexp_buffer *buf);

#endif /* _VMEMEXP_H */
