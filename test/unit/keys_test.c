/* test/unit/keys_test.c — signing-key rotation (trails/keys.c and the signing
 * tier of trails/signature.c; trails/REVISION.md "Signing keys"): the keys
 * document's checks, revisions verified by the roots or by the signing keys,
 * keys/<serial> on storage, and keys_store failing or crashing at each of its
 * durable operations (in a forked child: CAIRN_FAIL_AT / CAIRN_CRASH_AT are
 * read from the environment). Key pairs are made once with pack_keygen in a
 * temporary directory that the group teardown removes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/base64.h>

#include "../../lib/cleanup.h"
#include "../../storage/storage.h"
#include "../../tools/pack/pack.h"
#include "../../trails/trails_internal.h"
#include "checks.h"
#include "child.h"
#include "tmpdir.h"

/* Key pairs: two roots, then TRUST_MAX_KEYS signing keys (S1, S2, S3, ...). */
enum { ROOT, ROOT2, S1, S2, S3, NPAIRS = 2 + TRUST_MAX_KEYS };

static char groot[64];		  /* the group's temporary directory */
static char keydir[NPAIRS][96];	  /* <groot>/k<i>/signing.{key,pub} */
static char *pem[NPAIRS];	  /* the public keys */

/* A revision document (any bytes do: sig_verify only hashes them). */
static const char REV[] = "{\"spec\": \"cairn-revision@1\", \"revision\": 7}\n";

/* openssl ecparam -name secp384r1 -genkey -noout | openssl pkey -pubout */
static const char P384_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
			       "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEYU5UKb3L+FLfP+nlZEmQlKCnI+T/O0Eu\n"
			       "wTAn/fOGSqYEQrKlYcHOLfbE0mwskIVuhrEd4X8Bn0BSOapWc+QOUSXzsyS5UI0d\n"
			       "FrgHTtKyPC5ZHHVFxOOYRyFENnB9ZczL\n"
			       "-----END PUBLIC KEY-----\n";

#define TEST(name) static void name(void **state __attribute__((unused)))

/* A list of key pairs as the (array, count) argument pair. */
#define KEYS(...) (const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int)

static void trustp(struct trust **t)
{
	trust_free(*t);
}
#define _cleanup_trust_ _cleanup_(trustp)

/* ---------------- documents and signatures ---------------- */


/* s as a JSON string (a PEM holds printable ASCII and newlines). */
static char *json_str(const char *s)
{
	char *out = malloc(2 * strlen(s) + 3), *o = out;
	assert_non_null(out);
	*o++ = '"';
	for (; *s; s++) {
		if (*s == '\n' || *s == '"' || *s == '\\')
			*o++ = '\\';
		*o++ = *s == '\n' ? 'n' : *s;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* ["<PEM of pair k[0]>", ...] */
static char *keys_array(const int *k, size_t n)
{
	char *arr = str_new("[");
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *old = arr, *s = json_str(pem[k[i]]);
		arr = str_new("%s%s%s", old, i ? ", " : "", s);
	}
	_cleanup_free_ char *old = arr;
	return str_new("%s]", old);
}

/* A keys document from the JSON text of each member. */
static char *doc_of(const char *serial, const char *threshold, const char *keys)
{
	return str_new("{\"spec\": \"" KEYS_SPEC "\", \"serial\": %s, \"threshold\": %s, \"keys\": %s}\n",
		   serial, threshold, keys);
}

static char *doc_keys(uint64_t serial, unsigned threshold, const int *k, size_t n)
{
	_cleanup_free_ char *arr = keys_array(k, n);
	char s[24], t[16];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)serial);
	snprintf(t, sizeof(t), "%u", threshold);
	return doc_of(s, t, arr);
}

/* A signature file (keys.sig or revision.sig) over doc by pairs k[0..n). */
static char *sig_by(const char *doc, const int *k, size_t n)
{
	char *entries = str_new("%s", "");
	for (size_t i = 0; i < n; i++) {
		unsigned char der[80], b64[128];
		size_t derlen = 0, b64len = 0;
		char keyid[72], key[128];
		struct err e = ERR_INIT;
		assert_int_equal(str_fmt(key, sizeof(key), "%s/signing.key", keydir[k[i]]), 0);
		if (pack_sign_bytes(key, doc, strlen(doc), der, sizeof(der), &derlen, keyid, &e) < 0)
			fail_msg("pack_sign_bytes: %s", e.msg);
		assert_int_equal(mbedtls_base64_encode(b64, sizeof(b64), &b64len, der, derlen), 0);
		_cleanup_free_ char *old = entries;
		entries = str_new("%s%s{\"alg\": \"ecdsa-p256-sha256\", \"keyid\": \"%s\", \"sig\": \"%s\"}",
			      old, i ? ", " : "", keyid, b64);
	}
	_cleanup_free_ char *old = entries;
	return str_new("{\"spec\": \"cairn-signature@1\", \"signatures\": [%s]}", old);
}

/* A keys document and its keys.sig by the root. */
struct kdoc {
	char *doc, *sig;
};

