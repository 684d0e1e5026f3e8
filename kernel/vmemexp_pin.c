// SPDX-License-Identifier: GPL-2.0
/*
 * Pinning a range of the caller's memory for export, and accounting for it.
 *
 * What may be exported is decided per VMA, under the mmap lock, by the same
 * walk that pins: importers do not honour a read-only dma-buf (only an
 * IOMMU enforces DMA_TO_DEVICE, and many systems run without one), so a
 * page is exported only if the exporter could have written it itself.
 * Checking the VMAs first and pinning afterwards would let another thread
 * swap a read-only file mapping in between.
 */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/userfaultfd_k.h>
#include <uapi/linux/fcntl.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

/*
 * GUP fills one page pointer per page; up to 2048 of them (8 MiB of 4 KiB
 * pages, a 16 KiB array) are pinned at a time and folded into runs at
 * once, so no per-page array of pointers as large as a large export is
 * ever allocated, the mmap lock is dropped between batches, and a fatal
 * signal can interrupt a large export.  A frame of up to 8 MiB is one
 * batch: each costs a lookup of the VMA and its checks, and a GUP call.
 */
#define VMEMEXP_PIN_BATCH	2048u

/* Runs a new buffer has room for before it grows (8 MiB of THP: 4). */
#define VMEMEXP_FIRST_RUNS	32u

/* Seals that forbid writing a memfd: a device must not write it either. */
#define VMEMEXP_WRITE_SEALS	(F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

/*
 * hugetlbfs, told by its magic: is_file_hugepages() is not exported, and
 * a SysV SHM_HUGETLB segment's file shares the hugetlbfs inode.
 */
static bool vmemexp_hugetlbfs_file(struct file *file)
{
	return file_inode(file)->i_sb->s_magic == HUGETLBFS_MAGIC;
}

/* Files with no blocks behind their pages: page_mkwrite has nothing to do. */
static bool vmemexp_memory_file(struct file *file)
{
	return shmem_file(file) || vmemexp_hugetlbfs_file(file);
}

static unsigned int vmemexp_file_seals(struct file *file)
{
	if (shmem_file(file))
		return SHMEM_I(file_inode(file))->seals;
#ifdef CONFIG_HUGETLBFS
	if (vmemexp_hugetlbfs_file(file))
		return HUGETLBFS_I(file_inode(file))->seals;
#endif
	return 0;
}

/*
 * Whether the pages of @vma may be exported with the access asked; an
 * errno when not.  Private mappings are judged page by page afterwards
 * (vmemexp_private_page_ok()).
 */
static int vmemexp_vma_exportable(struct vm_area_struct *vma, bool writable)
{
	struct file *file = vma->vm_file;

	if (vma->vm_flags & (VM_IO | VM_PFNMAP))
		return -EPERM;
	if (!(vma->vm_flags & VM_READ) ||
	    (writable && !(vma->vm_flags & VM_WRITE)))
		return -EACCES;
	if (!(vma->vm_flags & VM_MAYSHARE) || !file)
		return 0;

	/*
	 * A shared mapping shows the file's own pages.  VM_MAYWRITE is set
	 * only when the file was opened for writing: without it the exporter
	 * could not write these pages, and neither may a device.
	 */
	if (!(vma->vm_flags & VM_MAYWRITE))
		return -EACCES;
	if (vmemexp_file_seals(file) & VMEMEXP_WRITE_SEALS)
		return -EACCES;
	/*
	 * A device writing a regular file's page cache through a long-term
	 * pin bypasses page_mkwrite: the file system never learns that the
	 * page is dirty, nor allocates its blocks.  6.5 made GUP refuse such
	 * pins; shmem and hugetlbfs have no blocks to allocate.
	 */
	if (writable && !vmemexp_memory_file(file))
		return -EACCES;
	return 0;
}

/*
 * A private mapping may still show pages that are not the exporter's: a
 * file's page cache before the first write, the shared zero page.  Only
 * anonymous pages are its own; GUP unshares those that a fork or KSM
 * shares for a pin, even a read-only one.
 */
static bool vmemexp_private_page_ok(struct page *page)
{
	return PageAnon(page) && !is_zero_pfn(page_to_pfn(page));
}

/*
 * Why GUP could not fault in the shmem page at @pos, which is inside the
 * file now: either shmem cannot allocate it (tmpfs full, memory accounting
 * refused), which it says again, or the file was shorter when GUP faulted
 * (truncated and grown again meanwhile), a hole like any other.  Asking
 * fills the hole, as GUP's fault would have: never where a userfaultfd
 * watches the mapping (the caller checks), whose holes are its to fill.
 */
