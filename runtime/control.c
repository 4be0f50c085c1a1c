/* runtime/control.c — operator control of one container (stop, start,
 * restart), the container events the update engine watches, and where a
 * container's console log is. Events are queued by the actions and delivered
 * from the step timer, so an event callback may call back into the runtime
 * (runtime_apply, runtime_ctr_stop...), never runtime_free. */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "runtime_internal.h"

static int lookup(struct runtime *rt, const char *name, struct rt_ctr **out, struct err *e)
{
	int i = runtime_find(rt, name);
	if (i < 0)
		return err_set(e, ENOENT, "container %s: no such container", name ? name : "");
	*out = rt->cur.ctrs[i];
	return 0;
}

/* Starting is refused while everything stops, and while an apply has not
 * yet started a container it brings (its predecessor may still be going
 * down, in the same state directory). */
static int may_start(const struct runtime *rt, const struct rt_ctr *c, struct err *e)
{
	if (rt->phase == RT_STOPPING)
		return err_set(e, EBUSY, "container %s: every container is being stopped", c->name);
	if (rt->phase == RT_RETIRING && c->pending_start)
		return err_set(e, EBUSY, "container %s: revision %s starts it once the containers "
			       "it replaces are stopped", c->name, rt->cur.rev);
	return 0;
}

static void op_stop(struct rt_ctr *c)
{
	struct runtime *rt = c->rt;
	c->pending_start = false; /* its group will not start it */
	c->start_after_stop = false;
	if ((rt->phase == RT_STARTING || rt->phase == RT_RETIRING) && !c->goal_reached)
		ctr_goal_miss(c, ": stopped by the operator");
	ctr_event(c, EV_STOP);
}

static void op_start(struct rt_ctr *c)
{
	c->pending_start = false;
	ctr_event(c, EV_START); /* BACKOFF: now; STOPPING: once down; up: nothing */
}

int runtime_ctr_stop(struct runtime *rt, const char *name, struct err *e)
{
	struct rt_ctr *c = NULL;
	int r = lookup(rt, name, &c, e);
	if (r < 0)
		return r;
	log_info("container %s: stop asked by the operator (%s)", c->name,
		 ctr_state_name(c->state));
	op_stop(c);
	return 0;
}

int runtime_ctr_start(struct runtime *rt, const char *name, struct err *e)
{
	struct rt_ctr *c = NULL;
	int r = lookup(rt, name, &c, e);
	if (r == 0)
		r = may_start(rt, c, e);
	if (r < 0)
		return r;
	log_info("container %s: start asked by the operator (%s)", c->name,
		 ctr_state_name(c->state));
	op_start(c);
	return 0;
}

/* Stop then start: a running container is stopped (grace, SIGKILL) and
 * started once down; one that does not run (BACKOFF, FAILED) starts now. */
int runtime_ctr_restart(struct runtime *rt, const char *name, struct err *e)
{
	struct rt_ctr *c = NULL;
	int r = lookup(rt, name, &c, e);
	if (r == 0)
		r = may_start(rt, c, e);
	if (r < 0)
		return r;
	log_info("container %s: restart asked by the operator (%s)", c->name,
		 ctr_state_name(c->state));
	c->start_after_stop = false;
	c->pending_start = false;
	ctr_event(c, EV_STOP);
	op_start(c);
	return 0;
}

/* ---- events ---- */

void runtime_set_event_cb(struct runtime *rt, runtime_event_cb cb, void *data)
{
	rt->event_cb = cb;
	rt->event_data = data;
}

void rt_event_push(struct rt_ctr *c, enum rt_ctr_event ev)
{
	struct runtime *rt = c->rt;
	if (!rt->event_cb || c->retiring) /* events speak of the applied revision */
		return;
	if (rt->evq_len == RT_EVQ_MAX) {
		if (rt->evq_dropped++ == 0)
			log_warn("container events: queue full, dropping");
		return;
	}
	struct rt_evq_item *it = &rt->evq[(rt->evq_head + rt->evq_len++) % RT_EVQ_MAX];
	memcpy(it->name, c->name, sizeof(it->name));
	it->ev = ev;
	it->restarts = c->restarts;
	if (ev == RT_CTR_GOAL_MET)
		it->reason[0] = '\0';
	else
		rt_textf(it->reason, sizeof(it->reason), "%s", c->reason);
	rt_schedule(rt);
}

/* In order; the callback may queue more (delivered in this round too). */
void rt_events_deliver(struct runtime *rt)
{
	if (rt->evq_dropped) {
		log_warn("container events: %u dropped", rt->evq_dropped);
		rt->evq_dropped = 0;
	}
	while (rt->evq_len > 0) {
		struct rt_evq_item it = rt->evq[rt->evq_head];
		rt->evq_head = (rt->evq_head + 1) % RT_EVQ_MAX;
		rt->evq_len--;
		if (rt->event_cb)
			rt->event_cb(rt->event_data, it.name, it.ev, it.restarts, it.reason);
	}
}

/* ---- logs ---- */

int runtime_log_path(const struct runtime *rt, const char *name, char *buf, size_t cap,
		     struct err *e)
{
	int i = runtime_find(rt, name);
	if (i < 0)
		return err_set(e, ENOENT, "container %s: no such container", name ? name : "");
	const struct rt_ctr *c = rt->cur.ctrs[i];
	const char *rev = c->rev[0] ? c->rev : rt->cur.rev;
	if (str_fmt(buf, cap, "%s/logs/%s/%s.log", storage_root_path(rt->cfg.storage), rev,
		    c->name) < 0)
		return err_set(e, ENAMETOOLONG, "container %s: log path too long", c->name);
	return 0;
}
