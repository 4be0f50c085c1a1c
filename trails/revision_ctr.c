/* trails/revision_ctr.c — one container of a revision: identity, rootfs,
 * command, modes, volumes, roles and extra lxc.* keys (REVISION.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "revision_internal.h"

static const char *const goal_names[] = {"MOUNTED", "STARTED", "READY"};
static const char *const restart_names[] = {"no", "on-failure", "always"};
static const char *const update_names[] = {"live", "reboot"};
static const char *const persistence_names[] = {"permanent", "revision", "boot"};
static const char *const role_names[] = {"mgmt"};

const char *ctr_goal_name(enum ctr_goal g)
{
	return (unsigned)g < ARRAY_SIZE(goal_names) ? goal_names[g] : "?";
}

const char *restart_policy_name(enum restart_policy p)
{
	return (unsigned)p < ARRAY_SIZE(restart_names) ? restart_names[p] : "?";
}

const char *persistence_name(enum persistence p)
{
	return (unsigned)p < ARRAY_SIZE(persistence_names) ? persistence_names[p] : "?";
}

const char *rev_update_name(enum update_mode u)
{
	return (unsigned)u < ARRAY_SIZE(update_names) ? update_names[u] : "?";
}

/* ---------------- lxc keys ---------------- */

#define LXC_KEY_MAX 64

/* Keys a revision may not set, matched component by component ('*' is any
 * one component); a family also covers every key below it. REVISION.md
 * lists the same table. */
static const struct lxc_deny {
	const char *key;
	bool family;
	const char *why;
} lxc_deny[] = {
	{"lxc.rootfs", true, "cairn sets the root filesystem from the rootfs object"},
	{"lxc.mount.entry", false, "cairn mounts volumes itself: declare them in volumes"},
	{"lxc.mount.fstab", false, "cairn mounts volumes itself: declare them in volumes"},
	{"lxc.mount.auto", false, "cairn decides how /proc, /sys and cgroups appear inside"},
	{"lxc.hook", true, "hooks run arbitrary commands on the host"},
	{"lxc.net.*.script", true, "network scripts run arbitrary commands on the host"},
	{"lxc.include", false, "it would read configuration from outside the signed revision"},
	{"lxc.console", true, "cairn owns the console and collects output into its logs"},
	{"lxc.log", true, "cairn owns liblxc's log"},
	{"lxc.init", true, "cairn starts exec as the container's init"},
	{"lxc.execute", true, "cairn starts exec as the container's init"},
	{"lxc.ephemeral", false, "liblxc would delete the container's directory on stop"},
	{"lxc.monitor", true, "cairn supervises liblxc's monitor process"},
	{"lxc.cap.keep", false, "cairn drops capabilities with lxc.cap.drop, which liblxc "
				"refuses next to lxc.cap.keep"},
	{"lxc.apparmor", true, "cairn sets the container's LSM confinement"},
	{"lxc.selinux", true, "cairn sets the container's LSM confinement"},
	{"lxc.seccomp", true, "cairn sets the seccomp policy (a profile is a host path)"},
	{"lxc.namespace", true, "sharing or keeping host namespaces breaks the isolation"},
	{"lxc.idmap", false, "cairn owns the user namespace mapping of volumes"},
	{"lxc.cgroup.dir", true, "cairn places containers in its own cgroup tree"},
	{"lxc.cgroup.relative", false, "cairn places containers in its own cgroup tree"},
	{"lxc.autodev", true, "cairn sets up /dev"},
};

static bool key_matches(const char *key, const char *pat, bool family)
{
	for (;;) {
		size_t kl = strcspn(key, "."), pl = strcspn(pat, ".");
		bool any = pl == 1 && pat[0] == '*';
		if (!any && (kl != pl || memcmp(key, pat, kl) != 0))
			return false;
		key += kl;
		pat += pl;
		if (!*pat)
			return !*key || family;
		if (!*key)
			return false;
		key++;
		pat++;
	}
}

