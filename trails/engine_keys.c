/* trails/engine_keys.c — PUT /v1/keys and GET /v1/keys: a new keys
 * document (trails/keys.c) takes effect, never stranding the device.
 *
 * The check before anything changes: the committed revision, the staged or
 * running try, the revision running now and one whose objects a worker is
 * re-hashing before its try must each verify under the roots plus the new
 * signing keys (their documents only: the objects were hashed
 * when they were installed and are again when they run). Then the document
 * is stored durably and becomes the engine's trust at once; processes forked
 * later (hub helpers, verify workers) inherit it. */
#define LOG_MODULE "trails"
#include <errno.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "engine_internal.h"

DEFINE_FREEP(struct trust, trust_free)

static int doc_loads(struct trails *tr, uint64_t rev, const struct trust *t, struct err *e)
{
	struct revision *r = NULL;
	int rc = trails_load_doc(tr->cfg.storage, rev, t, &r, e);
	revision_free(r);
	return rc;
}

/* Every revision the device may boot or run still verifies under `t`: the
 * committed one, the try, the running one, and one being verified to be
 * tried. Whatever stops one that verifies today (a signature, or an error
 * reading it now) refuses the rotation. */
static int keys_strand_check(struct trails *tr, const struct trust *t, struct err *e)
{
	const uint64_t revs[] = {tr->bs.committed, tr->bs.try_rev, tr->running,
				 tr->op == TR_OP_VERIFY ? tr->verify.rev : 0};
	const char *what[] = {"the committed revision", "the try", "the running revision",
			      "being verified to be tried"};
	for (size_t i = 0; i < ARRAY_SIZE(revs); i++) {
		struct err le = ERR_INIT, ce = ERR_INIT;
		if (revs[i] == 0 || doc_loads(tr, revs[i], t, &le) == 0 ||
		    doc_loads(tr, revs[i], tr->cfg.trust, &ce) < 0)
			continue;
		return err_field(e, EKEYREJECTED, "keys",
				 "revision %llu (%s) would no longer verify: %s; sign a "
				 "revision with the new keys and commit it first",
				 (unsigned long long)revs[i], what[i], le.msg);
	}
	return 0;
}

int trails_keys_put(struct trails *tr, const char *doc, size_t doclen, const char *sig,
		    size_t siglen, bool *changed, struct err *e)
{
	struct trust *keys = NULL;
	uint64_t serial = 0, have = trust_serial(tr->cfg.trust);
	*changed = false;
	int rc = keys_admit(tr->cfg.storage, tr->cfg.trust, doc, doclen, sig, siglen, &keys,
			    &serial, e);
	if (rc < 0 || !keys)
		return rc; /* refused, or that very document is in effect */
	_cleanup_(trust_freep) struct trust *cand = NULL;
	rc = trust_with(tr->cfg.trust, keys, serial, &cand, e);
	if (rc == 0)
		rc = keys_strand_check(tr, cand, e);
	if (rc == 0)
		rc = keys_store(tr->cfg.storage, serial, doc, doclen, sig, siglen, e);
	if (rc < 0)
		return rc;
	trust_set_signing(tr->cfg.trust, trust_take_signing(cand), serial);
	*changed = true;
	log_info("keys: serial %llu in effect (was %llu), %zu signing keys, threshold %u",
		 (unsigned long long)serial, (unsigned long long)have,
		 trust_count(trust_signing(tr->cfg.trust)),
		 trust_threshold(trust_signing(tr->cfg.trust)));
	return 0;
}

uint64_t trails_keys_serial(const struct trails *tr)
{
	return trust_serial(tr->cfg.trust);
}

static void key_ids(struct jw *w, const char *name, const struct trust *t)
{
	jw_key(w, name);
	jw_arr_open(w);
	for (size_t i = 0; i < trust_count(t); i++) {
		char id[DIGEST_STR_LEN + 1];
		trust_key_id(t, i, id);
		jw_str(w, id);
	}
	jw_arr_close(w);
}

int trails_json_keys(struct trails *tr, const bool *changed, struct jw *w, struct err *e)
{
	(void)e;
	const struct trust *t = tr->cfg.trust, *sg = trust_signing(t);
	jw_obj_open(w);
	if (changed)
		jw_kv_bool(w, "changed", *changed);
	jw_kv_uint(w, "serial", trust_serial(t));
	key_ids(w, "roots", t);
	jw_kv_uint(w, "roots_threshold", trust_threshold(t));
	key_ids(w, "keys", sg);
	jw_kv_uint(w, "threshold", sg ? trust_threshold(sg) : 0);
	jw_obj_close(w);
	return 0;
}
