// SPDX-License-Identifier: GPL-2.0
/*
 * dma-buf operations for pinned user memory.
 */
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

/**
 * struct vmemexp_attachment - one importer's view of a buffer
 * @node: entry in &vmemexp_buffer.attachments
 * @dev: the importing device
 * @sgt: the table mapped for @dev, or NULL while not mapped
 * @dir: the direction @sgt was mapped with
 */
struct vmemexp_attachment {
	struct list_head node;
	struct device *dev;
	struct sg_table *sgt;
	enum dma_data_direction dir;
};

static int vmemexp_attach(struct dma_buf *dmabuf,
			  struct dma_buf_attachment *attach)
{
	struct vmemexp_buffer *buf = dmabuf->priv;
	struct vmemexp_attachment *a;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	a->dev = attach->dev;
	attach->priv = a;

	mutex_lock(&buf->lock);
	list_add(&a->node, &buf->attachments);
	mutex_unlock(&buf->lock);
	return 0;
}

static void vmemexp_detach(struct dma_buf *dmabuf,
			   struct dma_buf_attachment *attach)
{
	struct vmemexp_buffer *buf = dmabuf->priv;
	struct vmemexp_attachment *a = attach->priv;

	mutex_lock(&buf->lock);
	list_del(&a->node);
	mutex_unlock(&buf->lock);
	kfree(a);
}

/* One entry per run, split where the device's segments are shorter. */
static int vmemexp_fill_table(const struct vmemexp_buffer *buf,
			      struct sg_table *sgt, size_t max_segment)
{
	unsigned long max_pages = max_segment >> PAGE_SHIFT, left, n;
	unsigned int i, nents = 0;
	struct scatterlist *sg;
	unsigned long pfn;
	int ret;

	for (i = 0; i < buf->nr_runs; i++)
		nents += DIV_ROUND_UP(vmemexp_run_pages(buf, i), max_pages);
	ret = sg_alloc_table(sgt, nents, GFP_KERNEL);
	if (ret)
		return ret;

	sg = sgt->sgl;
	for (i = 0; i < buf->nr_runs; i++) {
		pfn = buf->runs[i].pfn;
		for (left = vmemexp_run_pages(buf, i); left; left -= n) {
			n = min(left, max_pages);
			if (vmemexp_page_based(buf)) {
				sg_set_page(sg, pfn_to_page(pfn),
					    n << PAGE_SHIFT, 0);
			} else {
				/* vmemexp_map_resources() maps these. */
				sg_dma_address(sg) = PFN_PHYS(pfn);
				sg_dma_len(sg) = n << PAGE_SHIFT;
			}
			pfn += n;
			sg = sg_next(sg);
		}
	}
	return 0;
}

/*
 * Carve-out memory without struct pages cannot go through the page-based
 * DMA API: each entry is mapped as a physical resource, the way a device
 * maps another device's registers.  Entries already hold their physical
 * address and length from vmemexp_fill_table().
 */
static void vmemexp_unmap_resources(struct device *dev, struct sg_table *sgt,
				    enum dma_data_direction dir,
				    unsigned int count)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sgtable_dma_sg(sgt, sg, i) {
		if (i == count)
			break;
		dma_unmap_resource(dev, sg_dma_address(sg), sg_dma_len(sg),
				   dir, 0);
	}
}

static int vmemexp_map_resources(struct device *dev, struct sg_table *sgt,
				 enum dma_data_direction dir)
{
	struct scatterlist *sg;
	dma_addr_t addr;
	unsigned int i;

	/* dma_map_resource() would warn about a device that does no DMA. */
	if (!dev->dma_mask)
		return -EINVAL;
	for_each_sgtable_dma_sg(sgt, sg, i) {
		addr = dma_map_resource(dev, sg_dma_address(sg),
					sg_dma_len(sg), dir, 0);
		if (dma_mapping_error(dev, addr)) {
			vmemexp_unmap_resources(dev, sgt, dir, i);
			return -EIO;
		}
		sg_dma_address(sg) = addr;
	}
	return 0;
}

/*
 * Every attachment gets its own table, mapped for its own device: sharing
 * one table between importers (as the driver this grew from did) hands one
 * device the DMA addresses of another.
 */
static struct sg_table *vmemexp_map_dma_buf(struct dma_buf_attachment *attach,
					    enum dma_data_direction dir)
{
	struct vmemexp_buffer *buf = attach->dmabuf->priv;
	struct vmemexp_attachment *a = attach->priv;
	size_t max_segment;
	struct sg_table *sgt;
	int ret;

	/*
	 * A read-only export: never let a device write where an IOMMU can
	 * enforce it.  (Without one nothing can, which is why only memory
	 * the exporter could write is exported at all: vmemexp_pin.c.)
	 */
	if (!buf->writable)
		dir = DMA_TO_DEVICE;

	/*
	 * A segment must fit the device and whatever maps it: swiotlb
	 * bounces at most dma_max_mapping_size() at once.
	 */
	max_segment = min_t(size_t, dma_get_max_seg_size(attach->dev),
			    dma_max_mapping_size(attach->dev));
	max_segment = round_down(min_t(size_t, max_segment, UINT_MAX),
				 PAGE_SIZE);
	if (!max_segment)
		return ERR_PTR(-EINVAL);

