// SPDX-License-Identifier: GPL-2.0
/*
 * vmemexp_test_importer: a TEST module that imports a dma-buf the way a
 * driver does and maps one attachment from two CPUs at once, to show that
 * the exporter lets exactly one of two racing maps succeed.
 *
 * /dev/vmemexp-test-importer takes two ioctls (tests/vm/attach_race.c):
 *
 * VMEMEXP_TEST_MAP_RACE, with struct vmemexp_test_map_race: the dma-buf fd
 * and a number of rounds; it returns how many rounds both maps succeeded
 * in and how many neither did.  Linux 6.2 and later serialise maps under
 * the reservation lock, so the race exists only before.
 *
 * VMEMEXP_TEST_MAP_ONCE, with struct vmemexp_test_map_once: maps the
 * dma-buf once for a device whose segments may be as large as it likes
 * (no limit of its own, as a GPU's), and returns the number of DMA
 * segments, or the error.
 *
 * The module is built for whatever kernel the tests run.  Not for
 * production use.
 */
#include <linux/atomic.h>
#include <linux/cpumask.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/workqueue.h>

struct vmemexp_test_map_race {
	__s32 fd;
	__u32 rounds;
	__u32 both_mapped;
	__u32 none_mapped;
};

#define VMEMEXP_TEST_MAP_RACE _IOWR(0xB6, 0x40, struct vmemexp_test_map_race)

struct vmemexp_test_map_once {
	__s32 fd;
	__u32 nr_segments;
};

#define VMEMEXP_TEST_MAP_ONCE _IOWR(0xB6, 0x42, struct vmemexp_test_map_once)

struct test_mapper {
	struct work_struct work;
	struct dma_buf_attachment *attach;
	atomic_t *ready;
	struct sg_table *sgt;
};

static struct miscdevice test_importer_misc;
static struct device_dma_parameters test_importer_dma_parms;

static struct sg_table *test_map(struct dma_buf_attachment *attach)
{
#if KERNEL_VERSION(6, 2, 0) <= LINUX_VERSION_CODE
	return dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
#else
	return dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
#endif
}

static void test_unmap(struct dma_buf_attachment *attach,
		       struct sg_table *sgt)
{
#if KERNEL_VERSION(6, 2, 0) <= LINUX_VERSION_CODE
	dma_buf_unmap_attachment_unlocked(attach, sgt, DMA_BIDIRECTIONAL);
#else
	dma_buf_unmap_attachment(attach, sgt, DMA_BIDIRECTIONAL);
#endif
}

/* Both mappers spin until the other is ready too, then map at once. */
static void test_mapper_run(struct work_struct *work)
{
	struct test_mapper *m = container_of(work, struct test_mapper, work);

	atomic_dec(m->ready);
	while (atomic_read(m->ready))
		cpu_relax();
	m->sgt = test_map(m->attach);
}

static long test_map_race(struct vmemexp_test_map_race __user *uarg)
{
	struct vmemexp_test_map_race arg;
	struct test_mapper mappers[2];
	struct dma_buf_attachment *attach;
	struct dma_buf *dmabuf;
	unsigned int round, i, mapped;
	atomic_t ready;
	long ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.both_mapped || arg.none_mapped || !arg.rounds)
		return -EINVAL;
	/* The mappers spin for each other: they need a CPU each. */
	if (num_online_cpus() < 2)
		return -EOPNOTSUPP;
	dmabuf = dma_buf_get(arg.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	attach = dma_buf_attach(dmabuf, test_importer_misc.this_device);
	if (IS_ERR(attach)) {
		ret = PTR_ERR(attach);
		goto out_put;
	}

	for (round = 0; round < arg.rounds; round++) {
		atomic_set(&ready, 2);
		for (i = 0; i < 2; i++) {
			mappers[i].attach = attach;
			mappers[i].ready = &ready;
			INIT_WORK_ONSTACK(&mappers[i].work, test_mapper_run);
			queue_work_on(cpumask_local_spread(i, NUMA_NO_NODE),
				      system_highpri_wq, &mappers[i].work);
		}
		mapped = 0;
		for (i = 0; i < 2; i++) {
			flush_work(&mappers[i].work);
			destroy_work_on_stack(&mappers[i].work);
			if (!IS_ERR(mappers[i].sgt))
				mapped++;
		}
		arg.both_mapped += mapped == 2;
		arg.none_mapped += mapped == 0;
		for (i = 0; i < 2; i++)
			if (!IS_ERR(mappers[i].sgt))
				test_unmap(attach, mappers[i].sgt);
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
	}

	dma_buf_detach(dmabuf, attach);
	if (!ret && copy_to_user(uarg, &arg, sizeof(arg)))
		ret = -EFAULT;
out_put:
	dma_buf_put(dmabuf);
	return ret;
}

static long test_map_once(struct vmemexp_test_map_once __user *uarg)
{
	struct vmemexp_test_map_once arg;
	struct dma_buf_attachment *attach;
	struct dma_buf *dmabuf;
	struct sg_table *sgt;
	long ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.nr_segments)
		return -EINVAL;
	dmabuf = dma_buf_get(arg.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	attach = dma_buf_attach(dmabuf, test_importer_misc.this_device);
	if (IS_ERR(attach)) {
		ret = PTR_ERR(attach);
		goto out_put;
	}
	sgt = test_map(attach);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
	} else {
		arg.nr_segments = sgt->nents;
		test_unmap(attach, sgt);
	}
	dma_buf_detach(dmabuf, attach);
	if (!ret && copy_to_user(uarg, &arg, sizeof(arg)))
		ret = -EFAULT;
out_put:
	dma_buf_put(dmabuf);
	return ret;
}

static long test_importer_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	switch (cmd) {
	case VMEMEXP_TEST_MAP_RACE:
		return test_map_race((void __user *)arg);
	case VMEMEXP_TEST_MAP_ONCE:
		return test_map_once((void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations test_importer_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = test_importer_ioctl,
};

static struct miscdevice test_importer_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vmemexp-test-importer",
	.fops = &test_importer_fops,
};

static int __init test_importer_init(void)
{
	int ret = misc_register(&test_importer_misc);

	if (ret)
		return ret;
	/*
	 * A device that does DMA, as the importers this stands in for, with
	 * no segment limit of its own.
	 */
	test_importer_misc.this_device->dma_parms = &test_importer_dma_parms;
	/* It cannot fail with dma_parms set (6.12 made it return void). */
	dma_set_max_seg_size(test_importer_misc.this_device, UINT_MAX);
	ret = dma_coerce_mask_and_coherent(test_importer_misc.this_device,
					   DMA_BIT_MASK(64));
	if (ret)
		misc_deregister(&test_importer_misc);
	return ret;
}
module_init(test_importer_init);

static void __exit test_importer_exit(void)
{
	misc_deregister(&test_importer_misc);
}
module_exit(test_importer_exit);

MODULE_DESCRIPTION("TEST ONLY: map one dma-buf attachment from two CPUs at once");
MODULE_LICENSE("GPL");
#if KERNEL_VERSION(6, 13, 0) <= LINUX_VERSION_CODE
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
