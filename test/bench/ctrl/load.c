/* test/bench/ctrl/load.c — load generator and reference server for the
 * control API benchmark (compiled by ./run).
 *
 *   load rps SOCK CLIENTS SECONDS     CLIENTS threads, one keep-alive connection
 *                                     each, GET /v1/status back to back
 *   load probe SOCK INTERVAL_MS       one keep-alive client, one GET /v1/status
 *                                     every INTERVAL_MS, until SIGINT/SIGTERM
 *   load serve SOCK BODY              the baseline: a minimal single-threaded
 *                                     epoll HTTP/1.1 server answering every
 *                                     request with BODY, until SIGTERM
 *
 * rps and probe print one line of "key value" pairs: requests, errors,
 * seconds, rps, p50_us, p99_us, max_us. Latency is from the first byte of
 * the request sent to the last byte of the answer read. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQ "GET /v1/status HTTP/1.1\r\nHost: cairn\r\n\r\n"
#define BUF 65536
#define MAX_SAMPLES (1u << 24)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "load: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "load: connect %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* ---------------- one client ---------------- */

struct client {
	const char *path;
	int fd;
	char buf[BUF];
	uint64_t *lat; /* ns per request */
	size_t n, cap;
	unsigned long errors;
	double seconds;
	bool paced;
	unsigned interval_ms;
};

/* One request and its whole answer (Content-Length framing); 0 or -1. */
static int exchange(struct client *c)
{
	if (send(c->fd, REQ, sizeof(REQ) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(REQ) - 1))
		return -1;
	size_t have = 0, need = 0;
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + have, BUF - 1 - have, 0);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		c->buf[have] = '\0';
		char *end = strstr(c->buf, "\r\n\r\n");
		if (!end)
			continue;
		if (!need) {
			char *cl = strcasestr(c->buf, "\r\nContent-Length:");
			if (!cl || strncmp(c->buf, "HTTP/1.1 200", 12))
				return -1;
			need = (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
		}
		if (have >= need)
			return have == need ? 0 : -1;
	}
}

static void record(struct client *c, uint64_t ns)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4096;
		uint64_t *nl = cap <= MAX_SAMPLES ? realloc(c->lat, cap * sizeof(*nl)) : NULL;
		if (!nl)
			return;
		c->lat = nl;
		c->cap = cap;
	}
	c->lat[c->n++] = ns;
}

static void pace(const struct client *c, uint64_t t0)
{
	uint64_t due = t0 + (uint64_t)c->interval_ms * 1000000ull, now = now_ns();
	if (c->paced && due > now) {
		struct timespec ts = {(time_t)((due - now) / 1000000000ull),
				      (long)((due - now) % 1000000000ull)};
		nanosleep(&ts, NULL);
	}
}

static void *client_run(void *arg)
{
	struct client *c = arg;
	uint64_t start = now_ns(), end = start + (uint64_t)(c->seconds * 1e9);
	c->fd = connect_to(c->path);
	while (!stop && (c->paced || now_ns() < end)) {
		if (c->fd < 0 && (c->fd = connect_to(c->path)) < 0) {
			c->errors++;
			usleep(10000);
			continue;
		}
		uint64_t t0 = now_ns();
		if (exchange(c) < 0) {
			c->errors++;
			close(c->fd);
			c->fd = -1;
		} else {
			record(c, now_ns() - t0);
		}
		pace(c, t0);
	}
	c->seconds = (double)(now_ns() - start) / 1e9;
	if (c->fd >= 0)
		close(c->fd);
	return NULL;
}

/* ---------------- statistics ---------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(struct client *cs, unsigned n)
{
	size_t total = 0;
	unsigned long errors = 0;
	double seconds = 0;
	for (unsigned i = 0; i < n; i++) {
		total += cs[i].n;
		errors += cs[i].errors;
		seconds = cs[i].seconds > seconds ? cs[i].seconds : seconds;
	}
	uint64_t *all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		exit(1);
	for (unsigned i = 0, k = 0; i < n; k += (unsigned)cs[i].n, i++)
		memcpy(all + k, cs[i].lat, cs[i].n * sizeof(*all));
	qsort(all, total, sizeof(*all), cmp_u64);
	uint64_t p50 = total ? all[total / 2] : 0, p99 = total ? all[(total * 99) / 100] : 0;
	printf("requests %zu errors %lu seconds %.3f rps %.1f p50_us %.1f p99_us %.1f max_us %.1f\n",
	       total, errors, seconds, seconds > 0 ? (double)total / seconds : 0.0, p50 / 1e3,
	       p99 / 1e3, total ? all[total - 1] / 1e3 : 0.0);
	free(all);
}

static int run_clients(const char *path, unsigned n, double seconds, bool paced,
		       unsigned interval_ms)
{
	struct client *cs = calloc(n, sizeof(*cs));
	pthread_t *th = calloc(n, sizeof(*th));
	if (!cs || !th)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		cs[i] = (struct client){.path = path, .fd = -1, .seconds = seconds,
					.paced = paced, .interval_ms = interval_ms};
		if (pthread_create(&th[i], NULL, client_run, &cs[i]) != 0)
			return 1;
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	report(cs, n);
	return 0;
}

/* ---------------- the baseline server ---------------- */

struct conn {
	int fd;
	size_t have;
	char buf[BUF];
};

/* Answer every complete request in c->buf; -1 to drop the connection. */
static int serve_reqs(struct conn *c, const char *resp, size_t rlen)
{
	char *end;
	while ((end = memmem(c->buf, c->have, "\r\n\r\n", 4))) {
		size_t used = (size_t)(end + 4 - c->buf);
		if (send(c->fd, resp, rlen, MSG_NOSIGNAL) != (ssize_t)rlen)
			return -1;
		memmove(c->buf, c->buf + used, c->have - used);
		c->have -= used;
	}
	return c->have == BUF ? -1 : 0;
}

static void serve_conn(int ep, struct conn *c, const char *resp, size_t rlen)
{
	ssize_t n = recv(c->fd, c->buf + c->have, BUF - c->have, 0);
	if (n > 0) {
		c->have += (size_t)n;
		if (serve_reqs(c, resp, rlen) == 0)
			return;
	} else if (n < 0 && errno == EAGAIN) {
		return;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static int serve(const char *path, const char *body)
{
	char resp[4096];
	int rlen = snprintf(resp, sizeof(resp),
			    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (rlen < 0 || rlen >= (int)sizeof(resp) || strlen(path) >= sizeof(sa.sun_path))
		return 1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ls < 0 || ep < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ls, 64) < 0)
		return 1;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	while (!stop) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 200);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr) {
				serve_conn(ep, evs[i].data.ptr, resp, (size_t)rlen);
				continue;
			}
			int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct conn *c = fd >= 0 ? calloc(1, sizeof(*c)) : NULL;
			if (!c) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			c->fd = fd;
			ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		}
	}
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && !strcmp(argv[1], "rps"))
		return run_clients(argv[2], (unsigned)atoi(argv[3]), atof(argv[4]), false, 0);
	if (argc == 4 && !strcmp(argv[1], "probe"))
		return run_clients(argv[2], 1, 0, true, (unsigned)atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3]);
	fprintf(stderr, "usage: load rps SOCK CLIENTS SECONDS | probe SOCK INTERVAL_MS | "
			"serve SOCK BODY\n");
	return 2;
}
