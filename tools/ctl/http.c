/* tools/ctl/http.c — a small blocking HTTP/1.1 client over a unix socket.
 *
 * One request per connection ("Connection: close"): a command line tool
 * sends a handful of requests, and a fresh connection never meets a server
 * that closed an idle keep-alive connection under it.
 *
 * Everything the device sends is hostile input: the response head is capped
 * (HTTP_HEAD_MAX), a buffered body is capped (http.max_body), chunk sizes and
 * Content-Length are parsed strictly, and every wait is bounded by
 * http.timeout_ms of silence. The socket is non-blocking after connect; every
 * wait is a poll(2).
 *
 * Request bodies are sent from memory or, for objects, from a file with
 * sendfile(2). While a body is being sent the socket is also watched for
 * input: a device that answers early (403, 409, 507) stops the upload at
 * once instead of after the last byte. Large bodies also ask first with
 * "Expect: 100-continue" (waiting at most EXPECT_WAIT_MS for a server that
 * ignores it). */
#define _GNU_SOURCE /* O_PATH */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/util.h"

#define IN_CAP (64 * 1024)
#define CHUNK_LINE_MAX 1024
#define SEND_STEP (1u << 20) /* bytes per sendfile call: progress granularity */
#define EXPECT_WAIT_MS 1000
#define REQ_HEAD_MAX 1024

struct framing {
	bool chunked, has_length, no_body;
	uint64_t length;
};

#define PEER_ERR(h, e, code, ...) ((h)->fault = HTTP_FAULT_PEER, err_set(e, code, __VA_ARGS__))
#define LOCAL_ERR(h, e, code, ...) ((h)->fault = HTTP_FAULT_LOCAL, err_set(e, code, __VA_ARGS__))

void http_init(struct http *h, const char *socket_path, int timeout_ms)
{
	memset(h, 0, sizeof(*h));
	h->socket_path = socket_path;
	h->timeout_ms = timeout_ms;
	h->body_timeout_ms = timeout_ms;
	h->max_body = HTTP_JSON_MAX;
	h->fd = -1;
}

void http_close(struct http *h)
{
	closep(&h->fd);
	h->fd = -1;
	free(h->in);
	h->in = NULL;
	h->in_start = h->in_end = 0;
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---------------- connecting ---------------- */

/* sun_path holds 107 bytes: a longer path is reached through its directory,
 * opened O_PATH, as /proc/self/fd/N/NAME. */
static int sock_addr(struct http *h, struct sockaddr_un *sa, int *dirfd, struct err *e)
{
	const char *path = h->socket_path;
	sa->sun_family = AF_UNIX;
	if (str_fmt(sa->sun_path, sizeof(sa->sun_path), "%s", path) == 0)
		return 0;
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1])
		return LOCAL_ERR(h, e, ENAMETOOLONG, "socket path %s is too long", path);
	_cleanup_free_ char *dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!dir)
		return LOCAL_ERR(h, e, ENOMEM, "out of memory");
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return PEER_ERR(h, e, errno, "%s: %s", dir, strerror(errno));
	if (str_fmt(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
		    slash + 1) < 0)
		return LOCAL_ERR(h, e, ENAMETOOLONG, "socket name %s is too long", slash + 1);
	return 0;
}

