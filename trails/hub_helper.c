/* trails/hub_helper.c — the download helper (HUB.md, "The download
 * helper"): a process forked from the orchestrator for one transfer. It
 * keeps the pipe (fd 3) and the staging directory (fd 4), drops every
 * privilege, may write nothing but its own file in staging (uid 65534,
 * RLIMIT_FSIZE, Landlock where the kernel has it), runs one blocking
 * libcurl transfer and reports in records (hub_rec.c). Only _exit from
 * here: the orchestrator's atexit handlers and buffers are not ours.
 *
 * libcurl is not linked into cairn: the helper loads it (dlopen) after it
 * has dropped its privileges, so PID 1 and the orchestrator never map it
 * or the ~30 libraries Debian's build pulls in (TLS stacks, LDAP,
 * Kerberos...), none of their constructors runs as root, and they cost
 * neither start-up time nor resident memory. */
#define _GNU_SOURCE
#define LOG_MODULE "hub-helper"
#define CURL_DISABLE_TYPECHECK /* calls go through pointers */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "hub_internal.h"

#define PIPE_FD 3
#define STAGE_FD 4
#define PROGRESS_EVERY_NS 250000000ull
#define KEEPALIVE_NS 5000000000ull
#define CONNECT_TIMEOUT_S 10
#define LOW_SPEED_BYTES 1024
#define LOW_SPEED_S 30
#define SMALL_TIMEOUT_S 120
#define RECV_BUFFER (512 * 1024)

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.1.0-dev"
#endif

struct xfer {
	const struct hub_job *job;
	CURL *curl;
	int fd;              /* the staging file, -1 for reports */
	uint64_t have;       /* bytes staged before this request */
	uint64_t staged;     /* bytes in the file now */
	uint64_t wire;       /* bytes received (headers and bodies) */
	uint64_t discarded;  /* body bytes of a response that is not kept */
	bool decided, keep;  /* the body's fate, decided at its first byte */
	bool discard_full;   /* a discarded body reached HUB_DISCARD_MAX */
	char etag[HUB_ETAG_MAX + 1];
	char range[128];     /* Content-Range of the final response */
	char fail;
	char text[HUB_REC_TEXT_MAX + 1];
	uint64_t last_staged, last_sent_ns; /* what the last progress record said, when */
};

#define CURL_SONAME "libcurl.so.4"

/* The libcurl calls the helper makes, resolved by curl_load(). */
static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} cu;

/* ---- records ---- */

