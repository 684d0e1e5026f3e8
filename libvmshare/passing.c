/* SPDX-License-Identifier: MIT */
/*
 * Passing frames over a UNIX socket: a fixed header, the frames, and one
 * fd per frame in SCM_RIGHTS.  The receiver trusts nothing: every fd that
 * arrived is closed again on any error, so a lying or broken peer can
 * neither leak fds into us nor make us map beyond an object's end.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "private.h"

#define VMS_WIRE_MAGIC 0x31534d56u	/* "VMS1" */
#define VMS_WIRE_VERSION 1

struct vms_wire_header {
	uint32_t magic;
	uint16_t version;
	uint16_t count;
	uint32_t frame_size;	/* sizeof(struct vms_frame) of the sender */
	uint32_t reserved;
};

struct vms_wire_message {
	struct vms_wire_header header;
	struct vms_frame frames[VMS_MAX_FRAMES];
};

/* Room for one fd more than a message may carry, to notice excess. */
#define VMS_CONTROL_FDS (VMS_MAX_FRAMES + 1)

VMS_EXPORT int vms_send(int sock, const struct vms_frame *frames,
			const int *fds, size_t count)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VMS_MAX_FRAMES)];
		struct cmsghdr align;
	} control;
	struct vms_wire_message msg;
	size_t len, sent = 0;
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *cmsg;

	if (!frames || !fds || !count || count > VMS_MAX_FRAMES)
		return -EINVAL;
	for (size_t i = 0; i < count; i++)
		if (fds[i] < 0)
			return -EBADF;

	msg.header = (struct vms_wire_header){
		.magic = VMS_WIRE_MAGIC,
		.version = VMS_WIRE_VERSION,
		.count = (uint16_t)count,
		.frame_size = sizeof(struct vms_frame),
	};
	memcpy(msg.frames, frames, count * sizeof(*frames));
	len = sizeof(msg.header) + count * sizeof(*frames);

	memset(&control, 0, sizeof(control));
	while (sent < len) {
		iov = (struct iovec){ (char *)&msg + sent, len - sent };
		mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1 };
		/* The fds travel with the first byte only. */
		if (!sent) {
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * count);
			cmsg = CMSG_FIRSTHDR(&mh);
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
			memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
		}
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		sent += (size_t)n;
	}
	return 0;
}

VMS_EXPORT int vms_send_buffers(int sock, const struct vms_frame *frames,
				struct vms_buffer *const *bufs, size_t count)
{
	int fds[VMS_MAX_FRAMES];

	if (!bufs || !count || count > VMS_MAX_FRAMES)
		return -EINVAL;
	for (size_t i = 0; i < count; i++)
		fds[i] = vms_buffer_fd(bufs[i]);
	return vms_send(sock, frames, fds, count);
}

struct receiver {
	int sock;
	int fds[VMS_CONTROL_FDS];
	size_t n_fds;
	bool truncated;		/* the kernel dropped fds: MSG_CTRUNC */
	bool excess;		/* more fds than fit */
};

static void close_fds(struct receiver *r)
{
	for (size_t i = 0; i < r->n_fds; i++)
		close(r->fds[i]);
	r->n_fds = 0;
}

