/* tools/pack/verify.c — cairn-pack verify: is OUT a revision a device would
 * install? The same order as a device's install (trails/REVISION.md):
 *   1. the signature over the exact bytes of revision.json, before anything
 *      in the document is believed;
 *   2. the schema (REV_PARSE_DEVICE: every object named by digest and size);
 *   3. every object the revision names is in OUT's store, has the declared
 *      size, and its bytes hash to its name.
 * The first failure is the answer; the message names the object and the
 * field that references it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/digest.h"
#include "../../lib/json.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"
#include "pack.h"

#define SIG_COUNT_TOKENS 256

DEFINE_FREEP(struct revision, revision_free)
DEFINE_FREEP(struct storage, storage_close)
DEFINE_FREEP(struct trust, trust_free)

/* err_set, then name the field that references the object. */
static int obj_fail(struct err *e, int code, const char *field, const char *fmt, ...)
	_printf_(4, 5);
static int obj_fail(struct err *e, int code, const char *field, const char *fmt, ...)
{
	char text[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	int r = err_set(e, code, "%s", text);
	if (e)
		snprintf(e->field, sizeof(e->field), "%s", field);
	return r;
}

static int check_object(struct storage *s, const struct rev_object_use *u, struct err *e)
{
	const struct rev_objref *ref = u->ref;
	char id[DIGEST_STR_LEN + 1];
	digest_format(&ref->digest, id);
	if (!storage_object_has(s, &ref->digest))
		return obj_fail(e, ENOENT, u->field, "missing object %s (%s)", id, u->field);
	uint64_t size;
	int r = storage_object_size(s, &ref->digest, &size, e);
	if (r < 0)
		return err_prefix(e, "%s", u->field);
	if (size != ref->size)
		return obj_fail(e, EFBIG, u->field, "object %s (%s): size %llu != declared %llu", id,
				u->field, (unsigned long long)size, (unsigned long long)ref->size);
	r = storage_object_verify(s, &ref->digest, ref->size, e);
	if (r == -EBADMSG)
		return obj_fail(e, EBADMSG, u->field,
				"object %s (%s): digest mismatch: its bytes changed", id, u->field);
	if (r < 0)
		return err_prefix(e, "%s", u->field);
	return 0;
}

static bool seen_before(const struct rev_object_use *uses, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (digest_eq(&uses[j].ref->digest, &uses[i].ref->digest))
			return true;
	return false;
}

/* Check every object once; *distinct gets how many different ones. */
static int check_objects(const char *outdir, const struct revision *rev, size_t *distinct,
			 struct err *e)
{
	_cleanup_(storage_closep) struct storage *s = NULL;
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(rev, uses, ARRAY_SIZE(uses));
	if (n > ARRAY_SIZE(uses))
		return err_set(e, E2BIG, "more than %zu objects", ARRAY_SIZE(uses));
	int r = storage_open(outdir, &s, e);
	if (r < 0)
		return r;
	*distinct = 0;
	for (size_t i = 0; i < n; i++) {
		if (seen_before(uses, i))
			continue;
		r = check_object(s, &uses[i], e);
		if (r < 0)
			return r;
		(*distinct)++;
	}
	return 0;
}

/* Entries in a revision.sig that sig_verify() already accepted as well formed. */
static size_t sig_count(const char *sig, size_t len)
{
	_cleanup_free_ jsmntok_t *toks = calloc(SIG_COUNT_TOKENS, sizeof(*toks));
	struct jp p;
	struct err ignored = ERR_INIT;
	if (!toks || jp_parse(&p, sig, len, toks, SIG_COUNT_TOKENS, &ignored) < 0)
		return 0;
	int arr = jp_get(&p, 0, "signatures");
	return arr >= 0 && jp_is(&p, arr, JSMN_ARRAY) ? (size_t)p.tok[arr].size : 0;
}

static int read_sig(int outfd, const char *outdir, char **sig, size_t *len, struct err *e)
{
	int r = file_read_all(outfd, "revision.sig", SIG_MAX_FILE, sig, len, e);
	if (r == -ENOENT)
		return err_set(e, ENOENT, "%s/revision.sig: missing: the revision is not signed "
				       "(cairn-pack sign %s --key KEY)", outdir, outdir);
	return r < 0 ? err_prefix(e, "%s", outdir) : 0;
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

int pack_verify(const char *outdir, const char *trust_path, const char *keys_dir, char *summary,
		size_t cap, struct err *e)
{
	_cleanup_(trust_freep) struct trust *t = NULL;
	_cleanup_(revision_freep) struct revision *rev = NULL;
	_cleanup_free_ char *doc = NULL, *sig = NULL;
	size_t doclen, siglen, nobj;
	unsigned nvalid = 0;
	int r = trust_load(trust_path, &t, e);
	if (r == 0 && keys_dir)
		r = pack_trust_keys(t, keys_dir, e);
	if (r < 0)
		return r;
	_cleanup_close_ int outfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (outfd < 0)
		return err_set(e, errno, "%s: %s", outdir, strerror(errno));
	r = file_read_all(outfd, "revision.json", REV_MAX_DOC, &doc, &doclen, e);
	if (r < 0)
		return err_prefix(e, "%s", outdir);
	r = read_sig(outfd, outdir, &sig, &siglen, e);
	if (r < 0)
		return r;
	r = sig_verify(t, doc, doclen, sig, siglen, &nvalid, e);
	if (r < 0)
		return r;
	r = revision_parse(doc, doclen, REV_PARSE_DEVICE, &rev, e);
	if (r < 0)
		return err_prefix(e, "revision.json");
	r = check_objects(outdir, rev, &nobj, e);
	if (r < 0)
		return r;
	if (str_fmt(summary, cap, "revision %llu: %zu container%s, %zu object%s, %u/%zu signatures valid",
		    (unsigned long long)rev->number, rev->ncontainers, plural(rev->ncontainers),
		    nobj, plural(nobj), nvalid, sig_count(sig, siglen)) < 0)
		return err_set(e, ENAMETOOLONG, "summary buffer too small");
	return 0;
}
