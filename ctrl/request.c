/* ctrl/request.c — libmicrohttpd's access handler: from a request head to
 * its answer, through ctrl_call_* (call.c), which knows nothing of MHD.
 *
 * libmicrohttpd calls the handler once when the head is complete, once per
 * piece of body, and once more when the body is done. Everything that does
 * not need the body (caller, route, who may call it, declared size, an
 * upload's admission) is decided at the first call, so a refused request
 * never has its body read into memory (a small one is read and dropped
 * before the answer, see refuse()).
 *
 * A failure in the middle of a body (a chunked body passing its cap, a full
 * disk during an upload) cannot be answered at once: libmicrohttpd 0.9.75
 * refuses a response before the body is complete (it closes the connection
 * instead). The answer is kept, the rest of the body read and dropped
 * (nothing is kept, nothing written), and the answer sent at its end. An
 * upload's body is bounded by its declared length; a chunked one is
 * dropped for at most CTRL_DROP_MAX more bytes, then the connection is
 * closed without an answer. */
#define _GNU_SOURCE /* struct ucred */
#define LOG_MODULE "ctrl"
#include <microhttpd.h>

#include "ctrl_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../lib/log.h"
#include "../lib/util.h"

#define CTRL_DROP_MAX (1024 * 1024)

/* One request between its head and its completion. */
struct ctrl_reqstate {
	struct ctrl_req rq;
	struct ctrl_call call;
	bool failed;       /* the answer is in `kept`; the rest of the body is dropped */
	uint64_t dropped;  /* bytes of body dropped since */
	uint64_t drop_max; /* more than this: close without an answer */
	struct ctrl_resp kept;
	char kept_buf[2048]; /* an error object always fits (ERR_MSG_MAX + field) */
};

static const char *sock_label(const struct ctrl_sock *s)
{
	return s->caller.kind == CTRL_CALLER_ADMIN ? "admin" : s->name;
}

enum MHD_Result ctrl_respond_json(struct ctrl_sock *s, struct MHD_Connection *conn,
				  struct ctrl_resp *rs)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(rs->w.len, rs->w.buf, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	enum MHD_Result r =
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (r == MHD_YES && rs->allow[0])
		r = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rs->allow);
	if (r == MHD_YES)
		r = MHD_queue_response(conn, rs->status, resp);
	MHD_destroy_response(resp);
	(void)s;
	return r;
}

static enum MHD_Result respond(struct ctrl_sock *s, struct MHD_Connection *conn,
			       struct ctrl_resp *rs, const char *method, const char *url)
{
	char m[CTRL_ECHO_MAX + 4], u[CTRL_ECHO_MAX + 4];
	ctrl_resp_finish(rs);
	log_debug("%s: %s %s -> %u", sock_label(s), ctrl_printable(m, method),
		  ctrl_printable(u, url), rs->status);
	if (rs->log)
		return ctrl_follow_queue(s, conn, rs);
	return ctrl_respond_json(s, conn, rs);
}

/* The admin socket serves uid 0 only. SO_PEERCRED holds the credentials of
 * the process that called connect(), fixed for the connection's life. */
static bool peer_is_root(struct MHD_Connection *conn, struct ctrl_resp *rs)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    len != sizeof(cred)) {
		ctrl_resp_error(rs, 403, "", "cannot tell who the caller is (SO_PEERCRED)");
		return false;
	}
	if (cred.uid == 0)
		return true;
	ctrl_resp_error(rs, 403, "", "the admin socket serves root only, not uid %u",
			(unsigned)cred.uid);
	return false;
}

/* The declared Content-Length, -1 if none (or a chunked body). libmicrohttpd
 * has already refused a malformed value; an absurd one reads as huge. */
static int64_t content_length(struct MHD_Connection *conn)
{
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te || !v)
		return -1;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (end == v)
		return -1;
	return errno == ERANGE || n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct ctrl_req *rq = cls;
	(void)kind;
	if (rq->nquery == CTRL_MAX_QUERY) {
		rq->query_overflow = true;
		return MHD_NO;
	}
	rq->query[rq->nquery++] = (struct ctrl_kv){key, value};
	return MHD_YES;
}

/* Keep the finished answer rs in st, to send once the body is in; drop at
 * most `drop_max` more bytes of body meanwhile (more: close). */
static void keep_answer(struct ctrl_reqstate *st, struct ctrl_resp *rs, uint64_t drop_max)
{
	ctrl_resp_finish(rs);
	st->failed = true;
	st->drop_max = drop_max;
	st->kept = *rs;
	jw_init_fixed(&st->kept.w, st->kept_buf, sizeof(st->kept_buf));
	st->kept.w.len = rs->w.len < sizeof(st->kept_buf) ? rs->w.len : sizeof(st->kept_buf) - 1;
	memcpy(st->kept_buf, rs->w.buf, st->kept.w.len);
}