static int vmemexp_shmem_errno(struct file *file, loff_t pos)
{
	struct address_space *mapping = file->f_mapping;
	struct page *page;

	page = shmem_read_mapping_page_gfp(mapping, pos >> PAGE_SHIFT,
					   mapping_gfp_mask(mapping));
	if (IS_ERR(page))
		return PTR_ERR(page) == -ENOSPC || PTR_ERR(page) == -ENOMEM ?
		       PTR_ERR(page) : -EFAULT;
	put_page(page);
	return -EFAULT;
}

/*
 * GUP reports most failures as -EFAULT.  Under the same lock, the VMA
 * tells which: past the end of the file is a hole, but inside a shmem or
 * hugetlbfs file the page could not be allocated (tmpfs full, an empty
 * huge page pool), which is not the caller's bad address.
 */
static int vmemexp_pin_errno(struct vm_area_struct *vma, unsigned long addr,
			     long ret)
{
	struct file *file = vma->vm_file;
	loff_t pos;

	switch (ret) {
	case -EFAULT:
		if (!file || !vmemexp_memory_file(file))
			return -EFAULT;
		pos = ((loff_t)vma->vm_pgoff << PAGE_SHIFT) +
		      (addr - vma->vm_start);
		/*
		 * A userfaultfd's missing page: GUP without FOLL_UNLOCKABLE
		 * does not wait for the monitor, and it is not ours to fill.
		 */
		if (pos >= i_size_read(file_inode(file)) ||
		    userfaultfd_armed(vma))
			return -EFAULT;
		if (vmemexp_hugetlbfs_file(file))
			return -ENOMEM;
		return vmemexp_shmem_errno(file, pos);
	case -EOPNOTSUPP:
		/* File system DAX: no long-term pins of its pages at all. */
		return -EACCES;
	case -EBUSY:
		/* Pages that could not be migrated out of ZONE_MOVABLE/CMA. */
		return -EAGAIN;
	default:
		return ret ? ret : -EFAULT;
	}
}

/*
 * Room for one more run: the array doubles, so filling it costs a copy of
 * each entry at most once on average, and it is never more than twice
 * the size the buffer needs.
 */
static int vmemexp_buffer_grow(struct vmemexp_buffer *buf)
{
	unsigned int room = buf->runs_room;
	struct vmemexp_run *runs;

	if (buf->nr_runs < room)
		return 0;
	if (WARN_ON_ONCE(room >= buf->runs_max))
		return -EINVAL;
	room = min(room * 2, buf->runs_max);
	runs = kvmalloc_array(room, sizeof(*runs),
			      GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!runs)
		return -ENOMEM;
	memcpy(runs, buf->runs, buf->nr_runs * sizeof(*runs));
	kvfree(buf->runs);
	buf->runs = runs;
	buf->runs_room = room;
	return 0;
}

/**
 * vmemexp_buffer_append - add physically contiguous page frames at the end
 * of a buffer
 * @buf: the buffer
 * @pfn: the first page frame
 * @nr: how many frames follow from @pfn, at least one
 *
 * Extends the last run when @pfn follows it physically, so runs stay as
 * long as the memory is contiguous.
 *
 * Return: 0, or -ENOMEM when a new run finds no room.
 */
