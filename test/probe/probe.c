/* test/probe/probe.c — a tiny static program that lives inside test container
 * images and answers questions from inside the container (see README.md).
 *
 *   probe STEP [ARGS...] [-- STEP [ARGS...]]...
 *
 * Steps run in order; the first that fails ends the program with its status.
 * Self-contained on purpose (no cairn lib/): it is linked statically and
 * copied into images next to busybox. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/cairn/ctrl.sock"
#define HTTP_MAX_RESPONSE (4u << 20)
#define HTTP_TIMEOUT_S 30

extern char **environ;

struct step {
	const char *name;
	int min_args, max_args; /* max_args < 0: unbounded */
	int (*run)(int argc, char **argv);
	const char *usage;
};

static int usage(void);

/* ---------------- helpers ---------------- */

static int fail(const char *what)
{
	fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
	return 1;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end || errno || v > max) {
		fprintf(stderr, "probe: %s: not a number in 0..%lu\n", s, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* As a container's init, orphans are reparented to us: reap them so a long
 * sleep does not leave zombies behind. Never blocks. */
static void reap_zombies(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void on_stop_signal(int sig)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "probe: signal %d, exiting\n", sig);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
		/* nothing to do: we are leaving anyway */
	}
	_exit(0);
}

/* A container's init ignores signals it has no handler for (the kernel
 * protects namespace init), so stop signals get a handler: exit 0. */
static void set_stop_signals(void (*handler)(int))
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGPWR, SIGHUP};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* ---------------- info ---------------- */

/* prefix + text on one line: newlines inside text become spaces. */
static void print_line(const char *prefix, const char *text)
{
	fputs(prefix, stdout);
	for (const char *p = text; *p; p++)
		putchar(*p == '\n' ? ' ' : *p); /* one record per line, always */
	putchar('\n');
}

static void info_mounts(void)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f) {
		print_line("mounts.error=", strerror(errno));
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned i = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		printf("mount.%u=%s\n", i++, line);
	}
	printf("mounts=%u\n", i);
	free(line);
	fclose(f);
}

static int cmd_info(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	char host[256] = "";
	char cwd[PATH_MAX] = "";
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "(error: %s)", strerror(errno));
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "(error: %s)", strerror(errno));
	printf("pid=%d\nppid=%d\n", (int)getpid(), (int)getppid());
	printf("uid=%u\ngid=%u\neuid=%u\n", (unsigned)getuid(), (unsigned)getgid(),
	       (unsigned)geteuid());
	print_line("hostname=", host);
	print_line("cwd=", cwd);
	info_mounts();
	for (char **e = environ; e && *e; e++)
		print_line("env.", *e); /* "env.KEY=VALUE" */
	return 0;
}

/* ---------------- simple steps ---------------- */

static int cmd_exit(int argc, char **argv)
{
	(void)argc;
	unsigned long code;
	if (parse_uint(argv[1], 255, &code) < 0)
		return 2;
	fflush(NULL);
	exit((int)code);
}

static int cmd_sleep(int argc, char **argv)
{
	(void)argc;
	char *end;
	errno = 0;
	double s = strtod(argv[1], &end);
	if (*end || errno || !(s >= 0) || s > 1e7) {
		fprintf(stderr, "probe: sleep %s: not a number of seconds\n", argv[1]);
		return 2;
	}
	long left = (long)(s * 1000.0);
	while (left > 0) {
		long chunk = left < 100 ? left : 100;
		sleep_ms(chunk);
		left -= chunk;
		reap_zombies();
	}
	return 0;
}

static int cmd_crash(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* A real fault, not kill(): the kernel delivers a fault's SIGSEGV even
	 * to a namespace init, where a self-sent signal would be ignored. */
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	signal(SIGSEGV, SIG_DFL);
	fflush(NULL);
	volatile int *volatile nowhere = NULL;
	*nowhere = 1;
	return 1;
}

static int cmd_ignore_term(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	set_stop_signals(SIG_IGN);
	return 0;
}

