/* SPDX-License-Identifier: MIT */
/*
 * libvmshare's export, allocation and import API.  Runs on the host (no
 * module: the fallback) and in the guest (vmemexp): the cases that depend
 * on the module check vms_context_has_module() and say which path they
 * exercised.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vmshare.h>

#include "vmtest.h"

#define NV12 0x3231564eu
#define XRGB8888 0x34325258u

static bool module_present(void)
{
	return access("/dev/vmemexp", F_OK) == 0;
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* @len from @p rounded out to whole pages: what a dma-buf of it holds. */
static size_t whole_pages(const void *p, size_t len)
{
	uintptr_t page = page_size(), start = (uintptr_t)p;

	return (start + len + page - 1) / page * page - start / page * page;
}

/* Maps @buf the way a peer would and returns the mapping. */
static struct vms_mapping *peer_map(struct vms_buffer *buf, size_t len)
{
	struct vms_frame frame;
	struct vms_mapping *map;

	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, (uint32_t)len, 1, 0,
					 (uint32_t)len), 0);
	map = vms_mapping_create(vms_buffer_fd(buf), &frame);
	VMT_ASSERT(map);
	return map;
}

/* A peer's mapping of @buf shows pattern @seed from @base over @len bytes. */
static void check_peer_sees(struct vms_buffer *buf, size_t len, size_t base,
			    uint32_t seed)
{
	struct vms_mapping *map = peer_map(buf, len);

	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, base, seed), -1);
	vms_mapping_unref(map);
}

static void context_flags(void)
{
	struct vms_context *c;
	int err;

	errno = 0;
	VMT_ASSERT(!vms_context_create(VMS_CONTEXT_NO_MODULE |
				       VMS_CONTEXT_REQUIRE_MODULE));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_context_create(1u << 5));
	VMT_ASSERT_EQ(errno, EINVAL);

	c = vms_context_create(VMS_CONTEXT_REQUIRE_MODULE);
	err = errno;
	if (module_present()) {
		VMT_ASSERT(c);
		VMT_ASSERT(vms_context_has_module(c));
		VMT_ASSERT_EQ(vms_context_module_status(c), 0);
	} else {
		VMT_ASSERT(!c);
		VMT_ASSERT_EQ(err, ENODEV);
	}
	vms_context_unref(c);

	c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	VMT_ASSERT(c);
	VMT_ASSERT(!vms_context_has_module(c));
	VMT_ASSERT_EQ(vms_context_module_status(c), -ENODEV);
	vms_context_unref(c);
	vms_context_unref(NULL);
}

static void export_bad_arguments(void)
{
	struct vms_context *c = vms_context_create(0);
	char byte;

	VMT_ASSERT(c);
	errno = 0;
	VMT_ASSERT(!vms_buffer_export(c, NULL, 1, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_export(c, &byte, 0, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_export(c, &byte, 1, 1u << 7));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_export(NULL, &byte, 1, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_export(c, &byte, SIZE_MAX, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_alloc(c, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_frame_alloc(c, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_frame_alloc(NULL, 1));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_frame_alloc(c, SIZE_MAX));
	VMT_ASSERT_EQ(errno, EINVAL);
	vms_buffer_unref(NULL);
	vms_frame_free(c, NULL);
	vms_context_unref(c);
}

/*
 * Memory at any alignment, the caller accepting that peers get the whole
 * first and last page: zero-copy through vmemexp where it is loaded, the
 * fd holding those pages with the memory at its offset into the first.
 * The consent is part of what makes an export the same one.
 */
static void export_malloc(void)
{
	struct vms_context *c = vms_context_create(0);
	size_t len = 3 * 4096 + 5;
	uint8_t *mem = malloc(len + 1);
	struct vms_mapping *map;
	struct vms_buffer *buf, *again;

	VMT_ASSERT(c && mem);
	vmt_fill(mem + 1, len, 0, 1);
	buf = vms_buffer_export(c, mem + 1, len, VMS_EXPORT_EXPOSE_WHOLE_PAGES);
	VMT_ASSERT(buf);
	VMT_ASSERT(vms_buffer_data(buf) == mem + 1);
	VMT_ASSERT_EQ(vms_buffer_length(buf), len);
	VMT_ASSERT(vms_buffer_size(buf) >= vms_buffer_offset(buf) + len);
	map = peer_map(buf, len);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 1), -1);
	vmt_fill(vms_mapping_plane(map, 0), len, 0, 2);

	if (module_present()) {
		vmt_note("path: vmemexp");
		VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
		VMT_ASSERT(!vms_buffer_copy_reason(buf));
		VMT_ASSERT_EQ(vms_buffer_offset(buf),
			      (uintptr_t)(mem + 1) % page_size());
		VMT_ASSERT_EQ(vms_buffer_size(buf), whole_pages(mem + 1, len));
		/* The peer's writes are in the malloc memory itself. */
		VMT_ASSERT_EQ(vmt_check(mem + 1, len, 0, 2), -1);
		again = vms_buffer_export(c, mem + 1, len,
					  VMS_EXPORT_EXPOSE_WHOLE_PAGES);
		VMT_ASSERT(again == buf);
		vms_buffer_unref(again);
		/* Without the consent the same memory is no dma-buf. */
		again = vms_buffer_export(c, mem + 1, len, 0);
		VMT_ASSERT(again && again != buf);
		VMT_ASSERT_EQ(vms_buffer_kind(again), VMS_BUFFER_MEMFD_COPY);
		vms_buffer_unref(again);
	} else {
		vmt_note("path: memfd copy");
		VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
		VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "not available"));
		VMT_ASSERT_EQ(vmt_check(mem + 1, len, 0, 1), -1);
	}
	VMT_ASSERT_EQ(vms_buffer_begin_cpu_access(buf, VMS_ACCESS_WRITE), 0);
	VMT_ASSERT_EQ(vms_buffer_end_cpu_access(buf, VMS_ACCESS_WRITE), 0);
	VMT_ASSERT_EQ(vms_buffer_begin_cpu_access(buf, 0), -EINVAL);
	VMT_ASSERT_EQ(vms_mapping_begin_cpu_access(map, 4), -EINVAL);
	vms_mapping_unref(map);
	vms_buffer_unref(buf);
	vms_context_unref(c);
	free(mem);
}