/* A refusal from the head alone. A small body (or a chunked one, up to
 * CTRL_DROP_MAX) is read and dropped first, then the answer goes: closing
 * on unread bytes would make the kernel reset the connection, and the
 * client would never see why it was refused. A large declared body is
 * answered at once (the connection then closes). */
static enum MHD_Result refuse(struct ctrl_sock *s, struct MHD_Connection *conn,
			      struct ctrl_reqstate *st, struct ctrl_resp *rs, void **con_cls)
{
	int64_t len = st->rq.content_length;
	bool chunked = len < 0 && MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (!rs->log && (chunked || (len > 0 && len <= CTRL_BODY_MAX))) {
		keep_answer(st, rs, chunked ? CTRL_DROP_MAX : (uint64_t)len);
		*con_cls = st;
		return MHD_YES;
	}
	enum MHD_Result r = respond(s, conn, rs, st->rq.method, st->rq.path);
	free(st);
	return r;
}

static enum MHD_Result req_begin(struct ctrl_sock *s, struct MHD_Connection *conn,
				 const char *url, const char *method, void **con_cls)
{
	struct ctrl *c = s->ctrl;
	struct ctrl_conn *k = ctrl_conn_slot(conn);
	if (k)
		k->in_request = true;
	struct ctrl_reqstate *st = calloc(1, sizeof(*st));
	if (!st)
		return MHD_NO;
	st->rq = (struct ctrl_req){.caller = &s->caller, .method = method, .path = url,
				   .content_length = content_length(conn)};
	struct ctrl_resp rs;
	ctrl_resp_init(c, &rs);
	if (s->caller.kind == CTRL_CALLER_ADMIN && !peer_is_root(conn, &rs))
		return refuse(s, conn, st, &rs, con_cls);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &st->rq);
	if (!ctrl_call_begin(c, &st->call, &st->rq, &rs)) {
		ctrl_call_release(c, &st->call);
		return refuse(s, conn, st, &rs, con_cls);
	}
	*con_cls = st;
	return MHD_YES;
}

/* A piece of body; an error ends the call and is kept for the end. */
static enum MHD_Result req_data(struct ctrl_sock *s, struct ctrl_reqstate *st, const char *data,
				size_t n)
{
	struct ctrl *c = s->ctrl;
	if (st->failed) {
		st->dropped += n;
		return st->dropped <= st->drop_max ? MHD_YES : MHD_NO;
	}
	struct ctrl_resp rs;
	ctrl_resp_init(c, &rs);
	if (ctrl_call_data(c, &st->call, data, n, &rs))
		return MHD_YES;
	/* an upload's body is bounded by its declared length, a chunked one not */
	bool stream = st->call.route->body == CTRL_BODY_STREAM;
	ctrl_call_release(c, &st->call); /* an upload leaves nothing behind */
	keep_answer(st, &rs, stream ? UINT64_MAX : CTRL_DROP_MAX);
	return MHD_YES;
}

enum MHD_Result ctrl_mhd_request(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct ctrl_sock *s = cls;
	struct ctrl_reqstate *st = *con_cls;
	(void)version;
	if (!st)
		return req_begin(s, conn, url, method, con_cls);
	if (*upload_size > 0) {
		size_t n = *upload_size;
		*upload_size = 0;
		return req_data(s, st, upload, n);
	}
	if (st->failed) {
		char m[CTRL_ECHO_MAX + 4], u[CTRL_ECHO_MAX + 4];
		log_debug("%s: %s %s -> %u (%llu bytes of body dropped)", sock_label(s),
			  ctrl_printable(m, method), ctrl_printable(u, url), st->kept.status,
			  (unsigned long long)st->dropped);
		return ctrl_respond_json(s, conn, &st->kept);
	}
	struct ctrl_resp rs;
	ctrl_resp_init(s->ctrl, &rs);
	ctrl_call_end(s->ctrl, &st->call, &st->rq, &rs);
	return respond(s, conn, &rs, method, url);
}

void ctrl_mhd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			enum MHD_RequestTerminationCode toe)
{
	struct ctrl_sock *s = cls;
	struct ctrl_reqstate *st = *con_cls;
	(void)toe;
	if (st) {
		ctrl_call_release(s->ctrl, &st->call); /* aborts an unfinished upload */
		free(st);
		*con_cls = NULL;
	}
	struct ctrl_conn *k = ctrl_conn_slot(conn);
	if (k) {
		k->in_request = false;
		k->since = now_ns();
	}
}

/* libmicrohttpd's own messages: mostly about misbehaving clients, so debug. */
void ctrl_mhd_log(void *cls, const char *fmt, va_list ap)
{
	const struct ctrl_sock *s = cls;
	char msg[256], clean[CTRL_ECHO_MAX + 4];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("%s: libmicrohttpd: %s", s->path, ctrl_printable(clean, msg));
}
