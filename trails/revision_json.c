/* trails/revision_json.c — typed readers for the revision parser: each one
 * checks a token's JSON type, its size and its value, and on any problem
 * sets an error naming the field and the fix. Object references (objrefs)
 * live here too: the top level (bsp) and containers (rootfs) share them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "revision_internal.h"

/* Longest key worth comparing or showing; every schema key is shorter. */
#define RP_KEY_MAX 64

const char *rp_show(const char *s, size_t n, char out[RP_SHOW_MAX])
{
	size_t shown = n > 40 ? 40 : n;
	for (size_t i = 0; i < shown; i++) {
		char c = s[i];
		out[i] = (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') ? c : '?';
	}
	memcpy(out + shown, n > shown ? "..." : "", n > shown ? 4 : 1);
	return out;
}

/* Shows the unescaped string when it is short, else the raw bytes. */
const char *rp_show_tok(const struct rp *p, int t, char out[RP_SHOW_MAX])
{
	char buf[RP_KEY_MAX + 1];
	size_t n;
	if (jp_str(&p->jp, t, buf, sizeof(buf), &n) == 0)
		return rp_show(buf, n, out);
	const jsmntok_t *tok = &p->jp.tok[t];
	return rp_show(p->jp.js + tok->start, (size_t)(tok->end - tok->start), out);
}

/* A field name that does not fit keeps its parent, which still points at
 * the right place; field names are for people, not lookups. */
void rp_field_key(char out[ERR_FIELD_MAX], const char *parent, const char *key)
{
	int rc = parent[0] ? str_fmt(out, ERR_FIELD_MAX, "%s.%s", parent, key)
			   : str_fmt(out, ERR_FIELD_MAX, "%s", key);
	if (rc < 0 && str_fmt(out, ERR_FIELD_MAX, "%s", parent) < 0)
		out[0] = '\0';
}

void rp_field_idx(char out[ERR_FIELD_MAX], const char *parent, size_t i)
{
	if (str_fmt(out, ERR_FIELD_MAX, "%s[%zu]", parent, i) < 0 &&
	    str_fmt(out, ERR_FIELD_MAX, "%s", parent) < 0)
		out[0] = '\0';
}

int rp_fail(struct rp *p, int code, const char *f, const char *fmt, ...)
{
	char text[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap); /* an error message may truncate */
	va_end(ap);
	if (!f[0])
		return err_set(p->e, code, "%s", text);
	return err_field(p->e, code, f, "%s", text);
}

static const char *tok_kind(const struct rp *p, int t)
{
	if (t < 0 || t >= p->jp.ntok)
		return "nothing";
	const jsmntok_t *tok = &p->jp.tok[t];
	switch (tok->type) {
	case JSMN_OBJECT: return "an object";
	case JSMN_ARRAY: return "an array";
	case JSMN_STRING: return "a string";
	default: break;
	}
	char c = p->jp.js[tok->start];
	if (c == 't' || c == 'f')
		return "a boolean";
	return c == 'n' ? "null" : "a number";
}

static bool tok_is_number(const struct rp *p, int t)
{
	if (!jp_is(&p->jp, t, JSMN_PRIMITIVE))
		return false;
	char c = p->jp.js[p->jp.tok[t].start];
	return c == '-' || (c >= '0' && c <= '9');
}

int rp_type(struct rp *p, int t, const char *f, const char *want)
{
	return rp_fail(p, EINVAL, f, "expected %s, got %s", want, tok_kind(p, t));
}

static void join_names(const char *const *names, size_t n, char *out, size_t cap)
{
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (str_fmt(out + at, cap - at, "%s%s", i ? ", " : "", names[i]) < 0)
			break;
		at += strlen(out + at);
	}
}

/* Index of key token k in names, or -1. Keys compare unescaped. */
static int key_lookup(const struct rp *p, int k, const struct rp_obj *o)
{
	char key[RP_KEY_MAX + 1];
	if (jp_str(&p->jp, k, key, sizeof(key), NULL) < 0)
		return -1;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(key, o->names[i]) == 0)
			return (int)i;
	return -1;
}

static int bad_key(struct rp *p, int k, const char *f, const struct rp_obj *o, bool dup)
{
	char shown[RP_SHOW_MAX], cf[ERR_FIELD_MAX], list[256];
	rp_field_key(cf, f, rp_show_tok(p, k, shown));
	if (dup)
		return rp_fail(p, EINVAL, cf, "duplicate key: give each key once");
	join_names(o->names, o->n, list, sizeof(list));
	return rp_fail(p, EINVAL, cf, "unknown key: remove it (known keys here: %s)", list);
}

