/* trails/signature.c — revision.sig: parse it, verify it against a trust set.
 *
 * The file (trails/REVISION.md owns the spec):
 *   {"spec": "cairn-signature@1",
 *    "signatures": [{"alg": "ecdsa-p256-sha256", "keyid": "sha256:<hex>",
 *                    "sig": "<base64 of the DER ECDSA signature>"}]}
 * Each signature covers SHA-256 of the exact bytes of revision.json.
 *
 * Decisions:
 * - The whole file is parsed strictly before any signature is checked: an
 *   unknown key, a duplicate key, an unknown algorithm, a key id that is not
 *   a digest, base64 that is not canonical or a signature that is not strict
 *   DER makes the file malformed, whatever the other entries say.
 * - A key id names a trusted key; the id is always computed from the trusted
 *   key (sha256 of its SubjectPublicKeyInfo DER as mbedtls re-encodes it),
 *   never believed from the file. An entry whose key is not trusted counts
 *   for nothing; a trusted key counts once however often it signed.
 * - Strict DER (short lengths, minimal positive INTEGERs) and canonical
 *   base64 give each signature exactly one encoding. */
#define _GNU_SOURCE /* memmem */
#include "trails_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/base64.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "../lib/cleanup.h"

#define TRUST_MAX_PEM (16u * 1024) /* bytes of one PEM public key file */
#define SIG_MAX_DER 80		   /* a P-256 DER signature is at most 72 */
#define SIG_MAX_B64 ((SIG_MAX_DER + 2) / 3 * 4)
#define SIG_MAX_TOKENS 256 /* a full file of SIG_MAX_SIGS entries needs 118 */
#define PUBKEY_MAX_DER 256 /* SubjectPublicKeyInfo of a P-256 key is 91 */

struct trust_key {
	struct digest id;
	mbedtls_pk_context pk;
};

/* The roots (trust_load), and the signing keys of the keys document in
 * effect (keys.c; a trust of its own, whose own signing is always NULL). */
struct trust {
	struct trust_key keys[TRUST_MAX_KEYS];
	size_t nkeys;
	unsigned threshold;
	struct trust *signing;
	uint64_t serial;
};

struct sig_entry {
	struct digest keyid;
	unsigned char der[SIG_MAX_DER];
	size_t derlen;
};

struct sig_file {
	struct sig_entry sigs[SIG_MAX_SIGS];
	size_t n;
};

static void pk_freep(mbedtls_pk_context *pk)
{
	mbedtls_pk_free(pk);
}

/* ---------------- keys ---------------- */

static int mbed_err(struct err *e, int code, int mret, const char *what)
{
	char text[128];
	mbedtls_strerror(mret, text, sizeof(text));
	return err_set(e, code, "%s (mbedtls: %s)", what, text);
}

/* Only ECDSA on secp256r1: the one algorithm revision.sig knows. */
static int key_check_p256(const mbedtls_pk_context *pk, struct err *e)
{
	if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
		return err_set(e, EKEYREJECTED,
			       "%s key: only ECDSA P-256 (secp256r1) keys are accepted",
			       mbedtls_pk_get_name(pk));
	mbedtls_ecp_group_id gid = mbedtls_pk_ec(*pk)->grp.id;
	if (gid != MBEDTLS_ECP_DP_SECP256R1) {
		const mbedtls_ecp_curve_info *ci = mbedtls_ecp_curve_info_from_grp_id(gid);
		return err_set(e, EKEYREJECTED,
			       "EC key on curve %s: only ECDSA P-256 (secp256r1) keys are accepted",
			       ci ? ci->name : "(unknown)");
	}
	return 0;
}

/* Key id: sha256 of the SubjectPublicKeyInfo DER. */
static int key_id(mbedtls_pk_context *pk, struct digest *id, struct err *e)
{
	unsigned char der[PUBKEY_MAX_DER];
	int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));
	if (n <= 0)
		return mbed_err(e, EINVAL, n, "cannot encode the public key");
	/* mbedtls writes the DER at the end of the buffer */
	if (mbedtls_sha256_ret(der + sizeof(der) - (size_t)n, (size_t)n, id->b, 0) != 0)
		return err_set(e, EIO, "sha256 failed");
	return 0;
}