static int cmd_echo(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		printf("%s%s", i > 1 ? " " : "", argv[i]);
	putchar('\n');
	return 0;
}

static int cmd_spawn_orphans(int argc, char **argv)
{
	(void)argc;
	unsigned long n;
	if (parse_uint(argv[1], 1000, &n) < 0)
		return 2;
	fflush(NULL);
	for (unsigned long i = 0; i < n; i++) {
		pid_t child = fork();
		if (child < 0)
			return fail("fork");
		if (child == 0) {
			pid_t grandchild = fork();
			if (grandchild == 0) {
				sleep_ms(200); /* outlive the parent: an orphan */
				_exit(0);
			}
			if (grandchild > 0)
				printf("orphan=%d\n", (int)grandchild);
			fflush(stdout);
			_exit(grandchild > 0 ? 0 : 1);
		}
		int st;
		while (waitpid(child, &st, 0) < 0 && errno == EINTR)
			;
	}
	return 0;
}

static int cmd_write(int argc, char **argv)
{
	(void)argc;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(argv[1]);
	size_t len = strlen(argv[2]);
	const char *p = argv[2];
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int rc = fail(argv[1]);
			close(fd);
			return rc;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return fail(argv[1]);
	return 0;
}

static int cmd_cat(int argc, char **argv)
{
	(void)argc;
	FILE *f = fopen(argv[1], "re");
	if (!f)
		return fail(argv[1]);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	int bad = ferror(f);
	fclose(f);
	return bad ? fail(argv[1]) : 0;
}

