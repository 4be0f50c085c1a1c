/* test/unit/json_reader_test.c — lib/json.h's strict reader: grammar (a
 * table of invalid texts, error positions, depth, valid texts), UTF-8 and
 * escapes, the token cap, navigation and the typed getters. The writer:
 * json_test.c. Shared helpers: json_helpers.h. */
#include "json_helpers.h"

/* ---------------- reader: grammar ---------------- */

struct text {
	const char *s;
	size_t n;
};
#define T(lit) {lit, sizeof(lit) - 1}

static const struct text invalid[] = {
	/* commas, colons, keys */
	T("{\"a\":1,}"), T("[1,2,]"), T("[1 2]"), T("{\"a\":1 \"b\":2}"), T("{\"a\" 1}"),
	T("{\"a\"}"), T("{\"a\":}"), T("{,}"), T("[,1]"), T("[1,,2]"), T("{\"a\":1,,\"b\":2}"),
	T("{1:2}"), T("{null:1}"), T("{\"a\"::1}"), T("[\"a\":1]"),
	/* bare words and literals */
	T("hello"), T("{\"a\":hello}"), T("tru"), T("[tru]"), T("truex"), T("nul"), T("True"),
	T("NaN"), T("[Infinity]"), T("[-Infinity]"),
	/* numbers */
	T("01"), T("[01]"), T("-01"), T("1."), T(".5"), T("-"), T("[-]"), T("1e"), T("1e+"),
	T("1.e5"), T("+1"), T("0x10"),
	/* strings: unterminated, raw control characters, bad escapes */
	T("\"abc"), T("[\"abc]"), T("\"a\nb\""), T("\"a\x01" "b\""), T("\"a\x1f\""),
	T("\"a\tb\""), T("\"\\x\""), T("\"\\'\""), T("\"\\u12\""), T("\"\\u12g4\""), T("\"\\\""),
	/* lone or misordered surrogates, NUL */
	T("\"\\ud800\""), T("\"\\udc00\""), T("\"\\udfff\\ud800\""), T("\"\\ud800\\u0041\""),
	T("\"\\ud800x\""), T("\"\\ud800\\ud800\""), T("\"\\u0000\""),
	/* invalid UTF-8: overlong, surrogates, above U+10FFFF, stray, truncated */
	T("\"\xc0\x80\""), T("\"\xc1\xbf\""), T("\"\xe0\x80\x80\""), T("\"\xe0\x9f\xbf\""),
	T("\"\xf0\x80\x80\x80\""), T("\"\xf0\x8f\xbf\xbf\""), T("\"\xed\xa0\x80\""),
	T("\"\xed\xbf\xbf\""), T("\"\xf4\x90\x80\x80\""), T("\"\xf5\x80\x80\x80\""), T("\"\xff\""),
	T("\"\x80\""), T("\"\xe2\x82\""), T("\"\xf0\x9f\x98\""), T("\"\xc3"), T("\"\xe2\x82x\""),
	/* more than one value, trailing bytes, nothing at all */
	T("1 2"), T("{} {}"), T("\"a\" \"b\""), T("{}x"), T("[1],"), T("\"a\"\0"), T(""),
	T(" \t\r\n "), T("\f[1]"), T("\xef\xbb\xbf{}"),
	/* single quotes, comments */
	T("{'a':1}"), T("['a']"), T("[1]//c"), T("/*c*/[1]"), T("[1 /*c*/]"), T("# c\n[1]"),
	/* unbalanced */
	T("{\"a\":1}}"), T("[1]]"), T("[1}"), T("{\"a\":1]"), T("{\"a\":1"), T("["), T("{"), T("]"),
};

