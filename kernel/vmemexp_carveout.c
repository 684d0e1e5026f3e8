// SPDX-License-Identifier: GPL-2.0
/*
 * Carve-outs: physical memory that another driver maps into processes with
 * remap_pfn_range() (an RTOS side-core's shared memory, a CMEM-style
 * contiguous allocator), exported only where the administrator declared it.
 *
 * Such a mapping has no pages to pin: nothing an exporter could hold keeps
 * the memory from being handed to someone else once the mapping driver lets
 * go of it, which is why the kernel stopped letting videobuf2 follow PFNs.
 * So memory is exported from a VM_IO/VM_PFNMAP mapping only when it lies in
 * a range the administrator declared at load time, only for a caller with
 * CAP_SYS_RAWIO, and the export holds the file of every driver mapping it
 * was made from.  The owner's side of the contract: memory reached through
 * a file's mappings stays allocated until that file is released, so a
 * sub-allocator that hands chunks to the processes opening it cannot give
 * an exported chunk to another.  docs/threat-model.md, section
 * "Carve-outs", gives the threat model.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/file.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "vmemexp.h"
#include "vmemexp_compat.h"

#define VMEMEXP_MAX_CARVEOUTS	8

static char *carveouts;
module_param(carveouts, charp, 0444);
MODULE_PARM_DESC(carveouts,
		 "Physical ranges exportable from VM_IO/VM_PFNMAP mappings with VMEMEXP_EXPORT_PFNMAP: BASE+SIZE[:wc],... (e.g. 0x30000000+16M)");

static struct vmemexp_carveout vmemexp_carveouts[VMEMEXP_MAX_CARVEOUTS];
static unsigned int vmemexp_nr_carveouts;

/*
 * Whether @pfn lies in a memory section that is present but offline
 * (hot-added, not yet onlined).  Boot memory, reserved parts included, is
 * in online sections.
 */
static bool vmemexp_offline_section(unsigned long pfn)
{
#ifdef CONFIG_MEMORY_HOTPLUG
	return !online_section_nr(pfn_to_section_nr(pfn));
#else
	return false;
#endif
}

/*
 * A declared range must be memory the kernel does not hand out: either no
 * RAM at all (no struct pages, e.g. above mem=) or RAM it reserved at boot
 * (memmap=, reserved-memory), whose pages are never freed.  A range of
 * ordinary RAM would be exported while the page allocator reuses it.
 * Reserved RAM is in the linear map only where it is still System RAM
 * (reserved-memory without no-map, crashkernel=); memmap=nn$ss and no-map
 * ranges have struct pages but nothing page_address() could return.
 */
static int vmemexp_carveout_classify(struct vmemexp_carveout *co)
{
	unsigned long pfn, with_pages = 0, linear = 0;

	for (pfn = co->start_pfn; pfn < co->end_pfn; pfn++) {
		if (!pfn_valid(pfn))
			continue;
		/*
		 * Offline hot-added memory is PageReserved too, until it is
		 * onlined and given to the page allocator; device memory has
		 * an owner of its own.
		 */
		if (vmemexp_offline_section(pfn) ||
		    is_zone_device_page(pfn_to_page(pfn)) ||
		    !PageReserved(pfn_to_page(pfn))) {
			pr_err("carve-out page %#lx is memory the kernel manages\n",
			       pfn);
			return -EINVAL;
		}
		with_pages++;
		linear += page_is_ram(pfn);
		cond_resched();
	}
	if (with_pages && with_pages != co->end_pfn - co->start_pfn) {
		pr_err("carve-out %#lx-%#lx is partly RAM, partly not\n",
		       co->start_pfn << PAGE_SHIFT, co->end_pfn << PAGE_SHIFT);
		return -EINVAL;
	}
	if (linear && linear != with_pages) {
		pr_err("carve-out %#lx-%#lx is partly in the linear map, partly not\n",
		       co->start_pfn << PAGE_SHIFT, co->end_pfn << PAGE_SHIFT);
		return -EINVAL;
	}
	co->struct_pages = with_pages;
	co->linear = linear;
	return 0;
}

