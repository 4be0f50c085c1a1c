/* ctrl/ctrl_internal.h — what the files of ctrl/ share.
 *
 * Two halves. The route side (routes.c, call.c, h_*.c, logfile.c) knows
 * nothing of libmicrohttpd: a request reaches it as a struct ctrl_req
 * (caller, method, path, query, body) and leaves as a struct ctrl_resp
 * (status, JSON text, Allow header, or a log file to stream). That keeps
 * every handler testable and fuzzable without sockets (test/fuzz/ctrl_fuzz.c
 * compiles the route side in). The server side (server.c, request.c,
 * follow.c) owns the sockets, libmicrohttpd and the loop.
 *
 * Route-side files are #included together by the fuzz target: their static
 * names must not collide. */
#ifndef CAIRN_CTRL_INTERNAL_H
#define CAIRN_CTRL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/json.h"
#include "../lib/loop.h"
#include "ctrl.h"

/* Request bodies are buffered up to this; more is 413. */
#define CTRL_BODY_MAX (64 * 1024)
/* PUT /v1/revisions/REV only: a revision.json (REV_MAX_DOC, 1 MiB) and a
 * revision.sig (SIG_MAX_FILE, 64 KiB) as JSON strings, with room for the
 * escaping of the document's quotes and newlines. */
#define CTRL_REV_BODY_MAX (2560 * 1024)
/* PUT /v1/keys: keys.json and keys.sig JSON-escaped (x2), and the rest */
#define CTRL_KEYS_BODY_MAX (2 * (KEYS_MAX_DOC + SIG_MAX_FILE) + 4096)
/* Every buffered body in flight, all sockets together: a request whose
 * body would pass it is 503 (a few large uploads at once, not hundreds). */
#define CTRL_BUFFER_BUDGET (8u * 1024 * 1024)
/* Every JSON response is built in one buffer of this size (one thread, and
 * libmicrohttpd copies a response when it is queued). Overflow is a 500. */
#define CTRL_RESP_MAX (256 * 1024)
/* One path segment captured by a "*" in a route pattern. */
#define CTRL_PARAM_MAX 128
#define CTRL_MAX_PARAMS 2
/* Query arguments looked at per request; more is 400. */
#define CTRL_MAX_QUERY 8
/* Request-controlled text quoted in messages and logs is cut here. */
#define CTRL_ECHO_MAX 80
/* "GET, HEAD, POST, PUT, DELETE" and room to spare. */
#define CTRL_ALLOW_MAX 64
/* User metadata: per value, keys, and all values together (the listing of
 * every key must fit the response buffer even fully escaped). */
#define CTRL_META_VALUE_MAX 4096
#define CTRL_META_MAX_KEYS 64
#define CTRL_META_TOTAL_MAX (32 * 1024)
/* GET /v1/logs/NAME?tail=N: N at most. */
#define CTRL_TAIL_MAX 100000
/* Log followers (?follow=1) per socket; more is 503. Polled this often. */
#define CTRL_ADMIN_FOLLOWERS 8
#define CTRL_CTR_FOLLOWERS 2
#define CTRL_FOLLOW_POLL_MS 200

enum ctrl_caller_kind {
	CTRL_CALLER_ADMIN,     /* the admin socket, peer uid 0 */
	CTRL_CALLER_CONTAINER, /* a container's own socket */
};

/* Who is calling is decided by the socket a request came through (and, on
 * the admin socket, SO_PEERCRED): never by anything in the request. */
struct ctrl_caller {
	enum ctrl_caller_kind kind;
	const char *name; /* the container's name; "" for admin */
	unsigned roles;   /* CTRL_ROLE_* granted to the container by its revision */
};

/* Who may call a route (bit mask in struct ctrl_route.who). */
enum {
	CTRL_WHO_ADMIN = 1u << 0, /* the admin socket (uid 0) */
	CTRL_WHO_MGMT = 1u << 1,  /* a container socket whose container holds `mgmt` */
	CTRL_WHO_SELF = 1u << 2,  /* a container about itself: a "self" route, or NAME = its name */
	CTRL_WHO_ANY = 1u << 3,   /* every container socket */
};

