/* SPDX-License-Identifier: MIT */
/*
 * vms_send()/vms_recv() over socketpairs: round trips on both socket
 * types, and every malformed or hostile message a peer can send, crafted
 * by hand.  The harness checks after each case that no fd was left open.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vmshare.h>

#include "vmtest.h"

#define XRGB8888 0x34325258u
#define NV12 0x3231564eu

/* The wire layout, spelled out as a hostile (or older, or newer) peer would. */
struct wire_header {
	uint32_t magic;
	uint16_t version;
	uint16_t count;
	uint32_t frame_size;
	uint16_t header_size;	/* 0 in version 1 */
	uint16_t type;
};

/* Version 1's frame record: struct vms_frame without the modifier. */
#define V1_FRAME_SIZE (sizeof(struct vms_frame) - sizeof(uint64_t))

#define WIRE_MAGIC 0x31534d56u

static struct vms_context *ctx(void)
{
	struct vms_context *c = vms_context_create(VMS_CONTEXT_NO_MODULE);

	VMT_ASSERT(c);
	return c;
}

static void pair(int type, int sv[2])
{
	VMT_ASSERT_OK(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv));
}

/* A 64x16 XRGB8888 frame in memfd memory, filled with a pattern. */
static struct vms_buffer *make_frame(struct vms_context *c,
				     struct vms_frame *frame, uint32_t seed)
{
	struct vms_buffer *buf = vms_buffer_alloc(c, 64 * 4 * 16);

	VMT_ASSERT(buf);
	vmt_fill(vms_buffer_data(buf), 64 * 4 * 16, 0, seed);
	VMT_ASSERT_EQ(vms_frame_describe(frame, buf, 64, 16, XRGB8888, 256), 0);
	return buf;
}

