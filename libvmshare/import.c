/* SPDX-License-Identifier: MIT */
/* The peer's side: mapping a received fd as its frame describes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"

struct vms_mapping {
	atomic_int refs;
	int fd;			/* our duplicate, for the sync ioctl */
	uint8_t *base;
	struct vms_frame frame;
	bool rdonly;
};

VMS_EXPORT struct vms_mapping *vms_mapping_create(int fd,
						  const struct vms_frame *frame)
{
	struct vms_mapping *map;
	struct stat st;
	int fl, err;

	if (fd < 0 || !frame) {
		errno = EINVAL;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
		return NULL;
	err = -vms_frame_check(frame, (uint64_t)st.st_size);
	if (err) {
		errno = err;
		return NULL;
	}

	map = calloc(1, sizeof(*map));
	if (!map)
		return NULL;
	atomic_init(&map->refs, 1);
	map->frame = *frame;
	map->rdonly = (frame->flags & VMS_FRAME_RDONLY) ||
		      (fl & O_ACCMODE) == O_RDONLY;
	map->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (map->fd < 0)
		goto err_free;
	/* Huge pages of the exporter's then map as huge pages here. */
	map->base = vms_mmap_huge_aligned(frame->size,
					  PROT_READ |
					  (map->rdonly ? 0 : PROT_WRITE),
					  MAP_SHARED, map->fd, 0);
	if (map->base == MAP_FAILED)
		goto err_close;
	return map;

err_close:
	err = errno;
	close(map->fd);
	errno = err;
err_free:
	err = errno;
	free(map);
	errno = err;
	return NULL;
}

VMS_EXPORT struct vms_mapping *vms_mapping_ref(struct vms_mapping *map)
{
	atomic_fetch_add(&map->refs, 1);
	return map;
}

VMS_EXPORT struct vms_mapping *vms_mapping_unref(struct vms_mapping *map)
{
	if (!map || atomic_fetch_sub(&map->refs, 1) > 1)
		return NULL;
	munmap(map->base, map->frame.size);
	close(map->fd);
	free(map);
	return NULL;
}

VMS_EXPORT void *vms_mapping_plane(const struct vms_mapping *map,
				   uint32_t plane)
{
	if (plane >= map->frame.n_planes)
		return NULL;
	return map->base + map->frame.plane_offsets[plane];
}

VMS_EXPORT bool vms_mapping_is_readonly(const struct vms_mapping *map)
{
	return map->rdonly;
}

VMS_EXPORT int vms_mapping_begin_cpu_access(struct vms_mapping *map,
					    uint32_t access)
{
	return vms_sync(map->fd, access, false);
}

VMS_EXPORT int vms_mapping_end_cpu_access(struct vms_mapping *map,
					  uint32_t access)
{
	return vms_sync(map->fd, access, true);
}