static void put(char type, const void *payload, size_t n)
{
	uint8_t rec[HUB_REC_MAX];
	size_t len = hub_rec_put(rec, sizeof(rec), type, payload, n);
	if (len && write_all(PIPE_FD, rec, len) < 0)
		_exit(3); /* the orchestrator is gone or stopped listening */
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_progress(struct xfer *x)
{
	uint8_t p[16];
	put_be(p, x->staged, 8);
	put_be(p + 8, x->wire, 8);
	put(HUB_REC_PROGRESS, p, sizeof(p));
	x->last_sent_ns = now_ns();
}

/* Keep the first failure; text made printable and cut to fit. */
static void fail(struct xfer *x, char why, const char *fmt, ...) _printf_(3, 4);
static void fail(struct xfer *x, char why, const char *fmt, ...)
{
	if (x->fail)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->text, sizeof(x->text), fmt, ap);
	va_end(ap);
	for (char *c = x->text; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
	x->fail = why;
}

/* ---- curl callbacks ---- */

static bool header_is(const char *h, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && strncasecmp(h, name, k) == 0 && h[k] == ':';
}

/* value of a header line into out (blanks and CRLF stripped); "" if it does not fit */
static void header_value(const char *h, size_t n, size_t skip, char *out, size_t cap)
{
	const char *v = h + skip;
	size_t len = n - skip;
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	out[0] = '\0';
	if (len < cap && hub_text_printable(v, len)) {
		memcpy(out, v, len);
		out[len] = '\0';
	}
}

static size_t on_header(char *h, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	(void)size; /* always 1 */
	x->wire += n;
	if (n >= 5 && strncmp(h, "HTTP/", 5) == 0) /* a new response: forget the last one's */
		x->etag[0] = x->range[0] = '\0';
	else if (header_is(h, n, "etag"))
		header_value(h, n, 5, x->etag, sizeof(x->etag));
	else if (header_is(h, n, "content-range"))
		header_value(h, n, 14, x->range, sizeof(x->range));
	return n;
}

/* 206 must continue exactly where the file ends. */
static bool range_ok(const struct xfer *x)
{
	char want[128];
	if (str_fmt(want, sizeof(want), "bytes %llu-%llu/%llu", (unsigned long long)x->have,
		    (unsigned long long)(x->job->size - 1), (unsigned long long)x->job->size) < 0)
		return false;
	return strcmp(x->range, want) == 0;
}

/* At the first body byte: keep it (200 pointer, 200/206 object) or drop it. */
static int decide(struct xfer *x)
{
	long code = 0;
	cu.easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
	x->decided = true;
	if (x->job->kind == HUB_JOB_REPORT || (code != 200 && code != 206))
		return 0;
	if (code == 206 && (x->job->kind != HUB_JOB_OBJECT || !range_ok(x))) {
		fail(x, HUB_FAIL_SIZE, "206 with Content-Range '%s', want bytes %llu-", x->range,
		     (unsigned long long)x->have);
		return -1;
	}
	if (code == 200 && x->staged > 0) { /* the whole object again: restart the file */
		if (ftruncate(x->fd, 0) < 0) {
			fail(x, HUB_FAIL_WRITE, "truncate %s: %s", x->job->file, strerror(errno));
			return -1;
		}
		x->staged = 0;
	}
	x->keep = true;
	return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	(void)size;
	x->wire += n;
	if (!x->decided && decide(x) < 0)
		return 0;
	if (!x->keep) {
		x->discarded += n;
		x->discard_full = x->discarded > HUB_DISCARD_MAX;
		return x->discard_full ? 0 : n;
	}
	if (x->staged + n > x->job->size) {
		fail(x, HUB_FAIL_SIZE, "more than the %llu bytes %s", (unsigned long long)x->job->size,
		     x->job->kind == HUB_JOB_OBJECT ? "declared" : "allowed");
		return 0;
	}
	ssize_t w = pwrite(x->fd, buf, n, (off_t)x->staged);
	if (w != (ssize_t)n) { /* RLIMIT_FSIZE, ENOSPC, EIO: never retried */
		fail(x, HUB_FAIL_WRITE, "write %s: %s", x->job->file,
		     w < 0 ? strerror(errno) : "short write");
		return 0;
	}
	x->staged += n;
	return n;
}

static int on_progress(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = data;
	(void)dt, (void)dn, (void)ut, (void)un;
	uint64_t t = now_ns();
	if ((x->staged != x->last_staged && t - x->last_sent_ns >= PROGRESS_EVERY_NS) ||
	    t - x->last_sent_ns >= KEEPALIVE_NS) {
		x->last_staged = x->staged;
		put_progress(x);
	}
	return 0;
}

/* ---- the request ---- */

static struct curl_slist *headers(const struct hub_job *job)
{
	struct curl_slist *h = NULL;
	char line[HUB_TOKEN_MAX + 64];
	if (job->token[0] && str_fmt(line, sizeof(line), "Authorization: Bearer %s", job->token) == 0)
		h = cu.slist_append(h, line);
	if (job->kind == HUB_JOB_DESIRED && job->etag[0] &&
	    str_fmt(line, sizeof(line), "If-None-Match: %s", job->etag) == 0)
		h = cu.slist_append(h, line);
	if (job->kind == HUB_JOB_REPORT) {
		h = cu.slist_append(h, "Content-Type: application/json");
		h = cu.slist_append(h, "Expect:");
	}
	return h;
}

static void set_blob(CURL *c, CURLoption opt, const struct hub_blob *b)
{
	if (!b->data)
		return;
	struct curl_blob blob = {.data = b->data, .len = b->len, .flags = CURL_BLOB_COPY};
	cu.easy_setopt(c, opt, &blob);
}

static void set_tls(CURL *c, const struct hub_job *job)
{
	set_blob(c, CURLOPT_CAINFO_BLOB, &job->ca);
	if (job->cert.data && job->key.data) {
		set_blob(c, CURLOPT_SSLCERT_BLOB, &job->cert);
		cu.easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		set_blob(c, CURLOPT_SSLKEY_BLOB, &job->key);
		cu.easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (job->pin && job->pin[0])
		cu.easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, job->pin);
}

static void set_kind(CURL *c, struct xfer *x)
{
	const struct hub_job *job = x->job;
	char range[32];
	switch (job->kind) {
	case HUB_JOB_OBJECT:
		if (x->have && str_fmt(range, sizeof(range), "%llu-", (unsigned long long)x->have) == 0)
			cu.easy_setopt(c, CURLOPT_RANGE, range); /* copied by libcurl */
		cu.easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)job->size);
		break;
	case HUB_JOB_DESIRED:
		cu.easy_setopt(c, CURLOPT_TIMEOUT, (long)SMALL_TIMEOUT_S);
		cu.easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)job->size);
		break;
	case HUB_JOB_REPORT:
		cu.easy_setopt(c, CURLOPT_TIMEOUT, (long)SMALL_TIMEOUT_S);
		cu.easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
		cu.easy_setopt(c, CURLOPT_POSTFIELDS, job->body);
		cu.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body_len);
		break;
	}
}

