/* SPDX-License-Identifier: MIT */
/*
 * The UAPI struct must have one layout for 32- and 64-bit userspace, so
 * the compat ioctl path needs no translation.  Built with -m32 too.
 */
#include <linux/vmemexp.h>
#include <stddef.h>
#include <stdio.h>

_Static_assert(sizeof(struct vmemexp_export) == 64, "size");
_Static_assert(offsetof(struct vmemexp_export, addr) == 0, "addr");
_Static_assert(offsetof(struct vmemexp_export, len) == 8, "len");
_Static_assert(offsetof(struct vmemexp_export, flags) == 16, "flags");
_Static_assert(offsetof(struct vmemexp_export, fd) == 20, "fd");
_Static_assert(offsetof(struct vmemexp_export, offset) == 24, "offset");
_Static_assert(offsetof(struct vmemexp_export, size) == 32, "size");
_Static_assert(offsetof(struct vmemexp_export, nr_segments) == 40, "segs");
_Static_assert(offsetof(struct vmemexp_export, status_slot) == 44, "slot");
_Static_assert(offsetof(struct vmemexp_export, reserved) == 48, "reserved");
_Static_assert(_Alignof(struct vmemexp_export) == _Alignof(__u64), "align");
_Static_assert(sizeof(struct vmemexp_status) == 32, "status size");
_Static_assert(offsetof(struct vmemexp_status, fd) == 0, "status fd");
_Static_assert(offsetof(struct vmemexp_status, flags) == 4, "status flags");
_Static_assert(offsetof(struct vmemexp_status, reserved) == 8, "status reserved");

int main(void)
{
	/* The ioctl number encodes the size: it must not depend on the ABI. */
	unsigned long expected = 0xc040b600ul;

	if (VMEMEXP_IOC_EXPORT != expected) {
		printf("VMEMEXP_IOC_EXPORT is %#lx, expected %#lx\n",
		       (unsigned long)VMEMEXP_IOC_EXPORT, expected);
		return 1;
	}
	if (VMEMEXP_IOC_STATUS != 0xc020b601ul) {
		printf("VMEMEXP_IOC_STATUS is %#lx, expected 0xc020b601\n",
		       (unsigned long)VMEMEXP_IOC_STATUS);
		return 1;
	}
	return 0;
}