/*
 * Checks an export of [@p, @p + @len), memory that is not page-aligned,
 * made without consent to expose whole pages: a copy that says why, on
 * the host (where vmemexp is missing as well) and in the guest; and no
 * buffer at all under VMS_EXPORT_ZERO_COPY.
 */
static void check_unaligned_copied(struct vms_context *c, uint8_t *p,
				   size_t len)
{
	struct vms_mapping *map;
	struct vms_buffer *buf;

	vmt_fill(p, len, 0, 1);
	buf = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
	vmt_note("reason: %s", vms_buffer_copy_reason(buf));
	VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "not page-aligned"));
	VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "vms_frame_alloc()"));
	VMT_ASSERT(strstr(vms_buffer_copy_reason(buf),
			  "VMS_EXPORT_EXPOSE_WHOLE_PAGES"));
	VMT_ASSERT_EQ(vms_buffer_offset(buf), 0);
	/* The peer sees the memory, and only a copy of it. */
	map = peer_map(buf, len);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 1), -1);
	vmt_fill(vms_mapping_plane(map, 0), len, 0, 2);
	VMT_ASSERT_EQ(vmt_check(p, len, 0, 1), -1);
	vms_mapping_unref(map);
	vms_buffer_unref(buf);

	errno = 0;
	VMT_ASSERT(!vms_buffer_export(c, p, len, VMS_EXPORT_ZERO_COPY));
	VMT_ASSERT_EQ(errno, module_present() ? EINVAL : ENODEV);
}

/* Without the consent an unaligned start or end is never exported. */
static void unaligned_export_copies(void)
{
	struct vms_context *c = vms_context_create(0);
	size_t page = page_size(), len = 3 * 4096 + 5;
	uint8_t *mem = malloc(len + 1);
	uint8_t *pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	VMT_ASSERT(c && mem && pages != MAP_FAILED);
	/* malloc's alignment is at most 16: mem + 1 never starts a page. */
	check_unaligned_copied(c, mem + 1, len);
	/* A page-aligned start ending inside a page. */
	check_unaligned_copied(c, pages, page + 100);
	/* Ending on a page, starting inside one. */
	check_unaligned_copied(c, pages + 100, page - 100);
	munmap(pages, 2 * page);
	vms_context_unref(c);
	free(mem);
}

/*
 * vms_frame_alloc() memory of a size that is no multiple of pages:
 * page-aligned, zero-filled up to the end of its last page, and exported
 * without any flag as a dma-buf of those whole pages, in which a peer
 * sees the frame and the zeroes after it, and whose writes the frame
 * shows.  A part of the block starting inside a page is exported too, at
 * its offset.
 */
static void frame_alloc_zero_copy(void)
{
	struct vms_context *c = vms_context_create(0);
	size_t page = page_size(), len = 3 * 4096 + 5;
	size_t size = (len + page - 1) / page * page;
	struct vms_buffer *buf, *again, *part;
	struct vms_mapping *map;
	uint8_t *p, *seen;

	VMT_ASSERT(c);
	p = vms_frame_alloc(c, len);
	VMT_ASSERT(p);
	VMT_ASSERT_EQ((uintptr_t)p % page, 0);
	for (size_t i = 0; i < size; i++)
		VMT_ASSERT_EQ(p[i], 0);
	vmt_fill(p, len, 0, 1);
	buf = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_length(buf), len);
	VMT_ASSERT_EQ(vms_buffer_offset(buf), 0);
	VMT_ASSERT_EQ(vms_buffer_size(buf), size);
	if (!module_present()) {
		vmt_note("path: memfd copy");
		VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
		VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "not available"));
		VMT_ASSERT(!strstr(vms_buffer_copy_reason(buf), "page-aligned"));
		vms_buffer_unref(buf);
		vms_frame_free(c, p);
		vms_context_unref(c);
		return;
	}
	vmt_note("path: vmemexp");
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
	VMT_ASSERT(!vms_buffer_copy_reason(buf));
	map = peer_map(buf, size);
	seen = vms_mapping_plane(map, 0);
	VMT_ASSERT_EQ(vmt_check(seen, len, 0, 1), -1);
	for (size_t i = len; i < size; i++)
		VMT_ASSERT_EQ(seen[i], 0);
	vmt_fill(seen, len, 0, 2);
	VMT_ASSERT_EQ(vmt_check(p, len, 0, 2), -1);
	vms_mapping_unref(map);

	again = vms_buffer_export(c, p, len, VMS_EXPORT_ZERO_COPY);
	VMT_ASSERT(again == buf);
	vms_buffer_unref(again);

	part = vms_buffer_export(c, p + 100, 5000, VMS_EXPORT_ZERO_COPY);
	VMT_ASSERT(part);
	VMT_ASSERT_EQ(vms_buffer_kind(part), VMS_BUFFER_DMABUF);
	VMT_ASSERT_EQ(vms_buffer_offset(part), 100);
	VMT_ASSERT_EQ(vms_buffer_size(part), whole_pages(p + 100, 5000));
	check_peer_sees(part, 5000, 100, 2);
	vms_buffer_unref(part);
	vms_buffer_unref(buf);
	vms_frame_free(c, p);
	vms_context_unref(c);
}

