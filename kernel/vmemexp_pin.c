// SPDX-License-Identifier: GPL-2.0
/*
 * Pinning a range of the caller's memory for export, and accounting for it.
 */
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "vmemexp.h"

/*
 * GUP fills one page pointer per page; a page's worth of them is pinned at
 * a time and folded into runs at once, so no per-page array as large as
 * the export is ever allocated, and a fatal signal can interrupt a large
 * export between batches.
 */
#define VMEMEXP_PIN_BATCH	(PAGE_SIZE / sizeof(struct page *))
#define VMEMEXP_MIN_RUNS	8
/* Failed write faults in a writable VMA before an export gives up. */
#define VMEMEXP_FAULT_IN_TRIES	4

/*
 * GUP reports every unexportable range as -EFAULT.  Walking the VMAs after
 * a failed pin gives each cause its own errno, so callers can tell a hole
 * from a permission problem from a driver mapping that has no pages to pin;
 * returns 0 when the VMAs explain nothing (a race with munmap, say).
 */
static int vmemexp_check_vmas(struct mm_struct *mm, unsigned long start,
			      unsigned long end, bool writable)
{
	struct vm_area_struct *vma;
	unsigned long pos = start;
	int ret = 0;

	if (mmap_read_lock_killable(mm))
		return -EINTR;

	while (pos < end) {
		vma = find_vma(mm, pos);
		if (!vma || vma->vm_start > pos) {
			ret = -EFAULT;
			break;
		}
		if (vma->vm_flags & (VM_IO | VM_PFNMAP)) {
			ret = -EPERM;
			break;
		}
		if (!(vma->vm_flags & VM_READ) ||
		    (writable && !(vma->vm_flags & VM_WRITE))) {
			ret = -EACCES;
			break;
		}
		pos = vma->vm_end;
	}

	mmap_read_unlock(mm);
	return ret;
}

/*
 * A read-only pin of a never-written anonymous page pins the shared zero
 * page, and the exporter's next write would then land in a fresh copy the
 * dma-buf never sees.  Resolve write faults (without writing) wherever the
 * exporter itself may write, so the pinned pages are the ones it keeps.
 * A write fault that fails where the exporter may write (out of memory,
 * found by fault injection) fails the export: going on would pin the zero
 * page.  Returns 0 or a negative errno.
 */
static int vmemexp_fault_in_writable(struct mm_struct *mm,
				     unsigned long start, unsigned long end)
{
	unsigned int tries = VMEMEXP_FAULT_IN_TRIES;
	struct vm_area_struct *vma;
	unsigned long next;
	bool may_write;
	size_t left;

	while (start < end) {
		if (fatal_signal_pending(current))
			return -EINTR;
		left = fault_in_safe_writeable((const char __user *)start,
					       end - start);
		if (!left)
			return 0;

		start = end - left;
		mmap_read_lock(mm);
		vma = find_vma(mm, start);
		may_write = vma && vma->vm_start <= start &&
			    (vma->vm_flags & VM_WRITE);
		next = vma ? max(vma->vm_end, start + 1) : end;
		mmap_read_unlock(mm);
		/*
		 * Writable, yet the fault failed: out of memory, or another
		 * thread remapped the page in between; try again a few times
		 * before calling it the former.
		 */
		if (may_write) {
			if (!--tries)
				return -ENOMEM;
			continue;
		}
		/* Not writable here: skip the rest of this VMA. */
		tries = VMEMEXP_FAULT_IN_TRIES;
		start = PAGE_ALIGN(next);
	}
	return 0;
}

/**
 * vmemexp_buffer_append - add physically contiguous page frames at the end
 * of a buffer
 * @buf: the buffer
 * @capacity: entries allocated in @buf->runs, updated as it grows
 * @pfn: the first page frame
 * @nr: how many frames follow from @pfn, at least one
 *
 * Extends the last run when @pfn follows it physically, so runs stay as
 * long as the memory is contiguous.
 *
 * Return: 0, or -ENOMEM when the run array could not grow; the frames are
 * then not part of the buffer.
 */
int vmemexp_buffer_append(struct vmemexp_buffer *buf, unsigned int *capacity,
			  unsigned long pfn, unsigned long nr)
{
	struct vmemexp_run *run;

	if (buf->nr_runs) {
		run = &buf->runs[buf->nr_runs - 1];
		if (pfn == run->pfn + (buf->nr_pages - run->pgoff)) {
			buf->nr_pages += nr;
			return 0;
		}
	}
	if (buf->nr_runs == *capacity) {
		unsigned int grown = max(*capacity * 2, VMEMEXP_MIN_RUNS);
		struct vmemexp_run *runs;

		runs = krealloc_array(buf->runs, grown, sizeof(*runs),
				      GFP_KERNEL_ACCOUNT);
		if (!runs)
			return -ENOMEM;
		buf->runs = runs;
		*capacity = grown;
	}
	run = &buf->runs[buf->nr_runs++];
	run->pfn = pfn;
	run->pgoff = buf->nr_pages;
	buf->nr_pages += nr;
	return 0;
}

/*
 * How many of @pages, from the first, are physically contiguous.  GUP
 * lists a large folio's subpages one by one, in order where the folio is
 * mapped in order, so a THP or hugetlb page comes out as one stretch that
 * costs a comparison per page instead of a call to vmemexp_buffer_append().
 */
