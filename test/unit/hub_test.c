/* test/unit/hub_test.c — the fleet hub client's pieces that need no hub:
 * the poll and fetch schedule (jitter bounds, backoff doubling, cap,
 * reset), the helper pipe's record parser against hostile streams (a table
 * of truncated, oversize, garbage and out-of-order records, then random
 * bytes and every split of a valid stream), the desired pointer parser,
 * the staging directory and the validation of staged files, and the
 * helper process itself against a one-shot HTTP server on loopback
 * (privilege drop, Range resume, size caps, ETag) when run as root.
 *
 * File tests work in a mkdtemp directory the teardown removes; the HTTP
 * server is a forked child that is killed and reaped in every case. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/util.h"
#include "storage/storage.h"
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

/* ---------------- staging ---------------- */

struct fx {
	char dir[64];
	int dirfd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	memcpy(f->dir, "/tmp/cairn-hub-XXXXXX", 22);
	assert_non_null(mkdtemp(f->dir));
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	close(f->dirfd);
	int r = storage_rmtree(f->dir, &e);
	free(f);
	return r;
}

static void put_at(int dirfd, const char *name, size_t size)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	for (size_t done = 0; done < size;) {
		size_t k = size - done < sizeof(buf) ? size - done : sizeof(buf);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		done += k;
	}
	close(fd);
}

static const char PART[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.part";

static void test_stage_names(void **state)
{
	(void)state;
	assert_true(hub_stage_name_valid(PART));
	assert_true(hub_stage_name_valid("desired.json"));
	assert_false(hub_stage_name_valid(""));
	assert_false(hub_stage_name_valid("../desired.json"));
	assert_false(hub_stage_name_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789"
					  "abcdef.part"));
	assert_false(hub_stage_name_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
					  "abcde.part"));
	assert_false(hub_stage_name_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
					  "abcdef.partx"));
	struct digest d;
	assert_int_equal(digest_parse_hex(PART, 64, &d), 0);
	char name[HUB_PART_NAME_LEN + 1];
	hub_part_name(&d, name);
	assert_string_equal(name, PART);
}

static void test_stage_open(void **state)
{
	struct fx *f = *state;
	uid_t me = geteuid();
	int fd = -1;
	uint64_t size = 0;
	struct err e = ERR_INIT;
	put_at(f->dirfd, PART, 100);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), 0);
	assert_int_equal(size, 100);
	close(fd);
	assert_int_equal(hub_stage_size(f->dirfd, PART, me), 100);
	/* larger than allowed */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 99, false, &fd, &size, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "100 bytes, more than the 99 allowed"));
	/* another owner */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me + 1, 100, false, &fd, &size, &e), -EPERM);
	assert_non_null(strstr(e.msg, "not the helper's"));
	assert_int_equal(hub_stage_size(f->dirfd, PART, me + 1), 0);
	/* two links */
	assert_int_equal(linkat(f->dirfd, PART, f->dirfd, "other", 0), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "2 links"));
	assert_int_equal(unlinkat(f->dirfd, "other", 0), 0);
	/* a symlink to a file outside: never followed */
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", f->dirfd, PART), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 1 << 20, false, &fd, &size, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "a symlink"));
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	/* a FIFO: refused at once, never waited on */
	assert_int_equal(mkfifoat(f->dirfd, PART, 0600), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	/* a directory; a name that is not a staging name */
	assert_int_equal(mkdirat(f->dirfd, PART, 0700), 0);
	assert_true(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e) < 0);
	assert_int_equal(unlinkat(f->dirfd, PART, AT_REMOVEDIR), 0);
	assert_int_equal(hub_stage_open(f->dirfd, "../x", me, 100, false, &fd, &size, &e), -EINVAL);
	/* missing */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -ENOENT);
	assert_int_equal(hub_stage_size(f->dirfd, PART, me), 0);
}

