/* SPDX-License-Identifier: MIT */
/*
 * Real kernel importers of an exported dma-buf, each case run against
 * vmemexp (malloc memory), udmabuf (memfd memory) and the system dma-heap
 * (memory the heap allocated) so the exporters are compared on the same
 * tests:
 *
 *  - vgem: PRIME import (dma_buf_attach + map_dma_buf at import time),
 *    importing twice gives the same handle, re-export gives the same
 *    dma-buf back, DRM_IOCTL_MODE_MAP_DUMB of the imported object;
 *  - vivid: V4L2 capture into V4L2_MEMORY_DMABUF buffers (videobuf2's
 *    vmalloc allocator maps them with dma_buf_vmap), the driver's frames
 *    must land in the exporter's own memory.
 *
 * Each case skips (77) when its device is missing: vgem and vivid are
 * loaded by vmrun --modprobe, /dev/udmabuf exists only in a kernel built
 * with CONFIG_UDMABUF, /dev/dma_heap/system with CONFIG_DMABUF_HEAPS_SYSTEM
 * (Debian 13's 6.12, not Debian 12's 6.1).  The harness checks fds and FOLL_PIN counts after
 * every case.
 */
#include <dirent.h>
#include <drm.h>
#include <drm_mode.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "vmx.h"

#define PAGE 4096ul

/* A buffer some exporter made a dma-buf of; mem is the exporter's view. */
struct exported {
	int fd;
	uint8_t *mem;
	size_t size;
	int memfd;
	size_t huge_size;
	bool mem_maps_fd;	/* mem is a mapping of the dma-buf itself */
};

enum exporter { VMEMEXP, VMEMEXP_HUGETLB, UDMABUF, DMA_HEAP };

static const char *exporter_name(enum exporter x)
{
	static const char *const names[] = {
		[VMEMEXP] = "vmemexp",
		[VMEMEXP_HUGETLB] = "vmemexp (hugetlb)",
		[UDMABUF] = "udmabuf",
		[DMA_HEAP] = "system dma-heap",
	};

	return names[x];
}

#define HUGE_PAGE (2ul << 20)

/* One 2 MiB hugetlb page: physically contiguous, one segment. */
static struct exported export_vmemexp_hugetlb(size_t size)
{
	struct exported b = { .memfd = -1, .size = size };
	struct vmemexp_export e;
	FILE *f;
	int dev = vmx_open();

	VMT_ASSERT(size <= HUGE_PAGE);
	f = fopen("/proc/sys/vm/nr_hugepages", "we");
	if (f) {
		fprintf(f, "8\n");
		fclose(f);
	}
	b.mem = mmap(NULL, HUGE_PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (b.mem == MAP_FAILED)
		vmt_skip("no hugetlb page: %s", vmt_errname(errno));
	b.huge_size = HUGE_PAGE;
	memset(b.mem, 0, size);
	b.fd = vmx_export_ok(dev, b.mem, size, VMEMEXP_EXPORT_CLOEXEC, &e);
	VMT_ASSERT_EQ(e.nr_segments, 1);
	close(dev);
	return b;
}

/* Page-aligned malloc memory, so the frame starts at offset 0. */
static struct exported export_vmemexp(size_t size, bool rdonly)
{
	struct exported b = { .memfd = -1, .size = size };
	struct vmemexp_export e;
	void *mem;
	int dev = vmx_open();

	VMT_ASSERT_EQ(posix_memalign(&mem, PAGE, size), 0);
	b.mem = mem;
	memset(b.mem, 0, size);
	b.fd = vmx_export_ok(dev, b.mem, size,
			     VMEMEXP_EXPORT_CLOEXEC |
			     (rdonly ? VMEMEXP_EXPORT_RDONLY : 0), &e);
	VMT_ASSERT_EQ(e.offset, 0);
	close(dev);
	return b;
}

static struct exported export_udmabuf(size_t size)
{
	struct exported b = { .size = size };
	struct udmabuf_create create = { .flags = UDMABUF_FLAGS_CLOEXEC };
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);

