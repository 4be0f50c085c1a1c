/* lib/json.h — JSON writer (RFC 8259, correct escaping) and a strict reader
 * on top of jsmn.
 *
 * Writer: into a caller's fixed buffer (steady state, no allocation: overflow
 * marks the writer failed) or a growable heap buffer (tools). Calls never
 * fail individually; jw_finish() reports overflow, allocation failure or
 * unbalanced nesting once.
 *
 * Reader: jp_parse() first checks the whole text against the JSON grammar
 * (jsmn alone accepts missing commas, trailing commas and bare words), caps
 * nesting depth and token count, rejects trailing bytes, then tokenizes with
 * jsmn. Strings are unescaped with explicit lengths; NUL (\u0000), lone
 * surrogates and invalid UTF-8 are rejected. */
#ifndef CAIRN_LIB_JSON_H
#define CAIRN_LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSMN_STRICT
#define JSMN_HEADER
#include <jsmn.h>

#include "err.h"

#define JW_MAX_DEPTH 32

struct jw {
	char *buf;
	size_t len, cap;
	bool fixed;  /* caller's buffer: never grows */
	bool failed; /* overflow, ENOMEM or misuse */
	bool pretty; /* two-space indentation, one member per line */
	int depth;
	bool after_key;
	bool has_items[JW_MAX_DEPTH + 1];
	bool is_obj[JW_MAX_DEPTH + 1]; /* open level is an object (else an array) */
};

void jw_init_fixed(struct jw *w, char *buf, size_t cap);
void jw_init_dyn(struct jw *w, bool pretty);
void jw_free(struct jw *w);
void jw_obj_open(struct jw *w);
void jw_obj_close(struct jw *w);
void jw_arr_open(struct jw *w);
void jw_arr_close(struct jw *w);
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, long long v);
void jw_uint(struct jw *w, unsigned long long v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* key + value shorthands */
void jw_kv_str(struct jw *w, const char *key, const char *s);
void jw_kv_int(struct jw *w, const char *key, long long v);
void jw_kv_uint(struct jw *w, const char *key, unsigned long long v);
void jw_kv_bool(struct jw *w, const char *key, bool v);
/* 0 and a NUL-terminated w->buf of w->len bytes, or an error. */
int jw_finish(struct jw *w, struct err *e) _must_check_;

/* ---- reader ---- */

#define JP_MAX_DEPTH 32

struct jp {
	const char *js;
	size_t len;
	jsmntok_t *tok;
	int ntok;
};

/* Validate and tokenize js[0..len). `toks` holds at most `max` tokens:
 * more is an error (-E2BIG) naming the cap. Exactly one top-level value,
 * whitespace allowed around it. */
int jp_parse(struct jp *p, const char *js, size_t len, jsmntok_t *toks, int max,
	     struct err *e) _must_check_;
/* Index of the token after the subtree rooted at i. */
int jp_next(const struct jp *p, int i);
bool jp_is(const struct jp *p, int i, jsmntype_t type);
/* True if token i is a string equal to `s` (raw compare, keys are ASCII). */
bool jp_streq(const struct jp *p, int i, const char *s);
/* Value index for `key` in object `obj`, or -1. */
int jp_get(const struct jp *p, int obj, const char *key);
/* Unescape string token i into out (cap bytes incl. NUL): -EINVAL on a
 * non-string or bad escape/UTF-8/NUL, -ENAMETOOLONG if it does not fit. */
int jp_str(const struct jp *p, int i, char *out, size_t cap, size_t *outlen) _must_check_;
/* Integer token (no fraction, no exponent) within [min, max]. */
int jp_int(const struct jp *p, int i, long long min, long long max, long long *out) _must_check_;
int jp_bool(const struct jp *p, int i, bool *out) _must_check_;

/* Syntax check only (also used by jp_parse). Returns 0 or -EINVAL with a
 * byte offset in *at. */
int json_validate(const char *js, size_t len, size_t *at, const char **why);

#endif