static bool exists(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void test_stage_sweep(void **state)
{
	struct fx *f = *state;
	uid_t me = geteuid();
	static const char other[] =
		"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210.part";
	static const char holed[] =
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.part";
	put_at(f->dirfd, PART, 100);
	put_at(f->dirfd, other, 10);
	put_at(f->dirfd, "desired.json", 10);
	put_at(f->dirfd, "junk", 10);
	assert_int_equal(mkdirat(f->dirfd, "emptydir", 0700), 0);
	assert_int_equal(symlinkat("/etc", f->dirfd, "link"), 0);
	/* a part whose start was punched out by an import: not resumable */
	put_at(f->dirfd, holed, 1 << 20);
	int fd = openat(f->dirfd, holed, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	bool punched = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512 << 10) == 0;
	close(fd);
	/* at start: every resumable part stays, the rest goes */
	hub_stage_sweep(f->dirfd, me, NULL, 0, NULL);
	assert_true(exists(f->dirfd, PART));
	assert_true(exists(f->dirfd, other));
	assert_int_equal(exists(f->dirfd, holed), !punched);
	assert_false(exists(f->dirfd, "desired.json"));
	assert_false(exists(f->dirfd, "junk"));
	assert_false(exists(f->dirfd, "emptydir"));
	assert_false(exists(f->dirfd, "link"));
	assert_true(exists(AT_FDCWD, "/etc")); /* the link went, not its target */
	/* a plan: only its parts stay (and the one being imported) */
	struct digest keep, active;
	assert_int_equal(digest_parse_hex(PART, 64, &keep), 0);
	assert_int_equal(digest_parse_hex(other, 64, &active), 0);
	hub_stage_sweep(f->dirfd, me, &keep, 1, &active);
	assert_true(exists(f->dirfd, PART) && exists(f->dirfd, other));
	hub_stage_sweep(f->dirfd, me, &keep, 1, NULL);
	assert_true(exists(f->dirfd, PART));
	assert_false(exists(f->dirfd, other));
	/* a part owned by someone else is not ours to resume */
	if (me == 0) {
		assert_int_equal(fchownat(f->dirfd, PART, 1234, 1234, AT_SYMLINK_NOFOLLOW), 0);
		hub_stage_sweep(f->dirfd, me, &keep, 1, NULL);
		assert_false(exists(f->dirfd, PART));
	}
	hub_stage_sweep(f->dirfd, me, &keep, 0, NULL);
}

static void test_stage_prepare(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip();
	int sfd = -1;
	struct err e = ERR_INIT;
	assert_int_equal(mkdirat(f->dirfd, "tmp", 0755), 0);
	assert_int_equal(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e), 0);
	struct stat st;
	assert_int_equal(fstat(sfd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, HUB_UID);
	assert_int_equal(st.st_gid, HUB_GID);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(sfd);
	/* a wrong owner and mode are put right */
	assert_int_equal(fchownat(f->dirfd, "tmp/hub", 0, 0, 0), 0);
	assert_int_equal(fchmodat(f->dirfd, "tmp/hub", 0777, 0), 0);
	assert_int_equal(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e), 0);
	assert_int_equal(fstat(sfd, &st), 0);
	assert_int_equal(st.st_uid, HUB_UID);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(sfd);
	/* a symlink in its place is refused */
	assert_int_equal(unlinkat(f->dirfd, "tmp/hub", AT_REMOVEDIR), 0);
	assert_int_equal(symlinkat("/etc", f->dirfd, "tmp/hub"), 0);
	assert_true(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e) < 0);
	assert_non_null(strstr(e.msg, "not a directory"));
}

/* ---------------- the helper against a one-shot HTTP server ---------------- */

struct srv {
	pid_t pid;
	int port;
};

/* Serve one connection: save the request (head and body) to `reqpath`,
 * answer `resp`, then `endless` more bytes of 'A' forever if asked. */
static void srv_child(int ls, const char *reqpath, const char *resp, size_t resplen, bool endless)
{
	int c = accept(ls, NULL, NULL);
	if (c < 0)
		_exit(1);
	char req[8192];
	size_t n = 0;
	struct pollfd pfd = {.fd = c, .events = POLLIN};
	while (n < sizeof(req) && poll(&pfd, 1, 300) > 0) { /* head and a small body */
		ssize_t k = read(c, req + n, sizeof(req) - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	int out = open(reqpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out >= 0) {
		(void)!write(out, req, n);
		close(out);
	}
	(void)!write(c, resp, resplen);
	static char block[16384];
	memset(block, 'A', sizeof(block));
	while (endless && write(c, block, sizeof(block)) > 0)
		;
	close(c);
	_exit(0);
}

static void srv_start(struct srv *s, const char *reqpath, const char *resp, bool endless)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0)
		srv_child(ls, reqpath, resp, strlen(resp), endless);
	close(ls);
}