	if (dev < 0)
		vmt_skip("/dev/udmabuf: %s (a kernel without CONFIG_UDMABUF)",
			 vmt_errname(errno));
	b.memfd = memfd_create("importers", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	VMT_ASSERT_OK(b.memfd);
	VMT_ASSERT_OK(ftruncate(b.memfd, (off_t)size));
	VMT_ASSERT_OK(fcntl(b.memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	b.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b.memfd,
		     0);
	VMT_ASSERT(b.mem != MAP_FAILED);
	create.memfd = (uint32_t)b.memfd;
	create.size = size;
	b.fd = ioctl(dev, UDMABUF_CREATE, &create);
	VMT_ASSERT_OK(b.fd);
	close(dev);
	return b;
}

/*
 * The heap allocates the memory itself: the application sees it only
 * through a mapping of the dma-buf, which is what a vmemexp user avoids.
 */
static struct exported export_dmaheap(size_t size)
{
	struct exported b = { .memfd = -1, .size = size, .mem_maps_fd = true };
	struct dma_heap_allocation_data alloc = {
		.len = size,
		.fd_flags = O_RDWR | O_CLOEXEC,
	};
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);

	if (heap < 0)
		vmt_skip("/dev/dma_heap/system: %s (a kernel without "
			 "CONFIG_DMABUF_HEAPS_SYSTEM)", vmt_errname(errno));
	VMT_ASSERT_OK(ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &alloc));
	close(heap);
	b.fd = (int)alloc.fd;
	b.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b.fd, 0);
	VMT_ASSERT(b.mem != MAP_FAILED);
	return b;
}

static struct exported export_with(enum exporter x, size_t size)
{
	switch (x) {
	case VMEMEXP:
		return export_vmemexp(size, false);
	case VMEMEXP_HUGETLB:
		return export_vmemexp_hugetlb(size);
	case DMA_HEAP:
		return export_dmaheap(size);
	default:
		return export_udmabuf(size);
	}
}

static void exported_free(struct exported *b)
{
	close(b->fd);
	if (b->huge_size) {
		munmap(b->mem, b->huge_size);
	} else if (b->mem_maps_fd) {
		munmap(b->mem, b->size);
	} else if (b->memfd >= 0) {
		munmap(b->mem, b->size);
		close(b->memfd);
	} else {
		free(b->mem);
	}
}

/*
 * How many devices are attached to a dma-buf, from debugfs's bufinfo: a
 * line per buffer with its inode number, then its attachments, then
 * "Total N devices attached".  -1 when debugfs is not available.
 */
static int attachments(int fd)
{
	FILE *f = fopen("/sys/kernel/debug/dma_buf/bufinfo", "re");
	char line[256], want[32];
	bool in_buf = false;
	struct stat st;
	int n = -1;

	if (!f) {
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
		f = fopen("/sys/kernel/debug/dma_buf/bufinfo", "re");
	}
	if (!f)
		return -1;
	VMT_ASSERT_OK(fstat(fd, &st));
	snprintf(want, sizeof(want), "\t%08lu\t", (unsigned long)st.st_ino);
	while (fgets(line, sizeof(line), f)) {
		if (!in_buf) {
			in_buf = strstr(line, want) != NULL;
		} else if (sscanf(line, "Total %d devices attached", &n) == 1) {
			break;
		}
	}
	fclose(f);
	VMT_ASSERT(n >= 0);
	return n;
}

/* ---- vgem ---- */

static int open_vgem(void)
{
	char path[64], name[64];

	for (int i = 0; i < 16; i++) {
		struct drm_version v = {
			.name = name,
			.name_len = sizeof(name) - 1,
		};
		int fd;

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(name, 0, sizeof(name));
		if (ioctl(fd, DRM_IOCTL_VERSION, &v) == 0 &&
		    !strcmp(name, "vgem"))
			return fd;
		close(fd);
	}
	vmt_skip("no vgem device (vmrun --modprobe vgem)");
}

