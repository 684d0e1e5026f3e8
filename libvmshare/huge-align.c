/* SPDX-License-Identifier: MIT */
/*
 * Mappings at addresses aligned to the PMD size (2 MiB with 4 KiB pages).
 *
 * A huge page is one page table entry only where the virtual address is
 * as aligned as the physical one.  mmap(NULL) of a dma-buf or of
 * anonymous memory takes whatever address the kernel finds, so the
 * library asks for an aligned one itself: it reserves the length plus one
 * huge page of address space, maps into the aligned part of it and gives
 * the rest back.  Peers' mappings of exports then take one PMD entry per
 * 2 MiB of THP or hugetlb memory (kernels of 6.12 and later), and frame
 * memory can be backed by THPs from its first byte.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#include "private.h"

#define VMS_DEFAULT_HUGE_SIZE ((size_t)2 << 20)

size_t vms_huge_page_size(void)
{
	static atomic_size_t cached;
	size_t size = atomic_load(&cached);
	unsigned long long read_size;
	FILE *f;

	if (size)
		return size;
	size = VMS_DEFAULT_HUGE_SIZE;
	/* Other than 2 MiB with 16 KiB or 64 KiB pages (arm64). */
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
	if (f) {
		if (fscanf(f, "%llu", &read_size) == 1 && read_size &&
		    !(read_size & (read_size - 1)) && read_size <= SIZE_MAX / 2)
			size = (size_t)read_size;
		fclose(f);
	}
	atomic_store(&cached, size);
	return size;
}

void *vms_mmap_huge_aligned(size_t len, int prot, int flags, int fd,
			    off_t offset)
{
	size_t huge = vms_huge_page_size(), pages = vms_round_up_to_pages(len);
	uintptr_t aligned;
	void *reserved, *p;

	if (len < huge || pages > SIZE_MAX - huge)
		return mmap(NULL, len, prot, flags, fd, offset);
	/*
	 * Where the kernel has room for the length plus a huge page, an
	 * aligned start exists.  The range is given back before the real
	 * mapping is made with MAP_FIXED_NOREPLACE, which fails (EEXIST)
	 * rather than replace a mapping another thread made there in
	 * between: a MAP_FIXED over the reservation would, on failure,
	 * leave a hole whose cleanup could unmap someone else's memory.
	 */
	reserved = mmap(NULL, pages + huge, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reserved == MAP_FAILED)
		return mmap(NULL, len, prot, flags, fd, offset);
	aligned = ((uintptr_t)reserved + huge - 1) & ~(uintptr_t)(huge - 1);
	munmap(reserved, pages + huge);
	p = mmap((void *)aligned, len, prot, flags | MAP_FIXED_NOREPLACE, fd,
		 offset);
	if (p == MAP_FAILED && errno == EEXIST)
		return mmap(NULL, len, prot, flags, fd, offset);
	return p;
}