static void collect_fds(struct receiver *r, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (r->n_fds < VMS_CONTROL_FDS) {
				r->fds[r->n_fds++] = fd;
			} else {
				close(fd);
				r->excess = true;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		r->truncated = true;
}

/*
 * One recvmsg into [buf, buf + len); returns bytes read, 0 at EOF, or a
 * negative errno.  Keeps whatever fds came with it.
 */
static ssize_t receive_some(struct receiver *r, void *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VMS_CONTROL_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { buf, len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	ssize_t n;

	do
		n = recvmsg(r->sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	collect_fds(r, &mh);
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	return n;
}

/* Reads exactly @len bytes from a stream, however they are split. */
static int receive_exactly(struct receiver *r, void *buf, size_t len,
			   bool at_boundary)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = receive_some(r, (char *)buf + got, len - got);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return at_boundary && !got ? 0 : -ECONNRESET;
		got += (size_t)n;
	}
	return 1;
}

static int socket_type(int sock)
{
	socklen_t len = sizeof(int);
	int type;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type;
}

/* Reads one whole message; returns its frame count, 0 at EOF, or -errno. */
static int receive_message(struct receiver *r, struct vms_wire_message *msg)
{
	const size_t header = sizeof(msg->header);
	int type = socket_type(r->sock), ret;
	ssize_t n;

	if (type < 0)
		return type;
	if (type == SOCK_SEQPACKET || type == SOCK_DGRAM) {
		/* One record: read it whole, or its tail is lost. */
		n = receive_some(r, msg, sizeof(*msg));
		if (n <= 0)
			return (int)n;
		if ((size_t)n < header || msg->header.magic != VMS_WIRE_MAGIC ||
		    msg->header.version != VMS_WIRE_VERSION ||
		    msg->header.frame_size != sizeof(struct vms_frame))
			return -EPROTO;
		if (!msg->header.count)
			return -EPROTO;
		if (msg->header.count > VMS_MAX_FRAMES)
			return -EMSGSIZE;
		if ((size_t)n != header + msg->header.count *
					   sizeof(struct vms_frame))
			return -EPROTO;
		return msg->header.count;
	}

	ret = receive_exactly(r, &msg->header, header, true);
	if (ret <= 0)
		return ret;
	/* A stream cannot be resynchronised after a header we do not know. */
	if (msg->header.magic != VMS_WIRE_MAGIC ||
	    msg->header.version != VMS_WIRE_VERSION ||
	    msg->header.frame_size != sizeof(struct vms_frame))
		return -EPROTO;
	if (!msg->header.count)
		return -EPROTO;
	if (msg->header.count > VMS_MAX_FRAMES)
		return -EMSGSIZE;
	ret = receive_exactly(r, msg->frames,
			      msg->header.count * sizeof(struct vms_frame),
			      false);
	return ret < 0 ? ret : msg->header.count;
}

/*
 * Only an fd whose size cannot change under the receiver: a dma-buf, or a
 * memfd sealed against shrinking.  Anything else (an unsealed memfd, a
 * file) the sender can truncate after the size check, and the receiver's
 * next read of its mapping is a SIGBUS.
 */
static int check_fd_kind(int fd)
{
	struct statfs sfs;
	int seals;

	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	if (sfs.f_type == DMA_BUF_MAGIC)
		return 0;
	seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK) ? 0 : -EBADMSG;
}

static int check_frames(const struct vms_frame *frames, const int *fds,
			size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		int ret;

		ret = check_fd_kind(fds[i]);
		if (ret)
			return ret;
		if (fstat(fds[i], &st) < 0)
			return -errno;
		ret = vms_frame_check(&frames[i], (uint64_t)st.st_size);
		if (ret)
			return ret;
	}
	return 0;
}

VMS_EXPORT int vms_recv(int sock, struct vms_frame *frames, int *fds,
			size_t max)
{
	struct receiver r = { .sock = sock };
	struct vms_wire_message msg;
	int count, ret;

	if (!frames || !fds || !max)
		return -EINVAL;

	count = receive_message(&r, &msg);
	if (count < 0) {
		ret = count;
		goto err;
	}
	if (r.truncated || r.excess) {
		ret = -EMSGSIZE;
		goto err;
	}
	if ((size_t)count > max) {
		ret = -EMSGSIZE;
		goto err;
	}
	if (r.n_fds != (size_t)count) {
		ret = -EBADMSG;
		goto err;
	}
	ret = check_frames(msg.frames, r.fds, (size_t)count);
	if (ret)
		goto err;

	memcpy(frames, msg.frames, (size_t)count * sizeof(*frames));
	memcpy(fds, r.fds, (size_t)count * sizeof(*fds));
	return count;

err:
	vms_log(NULL, "dropped a message: %s, closed %zu fds", strerror(-ret),
		r.n_fds);
	close_fds(&r);
	return ret;
}
