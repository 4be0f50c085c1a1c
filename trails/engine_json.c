/* trails/engine_json.c — the engine's JSON views for the control API
 * (GET /v1/revisions, GET /v1/revisions/REV, GET /v1/progress). Shapes are
 * in trails/UPDATE.md ("Views"); each call writes exactly one value. */
#define LOG_MODULE "trails"
#include <errno.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

DEFINE_FREEP(struct revision, revision_free)

#define NS_PER_MS 1000000ull

static void rec_flags(struct trails *tr, struct jw *w, const struct tr_rec *r)
{
	jw_kv_bool(w, "installed", r->installed);
	jw_kv_bool(w, "committed", r->number == tr->bs.committed);
	jw_kv_bool(w, "running", r->number == tr->running);
	jw_kv_bool(w, "try", r->number == tr->bs.try_rev);
	/* asked to run, its objects being re-hashed: its state is still the old one */
	jw_kv_bool(w, "verifying", tr->op == TR_OP_VERIFY && tr->verify.rev == r->number);
}

int trails_json_revisions(struct trails *tr, struct jw *w, struct err *e)
{
	(void)e;
	jw_arr_open(w);
	for (size_t i = 0; i < tr->nrecs; i++) {
		const struct tr_rec *r = &tr->recs[i];
		jw_obj_open(w);
		jw_kv_uint(w, "revision", r->number);
		jw_kv_str(w, "state", rev_state_name(r->state));
		jw_key(w, "reason");
		if (r->reason[0])
			jw_str(w, r->reason);
		else
			jw_null(w);
		rec_flags(tr, w, r);
		jw_obj_close(w);
	}
	jw_arr_close(w);
	return 0;
}

/* The status on disk, or one made from the record (revisions installed by
 * cairn-pack have none). */
static void view_status(struct trails *tr, const struct tr_rec *r, struct tr_status *st)
{
	char dir[48];
	struct err e = ERR_INIT;
	if (tr_rec_dir(r, dir, sizeof(dir)) == 0 && tr_status_load(tr, dir, st, &e) == 0 &&
	    st->revision == r->number && st->state == r->state)
		return;
	memset(st, 0, sizeof(*st));
	st->revision = r->number;
	st->state = r->state;
	memcpy(st->times, r->times, sizeof(st->times));
	st->done = r->done;
	st->total = r->total;
	st->previous = r->previous;
}

/* The document's container names: kept in memory while downloading, read
 * from trails/<n>/revision.json once installed, none for a bare record. */
static void view_containers(struct trails *tr, const struct tr_rec *r, struct jw *w)
{
	_cleanup_(revision_freep) struct revision *parsed = NULL;
	const struct revision *doc = r->doc;
	if (!doc && r->installed) {
		char path[64];
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;
		struct err e = ERR_INIT;
		if (str_fmt(path, sizeof(path), "%s/%llu/revision.json", TR_TRAILS,
			    (unsigned long long)r->number) == 0 &&
		    file_read_all(storage_root_fd(tr->cfg.storage), path, REV_MAX_DOC, &buf, &len,
				  &e) == 0 &&
		    revision_parse(buf, len, REV_PARSE_DEVICE, &parsed, &e) == 0)
			doc = parsed;
	}
	jw_key(w, "containers");
	jw_arr_open(w);
	for (size_t i = 0; doc && i < doc->ncontainers; i++)
		jw_str(w, doc->containers[i].name);
	jw_arr_close(w);
}

int trails_json_revision(struct trails *tr, uint64_t rev, struct jw *w, struct err *e)
{
	const struct tr_rec *r = tr_rec_find(tr, rev);
	if (!r)
		return err_set(e, ENOENT, "revision %llu: unknown", (unsigned long long)rev);
	struct tr_status *st = &tr->st;
	view_status(tr, r, st);
	jw_obj_open(w);
	tr_status_members(w, st);
	rec_flags(tr, w, r);
	view_containers(tr, r, w);
	jw_obj_close(w);
	return 0;
}

/* The revision downloading with the highest number, or NULL. */
static const struct tr_rec *downloading(const struct trails *tr)
{
	for (size_t i = tr->nrecs; i-- > 0;)
		if (tr->recs[i].state == REV_DOWNLOADING)
			return &tr->recs[i];
	return NULL;
}

static void progress_members(struct jw *w, const char *op, uint64_t rev, const char *state,
			     uint64_t done, uint64_t total, uint64_t rate, uint64_t elapsed_ms)
{
	jw_kv_str(w, "operation", op);
	jw_key(w, "revision");
	if (rev)
		jw_uint(w, rev);
	else
		jw_null(w);
	jw_key(w, "state");
	if (state)
		jw_str(w, state);
	else
		jw_null(w);
	jw_kv_uint(w, "done", done);
	jw_kv_uint(w, "total", total);
	jw_kv_uint(w, "rate", rate);
	jw_kv_uint(w, "elapsed_ms", elapsed_ms);
}

int trails_json_progress(struct trails *tr, struct jw *w, struct err *e)
{
	(void)e;
	uint64_t now = now_ns();
	const struct tr_rec *d = downloading(tr);
	jw_obj_open(w);
	if (tr->op == TR_OP_TRY || tr->op == TR_OP_ROLLBACK) {
		uint64_t rev = tr->op == TR_OP_TRY ? tr->next->number : tr->running;
		progress_members(w, tr->op == TR_OP_TRY ? "try" : "rollback", rev,
				 tr->op == TR_OP_TRY ? "TESTING" : "DONE", 0, 0, 0,
				 (now - tr->op_t0_ns) / NS_PER_MS);
		jw_kv_str(w, "kind", tr->try_booted ? "reboot" : "live");
	} else if (tr->op == TR_OP_VERIFY) {
		const struct tr_rec *r = tr_rec_find(tr, tr->verify.rev);
		progress_members(w, "verify", tr->verify.rev, r ? rev_state_name(r->state) : NULL,
				 0, 0, 0, (now - tr->verify.t0_ns) / NS_PER_MS);
	} else if (tr->bs.try_rev && tr->bs.tries > 0) {
		const struct tr_rec *r = tr_rec_find(tr, tr->bs.try_rev);
		progress_members(w, "reboot", tr->bs.try_rev, r ? rev_state_name(r->state) : NULL,
				 0, 0, 0, 0);
	} else if (d) {
		uint64_t ms = d->t0_ns ? (now - d->t0_ns) / NS_PER_MS : 0;
		uint64_t rate = ms ? d->done * 1000 / ms : 0;
		progress_members(w, "download", d->number, "DOWNLOADING", d->done, d->total, rate, ms);
	} else {
		progress_members(w, "idle", 0, NULL, 0, 0, 0, 0);
	}
	jw_obj_close(w);
	return 0;
}