static CURL *request(struct xfer *x, struct curl_slist *h, char *errbuf)
{
	CURL *c = cu.easy_init();
	if (!c)
		return NULL;
	cu.easy_setopt(c, CURLOPT_URL, x->job->url);
	cu.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	cu.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	cu.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cu.easy_setopt(c, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
	cu.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	cu.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	cu.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_S);
	cu.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cu.easy_setopt(c, CURLOPT_HTTPHEADER, h);
	cu.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	cu.easy_setopt(c, CURLOPT_HEADERDATA, x);
	cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	cu.easy_setopt(c, CURLOPT_WRITEDATA, x);
	cu.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	cu.easy_setopt(c, CURLOPT_XFERINFODATA, x);
	cu.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	cu.easy_setopt(c, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER); /* fewer, larger writes */
	set_tls(c, x->job);
	set_kind(c, x);
	x->curl = c;
	return c;
}

static int put_fail(const struct xfer *x)
{
	char rec[1 + HUB_REC_TEXT_MAX];
	rec[0] = x->fail;
	size_t n = strlen(x->text);
	memcpy(rec + 1, x->text, n);
	put(HUB_REC_FAIL, rec, n + 1);
	return 1;
}

/* After the transfer: status, ETag, last progress, then D or X. */
static int finish(struct xfer *x, CURLcode res, const char *errbuf)
{
	long code = 0;
	cu.easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 100 && code <= 599) {
		uint8_t p[4];
		put_be(p, (uint64_t)code, 4);
		put(HUB_REC_HTTP, p, sizeof(p));
		if (code == 200 && x->job->kind == HUB_JOB_DESIRED && x->etag[0])
			put(HUB_REC_ETAG, x->etag, strlen(x->etag));
	}
	put_progress(x);
	if (!x->fail && res == CURLE_FILESIZE_EXCEEDED)
		fail(x, HUB_FAIL_SIZE, "the response announces more than %llu bytes",
		     (unsigned long long)x->job->size);
	if (!x->fail && res != CURLE_OK && !(res == CURLE_WRITE_ERROR && x->discard_full))
		fail(x, HUB_FAIL_NETWORK, "%s%s%s", cu.easy_strerror(res), errbuf[0] ? ": " : "",
		     errbuf);
	if (x->fail)
		return put_fail(x);
	put(HUB_REC_DONE, NULL, 0);
	return 0;
}

/* The staging file: the pointer starts empty, an object continues. */
static int open_file(struct xfer *x)
{
	if (x->job->kind == HUB_JOB_REPORT)
		return 0;
	int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
	x->fd = openat(STAGE_FD, x->job->file, flags | (x->job->kind == HUB_JOB_DESIRED ? O_TRUNC : 0),
		       0600);
	struct stat st;
	if (x->fd < 0 || fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fail(x, HUB_FAIL_WRITE, "open %s: %s", x->job->file,
		     x->fd < 0 ? strerror(errno) : "not a regular file");
		return -1;
	}
	x->have = x->staged = (uint64_t)st.st_size;
	if (x->have >= x->job->size) { /* complete but refused, or too long: start over */
		if (ftruncate(x->fd, 0) < 0) {
			fail(x, HUB_FAIL_WRITE, "truncate %s: %s", x->job->file, strerror(errno));
			return -1;
		}
		x->have = x->staged = 0;
	}
	return 0;
}

/* dlopen libcurl and resolve every call; on failure `x` says why. */
static int curl_load(struct xfer *x)
{
	void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fail(x, HUB_FAIL_NETWORK, "cannot load libcurl: %s", dlerror());
		return -1;
	}
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(f) {"curl_" #f, offsetof(__typeof__(cu), f)}
		SYM(global_init),  SYM(easy_init),     SYM(easy_setopt),
		SYM(easy_perform), SYM(easy_getinfo),  SYM(easy_cleanup),
		SYM(easy_strerror), SYM(slist_append), SYM(slist_free_all),
#undef SYM
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f) {
			fail(x, HUB_FAIL_NETWORK, "libcurl has no %s", syms[i].name);
			return -1;
		}
		memcpy((char *)&cu + syms[i].off, &f, sizeof(f));
	}
	return 0;
}