/* connect(2) on a unix socket waits (full backlog) up to SO_SNDTIMEO. */
static int http_connect(struct http *h, struct err *e)
{
	struct sockaddr_un sa = {0};
	_cleanup_close_ int dirfd = -1;
	int r = sock_addr(h, &sa, &dirfd, e);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return LOCAL_ERR(h, e, errno, "socket: %s", strerror(errno));
	if (h->timeout_ms > 0) {
		struct timeval tv = {h->timeout_ms / 1000, (h->timeout_ms % 1000) * 1000};
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno == EAGAIN ? ETIMEDOUT : errno;
		return PEER_ERR(h, e, err, "connect: %s", strerror(err));
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return LOCAL_ERR(h, e, errno, "fcntl: %s", strerror(errno));
	h->fd = TAKE_FD(fd);
	return 0;
}

/* ---------------- waiting, reading ---------------- */

/* poll for `events`; the revents, or -ETIMEDOUT after timeout_ms of silence
 * (timeout_ms < 0: wait forever). */
static int wait_fd(struct http *h, short events, int timeout_ms, struct err *e)
{
	struct pollfd p = {h->fd, events, 0};
	for (;;) {
		int n = poll(&p, 1, timeout_ms);
		if (n > 0)
			return p.revents;
		if (n == 0)
			return PEER_ERR(h, e, ETIMEDOUT, "no answer from the device within %d s",
					timeout_ms / 1000);
		if (errno != EINTR)
			return LOCAL_ERR(h, e, errno, "poll: %s", strerror(errno));
	}
}

static size_t in_len(const struct http *h)
{
	return h->in_end - h->in_start;
}

/* Read more into the buffer: bytes read, 0 at end of stream. */
static int fill(struct http *h, int timeout_ms, struct err *e)
{
	if (h->in_start > 0) {
		memmove(h->in, h->in + h->in_start, in_len(h));
		h->in_end -= h->in_start;
		h->in_start = 0;
	}
	if (h->in_end == IN_CAP)
		return PEER_ERR(h, e, EPROTO, "answer line longer than %d bytes", IN_CAP);
	for (;;) {
		ssize_t n = recv(h->fd, h->in + h->in_end, IN_CAP - h->in_end, 0);
		if (n >= 0) {
			h->in_end += (size_t)n;
			return (int)n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return PEER_ERR(h, e, errno, "read: %s", strerror(errno));
		int r = wait_fd(h, POLLIN, timeout_ms, e);
		if (r < 0)
			return r;
	}
}

/* The next CRLF-terminated line (without CRLF) of at most `max` bytes,
 * consumed from the buffer. */
static int read_line(struct http *h, size_t max, int timeout_ms, const char **line, size_t *len,
		     struct err *e)
{
	for (;;) {
		char *s = h->in + h->in_start;
		char *nl = memchr(s, '\n', in_len(h));
		if (nl) {
			if (nl == s || nl[-1] != '\r')
				return PEER_ERR(h, e, EPROTO, "malformed answer: bare LF");
			*line = s;
			*len = (size_t)(nl - 1 - s);
			h->in_start += (size_t)(nl - s) + 1;
			return 0;
		}
		if (in_len(h) > max)
			return PEER_ERR(h, e, EPROTO, "answer line longer than %zu bytes", max);
		int n = fill(h, timeout_ms, e);
		if (n < 0)
			return n;
		if (n == 0)
			return PEER_ERR(h, e, ECONNRESET,
					"the device closed the connection before answering");
	}
}

/* ---------------- the response head ---------------- */

/* Strict decimal (Content-Length): digits only, no sign, below 2^63. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

static int parse_status(struct http *h, const char *s, size_t n, unsigned *status, struct err *e)
{
	if (n < 12 || (memcmp(s, "HTTP/1.1 ", 9) && memcmp(s, "HTTP/1.0 ", 9)))
		return PEER_ERR(h, e, EPROTO, "not an HTTP/1.x answer");
	uint64_t v;
	if (!parse_u64(s + 9, 3, &v) || v < 100 || (n > 12 && s[12] != ' '))
		return PEER_ERR(h, e, EPROTO, "malformed HTTP status line");
	*status = (unsigned)v;
	return 0;
}

static int header_field(struct http *h, const char *s, size_t n, struct framing *f,
			struct err *e)
{
	const char *colon = memchr(s, ':', n);
	if (!colon || colon == s || s[0] == ' ' || s[0] == '\t')
		return PEER_ERR(h, e, EPROTO, "malformed header line in the answer");
	size_t nlen = (size_t)(colon - s);
	const char *v = colon + 1, *end = s + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vlen = (size_t)(end - v);
	if (nlen == 14 && !strncasecmp(s, "content-length", 14)) {
		uint64_t len;
		if (!parse_u64(v, vlen, &len) || (f->has_length && len != f->length))
			return PEER_ERR(h, e, EPROTO, "malformed Content-Length in the answer");
		f->has_length = true;
		f->length = len;
	} else if (nlen == 17 && !strncasecmp(s, "transfer-encoding", 17)) {
		if (vlen != 7 || strncasecmp(v, "chunked", 7))
			return PEER_ERR(h, e, EPROTO, "unsupported Transfer-Encoding in the answer");
		f->chunked = true;
	}
	return 0;
}

/* Status line and headers (HTTP_HEAD_MAX in all). */
static int read_head(struct http *h, unsigned *status, struct framing *f, struct err *e)
{
	const char *line;
	size_t len, total = 0;
	memset(f, 0, sizeof(*f));
	int r = read_line(h, HTTP_HEAD_MAX, h->timeout_ms, &line, &len, e);
	if (r < 0 || (r = parse_status(h, line, len, status, e)) < 0)
		return r;
	for (total = len;; total += len + 2) {
		if (total > HTTP_HEAD_MAX)
			return PEER_ERR(h, e, EPROTO, "answer head larger than %d bytes",
					HTTP_HEAD_MAX);
		r = read_line(h, HTTP_HEAD_MAX, h->timeout_ms, &line, &len, e);
		if (r < 0)
			return r;
		if (len == 0)
			break;
		r = header_field(h, line, len, f, e);
		if (r < 0)
			return r;
	}
	if (f->chunked && f->has_length)
		return PEER_ERR(h, e, EPROTO, "answer has both Content-Length and chunked encoding");
	return 0;
}

/* ---------------- the response body ---------------- */

struct body_out {
	struct http_resp *r;
	http_sink_fn sink;
	void *ctx;
	int timeout_ms;
};

static int deliver(struct http *h, struct body_out *o, const char *p, size_t n, struct err *e)
{
	if (o->sink) {
		int r = o->sink(o->ctx, p, n);
		return r < 0 ? LOCAL_ERR(h, e, -r, "write: %s", strerror(-r)) : 0;
	}
	struct http_resp *r = o->r;
	if (n > h->max_body - r->body_len)
		return PEER_ERR(h, e, EFBIG, "answer larger than %zu bytes", h->max_body);
	char *nb = realloc(r->body, r->body_len + n + 1);
	if (!nb)
		return LOCAL_ERR(h, e, ENOMEM, "out of memory");
	memcpy(nb + r->body_len, p, n);
	r->body = nb;
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return 0;
}

/* Pass `n` bytes of body on (n = UINT64_MAX: until the device closes). */
static int body_bytes(struct http *h, struct body_out *o, uint64_t n, struct err *e)
{
	while (n > 0) {
		if (in_len(h) == 0) {
			int got = fill(h, o->timeout_ms, e);
			if (got < 0)
				return got;
			if (got == 0 && n == UINT64_MAX)
				return 0;
			if (got == 0)
				return PEER_ERR(h, e, ECONNRESET, "the answer was cut short");
		}
		size_t k = in_len(h) < n ? in_len(h) : (size_t)n;
		int r = deliver(h, o, h->in + h->in_start, k, e);
		if (r < 0)
			return r;
		h->in_start += k;
		if (n != UINT64_MAX)
			n -= k;
	}
	return 0;
}

/* "1a2b[;ext]": hex digits, at most 15 of them (a chunk below 2^60). */
static int chunk_size(struct http *h, const char *s, size_t n, uint64_t *out, struct err *e)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < n && s[i] != ';'; i++) {
		int d = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
			: s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
			: s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
						     : -1;
		if (d < 0 || i >= 15)
			return PEER_ERR(h, e, EPROTO, "malformed chunk size in the answer");
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0)
		return PEER_ERR(h, e, EPROTO, "malformed chunk size in the answer");
	*out = v;
	return 0;
}