int vmemexp_buffer_append(struct vmemexp_buffer *buf, unsigned long pfn,
			  unsigned long nr)
{
	struct vmemexp_run *run;
	int ret;

	if (buf->nr_runs) {
		run = &buf->runs[buf->nr_runs - 1];
		if (pfn == run->pfn + (buf->nr_pages - run->pgoff)) {
			buf->nr_pages += nr;
			return 0;
		}
	}
	ret = vmemexp_buffer_grow(buf);
	if (ret)
		return ret;
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

#if VMEMEXP_HAVE_MEMFD_PIN_FOLIOS
/*
 * Pins of memfd_pin_folios() are one per folio, whatever number of its
 * pages the buffer holds: each folio of each run is let go once.
 */
static void vmemexp_unpin_folios(struct vmemexp_buffer *buf, bool dirty)
{
	unsigned long pfn, left, n;
	struct folio *folio;
	struct page *page;
	unsigned int i;

	for (i = 0; i < buf->nr_runs; i++) {
		pfn = buf->runs[i].pfn;
		for (left = vmemexp_run_pages(buf, i); left; left -= n) {
			page = pfn_to_page(pfn);
			folio = page_folio(page);
			n = min_t(unsigned long, left,
				  folio_nr_pages(folio) -
				  folio_page_idx(folio, page));
			if (dirty && !folio_test_dirty(folio)) {
				folio_lock(folio);
				folio_mark_dirty(folio);
				folio_unlock(folio);
			}
			unpin_folio(folio);
			pfn += n;
		}
	}
}
#else
static void vmemexp_unpin_folios(struct vmemexp_buffer *buf, bool dirty)
{
}
#endif

static void vmemexp_unpin_runs(struct vmemexp_buffer *buf, bool dirty)
{
	unsigned int i;

	if (buf->folio_pins)
		vmemexp_unpin_folios(buf, dirty);
	else
		for (i = 0; i < buf->nr_runs; i++)
			unpin_user_page_range_dirty_lock(pfn_to_page(buf->runs[i].pfn),
							 vmemexp_run_pages(buf, i),
							 dirty);
	buf->nr_runs = 0;
	buf->nr_pages = 0;
}

/*
 * Pins up to @nr pages at @addr, all inside one VMA the caller may export
 * them from, and appends them to @buf.  Called with the mmap lock held.
 * Returns the number pinned or a negative errno.
 */
static long vmemexp_pin_batch(struct vmemexp_buffer *buf, struct mm_struct *mm,
			      unsigned long addr, unsigned long nr,
			      struct page **batch)
{
	unsigned int gup_flags = FOLL_LONGTERM, i, stretch;
	struct vm_area_struct *vma;
	bool private;
	long ret;

	vma = vma_lookup(mm, addr);
	if (!vma)
		return -EFAULT;
	ret = vmemexp_vma_exportable(vma, buf->writable);
	if (ret)
		return ret;
	nr = min(nr, (vma->vm_end - addr) >> PAGE_SHIFT);

	/*
	 * Where the exporter may write a private mapping, pin for writing
	 * even for a read-only export: that breaks copy-on-write now, so the
	 * pinned pages are the ones its next write lands in (not the zero
	 * page or the file's page cache).  A read-only shared mapping is
	 * never faulted for writing: no page_mkwrite, no block allocation.
	 */
	private = !(vma->vm_flags & VM_MAYSHARE);
	if (buf->writable || (private && (vma->vm_flags & VM_WRITE)))
		gup_flags |= FOLL_WRITE;

	ret = vmemexp_pin_user_pages(addr, nr, gup_flags, batch);
	if (ret <= 0)
		return vmemexp_pin_errno(vma, addr, ret);

	if (private && !(gup_flags & FOLL_WRITE)) {
		for (i = 0; i < ret; i++) {
			if (!vmemexp_private_page_ok(batch[i])) {
				unpin_user_pages(batch, ret);
				return -EACCES;
			}
		}
	}
	for (i = 0; i < ret; i += stretch) {
		stretch = vmemexp_contiguous(batch + i, ret - i);
		if (vmemexp_buffer_append(buf, page_to_pfn(batch[i]), stretch)) {
			/* The pages appended stay pinned: the caller unpins. */
			unpin_user_pages(batch + i, ret - i);
			return -ENOMEM;
		}
	}
	return ret;
}

#if VMEMEXP_HAVE_MEMFD_PIN_FOLIOS
/*
 * A shared mapping of a memfd, tmpfs or hugetlbfs file shows the file's
 * own folios at the offsets it maps, so they can be pinned by offset:
 * memfd_pin_folios() takes one pin per folio, where GUP lists and pins
 * each 4 KiB page of a huge one (udmabuf pins memfds this way).  Used for
 * an export that lies whole in one such VMA, inside the file, with no
 * userfaultfd watching it (a pin by offset would fill holes behind its
 * back): the buffer then holds pins of one kind only (buf->folio_pins).
 * Called with the mmap lock held; returns the VMA, or NULL for GUP.
 */
static struct vm_area_struct *vmemexp_file_vma(struct vmemexp_buffer *buf,
					       struct mm_struct *mm,
					       unsigned long start,
					       unsigned long nr_pages)
{
	struct vm_area_struct *vma = vma_lookup(mm, start);
	loff_t end;

	if (!vma || !(vma->vm_flags & VM_SHARED) || !vma->vm_file ||
	    !vmemexp_memory_file(vma->vm_file) || userfaultfd_armed(vma) ||
	    nr_pages > (vma->vm_end - start) >> PAGE_SHIFT ||
	    vmemexp_vma_exportable(vma, buf->writable))
		return NULL;
	end = ((loff_t)vma->vm_pgoff << PAGE_SHIFT) + (start - vma->vm_start) +
	      ((loff_t)nr_pages << PAGE_SHIFT);
	if (end > i_size_read(file_inode(vma->vm_file)))
		return NULL;
	return vma;
}

/*
 * Pins [start, start + nr_pages) of @vma's file by offset, a batch of
 * folios at a time.  A batch ends with a whole folio (but for the last
 * of the buffer), so the next one starts on a folio boundary and no folio
 * is pinned twice.
 */
static int vmemexp_pin_file(struct vmemexp_buffer *buf,
			    struct vm_area_struct *vma, unsigned long start,
			    unsigned long nr_pages)
{
	loff_t pos = ((loff_t)vma->vm_pgoff << PAGE_SHIFT) +
		     (start - vma->vm_start);
	loff_t end = pos + ((loff_t)nr_pages << PAGE_SHIFT);
	unsigned long first, count;
	struct folio **folios;
	pgoff_t offset;
	long n, i;
	int ret = 0;

	folios = kmalloc_array(min_t(unsigned long, nr_pages,
				     VMEMEXP_PIN_BATCH),
			       sizeof(*folios), GFP_KERNEL);
	if (!folios)
		return -ENOMEM;
	while (pos < end) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		n = memfd_pin_folios(vma->vm_file, pos, end - 1, folios,
				     min_t(unsigned long, nr_pages,
					   VMEMEXP_PIN_BATCH), &offset);
		/*
		 * The file shrank after vmemexp_file_vma() checked its size
		 * (every other argument was checked there): memfd_pin_folios()
		 * says EINVAL of a range past the end, GUP's EFAULT of the
		 * same range is what the exporter gets for it otherwise.
		 */
		if (n == -EINVAL || n == 0) {
			ret = -EFAULT;
			break;
		}
		if (n < 0) {
			ret = n;
			break;
		}
		for (i = 0; i < n; i++) {
			first = i ? 0 : offset >> PAGE_SHIFT;
			count = min_t(unsigned long,
				      folio_nr_pages(folios[i]) - first,
				      (end - pos) >> PAGE_SHIFT);
			if (vmemexp_buffer_append(buf, folio_pfn(folios[i]) +
						  first, count)) {
				unpin_folios(folios + i, n - i);
				ret = -ENOMEM;
				goto out;
			}
			pos += (loff_t)count << PAGE_SHIFT;
		}
	}
out:
	kfree(folios);
	return ret;
}
#endif

