/* ctrl/routes.c — the route table and its handlers. See ctrl/API.md.
 *
 * Every route is one row: method, path pattern, who may call it, what it
 * does with a body, handler. Dispatch order: route (404/405), caller (400
 * for "self" from the admin socket, 403), body cap (413), handler. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* ---------------- responses ---------------- */

void ctrl_resp_init(struct ctrl *c, struct ctrl_resp *rs)
{
	rs->status = 200;
	rs->allow[0] = '\0';
	jw_init_fixed(&rs->w, c->resp_buf, c->resp_cap);
}

static void resp_verror(struct ctrl_resp *rs, unsigned status, const char *field,
			const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void resp_verror(struct ctrl_resp *rs, unsigned status, const char *field,
			const char *fmt, va_list ap)
{
	char msg[ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, never fails */
	jw_init_fixed(&rs->w, rs->w.buf, rs->w.cap);
	rs->status = status;
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "error", msg);
	jw_kv_str(&rs->w, "field", field ? field : "");
	jw_obj_close(&rs->w);
}

void ctrl_resp_error(struct ctrl_resp *rs, unsigned status, const char *field, const char *fmt,
		     ...)
{
	va_list ap;
	va_start(ap, fmt);
	resp_verror(rs, status, field, fmt, ap);
	va_end(ap);
}

/* An error from a lower layer keeps its message and field. */
static void resp_err(struct ctrl_resp *rs, unsigned status, const struct err *e)
{
	ctrl_resp_error(rs, status, e->field, "%s", e->msg[0] ? e->msg : "unknown error");
}

void ctrl_resp_finish(struct ctrl_resp *rs)
{
	if (jw_finish(&rs->w, NULL) < 0)
		ctrl_resp_error(rs, 500, "", "response larger than %zu bytes", rs->w.cap);
	if (jw_finish(&rs->w, NULL) < 0 || rs->w.len + 2 > rs->w.cap)
		return; /* cannot happen: an error object always fits */
	rs->w.buf[rs->w.len++] = '\n';
	rs->w.buf[rs->w.len] = '\0';
}

/* ---------------- helpers ---------------- */

static const char *goal_name(enum rt_goal g)
{
	switch (g) {
	case RT_GOAL_MOUNTED:
		return "MOUNTED";
	case RT_GOAL_STARTED:
		return "STARTED";
	case RT_GOAL_READY:
		return "READY";
	}
	return "UNKNOWN";
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

const char *ctrl_printable(char out[CTRL_ECHO_MAX + 4], const char *s)
{
	size_t i = 0;
	for (; s[i] && i < CTRL_ECHO_MAX; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* States go out uppercase, the words goals use (a READY goal is met in
 * state READY), whatever case the runtime names them in. */
static void put_state(struct jw *w, const char *key, enum ctr_state state)
{
	const char *n = str_or_empty(ctr_state_name(state));
	char up[16];
	size_t i = 0;
	for (; n[i] && i < sizeof(up) - 1; i++)
		up[i] = (char)toupper((unsigned char)n[i]);
	up[i] = '\0';
	jw_kv_str(w, key, up);
}

static void put_status(struct jw *w, const struct rt_ctr_status *st)
{
	jw_obj_open(w);
	jw_kv_str(w, "name", str_or_empty(st->name));
	jw_kv_str(w, "group", str_or_empty(st->group));
	put_state(w, "state", st->state);
	jw_kv_str(w, "goal", goal_name(st->goal));
	jw_kv_bool(w, "goal_met", st->goal_met);
	jw_kv_int(w, "pid", st->pid > 0 ? st->pid : 0);
	jw_kv_uint(w, "restarts", st->restarts);
	jw_kv_str(w, "reason", str_or_empty(st->reason));
	jw_obj_close(w);
}

/* Index of container `name` in the runtime, or -1 with rs set to 404. */
static int find_ctr(struct ctrl *c, const char *name, struct ctrl_resp *rs)
{
	int i = runtime_find(c->rt, name);
	if (i < 0 || (size_t)i >= runtime_count(c->rt)) {
		ctrl_resp_error(rs, 404, "", "container '%s' is not in the running revision", name);
		return -1;
	}
	return i;
}

/* HTTP status for a runtime_ready() failure. */
static unsigned ready_status(int r)
{
	switch (-r) {
	case ENOENT:
		return 404;
	case ENOMEM:
		return 503;
	default:
		return 409; /* not in a state that can become READY */
	}
}

/* ---------------- handlers ---------------- */

static void h_status(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	size_t n = runtime_count(c->rt), ready = 0;
	for (size_t i = 0; i < n; i++) {
		struct rt_ctr_status st = {0};
		runtime_status(c->rt, i, &st);
		ready += st.goal_met;
	}
	struct jw *w = &rs->w;
	jw_obj_open(w);
	jw_key(w, "revision");
	if (c->has_revision)
		jw_uint(w, c->revision);
	else
		jw_null(w);
	jw_kv_str(w, "phase", str_or_empty(runtime_phase(c->rt)));
	jw_key(w, "containers");
	jw_obj_open(w);
	jw_kv_uint(w, "total", n);
	jw_kv_uint(w, "ready", ready);
	jw_obj_close(w);
	jw_obj_close(w);
}

static void h_containers(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	size_t n = runtime_count(c->rt);
	jw_arr_open(&rs->w);
	for (size_t i = 0; i < n; i++) {
		struct rt_ctr_status st = {0};
		runtime_status(c->rt, i, &st);
		put_status(&rs->w, &st);
	}
	jw_arr_close(&rs->w);
}

static void put_one(struct ctrl *c, const char *name, struct ctrl_resp *rs)
{
	int i = find_ctr(c, name, rs);
	if (i < 0)
		return;
	struct rt_ctr_status st = {0};
	runtime_status(c->rt, (size_t)i, &st);
	put_status(&rs->w, &st);
}

static void h_container(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (!name_valid(rq->params[0])) {
		char b[CTRL_ECHO_MAX + 4];
		ctrl_resp_error(rs, 400, "name",
				"'%s' is not a container name ([a-z0-9][a-z0-9_-]{0,31})",
				ctrl_printable(b, rq->params[0]));
		return;
	}
	put_one(c, rq->params[0], rs);
}

static void h_self(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	put_one(c, rq->caller->name, rs);
}

static void h_self_ready(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	const char *name = rq->caller->name;
	int i = find_ctr(c, name, rs);
	if (i < 0)
		return;
	struct err e = ERR_INIT;
	int r = runtime_ready(c->rt, name, &e);
	if (r < 0) {
		resp_err(rs, ready_status(r), &e);
		return;
	}
	struct rt_ctr_status st = {0};
	runtime_status(c->rt, (size_t)i, &st);
	log_info("container %s reported ready", name);
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "container", name);
	put_state(&rs->w, "state", st.state);
	jw_obj_close(&rs->w);
}

/* ---------------- the table ---------------- */

#define ANYONE (CTRL_WHO_ADMIN | CTRL_WHO_CONTAINER)

/* "self" rows come before "*" rows of the same shape: first match wins. */
static const struct ctrl_route routes[] = {
	{"GET", "/v1/status", ANYONE, false, CTRL_BODY_NONE, h_status},
	{"GET", "/v1/containers", CTRL_WHO_ADMIN, false, CTRL_BODY_NONE, h_containers},
	{"GET", "/v1/containers/self", CTRL_WHO_CONTAINER, true, CTRL_BODY_NONE, h_self},
	{"POST", "/v1/containers/self/ready", CTRL_WHO_CONTAINER, true, CTRL_BODY_NONE,
	 h_self_ready},
	{"GET", "/v1/containers/*", CTRL_WHO_ADMIN, false, CTRL_BODY_NONE, h_container},
};

/* ---------------- dispatch ---------------- */

/* Match `path` against `pattern` segment by segment; a "*" segment takes
 * one non-empty path segment into rq->params. */
static bool path_match(const char *pattern, const char *path, struct ctrl_req *rq)
{
	unsigned n = 0;
	while (*pattern == '/' && *path == '/') {
		pattern++;
		path++;
		size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
		if (pl == 1 && *pattern == '*') {
			if (sl == 0 || sl > CTRL_PARAM_MAX || n == CTRL_MAX_PARAMS)
				return false;
			memcpy(rq->params[n], path, sl);
			rq->params[n++][sl] = '\0';
		} else if (pl != sl || memcmp(pattern, path, sl) != 0) {
			return false;
		}
		pattern += pl;
		path += sl;
	}
	if (*pattern || *path)
		return false;
	rq->nparams = n;
	return true;
}

static bool allow_has(const char *allow, const char *method)
{
	size_t mlen = strlen(method);
	for (const char *p = allow; *p;) {
		size_t n = strcspn(p, ",");
		if (n == mlen && memcmp(p, method, n) == 0)
			return true;
		p += n;
		p += strspn(p, ", ");
	}
	return false;
}

/* Add `method` to a ", "-separated Allow list unless it is there already. */
static void allow_add(char *allow, const char *method)
{
	size_t len = strlen(allow);
	if (allow_has(allow, method))
		return;
	if (str_fmt(allow + len, CTRL_ALLOW_MAX - len, "%s%s", len ? ", " : "", method) < 0)
		allow[len] = '\0'; /* cannot happen with the methods of the table */
}

const struct ctrl_route *ctrl_route_match(struct ctrl_req *rq, struct ctrl_resp *rs)
{
	struct ctrl_req probe = {0};
	rs->allow[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!path_match(routes[i].pattern, rq->path, &probe))
			continue;
		if (strcmp(routes[i].method, rq->method) == 0) {
			memcpy(rq->params, probe.params, sizeof(rq->params));
			rq->nparams = probe.nparams;
			rs->allow[0] = '\0';
			return &routes[i];
		}
		allow_add(rs->allow, routes[i].method);
	}
	char m[CTRL_ECHO_MAX + 4], p[CTRL_ECHO_MAX + 4];
	if (rs->allow[0])
		ctrl_resp_error(rs, 405, "", "%s is not allowed on %s (allowed: %s)",
				ctrl_printable(m, rq->method), ctrl_printable(p, rq->path), rs->allow);
	else
		ctrl_resp_error(rs, 404, "", "no such route");
	return NULL;
}

bool ctrl_route_allowed(const struct ctrl_route *r, const struct ctrl_req *rq,
			struct ctrl_resp *rs)
{
	const struct ctrl_caller *who = rq->caller;
	if (r->self && who->kind != CTRL_CALLER_CONTAINER) {
		ctrl_resp_error(rs, 400, "", "self needs a container socket");
		return false;
	}
	unsigned bit = who->kind == CTRL_CALLER_ADMIN ? CTRL_WHO_ADMIN : CTRL_WHO_CONTAINER;
	if (r->who & bit)
		return true;
	char p[CTRL_ECHO_MAX + 4];
	if (who->kind == CTRL_CALLER_ADMIN)
		ctrl_resp_error(rs, 403, "", "the admin socket may not call %s %s", r->method,
				ctrl_printable(p, rq->path));
	else
		ctrl_resp_error(rs, 403, "", "container '%s' may not call %s %s", who->name,
				r->method, ctrl_printable(p, rq->path));
	return false;
}

void ctrl_dispatch(struct ctrl *c, struct ctrl_req *rq, struct ctrl_resp *rs)
{
	const struct ctrl_route *r = ctrl_route_match(rq, rs);
	if (!r || !ctrl_route_allowed(r, rq, rs))
		return;
	if (rq->body_len > CTRL_BODY_MAX) {
		ctrl_resp_error(rs, 413, "", "request body larger than %d bytes", CTRL_BODY_MAX);
		return;
	}
	if (r->body == CTRL_BODY_NONE) {
		rq->body = NULL;
		rq->body_len = 0;
	}
	r->fn(c, rq, rs);
}
