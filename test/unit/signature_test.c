/* test/unit/signature_test.c — revision.sig verification (trails/signature.c)
 * and signing (tools/pack/keys.c). Keys are made with pack_keygen in a
 * mkdtemp directory that the group teardown removes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

#include "../../lib/cleanup.h"
#include "../../tools/pack/pack.h"
#include "../../trails/trails.h"
#include "checks.h"

/* Made once with openssl, an independent implementation:
 *   openssl ecparam -name prime256v1 -genkey -noout -out k.pem
 *   openssl pkey -in k.pem -pubout -out k.pub
 *   openssl pkey -pubin -in k.pub -outform DER | sha256sum      (OSSL_KEYID)
 *   openssl dgst -sha256 -sign k.pem doc.json | base64 -w0       (OSSL_SIG) */
static const char OSSL_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
			       "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzoDzk/TVL2WCBdfXXZxdOFBlgBUa\n"
			       "0kGh0rMI8Cd7j9AkPfgc1qbLDFDBGemo/BlHnZTrGHfvuEpp5cO/ERpvjQ==\n"
			       "-----END PUBLIC KEY-----\n";
static const char OSSL_KEYID[] =
	"sha256:1b42a121675a842b22eaa563d1a9fe7fe23dd26611fefcaa0c1c216dfd81b182";
static const char OSSL_DOC[] = "{\"spec\": \"cairn-revision@1\", \"revision\": 1}\n";
static const char OSSL_SIG[] = "MEUCIQCez3kuLnm9EL3dtXbRdA9bw2woCwA4ABqCSa8emT5sZAIgIpGg/nNrh90YjD"
			       "bcqJ0Et4gatheJTKsVhOypth/cXT4=";

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* one signature entry from a keyid and a base64 signature */
#define ENTRY_FMT "{\"alg\": \"ecdsa-p256-sha256\", \"keyid\": \"%s\", \"sig\": \"%s\"}"

static const char DOC[] =
	"{\n  \"spec\": \"cairn-revision@1\",\n  \"revision\": 12,\n  \"containers\": "
	"[{\"name\": \"web\", \"rootfs\": {\"object\": \"sha256:" HEX64 "\"}}]\n}\n";

static char root[64];  /* the mkdtemp directory */
static char keya[128]; /* key pair A: keya/signing.{key,pub} */
static char keyb[128];
static unsigned seq; /* unique names for per-test directories */

#define TEST(name) static void name(void **state __attribute__((unused)))

/* str_fmt into an array, which must not truncate */
#define FMT(buf, ...) assert_int_equal(str_fmt((buf), sizeof(buf), __VA_ARGS__), 0)

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
	assert_int_equal(str_fmt(out, cap, "%s/%s", dir, name), 0);
}

