/* runtime/ctr.c — the per-container lifecycle: one state x event table of
 * actions, every pair decided (runtime/README.md shows it as a table).
 * An action may return a follow-up event that is dispatched at once; user
 * callbacks are never called from here (group.c runs them from a timer). */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/log.h"
#include "runtime_internal.h"

typedef enum rt_event (*ctr_action)(struct rt_ctr *c, enum rt_event ev);

static const char *const state_names[CTR_STATE_COUNT] = {
	[CTR_STOPPED] = "stopped", [CTR_MOUNTED] = "mounted", [CTR_STARTING] = "starting",
	[CTR_STARTED] = "started", [CTR_READY] = "ready",     [CTR_STOPPING] = "stopping",
	[CTR_BACKOFF] = "backoff", [CTR_FAILED] = "failed",
};

const char *ctr_state_name(enum ctr_state s)
{
	return (unsigned)s < CTR_STATE_COUNT ? state_names[s] : "?";
}

static const char *const event_names[EV_COUNT] = {
	[EV_START] = "START",	  [EV_MOUNT_OK] = "MOUNT_OK", [EV_MOUNT_FAIL] = "MOUNT_FAIL",
	[EV_SPAWNED] = "SPAWNED", [EV_INIT_SEEN] = "INIT_SEEN", [EV_READY] = "READY",
	[EV_EXITED] = "EXITED",	  [EV_STOP] = "STOP",	      [EV_TIMER] = "TIMER",
	[EV_GROUP_TIMEOUT] = "GROUP_TIMEOUT",
};

const char *ctr_event_name(enum rt_event ev)
{
	return (unsigned)ev < EV_COUNT ? event_names[ev] : "?";
}

static const char *goal_name(enum rt_goal g)
{
	static const char *const names[] = {"MOUNTED", "STARTED", "READY"};
	return (unsigned)g < ARRAY_SIZE(names) ? names[g] : "?";
}

bool ctr_goal_met_now(const struct rt_ctr *c)
{
	switch (c->goal) {
	case RT_GOAL_MOUNTED:
		return c->state == CTR_MOUNTED || c->state == CTR_STARTING ||
		       c->state == CTR_STARTED || c->state == CTR_READY;
	case RT_GOAL_STARTED:
		return c->state == CTR_STARTED || c->state == CTR_READY;
	case RT_GOAL_READY:
		return c->state == CTR_READY;
	}
	return false;
}

bool ctr_is_up(const struct rt_ctr *c)
{
	return c->state != CTR_STOPPED && c->state != CTR_FAILED && c->state != CTR_STOPPING;
}

unsigned ctr_backoff_ms(const struct runtime_config *cfg, unsigned fails)
{
	uint64_t d = cfg->backoff_first_ms;
	for (unsigned i = 0; i < fails && d < cfg->backoff_max_ms; i++)
		d *= 2;
	return d > cfg->backoff_max_ms ? cfg->backoff_max_ms : (unsigned)d;
}

/* ---- helpers ---- */

void rt_textf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4);
}

static void set_state(struct rt_ctr *c, enum ctr_state s)
{
	if (c->state != s)
		log_debug("container %s: %s -> %s", c->name, ctr_state_name(c->state),
			  ctr_state_name(s));
	c->state = s;
	rt_schedule(c->rt);
}

static void timer_in(struct rt_ctr *c, uint64_t ns)
{
	loop_timer_arm_in(c->rt->cfg.loop, &c->timer, ns);
}

/* Every time a run of the container gets to its goal, an event; the first
 * time since the start or apply also counts for its group. */
static void goal_reach(struct rt_ctr *c)
{
	rt_event_push(c, RT_CTR_GOAL_MET);
	if (c->goal_reached)
		return;
	c->goal_reached = true;
	log_info("container %s: goal %s reached", c->name, goal_name(c->goal));
	rt_schedule(c->rt);
}