/* Parses one "BASE+SIZE[:wc]" entry. */
static int vmemexp_carveout_parse(char *entry, struct vmemexp_carveout *co)
{
	char *pos = entry;
	u64 base, size;

	base = memparse(pos, &pos);
	if (*pos++ != '+')
		return -EINVAL;
	size = memparse(pos, &pos);
	if (!strcmp(pos, ":wc"))
		co->writecombine = true;
	else if (*pos && strcmp(pos, ":cached"))
		return -EINVAL;
	if (!size || !PAGE_ALIGNED(base) || !PAGE_ALIGNED(size) ||
	    base + size < base || (base + size - 1) >> PAGE_SHIFT > ULONG_MAX)
		return -EINVAL;
	co->start_pfn = base >> PAGE_SHIFT;
	co->end_pfn = (base + size) >> PAGE_SHIFT;
	return 0;
}

/**
 * vmemexp_carveouts_init - read the "carveouts" module parameter
 *
 * Return: 0, or -EINVAL (with the reason logged) when a declaration is
 * malformed, overlaps another or covers memory the kernel manages: the
 * module then refuses to load rather than export less than was declared.
 */
int vmemexp_carveouts_init(void)
{
	struct vmemexp_carveout *co;
	char *list, *pos, *entry;
	unsigned int i;
	int ret = 0;

	if (!carveouts || !*carveouts)
		return 0;
	list = kstrdup(carveouts, GFP_KERNEL);
	if (!list)
		return -ENOMEM;

	pos = list;
	while ((entry = strsep(&pos, ",")) && !ret) {
		if (vmemexp_nr_carveouts == VMEMEXP_MAX_CARVEOUTS) {
			pr_err("more than %d carve-outs\n", VMEMEXP_MAX_CARVEOUTS);
			ret = -EINVAL;
			break;
		}
		co = &vmemexp_carveouts[vmemexp_nr_carveouts];
		ret = vmemexp_carveout_parse(entry, co);
		if (ret) {
			pr_err("bad carve-out \"%s\": want BASE+SIZE[:wc], page-aligned\n",
			       entry);
			break;
		}
		for (i = 0; i < vmemexp_nr_carveouts; i++) {
			if (co->start_pfn < vmemexp_carveouts[i].end_pfn &&
			    vmemexp_carveouts[i].start_pfn < co->end_pfn) {
				pr_err("carve-out \"%s\" overlaps another\n",
				       entry);
				ret = -EINVAL;
			}
		}
		if (!ret)
			ret = vmemexp_carveout_classify(co);
		if (!ret) {
			pr_info("carve-out %#llx-%#llx (%s, %s) may be exported\n",
				(u64)co->start_pfn << PAGE_SHIFT,
				((u64)co->end_pfn << PAGE_SHIFT) - 1,
				co->linear ? "reserved RAM" :
				co->struct_pages ? "reserved, no linear mapping" :
				"no struct pages",
				co->writecombine ? "write-combined" : "cached");
			vmemexp_nr_carveouts++;
		}
	}
	kfree(list);
	return ret;
}

static const struct vmemexp_carveout *vmemexp_carveout_find(unsigned long pfn)
{
	unsigned int i;

	for (i = 0; i < vmemexp_nr_carveouts; i++)
		if (pfn >= vmemexp_carveouts[i].start_pfn &&
		    pfn < vmemexp_carveouts[i].end_pfn)
			return &vmemexp_carveouts[i];
	return NULL;
}

/*
 * Holds a reference to the file behind a driver mapping of the buffer, once
 * per file: the owner's promise to keep the memory is tied to it.
 */
static int vmemexp_hold_owner_file(struct vmemexp_buffer *buf,
				   struct file *file)
{
	struct file **files;
	unsigned int i;

	for (i = 0; i < buf->nr_owner_files; i++)
		if (buf->owner_files[i] == file)
			return 0;
	files = krealloc_array(buf->owner_files, buf->nr_owner_files + 1,
			       sizeof(*files), GFP_KERNEL_ACCOUNT);
	if (!files)
		return -ENOMEM;
	files[buf->nr_owner_files++] = get_file(file);
	buf->owner_files = files;
	return 0;
}

/*
 * Every VMA of the range must be a driver's PFN mapping the caller may
 * access as asked: a hole is EFAULT, ordinary memory (mixed into the range
 * or all of it) EINVAL, missing permissions EACCES.  The file of each is
 * held for as long as the buffer lives.
 */
