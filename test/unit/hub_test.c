/* test/unit/hub_test.c — the fleet hub client's pure pieces: the poll and
 * fetch schedule (jitter bounds, backoff doubling, cap, reset), the helper
 * pipe's record parser against hostile streams (a table of truncated,
 * oversize, garbage and out-of-order records, then random bytes and every
 * split of a valid stream), and the desired pointer parser.
 *
 * The staging directory and the helper process itself are in
 * hub_stage_test.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "trails/hub_internal.h"

/* ---------------- scheduling ---------------- */

static void test_jitter_bounds(void **state)
{
	(void)state;
	assert_int_equal(hub_jitter_ms(1000, 0), 800);
	assert_int_equal(hub_jitter_ms(1000, 0x80000000u), 1000);
	assert_int_equal(hub_jitter_ms(1000, UINT32_MAX), 1199);
	assert_int_equal(hub_jitter_ms(300000, 0), 240000);
	/* uniform-ish: every draw inside [0.8, 1.2], both halves reached */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < 10000; i++) {
		uint64_t v = hub_jitter_ms(300000, hub_random());
		assert_true(v >= 240000 && v <= 360000);
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	assert_true(lo < 260000 && hi > 340000);
	/* no overflow with the largest base */
	assert_int_equal(hub_jitter_ms(UINT64_MAX / 2, 0x80000000u), UINT64_MAX / 2);
}

static void test_poll_backoff(void **state)
{
	(void)state;
	const uint32_t mid = 0x80000000u; /* jitter factor exactly 1 */
	assert_int_equal(hub_poll_delay_ms(300, 0, mid), 300000);
	uint64_t want = 300000;
	for (unsigned n = 1; n <= 3; n++) {
		want *= 2;
		assert_int_equal(hub_poll_delay_ms(300, n, mid), want);
	}
	assert_int_equal(hub_poll_delay_ms(300, 4, mid), 3600000); /* 4800 s capped at 1 h */
	assert_int_equal(hub_poll_delay_ms(300, 1000, mid), 3600000);
	assert_int_equal(hub_poll_delay_ms(300, 4, UINT32_MAX), 4319999); /* cap +20 % at most */
	/* a short interval: 5, 10, 20, ... each wait longer than the last by > 1.3 */
	uint64_t prev_hi = 0;
	for (unsigned n = 0; n < 9; n++) {
		uint64_t lo = hub_poll_delay_ms(5, n, 0), hi = hub_poll_delay_ms(5, n, UINT32_MAX);
		assert_int_equal(hub_poll_delay_ms(5, n, mid), 5000ull << n);
		if (n)
			assert_true(lo * 10 > prev_hi * 13);
		prev_hi = hi;
	}
	/* an interval longer than the cap is its own cap */
	assert_int_equal(hub_poll_delay_ms(7200, 3, mid), 7200000);
	/* reset: no failure is the plain interval again */
	assert_int_equal(hub_poll_delay_ms(5, 0, mid), 5000);
}

static void test_fetch_backoff(void **state)
{
	(void)state;
	const uint32_t mid = 0x80000000u;
	assert_int_equal(hub_fetch_delay_ms(300, 0, mid), 1000); /* progress: retry after 1 s */
	assert_int_equal(hub_fetch_delay_ms(300, 1, mid), 2000);
	assert_int_equal(hub_fetch_delay_ms(300, 5, mid), 32000);
	assert_int_equal(hub_fetch_delay_ms(300, 12, mid), 3600000);
	assert_int_equal(hub_fetch_delay_ms(300, 40, mid), 3600000);
	assert_int_equal(hub_fetch_delay_ms(86400, 40, mid), 86400000ull);
}

/* ---------------- records ---------------- */

static size_t rec(uint8_t *out, char type, const void *p, size_t n)
{
	size_t len = hub_rec_put(out, HUB_REC_MAX, type, p, n);
	assert_int_not_equal(len, 0);
	return len;
}

