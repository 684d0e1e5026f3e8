// SPDX-License-Identifier: GPL-2.0
/*
 * vmemexp: export a range of the caller's memory as a dma-buf.
 *
 * /dev/vmemexp and its ioctl.  See include/uapi/linux/vmemexp.h for the
 * interface and docs/module.md for what the exporter sees afterwards.
 */
#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sizes.h>
#include <linux/uaccess.h>

#include <linux/vmemexp.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

/*
 * The most an administrator may allow: the run array, 16 bytes a page at
 * worst, then takes 256 MiB of vmalloc space.
 */
#define VMEMEXP_MAX_EXPORT_LIMIT	(64ULL << 30)

static unsigned long max_export_bytes = SZ_1G;
module_param(max_export_bytes, ulong, 0644);
MODULE_PARM_DESC(max_export_bytes,
		 "Largest range one export may pin, in bytes (default 1 GiB, at most 64 GiB)");

/*
 * Off, VMEMEXP_EXPORT_TRACK is refused as on a kernel without MMU
 * notifiers, so exporters' fallback for such kernels can be exercised on
 * any of them, and an administrator can keep exporters from registering
 * interval notifiers.
 */
static bool track_exports = true;
module_param(track_exports, bool, 0644);
MODULE_PARM_DESC(track_exports,
		 "Accept VMEMEXP_EXPORT_TRACK (default Y); N refuses it with EOPNOTSUPP, as a kernel without MMU notifiers does");

static int vmemexp_check_export(const struct vmemexp_export *arg)
{
	if (arg->flags & ~VMEMEXP_EXPORT_VALID_FLAGS)
		return -EINVAL;
	if (arg->fd || arg->offset || arg->size || arg->nr_segments ||
	    arg->status_slot || arg->reserved[0] || arg->reserved[1])
		return -EINVAL;
	if (!arg->len)
		return -EINVAL;
	/* The range is widened to whole pages, and that must not wrap either. */
	if (arg->addr + arg->len < arg->addr ||
	    arg->addr + arg->len > U64_MAX - PAGE_SIZE + 1)
		return -EINVAL;
	/*
	 * Widening hands importers the bytes around the range: a malloc()
	 * chunk's neighbours and the allocator's own headers.  Only when
	 * asked.
	 */
	if (!(arg->flags & VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES) &&
	    (!PAGE_ALIGNED(arg->addr) || !PAGE_ALIGNED(arg->addr + arg->len)))
		return -EINVAL;
	return 0;
}

static long vmemexp_ioctl_export(struct vmemexp_status_page *status,
				 struct vmemexp_export __user *uarg)
{
	struct vmemexp_track *track = NULL;
	struct vmemexp_export arg;
	struct vmemexp_buffer *buf;
	struct dma_buf *dmabuf;
	u64 addr, start, end;
	bool writable;
	int fd, ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;

	ret = vmemexp_check_export(&arg);
	if (ret)
		return ret;

	/*
	 * A tagged pointer (arm64 TBI, x86 LAM) addresses the same memory
	 * as its untagged self, but the MMU notifier and the VMA lookups
	 * compare raw addresses: a notifier on the tagged range would never
	 * see a change.
	 */
	addr = untagged_addr(arg.addr);
	start = round_down(addr, PAGE_SIZE);
	end = round_up(addr + arg.len, PAGE_SIZE);
	if (end - start > min_t(u64, max_export_bytes,
				VMEMEXP_MAX_EXPORT_LIMIT))
		return -E2BIG;
	if (end > ULONG_MAX ||
	    !access_ok(u64_to_user_ptr(start), end - start))
		return -EFAULT;

	/* Watching starts before pinning, so no change can slip between. */
	if (arg.flags & VMEMEXP_EXPORT_TRACK) {
		if (!READ_ONCE(track_exports))
			return -EOPNOTSUPP;
		track = vmemexp_track_start(status, start, end - start);
		if (IS_ERR(track))
			return PTR_ERR(track);
	}

