/* SPDX-License-Identifier: MIT */
/*
 * vmshare-kms-display: scan out plain process memory on a KMS plane.
 *
 * The frame is ordinary memory from vms_frame_alloc(): page-aligned, so
 * its dma-buf holds the frame and nothing else of the process.  libvmshare
 * exports it once as a dma-buf, the display driver imports it (PRIME) and
 * makes a framebuffer of it, and every later frame is drawn into the same
 * memory and only re-committed: the display reads what the program wrote,
 * with no copy in between.  Where an overlay plane exists, a second such
 * image is shown on it.
 *
 * With --verify the program drives the device's writeback connector
 * instead of a display and compares every composed frame, pixel by pixel,
 * with what it drew (vkms: enable_writeback=1, enable_overlay=1).
 *
 *   vmshare-kms-display [--device /dev/dri/cardN] [--frames N] [--verify]
 *                       [--unaligned] [--no-overlay] [--carveout DEVICE]
 *
 * --carveout DEVICE takes the primary plane's frame from a physical
 * carve-out that DEVICE's driver maps (an RTOS's shared memory, say)
 * instead; vmemexp exports it from there (docs/module.md, "Carve-outs").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <drm_fourcc.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <vmshare.h>

#define PAGE 4096u
#define OVERLAY_X 64
#define OVERLAY_Y 48
#define OVERLAY_W 256
#define OVERLAY_H 128

/* A frame in process memory, and what the display made of it. */
struct image {
	uint8_t *alloc;		/* what vms_frame_alloc (or mmap) returned */
	size_t map_len;		/* the carve-out mapping's length, else 0 */
	uint32_t *pixels;	/* the frame, inside alloc */
	uint32_t width, height, stride;
	struct vms_buffer *buffer;
	uint32_t handle, fb;
};

struct display {
	int fd;
	uint32_t crtc, connector, primary, overlay;
	uint32_t others[8];	/* every other connector, detached at modeset */
	int n_others;
	bool writeback;
	drmModeModeInfo mode;
	uint32_t mode_blob;
	struct image capture;	/* writeback target: a dumb buffer */
	uint32_t capture_size;
};

static uint32_t property(int fd, uint32_t object, uint32_t type,
			 const char *name)
{
	drmModeObjectProperties *props = drmModeObjectGetProperties(fd, object, type);
	uint32_t id = 0;

	for (uint32_t i = 0; props && i < props->count_props && !id; i++) {
		drmModePropertyRes *p = drmModeGetProperty(fd, props->props[i]);

		if (p && !strcmp(p->name, name))
			id = p->prop_id;
		drmModeFreeProperty(p);
	}
	drmModeFreeObjectProperties(props);
	return id;
}

static uint64_t property_value(int fd, uint32_t object, uint32_t type,
			       const char *name)
{
	drmModeObjectProperties *props = drmModeObjectGetProperties(fd, object, type);
	uint64_t value = 0;

	for (uint32_t i = 0; props && i < props->count_props; i++) {
		drmModePropertyRes *p = drmModeGetProperty(fd, props->props[i]);

		if (p && !strcmp(p->name, name))
			value = props->prop_values[i];
		drmModeFreeProperty(p);
	}
	drmModeFreeObjectProperties(props);
	return value;
}

static void add(drmModeAtomicReq *req, int fd, uint32_t object, uint32_t type,
		const char *name, uint64_t value)
{
	uint32_t id = property(fd, object, type, name);

	if (!id) {
		fprintf(stderr, "object %u has no property %s\n", object, name);
		exit(1);
	}
	drmModeAtomicAddProperty(req, object, id, value);
}