static void test_jp_invalid(void **state)
{
	(void)state;
	assert_true(ARRAY_SIZE(invalid) >= 40);
	jsmntok_t toks[64];
	for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
		struct jp p;
		struct err e = ERR_INIT;
		int rc = jp_parse(&p, invalid[i].s, invalid[i].n, toks, 64, &e);
		if (rc != -EINVAL || e.code != EINVAL ||
		    strncmp(e.msg, "invalid JSON at byte ", 21) != 0)
			fail_msg("invalid[%zu] \"%.*s\": rc %d, %s", i, (int)invalid[i].n,
				 invalid[i].s, rc, e.msg);
		size_t at = 0;
		const char *why = NULL;
		assert_int_equal(json_validate(invalid[i].s, invalid[i].n, &at, &why), -EINVAL);
		assert_non_null(why);
		assert_true(at <= invalid[i].n);
	}
}

/* The reported byte offset and reason point at the problem. */
static void test_jp_error_position(void **state)
{
	(void)state;
	static const struct {
		struct text t;
		const char *msg;
	} cases[] = {
		{T("{\"a\":1,}"), "invalid JSON at byte 7: expected a key"},
		{T("[1 2]"), "invalid JSON at byte 3: expected ',' or ']'"},
		{T("{\"a\" 1}"), "invalid JSON at byte 5: expected ':'"},
		{T("[1] x"), "invalid JSON at byte 4: trailing bytes after the document"},
		{T("\"ab\x01\""), "invalid JSON at byte 3: control character in string"},
		{T("\"\\u0000\""), "invalid JSON at byte 1: NUL (\\u0000) in string"},
		{T("\"a\xc0\x80\""), "invalid JSON at byte 2: invalid UTF-8 in string"},
		{T(""), "invalid JSON at byte 0: unexpected end of input"},
	};
	jsmntok_t toks[16];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct jp p;
		struct err e = ERR_INIT;
		assert_int_equal(jp_parse(&p, cases[i].t.s, cases[i].t.n, toks, 16, &e), -EINVAL);
		assert_string_equal(e.msg, cases[i].msg);
	}
}

static void test_jp_depth(void **state)
{
	(void)state;
	jsmntok_t toks[80];
	struct jp p;
	struct err e = ERR_INIT;
	char *ok = nested(JP_MAX_DEPTH);
	parse_ok(&p, ok, strlen(ok), toks, 80);
	assert_int_equal(p.ntok, JP_MAX_DEPTH);
	free(ok);

	char *deep = nested(JP_MAX_DEPTH + 1);
	assert_int_equal(jp_parse(&p, deep, strlen(deep), toks, 80, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "nesting too deep"));
	free(deep);

	/* objects count the same as arrays */
	char obj[JP_MAX_DEPTH * 8 + 8];
	size_t n = 0;
	for (int i = 0; i <= JP_MAX_DEPTH; i++)
		n += (size_t)snprintf(obj + n, sizeof(obj) - n, "{\"a\":");
	obj[n++] = '1';
	for (int i = 0; i <= JP_MAX_DEPTH; i++)
		obj[n++] = '}';
	assert_int_equal(jp_parse(&p, obj, n, toks, 80, &e), -EINVAL);
	/* one level less is fine */
	parse_ok(&p, obj + 5, n - 6, toks, 80);
}

