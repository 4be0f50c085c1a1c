/* ctrl/routes.c — the route table, matching, authorization and the
 * response helpers every handler uses. See ctrl/API.md.
 *
 * Every route is one row: method, path pattern, who may call it, what it
 * does with a body, handler. Order of checks for a request: route (404 /
 * 405), caller (400 for "self" from the admin socket, 403), body (411 /
 * 413 / 503), handler. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../runtime/runtime.h"
#include "../trails/trails.h"

/* ---------------- responses ---------------- */

void ctrl_resp_init(struct ctrl *c, struct ctrl_resp *rs)
{
	rs->status = 200;
	rs->allow[0] = '\0';
	rs->log = NULL;
	jw_init_fixed(&rs->w, c->resp_buf, c->resp_cap);
}

static void resp_verror(struct ctrl_resp *rs, unsigned status, const char *field,
			const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void resp_verror(struct ctrl_resp *rs, unsigned status, const char *field,
			const char *fmt, va_list ap)
{
	char msg[ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap); /* a long message is cut, never fails */
	ctrl_resp_release(rs);
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

void ctrl_resp_err(struct ctrl_resp *rs, unsigned status, const struct err *e)
{
	ctrl_resp_error(rs, status, e->field, "%s", e->msg[0] ? e->msg : "unknown error");
}

void ctrl_resp_finish(struct ctrl_resp *rs)
{
	if (rs->log)
		return;
	if (jw_finish(&rs->w, NULL) < 0)
		ctrl_resp_error(rs, 500, "", "response larger than %zu bytes", rs->w.cap);
	if (jw_finish(&rs->w, NULL) < 0 || rs->w.len + 2 > rs->w.cap)
		return; /* cannot happen: an error object always fits */
	rs->w.buf[rs->w.len++] = '\n';
	rs->w.buf[rs->w.len] = '\0';
}

void ctrl_resp_release(struct ctrl_resp *rs)
{
	ctrl_logfile_free(rs->log);
	rs->log = NULL;
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

/* ---------------- shared by handlers ---------------- */

bool ctrl_param_name(const struct ctrl_req *rq, unsigned i, const char *field,
		     struct ctrl_resp *rs)
{
	if (name_valid(rq->params[i]))
		return true;
	char b[CTRL_ECHO_MAX + 4];
	ctrl_resp_error(rs, 400, field, "'%s' is not a valid %s ([a-z0-9][a-z0-9_-]{0,31})",
			ctrl_printable(b, rq->params[i]), field);
	return false;
}

/* Decimal, no sign, no leading zero, 1 .. REV_MAX_NUMBER. */
bool ctrl_param_rev(const struct ctrl_req *rq, unsigned i, uint64_t *rev, struct ctrl_resp *rs)
{
	const char *s = rq->params[i];
	uint64_t v = 0;
	size_t n = strspn(s, "0123456789");
	bool ok = n > 0 && n <= 16 && s[n] == '\0' && s[0] != '0';
	for (size_t k = 0; ok && k < n; k++)
		v = v * 10 + (uint64_t)(s[k] - '0');
	if (ok && v <= REV_MAX_NUMBER) {
		*rev = v;
		return true;
	}
	char b[CTRL_ECHO_MAX + 4];
	ctrl_resp_error(rs, 400, "revision", "'%s' is not a revision number (1 to %llu)",
			ctrl_printable(b, s), (unsigned long long)REV_MAX_NUMBER);
	return false;
}

int ctrl_find_ctr(struct ctrl *c, const char *name, struct ctrl_resp *rs)
{
	int i = runtime_find(c->rt, name);
	if (i < 0 || (size_t)i >= runtime_count(c->rt)) {
		ctrl_resp_error(rs, 404, "", "container '%s' is not in the running revision", name);
		return -1;
	}
	return i;
}

const char *ctrl_caller_label(const struct ctrl_caller *who, char *buf, size_t cap)
{
	if (who->kind == CTRL_CALLER_ADMIN || str_fmt(buf, cap, "container %s", who->name) < 0)
		return "admin";
	return buf;
}

const char *ctrl_query(const struct ctrl_req *rq, const char *key)
{
	for (unsigned i = 0; i < rq->nquery; i++)
		if (strcmp(rq->query[i].key, key) == 0)
			return rq->query[i].value ? rq->query[i].value : "";
	return NULL;
}

/* ---------------- the table ---------------- */

#define ADMIN CTRL_WHO_ADMIN
#define MGMT CTRL_WHO_MGMT
#define SELF CTRL_WHO_SELF
#define ANY CTRL_WHO_ANY
#define PLAIN CTRL_ROUTE_PLAIN
#define NAMED CTRL_ROUTE_NAME
#define NOBODY CTRL_BODY_NONE
#define JSON CTRL_BODY_JSON

/* Literal rows before "*" rows of the same shape: the first match wins. */
static const struct ctrl_route routes[] = {
	{"GET", "/v1/status", ADMIN | ANY, PLAIN, NOBODY, 0, ctrl_h_status, NULL},
	{"GET", "/v1/containers", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_containers, NULL},
	{"POST", "/v1/containers/self/ready", SELF, CTRL_ROUTE_SELF, NOBODY, 0,
	 ctrl_h_self_ready, NULL},
	{"GET", "/v1/containers/*", ADMIN | MGMT | SELF, NAMED, NOBODY, 0, ctrl_h_container, NULL},
	{"POST", "/v1/containers/*/start", ADMIN | MGMT, NAMED, NOBODY, 0, ctrl_h_ctr_start, NULL},
	{"POST", "/v1/containers/*/stop", ADMIN | MGMT, NAMED, NOBODY, 0, ctrl_h_ctr_stop, NULL},
	{"POST", "/v1/containers/*/restart", ADMIN | MGMT, NAMED, NOBODY, 0, ctrl_h_ctr_restart,
	 NULL},
	{"GET", "/v1/logs/*", ADMIN | MGMT | SELF, NAMED, NOBODY, 0, ctrl_h_logs, NULL},
	{"GET", "/v1/revisions", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_revisions, NULL},
	{"GET", "/v1/revisions/*", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_revision, NULL},
	{"PUT", "/v1/revisions/*", ADMIN | MGMT, PLAIN, JSON, CTRL_REV_BODY_MAX,
	 ctrl_h_revision_put, NULL},
	{"POST", "/v1/revisions/*/run", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_revision_run, NULL},
	{"GET", "/v1/progress", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_progress, NULL},
	{"GET", "/v1/keys", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_keys, NULL},
	{"PUT", "/v1/keys", ADMIN | MGMT, PLAIN, JSON, CTRL_KEYS_BODY_MAX, ctrl_h_keys_put, NULL},
	{"HEAD", "/v1/objects/*", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_object_head, NULL},
	{"PUT", "/v1/objects/*", ADMIN | MGMT, PLAIN, CTRL_BODY_STREAM, 0, NULL, &ctrl_object_put},
	{"GET", "/v1/meta/user", ADMIN | ANY, PLAIN, NOBODY, 0, ctrl_h_meta_list, NULL},
	{"GET", "/v1/meta/user/*", ADMIN | ANY, PLAIN, NOBODY, 0, ctrl_h_meta_get, NULL},
	{"PUT", "/v1/meta/user/*", ADMIN | MGMT, PLAIN, JSON, 0, ctrl_h_meta_put, NULL},
	{"DELETE", "/v1/meta/user/*", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_meta_delete, NULL},
	{"GET", "/v1/meta/device", ADMIN | ANY, PLAIN, NOBODY, 0, ctrl_h_device_list, NULL},
	{"GET", "/v1/meta/device/*", ADMIN | ANY, PLAIN, NOBODY, 0, ctrl_h_device_get, NULL},
	{"POST", "/v1/commands/reboot", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_reboot, NULL},
	{"POST", "/v1/commands/poweroff", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_poweroff, NULL},
	{"POST", "/v1/commands/gc", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_gc, NULL},
	{"POST", "/v1/commands/poll-hub", ADMIN | MGMT, PLAIN, NOBODY, 0, ctrl_h_poll_hub, NULL},
};

const struct ctrl_route *ctrl_routes(size_t *n)
{
	*n = ARRAY_SIZE(routes);
	return routes;
}

/* ---------------- matching ---------------- */

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
	static struct ctrl_req probe; /* one thread; params only */
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

/* ---------------- authorization ---------------- */

static bool caller_may(const struct ctrl_route *r, const struct ctrl_req *rq)
{
	const struct ctrl_caller *who = rq->caller;
	if (who->kind == CTRL_CALLER_ADMIN)
		return r->who & CTRL_WHO_ADMIN;
	if (r->who & CTRL_WHO_ANY)
		return true;
	if ((r->who & CTRL_WHO_MGMT) && (who->roles & CTRL_ROLE_MGMT))
		return true;
	if (!(r->who & CTRL_WHO_SELF))
		return false;
	/* an empty or prefix name never passes: whole-string equality */
	return r->kind == CTRL_ROUTE_SELF ||
	       (r->kind == CTRL_ROUTE_NAME && who->name[0] && strcmp(rq->params[0], who->name) == 0);
}

bool ctrl_route_allowed(const struct ctrl_route *r, struct ctrl_req *rq, struct ctrl_resp *rs)
{
	const struct ctrl_caller *who = rq->caller;
	bool says_self = r->kind == CTRL_ROUTE_SELF ||
			 (r->kind == CTRL_ROUTE_NAME && strcmp(rq->params[0], "self") == 0);
	if (says_self && who->kind != CTRL_CALLER_CONTAINER) {
		ctrl_resp_error(rs, 400, "", "self needs a container socket");
		return false;
	}
	if (says_self && r->kind == CTRL_ROUTE_NAME &&
	    str_fmt(rq->params[0], sizeof(rq->params[0]), "%s", who->name) < 0)
		rq->params[0][0] = '\0'; /* cannot happen: names are shorter */
	if (caller_may(r, rq))
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
