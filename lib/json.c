/* lib/json.c — see json.h. */

/* jsmn is header-only: this file holds its one definition. It must come
 * before json.h, whose include of jsmn.h (declarations only) is then a no-op. */
#define JSMN_STRICT
#include <jsmn.h>

#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- UTF-8 ---------------- */

/* Length of a valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* ---------------- writer ---------------- */

void jw_init_fixed(struct jw *w, char *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
	w->fixed = true;
	if (cap == 0)
		w->failed = true;
	else
		buf[0] = '\0';
}

void jw_init_dyn(struct jw *w, bool pretty)
{
	memset(w, 0, sizeof(*w));
	w->pretty = pretty;
}

void jw_free(struct jw *w)
{
	if (!w->fixed)
		free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

static bool jw_reserve(struct jw *w, size_t n)
{
	if (w->failed)
		return false;
	if (w->len + n + 1 <= w->cap)
		return true;
	if (w->fixed) {
		w->failed = true;
		return false;
	}
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n + 1)
		cap *= 2;
	char *nb = realloc(w->buf, cap);
	if (!nb) {
		w->failed = true;
		return false;
	}
	w->buf = nb;
	w->cap = cap;
	return true;
}

static void jw_put(struct jw *w, const char *s, size_t n)
{
	if (!jw_reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void jw_newline(struct jw *w)
{
	if (!w->pretty)
		return;
	jw_put(w, "\n", 1);
	for (int i = 0; i < w->depth; i++)
		jw_put(w, "  ", 2);
}

/* Misuse is remembered in `depth` (a writer that failed does nothing more),
 * so jw_finish() can tell it from running out of space: EINVAL, not ENOBUFS. */
enum { JW_BAD_NESTING = -1, JW_TOO_DEEP = -2 };

static void jw_misuse(struct jw *w, int why)
{
	if (w->failed)
		return;
	w->failed = true;
	w->depth = why;
}

/* Separator before a value or key at the current depth. False once the
 * writer has failed. A second top-level value is misuse. */
static bool jw_sep(struct jw *w, bool key)
{
	if (w->failed)
		return false;
	if (!key && !w->after_key && w->depth > 0 && w->is_obj[w->depth]) {
		jw_misuse(w, JW_BAD_NESTING); /* a value in an object needs its key */
		return false;
	}
	if (w->after_key) {
		w->after_key = false;
		return true;
	}
	if (w->depth == 0 && w->has_items[0]) {
		jw_misuse(w, JW_BAD_NESTING);
		return false;
	}
	if (w->depth > 0) {
		if (w->has_items[w->depth])
			jw_put(w, ",", 1);
		jw_newline(w);
	}
	w->has_items[w->depth] = true;
	return true;
}

static bool jw_pre(struct jw *w)
{
	return jw_sep(w, false);
}

static void jw_open(struct jw *w, char c)
{
	if (!jw_pre(w))
		return;
	if (w->depth >= JW_MAX_DEPTH) {
		jw_misuse(w, JW_TOO_DEEP);
		return;
	}
	jw_put(w, &c, 1);
	w->depth++;
	w->has_items[w->depth] = false;
	w->is_obj[w->depth] = c == '{';
}

static void jw_close(struct jw *w, char c)
{
	if (w->failed)
		return;
	if (w->depth <= 0 || w->after_key || w->is_obj[w->depth] != (c == '}')) {
		jw_misuse(w, JW_BAD_NESTING);
		return;
	}
	bool had = w->has_items[w->depth];
	w->depth--;
	if (had)
		jw_newline(w);
	jw_put(w, &c, 1);
}

void jw_obj_open(struct jw *w)
{
	jw_open(w, '{');
}
void jw_obj_close(struct jw *w)
{
	jw_close(w, '}');
}
void jw_arr_open(struct jw *w)
{
	jw_open(w, '[');
}
void jw_arr_close(struct jw *w)
{
	jw_close(w, ']');
}

/* The escape for byte c, or NULL when it is written as is. Control bytes
 * and DEL as \u00XX, except the five with a short form. */
static const char *jw_escape(unsigned char c, char ubuf[7])
{
	static const char hex[] = "0123456789abcdef";
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	case '\b': return "\\b";
	case '\f': return "\\f";
	}
	if (c >= 0x20 && c != 0x7f)
		return NULL;
	memcpy(ubuf, "\\u00", 4);
	ubuf[4] = hex[c >> 4];
	ubuf[5] = hex[c & 15];
	ubuf[6] = '\0';
	return ubuf;
}

/* Valid UTF-8 is copied as is; each byte of an invalid sequence becomes
 * \ufffd, so the output is always valid JSON. */
static void jw_quoted(struct jw *w, const char *s, size_t n)
{
	jw_put(w, "\"", 1);
	size_t run = 0; /* bytes copied verbatim in one go */
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		char ubuf[7];
		const char *esc = jw_escape(c, ubuf);
		size_t k = 1;
		if (c >= 0x80 && !(k = utf8_len((const unsigned char *)s + i, n - i))) {
			esc = "\\ufffd";
			k = 1;
		}
		i += k;
		if (!esc) {
			run += k;
			continue;
		}
		jw_put(w, s + i - 1 - run, run);
		run = 0;
		jw_put(w, esc, strlen(esc));
	}
	jw_put(w, s + n - run, run);
	jw_put(w, "\"", 1);
}