static void write_file(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[256];
	path_of(path, sizeof(path), dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	close(fd);
}

static void write_str(const char *dir, const char *name, const char *s)
{
	write_file(dir, name, s, strlen(s));
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
	char *buf = NULL, path[256];
	struct err e = ERR_INIT;
	path_of(path, sizeof(path), dir, name);
	assert_int_equal(file_read_all(AT_FDCWD, path, 1 << 20, &buf, len, &e), 0);
	return buf;
}

/* A fresh directory under root. */
static void new_dir(char *out, size_t cap, const char *what)
{
	assert_int_equal(str_fmt(out, cap, "%s/%s%u", root, what, seq++), 0);
	assert_int_equal(mkdir(out, 0755), 0);
}

static void copy_pub(const char *keydir, const char *dir, const char *name)
{
	size_t len = 0;
	_cleanup_free_ char *pem = read_file(keydir, "signing.pub", &len);
	write_file(dir, name, pem, len);
}

static struct trust *trust_of(const char *path)
{
	struct trust *t = NULL;
	struct err e = ERR_INIT;
	if (trust_load(path, &t, &e) < 0)
		fail_msg("trust_load %s: %s", path, e.msg);
	return t;
}

/* One key alone: keydir's public key, or the openssl one (keydir NULL). */
static struct trust *trust_one(const char *keydir)
{
	char dir[128], p[256];
	new_dir(dir, sizeof(dir), "one");
	if (keydir)
		copy_pub(keydir, dir, "k.pub");
	else
		write_str(dir, "k.pub", OSSL_PUB);
	path_of(p, sizeof(p), dir, "k.pub");
	return trust_of(p);
}

/* A directory trusting A and B with the given threshold file. */
static struct trust *trust_ab(const char *threshold)
{
	char dir[128];
	new_dir(dir, sizeof(dir), "trust");
	copy_pub(keya, dir, "a.pub");
	copy_pub(keyb, dir, "b.pub");
	write_str(dir, "threshold", threshold);
	return trust_of(dir);
}

/* One signature entry, as JSON, by the key in keydir over DOC. */
static void entry_by(char *out, size_t cap, const char *keydir)
{
	unsigned char der[80], b64[128];
	size_t derlen = 0, b64len = 0;
	char keyid[72], key[256];
	struct err e = ERR_INIT;
	path_of(key, sizeof(key), keydir, "signing.key");
	if (pack_sign_bytes(key, DOC, strlen(DOC), der, sizeof(der), &derlen, keyid, &e) < 0)
		fail_msg("pack_sign_bytes: %s", e.msg);
	assert_int_equal(mbedtls_base64_encode(b64, sizeof(b64), &b64len, der, derlen), 0);
	assert_int_equal(str_fmt(out, cap, ENTRY_FMT, keyid, b64), 0);
}
#define ENTRY(buf, keydir) entry_by((buf), sizeof(buf), (keydir))

/* {"spec": ..., "signatures": [e1, e2]}; e2 may be NULL. */
static void file_of(char *out, size_t cap, const char *e1, const char *e2)
{
	assert_int_equal(str_fmt(out, cap,
				 "{\"spec\": \"cairn-signature@1\", \"signatures\": [%s%s%s]}", e1,
				 e2 ? ", " : "", e2 ? e2 : ""),
			 0);
}

static int verify(const struct trust *t, const char *doc, const char *sig, unsigned *n,
		  struct err *e)
{
	return sig_verify(t, doc, strlen(doc), sig, strlen(sig), n, e);
}

static void expect_ok(const struct trust *t, const char *doc, const char *sig, unsigned want)
{
	struct err e = ERR_INIT;
	unsigned n = 99;
	if (verify(t, doc, sig, &n, &e) < 0)
		fail_msg("sig_verify: %s", e.msg);
	assert_int_equal(n, want);
}

/* Verification fails with rc and a message containing text; e for more
 * checks. Returns the number of valid signatures it reported. */
static unsigned expect_fail(const struct trust *t, const char *doc, const char *sig, int rc,
			    const char *text, struct err *e)
{
	unsigned n = 99;
	err_clear(e);
	int got = verify(t, doc, sig, &n, e);
	if (got != rc)
		fail_msg("sig_verify returned %d, want %d (%s)", got, rc, e->msg);
	assert_contains(e->msg, text);
	return n;
}

static void trustp(struct trust **t)
{
	trust_free(*t);
}
#define _cleanup_trust_ _cleanup_(trustp)

/* ---------------- verification ---------------- */

TEST(test_valid_passes)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], sig[1024];
	ENTRY(ent, keya);
	file_of(sig, sizeof(sig), ent, NULL);
	assert_int_equal(trust_count(t), 1);
	assert_int_equal(trust_threshold(t), 1);
	expect_ok(t, DOC, sig, 1);
}

