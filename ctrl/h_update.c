/* ctrl/h_update.c — handlers of the update engine: revisions (list, one,
 * upload of document + signature, run), progress, signing keys (GET, PUT), and objects (HEAD, and
 * PUT streamed straight into the store through the engine's writer).
 *
 * The engine (trails.h) decides; this file only maps its answers to HTTP.
 * Engine errors map by errno (API.md, "Errors of the update engine"). */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/digest.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "../trails/trails.h"

/* HTTP status for an engine error. */
static unsigned engine_status(int r)
{
	switch (-r) {
	case ENOENT:
		return 404;
	case ENOSPC:
	case EDQUOT:
		return 507;
	case EBUSY:
	case EALREADY:
	case EAGAIN:
	case ERANGE: /* downgrade */
	case ESTALE:
	case EEXIST:
		return 409;
	case ENOMEM:
		return 503;
	case EINVAL:
	case EBADMSG:
	case EKEYREJECTED:
	case ENOKEY:
	case EPERM:
	case EACCES:
	case EFBIG:
	case E2BIG:
	case ENAMETOOLONG:
	case EPROTO:
		return 422;
	default:
		return 500;
	}
}

static bool engine_present(struct ctrl *c, struct ctrl_resp *rs)
{
	if (c->tr)
		return true;
	ctrl_resp_error(rs, 503, "", "the update engine is not running");
	return false;
}

/* Let the engine write one JSON value into rs; its error otherwise. */
static void engine_json(struct ctrl_resp *rs, int r, const struct err *e)
{
	if (r < 0)
		ctrl_resp_err(rs, engine_status(r), e);
}

/* ---------------- revisions ---------------- */

void ctrl_h_revisions(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	struct err e = ERR_INIT;
	if (engine_present(c, rs))
		engine_json(rs, trails_json_revisions(c->tr, &rs->w, &e), &e);
}

void ctrl_h_revision(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	uint64_t rev;
	struct err e = ERR_INIT;
	if (ctrl_param_rev(rq, 0, &rev, rs) && engine_present(c, rs))
		engine_json(rs, trails_json_revision(c->tr, rev, &rs->w, &e), &e);
}

void ctrl_h_progress(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	struct err e = ERR_INIT;
	if (engine_present(c, rs))
		engine_json(rs, trails_json_progress(c->tr, &rs->w, &e), &e);
}

/* The body of PUT /v1/revisions/REV: {"document": "...", "signature": "..."},
 * both required, nothing else. */
struct offer_body {
	char *doc, *sig;
	size_t doclen, siglen;
};

static void offer_body_free(struct offer_body *b)
{
	free(b->doc);
	free(b->sig);
}

/* String token i unescaped into a new buffer of at most max bytes. */
static bool take_str(const struct jp *p, int i, const char *key, size_t max, char **out,
		     size_t *len, struct ctrl_resp *rs)
{
	if (!jp_is(p, i, JSMN_STRING)) {
		ctrl_resp_error(rs, 400, key, "must be a string");
		return false;
	}
	size_t cap = (size_t)(p->tok[i].end - p->tok[i].start) + 1;
	*out = malloc(cap);
	if (!*out) {
		ctrl_resp_error(rs, 503, key, "out of memory");
		return false;
	}
	if (jp_str(p, i, *out, cap, len) < 0) {
		ctrl_resp_error(rs, 400, key, "not a valid string (bad escape, NUL or invalid UTF-8)");
		return false;
	}
	if (*len > max) {
		ctrl_resp_error(rs, 413, key, "%zu bytes, more than %zu", *len, max);
		return false;
	}
	return true;
}

