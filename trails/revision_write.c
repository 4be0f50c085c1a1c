/* trails/revision_write.c — the canonical form of a revision (REVISION.md,
 * "Canonical form"), the list of objects it uses, lookups and freeing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "revision_internal.h"

static void ctr_free(struct rev_container *c)
{
	free(c->rootfs.src_path);
	for (size_t i = 0; c->exec && i < c->nexec; i++)
		free(c->exec[i]);
	free(c->exec);
	for (size_t i = 0; c->volumes && i < c->nvolumes; i++)
		free(c->volumes[i].path);
	free(c->volumes);
	free(c->roles);
	for (size_t i = 0; c->lxc && i < c->nlxc; i++) {
		free(c->lxc[i].key);
		free(c->lxc[i].value);
	}
	free(c->lxc);
}

void revision_free(struct revision *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->containers && i < r->ncontainers; i++)
		ctr_free(&r->containers[i]);
	free(r->containers);
	free(r->bsp.kernel.src_path);
	free(r->bsp.initrd.src_path);
	free(r->bsp.modules.src_path);
	free(r->bsp.firmware.src_path);
	free(r->bsp.cmdline);
	free(r);
}

const struct rev_container *revision_container(const struct revision *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->ncontainers; i++)
		if (strcmp(r->containers[i].name, name) == 0)
			return &r->containers[i];
	return NULL;
}

static void use_add(struct rev_object_use *out, size_t max, size_t *n,
		    const struct rev_objref *ref, const char *field)
{
	if (!ref->present)
		return;
	if (*n < max) {
		out[*n].ref = ref;
		if (str_fmt(out[*n].field, sizeof(out[*n].field), "%s", field) < 0)
			out[*n].field[0] = '\0';
	}
	(*n)++;
}

/* Fills min(total, max) entries, returns the total (REV_MAX_OBJECTS always
 * suffices). The same object used twice is listed twice. */
size_t revision_objects(const struct revision *r, struct rev_object_use *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < r->ncontainers; i++) {
		char f[sizeof(out->field)];
		if (str_fmt(f, sizeof(f), "containers[%zu].rootfs", i) < 0)
			f[0] = '\0';
		use_add(out, max, &n, &r->containers[i].rootfs, f);
	}
	if (!r->bsp.present)
		return n;
	use_add(out, max, &n, &r->bsp.kernel, "bsp.kernel");
	use_add(out, max, &n, &r->bsp.initrd, "bsp.initrd");
	use_add(out, max, &n, &r->bsp.modules, "bsp.modules");
	use_add(out, max, &n, &r->bsp.firmware, "bsp.firmware");
	return n;
}

/* ---------------- writer ---------------- */

/* What the writer relies on: a revision from revision_parse() always passes;
 * one built by hand may not, and is refused rather than written wrong. */
static int write_check_ctr(const struct revision *r, const struct rev_container *c,
			   const char *f, struct err *e)
{
	if (!name_valid(c->name) || c->group >= r->ngroups)
		return err_field(e, EINVAL, f, "invalid name or group index");
	if (!c->exec || c->nexec == 0 || c->nexec > REV_MAX_EXEC)
		return err_field(e, EINVAL, f, "exec is empty");
	for (size_t i = 0; i < c->nexec; i++)
		if (!c->exec[i])
			return err_field(e, EINVAL, f, "exec[%zu] is NULL", i);
	for (size_t i = 0; i < c->nvolumes; i++)
		if (!c->volumes[i].path || !strcmp(persistence_name(c->volumes[i].persistence), "?"))
			return err_field(e, EINVAL, f, "volumes[%zu] is incomplete", i);
	for (size_t i = 0; i < c->nlxc; i++)
		if (!c->lxc[i].key || !c->lxc[i].value)
			return err_field(e, EINVAL, f, "lxc[%zu] is incomplete", i);
	if (!strcmp(ctr_goal_name(c->goal), "?") || !strcmp(restart_policy_name(c->restart), "?") ||
	    !strcmp(rev_update_name(c->update), "?"))
		return err_field(e, EINVAL, f, "status_goal, restart or update out of range");
	return 0;
}

