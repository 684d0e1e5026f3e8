/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the versions vmemexp builds against.
 * Everything version-dependent lives here; docs/platforms.md says which
 * versions run the guest suite and which are compile-checked only.
 */
#ifndef _VMEMEXP_COMPAT_H
#define _VMEMEXP_COMPAT_H

/* pte_unmap() is kunmap_atomic() where page tables live in highmem. */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/version.h>

/* 6.13 turned the namespace argument into a string literal. */
#if KERNEL_VERSION(6, 13, 0) <= LINUX_VERSION_CODE
#define VMEMEXP_IMPORT_NS_DMA_BUF() MODULE_IMPORT_NS("DMA_BUF")
#else
#define VMEMEXP_IMPORT_NS_DMA_BUF() MODULE_IMPORT_NS(DMA_BUF)
#endif

/* 6.3 made vm_flags read-only and added accessors that assert the lock. */
#if KERNEL_VERSION(6, 3, 0) > LINUX_VERSION_CODE
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma,
				  vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * pin_user_pages() with the mmap lock held, which may not drop it.  6.5
 * removed its array of VMAs.
 */
static inline long vmemexp_pin_user_pages(unsigned long start,
					  unsigned long nr_pages,
					  unsigned int gup_flags,
					  struct page **pages)
{
#if KERNEL_VERSION(6, 5, 0) <= LINUX_VERSION_CODE
	return pin_user_pages(start, nr_pages, gup_flags, pages);
#else
	return pin_user_pages(start, nr_pages, gup_flags, pages, NULL);
#endif
}

/*
 * The page frame mapped at @addr of a VM_IO/VM_PFNMAP @vma, and whether
 * the mapping is writable; the caller holds the mmap lock.  6.10 made
 * follow_pte() take the VMA, and 6.12 replaced it by follow_pfnmap_*().
 * Returns -EINVAL when nothing is mapped there.
 */
static inline int vmemexp_follow_pfn(struct vm_area_struct *vma,
				     unsigned long addr, unsigned long *pfn,
				     bool *writable)
{
#if KERNEL_VERSION(6, 12, 0) <= LINUX_VERSION_CODE
	struct follow_pfnmap_args args = { .vma = vma, .address = addr };
	int ret = follow_pfnmap_start(&args);

	if (ret)
		return ret;
	*pfn = args.pfn;
	*writable = args.writable;
	follow_pfnmap_end(&args);
	return 0;
#else
	spinlock_t *ptl;	/* the page table lock follow_pte() took */
	pte_t *ptep, pte;
	int ret;

#if KERNEL_VERSION(6, 10, 0) <= LINUX_VERSION_CODE
	ret = follow_pte(vma, addr, &ptep, &ptl);
#else
	ret = follow_pte(vma->vm_mm, addr, &ptep, &ptl);
#endif
	if (ret)
		return ret;
	pte = ptep_get(ptep);
	*pfn = pte_pfn(pte);
	*writable = pte_write(pte);
	pte_unmap_unlock(ptep, ptl);
	return 0;
#endif
}

/* 6.11 added memfd_pin_folios() (for udmabuf) and unpin_folio(). */
#define VMEMEXP_HAVE_MEMFD_PIN_FOLIOS \
	(KERNEL_VERSION(6, 11, 0) <= LINUX_VERSION_CODE)

/*
 * Whether the module may write a user page table entry itself:
 * set_pte_at() is inline on x86 and arm64, but an unexported function on
 * 32-bit ARM.  Elsewhere entries go through vmf_insert_pfn().
 */
#define VMEMEXP_SETS_PTES (IS_ENABLED(CONFIG_X86) || IS_ENABLED(CONFIG_ARM64))

/*
 * A PMD-level PFN mapping (kernels with huge PFN mappings: 6.12 and later,
 * where the architecture has them).  6.17 dropped pfn_t for a plain frame
 * number.
 */
#ifdef CONFIG_ARCH_SUPPORTS_PMD_PFNMAP
#if KERNEL_VERSION(6, 17, 0) <= LINUX_VERSION_CODE
static inline vm_fault_t vmemexp_insert_pfn_pmd(struct vm_fault *vmf,
						unsigned long pfn, bool write)
{
	return vmf_insert_pfn_pmd(vmf, pfn, write);
}
#else
#include <linux/pfn_t.h>

static inline vm_fault_t vmemexp_insert_pfn_pmd(struct vm_fault *vmf,
						unsigned long pfn, bool write)
{
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
}
#endif
#endif

#endif /* _VMEMEXP_COMPAT_H */