/* The first connected connector of the wanted kind, its CRTC and planes. */
static int pick_output(struct display *d, bool writeback)
{
	drmModeRes *res = drmModeGetResources(d->fd);
	drmModePlaneRes *planes = drmModeGetPlaneResources(d->fd);
	int crtc_index = -1;

	for (int i = 0; res && i < res->count_connectors; i++) {
		drmModeConnector *c = drmModeGetConnector(d->fd, res->connectors[i]);

		if (c && (c->connector_type == DRM_MODE_CONNECTOR_WRITEBACK) == writeback &&
		    c->count_modes > 0 && !d->connector) {
			drmModeEncoder *e = drmModeGetEncoder(d->fd, c->encoders[0]);

			for (int k = 0; e && k < res->count_crtcs; k++)
				if (e->possible_crtcs & (1u << k)) {
					crtc_index = k;
					break;
				}
			drmModeFreeEncoder(e);
			if (crtc_index >= 0) {
				d->connector = c->connector_id;
				d->crtc = res->crtcs[crtc_index];
				d->mode = c->modes[0];
				/* A writeback connector lists every size: take 1024x768. */
				for (int m = 0; m < c->count_modes; m++)
					if (c->modes[m].hdisplay == 1024 &&
					    c->modes[m].vdisplay == 768)
						d->mode = c->modes[m];
			}
		}
		else if (c && d->n_others < 8)
			d->others[d->n_others++] = c->connector_id;
		drmModeFreeConnector(c);
	}

	for (uint32_t i = 0; planes && crtc_index >= 0 && i < planes->count_planes; i++) {
		drmModePlane *p = drmModeGetPlane(d->fd, planes->planes[i]);
		uint64_t type;

		if (p && (p->possible_crtcs & (1u << crtc_index))) {
			type = property_value(d->fd, p->plane_id,
					      DRM_MODE_OBJECT_PLANE, "type");
			if (type == DRM_PLANE_TYPE_PRIMARY && !d->primary)
				d->primary = p->plane_id;
			if (type == DRM_PLANE_TYPE_OVERLAY && !d->overlay)
				d->overlay = p->plane_id;
		}
		drmModeFreePlane(p);
	}
	drmModeFreePlaneResources(planes);
	drmModeFreeResources(res);
	d->writeback = writeback;
	return d->connector && d->primary ? 0 : -ENODEV;
}

/* A deterministic pattern; @n moves it, @seed tells images apart. */
static uint32_t pattern(uint32_t x, uint32_t y, uint32_t n, uint32_t seed)
{
	return (((x + n * 7) ^ (y * 3)) & 0xff) << 16 |
	       ((y + n * 5 + seed) & 0xff) << 8 | ((x * seed + y) & 0xff);
}

static void draw(struct image *img, uint32_t n, uint32_t seed)
{
	vms_buffer_begin_cpu_access(img->buffer, VMS_ACCESS_WRITE);
	for (uint32_t y = 0; y < img->height; y++)
		for (uint32_t x = 0; x < img->width; x++)
			img->pixels[y * (img->stride / 4) + x] =
				0xff000000u | pattern(x, y, n, seed);
	vms_buffer_end_cpu_access(img->buffer, VMS_ACCESS_WRITE);
}