/* Parse one PEM public key (len bytes, not NUL-terminated), P-256 only. */
static int pubkey_parse(const char *pem, size_t len, mbedtls_pk_context *pk, struct digest *id,
			struct err *e)
{
	if (len == 0 || len > TRUST_MAX_PEM)
		return err_set(e, EINVAL, "%zu bytes: not a PEM public key", len);
	if (memchr(pem, '\0', len))
		return err_set(e, EINVAL, "NUL byte: not a PEM public key");
	if (!memmem(pem, len, "-----BEGIN PUBLIC KEY-----", 26))
		return err_set(e, EINVAL,
			       "no \"-----BEGIN PUBLIC KEY-----\" line: not a PEM public key");
	/* mbedtls wants PEM NUL-terminated, the NUL counted in the length */
	_cleanup_free_ unsigned char *buf = malloc(len + 1);
	if (!buf)
		return err_set(e, ENOMEM, "out of memory");
	memcpy(buf, pem, len);
	buf[len] = '\0';
	int ret = mbedtls_pk_parse_public_key(pk, buf, len + 1);
	if (ret != 0)
		return mbed_err(e, EINVAL, ret, "not a PEM public key");
	int rc = key_check_p256(pk, e);
	if (rc < 0)
		return rc;
	return key_id(pk, id, e);
}

int sig_keyid_from_pem(const char *pem, size_t len, struct digest *out, struct err *e)
{
	_cleanup_(pk_freep) mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	return pubkey_parse(pem, len, &pk, out, e);
}

/* ---------------- trust ---------------- */

static struct trust *trust_new(void)
{
	struct trust *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	for (size_t i = 0; i < TRUST_MAX_KEYS; i++)
		mbedtls_pk_init(&t->keys[i].pk);
	t->threshold = 1;
	return t;
}

void trust_free(struct trust *t)
{
	if (!t)
		return;
	trust_free(t->signing);
	for (size_t i = 0; i < TRUST_MAX_KEYS; i++)
		mbedtls_pk_free(&t->keys[i].pk);
	free(t);
}
DEFINE_FREEP(struct trust, trust_free)

void trust_set_signing(struct trust *t, struct trust *signing, uint64_t serial)
{
	trust_free(t->signing);
	t->signing = signing;
	t->serial = signing ? serial : 0;
}

struct trust *trust_take_signing(struct trust *t)
{
	struct trust *sg = t->signing;
	t->signing = NULL;
	t->serial = 0;
	return sg;
}

uint64_t trust_serial(const struct trust *t)
{
	return t ? t->serial : 0;
}

const struct trust *trust_signing(const struct trust *t)
{
	return t ? t->signing : NULL;
}

void trust_key_id(const struct trust *t, size_t i, char out[DIGEST_STR_LEN + 1])
{
	digest_format(&t->keys[i].id, out);
}

/* Key i of `from` into the next slot of `to` (parsed again: mbedtls has no
 * copy of a key context). */
static int trust_copy_key(struct trust *to, const struct trust *from, size_t i, struct err *e)
{
	unsigned char der[PUBKEY_MAX_DER];
	mbedtls_pk_context *pk = (mbedtls_pk_context *)&from->keys[i].pk;
	int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));
	if (n <= 0)
		return mbed_err(e, EIO, n, "copying a trusted key");
	struct trust_key *k = &to->keys[to->nkeys];
	int ret = mbedtls_pk_parse_public_key(&k->pk, der + sizeof(der) - n, (size_t)n);
	if (ret != 0)
		return mbed_err(e, EIO, ret, "copying a trusted key");
	k->id = from->keys[i].id;
	to->nkeys++;
	return 0;
}

int trust_with(const struct trust *t, struct trust *signing, uint64_t serial,
	       struct trust **out, struct err *e)
{
	_cleanup_(trust_freep) struct trust *sg = signing;
	_cleanup_(trust_freep) struct trust *c = trust_new();
	if (!c)
		return err_set(e, ENOMEM, "trust: out of memory");
	for (size_t i = 0; i < t->nkeys; i++) {
		int rc = trust_copy_key(c, t, i, e);
		if (rc < 0)
			return rc;
	}
	c->threshold = t->threshold;
	trust_set_signing(c, TAKE_PTR(sg), serial);
	*out = TAKE_PTR(c);
	return 0;
}

