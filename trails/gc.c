/* trails/gc.c — space admission and garbage collection over the store.
 *
 * Collect, in this order (trails/BOOT.md "Garbage collection" has the why):
 *   1. tmp/gc-* left by an interrupted collect are removed;
 *   2. each revision not kept: trails/<rev> is renamed to tmp/gc-<rev>-<pid>
 *      (one durable rename: the commit point — from then on the revision is
 *      gone as a whole), then its files and the directory are removed;
 *   3. the objects referenced by every remaining trails/<rev>/revision.json,
 *      plus keep_objects, are kept; every other object is removed.
 * Objects go only after the revisions naming them, so a crash at any point
 * leaves every remaining revision complete. What cannot be proved
 * unreferenced stays: a remaining revision.json that does not parse, or an
 * entry of trails/ that is not a revision directory, makes step 3 keep every
 * object and the collect fail with the reason. */
#define LOG_MODULE "trails"
#include "trails_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"

#define MIB (1024.0 * 1024.0)

DEFINE_FREEP(struct revision, revision_free)

/* ---- admission ---- */

uint64_t gc_missing_bytes(struct storage *s, const struct revision *r)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, ARRAY_SIZE(uses));
	uint64_t need = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = digest_eq(&uses[j].ref->digest, &uses[i].ref->digest);
		if (dup || storage_object_has(s, &uses[i].ref->digest))
			continue;
		uint64_t size = uses[i].ref->size;
		need = need > UINT64_MAX - size ? UINT64_MAX : need + size;
	}
	return need;
}

int gc_admit(struct storage *s, uint64_t need, uint64_t reserve, struct err *e)
{
	uint64_t avail;
	int r = storage_free_bytes(s, &avail, e);
	if (r < 0)
		return err_prefix(e, "space admission");
	if (need <= avail && reserve <= avail - need)
		return 0;
	return err_set(e, ENOSPC,
		       "not enough space: needs %.1f MiB, %.1f MiB free, %.1f MiB reserve",
		       (double)need / MIB, (double)avail / MIB, (double)reserve / MIB);
}

/* ---- names ---- */

bool trails_rev_dirname(const char *s, uint64_t *out)
{
	size_t len = strlen(s);
	if (len == 0 || len > 16 || s[0] == '0')
		return false;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	*out = n;
	return true;
}

static bool rev_kept(uint64_t rev, const uint64_t *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] == rev)
			return true;
	return false;
}

/* ---- removing a directory that is already out of trails/ ---- */

static int entry_remove(struct storage *s, int dfd, const char *rel, const char *name,
			uint64_t *freed, struct err *e)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "%s/%s: %s", rel, name,
						      strerror(errno));
	int r;
	if (S_ISDIR(st.st_mode)) {
		/* not cairn's: removed whole, not durably (tmp/gc-* is swept again) */
		char abs[4096];
		r = str_fmt(abs, sizeof(abs), "%s/%s/%s", storage_root_path(s), rel, name);
		return r < 0 ? err_set(e, -r, "%s/%s: path too long", rel, name)
			     : storage_rmtree(abs, e);
	}
	r = storage_unlink_durable(dfd, name, 0, e);
	if (r < 0)
		return r;
	if (S_ISREG(st.st_mode))
		*freed += (uint64_t)st.st_size;
	return 0;
}

/* Remove every file of root/rel, then rel itself (both durably). */
static int dir_remove(struct storage *s, const char *rel, uint64_t *freed, struct err *e)
{
	int root = storage_root_fd(s);
	int fd = openat(root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		return storage_unlink_durable(root, rel, 0, e); /* not a directory: just a name */
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "%s: %s", rel, strerror(errno));
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set(e, errno, "%s: %s", rel, strerror(errno));
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = entry_remove(s, dirfd(d), rel, de->d_name, freed, e);
		if (r < 0)
			return r;
	}
	if (errno)
		return err_set(e, errno, "read %s: %s", rel, strerror(errno));
	return storage_unlink_durable(root, rel, AT_REMOVEDIR, e);
}

