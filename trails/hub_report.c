/* trails/hub_report.c — the status report (HUB.md, "Status report"): what
 * the device runs, the update the hub assigned, its state in the engine,
 * its bytes and rate, why it failed, and its keys serial. Sent by a helper
 * with PUT after every change of (revision, state, reason, keys serial),
 * checked after each poll, at most every 5 s while a
 * download moves, and again after a failed PUT once a poll succeeds. One
 * report on its way at a time; a change meanwhile sends one more after. */
#define LOG_MODULE "hub"
#include <errno.h>
#include <string.h>
#include <time.h>

#include <stdlib.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "hub_internal.h"

#define NS_PER_S 1000000000ull
#define VIEW_TOKENS 1024

/* ---- the engine's view of one revision (trails_json_revision) ---- */

static void view_copy(const struct jp *p, int obj, const char *key, char *out, size_t cap)
{
	int v = jp_get(p, obj, key);
	out[0] = '\0';
	if (v < 0 || jp_str(p, v, out, cap, NULL) < 0)
		out[0] = '\0';
}

static uint64_t view_uint(const struct jp *p, int obj, const char *key)
{
	long long x;
	int v = obj < 0 ? -1 : jp_get(p, obj, key);
	return v >= 0 && jp_int(p, v, 0, (long long)REV_MAX_NUMBER, &x) == 0 ? (uint64_t)x : 0;
}

static int view_parse(const char *js, size_t len, struct hub_view *v, struct err *e)
{
	_cleanup_free_ jsmntok_t *tok = calloc(VIEW_TOKENS, sizeof(*tok));
	if (!tok)
		return err_set(e, ENOMEM, "view: out of memory");
	struct jp p;
	int r = jp_parse(&p, js, len, tok, VIEW_TOKENS, e);
	if (r < 0)
		return r;
	char state[16];
	view_copy(&p, 0, "state", state, sizeof(state));
	for (int s = 0; s < REV_STATE_COUNT; s++)
		if (strcmp(state, rev_state_name((enum rev_state)s)) == 0)
			v->state = (enum rev_state)s;
	int prog = jp_get(&p, 0, "progress");
	v->done = view_uint(&p, prog, "done");
	v->total = view_uint(&p, prog, "total");
	int fail = jp_get(&p, 0, "failure");
	if (fail >= 0 && jp_is(&p, fail, JSMN_OBJECT)) {
		view_copy(&p, fail, "reason", v->reason, sizeof(v->reason));
		view_copy(&p, fail, "message", v->message, sizeof(v->message));
		view_copy(&p, fail, "field", v->field, sizeof(v->field));
	}
	v->known = true;
	return 0;
}

int hub_view_read(struct trails *tr, uint64_t rev, struct hub_view *v, struct err *e)
{
	memset(v, 0, sizeof(*v));
	struct jw w;
	jw_init_dyn(&w, false);
	int r = trails_json_revision(tr, rev, &w, e);
	if (r == 0)
		r = jw_finish(&w, e);
	if (r == 0)
		r = view_parse(w.buf, w.len, v, e);
	jw_free(&w);
	return r == -ENOENT ? 0 : r;
}

/* ---- the report ---- */

struct report_state {
	struct hub_view v;
	const char *state;
	const struct hub_reason *why; /* the hub client's, when the engine has none */
	uint64_t done, total;
};

static void report_state(struct trails_hub *h, struct report_state *rs)
{
	struct err e = ERR_INIT;
	memset(rs, 0, sizeof(*rs));
	if (h->rev && hub_view_read(h->tr, h->rev, &rs->v, &e) < 0)
		log_debug("report: %s", e.msg);
	rs->state = !h->rev || !rs->v.known ? "NONE" : rev_state_name(rs->v.state);
	bool failed = rs->v.known && (rs->v.state == REV_REJECTED || rs->v.state == REV_FAILED);
	if (!(failed && rs->v.reason[0]))
		rs->why = h->run_err.code[0]	 ? &h->run_err
			  : h->fetch_err.code[0] ? &h->fetch_err
			  : h->poll_err.code[0]	 ? &h->poll_err
						 : NULL;
	rs->total = rs->v.total;
	rs->done = rs->v.done;
	if (rs->v.known && rs->v.state == REV_DOWNLOADING)
		rs->done += h->staged_now;
	if (rs->done > rs->total)
		rs->done = rs->total;
}