static void roundtrip(int type, size_t count)
{
	struct vms_context *c = ctx();
	struct vms_buffer *bufs[VMS_MAX_FRAMES];
	struct vms_frame frames[VMS_MAX_FRAMES], got[VMS_MAX_FRAMES];
	int sv[2], fds[VMS_MAX_FRAMES];

	pair(type, sv);
	for (size_t i = 0; i < count; i++) {
		bufs[i] = make_frame(c, &frames[i], (uint32_t)i + 1);
		frames[i].tag = 1000 + i;
	}
	VMT_ASSERT_EQ(vms_send_buffers(sv[0], frames, bufs, count), 0);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), count);
	for (size_t i = 0; i < count; i++) {
		struct vms_mapping *map = vms_mapping_create(fds[i], &got[i]);

		VMT_ASSERT(map);
		VMT_ASSERT_EQ(got[i].tag, 1000 + i);
		VMT_ASSERT_EQ(vmt_check(vms_mapping_plane(map, 0), 64 * 4 * 16,
					0, (uint32_t)i + 1), -1);
		/* The peer's writes land in the sender's memory. */
		vmt_fill(vms_mapping_plane(map, 0), 64, 0, 99);
		VMT_ASSERT_EQ(vmt_check(vms_buffer_data(bufs[i]), 64, 0, 99), -1);
		VMT_ASSERT_EQ(fcntl(fds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		vms_mapping_unref(map);
		close(fds[i]);
		vms_buffer_unref(bufs[i]);
	}
	close(sv[0]);
	close(sv[1]);
	vms_context_unref(c);
}

static void stream_one(void) { roundtrip(SOCK_STREAM, 1); }
static void stream_many(void) { roundtrip(SOCK_STREAM, VMS_MAX_FRAMES); }
static void seqpacket_one(void) { roundtrip(SOCK_SEQPACKET, 1); }
static void seqpacket_many(void) { roundtrip(SOCK_SEQPACKET, 5); }

/* Sends raw bytes with @n_fds copies of @fd, as one sendmsg. */
static void send_raw(int sock, const void *data, size_t len, int fd,
		     size_t n_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 32)];
		struct cmsghdr align;
	} control = { 0 };
	struct iovec iov = { (void *)data, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds) {
		struct cmsghdr *cmsg;

		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		for (size_t i = 0; i < n_fds; i++)
			memcpy(CMSG_DATA(cmsg) + i * sizeof(int), &fd, sizeof(int));
	}
	VMT_ASSERT_EQ(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

struct message {
	struct wire_header header;
	struct vms_frame frames[2];
};

/* A well-formed message for one frame, for the cases to break. */
static struct message good_message(struct vms_context *c,
				   struct vms_buffer **buf)
{
	struct message m = {
		.header = { WIRE_MAGIC, 1, 1, sizeof(struct vms_frame), 0 },
	};

	*buf = make_frame(c, &m.frames[0], 7);
	return m;
}

/* Sends @m with @n_fds fds of @buf and expects vms_recv to fail with @err. */
static void expect_refused(int type, const struct message *m, size_t len,
			   const struct vms_buffer *buf, size_t n_fds, int err)
{
	struct vms_frame got[VMS_MAX_FRAMES];
	int sv[2], fds[VMS_MAX_FRAMES], before;

	pair(type, sv);
	send_raw(sv[0], m, len, vms_buffer_fd(buf), n_fds);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -err);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

#define ONE_FRAME (sizeof(struct wire_header) + sizeof(struct vms_frame))

/* Runs @mutate on a good message and expects @err on both socket types. */
#define REFUSAL_TEST(name, n_fds, err, mutate)                                \
	static void name(void)                                                \
	{                                                                     \
		struct vms_context *c = ctx();                                \
		struct vms_buffer *buf;                                       \
		struct message m = good_message(c, &buf);                     \
		size_t len = ONE_FRAME;                                       \
		mutate;                                                       \
		expect_refused(SOCK_STREAM, &m, len, buf, n_fds, err);        \
		expect_refused(SOCK_SEQPACKET, &m, len, buf, n_fds, err);     \
		vms_buffer_unref(buf);                                      \
		vms_context_unref(c);                                       \
	}

REFUSAL_TEST(bad_magic, 1, EPROTO, m.header.magic ^= 1)
REFUSAL_TEST(version_zero, 1, EPROTO, m.header.version = 0)
/* Version 1 had no header_size or type: those bytes were 0. */
REFUSAL_TEST(v1_with_header_size, 1, EPROTO, m.header.header_size = 16)
REFUSAL_TEST(short_frame_record, 1, EPROTO, m.header.frame_size = 40)
REFUSAL_TEST(huge_frame_record, 1, EPROTO, m.header.frame_size = 1u << 20)
REFUSAL_TEST(short_header, 1, EPROTO,
	     m.header.version = 2; m.header.header_size = 8)
REFUSAL_TEST(non_linear_modifier, 1, EBADMSG, m.frames[0].modifier = 1)
REFUSAL_TEST(zero_frames, 1, EPROTO, m.header.count = 0; len = sizeof(m.header))
/* vms_send() never sends more: on a stream the next message is lost too. */
REFUSAL_TEST(too_many_frames, 1, EPROTO, m.header.count = VMS_MAX_FRAMES + 1)
REFUSAL_TEST(no_fd, 0, EBADMSG, (void)0)
REFUSAL_TEST(extra_fd, 2, EBADMSG, (void)0)
REFUSAL_TEST(fds_truncated, 20, EMSGSIZE, (void)0)
REFUSAL_TEST(fewer_fds_than_frames, 1, EBADMSG,
	     m.header.count = 2; m.frames[1] = m.frames[0];
	     len = sizeof(m))
REFUSAL_TEST(size_beyond_fd, 1, EOVERFLOW, m.frames[0].size *= 2)
REFUSAL_TEST(offset_past_end, 1, EBADMSG,
	     m.frames[0].plane_offsets[0] = m.frames[0].size + 4096)
REFUSAL_TEST(rows_past_end, 1, EBADMSG, m.frames[0].height += 1)
REFUSAL_TEST(stride_too_small, 1, EBADMSG, m.frames[0].strides[0] = 255)
REFUSAL_TEST(absurd_stride, 1, EBADMSG, m.frames[0].strides[0] = 0xfffffff0u)
REFUSAL_TEST(offset_wraps, 1, EBADMSG,
	     m.frames[0].plane_offsets[0] = UINT64_MAX - 100)
REFUSAL_TEST(unknown_format, 1, EBADMSG, m.frames[0].fourcc = 0x20202020u)
REFUSAL_TEST(wrong_plane_count, 1, EBADMSG, m.frames[0].n_planes = 2)
REFUSAL_TEST(zero_width, 1, EBADMSG, m.frames[0].width = 0)
REFUSAL_TEST(unknown_frame_flag, 1, EBADMSG, m.frames[0].flags = 2)
REFUSAL_TEST(nonzero_reserved, 1, EBADMSG, m.frames[0].reserved = 1)
REFUSAL_TEST(stray_unused_plane, 1, EBADMSG, m.frames[0].strides[3] = 4)

/*
 * An fd the sender can shrink after the check (an unsealed memfd): the
 * receiver's first read past the new end would be a SIGBUS.
 */
static void shrinkable_fd_refused(void)
{
	struct vms_context *c = ctx();
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int memfd = memfd_create("passing", MFD_CLOEXEC);

	VMT_ASSERT_OK(memfd);
	VMT_ASSERT_OK(ftruncate(memfd, (off_t)m.frames[0].size));
	for (int type = 0; type < 2; type++) {
		int sv[2], fds[VMS_MAX_FRAMES], before;
		struct vms_frame got[VMS_MAX_FRAMES];

		pair(type ? SOCK_SEQPACKET : SOCK_STREAM, sv);
		send_raw(sv[0], &m, ONE_FRAME, memfd, 1);
		before = vmt_count_fds();
		VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES),
			      -EBADMSG);
		VMT_ASSERT_EQ(vmt_count_fds(), before);
		close(sv[0]);
		close(sv[1]);
	}
	close(memfd);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/*
 * NV12 of height 0xffffffff over a sparse, sealed 1 TiB memfd: in 32 bits
 * the chroma plane had (0xffffffff + 1) / 2 = 0 rows, so its offset was
 * never checked.  Dimensions past 65536 are refused outright.
 */