void jw_key(struct jw *w, const char *key)
{
	if (w->failed)
		return;
	if (w->depth == 0 || w->after_key || !w->is_obj[w->depth]) {
		jw_misuse(w, JW_BAD_NESTING); /* outside an object, or key after key */
		return;
	}
	jw_sep(w, true);
	jw_quoted(w, key, strlen(key));
	jw_put(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
	w->after_key = true;
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	if (jw_pre(w))
		jw_quoted(w, s, n);
}

void jw_str(struct jw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

void jw_int(struct jw *w, long long v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%lld", v);
	if (jw_pre(w))
		jw_put(w, b, (size_t)n);
}

void jw_uint(struct jw *w, unsigned long long v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%llu", v);
	if (jw_pre(w))
		jw_put(w, b, (size_t)n);
}

void jw_bool(struct jw *w, bool v)
{
	if (jw_pre(w))
		jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
	if (jw_pre(w))
		jw_put(w, "null", 4);
}

void jw_kv_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}
void jw_kv_int(struct jw *w, const char *key, long long v)
{
	jw_key(w, key);
	jw_int(w, v);
}
void jw_kv_uint(struct jw *w, const char *key, unsigned long long v)
{
	jw_key(w, key);
	jw_uint(w, v);
}
void jw_kv_bool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	jw_bool(w, v);
}

int jw_finish(struct jw *w, struct err *e)
{
	if (w->depth == JW_TOO_DEEP)
		return err_set(e, EINVAL, "JSON output: nesting deeper than %d", JW_MAX_DEPTH);
	if (w->depth == JW_BAD_NESTING)
		return err_set(e, EINVAL,
			       "JSON output: unbalanced nesting, misplaced key or second value");
	if (w->failed)
		return err_set(e, w->fixed ? ENOBUFS : ENOMEM,
			       w->fixed ? "JSON output does not fit in %zu bytes"
					: "JSON output: out of memory (%zu bytes)",
			       w->cap);
	if (w->depth != 0 || w->after_key)
		return err_set(e, EINVAL, "JSON output: unbalanced nesting");
	if (!w->buf) { /* nothing written yet: still hand out "" */
		if (!jw_reserve(w, 0))
			return err_set(e, ENOMEM, "JSON output: out of memory");
		w->buf[0] = '\0';
	}
	return 0;
}

/* ---------------- validator ---------------- */

struct jv {
	const char *s;
	size_t n, i;
	const char *why;
	char stack[JP_MAX_DEPTH]; /* '{' or '[' of each open container */
	int depth;
};

