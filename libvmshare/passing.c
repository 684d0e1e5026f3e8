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

/*
 * The wire format (docs/library.md, "Wire format").  A message is a
 * header of header_size bytes, then count records of frame_size bytes,
 * with one fd per frame in SCM_RIGHTS.  Every version begins with the
 * same 16 bytes, and a later version only appends: fields to the header,
 * fields to each frame record.  A receiver reads what it knows, takes a
 * field it does not know from a shorter record as 0, and skips what it
 * does not know in a longer one, so senders and receivers of different
 * versions understand each other.  Native byte order: both ends share a
 * machine.
 */
#define VMS_WIRE_MAGIC 0x31534d56u	/* "VMS1" */
#define VMS_WIRE_VERSION 2

/* The first 16 bytes of every version's header: version 1's whole header. */
struct vms_wire_header {
	uint32_t magic;
	uint16_t version;	/* the sender's */
	uint16_t count;		/* frame records */
	uint32_t frame_size;	/* bytes per frame record */
	uint16_t header_size;	/* bytes of the header; 0 in version 1: 16 */
	uint16_t type;		/* enum vms_wire_type; 0 in version 1 */
};

/* Version 2's header. */
struct vms_wire_header_v2 {
	struct vms_wire_header base;
	/*
	 * Room for what a later version sends beside the frames, such as a
	 * sync_file per frame: 0 here, and a flag this version does not
	 * know makes the message one it cannot read (EPROTO).
	 */
	uint32_t flags;
	uint32_t reserved;	/* 0 */
};

/*
 * What a message carries.  Room for a release message (the consumer
 * telling the producer it is done with frames): a receiver reads a message
 * of a type it does not know whole, closes its fds and says ENOMSG.
 */
enum vms_wire_type {
	VMS_WIRE_FRAMES = 0,
};

/* Version 1's frame record: struct vms_frame before the modifier. */
#define VMS_WIRE_V1_FRAME_SIZE 88
/* Bounds on what a later version may grow to. */
#define VMS_WIRE_MAX_HEADER 256
#define VMS_WIRE_MAX_FRAME 512
#define VMS_WIRE_MAX_MESSAGE (VMS_WIRE_MAX_HEADER + \
			      VMS_MAX_FRAMES * VMS_WIRE_MAX_FRAME)

_Static_assert(sizeof(struct vms_wire_header) == 16, "version 1's header");
_Static_assert(sizeof(struct vms_wire_header_v2) == 24, "version 2's header");
_Static_assert(sizeof(struct vms_frame) == VMS_WIRE_V1_FRAME_SIZE + 8,
	       "version 2's frame record: version 1's and the modifier");

/* The message vms_send() writes: version 2. */
struct vms_wire_message {
	struct vms_wire_header_v2 header;
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