static void huge_height_refused(void)
{
	struct message m = {
		.header = { WIRE_MAGIC, 1, 1, sizeof(struct vms_frame), 0 },
	};
	int memfd = memfd_create("passing", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int sv[2], fds[VMS_MAX_FRAMES], before;
	struct vms_frame got[VMS_MAX_FRAMES];

	VMT_ASSERT_OK(memfd);
	VMT_ASSERT_OK(ftruncate(memfd, 1ll << 40));
	VMT_ASSERT_OK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	m.frames[0] = (struct vms_frame){
		.size = 1ull << 40,
		.width = 64,
		.height = 0xffffffffu,
		.fourcc = NV12,
		.n_planes = 2,
		.plane_offsets = { 0, 1ull << 39 },
		.strides = { 64, 64 },
	};
	pair(SOCK_STREAM, sv);
	send_raw(sv[0], &m, ONE_FRAME, memfd, 1);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EBADMSG);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
	close(memfd);
}

/* The control case must really succeed, or the refusals prove nothing. */
static void good_message_accepted(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int sv[2], fds[VMS_MAX_FRAMES];

	pair(SOCK_STREAM, sv);
	send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 1);
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static void more_frames_than_room(void)
{
	struct vms_context *c = ctx();
	struct vms_buffer *bufs[2];
	struct vms_frame frames[2], got[1];
	int sv[2], fds[1], before;

	pair(SOCK_STREAM, sv);
	bufs[0] = make_frame(c, &frames[0], 1);
	bufs[1] = make_frame(c, &frames[1], 2);
	VMT_ASSERT_EQ(vms_send_buffers(sv[0], frames, bufs, 2), 0);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, 1), -EMSGSIZE);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(bufs[0]);
	vms_buffer_unref(bufs[1]);
	vms_context_unref(c);
}

static void oversized_record(void)
{
	struct vms_context *c = ctx();
	/* Longer than any message of any version may be. */
	static char big[64 * 1024];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	struct vms_frame got[VMS_MAX_FRAMES];
	int sv[2], fds[VMS_MAX_FRAMES];

	memcpy(big, &m, ONE_FRAME);
	pair(SOCK_SEQPACKET, sv);
	send_raw(sv[0], big, sizeof(big), vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* The header arrives with its fd, then the peer hangs up. */
static void peer_closes_mid_message(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int sv[2], fds[VMS_MAX_FRAMES], before;

	pair(SOCK_STREAM, sv);
	send_raw(sv[0], &m, sizeof(m.header) + 10, vms_buffer_fd(buf), 1);
	close(sv[0]);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -ECONNRESET);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static void peer_closes_between_messages(void)
{
	struct vms_frame got[1];
	int sv[2], fds[1];

	pair(SOCK_STREAM, sv);
	close(sv[0]);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, 1), 0);
	close(sv[1]);
	pair(SOCK_SEQPACKET, sv);
	close(sv[0]);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, 1), 0);
	close(sv[1]);
}