static unsigned int vmemexp_contiguous(struct page **pages, unsigned int nr)
{
	unsigned long first = page_to_pfn(pages[0]);
	unsigned int i;

	for (i = 1; i < nr; i++)
		if (page_to_pfn(pages[i]) != first + i)
			break;
	return i;
}

static void vmemexp_unpin_runs(struct vmemexp_buffer *buf, bool dirty)
{
	unsigned int i;

	for (i = 0; i < buf->nr_runs; i++)
		unpin_user_page_range_dirty_lock(pfn_to_page(buf->runs[i].pfn),
						 vmemexp_run_pages(buf, i),
						 dirty);
	kfree(buf->runs);
	buf->runs = NULL;
	buf->nr_runs = 0;
	buf->nr_pages = 0;
}

static int vmemexp_pin_runs(struct vmemexp_buffer *buf, unsigned long start,
			    unsigned long nr_pages, unsigned int gup_flags)
{
	struct page **batch;
	unsigned int capacity = 0, stretch;
	int i, ret = 0;

	batch = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!batch)
		return -ENOMEM;

	while (buf->nr_pages < nr_pages) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		ret = pin_user_pages_fast(start + (buf->nr_pages << PAGE_SHIFT),
					  min_t(unsigned long,
						nr_pages - buf->nr_pages,
						VMEMEXP_PIN_BATCH),
					  gup_flags, batch);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			break;
		}
		for (i = 0; i < ret; i += stretch) {
			stretch = vmemexp_contiguous(batch + i, ret - i);
			if (vmemexp_buffer_append(buf, &capacity,
						  page_to_pfn(batch[i]), stretch))
				break;
		}
		if (i < ret) {
			unpin_user_pages(batch + i, ret - i);
			ret = -ENOMEM;
			break;
		}
		ret = 0;
	}

	kfree(batch);
	if (ret)
		vmemexp_unpin_runs(buf, false);
	return ret;
}

/* Same policy as RDMA's ib_umem: pinned_vm against RLIMIT_MEMLOCK. */
static int vmemexp_charge(struct mm_struct *mm, unsigned long nr_pages)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	u64 pinned = atomic64_add_return(nr_pages, &mm->pinned_vm);

	if (pinned > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(nr_pages, &mm->pinned_vm);
		return -ENOMEM;
	}
	return 0;
}

static void vmemexp_uncharge(struct mm_struct *mm, unsigned long nr_pages)
{
	atomic64_sub(nr_pages, &mm->pinned_vm);
}

/**
 * vmemexp_buffer_alloc - a new, empty buffer
 * @writable: importers may write
 *
 * Return: the buffer, or NULL.
 */
struct vmemexp_buffer *vmemexp_buffer_alloc(bool writable)
{
	struct vmemexp_buffer *buf;

	buf = kzalloc(sizeof(*buf), GFP_KERNEL_ACCOUNT);
	if (!buf)
		return NULL;
	buf->writable = writable;
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->attachments);
	return buf;
}

static void vmemexp_buffer_free(struct vmemexp_buffer *buf)
{
	kfree(buf->runs);
	mutex_destroy(&buf->lock);
	kfree(buf);
}

/**
 * vmemexp_buffer_pin - pin a page-aligned range of the caller's memory
 * @start: page-aligned start address
 * @nr_pages: number of pages, at least one
 * @writable: pin for writing by importers
 *
 * Return: the new buffer, or an ERR_PTR; on error nothing stays pinned or
 * charged.
 */
struct vmemexp_buffer *vmemexp_buffer_pin(unsigned long start,
					  unsigned long nr_pages,
					  bool writable)
{
	unsigned int gup_flags = FOLL_LONGTERM | (writable ? FOLL_WRITE : 0);
	unsigned long end = start + (nr_pages << PAGE_SHIFT);
	struct mm_struct *mm = current->mm;
	struct vmemexp_buffer *buf;
	int ret;

	buf = vmemexp_buffer_alloc(writable);
	if (!buf)
		return ERR_PTR(-ENOMEM);

	ret = vmemexp_charge(mm, nr_pages);
	if (ret)
		goto err_free_buf;

	if (!writable) {
		ret = vmemexp_fault_in_writable(mm, start, end);
		if (ret)
			goto err_uncharge;
	}

	ret = vmemexp_pin_runs(buf, start, nr_pages, gup_flags);
	if (ret) {
		/* Only now is it worth finding out what was wrong. */
		ret = vmemexp_check_vmas(mm, start, end, writable) ? : ret;
		goto err_uncharge;
	}

	mmgrab(mm);
	buf->mm = mm;
	return buf;

err_uncharge:
	vmemexp_uncharge(mm, nr_pages);
err_free_buf:
	vmemexp_buffer_free(buf);
	return ERR_PTR(ret);
}

/**
 * vmemexp_buffer_release - release everything a buffer holds
 * @buf: the buffer; no importer may still use it
 *
 * Pinned memory is unpinned and uncharged; carve-out memory was never
 * pinned, and only the bookkeeping goes.
 */
void vmemexp_buffer_release(struct vmemexp_buffer *buf)
{
	unsigned long nr_pages = buf->nr_pages;

	vmemexp_track_stop(buf->track);
	if (buf->mm) {
		vmemexp_unpin_runs(buf, buf->writable);
		vmemexp_uncharge(buf->mm, nr_pages);
		mmdrop(buf->mm);
	}
	vmemexp_buffer_free(buf);
}
