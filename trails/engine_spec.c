/* trails/engine_spec.c — a verified revision as the runtime needs it, and
 * what a switch between two revisions needs (live or reboot).
 *
 * The runtime knows nothing of revisions: it gets resolved specs (object
 * paths, mapped enums, the host path of each control socket). Control
 * sockets belong to the control API, which only the orchestrator knows, so
 * they are asked for through hooks.ctr_socket ("create or keep": a kept
 * container keeps its socket inode, which is bind-mounted inside it). */
#define LOG_MODULE "trails"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

/* Built for one runtime_apply (which copies what it keeps), freed after. */
struct tr_specs {
	struct rt_group_spec groups[REV_MAX_GROUPS];
	struct rt_ctr_spec ctrs[REV_MAX_CONTAINERS];
	char images[REV_MAX_CONTAINERS][PATH_MAX];
	char sockets[REV_MAX_CONTAINERS][PATH_MAX];
	char **argv[REV_MAX_CONTAINERS];
	struct rt_volume *vols[REV_MAX_CONTAINERS];
	struct rt_kv *kvs[REV_MAX_CONTAINERS];
};

static void specs_free(struct tr_specs *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < REV_MAX_CONTAINERS; i++) {
		free(sp->argv[i]);
		free(sp->vols[i]);
		free(sp->kvs[i]);
	}
	free(sp);
}
DEFINE_FREEP(struct tr_specs, specs_free)

static const enum rt_goal goal_map[] = {
	[GOAL_MOUNTED] = RT_GOAL_MOUNTED, [GOAL_STARTED] = RT_GOAL_STARTED, [GOAL_READY] = RT_GOAL_READY};
static const enum rt_restart restart_map[] = {[RESTART_NO] = RT_RESTART_NO,
					      [RESTART_ON_FAILURE] = RT_RESTART_ON_FAILURE,
					      [RESTART_ALWAYS] = RT_RESTART_ALWAYS};
static const enum rt_persist persist_map[] = {[PERSIST_PERMANENT] = RT_PERSIST_PERMANENT,
					      [PERSIST_REVISION] = RT_PERSIST_REVISION,
					      [PERSIST_BOOT] = RT_PERSIST_BOOT};

static unsigned ctr_roles(const struct rev_container *c)
{
	unsigned roles = 0;
	for (size_t k = 0; k < c->nroles; k++)
		if (strcmp(c->roles[k], "mgmt") == 0)
			roles |= TRAILS_ROLE_MGMT;
	return roles;
}

static int spec_socket(struct trails *tr, const struct rev_container *c, struct tr_specs *sp,
		       size_t i, struct err *e)
{
	const struct trails_hooks *h = &tr->cfg.hooks;
	if (!h->ctr_socket) {
		sp->ctrs[i].ctrl_socket = NULL;
		return 0;
	}
	int r = h->ctr_socket(h->data, c->name, ctr_roles(c), sp->sockets[i],
			      sizeof(sp->sockets[i]), e);
	if (r < 0)
		return err_prefix(e, "container %s: control socket", c->name);
	sp->ctrs[i].ctrl_socket = sp->sockets[i];
	return 0;
}

static int spec_lists(const struct rev_container *c, struct tr_specs *sp, size_t i,
		      struct err *e)
{
	sp->argv[i] = calloc(c->nexec + 1, sizeof(char *));
	sp->vols[i] = calloc(c->nvolumes + 1, sizeof(struct rt_volume));
	sp->kvs[i] = calloc(c->nlxc + 1, sizeof(struct rt_kv));
	if (!sp->argv[i] || !sp->vols[i] || !sp->kvs[i])
		return err_set(e, ENOMEM, "container %s: out of memory", c->name);
	for (size_t k = 0; k < c->nexec; k++)
		sp->argv[i][k] = c->exec[k];
	for (size_t k = 0; k < c->nvolumes; k++) {
		memcpy(sp->vols[i][k].name, c->volumes[k].name, sizeof(sp->vols[i][k].name));
		sp->vols[i][k].path = c->volumes[k].path;
		sp->vols[i][k].persistence = persist_map[c->volumes[k].persistence];
	}
	for (size_t k = 0; k < c->nlxc; k++) {
		sp->kvs[i][k].key = c->lxc[k].key;
		sp->kvs[i][k].value = c->lxc[k].value;
	}
	return 0;
}

