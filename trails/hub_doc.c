/* trails/hub_doc.c — the desired pointer a hub serves (HUB.md, "Desired
 * revision"). It is hostile input: capped, strictly parsed, exactly three
 * keys and an optional fourth, "keys" (a keys document: exactly "document"
 * and "signature"); what it carries is then verified by the engine
 * (trails_keys_put, trails_offer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "hub_internal.h"

#define POINTER_TOKENS 16

void hub_pointer_free(struct hub_pointer *p)
{
	free(p->doc);
	free(p->sig);
	free(p->kdoc);
	free(p->ksig);
	memset(p, 0, sizeof(*p));
}

/* String member `key` of object obj unescaped into a fresh buffer of at
 * most max bytes. */
static int pointer_str(const struct jp *p, int obj, const char *key, size_t max, char **out,
		       size_t *len, struct err *e)
{
	int v = jp_get(p, obj, key);
	if (v < 0)
		return err_field(e, EINVAL, key, "missing");
	if (!jp_is(p, v, JSMN_STRING))
		return err_field(e, EINVAL, key, "not a string");
	_cleanup_free_ char *buf = malloc(max + 1);
	if (!buf)
		return err_set(e, ENOMEM, "%s: out of memory", key);
	int r = jp_str(p, v, buf, max + 1, len);
	if (r == -ENAMETOOLONG)
		return err_field(e, EFBIG, key, "longer than %zu bytes", max);
	if (r < 0)
		return err_field(e, EINVAL, key, "bad escape, invalid UTF-8 or a NUL byte");
	*out = TAKE_PTR(buf);
	return 0;
}

/* "keys": {"document": keys.json, "signature": keys.sig}, nothing else. */
static int pointer_keys(const struct jp *p, int obj, struct hub_pointer *ptr, struct err *e)
{
	if (!jp_is(p, obj, JSMN_OBJECT) || p->tok[obj].size != 2 ||
	    jp_get(p, obj, "document") < 0 || jp_get(p, obj, "signature") < 0)
		return err_field(e, EINVAL, "keys", "want an object of exactly document, signature");
	int r = pointer_str(p, obj, "document", KEYS_MAX_DOC, &ptr->kdoc, &ptr->kdoclen, e);
	if (r == 0)
		r = pointer_str(p, obj, "signature", SIG_MAX_FILE, &ptr->ksig, &ptr->ksiglen, e);
	return r < 0 ? err_prefix(e, "keys") : 0;
}

int hub_pointer_parse(const char *body, size_t len, struct hub_pointer *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (len > HUB_DESIRED_MAX)
		return err_set(e, EFBIG, "pointer: larger than %llu bytes",
			       (unsigned long long)HUB_DESIRED_MAX);
	jsmntok_t tok[POINTER_TOKENS];
	struct jp p;
	int r = jp_parse(&p, body, len, tok, POINTER_TOKENS, e);
	if (r < 0)
		return err_prefix(e, "pointer");
	if (!jp_is(&p, 0, JSMN_OBJECT))
		return err_set(e, EINVAL, "pointer: not a JSON object");
	for (int k = 1; k < p.ntok; k = jp_next(&p, k + 1))
		if (!jp_streq(&p, k, "revision") && !jp_streq(&p, k, "document") &&
		    !jp_streq(&p, k, "signature") && !jp_streq(&p, k, "keys"))
			return err_set(e, EINVAL, "pointer: unknown key '%.*s'",
				       p.tok[k].end - p.tok[k].start > 64
					       ? 64
					       : p.tok[k].end - p.tok[k].start,
				       body + p.tok[k].start);
	int keys = jp_get(&p, 0, "keys");
	if (p.tok[0].size != 3 + (keys >= 0))
		return err_set(e, EINVAL,
			       "pointer: want exactly revision, document, signature (and keys)");
	int v = jp_get(&p, 0, "revision");
	long long rev;
	if (v < 0 || jp_int(&p, v, 1, (long long)REV_MAX_NUMBER, &rev) < 0)
		return err_field(e, EINVAL, "revision", "want an integer 1..2^53-1");
	struct hub_pointer ptr = {.revision = (uint64_t)rev};
	if ((r = pointer_str(&p, 0, "document", REV_MAX_DOC, &ptr.doc, &ptr.doclen, e)) < 0 ||
	    (r = pointer_str(&p, 0, "signature", SIG_MAX_FILE, &ptr.sig, &ptr.siglen, e)) < 0 ||
	    (keys >= 0 && (r = pointer_keys(&p, keys, &ptr, e)) < 0)) {
		hub_pointer_free(&ptr);
		return err_prefix(e, "pointer");
	}
	*out = ptr;
	return 0;
}