/* NULL if `key` may be set, else why not. */
static const char *lxc_key_problem(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > LXC_KEY_MAX)
		return "a key is 1 to 64 bytes";
	if (strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return "a key may only contain a-z, 0-9, '.', '_' and '-'";
	if (strncmp(key, "lxc.", 4) != 0)
		return "not an lxc.* key";
	if (strstr(key, "..") || key[n - 1] == '.')
		return "a key has no empty components";
	for (size_t i = 0; i < ARRAY_SIZE(lxc_deny); i++)
		if (key_matches(key, lxc_deny[i].key, lxc_deny[i].family))
			return lxc_deny[i].why;
	return NULL;
}

bool revision_lxc_key_allowed(const char *key)
{
	return key && !lxc_key_problem(key);
}

static int rp_lxc_entry(struct rp *p, int k, const char *f, struct rev_container *c, size_t i)
{
	char key[LXC_KEY_MAX + 1], shown[RP_SHOW_MAX], cf[ERR_FIELD_MAX];
	size_t n;
	rp_field_key(cf, f, rp_show_tok(p, k, shown));
	if (jp_str(&p->jp, k, key, sizeof(key), NULL) < 0)
		return rp_fail(p, EINVAL, cf, "key longer than %d bytes: not an lxc key", LXC_KEY_MAX);
	const char *why = lxc_key_problem(key);
	if (why)
		return rp_fail(p, EPERM, cf, "not allowed: %s", why);
	for (size_t m = 0; m < i; m++)
		if (strcmp(c->lxc[m].key, key) == 0)
			return rp_fail(p, EINVAL, cf, "duplicate key: give each key once");
	int rc = rp_strdup(p, k + 1, cf, REV_MAX_ARG, &c->lxc[i].value, &n);
	if (rc < 0)
		return rc;
	if (rp_control_at(c->lxc[i].value, n) >= 0)
		return rp_fail(p, EINVAL, cf, "control character (newline, tab...) in the value: "
			       "lxc configuration is one key per line");
	c->lxc[i].key = strdup(key);
	return c->lxc[i].key ? 0 : rp_fail(p, ENOMEM, cf, "out of memory");
}