/* The goal cannot be reached any more (or not in time): a start failure.
 * `how` continues "goal X not reached": " within 30 s" or ": <reason>". */
void ctr_goal_miss(struct rt_ctr *c, const char *how)
{
	if (c->goal_reached || c->goal_missed || c->retiring)
		return; /* a retiree is no part of the start-up any more */
	c->goal_missed = true;
	char msg[RT_REASON_MAX];
	rt_textf(msg, sizeof(msg), "container %s: goal %s not reached%s", c->name,
		 goal_name(c->goal), how);
	log_warn("%s", msg);
	rt_start_failed(c->rt, msg);
}

static void exit_reason(struct rt_ctr *c)
{
	int code = c->exit_code;
	if (code == PLUGIN_EXIT_START_FAILED)
		rt_textf(c->reason, sizeof(c->reason), "could not be started (see its log)");
	else if (code > 128 && code < 128 + NSIG)
		rt_textf(c->reason, sizeof(c->reason), "killed by SIG%s",
			 sigabbrev_np(code - 128) ? sigabbrev_np(code - 128) : "?");
	else
		rt_textf(c->reason, sizeof(c->reason), "exited with status %d", code);
}

void ctr_init_unwatch(struct rt_ctr *c)
{
	if (c->init_fd < 0)
		return;
	loop_io_del(c->rt->cfg.loop, &c->init_io);
	close(c->init_fd);
	c->init_fd = -1;
}

/* The init of a PID namespace exits only once every other process of the
 * namespace is dead: the container no longer runs. The keeper (liblxc's
 * monitor) still tears down cgroups and namespaces for tens of ms; it is
 * not waited for (its exit is then an orphan's). */
static void init_gone_cb(struct loop_io *io, uint32_t events)
{
	(void)events;
	struct rt_ctr *c = io->data;
	ctr_init_unwatch(c);
	if (c->state != CTR_STOPPING)
		return;
	log_debug("container %s: init %d gone, keeper %d still tearing down", c->name,
		  (int)c->init, (int)c->keeper);
	c->exit_code = 0;
	c->keeper_left = true;
	ctr_event(c, EV_EXITED);
	c->keeper_left = false;
}

/* An apply's retiree: its replacement may start as soon as its init is
 * dead (runtime/README.md, "Apply"). The pidfd is checked against a fresh
 * init_pid so that a recycled pid is never watched; without one, the
 * keeper's exit ends the stop as for any container. */
static void init_watch(struct rt_ctr *c)
{
	if (!c->retiring || c->init <= 0 || c->init_fd >= 0)
		return;
	int fd = pidfd_open(c->init, 0);
	if (fd < 0)
		return;
	struct err e = ERR_INIT;
	c->init_io = (struct loop_io){.fd = fd, .cb = init_gone_cb, .data = c};
	if (c->rt->cfg.plugin->init_pid(c->handle) != c->init ||
	    loop_io_add(c->rt->cfg.loop, &c->init_io, EPOLLIN, &e) < 0) {
		close(fd);
		return;
	}
	c->init_fd = fd;
}

static void plugin_release(struct rt_ctr *c)
{
	ctr_init_unwatch(c);
	if (c->handle)
		c->rt->cfg.plugin->release(c->handle);
	c->handle = NULL;
	c->keeper = 0;
	c->init = 0;
}

/* ---- actions ---- */

static enum rt_event act_nop(struct rt_ctr *c, enum rt_event ev)
{
	log_debug("container %s: %s in state %s: nothing to do", c->name, ctr_event_name(ev),
		  ctr_state_name(c->state));
	return EV_NONE;
}

static enum rt_event act_unexpected(struct rt_ctr *c, enum rt_event ev)
{
	log_warn("container %s: unexpected event %s in state %s: ignored", c->name,
		 ctr_event_name(ev), ctr_state_name(c->state));
	return EV_NONE;
}

