/* trails/engine_gc.c — trails_gc: which revisions stay, and keeping the
 * forensics of failed ones (trails/UPDATE.md, "Garbage collection").
 *
 * Kept: the committed revision, the try, what runs, the committed one
 * before it (`previous` in the committed revision's status), a revision
 * being tried, and INSTALLED revisions newer than the committed one
 * (sideloaded, waiting to be run); the objects of revisions still
 * downloading. Everything else installed goes, through gc_collect. A FAILED
 * revision's status.json is first copied to offers/<n>/status.json, so why
 * it failed outlives its files. offers/ keeps the TR_KEEP_RECORDS newest
 * REJECTED or FAILED records. What the runtime left per revision outside
 * trails/ (logs/<n>/, volumes/revision/<n>/) goes with its revision: nothing
 * else removes it, and a revision volume grows as its container writes. */
#define LOG_MODULE "trails"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

static void keep_add(uint64_t *keep, size_t *n, size_t cap, uint64_t rev)
{
	if (rev == 0 || *n >= cap)
		return;
	for (size_t i = 0; i < *n; i++)
		if (keep[i] == rev)
			return;
	keep[(*n)++] = rev;
}

static bool kept(const uint64_t *keep, size_t n, uint64_t rev)
{
	for (size_t i = 0; i < n; i++)
		if (keep[i] == rev)
			return true;
	return false;
}

static size_t keep_list(struct trails *tr, uint64_t *keep, size_t cap)
{
	size_t n = 0;
	uint64_t c = tr->bs.committed;
	keep_add(keep, &n, cap, c);
	keep_add(keep, &n, cap, tr->bs.try_rev);
	keep_add(keep, &n, cap, tr->running);
	keep_add(keep, &n, cap, tr->cur ? tr->cur->number : 0);
	keep_add(keep, &n, cap, tr->next ? tr->next->number : 0);
	const struct tr_rec *crec = tr_rec_find(tr, c);
	keep_add(keep, &n, cap, crec ? crec->previous : 0);
	for (size_t i = 0; i < tr->nrecs; i++) {
		const struct tr_rec *r = &tr->recs[i];
		if (r->state == REV_TESTING || (r->state == REV_INSTALLED && r->number > c))
			keep_add(keep, &n, cap, r->number);
	}
	return n;
}

/* Objects of every revision still downloading (heap: *out, count). */
static int keep_objects(struct trails *tr, struct digest **out, size_t *count, struct err *e)
{
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < tr->nrecs; i++)
		if (tr->recs[i].state == REV_DOWNLOADING && tr->recs[i].doc)
			cap += REV_MAX_OBJECTS;
	struct digest *d = calloc(cap ? cap : 1, sizeof(*d));
	if (!d)
		return err_set(e, ENOMEM, "gc: out of memory");
	for (size_t i = 0; i < tr->nrecs; i++) {
		const struct tr_rec *r = &tr->recs[i];
		if (r->state != REV_DOWNLOADING || !r->doc)
			continue;
		struct rev_object_use uses[REV_MAX_OBJECTS];
		size_t k = revision_objects(r->doc, uses, ARRAY_SIZE(uses));
		for (size_t j = 0; j < k; j++)
			d[n++] = uses[j].ref->digest;
	}
	*out = d;
	*count = n;
	return 0;
}

/* Copy trails/<n>/status.json to offers/<n>/status.json. */
static int record_copy(struct trails *tr, uint64_t n, struct err *e)
{
	int root = storage_root_fd(tr->cfg.storage);
	char from[64], dir[48], to[64];
	if (str_fmt(from, sizeof(from), "%s/%llu/%s", TR_TRAILS, (unsigned long long)n, TR_STATUS) < 0 ||
	    str_fmt(dir, sizeof(dir), "%s/%llu", TR_OFFERS, (unsigned long long)n) < 0 ||
	    str_fmt(to, sizeof(to), "%s/%s", dir, TR_STATUS) < 0)
		return err_set(e, ENAMETOOLONG, "path too long");
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = file_read_all(root, from, TR_STATUS_MAX, &buf, &len, e);
	if (r >= 0)
		r = storage_mkdir_durable(root, TR_OFFERS, 0755, e);
	if (r >= 0)
		r = storage_mkdir_durable(root, dir, 0755, e);
	if (r >= 0)
		r = storage_write_durable(root, to, buf, len, 0644, e);
	return r;
}

/* Records of failed revisions about to go: keep them (or keep the revision). */
static size_t keep_records(struct trails *tr, uint64_t *keep, size_t n, size_t cap)
{
	for (size_t i = 0; i < tr->nrecs; i++) {
		const struct tr_rec *r = &tr->recs[i];
		if (!r->installed || r->state != REV_FAILED || kept(keep, n, r->number))
			continue;
		struct err e = ERR_INIT;
		if (record_copy(tr, r->number, &e) < 0) {
			log_warn("revision %llu: keeping its record: %s; the revision stays",
				 (unsigned long long)r->number, e.msg);
			keep_add(keep, &n, cap, r->number);
		}
	}
	return n;
}