static int spec_ctr(struct trails *tr, const struct revision *rev, struct tr_specs *sp, size_t i,
		    struct err *e)
{
	const struct rev_container *c = &rev->containers[i];
	struct rt_ctr_spec *s = &sp->ctrs[i];
	memcpy(s->name, c->name, sizeof(s->name));
	s->group = c->group;
	s->goal = goal_map[c->goal];
	s->restart = restart_map[c->restart];
	if (storage_object_path(tr->cfg.storage, &c->rootfs.digest, sp->images[i],
				sizeof(sp->images[i])) < 0)
		return err_set(e, ENAMETOOLONG, "container %s: image path too long", c->name);
	s->image = sp->images[i];
	int r = spec_lists(c, sp, i, e);
	if (r < 0)
		return r;
	s->argv = sp->argv[i];
	s->volumes = sp->vols[i];
	s->nvolumes = c->nvolumes;
	s->lxc = sp->kvs[i];
	s->nlxc = c->nlxc;
	return spec_socket(tr, c, sp, i, e);
}

int tr_apply(struct trails *tr, const struct revision *r, runtime_started_cb cb, struct err *e)
{
	if (!tr->cfg.rt)
		return err_set(e, ENOSYS, "no runtime");
	_cleanup_(specs_freep) struct tr_specs *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return err_set(e, ENOMEM, "out of memory");
	for (size_t g = 0; g < r->ngroups; g++) {
		memcpy(sp->groups[g].name, r->groups[g].name, sizeof(sp->groups[g].name));
		sp->groups[g].timeout_s = r->groups[g].timeout_s;
	}
	int ret;
	for (size_t i = 0; i < r->ncontainers; i++)
		if ((ret = spec_ctr(tr, r, sp, i, e)) < 0)
			return ret;
	char rev[24];
	if (str_fmt(rev, sizeof(rev), "%llu", (unsigned long long)r->number) < 0)
		return err_set(e, EINVAL, "revision number");
	ret = runtime_apply(tr->cfg.rt, rev, sp->groups, r->ngroups, sp->ctrs, r->ncontainers, cb,
			    tr, e);
	if (ret < 0)
		return err_prefix(e, "revision %s", rev);
	return 0;
}

/* ---- live or reboot ---- */

static bool has_revision_volume(const struct rev_container *c)
{
	for (size_t k = 0; k < c->nvolumes; k++)
		if (c->volumes[k].persistence == PERSIST_REVISION)
			return true;
	return false;
}

/* Would the runtime restart it? (Same rule as runtime_apply: a container
 * with a `revision` volume differs in every revision.) */
static bool ctr_differs(const struct revision *ra, const struct rev_container *a,
			const struct revision *rb, const struct rev_container *b)
{
	if (!a || !b)
		return true;
	return !revision_container_equal(a, b) ||
	       strcmp(ra->groups[a->group].name, rb->groups[b->group].name) != 0 ||
	       has_revision_volume(a);
}

bool tr_needs_reboot(const struct revision *from, const struct revision *to)
{
	if (!from)
		return to->bsp.present;
	if (!revision_bsp_equal(&from->bsp, &to->bsp))
		return true;
	for (size_t i = 0; i < to->ncontainers; i++) {
		const struct rev_container *b = &to->containers[i];
		const struct rev_container *a = revision_container(from, b->name);
		if (ctr_differs(from, a, to, b) && b->update == UPDATE_REBOOT)
			return true;
	}
	for (size_t i = 0; i < from->ncontainers; i++) {
		const struct rev_container *a = &from->containers[i];
		if (!revision_container(to, a->name) && a->update == UPDATE_REBOOT)
			return true;
	}
	return false;
}

void tr_drop_sockets(struct trails *tr, const struct revision *gone, const struct revision *kept)
{
	const struct trails_hooks *h = &tr->cfg.hooks;
	if (!gone || !h->ctr_socket_drop)
		return;
	for (size_t i = 0; i < gone->ncontainers; i++) {
		const char *name = gone->containers[i].name;
		if (!kept || !revision_container(kept, name))
			h->ctr_socket_drop(h->data, name);
	}
}