int rp_members(struct rp *p, int t, const char *f, struct rp_obj *o)
{
	if (!jp_is(&p->jp, t, JSMN_OBJECT))
		return rp_type(p, t, f, "an object");
	for (size_t i = 0; i < o->n; i++)
		o->idx[i] = -1;
	int k = t + 1;
	for (int m = 0; m < p->jp.tok[t].size; m++) {
		int which = key_lookup(p, k, o);
		if (which < 0 || o->idx[which] >= 0)
			return bad_key(p, k, f, o, which >= 0);
		o->idx[which] = k + 1;
		k = jp_next(&p->jp, k + 1);
	}
	return 0;
}

int rp_require(struct rp *p, const struct rp_obj *o, unsigned required, const char *f)
{
	for (size_t i = 0; i < o->n; i++) {
		if (!(required & RP_BIT(i)) || o->idx[i] >= 0)
			continue;
		char cf[ERR_FIELD_MAX];
		rp_field_key(cf, f, o->names[i]);
		return rp_fail(p, EINVAL, cf, "missing: this field is required, add it");
	}
	return 0;
}

int rp_array(struct rp *p, int t, const char *f, size_t min, size_t max, size_t *n)
{
	if (!jp_is(&p->jp, t, JSMN_ARRAY))
		return rp_type(p, t, f, "an array");
	size_t size = (size_t)p->jp.tok[t].size;
	if (size < min)
		return rp_fail(p, EINVAL, f, "empty: list at least %zu entr%s", min,
			       min == 1 ? "y" : "ies");
	if (size > max)
		return rp_fail(p, E2BIG, f, "%zu entries, more than the %zu allowed: remove some",
			       size, max);
	*n = size;
	return 0;
}

static int str_error(struct rp *p, int rc, const char *f, size_t max)
{
	if (rc == -ENAMETOOLONG)
		return rp_fail(p, E2BIG, f, "longer than %zu bytes: shorten it", max);
	return rp_fail(p, EINVAL, f, "not a valid string");
}

int rp_strbuf(struct rp *p, int t, const char *f, char *out, size_t cap, size_t *outlen)
{
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, f, "a string");
	int rc = jp_str(&p->jp, t, out, cap, outlen);
	return rc < 0 ? str_error(p, rc, f, cap - 1) : 0;
}

/* An unescaped string is never longer than its JSON text, so the buffer is
 * sized by the smaller of the two and the cap is still enforced exactly. */
int rp_strdup(struct rp *p, int t, const char *f, size_t max, char **out, size_t *outlen)
{
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, f, "a string");
	size_t raw = (size_t)(p->jp.tok[t].end - p->jp.tok[t].start);
	size_t cap = (raw < max ? raw : max) + 1;
	_cleanup_free_ char *s = malloc(cap);
	if (!s)
		return rp_fail(p, ENOMEM, f, "out of memory");
	size_t n;
	int rc = jp_str(&p->jp, t, s, cap, &n);
	if (rc < 0)
		return str_error(p, rc, f, max);
	*out = TAKE_PTR(s);
	if (outlen)
		*outlen = n;
	return 0;
}

int rp_uint(struct rp *p, int t, const char *f, uint64_t min, uint64_t max, uint64_t *out)
{
	char shown[RP_SHOW_MAX];
	if (!tok_is_number(p, t))
		return rp_type(p, t, f, "an integer");
	long long v;
	int rc = jp_int(&p->jp, t, (long long)min, (long long)max, &v);
	if (rc == -ERANGE)
		return rp_fail(p, ERANGE, f, "%s is out of range: use %llu to %llu",
			       rp_show_tok(p, t, shown), (unsigned long long)min,
			       (unsigned long long)max);
	if (rc < 0)
		return rp_fail(p, EINVAL, f, "%s is not a whole number: write it without a "
			       "fraction or exponent", rp_show_tok(p, t, shown));
	*out = (uint64_t)v;
	return 0;
}

int rp_enum(struct rp *p, int t, const char *f, const char *const *names, size_t n, int *out)
{
	char buf[RP_KEY_MAX + 1], shown[RP_SHOW_MAX], list[256];
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, f, "a string");
	if (jp_str(&p->jp, t, buf, sizeof(buf), NULL) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(buf, names[i]) == 0) {
				*out = (int)i;
				return 0;
			}
		}
	}
	join_names(names, n, list, sizeof(list));
	return rp_fail(p, EINVAL, f, "unknown value \"%s\": use one of %s",
		       rp_show_tok(p, t, shown), list);
}

int rp_name(struct rp *p, int t, const char *f, char out[NAME_MAX_LEN + 1])
{
	char shown[RP_SHOW_MAX];
	size_t n;
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, f, "a string");
	if (jp_str(&p->jp, t, out, NAME_MAX_LEN + 1, &n) == 0 && name_valid(out))
		return 0;
	return rp_fail(p, EINVAL, f,
		       "\"%s\" is not a valid name: use 1 to %d of a-z, 0-9, '_' and '-', "
		       "starting with a letter or digit",
		       rp_show_tok(p, t, shown), NAME_MAX_LEN);
}

