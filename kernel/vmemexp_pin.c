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
 * pin_user_pages_fast() takes an int count; pinning in bounded batches also
 * lets a fatal signal interrupt a very large export between batches.
 */
#define VMEMEXP_PIN_BATCH	(SZ_64M >> PAGE_SHIFT)

/*
 * GUP reports every unexportable range as -EFAULT.  Walking the VMAs first
 * gives each cause its own errno, so callers can tell a hole from a
 * permission problem from a driver mapping that has no pages to pin.
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
 */
static void vmemexp_fault_in_writable(struct mm_struct *mm,
				      unsigned long start, unsigned long end)
{
	struct vm_area_struct *vma;
	size_t left;

	while (start < end && !fatal_signal_pending(current)) {
		left = fault_in_safe_writeable((const char __user *)start,
					       end - start);
		if (!left)
			return;

		/* Not writable here: skip the rest of this VMA. */
		start = end - left;
		mmap_read_lock(mm);
		vma = find_vma(mm, start);
		start = vma ? max(vma->vm_end, start + 1) : end;
		mmap_read_unlock(mm);
		start = PAGE_ALIGN(start);
	}
}

static int vmemexp_pin_pages(unsigned long start, unsigned long nr_pages,
			     unsigned int gup_flags, struct page **pages)
{
	unsigned long done = 0;
	int ret;

	while (done < nr_pages) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			goto err_unpin;
		}
		ret = pin_user_pages_fast(start + (done << PAGE_SHIFT),
					  min_t(unsigned long, nr_pages - done,
						VMEMEXP_PIN_BATCH),
					  gup_flags, pages + done);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			goto err_unpin;
		}
		done += ret;
	}
	return 0;

err_unpin:
	unpin_user_pages(pages, done);
	return ret;
}

static unsigned int vmemexp_count_segments(struct page **pages,
					   unsigned long nr_pages)
{
	unsigned long prev_pfn = page_to_pfn(pages[0]);
	unsigned int segments = 1;
	unsigned long i, pfn;

	for (i = 1; i < nr_pages; i++) {
		pfn = page_to_pfn(pages[i]);
		if (pfn != prev_pfn + 1)
			segments++;
		prev_pfn = pfn;
	}
	return segments;
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

	ret = vmemexp_check_vmas(mm, start, end, writable);
	if (ret)
		return ERR_PTR(ret);

	buf = kzalloc(sizeof(*buf), GFP_KERNEL_ACCOUNT);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	buf->pages = kvmalloc_array(nr_pages, sizeof(*buf->pages),
				    GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!buf->pages) {
		ret = -ENOMEM;
		goto err_free_buf;
	}

	ret = vmemexp_charge(mm, nr_pages);
	if (ret)
		goto err_free_pages;

	if (!writable)
		vmemexp_fault_in_writable(mm, start, end);

	ret = vmemexp_pin_pages(start, nr_pages, gup_flags, buf->pages);
	if (ret)
		goto err_uncharge;

	mmgrab(mm);
	buf->mm = mm;
	buf->nr_pages = nr_pages;
	buf->nr_segments = vmemexp_count_segments(buf->pages, nr_pages);
	buf->writable = writable;
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->attachments);
	return buf;

err_uncharge:
	vmemexp_uncharge(mm, nr_pages);
err_free_pages:
	kvfree(buf->pages);
err_free_buf:
	kfree(buf);
	return ERR_PTR(ret);
}

/**
 * vmemexp_buffer_unpin - release everything vmemexp_buffer_pin() took
 * @buf: the buffer; no importer may still use it
 */
void vmemexp_buffer_unpin(struct vmemexp_buffer *buf)
{
	unpin_user_pages_dirty_lock(buf->pages, buf->nr_pages, buf->writable);
	vmemexp_uncharge(buf->mm, buf->nr_pages);
	mmdrop(buf->mm);
	mutex_destroy(&buf->lock);
	kvfree(buf->pages);
	kfree(buf);
}
