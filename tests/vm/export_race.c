/* SPDX-License-Identifier: MIT */
/*
 * Six threads race exports against munmap, mprotect, mmap of the dma-bufs
 * and close for a few seconds.  Whatever interleaving happens, each export
 * either succeeds or fails with an errno that names a real cause, and at
 * the end nothing is pinned and the kernel log is clean (checked by the
 * harness and by vmrun).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "vmx.h"

#define PAGE 4096ul
#define SLOTS 8
#define SLOT_SIZE (256 * 1024ul)
#define FDS 64

static uint8_t *region;
static int dev;
static atomic_bool stop;
static atomic_long exports_ok, exports_failed, maps_ok;

static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;
static int fds[FDS];
static uint64_t fd_sizes[FDS];

static uint32_t rnd(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* Takes ownership of a random stored fd (or -1), so no number is reused. */
static int take_fd(uint32_t *state, uint64_t *size)
{
	int i = (int)(rnd(state) % FDS), fd;

	pthread_mutex_lock(&fds_lock);
	fd = fds[i];
	*size = fd_sizes[i];
	fds[i] = -1;
	pthread_mutex_unlock(&fds_lock);
	return fd;
}

static void put_fd(uint32_t *state, int fd, uint64_t size)
{
	int i = (int)(rnd(state) % FDS), old;

	pthread_mutex_lock(&fds_lock);
	old = fds[i];
	fds[i] = fd;
	fd_sizes[i] = size;
	pthread_mutex_unlock(&fds_lock);
	if (old >= 0)
		close(old);
}

static void *exporter(void *arg)
{
	uint32_t state = (uint32_t)(uintptr_t)arg;

	while (!stop) {
		size_t off = rnd(&state) % (SLOTS * SLOT_SIZE);
		size_t len = 1 + rnd(&state) % (2 * SLOT_SIZE);
		struct vmemexp_export e;

		if (off + len > SLOTS * SLOT_SIZE)
			len = SLOTS * SLOT_SIZE - off;
		if (vmx_export(dev, region + off, len,
			       (rnd(&state) & 1) | VMEMEXP_EXPORT_CLOEXEC,
			       &e) == 0) {
			exports_ok++;
			put_fd(&state, e.fd, e.size);
		} else if (errno == EFAULT || errno == EACCES) {
			exports_failed++;
		} else {
			printf("# export failed with %s\n", vmt_errname(errno));
			abort();
		}
	}
	return NULL;
}

/*
 * Maps dma-bufs inside a reservation of its own: a mapping placed in a hole
 * the remapper punched into the region could be unmapped under it.
 */
static void *mapper(void *arg)
{
	uint32_t state = (uint32_t)(uintptr_t)arg;
	size_t area_size = 4 * SLOT_SIZE;
	uint8_t *area = mmap(NULL, area_size, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED)
		abort();
	while (!stop) {
		uint64_t size;
		int fd = take_fd(&state, &size);
		volatile uint8_t *map;

		if (fd < 0)
			continue;
		map = mmap(area, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
		if (map != MAP_FAILED) {
			for (uint64_t i = 0; i < size; i += PAGE)
				(void)map[i];
			mmap(area, size, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			maps_ok++;
		}
		put_fd(&state, fd, size);
	}
	munmap(area, area_size);
	return NULL;
}

static void *closer(void *arg)
{
	uint32_t state = (uint32_t)(uintptr_t)arg;

	while (!stop) {
		uint64_t size;
		int fd = take_fd(&state, &size);

		if (fd >= 0)
			close(fd);
		usleep(200);
	}
	return NULL;
}

/* Replaces slots with fresh memory, or changes their protection. */
static void *remapper(void *arg)
{
	uint32_t state = (uint32_t)(uintptr_t)arg;

	while (!stop) {
		uint8_t *slot = region + (rnd(&state) % SLOTS) * SLOT_SIZE;

		switch (rnd(&state) % 4) {
		case 0:
			munmap(slot, SLOT_SIZE);
			break;
		case 1:
			mmap(slot, SLOT_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		case 2:
			mprotect(slot, SLOT_SIZE, PROT_READ);
			break;
		default:
			mprotect(slot, SLOT_SIZE, PROT_READ | PROT_WRITE);
			break;
		}
		usleep(100);
	}
	return NULL;
}

static void six_threads_race(void)
{
	void *(*roles[6])(void *) = { exporter, exporter, mapper,
				      closer, remapper, remapper };
	int seconds = getenv("VMSHARE_RACE_SECONDS") ?
		atoi(getenv("VMSHARE_RACE_SECONDS")) : 5;
	pthread_t threads[6];

	dev = vmx_open();
	region = mmap(NULL, SLOTS * SLOT_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	VMT_ASSERT(region != MAP_FAILED);
	for (int i = 0; i < FDS; i++)
		fds[i] = -1;

	for (int i = 0; i < 6; i++)
		VMT_ASSERT_EQ(pthread_create(&threads[i], NULL, roles[i],
					     (void *)(uintptr_t)(i * 7919 + 1)),
			      0);
	sleep((unsigned int)seconds);
	stop = true;
	for (int i = 0; i < 6; i++)
		pthread_join(threads[i], NULL);

	for (int i = 0; i < FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	munmap(region, SLOTS * SLOT_SIZE);
	close(dev);
	vmt_note("%ld exports, %ld refused, %ld peer mappings", exports_ok,
		 exports_failed, maps_ok);
	VMT_ASSERT(exports_ok > 0);
	VMT_ASSERT(maps_ok > 0);
}

static const struct vmt_test tests[] = {
	VMT_TEST(six_threads_race),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
