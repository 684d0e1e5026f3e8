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
#include <poll.h>
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

/* How long vms_recv() waits for the rest of a message it has begun. */
#define VMS_RECV_REST_TIMEOUT_MS 1000

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

/*
 * What has arrived of the message being received: on a stream, its bytes
 * so far and the fds that came with them, kept between calls while the
 * rest is on its way (a non-blocking socket returns EAGAIN meanwhile).
 */
struct vms_receiver {
	int refs;		/* a receiver is used by one thread at a time */
	int sock;
	int type;		/* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
	struct vms_wire_message msg;
	size_t got;		/* bytes of msg received (streams) */
	int fds[VMS_CONTROL_FDS];
	size_t n_fds;
	bool truncated;		/* the kernel dropped fds: MSG_CTRUNC */
	bool excess;		/* more fds than fit */
	int broken;		/* a stream's -errno once no message can follow */
};

static void close_fds(struct vms_receiver *r)
{
	for (size_t i = 0; i < r->n_fds; i++)
		close(r->fds[i]);
	r->n_fds = 0;
}

/* Forgets the message under way, closing the fds it brought. */
static void drop_message(struct vms_receiver *r)
{
	close_fds(r);
	r->got = 0;
	r->truncated = false;
	r->excess = false;
}

static void collect_fds(struct vms_receiver *r, struct msghdr *mh)
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
static ssize_t receive_some(struct vms_receiver *r, void *buf, size_t len)
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

static int socket_type(int sock)
{
	socklen_t len = sizeof(int);
	int type;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	return type;
}

/* A header vms_send() would have written; its frame count, or -EPROTO. */
static int check_header(const struct vms_wire_header *h)
{
	if (h->magic != VMS_WIRE_MAGIC || h->version != VMS_WIRE_VERSION ||
	    h->frame_size != sizeof(struct vms_frame) ||
	    !h->count || h->count > VMS_MAX_FRAMES)
		return -EPROTO;
	return h->count;
}

/*
 * recvmsg gives 0 both for the end of the connection and for an empty
 * record, which vms_send() never sends: only a hung-up peer is the end.
 */