static int report_write(struct trails_hub *h, const struct report_state *rs, struct jw *w,
			struct err *e)
{
	struct boot_state bs;
	trails_boot_state(h->tr, &bs);
	jw_obj_open(w);
	jw_kv_str(w, "device", h->id);
	jw_kv_int(w, "time", (long long)time(NULL));
	jw_kv_uint(w, "running", trails_running(h->tr));
	jw_kv_uint(w, "committed", bs.committed);
	jw_kv_uint(w, "try", bs.try_rev);
	jw_kv_uint(w, "keys", trails_keys_serial(h->tr));
	jw_kv_uint(w, "revision", h->rev);
	jw_kv_str(w, "state", rs->state);
	jw_kv_uint(w, "done", rs->done);
	jw_kv_uint(w, "total", rs->total);
	jw_kv_uint(w, "rate", h->rate);
	jw_kv_str(w, "reason", rs->why ? rs->why->code : rs->v.reason);
	jw_kv_str(w, "message", rs->why ? rs->why->msg : rs->v.message);
	jw_kv_str(w, "field", rs->why ? "" : rs->v.field);
	jw_obj_close(w);
	return jw_finish(w, e);
}

int hub_report_json(struct trails_hub *h, char *buf, size_t cap, size_t *len, struct err *e)
{
	struct report_state rs;
	struct jw w;
	report_state(h, &rs);
	jw_init_fixed(&w, buf, cap);
	int r = report_write(h, &rs, &w, e);
	if (r < 0)
		return r;
	*len = w.len;
	return 0;
}

static void report_done(struct hub_proc *p)
{
	struct trails_hub *h = p->h;
	bool ok = !p->err.code && p->rx.ok && p->rx.have_http && p->rx.http >= 200 &&
		  p->rx.http < 300;
	if (!ok)
		log_warn("status report not taken: %s", p->err.code ? p->err.msg
							: !p->rx.ok	? p->rx.text
									: "the hub answered an HTTP error");
	h->report_failed = !ok;
	if (h->report_pending) {
		h->report_pending = false;
		hub_report_check(h);
	}
}

void hub_report_init(struct trails_hub *h)
{
	h->rep.done = report_done;
}

static void report_send(struct trails_hub *h, const struct report_state *rs, const char *key,
			uint64_t now)
{
	struct hub_job job = {.kind = HUB_JOB_REPORT, .body = h->report};
	struct jw w;
	struct err e = ERR_INIT;
	jw_init_fixed(&w, h->report, sizeof(h->report));
	hub_url(h, &job, "/v1/devices/%s/status", h->id);
	int r = report_write(h, rs, &w, &e);
	job.body_len = w.len;
	if (r == 0 && (r = hub_job_secrets(h, &job, &e)) == 0) {
		r = hub_proc_start(&h->rep, &job, &e);
		hub_job_secrets_free(&job);
	}
	if (r < 0) {
		log_warn("status report: %s", e.msg);
		h->report_failed = true;
		return;
	}
	memcpy(h->sent_key, key, strlen(key) + 1);
	h->sent_ns = now;
	h->sent_done = rs->done;
	h->report_due = false;
}

void hub_report_check(struct trails_hub *h)
{
	if (h->rep.running) {
		h->report_pending = true;
		return;
	}
	struct report_state rs;
	report_state(h, &rs);
	char key[sizeof(h->sent_key)];
	if (str_fmt(key, sizeof(key), "%llu/%s/%s/%llu", (unsigned long long)h->rev, rs.state,
		    rs.why ? rs.why->code : rs.v.reason,
		    (unsigned long long)trails_keys_serial(h->tr)) < 0)
		key[0] = '\0';
	uint64_t now = now_ns();
	bool changed = strcmp(key, h->sent_key) != 0;
	bool moving = rs.v.known && rs.v.state == REV_DOWNLOADING && rs.done != h->sent_done &&
		      now - h->sent_ns >= HUB_REPORT_EVERY_S * NS_PER_S;
	if (!changed && !moving && !h->report_due)
		return;
	h->rate = 0;
	if (rs.v.known && rs.v.state == REV_DOWNLOADING && rs.done > h->sent_done &&
	    now > h->sent_ns && h->sent_ns)
		h->rate = (uint64_t)((unsigned __int128)(rs.done - h->sent_done) * NS_PER_S /
				     (now - h->sent_ns));
	report_send(h, &rs, key, now);
}