	msg.header = (struct vms_wire_header_v2){
		.base = {
			.magic = VMS_WIRE_MAGIC,
			.version = VMS_WIRE_VERSION,
			.count = (uint16_t)count,
			.frame_size = sizeof(struct vms_frame),
			.header_size = sizeof(struct vms_wire_header_v2),
			.type = VMS_WIRE_FRAMES,
		},
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
	/* The message as it arrives, of any version. */
	union {
		struct vms_wire_header header;
		uint8_t bytes[VMS_WIRE_MAX_MESSAGE];
	} raw;
	size_t got;		/* bytes of raw received (streams) */
	struct vms_frame frames[VMS_MAX_FRAMES];	/* decoded */
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

/*
 * A message's layout, from its first 16 bytes: its length in *@len;
 * returns -EPROTO for a header no version writes.  The frame count of a
 * message of frames is checked later (decode()).
 */
static int parse_header(const struct vms_wire_header *h, size_t *len)
{
	size_t header_size = h->header_size ? h->header_size :
					      sizeof(struct vms_wire_header);

	if (h->magic != VMS_WIRE_MAGIC || !h->version ||
	    (h->version == 1 && (h->header_size || h->type)) ||
	    header_size < sizeof(struct vms_wire_header) ||
	    header_size > VMS_WIRE_MAX_HEADER ||
	    h->frame_size < VMS_WIRE_V1_FRAME_SIZE ||
	    h->frame_size > VMS_WIRE_MAX_FRAME || h->count > VMS_MAX_FRAMES)
		return -EPROTO;
	*len = header_size + (size_t)h->count * h->frame_size;
	return 0;
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

/* One record, read whole (or its tail is lost): 1, 0 at EOF, -errno. */
static int receive_record(struct vms_receiver *r)
{
	ssize_t n = receive_some(r, r->raw.bytes, sizeof(r->raw.bytes));
	size_t len;
	int ret;

	if (n < 0)
		return (int)n;
	if (n == 0)
		return r->type == SOCK_SEQPACKET && peer_hung_up(r->sock) &&
		       !r->n_fds ? 0 : -EPROTO;
	if ((size_t)n < sizeof(r->raw.header))
		return -EPROTO;
	ret = parse_header(&r->raw.header, &len);
	if (ret)
		return ret;
	if ((size_t)n != len)
		return -EPROTO;
	r->got = (size_t)n;
	return 1;
}

/*
 * The rest of a stream's message: the first 16 bytes of the header, then
 * the length they give (never more, so the next message's bytes and fds
 * stay in the socket).  Returns 1 once whole, 0 at EOF between messages,
 * -EAGAIN with what arrived kept, or another negative errno.
 */
static int receive_stream(struct vms_receiver *r)
{
	size_t want = sizeof(r->raw.header);

	for (;;) {
		ssize_t n;
		int ret;

		if (r->got >= sizeof(r->raw.header)) {
			ret = parse_header(&r->raw.header, &want);
			if (ret)
				return ret;
			if (r->got == want)
				return 1;
		}
		n = receive_some(r, r->raw.bytes + r->got, want - r->got);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return r->got ? -ECONNRESET : 0;
		r->got += (size_t)n;
	}
}

/*
 * The frames of a whole message into r->frames, each record copied as far
 * as this version knows it (a shorter one leaves the rest 0: version 1
 * has no modifier, which is then DRM_FORMAT_MOD_LINEAR).  Returns the
 * frame count, -ENOMSG for a type this version does not know, -EPROTO.
 */
static int decode(struct vms_receiver *r)
{
	const struct vms_wire_header *h = &r->raw.header;
	size_t header_size = h->header_size ? h->header_size : sizeof(*h);
	size_t known = h->frame_size < sizeof(struct vms_frame) ?
		       h->frame_size : sizeof(struct vms_frame);

	if (h->type != VMS_WIRE_FRAMES)
		return -ENOMSG;
	if (header_size >= sizeof(struct vms_wire_header_v2)) {
		struct vms_wire_header_v2 v2;

		memcpy(&v2, r->raw.bytes, sizeof(v2));
		if (v2.flags || v2.reserved)
			return -EPROTO;
	}
	if (!h->count)
		return -EPROTO;
	for (size_t i = 0; i < h->count; i++) {
		memset(&r->frames[i], 0, sizeof(r->frames[i]));
		memcpy(&r->frames[i], r->raw.bytes + header_size +
		       i * h->frame_size, known);
	}
	return h->count;
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

/* Drops the message under way for @err, closing its fds, and says so. */
static int reject(struct vms_receiver *r, int err)
{
	vms_log_error(NULL, "dropped a message: %s, closed %zu fds",
		      strerror(-err), r->n_fds);
	drop_message(r);
	return err;
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

	if (r->truncated || r->excess || (size_t)count > max)
		return reject(r, -EMSGSIZE);
	if (r->n_fds != (size_t)count)
		return reject(r, -EBADMSG);
	ret = check_frames(r->frames, r->fds, (size_t)count);
	if (ret)
		return reject(r, ret);

	memcpy(frames, r->frames, (size_t)count * sizeof(*frames));
	memcpy(fds, r->fds, (size_t)count * sizeof(*fds));
	r->n_fds = 0;
	drop_message(r);
	return count;
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
	if (count == 0) {
		drop_message(r);
		return 0;
	}
	if (count < 0) {
		/* A stream has no boundary to find the next message by. */
		if (r->type == SOCK_STREAM &&
		    (count == -EPROTO || count == -ECONNRESET))
			r->broken = count;
		return reject(r, count);
	}
	/* Read whole: whatever it holds, the next message can follow. */
	count = decode(r);
	if (count < 0)
		return reject(r, count);
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
		if (ret)
			return reject(&r, ret);
	}
}
