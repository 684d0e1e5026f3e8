/* SPDX-License-Identifier: MIT */
/*
 * vmshare-fdpass: two processes share frames drawn in plain process memory.
 *
 * The producer allocates a 1920x1080 XRGB8888 frame with vms_frame_alloc()
 * (page-aligned, so its dma-buf holds the frame and nothing else of the
 * process), exports it once with libvmshare and sends the fd to a consumer
 * (this same program, exec'd over a socketpair).  Then, for every frame, it
 * redraws the memory and sends only a "frame ready" note with a checksum.
 * The consumer checks the checksum through its own mapping and writes an
 * acknowledgement into the shared memory; the producer then finds that
 * acknowledgement in its own memory, which is only possible if no copy was
 * made.
 *
 * Without vmemexp the export falls back to a memfd copy, refreshed per
 * frame; the demo says so, and then expects the acknowledgement *not* to
 * reach the frame memory.
 *
 * With --carveout DEVICE the producer plays an RTOS side-core instead: the
 * frame lives in a physical carve-out that DEVICE's driver maps into the
 * process (remap_pfn_range, like an RTOS shared-memory driver), and
 * vmemexp exports it from there (docs/module.md, "Carve-outs").
 *
 *   vmshare-fdpass [--frames N] [--width W] [--height H] [--no-module]
 *                  [--carveout DEVICE]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <drm_fourcc.h>
#include <vmshare.h>

#define NOTE_MAGIC 0x65746f6eu	/* "note" */

/* The per-frame messages after the buffer itself has been sent. */
struct note {
	uint32_t magic;
	uint32_t frame;
	uint64_t checksum;
};

/* Where the consumer writes its acknowledgement: the last pixel's bytes. */
#define ACK_SIZE sizeof(uint32_t)

