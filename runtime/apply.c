/* runtime/apply.c — runtime_apply: make the running set equal to a new
 * revision's with the least disruption (runtime/README.md, "Apply").
 *
 *   1. the new set is built and checked apart (on error nothing changed);
 *   2. diff by name: an identical spec is kept (the same object, moved into
 *      the new set with its keeper, mounts, console and timers); the others
 *      (changed or removed) stay in `old`, and the new set becomes `cur`
 *      at once (status, runtime_find, operator calls see the new revision);
 *   3. RETIRING: group.c stops `old`, last group first, each group once the
 *      later ones are down, and frees it;
 *   4. rt_retired -> STARTING: group by group, only new, changed and not
 *      running containers get START; kept ones count with their live state. */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <string.h>

#include "../lib/log.h"
#include "runtime_internal.h"

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool argv_same(char *const *a, char *const *b)
{
	size_t i = 0;
	for (; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return !a[i] && !b[i];
}

/* Volumes resolve to their host directory: permanent/<c>/<v> and the boot
 * tmpfs do not depend on the revision, revision/<rev>/<c>/<v> does. */
static bool vols_same(const struct rt_ctr *o, const char *orev, const struct rt_ctr *n,
		      const char *nrev)
{
	if (o->nvols != n->nvols)
		return false;
	for (size_t i = 0; i < o->nvols; i++) {
		const struct rt_vol *a = &o->vols[i], *b = &n->vols[i];
		if (strcmp(a->name, b->name) != 0 || strcmp(a->path, b->path) != 0 ||
		    a->persistence != b->persistence)
			return false;
		if (a->persistence == RT_PERSIST_REVISION && strcmp(orev, nrev) != 0)
			return false;
	}
	return true;
}

static bool kv_same(const struct rt_ctr *o, const struct rt_ctr *n)
{
	if (o->nkv != n->nkv)
		return false;
	for (size_t i = 0; i < o->nkv; i++) /* in order: liblxc applies them in order */
		if (strcmp(o->kv[i].key, n->kv[i].key) != 0 ||
		    strcmp(o->kv[i].value, n->kv[i].value) != 0)
			return false;
	return true;
}

/* The resolved spec of a running container `o` (current set) equals `n`'s. */
static bool spec_same(const struct runtime *rt, const struct rt_ctr *o, const struct rt_set *next,
		      const struct rt_ctr *n)
{
	return strcmp(o->name, n->name) == 0 &&
	       strcmp(rt->cur.groups[o->group].name, next->groups[n->group].name) == 0 &&
	       strcmp(o->image, n->image) == 0 && argv_same(o->argv, n->argv) &&
	       o->goal == n->goal && o->restart == n->restart &&
	       vols_same(o, rt->cur.rev, n, next->rev) && kv_same(o, n) &&
	       str_same(o->ctrl_socket, n->ctrl_socket);
}

static struct rt_ctr *cur_find(const struct runtime *rt, const char *name)
{
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		if (strcmp(rt->cur.ctrs[i]->name, name) == 0)
			return rt->cur.ctrs[i];
	return NULL;
}

static void changes_add(struct runtime *rt, const char *name)
{
	size_t len = strlen(rt->changes);
	rt_textf(rt->changes + len, sizeof(rt->changes) - len, "%s%s", len ? "," : "", name);
}

/* Kept: same resolved spec, and not on its way down (a STOPPING container
 * is replaced, which starts it again). */
static struct rt_ctr *keepable(const struct runtime *rt, const struct rt_set *next,
			       const struct rt_ctr *n)
{
	struct rt_ctr *o = cur_find(rt, n->name);
	if (!o || o->kept || o->state == CTR_STOPPING || !spec_same(rt, o, next, n))
		return NULL;
	return o;
}

/* The list names what retires, then what starts (a changed container once). */
static void changes_list(struct runtime *rt, const struct rt_set *next)
{
	rt->changes[0] = '\0';
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		if (!rt->cur.ctrs[i]->kept)
			changes_add(rt, rt->cur.ctrs[i]->name);
	for (size_t i = 0; i < next->nctrs; i++) {
		const struct rt_ctr *c = next->ctrs[i], *o = cur_find(rt, c->name);
		if ((!c->kept || !ctr_is_up(c)) && !(o && !o->kept))
			changes_add(rt, c->name);
	}
}

/* A changed container whose predecessor runs is prepared now, beside it
 * (image, overlay, console, plugin config; volumes are bound only by the
 * spawn), so that its service gap is the stop and the spawn alone. A goal
 * MOUNTED container has no gap to shorten: it mounts when its group starts.
 * On error every preparation is undone and nothing changed. */
static int prepare_replacements(struct runtime *rt, struct rt_set *next, struct err *e)
{
	for (size_t i = 0; i < next->nctrs; i++) {
		struct rt_ctr *n = next->ctrs[i], *o = cur_find(rt, n->name);
		if (!o || !ctr_is_up(o) || n->goal == RT_GOAL_MOUNTED || spec_same(rt, o, next, n))
			continue;
		int r = ctr_prepare(n, next->rev, o, e);
		if (r < 0) {
			for (size_t k = 0; k < i; k++)
				ctr_unmount(next->ctrs[k]);
			return err_prefix(e, "container %s", n->name);
		}
	}
	return 0;
}

/* Kept objects replace their twins in `next` (the twins are freed). */
static void diff(struct runtime *rt, struct rt_set *next)
{
	for (size_t i = 0; i < next->nctrs; i++) {
		struct rt_ctr *n = next->ctrs[i], *o = keepable(rt, next, n);
		if (!o)
			continue;
		o->kept = true;
		o->group = n->group; /* same group name, maybe another index */
		next->ctrs[i] = o;
		rt_ctr_drop(n);
	}
	changes_list(rt, next);
}

/* `cur` without its kept containers becomes `old`, `next` becomes `cur`. */
static void sets_switch(struct runtime *rt, struct rt_set *next)
{
	for (size_t g = 0; g < rt->cur.ngroups; g++) {
		loop_timer_disarm(rt->cfg.loop, &rt->cur.groups[g].timer);
		rt->cur.groups[g].stop_sent = false;
	}
	for (size_t i = 0; i < rt->cur.nctrs; i++) {
		struct rt_ctr *c = rt->cur.ctrs[i];
		if (c->kept) {
			rt->cur.ctrs[i] = NULL; /* lives on in next */
			continue;
		}
		c->retiring = true;
		c->start_after_stop = false;
	}
	rt->old = rt->cur;
	rt->has_old = true;
	rt->old_group = rt->old.ngroups;
	rt->cur = *next;
}

/* A kept container that runs is not started again: its goal is judged
 * by its live state when the start begins (rt_retired). */
static void ctr_enter(struct rt_ctr *c, size_t index)
{
	c->index = index;
	/* a kept one still MOUNTED below its goal was prepared, never spawned */
	c->pending_start = !c->kept || !ctr_is_up(c) ||
			   (c->state == CTR_MOUNTED && c->goal != RT_GOAL_MOUNTED);
	c->kept = false;
	c->goal_reached = c->goal_missed = false;
	c->restarts = 0;
	if (c->pending_start) {
		c->reason[0] = '\0';
		c->start_after_stop = false;
	}
}

static int apply_check(const struct runtime *rt, struct err *e)
{
	if (rt->phase == RT_STOPPING)
		return err_set(e, EBUSY, "runtime: stopping");
	if (rt_busy(rt))
		return err_set(e, EBUSY, "runtime: revision %s is still being applied",
			       rt->cur.rev);
	return 0;
}

int runtime_apply(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		  size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, runtime_started_cb cb,
		  void *data, struct err *e)
{
	int r = apply_check(rt, e);
	if (r < 0)
		return r;
	struct rt_set next;
	if ((r = rt_set_build(rt, rev, groups, ngroups, ctrs, nctrs, &next, e)) < 0)
		return err_prefix(e, "revision %s", rev ? rev : "?");
	if ((r = prepare_replacements(rt, &next, e)) < 0) {
		rt_set_free(rt, &next);
		return err_prefix(e, "revision %s", rev);
	}
	diff(rt, &next);
	log_info("revision %s: applying over %s; stopped or started: %s", rev,
		 rt->cur.rev[0] ? rt->cur.rev : "nothing", rt->changes[0] ? rt->changes : "none");
	sets_switch(rt, &next);
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		ctr_enter(rt->cur.ctrs[i], i);
	rt->gen++;
	rt->started_cb = cb;
	rt->started_data = data;
	rt->reported = false;
	rt->failed = false;
	rt->fail_reason[0] = '\0';
	rt->phase = RT_RETIRING;
	rt_schedule(rt);
	return 0;
}

void rt_retired(struct runtime *rt)
{
	for (size_t i = 0; i < rt->cur.nctrs; i++) {
		struct rt_ctr *c = rt->cur.ctrs[i];
		if (c->pending_start || c->goal_missed)
			continue;
		if (!ctr_is_up(c))
			c->pending_start = true; /* a kept one went down meanwhile */
		else
			c->goal_reached = ctr_goal_met_now(c);
	}
	log_info("revision %s: starting %zu groups", rt->cur.rev, rt->cur.ngroups);
	rt_start_phase(rt);
}

void runtime_apply_changes(const struct runtime *rt, char *buf, size_t cap)
{
	if (cap)
		rt_textf(buf, cap, "%s", rt->changes);
}