TEST(test_openssl_signature_and_keyid)
{
	_cleanup_trust_ struct trust *t = trust_one(NULL);
	char ent[512], sig[1024], esc[1024], shorter[sizeof(OSSL_DOC)];
	struct err e;
	FMT(ent, ENTRY_FMT, OSSL_KEYID, OSSL_SIG);
	file_of(sig, sizeof(sig), ent, NULL);
	expect_ok(t, OSSL_DOC, sig, 1);
	/* JSON escapes are read as what they mean */
	assert_int_equal(OSSL_SIG[56], '/');
	FMT(esc,
	    "{\"\\u0073pec\": \"cairn-signature@1\", \"signatures\": [{\"alg\": "
	    "\"ecdsa\\u002dp256-sha256\", \"keyid\": \"%s\", \"sig\": \"%.56s\\/%s\"}]}",
	    OSSL_KEYID, OSSL_SIG, OSSL_SIG + 57);
	expect_ok(t, OSSL_DOC, esc, 1);
	/* the same signature over the document without its final newline */
	FMT(shorter, "%.*s", (int)strlen(OSSL_DOC) - 1, OSSL_DOC);
	expect_fail(t, shorter, sig, -EKEYREJECTED, "bad signature", &e);

	/* the key id is sha256 of the key's DER, as openssl computed it */
	struct digest id, want;
	assert_int_equal(sig_keyid_from_pem(OSSL_PUB, strlen(OSSL_PUB), &id, &e), 0);
	assert_int_equal(digest_parse(OSSL_KEYID, strlen(OSSL_KEYID), &want), 0);
	assert_true(digest_eq(&id, &want));
	assert_int_equal(sig_keyid_from_pem("hello", 5, &id, &e), -EINVAL);   /* not PEM */
	assert_int_equal(sig_keyid_from_pem(OSSL_PUB, 40, &id, &e), -EINVAL); /* cut short */
}

TEST(test_flipped_byte_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], sig[1024], doc[sizeof(DOC)];
	struct err e;
	ENTRY(ent, keya);
	file_of(sig, sizeof(sig), ent, NULL);
	for (size_t i = 0; i < strlen(DOC); i++) {
		memcpy(doc, DOC, sizeof(DOC));
		doc[i] ^= (char)(1u << (i % 7)); /* stays a non-NUL byte */
		assert_int_equal(
			expect_fail(t, doc, sig, -EKEYREJECTED, "bad signature by key sha256:", &e),
			0);
	}
	for (size_t len = strlen(DOC) - 1; len <= sizeof(DOC); len += 2) /* a byte less, more */
		assert_int_equal(sig_verify(t, DOC, len, sig, strlen(sig), NULL, &e),
				 -EKEYREJECTED);
}

TEST(test_wrong_key_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char enta[512], entb[512], sig[1024];
	struct err e;
	ENTRY(enta, keya);
	ENTRY(entb, keyb);
	file_of(sig, sizeof(sig), entb, NULL); /* signed by B, trust has A */
	expect_fail(
		t, DOC, sig, -EKEYREJECTED,
		"revision.sig: 0 of 1 required signatures valid (signatures[0]: key sha256:", &e);
	assert_contains(e.msg, "is not trusted)");
	assert_string_equal(e.field, "signatures");

	/* B's signature under A's key id: checked with A's key, fails */
	char *sa = strstr(enta, "\"sig\"");
	FMT(sig, "%.*s%s", (int)(sa - enta), enta, strstr(entb, "\"sig\""));
	FMT(enta, "%s", sig);
	file_of(sig, sizeof(sig), enta, NULL);
	expect_fail(t, DOC, sig, -EKEYREJECTED, "(signatures[0]: bad signature by key sha256:", &e);
}

TEST(test_truncated_file_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], sig[1024];
	ENTRY(ent, keya);
	file_of(sig, sizeof(sig), ent, NULL);
	for (size_t len = 0; len < strlen(sig); len++) {
		struct err e = ERR_INIT;
		if (sig_verify(t, DOC, strlen(DOC), sig, len, NULL, &e) == 0)
			fail_msg("a revision.sig cut at %zu bytes passed", len);
		assert_contains(e.msg, "revision.sig: ");
	}
}

/* An entry like `ent` with signature text b64 makes the file malformed. */
static void expect_bad_sig(const struct trust *t, const char *doc, const char *ent, const char *b64,
			   const char *why)
{
	char bad[512], sig[1024];
	struct err e;
	const char *s = strstr(ent, "\"sig\": \"");
	assert_non_null(s);
	FMT(bad, "%.*s%s\"}", (int)(s - ent) + 8, ent, b64);
	file_of(sig, sizeof(sig), bad, NULL);
	assert_int_equal(expect_fail(t, doc, sig, -EINVAL, why, &e), 0);
	assert_string_equal(e.field, "signatures[0].sig");
}

/* The same with the signature's DER bytes. */
static void expect_bad_der(const struct trust *t, const char *ent, const unsigned char *der,
			   size_t n, const char *why)
{
	char b64[160];
	size_t len = 0;
	assert_int_equal(mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &len, der, n), 0);
	expect_bad_sig(t, DOC, ent, b64, why);
}

