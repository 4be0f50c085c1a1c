/* test/unit/json_test.c — lib/json.h's writer: escaping, nesting, pretty
 * form, fixed-buffer overflow, misuse, numbers, and written strings read
 * back byte for byte. The strict reader: json_reader_test.c. Shared helpers:
 * json_helpers.h.
 *
 * Random inputs come from a fixed-seed xorshift generator, so a failure
 * replays identically; the seed and iteration are printed when one fails. */
#include "json_helpers.h"

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* Finish a dynamic writer and hand out its text (caller frees). */
static char *finish_dyn(struct jw *w)
{
	struct err e = ERR_INIT;
	int rc = jw_finish(w, &e);
	if (rc < 0)
		fail_msg("jw_finish: %d %s", rc, e.msg);
	char *s = strdup(w->buf);
	assert_non_null(s);
	jw_free(w);
	return s;
}

static void assert_written(struct jw *w, const char *want)
{
	char *got = finish_dyn(w);
	if (strcmp(got, want) != 0) {
		print_error("got:  %s\nwant: %s\n", got, want);
		free(got);
		fail();
	}
	free(got);
}

/* jw_finish must fail with `code`; the writer is freed. */
static void assert_finish_fails(struct jw *w, int code)
{
	struct err e = ERR_INIT;
	int rc = jw_finish(w, &e);
	jw_free(w);
	assert_int_equal(rc, -code);
	assert_int_equal(e.code, code);
	assert_true(e.msg[0] != '\0');
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

/* ---------------- writer ---------------- */

static void test_jw_escapes(void **state)
{
	(void)state;
	static const char in[] = "q\"b\\s/n\nt\tb\bf\fr\r"
				 "\x01\x1f\x7f"
				 " ";
	struct jw w;
	jw_init_dyn(&w, false);
	jw_strn(&w, in, sizeof(in) - 1);
	assert_written(&w, "\"q\\\"b\\\\s/n\\nt\\tb\\bf\\fr\\r\\u0001\\u001f\\u007f \"");

	/* every control byte: short form for five, \u00XX for the rest */
	for (unsigned c = 1; c < 0x20; c++) {
		char one[2] = {(char)c, 0}, want[16];
		const char *shortf = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
				   : c == '\f' ? "\\f" : c == '\r' ? "\\r" : NULL;
		if (shortf)
			snprintf(want, sizeof(want), "\"%s\"", shortf);
		else
			snprintf(want, sizeof(want), "\"\\u%04x\"", c);
		jw_init_dyn(&w, false);
		jw_str(&w, one);
		assert_written(&w, want);
	}

	/* UTF-8 passes through untouched: é, €, U+1F600, U+10FFFF */
	jw_init_dyn(&w, false);
	jw_str(&w, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
	assert_written(&w, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");

	/* a NUL inside jw_strn's explicit length is escaped, not a terminator */
	jw_init_dyn(&w, false);
	jw_strn(&w, "a\0b", 3);
	assert_written(&w, "\"a\\u0000b\"");

	/* keys are escaped the same way */
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_kv_str(&w, "k\"\n", "v");
	jw_obj_close(&w);
	assert_written(&w, "{\"k\\\"\\n\":\"v\"}");
}

/* Invalid UTF-8 must not make invalid JSON: each bad byte becomes \ufffd. */
static void test_jw_invalid_utf8(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, false);
	jw_str(&w, "a\xff" "b\xc0\x80" "c\xed\xa0\x80" "d\xe2\x82");
	assert_written(&w, "\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\"");

	/* random bytes 1..255: the output always passes the strict grammar */
	for (int it = 0; it < 2000; it++) {
		char s[48];
		size_t n = rng() % sizeof(s);
		for (size_t i = 0; i < n; i++)
			s[i] = (char)(1 + rng() % 255);
		jw_init_dyn(&w, false);
		jw_strn(&w, s, n);
		char *out = finish_dyn(&w);
		size_t at = 0;
		const char *why = NULL;
		if (json_validate(out, strlen(out), &at, &why) < 0)
			fail_msg("iteration %d: %s at %zu in %s", it, why, at, out);
		free(out);
	}
}

static void test_jw_nested(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_key(&w, "a");
	jw_arr_open(&w);
	jw_int(&w, 1);
	jw_int(&w, 2);
	jw_obj_open(&w);
	jw_key(&w, "b");
	jw_null(&w);
	jw_kv_bool(&w, "c", true);
	jw_obj_close(&w);
	jw_arr_open(&w);
	jw_arr_close(&w);
	jw_arr_close(&w);
	jw_key(&w, "d");
	jw_obj_open(&w);
	jw_obj_close(&w);
	jw_kv_int(&w, "e", -5);
	jw_kv_uint(&w, "f", 7);
	jw_kv_str(&w, "g", "x");
	jw_key(&w, "h");
	jw_arr_open(&w);
	jw_arr_open(&w);
	jw_bool(&w, false);
	jw_arr_close(&w);
	jw_str(&w, "");
	jw_arr_close(&w);
	jw_obj_close(&w);
	assert_written(&w, "{\"a\":[1,2,{\"b\":null,\"c\":true},[]],\"d\":{},\"e\":-5,\"f\":7,"
			   "\"g\":\"x\",\"h\":[[false],\"\"]}");
}

static void test_jw_empty(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_obj_close(&w);
	assert_written(&w, "{}");
	jw_init_dyn(&w, true);
	jw_arr_open(&w);
	jw_arr_close(&w);
	assert_written(&w, "[]");
	/* nothing written: still a terminated, empty text */
	jw_init_dyn(&w, false);
	assert_written(&w, "");
	char buf[4] = "xyz";
	jw_init_fixed(&w, buf, sizeof(buf));
	struct err e = ERR_INIT;
	assert_int_equal(jw_finish(&w, &e), 0);
	assert_int_equal(w.len, 0);
	assert_string_equal(buf, "");
}

static void test_jw_pretty(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, true);
	jw_obj_open(&w);
	jw_kv_int(&w, "a", 1);
	jw_key(&w, "b");
	jw_arr_open(&w);
	jw_bool(&w, true);
	jw_null(&w);
	jw_arr_close(&w);
	jw_key(&w, "c");
	jw_obj_open(&w);
	jw_obj_close(&w);
	jw_key(&w, "d");
	jw_arr_open(&w);
	jw_arr_close(&w);
	jw_key(&w, "e");
	jw_obj_open(&w);
	jw_kv_str(&w, "f", "g");
	jw_obj_close(&w);
	jw_obj_close(&w);
	assert_written(&w, "{\n"
			   "  \"a\": 1,\n"
			   "  \"b\": [\n"
			   "    true,\n"
			   "    null\n"
			   "  ],\n"
			   "  \"c\": {},\n"
			   "  \"d\": [],\n"
			   "  \"e\": {\n"
			   "    \"f\": \"g\"\n"
			   "  }\n"
			   "}");
}

static void write_small_doc(struct jw *w)
{
	jw_obj_open(w);
	jw_kv_str(w, "name", "w\"eb");
	jw_key(w, "list");
	jw_arr_open(w);
	jw_int(w, -12);
	jw_uint(w, 34);
	jw_arr_close(w);
	jw_kv_bool(w, "ok", false);
	jw_obj_close(w);
}

/* Every capacity too small fails with ENOBUFS and writes nothing past cap;
 * the first that fits gives the same text as a dynamic writer. */
static void test_jw_fixed_overflow(void **state)
{
	(void)state;
	static const char want[] = "{\"name\":\"w\\\"eb\",\"list\":[-12,34],\"ok\":false}";
	const size_t len = sizeof(want) - 1;
	char big[128];
	assert_true(len + 1 < sizeof(big));
	for (size_t cap = 0; cap <= len + 1; cap++) {
		struct jw w;
		struct err e = ERR_INIT;
		memset(big, 0xa5, sizeof(big));
		jw_init_fixed(&w, big, cap);
		write_small_doc(&w);
		int rc = jw_finish(&w, &e);
		for (size_t i = cap; i < sizeof(big); i++)
			if ((unsigned char)big[i] != 0xa5)
				fail_msg("cap %zu: byte %zu written past the buffer", cap, i);
		if (cap <= len) {
			assert_int_equal(rc, -ENOBUFS);
			assert_int_equal(e.code, ENOBUFS);
			assert_non_null(strstr(e.msg, "does not fit"));
			if (cap > 0)
				assert_true(strnlen(big, cap) < cap); /* still terminated */
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(w.len, len);
			assert_string_equal(big, want);
		}
	}
}

/* Drive a writer from a script: { } [ ] open/close, k a key, i an int. */
static void run_ops(struct jw *w, const char *ops)
{
	for (; *ops; ops++) {
		switch (*ops) {
		case '{': jw_obj_open(w); break;
		case '}': jw_obj_close(w); break;
		case '[': jw_arr_open(w); break;
		case ']': jw_arr_close(w); break;
		case 'k': jw_key(w, "k"); break;
		case 'i': jw_int(w, 1); break;
		}
	}
}

/* Misuse is EINVAL (not an overflow), for fixed and dynamic writers. */
static void test_jw_misuse(void **state)
{
	(void)state;
	static const char *const misuse[] = {
		"}",	  /* close with nothing open */
		"{k}",	  /* key without a value */
		"{k",	  /* key without a value, at the end */
		"[i",	  /* left open */
		"[]]",	  /* one close too many */
		"ki",	  /* key outside any object */
		"{}i",	  /* two top-level values */
		"{kki}",  /* key right after a key */
		"[{k]i}", /* close while a key waits */
		"[ki]",	  /* key inside an array */
		"{i}",	  /* value in an object without its key */
		"[}",	  /* array closed as an object */
		"{k{]}",  /* object closed as an array */
	};
	for (size_t i = 0; i < ARRAY_SIZE(misuse); i++) {
		struct jw w;
		char buf[256];
		jw_init_dyn(&w, i & 1);
		run_ops(&w, misuse[i]);
		assert_finish_fails(&w, EINVAL);
		jw_init_fixed(&w, buf, sizeof(buf));
		run_ops(&w, misuse[i]);
		assert_finish_fails(&w, EINVAL);
	}
	/* the same scripts, balanced, are fine */
	struct jw w;
	jw_init_dyn(&w, false);
	run_ops(&w, "{k[i{ki}[]]k{}}");
	assert_written(&w, "{\"k\":[1,{\"k\":1},[]],\"k\":{}}");
}

static void test_jw_depth(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, false);
	for (int i = 0; i < JW_MAX_DEPTH; i++)
		jw_arr_open(&w);
	for (int i = 0; i < JW_MAX_DEPTH; i++)
		jw_arr_close(&w);
	char *want = nested(JW_MAX_DEPTH);
	char *got = finish_dyn(&w);
	assert_string_equal(got, want);
	free(got);
	free(want);

	jw_init_dyn(&w, false);
	for (int i = 0; i <= JW_MAX_DEPTH; i++)
		jw_arr_open(&w);
	for (int i = 0; i <= JW_MAX_DEPTH; i++)
		jw_arr_close(&w);
	struct err e = ERR_INIT;
	assert_int_equal(jw_finish(&w, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "32"));
	jw_free(&w);
}