static size_t rec_http(uint8_t *out, uint32_t code)
{
	uint8_t p[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16), (uint8_t)(code >> 8),
			(uint8_t)code};
	return rec(out, HUB_REC_HTTP, p, 4);
}

static size_t rec_progress(uint8_t *out, uint64_t staged, uint64_t wire)
{
	uint8_t p[16];
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(staged >> (56 - 8 * i));
		p[8 + i] = (uint8_t)(wire >> (56 - 8 * i));
	}
	return rec(out, HUB_REC_PROGRESS, p, 16);
}

/* A whole good stream: P H E P D. */
static size_t good_stream(uint8_t *buf)
{
	size_t n = rec_progress(buf, 0, 10);
	n += rec_http(buf + n, 200);
	n += rec(buf + n, HUB_REC_ETAG, "\"5f3e-1a\"", 9);
	n += rec_progress(buf + n, 4096, 4400);
	n += rec(buf + n, HUB_REC_DONE, NULL, 0);
	return n;
}

static void test_rx_good(void **state)
{
	(void)state;
	uint8_t buf[1024];
	size_t n = good_stream(buf);
	struct hub_rx rx;
	struct err e = ERR_INIT;
	hub_rx_init(&rx);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), 0);
	assert_int_equal(hub_rx_eof(&rx, &e), 0);
	assert_true(rx.finished && rx.ok && rx.have_http && rx.have_etag);
	assert_int_equal(rx.http, 200);
	assert_string_equal(rx.etag, "\"5f3e-1a\"");
	assert_int_equal(rx.staged, 4096);
	assert_int_equal(rx.wire, 4400);
	/* the same stream one byte at a time, and cut at every offset */
	for (size_t cut = 0; cut <= n; cut++) {
		hub_rx_init(&rx);
		for (size_t i = 0; i < cut; i++)
			assert_int_equal(hub_rx_feed(&rx, buf + i, 1, &e), 0);
		if (cut < n)
			assert_int_equal(hub_rx_eof(&rx, &e), -EPROTO); /* truncated: never ok */
		else
			assert_int_equal(hub_rx_eof(&rx, &e), 0);
	}
	/* a failure record */
	uint8_t x[64] = {HUB_FAIL_NETWORK};
	memcpy(x + 1, "Connection reset", 16);
	hub_rx_init(&rx);
	n = rec_http(buf, 206);
	n += rec(buf + n, HUB_REC_FAIL, x, 17);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), 0);
	assert_int_equal(hub_rx_eof(&rx, &e), 0);
	assert_true(rx.finished && !rx.ok);
	assert_int_equal(rx.fail, HUB_FAIL_NETWORK);
	assert_string_equal(rx.text, "Connection reset");
	/* a restart from 0 (a 200 after a Range) may move staged back */
	hub_rx_init(&rx);
	n = rec_progress(buf, 5000, 5000);
	n += rec_progress(buf + n, 100, 5100);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), 0);
	assert_int_equal(rx.staged, 100);
}

/* Raw records: type, 2-byte length as given, payload. */
static size_t raw(uint8_t *out, uint8_t type, unsigned len, const void *p, size_t n)
{
	out[0] = type;
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)len;
	if (n)
		memcpy(out + 3, p, n);
	return 3 + n;
}