static int body_chunked(struct http *h, struct body_out *o, struct err *e)
{
	for (;;) {
		const char *line;
		size_t len;
		uint64_t size = 0;
		int r = read_line(h, CHUNK_LINE_MAX, o->timeout_ms, &line, &len, e);
		if (r < 0 || (r = chunk_size(h, line, len, &size, e)) < 0)
			return r;
		if (size == 0)
			break;
		r = body_bytes(h, o, size, e);
		if (r < 0 || (r = read_line(h, 2, o->timeout_ms, &line, &len, e)) < 0)
			return r;
		if (len != 0)
			return PEER_ERR(h, e, EPROTO, "chunk longer than its declared size");
	}
	for (size_t total = 0;;) { /* trailers, ignored */
		const char *line;
		size_t len;
		int r = read_line(h, CHUNK_LINE_MAX, o->timeout_ms, &line, &len, e);
		if (r < 0)
			return r;
		if (len == 0)
			return 0;
		total += len;
		if (total > HTTP_HEAD_MAX)
			return PEER_ERR(h, e, EPROTO, "answer trailers too large");
	}
}

static int read_body(struct http *h, const struct framing *f, struct body_out *o, struct err *e)
{
	if (f->no_body)
		return 0;
	if (f->chunked)
		return body_chunked(h, o, e);
	return body_bytes(h, o, f->has_length ? f->length : UINT64_MAX, e);
}

