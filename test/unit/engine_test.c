/* test/unit/engine_test.c — the update engine without containers: the
 * per-revision state table (every pair), status.json (round trip, forensics
 * never overwritten), log tails, offers (signature, schema, number,
 * downgrade, space, objects, placement) and boot-time recovery of what a
 * crash left. Each test gets a mkdtemp store and a fresh signing key, both
 * removed in teardown; the engine runs with the "file" boot backend, no
 * runtime and a real loop. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/digest.h"
#include "../../lib/json.h"
#include "../../lib/log.h"
#include "../../lib/loop.h"
#include "../../storage/storage.h"
#include "../../tools/pack/pack.h"
#include "../../trails/engine_internal.h"

/* The Makefile links the module archives as ctrl runtime plugins trails ...,
 * but trails calls the runtime (DESIGN.md: trails -> runtime): naming the
 * runtime's entry points here pulls them in before libtrails.a is read. */
__attribute__((used)) static const void *const runtime_refs[] = {
	(const void *)runtime_apply, (const void *)runtime_find,     (const void *)runtime_status,
	(const void *)runtime_log_path, (const void *)runtime_stop_all,
	(const void *)runtime_set_event_cb,
};

#define TEST(name) static void name(void **state)
#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

struct fx {
	char dir[64];
	char root[96];
	char keys[96];
	struct storage *s;
	struct trust *trust;
	struct loop *loop;
	struct trails *tr;
	int reboots;
	char reboot_why[256];
};

static void on_reboot(void *data, const char *why)
{
	struct fx *f = data;
	f->reboots++;
	snprintf(f->reboot_why, sizeof(f->reboot_why), "%s", why);
}

static int engine_open(struct fx *f, uint64_t reserve)
{
	struct trails_config cfg = {
		.loop = f->loop,
		.storage = f->s,
		.trust = f->trust,
		.bootloader = "file",
		.reserve_bytes = reserve,
		.crash_loop_max = 3,
		.hooks = {.data = f, .reboot = on_reboot},
	};
	trails_free(f->tr);
	f->tr = NULL;
	struct err e = ERR_INIT;
	int r = trails_new(&cfg, &f->tr, &e);
	if (r < 0)
		print_error("trails_new: %s\n", e.msg);
	return r;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	trails_free(f->tr);
	loop_free(f->loop);
	trust_free(f->trust);
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char pub[128];
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-engine-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->dir);
	snprintf(pub, sizeof(pub), "%s/signing.pub", f->keys);
	*state = f;
	struct err e = ERR_INIT;
	if (mkdir(f->root, 0755) < 0 || mkdir(f->keys, 0700) < 0 || storage_open(f->root, &f->s, &e) < 0 ||
	    pack_keygen(f->keys, &e) < 0 || trust_load(pub, &f->trust, &e) < 0 ||
	    loop_new(&f->loop, &e) < 0 || engine_open(f, 0) < 0) {
		print_error("setup: %s\n", e.msg);
		teardown(state);
		return -1;
	}
	return 0;
}

/* ---- helpers ---- */