static int cmd_run(int argc, char **argv)
{
	(void)argc;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "probe: run %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid");
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* ---------------- http over a unix socket ---------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > HTTP_MAX_RESPONSE) {
		errno = EFBIG;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int http_connect(void)
{
	const char *path = getenv("CAIRN_SOCKET");
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "probe: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket");
	struct timeval tv = {HTTP_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "probe: connect %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Value of header `name` inside the header block, or NULL. */
static const char *header_get(const char *hdrs, const char *end, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	for (const char *l = strstr(hdrs, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (h + nlen + 1 > end || strncasecmp(h, name, nlen) || h[nlen] != ':')
			continue;
		const char *v = h + nlen + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *ve = strstr(v, "\r\n");
		*vlen = ve ? (size_t)(ve - v) : strlen(v);
		return v;
	}
	return NULL;
}

/* Decode a chunked body in place; returns the decoded length or -1. */
static long dechunk(char *body, size_t len)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(body + in, &end, 16);
		if (end == body + in || errno)
			return -1;
		char *crlf = strstr(end, "\r\n"); /* skips chunk extensions */
		if (!crlf)
			return -1;
		in = (size_t)(crlf - body) + 2;
		if (n == 0)
			return (long)out;
		if (n > len - in || len - in - n < 2)
			return -1;
		memmove(body + out, body + in, n);
		out += n;
		in += n + 2;
	}
}

/* Parse the whole response in b; print "STATUS\nBODY". */
static int http_print(struct buf *b)
{
	int status;
	if (b->len < 12 || strncmp(b->p, "HTTP/1.", 7) || sscanf(b->p + 9, "%3d", &status) != 1) {
		fprintf(stderr, "probe: http: malformed response (%zu bytes)\n", b->len);
		return 1;
	}
	char *hend = strstr(b->p, "\r\n\r\n");
	if (!hend) {
		fprintf(stderr, "probe: http: response headers incomplete\n");
		return 1;
	}
	char *body = hend + 4;
	size_t blen = b->len - (size_t)(body - b->p);
	size_t vlen;
	const char *te = header_get(b->p, hend + 2, "Transfer-Encoding", &vlen);
	if (te && vlen == 7 && !strncasecmp(te, "chunked", 7)) {
		long n = dechunk(body, blen);
		if (n < 0) {
			fprintf(stderr, "probe: http: bad chunked body\n");
			return 1;
		}
		blen = (size_t)n;
	}
	printf("%d\n", status);
	fwrite(body, 1, blen, stdout);
	if (blen > 0 && body[blen - 1] != '\n')
		putchar('\n');
	return status >= 200 && status < 300 ? 0 : 1;
}

static int http_request(const char *method, const char *path, const char *body)
{
	size_t blen = body ? strlen(body) : 0;
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			 "User-Agent: cairn-probe\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 method, path, blen);
	if (n < 0 || (size_t)n >= sizeof(head)) {
		fprintf(stderr, "probe: http: request line too long\n");
		return 2;
	}
	int fd = http_connect();
	if (fd < 0)
		return 1;
	struct buf resp = {0};
	int rc = 1;
	if (send_all(fd, head, (size_t)n) < 0 || send_all(fd, body ? body : "", blen) < 0) {
		fail("http: send");
		goto out;
	}
	char chunk[8192];
	ssize_t got;
	while ((got = recv(fd, chunk, sizeof(chunk), 0)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 || buf_add(&resp, chunk, (size_t)got) < 0) {
			fail("http: receive");
			goto out;
		}
	}
	rc = resp.p ? http_print(&resp) : (fprintf(stderr, "probe: http: empty response\n"), 1);
out:
	free(resp.p);
	close(fd);
	return rc;
}

static int cmd_http(int argc, char **argv)
{
	return http_request(argv[1], argv[2], argc > 3 ? argv[3] : NULL);
}

static int cmd_ready(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return http_request("POST", "/v1/containers/self/ready", NULL);
}

/* ---------------- main ---------------- */

static const struct step steps[] = {
	{"info", 0, 0, cmd_info, "info"},
	{"exit", 1, 1, cmd_exit, "exit N"},
	{"sleep", 1, 1, cmd_sleep, "sleep SECONDS"},
	{"crash", 0, 0, cmd_crash, "crash"},
	{"spawn-orphans", 1, 1, cmd_spawn_orphans, "spawn-orphans N"},
	{"http", 2, 3, cmd_http, "http METHOD PATH [BODY]"},
	{"ready", 0, 0, cmd_ready, "ready"},
	{"write", 2, 2, cmd_write, "write FILE TEXT"},
	{"cat", 1, 1, cmd_cat, "cat FILE"},
	{"echo", 0, -1, cmd_echo, "echo TEXT..."},
	{"run", 1, -1, cmd_run, "run CMD [ARGS...]"},
	{"ignore-term", 0, 0, cmd_ignore_term, "ignore-term"},
};

static int usage(void)
{
	fprintf(stderr, "usage: probe STEP [ARGS...] [-- STEP [ARGS...]]...\nsteps:\n");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		fprintf(stderr, "  %s\n", steps[i].usage);
	return 2;
}

static const struct step *step_find(const char *name)
{
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (!strcmp(steps[i].name, name))
			return &steps[i];
	return NULL;
}

/* Check the whole chain before running any of it: a typo in the last step
 * must not surface after the first one already ran. */
static int chain_check(int argc, char **argv)
{
	int start = 0;
	for (int i = 0; i <= argc; i++) {
		if (i < argc && strcmp(argv[i], "--"))
			continue;
		if (i == start)
			return usage();
		const struct step *s = step_find(argv[start]);
		int nargs = i - start - 1;
		if (!s) {
			fprintf(stderr, "probe: unknown step '%s'\n", argv[start]);
			return usage();
		}
		if (nargs < s->min_args || (s->max_args >= 0 && nargs > s->max_args)) {
			fprintf(stderr, "probe: usage: probe %s\n", s->usage);
			return 2;
		}
		start = i + 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0); /* a log pipe sees each line at once */
	set_stop_signals(on_stop_signal);
	if (argc < 2 || chain_check(argc - 1, argv + 1))
		return argc < 2 ? usage() : 2;
	int start = 1;
	for (int i = 1; i <= argc; i++) {
		if (i < argc && strcmp(argv[i], "--"))
			continue;
		if (i < argc)
			argv[i] = NULL; /* the step sees a NULL-terminated argv */
		int rc = step_find(argv[start])->run(i - start, argv + start);
		fflush(NULL);
		if (rc)
			return rc;
		start = i + 1;
	}
	return 0;
}
