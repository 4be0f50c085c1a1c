/* runtime/load.c — runtime_load: every spec field checked (the runtime is
 * handed resolved specs, but names and paths still become host paths and
 * fstab lines), then copied into tables sized once. */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "runtime_internal.h"

#define STOP_SIGNAL_KEY "lxc.signal.stop"

static void ctr_free_fields(struct rt_ctr *c)
{
	free(c->image);
	if (c->argv)
		for (char **p = c->argv; *p; p++)
			free(*p);
	free(c->argv);
	for (size_t i = 0; c->vols && i < c->nvols; i++) {
		free(c->vols[i].path);
		free(c->vols[i].source);
	}
	free(c->vols);
	for (size_t i = 0; c->kv && i < c->nkv; i++) {
		free((char *)c->kv[i].key);
		free((char *)c->kv[i].value);
	}
	free(c->kv);
	free(c->ctrl_socket);
}

/* Releases memory, fds and timers. Processes and mounts are the caller's
 * to end first; what still runs is only logged. */
void rt_ctr_drop(struct rt_ctr *c)
{
	if (!c)
		return;
	if (!ctr_is_idle(c))
		log_warn("container %s: freed while %s", c->name, ctr_state_name(c->state));
	loop_timer_disarm(c->rt->cfg.loop, &c->timer);
	ctr_init_unwatch(c);
	ctr_console_close(c);
	if (c->handle)
		c->rt->cfg.plugin->release(c->handle);
	ctr_free_fields(c);
	free(c);
}

void rt_set_free(struct runtime *rt, struct rt_set *s)
{
	for (size_t g = 0; s->groups && g < s->ngroups; g++)
		loop_timer_disarm(rt->cfg.loop, &s->groups[g].timer);
	for (size_t i = 0; s->ctrs && i < s->nctrs; i++)
		rt_ctr_drop(s->ctrs[i]);
	free(s->ctrs);
	free(s->groups);
	*s = (struct rt_set){.rev = ""};
}

/* "TERM", "SIGTERM", "sigterm" or a number 1..NSIG-1, as liblxc reads
 * lxc.signal.stop (SIGRTMIN+n is not accepted: say it as a number). */