/* What a route does with a request body. */
enum ctrl_body {
	CTRL_BODY_NONE,   /* read (at most CTRL_BODY_MAX) and ignored */
	CTRL_BODY_JSON,   /* buffered (at most the route's body_max), given to the handler */
	CTRL_BODY_STREAM, /* handed to the route's stream ops chunk by chunk; Content-Length required */
};

struct ctrl_kv {
	const char *key, *value;
};

struct ctrl_req {
	const struct ctrl_caller *caller;
	const char *method;
	const char *path; /* percent-decoded by libmicrohttpd, no query */
	char params[CTRL_MAX_PARAMS][CTRL_PARAM_MAX + 1]; /* "*" segments */
	unsigned nparams;
	struct ctrl_kv query[CTRL_MAX_QUERY]; /* decoded query arguments */
	unsigned nquery;
	bool query_overflow;    /* more than CTRL_MAX_QUERY arguments */
	int64_t content_length; /* declared; -1 if none (absent or chunked) */
	const char *body;       /* CTRL_BODY_JSON routes, at the end only */
	size_t body_len;
};

/* GET /v1/logs/NAME streams a file instead of JSON. */
struct ctrl_logfile {
	int fd;       /* -1: no file (yet); a follower waits for it */
	uint64_t off; /* next byte to send */
	uint64_t end; /* without follow: stop here (the size when asked) */
	bool follow;
	dev_t dev; /* of fd */
	ino_t ino;
	char path[4096];
};

struct ctrl_resp {
	unsigned status;
	struct jw w; /* over the ctrl's response buffer */
	char allow[CTRL_ALLOW_MAX]; /* 405: the Allow header, else "" */
	struct ctrl_logfile *log;   /* set: send this file (text/plain), not w */
};

struct ctrl;
struct ctrl_sock;
typedef void (*ctrl_handler)(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);

/* A CTRL_BODY_STREAM route. begin runs when the head is complete and
 * returns the stream's state (NULL: answer rs now, no body is read); data
 * gets each chunk as it arrives (false: answer rs now, the rest is not
 * read); end gets the state once the whole body arrived and frees it;
 * abort frees it when the request ends any other way (client gone). */