/* A stream delivers the message in pieces, the fd with the first. */
static void partial_reads(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int sv[2], fds[VMS_MAX_FRAMES];
	const char *bytes = (const char *)&m;
	pid_t pid;

	pair(SOCK_STREAM, sv);
	pid = fork();
	if (pid == 0) {
		send_raw(sv[0], bytes, 3, vms_buffer_fd(buf), 1);
		for (size_t off = 3; off < ONE_FRAME; off += 7) {
			size_t n = ONE_FRAME - off < 7 ? ONE_FRAME - off : 7;

			usleep(2000);
			send_raw(sv[0], bytes + off, n, -1, 0);
		}
		_exit(0);
	}
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 1);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	VMT_ASSERT(!memcmp(&got[0], &m.frames[0], sizeof(got[0])));
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* The next message on @sock is one frame, @want; its fd is closed. */
static void expect_frame(int sock, const struct vms_frame *want)
{
	struct vms_frame got[VMS_MAX_FRAMES];
	int fds[VMS_MAX_FRAMES];

	VMT_ASSERT_EQ(vms_recv(sock, got, fds, VMS_MAX_FRAMES), 1);
	VMT_ASSERT(!memcmp(&got[0], want, sizeof(got[0])));
	close(fds[0]);
}

/* Sends @len bytes of @data with @buf's fd over a new @type socket. */
static void expect_accepted(int type, const void *data, size_t len,
			    const struct vms_buffer *buf,
			    const struct vms_frame *want)
{
	int sv[2], before;

	pair(type, sv);
	before = vmt_count_fds();
	send_raw(sv[0], data, len, vms_buffer_fd(buf), 1);
	expect_frame(sv[1], want);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

/* A sender of wire version 1: a 16-byte header, 88-byte frame records. */
static void v1_sender_accepted(void)
{
	struct vms_context *c = ctx();
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	uint8_t wire[sizeof(struct wire_header) + V1_FRAME_SIZE];

	m.header.frame_size = V1_FRAME_SIZE;
	memcpy(wire, &m.header, sizeof(m.header));
	memcpy(wire + sizeof(m.header), &m.frames[0], V1_FRAME_SIZE);
	/* What it leaves out is 0: the modifier, linear. */
	VMT_ASSERT_EQ(m.frames[0].modifier, 0);
	expect_accepted(SOCK_STREAM, wire, sizeof(wire), buf, &m.frames[0]);
	expect_accepted(SOCK_SEQPACKET, wire, sizeof(wire), buf, &m.frames[0]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/*
 * A later version: a longer header and longer frame records, with fields
 * this version does not know, which it skips; on a stream the message
 * after it is found where it begins.
 */
static void newer_sender_accepted(void)
{
	struct vms_context *c = ctx();
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	const size_t header_size = 40, frame_size = sizeof(struct vms_frame) + 32;
	uint8_t wire[40 + sizeof(struct vms_frame) + 32];
	int sv[2];

	memset(wire, 0xa5, sizeof(wire));
	m.header.version = 9;
	m.header.header_size = (uint16_t)header_size;
	m.header.frame_size = (uint32_t)frame_size;
	memcpy(wire, &m.header, sizeof(m.header));
	/* Version 2's flags and reserved word are 0; the rest is unknown. */
	memset(wire + sizeof(m.header), 0, 8);
	memcpy(wire + header_size, &m.frames[0], sizeof(m.frames[0]));
	expect_accepted(SOCK_SEQPACKET, wire, sizeof(wire), buf, &m.frames[0]);
	pair(SOCK_STREAM, sv);
	send_raw(sv[0], wire, sizeof(wire), vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_send_buffers(sv[0], &m.frames[0], &buf, 1), 0);
	expect_frame(sv[1], &m.frames[0]);
	expect_frame(sv[1], &m.frames[0]);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/*
 * A message of a type this version does not know (a later version's
 * release message, say) is read whole and dropped with its fds: ENOMSG,
 * and the next message is read as usual; so is one whose version 2 flags
 * ask for what this version cannot do (a fence per frame): EPROTO.
 */
static void unknown_message_skipped(void)
{
	struct vms_context *c = ctx();
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf), odd = m;
	struct vms_frame got[VMS_MAX_FRAMES];
	uint8_t fenced[24 + sizeof(struct vms_frame)];
	int sv[2], fds[VMS_MAX_FRAMES], before;
	const uint32_t fence_flag = 1;

	odd.header.version = 2;
	odd.header.type = 1;
	memcpy(fenced, &m.header, sizeof(m.header));
	((struct wire_header *)fenced)->version = 2;
	((struct wire_header *)fenced)->header_size = 24;
	memcpy(fenced + 16, &fence_flag, sizeof(fence_flag));
	memset(fenced + 20, 0, 4);
	memcpy(fenced + 24, &m.frames[0], sizeof(m.frames[0]));
	for (int type = 0; type < 2; type++) {
		pair(type ? SOCK_SEQPACKET : SOCK_STREAM, sv);
		before = vmt_count_fds();
		send_raw(sv[0], &odd, ONE_FRAME, vms_buffer_fd(buf), 1);
		send_raw(sv[0], fenced, sizeof(fenced), vms_buffer_fd(buf), 1);
		send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
		VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -ENOMSG);
		VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EPROTO);
		VMT_ASSERT_EQ(vmt_count_fds(), before);
		VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 1);
		close(fds[0]);
		close(sv[0]);
		close(sv[1]);
	}
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static void set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	VMT_ASSERT_OK(flags);
	VMT_ASSERT_OK(fcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

/*
 * recvmsg gives 0 for an empty record as for the end of the connection:
 * an empty record is a protocol error, and what follows it still arrives.
 */
static void empty_record_is_not_eof(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int sv[2], fds[VMS_MAX_FRAMES], before;

	pair(SOCK_SEQPACKET, sv);
	send_raw(sv[0], "", 0, -1, 0);
	send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EPROTO);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 1);
	close(fds[0]);
	/* An empty record carrying an fd: refused, and the fd closed. */
	send_raw(sv[0], "", 0, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EPROTO);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 0);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/*
 * A child sends @m's first @first bytes with the fd, then after @delay_us
 * the rest, unless @delay_us is 0.
 */