unsigned trust_threshold(const struct trust *t)
{
	return t ? t->threshold : 0;
}

size_t trust_count(const struct trust *t)
{
	return t ? t->nkeys : 0;
}

static int trust_find(const struct trust *t, const struct digest *id)
{
	for (size_t i = 0; i < t->nkeys; i++)
		if (digest_eq(&t->keys[i].id, id))
			return (int)i;
	return -1;
}

/* pem into the next free slot (the caller checked there is one). A key t
 * already holds is not added again: *dup gets its index (-1 otherwise). */
static int trust_add_pem(struct trust *t, const char *pem, size_t len, int *dup, struct err *e)
{
	struct trust_key *k = &t->keys[t->nkeys];
	int rc = pubkey_parse(pem, len, &k->pk, &k->id, e);
	*dup = rc < 0 ? -1 : trust_find(t, &k->id);
	if (rc < 0 || *dup >= 0) {
		mbedtls_pk_free(&k->pk);
		mbedtls_pk_init(&k->pk);
		return rc;
	}
	t->nkeys++;
	return 0;
}

/* Read dirfd/name (a PEM public key) into the next free slot; a key that is
 * already trusted (same id) counts once. */
static int trust_add_file(struct trust *t, int dirfd, const char *name, const char *shown,
			  struct err *e)
{
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	int dup;
	int rc = file_read_all(dirfd, name, TRUST_MAX_PEM, &pem, &len, e);
	if (rc < 0)
		return err_prefix(e, "trust %s", shown);
	if (t->nkeys >= TRUST_MAX_KEYS)
		return err_set(e, E2BIG, "trust %s: more than %d keys", shown, TRUST_MAX_KEYS);
	if (trust_add_pem(t, pem, len, &dup, e) < 0)
		return err_prefix(e, "trust %s", shown);
	return 0;
}

/* A trust set of the PEM keys pem[0..n) (keys.c has checked n and the
 * threshold): the error names keys[i] of a key that does not parse, or the
 * one that repeats an earlier one. */
int trust_from_pems(const char *const *pem, const size_t *len, size_t n, unsigned threshold,
		    struct trust **out, struct err *e)
{
	_cleanup_(trust_freep) struct trust *t = trust_new();
	if (!t)
		return err_set(e, ENOMEM, "keys: out of memory");
	for (size_t i = 0; i < n && i < TRUST_MAX_KEYS; i++) {
		char field[24];
		struct err pe = ERR_INIT;
		int dup;
		snprintf(field, sizeof(field), "keys[%zu]", i);
		if (trust_add_pem(t, pem[i], len[i], &dup, &pe) < 0)
			return err_field(e, pe.code, field, "%s", pe.msg);
		if (dup >= 0)
			return err_field(e, EINVAL, field, "the same key as keys[%d]", dup);
	}
	t->threshold = threshold;
	*out = TAKE_PTR(t);
	return 0;
}

/* dirfd/threshold: decimal 1..TRUST_MAX_KEYS, optionally one trailing
 * newline, at most the number of distinct keys. Absent: 1. */