/* ---------------- sending ---------------- */

static int send_buf(struct http *h, const char *p, size_t len, struct err *e)
{
	while (len > 0) {
		ssize_t n = send(h->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return PEER_ERR(h, e, errno, "send: %s", strerror(errno));
		if (n < 0) {
			int r = wait_fd(h, POLLOUT, h->timeout_ms, e);
			if (r < 0)
				return r;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send up to `max` more body bytes from offset `off`: bytes sent, or a
 * negative errno (-EAGAIN: socket full). */
static ssize_t send_some(const struct http *h, const struct http_body *b, uint64_t off,
			 size_t max, enum http_fault *fault)
{
	ssize_t n;
	*fault = HTTP_FAULT_PEER;
	if (b->fd < 0) {
		n = send(h->fd, b->buf + off, max, MSG_NOSIGNAL);
	} else {
		off_t o = (off_t)off;
		n = sendfile(h->fd, b->fd, &o, max);
		if (n == 0)
			*fault = HTTP_FAULT_LOCAL; /* the file is shorter than it was */
		if (n < 0 && errno != EAGAIN && errno != EPIPE && errno != ECONNRESET &&
		    errno != EINTR)
			*fault = HTTP_FAULT_LOCAL;
	}
	return n < 0 ? -errno : n;
}

/* The body, watching for an early answer. *early: the device answered (or
 * hung up) before taking all of it; its answer is then read as usual. */
static int send_body(struct http *h, const struct http_body *b, bool *early, struct err *e)
{
	uint64_t total = b->fd >= 0 ? b->size : b->len, sent = 0;
	while (sent < total) {
		int ev = wait_fd(h, POLLOUT | POLLIN, h->timeout_ms, e);
		if (ev < 0)
			return ev;
		if (ev & (POLLIN | POLLHUP | POLLERR)) {
			*early = true;
			return 0;
		}
		enum http_fault fault;
		size_t step = total - sent < SEND_STEP ? (size_t)(total - sent) : SEND_STEP;
		ssize_t n = send_some(h, b, sent, step, &fault);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n == -EPIPE || n == -ECONNRESET) {
			*early = true;
			return 0;
		}
		if (n <= 0) {
			h->fault = fault;
			return err_set(e, n ? (int)-n : EIO, "send body: %s",
				       n ? strerror((int)-n) : "file ended before its size");
		}
		sent += (uint64_t)n;
		if (b->progress)
			b->progress(b->progress_ctx, sent);
	}
	return 0;
}

static int send_head(struct http *h, const char *method, const char *target,
		     const struct http_body *b, struct err *e)
{
	char head[REQ_HEAD_MAX], extra[256] = "";
	if (b) {
		uint64_t len = b->fd >= 0 ? b->size : b->len;
		if (str_fmt(extra, sizeof(extra), "Content-Type: %s\r\nContent-Length: %llu\r\n%s",
			    b->type ? b->type : "application/json", (unsigned long long)len,
			    b->expect_continue ? "Expect: 100-continue\r\n" : "") < 0)
			return LOCAL_ERR(h, e, EINVAL, "request header too long");
	}
	if (str_fmt(head, sizeof(head),
		    "%s %s HTTP/1.1\r\nHost: cairn\r\nUser-Agent: cairnctl\r\n"
		    "Accept: application/json\r\nConnection: close\r\n%s\r\n",
		    method, target, extra) < 0)
		return LOCAL_ERR(h, e, EINVAL, "request target too long: %s", target);
	return send_buf(h, head, strlen(head), e);
}

/* ---------------- one exchange ---------------- */

/* With Expect: 100-continue, a final answer may come instead of the 100:
 * then *answered and the body is never sent. */
static int await_continue(struct http *h, unsigned *status, struct framing *f, bool *answered,
			  struct err *e)
{
	int ev = wait_fd(h, POLLIN, EXPECT_WAIT_MS, e);
	if (ev == -ETIMEDOUT) { /* a server that ignores Expect: send anyway */
		h->fault = HTTP_FAULT_NONE;
		err_clear(e);
		return 0;
	}
	if (ev < 0)
		return ev;
	int r = read_head(h, status, f, e);
	if (r < 0)
		return r;
	*answered = *status >= 200;
	return 0;
}

/* The final answer's head, skipping interim 1xx answers. */
static int final_head(struct http *h, unsigned *status, struct framing *f, struct err *e)
{
	for (;;) {
		int r = read_head(h, status, f, e);
		if (r < 0)
			return r;
		if (*status == 101)
			return PEER_ERR(h, e, EPROTO, "unexpected protocol switch");
		if (*status >= 200)
			return 0;
	}
}

static int exchange(struct http *h, const char *method, const char *target,
		    const struct http_body *b, unsigned *status, struct framing *f,
		    struct http_resp *r, struct err *e)
{
	bool answered = false, early = false;
	int ret = send_head(h, method, target, b, e);
	if (ret < 0)
		return ret;
	if (b && b->expect_continue)
		ret = await_continue(h, status, f, &answered, e);
	if (ret == 0 && b && !answered)
		ret = send_body(h, b, &early, e);
	if (ret < 0)
		return ret;
	r->body_sent = b == NULL || (!answered && !early);
	if (!answered)
		ret = final_head(h, status, f, e);
	if (ret < 0 && early) /* the device hung up without an answer */
		err_prefix(e, "the device stopped reading the request");
	return ret;
}

int http_request(struct http *h, const char *method, const char *target,
		 const struct http_body *body, http_sink_fn sink, void *sink_ctx,
		 struct http_resp *r, struct err *e)
{
	memset(r, 0, sizeof(*r));
	h->fault = HTTP_FAULT_NONE;
	http_close(h);
	h->in = malloc(IN_CAP);
	if (!h->in)
		return LOCAL_ERR(h, e, ENOMEM, "out of memory");
	unsigned status = 0;
	struct framing f;
	int ret = http_connect(h, e);
	if (ret == 0)
		ret = exchange(h, method, target, body, &status, &f, r, e);
	if (ret == 0) {
		f.no_body = !strcmp(method, "HEAD") || status == 204 || status == 304;
		bool stream = sink && status >= 200 && status < 300;
		struct body_out o = {r, stream ? sink : NULL, sink_ctx,
				     stream ? h->body_timeout_ms : h->timeout_ms};
		r->status = status;
		ret = read_body(h, &f, &o, e);
	}
	http_close(h);
	if (ret < 0)
		http_resp_free(r);
	return ret;
}
