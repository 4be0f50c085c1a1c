/* runtime/group.c — groups: started in order, each done when every one of
 * its containers reached its goal or missed it (failed, or the group's
 * timeout expired); stopped in reverse order, each when every one of its
 * containers is STOPPED. Progress runs from one zero-delay timer ("step")
 * so that user callbacks never run inside a container action or inside a
 * public call (runtime_ready, runtime_child_exited...). */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "runtime_internal.h"

void rt_schedule(struct runtime *rt)
{
	if (!rt->step.armed)
		loop_timer_arm(rt->cfg.loop, &rt->step, 0);
}

void rt_start_failed(struct runtime *rt, const char *reason)
{
	if (rt->phase != RT_STARTING && rt->phase != RT_RETIRING)
		return;
	if (!rt->failed) {
		rt->failed = true;
		rt_textf(rt->fail_reason, sizeof(rt->fail_reason), "%s", reason);
	}
	rt_schedule(rt);
}

static bool group_done(const struct runtime *rt, size_t g)
{
	for (size_t i = 0; i < rt->cur.nctrs; i++) {
		const struct rt_ctr *c = rt->cur.ctrs[i];
		if (c->group == g && !c->goal_reached && !c->goal_missed)
			return false;
	}
	return true;
}

static bool group_stopped(const struct rt_set *s, size_t g)
{
	for (size_t i = 0; i < s->nctrs; i++) {
		const struct rt_ctr *c = s->ctrs[i];
		if (c && c->group == g && !ctr_is_idle(c))
			return false;
	}
	return true;
}

static void group_dispatch(struct rt_set *s, size_t g, enum rt_event ev)
{
	for (size_t i = 0; i < s->nctrs; i++) {
		struct rt_ctr *c = s->ctrs[i];
		if (!c || c->group != g)
			continue;
		/* START only to what the start or apply asked for: a kept
		 * container keeps running, one the operator stopped stays so. */
		if (ev == EV_START && !c->pending_start)
			continue;
		if (ev == EV_START)
			c->pending_start = false;
		ctr_event(c, ev);
	}
}

static void group_start(struct runtime *rt, struct rt_group *g)
{
	g->start_sent = true;
	log_info("group %s: starting", g->name);
	if (g->timeout_s)
		loop_timer_arm_in(rt->cfg.loop, &g->timer, (uint64_t)g->timeout_s * RT_NS_PER_S);
	group_dispatch(&rt->cur, g->index, EV_START);
}

void rt_group_timer_cb(struct loop_timer *t)
{
	struct rt_group *g = t->data;
	struct runtime *rt = g->rt;
	if (rt->phase != RT_STARTING)
		return;
	log_warn("group %s: timeout of %u s expired", g->name, g->timeout_s);
	group_dispatch(&rt->cur, g->index, EV_GROUP_TIMEOUT);
	rt_schedule(rt);
}

void rt_start_phase(struct runtime *rt)
{
	for (size_t g = 0; g < rt->cur.ngroups; g++) {
		loop_timer_disarm(rt->cfg.loop, &rt->cur.groups[g].timer);
		rt->cur.groups[g].start_sent = rt->cur.groups[g].stop_sent = false;
	}
	rt->cur_group = 0;
	rt->phase = RT_STARTING;
	rt_schedule(rt);
}

/* The started callback runs at most once per start or apply: at the first
 * failure (ok=false), or when the last group is done (ok=true). True if the
 * callback took over (started an apply or a stop): the caller returns. */
static bool report(struct runtime *rt, bool ok)
{
	if (rt->reported)
		return false;
	rt->reported = true;
	if (ok)
		log_info("all groups reached their goals");
	else
		log_err("start-up: %s", rt->fail_reason);
	unsigned gen = rt->gen;
	if (rt->started_cb)
		rt->started_cb(rt->started_data, ok, ok ? "" : rt->fail_reason);
	return rt->gen != gen;
}

static void step_start(struct runtime *rt)
{
	if (rt->failed && report(rt, false))
		return;
	while (rt->cur_group < rt->cur.ngroups) {
		struct rt_group *g = &rt->cur.groups[rt->cur_group];
		if (!g->start_sent)
			group_start(rt, g);
		if (!group_done(rt, g->index))
			return;
		loop_timer_disarm(rt->cfg.loop, &g->timer);
		log_info("group %s: done", g->name);
		rt->cur_group++;
		if (rt->failed && report(rt, false))
			return;
	}
	rt->phase = RT_STARTED;
	if (!rt->failed)
		report(rt, true);
}

/* Stop every container of `s`, last group first (*left: groups to go);
 * true when all are STOPPED. */
static bool set_stop_step(struct rt_set *s, size_t *left)
{
	while (*left > 0) {
		struct rt_group *g = &s->groups[*left - 1];
		if (!g->stop_sent) {
			g->stop_sent = true;
			log_info("group %s: stopping", g->name);
			group_dispatch(s, g->index, EV_STOP);
		}
		if (!group_stopped(s, g->index))
			return false;
		log_info("group %s: stopped", g->name);
		(*left)--;
	}
	return true;
}

/* An apply's retirees first (their own group order), then an apply starts
 * its set, a stop_all stops the current set and calls the stopped callback. */
static void step_stop(struct runtime *rt)
{
	if (rt->has_old) {
		if (!set_stop_step(&rt->old, &rt->old_group))
			return;
		rt_set_free(rt, &rt->old);
		rt->has_old = false;
		if (rt->phase == RT_RETIRING) {
			rt_retired(rt);
			return;
		}
	}
	if (!set_stop_step(&rt->cur, &rt->cur_group))
		return;
	rt->phase = RT_STOPPED;
	log_info("all containers stopped");
	if (rt->stopped_cb) {
		runtime_stopped_cb cb = rt->stopped_cb;
		rt->stopped_cb = NULL;
		cb(rt->stopped_data);
	}
}

void rt_step_cb(struct loop_timer *t)
{
	struct runtime *rt = t->data;
	rt_events_deliver(rt);
	if (rt->phase == RT_STARTING)
		step_start(rt);
	else if (rt->phase == RT_STOPPING || rt->phase == RT_RETIRING)
		step_stop(rt);
}