static uint64_t checksum(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void draw(uint8_t *frame, uint32_t width, uint32_t height,
		 uint32_t stride, uint32_t n)
{
	for (uint32_t y = 0; y < height; y++) {
		uint32_t *row = (uint32_t *)(frame + (size_t)y * stride);

		for (uint32_t x = 0; x < width; x++)
			row[x] = ((x + n * 4) & 0xff) << 16 |
				 ((y + n * 2) & 0xff) << 8 | ((x ^ y) & 0xff);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int consumer(int sock)
{
	struct vms_mapping *map;
	struct vms_frame frame;
	struct note note;
	uint8_t *pixels;
	size_t len;
	int fd, ret;

	ret = vms_recv(sock, &frame, &fd, 1);
	if (ret != 1) {
		fprintf(stderr, "consumer: no frame buffer: %s\n",
			ret ? strerror(-ret) : "producer closed the socket");
		return 1;
	}
	map = vms_mapping_create(fd, &frame);
	close(fd);
	if (!map) {
		fprintf(stderr, "consumer: cannot map the frame: %s\n",
			strerror(errno));
		return 1;
	}
	pixels = vms_mapping_plane(map, 0);
	len = (size_t)frame.strides[0] * frame.height;

	while (recv(sock, &note, sizeof(note), 0) == sizeof(note)) {
		uint32_t ack = note.frame;

		if (note.magic != NOTE_MAGIC)
			break;
		vms_mapping_begin_cpu_access(map, VMS_ACCESS_READ | VMS_ACCESS_WRITE);
		if (checksum(pixels, len) != note.checksum)
			ack = UINT32_MAX;
		memcpy(pixels + len - ACK_SIZE, &ack, ACK_SIZE);
		vms_mapping_end_cpu_access(map, VMS_ACCESS_READ | VMS_ACCESS_WRITE);
		if (send(sock, &ack, sizeof(ack), MSG_NOSIGNAL) != sizeof(ack))
			break;
	}
	vms_mapping_unref(map);
	return 0;
}

static pid_t start_consumer(const char *self, int *sock)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char arg[16];

		/* The consumer's end must survive exec: a dup is not CLOEXEC. */
		snprintf(arg, sizeof(arg), "%d", dup(sv[1]));
		/* argv[0] is only a name when started from PATH. */
		execl("/proc/self/exe", self, "--consumer", arg, (char *)NULL);
		perror("exec consumer");
		_exit(127);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static const char *describe_path(const struct vms_buffer *buf, bool carveout)
{
	switch (vms_buffer_kind(buf)) {
	case VMS_BUFFER_DMABUF:
		return carveout ?
		       "vmemexp: a dma-buf of the carve-out itself (zero-copy)" :
		       "vmemexp: a dma-buf of the frame memory itself (zero-copy)";
	case VMS_BUFFER_MEMFD:
		return "memfd allocation (zero-copy)";
	default:
		return vms_buffer_copy_reason(buf);
	}
}

/* The frame's memory: the library's, or the carve-out DEVICE's driver maps. */
static uint8_t *frame_memory(struct vms_context *ctx, const char *carveout,
			     size_t len)
{
	void *p;
	int fd;

	if (!carveout)
		return vms_frame_alloc(ctx, len);
	fd = open(carveout, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", carveout, strerror(errno));
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmap %s: %s\n", carveout, strerror(errno));
		return NULL;
	}
	return p;
}

static int producer(const char *self, uint32_t width, uint32_t height,
		    uint32_t frames, uint32_t ctx_flags, const char *carveout)
{
	uint32_t stride = width * 4, acks_in_memory = 0, bad = 0;
	size_t len = (size_t)stride * height;
	double *latency = calloc(frames, sizeof(double));
	const char *memory = carveout ? "carve-out" : "frame memory";
	struct vms_context *ctx;
	struct vms_buffer *buf;
	struct vms_frame frame;
	uint8_t *pixels;
	bool zero_copy;
	int sock, ret, status;
	pid_t pid;

	ctx = vms_context_create(ctx_flags);
	if (!ctx) {
		fprintf(stderr, "vms_context_create: %s\n", strerror(errno));
		return 1;
	}
	pixels = frame_memory(ctx, carveout, len);
	if (!pixels || !latency) {
		fprintf(stderr, "cannot get the frame's memory\n");
		return 1;
	}
	draw(pixels, width, height, stride, 0);
	/* A carve-out is shared in place or not at all: no copy fallback. */
	buf = vms_buffer_export(ctx, pixels, len, carveout ?
				VMS_EXPORT_CARVEOUT | VMS_EXPORT_ZERO_COPY : 0);
	if (!buf) {
		fprintf(stderr, "vms_buffer_export: %s\n", strerror(errno));
		return 1;
	}
	zero_copy = vms_buffer_kind(buf) != VMS_BUFFER_MEMFD_COPY;
	ret = vms_frame_describe(&frame, buf, width, height,
				 DRM_FORMAT_XRGB8888, stride);
	if (ret) {
		fprintf(stderr, "vms_frame_describe: %s\n", strerror(-ret));
		return 1;
	}

	printf("vmshare-fdpass: %ux%u XRGB8888 (%zu bytes), %u frames\n",
	       width, height, len, frames);
	printf("path: %s\n", describe_path(buf, carveout));
	fflush(stdout);

	pid = start_consumer(self, &sock);
	if (pid < 0) {
		perror("start consumer");
		return 1;
	}
	/* The buffer travels once; after that only notes. */
	ret = vms_send_buffers(sock, &frame, &buf, 1);
	if (ret) {
		fprintf(stderr, "vms_send_buffers: %s\n", strerror(-ret));
		return 1;
	}

	for (uint32_t n = 1; n <= frames; n++) {
		struct note note = { .magic = NOTE_MAGIC, .frame = n };
		uint32_t ack, seen;
		double start;

		vms_buffer_begin_cpu_access(buf, VMS_ACCESS_WRITE);
		draw(pixels, width, height, stride, n);
		vms_buffer_end_cpu_access(buf, VMS_ACCESS_WRITE);
		note.checksum = checksum(pixels, len);

		start = now_ms();
		vms_buffer_refresh(buf);
		if (send(sock, &note, sizeof(note), MSG_NOSIGNAL) != sizeof(note) ||
		    recv(sock, &ack, sizeof(ack), 0) != sizeof(ack)) {
			fprintf(stderr, "the consumer went away at frame %u\n", n);
			return 1;
		}
		latency[n - 1] = now_ms() - start;

		if (ack != n)
			bad++;
		vms_buffer_begin_cpu_access(buf, VMS_ACCESS_READ);
		memcpy(&seen, pixels + len - ACK_SIZE, ACK_SIZE);
		vms_buffer_end_cpu_access(buf, VMS_ACCESS_READ);
		if (seen == n)
			acks_in_memory++;
	}

	shutdown(sock, SHUT_RDWR);
	close(sock);
	waitpid(pid, &status, 0);
	qsort(latency, frames, sizeof(double), compare_doubles);

	printf("frames: %u verified by the consumer, %u bad\n", frames - bad, bad);
	printf("acknowledgements found in the producer's own %s: %u/%u%s\n",
	       memory, acks_in_memory, frames,
	       zero_copy ? "" : " (expected 0: this path copies)");
	printf("latency per frame (note to acknowledgement, incl. consumer checksum): "
	       "median %.2f ms, max %.2f ms\n",
	       latency[frames / 2], latency[frames - 1]);

	vms_buffer_unref(buf);
	if (carveout)
		munmap(pixels, len);
	else
		vms_frame_free(ctx, pixels);
	vms_context_unref(ctx);
	free(latency);
	if (bad || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	return acks_in_memory == (zero_copy ? frames : 0) ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "width", required_argument, NULL, 'w' },
		{ "height", required_argument, NULL, 'h' },
		{ "no-module", no_argument, NULL, 'N' },
		{ "consumer", required_argument, NULL, 'c' },
		{ "carveout", required_argument, NULL, 'C' },
		{ 0 },
	};
	uint32_t frames = 30, width = 1920, height = 1080, flags = 0;
	const char *carveout = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n': frames = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'w': width = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'h': height = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': flags = VMS_CONTEXT_NO_MODULE; break;
		case 'c': return consumer(atoi(optarg));
		case 'C': carveout = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--frames N] [--width W] "
				"[--height H] [--no-module] [--carveout DEVICE]\n",
				argv[0]);
			return 2;
		}
	}
	if (!frames || !width || !height || width > 16384 || height > 16384) {
		fprintf(stderr, "frames, width and height must be 1 to 16384\n");
		return 2;
	}
	return producer(argv[0], width, height, frames, flags, carveout);
}