static void kdoc_free(struct kdoc *d)
{
	free(d->doc);
	free(d->sig);
}
#define _cleanup_kdoc_ _cleanup_(kdoc_free)

static struct kdoc kdoc_make(uint64_t serial, unsigned threshold, const int *k, size_t n)
{
	struct kdoc d = {doc_keys(serial, threshold, k, n), NULL};
	d.sig = sig_by(d.doc, KEYS(ROOT));
	return d;
}

/* ---------------- trust sets ---------------- */

/* The roots as a device loads them: ROOT's public key file. */
static struct trust *roots(void)
{
	char p[128];
	struct trust *t = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(str_fmt(p, sizeof(p), "%s/signing.pub", keydir[ROOT]), 0);
	if (trust_load(p, &t, &e) < 0)
		fail_msg("trust_load %s: %s", p, e.msg);
	return t;
}

/* A trust set of pairs k[0..n) with a threshold. */
static struct trust *trust_of(unsigned threshold, const int *k, size_t n)
{
	const char *p[TRUST_MAX_KEYS];
	size_t len[TRUST_MAX_KEYS];
	struct trust *t = NULL;
	struct err e = ERR_INIT;
	for (size_t i = 0; i < n; i++)
		p[i] = pem[k[i]], len[i] = strlen(pem[k[i]]);
	if (trust_from_pems(p, len, n, threshold, &t, &e) < 0)
		fail_msg("trust_from_pems: %s", e.msg);
	return t;
}

/* ---------------- the keys document ---------------- */

static int check(const struct trust *t, const char *doc, size_t len, const char *sig,
		 struct trust **out, uint64_t *serial, struct err *e)
{
	*out = NULL;
	*serial = 0;
	err_clear(e);
	return keys_doc_check(t, doc, len, sig, strlen(sig), out, serial, e);
}

/* keys_doc_check passes: the document's key set, *serial its serial. */
static struct trust *accepted(const struct trust *t, const char *doc, size_t len, const char *sig,
			      uint64_t *serial)
{
	struct trust *k;
	struct err e;
	if (check(t, doc, len, sig, &k, serial, &e) < 0)
		fail_msg("keys_doc_check: %s", e.msg);
	return k;
}

/* doc (ending in "}\n") made exactly `size` bytes: spaces before its "}". */
static char *padded(const char *doc, size_t size)
{
	size_t len = strlen(doc) - 2;
	char *big = malloc(size + 1);
	assert_non_null(big);
	memcpy(big, doc, len);
	memset(big + len, ' ', size - len);
	big[size - 1] = '}';
	big[size] = '\0';
	return big;
}

/* keys_doc_check(doc, sig) fails with rc, exactly `field`, message `msg`
 * (whole, or a prefix when it ends in "..."), and hands nothing out. */
static void refused_sig(const struct trust *t, const char *doc, const char *sig, int rc,
			const char *field, const char *msg)
{
	struct trust *out;
	uint64_t serial;
	struct err e;
	int got = check(t, doc, strlen(doc), sig, &out, &serial, &e);
	if (got != rc)
		fail_msg("keys_doc_check: %d (%s), want %d (%s)", got, e.msg, rc, msg);
	assert_null(out);
	assert_string_equal(e.field, field);
	size_t n = strlen(msg);
	if (n > 3 && strcmp(msg + n - 3, "...") == 0)
		assert_int_equal(strncmp(e.msg, msg, n - 3), 0);
	else
		assert_string_equal(e.msg, msg);
}

/* doc, signed by the root, is refused. */
static void refused(const struct trust *t, const char *doc, int rc, const char *field,
		    const char *msg)
{
	_cleanup_free_ char *sig = sig_by(doc, KEYS(ROOT));
	refused_sig(t, doc, sig, rc, field, msg);
}

/* The document's key ids are those of pairs k[0..n), in order. */
static void assert_key_ids(const struct trust *t, const int *k, size_t n)
{
	assert_int_equal(trust_count(t), n);
	for (size_t i = 0; i < n; i++) {
		char got[DIGEST_STR_LEN + 1], want[DIGEST_STR_LEN + 1];
		struct digest d;
		struct err e = ERR_INIT;
		assert_int_equal(sig_keyid_from_pem(pem[k[i]], strlen(pem[k[i]]), &d, &e), 0);
		digest_format(&d, want);
		trust_key_id(t, i, got);
		assert_string_equal(got, want);
	}
}

TEST(test_doc_accepted)
{
	_cleanup_trust_ struct trust *t = roots();
	_cleanup_kdoc_ struct kdoc d = kdoc_make(7, 2, KEYS(S2, S1));
	uint64_t serial;
	_cleanup_trust_ struct trust *keys = accepted(t, d.doc, strlen(d.doc), d.sig, &serial);
	assert_int_equal(serial, 7);
	assert_int_equal(trust_threshold(keys), 2);
	assert_key_ids(keys, KEYS(S2, S1));
	/* a document's key set has no tier of its own; the roots are untouched */
	assert_null(trust_signing(keys));
	assert_int_equal(trust_serial(keys), 0);
	assert_int_equal(trust_serial(t), 0);

	/* members in any order, escapes read as what they mean, 2^53-1 */
	_cleanup_free_ char *arr = keys_array(KEYS(S3));
	_cleanup_free_ char *doc2 =
		str_new("{\"keys\": %s, \"threshold\": 1, \"\\u0073erial\": 9007199254740991, "
		    "\"spec\": \"cairn\\u002dkeys@1\"}",
		    arr);
	_cleanup_free_ char *sig2 = sig_by(doc2, KEYS(ROOT));
	_cleanup_trust_ struct trust *k = accepted(t, doc2, strlen(doc2), sig2, &serial);
	assert_int_equal(serial, (1ull << 53) - 1);
	assert_key_ids(k, KEYS(S3));
}

