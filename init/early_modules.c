/* init/early_modules.c — kernel modules from the initramfs, modprobe's way.
 *
 * modules.dep ("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...") gives each
 * module file the complete list of files it needs. A plan is built depth
 * first: a module's softdep "pre:" modules (optional: failing them is only a
 * warning, as with modprobe), then its dependencies (each resolved the same
 * way, the last listed first, as modprobe inserts them), then the module;
 * each file once across the whole plan. A cycle is refused (depmod never
 * writes one; a hand-made file might), and so is any name that is neither in
 * modules.dep nor built in. Softdep names that are not module names are
 * aliases ("crypto-crc32c"), looked up as exact "alias NAME MODULE" lines.
 * Module names treat '-' and '_' as the same character, as the kernel does. */
#define LOG_MODULE "early"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/module.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"
#include "init.h"

#define DEP_MAX (64u << 20) /* bytes of modules.dep / modules.alias we read */
#define SMALL_MAX (4u << 20)
#define DEPTH_MAX 64

enum { MOD_NEW, MOD_VISITING, MOD_PLANNED };

struct mod_entry {
	const char *path; /* into index->dep */
	const char *deps; /* space-separated paths, NUL-terminated */
	char name[EARLY_MODNAME_MAX];
	unsigned char state;
};

struct mod_index {
	char *dep, *softdep, *builtin, *alias;
	bool alias_read;
	struct mod_entry *mods;
	size_t nmods;
};

/* ---------------- names ---------------- */

static void name_norm(const char *s, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = s[i] == '-' ? '_' : s[i];
	out[n] = '\0';
}

/* "kernel/fs/ext4/ext4.ko[.xz|.zst|.gz]" -> "ext4"; -EINVAL if not a module file. */
static int name_of_path(const char *path, size_t len, char out[EARLY_MODNAME_MAX])
{
	const char *base = path;
	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			base = path + i + 1;
	size_t n = (size_t)(path + len - base);
	static const char *const ext[] = {".ko", ".ko.xz", ".ko.zst", ".ko.gz"};
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		size_t el = strlen(ext[i]);
		if (n > el && n - el < EARLY_MODNAME_MAX && memcmp(base + n - el, ext[i], el) == 0) {
			name_norm(base, n - el, out);
			return 0;
		}
	}
	return -EINVAL;
}

static bool same_name(const char *a, size_t alen, const char *norm)
{
	if (alen != strlen(norm))
		return false;
	for (size_t i = 0; i < alen; i++)
		if ((a[i] == '-' ? '_' : a[i]) != norm[i])
			return false;
	return true;
}

/* A path we may open below the modules directory: relative, no "..". */
static bool path_safe(const char *p, size_t n)
{
	if (n == 0 || p[0] == '/')
		return false;
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '.' && p[i + 1] == '.' && (i == 0 || p[i - 1] == '/') &&
		    (i + 2 == n || p[i + 2] == '/'))
			return false;
	return true;
}

/* ---------------- the index ---------------- */

void mod_index_free(struct mod_index *x)
{
	if (!x)
		return;
	free(x->dep);
	free(x->softdep);
	free(x->builtin);
	free(x->alias);
	free(x->mods);
	free(x);
}
DEFINE_FREEP(struct mod_index, mod_index_free)

static int dep_line(struct mod_index *x, char *line, size_t lineno, struct err *e)
{
	char *colon = strchr(line, ':');
	if (!colon)
		return err_set(e, EINVAL, "modules.dep line %zu: no ':'", lineno);
	*colon = '\0';
	struct mod_entry *m = &x->mods[x->nmods];
	if (!path_safe(line, strlen(line)) || name_of_path(line, strlen(line), m->name) < 0)
		return err_set(e, EINVAL, "modules.dep line %zu: \"%.80s\" is not a module file",
			       lineno, line);
	m->path = line;
	m->deps = colon + 1 + strspn(colon + 1, " \t");
	x->nmods++;
	return 0;
}

