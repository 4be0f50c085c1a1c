/* tools/ctl/api.c — one request to the control API, its exit status and
 * its JSON answer.
 *
 * Exit statuses: a 2xx answer with valid JSON (or no body) is CTL_OK; an
 * answer with another status is the device refusing (CTL_FAILED, its
 * {"error", "field"} body printed); no answer, a malformed one, or one too
 * large is CTL_UNREACHABLE; a local failure (out of memory, stdout closed) is
 * CTL_FAILED. */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/cleanup.h"

#define TOKENS_MAX (1 << 20)
#define TEXT_MAX 1024

int ctl_fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("cairnctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void reply_free(struct reply *rp)
{
	free(rp->body);
	free(rp->tok);
	memset(rp, 0, sizeof(*rp));
}

/* A failed request as an exit status, its message in e. */
static int transport_fail(const struct ctl *c, const struct http *h, struct err *e)
{
	if (h->fault == HTTP_FAULT_LOCAL)
		return CTL_FAILED;
	err_prefix(e, "cannot reach the device at %s", c->socket_path);
	return CTL_UNREACHABLE;
}

/* Tokens for `len` bytes of JSON: each token takes at least one byte and a
 * separator, so len/2 + 2 always suffice (bounded by TOKENS_MAX). */
static int parse_reply(struct reply *rp, struct err *e)
{
	size_t want = rp->len / 2 + 2;
	int max = want > TOKENS_MAX ? TOKENS_MAX : (int)want;
	rp->tok = calloc((size_t)max, sizeof(*rp->tok));
	if (!rp->tok)
		return err_set(e, ENOMEM, "out of memory");
	int r = jp_parse(&rp->jp, rp->body, rp->len, rp->tok, max, e);
	if (r < 0) {
		free(rp->tok);
		rp->tok = NULL;
	}
	return r;
}

int api_send(const struct ctl *c, const char *method, const char *target,
	     const struct http_body *b, struct reply *rp, struct err *e)
{
	struct http h;
	struct http_resp r;
	memset(rp, 0, sizeof(*rp));
	http_init(&h, c->socket_path, c->timeout_ms);
	if (http_request(&h, method, target, b, NULL, NULL, &r, e) < 0)
		return transport_fail(c, &h, e);
	rp->status = r.status;
	rp->body = TAKE_PTR(r.body);
	rp->len = r.body_len;
	if (rp->len == 0)
		return CTL_OK;
	if (parse_reply(rp, e) < 0 && rp->status >= 200 && rp->status < 300) {
		err_prefix(e, "%s %s: the device's answer is not valid JSON", method, target);
		reply_free(rp);
		return CTL_UNREACHABLE;
	}
	err_clear(e);
	return CTL_OK;
}

int api_try(const struct ctl *c, const char *method, const char *target, const char *body,
	    size_t len, struct reply *rp, struct err *e)
{
	struct http_body b = {.type = "application/json", .buf = body, .len = len, .fd = -1};
	return api_send(c, method, target, body ? &b : NULL, rp, e);
}

int api_call_any(const struct ctl *c, const char *method, const char *target, const char *body,
		 size_t len, struct reply *rp)
{
	struct err e = ERR_INIT;
	int code = api_try(c, method, target, body, len, rp, &e);
	if (code != CTL_OK)
		ctl_fail(code, "%s", e.msg);
	return code;
}

int api_call(const struct ctl *c, const char *method, const char *target, const char *body,
	     size_t len, struct reply *rp)
{
	int code = api_call_any(c, method, target, body, len, rp);
	if (code == CTL_OK && (rp->status < 200 || rp->status >= 300)) {
		code = api_refused(rp);
		reply_free(rp);
	}
	return code;
}

/* A body that is not our JSON error (libmicrohttpd answers some malformed
 * requests itself, in HTML): its first line, printable. */
static void first_line(const struct reply *rp, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; rp->body && i < rp->len && n + 1 < cap; i++) {
		char ch = rp->body[i];
		if (ch == '\n' || ch == '\r')
			break;
		out[n++] = ch >= 0x20 && ch < 0x7f ? ch : '?';
	}
	out[n] = '\0';
}

int api_refused(const struct reply *rp)
{
	char msg[TEXT_MAX], field[256];
	if (rp->tok && jp_is(&rp->jp, 0, JSMN_OBJECT) &&
	    jv_str(&rp->jp, 0, "error", msg, sizeof(msg)) == 0) {
		if (jv_str(&rp->jp, 0, "field", field, sizeof(field)) == 0 && field[0])
			return ctl_fail(CTL_FAILED, "%s (field %s)", msg, field);
		return ctl_fail(CTL_FAILED, "%s", msg);
	}
	first_line(rp, msg, 200);
	return ctl_fail(CTL_FAILED, "the device answered HTTP %u%s%s", rp->status,
			msg[0] ? ": " : "", msg);
}

void api_print_json(const struct reply *rp)
{
	if (!rp->body || rp->len == 0)
		return;
	fwrite(rp->body, 1, rp->len, stdout);
	if (rp->body[rp->len - 1] != '\n')
		fputc('\n', stdout);
}

/* ---------------- reading values ---------------- */

/* Terminal-safe: control characters (escape sequences from a hostile
 * device included) become '?'. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int jv_str(const struct jp *p, int obj, const char *key, char *out, size_t cap)
{
	int i = jp_get(p, obj, key);
	out[0] = '\0';
	if (i < 0 || !jp_is(p, i, JSMN_STRING))
		return -ENOENT;
	jv_text(p, i, out, cap);
	return 0;
}

bool jv_uint(const struct jp *p, int obj, const char *key, uint64_t *out)
{
	long long v;
	int i = jp_get(p, obj, key);
	if (i < 0 || jp_int(p, i, 0, CTL_MAX_NUMBER, &v) < 0)
		return false;
	*out = (uint64_t)v;
	return true;
}

void jv_text(const struct jp *p, int i, char *out, size_t cap)
{
	const jsmntok_t *t = &p->tok[i];
	size_t n = (size_t)(t->end - t->start);
	if (t->type == JSMN_STRING && jp_str(p, i, out, cap, NULL) == 0) {
		printable(out);
		return;
	}
	/* not a string, or a string longer than cap: as written, cut */
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p->js + t->start, n);
	out[n] = '\0';
	printable(out);
}

int api_stream(const struct ctl *c, const char *target, int body_timeout_ms, http_sink_fn sink,
	       void *ctx)
{
	struct http h;
	struct http_resp r;
	struct err e = ERR_INIT;
	http_init(&h, c->socket_path, c->timeout_ms);
	h.body_timeout_ms = body_timeout_ms;
	if (http_request(&h, "GET", target, NULL, sink, ctx, &r, &e) < 0) {
		if (h.fault == HTTP_FAULT_LOCAL && e.code == EPIPE)
			return CTL_OK;
		return ctl_fail(transport_fail(c, &h, &e), "%s", e.msg);
	}
	if (r.status >= 200 && r.status < 300) {
		http_resp_free(&r);
		return CTL_OK;
	}
	struct reply rp = {.status = r.status, .body = TAKE_PTR(r.body), .len = r.body_len};
	if (rp.len > 0 && parse_reply(&rp, &e) < 0)
		err_clear(&e); /* shown as text by api_refused */
	int code = api_refused(&rp);
	reply_free(&rp);
	return code;
}