static int vmemexp_pin_runs(struct vmemexp_buffer *buf, unsigned long start,
			    unsigned long nr_pages)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma __maybe_unused;
	struct page **batch;
	unsigned long addr;
	long ret = 0;

#if VMEMEXP_HAVE_MEMFD_PIN_FOLIOS
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	vma = vmemexp_file_vma(buf, mm, start, nr_pages);
	if (vma) {
		buf->folio_pins = true;
		ret = vmemexp_pin_file(buf, vma, start, nr_pages);
		mmap_read_unlock(mm);
		if (ret)
			vmemexp_unpin_runs(buf, false);
		return ret;
	}
	mmap_read_unlock(mm);
#endif

	batch = kmalloc_array(min_t(unsigned long, nr_pages, VMEMEXP_PIN_BATCH),
			      sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;

	while (buf->nr_pages < nr_pages) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		if (mmap_read_lock_killable(mm)) {
			ret = -EINTR;
			break;
		}
		addr = start + (buf->nr_pages << PAGE_SHIFT);
		ret = vmemexp_pin_batch(buf, mm, addr,
					min_t(unsigned long,
					      nr_pages - buf->nr_pages,
					      VMEMEXP_PIN_BATCH), batch);
		mmap_read_unlock(mm);
		if (ret < 0)
			break;
		ret = 0;
	}

	kfree(batch);
	if (ret)
		vmemexp_unpin_runs(buf, false);
	return ret;
}

/*
 * RLIMIT_MEMLOCK is charged to the user, as io_uring does, not to the mm
 * as RDMA's ib_umem does: a pin outlives its mm through the fd, so a
 * per-mm charge is escaped by execve() or by children that export, pass
 * the fd on and exit.  The mm's pinned_vm still shows the pages in
 * /proc/PID/status (VmPin).
 *
 * The user is held through the exporter's credentials, which reference
 * it: free_uid() is not exported to modules by every kernel vmemexp
 * supports (Debian's armmp-lpae 6.1.0-50 lacks it), put_cred() is.
 */
