/* ctrl/h_runtime.c — handlers about what runs: the device summary, the
 * containers, readiness, and operator control of one container. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "../runtime/runtime.h"
#include "../trails/trails.h"

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

static void put_rev(struct jw *w, const char *key, bool known, uint64_t rev)
{
	jw_key(w, key);
	if (known && rev)
		jw_uint(w, rev);
	else
		jw_null(w);
}

/* ---------------- status and containers ---------------- */

void ctrl_h_status(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	size_t n = runtime_count(c->rt), ready = 0;
	for (size_t i = 0; i < n; i++) {
		struct rt_ctr_status st = {0};
		runtime_status(c->rt, i, &st);
		ready += st.goal_met;
	}
	struct boot_state bs = {0};
	bool boot = c->tr != NULL;
	if (boot)
		trails_boot_state(c->tr, &bs);
	struct jw *w = &rs->w;
	jw_obj_open(w);
	put_rev(w, "revision", c->has_revision, c->revision);
	put_rev(w, "committed", boot, bs.committed);
	put_rev(w, "try", boot, bs.try_rev);
	jw_kv_str(w, "phase", str_or_empty(runtime_phase(c->rt)));
	jw_key(w, "containers");
	jw_obj_open(w);
	jw_kv_uint(w, "total", n);
	jw_kv_uint(w, "ready", ready);
	jw_obj_close(w);
	jw_obj_close(w);
}

void ctrl_h_containers(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
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
	int i = ctrl_find_ctr(c, name, rs);
	if (i < 0)
		return;
	struct rt_ctr_status st = {0};
	runtime_status(c->rt, (size_t)i, &st);
	put_status(&rs->w, &st);
}

void ctrl_h_container(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (ctrl_param_name(rq, 0, "name", rs))
		put_one(c, rq->params[0], rs);
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

void ctrl_h_self_ready(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	const char *name = rq->caller->name;
	int i = ctrl_find_ctr(c, name, rs);
	if (i < 0)
		return;
	struct err e = ERR_INIT;
	int r = runtime_ready(c->rt, name, &e);
	if (r < 0) {
		ctrl_resp_err(rs, ready_status(r), &e);
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

/* ---------------- operator control ---------------- */

typedef int (*ctr_op)(struct runtime *rt, const char *name, struct err *e);

static void ctr_control(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs,
			ctr_op op, const char *what)
{
	if (!ctrl_param_name(rq, 0, "name", rs))
		return;
	const char *name = rq->params[0];
	int i = ctrl_find_ctr(c, name, rs);
	if (i < 0)
		return;
	struct err e = ERR_INIT;
	int r = op(c->rt, name, &e);
	if (r < 0) {
		ctrl_resp_err(rs, r == -ENOENT ? 404 : r == -ENOMEM ? 503 : 409, &e);
		return;
	}
	char who[64];
	log_info("%s: %s container %s", ctrl_caller_label(rq->caller, who, sizeof(who)), what,
		 name);
	rs->status = 202;
	put_one(c, name, rs);
}

void ctrl_h_ctr_start(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	ctr_control(c, rq, rs, runtime_ctr_start, "start");
}

void ctrl_h_ctr_stop(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	ctr_control(c, rq, rs, runtime_ctr_stop, "stop");
}

void ctrl_h_ctr_restart(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	ctr_control(c, rq, rs, runtime_ctr_restart, "restart");
}