static pid_t send_in_two_parts(int sock, const struct message *m,
			       size_t first, int fd, useconds_t delay_us)
{
	pid_t pid = fork();

	VMT_ASSERT(pid >= 0);
	if (pid == 0) {
		send_raw(sock, m, first, fd, 1);
		if (delay_us) {
			usleep(delay_us);
			send_raw(sock, (const char *)m + first, ONE_FRAME - first,
				 -1, 0);
		}
		_exit(0);
	}
	return pid;
}

/*
 * On a non-blocking stream vms_recv returned -EAGAIN in the middle of a
 * message, closed the fds that had come and left the stream mid-message.
 * It now waits for the rest of a message it has begun, a bounded time.
 */
static void nonblocking_split_message(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	int sv[2], fds[VMS_MAX_FRAMES], before = vmt_count_fds();
	pid_t pid;

	pair(SOCK_STREAM, sv);
	set_nonblocking(sv[1]);
	/* Nothing has begun: EAGAIN, and nothing is lost. */
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -EAGAIN);
	pid = send_in_two_parts(sv[0], &m, 20, vms_buffer_fd(buf), 50000);
	/* The first part is there (however slow the machine): it has begun. */
	VMT_ASSERT_EQ(poll(&(struct pollfd){ .fd = sv[1], .events = POLLIN }, 1,
			   10000), 1);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), 1);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	VMT_ASSERT(!memcmp(&got[0], &m.frames[0], sizeof(got[0])));
	close(fds[0]);

	/* The rest never comes: ETIMEDOUT after a second, fds closed. */
	pid = send_in_two_parts(sv[0], &m, 20, vms_buffer_fd(buf), 0);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, VMS_MAX_FRAMES), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* An event loop's receiver keeps the part of a message that has come. */