static void test_rx_hostile(void **state)
{
	(void)state;
	static const uint8_t zero[600];
	static const struct {
		const char *name;
		uint8_t type;
		unsigned len; /* announced */
		const char *payload;
		size_t n; /* sent */
		bool prefix_http; /* an H 200 first */
		const char *msg;
	} cases[] = {
		{"unknown type", 'Z', 0, "", 0, false, "unknown record type 0x5a"},
		{"NUL type", 0, 0, "", 0, false, "unknown record type 0x00"},
		{"high type", 0xff, 2, "ab", 2, false, "unknown record type 0xff"},
		{"http short", 'H', 3, "\0\0\0", 3, false, "record 'H' of 3 bytes"},
		{"http long", 'H', 5, "\0\0\0\xc8\0", 5, false, "record 'H' of 5 bytes"},
		{"http 0", 'H', 4, "\0\0\0\0", 4, false, "HTTP status 0 out of range"},
		{"http 600", 'H', 4, "\0\0\x02\x58", 4, false, "HTTP status 600 out of range"},
		{"http huge", 'H', 4, "\xff\xff\xff\xff", 4, false, "out of range"},
		{"second http", 'H', 4, "\0\0\0\xc8", 4, true, "a second HTTP status record"},
		{"etag first", 'E', 2, "\"x", 2, false, "ETag record before the status"},
		{"etag empty", 'E', 0, "", 0, true, "record 'E' of 0 bytes"},
		{"etag oversize", 'E', 257, NULL, 257, true, "record 'E' of 257 bytes"},
		{"etag newline", 'E', 3, "a\nb", 3, true, "ETag record with unprintable"},
		{"etag NUL", 'E', 3, "a\0b", 3, true, "ETag record with unprintable"},
		{"progress short", 'P', 15, NULL, 15, false, "record 'P' of 15 bytes"},
		{"progress long", 'P', 17, NULL, 17, false, "record 'P' of 17 bytes"},
		{"done with payload", 'D', 1, "x", 1, false, "record 'D' of 1 bytes"},
		{"fail empty", 'X', 0, "", 0, false, "record 'X' of 0 bytes"},
		{"fail reason", 'X', 2, "qx", 2, false, "unknown reason 0x71"},
		{"fail text", 'X', 4, "n\x1b[2", 4, false, "failure record with unprintable"},
		{"fail oversize", 'X', 402, NULL, 402, false, "record 'X' of 402 bytes"},
		{"length 65535", 'X', 65535, "n", 1, false, "record 'X' of 65535 bytes"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t buf[1024];
		size_t n = cases[i].prefix_http ? rec_http(buf, 200) : 0;
		n += raw(buf + n, cases[i].type, cases[i].len,
			 cases[i].payload ? cases[i].payload : (const char *)zero, cases[i].n);
		struct hub_rx rx;
		struct err e = ERR_INIT;
		hub_rx_init(&rx);
		int r = hub_rx_feed(&rx, buf, n, &e);
		if (r != -EPROTO || !strstr(e.msg, cases[i].msg) ||
		    strncmp(e.msg, "helper protocol: ", 17) != 0)
			fail_msg("%s: r=%d '%s', want '%s'", cases[i].name, r, e.msg, cases[i].msg);
	}
}

static void test_rx_order(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct hub_rx rx;
	struct err e = ERR_INIT;
	/* anything after the final record */
	const char after[] = {HUB_REC_DONE, HUB_REC_PROGRESS, HUB_REC_HTTP, HUB_REC_FAIL};
	for (size_t i = 0; i < ARRAY_SIZE(after); i++) {
		size_t n = rec(buf, HUB_REC_DONE, NULL, 0);
		if (after[i] == HUB_REC_DONE)
			n += rec(buf + n, HUB_REC_DONE, NULL, 0);
		else if (after[i] == HUB_REC_PROGRESS)
			n += rec_progress(buf + n, 1, 1);
		else if (after[i] == HUB_REC_HTTP)
			n += rec_http(buf + n, 200);
		else
			n += rec(buf + n, HUB_REC_FAIL, "n", 1);
		hub_rx_init(&rx);
		assert_int_equal(hub_rx_feed(&rx, buf, n, &e), -EPROTO);
		assert_non_null(strstr(e.msg, "a record after the final one"));
	}
	/* two ETags; wire bytes going back */
	size_t n = rec_http(buf, 200);
	n += rec(buf + n, HUB_REC_ETAG, "a", 1);
	n += rec(buf + n, HUB_REC_ETAG, "b", 1);
	hub_rx_init(&rx);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "ETag record twice"));
	n = rec_progress(buf, 10, 1000);
	n += rec_progress(buf + n, 20, 999);
	hub_rx_init(&rx);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "wire bytes went back"));
	/* EOF without a final record, or inside one */
	hub_rx_init(&rx);
	n = rec_http(buf, 200);
	assert_int_equal(hub_rx_feed(&rx, buf, n, &e), 0);
	assert_int_equal(hub_rx_eof(&rx, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "ended without a final record"));
	hub_rx_init(&rx);
	assert_int_equal(hub_rx_eof(&rx, &e), -EPROTO); /* nothing at all */
	hub_rx_init(&rx);
	assert_int_equal(hub_rx_feed(&rx, "D", 1, &e), 0);
	assert_int_equal(hub_rx_eof(&rx, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "1 bytes of a cut record"));
}

