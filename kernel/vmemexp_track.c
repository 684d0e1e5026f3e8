// SPDX-License-Identifier: GPL-2.0
/*
 * Tracking whether an exporter's range still shows the exported pages.
 *
 * An exporter that shares the same memory frame after frame wants to
 * export it once and reuse the dma-buf, but only while that is still
 * right: after munmap, mremap, MADV_DONTNEED or a copy-on-write break, the
 * range shows other pages than the pinned ones, and a fresh export is
 * needed.  Every such change of the exporter's page tables goes through the
 * MMU notifiers, so an interval notifier over the range tells, at the cost
 * of one flag, whether anything happened there since the export
 * (VMEMEXP_EXPORT_TRACK, VMEMEXP_IOC_STATUS).  It errs on the safe side:
 * any invalidation of the range counts as a change, even one that kept
 * the pages (a THP split, say), except the protection changes that cannot
 * replace a pinned page: mprotect, NUMA-balancing scans, fork's write
 * protection and soft-dirty clearing happen all the time on some systems
 * and would otherwise defeat reuse.  A change also sets the export's
 * word in the status page, when it has one (vmemexp_status.c).
 */
#include <linux/mmu_notifier.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include <linux/vmemexp.h>

#include "vmemexp.h"

/**
 * struct vmemexp_track - the interval notifier of one tracked export
 * @notifier: covers the exported range in the exporter's mm
 * @changed: an invalidation touched the range since tracking started
 * @status: the status page @slot is in
 * @slot: the export's word in @status, or VMEMEXP_STATUS_NO_SLOT
 */
struct vmemexp_track {
	struct mmu_interval_notifier notifier;
	bool changed;
	struct vmemexp_status_page *status;
	u32 slot;
};

static bool vmemexp_track_invalidate(struct mmu_interval_notifier *sub,
				     const struct mmu_notifier_range *range,
				     unsigned long cur_seq)
{
	struct vmemexp_track *track = container_of(sub, struct vmemexp_track,
						   notifier);

	mmu_interval_set_seq(sub, cur_seq);
	switch (range->event) {
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
	case MMU_NOTIFY_SOFT_DIRTY:
		break;
	default:
		WRITE_ONCE(track->changed, true);
		if (track->slot != VMEMEXP_STATUS_NO_SLOT)
			vmemexp_status_slot_changed(track->status, track->slot);
	}
	return true;
}

static const struct mmu_interval_notifier_ops vmemexp_track_ops = {
	.invalidate = vmemexp_track_invalidate,
};

/**
 * vmemexp_track_start - watch a range of the caller's mm
 * @status: the status page of the file exporting, for a slot
 * @start: page-aligned start
 * @len: length in bytes
 *
 * Called before the pages are pinned: once this returns, any change of
 * the range's page tables, including one under way when it was called,
 * is seen.  A change while pinning (the pin breaking copy-on-write, say)
 * therefore counts too, which is safe.
 *
 * Return: the tracker, or an ERR_PTR.
 */
struct vmemexp_track *vmemexp_track_start(struct vmemexp_status_page *status,
					  unsigned long start,
					  unsigned long len)
{
	struct vmemexp_track *track;
	int ret;

	track = kzalloc(sizeof(*track), GFP_KERNEL_ACCOUNT);
	if (!track)
		return ERR_PTR(-ENOMEM);
	track->status = status;
	track->slot = vmemexp_status_slot_get(status);
	ret = mmu_interval_notifier_insert(&track->notifier, current->mm,
					   start, len, &vmemexp_track_ops);
	if (ret) {
		if (track->slot != VMEMEXP_STATUS_NO_SLOT)
			vmemexp_status_slot_put(status, track->slot);
		kfree(track);
		return ERR_PTR(ret);
	}
	/* Waits out an invalidation that began before the insertion. */
	mmu_interval_read_begin(&track->notifier);
	return track;
}

/**
 * vmemexp_track_current - whether the exporter's range is unchanged
 * @track: the tracker
 *
 * Return: true while nothing invalidated the range since tracking started.
 */
bool vmemexp_track_current(const struct vmemexp_track *track)
{
	return !READ_ONCE(track->changed);
}

/**
 * vmemexp_track_slot - the export's word in the status page
 * @track: the tracker
 *
 * Return: the slot, or VMEMEXP_STATUS_NO_SLOT when the page was full.
 */
u32 vmemexp_track_slot(const struct vmemexp_track *track)
{
	return track->slot;
}

/**
 * vmemexp_track_owned_by_current - whether the caller's mm is the one watched
 * @track: the tracker
 */
bool vmemexp_track_owned_by_current(const struct vmemexp_track *track)
{
	return track->notifier.mm == current->mm;
}

/**
 * vmemexp_track_stop - stop watching and free the tracker
 * @track: the tracker, or NULL
 *
 * May sleep until a running invalidation has finished with it.
 */
void vmemexp_track_stop(struct vmemexp_track *track)
{
	if (!track)
		return;
	mmu_interval_notifier_remove(&track->notifier);
	if (track->slot != VMEMEXP_STATUS_NO_SLOT)
		vmemexp_status_slot_put(track->status, track->slot);
	kfree(track);
}
