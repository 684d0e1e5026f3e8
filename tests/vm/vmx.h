/* SPDX-License-Identifier: MIT */
/* Helpers for the tests that drive /dev/vmemexp directly. */
#ifndef VMX_H
#define VMX_H

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/vmemexp.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmtest.h"

/* Opens /dev/vmemexp, or skips the test when the module is not loaded. */
static inline int vmx_open(void)
{
	int fd = open("/dev/vmemexp", O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		vmt_skip("/dev/vmemexp is missing: vmemexp.ko is not loaded");
	VMT_ASSERT_OK(fd);
	return fd;
}

/*
 * Exports [addr, addr + len).  The data-path tests share ranges of any
 * alignment, so an unaligned range opts in to exposing its whole first
 * and last pages; export_errors checks the refusal without the flag.
 */
static inline int vmx_export(int dev, const void *addr, size_t len,
			     uint32_t flags, struct vmemexp_export *out)
{
	uintptr_t page_mask = (uintptr_t)getpagesize() - 1;

	if (((uintptr_t)addr | len) & page_mask)
		flags |= VMEMEXP_EXPORT_EXPOSE_WHOLE_PAGES;
	*out = (struct vmemexp_export){
		.addr = (uintptr_t)addr,
		.len = len,
		.flags = flags,
	};
	return ioctl(dev, VMEMEXP_IOC_EXPORT, out);
}

/* Exports and asserts success; returns the dma-buf fd. */
static inline int vmx_export_ok(int dev, const void *addr, size_t len,
				uint32_t flags, struct vmemexp_export *out)
{
	VMT_ASSERT_OK(vmx_export(dev, addr, len, flags, out));
	VMT_ASSERT(out->fd >= 0);
	VMT_ASSERT_EQ(out->offset, (uintptr_t)addr % (uintptr_t)getpagesize());
	VMT_ASSERT(out->size >= out->offset + len);
	VMT_ASSERT_EQ(out->size % (uint64_t)getpagesize(), 0);
	VMT_ASSERT(out->nr_segments >= 1);
	return out->fd;
}

/* Drops capability @cap from this process's effective set. */
static inline int vmx_drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[cap / 32].effective &= ~(1u << (cap % 32));
	return (int)syscall(SYS_capset, &hdr, data);
}

#endif /* VMX_H */
