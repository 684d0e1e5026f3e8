/* SPDX-License-Identifier: MIT */
/*
 * Memory for frames: blocks of whole pages that hold nothing else, so a
 * dma-buf of a frame gives peers the frame and no neighbour.  The context
 * lists the live blocks for the exports, which may widen a range inside
 * one to whole pages without the caller's consent: they are the block's.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "private.h"

struct vms_frame_block {
	uintptr_t start;
	size_t size;		/* whole pages */
	struct vms_frame_block *next;
};

VMS_EXPORT void *vms_frame_alloc(struct vms_context *ctx, size_t size)
{
	struct vms_frame_block *block;
	size_t huge;
	void *p;
	int err;

	if (!ctx || !size || size > SIZE_MAX - vms_page_size() + 1) {
		errno = EINVAL;
		return NULL;
	}
	block = malloc(sizeof(*block));
	if (!block)
		return NULL;
	block->size = vms_round_up_to_pages(size);
	/*
	 * A mapping of its own, not aligned_alloc(): once freed, these pages
	 * never become heap memory that a peer still holding an export of
	 * them would see.
	 */
	p = vms_mmap_huge_aligned(block->size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = errno;
		free(block);
		errno = err;
		return NULL;
	}
	/*
	 * Transparent huge pages where whole ones fit: an export of them is
	 * a run per 2 MiB to pin instead of 512 pages, and a peer maps each
	 * with one entry.  Advice only: without THP the pages stay small.
	 */
	huge = block->size / vms_huge_page_size() * vms_huge_page_size();
	if (huge)
		madvise(p, huge, MADV_HUGEPAGE);
	block->start = (uintptr_t)p;
	pthread_mutex_lock(&ctx->lock);
	block->next = ctx->frame_blocks;
	ctx->frame_blocks = block;
	pthread_mutex_unlock(&ctx->lock);
	vms_log(ctx, "frame memory: %zu bytes at %p, %zu with its last page",
		size, p, block->size);
	return p;
}

VMS_EXPORT void vms_frame_free(struct vms_context *ctx, void *ptr)
{
	struct vms_frame_block **link, *block = NULL;

	if (!ctx || !ptr)
		return;
	pthread_mutex_lock(&ctx->lock);
	for (link = &ctx->frame_blocks; *link; link = &(*link)->next) {
		if ((*link)->start == (uintptr_t)ptr) {
			block = *link;
			*link = block->next;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!block) {
		vms_log_error(ctx, "vms_frame_free: %p is not frame memory of this context: left alone",
			ptr);
		return;
	}
	munmap(ptr, block->size);
	free(block);
}

bool vms_frame_block_holds(const struct vms_context *ctx, uintptr_t start,
			   uintptr_t end)
{
	const struct vms_frame_block *block;

	for (block = ctx->frame_blocks; block; block = block->next)
		if (start >= block->start && end <= block->start + block->size)
			return true;
	return false;
}

void vms_frame_blocks_release(struct vms_context *ctx)
{
	struct vms_frame_block *block;

	while ((block = ctx->frame_blocks)) {
		ctx->frame_blocks = block->next;
		munmap((void *)block->start, block->size);
		free(block);
	}
}