static void test_jw_numbers(void **state)
{
	(void)state;
	struct jw w;
	jw_init_dyn(&w, false);
	jw_arr_open(&w);
	jw_int(&w, LLONG_MIN);
	jw_int(&w, LLONG_MAX);
	jw_int(&w, 0);
	jw_int(&w, -1);
	jw_uint(&w, ULLONG_MAX);
	jw_uint(&w, 0);
	jw_arr_close(&w);
	assert_written(&w, "[-9223372036854775808,9223372036854775807,0,-1,"
			   "18446744073709551615,0]");
}

/* Written strings parse back to the same bytes. */
static void roundtrip(const char *s, size_t n, const char *what)
{
	struct jw w;
	struct jp p;
	jsmntok_t toks[4];
	jw_init_dyn(&w, false);
	jw_arr_open(&w);
	jw_strn(&w, s, n);
	jw_str(&w, "end");
	jw_arr_close(&w);
	char *js = finish_dyn(&w);
	parse_ok(&p, js, strlen(js), toks, 4);
	assert_int_equal(p.ntok, 3);
	char *back = malloc(n + 1);
	assert_non_null(back);
	size_t blen = 0;
	int rc = jp_str(&p, 1, back, n + 1, &blen);
	if (rc < 0 || blen != n || memcmp(back, s, n) != 0)
		fail_msg("%s: round trip differs (rc %d, %zu vs %zu bytes): %s", what, rc, blen, n,
			 js);
	assert_true(jp_streq(&p, 2, "end"));
	free(back);
	free(js);
}