static uint8_t *map_carveout(const char *path, size_t len)
{
	void *p;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * Memory for the frame, exported once and made a framebuffer.  It starts
 * on a page by default; --unaligned starts the frame 256 bytes into one,
 * so the framebuffer has an offset into its dma-buf.  The rest of the
 * frame's first and last page is then memory set aside for this frame
 * alone, so the display may see it: vms_frame_alloc() memory needs no
 * consent for that, the carve-out mapping gives it.
 */
static int create_image(struct display *d, struct vms_context *ctx,
			struct image *img, uint32_t width, uint32_t height,
			bool unaligned, const char *carveout)
{
	uint32_t handles[4] = { 0 }, pitches[4] = { 0 }, offsets[4] = { 0 };
	size_t size;
	int ret;

	img->width = width;
	img->height = height;
	img->stride = width * 4;
	size = (size_t)img->stride * height;
	if (carveout) {
		img->map_len = size + 2 * PAGE;
		img->alloc = map_carveout(carveout, img->map_len);
	} else {
		img->alloc = vms_frame_alloc(ctx, size + (unaligned ? 256 : 0));
	}
	if (!img->alloc) {
		ret = -errno;
		fprintf(stderr, "no memory for the frame: %s\n", strerror(errno));
		return ret;
	}
	img->pixels = (uint32_t *)(img->alloc + (unaligned ? 256 : 0));

	img->buffer = vms_buffer_export(ctx, img->pixels, size,
					VMS_EXPORT_ZERO_COPY |
					(carveout ? VMS_EXPORT_CARVEOUT |
					 VMS_EXPORT_EXPOSE_WHOLE_PAGES : 0));
	if (!img->buffer) {
		ret = -errno;
		fprintf(stderr, "cannot export the frame: %s\n", strerror(errno));
		return ret;
	}
	ret = drmPrimeFDToHandle(d->fd, vms_buffer_fd(img->buffer), &img->handle);
	if (ret) {
		ret = -errno;
		/* CMA-based drivers refuse here a buffer they cannot map contiguously. */
		fprintf(stderr, "the driver refused the dma-buf: %s; it lies in %u "
			"physically contiguous segments\n", strerror(errno),
			vms_buffer_segments(img->buffer));
		return ret;
	}
	handles[0] = img->handle;
	pitches[0] = img->stride;
	offsets[0] = (uint32_t)vms_buffer_offset(img->buffer);
	ret = drmModeAddFB2(d->fd, width, height, DRM_FORMAT_XRGB8888, handles,
			    pitches, offsets, &img->fb, 0);
	if (ret) {
		ret = -errno;
		fprintf(stderr, "the driver cannot scan out this memory: %s; it lies "
			"in %u physically contiguous segments (a display without "
			"scatter-gather or an IOMMU needs 1)\n", strerror(errno),
			vms_buffer_segments(img->buffer));
		return ret;
	}
	return 0;
}

static void destroy_image(struct display *d, struct vms_context *ctx,
			  struct image *img)
{
	if (img->fb)
		drmModeRmFB(d->fd, img->fb);
	if (img->handle)
		drmCloseBufferHandle(d->fd, img->handle);
	vms_buffer_unref(img->buffer);
	if (img->map_len)
		munmap(img->alloc, img->map_len);
	else
		vms_frame_free(ctx, img->alloc);
}

/* The writeback target: a dumb buffer the test reads back. */
static int create_capture(struct display *d)
{
	struct drm_mode_create_dumb create = {
		.width = d->mode.hdisplay, .height = d->mode.vdisplay, .bpp = 32,
	};
	struct drm_mode_map_dumb map = { 0 };
	uint32_t handles[4] = { 0 }, pitches[4] = { 0 }, offsets[4] = { 0 };
	struct image *img = &d->capture;

	if (drmIoctl(d->fd, DRM_IOCTL_MODE_CREATE_DUMB, &create))
		return -errno;
	img->handle = create.handle;
	img->width = create.width;
	img->height = create.height;
	img->stride = create.pitch;
	handles[0] = create.handle;
	pitches[0] = create.pitch;
	if (drmModeAddFB2(d->fd, img->width, img->height, DRM_FORMAT_XRGB8888,
			  handles, pitches, offsets, &img->fb, 0))
		return -errno;
	map.handle = create.handle;
	if (drmIoctl(d->fd, DRM_IOCTL_MODE_MAP_DUMB, &map))
		return -errno;
	img->pixels = mmap(NULL, create.size, PROT_READ, MAP_SHARED, d->fd,
			   (off_t)map.offset);
	if (img->pixels == MAP_FAILED)
		return -errno;
	d->capture_size = (uint32_t)create.size;
	return 0;
}

/* Commits the planes; with writeback, waits for the composed frame. */
static int commit(struct display *d, const struct image *primary,
		  const struct image *overlay, bool modeset)
{
	drmModeAtomicReq *req = drmModeAtomicAlloc();
	uint32_t flags = modeset ? DRM_MODE_ATOMIC_ALLOW_MODESET : 0;
	int fence = -1, ret;

	if (modeset) {
		add(req, d->fd, d->crtc, DRM_MODE_OBJECT_CRTC, "MODE_ID", d->mode_blob);
		add(req, d->fd, d->crtc, DRM_MODE_OBJECT_CRTC, "ACTIVE", 1);
		add(req, d->fd, d->connector, DRM_MODE_OBJECT_CONNECTOR, "CRTC_ID", d->crtc);
		/* One connector per CRTC: vkms cannot clone to writeback. */
		for (int i = 0; i < d->n_others; i++)
			add(req, d->fd, d->others[i], DRM_MODE_OBJECT_CONNECTOR,
			    "CRTC_ID", 0);
	}
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "FB_ID", primary->fb);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "CRTC_ID", d->crtc);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "SRC_X", 0);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "SRC_Y", 0);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "SRC_W", (uint64_t)primary->width << 16);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "SRC_H", (uint64_t)primary->height << 16);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "CRTC_X", 0);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "CRTC_Y", 0);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "CRTC_W", primary->width);
	add(req, d->fd, d->primary, DRM_MODE_OBJECT_PLANE, "CRTC_H", primary->height);
	if (overlay) {
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "FB_ID", overlay->fb);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "CRTC_ID", d->crtc);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "SRC_X", 0);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "SRC_Y", 0);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "SRC_W", (uint64_t)overlay->width << 16);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "SRC_H", (uint64_t)overlay->height << 16);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "CRTC_X", OVERLAY_X);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "CRTC_Y", OVERLAY_Y);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "CRTC_W", overlay->width);
		add(req, d->fd, d->overlay, DRM_MODE_OBJECT_PLANE, "CRTC_H", overlay->height);
	}
	if (d->writeback) {
		add(req, d->fd, d->connector, DRM_MODE_OBJECT_CONNECTOR,
		    "WRITEBACK_FB_ID", d->capture.fb);
		add(req, d->fd, d->connector, DRM_MODE_OBJECT_CONNECTOR,
		    "WRITEBACK_OUT_FENCE_PTR", (uint64_t)(uintptr_t)&fence);
	}
	ret = drmModeAtomicCommit(d->fd, req, flags, NULL);
	drmModeAtomicFree(req);
	if (ret)
		return -errno;
	if (fence >= 0) {
		struct pollfd p = { .fd = fence, .events = POLLIN };

		ret = poll(&p, 1, 10000) == 1 ? 0 : -ETIMEDOUT;
		close(fence);
	}
	return ret;
}