static int rp_lxc(struct rp *p, int t, const char *f, struct rev_container *c)
{
	if (!jp_is(&p->jp, t, JSMN_OBJECT))
		return rp_type(p, t, f, "an object");
	size_t n = (size_t)p->jp.tok[t].size;
	if (n > REV_MAX_LXC)
		return rp_fail(p, E2BIG, f, "%zu keys, more than the %d allowed: remove some", n,
			       REV_MAX_LXC);
	if (n == 0)
		return 0;
	c->lxc = calloc(n, sizeof(*c->lxc));
	if (!c->lxc)
		return rp_fail(p, ENOMEM, f, "out of memory");
	c->nlxc = n;
	int k = t + 1;
	for (size_t i = 0; i < n; i++, k = jp_next(&p->jp, k + 1)) {
		int rc = rp_lxc_entry(p, k, f, c, i);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---------------- exec, roles ---------------- */

static int rp_arg(struct rp *p, int t, const char *f, size_t i, char **out)
{
	size_t n;
	int rc = rp_strdup(p, t, f, REV_MAX_ARG, out, &n);
	if (rc < 0)
		return rc;
	if (i == 0 && (*out)[0] != '/')
		return rp_fail(p, EINVAL, f, "the program must be an absolute path (start with /)");
	if (rp_control_at(*out, n) >= 0)
		return rp_fail(p, EINVAL, f, "control character (newline, tab...): not allowed in "
			       "an argument");
	return 0;
}

/* c->exec is NULL-terminated, ready for execv(). Element i is token t+1+i
 * as long as the elements before it are strings, and the first one that is
 * not a string stops the parse. */
static int rp_exec(struct rp *p, int t, const char *f, struct rev_container *c)
{
	size_t n;
	int rc = rp_array(p, t, f, 1, REV_MAX_EXEC, &n);
	if (rc < 0)
		return rc;
	c->exec = calloc(n + 1, sizeof(*c->exec));
	if (!c->exec)
		return rp_fail(p, ENOMEM, f, "out of memory");
	c->nexec = n;
	for (size_t i = 0; i < n && !rc; i++) {
		char cf[ERR_FIELD_MAX];
		rp_field_idx(cf, f, i);
		rc = rp_arg(p, t + 1 + (int)i, cf, i, &c->exec[i]);
	}
	return rc;
}

static int rp_roles(struct rp *p, int t, const char *f, struct rev_container *c)
{
	size_t n;
	int rc = rp_array(p, t, f, 0, REV_MAX_ROLES, &n);
	if (rc < 0 || n == 0)
		return rc;
	c->roles = calloc(n, sizeof(*c->roles));
	if (!c->roles)
		return rp_fail(p, ENOMEM, f, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char cf[ERR_FIELD_MAX];
		int role;
		rp_field_idx(cf, f, i);
		rc = rp_enum(p, t + 1 + (int)i, cf, role_names, ARRAY_SIZE(role_names), &role);
		if (rc < 0)
			return rc;
		for (size_t m = 0; m < i; m++)
			if (strcmp(c->roles[m], role_names[role]) == 0)
				return rp_fail(p, EEXIST, cf, "role \"%s\" is already listed",
					       role_names[role]);
		memcpy(c->roles[i], role_names[role], strlen(role_names[role]) + 1);
		c->nroles = i + 1;
	}
	return 0;
}

/* ---------------- volumes ---------------- */

static const char *const volume_keys[] = {"name", "path", "persistence"};
enum { V_NAME, V_PATH, V_PERSISTENCE };

/* NULL if `path` may be a volume's mount point inside the container, else
 * why not. Plain bytes only: the path ends up in mount entries and logs. */
static const char *volume_path_problem(const char *s, size_t n)
{
	static const char *const reserved[] = {"/proc", "/sys", "/dev", "/run/cairn"};
	if (s[0] != '/')
		return "must be an absolute path (start with /)";
	if (n == 1)
		return "must not be / (the container's root filesystem)";
	if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+@-") != n)
		return "may only contain letters, digits, '/', '.', '_', '+', '@' and '-'";
	if (s[n - 1] == '/' || strstr(s, "//"))
		return "must be normalized: no \"//\" and no trailing /";
	for (const char *c = s; c; c = strchr(c + 1, '/'))
		if (strncmp(c, "/./", 3) == 0 || strcmp(c, "/.") == 0 ||
		    strncmp(c, "/../", 4) == 0 || strcmp(c, "/..") == 0)
			return "must be normalized: no \".\" or \"..\" components";
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
		size_t rl = strlen(reserved[i]);
		if (strncmp(s, reserved[i], rl) == 0 && (s[rl] == '\0' || s[rl] == '/'))
			return "is in /proc, /sys, /dev or /run/cairn, which the runtime owns";
		/* A persistent volume above a place the runtime mounts into (/run
		 * above /run/cairn) would let the container plant a symlink there:
		 * liblxc creates a mount target (mkdir -p, mknod) following
		 * symlinks, on the host, before the container's root is pivoted. */
		if (strncmp(reserved[i], s, n) == 0 && reserved[i][n] == '/')
			return "holds /run/cairn, where the runtime mounts the control socket";
	}
	return NULL;
}

/* a is b or below it */
static bool path_within(const char *a, const char *b)
{
	size_t bl = strlen(b);
	return strncmp(a, b, bl) == 0 && (a[bl] == '\0' || a[bl] == '/');
}

static int rp_volume_path(struct rp *p, int t, const char *f, struct rev_container *c, size_t i)
{
	char cf[ERR_FIELD_MAX];
	size_t n;
	rp_field_key(cf, f, "path");
	int rc = rp_strdup(p, t, cf, REV_MAX_PATH - 1, &c->volumes[i].path, &n);
	if (rc < 0)
		return rc;
	const char *s = c->volumes[i].path;
	const char *why = n ? volume_path_problem(s, n) : "must not be empty";
	if (why)
		return rp_fail(p, EINVAL, cf, "%s", why);
	for (size_t m = 0; m < i; m++) {
		const char *o = c->volumes[m].path;
		if (strcmp(s, o) == 0)
			return rp_fail(p, EEXIST, cf, "already the path of volume \"%s\": give each "
				       "volume its own path", c->volumes[m].name);
		if (path_within(s, o) || path_within(o, s))
			return rp_fail(p, EINVAL, cf, "nests with volume \"%s\" (%.64s): volumes "
				       "must not be inside one another", c->volumes[m].name, o);
	}
	return 0;
}

static int rp_volume(struct rp *p, int t, const char *f, struct rev_container *c, size_t i)
{
	struct rp_obj o = RP_OBJ(volume_keys);
	struct rev_volume *v = &c->volumes[i];
	char cf[ERR_FIELD_MAX];
	int persistence;
	int rc = rp_members(p, t, f, &o);
	if (!rc)
		rc = rp_require(p, &o, RP_BIT(V_NAME) | RP_BIT(V_PATH) | RP_BIT(V_PERSISTENCE), f);
	rp_field_key(cf, f, "name");
	if (!rc)
		rc = rp_name(p, o.idx[V_NAME], cf, v->name);
	for (size_t m = 0; !rc && m < i; m++)
		if (strcmp(c->volumes[m].name, v->name) == 0)
			rc = rp_fail(p, EEXIST, cf, "volume \"%s\" is already declared: give each "
				     "volume its own name", v->name);
	if (!rc)
		rc = rp_volume_path(p, o.idx[V_PATH], f, c, i);
	rp_field_key(cf, f, "persistence");
	if (!rc)
		rc = rp_enum(p, o.idx[V_PERSISTENCE], cf, persistence_names,
			     ARRAY_SIZE(persistence_names), &persistence);
	if (!rc)
		v->persistence = (enum persistence)persistence;
	return rc;
}

static int rp_volumes(struct rp *p, int t, const char *f, struct rev_container *c)
{
	size_t n;
	int rc = rp_array(p, t, f, 0, REV_MAX_VOLUMES, &n);
	if (rc < 0 || n == 0)
		return rc;
	c->volumes = calloc(n, sizeof(*c->volumes));
	if (!c->volumes)
		return rp_fail(p, ENOMEM, f, "out of memory");
	c->nvolumes = n;
	int k = t + 1;
	for (size_t i = 0; !rc && i < n; i++, k = jp_next(&p->jp, k)) {
		char vf[ERR_FIELD_MAX];
		rp_field_idx(vf, f, i);
		rc = rp_volume(p, k, vf, c, i);
	}
	return rc;
}

/* ---------------- the container ---------------- */

static const char *const ctr_keys[] = {"name",	  "group",   "rootfs",	"exec",
				       "status_goal", "restart", "update",	"volumes",
				       "roles",	  "lxc"};
enum { C_NAME, C_GROUP, C_ROOTFS, C_EXEC, C_GOAL, C_RESTART, C_UPDATE, C_VOLUMES, C_ROLES, C_LXC };

static const struct rp_slot slot_rootfs = {
	OBJ_SQUASHFS, "a container rootfs is a squashfs image"};

static int rp_ctr_name(struct rp *p, int t, const char *f, struct revision *r, size_t i)
{
	char cf[ERR_FIELD_MAX];
	rp_field_key(cf, f, "name");
	int rc = rp_name(p, t, cf, r->containers[i].name);
	for (size_t m = 0; !rc && m < i; m++)
		if (strcmp(r->containers[m].name, r->containers[i].name) == 0)
			rc = rp_fail(p, EEXIST, cf, "container \"%s\" is already declared as "
				     "containers[%zu]: give each container its own name",
				     r->containers[i].name, m);
	return rc;
}

static int rp_ctr_group(struct rp *p, int t, const char *f, const struct revision *r,
			struct rev_container *c)
{
	char cf[ERR_FIELD_MAX], name[NAME_MAX_LEN + 1];
	rp_field_key(cf, f, "group");
	int rc = rp_name(p, t, cf, name);
	if (rc < 0)
		return rc;
	for (size_t g = 0; g < r->ngroups; g++) {
		if (strcmp(r->groups[g].name, name) == 0) {
			c->group = (unsigned)g;
			return 0;
		}
	}
	return rp_fail(p, ENOENT, cf, "no group \"%s\": use a group declared in groups", name);
}

static int rp_ctr_modes(struct rp *p, const struct rp_obj *o, const char *f,
			struct rev_container *c)
{
	static const struct {
		int key;
		const char *const *names;
		size_t n;
	} modes[] = {
		{C_GOAL, goal_names, ARRAY_SIZE(goal_names)},
		{C_RESTART, restart_names, ARRAY_SIZE(restart_names)},
		{C_UPDATE, update_names, ARRAY_SIZE(update_names)},
	};
	int v[ARRAY_SIZE(modes)] = {GOAL_STARTED, RESTART_ON_FAILURE, UPDATE_LIVE};
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char cf[ERR_FIELD_MAX];
		int t = o->idx[modes[i].key];
		rp_field_key(cf, f, ctr_keys[modes[i].key]);
		int rc = t >= 0 ? rp_enum(p, t, cf, modes[i].names, modes[i].n, &v[i]) : 0;
		if (rc < 0)
			return rc;
	}
	c->goal = (enum ctr_goal)v[0];
	c->restart = (enum restart_policy)v[1];
	c->update = (enum update_mode)v[2];
	return 0;
}

