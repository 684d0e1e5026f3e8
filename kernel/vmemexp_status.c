// SPDX-License-Identifier: GPL-2.0
/*
 * The status page: whether tracked exports are still current, readable
 * by the exporter without a system call.
 *
 * An exporter that shares the same memory frame after frame reuses its
 * tracked dma-buf, asking before each reuse whether the range changed
 * (vmemexp_track.c).  VMEMEXP_IOC_STATUS answers in one system call, and
 * a system call is the most a reuse should cost, not the least.  So each
 * open file of /dev/vmemexp has a page of __u32 words that the exporter
 * maps read-only: a tracked export exported through that file gets one
 * word, its slot, which reads 0 while the export is current and becomes
 * nonzero when the MMU notifier sees the range change.  Slots are handed
 * out on export and taken back when the dma-buf is released; a file with
 * every slot taken exports without one (VMEMEXP_STATUS_NO_SLOT), and its
 * exporter asks with the ioctl instead.
 */
#include <linux/bitmap.h>
#include <linux/highmem.h>
#include <linux/gfp.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include <linux/vmemexp.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

#define VMEMEXP_STATUS_SLOTS	(PAGE_SIZE / sizeof(u32))

/**
 * struct vmemexp_status_page - the status page of one open file
 * @ref: the open file holds one reference, every slot in use another, so
 *	the page outlives the file for as long as one of its exports lives
 * @words: the page, one __u32 per slot; userspace maps it read-only
 * @used: the slots that belong to a live tracked export
 */
struct vmemexp_status_page {
	struct kref ref;
	spinlock_t lock;	/* protects @used */
	u32 *words;
	DECLARE_BITMAP(used, VMEMEXP_STATUS_SLOTS);
};

/**
 * vmemexp_status_page_alloc - a status page with every slot free
 *
 * Return: the page, or NULL.
 */
struct vmemexp_status_page *vmemexp_status_page_alloc(void)
{
	struct vmemexp_status_page *sp;

	sp = kzalloc(sizeof(*sp), GFP_KERNEL_ACCOUNT);
	if (!sp)
		return NULL;
	sp->words = (u32 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!sp->words) {
		kfree(sp);
		return NULL;
	}
	kref_init(&sp->ref);
	spin_lock_init(&sp->lock);
	return sp;
}

static void vmemexp_status_page_free(struct kref *ref)
{
	struct vmemexp_status_page *sp =
		container_of(ref, struct vmemexp_status_page, ref);

	/* A mapping of the page holds its own reference to it. */
	free_page((unsigned long)sp->words);
	kfree(sp);
}

/**
 * vmemexp_status_page_put - drop a reference
 * @sp: the status page
 */
void vmemexp_status_page_put(struct vmemexp_status_page *sp)
{
	kref_put(&sp->ref, vmemexp_status_page_free);
}

/*
 * Mapped page by fault rather than at mmap(): a fault handler maps it again
 * after MADV_DONTNEED zapped it, where a page inserted once would leave a
 * VMA without one and its next read a SIGBUS.
 */
static vm_fault_t vmemexp_status_fault(struct vm_fault *vmf)
{
	struct vmemexp_status_page *sp = vmf->vma->vm_private_data;
	struct page *page = virt_to_page(sp->words);

	if (vmf->pgoff)
		return VM_FAULT_SIGBUS;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct vmemexp_status_vm_ops = {
	.fault = vmemexp_status_fault,
};

/**
 * vmemexp_status_page_mmap - map the status page for its exporter
 * @sp: the status page; the mapping's file holds a reference to it
 * @vma: one page at offset 0, shared and read-only; it can never become
 *	writable, executable or larger
 *
 * Return: 0, -EINVAL for another size, offset or a private mapping,
 * -EPERM for a writable or executable one.
 */
int vmemexp_status_page_mmap(struct vmemexp_status_page *sp,
			     struct vm_area_struct *vma)
{
	/* VM_SHARED is clear for a shared mapping of an O_RDONLY file. */
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != PAGE_SIZE ||
	    !(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & (VM_WRITE | VM_EXEC))
		return -EPERM;
	vm_flags_clear(vma, VM_MAYWRITE | VM_MAYEXEC);
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &vmemexp_status_vm_ops;
	vma->vm_private_data = sp;
	return 0;
}

/**
 * vmemexp_status_slot_get - a free slot, reading 0, for a new export
 * @sp: the status page
 *
 * Return: the slot, holding a reference to @sp until
 * vmemexp_status_slot_put(), or VMEMEXP_STATUS_NO_SLOT when all are taken.
 */
u32 vmemexp_status_slot_get(struct vmemexp_status_page *sp)
{
	unsigned long slot;

	spin_lock(&sp->lock);
	slot = find_first_zero_bit(sp->used, VMEMEXP_STATUS_SLOTS);
	if (slot < VMEMEXP_STATUS_SLOTS) {
		__set_bit(slot, sp->used);
		/* The previous owner may have left it changed. */
		WRITE_ONCE(sp->words[slot], 0);
		kref_get(&sp->ref);
	}
	spin_unlock(&sp->lock);
	return slot < VMEMEXP_STATUS_SLOTS ? slot : VMEMEXP_STATUS_NO_SLOT;
}

/**
 * vmemexp_status_slot_changed - mark a slot's export as no longer current
 * @sp: the status page
 * @slot: a slot vmemexp_status_slot_get() gave
 *
 * Called from MMU notifiers, so it neither sleeps nor takes locks.
 */
void vmemexp_status_slot_changed(struct vmemexp_status_page *sp, u32 slot)
{
	WRITE_ONCE(sp->words[slot], 1);
	/* Where caches alias, the exporter's mapping must see the store. */
	flush_dcache_page(virt_to_page(sp->words));
}

/**
 * vmemexp_status_slot_put - give a slot back
 * @sp: the status page
 * @slot: a slot vmemexp_status_slot_get() gave
 */
void vmemexp_status_slot_put(struct vmemexp_status_page *sp, u32 slot)
{
	spin_lock(&sp->lock);
	__clear_bit(slot, sp->used);
	spin_unlock(&sp->lock);
	vmemexp_status_page_put(sp);
}
