/* tools/qemu/agent.c — the qemu device's host channel (tools/qemu/README.md).
 *
 * As the kernel's init (rdinit=/sbin/cairn-qemu-agent) it forks one child and
 * execs /init (cairn) in its own place, argv unchanged: cairn is PID 1, the
 * child is an orphan it reaps like any other. The child relays the
 * virtio-serial port named "cairn.admin" to cairn's admin socket
 * (/run/cairn/ctrl.sock): bytes from the host go to a unix connection it
 * opens when they arrive, bytes back go to the port. The host sends one
 * request per connection with "Connection: close", so cairn closes each unix
 * connection after its answer and the next bytes open a new one.
 *
 * virtio-serial tells the guest that the host closed or opened the port on
 * its control queue, which is not ordered with the data queue: the next
 * request can arrive before the close of the previous connection is seen.
 * So a host close only drops answer bytes nobody reads any more; the unix
 * connection is replaced when host bytes arrive for a request that has been
 * silent for STALE_MS (a request the host gave up on).
 *
 *   cairn-qemu-agent relay PORT SOCKET   the relay alone (tests on a host)
 *
 * Of the tree it links only lib/util.c and lib/err.c. It runs before anything
 * is mounted: it waits for /sys and /dev (cairn mounts them) and for the
 * port's driver (virtio_console, loaded by cairn from cairn.modules=).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/util.h"

#define PORT_NAME "cairn.admin"
#define ADMIN_SOCKET "/run/cairn/ctrl.sock"
#define BUF_SIZE 65536
#define IDLE_MS 100
#define STALE_MS 2000

struct pipe_buf {
	char data[BUF_SIZE];
	size_t len, off;
};

struct relay {
	int port;
	int sock;
	const char *sock_path;
	struct pipe_buf to_sock, to_port;
	struct timespec last_in; /* when host bytes last arrived */
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void say(const char *what, int err)
{
	if (err)
		fprintf(stderr, "cairn-qemu-agent: %s: %s\n", what, strerror(err));
	else
		fprintf(stderr, "cairn-qemu-agent: %s\n", what);
}

/* /dev/vportNpM whose /sys/class/virtio-ports/vportNpM/name is PORT_NAME. */
static int port_find(char *path, size_t size)
{
	_cleanup_(closedirp) DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vport", 5) != 0)
			continue;
		char npath[300], name[64] = "";
		if (str_fmt(npath, sizeof(npath), "/sys/class/virtio-ports/%s/name", de->d_name) < 0)
			continue;
		_cleanup_close_ int fd = open(npath, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, PORT_NAME) == 0 && str_fmt(path, size, "/dev/%s", de->d_name) == 0)
			return 0;
	}
	return -ENOENT;
}

static int port_open_wait(void)
{
	char path[300];
	for (;;) {
		if (port_find(path, sizeof(path)) == 0) {
			int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0)
				return fd;
		}
		sleep_ms(IDLE_MS);
	}
}

/* Connect to the admin socket, retrying while cairn is not listening yet. */
static int sock_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int err = errno;
		close(fd);
		if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
			return -err;
		sleep_ms(IDLE_MS);
	}
	return -ETIMEDOUT;
}

static void relay_drop_sock(struct relay *r)
{
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	r->to_sock.len = r->to_sock.off = 0;
}

/* Write what is buffered; 0 when done or would block, negative on error. */
static int buf_flush(int fd, struct pipe_buf *b)
{
	while (b->off < b->len) {
		ssize_t n = write(fd, b->data + b->off, b->len - b->off);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		b->off += (size_t)n;
	}
	b->len = b->off = 0;
	return 0;
}

/* Fill an empty buffer from fd: bytes read, 0 on EOF, -EAGAIN, or -errno. */
static ssize_t buf_fill(int fd, struct pipe_buf *b)
{
	ssize_t n = read(fd, b->data, sizeof(b->data));
	if (n < 0)
		return -errno;
	b->len = (size_t)n;
	b->off = 0;
	return n;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Host bytes arrived: buffer them; a request silent for STALE_MS was given
 * up by the host, these bytes start a new one. */
static int relay_from_port(struct relay *r)
{
	ssize_t n = buf_fill(r->port, &r->to_sock);
	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n <= 0) /* the host closed its side */
		return -EPIPE;
	if (r->sock >= 0 && ms_since(&r->last_in) >= STALE_MS) {
		close(r->sock);
		r->sock = -1;
		r->to_port.len = r->to_port.off = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->last_in);
	return 0;
}

/* Bytes for cairn and no connection: open one. cairn closes each connection
 * after its answer (the host sends "Connection: close"), so bytes that
 * arrive after that start the next request. */
static void relay_connect(struct relay *r)
{
	int fd = sock_connect(r->sock_path);
	if (fd < 0) {
		say("admin socket", -fd);
		r->to_sock.len = r->to_sock.off = 0;
		return;
	}
	r->sock = fd;
}

static void relay_from_sock(struct relay *r)
{
	ssize_t n = buf_fill(r->sock, &r->to_port);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) { /* cairn closed the connection; what is buffered is the next request */
		close(r->sock);
		r->sock = -1;
	}
}

/* One round of poll; -EPIPE when the host is gone. */
static int relay_step(struct relay *r)
{
	if (r->sock < 0 && r->to_sock.len)
		relay_connect(r);
	struct pollfd p[2] = {{.fd = r->port}, {.fd = r->sock}};
	p[0].events = (r->to_sock.len ? 0 : POLLIN) | (r->to_port.len ? POLLOUT : 0);
	p[1].events = (r->to_port.len ? 0 : POLLIN) | (r->to_sock.len ? POLLOUT : 0);
	if (poll(p, r->sock >= 0 ? 2 : 1, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if ((p[0].revents & POLLHUP) && !(p[0].revents & POLLIN))
		return -EPIPE;
	if ((p[0].revents & POLLOUT) && buf_flush(r->port, &r->to_port) < 0)
		return -EPIPE;
	if ((p[0].revents & POLLIN) && !r->to_sock.len) {
		int rc = relay_from_port(r);
		if (rc < 0)
			return rc;
	}
	if (r->sock < 0)
		return 0;
	if ((p[1].revents & POLLOUT) && buf_flush(r->sock, &r->to_sock) < 0)
		relay_drop_sock(r);
	else if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !r->to_port.len)
		relay_from_sock(r);
	return 0;
}

static void relay_run(int port, const char *sock_path)
{
	struct relay r = {.port = port, .sock = -1, .sock_path = sock_path};
	for (;;) {
		if (relay_step(&r) == -EPIPE) {
			/* no host on the port (for now): answer bytes have nobody to go to */
			r.to_port.len = r.to_port.off = 0;
			sleep_ms(IDLE_MS);
		}
	}
}

static int relay_child(void)
{
	setsid();
	if (chdir("/") < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	relay_run(port_open_wait(), ADMIN_SOCKET);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "relay") == 0) {
		signal(SIGPIPE, SIG_IGN);
		int fd = open(argv[2], O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			say(argv[2], errno);
			return 1;
		}
		relay_run(fd, argv[3]);
		return 0;
	}
	if (getpid() != 1) {
		fprintf(stderr, "usage: cairn-qemu-agent relay PORT SOCKET (or run it as init)\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(relay_child());
	if (pid < 0)
		say("fork (no host channel)", errno);
	argv[0] = "/init";
	execv("/init", argv);
	say("exec /init", errno);
	for (;;) /* PID 1 must not exit */
		pause();
}