static void srv_stop(struct srv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

struct run {
	struct hub_rx rx;
	int rx_err;
	int status;
};

/* Spawn the helper for job and read its pipe to the end (20 s at most). */
static void helper_run(int stagefd, const struct hub_job *job, struct run *out)
{
	pid_t pid;
	int rfd;
	struct err e = ERR_INIT;
	assert_int_equal(hub_helper_spawn(job, stagefd, &pid, &rfd, &e), 0);
	hub_rx_init(&out->rx);
	out->rx_err = 0;
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	for (;;) {
		if (poll(&pfd, 1, 20000) <= 0) {
			kill(pid, SIGKILL);
			out->rx_err = -ETIMEDOUT;
			break;
		}
		uint8_t buf[4096];
		ssize_t n = read(rfd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) {
			out->rx_err = hub_rx_eof(&out->rx, &e);
			break;
		}
		if ((out->rx_err = hub_rx_feed(&out->rx, buf, (size_t)n, &e)) < 0) {
			kill(pid, SIGKILL);
			break;
		}
	}
	close(rfd);
	assert_int_equal(waitpid(pid, &out->status, 0), pid);
	if (out->rx_err)
		fail_msg("helper stream: %s", e.msg);
}

struct hfx {
	struct fx f;
	int stagefd;
	char req[128]; /* where the server saves the request */
	struct srv srv;
};

static int hsetup(void **state)
{
	if (geteuid() != 0) /* the helper drops root: only root can run it */
		return 0;
	struct hfx *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	memcpy(h->f.dir, "/tmp/cairn-hub-XXXXXX", 22);
	assert_non_null(mkdtemp(h->f.dir));
	h->f.dirfd = open(h->f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(mkdirat(h->f.dirfd, "tmp", 0700), 0);
	struct err e = ERR_INIT;
	assert_int_equal(hub_stage_prepare(h->f.dirfd, HUB_UID, HUB_GID, &h->stagefd, &e), 0);
	assert_int_equal(str_fmt(h->req, sizeof(h->req), "%s/request", h->f.dir), 0);
	*state = h;
	return 0;
}

static int hteardown(void **state)
{
	struct hfx *h = *state;
	if (!h)
		return 0;
	srv_stop(&h->srv);
	close(h->stagefd);
	close(h->f.dirfd);
	struct err e = ERR_INIT;
	int r = storage_rmtree(h->f.dir, &e);
	free(h);
	return r;
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len;
	struct err e = ERR_INIT;
	if (file_read_all(AT_FDCWD, path, 1 << 20, &buf, &len, &e) < 0)
		return strdup("");
	return buf;
}

static char *staged(struct hfx *h, const char *name, uid_t *owner)
{
	char path[256];
	struct stat st;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/tmp/hub/%s", h->f.dir, name), 0);
	if (owner)
		*owner = stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
	return slurp(path);
}

static void object_job(struct hfx *h, struct hub_job *job, uint64_t size)
{
	memset(job, 0, sizeof(*job));
	job->kind = HUB_JOB_OBJECT;
	job->size = size;
	memcpy(job->file, PART, sizeof(PART));
	assert_int_equal(str_fmt(job->url, sizeof(job->url),
				 "http://127.0.0.1:%d/v1/objects/sha256/%.64s", h->srv.port, PART),
			 0);
}

static void preset_part(struct hfx *h, const char *data)
{
	int fd = openat(h->stagefd, PART, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchown(fd, HUB_UID, HUB_GID), 0);
	close(fd);
}

#define NEED_ROOT(state)                                                                           \
	struct hfx *h = *(state);                                                                  \
	if (!h)                                                                                    \
		skip()

static void test_helper_object(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false);
	object_job(h, &job, 10);
	memcpy(job.token, "tok-123", 8);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 200);
	assert_int_equal(run.rx.staged, 10);
	assert_true(run.rx.wire >= 10);
	assert_true(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
	uid_t owner;
	char *data = staged(h, PART, &owner);
	assert_string_equal(data, "0123456789");
	assert_int_equal(owner, HUB_UID); /* written as nobody, not root */
	free(data);
	char *req = slurp(h->req);
	assert_non_null(strstr(req, "GET /v1/objects/sha256/0123456789abcdef"));
	assert_non_null(strstr(req, "Authorization: Bearer tok-123\r\n"));
	assert_non_null(strstr(req, "User-Agent: cairn/"));
	assert_null(strstr(req, "Range:"));
	free(req);
}

static void test_helper_resume(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "01234");
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\n"
		  "Content-Length: 5\r\n\r\n56789",
		  false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 206);
	char *data = staged(h, PART, NULL), *req = slurp(h->req);
	assert_string_equal(data, "0123456789");
	assert_non_null(strstr(req, "Range: bytes=5-\r\n"));
	free(data);
	free(req);
}