static void jv_ws(struct jv *v)
{
	while (v->i < v->n) {
		char c = v->s[v->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		v->i++;
	}
}

static int jv_fail(struct jv *v, const char *why)
{
	v->why = why;
	return -EINVAL;
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int k = 0; k < 4; k++) {
		char c = s[k];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Decode one escape at s[0]=='\\' (n bytes available). Returns the bytes
 * consumed and the code point, or 0 on a bad escape. Pairs surrogates. */
static size_t escape_decode(const char *s, size_t n, uint32_t *cp)
{
	if (n < 2)
		return 0;
	switch (s[1]) {
	case '"': *cp = '"'; return 2;
	case '\\': *cp = '\\'; return 2;
	case '/': *cp = '/'; return 2;
	case 'b': *cp = '\b'; return 2;
	case 'f': *cp = '\f'; return 2;
	case 'n': *cp = '\n'; return 2;
	case 'r': *cp = '\r'; return 2;
	case 't': *cp = '\t'; return 2;
	case 'u': break;
	default: return 0;
	}
	uint32_t hi, lo;
	if (n < 6 || hex4(s + 2, &hi) < 0)
		return 0;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return 0; /* lone low surrogate */
	if (hi < 0xd800 || hi > 0xdbff) {
		*cp = hi;
		return 6;
	}
	if (n < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) < 0 || lo < 0xdc00 ||
	    lo > 0xdfff)
		return 0;
	*cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	return 12;
}

static int jv_string(struct jv *v)
{
	v->i++; /* opening quote */
	while (v->i < v->n) {
		unsigned char c = (unsigned char)v->s[v->i];
		if (c == '"') {
			v->i++;
			return 0;
		}
		if (c < 0x20)
			return jv_fail(v, "control character in string");
		if (c == '\\') {
			uint32_t cp;
			size_t k = escape_decode(v->s + v->i, v->n - v->i, &cp);
			if (!k)
				return jv_fail(v, "bad escape in string");
			if (cp == 0)
				return jv_fail(v, "NUL (\\u0000) in string");
			v->i += k;
			continue;
		}
		size_t k = utf8_len((const unsigned char *)v->s + v->i, v->n - v->i);
		if (!k)
			return jv_fail(v, "invalid UTF-8 in string");
		v->i += k;
	}
	return jv_fail(v, "unterminated string");
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int jv_number(struct jv *v)
{
	size_t i = v->i;
	if (i < v->n && v->s[i] == '-')
		i++;
	if (i >= v->n || !is_digit(v->s[i]))
		return jv_fail(v, "bad number");
	if (v->s[i] == '0')
		i++;
	else
		while (i < v->n && is_digit(v->s[i]))
			i++;
	if (i < v->n && v->s[i] == '.') {
		i++;
		if (i >= v->n || !is_digit(v->s[i]))
			return jv_fail(v, "bad number");
		while (i < v->n && is_digit(v->s[i]))
			i++;
	}
	if (i < v->n && (v->s[i] == 'e' || v->s[i] == 'E')) {
		i++;
		if (i < v->n && (v->s[i] == '+' || v->s[i] == '-'))
			i++;
		if (i >= v->n || !is_digit(v->s[i]))
			return jv_fail(v, "bad number");
		while (i < v->n && is_digit(v->s[i]))
			i++;
	}
	v->i = i;
	return 0;
}

static int jv_word(struct jv *v, const char *w)
{
	size_t k = strlen(w);
	if (v->n - v->i < k || memcmp(v->s + v->i, w, k) != 0)
		return jv_fail(v, "unexpected character");
	v->i += k;
	return 0;
}

/* A member's key and its ':' (whitespace before the key already skipped). */
static int jv_key(struct jv *v)
{
	if (v->i >= v->n || v->s[v->i] != '"')
		return jv_fail(v, "expected a key");
	int rc = jv_string(v);
	if (rc < 0)
		return rc;
	jv_ws(v);
	if (v->i >= v->n || v->s[v->i] != ':')
		return jv_fail(v, "expected ':'");
	v->i++;
	jv_ws(v);
	return 0;
}

/* The steps below return 1 when a value is due next, 0 when one just
 * ended (a scalar or a closed container), or -EINVAL. */

static int jv_close(struct jv *v)
{
	v->i++;
	v->depth--;
	jv_ws(v);
	return 0;
}

static int jv_open(struct jv *v, char c)
{
	if (v->depth >= JP_MAX_DEPTH)
		return jv_fail(v, "nesting too deep");
	v->stack[v->depth++] = c;
	v->i++;
	jv_ws(v);
	if (v->i < v->n && v->s[v->i] == (c == '{' ? '}' : ']'))
		return jv_close(v);
	int rc = c == '{' ? jv_key(v) : 0;
	return rc < 0 ? rc : 1;
}

static int jv_value(struct jv *v)
{
	if (v->i >= v->n)
		return jv_fail(v, "unexpected end of input");
	char c = v->s[v->i];
	int rc;
	if (c == '{' || c == '[')
		return jv_open(v, c);
	if (c == '"')
		rc = jv_string(v);
	else if (c == '-' || is_digit(c))
		rc = jv_number(v);
	else if (c == 't')
		rc = jv_word(v, "true");
	else if (c == 'f')
		rc = jv_word(v, "false");
	else if (c == 'n')
		rc = jv_word(v, "null");
	else
		rc = jv_fail(v, "unexpected character");
	if (rc < 0)
		return rc;
	jv_ws(v);
	return 0;
}

/* After a value inside a container: its close, or ',' and the next member. */
static int jv_after(struct jv *v)
{
	if (v->i >= v->n)
		return jv_fail(v, "unexpected end of input");
	char c = v->s[v->i], top = v->stack[v->depth - 1];
	if (c == (top == '{' ? '}' : ']'))
		return jv_close(v);
	if (c != ',')
		return jv_fail(v, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
	v->i++;
	jv_ws(v);
	int rc = top == '{' ? jv_key(v) : 0;
	return rc < 0 ? rc : 1;
}

/* Iterative: a stack of container kinds, so depth never grows the C stack. */
int json_validate(const char *js, size_t len, size_t *at, const char **why)
{
	struct jv v = {.s = js, .n = len};
	int rc = 1;
	jv_ws(&v);
	while (rc >= 0) {
		if (rc == 1)
			rc = jv_value(&v);
		else if (v.depth > 0)
			rc = jv_after(&v);
		else if (v.i != v.n)
			rc = jv_fail(&v, "trailing bytes after the document");
		else
			break;
	}
	if (at)
		*at = v.i;
	if (why)
		*why = v.why;
	return rc < 0 ? rc : 0;
}

/* ---------------- reader ---------------- */

/* jsmn in strict mode wants a primitive followed by a delimiter, so it
 * refuses a document that is nothing but "1" or "true". The text is valid
 * by then: the one token is the run of bytes up to whitespace or the end. */
static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int jp_primitive(const char *js, size_t len, jsmntok_t *tok)
{
	size_t a = 0;
	while (a < len && is_ws(js[a]))
		a++;
	if (a == len || js[a] == '{' || js[a] == '[' || js[a] == '"')
		return 0;
	size_t b = a;
	while (b < len && !is_ws(js[b]))
		b++;
	tok->type = JSMN_PRIMITIVE;
	tok->start = (int)a;
	tok->end = (int)b;
	tok->size = 0;
	return 1;
}

int jp_parse(struct jp *p, const char *js, size_t len, jsmntok_t *toks, int max, struct err *e)
{
	size_t at = 0;
	const char *why = NULL;
	if (max < 1)
		return err_set(e, EINVAL, "JSON: room for %d tokens", max);
	if (len > INT_MAX) /* jsmn's offsets are int */
		return err_set(e, EFBIG, "JSON of %zu bytes is too large", len);
	if (json_validate(js, len, &at, &why) < 0)
		return err_set(e, EINVAL, "invalid JSON at byte %zu: %s", at, why);
	int n = jp_primitive(js, len, &toks[0]);
	if (n == 0) {
		jsmn_parser parser;
		jsmn_init(&parser);
		n = jsmn_parse(&parser, js, len, toks, (unsigned)max);
	}
	if (n == JSMN_ERROR_NOMEM)
		return err_set(e, E2BIG, "JSON has more than %d tokens", max);
	if (n < 1)
		return err_set(e, EINVAL, "invalid JSON (tokenizer error %d)", n);
	p->js = js;
	p->len = len;
	p->tok = toks;
	p->ntok = n;
	return 0;
}

int jp_next(const struct jp *p, int i)
{
	int pending = 1;
	while (pending > 0 && i < p->ntok) {
		pending += p->tok[i].size;
		pending--;
		i++;
	}
	return i;
}

bool jp_is(const struct jp *p, int i, jsmntype_t type)
{
	return i >= 0 && i < p->ntok && p->tok[i].type == type;
}

bool jp_streq(const struct jp *p, int i, const char *s)
{
	if (!jp_is(p, i, JSMN_STRING))
		return false;
	size_t n = (size_t)(p->tok[i].end - p->tok[i].start);
	return strlen(s) == n && memcmp(p->js + p->tok[i].start, s, n) == 0;
}

int jp_get(const struct jp *p, int obj, const char *key)
{
	if (!jp_is(p, obj, JSMN_OBJECT))
		return -1;
	int k = obj + 1;
	for (int m = 0; m < p->tok[obj].size; m++) {
		if (jp_streq(p, k, key))
			return k + 1;
		k = jp_next(p, k + 1);
	}
	return -1;
}

static size_t utf8_put(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

int jp_str(const struct jp *p, int i, char *out, size_t cap, size_t *outlen)
{
	if (!jp_is(p, i, JSMN_STRING) || cap == 0)
		return -EINVAL;
	const char *s = p->js + p->tok[i].start;
	size_t n = (size_t)(p->tok[i].end - p->tok[i].start);
	size_t o = 0;
	for (size_t k = 0; k < n;) {
		char tmp[4];
		size_t add;
		if (s[k] == '\\') {
			uint32_t cp;
			size_t used = escape_decode(s + k, n - k, &cp);
			if (!used || cp == 0)
				return -EINVAL;
			k += used;
			add = utf8_put(cp, tmp);
		} else {
			add = 1;
			tmp[0] = s[k++];
		}
		if (o + add >= cap)
			return -ENAMETOOLONG;
		memcpy(out + o, tmp, add);
		o += add;
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return 0;
}

int jp_int(const struct jp *p, int i, long long min, long long max, long long *out)
{
	if (!jp_is(p, i, JSMN_PRIMITIVE))
		return -EINVAL;
	const char *s = p->js + p->tok[i].start;
	size_t n = (size_t)(p->tok[i].end - p->tok[i].start);
	size_t k = 0;
	bool neg = false;
	if (k < n && s[k] == '-') {
		neg = true;
		k++;
	}
	if (k >= n)
		return -EINVAL;
	unsigned long long v = 0;
	for (; k < n; k++) {
		if (!is_digit(s[k]))
			return -EINVAL; /* fraction, exponent, true/false/null */
		if (v > (ULLONG_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(s[k] - '0');
	}
	/* -2^63 is the one magnitude that fits only when negative */
	if (v > (unsigned long long)LLONG_MAX + neg)
		return -ERANGE;
	long long r = neg ? (long long)(0 - v) : (long long)v;
	if (r < min || r > max)
		return -ERANGE;
	*out = r;
	return 0;
}

int jp_bool(const struct jp *p, int i, bool *out)
{
	if (!jp_is(p, i, JSMN_PRIMITIVE))
		return -EINVAL;
	size_t n = (size_t)(p->tok[i].end - p->tok[i].start);
	const char *s = p->js + p->tok[i].start;
	if (n == 4 && memcmp(s, "true", 4) == 0)
		*out = true;
	else if (n == 5 && memcmp(s, "false", 5) == 0)
		*out = false;
	else
		return -EINVAL;
	return 0;
}
