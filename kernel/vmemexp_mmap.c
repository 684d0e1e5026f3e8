// SPDX-License-Identifier: GPL-2.0
/*
 * A peer's mmap() of an export.
 *
 * Pages reach a peer as PFNs in a VM_PFNMAP mapping: the mm never takes
 * page references or map counts for them, so tearing the mapping down
 * cannot disturb the state of pages that belong to the exporter's
 * anonymous memory or page cache (6.1's udmabuf inserted struct pages and
 * left "Bad page cache" behind).  The pin held by the dma-buf, which the
 * VMA keeps open through vm_file, is what keeps the pages alive.
 *
 * Nothing is mapped at mmap() time: a peer that maps a frame to read a
 * corner of it should not pay for the rest.  A fault maps the whole
 * PMD-sized block of the mapping around it instead, as one huge entry
 * where the memory and the kernel allow (vmemexp_huge_fault()), else as
 * page table entries written in one walk (vmemexp_fault()), so a frame
 * read front to back costs one fault per 2 MiB.
 */
#include <linux/dma-buf.h>
#include <linux/mm.h>
#include <linux/pgtable.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

/* The run holding page @pgoff of the buffer. */
static unsigned int vmemexp_find_run(const struct vmemexp_buffer *buf,
				     pgoff_t pgoff)
{
	unsigned int lo = 0, hi = buf->nr_runs, mid;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (buf->runs[mid].pgoff <= pgoff)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/**
 * struct vmemexp_map_cursor - the page frame behind each page of a block
 * @buf: the buffer mapped
 * @mm: the peer's mm
 * @prot: the protection of every entry
 * @run: the run holding @pgoff
 * @run_end: where that run ends, in pages of the buffer
 * @pgoff: the buffer page of the next entry
 * @pfn: its page frame
 */
struct vmemexp_map_cursor {
	const struct vmemexp_buffer *buf;
	struct mm_struct *mm;
	pgprot_t prot;
	unsigned int run;
	pgoff_t run_end;
	pgoff_t pgoff;
	unsigned long pfn;
};

static void vmemexp_cursor_seek(struct vmemexp_map_cursor *c, pgoff_t pgoff)
{
	const struct vmemexp_buffer *buf = c->buf;

	c->run = vmemexp_find_run(buf, pgoff);
	c->run_end = buf->runs[c->run].pgoff + vmemexp_run_pages(buf, c->run);
	c->pgoff = pgoff;
	c->pfn = buf->runs[c->run].pfn + (pgoff - buf->runs[c->run].pgoff);
}

static void vmemexp_cursor_next(struct vmemexp_map_cursor *c)
{
	const struct vmemexp_buffer *buf = c->buf;

	c->pgoff++;
	c->pfn++;
	if (c->pgoff == c->run_end && c->run + 1 < buf->nr_runs) {
		c->run++;
		c->run_end = c->pgoff + vmemexp_run_pages(buf, c->run);
		c->pfn = buf->runs[c->run].pfn;
	}
}

/*
 * One entry of a block of pinned user memory.  An entry already present
 * was mapped by a racing fault on the same block, from the same frame.
 */
static int vmemexp_set_pte(pte_t *pte, unsigned long addr, void *data)
{
	struct vmemexp_map_cursor *c = data;

	if (pte_none(ptep_get(pte)))
		set_pte_at(c->mm, addr, pte,
			   pte_mkspecial(pfn_pte(c->pfn, c->prot)));
	vmemexp_cursor_next(c);
	return 0;
}

/*
 * A fault maps the PMD-sized block of the mapping around it, within the
 * VMA and the buffer.  Never more: the next block may be one huge entry,
 * which a walk of page tables must not meet.
 *
 * Pinned user memory is RAM of the page allocator, whose memory type is
 * the mapping's own (write-back): its entries are written directly, in
 * one walk of the page tables, where vmf_insert_pfn() would look each
 * frame's type up again (x86's PAT walks the resource tree for every
 * page) and take the page table lock for each.  A carve-out may be
 * memory whose type was declared otherwise: its entries go through
 * vmf_insert_pfn(), which applies that type; so does everything on
 * architectures where a module cannot write entries (VMEMEXP_SETS_PTES),
 * which have no memory type lookup to save.
 */
static vm_fault_t vmemexp_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct vmemexp_buffer *buf = vma->vm_private_data;
	struct vmemexp_map_cursor c = {
		.buf = buf,
		.mm = vma->vm_mm,
		.prot = vma->vm_page_prot,
	};
	unsigned long start, end, addr;
	pgoff_t first;

	if (vmf->pgoff >= buf->nr_pages)
		return VM_FAULT_SIGBUS;

	start = max(vmf->address & PMD_MASK, vma->vm_start);
	end = min((vmf->address & PMD_MASK) + PMD_SIZE, vma->vm_end);
	first = vmf->pgoff - ((vmf->address - start) >> PAGE_SHIFT);
	end = min(end, start + ((buf->nr_pages - first) << PAGE_SHIFT));
	vmemexp_cursor_seek(&c, first);

	if (VMEMEXP_SETS_PTES && !buf->carveout)
		return apply_to_page_range(vma->vm_mm, start, end - start,
					   vmemexp_set_pte, &c) ?
		       VM_FAULT_OOM : VM_FAULT_NOPAGE;

	for (addr = start; addr < end; addr += PAGE_SIZE) {
		vm_fault_t ret = vmf_insert_pfn(vma, addr, c.pfn);

		/* Only the faulting page must be mapped; the rest is a bonus. */
		if ((ret & VM_FAULT_ERROR) && addr == (vmf->address & PAGE_MASK))
			return ret;
		vmemexp_cursor_next(&c);
	}
	return VM_FAULT_NOPAGE;
}