	writable = !(arg.flags & VMEMEXP_EXPORT_RDONLY);
	if (arg.flags & VMEMEXP_EXPORT_PFNMAP)
		buf = vmemexp_buffer_from_pfnmap(start,
						 (end - start) >> PAGE_SHIFT,
						 writable);
	else
		buf = vmemexp_buffer_pin(start, (end - start) >> PAGE_SHIFT,
					 writable);
	if (IS_ERR(buf)) {
		vmemexp_track_stop(track);
		return PTR_ERR(buf);
	}
	buf->track = track;

	dmabuf = vmemexp_dmabuf_export(buf);
	if (IS_ERR(dmabuf)) {
		vmemexp_buffer_release(buf);
		return PTR_ERR(dmabuf);
	}

	/* From here on, only dma_buf_put(): .release unpins. */
	fd = get_unused_fd_flags(arg.flags & VMEMEXP_EXPORT_CLOEXEC ?
				 O_CLOEXEC : 0);
	if (fd < 0) {
		ret = fd;
		goto err_put;
	}

	arg.fd = fd;
	arg.offset = addr - start;
	arg.size = end - start;
	arg.nr_segments = buf->nr_runs;
	arg.status_slot = track ? vmemexp_track_slot(track) :
				  VMEMEXP_STATUS_NO_SLOT;

	/* Install the fd only once userspace is sure to learn its number. */
	if (copy_to_user(uarg, &arg, sizeof(arg))) {
		ret = -EFAULT;
		goto err_put_fd;
	}
	fd_install(fd, dmabuf->file);
	return 0;

err_put_fd:
	put_unused_fd(fd);
err_put:
	dma_buf_put(dmabuf);
	return ret;
}

static long vmemexp_ioctl_status(struct vmemexp_status __user *uarg)
{
	struct vmemexp_status arg;
	struct vmemexp_buffer *buf;
	struct dma_buf *dmabuf;
	long ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved[0] || arg.reserved[1] || arg.reserved[2])
		return -EINVAL;

	dmabuf = dma_buf_get(arg.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	buf = vmemexp_dmabuf_buffer(dmabuf);
	if (!buf)
		ret = -EINVAL;
	else if (!buf->track)
		ret = -EOPNOTSUPP;
	else if (!vmemexp_track_owned_by_current(buf->track))
		ret = -EPERM;
	else if (vmemexp_track_current(buf->track))
		arg.flags = VMEMEXP_STATUS_CURRENT;
	dma_buf_put(dmabuf);

	if (!ret && copy_to_user(uarg, &arg, sizeof(arg)))
		ret = -EFAULT;
	return ret;
}

static long vmemexp_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	switch (cmd) {
	case VMEMEXP_IOC_EXPORT:
		return vmemexp_ioctl_export(file->private_data,
					    (void __user *)arg);
	case VMEMEXP_IOC_STATUS:
		return vmemexp_ioctl_status((void __user *)arg);
	default:
		return -ENOTTY;
	}
}

/* Every open file has its own status page (vmemexp_status.c). */
static int vmemexp_open(struct inode *inode, struct file *file)
{
	struct vmemexp_status_page *status = vmemexp_status_page_alloc();

	if (!status)
		return -ENOMEM;
	file->private_data = status;
	return 0;
}

static int vmemexp_release(struct inode *inode, struct file *file)
{
	vmemexp_status_page_put(file->private_data);
	return 0;
}

static int vmemexp_mmap(struct file *file, struct vm_area_struct *vma)
{
	return vmemexp_status_page_mmap(file->private_data, vma);
}

static const struct file_operations vmemexp_fops = {
	.owner = THIS_MODULE,
	.open = vmemexp_open,
	.release = vmemexp_release,
	.mmap = vmemexp_mmap,
	.unlocked_ioctl = vmemexp_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice vmemexp_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vmemexp",
	.fops = &vmemexp_fops,
};

static int __init vmemexp_init(void)
{
	int ret;

	ret = vmemexp_carveouts_init();
	if (ret)
		return ret;
	return misc_register(&vmemexp_misc);
}
module_init(vmemexp_init);

static void __exit vmemexp_exit(void)
{
	misc_deregister(&vmemexp_misc);
}
module_exit(vmemexp_exit);

MODULE_DESCRIPTION("Export ranges of user memory as dma-bufs");
MODULE_AUTHOR("vmshare developers");
MODULE_LICENSE("GPL");
VMEMEXP_IMPORT_NS_DMA_BUF();