/* A directory of tmp/gc-* holds a revision already removed from trails/. */
static int sweep_stale(struct storage *s, uint64_t *freed, struct err *e)
{
	int fd = openat(storage_root_fd(s), "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "tmp: %s", strerror(errno));
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set(e, errno, "tmp: %s", strerror(errno));
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		char rel[NAME_MAX + 8];
		if (strncmp(de->d_name, "gc-", 3) != 0 ||
		    str_fmt(rel, sizeof(rel), "tmp/%s", de->d_name) < 0)
			continue;
		int r = dir_remove(s, rel, freed, e);
		if (r < 0)
			return err_prefix(e, "remove an interrupted collect");
	}
	return errno ? err_set(e, errno, "read tmp: %s", strerror(errno)) : 0;
}

/* ---- the trails/ directory ---- */

struct trail_list {
	uint64_t *revs; /* revision directories */
	size_t n, cap;
	char unknown[NAME_MAX + 1]; /* the first entry that is not one, "" if none */
};

static void trail_list_free(struct trail_list *l)
{
	free(l->revs);
}

static int trail_list_add(struct trail_list *l, uint64_t rev, struct err *e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *p = reallocarray(l->revs, cap, sizeof(*p));
		if (!p)
			return err_set(e, ENOMEM, "gc: out of memory");
		l->revs = p, l->cap = cap;
	}
	l->revs[l->n++] = rev;
	return 0;
}

static int trail_list_read(struct storage *s, struct trail_list *l, struct err *e)
{
	int fd = openat(storage_root_fd(s), "trails",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "trails: %s", strerror(errno));
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set(e, errno, "trails: %s", strerror(errno));
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		struct stat st;
		uint64_t rev;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool isdir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			     S_ISDIR(st.st_mode);
		if (isdir && trails_rev_dirname(de->d_name, &rev) && rev <= REV_MAX_NUMBER) {
			int r = trail_list_add(l, rev, e);
			if (r < 0)
				return r;
		} else if (!l->unknown[0]) {
			memcpy(l->unknown, de->d_name, strlen(de->d_name) + 1);
		}
	}
	return errno ? err_set(e, errno, "read trails: %s", strerror(errno)) : 0;
}

static int trail_remove(struct storage *s, uint64_t rev, uint64_t *freed, struct err *e)
{
	char from[40], to[64];
	if (str_fmt(from, sizeof(from), "trails/%llu", (unsigned long long)rev) < 0 ||
	    str_fmt(to, sizeof(to), "tmp/gc-%llu-%ld", (unsigned long long)rev, (long)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "gc: revision number too long");
	int root = storage_root_fd(s);
	int r = storage_rename_durable(root, from, root, to, e);
	if (r >= 0)
		r = dir_remove(s, to, freed, e);
	return r < 0 ? err_prefix(e, "remove revision %llu", (unsigned long long)rev) : 0;
}

/* ---- referenced objects ---- */

struct digest_set {
	struct digest *d;
	size_t n, cap;
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct digest));
}

static int digest_set_add(struct digest_set *set, const struct digest *d)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		struct digest *p = reallocarray(set->d, cap, sizeof(*p));
		if (!p)
			return -ENOMEM;
		set->d = p, set->cap = cap;
	}
	set->d[set->n++] = *d;
	return 0;
}

static bool digest_set_has(const struct digest_set *set, const struct digest *d)
{
	return set->n && bsearch(d, set->d, set->n, sizeof(*d), digest_cmp);
}

/* Add the objects of trails/<rev>/revision.json. A directory without one is
 * not an installed revision (a status record only): it references nothing. */