TEST(test_doc_at_the_caps)
{
	_cleanup_trust_ struct trust *t = roots();
	int all[TRUST_MAX_KEYS];
	for (int i = 0; i < TRUST_MAX_KEYS; i++)
		all[i] = S1 + i;
	/* 32 keys; the threshold at most 16, the signatures a revision.sig holds */
	_cleanup_kdoc_ struct kdoc d = kdoc_make(1, SIG_MAX_SIGS, all, TRUST_MAX_KEYS);
	uint64_t serial;
	struct trust *k = accepted(t, d.doc, strlen(d.doc), d.sig, &serial);
	assert_key_ids(k, all, TRUST_MAX_KEYS);
	assert_int_equal(trust_threshold(k), SIG_MAX_SIGS);
	trust_free(k);
	_cleanup_kdoc_ struct kdoc d17 = kdoc_make(1, SIG_MAX_SIGS + 1, all, TRUST_MAX_KEYS);
	refused_sig(t, d17.doc, d17.sig, -EINVAL, "threshold",
		    "threshold: must be an integer from 1 to 16 (the signatures a revision.sig "
		    "holds)");

	/* exactly KEYS_MAX_DOC bytes; one more is refused before anything else */
	_cleanup_free_ char *doc = doc_keys(1, 1, KEYS(S1));
	_cleanup_free_ char *big = padded(doc, KEYS_MAX_DOC), *over = padded(doc, KEYS_MAX_DOC + 1);
	_cleanup_free_ char *sig = sig_by(big, KEYS(ROOT));
	trust_free(accepted(t, big, KEYS_MAX_DOC, sig, &serial));
	refused(t, over, -EFBIG, "document", "document: 65537 bytes, more than the 65536 allowed");
}

TEST(test_doc_signed_by_signing_key_refused)
{
	_cleanup_trust_ struct trust *t = roots();
	_cleanup_free_ char *doc = doc_keys(2, 1, KEYS(S1));
	_cleanup_free_ char *by_s1 = sig_by(doc, KEYS(S1));
	static const char want[] = "keys.sig: 0 of 1 required signatures valid (signatures[0]: "
				   "key sha256:...";
	refused_sig(t, doc, by_s1, -EKEYREJECTED, "signatures", want);

	/* S1 in the signing tier still cannot vouch for a keys document */
	trust_set_signing(t, trust_of(1, KEYS(S1)), 1);
	refused_sig(t, doc, by_s1, -EKEYREJECTED, "signatures", want);
	struct trust *k;
	uint64_t n;
	struct err e;
	assert_int_equal(check(t, doc, strlen(doc), by_s1, &k, &n, &e), -EKEYREJECTED);
	assert_contains(e.msg, "is not trusted)");
	if (strstr(e.msg, "signing keys"))
		fail_msg("keys.sig was checked against the signing keys: %s", e.msg);
	/* a signature by the root alongside counts */
	uint64_t serial;
	_cleanup_free_ char *both = sig_by(doc, KEYS(S1, ROOT));
	trust_free(accepted(t, doc, strlen(doc), both, &serial));

	/* roots 2 of 2: a root and a signing key do not add up */
	_cleanup_trust_ struct trust *t2 = trust_of(2, KEYS(ROOT, ROOT2));
	trust_set_signing(t2, trust_of(1, KEYS(S1)), 1);
	_cleanup_free_ char *mixed = sig_by(doc, KEYS(ROOT, S1));
	refused_sig(t2, doc, mixed, -EKEYREJECTED, "signatures",
		    "keys.sig: 1 of 2 required signatures valid (signatures[1]: key sha256:...");
	_cleanup_free_ char *two = sig_by(doc, KEYS(ROOT2, ROOT));
	trust_free(accepted(t2, doc, strlen(doc), two, &serial));

	/* an unsigned document is never parsed: the signature error comes first */
	refused_sig(t, "not json", by_s1, -EKEYREJECTED, "signatures", "keys.sig: 0 of 1...");
}

/* s with single quotes turned into double quotes, in a fresh buffer */
static char *dquoted(const char *s)
{
	char *d = str_new("%s", s);
	for (char *c = d; *c; c++)
		*c = *c == '\'' ? '"' : *c;
	return d;
}