/* The base64 of entry `ent` into out; its length. */
static size_t b64_of(const char *ent, char out[128])
{
	const char *s = strstr(ent, "\"sig\": \"") + 8;
	size_t len = strcspn(s, "\"");
	assert_true(len < 128);
	memcpy(out, s, len);
	out[len] = '\0';
	return len;
}

TEST(test_bad_base64_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], b64[128], cut[128], big[120];
	ENTRY(ent, keya);
	size_t len = b64_of(ent, b64);
	FMT(cut, "%.*s", (int)len - 1, b64);
	expect_bad_sig(t, DOC, ent, cut, "base64"); /* one character short */
	cut[len - 4] = '\0'; /* one quantum short: valid base64 of a cut DER */
	expect_bad_sig(t, DOC, ent, cut, "DER");
	expect_bad_sig(t, DOC, ent, "", "base64");
	FMT(cut, "%.8s %s", b64, b64 + 8);
	expect_bad_sig(t, DOC, ent, cut, "base64");
	FMT(cut, "%.*s", (int)strcspn(b64, "="), b64);
	if (strlen(cut) != len) /* padding dropped (a 72-byte DER has none) */
		expect_bad_sig(t, DOC, ent, cut, "base64");
	/* more than 80 bytes: 81 decoded, then more than the text cap */
	memset(big, 'A', 112);
	big[108] = '\0';
	expect_bad_sig(t, DOC, ent, big, "81 bytes, longer than any P-256 signature");
	big[108] = 'A';
	big[112] = '\0';
	expect_bad_sig(t, DOC, ent, big, "longer than 108 base64 characters");
}

TEST(test_noncanonical_base64_fails)
{
	/* the openssl signature: 71 bytes of DER, so one '=' and two unused bits */
	_cleanup_trust_ struct trust *t = trust_one(NULL);
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char ent[512], b64[128];
	size_t len = strlen(OSSL_SIG);
	FMT(ent, ENTRY_FMT, OSSL_KEYID, "x");
	FMT(b64, "%s", OSSL_SIG);
	assert_true(len % 4 == 0 && b64[len - 1] == '=' && b64[len - 2] != '=');
	/* an unused low bit set in the last symbol: decodes to the same bytes */
	char *last = &b64[len - 2];
	*last = alpha[(strchr(alpha, *last) - alpha) ^ 1];
	expect_bad_sig(t, OSSL_DOC, ent, b64, "base64");
	/* whitespace that keeps the length a multiple of 4 */
	FMT(b64, "%.8s    %s", OSSL_SIG, OSSL_SIG + 8);
	expect_bad_sig(t, OSSL_DOC, ent, b64, "base64");
	FMT(b64, "%.8s\\r\\n\\r\\n%s", OSSL_SIG, OSSL_SIG + 8);
	expect_bad_sig(t, OSSL_DOC, ent, b64, "base64");
}

TEST(test_bad_der_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], b64[128];
	unsigned char der[84], pad0[84];
	size_t derlen = 0;
	ENTRY(ent, keya);
	size_t len = b64_of(ent, b64);
	assert_int_equal(mbedtls_base64_decode(der, 80, &derlen, (unsigned char *)b64, len), 0);

	/* r with a needless leading zero byte: mbedtls alone would accept it */
	memcpy(pad0,
	       (unsigned char[]){0x30, (unsigned char)(der[1] + 1), 0x02,
				 (unsigned char)(der[3] + 1), 0x00},
	       5);
	memcpy(pad0 + 5, der + 4, derlen - 4);
	expect_bad_der(t, ent, pad0, derlen + 1, "DER");
	expect_bad_der(t, ent, der, derlen - 1, "DER"); /* one byte short */
	der[derlen] = 0;
	expect_bad_der(t, ent, der, derlen + 1, "DER"); /* a byte after the SEQUENCE */
	der[1]++;
	expect_bad_der(t, ent, der, derlen + 1, "DER"); /* a byte inside it, after s */
}