/*
 * Frames of 2 MiB and more: the frame memory and a peer's mapping of it
 * both start on a 2 MiB boundary, so that the THPs of the one become PMD
 * entries of the other (6.12 and later); with the module a peer's first
 * read takes one fault per 2 MiB block.
 */
static void huge_frames_aligned(void)
{
	struct vms_context *c = vms_context_create(0);
	size_t huge = 2u << 20, len = 4 * huge + 5, page = page_size();
	struct vms_mapping *map;
	struct vms_buffer *buf;
	struct rusage before, after;
	volatile uint8_t *seen;
	uint8_t *p;

	VMT_ASSERT(c);
	p = vms_frame_alloc(c, len);
	VMT_ASSERT(p);
	VMT_ASSERT_EQ((uintptr_t)p % huge, 0);
	vmt_fill(p, len, 0, 3);
	buf = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(buf);
	map = peer_map(buf, len);
	seen = vms_mapping_plane(map, 0);
	VMT_ASSERT_EQ((uintptr_t)seen % huge, 0);
	VMT_ASSERT_OK(getrusage(RUSAGE_SELF, &before));
	for (size_t i = 0; i < len; i += page)
		(void)seen[i];
	VMT_ASSERT_OK(getrusage(RUSAGE_SELF, &after));
	vmt_note("path: %s, %ld faults for the peer's first read",
		 vms_buffer_kind(buf) == VMS_BUFFER_DMABUF ? "vmemexp" : "copy",
		 after.ru_minflt - before.ru_minflt);
	if (vms_buffer_kind(buf) == VMS_BUFFER_DMABUF)
		VMT_ASSERT_EQ(after.ru_minflt - before.ru_minflt, 5);
	VMT_ASSERT_EQ(vmt_check((const uint8_t *)seen, len, 0, 3), -1);
	vms_mapping_unref(map);
	vms_buffer_unref(buf);
	vms_frame_free(c, p);
	vms_context_unref(c);
}

/*
 * Freed frame memory is unmapped: a peer holding its export keeps the
 * frame's pages, and memory allocated later at the same address is
 * exported afresh, never through the old dma-buf.
 */
static void frame_free_keeps_peers_pages(void)
{
	struct vms_context *c;
	struct vms_buffer *old, *fresh;
	size_t len = 5000;
	uint8_t *p, *q;

	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	c = vms_context_create(0);
	VMT_ASSERT(c);
	p = vms_frame_alloc(c, len);
	VMT_ASSERT(p);
	vmt_fill(p, len, 0, 1);
	old = vms_buffer_export(c, p, len, VMS_EXPORT_ZERO_COPY);
	VMT_ASSERT(old);
	vms_frame_free(c, p);
	check_peer_sees(old, len, 0, 1);

	q = vms_frame_alloc(c, len);
	VMT_ASSERT(q);
	vmt_fill(q, len, 0, 3);
	fresh = vms_buffer_export(c, q, len, VMS_EXPORT_ZERO_COPY);
	VMT_ASSERT(fresh && fresh != old);
	check_peer_sees(fresh, len, 0, 3);
	check_peer_sees(old, len, 0, 1);
	vms_buffer_unref(fresh);
	vms_buffer_unref(old);
	vms_frame_free(c, q);
	vms_context_unref(c);
}

/* Whether @p lies in one of this process's mappings. */
static bool is_mapped(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long start, end;
	char line[512];
	bool found = false;

	VMT_ASSERT(f);
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%lx-%lx", &start, &end) == 2 &&
			(uintptr_t)p >= start && (uintptr_t)p < end;
	fclose(f);
	return found;
}

/*
 * vms_frame_free() leaves alone what is not a block of its context, and
 * vms_context_unref() frees the blocks still allocated.
 */
static void frame_memory_lifetime(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	struct vms_context *other = vms_context_create(VMS_CONTEXT_NO_MODULE);
	size_t page = page_size();
	uint8_t *kept, *mine;

	VMT_ASSERT(c && other);
	kept = vms_frame_alloc(c, 3 * page);
	mine = vms_frame_alloc(other, 1);
	VMT_ASSERT(kept && mine);
	vms_frame_free(other, kept);
	vms_frame_free(c, kept + page);
	vms_frame_free(c, mine);
	kept[3 * page - 1] = 1;
	mine[page - 1] = 1;
	vms_frame_free(other, mine);
	VMT_ASSERT(!is_mapped(mine));
	VMT_ASSERT(is_mapped(kept));
	vms_context_unref(c);
	VMT_ASSERT(!is_mapped(kept));
	vms_context_unref(other);
}

/* A copy is sealed, refreshes on request, and never writes back. */
static void fallback_copy(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	size_t len = 10000;
	uint8_t *mem = malloc(len);
	struct vms_mapping *map;
	struct vms_buffer *buf;
	int seals;

	VMT_ASSERT(c && mem);
	vmt_fill(mem, len, 0, 3);
	buf = vms_buffer_export(c, mem, len, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
	VMT_ASSERT(vms_buffer_copy_reason(buf));
	seals = fcntl(vms_buffer_fd(buf), F_GET_SEALS);
	VMT_ASSERT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW),
		      F_SEAL_SHRINK | F_SEAL_GROW);
	VMT_ASSERT_EQ(fcntl(vms_buffer_fd(buf), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	map = peer_map(buf, len);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 3), -1);
	vmt_fill(mem, len, 0, 4);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 3), -1);
	VMT_ASSERT_EQ(vms_buffer_refresh(buf), 0);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 4), -1);
	vms_mapping_unref(map);
	vms_buffer_unref(buf);

	VMT_ASSERT(!vms_buffer_export(c, mem, len, VMS_EXPORT_ZERO_COPY));
	VMT_ASSERT_EQ(errno, ENODEV);
	vms_context_unref(c);
	free(mem);
}