/*
 * Compares the composed frame with what was drawn.  Returns the number of
 * pixels that differ when the primary frame is read @shift bytes further
 * on than it starts (0: exactly as drawn).
 */
static long compare(const struct display *d, const struct image *primary,
		    const struct image *overlay, uint32_t n, uint32_t shift)
{
	const struct image *cap = &d->capture;
	size_t frame_size = (size_t)primary->stride * primary->height;
	long bad = 0;

	for (uint32_t y = 0; y < cap->height; y++) {
		for (uint32_t x = 0; x < cap->width; x++) {
			uint32_t got = cap->pixels[y * (cap->stride / 4) + x] & 0xffffff;
			size_t pos = (size_t)y * primary->stride + x * 4 + shift;
			uint32_t want;

			if (overlay && x >= OVERLAY_X && x < OVERLAY_X + OVERLAY_W &&
			    y >= OVERLAY_Y && y < OVERLAY_Y + OVERLAY_H)
				want = pattern(x - OVERLAY_X, y - OVERLAY_Y, n, 2);
			else if (pos + 4 <= frame_size)
				want = pattern((uint32_t)(pos % primary->stride / 4),
					       (uint32_t)(pos / primary->stride), n, 1);
			else
				continue;	/* shown from beyond the frame */
			if (got != want && !bad++)
				printf("first difference at %u,%u: %06x, drew %06x\n",
				       x, y, got, want);
		}
	}
	return bad;
}