static bool offer_parse(const struct ctrl_req *rq, size_t doc_max, struct offer_body *b,
			struct ctrl_resp *rs)
{
	jsmntok_t tok[16];
	struct jp p;
	struct err e = ERR_INIT;
	if (jp_parse(&p, rq->body, rq->body_len, tok, 16, &e) < 0) {
		ctrl_resp_error(rs, 400, "", "body is not valid JSON: %s", e.msg);
		return false;
	}
	if (!jp_is(&p, 0, JSMN_OBJECT)) {
		ctrl_resp_error(rs, 400, "", "body must be a JSON object");
		return false;
	}
	for (int i = 1, n = 0; n < p.tok[0].size; n++, i = jp_next(&p, i + 1)) {
		bool is_doc = jp_streq(&p, i, "document"), is_sig = jp_streq(&p, i, "signature");
		char k[CTRL_ECHO_MAX + 4], raw[CTRL_ECHO_MAX + 1];
		size_t kl = (size_t)(p.tok[i].end - p.tok[i].start);
		if ((!is_doc && !is_sig) || (is_doc ? b->doc : b->sig)) {
			memcpy(raw, p.js + p.tok[i].start, kl < CTRL_ECHO_MAX ? kl : CTRL_ECHO_MAX);
			raw[kl < CTRL_ECHO_MAX ? kl : CTRL_ECHO_MAX] = '\0';
			ctrl_resp_error(rs, 400, ctrl_printable(k, raw), "%s key",
					is_doc || is_sig ? "duplicate" : "unknown");
			return false;
		}
		if (!(is_doc ? take_str(&p, i + 1, "document", doc_max, &b->doc, &b->doclen, rs)
			     : take_str(&p, i + 1, "signature", SIG_MAX_FILE, &b->sig, &b->siglen, rs)))
			return false;
	}
	if (!b->doc || !b->sig) {
		ctrl_resp_error(rs, 400, b->doc ? "signature" : "document", "required");
		return false;
	}
	return true;
}

static void put_offer(struct jw *w, uint64_t rev, const struct trails_offer *o)
{
	jw_obj_open(w);
	jw_kv_uint(w, "revision", rev);
	jw_kv_str(w, "state", rev_state_name(o->state));
	jw_key(w, "missing");
	jw_arr_open(w);
	for (size_t i = 0; i < o->nmissing && i < REV_MAX_OBJECTS; i++) {
		char d[DIGEST_STR_LEN + 1];
		digest_format(&o->missing[i], d);
		jw_str(w, d);
	}
	jw_arr_close(w);
	jw_kv_uint(w, "missing_bytes", o->missing_bytes);
	jw_obj_close(w);
}

void ctrl_h_revision_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	uint64_t rev;
	if (!ctrl_param_rev(rq, 0, &rev, rs) || !engine_present(c, rs))
		return;
	struct offer_body b = {0};
	if (offer_parse(rq, REV_MAX_DOC, &b, rs)) {
		static struct trails_offer o; /* one thread; ~2 KiB */
		struct err e = ERR_INIT;
		memset(&o, 0, sizeof(o));
		int r = trails_offer(c->tr, rev, b.doc, b.doclen, b.sig, b.siglen, &o, &e);
		char who[64];
		const char *label = ctrl_caller_label(rq->caller, who, sizeof(who));
		if (r < 0) {
			log_warn("%s: revision %llu refused: %s", label, (unsigned long long)rev, e.msg);
			ctrl_resp_err(rs, engine_status(r), &e);
		} else {
			log_info("%s: revision %llu offered, %zu objects missing", label,
				 (unsigned long long)rev, o.nmissing);
			rs->status = o.nmissing ? 202 : 200;
			put_offer(&rs->w, rev, &o);
		}
	}
	offer_body_free(&b);
}

/* ---------------- signing keys ---------------- */

void ctrl_h_keys(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	struct err e = ERR_INIT;
	if (engine_present(c, rs))
		engine_json(rs, trails_json_keys(c->tr, NULL, &rs->w, &e), &e);
}

/* PUT /v1/keys: {"document": keys.json, "signature": keys.sig}. */
void ctrl_h_keys_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	struct offer_body b = {0};
	if (engine_present(c, rs) && offer_parse(rq, KEYS_MAX_DOC, &b, rs)) {
		struct err e = ERR_INIT;
		bool changed = false;
		char who[64];
		const char *label = ctrl_caller_label(rq->caller, who, sizeof(who));
		int r = trails_keys_put(c->tr, b.doc, b.doclen, b.sig, b.siglen, &changed, &e);
		if (r < 0) /* the engine logs what it put into effect */
			log_warn("%s: keys document refused: %s", label, e.msg);
		if (r == 0)
			r = trails_json_keys(c->tr, &changed, &rs->w, &e);
		engine_json(rs, r, &e);
	}
	offer_body_free(&b);
}

void ctrl_h_revision_run(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	uint64_t rev;
	if (!ctrl_param_rev(rq, 0, &rev, rs) || !engine_present(c, rs))
		return;
	struct err e = ERR_INIT;
	bool admin = rq->caller->kind == CTRL_CALLER_ADMIN;
	int r = trails_run(c->tr, rev, admin, &e);
	char who[64];
	const char *label = ctrl_caller_label(rq->caller, who, sizeof(who));
	if (r < 0) {
		log_warn("%s: run revision %llu refused: %s", label, (unsigned long long)rev, e.msg);
		ctrl_resp_err(rs, engine_status(r), &e);
		return;
	}
	log_info("%s: run revision %llu", label, (unsigned long long)rev);
	rs->status = 202;
	jw_obj_open(&rs->w);
	jw_kv_uint(&rs->w, "revision", rev);
	jw_kv_str(&rs->w, "progress", "/v1/progress");
	jw_obj_close(&rs->w);
}

