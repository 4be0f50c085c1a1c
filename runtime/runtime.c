/* runtime/runtime.c — the public API of the runtime (see runtime.h and
 * runtime/README.md). The work is in load.c, group.c, ctr.c and ctr_io.c. */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "runtime_internal.h"

static int config_check(const struct runtime_config *cfg, struct err *e)
{
	if (!cfg->loop || !cfg->storage || !cfg->plugin)
		return err_set(e, EINVAL, "runtime: loop, storage and plugin are required");
	const struct plugin_ops *p = cfg->plugin;
	if (!p->prepare || !p->spawn || !p->init_pid || !p->signal || !p->release)
		return err_set(e, EINVAL, "runtime: plugin %s lacks an operation",
			       p->name ? p->name : "?");
	if (!cfg->statedir || cfg->statedir[0] != '/')
		return err_field(e, EINVAL, "statedir", "must be an absolute path");
	if (cfg->backoff_first_ms == 0 || cfg->backoff_max_ms < cfg->backoff_first_ms)
		return err_field(e, EINVAL, "backoff",
				 "first delay must be > 0 and not above the cap (%u, %u ms)",
				 cfg->backoff_first_ms, cfg->backoff_max_ms);
	return 0;
}

int runtime_new(const struct runtime_config *cfg, struct runtime **out, struct err *e)
{
	int r = config_check(cfg, e);
	if (r < 0)
		return r;
	struct runtime *rt = calloc(1, sizeof(*rt));
	if (!rt || !(rt->statedir = strdup(cfg->statedir)) ||
	    !(rt->evq = calloc(RT_EVQ_MAX, sizeof(*rt->evq)))) {
		if (rt)
			free(rt->statedir);
		free(rt);
		return err_set(e, ENOMEM, "runtime: out of memory");
	}
	rt->cfg = *cfg;
	rt->cfg.statedir = rt->statedir;
	rt->phase = RT_IDLE;
	rt->step = (struct loop_timer){.cb = rt_step_cb, .data = rt};
	*out = rt;
	return 0;
}

/* Releases memory, fds and timers. Processes and mounts are the caller's
 * to end first (runtime_stop_all); what still runs is only logged. */
void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	loop_timer_disarm(rt->cfg.loop, &rt->step);
	rt_set_free(rt, &rt->old);
	rt_set_free(rt, &rt->cur);
	free(rt->evq);
	free(rt->statedir);
	free(rt);
}

int runtime_start(struct runtime *rt, runtime_started_cb cb, void *data, struct err *e)
{
	if (rt->phase != RT_IDLE && rt->phase != RT_STOPPED)
		return err_set(e, EBUSY, "runtime: already %s",
			       rt->phase == RT_STOPPING ? "stopping" : "started");
	for (size_t i = 0; i < rt->cur.nctrs; i++) {
		struct rt_ctr *c = rt->cur.ctrs[i];
		c->goal_reached = c->goal_missed = false;
		c->restarts = c->fails = 0;
		c->reason[0] = '\0';
		c->pending_start = true;
		c->start_after_stop = false;
	}
	rt->gen++;
	rt->started_cb = cb;
	rt->started_data = data;
	rt->reported = false;
	rt->failed = false;
	rt->fail_reason[0] = '\0';
	log_info("revision %s: starting %zu groups", rt->cur.rev, rt->cur.ngroups);
	rt_start_phase(rt);
	return 0;
}

void runtime_stop_all(struct runtime *rt, runtime_stopped_cb cb, void *data)
{
	rt->stopped_cb = cb;
	rt->stopped_data = data;
	if (rt->phase == RT_STOPPING)
		return; /* already on its way; the latest callback is called */
	for (size_t g = 0; g < rt->cur.ngroups; g++) {
		loop_timer_disarm(rt->cfg.loop, &rt->cur.groups[g].timer);
		rt->cur.groups[g].stop_sent = false;
	}
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		rt->cur.ctrs[i]->start_after_stop = false;
	rt->gen++;
	rt->phase = RT_STOPPING; /* an apply's retirees first, if any */
	rt->cur_group = rt->cur.ngroups;
	log_info("stopping all containers, last group first");
	rt_schedule(rt);
}

static struct rt_ctr *keeper_find(struct rt_set *s, pid_t pid)
{
	for (size_t i = 0; i < s->nctrs; i++)
		if (s->ctrs[i] && s->ctrs[i]->keeper == pid)
			return s->ctrs[i];
	return NULL;
}

bool runtime_child_exited(struct runtime *rt, pid_t pid, int status)
{
	if (pid <= 0)
		return false;
	struct rt_ctr *c = keeper_find(&rt->cur, pid);
	if (!c)
		c = keeper_find(&rt->old, pid); /* an apply's retiree */
	if (!c)
		return false;
	c->exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
		       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
					     : PLUGIN_EXIT_START_FAILED;
	c->keeper = 0;
	ctr_event(c, EV_EXITED);
	return true;
}

int runtime_ready(struct runtime *rt, const char *name, struct err *e)
{
	int i = runtime_find(rt, name);
	if (i < 0)
		return err_set(e, ENOENT, "container %s: no such container", name ? name : "");
	struct rt_ctr *c = rt->cur.ctrs[i];
	switch (c->state) {
	case CTR_STARTING:
	case CTR_STARTED:
	case CTR_READY:
		ctr_event(c, EV_READY);
		return 0;
	default:
		return err_set(e, ESRCH, "container %s: is %s, not running", c->name,
			       ctr_state_name(c->state));
	}
}

size_t runtime_count(const struct runtime *rt)
{
	return rt->cur.nctrs;
}

int runtime_find(const struct runtime *rt, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		if (strcmp(rt->cur.ctrs[i]->name, name) == 0)
			return (int)i;
	return -1;
}

void runtime_status(const struct runtime *rt, size_t i, struct rt_ctr_status *out)
{
	if (i >= rt->cur.nctrs) {
		*out = (struct rt_ctr_status){.name = "", .group = "", .reason = ""};
		return;
	}
	const struct rt_ctr *c = rt->cur.ctrs[i];
	*out = (struct rt_ctr_status){
		.name = c->name,
		.group = rt->cur.groups[c->group].name,
		.state = c->state,
		.goal = c->goal,
		.goal_met = ctr_goal_met_now(c),
		.pid = c->init,
		.restarts = c->restarts,
		.reason = c->reason,
	};
}

const char *runtime_phase(const struct runtime *rt)
{
	switch (rt->phase) {
	case RT_RETIRING: /* an apply, from its call to its report, is "starting" */
	case RT_STARTING:
		return "starting";
	case RT_STOPPING:
		return "stopping";
	case RT_IDLE:
	case RT_STOPPED:
		return "stopped";
	case RT_STARTED:
		break;
	}
	if (rt->failed)
		return "degraded";
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		if (rt->cur.ctrs[i]->state == CTR_FAILED)
			return "degraded";
	return "ready";
}