/* Every byte that can occur in valid UTF-8, in valid sequences: 01..7f as
 * themselves, 80..bf as continuations, c2..f4 as leads. */
static void test_jw_roundtrip_all_bytes(void **state)
{
	(void)state;
	char s[2048];
	size_t n = 0;
	for (unsigned c = 1; c < 0x80; c++)
		s[n++] = (char)c;
	for (unsigned b = 0x80; b < 0xc0; b++) {
		s[n++] = (char)0xc2, s[n++] = (char)b;			       /* U+0080.. */
		s[n++] = (char)0xe0, s[n++] = (char)0xa0, s[n++] = (char)b;    /* U+0800.. */
		s[n++] = (char)0xf0, s[n++] = (char)0x90, s[n++] = (char)0x80; /* U+10000.. */
		s[n++] = (char)b;
	}
	for (unsigned lead = 0xc2; lead <= 0xf4; lead++) {
		s[n++] = (char)lead;
		if (lead == 0xe0)
			s[n++] = (char)0xa0; /* E0 needs A0..BF */
		else if (lead == 0xf0)
			s[n++] = (char)0x90; /* F0 needs 90..BF */
		else if (lead >= 0xe1)
			s[n++] = (char)0x80;
		if (lead >= 0xf0)
			s[n++] = (char)0x80;
		s[n++] = (char)0x80;
	}
	assert_true(n < sizeof(s));
	roundtrip(s, n, "all bytes");
}