static enum rt_event act_mount(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	struct err e = ERR_INIT;
	if (ctr_mount(c, &e) < 0) {
		rt_textf(c->reason, sizeof(c->reason), "mount: %s", e.msg);
		return EV_MOUNT_FAIL;
	}
	return EV_MOUNT_OK;
}

static enum rt_event act_mounted(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	set_state(c, CTR_MOUNTED);
	if (c->goal != RT_GOAL_MOUNTED)
		return EV_START;
	log_info("container %s: mounted", c->name);
	goal_reach(c);
	return EV_NONE;
}

static enum rt_event act_mount_fail(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	log_err("container %s: %s", c->name, c->reason);
	ctr_unmount(c);
	set_state(c, CTR_FAILED);
	rt_event_push(c, RT_CTR_FAILED);
	char how[RT_REASON_MAX];
	rt_textf(how, sizeof(how), ": %s", c->reason);
	ctr_goal_miss(c, how);
	return EV_NONE;
}

/* A MOUNTED goal never spawns; every other goal runs the container. */
static enum rt_event act_spawn(struct rt_ctr *c, enum rt_event ev)
{
	if (c->goal == RT_GOAL_MOUNTED)
		return act_nop(c, ev);
	struct err e = ERR_INIT;
	if (ctr_spawn(c, &e) < 0) {
		log_err("container %s: %s", c->name, e.msg);
		ctr_log_note(c, "cannot start: %s", e.msg);
		c->exit_code = PLUGIN_EXIT_START_FAILED;
		return EV_EXITED;
	}
	return EV_SPAWNED;
}

/* Every ms for the first RT_POLL_FAST_FOR_NS after the spawn, then every
 * RT_POLL_NS: the init is usually there within tens of ms. */
static void poll_again(struct rt_ctr *c)
{
	bool fast = now_ns() - c->spawned_at < RT_POLL_FAST_FOR_NS;
	timer_in(c, fast ? RT_POLL_FAST_NS : RT_POLL_NS);
}

static enum rt_event act_starting(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	c->ready_early = false;
	set_state(c, CTR_STARTING);
	poll_again(c);
	return EV_NONE;
}

static enum rt_event act_poll(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	pid_t pid = c->rt->cfg.plugin->init_pid(c->handle);
	if (pid > 0) {
		c->init = pid;
		return EV_INIT_SEEN;
	}
	poll_again(c);
	return EV_NONE;
}

static enum rt_event act_started(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	c->up_since = now_ns();
	set_state(c, CTR_STARTED);
	log_info("container %s: started, init pid %d", c->name, (int)c->init);
	if (c->goal == RT_GOAL_STARTED)
		goal_reach(c);
	return c->ready_early ? EV_READY : EV_NONE;
}

static enum rt_event act_ready_early(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	c->ready_early = true;
	return EV_NONE;
}

static enum rt_event act_ready(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	set_state(c, CTR_READY);
	log_info("container %s: ready", c->name);
	if (c->goal == RT_GOAL_READY)
		goal_reach(c); /* a STARTED goal was reached at INIT_SEEN */
	return EV_NONE;
}

/* Not restarted: a clean exit stops it, anything else is a failure. */
static void exit_final(struct rt_ctr *c, bool failure)
{
	ctr_log_note(c, "%s; not restarted (restart policy)", c->reason);
	ctr_unmount(c);
	set_state(c, failure ? CTR_FAILED : CTR_STOPPED);
	log_warn("container %s: %s; not restarted", c->name, c->reason);
	if (failure)
		rt_event_push(c, RT_CTR_FAILED);
	if (failure && c->rt->phase == RT_STARTING && c->goal_reached) {
		char msg[RT_REASON_MAX];
		rt_textf(msg, sizeof(msg), "container %s: failed: %s", c->name, c->reason);
		rt_start_failed(c->rt, msg);
	}
	char how[RT_REASON_MAX];
	rt_textf(how, sizeof(how), ": %s", c->reason);
	ctr_goal_miss(c, how);
}

