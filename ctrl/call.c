/* ctrl/call.c — one request from its head to its answer, without sockets:
 * route, caller, body (buffered, counted or streamed) and handler. The
 * server (request.c) drives it as bytes arrive; ctrl_dispatch() drives it
 * in one go for tests and the fuzz target.
 *
 * Buffered bodies are charged to one budget for the whole ctrl
 * (CTRL_BUFFER_BUDGET): a few large uploads at a time, never one per
 * connection. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"

static size_t body_max(const struct ctrl_route *r)
{
	return r->body == CTRL_BODY_JSON && r->body_max ? r->body_max : CTRL_BODY_MAX;
}

static void too_large(struct ctrl_resp *rs, size_t max)
{
	ctrl_resp_error(rs, 413, "", "request body larger than %zu bytes", max);
}

/* Checks that need only the head. */
static bool head_ok(const struct ctrl_route *r, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (rq->query_overflow) {
		ctrl_resp_error(rs, 400, "query", "more than %d query arguments", CTRL_MAX_QUERY);
		return false;
	}
	if (r->body == CTRL_BODY_STREAM) {
		if (rq->content_length >= 0)
			return true;
		ctrl_resp_error(rs, 411, "Content-Length",
				"this upload needs a Content-Length (chunked bodies are refused)");
		return false;
	}
	if (rq->content_length > (int64_t)body_max(r)) {
		too_large(rs, body_max(r));
		return false;
	}
	return true;
}

bool ctrl_call_begin(struct ctrl *c, struct ctrl_call *call, struct ctrl_req *rq,
		     struct ctrl_resp *rs)
{
	*call = (struct ctrl_call){0};
	const struct ctrl_route *r = ctrl_route_match(rq, rs);
	if (!r || !ctrl_route_allowed(r, rq, rs) || !head_ok(r, rq, rs))
		return false;
	call->route = r;
	call->max = body_max(r);
	call->declared = rq->content_length; /* <= max: head_ok said so */
	if (r->body != CTRL_BODY_STREAM)
		return true;
	call->stream = r->stream->begin(c, rq, rs);
	return call->stream != NULL;
}

/* Grow the buffer to hold `need` bytes, within the route's cap and the
 * ctrl's budget. A declared length is allocated at once. */
static bool body_grow(struct ctrl *c, struct ctrl_call *call, size_t need, struct ctrl_resp *rs)
{
	size_t cap = call->cap ? call->cap : call->declared > 0 ? (size_t)call->declared : 4096;
	while (cap < need)
		cap *= 2;
	if (cap > call->max)
		cap = call->max;
	if (cap - call->charged > CTRL_BUFFER_BUDGET - c->buffered) {
		ctrl_resp_error(rs, 503, "",
				"too many large requests at once (%zu bytes buffered); retry later",
				c->buffered);
		return false;
	}
	char *b = realloc(call->body, cap);
	if (!b) {
		ctrl_resp_error(rs, 503, "", "out of memory for the request body");
		return false;
	}
	c->buffered += cap - call->charged;
	call->charged = cap;
	call->body = b;
	call->cap = cap;
	return true;
}

bool ctrl_call_data(struct ctrl *c, struct ctrl_call *call, const char *data, size_t n,
		    struct ctrl_resp *rs)
{
	const struct ctrl_route *r = call->route;
	if (r->body == CTRL_BODY_STREAM)
		return r->stream->data(c, call->stream, data, n, rs);
	if (n > call->max - call->len) {
		call->too_large = true;
		too_large(rs, call->max);
		return false;
	}
	if (r->body == CTRL_BODY_NONE) {
		call->len += n; /* counted, not kept */
		return true;
	}
	if (call->len + n > call->cap && !body_grow(c, call, call->len + n, rs))
		return false;
	memcpy(call->body + call->len, data, n);
	call->len += n;
	return true;
}

void ctrl_call_end(struct ctrl *c, struct ctrl_call *call, struct ctrl_req *rq,
		   struct ctrl_resp *rs)
{
	const struct ctrl_route *r = call->route;
	if (r->body == CTRL_BODY_STREAM) {
		void *st = call->stream;
		call->stream = NULL;
		r->stream->end(c, st, rs);
		return;
	}
	rq->body = r->body == CTRL_BODY_JSON ? call->body : NULL;
	rq->body_len = r->body == CTRL_BODY_JSON ? call->len : 0;
	if (rq->body == NULL && r->body == CTRL_BODY_JSON)
		rq->body = "";
	r->fn(c, rq, rs);
}

void ctrl_call_release(struct ctrl *c, struct ctrl_call *call)
{
	if (call->stream && call->route)
		call->route->stream->abort(c, call->stream);
	call->stream = NULL;
	free(call->body);
	call->body = NULL;
	c->buffered -= call->charged;
	call->charged = 0;
}

void ctrl_dispatch(struct ctrl *c, struct ctrl_req *rq, struct ctrl_resp *rs)
{
	struct ctrl_call call;
	const char *body = rq->body;
	size_t len = rq->body_len;
	if (ctrl_call_begin(c, &call, rq, rs)) {
		/* two pieces, as a socket would deliver them */
		size_t half = len / 2;
		if ((half == 0 || ctrl_call_data(c, &call, body, half, rs)) &&
		    (len - half == 0 || ctrl_call_data(c, &call, body + half, len - half, rs)))
			ctrl_call_end(c, &call, rq, rs);
	}
	ctrl_call_release(c, &call);
}