static int transfer(const struct hub_job *job)
{
	struct xfer x = {.job = job, .fd = -1};
	char errbuf[CURL_ERROR_SIZE] = "";
	if (open_file(&x) == 0 && curl_load(&x) == 0 &&
	    cu.global_init(CURL_GLOBAL_DEFAULT) != 0)
		fail(&x, HUB_FAIL_NETWORK, "libcurl could not start");
	struct curl_slist *h = x.fail ? NULL : headers(job);
	if (!x.fail && !request(&x, h, errbuf))
		fail(&x, HUB_FAIL_NETWORK, "libcurl could not start");
	if (x.fail)
		return put_fail(&x);
	put_progress(&x);
	CURLcode res = cu.easy_perform(x.curl);
	int r = finish(&x, res, errbuf);
	cu.easy_cleanup(x.curl);
	cu.slist_free_all(h);
	return r;
}

/* ---- becoming nobody ---- */

static void reset_signals(void)
{
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* fails harmlessly for KILL, STOP, glibc-reserved */
	signal(SIGXFSZ, SIG_IGN); /* past RLIMIT_FSIZE: EFBIG, not a core dump */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* pipe -> 3, staging -> 4, /dev/null -> 0, everything else above 2 closed. */
static int place_fds(int pipefd, int stagefd)
{
	int hp = fcntl(pipefd, F_DUPFD_CLOEXEC, 10), hs = fcntl(stagefd, F_DUPFD_CLOEXEC, 10);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (hp < 0 || hs < 0 || null < 0)
		return -errno;
	if (dup2(null, 0) < 0 || dup3(hp, PIPE_FD, O_CLOEXEC) < 0 || dup3(hs, STAGE_FD, O_CLOEXEC) < 0)
		return -errno;
	if (close_range(STAGE_FD + 1, ~0U, 0) < 0)
		for (int fd = STAGE_FD + 1; fd < 65536; fd++)
			close(fd);
	return 0;
}

/* Writes only beneath the staging directory (reads stay open: DNS, CA
 * store). Best effort: a kernel without Landlock still has the uid. */
static void landlock(void)
{
	const __u64 write_rights =
		LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
		LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
		LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
		LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	struct landlock_ruleset_attr attr = {.handled_access_fs = write_rights};
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return;
	struct landlock_path_beneath_attr beneath = {
		.allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_FILE |
				  LANDLOCK_ACCESS_FS_MAKE_REG,
		.parent_fd = STAGE_FD,
	};
	if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) == 0 &&
	    syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		log_warn("landlock: %s", strerror(errno));
	close(rs);
}

static int drop_privileges(uint64_t fsize)
{
	if (setgroups(0, NULL) < 0 || setresgid(HUB_GID, HUB_GID, HUB_GID) < 0 ||
	    setresuid(HUB_UID, HUB_UID, HUB_UID) < 0)
		return -errno;
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		return -EPERM; /* root must be out of reach */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || fchdir(STAGE_FD) < 0)
		return -errno;
	struct rlimit core = {0, 0}, fs = {fsize, fsize};
	if (setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_FSIZE, &fs) < 0)
		return -errno;
	landlock();
	return 0;
}

static _Noreturn void helper_main(const struct hub_job *job, int pipefd, int stagefd,
				  pid_t parent)
{
	reset_signals();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(4);
	(void)prctl(PR_SET_NAME, "cairn-hub");
	int r = place_fds(pipefd, stagefd);
	if (r == 0)
		r = drop_privileges(job->kind == HUB_JOB_REPORT ? 0 : job->size);
	if (r < 0) {
		char rec[HUB_REC_TEXT_MAX + 1];
		rec[0] = HUB_FAIL_WRITE;
		if (str_fmt(rec + 1, sizeof(rec) - 1, "helper set-up: %s", strerror(-r)) < 0)
			rec[1] = '\0';
		put(HUB_REC_FAIL, rec, 1 + strlen(rec + 1));
		_exit(2);
	}
	_exit(transfer(job));
}

int hub_helper_spawn(const struct hub_job *job, int stagefd, pid_t *pid, int *rfd, struct err *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, errno, "helper pipe: %s", strerror(errno));
	pid_t parent = getpid();
	pid_t c = fork();
	if (c < 0) {
		int err = errno;
		close(p[0]);
		close(p[1]);
		return err_set(e, err, "fork helper: %s", strerror(err));
	}
	if (c == 0) {
		close(p[0]);
		helper_main(job, p[1], stagefd, parent);
	}
	close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) { /* the loop must never block on it */
		int err = errno;
		kill(c, SIGKILL);
		close(p[0]);
		return err_set(e, err, "helper pipe: O_NONBLOCK: %s", strerror(err));
	}
	*pid = c;
	*rfd = p[0];
	return 0;
}