struct ctrl_stream_ops {
	void *(*begin)(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
	bool (*data)(struct ctrl *c, void *st, const char *buf, size_t n, struct ctrl_resp *rs);
	void (*end)(struct ctrl *c, void *st, struct ctrl_resp *rs);
	void (*abort)(struct ctrl *c, void *st);
};

/* One row of the route table (routes.c). The first row whose method and
 * pattern match serves the request. Patterns are literal segments and "*"
 * for exactly one non-empty segment (at most CTRL_PARAM_MAX bytes). */
struct ctrl_route {
	const char *method;
	const char *pattern;
	unsigned who; /* CTRL_WHO_* */
	/* CTRL_ROUTE_SELF: about the caller itself, needs a container socket
	 * (400 on admin). CTRL_ROUTE_NAME: the first "*" is a container name,
	 * "self" standing for the caller's own (400 on admin); CTRL_WHO_SELF
	 * then means "when NAME is the caller's". */
	enum { CTRL_ROUTE_PLAIN, CTRL_ROUTE_SELF, CTRL_ROUTE_NAME } kind;
	enum ctrl_body body;
	size_t body_max; /* CTRL_BODY_JSON: 0 means CTRL_BODY_MAX */
	ctrl_handler fn; /* NONE and JSON routes */
	const struct ctrl_stream_ops *stream; /* STREAM routes */
};

/* One request between its head and its completion (route side). */
struct ctrl_call {
	const struct ctrl_route *route;
	char *body; /* CTRL_BODY_JSON routes */
	size_t len, cap, max;
	int64_t declared; /* Content-Length, -1 if none */
	bool too_large;
	size_t charged; /* bytes of c->buffered this call holds */
	void *stream;   /* CTRL_BODY_STREAM routes, between begin and end */
};

struct ctrl {
	struct loop *loop;
	struct runtime *rt;
	struct trails *tr;
	struct storage *storage;
	struct ctrl_hooks hooks;
	unsigned max_conns;
	unsigned conn_timeout_s;
	bool has_revision;
	uint64_t revision;
	struct ctrl_sock *socks; /* the admin socket and every container socket */
	unsigned running;        /* > 0 while inside MHD_run(): no daemon may be stopped */
	char *resp_buf;          /* CTRL_RESP_MAX bytes */
	size_t resp_cap;
	size_t buffered; /* bytes of request bodies buffered now (CTRL_BUFFER_BUDGET) */
	/* log followers: one timer polls every suspended one */
	struct loop_timer follow_timer;
	unsigned nsuspended;
	/* reboot / poweroff run from the loop after the answer is queued */
	struct loop_timer cmd_timer;
	void (*cmd)(void *data, const char *why);
	char cmd_why[128];
};

/* ---------------- route side ---------------- */

/* routes.c */
/* `s` as it may appear in an error message or a log line: printable ASCII
 * only (the JSON stays valid UTF-8, a log line stays one line), cut at
 * CTRL_ECHO_MAX with "...". Returns out. */
const char *ctrl_printable(char out[CTRL_ECHO_MAX + 4], const char *s);
/* Point rs at c's response buffer: status 200, empty body. */
void ctrl_resp_init(struct ctrl *c, struct ctrl_resp *rs);
/* Replace whatever rs holds with {"error": msg, "field": field}. */
void ctrl_resp_error(struct ctrl_resp *rs, unsigned status, const char *field, const char *fmt,
		     ...) _printf_(4, 5);
/* The same from an error of a lower layer: its message and field. */
void ctrl_resp_err(struct ctrl_resp *rs, unsigned status, const struct err *e);
/* Close the JSON text (a 500 if it overflowed) and end it with a newline.
 * Afterwards rs->w.buf holds rs->w.len bytes to send. */
void ctrl_resp_finish(struct ctrl_resp *rs);
/* Drop a log body rs still holds (an answer that will not be sent). */
void ctrl_resp_release(struct ctrl_resp *rs);
/* Find the route for rq->method and rq->path and fill rq->params. NULL with
 * rs set to 404, or 405 with rs->allow, when there is none. */
const struct ctrl_route *ctrl_route_match(struct ctrl_req *rq, struct ctrl_resp *rs);
/* May rq->caller call route r? A NAME of "self" becomes the caller's own
 * name first. false with rs set to 400 or 403 if not. */
bool ctrl_route_allowed(const struct ctrl_route *r, struct ctrl_req *rq, struct ctrl_resp *rs);
/* The whole table, for tests that walk it. */
const struct ctrl_route *ctrl_routes(size_t *n);
/* Value of query argument `key` ("" for a bare `?key`), NULL if absent. */
const char *ctrl_query(const struct ctrl_req *rq, const char *key);

/* call.c: one request through route, caller, body and handler. begin: the
 * head is in (false: answer rs now). data: a piece of the body (false:
 * answer rs now, read no more). end: the body is complete, rs is the
 * answer. release: always, last (frees the body, aborts an open stream). */
bool ctrl_call_begin(struct ctrl *c, struct ctrl_call *call, struct ctrl_req *rq,
		     struct ctrl_resp *rs);
bool ctrl_call_data(struct ctrl *c, struct ctrl_call *call, const char *data, size_t n,
		    struct ctrl_resp *rs);
void ctrl_call_end(struct ctrl *c, struct ctrl_call *call, struct ctrl_req *rq,
		   struct ctrl_resp *rs);
void ctrl_call_release(struct ctrl *c, struct ctrl_call *call);
/* All of the above for a request whose body is in rq->body (tests, fuzz). */
void ctrl_dispatch(struct ctrl *c, struct ctrl_req *rq, struct ctrl_resp *rs);

/* Shared by the handlers (routes.c). */
/* NAME parameter i: a valid name, else false with rs 400 naming `field`. */
bool ctrl_param_name(const struct ctrl_req *rq, unsigned i, const char *field,
		     struct ctrl_resp *rs);
/* REV parameter i: a revision number, else false with rs 400. */
bool ctrl_param_rev(const struct ctrl_req *rq, unsigned i, uint64_t *rev, struct ctrl_resp *rs);
/* Container `name` in the running revision: its index, or -1 with rs 404. */
int ctrl_find_ctr(struct ctrl *c, const char *name, struct ctrl_resp *rs);
/* Who is calling, for logs and hook reasons: "admin" or "container NAME". */
const char *ctrl_caller_label(const struct ctrl_caller *who, char *buf, size_t cap);

/* Handlers (h_runtime.c, h_update.c, h_meta.c, logfile.c). */
void ctrl_h_status(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_containers(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_container(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_self(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_self_ready(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_ctr_start(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_ctr_stop(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_ctr_restart(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_logs(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_revisions(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_revision(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_revision_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_revision_run(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_progress(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_keys(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_keys_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_object_head(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
extern const struct ctrl_stream_ops ctrl_object_put;
void ctrl_h_meta_list(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_meta_get(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_meta_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_meta_delete(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_device_list(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_device_get(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_reboot(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_poweroff(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_gc(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);
void ctrl_h_poll_hub(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);

/* logfile.c: reading a log body. */
void ctrl_logfile_free(struct ctrl_logfile *lf);
/* Up to max bytes at lf->off into buf: > 0 bytes, 0 nothing now (a
 * follower: wait), -1 the end (not following), -2 an error. A follower
 * whose file was rotated away moves to the new file once the old one is
 * read to its end. */
ssize_t ctrl_logfile_read(struct ctrl_logfile *lf, char *buf, size_t max);
/* A follower has something to send: bytes past lf->off, or a new file. */
bool ctrl_logfile_changed(struct ctrl_logfile *lf);

/* ---------------- server side ---------------- */

/* One accepted connection (server.c): since when it waits for a request
 * head, for the head deadline and for eviction at the connection cap. */
struct ctrl_conn {
	int fd; /* -1: free slot */
	ino_t ino;
	bool in_request; /* head complete, response not yet done */
	bool cut;        /* shut down (late head, evicted), MHD yet to notice */
	uint64_t since;  /* waiting for a request head since (CLOCK_MONOTONIC ns) */
};

struct ctrl_follower; /* follow.c */
struct MHD_Daemon;
struct MHD_Connection;

/* One listening socket and its libmicrohttpd daemon. */
struct ctrl_sock {
	struct ctrl *ctrl;
	struct ctrl_sock *next;
	struct ctrl_caller caller; /* everyone on this socket */
	char name[NAME_MAX_LEN + 1];
	char path[108]; /* sizeof(sun_path) */
	bool bound;     /* path is our socket file: dev/ino say which */
	dev_t dev;
	ino_t ino;
	struct MHD_Daemon *mhd;
	struct loop_io io;
	struct loop_timer timer;
	bool dead;
	bool rerun; /* a connection closed: MHD_run() again, see server.c */
	struct ctrl_conn *conns;
	unsigned nconns; /* slots, = the socket's connection limit */
	unsigned evicted; /* connections cut at the cap (for tests and logs) */
	struct ctrl_follower *followers;
	unsigned nfollowers, max_followers;
};

/* server.c */
struct ctrl_conn *ctrl_conn_slot(struct MHD_Connection *conn);

/* follow.c */
/* The poll timer (data: the ctrl): resume followers with news, or whose
 * client left. */
void ctrl_follow_tick(struct loop_timer *t);
/* Resume every suspended follower of s (before its daemon stops); their
 * readers end the stream. */
void ctrl_follow_release(struct ctrl_sock *s);

/* Files that include <microhttpd.h> first also get these. */
#ifdef MHD_VERSION
#include <stdarg.h>
/* request.c: libmicrohttpd's callbacks (cls: the struct ctrl_sock). */
enum MHD_Result ctrl_mhd_request(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls);
void ctrl_mhd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			enum MHD_RequestTerminationCode toe);
void ctrl_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Queue rs (finished) as the JSON answer on conn. */
enum MHD_Result ctrl_respond_json(struct ctrl_sock *s, struct MHD_Connection *conn,
				  struct ctrl_resp *rs);
/* follow.c: answer on conn with rs->log (taken) as a streamed text/plain
 * body, or 503 when s has its maximum of followers. */
enum MHD_Result ctrl_follow_queue(struct ctrl_sock *s, struct MHD_Connection *conn,
				  struct ctrl_resp *rs);
#endif

#endif
