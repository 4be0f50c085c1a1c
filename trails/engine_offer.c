/* trails/engine_offer.c — a revision arrives: trails_offer (document and
 * signature), then its objects, then it is placed into trails/<rev>/.
 *
 * Order (UPDATE.md, "Offer"): signature over the exact bytes, schema, the
 * number in the URL, downgrade, space admission — all before anything is
 * written but the verdict. An accepted revision keeps its document in
 * offers/<rev>/ (revision.json, revision.sig, status.json DOWNLOADING) and
 * takes only the objects it lacks; when the last one is stored the whole
 * directory is renamed to trails/<rev>/ in one durable rename, then its
 * status becomes INSTALLED. */
#define LOG_MODULE "trails"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

DEFINE_FREEP(struct revision, revision_free)

size_t tr_missing(struct trails *tr, const struct revision *r, struct digest *out, size_t max,
		  uint64_t *bytes)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, ARRAY_SIZE(uses)), k = 0;
	struct digest seen[REV_MAX_OBJECTS];
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		const struct digest *d = &uses[i].ref->digest;
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = digest_eq(&seen[j], d);
		if (dup || storage_object_has(tr->cfg.storage, d))
			continue;
		if (out && k < max)
			out[k] = *d;
		seen[k++] = *d;
		*bytes += uses[i].ref->size;
	}
	return k;
}

/* The size `r` declares for object d, or UINT64_MAX if r does not use it. */
static uint64_t uses_object(const struct revision *r, const struct digest *d)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, ARRAY_SIZE(uses));
	for (size_t i = 0; i < n; i++)
		if (digest_eq(&uses[i].ref->digest, d))
			return uses[i].ref->size;
	return UINT64_MAX;
}

static int dir_of(uint64_t n, const char *top, char *buf, size_t cap)
{
	return str_fmt(buf, cap, "%s/%llu", top, (unsigned long long)n);
}