int rt_signal_parse(const char *s, int *sig)
{
	if (!s || !*s)
		return -EINVAL;
	if (s[0] >= '0' && s[0] <= '9') {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (errno || *end || v < 1 || v >= NSIG)
			return -EINVAL;
		*sig = (int)v;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (int n = 1; n < NSIG; n++) {
		const char *abbrev = sigabbrev_np(n);
		if (abbrev && strcasecmp(s, abbrev) == 0) {
			*sig = n;
			return 0;
		}
	}
	return -EINVAL;
}

/* Absolute, no "..", no blank or control characters (paths become fstab
 * fields and mount targets). */
static bool path_ok(const char *p)
{
	if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
		return false;
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return false;
	for (const char *q = p; (q = strstr(q, "..")); q += 2)
		if (q[-1] == '/' && (q[2] == '/' || q[2] == '\0'))
			return false;
	return true;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static int load_argv(struct rt_ctr *c, const struct rt_ctr_spec *s, const char *f, struct err *e)
{
	size_t n = 0;
	while (s->argv && s->argv[n] && n <= RT_MAX_ARGV)
		n++;
	if (n == 0)
		return err_field(e, EINVAL, f, "argv is empty: the container needs a program");
	if (n > RT_MAX_ARGV)
		return err_field(e, E2BIG, f, "argv has more than %d entries", RT_MAX_ARGV);
	c->argv = calloc(n + 1, sizeof(*c->argv));
	if (!c->argv)
		return err_set(e, ENOMEM, "out of memory");
	bool oom = false;
	for (size_t i = 0; i < n; i++)
		c->argv[i] = dup_or_null(s->argv[i], &oom);
	return oom ? err_set(e, ENOMEM, "out of memory") : 0;
}

static int load_vols(struct rt_ctr *c, const struct rt_ctr_spec *s, const char *f, struct err *e)
{
	char vf[ERR_FIELD_MAX];
	if (s->nvolumes > RT_MAX_VOLUMES)
		return err_field(e, E2BIG, f, "%zu volumes, at most %d", s->nvolumes, RT_MAX_VOLUMES);
	c->vols = calloc(s->nvolumes + 1, sizeof(*c->vols));
	if (!c->vols)
		return err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; i < s->nvolumes; i++) {
		const struct rt_volume *v = &s->volumes[i];
		c->nvols = i + 1; /* counted before filled: a failure frees it */
		rt_textf(vf, sizeof(vf), "%s.volumes[%zu]", f, i);
		if (!name_valid(v->name))
			return err_field(e, EINVAL, vf, "name is not [a-z0-9][a-z0-9_-]{0,31}");
		for (size_t k = 0; k < i; k++)
			if (strcmp(s->volumes[k].name, v->name) == 0)
				return err_field(e, EINVAL, vf, "duplicate volume name %s", v->name);
		if (!path_ok(v->path) || strcmp(v->path, "/") == 0)
			return err_field(e, EINVAL, vf,
					 "path must be absolute, not /, without '..' or blanks");
		if ((unsigned)v->persistence > RT_PERSIST_BOOT)
			return err_field(e, EINVAL, vf, "unknown persistence %d", (int)v->persistence);
		memcpy(c->vols[i].name, v->name, sizeof(c->vols[i].name));
		c->vols[i].persistence = v->persistence;
		if (!(c->vols[i].path = strdup(v->path)))
			return err_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

static int load_kv(struct rt_ctr *c, const struct rt_ctr_spec *s, const char *f, struct err *e)
{
	if (s->nlxc > RT_MAX_KV)
		return err_field(e, E2BIG, f, "%zu lxc keys, at most %d", s->nlxc, RT_MAX_KV);
	c->kv = calloc(s->nlxc + 1, sizeof(*c->kv));
	if (!c->kv)
		return err_set(e, ENOMEM, "out of memory");
	c->stop_signal = SIGTERM;
	for (size_t i = 0; i < s->nlxc; i++) {
		const struct rt_kv *kv = &s->lxc[i];
		c->nkv = i + 1;
		char kf[ERR_FIELD_MAX];
		rt_textf(kf, sizeof(kf), "%s.lxc.%s", f, kv->key ? kv->key : "?");
		if (!kv->key || !kv->value)
			return err_field(e, EINVAL, kf, "key or value missing");
		if (strcmp(kv->key, STOP_SIGNAL_KEY) == 0 &&
		    rt_signal_parse(kv->value, &c->stop_signal) < 0)
			return err_field(e, EINVAL, kf, "'%s' is not a signal", kv->value);
		bool oom = false;
		c->kv[i].key = dup_or_null(kv->key, &oom);
		c->kv[i].value = dup_or_null(kv->value, &oom);
		if (oom)
			return err_set(e, ENOMEM, "out of memory");
	}
	return 0;
}

/* Everything a free needs is set before anything can fail. */
static struct rt_ctr *ctr_alloc(struct runtime *rt, size_t index)
{
	struct rt_ctr *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->rt = rt;
	c->index = index;
	c->con_rd = c->con_wr = -1;
	c->init_fd = -1;
	c->timer = (struct loop_timer){.cb = ctr_timer_cb, .data = c};
	c->pending_start = true;
	return c;
}

static int load_ctr(struct rt_ctr *c, const struct rt_ctr_spec *s, size_t ngroups, struct err *e)
{
	char f[ERR_FIELD_MAX];
	rt_textf(f, sizeof(f), "containers[%zu]", c->index);
	if (!name_valid(s->name))
		return err_field(e, EINVAL, f, "name is not [a-z0-9][a-z0-9_-]{0,31}");
	if (s->group >= ngroups)
		return err_field(e, EINVAL, f, "group %u does not exist (%zu groups)", s->group,
				 ngroups);
	if (!path_ok(s->image))
		return err_field(e, EINVAL, f, "image must be an absolute path");
	if ((unsigned)s->goal > RT_GOAL_READY || (unsigned)s->restart > RT_RESTART_ALWAYS)
		return err_field(e, EINVAL, f, "unknown status goal or restart policy");
	if (s->ctrl_socket && !path_ok(s->ctrl_socket))
		return err_field(e, EINVAL, f, "ctrl_socket must be an absolute path");
	memcpy(c->name, s->name, sizeof(c->name));
	c->group = s->group;
	c->goal = s->goal;
	c->restart = s->restart;
	bool oom = false;
	c->image = dup_or_null(s->image, &oom);
	c->ctrl_socket = dup_or_null(s->ctrl_socket, &oom);
	if (oom)
		return err_set(e, ENOMEM, "out of memory");
	int r = load_argv(c, s, f, e);
	if (r == 0)
		r = load_vols(c, s, f, e);
	if (r == 0)
		r = load_kv(c, s, f, e);
	return r;
}

static int load_groups(struct runtime *rt, struct rt_group *g, const struct rt_group_spec *gs,
		       size_t n, struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		char f[ERR_FIELD_MAX];
		rt_textf(f, sizeof(f), "groups[%zu]", i);
		if (!name_valid(gs[i].name))
			return err_field(e, EINVAL, f, "name is not [a-z0-9][a-z0-9_-]{0,31}");
		for (size_t k = 0; k < i; k++)
			if (strcmp(gs[k].name, gs[i].name) == 0)
				return err_field(e, EINVAL, f, "duplicate group %s", gs[i].name);
		g[i] = (struct rt_group){.rt = rt, .index = i, .timeout_s = gs[i].timeout_s};
		memcpy(g[i].name, gs[i].name, sizeof(g[i].name));
		g[i].timer = (struct loop_timer){.cb = rt_group_timer_cb, .data = &g[i]};
	}
	return 0;
}

static bool rev_ok(const char *rev)
{
	size_t n = rev ? strlen(rev) : 0;
	if (n == 0 || n > RT_REV_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (rev[i] < '0' || rev[i] > '9')
			return false;
	return true;
}

static int set_check(const char *rev, size_t ngroups, size_t nctrs, struct err *e)
{
	if (!rev_ok(rev))
		return err_field(e, EINVAL, "revision", "'%s' is not a decimal revision number",
				 rev ? rev : "");
	if (ngroups > RT_MAX_GROUPS)
		return err_field(e, E2BIG, "groups", "%zu groups, at most %d", ngroups, RT_MAX_GROUPS);
	if (nctrs > RT_MAX_CTRS)
		return err_field(e, E2BIG, "containers", "%zu containers, at most %d", nctrs,
				 RT_MAX_CTRS);
	return 0;
}

static int names_unique(struct rt_ctr *const *ctrs, size_t n, struct err *e)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(ctrs[i]->name, ctrs[k]->name) == 0)
				return err_field(e, EINVAL, "containers", "duplicate container %s",
						 ctrs[i]->name);
	return 0;
}

static int set_fill(struct runtime *rt, struct rt_set *s, const struct rt_group_spec *groups,
		    const struct rt_ctr_spec *ctrs, size_t nctrs, struct err *e)
{
	int r = load_groups(rt, s->groups, groups, s->ngroups, e);
	for (size_t i = 0; r == 0 && i < nctrs; i++) {
		if (!(s->ctrs[i] = ctr_alloc(rt, i)))
			return err_set(e, ENOMEM, "runtime: out of memory");
		r = load_ctr(s->ctrs[i], &ctrs[i], s->ngroups, e);
	}
	return r == 0 ? names_unique(s->ctrs, nctrs, e) : r;
}

int rt_set_build(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		 size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, struct rt_set *out,
		 struct err *e)
{
	int r = set_check(rev, ngroups, nctrs, e);
	if (r < 0)
		return r;
	struct rt_set s = {.ngroups = ngroups, .nctrs = nctrs};
	memcpy(s.rev, rev, strlen(rev) + 1);
	s.groups = calloc(ngroups + 1, sizeof(*s.groups));
	s.ctrs = calloc(nctrs + 1, sizeof(*s.ctrs));
	r = s.groups && s.ctrs ? set_fill(rt, &s, groups, ctrs, nctrs, e)
			       : err_set(e, ENOMEM, "runtime: out of memory");
	if (r < 0) {
		rt_set_free(rt, &s);
		return r;
	}
	*out = s;
	return 0;
}

int runtime_load(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		 size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, struct err *e)
{
	if (rt->phase != RT_IDLE && rt->phase != RT_STOPPED)
		return err_set(e, EBUSY, "runtime: containers still run: stop them first");
	for (size_t i = 0; i < rt->cur.nctrs; i++)
		if (!ctr_is_idle(rt->cur.ctrs[i]))
			return err_set(e, EBUSY, "runtime: container %s is %s: stop it first",
				       rt->cur.ctrs[i]->name,
				       ctr_state_name(rt->cur.ctrs[i]->state));
	struct rt_set s;
	int r = rt_set_build(rt, rev, groups, ngroups, ctrs, nctrs, &s, e);
	if (r < 0)
		return r;
	rt_set_free(rt, &rt->cur);
	rt->cur = s;
	rt->phase = RT_IDLE;
	log_info("revision %s: %zu containers in %zu groups loaded", rev, nctrs, ngroups);
	return 0;
}