TEST(test_doc_bad_members)
{
	_cleanup_trust_ struct trust *t = roots();
	_cleanup_free_ char *one = keys_array(KEYS(S1)), *two = keys_array(KEYS(S1, S2));
	static const char *const bad_serial[] = {"0", "-1", "9007199254740992", "\"1\"", "1.0",
						 "1e3", "true", "null", "18446744073709551617"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_serial); i++) {
		_cleanup_free_ char *doc = doc_of(bad_serial[i], "1", one);
		refused(t, doc, -EINVAL, "serial", "serial: must be an integer from 1 to 2^53-1");
	}
	static const char *const bad_threshold[] = {"0", "3", "-1", "\"1\"", "1.5", "[1]"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_threshold); i++) {
		_cleanup_free_ char *doc = doc_of("1", bad_threshold[i], two);
		refused(t, doc, -EINVAL, "threshold",
			"threshold: must be an integer from 1 to 2 (the keys)");
	}
	/* the members themselves, around a valid keys array */
	static const struct {
		const char *before, *after, *field, *msg;
	} members[] = {
		{"{'spec': 'cairn-keys@2', 'serial': 1, 'threshold': 1, 'keys': ", "}", "spec",
		 "spec: must be \"cairn-keys@1\""},
		{"{'spec': 1, 'serial': 1, 'threshold': 1, 'keys': ", "}", "spec",
		 "spec: must be \"cairn-keys@1\""},
		{"{'spec': 'cairn-keys@1', 'serial': 1, 'threshold': 1, 'keys': ", ", 'extra': 1}",
		 "extra", "extra: unknown key"},
		{"{'spec': 'cairn-keys@1', 'serial': 1, 'threshold': 1, 'keys': ", ", 'serial': 2}",
		 "serial", "serial: duplicate key"},
		{"{'spec': 'cairn-keys@1', 'serial': 1, 'keys': ", "}", "threshold",
		 "threshold: missing"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
		_cleanup_free_ char *b = dquoted(members[i].before);
		_cleanup_free_ char *a = dquoted(members[i].after);
		_cleanup_free_ char *doc = str_new("%s%s%s", b, one, a);
		refused(t, doc, -EINVAL, members[i].field, members[i].msg);
	}
	refused(t, "[1, 2]", -EINVAL, "", "keys.json: not a JSON object");
	refused(t, "{\"spec\": ", -EINVAL, "", "keys.json: ...");
}