TEST(test_unknown_alg_fails)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	char ent[512], other[512], sig[1024];
	struct err e;
	ENTRY(ent, keya);
	char *alg = strstr(ent, "ecdsa-p256-sha256");
	/* a valid entry first, then the same with another algorithm */
	FMT(other, "%.*sed25519%s", (int)(alg - ent), ent, alg + strlen("ecdsa-p256-sha256"));
	file_of(sig, sizeof(sig), ent, other);
	expect_fail(t, DOC, sig, -EINVAL, "signatures[1].alg: unknown algorithm \"ed25519\"", &e);
	assert_string_equal(e.field, "signatures[1].alg");
}

TEST(test_threshold_two)
{
	_cleanup_trust_ struct trust *t = trust_ab("2\n");
	char a[512], b[512], sig[1024];
	struct err e;
	assert_int_equal(trust_count(t), 2);
	assert_int_equal(trust_threshold(t), 2);
	ENTRY(a, keya);
	ENTRY(b, keyb);
	file_of(sig, sizeof(sig), a, NULL);
	assert_int_equal(
		expect_fail(t, DOC, sig, -EKEYREJECTED, "1 of 2 required signatures valid", &e), 1);
	file_of(sig, sizeof(sig), b, a);
	expect_ok(t, DOC, sig, 2);
}

TEST(test_same_key_twice_counts_once)
{
	_cleanup_trust_ struct trust *t = trust_ab("2");
	char a1[512], a2[512], sig[1024];
	struct err e;
	ENTRY(a1, keya);
	ENTRY(a2, keya);
	file_of(sig, sizeof(sig), a1, a2);
	assert_int_equal(expect_fail(t, DOC, sig, -EKEYREJECTED, "1 of 2 required", &e), 1);
	assert_contains(e.msg, "(signatures[1]: key sha256:");
	assert_contains(e.msg, "already counted)");
}

struct bad_file {
	const char *json;
	const char *field; /* "" when no single field is to blame */
	const char *text;
};

#define KID "\"sha256:" HEX64 "\""
#define SIG0 "\"MAYCAQECAQE=\"" /* DER of r = 1, s = 1 */
#define ALG "\"ecdsa-p256-sha256\""
#define ENT(alg, kid, sig) "{\"alg\": " alg ", \"keyid\": " kid ", \"sig\": " sig "}"
#define E0 ENT(ALG, KID, SIG0)
#define SPEC "\"spec\": \"cairn-signature@1\""
#define SIGS(x) "{" SPEC ", \"signatures\": [" x "]}"
#define E4 E0 "," E0 "," E0 "," E0

static const struct bad_file bad_files[] = {
	{"not json", "", "invalid JSON"},
	{"", "", "invalid JSON"},
	{SIGS(E0) " x", "", "trailing bytes"},
	{"[]", "", "not a JSON object"},
	{"{\"signatures\": [" E0 "]}", "spec", "missing"},
	{"{\"spec\": \"cairn-signature@2\", \"signatures\": [" E0 "]}", "spec", "must be"},
	{"{\"spec\": 1, \"signatures\": [" E0 "]}", "spec", "must be"},
	{"{" SPEC "}", "signatures", "missing"},
	{"{" SPEC ", \"signatures\": [" E0 "], \"extra\": 1}", "extra", "unknown key"},
	{"{" SPEC ", " SPEC ", \"signatures\": []}", "spec", "duplicate key"},
	{"{" SPEC ", \"\\u0073pec\": \"x\", \"signatures\": []}", "spec", "duplicate key"},
	{SIGS(""), "signatures", "empty"},
	{"{" SPEC ", \"signatures\": {}}", "signatures", "must be an array"},
	{SIGS("1"), "signatures[0]", "must be an object"},
	{SIGS(E0 ", []"), "signatures[1]", "must be an object"},
	{SIGS("{\"alg\": " ALG ", \"keyid\": " KID "}"), "signatures[0].sig", "missing"},
	{SIGS("{\"x\": 1, \"alg\": " ALG ", \"keyid\": " KID ", \"sig\": " SIG0 "}"),
	 "signatures[0].x", "unknown key"},
	{SIGS("{\"alg\": " ALG ", \"alg\": " ALG ", \"keyid\": " KID ", \"sig\": " SIG0 "}"),
	 "signatures[0].alg", "duplicate key"},
	{SIGS(ENT(ALG, "\"sha256:" HEX64 "0\"", SIG0)), "signatures[0].keyid", "not a key id"},
	{SIGS(ENT(ALG, "\"sha512:" HEX64 "\"", SIG0)), "signatures[0].keyid", "not a key id"},
	{SIGS(ENT(ALG,
		  "\"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"",
		  SIG0)),
	 "signatures[0].keyid", "not a key id"},
	{SIGS(ENT(ALG, "7", SIG0)), "signatures[0].keyid", "must be a string"},
	{SIGS(ENT("null", KID, SIG0)), "signatures[0].alg", "must be a string"},
	{SIGS(ENT(ALG, KID, "[1]")), "signatures[0].sig", "must be a string"},
	{SIGS(ENT("\"ECDSA-P256-SHA256\"", KID, SIG0)), "signatures[0].alg", "unknown algorithm"},
	{SIGS(E4 "," E4 "," E4 "," E4 "," E0), "signatures", "17 entries, at most 16"},
};