static bool exists(struct fx *f, const char *rel)
{
	struct stat sb;
	return fstatat(storage_root_fd(f->s), rel, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static void load_status(struct fx *f, const char *dir, struct tr_status *st)
{
	struct err e = ERR_INIT;
	if (tr_status_load(f->tr, dir, st, &e) < 0)
		fail_msg("%s: %s", dir, e.msg);
}

/* The record of revision n: trails/<n>/ while installed, else offers/<n>/
 * (gc keeps a collected failure's status there). */
static void load_record(struct fx *f, uint64_t n, struct tr_status *st)
{
	char dir[48];
	FMT(dir, "trails/%llu/status.json", (unsigned long long)n);
	bool installed = exists(f, dir);
	FMT(dir, "%s/%llu", installed ? "trails" : "offers", (unsigned long long)n);
	load_status(f, dir, st);
}

static void boot_state(struct fx *f, uint64_t c, uint64_t t, unsigned n)
{
	struct boot_state bs = {c, t, n};
	assert_int_equal(trails_boot_write(f->s, &bs, NULL), 0);
}

/* Object bytes: `n` bytes of `c`. */
static void object_of(char c, size_t n, char *buf, struct digest *d)
{
	memset(buf, c, n);
	sha256_buf(buf, n, d);
}

static char *doc_with(uint64_t rev, const struct digest *obj, uint64_t size)
{
	char id[DIGEST_STR_LEN + 1];
	digest_format(obj, id);
	char *doc = malloc(1024);
	assert_non_null(doc);
	snprintf(doc, 1024,
		 "{\"spec\": \"cairn-revision@1\", \"revision\": %llu, \"created\": "
		 "\"2026-11-21T10:00:00Z\", \"containers\": [{\"name\": \"web\", \"group\": \"app\", "
		 "\"rootfs\": {\"object\": \"%s\", \"size\": %llu}, \"exec\": [\"/bin/sh\"]}]}",
		 (unsigned long long)rev, id, (unsigned long long)size);
	return doc;
}

/* revision.sig for doc, signed with the fixture's key. */
static char *sign(struct fx *f, const char *doc)
{
	char out[128], path[160], key[128];
	FMT(out, "%s/sig", f->dir);
	FMT(key, "%s/signing.key", f->keys);
	mkdir(out, 0755);
	FMT(path, "%s/revision.json", out);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(doc, fp);
	fclose(fp);
	FMT(path, "%s/revision.sig", out);
	unlink(path);
	struct err e = ERR_INIT;
	if (pack_sign(out, key, &e) < 0)
		fail_msg("pack_sign: %s", e.msg);
	char *sig = NULL;
	size_t len;
	assert_int_equal(file_read_all(AT_FDCWD, path, SIG_MAX_FILE, &sig, &len, NULL), 0);
	return sig;
}

static int offer(struct fx *f, uint64_t rev, const char *doc, const char *sig,
		 struct trails_offer *o, struct err *e)
{
	return trails_offer(f->tr, rev, doc, strlen(doc), sig, strlen(sig), o, e);
}

static void put_object(struct fx *f, const char *buf, size_t n, const struct digest *d)
{
	struct obj_writer *w = NULL;
	struct err e = ERR_INIT;
	if (trails_object_begin(f->tr, d, n, &w, &e) < 0)
		fail_msg("object_begin: %s", e.msg);
	assert_int_equal(storage_object_write(w, buf, n, NULL), 0);
	assert_int_equal(storage_object_commit(w, NULL), 0);
	trails_object_stored(f->tr, d);
}

/* ---- the state table ---- */

/* The spec of trails/UPDATE.md, written out again: the code must agree. */
#define S TR_STAY
#define U TR_UNDEF
static const int spec[REV_STATE_COUNT][TE_COUNT] = {
	[REV_RECEIVED] = {U, REV_DOWNLOADING, REV_REJECTED, REV_INSTALLED, U, U, U},
	[REV_DOWNLOADING] = {S, S, REV_REJECTED, REV_INSTALLED, U, U, U},
	[REV_INSTALLED] = {S, U, U, S, REV_TESTING, U, REV_FAILED},
	[REV_TESTING] = {S, U, U, U, U, REV_DONE, REV_FAILED},
	[REV_DONE] = {S, U, U, U, REV_TESTING, S, U},
	[REV_REJECTED] = {REV_RECEIVED, U, S, U, U, U, U},
	[REV_FAILED] = {S, U, U, U, U, U, S},
};
#undef S
#undef U

TEST(test_table_matches_spec)
{
	(void)state;
	for (int s = 0; s < REV_STATE_COUNT; s++)
		for (int ev = 0; ev < TE_COUNT; ev++)
			if (tr_table_next((enum rev_state)s, (enum tr_event)ev) != spec[s][ev])
				fail_msg("[%s][%s]: %d, spec says %d", rev_state_name((enum rev_state)s),
					 tr_event_name((enum tr_event)ev),
					 tr_table_next((enum rev_state)s, (enum tr_event)ev), spec[s][ev]);
	assert_int_equal(tr_table_next(REV_STATE_COUNT, TE_TRY), TR_UNDEF);
	assert_int_equal(tr_table_next(REV_DONE, TE_COUNT), TR_UNDEF);
}

/* Every pair through tr_event on a real record: the state in memory and in
 * status.json, what is written and what is not. */
static void one_pair(struct fx *f, enum rev_state s, enum tr_event ev, uint64_t n)
{
	struct tr_rec *rec = tr_rec_add(f->tr, n);
	assert_non_null(rec);
	rec->state = s;
	char dir[48];
	FMT(dir, "offers/%llu", (unsigned long long)n);
	struct tr_fail *fl = tr_fail_set(f->tr, "goal-timeout", "", "pair %d %d", s, ev);
	struct err e = ERR_INIT;
	int r = tr_event(f->tr, rec, ev, fl, &e);
	int want = spec[s][ev];
	if (want == TR_UNDEF) {
		assert_int_equal(r, -EINVAL);
		assert_int_equal(rec->state, s);
		assert_false(exists(f, dir));
		assert_non_null(strstr(e.msg, rev_state_name(s)));
		return;
	}
	assert_int_equal(r, 0);
	if (want == TR_STAY) {
		assert_int_equal(rec->state, s);
		assert_false(exists(f, dir));
		return;
	}
	assert_int_equal(rec->state, want);
	assert_true(rec->times[want] > 0);
	if (want == REV_RECEIVED) { /* never written: lasts inside one call */
		assert_false(exists(f, dir));
		return;
	}
	struct tr_status st;
	load_status(f, dir, &st);
	assert_int_equal(st.state, want);
	assert_int_equal(st.revision, n);
	bool failing = want == REV_FAILED || want == REV_REJECTED;
	assert_int_equal(st.has_fail, failing);
	if (failing)
		assert_string_equal(st.fail.code, "goal-timeout");
}

TEST(test_every_pair)
{
	struct fx *f = *state;
	uint64_t n = 100;
	for (int s = 0; s < REV_STATE_COUNT; s++)
		for (int ev = 0; ev < TE_COUNT; ev++)
			one_pair(f, (enum rev_state)s, (enum tr_event)ev, n++);
}

/* ---- status.json ---- */

TEST(test_status_round_trip)
{
	(void)state;
	struct tr_status *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	a->revision = 9007199254740991ull;
	a->state = REV_FAILED;
	for (int s = 0; s < REV_STATE_COUNT; s++)
		a->times[s] = 1795299238 + s;
	a->done = 123;
	a->total = 456;
	a->previous = 11;
	a->has_fail = true;
	snprintf(a->fail.code, sizeof(a->fail.code), "crash-loop");
	snprintf(a->fail.msg, sizeof(a->fail.msg), "container \"app\" exited\\ 3 times");
	snprintf(a->fail.field, sizeof(a->fail.field), "containers[1]");
	snprintf(a->fail.container, sizeof(a->fail.container), "app");
	snprintf(a->fail.goal, sizeof(a->fail.goal), "READY");
	a->fail.time = 1795299240;
	a->fail.nlog = TR_LOG_LINES;
	for (size_t i = 0; i < TR_LOG_LINES; i++)
		snprintf(a->fail.log[i], TR_LOG_LINE_MAX, "line %zu \"q\" \\ \t end", i);
	a->nearlier = 2;
	snprintf(a->earlier[0].code, TR_CODE_MAX, "no-space");
	snprintf(a->earlier[1].code, TR_CODE_MAX, "bad-signature");
	snprintf(a->earlier[1].msg, TR_MSG_MAX, "signature: key not trusted");
	a->earlier[1].time = 5;
	struct jw w;
	jw_init_dyn(&w, true);
	jw_obj_open(&w);
	tr_status_members(&w, a);
	jw_obj_close(&w);
	assert_int_equal(jw_finish(&w, NULL), 0);
	struct err e = ERR_INIT;
	if (tr_status_parse(w.buf, w.len, b, &e) < 0)
		fail_msg("%s\n%s", e.msg, w.buf);
	assert_memory_equal(a, b, sizeof(*a));
	jw_free(&w);
	/* hostile content is an error naming the field, never a crash */
	static const char *const bad[] = {
		"{\"revision\": 1}",
		"{\"revision\": 0, \"state\": \"DONE\"}",
		"{\"revision\": 1, \"state\": \"MAYBE\"}",
		"{\"revision\": 1, \"state\": \"DONE\", \"times\": []}",
		"{\"revision\": 1, \"state\": \"DONE\", \"times\": {\"DONE\": -1}}",
		"{\"revision\": 1, \"state\": \"FAILED\", \"failure\": {\"log\": [1]}}",
		"{\"revision\": 1, \"state\": \"FAILED\", \"failure\": {\"reason\": "
		"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
		"{\"revision\": 1, \"state\": \"DONE\", \"earlier\": [{}, {}, {}, {}, {}]}",
		"[]",
		"{\"revision\": 1, \"state\": \"DONE\"} x",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_true(tr_status_parse(bad[i], strlen(bad[i]), b, &e) < 0);
	free(a);
	free(b);
}

/* A second failure never replaces the first: not by another FAIL, not by
 * a boot that finds the try interrupted. */
TEST(test_forensics_never_overwritten)
{
	struct fx *f = *state;
	boot_state(f, 1, 7, 0); /* committed 1, try 7 consumed */
	struct tr_rec *rec = tr_rec_add(f->tr, 7);
	rec->state = REV_TESTING;
	rec->installed = true;
	assert_int_equal(mkdirat(storage_root_fd(f->s), "trails", 0755), 0);
	assert_int_equal(mkdirat(storage_root_fd(f->s), "trails/7", 0755), 0);
	struct tr_fail *fl = tr_fail_set(f->tr, "goal-timeout", "", "container app: goal READY "
							       "not reached within 5 s");
	snprintf(fl->container, sizeof(fl->container), "app");
	fl->nlog = 2;
	snprintf(fl->log[0], TR_LOG_LINE_MAX, "first line");
	snprintf(fl->log[1], TR_LOG_LINE_MAX, "last words");
	assert_int_equal(tr_event(f->tr, rec, TE_FAIL, fl, NULL), 0);
	assert_int_equal(tr_event(f->tr, rec, TE_FAIL,
				  tr_fail_set(f->tr, "crash-loop", "", "later"), NULL), 0);
	/* below the table too: a status write never replaces a failure on record */
	assert_int_equal(tr_status_store(f->tr, rec, tr_fail_set(f->tr, "storage", "", "x"), NULL), 0);
	assert_string_equal(rec->reason, "goal-timeout");
	/* the engine restarts: the consumed try is "interrupted", and FAILED stays */
	assert_int_equal(engine_open(f, 0), 0);
	struct err e = ERR_INIT;
	(void)!trails_boot(f->tr, &e); /* committed 1 is not installed: nothing runs */
	struct tr_status st;
	load_record(f, 7, &st);
	assert_int_equal(st.state, REV_FAILED);
	assert_string_equal(st.fail.code, "goal-timeout");
	assert_string_equal(st.fail.container, "app");
	assert_int_equal(st.fail.nlog, 2);
	assert_string_equal(st.fail.log[1], "last words");
	struct boot_state bs;
	assert_int_equal(trails_boot_read(f->s, &bs, NULL), 0);
	assert_int_equal(bs.committed, 1);
	assert_int_equal(bs.try_rev, 0);
	assert_true(exists(f, TR_BOOT_ERROR));
}

TEST(test_rejection_then_new_attempt_keeps_earlier)
{
	struct fx *f = *state;
	char buf[64];
	struct digest d;
	object_of('x', sizeof(buf), buf, &d);
	_cleanup_free_ char *doc = doc_with(3, &d, sizeof(buf));
	_cleanup_free_ char *sig = sign(f, doc);
	struct err e = ERR_INIT;
	struct trails_offer o;
	/* a tampered document: signature refused */
	_cleanup_free_ char *bad = strdup(doc);
	bad[strlen(bad) - 3] = ' ';
	assert_true(offer(f, 3, bad, sig, &o, &e) < 0);
	struct tr_status st;
	load_status(f, "offers/3", &st);
	assert_int_equal(st.state, REV_REJECTED);
	assert_string_equal(st.fail.code, "bad-signature");
	/* the same number, signed right: a new attempt; the rejection is kept */
	assert_int_equal(offer(f, 3, doc, sig, &o, &e), 0);
	assert_int_equal(o.state, REV_DOWNLOADING);
	load_status(f, "offers/3", &st);
	assert_int_equal(st.state, REV_DOWNLOADING);
	assert_false(st.has_fail);
	assert_int_equal(st.nearlier, 1);
	assert_string_equal(st.earlier[0].code, "bad-signature");
	assert_non_null(strstr(st.earlier[0].msg, "signature"));
}

/* ---- log tail ---- */

TEST(test_log_tail)
{
	struct fx *f = *state;
	char path[128];
	FMT(path, "%s/ctr.log", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 30; i++)
		fprintf(fp, "line %d\n", i);
	fprintf(fp, "bin\x01\xff\r\n");
	for (int i = 0; i < 300; i++)
		fputc('L', fp);
	fputc('\n', fp);
	fclose(fp);
	struct tr_fail fl = {0};
	tr_log_tail(path, &fl);
	assert_int_equal(fl.nlog, TR_LOG_LINES);
	assert_string_equal(fl.log[0], "line 12");
	assert_string_equal(fl.log[17], "line 29");
	assert_string_equal(fl.log[18], "bin??");
	assert_int_equal(strlen(fl.log[19]), TR_LOG_LINE_MAX - 1);
	/* a big file: only its end is read, the cut first line is dropped */
	fp = fopen(path, "w");
	for (int i = 0; i < 100000; i++)
		fprintf(fp, "row %d\n", i);
	fputs("no newline at the end", fp);
	fclose(fp);
	tr_log_tail(path, &fl);
	assert_int_equal(fl.nlog, TR_LOG_LINES);
	assert_string_equal(fl.log[18], "row 99999");
	assert_string_equal(fl.log[19], "no newline at the end");
	FMT(path, "%s/absent.log", f->dir);
	tr_log_tail(path, &fl);
	assert_int_equal(fl.nlog, 0);
}

/* ---- offers ---- */

TEST(test_offer_objects_install)
{
	struct fx *f = *state;
	char buf[4096];
	struct digest d;
	object_of('a', sizeof(buf), buf, &d);
	_cleanup_free_ char *doc = doc_with(2, &d, sizeof(buf));
	_cleanup_free_ char *sig = sign(f, doc);
	struct trails_offer o;
	struct err e = ERR_INIT;
	if (offer(f, 2, doc, sig, &o, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(o.state, REV_DOWNLOADING);
	assert_int_equal(o.nmissing, 1);
	assert_int_equal(o.missing_bytes, sizeof(buf));
	assert_true(digest_eq(&o.missing[0], &d));
	assert_true(exists(f, "offers/2/revision.json"));
	/* objects nobody asked for, or of the wrong size, are refused */
	char other[16];
	struct digest od;
	object_of('b', sizeof(other), other, &od);
	struct obj_writer *w = NULL;
	assert_int_equal(trails_object_begin(f->tr, &od, sizeof(other), &w, &e), -ENOENT);
	assert_int_equal(trails_object_begin(f->tr, &d, 1, &w, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "declares"));
	/* the same document again answers the same; another one is refused */
	assert_int_equal(offer(f, 2, doc, sig, &o, &e), 0);
	assert_int_equal(o.nmissing, 1);
	_cleanup_free_ char *doc2 = doc_with(2, &od, sizeof(other));
	_cleanup_free_ char *sig2 = sign(f, doc2);
	assert_int_equal(offer(f, 2, doc2, sig2, &o, &e), -EEXIST);
	put_object(f, buf, sizeof(buf), &d);
	assert_true(exists(f, "trails/2/revision.json"));
	assert_false(exists(f, "offers/2"));
	struct tr_status st;
	load_status(f, "trails/2", &st);
	assert_int_equal(st.state, REV_INSTALLED);
	assert_int_equal(st.done, sizeof(buf));
	assert_int_equal(st.total, sizeof(buf));
	assert_int_equal(trails_object_begin(f->tr, &d, sizeof(buf), &w, &e), -EEXIST);
	/* a second install of the same revision sends nothing */
	assert_int_equal(offer(f, 2, doc, sig, &o, &e), 0);
	assert_int_equal(o.state, REV_INSTALLED);
	assert_int_equal(o.nmissing, 0);
	/* views */
	struct jw jv;
	jw_init_dyn(&jv, false);
	assert_int_equal(trails_json_revision(f->tr, 2, &jv, &e), 0);
	assert_int_equal(jw_finish(&jv, NULL), 0);
	assert_non_null(strstr(jv.buf, "\"state\":\"INSTALLED\""));
	assert_non_null(strstr(jv.buf, "\"containers\":[\"web\"]"));
	jw_free(&jv);
	assert_int_equal(trails_json_revision(f->tr, 99, &jv, &e), -ENOENT);
}

static void expect_reject(struct fx *f, uint64_t rev, const char *doc, const char *sig,
			  int code, const char *reason, const char *field)
{
	struct trails_offer o;
	struct err e = ERR_INIT;
	char dir[48];
	assert_int_equal(offer(f, rev, doc, sig, &o, &e), code);
	if (field)
		assert_string_equal(e.field, field);
	struct tr_status st;
	FMT(dir, "offers/%llu", (unsigned long long)rev);
	load_status(f, dir, &st);
	assert_int_equal(st.state, REV_REJECTED);
	assert_string_equal(st.fail.code, reason);
	FMT(dir, "offers/%llu/revision.json", (unsigned long long)rev);
	assert_false(exists(f, dir));
}

TEST(test_offer_rejections)
{
	struct fx *f = *state;
	char buf[64];
	struct digest d;
	object_of('c', sizeof(buf), buf, &d);
	_cleanup_free_ char *doc5 = doc_with(5, &d, sizeof(buf));
	_cleanup_free_ char *sig5 = sign(f, doc5);
	/* offered as 6: the number in the URL must be the document's */
	expect_reject(f, 6, doc5, sig5, -EINVAL, "mismatch", "revision");
	_cleanup_free_ char *junk = strdup("{\"spec\": \"cairn-revision@1\"}");
	_cleanup_free_ char *sigj = sign(f, junk);
	expect_reject(f, 8, junk, sigj, -EINVAL, "schema", NULL);
	/* downgrade: not newer than the committed revision */
	boot_state(f, 5, 0, 0);
	assert_int_equal(engine_open(f, 0), 0);
	struct err e = ERR_INIT;
	(void)!trails_boot(f->tr, &e);
	expect_reject(f, 5, doc5, sig5, -ERANGE, "downgrade", "revision");
	/* space: refused with the numbers, before any object is taken */
	assert_int_equal(engine_open(f, 1ull << 60), 0);
	(void)!trails_boot(f->tr, &e);
	_cleanup_free_ char *doc9 = doc_with(9, &d, sizeof(buf));
	_cleanup_free_ char *sig9 = sign(f, doc9);
	struct trails_offer o;
	assert_int_equal(offer(f, 9, doc9, sig9, &o, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "MiB free"));
	assert_non_null(strstr(e.msg, "reserve"));
	struct obj_writer *w = NULL;
	assert_int_equal(trails_object_begin(f->tr, &d, sizeof(buf), &w, &e), -ENOENT);
	struct tr_status st;
	load_status(f, "offers/9", &st);
	assert_string_equal(st.fail.code, "no-space");
	/* the list view names each reason */
	struct jw jv;
	jw_init_dyn(&jv, false);
	assert_int_equal(trails_json_revisions(f->tr, &jv, &e), 0);
	assert_int_equal(jw_finish(&jv, NULL), 0);
	assert_non_null(strstr(jv.buf, "\"revision\":9,\"state\":\"REJECTED\",\"reason\":\"no-space\""));
	assert_non_null(strstr(jv.buf, "\"reason\":\"downgrade\""));
	jw_free(&jv);
}

TEST(test_newer_offer_supersedes)
{
	struct fx *f = *state;
	char a[32], b[48];
	struct digest da, db;
	object_of('a', sizeof(a), a, &da);
	object_of('b', sizeof(b), b, &db);
	_cleanup_free_ char *d3 = doc_with(3, &da, sizeof(a));
	_cleanup_free_ char *s3 = sign(f, d3);
	_cleanup_free_ char *d4 = doc_with(4, &db, sizeof(b));
	_cleanup_free_ char *s4 = sign(f, d4);
	struct trails_offer o;
	assert_int_equal(offer(f, 3, d3, s3, &o, NULL), 0);
	assert_int_equal(offer(f, 4, d4, s4, &o, NULL), 0);
	struct tr_status st;
	load_status(f, "offers/3", &st);
	assert_int_equal(st.state, REV_REJECTED);
	assert_string_equal(st.fail.code, "superseded");
	struct obj_writer *w = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(trails_object_begin(f->tr, &da, sizeof(a), &w, &e), -ENOENT);
	struct jw jv;
	jw_init_dyn(&jv, false);
	assert_int_equal(trails_json_progress(f->tr, &jv, &e), 0);
	assert_int_equal(jw_finish(&jv, NULL), 0);
	assert_non_null(strstr(jv.buf, "\"operation\":\"download\",\"revision\":4"));
	jw_free(&jv);
}

/* ---- boot: what a crash left ---- */

static void write_status(struct fx *f, const char *dir, uint64_t rev, const char *state_name)
{
	char path[96], js[160];
	FMT(path, "%s/status.json", dir);
	FMT(js, "{\"revision\": %llu, \"state\": \"%s\"}", (unsigned long long)rev, state_name);
	assert_int_equal(storage_write_durable(storage_root_fd(f->s), path, js, strlen(js), 0644, NULL),
			 0);
}

TEST(test_boot_recovery)
{
	struct fx *f = *state;
	int root = storage_root_fd(f->s);
	const char *dirs[] = {"trails", "trails/4", "trails/5", "trails/6", "offers", "offers/8"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		assert_int_equal(mkdirat(root, dirs[i], 0755), 0);
	write_status(f, "trails/4", 4, "DOWNLOADING"); /* renamed, status not yet rewritten */
	write_status(f, "trails/5", 5, "TESTING");     /* committed, DONE not yet written */
	write_status(f, "trails/6", 6, "TESTING");     /* TESTING written, try not consumed */
	/* offers/8: no status.json, an offer cut short */
	boot_state(f, 5, 0, 0);
	assert_int_equal(engine_open(f, 0), 0);
	struct err e = ERR_INIT;
	(void)!trails_boot(f->tr, &e);
	struct tr_status st;
	load_status(f, "trails/4", &st);
	assert_int_equal(st.state, REV_INSTALLED);
	load_status(f, "trails/5", &st);
	assert_int_equal(st.state, REV_DONE);
	load_status(f, "trails/6", &st);
	assert_int_equal(st.state, REV_FAILED);
	assert_string_equal(st.fail.code, "interrupted");
	assert_false(exists(f, "offers/8"));
}

/* A try booted by the file backend: TESTING before the try is consumed;
 * one that cannot even be loaded fails and the committed one is started. */
TEST(test_boot_try_consumed_then_failed)
{
	struct fx *f = *state;
	int root = storage_root_fd(f->s);
	assert_int_equal(mkdirat(root, "trails", 0755), 0);
	assert_int_equal(mkdirat(root, "trails/2", 0755), 0);
	write_status(f, "trails/2", 2, "INSTALLED");
	boot_state(f, 1, 2, 1);
	assert_int_equal(engine_open(f, 0), 0);
	struct err e = ERR_INIT;
	(void)!trails_boot(f->tr, &e);
	struct tr_status st;
	load_record(f, 2, &st);
	assert_int_equal(st.state, REV_FAILED);
	assert_string_equal(st.fail.code, "load");
	assert_true(st.times[REV_TESTING] > 0);
	struct boot_state bs;
	assert_int_equal(trails_boot_read(f->s, &bs, NULL), 0);
	assert_int_equal(bs.committed, 1);
	assert_int_equal(bs.try_rev, 0);
	/* a staged try that is interrupted again stays FAILED with its first reason */
	boot_state(f, 1, 2, 0);
	assert_int_equal(engine_open(f, 0), 0);
	(void)!trails_boot(f->tr, &e);
	load_record(f, 2, &st);
	assert_string_equal(st.fail.code, "load");
}

TEST(test_run_refusals)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	assert_int_equal(trails_run(f->tr, 3, true, &e), -ENOENT);
	struct tr_rec *rec = tr_rec_add(f->tr, 3);
	rec->installed = true;
	rec->state = REV_FAILED;
	snprintf(rec->reason, sizeof(rec->reason), "crash-loop");
	assert_int_equal(trails_run(f->tr, 3, true, &e), -EPERM);
	assert_non_null(strstr(e.msg, "crash-loop"));
	rec->state = REV_INSTALLED;
	f->tr->bs.committed = 4;
	assert_int_equal(trails_run(f->tr, 3, false, &e), -ERANGE);
	assert_non_null(strstr(e.msg, "admin"));
	f->tr->bs.try_rev = 6;
	f->tr->bs.tries = 1;
	assert_int_equal(trails_run(f->tr, 3, true, &e), -EBUSY);
}

int main(void)
{
	log_set_level(LOGL_ERR); /* the engine's warnings are expected here */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_spec),
		cmocka_unit_test_setup_teardown(test_every_pair, setup, teardown),
		cmocka_unit_test(test_status_round_trip),
		cmocka_unit_test_setup_teardown(test_forensics_never_overwritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejection_then_new_attempt_keeps_earlier, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_log_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offer_objects_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offer_rejections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_offer_supersedes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_try_consumed_then_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
