// SPDX-License-Identifier: GPL-2.0
/*
 * vmemexp_test_carveout: a TEST module, standing in for the drivers whose
 * memory vmemexp's carve-out export is for: an RTOS side-core's shared
 * memory driver or a CMEM-style allocator.  Like them it owns physical
 * memory Linux does not manage and maps it into processes with
 * remap_pfn_range(), so the mappings are VM_IO | VM_PFNMAP and have no
 * pages anyone could pin.
 *
 *   insmod vmemexp_test_carveout.ko regions=0x30000000+16M,0x70000000+16M
 *
 * Each region N becomes /dev/vmemexp-test-carveoutN; mmap at offset O maps
 * the region from its byte O on.  The memory is the administrator's to
 * reserve (memmap=16M$0x30000000 keeps RAM back at boot; memory above
 * mem= has no struct pages at all).
 *
 * Like a CMEM-style allocator it also sub-allocates: the ioctl
 * VMEMEXP_TEST_CARVEOUT_ALLOC gives the file the lowest free 1 MiB chunk of
 * its region (its offset, for mmap), and the chunk is free again when the
 * file is released: the contract vmemexp's carve-out export relies on.
 * Not for production use.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#define TEST_MAX_REGIONS	4
#define TEST_CHUNK		SZ_1M
#define TEST_NO_CHUNK		(~0ull)

#define VMEMEXP_TEST_CARVEOUT_ALLOC	_IOR(0xB6, 0x41, __u64)

struct test_region {
	struct miscdevice misc;
	char name[32];
	phys_addr_t base;
	u64 size;
	struct mutex lock;	/* protects @chunks */
	u64 chunks;		/* one bit per allocated chunk */
};

/* What one open file of a region holds. */
struct test_file {
	struct test_region *region;
	u64 chunk;		/* its chunk's offset, or TEST_NO_CHUNK */
};

static char *regions;
module_param(regions, charp, 0444);
MODULE_PARM_DESC(regions, "Physical ranges to map: BASE+SIZE,...");

static struct test_region test_regions[TEST_MAX_REGIONS];
static unsigned int test_nr_regions;

static int test_carveout_open(struct inode *inode, struct file *file)
{
	struct test_file *tf = kzalloc(sizeof(*tf), GFP_KERNEL);

	if (!tf)
		return -ENOMEM;
	/* misc_open() left the miscdevice here. */
	tf->region = container_of(file->private_data, struct test_region,
				  misc);
	tf->chunk = TEST_NO_CHUNK;
	file->private_data = tf;
	return 0;
}

static int test_carveout_release(struct inode *inode, struct file *file)
{
	struct test_file *tf = file->private_data;
	struct test_region *r = tf->region;

	if (tf->chunk != TEST_NO_CHUNK) {
		mutex_lock(&r->lock);
		r->chunks &= ~BIT_ULL(tf->chunk / TEST_CHUNK);
		mutex_unlock(&r->lock);
	}
	kfree(tf);
	return 0;
}

static long test_carveout_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	struct test_file *tf = file->private_data;
	struct test_region *r = tf->region;
	unsigned int i, n = min_t(u64, r->size / TEST_CHUNK, 64);
	long ret = -ENOSPC;

	if (cmd != VMEMEXP_TEST_CARVEOUT_ALLOC)
		return -ENOTTY;
	mutex_lock(&r->lock);
	if (tf->chunk != TEST_NO_CHUNK) {
		ret = -EBUSY;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!(r->chunks & BIT_ULL(i))) {
			r->chunks |= BIT_ULL(i);
			tf->chunk = (u64)i * TEST_CHUNK;
			ret = 0;
			break;
		}
	}
out:
	mutex_unlock(&r->lock);
	if (!ret && put_user(tf->chunk, (u64 __user *)arg))
		ret = -EFAULT;
	return ret;
}

static int test_carveout_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct test_file *tf = file->private_data;
	struct test_region *r = tf->region;
	unsigned long size = vma->vm_end - vma->vm_start;
	u64 offset = (u64)vma->vm_pgoff << PAGE_SHIFT;

	if (offset > r->size || size > r->size - offset)
		return -EINVAL;
	return remap_pfn_range(vma, vma->vm_start,
			       (r->base + offset) >> PAGE_SHIFT, size,
			       vma->vm_page_prot);
}

static const struct file_operations test_carveout_fops = {
	.owner = THIS_MODULE,
	.open = test_carveout_open,
	.release = test_carveout_release,
	.unlocked_ioctl = test_carveout_ioctl,
	.mmap = test_carveout_mmap,
};

static void test_carveout_unregister(void)
{
	while (test_nr_regions)
		misc_deregister(&test_regions[--test_nr_regions].misc);
}

static int __init test_carveout_init(void)
{
	char *list, *pos, *entry, *end;
	struct test_region *r;
	int ret = 0;

	if (!regions)
		return -EINVAL;
	list = kstrdup(regions, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	pos = list;
	while ((entry = strsep(&pos, ",")) && !ret) {
		if (test_nr_regions == TEST_MAX_REGIONS) {
			ret = -EINVAL;
			break;
		}
		r = &test_regions[test_nr_regions];
		r->base = memparse(entry, &end);
		if (*end != '+') {
			ret = -EINVAL;
			break;
		}
		r->size = memparse(end + 1, &end);
		if (*end || !r->size || !PAGE_ALIGNED(r->base) ||
		    !PAGE_ALIGNED(r->size)) {
			ret = -EINVAL;
			break;
		}
		snprintf(r->name, sizeof(r->name), "vmemexp-test-carveout%u",
			 test_nr_regions);
		r->misc.minor = MISC_DYNAMIC_MINOR;
		r->misc.name = r->name;
		r->misc.fops = &test_carveout_fops;
		r->misc.mode = 0666;
		mutex_init(&r->lock);
		ret = misc_register(&r->misc);
		if (!ret)
			test_nr_regions++;
	}
	kfree(list);
	if (ret)
		test_carveout_unregister();
	return ret;
}
module_init(test_carveout_init);

static void __exit test_carveout_exit(void)
{
	test_carveout_unregister();
}
module_exit(test_carveout_exit);

MODULE_DESCRIPTION("TEST ONLY: map physical carve-outs into processes like an RTOS shared-memory driver");
MODULE_LICENSE("GPL");