static bool exists_at(int dirfd, const char *path)
{
	struct stat sb;
	return fstatat(dirfd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- verification ---- */

/* Signature, schema, number, downgrade; *code names what failed. */
static int offer_verify(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
			const char *sig, size_t siglen, struct revision **out, const char **code,
			struct err *e)
{
	*code = "bad-signature";
	int r = sig_verify(tr->cfg.trust, doc, doclen, sig, siglen, NULL, e);
	if (r < 0)
		return err_prefix(e, "signature");
	*code = "schema";
	_cleanup_(revision_freep) struct revision *parsed = NULL;
	r = revision_parse(doc, doclen, REV_PARSE_DEVICE, &parsed, e);
	if (r < 0)
		return err_prefix(e, "revision.json");
	*code = "mismatch";
	if (parsed->number != rev)
		return err_field(e, EINVAL, "revision", "is %llu, but it was offered as %llu",
				 (unsigned long long)parsed->number, (unsigned long long)rev);
	*code = "downgrade";
	if (rev <= tr->bs.committed)
		return err_field(e, ERANGE, "revision",
				 "%llu is not newer than the committed revision %llu (downgrade)",
				 (unsigned long long)rev, (unsigned long long)tr->bs.committed);
	*out = TAKE_PTR(parsed);
	return 0;
}

/* Bytes this revision needs, plus what newer revisions still downloading
 * were promised; -ENOSPC with the numbers if it does not fit. */
static int offer_admit(struct trails *tr, uint64_t rev, const struct revision *r, struct err *e)
{
	uint64_t need = gc_missing_bytes(tr->cfg.storage, r);
	for (size_t i = 0; i < tr->nrecs; i++) {
		const struct tr_rec *o = &tr->recs[i];
		if (o->state == REV_DOWNLOADING && o->number > rev && o->total > o->done)
			need += o->total - o->done;
	}
	int ret = gc_admit(tr->cfg.storage, need, tr->cfg.reserve_bytes, e);
	if (ret < 0)
		return err_prefix(e, "space admission");
	return 0;
}

/* Record the rejection (its write failure is logged) and return the error. */
static int offer_reject(struct trails *tr, struct tr_rec *rec, const char *code, struct err *e)
{
	struct tr_fail *f = tr_fail_set(tr, code, e->field, "%s", e->msg);
	struct err we = ERR_INIT;
	if (tr_event(tr, rec, TE_REJECT, f, &we) < 0)
		log_err("revision %llu: recording the rejection: %s", (unsigned long long)rec->number,
			we.msg);
	log_warn("revision %llu rejected (%s): %s", (unsigned long long)rec->number, code, e->msg);
	tr_records_prune(tr); /* may drop rec itself: not used after this */
	return -e->code;
}

/* ---- files ---- */

static int offer_write_files(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
			     const char *sig, size_t siglen, struct err *e)
{
	int root = storage_root_fd(tr->cfg.storage);
	char dir[48], path[64];
	int r = dir_of(rev, TR_OFFERS, dir, sizeof(dir));
	if (r < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	if (!exists_at(root, TR_OFFERS) && (r = storage_mkdir_durable(root, TR_OFFERS, 0755, e)) < 0)
		return r;
	if (!exists_at(root, dir) && (r = storage_mkdir_durable(root, dir, 0755, e)) < 0)
		return r;
	if (str_fmt(path, sizeof(path), "%s/revision.json", dir) < 0 ||
	    (r = storage_write_durable(root, path, doc, doclen, 0644, e)) < 0)
		return r < 0 ? r : err_set(e, ENAMETOOLONG, "path too long");
	if (str_fmt(path, sizeof(path), "%s/revision.sig", dir) < 0)
		return err_set(e, ENAMETOOLONG, "path too long");
	return storage_write_durable(root, path, sig, siglen, 0644, e);
}

/* Does the document on record for rec have exactly these bytes? */
static int offer_same(struct trails *tr, const struct tr_rec *rec, const char *doc, size_t doclen,
		      struct err *e)
{
	char dir[48], path[64];
	if (tr_rec_dir(rec, dir, sizeof(dir)) < 0 ||
	    str_fmt(path, sizeof(path), "%s/revision.json", dir) < 0)
		return err_set(e, ENAMETOOLONG, "path too long");
	_cleanup_free_ char *old = NULL;
	size_t len = 0;
	int r = file_read_all(storage_root_fd(tr->cfg.storage), path, REV_MAX_DOC, &old, &len, e);
	if (r < 0)
		return err_prefix(e, "revision %llu", (unsigned long long)rec->number);
	if (len != doclen || memcmp(old, doc, len) != 0)
		return err_field(e, EEXIST, "revision",
				 "revision %llu is already %s with another document",
				 (unsigned long long)rec->number, rev_state_name(rec->state));
	return 0;
}

static void offer_result(struct trails *tr, const struct tr_rec *rec, struct trails_offer *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	out->state = rec->state;
	if (rec->state == REV_DOWNLOADING && rec->doc)
		out->nmissing = tr_missing(tr, rec->doc, out->missing, ARRAY_SIZE(out->missing),
					   &out->missing_bytes);
}

/* The same number again: the same document is answered with its state
 * (a resumed upload, a second install); anything else is refused. */
static int offer_known(struct trails *tr, struct tr_rec *rec, const char *doc, size_t doclen,
		       struct trails_offer *out, struct err *e)
{
	if (rec->state == REV_FAILED)
		return err_field(e, EEXIST, "revision",
				 "revision %llu failed (%s): publish a new revision number",
				 (unsigned long long)rec->number, rec->reason);
	int r = offer_same(tr, rec, doc, doclen, e);
	if (r < 0)
		return r;
	r = tr_event(tr, rec, TE_RECEIVE, NULL, e);
	if (r < 0)
		return r;
	offer_result(tr, rec, out);
	return 0;
}

/* ---- placing ---- */

int tr_place(struct trails *tr, struct tr_rec *rec, struct err *e)
{
	int root = storage_root_fd(tr->cfg.storage);
	char from[48], to[48];
	if (dir_of(rec->number, TR_OFFERS, from, sizeof(from)) < 0 ||
	    dir_of(rec->number, TR_TRAILS, to, sizeof(to)) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	int r = 0;
	/* a bootloader loads the BSP's kernel from boot/<rev>/ (BOOT.md): place it first */
	if (rec->doc && !tr->benv_self)
		r = trails_bsp_place(tr->cfg.storage, rec->doc, e);
	if (r == 0 && !exists_at(root, TR_TRAILS))
		r = storage_mkdir_durable(root, TR_TRAILS, 0755, e);
	if (r == 0)
		r = storage_rename_durable(root, from, root, to, e);
	if (r < 0)
		return err_prefix(e, "place revision %llu", (unsigned long long)rec->number);
	rec->installed = true;
	revision_free(rec->doc);
	rec->doc = NULL;
	rec->done = rec->total;
	return tr_event(tr, rec, TE_PLACED, NULL, e);
}

/* Older revisions still downloading are not wanted any more. */
static void offer_supersede(struct trails *tr, uint64_t rev)
{
	for (size_t i = 0; i < tr->nrecs; i++) {
		struct tr_rec *o = &tr->recs[i];
		if (o->state != REV_DOWNLOADING || o->number >= rev)
			continue;
		struct tr_fail *f = tr_fail_set(tr, "superseded", "", "revision %llu was offered",
						(unsigned long long)rev);
		struct err e = ERR_INIT;
		if (tr_event(tr, o, TE_REJECT, f, &e) < 0)
			log_err("revision %llu: %s", (unsigned long long)o->number, e.msg);
		revision_free(o->doc);
		o->doc = NULL;
	}
}

/* Verified and admitted: keep the document, take objects, place if complete. */
static int offer_accept(struct trails *tr, struct tr_rec *rec, struct revision *r,
			const char *doc, size_t doclen, const char *sig, size_t siglen,
			struct err *e)
{
	int ret = offer_write_files(tr, rec->number, doc, doclen, sig, siglen, e);
	if (ret < 0) {
		revision_free(r);
		return offer_reject(tr, rec, ret == -ENOSPC ? "no-space" : "storage", e);
	}
	rec->doc = r;
	rec->t0_ns = now_ns();
	(void)tr_missing(tr, r, NULL, 0, &rec->total);
	rec->done = 0;
	ret = tr_event(tr, rec, TE_ACCEPT, NULL, e);
	if (ret < 0)
		return ret;
	offer_supersede(tr, rec->number);
	uint64_t bytes;
	if (tr_missing(tr, r, NULL, 0, &bytes) == 0)
		return tr_place(tr, rec, e);
	return 0;
}

int trails_offer(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
		 const char *sig, size_t siglen, struct trails_offer *out, struct err *e)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (rev == 0 || rev > REV_MAX_NUMBER)
		return err_field(e, EINVAL, "revision", "must be 1 .. 2^53-1");
	struct tr_rec *rec = tr_rec_find(tr, rev);
	if (rec && rec->state != REV_REJECTED)
		return offer_known(tr, rec, doc, doclen, out, e);
	int r = 0;
	if (rec) /* REJECTED: a new attempt */
		r = tr_event(tr, rec, TE_RECEIVE, NULL, e);
	else if (!(rec = tr_rec_add(tr, rev)))
		r = err_set(e, ENOSPC, "too many revisions on record (%d): run gc", TR_MAX_RECORDS);
	if (r < 0)
		return r;
	struct revision *parsed = NULL;
	const char *code = "";
	r = offer_verify(tr, rev, doc, doclen, sig, siglen, &parsed, &code, e);
	if (r >= 0 && (r = offer_admit(tr, rev, parsed, e)) < 0)
		code = "no-space";
	if (r < 0) {
		revision_free(parsed);
		return offer_reject(tr, rec, code, e);
	}
	r = offer_accept(tr, rec, parsed, doc, doclen, sig, siglen, e);
	if (r < 0)
		return r;
	offer_result(tr, rec, out);
	return 0;
}

/* ---- objects ---- */

int trails_object_begin(struct trails *tr, const struct digest *d, uint64_t size,
			struct obj_writer **out, struct err *e)
{
	char id[DIGEST_STR_LEN + 1];
	digest_format(d, id);
	const struct tr_rec *want = NULL;
	for (size_t i = 0; i < tr->nrecs && !want; i++) {
		const struct tr_rec *rec = &tr->recs[i];
		if (rec->state != REV_DOWNLOADING || !rec->doc)
			continue;
		uint64_t declared = uses_object(rec->doc, d);
		if (declared != UINT64_MAX && declared != size)
			return err_set(e, EINVAL, "object %s: %llu bytes, revision %llu declares %llu",
				       id, (unsigned long long)size, (unsigned long long)rec->number,
				       (unsigned long long)declared);
		if (declared != UINT64_MAX)
			want = rec;
	}
	if (storage_object_has(tr->cfg.storage, d))
		return err_set(e, EEXIST, "object %s is already stored", id);
	if (!want)
		return err_set(e, ENOENT, "object %s: no revision being downloaded needs it", id);
	int r = gc_admit(tr->cfg.storage, size, tr->cfg.reserve_bytes, e);
	if (r < 0)
		return err_prefix(e, "object %s", id);
	return storage_object_begin(tr->cfg.storage, d, size, out, e);
}

bool trails_object_has(struct trails *tr, const struct digest *d)
{
	return storage_object_has(tr->cfg.storage, d);
}

/* Progress, then placement when nothing is missing any more. */
static void object_progress(struct trails *tr, struct tr_rec *rec)
{
	uint64_t bytes;
	size_t n = tr_missing(tr, rec->doc, NULL, 0, &bytes);
	rec->done = rec->total > bytes ? rec->total - bytes : 0;
	struct err e = ERR_INIT;
	int r = n == 0 ? tr_place(tr, rec, &e) : tr_status_store(tr, rec, NULL, &e);
	if (r < 0)
		log_err("revision %llu: %s", (unsigned long long)rec->number, e.msg);
	else if (n == 0)
		log_info("revision %llu: every object stored, installed",
			 (unsigned long long)rec->number);
}

void trails_object_stored(struct trails *tr, const struct digest *d)
{
	for (size_t i = 0; i < tr->nrecs; i++) {
		struct tr_rec *rec = &tr->recs[i];
		if (rec->state == REV_DOWNLOADING && rec->doc &&
		    uses_object(rec->doc, d) != UINT64_MAX)
			object_progress(tr, rec);
	}
}

int tr_offer_reload(struct trails *tr, struct tr_rec *rec, const char **code, struct err *e)
{
	*code = "load";
	char dir[48], path[64];
	int root = storage_root_fd(tr->cfg.storage);
	_cleanup_free_ char *doc = NULL, *sig = NULL;
	size_t doclen = 0, siglen = 0;
	int r = dir_of(rec->number, TR_OFFERS, dir, sizeof(dir));
	if (r >= 0 && (r = str_fmt(path, sizeof(path), "%s/revision.json", dir)) >= 0)
		r = file_read_all(root, path, REV_MAX_DOC, &doc, &doclen, e);
	if (r >= 0 && (r = str_fmt(path, sizeof(path), "%s/revision.sig", dir)) >= 0)
		r = file_read_all(root, path, SIG_MAX_FILE, &sig, &siglen, e);
	if (r < 0)
		return err_prefix(e, "revision %llu", (unsigned long long)rec->number);
	*code = "bad-signature";
	r = sig_verify(tr->cfg.trust, doc, doclen, sig, siglen, NULL, e);
	if (r < 0)
		return err_prefix(e, "revision %llu: signature", (unsigned long long)rec->number);
	*code = "schema";
	r = revision_parse(doc, doclen, REV_PARSE_DEVICE, &rec->doc, e);
	if (r < 0)
		return err_prefix(e, "revision %llu: revision.json", (unsigned long long)rec->number);
	*code = "mismatch";
	if (rec->doc->number != rec->number)
		return err_field(e, EINVAL, "revision", "is %llu in offers/%llu",
				 (unsigned long long)rec->doc->number,
				 (unsigned long long)rec->number);
	rec->t0_ns = now_ns();
	return 0;
}
