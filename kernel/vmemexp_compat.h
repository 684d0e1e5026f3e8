/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the versions vmemexp builds against.
 * Tested at run time on 6.1; later versions are compile-checked only
 * (see README.md).  Everything version-dependent lives here.
 */
#ifndef _VMEMEXP_COMPAT_H
#define _VMEMEXP_COMPAT_H

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
 * 6.18 removed nth_page(): page + n is now only valid inside one folio,
 * but a run may join several folios.  Going through the PFN is what
 * nth_page() did wherever the memory map is not virtually contiguous.
 */
static inline struct page *vmemexp_nth_page(struct page *page,
					    unsigned long n)
{
#if KERNEL_VERSION(6, 18, 0) <= LINUX_VERSION_CODE
	return pfn_to_page(page_to_pfn(page) + n);
#else
	return nth_page(page, n);
#endif
}

#endif /* _VMEMEXP_COMPAT_H */