static void test_jp_valid(void **state)
{
	(void)state;
	static const struct {
		struct text t;
		int ntok;
		jsmntype_t type;
	} cases[] = {
		{T("-0"), 1, JSMN_PRIMITIVE},
		{T("1e+10"), 1, JSMN_PRIMITIVE},
		{T("0.5E-3"), 1, JSMN_PRIMITIVE},
		{T("[-0, 1e+10, 0.5E-3, 1E5, 12.25e-1, 0, -1.5]"), 8, JSMN_ARRAY},
		{T("true"), 1, JSMN_PRIMITIVE},
		{T("null"), 1, JSMN_PRIMITIVE},
		{T(" \t\r\nfalse \t\r\n"), 1, JSMN_PRIMITIVE},
		{T("\"s\""), 1, JSMN_STRING},
		{T(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\":{}} \r\n\t "), 7, JSMN_OBJECT},
		{T("{}"), 1, JSMN_OBJECT},
		{T("[]"), 1, JSMN_ARRAY},
		{T("[[],{},\"\",0]"), 5, JSMN_ARRAY},
		{T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uFFFF\""), 1, JSMN_STRING},
		{T("\"\x7f\""), 1, JSMN_STRING}, /* DEL is not a control char in JSON */
		{T("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\""), 1,
		 JSMN_STRING}, /* U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF */
		{T("\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""), 1, JSMN_STRING}, /* U+10000, U+10FFFF */
		{T("{\"a\":{\"b\":[true,false,null]}}"), 8, JSMN_OBJECT},
	};
	jsmntok_t toks[16];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct jp p;
		parse_ok(&p, cases[i].t.s, cases[i].t.n, toks, 16);
		if (p.ntok != cases[i].ntok || p.tok[0].type != cases[i].type)
			fail_msg("valid[%zu] %s: %d tokens, type %d", i, cases[i].t.s, p.ntok,
				 p.tok[0].type);
	}
	/* a lone top-level primitive covers exactly its bytes */
	struct jp p;
	parse_ok(&p, "  -12.5e3\n", 10, toks, 16);
	assert_int_equal(p.tok[0].start, 2);
	assert_int_equal(p.tok[0].end, 9);
	long long v = 0;
	parse_ok(&p, "42", 2, toks, 1);
	assert_int_equal(jp_int(&p, 0, 0, 100, &v), 0);
	assert_int_equal(v, 42);
}

static void test_jp_strings(void **state)
{
	(void)state;
	static const struct {
		struct text in;
		struct text out;
	} cases[] = {
		{T("\"\\ud83d\\ude00\""), T("\xf0\x9f\x98\x80")},
		{T("\"\\uD83D\\uDE00\""), T("\xf0\x9f\x98\x80")},
		{T("\"\\udbff\\udfff\""), T("\xf4\x8f\xbf\xbf")},
		{T("\"\\u00e9\\u20ac\\u0001\\u007f\""), T("\xc3\xa9\xe2\x82\xac\x01\x7f")},
		{T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), T("\"\\/\b\f\n\r\t")},
		{T("\"plain \xc3\xa9\""), T("plain \xc3\xa9")},
		{T("\"\""), T("")},
	};
	jsmntok_t toks[4];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct jp p;
		char out[32];
		size_t n = 99;
		parse_ok(&p, cases[i].in.s, cases[i].in.n, toks, 4);
		assert_int_equal(jp_str(&p, 0, out, sizeof(out), &n), 0);
		assert_int_equal(n, cases[i].out.n);
		assert_memory_equal(out, cases[i].out.s, n);
		assert_int_equal(out[n], '\0');
	}
}

static void test_jp_token_cap(void **state)
{
	(void)state;
	static const char js[] = "[1,[2,3],{\"a\":4}]"; /* 8 tokens */
	jsmntok_t toks[16];
	struct jp p;
	struct err e = ERR_INIT;
	assert_int_equal(jp_parse(&p, js, sizeof(js) - 1, toks, 7, &e), -E2BIG);
	assert_int_equal(e.code, E2BIG);
	assert_non_null(strstr(e.msg, "more than 7 tokens"));
	parse_ok(&p, js, sizeof(js) - 1, toks, 8);
	assert_int_equal(p.ntok, 8);

	/* the cap also holds for a lone primitive, and no room is an error */
	err_clear(&e);
	assert_true(jp_parse(&p, "1", 1, toks, 0, &e) < 0);
	assert_true(e.code != 0);
	/* grammar comes first: an invalid text is EINVAL even when it is big */
	assert_int_equal(jp_parse(&p, "[1,2,3,]", 8, toks, 2, &e), -EINVAL);
}

/* ---------------- reader: navigation and getters ---------------- */

static const char nav_doc[] = "{\"a\":{\"x\":[1,{\"y\":2}],\"z\":3},"
			      "\"b\":[[],[4,5],{}],"
			      "\"c\":\"v\","
			      "\"d\\u0041\":6,"
			      "\"ab\":7}";