static enum rt_event act_exited(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	plugin_release(c);
	exit_reason(c);
	rt_event_push(c, RT_CTR_EXITED);
	bool failure = c->exit_code != 0;
	/* an apply's retiree is on its way out: never restarted */
	bool again = !c->retiring && (c->restart == RT_RESTART_ALWAYS ||
				      (c->restart == RT_RESTART_ON_FAILURE && failure));
	if (!again) {
		exit_final(c, failure);
		return EV_NONE;
	}
	uint64_t now = now_ns();
	if (c->up_since && now - c->up_since > RT_STABLE_NS)
		c->fails = 0;
	c->up_since = 0;
	unsigned ms = ctr_backoff_ms(&c->rt->cfg, c->fails);
	if (c->fails < 64)
		c->fails++;
	ctr_log_note(c, "%s; restarting in %u ms", c->reason, ms);
	log_warn("container %s: %s; restarting in %u ms", c->name, c->reason, ms);
	set_state(c, CTR_BACKOFF);
	timer_in(c, ms * RT_NS_PER_MS);
	return EV_NONE;
}

static enum rt_event act_stop_idle(struct rt_ctr *c, enum rt_event ev);

static enum rt_event act_restart(struct rt_ctr *c, enum rt_event ev)
{
	if (c->retiring)
		return act_stop_idle(c, ev);
	c->restarts++;
	set_state(c, c->mnt_rootfs ? CTR_MOUNTED : CTR_STOPPED);
	return EV_START;
}

/* BACKOFF + START (the operator): restart now, with a fresh backoff. */
static enum rt_event act_restart_now(struct rt_ctr *c, enum rt_event ev)
{
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	c->fails = 0;
	return act_restart(c, ev);
}

/* STOPPING + START (the operator): start again once it is down. */
static enum rt_event act_start_later(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	c->start_after_stop = true;
	return EV_NONE;
}

/* FAILED + START: an explicit new attempt (fresh backoff). */
static enum rt_event act_retry(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	c->fails = 0;
	set_state(c, CTR_STOPPED);
	return EV_START;
}

static enum rt_event act_stop_running(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	const struct plugin_ops *p = c->rt->cfg.plugin;
	set_state(c, CTR_STOPPING);
	c->kill_sent = false;
	init_watch(c);
	/* While STARTING the init may not be known yet: liblxc's monitor (the
	 * keeper) forwards the signal to the init once it runs. */
	if (p->signal(c->handle, c->stop_signal) < 0 && c->keeper > 0 &&
	    kill(c->keeper, c->stop_signal) < 0)
		log_warn("container %s: cannot signal: %s", c->name, strerror(errno));
	log_info("container %s: stopping (SIG%s, SIGKILL after %u s)", c->name,
		 sigabbrev_np(c->stop_signal) ? sigabbrev_np(c->stop_signal) : "?",
		 c->rt->cfg.stop_grace_s);
	timer_in(c, (uint64_t)c->rt->cfg.stop_grace_s * RT_NS_PER_S);
	return EV_NONE;
}

static enum rt_event act_stop_grace(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	if (!c->kill_sent) {
		log_warn("container %s: still running after %u s: SIGKILL", c->name,
			 c->rt->cfg.stop_grace_s);
		c->kill_sent = true;
		if (c->rt->cfg.plugin->signal(c->handle, SIGKILL) == 0) {
			timer_in(c, RT_KILL_AGAIN_NS);
			return EV_NONE;
		}
	}
	/* The init is gone or unknown and the keeper lingers: kill the keeper
	 * (liblxc gives the init a parent-death SIGKILL). */
	log_warn("container %s: killing keeper %d", c->name, (int)c->keeper);
	if (c->keeper > 0)
		kill(c->keeper, SIGKILL);
	timer_in(c, RT_KILL_AGAIN_NS);
	return EV_NONE;
}