static int vmemexp_hold_pfnmap_vmas(struct vmemexp_buffer *buf,
				    struct mm_struct *mm, unsigned long start,
				    unsigned long end, bool writable)
{
	struct vm_area_struct *vma;
	unsigned long pos = start;
	int ret;

	while (pos < end) {
		vma = find_vma(mm, pos);
		if (!vma || vma->vm_start > pos)
			return -EFAULT;
		if (!(vma->vm_flags & (VM_IO | VM_PFNMAP)))
			return -EINVAL;
		if (!(vma->vm_flags & VM_READ) ||
		    (writable && !(vma->vm_flags & VM_WRITE)))
			return -EACCES;
		if (vma->vm_file) {
			ret = vmemexp_hold_owner_file(buf, vma->vm_file);
			if (ret)
				return ret;
		}
		pos = vma->vm_end;
	}
	return 0;
}

/**
 * vmemexp_carveout_release - let go of the owners' files
 * @buf: a buffer of carve-out memory, or of pinned memory (no files)
 */
void vmemexp_carveout_release(struct vmemexp_buffer *buf)
{
	while (buf->nr_owner_files)
		fput(buf->owner_files[--buf->nr_owner_files]);
	kfree(buf->owner_files);
	buf->owner_files = NULL;
}

/*
 * The page frame behind @addr.  A PFN mapping may be filled in lazily by
 * its driver's fault handler, so a missing entry is faulted in once.
 */
static int vmemexp_resolve_pfn(struct mm_struct *mm, unsigned long addr,
			       bool writable, unsigned long *pfn)
{
	struct vm_area_struct *vma;
	bool pte_writable;
	int ret;

	vma = vma_lookup(mm, addr);
	if (!vma || !(vma->vm_flags & (VM_IO | VM_PFNMAP)))
		return -EFAULT;
	ret = vmemexp_follow_pfn(vma, addr, pfn, &pte_writable);
	if (ret) {
		if (fixup_user_fault(mm, addr, writable ? FAULT_FLAG_WRITE : 0,
				     NULL))
			return -EFAULT;
		vma = vma_lookup(mm, addr);
		if (!vma || !(vma->vm_flags & (VM_IO | VM_PFNMAP)) ||
		    vmemexp_follow_pfn(vma, addr, pfn, &pte_writable))
			return -EFAULT;
	}
	if (writable && !pte_writable)
		return -EACCES;
	return 0;
}

/**
 * vmemexp_buffer_from_pfnmap - describe a carve-out range the caller mapped
 * @start: page-aligned start address
 * @nr_pages: number of pages, at least one
 * @writable: importers may write
 *
 * Resolves every page of the range, under the mmap lock, to the page frame
 * the caller's mapping shows; all of them must lie in one declared
 * carve-out.  Nothing is pinned: the declaration is what keeps the memory.
 *
 * Return: the new buffer, or an ERR_PTR: EPERM without CAP_SYS_RAWIO or
 * outside the declared carve-outs, EINVAL for a range that is not all PFN
 * mappings, EFAULT for a hole or a page nothing is mapped at, EACCES for
 * missing permissions, EINTR on a fatal signal, ENOMEM.
 */
struct vmemexp_buffer *vmemexp_buffer_from_pfnmap(unsigned long start,
						  unsigned long nr_pages,
						  bool writable)
{
	unsigned long end = start + (nr_pages << PAGE_SHIFT), addr, pfn;
	const struct vmemexp_carveout *co = NULL;
	struct mm_struct *mm = current->mm;
	struct vmemexp_buffer *buf;
	int ret;

	if (!capable(CAP_SYS_RAWIO))
		return ERR_PTR(-EPERM);

	buf = vmemexp_buffer_alloc(nr_pages, writable);
	if (!buf)
		return ERR_PTR(-ENOMEM);

	if (mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto err_release;
	}
	ret = vmemexp_hold_pfnmap_vmas(buf, mm, start, end, writable);
	for (addr = start; !ret && addr < end; addr += PAGE_SIZE) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		ret = vmemexp_resolve_pfn(mm, addr, writable, &pfn);
		if (ret)
			break;
		if (!co)
			co = vmemexp_carveout_find(pfn);
		if (!co || pfn < co->start_pfn || pfn >= co->end_pfn) {
			ret = -EPERM;
			break;
		}
		ret = vmemexp_buffer_append(buf, pfn, 1);
	}
	mmap_read_unlock(mm);
	if (ret)
		goto err_release;

	buf->carveout = co;
	return buf;

err_release:
	vmemexp_buffer_release(buf);
	return ERR_PTR(ret);
}