static void receiver_resumes(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf);
	const char *bytes = (const char *)&m;
	int sv[2], fds[VMS_MAX_FRAMES], before;
	struct vms_receiver *r;

	pair(SOCK_STREAM, sv);
	set_nonblocking(sv[1]);
	r = vms_receiver_create(sv[1]);
	VMT_ASSERT(r);
	before = vmt_count_fds();
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EAGAIN);
	/* The fd and part of the header, then the header, then the rest. */
	send_raw(sv[0], bytes, 3, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EAGAIN);
	VMT_ASSERT_EQ(vmt_count_fds(), before + 1);
	send_raw(sv[0], bytes + 3, sizeof(struct wire_header) - 3, -1, 0);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EAGAIN);
	/* The rest, and a whole second message right behind it. */
	send_raw(sv[0], bytes + sizeof(struct wire_header),
		 ONE_FRAME - sizeof(struct wire_header), -1, 0);
	m.frames[0].tag = 2;
	send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), 1);
	VMT_ASSERT_EQ(got[0].tag, 0);
	close(fds[0]);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), 1);
	VMT_ASSERT_EQ(got[0].tag, 2);
	close(fds[0]);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EAGAIN);
	VMT_ASSERT_EQ(vmt_count_fds(), before);

	/* Destroyed mid-message, it closes the fd it kept. */
	send_raw(sv[0], bytes, 10, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EAGAIN);
	VMT_ASSERT_EQ(vmt_count_fds(), before + 1);
	vms_receiver_unref(r);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