static int dep_parse(struct mod_index *x, size_t len, struct err *e)
{
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += x->dep[i] == '\n';
	x->mods = calloc(lines, sizeof(*x->mods));
	if (!x->mods)
		return err_set(e, ENOMEM, "modules.dep: out of memory");
	char *save = NULL;
	size_t lineno = 0;
	for (char *p = x->dep, *line; (line = strtok_r(p, "\n", &save)); p = NULL) {
		lineno++;
		if (!line[strspn(line, " \t\r")])
			continue;
		int r = dep_line(x, line, lineno, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* An optional file: absent reads as empty. */
static int read_optional(int dirfd, const char *name, size_t max, char **out, struct err *e)
{
	size_t len;
	int r = file_read_all(dirfd, name, max, out, &len, e);
	if (r == -ENOENT) {
		*out = NULL;
		err_clear(e);
		return 0;
	}
	return r < 0 ? err_prefix(e, "%s", name) : 0;
}

int mod_index_load(int dirfd, struct mod_index **out, struct err *e)
{
	_cleanup_(mod_index_freep) struct mod_index *x = calloc(1, sizeof(*x));
	if (!x)
		return err_set(e, ENOMEM, "out of memory");
	size_t len;
	int r = file_read_all(dirfd, "modules.dep", DEP_MAX, &x->dep, &len, e);
	if (r < 0)
		return err_prefix(e, "modules.dep");
	if (strlen(x->dep) != len)
		return err_set(e, EINVAL, "modules.dep: holds a NUL byte");
	if ((r = dep_parse(x, len, e)) < 0 ||
	    (r = read_optional(dirfd, "modules.softdep", SMALL_MAX, &x->softdep, e)) < 0 ||
	    (r = read_optional(dirfd, "modules.builtin", SMALL_MAX, &x->builtin, e)) < 0)
		return r;
	*out = TAKE_PTR(x);
	return 0;
}

static struct mod_entry *by_name(struct mod_index *x, const char *norm)
{
	for (size_t i = 0; i < x->nmods; i++)
		if (strcmp(x->mods[i].name, norm) == 0)
			return &x->mods[i];
	return NULL;
}

static struct mod_entry *by_path(struct mod_index *x, const char *p, size_t n)
{
	for (size_t i = 0; i < x->nmods; i++)
		if (strlen(x->mods[i].path) == n && memcmp(x->mods[i].path, p, n) == 0)
			return &x->mods[i];
	return NULL;
}

static bool is_builtin(const struct mod_index *x, const char *norm)
{
	for (const char *l = x->builtin; l && *l; l += strcspn(l, "\n"), l += *l == '\n') {
		char name[EARLY_MODNAME_MAX];
		size_t n = strcspn(l, "\n");
		if (name_of_path(l, n, name) == 0 && strcmp(name, norm) == 0)
			return true;
	}
	return false;
}

/* ---------------- the plan ---------------- */

struct walk {
	struct mod_index *x;
	int dirfd;
	struct mod_plan *plan;
	const char *stack[DEPTH_MAX]; /* names being visited, for a cycle's message */
	size_t depth;
};

static int visit(struct walk *w, struct mod_entry *m, bool optional, struct err *e);

/* Undo the steps from `n` on (a failed resolution adds nothing). */
static void plan_truncate(struct walk *w, size_t n)
{
	for (size_t i = n; i < w->plan->n; i++) {
		const char *p = w->plan->step[i].path;
		struct mod_entry *m = by_path(w->x, p, strlen(p));
		if (m)
			m->state = MOD_NEW;
	}
	w->plan->n = n;
}

static int cycle_error(struct walk *w, const struct mod_entry *m, struct err *e)
{
	char chain[256] = "";
	size_t at = 0;
	for (size_t i = 0; i < w->depth; i++)
		if (strcmp(w->stack[i], m->name) == 0)
			at = i;
	for (size_t i = at; i < w->depth; i++) {
		size_t len = strlen(chain);
		if (str_fmt(chain + len, sizeof(chain) - len, "%s -> ", w->stack[i]) < 0)
			break;
	}
	return err_set(e, ELOOP, "dependency cycle: %s%s", chain, m->name);
}

static void load_aliases(struct walk *w)
{
	if (w->x->alias_read)
		return;
	w->x->alias_read = true;
	struct err e = ERR_INIT;
	if (read_optional(w->dirfd, "modules.alias", DEP_MAX, &w->x->alias, &e) < 0)
		w->x->alias = NULL; /* optional: an unreadable file resolves nothing */
}

/* A softdep name: a module, a built-in one, or an alias of modules. Optional:
 * whatever cannot be resolved is left out. */
static void visit_optional(struct walk *w, const char *word, size_t n)
{
	char norm[EARLY_MODNAME_MAX];
	if (n >= EARLY_MODNAME_MAX)
		return;
	name_norm(word, n, norm);
	struct mod_entry *m = by_name(w->x, norm);
	struct err ignored = ERR_INIT;
	size_t saved = w->plan->n;
	if (m) {
		if (visit(w, m, true, &ignored) < 0)
			plan_truncate(w, saved);
		return;
	}
	load_aliases(w);
	for (const char *l = w->x->alias; l && *l; l += strcspn(l, "\n"), l += *l == '\n') {
		if (strncmp(l, "alias ", 6) != 0 || strncmp(l + 6, word, n) != 0 || l[6 + n] != ' ')
			continue;
		const char *mod = l + 7 + n;
		size_t mlen = strcspn(mod, " \n");
		if (mlen >= EARLY_MODNAME_MAX)
			continue;
		name_norm(mod, mlen, norm);
		if ((m = by_name(w->x, norm)) && visit(w, m, true, &ignored) < 0)
			plan_truncate(w, saved);
		saved = w->plan->n;
	}
}

/* "softdep MOD pre: a b post: c": the pre: names of m, each optional. */
static void visit_softdeps(struct walk *w, const struct mod_entry *m)
{
	for (const char *l = w->x->softdep; l && *l; l += strcspn(l, "\n"), l += *l == '\n') {
		size_t len = strcspn(l, "\n");
		if (len < 8 || strncmp(l, "softdep ", 8) != 0)
			continue;
		const char *p = l + 8, *end = l + len;
		size_t mn = strcspn(p, " \t\n");
		if (!same_name(p, mn, m->name))
			continue;
		bool pre = false;
		for (p += mn; p < end;) {
			p += strspn(p, " \t");
			size_t wn = strcspn(p, " \t\n");
			if (wn == 4 && strncmp(p, "pre:", 4) == 0)
				pre = true;
			else if (wn == 5 && strncmp(p, "post:", 5) == 0)
				pre = false;
			else if (wn && pre)
				visit_optional(w, p, wn);
			p += wn ? wn : 1;
		}
	}
}

#define DEPS_MAX 256
static int visit_deps(struct walk *w, struct mod_entry *m, bool optional, struct err *e)
{
	const char *tok[DEPS_MAX];
	size_t len[DEPS_MAX], n = 0;
	for (const char *p = m->deps + strspn(m->deps, " \t"); *p; p += strspn(p, " \t\r")) {
		if (n == DEPS_MAX)
			return err_set(e, E2BIG, "%s: more than %d dependencies", m->name, DEPS_MAX);
		tok[n] = p;
		len[n] = strcspn(p, " \t\r");
		p += len[n++];
	}
	for (size_t i = n; i-- > 0;) { /* modprobe inserts the last listed first */
		struct mod_entry *d = by_path(w->x, tok[i], len[i]);
		if (!d)
			return err_set(e, ENOENT, "%.*s (needed by %s) is not in modules.dep",
				       (int)(len[i] > 200 ? 200 : len[i]), tok[i], m->name);
		int r = visit(w, d, optional, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int plan_append(struct walk *w, struct mod_entry *m, bool optional, struct err *e)
{
	if (w->plan->n == EARLY_MAX_PLAN)
		return err_set(e, E2BIG, "more than %d module files to load", EARLY_MAX_PLAN);
	struct mod_step *st = &w->plan->step[w->plan->n];
	if (str_fmt(st->path, sizeof(st->path), "%s", m->path) < 0)
		return err_set(e, ENAMETOOLONG, "%.80s...: path too long", m->path);
	memcpy(st->name, m->name, sizeof(st->name));
	st->optional = optional;
	w->plan->n++;
	m->state = MOD_PLANNED;
	return 0;
}

static int visit(struct walk *w, struct mod_entry *m, bool optional, struct err *e)
{
	if (m->state == MOD_PLANNED) {
		for (size_t i = 0; i < w->plan->n && !optional; i++)
			if (strcmp(w->plan->step[i].path, m->path) == 0)
				w->plan->step[i].optional = false; /* now needed for itself */
		return 0;
	}
	if (m->state == MOD_VISITING)
		return cycle_error(w, m, e);
	if (w->depth == DEPTH_MAX)
		return err_set(e, ELOOP, "%s: dependencies nested deeper than %d", m->name, DEPTH_MAX);
	m->state = MOD_VISITING;
	w->stack[w->depth++] = m->name;
	visit_softdeps(w, m);
	int r = visit_deps(w, m, optional, e);
	w->depth--;
	if (r >= 0)
		r = plan_append(w, m, optional, e);
	if (r < 0)
		m->state = MOD_NEW;
	return r;
}

int mod_plan_add(struct mod_index *x, int dirfd, const char *name, struct mod_plan *plan,
		 struct err *e)
{
	char norm[EARLY_MODNAME_MAX];
	size_t n = strlen(name);
	if (n == 0 || n >= EARLY_MODNAME_MAX)
		return err_set(e, EINVAL, "module \"%.60s\": not a module name", name);
	name_norm(name, n, norm);
	struct mod_entry *m = by_name(x, norm);
	if (!m && is_builtin(x, norm))
		return 0;
	if (!m)
		return err_set(e, ENOENT, "module %s: neither in modules.dep nor built in", name);
	struct walk w = {.x = x, .dirfd = dirfd, .plan = plan};
	size_t saved = plan->n;
	int r = visit(&w, m, false, e);
	if (r < 0) {
		plan_truncate(&w, saved);
		return err_prefix(e, "module %s", name);
	}
	return 0;
}

/* ---------------- loading ---------------- */

static bool compressed(const char *path)
{
	size_t n = strlen(path);
	return (n > 3 && strcmp(path + n - 3, ".xz") == 0) ||
	       (n > 4 && strcmp(path + n - 4, ".zst") == 0) ||
	       (n > 3 && strcmp(path + n - 3, ".gz") == 0);
}

int mod_load(int dirfd, const struct mod_step *st, struct err *e)
{
	_cleanup_close_ int fd = openat(dirfd, st->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, errno, "%s: %s: %s", st->name, st->path, strerror(errno));
	unsigned flags = compressed(st->path) ? MODULE_INIT_COMPRESSED_FILE : 0;
	if (syscall(SYS_finit_module, fd, "", flags) == 0 || errno == EEXIST)
		return 0;
	int err = errno;
	const char *why = err == ENOEXEC ? " (not a module for this kernel, or corrupt)"
			  : err == ENOENT ? " (unknown symbol: a dependency is not loaded)"
			  : (err == EINVAL || err == EOPNOTSUPP) && flags
			      ? " (the kernel cannot decompress modules: it needs "
				"CONFIG_MODULE_DECOMPRESS; ship uncompressed modules)"
			      : "";
	return err_set(e, err, "%s: finit_module %s: %s%s", st->name, st->path, strerror(err), why);
}