TEST(test_doc_bad_keys)
{
	_cleanup_trust_ struct trust *t = roots();
	_cleanup_free_ char *p384 = json_str(P384_PUB);
	_cleanup_free_ char *s1 = json_str(pem[S1]);
	/* the same key in other text: without the final newline */
	_cleanup_free_ char *s1_text = strndup(pem[S1], strlen(pem[S1]) - 1);
	_cleanup_free_ char *s1_other = json_str(s1_text);
	struct {
		char *keys;
		int rc;
		const char *field, *msg;
	} cases[] = {
		{str_new("[]"), -EINVAL, "keys", "keys: 0 keys: 1 to 32 allowed"},
		{str_new("{}"), -EINVAL, "keys", "keys: must be an array of PEM public keys"},
		{str_new("%s", s1), -EINVAL, "keys", "keys: must be an array of PEM public keys"},
		{str_new("[%s, 1]", s1), -EINVAL, "keys[1]",
		 "keys[1]: must be a string (a PEM public key)"},
		{str_new("[%s, [\"x\"]]", s1), -EINVAL, "keys[1]", "keys[1]: must be a string..."},
		{str_new("[\"hello\"]"), -EINVAL, "keys[0]",
		 "keys[0]: no \"-----BEGIN PUBLIC KEY-----\" line: not a PEM public key"},
		{str_new("[%s, \"\"]", s1), -EINVAL, "keys[1]", "keys[1]: 0 bytes: not a PEM public key"},
		{str_new("[%s]", p384), -EKEYREJECTED, "keys[0]",
		 "keys[0]: EC key on curve secp384r1: only ECDSA P-256 (secp256r1) keys are "
		 "accepted"},
		{str_new("[%s, %s]", s1, s1), -EINVAL, "keys[1]", "keys[1]: the same key as keys[0]"},
		{str_new("[%s, %s]", s1, s1_other), -EINVAL, "keys[1]",
		 "keys[1]: the same key as keys[0]"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *doc = doc_of("1", "1", cases[i].keys);
		refused(t, doc, cases[i].rc, cases[i].field, cases[i].msg);
		free(cases[i].keys);
	}
	/* the other text of S1 alone is a valid key: the duplicate is by key id */
	_cleanup_free_ char *alone = str_new("[%s]", s1_other);
	_cleanup_free_ char *ok = doc_of("1", "1", alone);
	_cleanup_free_ char *sig = sig_by(ok, KEYS(ROOT));
	uint64_t serial;
	_cleanup_trust_ struct trust *k = accepted(t, ok, strlen(ok), sig, &serial);
	assert_key_ids(k, KEYS(S1));
	/* S1, S2, S1: the error names the third */
	_cleanup_free_ char *arr3 = keys_array(KEYS(S1, S2, S1));
	_cleanup_free_ char *doc3 = doc_of("1", "1", arr3);
	refused(t, doc3, -EINVAL, "keys[2]", "keys[2]: the same key as keys[0]");

	/* 33 distinct keys: too many */
	int k33[TRUST_MAX_KEYS + 1];
	for (int i = 0; i <= TRUST_MAX_KEYS; i++)
		k33[i] = i < TRUST_MAX_KEYS ? S1 + i : ROOT;
	_cleanup_free_ char *arr33 = keys_array(k33, ARRAY_SIZE(k33));
	_cleanup_free_ char *doc33 = doc_of("1", "1", arr33);
	refused(t, doc33, -E2BIG, "keys", "keys: 33 keys: 1 to 32 allowed");
}

/* ---------------- revisions: roots or signing keys ---------------- */

/* sig_verify of REV signed by pairs k[0..n): its rc, *nvalid and error. */
static int verify_rev(const struct trust *t, const int *k, size_t n, unsigned *nvalid,
		      struct err *e)
{
	_cleanup_free_ char *sig = sig_by(REV, k, n);
	err_clear(e);
	return sig_verify(t, REV, strlen(REV), sig, strlen(sig), nvalid, e);
}

static void rev_passes(const struct trust *t, const int *k, size_t n, unsigned want_valid)
{
	struct err e;
	unsigned valid = 99;
	if (verify_rev(t, k, n, &valid, &e) < 0)
		fail_msg("sig_verify: %s", e.msg);
	assert_int_equal(valid, want_valid);
}

/* Fails as a revision.sig below both thresholds, with a message starting
 * with `msg` and holding `more` (may be NULL). */
static void rev_fails(const struct trust *t, const int *k, size_t n, const char *msg,
		      const char *more)
{
	struct err e;
	assert_int_equal(verify_rev(t, k, n, NULL, &e), -EKEYREJECTED);
	assert_string_equal(e.field, "signatures");
	if (strncmp(e.msg, msg, strlen(msg)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", e.msg, msg);
	if (more)
		assert_contains(e.msg, more);
}

TEST(test_rev_signing_tier)
{
	_cleanup_trust_ struct trust *t = roots();
	/* roots only: S1 is nobody, and the message has no signing part */
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 1 required signatures valid (signatures[0]",
		  "is not trusted)");
	struct err e;
	assert_int_equal(verify_rev(t, KEYS(S1), NULL, &e), -EKEYREJECTED);
	if (strstr(e.msg, "signing keys"))
		fail_msg("no signing keys are set: %s", e.msg);

	trust_set_signing(t, trust_of(1, KEYS(S1)), 4);
	assert_int_equal(trust_serial(t), 4);
	assert_non_null(trust_signing(t));
	assert_int_equal(trust_count(t), 1); /* the roots */
	rev_passes(t, KEYS(S1), 1);
	rev_passes(t, KEYS(ROOT), 1);
	rev_passes(t, KEYS(S2, S1), 1);
	/* a key outside both tiers: both counts are named */
	rev_fails(t, KEYS(S2), "revision.sig: 0 of 1 required signatures valid (",
		  "; signing keys of serial 4: 0 of 1 (signatures[0]: key sha256:");

	/* back to the roots only */
	trust_set_signing(t, NULL, 0);
	assert_int_equal(trust_serial(t), 0);
	assert_null(trust_signing(t));
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 1 required signatures valid", NULL);
	rev_passes(t, KEYS(ROOT), 1);
	/* a serial without keys is no serial */
	trust_set_signing(t, NULL, 9);
	assert_int_equal(trust_serial(t), 0);
}

TEST(test_rev_signing_threshold)
{
	_cleanup_trust_ struct trust *t = roots();
	trust_set_signing(t, trust_of(2, KEYS(S1, S2)), 9);
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 1 required", "; signing keys of serial 9: 1 of 2");
	rev_fails(t, KEYS(S1, S1), "revision.sig: 0 of 1 required",
		  "; signing keys of serial 9: 1 of 2 (signatures[1]: key");
	rev_fails(t, KEYS(S1, S3), "revision.sig: 0 of 1 required",
		  "; signing keys of serial 9: 1 of 2 (signatures[1]: key");
	rev_passes(t, KEYS(S1, S2), 2);
	rev_passes(t, KEYS(S2, S3, S1), 2);
	rev_passes(t, KEYS(ROOT), 1);

	/* the tiers do not add up: roots 2 of 2, signing 2 of 2 */
	_cleanup_trust_ struct trust *t2 = trust_of(2, KEYS(ROOT, ROOT2));
	trust_set_signing(t2, trust_of(2, KEYS(S1, S2)), 3);
	rev_fails(t2, KEYS(ROOT, S1), "revision.sig: 1 of 2 required signatures valid (",
		  "; signing keys of serial 3: 1 of 2 (");
	rev_passes(t2, KEYS(ROOT, ROOT2), 2);
	rev_passes(t2, KEYS(S2, S1), 2);
}

TEST(test_trust_with)
{
	_cleanup_trust_ struct trust *t = trust_of(2, KEYS(ROOT, ROOT2));
	struct trust *c = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(trust_with(t, trust_of(1, KEYS(S1)), 5, &c, &e), 0);
	_cleanup_trust_ struct trust *copy = c;
	/* the copy: the same roots and threshold, with S1 as its signing key */
	assert_int_equal(trust_serial(copy), 5);
	assert_int_equal(trust_count(copy), 2);
	assert_int_equal(trust_threshold(copy), 2);
	assert_key_ids(copy, KEYS(ROOT, ROOT2));
	rev_passes(copy, KEYS(S1), 1);
	rev_passes(copy, KEYS(ROOT2, ROOT), 2);
	rev_fails(copy, KEYS(ROOT), "revision.sig: 1 of 2 required", "signing keys of serial 5");
	/* the original: untouched */
	assert_int_equal(trust_serial(t), 0);
	assert_null(trust_signing(t));
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 2 required", NULL);

	/* from a trust with signing keys: the copy has the new ones only */
	trust_set_signing(t, trust_of(1, KEYS(S2)), 6);
	assert_int_equal(trust_with(t, trust_of(1, KEYS(S3)), 7, &c, &e), 0);
	_cleanup_trust_ struct trust *copy2 = c;
	rev_passes(copy2, KEYS(S3), 1);
	rev_fails(copy2, KEYS(S2), "revision.sig: 0 of 2 required", "signing keys of serial 7");
	rev_passes(t, KEYS(S2), 1);
	rev_fails(t, KEYS(S3), "revision.sig: 0 of 2 required", "signing keys of serial 6");
	/* without signing keys: roots only */
	assert_int_equal(trust_with(t, NULL, 0, &c, &e), 0);
	_cleanup_trust_ struct trust *copy3 = c;
	assert_int_equal(trust_serial(copy3), 0);
	rev_fails(copy3, KEYS(S2), "revision.sig: 0 of 2 required", NULL);
	/* the copies live on their own */
	trust_free(TAKE_PTR(copy2));
	rev_passes(t, KEYS(S2), 1);
}

/* ---------------- on the storage ---------------- */

struct fixture {
	char dir[64]; /* the storage root */
	struct storage *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	*state = f;
	if (!f || tmpdir_make(f->dir, sizeof(f->dir), "keys-store") < 0)
		return -1;
	return storage_open(f->dir, &f->s, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

static bool exists(const struct fixture *f, const char *rel)
{
	struct stat st;
	return fstatat(storage_root_fd(f->s), rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void store(const struct fixture *f, uint64_t serial, const struct kdoc *d)
{
	struct err e = ERR_INIT;
	if (keys_store(f->s, serial, d->doc, strlen(d->doc), d->sig, strlen(d->sig), &e) < 0)
		fail_msg("keys_store %llu: %s", (unsigned long long)serial, e.msg);
}

/* keys/<name>/{keys.json,keys.sig} written by hand. */
static void put_dir(const struct fixture *f, const char *name, const char *doc, const char *sig)
{
	char p[160];
	int root = storage_root_fd(f->s);
	assert_true(mkdirat(root, "keys", 0755) == 0 || errno == EEXIST);
	assert_int_equal(str_fmt(p, sizeof(p), "keys/%s", name), 0);
	assert_int_equal(mkdirat(root, p, 0755), 0);
	const char *files[2][2] = {{"keys.json", doc}, {"keys.sig", sig}};
	for (int i = 0; i < 2; i++) {
		if (!files[i][1])
			continue;
		assert_int_equal(str_fmt(p, sizeof(p), "keys/%s/%s", name, files[i][0]), 0);
		int fd = openat(root, p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, files[i][1], strlen(files[i][1])), 0);
		close(fd);
	}
}

/* What a boot gets: fresh roots, then keys_load. */
static struct trust *boot(const struct fixture *f)
{
	struct trust *t = roots();
	struct err e = ERR_INIT;
	if (keys_load(f->s, t, &e) < 0)
		fail_msg("keys_load: %s", e.msg);
	return t;
}

static uint64_t boot_serial(const struct fixture *f)
{
	_cleanup_trust_ struct trust *t = boot(f);
	return trust_serial(t);
}

TEST(test_store_and_load)
{
	struct fixture *f = *state;
	_cleanup_kdoc_ struct kdoc d1 = kdoc_make(1, 1, KEYS(S1));
	_cleanup_kdoc_ struct kdoc d3 = kdoc_make(3, 2, KEYS(S2, S3));
	assert_int_equal(boot_serial(f), 0); /* no keys directory at all */
	assert_false(exists(f, "keys"));

	store(f, 1, &d1);
	assert_true(exists(f, "keys/1/keys.json") && exists(f, "keys/1/keys.sig"));
	assert_int_equal(boot_serial(f), 1);
	store(f, 3, &d3);
	assert_true(exists(f, "keys/3/keys.json") && exists(f, "keys/3/keys.sig"));
	assert_false(exists(f, "keys/1"));
	assert_false(exists(f, "keys/.new"));

	_cleanup_trust_ struct trust *t = boot(f);
	assert_int_equal(trust_serial(t), 3);
	assert_int_equal(trust_threshold(trust_signing(t)), 2);
	assert_key_ids(trust_signing(t), KEYS(S2, S3));
	rev_passes(t, KEYS(S3, S2), 2);
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 1", "signing keys of serial 3: 0 of 2");

	/* the stored bytes are the document's, exactly */
	_cleanup_free_ char *got = NULL;
	size_t len = 0;
	struct err e = ERR_INIT;
	assert_int_equal(file_read_all(storage_root_fd(f->s), "keys/3/keys.json", KEYS_MAX_DOC,
				       &got, &len, &e),
			 0);
	assert_int_equal(len, strlen(d3.doc));
	assert_memory_equal(got, d3.doc, len);
}

TEST(test_load_max_size_doc)
{
	struct fixture *f = *state;
	_cleanup_free_ char *doc = doc_keys(2, 1, KEYS(S1));
	_cleanup_kdoc_ struct kdoc d = {padded(doc, KEYS_MAX_DOC), NULL};
	d.sig = sig_by(d.doc, KEYS(ROOT));
	store(f, 2, &d);
	assert_int_equal(boot_serial(f), 2);
}

TEST(test_load_skips_bad_serials)
{
	struct fixture *f = *state;
	_cleanup_kdoc_ struct kdoc d1 = kdoc_make(1, 1, KEYS(S1));
	_cleanup_kdoc_ struct kdoc d2 = kdoc_make(2, 1, KEYS(S2));
	_cleanup_kdoc_ struct kdoc d3 = kdoc_make(3, 1, KEYS(S3));
	_cleanup_kdoc_ struct kdoc d6 = kdoc_make(6, 1, KEYS(S3));
	_cleanup_free_ char *by_s3 = sig_by(d6.doc, KEYS(S3));
	put_dir(f, "1", d1.doc, d1.sig);
	put_dir(f, "2", d2.doc, d2.sig);
	assert_int_equal(boot_serial(f), 2);

	/* 3 damaged: one byte flipped (the key list still parses) */
	d3.doc[strlen(d3.doc) - 3] ^= 1;
	put_dir(f, "3", d3.doc, d3.sig);
	put_dir(f, "5", d2.doc, d2.sig);	  /* says serial 2 */
	put_dir(f, "6", d6.doc, by_s3);		  /* signed by a signing key */
	put_dir(f, "7", d1.doc, NULL);		  /* no keys.sig */
	put_dir(f, "007", d6.doc, d6.sig);	  /* not a serial's name */
	put_dir(f, "8x", d6.doc, d6.sig);	  /* nor this */
	put_dir(f, ".new", "garbage", "garbage"); /* an interrupted store */
	_cleanup_trust_ struct trust *t = boot(f);
	assert_int_equal(trust_serial(t), 2);
	assert_key_ids(trust_signing(t), KEYS(S2));
	rev_passes(t, KEYS(S2), 1);
	assert_false(exists(f, "keys/.new"));
	/* skipped is not removed: they are evidence */
	assert_true(exists(f, "keys/3") && exists(f, "keys/5"));

	/* storing over a damaged serial replaces it (and prunes 1 and 2) */
	_cleanup_kdoc_ struct kdoc again = kdoc_make(3, 1, KEYS(S3));
	store(f, 3, &again);
	assert_false(exists(f, "keys/1") || exists(f, "keys/2"));
	assert_int_equal(boot_serial(f), 3);
}

TEST(test_load_nothing_valid)
{
	struct fixture *f = *state;
	_cleanup_kdoc_ struct kdoc d4 = kdoc_make(4, 1, KEYS(S1));
	assert_int_equal(mkdirat(storage_root_fd(f->s), "keys", 0755), 0);
	assert_int_equal(boot_serial(f), 0); /* empty */
	d4.sig[strlen(d4.sig) / 2] ^= 1;
	put_dir(f, "4", d4.doc, d4.sig);
	_cleanup_trust_ struct trust *t = boot(f);
	assert_int_equal(trust_serial(t), 0);
	assert_null(trust_signing(t));
	rev_fails(t, KEYS(S1), "revision.sig: 0 of 1", NULL);
}

/* ---------------- keys_store failing or crashing at each durable op ---------------- */

/* In a child (child.h): store d2 as serial 2, report the durable
 * operations done, exit 0 (stored) or 1 (failed). */
struct store_job {
	const struct fixture *f;
	const struct kdoc *d2;
};

static int store_in_child(void *arg, int out)
{
	const struct store_job *j = arg;
	unsigned long before = storage_durable_count();
	int rc = keys_store(j->f->s, 2, j->d2->doc, strlen(j->d2->doc), j->d2->sig,
			    strlen(j->d2->sig), NULL);
	child_report(out, storage_durable_count() - before);
	return rc < 0;
}

/* The child (child.h); *ops the operations it reported (0 if none). */
static struct child fork_store(const struct fixture *f, const struct kdoc *d2, const char *var,
			       const char *val, unsigned long *ops)
{
	struct store_job j = {f, d2};
	struct child c;
	run_child(store_in_child, &j, var, val, &c);
	*ops = c.nnums ? c.nums[0] : 0;
	return c;
}

/* Serial 1 stored, nothing else under keys/. */
static void reset(const struct fixture *f, const struct kdoc *d1)
{
	char p[128];
	struct err e = ERR_INIT;
	assert_int_equal(str_fmt(p, sizeof(p), "%s/keys", f->dir), 0);
	if (storage_rmtree(p, &e) < 0)
		fail_msg("rmtree %s: %s", p, e.msg);
	store(f, 1, d1);
}

TEST(test_store_fails_at_each_op)
{
	struct fixture *f = *state;
	_cleanup_kdoc_ struct kdoc d1 = kdoc_make(1, 1, KEYS(S1));
	_cleanup_kdoc_ struct kdoc d2 = kdoc_make(2, 1, KEYS(S2));
	unsigned long total = 0;
	reset(f, &d1);
	struct child c = fork_store(f, &d2, NULL, NULL, &total);
	assert_int_equal(exit_code(&c), 0);
	/* mkdir keys, mkdir keys/.new, keys.json, keys.sig, rename to keys/2 */
	assert_int_equal(total, 5);
	assert_int_equal(boot_serial(f), 2);

	for (unsigned long n = 1; n <= total; n++) {
		char val[32];
		unsigned long ops;
		assert_int_equal(str_fmt(val, sizeof(val), "%lu:EIO", n), 0);
		reset(f, &d1);
		c = fork_store(f, &d2, "CAIRN_FAIL_AT", val, &ops);
		if (exit_code(&c) != 1)
			fail_msg("CAIRN_FAIL_AT=%s: child status %#x, want a failed store", val,
				 c.status);
		assert_int_equal(ops, n); /* it stopped at the failing op */
		/* nothing left aside, nothing of serial 2 */
		if (exists(f, "keys/.new") || exists(f, "keys/2"))
			fail_msg("CAIRN_FAIL_AT=%s: keys/.new or keys/2 left", val);
		assert_int_equal(boot_serial(f), 1);
	}
}

TEST(test_store_crashes_at_each_op)
{
	struct fixture *f = *state;
	_cleanup_kdoc_ struct kdoc d1 = kdoc_make(1, 1, KEYS(S1));
	_cleanup_kdoc_ struct kdoc d2 = kdoc_make(2, 1, KEYS(S2));
	const unsigned long total = 5; /* test_store_fails_at_each_op asserts it */
	for (unsigned long n = 1; n <= total; n++) {
		for (int after = 0; after < 2; after++) {
			char val[32];
			unsigned long ops;
			assert_int_equal(
				str_fmt(val, sizeof(val), "%s:%lu", after ? "after" : "before", n), 0);
			reset(f, &d1);
			struct child c = fork_store(f, &d2, "CAIRN_CRASH_AT", val, &ops);
			if (!killed(&c))
				fail_msg("CAIRN_CRASH_AT=%s: child status %#x, not killed", val,
					 c.status);
			/* the old serial or the new one, never neither: the new one
			 * exactly when the rename (the last op) was done */
			uint64_t want = after && n == total ? 2 : 1;
			if (boot_serial(f) != want)
				fail_msg("CAIRN_CRASH_AT=%s: serial %llu in effect, want %llu", val,
					 (unsigned long long)boot_serial(f),
					 (unsigned long long)want);
			assert_false(exists(f, "keys/.new")); /* keys_load swept it */
			/* the next store goes through */
			store(f, 2, &d2);
			assert_int_equal(boot_serial(f), 2);
			assert_false(exists(f, "keys/1"));
		}
	}
}

/* ---------------- group ---------------- */

/* keydir[i] holding a fresh key pair, its public key in pem[i]. */
static int key_pair(int i)
{
	struct err e = ERR_INIT;
	char pub[128];
	size_t len;
	if (str_fmt(keydir[i], sizeof(keydir[i]), "%s/k%d", groot, i) == 0 &&
	    mkdir(keydir[i], 0700) == 0 && pack_keygen(keydir[i], &e) == 0 &&
	    str_fmt(pub, sizeof(pub), "%s/signing.pub", keydir[i]) == 0 &&
	    file_read_all(AT_FDCWD, pub, 4096, &pem[i], &len, &e) == 0)
		return 0;
	fprintf(stderr, "key pair %d: %s\n", i, e.msg);
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (tmpdir_make(groot, sizeof(groot), "keys") < 0)
		return -1;
	for (int i = 0; i < NPAIRS; i++)
		if (key_pair(i) < 0)
			return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NPAIRS; i++)
		free(pem[i]);
	return tmpdir_remove(groot, 0);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_accepted),
		cmocka_unit_test(test_doc_at_the_caps),
		cmocka_unit_test(test_doc_signed_by_signing_key_refused),
		cmocka_unit_test(test_doc_bad_members),
		cmocka_unit_test(test_doc_bad_keys),
		cmocka_unit_test(test_rev_signing_tier),
		cmocka_unit_test(test_rev_signing_threshold),
		cmocka_unit_test(test_trust_with),
		T(test_store_and_load),
		T(test_load_max_size_doc),
		T(test_load_skips_bad_serials),
		T(test_load_nothing_valid),
		T(test_store_fails_at_each_op),
		T(test_store_crashes_at_each_op),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
