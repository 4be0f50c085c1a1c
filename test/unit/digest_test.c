/* test/unit/digest_test.c — sha256 and the "sha256:<hex>" text form.
 *
 * The suite runs twice: once with the block function the CPU selects (SHA-NI
 * on x86-64 machines that have it) and once, in a re-executed child, with
 * CAIRN_SHA256_PORTABLE=1. mbedtls serves as an independent oracle for the
 * lengths and chunkings the NIST vectors do not cover. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/sha256.h>

#include "lib/digest.h"

/* lib/digest.c's test hook (not in digest.h). */

static void hex_of(const struct digest *d, char out[DIGEST_HEX_LEN + 1])
{
	char s[DIGEST_STR_LEN + 1];
	digest_format(d, s);
	memcpy(out, s + 7, DIGEST_HEX_LEN + 1);
}

static void assert_sha(const void *data, size_t len, const char *hex)
{
	struct digest d;
	char got[DIGEST_HEX_LEN + 1];
	sha256_buf(data, len, &d);
	hex_of(&d, got);
	assert_string_equal(got, hex);
}

static void test_impl_selected(void **state)
{
	(void)state;
	const char *force = getenv("CAIRN_SHA256_PORTABLE");
	const char *impl = sha256_impl();
	if (force && strcmp(force, "1") == 0) {
		assert_string_equal(impl, "portable");
		return;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1")) {
		assert_string_equal(impl, "sha-ni");
		return;
	}
#endif
	assert_string_equal(impl, "portable");
}