/* ---------------- objects ---------------- */

/* The "sha256:HEX" parameter. */
static bool param_digest(const struct ctrl_req *rq, struct digest *d, struct ctrl_resp *rs)
{
	const char *s = rq->params[0];
	if (digest_parse(s, strlen(s), d) == 0)
		return true;
	char b[CTRL_ECHO_MAX + 4];
	ctrl_resp_error(rs, 400, "digest", "'%s' is not sha256: and 64 lowercase hex digits",
			ctrl_printable(b, s));
	return false;
}

static void put_object(struct jw *w, const struct digest *d, uint64_t size, bool have_size)
{
	char s[DIGEST_STR_LEN + 1];
	digest_format(d, s);
	jw_obj_open(w);
	jw_kv_str(w, "object", s);
	if (have_size)
		jw_kv_uint(w, "size", size);
	jw_obj_close(w);
}

void ctrl_h_object_head(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	struct digest d;
	if (!param_digest(rq, &d, rs) || !engine_present(c, rs))
		return;
	if (!trails_object_has(c->tr, &d)) {
		ctrl_resp_error(rs, 404, "", "the device does not have %s", rq->params[0]);
		return;
	}
	put_object(&rs->w, &d, 0, false);
}

struct upload {
	struct obj_writer *w;
	struct digest d;
	uint64_t size;
};

static void *upload_begin(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	struct digest d;
	if (!param_digest(rq, &d, rs) || !engine_present(c, rs))
		return NULL;
	struct upload *up = calloc(1, sizeof(*up));
	if (!up) {
		ctrl_resp_error(rs, 503, "", "out of memory");
		return NULL;
	}
	up->d = d;
	up->size = (uint64_t)rq->content_length;
	struct err e = ERR_INIT;
	int r = trails_object_begin(c->tr, &d, up->size, &up->w, &e);
	if (r == -EEXIST) {
		/* already stored: nothing to read, nothing to do */
		put_object(&rs->w, &d, up->size, true);
	} else if (r < 0) {
		ctrl_resp_err(rs, r == -ENOENT ? 404 : engine_status(r), &e);
	}
	if (r < 0) {
		free(up);
		return NULL;
	}
	return up;
}

static unsigned write_status(int r)
{
	return r == -ENOSPC || r == -EDQUOT ? 507 : r == -EFBIG ? 413 : 500;
}

static bool upload_data(struct ctrl *c, void *st, const char *buf, size_t n, struct ctrl_resp *rs)
{
	(void)c;
	struct upload *up = st;
	struct err e = ERR_INIT;
	int r = storage_object_write(up->w, buf, n, &e);
	if (r >= 0)
		return true;
	ctrl_resp_err(rs, write_status(r), &e);
	return false; /* the writer is aborted with the call */
}

static void upload_end(struct ctrl *c, void *st, struct ctrl_resp *rs)
{
	_cleanup_free_ struct upload *up = st;
	struct err e = ERR_INIT;
	char d[DIGEST_STR_LEN + 1];
	digest_format(&up->d, d);
	int r = storage_object_commit(up->w, &e); /* frees the writer either way */
	up->w = NULL;
	if (r < 0) {
		log_warn("upload of %s refused: %s", d, e.msg);
		if (r == -EBADMSG)
			ctrl_resp_error(rs, 422, "body", "%s", e.msg);
		else
			ctrl_resp_err(rs, write_status(r), &e);
		return;
	}
	log_info("object %s stored (%llu bytes)", d, (unsigned long long)up->size);
	trails_object_stored(c->tr, &up->d);
	rs->status = 201;
	put_object(&rs->w, &up->d, up->size, true);
}

static void upload_abort(struct ctrl *c, void *st)
{
	(void)c;
	struct upload *up = st;
	char d[DIGEST_STR_LEN + 1];
	digest_format(&up->d, d);
	log_info("upload of %s not completed (%llu of %llu bytes): nothing kept", d,
		 (unsigned long long)storage_object_written(up->w), (unsigned long long)up->size);
	storage_object_abort(up->w);
	free(up);
}

const struct ctrl_stream_ops ctrl_object_put = {
	.begin = upload_begin,
	.data = upload_data,
	.end = upload_end,
	.abort = upload_abort,
};
