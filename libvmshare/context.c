/* SPDX-License-Identifier: MIT */
/* The library context, and small helpers every part uses. */
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/vmemexp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "private.h"

#define VMS_DEVICE "/dev/vmemexp"

bool vms_env_flag(const char *name)
{
	const char *value = getenv(name);

	return value && *value && strcmp(value, "0");
}

static enum vms_log_priority default_log_priority(void)
{
	return vms_env_flag("VMSHARE_DEBUG") ? VMS_LOG_PRIORITY_DEBUG :
					       VMS_LOG_PRIORITY_ERROR;
}

static void log_to_stderr(struct vms_context *ctx,
			  enum vms_log_priority priority, const char *fmt,
			  va_list args)
{
	(void)ctx;
	(void)priority;
	fputs("vmshare: ", stderr);
	vfprintf(stderr, fmt, args);
	fputc('\n', stderr);
}

void vms_log_at(const struct vms_context *ctx, enum vms_log_priority priority,
		const char *fmt, ...)
{
	vms_log_handler handler = ctx ? ctx->log_handler : log_to_stderr;
	va_list ap;

	if (priority < (ctx ? ctx->log_priority : default_log_priority()))
		return;
	va_start(ap, fmt);
	handler((struct vms_context *)ctx, priority, fmt, ap);
	va_end(ap);
}

VMS_EXPORT void vms_context_set_log_handler(struct vms_context *ctx,
					    vms_log_handler handler)
{
	ctx->log_handler = handler ? handler : log_to_stderr;
}

VMS_EXPORT void vms_context_set_log_priority(struct vms_context *ctx,
					     enum vms_log_priority priority)
{
	ctx->log_priority = priority;
}

VMS_EXPORT enum vms_log_priority vms_context_get_log_priority(
	const struct vms_context *ctx)
{
	return ctx->log_priority;
}

VMS_EXPORT void vms_context_set_user_data(struct vms_context *ctx, void *data)
{
	ctx->user_data = data;
}

VMS_EXPORT void *vms_context_get_user_data(const struct vms_context *ctx)
{
	return ctx->user_data;
}

size_t vms_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

size_t vms_round_up_to_pages(size_t len)
{
	size_t page = vms_page_size();

	return (len + page - 1) / page * page;
}

/*
 * EAGAIN: vmemexp could not migrate pages out of ZONE_MOVABLE or CMA for
 * the pin, and DMA_BUF_IOCTL_SYNC may meet a busy fence; both pass.  A few
 * tries, then the caller hears of it.
 */
#define VMS_IOCTL_EAGAIN_TRIES 3

int vms_ioctl(int fd, unsigned long request, void *arg)
{
	int ret, again = VMS_IOCTL_EAGAIN_TRIES;

	do
		ret = ioctl(fd, request, arg);
	while (ret < 0 && (errno == EINTR || (errno == EAGAIN && --again)));
	return ret < 0 ? -errno : ret;
}

int vms_memfd_create(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int err;

	if (fd < 0)
		return -errno;
	/* A peer can then map the whole size without fearing SIGBUS. */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

int vms_sync(int fd, uint32_t access, bool end)
{
	struct dma_buf_sync sync = { .flags = end ? DMA_BUF_SYNC_END :
						    DMA_BUF_SYNC_START };
	int ret;

	if (!access || access & ~(uint32_t)(VMS_ACCESS_READ | VMS_ACCESS_WRITE))
		return -EINVAL;
	if (access & VMS_ACCESS_READ)
		sync.flags |= DMA_BUF_SYNC_READ;
	if (access & VMS_ACCESS_WRITE)
		sync.flags |= DMA_BUF_SYNC_WRITE;
	ret = vms_ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync);
	/* A memfd has no caches to maintain. */
	return ret == -ENOTTY ? 0 : ret;
}

/*
 * Maps the status page of ctx->vmemexp_fd, if the module has one, with
 * the word that says this process mapped it: a private page that
 * MADV_WIPEONFORK zeroes in every child made by fork() or by clone()
 * without CLONE_VM, through glibc or not, whose memory the parent's
 * exports no longer show.
 */