static uint32_t prime_import(int drm, int fd)
{
	struct drm_prime_handle p = { .fd = fd };

	VMT_ASSERT_OK(ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p));
	VMT_ASSERT(p.handle != 0);
	return p.handle;
}

static void gem_close(int drm, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	VMT_ASSERT_OK(ioctl(drm, DRM_IOCTL_GEM_CLOSE, &c));
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	VMT_ASSERT_OK(fstat(a, &sa));
	VMT_ASSERT_OK(fstat(b, &sb));
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void vgem_import(struct exported *b, bool rdonly)
{
	struct drm_prime_handle out = { .flags = DRM_CLOEXEC };
	struct drm_mode_map_dumb map_dumb = { 0 };
	int drm = open_vgem(), before = attachments(b->fd), after;
	uint32_t handle;
	uint8_t *map;

	vmt_fill(b->mem, b->size, 0, 10);
	handle = prime_import(drm, b->fd);
	/* The import attached vgem's device and mapped the sg table. */
	after = attachments(b->fd);
	if (before >= 0)
		VMT_ASSERT_EQ(after, before + 1);
	else
		vmt_note("no debugfs: attachment not observed");
	VMT_ASSERT_EQ(prime_import(drm, b->fd), handle);

	out.handle = handle;
	if (!rdonly)
		out.flags |= DRM_RDWR;
	VMT_ASSERT_OK(ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, &out));
	VMT_ASSERT(same_file(out.fd, b->fd));
	map = mmap(NULL, b->size, PROT_READ, MAP_SHARED, out.fd, 0);
	VMT_ASSERT(map != MAP_FAILED);
	VMT_ASSERT_EQ(vmt_check(map, b->size, 0, 10), -1);
	munmap(map, b->size);

	/*
	 * Linux 6.1 refuses a mmap offset for an imported GEM object
	 * (drm_gem_dumb_map_offset()); a peer maps the dma-buf instead.
	 */
	map_dumb.handle = handle;
	if (ioctl(drm, DRM_IOCTL_MODE_MAP_DUMB, &map_dumb) == 0) {
		map = mmap(NULL, b->size, PROT_READ, MAP_SHARED, drm,
			   (off_t)map_dumb.offset);
		VMT_ASSERT(map != MAP_FAILED);
		VMT_ASSERT_EQ(vmt_check(map, b->size, 0, 10), -1);
		munmap(map, b->size);
		vmt_note("MODE_MAP_DUMB of the imported object works");
	} else {
		vmt_note("MODE_MAP_DUMB of the imported object: %s",
			 vmt_errname(errno));
		VMT_ASSERT(errno == EINVAL);
	}

	gem_close(drm, handle);
	close(out.fd);
	close(drm);
	if (before >= 0)
		VMT_ASSERT_EQ(attachments(b->fd), before);
}

static void vgem_vmemexp(void)
{
	struct exported b = export_vmemexp(64 * PAGE + PAGE, false);

	vgem_import(&b, false);
	exported_free(&b);
}

static void vgem_vmemexp_rdonly(void)
{
	struct exported b = export_vmemexp(16 * PAGE, true);

	vgem_import(&b, true);
	exported_free(&b);
}

/*
 * 64 KiB, not vgem_vmemexp's 65 pages: Linux 6.1's udmabuf maps one sg
 * table whose segments merge every physically contiguous run of the memfd,
 * whatever the importer's limit, and DMA-API debugging warns when a segment
 * exceeds vgem's 64 KiB (seen here: len=73728 with 65 pages).  vmemexp
 * splits its segments at each importer's dma_get_max_seg_size(); a buffer
 * no longer than that limit is the comparison udmabuf passes.
 */
static void vgem_udmabuf(void)
{
	struct exported b = export_udmabuf(16 * PAGE);

	vgem_import(&b, false);
	exported_free(&b);
}

/* The heap's buffers have no importer-specific limit to respect. */
static void vgem_dmaheap(void)
{
	struct exported b = export_dmaheap(64 * PAGE + PAGE);

	vgem_import(&b, false);
	exported_free(&b);
}

/* ---- vivid ---- */