/* Random bytes, and random records with random lengths: never a crash, and
 * an accepted stream always leaves a consistent state. */
static void test_rx_fuzz(void **state)
{
	(void)state;
	srand(7);
	static const uint8_t types[] = {'H', 'E', 'P', 'D', 'X', 'Z', 0};
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t buf[2048];
		size_t n = 0;
		if (iter % 2) {
			n = (size_t)(rand() % (int)sizeof(buf));
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rand();
		} else {
			while (n + 3 + 40 < sizeof(buf) && rand() % 8) {
				unsigned len = (unsigned)(rand() % 20);
				if (rand() % 4 == 0)
					len = (unsigned)rand() & 0xffff;
				buf[n] = types[rand() % (int)sizeof(types)];
				buf[n + 1] = (uint8_t)(len >> 8);
				buf[n + 2] = (uint8_t)len;
				n += 3;
				for (unsigned i = 0; i < len && i < 40; i++)
					buf[n++] = (uint8_t)(rand() % 3 ? 'a' + rand() % 26 : rand());
			}
		}
		struct hub_rx rx;
		struct err e = ERR_INIT;
		hub_rx_init(&rx);
		size_t at = 0;
		int r = 0;
		while (at < n && r == 0) { /* random splits */
			size_t k = 1 + (size_t)(rand() % 64);
			if (k > n - at)
				k = n - at;
			r = hub_rx_feed(&rx, buf + at, k, &e);
			at += k;
		}
		assert_true(r == 0 || r == -EPROTO);
		assert_true(rx.len < HUB_REC_MAX);
		if (r == 0 && hub_rx_eof(&rx, &e) == 0) {
			assert_true(rx.finished);
			assert_true(!rx.have_http || (rx.http >= 100 && rx.http <= 599));
			assert_true(hub_text_printable(rx.etag, strlen(rx.etag)));
			assert_true(hub_text_printable(rx.text, strlen(rx.text)));
		}
	}
}

/* ---------------- the desired pointer ---------------- */