/* After gc_collect: what is gone from trails/ is a record, or nothing. */
static void records_after(struct trails *tr)
{
	int root = storage_root_fd(tr->cfg.storage);
	for (size_t i = tr->nrecs; i-- > 0;) {
		struct tr_rec *r = &tr->recs[i];
		char dir[48];
		struct stat sb;
		if (!r->installed || tr_rec_dir(r, dir, sizeof(dir)) < 0 ||
		    fstatat(root, dir, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (r->state == REV_FAILED)
			r->installed = false;
		else
			tr_rec_remove(tr, r->number);
	}
}

static void record_remove(struct trails *tr, uint64_t n)
{
	int root = storage_root_fd(tr->cfg.storage);
	char path[64], abs[PATH_MAX];
	struct err e = ERR_INIT;
	if (str_fmt(path, sizeof(path), "%s/%llu/%s", TR_OFFERS, (unsigned long long)n, TR_STATUS) < 0 ||
	    str_fmt(abs, sizeof(abs), "%s/%s/%llu", storage_root_path(tr->cfg.storage), TR_OFFERS,
		    (unsigned long long)n) < 0)
		return;
	/* the status goes durably first: a half-removed record is no record */
	if (storage_unlink_durable(root, path, 0, &e) < 0 || storage_rmtree(abs, &e) < 0) {
		log_warn("offers/%llu: %s", (unsigned long long)n, e.msg);
		return;
	}
	tr_rec_remove(tr, n);
}

/* offers/ keeps the TR_KEEP_RECORDS newest records of rejections and failures.
 * Also called after every rejection, so refused offers (from a mgmt container
 * or a lying hub) cannot fill the disk or its inodes between two gcs. */
void tr_records_prune(struct trails *tr)
{
	size_t n = 0;
	for (size_t i = tr->nrecs; i-- > 0;) {
		struct tr_rec *r = &tr->recs[i];
		if (r->installed || (r->state != REV_REJECTED && r->state != REV_FAILED))
			continue;
		if (++n > TR_KEEP_RECORDS)
			record_remove(tr, r->number);
	}
}

/* ---- what a revision left outside trails/ ---- */

/* Does a container the runtime holds log below `dir` (absolute)? A kept
 * container logs where it was last started, maybe an older revision's. */
static bool logs_in_use(struct trails *tr, const char *dir)
{
	struct runtime *rt = tr->cfg.rt;
	size_t len = strlen(dir);
	for (size_t i = 0; rt && i < runtime_count(rt); i++) {
		struct rt_ctr_status st;
		char path[PATH_MAX];
		struct err e = ERR_INIT;
		runtime_status(rt, i, &st);
		if (runtime_log_path(rt, st.name, path, sizeof(path), &e) == 0 &&
		    strncmp(path, dir, len) == 0 && path[len] == '/')
			return true;
	}
	return false;
}

/* Remove top/<n>/ (relative to the storage root) of every revision that is
 * neither kept nor installed. Best effort: a failure is logged, and the
 * next gc tries again. */
static void leftovers_sweep(struct trails *tr, const char *top, const uint64_t *keep,
			    size_t nkeep)
{
	int root = storage_root_fd(tr->cfg.storage);
	int fd = openat(root, top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("gc: %s: %s", top, strerror(errno));
		return;
	}
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char rel[64], abs[PATH_MAX];
		struct stat sb;
		struct err e = ERR_INIT;
		uint64_t n;
		if (!trails_rev_dirname(de->d_name, &n) || kept(keep, nkeep, n) ||
		    str_fmt(rel, sizeof(rel), "%s/%llu", TR_TRAILS, (unsigned long long)n) < 0 ||
		    fstatat(root, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
		    str_fmt(abs, sizeof(abs), "%s/%s/%s", storage_root_path(tr->cfg.storage), top,
			    de->d_name) < 0 ||
		    logs_in_use(tr, abs))
			continue;
		if (storage_rmtree(abs, &e) < 0)
			log_warn("gc: %s", e.msg);
		else
			log_info("gc: %s/%s removed (revision %llu is gone)", top, de->d_name,
				 (unsigned long long)n);
	}
}

int trails_gc(struct trails *tr, uint64_t *freed, struct err *e)
{
	uint64_t keep[TR_MAX_RECORDS + 8];
	size_t nkeep = keep_list(tr, keep, ARRAY_SIZE(keep));
	nkeep = keep_records(tr, keep, nkeep, ARRAY_SIZE(keep));
	_cleanup_free_ struct digest *objs = NULL;
	size_t nobjs = 0;
	int r = keep_objects(tr, &objs, &nobjs, e);
	if (r < 0)
		return r;
	uint64_t f = 0;
	r = gc_collect(tr->cfg.storage, keep, nkeep, objs, nobjs, &f, e);
	/* boot files of collected revisions: their hard links would keep the
	 * kernels' space in use */
	struct err be = ERR_INIT;
	if (trails_bsp_sweep(tr->cfg.storage, 0, &be) < 0)
		log_warn("gc: boot files: %s", be.msg);
	leftovers_sweep(tr, "logs", keep, nkeep);
	leftovers_sweep(tr, "volumes/revision", keep, nkeep);
	records_after(tr);
	tr_records_prune(tr);
	if (freed)
		*freed = f;
	if (r < 0)
		return err_prefix(e, "gc");
	return 0;
}

void tr_gc_auto(struct trails *tr, const char *why)
{
	uint64_t freed = 0;
	struct err e = ERR_INIT;
	if (trails_gc(tr, &freed, &e) < 0)
		log_warn("gc after %s: %s", why, e.msg);
	else
		log_info("gc after %s: %llu bytes freed", why, (unsigned long long)freed);
}