static int trust_read_threshold(struct trust *t, int dirfd, const char *path, struct err *e)
{
	_cleanup_free_ char *s = NULL;
	size_t len = 0;
	int rc = file_read_all(dirfd, "threshold", 16, &s, &len, e);
	if (rc == -ENOENT) {
		err_clear(e);
		return 0;
	}
	if (rc < 0)
		return err_prefix(e, "trust %s", path);
	if (len > 0 && s[len - 1] == '\n')
		len--;
	unsigned v = 0;
	bool ok = len > 0 && len <= 2 && s[0] != '0';
	for (size_t i = 0; ok && i < len; i++) {
		ok = s[i] >= '0' && s[i] <= '9';
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (!ok || v < 1 || v > TRUST_MAX_KEYS)
		return err_set(e, EINVAL, "trust %s/threshold: not a number from 1 to %d", path,
			       TRUST_MAX_KEYS);
	if (v > t->nkeys)
		return err_set(e, EINVAL,
			       "trust %s/threshold: %u, but the directory holds %zu distinct key%s",
			       path, v, t->nkeys, t->nkeys == 1 ? "" : "s");
	t->threshold = v;
	return 0;
}

static bool is_pub_name(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && strcmp(name + n - 4, ".pub") == 0;
}

static int trust_load_dir(struct trust *t, const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "trust %s: %s", path, strerror(errno));
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		int err = errno;
		close(fd);
		return err_set(e, err, "trust %s: %s", path, strerror(err));
	}
	unsigned files = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (!is_pub_name(de->d_name))
			continue;
		if (++files > TRUST_MAX_KEYS)
			return err_set(e, E2BIG, "trust %s: more than %d *.pub files", path,
				       TRUST_MAX_KEYS);
		char shown[4096];
		if (str_fmt(shown, sizeof(shown), "%s/%s", path, de->d_name) < 0)
			return err_set(e, ENAMETOOLONG, "trust %s: name too long", path);
		int rc = trust_add_file(t, dirfd(d), de->d_name, shown, e);
		if (rc < 0)
			return rc;
	}
	if (errno)
		return err_set(e, errno, "trust %s: %s", path, strerror(errno));
	if (t->nkeys == 0)
		return err_set(e, ENOKEY, "trust %s: no *.pub public keys", path);
	return trust_read_threshold(t, dirfd(d), path, e);
}

int trust_load(const char *path, struct trust **out, struct err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_set(e, errno, "trust %s: %s", path, strerror(errno));
	_cleanup_(trust_freep) struct trust *t = trust_new();
	if (!t)
		return err_set(e, ENOMEM, "trust %s: out of memory", path);
	int rc;
	if (S_ISDIR(st.st_mode))
		rc = trust_load_dir(t, path, e);
	else
		rc = trust_add_file(t, AT_FDCWD, path, path, e);
	if (rc < 0)
		return rc;
	*out = TAKE_PTR(t);
	return 0;
}

/* ---------------- the file ---------------- */

/* Field error: "<where>.<key>: <text>" (just "<key>" at the top level). */
static int bad(struct err *e, int code, const char *where, const char *key, const char *fmt, ...)
	_printf_(5, 6);
