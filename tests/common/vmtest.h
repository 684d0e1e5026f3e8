/* SPDX-License-Identifier: MIT */
/*
 * A small kselftest-shaped harness: every test runs in its own forked
 * child, prints TAP, and is checked afterwards for leaked file descriptors
 * and for pages left pinned (nr_foll_pin_acquired - nr_foll_pin_released in
 * /proc/vmstat back to where it was).  Exit status: 0 all passed, 1 some
 * failed, 77 all skipped (meson's skip).
 */
#ifndef VMTEST_H
#define VMTEST_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct vmt_test {
	const char *name;
	void (*run)(void);
};

#define VMT_TEST(fn) { #fn, fn }

/*
 * A peer is this same binary re-executed (so it shares no memory with the
 * test), given a role and one end of a socketpair; its return value is its
 * exit status.
 */
typedef int vmt_peer_fn(const char *role, int sock);

/*
 * Runs the tests named on the command line (all when none is), or, when
 * started by vmt_spawn_peer(), the peer.
 */
int vmt_main(int argc, char **argv, const struct vmt_test *tests, size_t n,
	     vmt_peer_fn *peer);

/* Ends the current test: failed, or skipped with a reason. */
_Noreturn void vmt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
_Noreturn void vmt_skip(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Prints a diagnostic line ("# ...") for the TAP stream. */
void vmt_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define VMT_ASSERT(cond)                                                      \
	do {                                                                  \
		if (!(cond))                                                  \
			vmt_fail(__FILE__, __LINE__, "%s", #cond);            \
	} while (0)

#define VMT_ASSERT_EQ(a, b)                                                   \
	do {                                                                  \
		long long a_ = (long long)(a), b_ = (long long)(b);           \
		if (a_ != b_)                                                 \
			vmt_fail(__FILE__, __LINE__, "%s == %lld, not %lld",  \
				 #a, a_, b_);                                 \
	} while (0)

/* The call must fail with -1 (or a negative value) and this errno. */
#define VMT_ASSERT_ERRNO(call, err)                                           \
	do {                                                                  \
		errno = 0;                                                    \
		long long r_ = (long long)(call);                             \
		int e_ = errno;                                               \
		if (r_ >= 0 || e_ != (err))                                   \
			vmt_fail(__FILE__, __LINE__,                          \
				 "%s returned %lld, errno %s; expected %s",   \
				 #call, r_, vmt_errname(e_), #err);          \
	} while (0)

/* The call must succeed (return >= 0); prints errno otherwise. */
#define VMT_ASSERT_OK(call)                                                   \
	do {                                                                  \
		errno = 0;                                                    \
		long long r_ = (long long)(call);                             \
		if (r_ < 0)                                                   \
			vmt_fail(__FILE__, __LINE__, "%s failed: %s", #call,  \
				 vmt_errname(errno));                        \
	} while (0)

const char *vmt_errname(int err);

/* Number of open file descriptors of this process. */
int vmt_count_fds(void);

/* Pages pinned with FOLL_PIN system-wide and not yet released. */
long long vmt_pins_outstanding(void);

/* A byte pattern that depends on the position and a seed. */
static inline uint8_t vmt_pattern(size_t pos, uint32_t seed)
{
	uint32_t x = (uint32_t)pos * 2654435761u + seed * 40503u;

	return (uint8_t)(x >> 24 ^ x);
}

/*
 * Writes @text into the vmemexp module parameter @name (root only):
 * 0, or -1 with errno set.
 */
int vmt_set_module_param(const char *name, const char *text);

void vmt_fill(void *p, size_t len, size_t base, uint32_t seed);
/* Returns the first offset that differs from the pattern, or -1. */
long vmt_check(const void *p, size_t len, size_t base, uint32_t seed);
/* How many bytes differ from that pattern: a whole wrong page, or a few
 * written over (a diagnostic). */
size_t vmt_count_unlike(const void *p, size_t len, size_t base, uint32_t seed);

/* Starts a peer in ROLE; returns its pid and stores our socket in *sock. */
int vmt_spawn_peer(const char *role, int *sock);

/* Waits for a child: its exit status, or 128 + the signal that killed it. */
int vmt_wait(int pid);

/* Sends one fd with a payload over a UNIX socket, and receives it. */
int vmt_send_fd(int sock, int fd, const void *data, size_t len);
int vmt_recv_fd(int sock, void *data, size_t len);

#endif /* VMTEST_H */