/* Read-only, by either path: the peer gets an fd it cannot map writable. */
/*
 * The O_RDONLY fd of a read-only copy reopened read-write through /proc,
 * as a peer can: no write and no writable mapping may succeed, while the
 * exporter's vms_buffer_refresh() still updates the copy.
 */
static void copy_stays_readonly(struct vms_buffer *buf,
				struct vms_mapping *map, uint8_t *mem,
				size_t len)
{
	char path[64];
	int rw;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", vms_buffer_fd(buf));
	rw = open(path, O_RDWR | O_CLOEXEC);
	VMT_ASSERT_OK(rw);
	VMT_ASSERT_ERRNO(write(rw, "x", 1), EPERM);
	VMT_ASSERT(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw,
			0) == MAP_FAILED);
	VMT_ASSERT_EQ(errno, EPERM);
	close(rw);
	vmt_fill(mem, len, 0, 6);
	VMT_ASSERT_OK(vms_buffer_refresh(buf));
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 6), -1);
}

static void readonly_export(void)
{
	for (int i = 0; i < 2; i++) {
		struct vms_context *c =
			vms_context_create(i ? VMS_CONTEXT_NO_MODULE : 0);
		size_t len = 8192;
		uint8_t *mem = vms_frame_alloc(c, len);
		struct vms_buffer *buf;
		struct vms_mapping *map;
		void *writable;

		VMT_ASSERT(c && mem);
		vmt_fill(mem, len, 0, 5);
		buf = vms_buffer_export(c, mem, len, VMS_EXPORT_RDONLY);
		VMT_ASSERT(buf);
		VMT_ASSERT_EQ(vms_buffer_kind(buf),
			      !i && module_present() ? VMS_BUFFER_DMABUF :
						       VMS_BUFFER_MEMFD_COPY);
		VMT_ASSERT(vms_buffer_is_readonly(buf));
		VMT_ASSERT_EQ(fcntl(vms_buffer_fd(buf), F_GETFL) & O_ACCMODE,
			      O_RDONLY);
		writable = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
				vms_buffer_fd(buf), 0);
		VMT_ASSERT(writable == MAP_FAILED);
		VMT_ASSERT_EQ(errno, EACCES);
		map = peer_map(buf, len);
		VMT_ASSERT(vms_mapping_is_readonly(map));
		VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), len, 0, 5), -1);
		if (vms_buffer_kind(buf) == VMS_BUFFER_MEMFD_COPY)
			copy_stays_readonly(buf, map, mem, len);
		vms_mapping_unref(map);
		vms_buffer_unref(buf);
		vms_frame_free(c, mem);
		vms_context_unref(c);
	}
}

/* memfd memory from the library: zero-copy with or without the module. */
static void alloc_is_zero_copy(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	struct vms_buffer *buf = vms_buffer_alloc(c, 5000);
	struct vms_mapping *map;

	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD);
	VMT_ASSERT_EQ(vms_buffer_size(buf), 8192);
	VMT_ASSERT_EQ(vms_buffer_offset(buf), 0);
	for (size_t i = 0; i < 5000; i++)
		VMT_ASSERT_EQ(((uint8_t *)vms_buffer_data(buf))[i], 0);
	map = peer_map(buf, 5000);
	vmt_fill(vms_mapping_plane(map, 0), 5000, 0, 6);
	VMT_ASSERT_EQ(vmt_check(vms_buffer_data(buf), 5000, 0, 6), -1);
	vms_mapping_unref(map);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/*
 * NV12 with its two planes at two places of one block of frame memory,
 * the first 10 bytes into it: zero-copy through vmemexp where it is
 * loaded, at that offset.
 */
static void nv12_planes(void)
{
	struct vms_context *c = vms_context_create(0);
	uint32_t w = 64, h = 32, stride = 64;
	uint8_t *mem = vms_frame_alloc(c, stride * h * 2 + 100);
	struct vms_range ranges[2] = {
		{ mem + 10, (size_t)stride * h },
		{ mem + 10 + stride * h + 50, (size_t)stride * h / 2 },
	};
	struct vms_range apart[2] = { ranges[0], { mem + 10 + (1 << 20), 16 } };
	struct vms_mapping *map;
	struct vms_buffer *buf;
	struct vms_frame frame;

	VMT_ASSERT(c && mem);
	vmt_fill(mem + 10, ranges[0].len, 0, 7);
	vmt_fill(mem + 10 + stride * h + 50, ranges[1].len, 0, 8);
	buf = vms_buffer_export_planes(c, ranges, 2, 0);
	VMT_ASSERT(buf);
	if (module_present()) {
		VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
		VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 0), 10);
	}
	VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 1) - vms_buffer_range_offset(buf, 0),
		      stride * h + 50);
	VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 2), UINT64_MAX);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, w, h, NV12, stride), 0);
	VMT_ASSERT_EQ(frame.n_planes, 2);
	VMT_ASSERT_EQ(frame.strides[1], stride);
	map = vms_mapping_create(vms_buffer_fd(buf), &frame);
	VMT_ASSERT(map);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), ranges[0].len, 0, 7), -1);
	VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 1), ranges[1].len, 0, 8), -1);
	VMT_ASSERT(!vms_mapping_plane(map, 2));
	vms_mapping_unref(map);
	vms_buffer_unref(buf);

	errno = 0;
	VMT_ASSERT(!vms_buffer_export_planes(c, apart, 2, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	apart[0] = ranges[1];
	apart[1] = ranges[0];
	VMT_ASSERT(!vms_buffer_export_planes(c, apart, 2, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT(!vms_buffer_export_planes(c, ranges, 0, 0));
	VMT_ASSERT_EQ(errno, EINVAL);
	vms_frame_free(c, mem);
	vms_context_unref(c);
}

/*
 * Planes in memory that is not page-aligned: what counts is the span
 * from the first plane's start to the last one's end.  Copied with the
 * reason unless the caller consents to exposing its whole first and last
 * page; with the consent, a dma-buf with each plane at its offset.
 */
static void planes_not_page_aligned(void)
{
	struct vms_context *c = vms_context_create(0);
	size_t page = page_size(), y_len = 2 * page, uv_len = page;
	uint8_t *mem = malloc(y_len + uv_len + 20);
	struct vms_range ranges[2] = {
		{ mem + 4, y_len }, { mem + 4 + y_len + 8, uv_len },
	};
	struct vms_buffer *buf;

	VMT_ASSERT(c && mem);
	buf = vms_buffer_export_planes(c, ranges, 2, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
	VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "not page-aligned"));
	VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 1), y_len + 8);
	vms_buffer_unref(buf);
	errno = 0;
	VMT_ASSERT(!vms_buffer_export_planes(c, ranges, 2, VMS_EXPORT_ZERO_COPY));
	VMT_ASSERT_EQ(errno, module_present() ? EINVAL : ENODEV);

	buf = vms_buffer_export_planes(c, ranges, 2,
				       VMS_EXPORT_EXPOSE_WHOLE_PAGES);
	VMT_ASSERT(buf);
	if (module_present()) {
		VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
		VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 0),
			      (uintptr_t)(mem + 4) % page);
		VMT_ASSERT_EQ(vms_buffer_size(buf),
			      whole_pages(mem + 4, y_len + 8 + uv_len));
	}
	VMT_ASSERT_EQ(vms_buffer_range_offset(buf, 1) -
		      vms_buffer_range_offset(buf, 0), y_len + 8);
	vms_buffer_unref(buf);
	vms_context_unref(c);
	free(mem);
}