static int bad(struct err *e, int code, const char *where, const char *key, const char *fmt, ...)
{
	char field[ERR_FIELD_MAX], text[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(field, sizeof(field), "%s%s%s", where, *where ? "." : "", key);
	return err_field(e, code, field, "%s", text);
}

/* Hostile text made printable for a message: [A-Za-z0-9@._:-] kept, other
 * bytes shown as '?', long input cut with "...". */
static void shown_copy(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 4 < cap; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || (c && strchr("@._:-", c));
		out[o++] = ok ? c : '?';
	}
	if (o < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* String token i unescaped into out (cap bytes); false if it is not a
 * string or does not fit. Keys and values are compared unescaped, so
 * "\u0073pec" is "spec" (and a duplicate of it). */
static bool tok_str(const struct jp *p, int i, char *out, size_t cap)
{
	size_t n = 0;
	return jp_str(p, i, out, cap, &n) == 0 && strlen(out) == n;
}

bool trails_json_is(const struct jp *p, int i, const char *want)
{
	char s[40];
	return tok_str(p, i, s, sizeof(s)) && strcmp(s, want) == 0;
}

/* Token i made printable for a message (unescaped when that works). */
static void tok_shown(const struct jp *p, int i, char *out, size_t cap)
{
	char s[40];
	if (tok_str(p, i, s, sizeof(s)))
		shown_copy(out, cap, s, strlen(s));
	else
		shown_copy(out, cap, p->js + p->tok[i].start,
			   (size_t)(p->tok[i].end - p->tok[i].start));
}

/* Members of object `obj` must be exactly `keys` (all required, each once);
 * idx[k] gets the value token of keys[k]. */
int trails_json_members(const struct jp *p, int obj, const char *const *keys, int *idx, size_t n,
			const char *where, struct err *e)
{
	for (size_t k = 0; k < n; k++)
		idx[k] = -1;
	int i = obj + 1;
	for (int m = 0; m < p->tok[obj].size; m++) {
		size_t k = 0;
		while (k < n && !trails_json_is(p, i, keys[k]))
			k++;
		char name[40];
		tok_shown(p, i, name, sizeof(name));
		if (k == n)
			return bad(e, EINVAL, where, name, "unknown key");
		if (idx[k] >= 0)
			return bad(e, EINVAL, where, name, "duplicate key");
		idx[k] = i + 1;
		i = jp_next(p, i + 1);
	}
	for (size_t k = 0; k < n; k++)
		if (idx[k] < 0)
			return bad(e, EINVAL, where, keys[k], "missing");
	return 0;
}

static int alg_check(const struct jp *p, int i, const char *where, struct err *e)
{
	if (!jp_is(p, i, JSMN_STRING))
		return bad(e, EINVAL, where, "alg", "must be a string");
	if (trails_json_is(p, i, SIG_ALG))
		return 0;
	char name[40];
	tok_shown(p, i, name, sizeof(name));
	return bad(e, EINVAL, where, "alg",
		   "unknown algorithm \"%s\" (this version knows only \"%s\")", name, SIG_ALG);
}

static int keyid_parse(const struct jp *p, int i, const char *where, struct digest *out,
		       struct err *e)
{
	char s[DIGEST_STR_LEN + 1];
	size_t n = 0;
	if (!jp_is(p, i, JSMN_STRING))
		return bad(e, EINVAL, where, "keyid", "must be a string");
	if (jp_str(p, i, s, sizeof(s), &n) < 0 || digest_parse(s, n, out) < 0)
		return bad(e, EINVAL, where, "keyid",
			   "not a key id (\"sha256:\" + 64 lowercase hex)");
	return 0;
}

static bool der_int_ok(const unsigned char *d, size_t n, size_t *used)
{
	if (n < 3 || d[0] != 0x02)
		return false;
	size_t len = d[1];
	if (len == 0 || len > 33 || len > n - 2)
		return false;
	if (d[2] & 0x80)
		return false; /* negative */
	if (len > 1 && d[2] == 0 && !(d[3] & 0x80))
		return false; /* leading zero byte not needed */
	*used = 2 + len;
	return true;
}

/* ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } in strict DER. A
 * signature of at most 80 bytes only ever needs short-form lengths. */
static bool der_sig_ok(const unsigned char *d, size_t n)
{
	size_t a = 0, b = 0;
	if (n < 2 || d[0] != 0x30 || d[1] != n - 2)
		return false;
	if (!der_int_ok(d + 2, n - 2, &a) || !der_int_ok(d + 2 + a, n - 2 - a, &b))
		return false;
	return 2 + a + b == n;
}

/* Canonical padded base64: mbedtls decodes (it skips whitespace and lets
 * unused bits through), so the result must encode back to the same text. */
static bool b64_decode_strict(const char *s, size_t n, unsigned char *out, size_t cap,
			      size_t *outlen)
{
	unsigned char back[SIG_MAX_B64 + 1];
	size_t blen = 0;
	if (n == 0 || n % 4 || n > SIG_MAX_B64)
		return false;
	if (mbedtls_base64_decode(out, cap, outlen, (const unsigned char *)s, n) != 0)
		return false;
	if (mbedtls_base64_encode(back, sizeof(back), &blen, out, *outlen) != 0)
		return false;
	return blen == n && memcmp(back, s, n) == 0;
}

static int sig_decode(const struct jp *p, int i, const char *where, struct sig_entry *out,
		      struct err *e)
{
	char s[SIG_MAX_B64 + 1];
	size_t n = 0;
	if (!jp_is(p, i, JSMN_STRING))
		return bad(e, EINVAL, where, "sig", "must be a string");
	if (jp_str(p, i, s, sizeof(s), &n) < 0)
		return bad(e, EINVAL, where, "sig", "longer than %d base64 characters",
			   SIG_MAX_B64);
	unsigned char der[SIG_MAX_DER + 3];
	if (!b64_decode_strict(s, n, der, sizeof(der), &out->derlen))
		return bad(e, EINVAL, where, "sig", "not canonical padded base64 (RFC 4648)");
	if (out->derlen > SIG_MAX_DER)
		return bad(e, EINVAL, where, "sig", "%zu bytes, longer than any P-256 signature",
			   out->derlen);
	memcpy(out->der, der, out->derlen);
	if (!der_sig_ok(out->der, out->derlen))
		return bad(e, EINVAL, where, "sig", "not a DER-encoded ECDSA signature");
	return 0;
}

static int entry_parse(const struct jp *p, int obj, int m, struct sig_entry *out, struct err *e)
{
	static const char *const keys[] = {"alg", "keyid", "sig"};
	char where[32];
	int idx[3];
	snprintf(where, sizeof(where), "signatures[%d]", m);
	if (!jp_is(p, obj, JSMN_OBJECT))
		return err_field(e, EINVAL, where, "must be an object");
	int rc = trails_json_members(p, obj, keys, idx, 3, where, e);
	if (rc == 0)
		rc = alg_check(p, idx[0], where, e);
	if (rc == 0)
		rc = keyid_parse(p, idx[1], where, &out->keyid, e);
	if (rc == 0)
		rc = sig_decode(p, idx[2], where, out, e);
	return rc;
}

static int entries_parse(const struct jp *p, int arr, struct sig_file *f, struct err *e)
{
	if (!jp_is(p, arr, JSMN_ARRAY))
		return err_field(e, EINVAL, "signatures", "must be an array");
	int n = p->tok[arr].size;
	if (n == 0)
		return err_field(e, EINVAL, "signatures",
				 "empty: at least one signature is required");
	if (n > SIG_MAX_SIGS)
		return err_field(e, E2BIG, "signatures", "%d entries, at most %d allowed", n,
				 SIG_MAX_SIGS);
	int i = arr + 1;
	for (int m = 0; m < n; m++) {
		int rc = entry_parse(p, i, m, &f->sigs[m], e);
		if (rc < 0)
			return rc;
		i = jp_next(p, i);
	}
	f->n = (size_t)n;
	return 0;
}

static int sig_file_parse(const char *js, size_t len, struct sig_file *f, struct err *e)
{
	static const char *const keys[] = {"spec", "signatures"};
	jsmntok_t toks[SIG_MAX_TOKENS];
	struct jp p;
	int idx[2];
	if (len > SIG_MAX_FILE)
		return err_set(e, EFBIG, "%zu bytes, more than the %u allowed", len, SIG_MAX_FILE);
	int rc = jp_parse(&p, js, len, toks, SIG_MAX_TOKENS, e);
	if (rc < 0)
		return rc;
	if (!jp_is(&p, 0, JSMN_OBJECT))
		return err_set(e, EINVAL, "not a JSON object");
	rc = trails_json_members(&p, 0, keys, idx, 2, "", e);
	if (rc < 0)
		return rc;
	if (!trails_json_is(&p, idx[0], SIG_SPEC))
		return err_field(e, EINVAL, "spec", "must be \"%s\"", SIG_SPEC);
	return entries_parse(&p, idx[1], f, e);
}

/* ---------------- verification ---------------- */

/* Why signatures did not count, for the message when the threshold is not
 * met: the first WHY_SHOWN reasons, then how many more. */
#define WHY_SHOWN 4
struct why {
	char buf[ERR_MSG_MAX];
	unsigned n;
};

static void note(struct why *w, const char *fmt, ...) _printf_(2, 3);
static void note(struct why *w, const char *fmt, ...)
{
	if (w->n++ >= WHY_SHOWN)
		return;
	size_t used = strlen(w->buf);
	if (used) {
		memcpy(w->buf + used, "; ", 3);
		used += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->buf + used, sizeof(w->buf) - used, fmt, ap);
	va_end(ap);
}

/* Check entry i: 1 if it newly counts, 0 if not (with a reason noted). */
static int entry_check(const struct trust *t, const uint8_t hash[32], const struct sig_entry *s,
		       size_t i, bool *counted, struct why *why)
{
	char id[DIGEST_STR_LEN + 1];
	digest_format(&s->keyid, id);
	int k = trust_find(t, &s->keyid);
	if (k < 0) {
		note(why, "signatures[%zu]: key %.19s… is not trusted", i, id);
		return 0;
	}
	/* mbedtls_pk_verify takes a non-const context; it does not change it */
	mbedtls_pk_context *pk = (mbedtls_pk_context *)&t->keys[k].pk;
	if (mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, 32, s->der, s->derlen) != 0) {
		note(why, "signatures[%zu]: bad signature by key %.19s…", i, id);
		return 0;
	}
	if (counted[k]) {
		note(why, "signatures[%zu]: key %.19s… already counted", i, id);
		return 0;
	}
	counted[k] = true;
	return 1;
}

/* How many distinct keys of t signed validly, why the others did not count. */
static unsigned tier_count(const struct trust *t, const uint8_t hash[32], const struct sig_file *f,
			   struct why *why)
{
	bool counted[TRUST_MAX_KEYS] = {false};
	unsigned valid = 0;
	for (size_t i = 0; i < f->n; i++)
		valid += (unsigned)entry_check(t, hash, &f->sigs[i], i, counted, why);
	return valid;
}

#define WHY_TEXT_MAX (ERR_MSG_MAX + 48) /* " (" why "; N more)" */
static void why_close(const struct why *w, char *out, size_t cap)
{
	char more[32] = "";
	if (w->n > WHY_SHOWN)
		snprintf(more, sizeof(more), "; %u more", w->n - WHY_SHOWN);
	snprintf(out, cap, "%s%s%s%s", w->n ? " (" : "", w->buf, more, w->n ? ")" : "");
}

/* `label` names the file in messages; with_signing: t's signing keys count
 * too (a revision), or only its roots do (a keys document). */
static int verify(const struct trust *t, bool with_signing, const char *label, const char *doc,
		  size_t doclen, const char *sig, size_t siglen, unsigned *nvalid, struct err *e)
{
	struct sig_file f;
	uint8_t hash[32];
	struct why why = {"", 0}, swhy = {"", 0};

	if (nvalid)
		*nvalid = 0;
	if (!t || (!doc && doclen) || (!sig && siglen))
		return err_set(e, EINVAL, "%s: nothing to verify", label);
	int rc = sig_file_parse(sig ? sig : "", siglen, &f, e);
	if (rc < 0)
		return err_prefix(e, "%s", label);
	if (mbedtls_sha256_ret((const unsigned char *)(doc ? doc : ""), doclen, hash, 0) != 0)
		return err_set(e, EIO, "%s: sha256 failed", label);
	unsigned valid = tier_count(t, hash, &f, &why);
	if (nvalid)
		*nvalid = valid;
	if (valid >= t->threshold)
		return 0;
	const struct trust *sg = with_signing ? t->signing : NULL;
	unsigned svalid = sg ? tier_count(sg, hash, &f, &swhy) : 0;
	if (sg && sg->threshold > 0 && svalid >= sg->threshold) {
		if (nvalid)
			*nvalid = svalid;
		return 0;
	}
	char a[WHY_TEXT_MAX], b[WHY_TEXT_MAX + 96] = "";
	why_close(&why, a, sizeof(a));
	if (sg) {
		char w[WHY_TEXT_MAX];
		why_close(&swhy, w, sizeof(w));
		snprintf(b, sizeof(b), "; signing keys of serial %llu: %u of %u%s",
			 (unsigned long long)t->serial, svalid, sg->threshold, w);
	}
	rc = err_set(e, EKEYREJECTED, "%s: %u of %u required signatures valid%s%s", label, valid,
		     t->threshold, a, b);
	if (e)
		snprintf(e->field, sizeof(e->field), "signatures");
	return rc;
}

int sig_verify(const struct trust *t, const char *doc, size_t doclen, const char *sig,
	       size_t siglen, unsigned *nvalid, struct err *e)
{
	return verify(t, true, "revision.sig", doc, doclen, sig, siglen, nvalid, e);
}

int sig_verify_roots(const struct trust *t, const char *label, const char *doc, size_t doclen,
		     const char *sig, size_t siglen, struct err *e)
{
	return verify(t, false, label, doc, doclen, sig, siglen, NULL, e);
}
