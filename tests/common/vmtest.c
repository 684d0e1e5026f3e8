/* SPDX-License-Identifier: MIT */
#include "vmtest.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define VMT_SKIP 77

static const char *self_path;

const char *vmt_errname(int err)
{
	const char *name = err ? strerrorname_np(err) : "0";

	return name ? name : "unknown errno";
}

_Noreturn void vmt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(1);
}

_Noreturn void vmt_skip(const char *fmt, ...)
{
	va_list ap;

	printf("# SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(VMT_SKIP);
}

void vmt_note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

int vmt_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; /* the directory's own fd */
}

static long long vmstat_value(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key))) {
		if ((p == text || p[-1] == '\n') && p[klen] == ' ')
			return atoll(p + klen + 1);
		p += klen;
	}
	return -1;
}

long long vmt_pins_outstanding(void)
{
	static char text[16384];
	long long acquired, released;
	ssize_t n;
	int fd;

	/* The counters are folded from per-CPU deltas lazily. */
	fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			vmt_note("stat_refresh: %s", vmt_errname(errno));
		close(fd);
	}

	fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	acquired = vmstat_value(text, "nr_foll_pin_acquired");
	released = vmstat_value(text, "nr_foll_pin_released");
	if (acquired < 0 || released < 0)
		return -1;
	return acquired - released;
}

int vmt_set_module_param(const char *name, const char *text)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/vmemexp/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

void vmt_fill(void *p, size_t len, size_t base, uint32_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = vmt_pattern(base + i, seed);
}

long vmt_check(const void *p, size_t len, size_t base, uint32_t seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != vmt_pattern(base + i, seed))
			return (long)i;
	return -1;
}

size_t vmt_count_unlike(const void *p, size_t len, size_t base, uint32_t seed)
{
	const uint8_t *b = p;
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += b[i] != vmt_pattern(base + i, seed);
	return n;
}

int vmt_wait(int pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int vmt_spawn_peer(const char *role, int *sock)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		char fdarg[16];
		int fd = dup(sv[1]); /* without CLOEXEC: the peer inherits it */

		snprintf(fdarg, sizeof(fdarg), "%d", fd);
		execl(self_path, self_path, "--peer", role, fdarg, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

int vmt_send_fd(int sock, int fd, const void *data, size_t len)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control,
		.msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int vmt_recv_fd(int sock, void *data, size_t len)
{
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = data, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control,
		.msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;
	int fd = -1;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL) != (ssize_t)len)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_level == SOL_SOCKET &&
	    cmsg->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	if (fd < 0)
		errno = EBADMSG;
	return fd;
}

/* Runs one test in a child; the result is a TAP status. */
static int run_one(const struct vmt_test *t)
{
	long long pins_before = vmt_pins_outstanding(), pins_after;
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int fds_before = vmt_count_fds(), fds_after;

		t->run();
		fds_after = vmt_count_fds();
		if (fds_after != fds_before)
			vmt_fail(__FILE__, __LINE__,
				 "%d fds open after the test, %d before",
				 fds_after, fds_before);
		fflush(stdout);
		_exit(0);
	}
	status = vmt_wait(pid);
	if (status != 0)
		return status;

	pins_after = vmt_pins_outstanding();
	if (pins_before < 0 || pins_after < 0) {
		vmt_note("cannot read the pin counters in /proc/vmstat");
		return 1;
	}
	if (pins_after != pins_before) {
		vmt_note("%lld pages still pinned after the test",
			 pins_after - pins_before);
		return 1;
	}
	return 0;
}

int vmt_main(int argc, char **argv, const struct vmt_test *tests, size_t n,
	     vmt_peer_fn *peer)
{
	int failed = 0, skipped = 0, ran = 0;

	self_path = argv[0];
	if (argc == 4 && !strcmp(argv[1], "--peer") && peer)
		return peer(argv[2], atoi(argv[3]));

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < n; i++) {
		bool wanted = argc < 2;
		int status;

		for (int a = 1; a < argc; a++)
			wanted |= !strcmp(argv[a], tests[i].name);
		if (!wanted)
			continue;
		ran++;
		printf("# running %s\n", tests[i].name);
		status = run_one(&tests[i]);
		if (status == VMT_SKIP) {
			skipped++;
			printf("ok %d %s # SKIP\n", ran, tests[i].name);
		} else if (status) {
			failed++;
			printf("not ok %d %s (status %d)\n", ran, tests[i].name,
			       status);
		} else {
			printf("ok %d %s\n", ran, tests[i].name);
		}
	}
	printf("1..%d\n", ran);
	printf("# %d passed, %d failed, %d skipped\n", ran - failed - skipped,
	       failed, skipped);
	if (failed)
		return 1;
	return ran && skipped == ran ? VMT_SKIP : 0;
}