TEST(test_malformed_files_fail)
{
	_cleanup_trust_ struct trust *t = trust_one(keya);
	for (size_t i = 0; i < ARRAY_SIZE(bad_files); i++) {
		const struct bad_file *b = &bad_files[i];
		struct err e = ERR_INIT;
		unsigned n = 7;
		int rc = verify(t, DOC, b->json, &n, &e);
		if (rc == 0 || rc == -EKEYREJECTED || strcmp(e.field, b->field) != 0)
			fail_msg("case %zu (%s): %d, field \"%s\", want \"%s\" (%s)", i, b->json,
				 rc, e.field, b->field, e.msg);
		assert_int_equal(n, 0);
		assert_contains(e.msg, b->text);
		assert_contains(e.msg, "revision.sig: ");
	}
}

TEST(test_size_caps)
{
	/* 16 signatures is the cap: the file parses, the verdict is about keys */
	_cleanup_trust_ struct trust *t = trust_one(keya);
	struct err e;
	expect_fail(t, DOC, SIGS(E4 "," E4 "," E4 "," E4), -EKEYREJECTED,
		    "0 of 1 required signatures valid (signatures[0]: key sha256:0123456789ab… is "
		    "not trusted; signatures[1]: key",
		    &e);
	assert_contains(e.msg, "signatures[3]: key sha256:0123456789ab… is not trusted; 12 more)");

	size_t len = SIG_MAX_FILE + 1; /* one byte too many, even if valid JSON */
	_cleanup_free_ char *big = malloc(len);
	assert_non_null(big);
	memset(big, ' ', len);
	big[0] = '{';
	big[len - 1] = '}';
	assert_int_equal(sig_verify(t, DOC, strlen(DOC), big, len, NULL, &e), -EFBIG);
	assert_contains(e.msg, "more than the 65536 allowed");
}

/* ---------------- trust ---------------- */

/* A key that is not P-256, written as PEM: public to dir/pub, and private
 * to dir/key unless key is NULL. */
static void other_key(bool rsa, const char *dir, const char *pub, const char *key)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context pk;
	unsigned char pem[4096], priv[4096];
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&pk);
	int ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0);
	if (ret == 0)
		ret = mbedtls_pk_setup(
			&pk, mbedtls_pk_info_from_type(rsa ? MBEDTLS_PK_RSA : MBEDTLS_PK_ECKEY));
	if (ret == 0 && rsa)
		ret = mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg, 1024,
					  65537);
	else if (ret == 0)
		ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(pk),
					  mbedtls_ctr_drbg_random, &drbg);
	if (ret == 0)
		ret = mbedtls_pk_write_pubkey_pem(&pk, pem, sizeof(pem));
	if (ret == 0)
		ret = mbedtls_pk_write_key_pem(&pk, priv, sizeof(priv));
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	assert_int_equal(ret, 0);
	write_str(dir, pub, (char *)pem);
	if (key)
		write_str(dir, key, (char *)priv);
}

static void expect_trust_fails(const char *path, const char *text1, const char *text2)
{
	struct trust *t = NULL;
	struct err e = ERR_INIT;
	assert_true(trust_load(path, &t, &e) < 0);
	assert_null(t);
	assert_contains(e.msg, text1);
	assert_contains(e.msg, text2);
}