static void describe_errors(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	struct vms_buffer *buf = vms_buffer_alloc(c, 4096);
	struct vms_frame frame;

	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 32, 32, XRGB8888, 128), 0);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 32, 33, XRGB8888, 128), -EINVAL);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 32, 8, XRGB8888, 64), -EINVAL);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 32, 8, 0x20202020u, 128), -EINVAL);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 0, 8, XRGB8888, 128), -EINVAL);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* A frame that claims more than its fd holds is refused before mmap. */
static void mapping_checks_fd_size(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	struct vms_buffer *buf = vms_buffer_alloc(c, 4096);
	struct vms_frame frame;

	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_frame_describe(&frame, buf, 32, 32, XRGB8888, 128), 0);
	frame.size = 8192;
	frame.height = 64;
	errno = 0;
	VMT_ASSERT(!vms_mapping_create(vms_buffer_fd(buf), &frame));
	VMT_ASSERT_EQ(errno, EOVERFLOW);
	VMT_ASSERT(!vms_mapping_create(-1, &frame));
	VMT_ASSERT_EQ(errno, EINVAL);
	vms_mapping_unref(NULL);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* The module refuses a PROT_READ mapping for writing: the library copies. */
static void module_refusal_falls_back(void)
{
	struct vms_context *c;
	struct vms_buffer *buf;
	uint8_t *ro;

	/* Before anything is allocated: a skip must leak nothing. */
	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	c = vms_context_create(0);
	ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(c && ro != MAP_FAILED);
	buf = vms_buffer_export(c, ro, 4096, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_MEMFD_COPY);
	VMT_ASSERT(strstr(vms_buffer_copy_reason(buf), "refused"));
	vms_buffer_unref(buf);
	errno = 0;
	VMT_ASSERT(!vms_buffer_export(c, ro, 4096, VMS_EXPORT_ZERO_COPY));
	VMT_ASSERT_EQ(errno, EACCES);
	munmap(ro, 4096);
	vms_context_unref(c);
}

/*
 * Where a copy cannot stand in for the memory, the module's error is the
 * answer: a range with a hole (the copy crashed in the library's memcpy)
 * and a range over max_export_bytes (a silent copy of any size).
 */
static void no_copy_where_unsound(void)
{
	struct vms_context *c;
	uint8_t *p;

	/* Before anything is allocated: a skip must leak nothing. */
	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	c = vms_context_create(0);
	p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(c && p != MAP_FAILED);
	VMT_ASSERT_OK(munmap(p + 4096, 4096));
	errno = 0;
	VMT_ASSERT(!vms_buffer_export(c, p, 3 * 4096, 0));
	VMT_ASSERT_EQ(errno, EFAULT);
	munmap(p, 3 * 4096);

	p = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(p != MAP_FAILED);
	memset(p, 1, 8 * 4096);
	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", "16384"));
	errno = 0;
	VMT_ASSERT(!vms_buffer_export(c, p, 8 * 4096, 0));
	VMT_ASSERT_EQ(errno, E2BIG);
	VMT_ASSERT_OK(vmt_set_module_param("max_export_bytes", "1073741824"));
	munmap(p, 8 * 4096);
	vms_context_unref(c);
}

/* @len bytes of fresh anonymous memory holding pattern 1, exported into *@a. */
static void export_fresh(struct vms_context *c, size_t len, uint8_t **p,
			 struct vms_buffer **a)
{
	*p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(c && *p != MAP_FAILED);
	vmt_fill(*p, len, 0, 1);
	*a = vms_buffer_export(c, *p, len, 0);
	VMT_ASSERT(*a && vms_buffer_kind(*a) == VMS_BUFFER_DMABUF);
}

/*
 * A context and @len bytes of fresh anonymous memory holding pattern 1,
 * exported through vmemexp into *@a; skips without the module.
 */
static struct vms_context *export_fresh_memory(size_t len, uint8_t **p,
					       struct vms_buffer **a)
{
	struct vms_context *c;

	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	c = vms_context_create(0);
	export_fresh(c, len, p, a);
	return c;
}