static void map_status_page(struct vms_context *ctx)
{
	size_t page_size = vms_page_size();
	const char *failed;
	void *page, *owner;

	owner = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (owner == MAP_FAILED) {
		failed = "mmap of the page that tells a child from its parent";
		goto fail;
	}
	if (madvise(owner, page_size, MADV_WIPEONFORK)) {
		failed = "MADV_WIPEONFORK";
		goto fail;
	}
	page = mmap(NULL, page_size, PROT_READ, MAP_SHARED, ctx->vmemexp_fd, 0);
	if (page == MAP_FAILED) {
		failed = "mmap of the vmemexp status page";
		goto fail;
	}
	ctx->status_owner = owner;
	*ctx->status_owner = 1;
	ctx->status_page = page;
	return;

fail:
	vms_log(ctx, "%s failed (%s): reuse asks the module with an ioctl",
		failed, strerror(errno));
	if (owner != MAP_FAILED)
		munmap(owner, page_size);
}

static struct vms_context *context_new(uint32_t flags)
{
	struct vms_context *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	atomic_init(&ctx->refs, 1);
	ctx->flags = flags;
	ctx->log_handler = log_to_stderr;
	ctx->log_priority = default_log_priority();
	ctx->vmemexp_fd = -1;
	pthread_mutex_init(&ctx->lock, NULL);
	return ctx;
}

VMS_EXPORT struct vms_context *vms_context_create(uint32_t flags)
{
	const uint32_t known = VMS_CONTEXT_REQUIRE_MODULE | VMS_CONTEXT_NO_MODULE;
	struct vms_context *ctx;

	if ((flags & ~known) || (flags & known) == known) {
		errno = EINVAL;
		return NULL;
	}
	ctx = context_new(flags);
	if (!ctx)
		return NULL;

	if (flags & VMS_CONTEXT_NO_MODULE) {
		ctx->module_status = ENODEV;
		vms_log(ctx, "vmemexp disabled by VMS_CONTEXT_NO_MODULE");
		return ctx;
	}
	ctx->vmemexp_fd = open(VMS_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctx->vmemexp_fd < 0) {
		ctx->module_status = errno == ENOENT ? ENODEV : errno;
		vms_log_info(ctx, "cannot open %s (%s): exports fall back to copies",
			VMS_DEVICE, strerror(errno));
		if (flags & VMS_CONTEXT_REQUIRE_MODULE) {
			pthread_mutex_destroy(&ctx->lock);
			free(ctx);
			errno = ENODEV;
			return NULL;
		}
	} else {
		vms_log(ctx, "using %s", VMS_DEVICE);
		map_status_page(ctx);
	}
	return ctx;
}

/*
 * Whether @fd is /dev/vmemexp: only vmemexp answers VMEMEXP_IOC_STATUS
 * for fd -1 with EBADF; another device says ENOTTY (or EINVAL), and a
 * file or socket ENOTTY.  0, or the negative errno to fail with.
 */
static int check_vmemexp_fd(int fd)
{
	struct vmemexp_status status = { .fd = -1 };
	int ret;

	if (fcntl(fd, F_GETFD) < 0)
		return -errno;
	ret = vms_ioctl(fd, VMEMEXP_IOC_STATUS, &status);
	return ret == -EBADF ? 0 : -ENOTTY;
}

VMS_EXPORT struct vms_context *vms_context_create_from_fd(int fd,
							  uint32_t flags)
{
	struct vms_context *ctx;
	int ret = flags ? -EINVAL : check_vmemexp_fd(fd);

	if (!ret && !(ctx = context_new(VMS_CONTEXT_REQUIRE_MODULE)))
		ret = -ENOMEM;
	if (ret) {
		if (ret != -EBADF)
			close(fd);
		errno = -ret;
		return NULL;
	}
	/* Exported dma-bufs are close-on-exec; so is the device. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	ctx->vmemexp_fd = fd;
	vms_log(ctx, "using the /dev/vmemexp fd %d the caller opened", fd);
	map_status_page(ctx);
	return ctx;
}

VMS_EXPORT struct vms_context *vms_context_ref(struct vms_context *ctx)
{
	atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

VMS_EXPORT struct vms_context *vms_context_unref(struct vms_context *ctx)
{
	if (!ctx || atomic_fetch_sub(&ctx->refs, 1) > 1)
		return NULL;
	vms_frame_blocks_release(ctx);
	if (ctx->status_page) {
		munmap((void *)ctx->status_page, vms_page_size());
		munmap((void *)ctx->status_owner, vms_page_size());
	}
	if (ctx->vmemexp_fd >= 0)
		close(ctx->vmemexp_fd);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
	return NULL;
}

VMS_EXPORT bool vms_context_has_module(const struct vms_context *ctx)
{
	return ctx->vmemexp_fd >= 0;
}

VMS_EXPORT int vms_context_module_status(const struct vms_context *ctx)
{
	return -ctx->module_status;
}