static void test_jp_navigation(void **state)
{
	(void)state;
	jsmntok_t toks[32];
	struct jp p;
	long long v = 0;
	parse_ok(&p, nav_doc, sizeof(nav_doc) - 1, toks, 32);
	assert_int_equal(jp_next(&p, 0), p.ntok);

	int a = jp_get(&p, 0, "a");
	assert_true(jp_is(&p, a, JSMN_OBJECT));
	int z = jp_get(&p, a, "z");
	assert_int_equal(jp_int(&p, z, 0, 10, &v), 0);
	assert_int_equal(v, 3);
	/* the nested y is not a member of the top level */
	assert_int_equal(jp_get(&p, 0, "y"), -1);
	assert_int_equal(jp_get(&p, 0, "z"), -1);
	int x = jp_get(&p, a, "x");
	int y = jp_get(&p, x + 2, "y");
	assert_int_equal(jp_int(&p, y, 0, 10, &v), 0);
	assert_int_equal(v, 2);

	/* jp_next skips a whole subtree: after a's value comes the key "b" */
	assert_true(jp_streq(&p, jp_next(&p, a), "b"));
	int b = jp_get(&p, 0, "b");
	int count = 0, sizes[3];
	for (int i = b + 1; i < jp_next(&p, b); i = jp_next(&p, i))
		sizes[count++] = p.tok[i].size;
	assert_int_equal(count, 3);
	assert_int_equal(sizes[0], 0);
	assert_int_equal(sizes[1], 2);
	assert_int_equal(sizes[2], 0);

	int c = jp_get(&p, 0, "c");
	assert_true(jp_streq(&p, c, "v"));
	assert_false(jp_streq(&p, c, "vv"));
	assert_false(jp_streq(&p, c, ""));
	assert_false(jp_streq(&p, b, "v")); /* not a string */
	assert_false(jp_streq(&p, -1, "v"));
	assert_false(jp_streq(&p, p.ntok, "v"));

	/* "ab" is found whole, never as a prefix or by its prefix */
	assert_int_equal(jp_int(&p, jp_get(&p, 0, "ab"), 0, 10, &v), 0);
	assert_int_equal(v, 7);
	/* keys compare raw (documented): an escaped key matches as written */
	assert_int_equal(jp_get(&p, 0, "dA"), -1);
	assert_int_equal(jp_int(&p, jp_get(&p, 0, "d\\u0041"), 0, 10, &v), 0);
	assert_int_equal(v, 6);

	assert_int_equal(jp_get(&p, 0, "missing"), -1);
	assert_int_equal(jp_get(&p, b, "a"), -1); /* not an object */
	assert_int_equal(jp_get(&p, -1, "a"), -1);
	assert_int_equal(jp_get(&p, p.ntok, "a"), -1);
}