long rp_control_at(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (long)i;
	return -1;
}

/* ---------------- object references ---------------- */

static const char *const ref_keys[] = {"object", "size", "format", "dir", "tar", "file"};
enum { R_OBJECT, R_SIZE, R_FORMAT, R_DIR, R_TAR, R_FILE };
static const char *const format_names[] = {"raw", "squashfs"}; /* enum obj_format */

static int rp_digest(struct rp *p, int t, const char *f, struct digest *out)
{
	char buf[DIGEST_STR_LEN + 1], shown[RP_SHOW_MAX];
	size_t n;
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, f, "a string");
	if (jp_str(&p->jp, t, buf, sizeof(buf), &n) == 0 && digest_parse(buf, n, out) == 0)
		return 0;
	return rp_fail(p, EINVAL, f,
		       "\"%s\" is not a sha256 digest: write \"sha256:\" and 64 lowercase hex "
		       "digits",
		       rp_show_tok(p, t, shown));
}

static int rp_format(struct rp *p, int t, const char *f, const struct rp_slot *slot)
{
	char cf[ERR_FIELD_MAX];
	int format;
	rp_field_key(cf, f, "format");
	int rc = rp_enum(p, t, cf, format_names, ARRAY_SIZE(format_names), &format);
	if (rc < 0)
		return rc;
	if ((enum obj_format)format != slot->format)
		return rp_fail(p, EINVAL, cf, "must be \"%s\" here: %s", format_names[slot->format],
			       slot->why);
	return 0;
}

static int rp_src_path(struct rp *p, int t, const char *f, char **out)
{
	size_t n;
	int rc = rp_strdup(p, t, f, REV_MAX_PATH - 1, out, &n);
	if (rc < 0)
		return rc;
	if (n == 0)
		return rp_fail(p, EINVAL, f, "empty path: name the source to build from");
	if (rp_control_at(*out, n) >= 0)
		return rp_fail(p, EINVAL, f, "control character in path: not allowed");
	return 0;
}

/* {"dir"|"tar"|"file": PATH} (+ "format"): what cairn-pack builds the
 * object from. Only spec documents may say this. */
static int rp_objref_src(struct rp *p, const struct rp_obj *o, int src, const char *f,
			 const struct rp_slot *slot, struct rev_objref *ref)
{
	char cf[ERR_FIELD_MAX];
	rp_field_key(cf, f, ref_keys[src]);
	if (p->mode != REV_PARSE_SPEC)
		return rp_fail(p, EINVAL, cf,
			       "a build source is only allowed in a spec document for cairn-pack: "
			       "a device revision names each object by \"object\" and \"size\"");
	for (int k = R_OBJECT; k <= R_FILE; k++) {
		if (k == src || k == R_FORMAT || o->idx[k] < 0)
			continue;
		rp_field_key(cf, f, ref_keys[k]);
		return rp_fail(p, EINVAL, cf,
			       "not allowed together with \"%s\": give one build source (dir, tar "
			       "or file), or object and size",
			       ref_keys[src]);
	}
	enum obj_format made = src == R_FILE ? OBJ_RAW : OBJ_SQUASHFS;
	rp_field_key(cf, f, ref_keys[src]);
	if (made != slot->format)
		return rp_fail(p, EINVAL, cf, "a %s source makes a %s object, but this one must be "
			       "%s: %s", ref_keys[src], format_names[made],
			       format_names[slot->format], slot->why);
	ref->src = src == R_DIR ? OBJ_SRC_DIR : src == R_TAR ? OBJ_SRC_TAR : OBJ_SRC_FILE;
	return rp_src_path(p, o->idx[src], cf, &ref->src_path);
}

int rp_objref(struct rp *p, int t, const char *f, const struct rp_slot *slot,
	      struct rev_objref *ref)
{
	struct rp_obj o = RP_OBJ(ref_keys);
	char cf[ERR_FIELD_MAX];
	int rc = rp_members(p, t, f, &o);
	if (rc < 0)
		return rc;
	ref->present = true;
	ref->format = slot->format;
	if (o.idx[R_FORMAT] >= 0 && (rc = rp_format(p, o.idx[R_FORMAT], f, slot)) < 0)
		return rc;
	for (int src = R_DIR; src <= R_FILE; src++)
		if (o.idx[src] >= 0)
			return rp_objref_src(p, &o, src, f, slot, ref);
	rc = rp_require(p, &o, RP_BIT(R_OBJECT) | RP_BIT(R_SIZE), f);
	if (rc < 0)
		return rc;
	rp_field_key(cf, f, "object");
	if ((rc = rp_digest(p, o.idx[R_OBJECT], cf, &ref->digest)) < 0)
		return rc;
	rp_field_key(cf, f, "size");
	return rp_uint(p, o.idx[R_SIZE], cf, 0, REV_MAX_NUMBER, &ref->size);
}