	/*
	 * Held throughout: two maps of one attachment racing must not both
	 * succeed, or the first unmap frees the table the other still uses.
	 */
	mutex_lock(&buf->lock);
	if (a->sgt) {
		ret = -EBUSY;
		goto err_unlock;
	}

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt) {
		ret = -ENOMEM;
		goto err_unlock;
	}

	ret = vmemexp_fill_table(buf, sgt, max_segment);
	if (ret)
		goto err_free;

	if (vmemexp_page_based(buf))
		ret = dma_map_sgtable(attach->dev, sgt, dir, 0);
	else
		ret = vmemexp_map_resources(attach->dev, sgt, dir);
	if (ret)
		goto err_free_table;

	a->sgt = sgt;
	a->dir = dir;
	mutex_unlock(&buf->lock);
	return sgt;

err_free_table:
	sg_free_table(sgt);
err_free:
	kfree(sgt);
err_unlock:
	mutex_unlock(&buf->lock);
	return ERR_PTR(ret);
}

static void vmemexp_unmap_dma_buf(struct dma_buf_attachment *attach,
				  struct sg_table *sgt,
				  enum dma_data_direction dir)
{
	struct vmemexp_buffer *buf = attach->dmabuf->priv;
	struct vmemexp_attachment *a = attach->priv;

	mutex_lock(&buf->lock);
	if (vmemexp_page_based(buf))
		dma_unmap_sgtable(attach->dev, sgt, a->dir, 0);
	else
		vmemexp_unmap_resources(attach->dev, sgt, a->dir, sgt->nents);
	a->sgt = NULL;
	mutex_unlock(&buf->lock);

	sg_free_table(sgt);
	kfree(sgt);
}

static void vmemexp_release(struct dma_buf *dmabuf)
{
	vmemexp_buffer_release(dmabuf->priv);
}

/*
 * A buffer of one run in the kernel's linear map (a huge page, any
 * physically contiguous export outside highmem) is mapped there already,
 * with the attributes a vmap() would give it: its kernel mapping costs
 * nothing.  Write-combined carve-outs need a mapping of their own.
 */
static void *vmemexp_linear_address(const struct vmemexp_buffer *buf)
{
	unsigned long pfn = buf->runs[0].pfn;

	if (buf->nr_runs != 1 || !vmemexp_page_based(buf) ||
	    (buf->carveout && buf->carveout->writecombine))
		return NULL;
	if (PageHighMem(pfn_to_page(pfn)) ||
	    PageHighMem(pfn_to_page(pfn + buf->nr_pages - 1)))
		return NULL;
	return page_address(pfn_to_page(pfn));
}

/*
 * A kernel mapping is always writable, and importers that take one (V4L2's
 * vmalloc buffers, for one) may write through it without saying so: only
 * writable exports get one.  Read-only exports have no .vmap at all
 * (vmemexp_dmabuf_ro_ops): a .vmap that fails makes 6.1's dma_buf_vmap()
 * warn, while a missing one is a plain -EINVAL for the importer.
 */
static int vmemexp_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vmemexp_buffer *buf = dmabuf->priv;
	pgprot_t prot = PAGE_KERNEL;
	unsigned long n = 0, j;
	unsigned long *pfns;
	unsigned int i;
	void *vaddr;

	vaddr = vmemexp_linear_address(buf);
	if (vaddr)
		goto mapped;
	if (buf->carveout && buf->carveout->writecombine)
		prot = pgprot_writecombine(prot);

	/*
	 * vmap() wants every page (with or without a linear mapping: it
	 * makes its own), vmap_pfn() every frame of memory without pages;
	 * only this rare path pays for the array.  Both take an array of one
	 * word per page, so one allocation serves either.
	 */
	BUILD_BUG_ON(sizeof(struct page *) != sizeof(unsigned long));
	pfns = kvmalloc_array(buf->nr_pages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	for (i = 0; i < buf->nr_runs; i++)
		for (j = 0; j < vmemexp_run_pages(buf, i); j++)
			pfns[n++] = buf->runs[i].pfn + j;
	if (vmemexp_has_struct_pages(buf)) {
		struct page **pages = (struct page **)pfns;

		for (j = 0; j < n; j++)
			pages[j] = pfn_to_page(pfns[j]);
		vaddr = vmap(pages, n, VM_MAP, prot);
	} else {
#ifdef CONFIG_VMAP_PFN
		vaddr = vmap_pfn(pfns, n, prot);
#else
		vaddr = NULL;	/* not reached: such buffers have no .vmap */
#endif
	}
	kvfree(pfns);
	if (!vaddr)
		return -ENOMEM;

mapped:
	mutex_lock(&buf->lock);
	buf->vaddr = vaddr;
	mutex_unlock(&buf->lock);

	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void vmemexp_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vmemexp_buffer *buf = dmabuf->priv;

	mutex_lock(&buf->lock);
	buf->vaddr = NULL;
	mutex_unlock(&buf->lock);

	/* Nothing to undo for an address in the linear map. */
	if (is_vmalloc_addr(map->vaddr))
		vunmap(map->vaddr);
}