static bool peer_hung_up(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

/* One record, read whole (or its tail is lost): its frame count, 0, -errno. */
static int receive_record(struct vms_receiver *r)
{
	const size_t header = sizeof(r->msg.header);
	ssize_t n = receive_some(r, &r->msg, sizeof(r->msg));
	int count;

	if (n < 0)
		return (int)n;
	if (n == 0)
		return r->type == SOCK_SEQPACKET && peer_hung_up(r->sock) &&
		       !r->n_fds ? 0 : -EPROTO;
	if ((size_t)n < header)
		return -EPROTO;
	count = check_header(&r->msg.header);
	if (count < 0)
		return count;
	if ((size_t)n != header + (size_t)count * sizeof(struct vms_frame))
		return -EPROTO;
	return count;
}

/*
 * The rest of a stream's message: the header first (never more, so the
 * next message's bytes and fds stay in the socket), then its frames.
 * Returns the frame count once whole, 0 at EOF between messages, -EAGAIN
 * with what arrived kept, or another negative errno.
 */
static int receive_stream(struct vms_receiver *r)
{
	const size_t header = sizeof(r->msg.header);
	size_t want = header;
	int count = 0;

	for (;;) {
		ssize_t n;

		if (r->got >= header) {
			count = check_header(&r->msg.header);
			if (count < 0)
				return count;
			want = header + (size_t)count * sizeof(struct vms_frame);
			if (r->got == want)
				return count;
		}
		n = receive_some(r, (char *)&r->msg + r->got, want - r->got);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return r->got ? -ECONNRESET : 0;
		r->got += (size_t)n;
	}
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

/*
 * Checks a whole message and hands its frames and fds to the caller;
 * on any error closes its fds.  Either way the receiver is ready for the
 * next message.
 */
static int deliver(struct vms_receiver *r, int count, struct vms_frame *frames,
		   int *fds, size_t max)
{
	int ret;

	if (r->truncated || r->excess || (size_t)count > max) {
		ret = -EMSGSIZE;
		goto err;
	}
	if (r->n_fds != (size_t)count) {
		ret = -EBADMSG;
		goto err;
	}
	ret = check_frames(r->msg.frames, r->fds, (size_t)count);
	if (ret)
		goto err;

	memcpy(frames, r->msg.frames, (size_t)count * sizeof(*frames));
	memcpy(fds, r->fds, (size_t)count * sizeof(*fds));
	r->n_fds = 0;
	drop_message(r);
	return count;

err:
	vms_log_error(NULL, "dropped a message: %s, closed %zu fds", strerror(-ret),
		r->n_fds);
	drop_message(r);
	return ret;
}

static int receiver_read(struct vms_receiver *r, struct vms_frame *frames,
			 int *fds, size_t max)
{
	int count;

	if (!frames || !fds || !max)
		return -EINVAL;
	if (r->broken)
		return r->broken;
	count = r->type == SOCK_STREAM ? receive_stream(r) : receive_record(r);
	if (count == -EAGAIN)
		return count;
	if (count <= 0) {
		if (count < 0)
			vms_log_error(NULL, "dropped a message: %s, closed %zu fds",
				strerror(-count), r->n_fds);
		drop_message(r);
		/* A stream has no boundary to find the next message by. */
		if (r->type == SOCK_STREAM &&
		    (count == -EPROTO || count == -ECONNRESET))
			r->broken = count;
		return count;
	}
	return deliver(r, count, frames, fds, max);
}

static int receiver_init(struct vms_receiver *r, int sock)
{
	int type = socket_type(sock);

	if (type < 0)
		return type;
	if (type != SOCK_STREAM && type != SOCK_SEQPACKET && type != SOCK_DGRAM)
		return -ENOTSOCK;
	*r = (struct vms_receiver){ .refs = 1, .sock = sock, .type = type };
	return 0;
}

VMS_EXPORT struct vms_receiver *vms_receiver_create(int sock)
{
	struct vms_receiver *r = malloc(sizeof(*r));
	int ret;

	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	ret = receiver_init(r, sock);
	if (ret) {
		free(r);
		errno = -ret;
		return NULL;
	}
	return r;
}

VMS_EXPORT struct vms_receiver *vms_receiver_ref(struct vms_receiver *r)
{
	r->refs++;
	return r;
}

VMS_EXPORT struct vms_receiver *vms_receiver_unref(struct vms_receiver *r)
{
	if (!r || --r->refs > 0)
		return NULL;
	drop_message(r);
	free(r);
	return NULL;
}

VMS_EXPORT int vms_receiver_read(struct vms_receiver *r,
				 struct vms_frame *frames, int *fds,
				 size_t max)
{
	if (!r)
		return -EINVAL;
	return receiver_read(r, frames, fds, max);
}

/* Waits until @sock is readable or @ms pass: 0, -ETIMEDOUT or -errno. */
static int wait_readable(int sock, int ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

VMS_EXPORT int vms_recv(int sock, struct vms_frame *frames, int *fds,
			size_t max)
{
	struct vms_receiver r;
	int ret = receiver_init(&r, sock);

	if (ret)
		return ret;
	for (;;) {
		ret = receiver_read(&r, frames, fds, max);
		if (ret != -EAGAIN || !r.got)
			return ret;
		/*
		 * A message has begun on a non-blocking stream.  Nothing can
		 * keep it for a later call, and dropping it would leave the
		 * stream mid-message: wait for the rest, a bounded time.
		 */
		ret = wait_readable(sock, VMS_RECV_REST_TIMEOUT_MS);
		if (ret) {
			vms_log_error(NULL, "dropped a message: its rest did not come (%s), closed %zu fds",
				strerror(-ret), r.n_fds);
			drop_message(&r);
			return ret;
		}
	}
}