static enum rt_event act_stopped(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	plugin_release(c);
	ctr_log_note(c, "stopped");
	ctr_unmount(c);
	set_state(c, CTR_STOPPED);
	log_info("container %s: stopped", c->name);
	if (!c->start_after_stop)
		return EV_NONE;
	c->start_after_stop = false;
	c->fails = 0;
	return EV_START;
}

static enum rt_event act_stop_idle(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	ctr_unmount(c);
	set_state(c, CTR_STOPPED);
	return EV_NONE;
}

static enum rt_event act_group_timeout(struct rt_ctr *c, enum rt_event ev)
{
	(void)ev;
	if (c->goal_reached || c->goal_missed)
		return EV_NONE;
	const struct rt_group *g = &c->rt->cur.groups[c->group];
	char why[RT_REASON_MAX];
	if (c->reason[0])
		rt_textf(why, sizeof(why), " within %u s (last: %s)", g->timeout_s, c->reason);
	else
		rt_textf(why, sizeof(why), " within %u s", g->timeout_s);
	rt_textf(c->reason, sizeof(c->reason), "goal %s not reached within %u s", goal_name(c->goal),
		 g->timeout_s);
	ctr_goal_miss(c, why);
	return EV_NONE;
}

/* ---- the table ---- */

#define NOP act_nop
#define BAD act_unexpected
#define GTO act_group_timeout

static const ctr_action table[CTR_STATE_COUNT][EV_COUNT] = {
	/*      START            MOUNT_OK     MOUNT_FAIL      SPAWNED       INIT_SEEN
	 *      READY            EXITED       STOP              TIMER           GROUP_TIMEOUT */
	[CTR_STOPPED] = {
		act_mount,       act_mounted, act_mount_fail, BAD,          BAD,
		NOP,             BAD,         NOP,              NOP,            GTO,
	},
	[CTR_MOUNTED] = {
		act_spawn,       BAD,         BAD,            act_starting, BAD,
		NOP,             act_exited,  act_stop_idle,    NOP,            GTO,
	},
	[CTR_STARTING] = {
		NOP,             BAD,         BAD,            BAD,          act_started,
		act_ready_early, act_exited,  act_stop_running, act_poll,       GTO,
	},
	[CTR_STARTED] = {
		NOP,             BAD,         BAD,            BAD,          BAD,
		act_ready,       act_exited,  act_stop_running, NOP,            GTO,
	},
	[CTR_READY] = {
		NOP,             BAD,         BAD,            BAD,          BAD,
		NOP,             act_exited,  act_stop_running, NOP,            GTO,
	},
	[CTR_STOPPING] = {
		act_start_later, BAD,         BAD,            BAD,          NOP,
		NOP,             act_stopped, NOP,              act_stop_grace, GTO,
	},
	[CTR_BACKOFF] = {
		act_restart_now, BAD,         BAD,            BAD,          BAD,
		NOP,             BAD,         act_stop_idle,    act_restart,    GTO,
	},
	[CTR_FAILED] = {
		act_retry,       BAD,         BAD,            BAD,          BAD,
		NOP,             BAD,         act_stop_idle,    NOP,            GTO,
	},
};

void ctr_event(struct rt_ctr *c, enum rt_event ev)
{
	/* Follow-ups are bounded: the longest chain is STOPPING EXITED (with a
	 * start asked for) -> START->MOUNT_OK->START->SPAWNED (or EXITED). */
	for (unsigned n = 0; ev != EV_NONE && n < 8; n++) {
		if ((unsigned)ev >= EV_COUNT || (unsigned)c->state >= CTR_STATE_COUNT) {
			log_err("container %s: event %d in state %d out of range", c->name, (int)ev,
				(int)c->state);
			return;
		}
		log_debug("container %s: %s in %s (at %llu ms)", c->name, ctr_event_name(ev),
			  ctr_state_name(c->state),
			  (unsigned long long)(now_ns() / RT_NS_PER_MS));
		ev = table[c->state][ev](c, ev);
	}
}

void ctr_timer_cb(struct loop_timer *t)
{
	ctr_event(t->data, EV_TIMER);
}
