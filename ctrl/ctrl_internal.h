/* ctrl/ctrl_internal.h — what server.c (sockets, libmicrohttpd, the loop)
 * and routes.c (the route table and its handlers) share.
 *
 * routes.c knows nothing of libmicrohttpd: a request reaches it as a
 * struct ctrl_req (caller, method, path, body) and leaves as a struct
 * ctrl_resp (status, JSON text, Allow header). That keeps every handler
 * testable and fuzzable without sockets (test/fuzz/ctrl_fuzz.c). */
#ifndef CAIRN_CTRL_INTERNAL_H
#define CAIRN_CTRL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/json.h"
#include "ctrl.h"

/* Request bodies are buffered up to this; more is 413. (Object uploads of
 * issue 4 stream instead: CTRL_BODY_STREAM.) */
#define CTRL_BODY_MAX (64 * 1024)
/* Every JSON response is built in one buffer of this size (one thread, and
 * libmicrohttpd copies a response when it is queued). Worst case: the
 * container list with long failure reasons. Overflow is a 500. */
#define CTRL_RESP_MAX (256 * 1024)
/* One path segment captured by a "*" in a route pattern. */
#define CTRL_PARAM_MAX 128
#define CTRL_MAX_PARAMS 2
/* Request-controlled text quoted in messages and logs is cut here. */
#define CTRL_ECHO_MAX 80
/* "GET, HEAD, POST, PUT, DELETE" and room to spare. */
#define CTRL_ALLOW_MAX 64

enum ctrl_caller_kind {
	CTRL_CALLER_ADMIN,     /* the admin socket, peer uid 0 */
	CTRL_CALLER_CONTAINER, /* a container's own socket */
};

/* Who is calling is decided by the socket a request came through (and, on
 * the admin socket, SO_PEERCRED): never by anything in the request. */
struct ctrl_caller {
	enum ctrl_caller_kind kind;
	const char *name; /* the container's name; "" for admin */
};

/* Who may call a route (bit mask in struct ctrl_route.who). Issue 4 adds
 * role bits (CTRL_WHO_MGMT: containers whose signed revision grants `mgmt`). */
enum {
	CTRL_WHO_ADMIN = 1u << 0,
	CTRL_WHO_CONTAINER = 1u << 1, /* any container, through its own socket */
};

/* What a route does with a request body. */
enum ctrl_body {
	CTRL_BODY_NONE, /* read (at most CTRL_BODY_MAX) and ignored */
	CTRL_BODY_JSON, /* buffered (at most CTRL_BODY_MAX), given to the handler */
	/* issue 4: CTRL_BODY_STREAM, handed to the handler chunk by chunk */
};

struct ctrl_req {
	const struct ctrl_caller *caller;
	const char *method;
	const char *path; /* percent-decoded by libmicrohttpd, no query */
	char params[CTRL_MAX_PARAMS][CTRL_PARAM_MAX + 1]; /* "*" segments */
	unsigned nparams;
	const char *body; /* CTRL_BODY_JSON routes only; NULL otherwise */
	size_t body_len;
};

struct ctrl_resp {
	unsigned status;
	struct jw w; /* over the ctrl's response buffer */
	char allow[CTRL_ALLOW_MAX]; /* 405: the Allow header, else "" */
};

struct ctrl;
typedef void (*ctrl_handler)(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs);

/* One row of the route table (routes.c). The first row whose method and
 * pattern match serves the request. Patterns are literal segments and "*"
 * for exactly one non-empty segment (at most CTRL_PARAM_MAX bytes). */
struct ctrl_route {
	const char *method;
	const char *pattern;
	unsigned who;      /* CTRL_WHO_* */
	bool self;         /* about the caller's own container: needs a container socket */
	enum ctrl_body body;
	ctrl_handler fn;
};

struct ctrl_sock;

struct ctrl {
	struct loop *loop;
	struct runtime *rt;
	unsigned max_conns;
	unsigned conn_timeout_s;
	bool has_revision;
	uint64_t revision;
	struct ctrl_sock *socks; /* the admin socket and every container socket */
	unsigned running;        /* > 0 while inside MHD_run(): no daemon may be stopped */
	char *resp_buf;          /* CTRL_RESP_MAX bytes */
	size_t resp_cap;
};

/* ---- routes.c ---- */

/* `s` as it may appear in an error message or a log line: printable ASCII
 * only (the JSON stays valid UTF-8, a log line stays one line), cut at
 * CTRL_ECHO_MAX with "...". Returns out. */
const char *ctrl_printable(char out[CTRL_ECHO_MAX + 4], const char *s);

/* Point rs at c's response buffer: status 200, empty body. */
void ctrl_resp_init(struct ctrl *c, struct ctrl_resp *rs);
/* Replace whatever rs holds with {"error": msg, "field": field}. */
void ctrl_resp_error(struct ctrl_resp *rs, unsigned status, const char *field, const char *fmt,
		     ...) _printf_(4, 5);
/* Close the JSON text (a 500 if it overflowed) and end it with a newline.
 * Afterwards rs->w.buf holds rs->w.len bytes to send. */
void ctrl_resp_finish(struct ctrl_resp *rs);

/* Find the route for rq->method and rq->path and fill rq->params. NULL with
 * rs set to 404, or 405 with rs->allow, when there is none. */
const struct ctrl_route *ctrl_route_match(struct ctrl_req *rq, struct ctrl_resp *rs);
/* May rq->caller call route r? false with rs set to 400 or 403 if not. */
bool ctrl_route_allowed(const struct ctrl_route *r, const struct ctrl_req *rq,
			struct ctrl_resp *rs);
/* match + allowed + body cap + handler: one whole request, no sockets. */
void ctrl_dispatch(struct ctrl *c, struct ctrl_req *rq, struct ctrl_resp *rs);

#endif