static void test_pointer(void **state)
{
	(void)state;
	static const char good[] = "{\"revision\": 13, \"document\": \"{\\\"a\\\": \\\"\\u00e9\\\"}\\n\","
				   " \"signature\": \"sig\\ttext\"}";
	struct hub_pointer p;
	struct err e = ERR_INIT;
	assert_int_equal(hub_pointer_parse(good, strlen(good), &p, &e), 0);
	assert_int_equal(p.revision, 13);
	assert_string_equal(p.doc, "{\"a\": \"\xc3\xa9\"}\n");
	assert_int_equal(p.doclen, strlen("{\"a\": \"\xc3\xa9\"}\n"));
	assert_string_equal(p.sig, "sig\ttext");
	assert_null(p.kdoc);
	hub_pointer_free(&p);
	/* with a keys document */
	static const char withkeys[] = "{\"keys\": {\"signature\": \"ks\", \"document\": \"kd\\n\"},"
				       " \"revision\": 2, \"document\": \"d\", \"signature\": \"s\"}";
	assert_int_equal(hub_pointer_parse(withkeys, strlen(withkeys), &p, &e), 0);
	assert_int_equal(p.revision, 2);
	assert_string_equal(p.kdoc, "kd\n");
	assert_int_equal(p.kdoclen, 3);
	assert_string_equal(p.ksig, "ks");
	assert_string_equal(p.doc, "d");
	hub_pointer_free(&p);
	static const struct {
		const char *js, *msg;
	} bad[] = {
		{"", "pointer:"},
		{"[]", "pointer: not a JSON object"},
		{"{\"revision\": 1, \"document\": \"d\"}", "pointer: want exactly"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\", \"x\": 1}",
		 "pointer: unknown key 'x'"},
		{"{\"revision\": 1, \"document\": \"d\", \"sig\": \"s\"}", "pointer: unknown key 'sig'"},
		{"{\"revision\": 0, \"document\": \"d\", \"signature\": \"s\"}",
		 "revision: want an integer"},
		{"{\"revision\": -1, \"document\": \"d\", \"signature\": \"s\"}", "revision: want"},
		{"{\"revision\": 1.5, \"document\": \"d\", \"signature\": \"s\"}", "revision: want"},
		{"{\"revision\": \"1\", \"document\": \"d\", \"signature\": \"s\"}", "revision: want"},
		{"{\"revision\": 9007199254740992, \"document\": \"d\", \"signature\": \"s\"}",
		 "revision: want"},
		{"{\"revision\": 1, \"document\": 5, \"signature\": \"s\"}",
		 "pointer: document: not a string"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": null}",
		 "pointer: signature: not a string"},
		{"{\"revision\": 1, \"document\": \"\\u0000\", \"signature\": \"s\"}",
		 "pointer: invalid JSON"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\"} x", "pointer:"},
		{"{\"revision\": 1, \"revision\": 2, \"document\": \"d\"}", "pointer: signature"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\", \"keys\": \"k\"}",
		 "pointer: keys: want an object"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\", \"keys\": "
		 "{\"document\": \"k\"}}",
		 "pointer: keys: want an object"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\", \"keys\": "
		 "{\"document\": \"k\", \"signature\": \"s\", \"x\": 1}}",
		 "pointer: keys: want an object"},
		{"{\"revision\": 1, \"document\": \"d\", \"signature\": \"s\", \"keys\": "
		 "{\"document\": 1, \"signature\": \"s\"}}",
		 "pointer: keys: document: not a string"},
		{"{\"revision\": 1, \"document\": \"d\", \"keys\": "
		 "{\"document\": \"k\", \"signature\": \"s\"}}",
		 "pointer: want exactly"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = hub_pointer_parse(bad[i].js, strlen(bad[i].js), &p, &e);
		if (r >= 0 || strncmp(e.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
			fail_msg("case %zu: r=%d '%s', want '%s'", i, r, e.msg, bad[i].msg);
		assert_null(p.doc);
	}
	/* a document one byte over REV_MAX_DOC; a body over the pointer cap */
	size_t big = REV_MAX_DOC + 1;
	char *js = malloc(big + 128);
	assert_non_null(js);
	size_t n = (size_t)snprintf(js, 64, "{\"revision\": 1, \"signature\": \"s\", \"document\": \"");
	memset(js + n, 'a', big);
	memcpy(js + n + big, "\"}", 3);
	assert_int_equal(hub_pointer_parse(js, n + big + 2, &p, &e), -EFBIG);
	assert_string_equal(e.msg, "pointer: document: longer than 1048576 bytes");
	assert_int_equal(hub_pointer_parse(js, HUB_DESIRED_MAX + 1, &p, &e), -EFBIG);
	free(js);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_poll_backoff),
		cmocka_unit_test(test_fetch_backoff),
		cmocka_unit_test(test_rx_good),
		cmocka_unit_test(test_rx_hostile),
		cmocka_unit_test(test_rx_order),
		cmocka_unit_test(test_rx_fuzz),
		cmocka_unit_test(test_pointer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