static void test_helper_bad_range(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "01234");
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n"
		  "Content-Length: 10\r\n\r\nXXXXXXXXXX",
		  false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
	assert_non_null(strstr(run.rx.text, "Content-Range 'bytes 0-9/10', want bytes 5-"));
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, "01234"); /* nothing of it written */
	free(data);
}

static void test_helper_restart_on_200(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "XXXXX");
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, "0123456789"); /* started over from 0 */
	free(data);
}

static void test_helper_endless_body(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", true);
	object_job(h, &job, 100000);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
	assert_non_null(strstr(run.rx.text, "more than the 100000 bytes declared"));
	uid_t owner;
	char *data = staged(h, PART, &owner);
	assert_true(strlen(data) <= 100000);
	free(data);
	/* a Content-Length above the declared size: refused before the body */
	srv_stop(&h->srv);
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 100001\r\n\r\nabc", false);
	object_job(h, &job, 100000);
	assert_int_equal(ftruncate(openat(h->stagefd, PART, O_WRONLY | O_CLOEXEC), 0), 0);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
}

static void test_helper_http_error(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok); /* the exchange worked: the caller judges the status */
	assert_int_equal(run.rx.http, 404);
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, ""); /* an error page is never staged */
	free(data);
}

static void test_helper_desired_etag(void **state)
{
	NEED_ROOT(state);
	struct hub_job job = {.kind = HUB_JOB_DESIRED, .size = HUB_DESIRED_MAX};
	struct run run;
	static const char body[] = "{\"revision\": 1}";
	char resp[256];
	assert_int_equal(str_fmt(resp, sizeof(resp),
				 "HTTP/1.1 200 OK\r\nETag: \"65f1-2a\"\r\nContent-Length: %zu\r\n\r\n%s",
				 strlen(body), body),
			 0);
	srv_start(&h->srv, h->req, resp, false);
	memcpy(job.file, "desired.json", 13);
	memcpy(job.etag, "\"old\"", 6);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/desired", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok && run.rx.have_etag);
	assert_int_equal(run.rx.http, 200);
	assert_string_equal(run.rx.etag, "\"65f1-2a\"");
	char *data = staged(h, "desired.json", NULL), *req = slurp(h->req);
	assert_string_equal(data, body);
	assert_non_null(strstr(req, "If-None-Match: \"old\"\r\n"));
	free(data);
	free(req);
	/* 304: nothing staged */
	srv_stop(&h->srv);
	srv_start(&h->srv, h->req, "HTTP/1.1 304 Not Modified\r\nETag: \"65f1-2a\"\r\n\r\n", false);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/desired", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok && !run.rx.have_etag);
	assert_int_equal(run.rx.http, 304);
	data = staged(h, "desired.json", NULL);
	assert_string_equal(data, "");
	free(data);
}

static void test_helper_report(void **state)
{
	NEED_ROOT(state);
	static const char body[] = "{\"device\": \"d1\", \"state\": \"DONE\"}";
	struct hub_job job = {.kind = HUB_JOB_REPORT, .body = body, .body_len = sizeof(body) - 1};
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 204 No Content\r\n\r\n", false);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/status", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 204);
	char *req = slurp(h->req);
	assert_non_null(strstr(req, "PUT /v1/devices/d1/status HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(req, body));
	free(req);
}

static void test_helper_unreachable(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "", false);
	int port = h->srv.port;
	srv_stop(&h->srv); /* nobody listens there any more */
	h->srv.port = port;
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_NETWORK);
	assert_false(run.rx.have_http);
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
		cmocka_unit_test(test_stage_names),
		cmocka_unit_test_setup_teardown(test_stage_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_object, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_resume, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_bad_range, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_restart_on_200, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_endless_body, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_http_error, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_desired_etag, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_report, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_unreachable, hsetup, hteardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