#ifdef CONFIG_ARCH_SUPPORTS_PMD_PFNMAP
/*
 * One PMD entry for the block around the fault where the block lies
 * whole in the VMA and the buffer, on one run, at a PMD-aligned frame: a
 * 2 MiB transparent huge page or hugetlb page of the exporter, mapped by
 * a peer at a 2 MiB-aligned address (libvmshare's mappings are).
 * Anything else falls back to vmemexp_fault().  Kernels before 6.12 never
 * call this for a VM_PFNMAP mapping: they have no huge PFN mappings.
 */
static vm_fault_t vmemexp_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	struct vm_area_struct *vma = vmf->vma;
	struct vmemexp_buffer *buf = vma->vm_private_data;
	unsigned long start = vmf->address & PMD_MASK;
	struct vmemexp_map_cursor c = { .buf = buf };
	pgoff_t first;

	if (order != PMD_ORDER || start < vma->vm_start ||
	    start + PMD_SIZE > vma->vm_end)
		return VM_FAULT_FALLBACK;
	first = vmf->pgoff - ((vmf->address - start) >> PAGE_SHIFT);
	if (first >= buf->nr_pages || buf->nr_pages - first < PTRS_PER_PMD)
		return VM_FAULT_FALLBACK;
	vmemexp_cursor_seek(&c, first);
	if (!IS_ALIGNED(c.pfn, PTRS_PER_PMD) ||
	    c.run_end - first < PTRS_PER_PMD)
		return VM_FAULT_FALLBACK;
	return vmemexp_insert_pfn_pmd(vmf, c.pfn, vmf->flags & FAULT_FLAG_WRITE);
}
#endif

static const struct vm_operations_struct vmemexp_vm_ops = {
	.fault = vmemexp_fault,
#ifdef CONFIG_ARCH_SUPPORTS_PMD_PFNMAP
	.huge_fault = vmemexp_huge_fault,
#endif
};

/**
 * vmemexp_dmabuf_mmap - the dma-buf's .mmap: a peer's mapping of an export
 * @dmabuf: the export
 * @vma: the mapping, of a range dma_buf_mmap() or the VFS checked to lie
 *	in the buffer
 *
 * Return: 0, or -EINVAL for a private (copy-on-write) mapping, -EACCES
 * for a writable mapping of a read-only export.
 */
int vmemexp_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct vmemexp_buffer *buf = dmabuf->priv;

	/* A PFN mapping cannot be copy-on-write. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff > buf->nr_pages ||
	    vma_pages(vma) > buf->nr_pages - vma->vm_pgoff)
		return -EINVAL;

	/*
	 * The VFS already refuses writable mappings of an O_RDONLY dma-buf
	 * file, but an importer's dma_buf_mmap() passes its own VMA.
	 */
	if (!buf->writable) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		vm_flags_clear(vma, VM_MAYWRITE);
	}

	if (buf->carveout && buf->carveout->writecombine)
		vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
	vm_flags_set(vma, VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &vmemexp_vm_ops;
	vma->vm_private_data = buf;
	return 0;
}