#define VIVID_BUFFERS 4
#define VIVID_FRAMES 8
#define SENTINEL 0xa5

static int open_vivid(void)
{
	char path[64];

	for (int i = 0; i < 64; i++) {
		struct v4l2_capability cap = { 0 };
		int fd;

		snprintf(path, sizeof(path), "/dev/video%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (ioctl(fd, VIDIOC_QUERYCAP, &cap) == 0 &&
		    !strcmp((char *)cap.driver, "vivid") &&
		    (cap.device_caps & V4L2_CAP_VIDEO_CAPTURE))
			return fd;
		close(fd);
	}
	vmt_skip("no vivid capture device (vmrun --modprobe 'vivid ...')");
}

static struct v4l2_format vivid_set_format(int video)
{
	struct v4l2_format fmt = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };

	fmt.fmt.pix.width = 320;
	fmt.fmt.pix.height = 180;
	fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
	fmt.fmt.pix.field = V4L2_FIELD_NONE;
	VMT_ASSERT_OK(ioctl(video, VIDIOC_S_FMT, &fmt));
	VMT_ASSERT_EQ(fmt.fmt.pix.pixelformat, V4L2_PIX_FMT_YUYV);
	VMT_ASSERT(fmt.fmt.pix.sizeimage >= fmt.fmt.pix.width * 2 *
					    fmt.fmt.pix.height);
	return fmt;
}

static void vivid_request(int video, unsigned int count)
{
	struct v4l2_requestbuffers req = {
		.count = count,
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = V4L2_MEMORY_DMABUF,
	};

	VMT_ASSERT_OK(ioctl(video, VIDIOC_REQBUFS, &req));
	VMT_ASSERT_EQ(req.count, count);
}

static int vivid_queue(int video, unsigned int index, const struct exported *b)
{
	struct v4l2_buffer buf = {
		.index = index,
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = V4L2_MEMORY_DMABUF,
		.m.fd = b->fd,
		.length = (uint32_t)b->size,
	};

	return ioctl(video, VIDIOC_QBUF, &buf);
}

static void vivid_capture(enum exporter x)
{
	struct exported bufs[VIVID_BUFFERS];
	int video = open_vivid();
	struct v4l2_format fmt = vivid_set_format(video);
	size_t image = fmt.fmt.pix.sizeimage;
	size_t size = (image + PAGE - 1) & ~(PAGE - 1);
	int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;

	vmt_note("%s: %ux%u YUYV, %zu bytes per frame", exporter_name(x),
		 fmt.fmt.pix.width, fmt.fmt.pix.height, image);
	vivid_request(video, VIVID_BUFFERS);
	for (unsigned int i = 0; i < VIVID_BUFFERS; i++) {
		bufs[i] = export_with(x, size);
		memset(bufs[i].mem, SENTINEL, size);
		/*
		 * Linux 6.1's udmabuf has no vmap: videobuf2-vmalloc cannot
		 * use it at all, a limit of that exporter, not of this test.
		 */
		errno = 0;
		if (vivid_queue(video, i, &bufs[i]) && x == UDMABUF &&
		    errno == EFAULT)
			vmt_skip("udmabuf refused by videobuf2-vmalloc (QBUF: "
				 "EFAULT): this udmabuf has no vmap");
		VMT_ASSERT_EQ(errno, 0);
	}
	VMT_ASSERT_OK(ioctl(video, VIDIOC_STREAMON, &type));

	for (int frame = 0; frame < VIVID_FRAMES; frame++) {
		struct v4l2_buffer buf = {
			.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
			.memory = V4L2_MEMORY_DMABUF,
		};
		struct pollfd pfd = { .fd = video, .events = POLLIN };
		const uint8_t *mem;
		size_t untouched = 0;

		VMT_ASSERT_EQ(poll(&pfd, 1, 20000), 1);
		VMT_ASSERT_OK(ioctl(video, VIDIOC_DQBUF, &buf));
		VMT_ASSERT(buf.index < VIVID_BUFFERS);
		VMT_ASSERT_EQ(buf.bytesused, image);
		VMT_ASSERT_EQ(buf.flags & V4L2_BUF_FLAG_ERROR, 0);
		/* The frame is in the exporter's own memory, not a copy. */
		mem = bufs[buf.index].mem;
		for (size_t i = 0; i < image; i++)
			untouched += mem[i] == SENTINEL;
		if (untouched > image / 10)
			vmt_fail(__FILE__, __LINE__,
				 "frame %d: %zu of %zu bytes still sentinel",
				 frame, untouched, image);
		/* Past the image the driver has no business writing. */
		for (size_t i = image; i < size; i++)
			VMT_ASSERT_EQ(mem[i], SENTINEL);
		memset(bufs[buf.index].mem, SENTINEL, size);
		VMT_ASSERT_OK(vivid_queue(video, buf.index, &bufs[buf.index]));
	}

	VMT_ASSERT_OK(ioctl(video, VIDIOC_STREAMOFF, &type));
	vivid_request(video, 0);
	close(video);
	for (unsigned int i = 0; i < VIVID_BUFFERS; i++)
		exported_free(&bufs[i]);
}