static int open_device(const char *path, bool writeback)
{
	char name[32];

	for (int i = 0; !path && i < 8; i++) {
		int fd;

		snprintf(name, sizeof(name), "/dev/dri/card%d", i);
		fd = open(name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!drmSetClientCap(fd, DRM_CLIENT_CAP_ATOMIC, 1) &&
		    (!writeback ||
		     !drmSetClientCap(fd, DRM_CLIENT_CAP_WRITEBACK_CONNECTORS, 1)))
			return fd;
		close(fd);
	}
	if (!path)
		return -ENODEV;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0 || drmSetClientCap(fd, DRM_CLIENT_CAP_ATOMIC, 1) ||
	    (writeback && drmSetClientCap(fd, DRM_CLIENT_CAP_WRITEBACK_CONNECTORS, 1)))
		return -ENODEV;
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "frames", required_argument, NULL, 'n' },
		{ "verify", no_argument, NULL, 'v' },
		{ "unaligned", no_argument, NULL, 'u' },
		{ "no-overlay", no_argument, NULL, 'O' },
		{ "carveout", required_argument, NULL, 'C' },
		{ 0 },
	};
	bool verify = false, unaligned = false, use_overlay = true;
	struct image primary = { 0 }, overlay = { 0 };
	struct display d = { 0 };
	const char *device = NULL, *carveout = NULL;
	uint32_t frames = 60, exact = 0, shifted = 0, wrong = 0, offset;
	struct vms_context *ctx;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 'n': frames = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'v': verify = true; break;
		case 'u': unaligned = true; break;
		case 'O': use_overlay = false; break;
		case 'C': carveout = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--device PATH] [--frames N] "
				"[--verify] [--unaligned] [--no-overlay] "
				"[--carveout DEVICE]\n", argv[0]);
			return 2;
		}
	}

	d.fd = open_device(device, verify);
	if (d.fd < 0) {
		fprintf(stderr, "no KMS device with atomic modesetting%s\n",
			verify ? " and writeback" : "");
		return 1;
	}
	/* vkms' CRTC cannot drive a display and the writeback together. */
	if (pick_output(&d, verify)) {
		fprintf(stderr, "no connected %s connector with a primary plane\n",
			verify ? "writeback" : "display");
		return 1;
	}
	if (!use_overlay)
		d.overlay = 0;
	drmModeCreatePropertyBlob(d.fd, &d.mode, sizeof(d.mode), &d.mode_blob);

	ctx = vms_context_create(VMS_CONTEXT_REQUIRE_MODULE);
	if (!ctx) {
		fprintf(stderr, "vmemexp is needed to scan out process memory: %s\n",
			strerror(errno));
		return 1;
	}
	if (create_image(&d, ctx, &primary, d.mode.hdisplay, d.mode.vdisplay,
			 unaligned, carveout) ||
	    (d.overlay && create_image(&d, ctx, &overlay, OVERLAY_W, OVERLAY_H,
				       false, NULL)))
		return 1;
	if (verify && create_capture(&d)) {
		fprintf(stderr, "cannot create the writeback buffer: %s\n",
			strerror(errno));
		return 1;
	}
	offset = (uint32_t)vms_buffer_offset(primary.buffer);
	printf("%ux%u XRGB8888 from %s: dma-buf of %u segments, "
	       "framebuffer offset %u; overlay plane: %s; %s\n",
	       primary.width, primary.height,
	       carveout ? "the carve-out" : "frame memory",
	       vms_buffer_segments(primary.buffer),
	       offset, d.overlay ? "yes" : "no",
	       verify ? "capturing through the writeback connector" :
			"driving the display");
	fflush(stdout);

	for (uint32_t n = 0; n < frames; n++) {
		draw(&primary, n, 1);
		if (d.overlay)
			draw(&overlay, n, 2);
		ret = commit(&d, &primary, d.overlay ? &overlay : NULL, n == 0);
		if (ret) {
			fprintf(stderr, "atomic commit of frame %u failed: %s\n", n,
				strerror(-ret));
			return 1;
		}
		if (!verify)
			continue;
		if (!compare(&d, &primary, d.overlay ? &overlay : NULL, n, 0))
			exact++;
		else if (offset && !compare(&d, &primary,
					    d.overlay ? &overlay : NULL, n, offset))
			shifted++;
		else
			wrong++;
	}

	if (verify) {
		printf("frames composed exactly as drawn: %u/%u\n", exact, frames);
		if (shifted)
			printf("frames shown shifted by the framebuffer offset (%u bytes): %u/%u "
			       "(the driver applied the offset twice; vkms on Linux 6.1 and 6.12 does)\n",
			       offset, shifted, frames);
	}
	if (d.capture.pixels)
		munmap(d.capture.pixels, d.capture_size);
	destroy_image(&d, ctx, &d.capture);
	destroy_image(&d, ctx, &overlay);
	destroy_image(&d, ctx, &primary);
	vms_context_unref(ctx);
	close(d.fd);
	if (wrong)
		return 1;
	return shifted ? 3 : 0;
}