TEST(test_trust_rejects_non_p256)
{
	char dir[128], p[256];
	new_dir(dir, sizeof(dir), "other");
	copy_pub(keya, dir, "a.pub");
	other_key(false, dir, "p384.pub", NULL);
	expect_trust_fails(dir, "p384.pub", "EC key on curve secp384r1: only ECDSA P-256");
	path_of(p, sizeof(p), dir, "p384.pub");
	expect_trust_fails(p, "p384.pub", "only ECDSA P-256");
	assert_int_equal(unlink(p), 0);
	other_key(true, dir, "rsa.pub", NULL);
	expect_trust_fails(dir, "rsa.pub", "RSA key: only ECDSA P-256");
}

TEST(test_trust_dir_rules)
{
	static const char *const bad[] = {"0", "", "abc", "1 ", "01", "-1", "33", "1\n\n", "999"};
	char dir[128];
	new_dir(dir, sizeof(dir), "empty");
	expect_trust_fails(dir, dir, "no *.pub");
	write_str(dir, "README", "not a key"); /* other files are ignored */
	expect_trust_fails(dir, dir, "no *.pub");

	/* the same key twice counts once; threshold 2 then exceeds the keys */
	copy_pub(keya, dir, "a.pub");
	copy_pub(keya, dir, "a-again.pub");
	_cleanup_trust_ struct trust *t = trust_of(dir);
	assert_int_equal(trust_count(t), 1);
	write_str(dir, "threshold", "2\n");
	expect_trust_fails(dir, "threshold", "holds 1 distinct key");
	copy_pub(keyb, dir, "b.pub");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		write_str(dir, "threshold", bad[i]);
		expect_trust_fails(dir, "threshold", "not a number from 1 to 32");
	}
	write_str(dir, "threshold", "2");
	_cleanup_trust_ struct trust *t2 = trust_of(dir);
	assert_int_equal(trust_count(t2), 2);
	assert_int_equal(trust_threshold(t2), 2);

	/* a *.pub that is not a key is an error naming it */
	write_str(dir, "junk.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
	expect_trust_fails(dir, "junk.pub", "not a PEM public key");
	expect_trust_fails("/nonexistent/cairn-trust", "/nonexistent/cairn-trust", "No such file");
}

TEST(test_trust_too_many_keys)
{
	char dir[128], name[32];
	new_dir(dir, sizeof(dir), "many");
	for (int i = 0; i <= TRUST_MAX_KEYS; i++) {
		FMT(name, "k%d.pub", i);
		copy_pub(keya, dir, name);
	}
	expect_trust_fails(dir, "more than 32", "*.pub");
}

/* ---------------- signing ---------------- */

static void sign_ok(const char *out, const char *keydir)
{
	char key[256];
	struct err e = ERR_INIT;
	path_of(key, sizeof(key), keydir, "signing.key");
	if (pack_sign(out, key, &e) < 0)
		fail_msg("pack_sign: %s", e.msg);
}

/* out/revision.sig, which must hold `want` entries (counted by key ids). */
static char *sig_read(const char *out, size_t want)
{
	size_t len = 0, n = 0;
	char *sig = read_file(out, "revision.sig", &len);
	for (const char *s = sig; (s = strstr(s, "\"keyid\"")); s++)
		n++;
	assert_int_equal(n, want);
	return sig;
}

TEST(test_pack_sign_adds_and_replaces)
{
	char out[128];
	struct err e;
	new_dir(out, sizeof(out), "out");
	write_str(out, "revision.json", DOC);
	_cleanup_trust_ struct trust *ta = trust_one(keya);
	_cleanup_trust_ struct trust *tab = trust_ab("2");
	sign_ok(out, keya);
	_cleanup_free_ char *s1 = sig_read(out, 1);
	expect_ok(ta, DOC, s1, 1);
	expect_fail(tab, DOC, s1, -EKEYREJECTED, "1 of 2", &e);

	sign_ok(out, keyb); /* adds B's entry */
	_cleanup_free_ char *s2 = sig_read(out, 2);
	expect_ok(tab, DOC, s2, 2);

	sign_ok(out, keya); /* replaces A's entry */
	_cleanup_free_ char *s3 = sig_read(out, 2);
	expect_ok(tab, DOC, s3, 2);

	write_str(out, "revision.sig", "garbage"); /* a file that does not parse is replaced */
	sign_ok(out, keyb);
	_cleanup_free_ char *s4 = sig_read(out, 1);
	expect_fail(ta, DOC, s4, -EKEYREJECTED, "is not trusted", &e);
}