static int vmemexp_charge(struct vmemexp_buffer *buf, unsigned long nr_pages)
{
	unsigned long limit, cur, new;
	const struct cred *cred;

	if (!capable(CAP_IPC_LOCK)) {
		limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
		cred = current_cred();
		cur = atomic_long_read(&cred->user->locked_vm);
		do {
			new = cur + nr_pages;
			if (new < cur || new > limit)
				return -ENOMEM;
		} while (!atomic_long_try_cmpxchg(&cred->user->locked_vm,
						  &cur, new));
		buf->charged_cred = get_cred(cred);
	}
	buf->mm = current->mm;
	mmgrab(buf->mm);
	atomic64_add(nr_pages, &buf->mm->pinned_vm);
	buf->charged = nr_pages;
	return 0;
}

static void vmemexp_uncharge(struct vmemexp_buffer *buf)
{
	if (buf->charged_cred) {
		atomic_long_sub(buf->charged,
				&buf->charged_cred->user->locked_vm);
		put_cred(buf->charged_cred);
		buf->charged_cred = NULL;
	}
	if (buf->mm) {
		atomic64_sub(buf->charged, &buf->mm->pinned_vm);
		mmdrop(buf->mm);
		buf->mm = NULL;
	}
}

/**
 * vmemexp_buffer_alloc - a new, empty buffer
 * @nr_pages: pages it will hold, at least one
 * @writable: importers may write
 *
 * The run array starts small and grows as runs are appended: memory of
 * huge pages needs a run per 2 MiB or fewer, and sizing it for the worst
 * case, one run per page, cost an export of 8 MiB of THP more than the
 * rest of its work.  It is a kvmalloc(): one run per page makes a 1 GiB
 * export's array 4 MiB, past what the page allocator should be asked for
 * at once.
 *
 * Return: the buffer, or NULL.
 */
struct vmemexp_buffer *vmemexp_buffer_alloc(unsigned long nr_pages,
					    bool writable)
{
	struct vmemexp_buffer *buf;

	if (WARN_ON_ONCE(!nr_pages || nr_pages > UINT_MAX))
		return NULL;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL_ACCOUNT);
	if (!buf)
		return NULL;
	buf->runs_max = nr_pages;
	buf->runs_room = min_t(unsigned long, nr_pages, VMEMEXP_FIRST_RUNS);
	buf->runs = kvmalloc_array(buf->runs_room, sizeof(*buf->runs),
				   GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!buf->runs) {
		kfree(buf);
		return NULL;
	}
	buf->writable = writable;
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->attachments);
	return buf;
}

static void vmemexp_buffer_free(struct vmemexp_buffer *buf)
{
	kvfree(buf->runs);
	mutex_destroy(&buf->lock);
	kfree(buf);
}

/**
 * vmemexp_buffer_pin - pin a page-aligned range of the caller's memory
 * @start: page-aligned start address
 * @nr_pages: number of pages, at least one
 * @writable: pin for writing by importers
 *
 * Every page must be one the caller could write itself, even for a
 * read-only export (see vmemexp_vma_exportable()).
 *
 * Return: the new buffer, or an ERR_PTR: EFAULT for a hole, EACCES for
 * memory the caller may not export with this access, EPERM for a driver's
 * PFN mapping, ENOMEM over RLIMIT_MEMLOCK or out of memory (or huge
 * pages), ENOSPC for a shmem file that could not grow, EAGAIN when pages
 * could not be migrated to be pinned, EINTR on a fatal signal.  On error
 * nothing stays pinned or charged.
 */
struct vmemexp_buffer *vmemexp_buffer_pin(unsigned long start,
					  unsigned long nr_pages,
					  bool writable)
{
	struct vmemexp_buffer *buf;
	int ret;

	buf = vmemexp_buffer_alloc(nr_pages, writable);
	if (!buf)
		return ERR_PTR(-ENOMEM);

	ret = vmemexp_charge(buf, nr_pages);
	if (ret)
		goto err_free_buf;

	ret = vmemexp_pin_runs(buf, start, nr_pages);
	if (ret)
		goto err_uncharge;

	buf->pinned = true;
	return buf;

err_uncharge:
	vmemexp_uncharge(buf);
err_free_buf:
	vmemexp_buffer_free(buf);
	return ERR_PTR(ret);
}

/**
 * vmemexp_buffer_release - release everything a buffer holds
 * @buf: the buffer; no importer may still use it
 *
 * Pinned memory is unpinned and uncharged; carve-out memory was never
 * pinned: its owners' files are let go.
 */
void vmemexp_buffer_release(struct vmemexp_buffer *buf)
{
	vmemexp_track_stop(buf->track);
	if (buf->pinned)
		vmemexp_unpin_runs(buf, buf->writable);
	vmemexp_uncharge(buf);
	vmemexp_carveout_release(buf);
	vmemexp_buffer_free(buf);
}