static void test_jw_roundtrip_random(void **state)
{
	(void)state;
	for (int it = 0; it < 3000; it++) {
		char s[64 * 4];
		size_t n = 0;
		int cps = (int)(rng() % 64);
		for (int k = 0; k < cps; k++) {
			uint32_t r = rng() % 100, cp;
			if (r < 35)
				cp = 1 + rng() % 0x7f; /* controls, quotes, backslash, DEL */
			else if (r < 55)
				cp = 0x80 + rng() % (0x800 - 0x80);
			else if (r < 80)
				do
					cp = 0x800 + rng() % (0x10000 - 0x800);
				while (cp >= 0xd800 && cp <= 0xdfff);
			else
				cp = 0x10000 + rng() % (0x110000 - 0x10000);
			n += utf8_put(cp, s + n);
		}
		char what[32];
		snprintf(what, sizeof(what), "iteration %d", it);
		roundtrip(s, n, what);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jw_escapes),
		cmocka_unit_test(test_jw_invalid_utf8),
		cmocka_unit_test(test_jw_nested),
		cmocka_unit_test(test_jw_empty),
		cmocka_unit_test(test_jw_pretty),
		cmocka_unit_test(test_jw_fixed_overflow),
		cmocka_unit_test(test_jw_misuse),
		cmocka_unit_test(test_jw_depth),
		cmocka_unit_test(test_jw_numbers),
		cmocka_unit_test(test_jw_roundtrip_all_bytes),
		cmocka_unit_test(test_jw_roundtrip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