/*
 * flush_kernel_vmap_range() and invalidate_kernel_vmap_range() take the
 * size as an int: a kernel mapping of 2 GiB or more goes in parts.
 */
#define VMEMEXP_VMAP_SYNC_CHUNK	SZ_1G

static void vmemexp_sync_vmap(const struct vmemexp_buffer *buf, bool flush)
{
	size_t left = (size_t)buf->nr_pages << PAGE_SHIFT, n;
	char *vaddr = buf->vaddr;

	for (; left; left -= n, vaddr += n) {
		n = min_t(size_t, left, VMEMEXP_VMAP_SYNC_CHUNK);
		if (flush)
			flush_kernel_vmap_range(vaddr, n);
		else
			invalidate_kernel_vmap_range(vaddr, n);
	}
}

/*
 * The sync direction must be the one each table was mapped with (the DMA
 * API checks this); the CPU's direction only says which way to go.
 * Resource mappings of carve-outs without pages have no sync operations:
 * on a system without coherent DMA such a carve-out is declared
 * write-combined (docs/module.md, "Carve-outs").
 */
static int vmemexp_begin_cpu_access(struct dma_buf *dmabuf,
				    enum dma_data_direction dir)
{
	struct vmemexp_buffer *buf = dmabuf->priv;
	struct vmemexp_attachment *a;

	mutex_lock(&buf->lock);
	if (buf->vaddr)
		vmemexp_sync_vmap(buf, false);
	list_for_each_entry(a, &buf->attachments, node)
		if (a->sgt && vmemexp_page_based(buf))
			dma_sync_sgtable_for_cpu(a->dev, a->sgt, a->dir);
	mutex_unlock(&buf->lock);
	return 0;
}

static int vmemexp_end_cpu_access(struct dma_buf *dmabuf,
				  enum dma_data_direction dir)
{
	struct vmemexp_buffer *buf = dmabuf->priv;
	struct vmemexp_attachment *a;

	mutex_lock(&buf->lock);
	if (buf->vaddr)
		vmemexp_sync_vmap(buf, true);
	list_for_each_entry(a, &buf->attachments, node)
		if (a->sgt && vmemexp_page_based(buf))
			dma_sync_sgtable_for_device(a->dev, a->sgt, a->dir);
	mutex_unlock(&buf->lock);
	return 0;
}

static const struct dma_buf_ops vmemexp_dmabuf_ops = {
	.attach = vmemexp_attach,
	.detach = vmemexp_detach,
	.map_dma_buf = vmemexp_map_dma_buf,
	.unmap_dma_buf = vmemexp_unmap_dma_buf,
	.release = vmemexp_release,
	.mmap = vmemexp_dmabuf_mmap,
	.vmap = vmemexp_vmap,
	.vunmap = vmemexp_vunmap,
	.begin_cpu_access = vmemexp_begin_cpu_access,
	.end_cpu_access = vmemexp_end_cpu_access,
};

/*
 * The same without a kernel mapping: for read-only exports, and for
 * carve-outs without struct pages on kernels without vmap_pfn().
 */
static const struct dma_buf_ops vmemexp_dmabuf_ro_ops = {
	.attach = vmemexp_attach,
	.detach = vmemexp_detach,
	.map_dma_buf = vmemexp_map_dma_buf,
	.unmap_dma_buf = vmemexp_unmap_dma_buf,
	.release = vmemexp_release,
	.mmap = vmemexp_dmabuf_mmap,
	.begin_cpu_access = vmemexp_begin_cpu_access,
	.end_cpu_access = vmemexp_end_cpu_access,
};

/**
 * vmemexp_dmabuf_buffer - the buffer behind one of our dma-bufs
 * @dmabuf: any dma-buf
 *
 * Return: the buffer, or NULL when another exporter made @dmabuf.
 */
struct vmemexp_buffer *vmemexp_dmabuf_buffer(struct dma_buf *dmabuf)
{
	return dmabuf->ops == &vmemexp_dmabuf_ops ||
	       dmabuf->ops == &vmemexp_dmabuf_ro_ops ? dmabuf->priv : NULL;
}

/**
 * vmemexp_dmabuf_export - wrap a pinned buffer in a new dma-buf
 * @buf: the buffer; owned by the dma-buf on success, still the caller's on
 *	failure
 *
 * Return: the dma-buf (one file reference, for the caller to install or
 * put), or an ERR_PTR.
 */
struct dma_buf *vmemexp_dmabuf_export(struct vmemexp_buffer *buf)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	exp_info.ops = buf->writable &&
		       (vmemexp_has_struct_pages(buf) ||
			IS_ENABLED(CONFIG_VMAP_PFN)) ?
		       &vmemexp_dmabuf_ops : &vmemexp_dmabuf_ro_ops;
	exp_info.size = buf->nr_pages << PAGE_SHIFT;
	exp_info.flags = buf->writable ? O_RDWR : O_RDONLY;
	exp_info.priv = buf;
	return dma_buf_export(&exp_info);
}