static void test_nist_vectors(void **state)
{
	(void)state;
	assert_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	assert_sha(m448, strlen(m448),
		   "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			   "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	assert_sha(m896, strlen(m896),
		   "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
	(void)state;
	char chunk[1000];
	memset(chunk, 'a', sizeof(chunk));
	struct sha256 c;
	struct digest d;
	char got[DIGEST_HEX_LEN + 1];
	sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sha256_update(&c, chunk, sizeof(chunk));
	assert_int_equal(c.total, 1000000);
	sha256_final(&c, &d);
	hex_of(&d, got);
	assert_string_equal(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void oracle(const uint8_t *p, size_t len, struct digest *out)
{
	assert_int_equal(mbedtls_sha256_ret(p, len, out->b, 0), 0);
}

/* Every length around the padding boundaries (55/56/64 bytes and beyond). */
static void test_lengths_match_oracle(void **state)
{
	(void)state;
	uint8_t buf[1100];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd();
	for (size_t len = 0; len <= sizeof(buf); len++) {
		struct digest a, b;
		sha256_buf(buf, len, &a);
		oracle(buf, len, &b);
		if (!digest_eq(&a, &b))
			fail_msg("length %zu differs from mbedtls", len);
	}
}

static void test_random_chunkings(void **state)
{
	(void)state;
	size_t len = 300000;
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rnd();
	struct digest want;
	oracle(buf, len, &want);
	for (int round = 0; round < 50; round++) {
		struct sha256 c;
		struct digest got;
		sha256_init(&c);
		for (size_t off = 0; off < len;) {
			/* mostly small pieces, sometimes empty, sometimes many blocks */
			size_t n = rnd() % 8 == 0 ? rnd() % 20000 : rnd() % 130;
			if (n > len - off)
				n = len - off;
			sha256_update(&c, buf + off, n);
			off += n;
		}
		sha256_final(&c, &got);
		if (!digest_eq(&got, &want))
			fail_msg("chunking round %d gives another digest", round);
	}
	free(buf);
}

/* Unaligned input pointers go through the same path as aligned ones. */
static void test_unaligned_input(void **state)
{
	(void)state;
	uint8_t buf[4096 + 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd();
	struct digest want, got;
	for (size_t off = 0; off < 16; off++) {
		oracle(buf + off, 4096, &want);
		sha256_buf(buf + off, 4096, &got);
		assert_true(digest_eq(&got, &want));
	}
}

static void test_final_resets(void **state)
{
	(void)state;
	struct sha256 c;
	struct digest a, b;
	sha256_init(&c);
	sha256_update(&c, "abc", 3);
	sha256_final(&c, &a);
	sha256_update(&c, "abc", 3); /* the context starts over after final */
	sha256_final(&c, &b);
	assert_true(digest_eq(&a, &b));
}

#define HEX64 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_parse_valid(void **state)
{
	(void)state;
	struct digest d, abc;
	char s[DIGEST_STR_LEN + 1];
	sha256_buf("abc", 3, &abc);
	assert_int_equal(digest_parse("sha256:" HEX64, DIGEST_STR_LEN, &d), 0);
	assert_true(digest_eq(&d, &abc));
	digest_format(&d, s);
	assert_string_equal(s, "sha256:" HEX64);
	assert_int_equal(digest_parse_hex(HEX64, DIGEST_HEX_LEN, &d), 0);
	assert_true(digest_eq(&d, &abc));
	/* the explicit length decides: bytes after it are not looked at */
	assert_int_equal(digest_parse("sha256:" HEX64 "zz", DIGEST_STR_LEN, &d), 0);
	assert_true(digest_eq(&d, &abc));
}

static void assert_parse_fails(const char *s, size_t len)
{
	struct digest d, before;
	memset(&d, 0x5a, sizeof(d));
	before = d;
	assert_int_equal(digest_parse(s, len, &d), -EINVAL);
	assert_true(digest_eq(&d, &before)); /* untouched on error */
}

static void test_parse_rejects(void **state)
{
	(void)state;
	const char *upper = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
	assert_parse_fails(upper, strlen(upper));
	const char *one_upper = "sha256:Ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	assert_parse_fails(one_upper, strlen(one_upper));
	assert_parse_fails("sha256:" HEX64, DIGEST_STR_LEN - 1);       /* 63 hex */
	assert_parse_fails("sha256:" HEX64 "0", DIGEST_STR_LEN + 1);   /* 65 hex */
	assert_parse_fails("SHA256:" HEX64, DIGEST_STR_LEN);
	assert_parse_fails("sha512:" HEX64, DIGEST_STR_LEN);
	assert_parse_fails("sha256-" HEX64, DIGEST_STR_LEN);
	assert_parse_fails(" sha256:" HEX64, DIGEST_STR_LEN + 1);
	assert_parse_fails(HEX64 "1234567", DIGEST_STR_LEN);          /* no prefix at all */
	assert_parse_fails("sha256:" HEX64, 0);
	assert_parse_fails(NULL, DIGEST_STR_LEN);
	char nul[DIGEST_STR_LEN + 1];
	memcpy(nul, "sha256:" HEX64, sizeof(nul));
	nul[40] = '\0'; /* embedded NUL, length still 71 */
	assert_parse_fails(nul, DIGEST_STR_LEN);
	memcpy(nul, "sha256:" HEX64, sizeof(nul));
	nul[20] = 'g';
	assert_parse_fails(nul, DIGEST_STR_LEN);
}

static void test_parse_hex_rejects(void **state)
{
	(void)state;
	struct digest d;
	assert_int_equal(digest_parse_hex(HEX64, DIGEST_HEX_LEN - 1, &d), -EINVAL);
	assert_int_equal(digest_parse_hex(HEX64 "a", DIGEST_HEX_LEN + 1, &d), -EINVAL);
	assert_int_equal(digest_parse_hex("sha256:" HEX64, DIGEST_STR_LEN, &d), -EINVAL);
	char h[DIGEST_HEX_LEN + 1];
	memcpy(h, HEX64, sizeof(h));
	h[63] = 'F';
	assert_int_equal(digest_parse_hex(h, DIGEST_HEX_LEN, &d), -EINVAL);
	h[63] = '\0';
	assert_int_equal(digest_parse_hex(h, DIGEST_HEX_LEN, &d), -EINVAL);
	assert_int_equal(digest_parse_hex(NULL, DIGEST_HEX_LEN, &d), -EINVAL);
}

static void test_format_and_eq(void **state)
{
	(void)state;
	struct digest a, b;
	char s[DIGEST_STR_LEN + 1];
	memset(&a, 0, sizeof(a));
	a.b[0] = 0x0f;
	a.b[31] = 0xf0;
	digest_format(&a, s);
	assert_int_equal(strlen(s), DIGEST_STR_LEN);
	assert_string_equal(s, "sha256:0f000000000000000000000000000000"
			       "000000000000000000000000000000f0");
	assert_int_equal(digest_parse(s, strlen(s), &b), 0);
	assert_true(digest_eq(&a, &b));
	b.b[31] ^= 1;
	assert_false(digest_eq(&a, &b));
}

/* Run the whole suite again in a child forced onto the portable path. */
static int run_portable(char **argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		setenv("CAIRN_SHA256_PORTABLE", "1", 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 1;
	return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	(void)argc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_impl_selected),
		cmocka_unit_test(test_nist_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_lengths_match_oracle),
		cmocka_unit_test(test_random_chunkings),
		cmocka_unit_test(test_unaligned_input),
		cmocka_unit_test(test_final_resets),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_hex_rejects),
		cmocka_unit_test(test_format_and_eq),
	};
	const char *force = getenv("CAIRN_SHA256_PORTABLE");
	bool portable = force && strcmp(force, "1") == 0;
	int failed = cmocka_run_group_tests_name(portable ? "digest (portable)" : "digest", tests,
						 NULL, NULL);
	if (!portable)
		failed += run_portable(argv);
	return failed ? 1 : 0;
}