static void test_jp_int(void **state)
{
	(void)state;
	static const char js[] = "[0,-0,9223372036854775807,-9223372036854775808,"
				 "9223372036854775808,-9223372036854775809,"
				 "99999999999999999999999,1.0,1e3,true,\"5\",null,5,-1]";
	enum { ZERO = 1, MZERO, MAX, MIN, MAXP1, MINM1, HUGE_, FRAC, EXP, TRUE_, STR, NUL, FIVE,
	       M1 };
	jsmntok_t toks[32];
	struct jp p;
	long long v = 123;
	parse_ok(&p, js, sizeof(js) - 1, toks, 32);
	assert_int_equal(jp_int(&p, ZERO, LLONG_MIN, LLONG_MAX, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(jp_int(&p, MZERO, 0, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(jp_int(&p, MAX, LLONG_MIN, LLONG_MAX, &v), 0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(jp_int(&p, MIN, LLONG_MIN, LLONG_MAX, &v), 0);
	assert_true(v == LLONG_MIN);
	assert_int_equal(jp_int(&p, MAXP1, LLONG_MIN, LLONG_MAX, &v), -ERANGE);
	assert_int_equal(jp_int(&p, MINM1, LLONG_MIN, LLONG_MAX, &v), -ERANGE);
	assert_int_equal(jp_int(&p, HUGE_, LLONG_MIN, LLONG_MAX, &v), -ERANGE);
	assert_int_equal(jp_int(&p, FRAC, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	assert_int_equal(jp_int(&p, EXP, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	assert_int_equal(jp_int(&p, TRUE_, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	assert_int_equal(jp_int(&p, STR, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	assert_int_equal(jp_int(&p, NUL, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	assert_int_equal(jp_int(&p, 0, LLONG_MIN, LLONG_MAX, &v), -EINVAL); /* the array */
	assert_int_equal(jp_int(&p, p.ntok, LLONG_MIN, LLONG_MAX, &v), -EINVAL);
	/* bounds are inclusive */
	assert_int_equal(jp_int(&p, FIVE, 5, 5, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(jp_int(&p, FIVE, 0, 4, &v), -ERANGE);
	assert_int_equal(jp_int(&p, FIVE, 6, 10, &v), -ERANGE);
	assert_int_equal(jp_int(&p, M1, 0, 10, &v), -ERANGE);
	assert_int_equal(jp_int(&p, M1, -1, -1, &v), 0);
	assert_int_equal(v, -1);
}

static void test_jp_bool(void **state)
{
	(void)state;
	static const char js[] = "[true,false,\"true\",1,null,0]";
	jsmntok_t toks[8];
	struct jp p;
	bool b = false;
	parse_ok(&p, js, sizeof(js) - 1, toks, 8);
	assert_int_equal(jp_bool(&p, 1, &b), 0);
	assert_true(b);
	assert_int_equal(jp_bool(&p, 2, &b), 0);
	assert_false(b);
	for (int i = 3; i <= 6; i++)
		assert_int_equal(jp_bool(&p, i, &b), -EINVAL);
	assert_int_equal(jp_bool(&p, 0, &b), -EINVAL);
	assert_int_equal(jp_bool(&p, -1, &b), -EINVAL);
	assert_int_equal(jp_bool(&p, 7, &b), -EINVAL);
}

static void test_jp_str_space(void **state)
{
	(void)state;
	static const char js[] = "[\"abc\",\"\\u00e9\",\"\\ud83d\\ude00\",1]";
	jsmntok_t toks[8];
	struct jp p;
	char out[8];
	size_t n = 0;
	parse_ok(&p, js, sizeof(js) - 1, toks, 8);
	/* cap counts the NUL */
	assert_int_equal(jp_str(&p, 1, out, 4, &n), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(n, 3);
	assert_int_equal(jp_str(&p, 1, out, 3, &n), -ENAMETOOLONG);
	assert_int_equal(jp_str(&p, 1, out, 1, &n), -ENAMETOOLONG);
	/* the limit is on decoded bytes: é is 2, U+1F600 is 4 */
	assert_int_equal(jp_str(&p, 2, out, 3, NULL), 0);
	assert_string_equal(out, "\xc3\xa9");
	assert_int_equal(jp_str(&p, 2, out, 2, NULL), -ENAMETOOLONG);
	assert_int_equal(jp_str(&p, 3, out, 5, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(jp_str(&p, 3, out, 4, &n), -ENAMETOOLONG);
	/* not a string, no room at all */
	assert_int_equal(jp_str(&p, 4, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(jp_str(&p, 0, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(jp_str(&p, 1, out, 0, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jp_invalid),
		cmocka_unit_test(test_jp_error_position),
		cmocka_unit_test(test_jp_depth),
		cmocka_unit_test(test_jp_valid),
		cmocka_unit_test(test_jp_strings),
		cmocka_unit_test(test_jp_token_cap),
		cmocka_unit_test(test_jp_navigation),
		cmocka_unit_test(test_jp_int),
		cmocka_unit_test(test_jp_bool),
		cmocka_unit_test(test_jp_str_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