/* How many of this process's mappings have @what in their line, if given. */
static int count_mappings(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	VMT_ASSERT(f);
	while (fgets(line, sizeof(line), f))
		n += !what || strstr(line, what);
	fclose(f);
	return n;
}

/* Whether this process maps /dev/vmemexp: libvmshare's status page. */
static bool maps_status_page(void)
{
	return count_mappings(" /dev/vmemexp") > 0;
}

/*
 * Exporting the same memory again reuses the export @a of @p (pattern 1)
 * while the memory is unchanged in place (writes included), and never
 * after it was remapped: a new mapping at the same address must be
 * exported afresh, or a peer would see the old pages.  Releases all.
 */
static void check_reuse_until_remapped(struct vms_context *c, uint8_t *p,
				       size_t len, struct vms_buffer *a)
{
	struct vms_buffer *b, *d;

	/* Changed in place: the same dma-buf, and a peer sees the change. */
	vmt_fill(p, len, 0, 2);
	b = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(b == a);
	check_peer_sees(b, len, 0, 2);
	vms_buffer_unref(b);		/* a is still alive */
	VMT_ASSERT_EQ(fcntl(vms_buffer_fd(a), F_GETFD) >= 0, 1);

	/* Other flags are another export. */
	d = vms_buffer_export(c, p, len, VMS_EXPORT_RDONLY);
	VMT_ASSERT(d && d != a);
	vms_buffer_unref(d);

	/* Remapped at the same address: exported afresh. */
	VMT_ASSERT(mmap(p, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	vmt_fill(p, len, 0, 3);
	b = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(b && b != a);
	check_peer_sees(b, len, 0, 3);
	/* The stale export still holds the old pages for its holders. */
	check_peer_sees(a, len, 0, 2);

	/* Discarded pages are new pages too. */
	VMT_ASSERT_OK(madvise(p, len, MADV_DONTNEED));
	d = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(d && d != b);
	vms_buffer_unref(d);

	vms_buffer_unref(b);
	vms_buffer_unref(a);
	munmap(p, len);
	vms_context_unref(c);
}

/* Reuse decided by reading the status page, no system call. */
static void export_again_reuses_until_remapped(void)
{
	size_t len = 16 * 4096;
	struct vms_buffer *a;
	uint8_t *p;
	struct vms_context *c = export_fresh_memory(len, &p, &a);

	VMT_ASSERT(maps_status_page());
	check_reuse_until_remapped(c, p, len, a);
}

/*
 * Fault in 64 KiB of stack below the caller's frame.  The stack's mapping
 * keeps that size after the return, so calls that use less than that
 * under an address-space limit at the process's current size never grow
 * it: the limit would refuse the growth with SIGSEGV (seen with a 200 KiB
 * frame, past the 128 KiB the kernel maps beyond the stack at exec).
 */
static __attribute__((noinline)) void grow_stack_now(void)
{
	volatile char room[64 * 1024];
	size_t i;

	for (i = 0; i < sizeof(room); i += 4096)
		room[i] = 0;
}

/*
 * Without the status page (a module older than it, or a process that
 * cannot map it) reuse asks the module by VMEMEXP_IOC_STATUS, with the
 * same answers.  The context is created under an address-space limit of
 * the process's current size plus @spare_pages: with none, the mmap of
 * the page that tells a child from its parent fails; with one, that
 * succeeds and the status page's fails, and the first must be unmapped.
 */
static void check_reuse_without_status_page(unsigned long spare_pages)
{
	long page_size = sysconf(_SC_PAGESIZE);
	size_t len = 16 * 4096;
	struct rlimit old, tight;
	unsigned long vm_pages;
	struct vms_buffer *a;
	struct vms_context *c;
	int mappings;
	uint8_t *p;
	FILE *f;

	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	/* Room in the heap for the context, so its calloc needs no brk. */
	free(malloc(64 * 1024));
	grow_stack_now();
	mappings = count_mappings(NULL);
	f = fopen("/proc/self/statm", "re");
	VMT_ASSERT(f && fscanf(f, "%lu", &vm_pages) == 1);
	fclose(f);
	VMT_ASSERT_OK(getrlimit(RLIMIT_AS, &old));
	tight = (struct rlimit){
		.rlim_cur = (vm_pages + spare_pages) * (unsigned long)page_size,
		.rlim_max = old.rlim_max };
	VMT_ASSERT_OK(setrlimit(RLIMIT_AS, &tight));
	c = vms_context_create(0);
	VMT_ASSERT_OK(setrlimit(RLIMIT_AS, &old));
	VMT_ASSERT(c && vms_context_has_module(c));
	VMT_ASSERT(!maps_status_page());
	VMT_ASSERT_EQ(count_mappings(NULL), mappings);
	export_fresh(c, len, &p, &a);
	check_reuse_until_remapped(c, p, len, a);
}

static void export_again_without_status_page(void)
{
	check_reuse_without_status_page(0);
}

static void export_again_when_only_status_page_fails(void)
{
	check_reuse_without_status_page(1);
}

/* In a child: whether its export of @p is new and shows the child's bytes. */
static bool child_exports_afresh(struct vms_context *c, uint8_t *p, size_t len,
				 struct vms_buffer *parents)
{
	struct vms_buffer *b;
	struct vms_mapping *map;
	bool ok;

	vmt_fill(p, len, 0, 5);
	b = vms_buffer_export(c, p, len, 0);
	if (!b || b == parents)
		return false;
	map = peer_map(b, len);
	ok = vmt_check(vms_mapping_plane(map, 0), len, 0, 5) == -1;
	vms_mapping_unref(map);
	return ok;
}

/* A child process as glibc's fork() makes one, atfork handlers and all. */
static pid_t spawn_by_fork(void)
{
	return fork();
}

/* A child process by the bare system call, which no atfork handler sees. */
static pid_t spawn_by_raw_clone(void)
{
	return (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
}

/*
 * After fork the child's memory is its own (pinned pages are copied for
 * it), so its export of the same address must be a new one, though the
 * status page it inherited says the parent's export is current: the
 * child has to ask the module, which tells it the export is not its own.
 * The parent goes on reusing its export.
 */
static void check_export_again_in_child(pid_t (*spawn)(void))
{
	size_t len = 16 * 4096;
	struct vms_buffer *a, *b;
	uint8_t *p;
	struct vms_context *c = export_fresh_memory(len, &p, &a);
	pid_t pid;

	pid = spawn();
	VMT_ASSERT(pid >= 0);
	if (pid == 0)
		_exit(child_exports_afresh(c, p, len, a) ? 0 : 1);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	b = vms_buffer_export(c, p, len, 0);
	VMT_ASSERT(b == a);
	vms_buffer_unref(b);
	vms_buffer_unref(a);
	munmap(p, len);
	vms_context_unref(c);
}

static void export_again_after_fork(void)
{
	check_export_again_in_child(spawn_by_fork);
}

static void export_again_after_raw_clone(void)
{
	check_export_again_in_child(spawn_by_raw_clone);
}

/*
 * In a child: exports of one range, twice, by a module that cannot track
 * (export_fresh_memory() asserts the first is a dma-buf).
 */
static bool exports_untracked(void)
{
	size_t len = 16 * 4096;
	struct vms_buffer *a, *b;
	struct vms_mapping *map;
	uint8_t *p;
	struct vms_context *c = export_fresh_memory(len, &p, &a);
	bool ok;

	vmt_fill(p, len, 0, 2);
	b = vms_buffer_export(c, p, len, 0);
	/* Zero-copy both times, never a memfd copy; but nothing to reuse. */
	if (!b || b == a || vms_buffer_kind(b) != VMS_BUFFER_DMABUF)
		return false;
	map = peer_map(a, len);
	ok = vmt_check(vms_mapping_plane(map, 0), len, 0, 2) == -1;
	vms_mapping_unref(map);
	vms_buffer_unref(b);
	vms_buffer_unref(a);
	vms_context_unref(c);
	return ok;
}

/*
 * On a kernel without MMU notifiers vmemexp refuses VMEMEXP_EXPORT_TRACK
 * with EOPNOTSUPP (an older module with EINVAL): libvmshare must export
 * without it, zero-copy, rather than fall back to copies.  The module's
 * track_exports=N gives the same answer on this kernel.
 */
static void exports_when_module_cannot_track(void)
{
	const char *param = "/sys/module/vmemexp/parameters/track_exports";
	FILE *f;
	int pid, status;

	if (!module_present())
		vmt_skip("needs vmemexp.ko");
	f = fopen(param, "w");
	if (!f)
		vmt_skip("vmemexp has no writable track_exports parameter");
	VMT_ASSERT(fputs("N", f) >= 0 && fclose(f) == 0);
	pid = fork();
	VMT_ASSERT(pid >= 0);
	if (pid == 0)
		_exit(exports_untracked() ? 0 : 1);
	status = vmt_wait(pid);
	f = fopen(param, "w");
	VMT_ASSERT(f && fputs("Y", f) >= 0 && fclose(f) == 0);
	VMT_ASSERT_EQ(status, 0);
}

struct captured {
	int calls[3];		/* debug, info, error */
	char last[256];
};

static void capture(struct vms_context *ctx, enum vms_log_priority priority,
		    const char *format, va_list args)
{
	struct captured *c = vms_context_get_user_data(ctx);

	c->calls[priority / 10 - 1]++;
	vsnprintf(c->last, sizeof(c->last), format, args);
}

/*
 * The application's log handler gets the messages at or above its
 * priority; VMSHARE_DEBUG only picks the default priority.
 */
static void log_handler(void)
{
	struct captured got = { 0 };
	struct vms_context *c;
	char *misaligned = malloc(3 * 4096);
	struct vms_buffer *buf;

	VMT_ASSERT(misaligned);
	unsetenv("VMSHARE_DEBUG");
	c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	VMT_ASSERT(c);
	VMT_ASSERT_EQ(vms_context_get_log_priority(c), VMS_LOG_PRIORITY_ERROR);
	vms_context_set_user_data(c, &got);
	VMT_ASSERT(vms_context_get_user_data(c) == &got);
	vms_context_set_log_handler(c, capture);

	/* A copy is a fallback (info): below the default priority. */
	buf = vms_buffer_export(c, misaligned + 1, 4096, 0);
	VMT_ASSERT(buf);
	vms_buffer_unref(buf);
	VMT_ASSERT_EQ(got.calls[0] + got.calls[1] + got.calls[2], 0);
	/* An error gets through. */
	vms_frame_free(c, misaligned);
	VMT_ASSERT_EQ(got.calls[2], 1);
	VMT_ASSERT(strstr(got.last, "is not frame memory of this context"));

	/* At debug priority the copy's reason and the decisions arrive. */
	vms_context_set_log_priority(c, VMS_LOG_PRIORITY_DEBUG);
	VMT_ASSERT_EQ(vms_context_get_log_priority(c), VMS_LOG_PRIORITY_DEBUG);
	buf = vms_buffer_export(c, misaligned + 1, 4096, 0);
	VMT_ASSERT(buf);
	vms_buffer_unref(buf);
	VMT_ASSERT_EQ(got.calls[1], 1);
	vmt_note("%d debug, %d info messages; last: %s", got.calls[0],
		 got.calls[1], got.last);

	/* NULL restores the default handler: nothing more reaches capture. */
	vms_context_set_log_handler(c, NULL);
	vms_frame_free(c, misaligned);
	VMT_ASSERT_EQ(got.calls[2], 1);
	vms_context_unref(c);

	/* VMSHARE_DEBUG=1 makes debug the default of a new context. */
	setenv("VMSHARE_DEBUG", "1", 1);
	c = vms_context_create(VMS_CONTEXT_NO_MODULE);
	VMT_ASSERT(c);
	VMT_ASSERT_EQ(vms_context_get_log_priority(c), VMS_LOG_PRIORITY_DEBUG);
	vms_context_unref(c);
	unsetenv("VMSHARE_DEBUG");
	free(misaligned);
}

/*
 * References: a buffer holds its context, so the application may drop
 * the context first; the buffer, its memory and its frame block stay
 * usable until the buffer's last reference goes.  (Before, the context
 * had to outlive its buffers: this was a use after free, which valgrind's
 * run of this test reports.)
 */
static void unref_in_any_order(void)
{
	int before = vmt_count_fds();
	const size_t len = 4 * 4096;
	struct vms_context *c = vms_context_create(0);
	struct vms_buffer *buf, *same;
	uint8_t *mem;

	VMT_ASSERT(c);
	VMT_ASSERT(vms_context_ref(c) == c);
	VMT_ASSERT(!vms_context_unref(c));
	mem = vms_frame_alloc(c, len);
	VMT_ASSERT(mem);
	vmt_fill(mem, len, 0, 5);
	buf = vms_buffer_export(c, mem, len, 0);
	VMT_ASSERT(buf);
	same = vms_buffer_ref(buf);
	VMT_ASSERT(same == buf);
	VMT_ASSERT(!vms_context_unref(c));
	/* The context lives on in the buffer: its memory, its fd. */
	VMT_ASSERT_EQ(vmt_check(vms_buffer_data(buf), len, 0, 5), -1);
	VMT_ASSERT(fcntl(vms_buffer_fd(buf), F_GETFD) >= 0);
	VMT_ASSERT_EQ(vms_buffer_begin_cpu_access(buf, VMS_ACCESS_READ), 0);
	VMT_ASSERT_EQ(vms_buffer_end_cpu_access(buf, VMS_ACCESS_READ), 0);
	VMT_ASSERT(!vms_buffer_unref(buf));
	VMT_ASSERT_EQ(vmt_check(vms_buffer_data(same), len, 0, 5), -1);
	VMT_ASSERT(!vms_buffer_unref(same));
	VMT_ASSERT(!vms_buffer_unref(NULL));
	VMT_ASSERT(!vms_context_unref(NULL));
	VMT_ASSERT_EQ(vmt_count_fds(), before);
}

/* A context on an fd the caller opened, as a portal or logind hands one. */
static void context_from_fd(void)
{
	int before = vmt_count_fds(), fd, p[2];
	const size_t len = 4 * 4096;
	struct vms_context *c;
	struct vms_buffer *buf;
	void *mem;

	/* Not vmemexp: refused, and the fd closed all the same. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	VMT_ASSERT_OK(fd);
	errno = 0;
	VMT_ASSERT(!vms_context_create_from_fd(fd, 0));
	VMT_ASSERT_EQ(errno, ENOTTY);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	VMT_ASSERT_OK(pipe2(p, O_CLOEXEC));
	VMT_ASSERT(!vms_context_create_from_fd(p[0], 0));
	VMT_ASSERT_EQ(errno, ENOTTY);
	close(p[1]);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	VMT_ASSERT(!vms_context_create_from_fd(fd, 1));
	VMT_ASSERT_EQ(errno, EINVAL);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	VMT_ASSERT(!vms_context_create_from_fd(-1, 0));
	VMT_ASSERT_EQ(errno, EBADF);
	if (!module_present()) {
		vmt_note("no /dev/vmemexp: only the refusals checked");
		return;
	}

	/* Opened without O_CLOEXEC: the context makes it so. */
	fd = open("/dev/vmemexp", O_RDWR);
	VMT_ASSERT_OK(fd);
	c = vms_context_create_from_fd(fd, 0);
	VMT_ASSERT(c);
	VMT_ASSERT(vms_context_has_module(c));
	VMT_ASSERT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	mem = vms_frame_alloc(c, len);
	VMT_ASSERT(mem);
	buf = vms_buffer_export(c, mem, len, 0);
	VMT_ASSERT(buf);
	VMT_ASSERT_EQ(vms_buffer_kind(buf), VMS_BUFFER_DMABUF);
	vms_buffer_unref(buf);
	vms_frame_free(c, mem);
	vms_context_unref(c);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
}

static const struct vmt_test tests[] = {
	VMT_TEST(context_flags),
	VMT_TEST(context_from_fd),
	VMT_TEST(unref_in_any_order),
	VMT_TEST(log_handler),
	VMT_TEST(export_bad_arguments),
	VMT_TEST(export_malloc),
	VMT_TEST(unaligned_export_copies),
	VMT_TEST(frame_alloc_zero_copy),
	VMT_TEST(huge_frames_aligned),
	VMT_TEST(frame_free_keeps_peers_pages),
	VMT_TEST(frame_memory_lifetime),
	VMT_TEST(fallback_copy),
	VMT_TEST(readonly_export),
	VMT_TEST(alloc_is_zero_copy),
	VMT_TEST(nv12_planes),
	VMT_TEST(planes_not_page_aligned),
	VMT_TEST(describe_errors),
	VMT_TEST(mapping_checks_fd_size),
	VMT_TEST(module_refusal_falls_back),
	VMT_TEST(no_copy_where_unsound),
	VMT_TEST(export_again_reuses_until_remapped),
	VMT_TEST(export_again_without_status_page),
	VMT_TEST(export_again_when_only_status_page_fails),
	VMT_TEST(export_again_after_fork),
	VMT_TEST(export_again_after_raw_clone),
	VMT_TEST(exports_when_module_cannot_track),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