TEST(test_pack_sign_errors)
{
	char out[128], key[256], p[256];
	struct err e = ERR_INIT;
	new_dir(out, sizeof(out), "signerr");
	path_of(key, sizeof(key), keya, "signing.key");
	assert_int_equal(pack_sign(out, key, &e), -ENOENT); /* no revision.json */
	assert_contains(e.msg, "revision.json");
	write_str(out, "revision.json", DOC);
	path_of(key, sizeof(key), keya, "signing.pub"); /* a public key cannot sign */
	assert_int_equal(pack_sign(out, key, &e), -EINVAL);
	assert_contains(e.msg, "not an unencrypted PEM private key");
	other_key(false, out, "p384.pub", "p384.key");
	path_of(key, sizeof(key), out, "p384.key");
	assert_int_equal(pack_sign(out, key, &e), -EKEYREJECTED);
	assert_contains(e.msg, "p384.key: EC key on curve secp384r1");
	path_of(p, sizeof(p), out, "revision.sig");
	assert_int_equal(access(p, F_OK), -1); /* nothing written */
}

TEST(test_keygen_refuses_overwrite)
{
	char p[256], dir[128];
	struct err e = ERR_INIT;
	struct stat st;
	size_t len = 0;
	path_of(p, sizeof(p), keya, "signing.key");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	_cleanup_free_ char *before = read_file(keya, "signing.key", &len);
	assert_int_equal(pack_keygen(keya, &e), -EEXIST);
	assert_contains(e.msg, "signing.key exists: refusing to overwrite");
	_cleanup_free_ char *after = read_file(keya, "signing.key", &len);
	assert_string_equal(before, after);

	/* a pub alone blocks too, and no half pair is left behind */
	new_dir(dir, sizeof(dir), "halfpair");
	copy_pub(keya, dir, "signing.pub");
	assert_int_equal(pack_keygen(dir, &e), -EEXIST);
	path_of(p, sizeof(p), dir, "signing.key");
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(pack_keygen("/nonexistent/cairn-keys", &e), -ENOENT);
}

/* ---------------- fixture ---------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path); /* best effort: keep walking */
	return 0;
}

/* dir = root/name, holding a fresh key pair */
static int key_pair(char *dir, size_t cap, const char *name)
{
	struct err e = ERR_INIT;
	if (str_fmt(dir, cap, "%s/%s", root, name) == 0 && mkdir(dir, 0700) == 0 &&
	    pack_keygen(dir, &e) == 0)
		return 0;
	fprintf(stderr, "key pair %s: %s\n", name, e.msg);
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (str_fmt(root, sizeof(root), "/tmp/cairn-sigtest-XXXXXX") < 0 || !mkdtemp(root))
		return -1;
	if (key_pair(keya, sizeof(keya), "keya") < 0 || key_pair(keyb, sizeof(keyb), "keyb") < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (root[0])
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_passes),
		cmocka_unit_test(test_openssl_signature_and_keyid),
		cmocka_unit_test(test_flipped_byte_fails),
		cmocka_unit_test(test_wrong_key_fails),
		cmocka_unit_test(test_truncated_file_fails),
		cmocka_unit_test(test_bad_base64_fails),
		cmocka_unit_test(test_noncanonical_base64_fails),
		cmocka_unit_test(test_bad_der_fails),
		cmocka_unit_test(test_unknown_alg_fails),
		cmocka_unit_test(test_threshold_two),
		cmocka_unit_test(test_same_key_twice_counts_once),
		cmocka_unit_test(test_malformed_files_fail),
		cmocka_unit_test(test_size_caps),
		cmocka_unit_test(test_trust_rejects_non_p256),
		cmocka_unit_test(test_trust_dir_rules),
		cmocka_unit_test(test_trust_too_many_keys),
		cmocka_unit_test(test_pack_sign_adds_and_replaces),
		cmocka_unit_test(test_pack_sign_errors),
		cmocka_unit_test(test_keygen_refuses_overwrite),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