static void vivid_vmemexp(void)
{
	vivid_capture(VMEMEXP);
}

static void vivid_udmabuf(void)
{
	vivid_capture(UDMABUF);
}

static void vivid_dmaheap(void)
{
	vivid_capture(DMA_HEAP);
}

/*
 * One run of pages outside highmem: videobuf2's vmalloc allocator writes
 * through vmemexp's kernel mapping of it, which is the linear map's.
 */
static void vivid_vmemexp_hugetlb(void)
{
	vivid_capture(VMEMEXP_HUGETLB);
}

/*
 * With vivid's allocators=1, videobuf2's dma-contig allocator maps the
 * dma-buf for its device and needs one contiguous DMA range: a hugetlb
 * page is one, and the driver captures into it.
 */
static void vivid_contig_hugetlb(void)
{
	vivid_capture(VMEMEXP_HUGETLB);
}

/* ...and scattered malloc pages (no IOMMU here) are refused, quietly. */
static void vivid_contig_malloc_refused(void)
{
	int video = open_vivid();
	struct v4l2_format fmt = vivid_set_format(video);
	size_t size = (fmt.fmt.pix.sizeimage + PAGE - 1) & ~(PAGE - 1);
	struct exported b = export_vmemexp(size, false);

	vivid_request(video, 2);
	VMT_ASSERT_ERRNO(vivid_queue(video, 0, &b), EFAULT);
	vivid_request(video, 0);
	close(video);
	exported_free(&b);
}

/*
 * videobuf2's vmalloc allocator writes through dma_buf_vmap(), which
 * vmemexp refuses for a read-only export: the buffer must be refused, and
 * nothing may stay attached or pinned.
 */
static void vivid_vmemexp_rdonly_refused(void)
{
	int video = open_vivid();
	struct v4l2_format fmt = vivid_set_format(video);
	size_t size = (fmt.fmt.pix.sizeimage + PAGE - 1) & ~(PAGE - 1);
	struct exported b = export_vmemexp(size, true);

	vivid_request(video, 2); /* vivid's minimum */
	errno = 0;
	VMT_ASSERT(vivid_queue(video, 0, &b) < 0);
	vmt_note("QBUF of a read-only export: %s", vmt_errname(errno));
	vivid_request(video, 0);
	close(video);
	exported_free(&b);
}

static const struct vmt_test tests[] = {
	VMT_TEST(vgem_vmemexp),
	VMT_TEST(vgem_vmemexp_rdonly),
	VMT_TEST(vgem_udmabuf),
	VMT_TEST(vgem_dmaheap),
	VMT_TEST(vivid_vmemexp),
	VMT_TEST(vivid_vmemexp_hugetlb),
	VMT_TEST(vivid_vmemexp_rdonly_refused),
	VMT_TEST(vivid_udmabuf),
	VMT_TEST(vivid_dmaheap),
	VMT_TEST(vivid_contig_hugetlb),
	VMT_TEST(vivid_contig_malloc_refused),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