static int refs_add_trail(struct storage *s, uint64_t rev, struct digest_set *refs, struct err *e)
{
	char path[64];
	if (str_fmt(path, sizeof(path), "trails/%llu/revision.json", (unsigned long long)rev) < 0)
		return err_set(e, ENAMETOOLONG, "gc: revision number too long");
	_cleanup_free_ char *doc = NULL;
	size_t len = 0;
	struct err fe = ERR_INIT;
	int r = file_read_all(storage_root_fd(s), path, REV_MAX_DOC, &doc, &len, &fe);
	if (r == -ENOENT)
		return 0;
	_cleanup_(revision_freep) struct revision *parsed = NULL;
	if (r < 0)
		*e = fe;
	else
		r = revision_parse(doc, len, REV_PARSE_DEVICE, &parsed, e);
	if (r < 0)
		return err_prefix(e, "%s", path);
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(parsed, uses, ARRAY_SIZE(uses));
	for (size_t i = 0; i < n; i++)
		if (digest_set_add(refs, &uses[i].ref->digest) < 0)
			return err_set(e, ENOMEM, "gc: out of memory");
	return 0;
}

static int refs_collect(struct storage *s, const struct trail_list *l, const struct digest *keep,
			size_t nkeep, struct digest_set *refs, struct err *e)
{
	if (l->unknown[0])
		return err_set(e, EBADMSG, "trails/%s: not a revision directory", l->unknown);
	for (size_t i = 0; i < l->n; i++) {
		int r = refs_add_trail(s, l->revs[i], refs, e);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < nkeep; i++)
		if (digest_set_add(refs, &keep[i]) < 0)
			return err_set(e, ENOMEM, "gc: out of memory");
	if (refs->n)
		qsort(refs->d, refs->n, sizeof(*refs->d), digest_cmp);
	return 0;
}

/* ---- unreferenced objects ---- */

struct sweep {
	const struct digest_set *refs;
	struct digest_set doomed;
};

static int sweep_cb(const struct digest *d, void *ctx)
{
	struct sweep *sw = ctx;
	if (digest_set_has(sw->refs, d))
		return 0;
	return digest_set_add(&sw->doomed, d);
}

static int objects_remove(struct storage *s, const struct digest_set *refs, uint64_t *freed,
			  struct err *e)
{
	struct sweep sw = {.refs = refs};
	int r = storage_object_list(s, sweep_cb, &sw, e);
	if (r == -ENOMEM)
		r = err_set(e, ENOMEM, "gc: out of memory");
	for (size_t i = 0; i < sw.doomed.n && r >= 0; i++) {
		uint64_t size = 0;
		struct err se = ERR_INIT;
		if (storage_object_size(s, &sw.doomed.d[i], &size, &se) < 0)
			size = 0; /* gone already: nothing to free */
		r = storage_object_remove(s, &sw.doomed.d[i], e);
		if (r >= 0)
			*freed += size;
	}
	free(sw.doomed.d);
	return r < 0 ? r : 0;
}

/* Remove the revisions not kept; l keeps the remaining ones. */
static int trails_drop(struct storage *s, struct trail_list *l, const uint64_t *keep,
		       size_t nkeep, uint64_t *freed, struct err *e)
{
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (rev_kept(l->revs[i], keep, nkeep)) {
			l->revs[w++] = l->revs[i];
			continue;
		}
		int r = trail_remove(s, l->revs[i], freed, e);
		if (r < 0)
			return r;
	}
	l->n = w;
	return 0;
}

int gc_collect(struct storage *s, const uint64_t *keep, size_t nkeep,
	       const struct digest *keep_objects, size_t nkeep_objects, uint64_t *freed,
	       struct err *e)
{
	*freed = 0;
	struct trail_list l = {0};
	struct digest_set refs = {0};
	int r = sweep_stale(s, freed, e);
	if (r >= 0)
		r = trail_list_read(s, &l, e);
	if (r >= 0)
		r = trails_drop(s, &l, keep, nkeep, freed, e);
	if (r >= 0 && (r = refs_collect(s, &l, keep_objects, nkeep_objects, &refs, e)) < 0)
		err_prefix(e, "every object kept");
	if (r >= 0)
		r = objects_remove(s, &refs, freed, e);
	trail_list_free(&l);
	free(refs.d);
	return r < 0 ? r : 0;
}