/* Optional members holding arrays or objects: [key] = reader. */
static int (*const ctr_lists[])(struct rp *, int, const char *, struct rev_container *) = {
	[C_VOLUMES] = rp_volumes,
	[C_ROLES] = rp_roles,
	[C_LXC] = rp_lxc,
};

int rp_container(struct rp *p, int t, const char *f, struct revision *r, size_t i)
{
	struct rev_container *c = &r->containers[i];
	struct rp_obj o = RP_OBJ(ctr_keys);
	unsigned required = RP_BIT(C_NAME) | RP_BIT(C_GROUP) | RP_BIT(C_ROOTFS) | RP_BIT(C_EXEC);
	char cf[ERR_FIELD_MAX];
	int rc = rp_members(p, t, f, &o);
	if (!rc)
		rc = rp_require(p, &o, required, f);
	if (!rc)
		rc = rp_ctr_name(p, o.idx[C_NAME], f, r, i);
	if (!rc)
		rc = rp_ctr_group(p, o.idx[C_GROUP], f, r, c);
	rp_field_key(cf, f, "rootfs");
	if (!rc)
		rc = rp_objref(p, o.idx[C_ROOTFS], cf, &slot_rootfs, &c->rootfs);
	rp_field_key(cf, f, "exec");
	if (!rc)
		rc = rp_exec(p, o.idx[C_EXEC], cf, c);
	if (!rc)
		rc = rp_ctr_modes(p, &o, f, c);
	for (size_t k = 0; !rc && k < ARRAY_SIZE(ctr_lists); k++) {
		if (!ctr_lists[k] || o.idx[k] < 0)
			continue;
		rp_field_key(cf, f, ctr_keys[k]);
		rc = ctr_lists[k](p, o.idx[k], cf, c);
	}
	return rc;
}