static int write_check(const struct revision *r, struct err *e)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	if (r->ngroups == 0 || r->ngroups > REV_MAX_GROUPS)
		return err_field(e, EINVAL, "groups", "%zu groups: 1 to %d allowed", r->ngroups,
				 REV_MAX_GROUPS);
	if (!r->containers || r->ncontainers == 0 || r->ncontainers > REV_MAX_CONTAINERS)
		return err_field(e, EINVAL, "containers", "%zu containers: 1 to %d allowed",
				 r->ncontainers, REV_MAX_CONTAINERS);
	if (r->bsp.present && !r->bsp.kernel.present)
		return err_field(e, EINVAL, "bsp.kernel", "missing: a bsp needs a kernel");
	for (size_t i = 0; i < r->ncontainers; i++) {
		char f[ERR_FIELD_MAX];
		rp_field_idx(f, "containers", i);
		int rc = write_check_ctr(r, &r->containers[i], f, e);
		if (rc < 0)
			return rc;
	}
	size_t n = revision_objects(r, uses, ARRAY_SIZE(uses));
	for (size_t i = 0; i < n; i++)
		if (uses[i].ref->src != OBJ_SRC_NONE)
			return err_field(e, EINVAL, uses[i].field,
					 "still a build source (%s): build the object with "
					 "cairn-pack first",
					 uses[i].ref->src_path ? uses[i].ref->src_path : "?");
	return 0;
}

static void write_objref(struct jw *w, const char *key, const struct rev_objref *o)
{
	char d[DIGEST_STR_LEN + 1];
	if (!o->present)
		return;
	digest_format(&o->digest, d);
	jw_key(w, key);
	jw_obj_open(w);
	jw_kv_str(w, "object", d);
	jw_kv_uint(w, "size", o->size);
	jw_kv_str(w, "format", o->format == OBJ_SQUASHFS ? "squashfs" : "raw");
	jw_obj_close(w);
}

static void write_bsp(struct jw *w, const struct rev_bsp *b)
{
	jw_key(w, "bsp");
	jw_obj_open(w);
	write_objref(w, "kernel", &b->kernel);
	write_objref(w, "initrd", &b->initrd);
	write_objref(w, "modules", &b->modules);
	write_objref(w, "firmware", &b->firmware);
	if (b->cmdline)
		jw_kv_str(w, "cmdline", b->cmdline);
	jw_obj_close(w);
}

static void write_lists(struct jw *w, const struct rev_container *c)
{
	jw_key(w, "volumes");
	jw_arr_open(w);
	for (size_t i = 0; i < c->nvolumes; i++) {
		jw_obj_open(w);
		jw_kv_str(w, "name", c->volumes[i].name);
		jw_kv_str(w, "path", c->volumes[i].path);
		jw_kv_str(w, "persistence", persistence_name(c->volumes[i].persistence));
		jw_obj_close(w);
	}
	jw_arr_close(w);
	jw_key(w, "roles");
	jw_arr_open(w);
	for (size_t i = 0; i < c->nroles; i++)
		jw_str(w, c->roles[i]);
	jw_arr_close(w);
	jw_key(w, "lxc");
	jw_obj_open(w);
	for (size_t i = 0; i < c->nlxc; i++)
		jw_kv_str(w, c->lxc[i].key, c->lxc[i].value);
	jw_obj_close(w);
}

static void write_ctr(struct jw *w, const struct revision *r, const struct rev_container *c)
{
	jw_obj_open(w);
	jw_kv_str(w, "name", c->name);
	jw_kv_str(w, "group", r->groups[c->group].name);
	write_objref(w, "rootfs", &c->rootfs);
	jw_key(w, "exec");
	jw_arr_open(w);
	for (size_t i = 0; i < c->nexec; i++)
		jw_str(w, c->exec[i]);
	jw_arr_close(w);
	jw_kv_str(w, "status_goal", ctr_goal_name(c->goal));
	jw_kv_str(w, "restart", restart_policy_name(c->restart));
	jw_kv_str(w, "update", rev_update_name(c->update));
	write_lists(w, c);
	jw_obj_close(w);
}

int revision_write(const struct revision *r, struct jw *w, struct err *e)
{
	int rc = write_check(r, e);
	if (rc < 0)
		return rc;
	jw_obj_open(w);
	jw_kv_str(w, "spec", REV_SPEC);
	jw_kv_uint(w, "revision", r->number);
	jw_kv_str(w, "created", r->created);
	if (r->bsp.present)
		write_bsp(w, &r->bsp);
	jw_key(w, "groups");
	jw_arr_open(w);
	for (size_t i = 0; i < r->ngroups; i++) {
		jw_obj_open(w);
		jw_kv_str(w, "name", r->groups[i].name);
		jw_kv_uint(w, "timeout_s", r->groups[i].timeout_s);
		jw_obj_close(w);
	}
	jw_arr_close(w);
	jw_key(w, "containers");
	jw_arr_open(w);
	for (size_t i = 0; i < r->ncontainers; i++)
		write_ctr(w, r, &r->containers[i]);
	jw_arr_close(w);
	jw_obj_close(w);
	if (w->failed)
		return err_set(e, w->fixed ? ENOBUFS : ENOMEM,
			       w->fixed ? "revision does not fit in %zu bytes"
					: "out of memory writing the revision (%zu bytes)",
			       w->cap);
	return 0;
}