/* After a header it cannot parse, a stream has no next message to find. */
static void receiver_stream_stays_broken(void)
{
	struct vms_context *c = ctx();
	struct vms_frame got[VMS_MAX_FRAMES];
	struct vms_buffer *buf;
	struct message m = good_message(c, &buf), bad = m;
	int sv[2], fds[VMS_MAX_FRAMES], before;
	struct vms_receiver *r;

	bad.header.magic ^= 1;
	pair(SOCK_STREAM, sv);
	r = vms_receiver_create(sv[1]);
	VMT_ASSERT(r);
	before = vmt_count_fds();
	send_raw(sv[0], &bad, ONE_FRAME, vms_buffer_fd(buf), 1);
	send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EPROTO);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EPROTO);
	VMT_ASSERT_EQ(vmt_count_fds(), before);
	vms_receiver_unref(r);
	/* On a seqpacket socket the next record is read as usual. */
	close(sv[0]);
	close(sv[1]);
	pair(SOCK_SEQPACKET, sv);
	r = vms_receiver_create(sv[1]);
	VMT_ASSERT(r);
	send_raw(sv[0], &bad, ONE_FRAME, vms_buffer_fd(buf), 1);
	send_raw(sv[0], &m, ONE_FRAME, vms_buffer_fd(buf), 1);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), -EPROTO);
	VMT_ASSERT_EQ(vms_receiver_read(r, got, fds, VMS_MAX_FRAMES), 1);
	close(fds[0]);
	vms_receiver_unref(r);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static void receiver_errors(void)
{
	struct vms_frame got[1];
	int p[2], fds[1];

	VMT_ASSERT_OK(pipe2(p, O_CLOEXEC));
	errno = 0;
	VMT_ASSERT(!vms_receiver_create(p[0]));
	VMT_ASSERT_EQ(errno, ENOTSOCK);
	VMT_ASSERT_EQ(vms_recv(p[0], got, fds, 1), -ENOTSOCK);
	VMT_ASSERT_EQ(vms_receiver_read(NULL, got, fds, 1), -EINVAL);
	vms_receiver_unref(NULL);
	close(p[0]);
	close(p[1]);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal without SA_RESTART interrupts the wait: vms_recv carries on. */
static void interrupted_by_signal(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval tick = { { 0, 20000 }, { 0, 20000 } };
	struct vms_context *c = ctx();
	struct vms_frame frame, got[1];
	struct vms_buffer *buf = make_frame(c, &frame, 3);
	int sv[2], fds[1];
	pid_t pid;

	pair(SOCK_STREAM, sv);
	VMT_ASSERT_OK(sigaction(SIGALRM, &sa, NULL));
	VMT_ASSERT_OK(setitimer(ITIMER_REAL, &tick, NULL));
	pid = fork();
	if (pid == 0) {
		usleep(200000);
		_exit(vms_send_buffers(sv[0], &frame, &buf, 1) ? 1 : 0);
	}
	VMT_ASSERT_EQ(vms_recv(sv[1], got, fds, 1), 1);
	tick = (struct itimerval){ 0 };
	setitimer(ITIMER_REAL, &tick, NULL);
	VMT_ASSERT_EQ(vmt_wait(pid), 0);
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static void send_errors(void)
{
	struct vms_context *c = ctx();
	struct vms_frame frames[VMS_MAX_FRAMES + 1];
	struct vms_buffer *buf = make_frame(c, &frames[0], 1);
	int sv[2], fds[VMS_MAX_FRAMES + 1], bad = -1;

	for (int i = 0; i <= VMS_MAX_FRAMES; i++) {
		frames[i] = frames[0];
		fds[i] = vms_buffer_fd(buf);
	}
	pair(SOCK_STREAM, sv);
	VMT_ASSERT_EQ(vms_send(sv[0], frames, fds, 0), -EINVAL);
	VMT_ASSERT_EQ(vms_send(sv[0], frames, fds, VMS_MAX_FRAMES + 1), -EINVAL);
	VMT_ASSERT_EQ(vms_send(sv[0], frames, &bad, 1), -EBADF);
	VMT_ASSERT_EQ(vms_send(sv[0], NULL, fds, 1), -EINVAL);
	close(sv[1]);
	/* The peer is gone: an error, and no SIGPIPE. */
	VMT_ASSERT_EQ(vms_send(sv[0], frames, fds, 1), -EPIPE);
	close(sv[0]);
	vms_buffer_unref(buf);
	vms_context_unref(c);
}

static const struct vmt_test tests[] = {
	VMT_TEST(stream_one),
	VMT_TEST(stream_many),
	VMT_TEST(seqpacket_one),
	VMT_TEST(seqpacket_many),
	VMT_TEST(good_message_accepted),
	VMT_TEST(shrinkable_fd_refused),
	VMT_TEST(huge_height_refused),
	VMT_TEST(bad_magic),
	VMT_TEST(version_zero),
	VMT_TEST(v1_with_header_size),
	VMT_TEST(short_frame_record),
	VMT_TEST(huge_frame_record),
	VMT_TEST(short_header),
	VMT_TEST(non_linear_modifier),
	VMT_TEST(zero_frames),
	VMT_TEST(too_many_frames),
	VMT_TEST(no_fd),
	VMT_TEST(extra_fd),
	VMT_TEST(fds_truncated),
	VMT_TEST(fewer_fds_than_frames),
	VMT_TEST(size_beyond_fd),
	VMT_TEST(offset_past_end),
	VMT_TEST(rows_past_end),
	VMT_TEST(stride_too_small),
	VMT_TEST(absurd_stride),
	VMT_TEST(offset_wraps),
	VMT_TEST(unknown_format),
	VMT_TEST(wrong_plane_count),
	VMT_TEST(zero_width),
	VMT_TEST(unknown_frame_flag),
	VMT_TEST(nonzero_reserved),
	VMT_TEST(stray_unused_plane),
	VMT_TEST(more_frames_than_room),
	VMT_TEST(oversized_record),
	VMT_TEST(peer_closes_mid_message),
	VMT_TEST(peer_closes_between_messages),
	VMT_TEST(partial_reads),
	VMT_TEST(empty_record_is_not_eof),
	VMT_TEST(nonblocking_split_message),
	VMT_TEST(receiver_resumes),
	VMT_TEST(receiver_stream_stays_broken),
	VMT_TEST(receiver_errors),
	VMT_TEST(v1_sender_accepted),
	VMT_TEST(newer_sender_accepted),
	VMT_TEST(unknown_message_skipped),
	VMT_TEST(interrupted_by_signal),
	VMT_TEST(send_errors),
};

int main(int argc, char **argv)
{
	return vmt_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]),
			NULL);
}
