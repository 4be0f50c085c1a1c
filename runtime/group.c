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
	if (rt->phase != RT_STARTING)
		return;
	if (!rt->failed) {
		rt->failed = true;
		rt_textf(rt->fail_reason, sizeof(rt->fail_reason), "%s", reason);
	}
	rt_schedule(rt);
}

static bool group_done(const struct runtime *rt, size_t g)
{
	for (size_t i = 0; i < rt->nctrs; i++) {
		const struct rt_ctr *c = &rt->ctrs[i];
		if (c->group == g && !c->goal_reached && !c->goal_missed)
			return false;
	}
	return true;
}

static bool group_stopped(const struct runtime *rt, size_t g)
{
	for (size_t i = 0; i < rt->nctrs; i++)
		if (rt->ctrs[i].group == g && !ctr_is_idle(&rt->ctrs[i]))
			return false;
	return true;
}

static void group_dispatch(struct runtime *rt, size_t g, enum rt_event ev)
{
	for (size_t i = 0; i < rt->nctrs; i++)
		if (rt->ctrs[i].group == g)
			ctr_event(&rt->ctrs[i], ev);
}

static void group_start(struct runtime *rt, struct rt_group *g)
{
	g->start_sent = true;
	log_info("group %s: starting", g->name);
	if (g->timeout_s)
		loop_timer_arm_in(rt->cfg.loop, &g->timer, (uint64_t)g->timeout_s * RT_NS_PER_S);
	group_dispatch(rt, g->index, EV_START);
}

void rt_group_timer_cb(struct loop_timer *t)
{
	struct rt_group *g = t->data;
	struct runtime *rt = g->rt;
	if (rt->phase != RT_STARTING)
		return;
	log_warn("group %s: timeout of %u s expired", g->name, g->timeout_s);
	group_dispatch(rt, g->index, EV_GROUP_TIMEOUT);
	rt_schedule(rt);
}

/* The started callback runs at most once per runtime_start: at the first
 * failure (ok=false), or when the last group is done (ok=true). */
static bool report(struct runtime *rt, bool ok)
{
	if (rt->reported)
		return false;
	rt->reported = true;
	if (ok)
		log_info("all groups reached their goals");
	else
		log_err("start-up: %s", rt->fail_reason);
	if (rt->started_cb)
		rt->started_cb(rt->started_data, ok, ok ? "" : rt->fail_reason);
	return rt->phase != RT_STARTING; /* the callback stopped us */
}

static void step_start(struct runtime *rt)
{
	if (rt->failed && report(rt, false))
		return;
	while (rt->cur_group < rt->ngroups) {
		struct rt_group *g = &rt->groups[rt->cur_group];
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

static void step_stop(struct runtime *rt)
{
	while (rt->cur_group > 0) {
		struct rt_group *g = &rt->groups[rt->cur_group - 1];
		if (!g->stop_sent) {
			g->stop_sent = true;
			log_info("group %s: stopping", g->name);
			group_dispatch(rt, g->index, EV_STOP);
		}
		if (!group_stopped(rt, g->index))
			return;
		log_info("group %s: stopped", g->name);
		rt->cur_group--;
	}
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
	if (rt->phase == RT_STARTING)
		step_start(rt);
	else if (rt->phase == RT_STOPPING)
		step_stop(rt);
}
