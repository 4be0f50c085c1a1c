/* test/unit/gc_test.c — space admission and garbage collection (trails/gc.c).
 *
 * The world most tests use: objects A..G in the store and four installed
 * revisions, written straight into trails/ (gc parses, it does not verify):
 *   rev 1: A B    rev 2: B C    rev 3: C D    rev 4: D E
 *   F is referenced by nothing; G only by keep_objects (a download in flight).
 * Collect with keep = {3, 4} must leave trails {3, 4} and objects C D E G.
 * Crash cases run gc in a forked child (CAIRN_CRASH_AT) that inherits the
 * store handle, so its first durable operation is the collect's first. The
 * admission case mounts a 16 MiB tmpfs inside a child's own mount namespace,
 * so nothing stays mounted whatever happens. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child.h"
#include "tmpdir.h"

#include "lib/cleanup.h"
#include "lib/digest.h"
#include "lib/util.h"
#include "storage/storage.h"
#include "trails/trails_internal.h"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)
#define NOBJ 7 /* A..G */
#define MiB (1024ull * 1024)

struct world {
	char root[128];
	struct storage *s;
	struct digest obj[NOBJ];
	uint64_t size[NOBJ];
	uint64_t trail_bytes[5]; /* bytes of trails/<rev>/ files, by rev */
};

struct fixture {
	char dir[64]; /* mkdtemp, removed in teardown */
	struct world w;
	unsigned nworld; /* worlds made, for unique roots */
};

static const int revs_of[5][2] = {{0, 0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}}; /* rev -> objects */
static const uint64_t keep34[] = {3, 4};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	return tmpdir_make(f->dir, sizeof(f->dir), "gc");
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->w.s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* ---- building a store ---- */

static void put_object(struct storage *s, size_t len, unsigned seed, struct digest *d)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	sha256_buf(p, len, d);
	struct obj_writer *w;
	struct err e = ERR_INIT;
	assert_int_equal(storage_object_begin(s, d, len, &w, &e), 0);
	assert_int_equal(storage_object_write(w, p, len, &e), 0);
	if (storage_object_commit(w, &e) < 0)
		fail_msg("put: %s", e.msg);
	free(p);
}

/* A revision document naming objects idx[0..n) (containers c0, c1, ...). */
static void rev_doc(const struct world *w, uint64_t rev, const int *idx, size_t n, char *out,
		    size_t cap)
{
	size_t len = 0;
	int k = snprintf(out, cap, "{\"spec\": \"cairn-revision@1\", \"revision\": %llu, "
			 "\"created\": \"2026-11-21T10:00:00Z\", \"containers\": [",
			 (unsigned long long)rev);
	assert_true(k > 0 && (size_t)k < cap);
	len = (size_t)k;
	for (size_t i = 0; i < n; i++) {
		char id[DIGEST_STR_LEN + 1];
		digest_format(&w->obj[idx[i]], id);
		k = snprintf(out + len, cap - len, "%s{\"name\": \"c%zu\", \"group\": \"app\", "
			     "\"rootfs\": {\"object\": \"%s\", \"size\": %llu}, \"exec\": "
			     "[\"/bin/sh\"]}", i ? ", " : "", i, id,
			     (unsigned long long)w->size[idx[i]]);
		assert_true(k > 0 && (size_t)k < cap - len);
		len += (size_t)k;
	}
	assert_true(len + 3 < cap);
	memcpy(out + len, "]}", 3);
}

static void write_file(const char *dir, const char *name, const char *text, uint64_t *bytes)
{
	char path[256];
	FMT(path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
	if (bytes)
		*bytes += strlen(text);
}

/* trails/<rev>/ with revision.json (doc), revision.sig and status.json. */
static void make_trail(struct world *w, uint64_t rev, const char *doc)
{
	char dir[192];
	FMT(dir, "%s/trails", w->root);
	if (mkdir(dir, 0755) < 0)
		assert_int_equal(errno, EEXIST);
	FMT(dir, "%s/trails/%llu", w->root, (unsigned long long)rev);
	assert_int_equal(mkdir(dir, 0755), 0);
	uint64_t *bytes = rev < 5 ? &w->trail_bytes[rev] : NULL;
	write_file(dir, "revision.json", doc, bytes);
	write_file(dir, "revision.sig", "{\"spec\": \"cairn-signature@1\"}", bytes);
	write_file(dir, "status.json", "{\"state\": \"DONE\"}", bytes);
}

/* A fresh store holding the world of the header comment, plus a stale
 * tmp/gc-9-1/ left by an interrupted collect. */
static void world_make(struct fixture *f)
{
	struct world *w = &f->w;
	storage_close(w->s);
	memset(w, 0, sizeof(*w));
	FMT(w->root, "%s/store%u", f->dir, f->nworld++);
	assert_int_equal(mkdir(w->root, 0755), 0);
	struct err e = ERR_INIT;
	assert_int_equal(storage_open(w->root, &w->s, &e), 0);
	for (int i = 0; i < NOBJ; i++) {
		w->size[i] = 1000 + 37 * (uint64_t)i;
		put_object(w->s, w->size[i], (unsigned)i + 1, &w->obj[i]);
	}
	char doc[4096];
	for (uint64_t rev = 1; rev <= 4; rev++) {
		rev_doc(w, rev, revs_of[rev], 2, doc, sizeof(doc));
		make_trail(w, rev, doc);
	}
	char stale[192];
	FMT(stale, "%s/tmp/gc-9-1", w->root);
	assert_int_equal(mkdir(stale, 0755), 0);
	write_file(stale, "revision.json", "{}", NULL);
	write_file(stale, "status.json", "{}", NULL);
}

static bool trail_exists(const struct world *w, const char *name)
{
	char path[192];
	FMT(path, "%s/trails/%s", w->root, name);
	return access(path, F_OK) == 0;
}

static int count_entries(const char *path, const char *prefix)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0 && de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Objects present, as a bit mask over A..G. */
static unsigned present(const struct world *w)
{
	unsigned m = 0;
	for (int i = 0; i < NOBJ; i++)
		m |= storage_object_has(w->s, &w->obj[i]) ? 1u << i : 0;
	return m;
}

#define BIT(c) (1u << ((c) - 'A'))

static void assert_final(const struct world *w)
{
	char tmp[192];
	assert_false(trail_exists(w, "1"));
	assert_false(trail_exists(w, "2"));
	assert_true(trail_exists(w, "3"));
	assert_true(trail_exists(w, "4"));
	assert_int_equal(present(w), BIT('C') | BIT('D') | BIT('E') | BIT('G'));
	FMT(tmp, "%s/tmp", w->root);
	assert_int_equal(count_entries(tmp, "gc-"), 0);
}

static int collect(struct world *w, const uint64_t *keep, size_t nkeep, uint64_t *freed,
		   struct err *e)
{
	return gc_collect(w->s, keep, nkeep, &w->obj['G' - 'A'], 1, freed, e);
}

/* ---- admission ---- */

static void test_missing_bytes(void **state)
{
	struct fixture *f = *state;
	world_make(f);
	struct world *w = &f->w;
	struct digest x, y;
	sha256_buf("x", 1, &x); /* not in the store */
	sha256_buf("y", 1, &y);
	char doc[2048], xs[DIGEST_STR_LEN + 1], ys[DIGEST_STR_LEN + 1], as[DIGEST_STR_LEN + 1];
	digest_format(&x, xs), digest_format(&y, ys), digest_format(&w->obj[0], as);
	/* A present; X used by two containers; Y as the kernel */
	FMT(doc, "{\"spec\": \"cairn-revision@1\", \"revision\": 9, \"created\": "
	    "\"2026-11-21T10:00:00Z\", "
	    "\"bsp\": {\"kernel\": {\"object\": \"%s\", \"size\": 5000}}, "
	    "\"containers\": [{\"name\": \"a\", \"group\": \"app\", "
	    "\"rootfs\": {\"object\": \"%s\", "
	    "\"size\": 1000}, \"exec\": [\"/bin/sh\"]}, {\"name\": \"b\", \"group\": \"app\", "
	    "\"rootfs\": {\"object\": \"%s\", \"size\": 300000}, \"exec\": [\"/bin/sh\"]}, "
	    "{\"name\": \"c\", \"group\": \"app\", \"rootfs\": {\"object\": \"%s\", \"size\": "
	    "300000}, \"exec\": [\"/bin/sh\"]}]}",
	    ys, as, xs, xs);
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	if (revision_parse(doc, strlen(doc), REV_PARSE_DEVICE, &r, &e) < 0)
		fail_msg("parse: %s", e.msg);
	assert_int_equal(gc_missing_bytes(w->s, r), 300000 + 5000);
	revision_free(r);
	rev_doc(w, 10, (const int[]){2, 3}, 2, doc, sizeof(doc)); /* everything present */
	assert_int_equal(revision_parse(doc, strlen(doc), REV_PARSE_DEVICE, &r, &e), 0);
	assert_int_equal(gc_missing_bytes(w->s, r), 0);
	revision_free(r);
}

/* In a child with its own mount namespace: a 16 MiB tmpfs, a store on it,
 * and each admission case written to `out` as "<ret> <message>\n". */
static int admit_child(const char *mnt, int out)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m") < 0)
		return 77;
	struct storage *s = NULL;
	if (storage_open(mnt, &s, NULL) < 0)
		return 1;
	static const uint64_t cases[][2] = {
		{12 * MiB, 8 * MiB}, {8 * MiB, 8 * MiB}, {8 * MiB + 1, 8 * MiB},
		{0, 0},              {UINT64_MAX, 1},    {1, UINT64_MAX},
	};
	char line[700];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct err e = ERR_INIT;
		int r = gc_admit(s, cases[i][0], cases[i][1], &e);
		int n = snprintf(line, sizeof(line), "%d %s\n", r, r < 0 ? e.msg : "");
		if (n < 0 || write_all(out, line, (size_t)n) < 0)
			return 1;
	}
	storage_close(s);
	return 0;
}

static void test_admit(void **state)
{
	struct fixture *f = *state;
	char mnt[128];
	FMT(mnt, "%s/mnt", f->dir);
	assert_int_equal(mkdir(mnt, 0755), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(admit_child(mnt, p[1]));
	close(p[1]);
	char buf[4096] = "";
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* no mount namespace here */
	assert_int_equal(WEXITSTATUS(status), 0);
	const char *want = "-28 not enough space: needs 12.0 MiB, 16.0 MiB free, 8.0 MiB reserve\n"
			   "0 \n"
			   "-28 not enough space: needs 8.0 MiB, 16.0 MiB free, 8.0 MiB reserve\n"
			   "0 \n"
			   "-28 not enough space: needs 17592186044416.0 MiB, 16.0 MiB free, "
			   "0.0 MiB reserve\n"
			   "-28 not enough space: needs 0.0 MiB, 16.0 MiB free, "
			   "17592186044416.0 MiB reserve\n";
	assert_string_equal(buf, want);
}

/* ---- collect ---- */

static void test_collect(void **state)
{
	struct fixture *f = *state;
	world_make(f);
	struct world *w = &f->w;
	uint64_t freed = 0;
	struct err e = ERR_INIT;
	if (collect(w, keep34, 2, &freed, &e) < 0)
		fail_msg("gc: %s", e.msg);
	assert_final(w); /* C: shared by removed 2 and kept 3, survives */
	/* removed: A, B, F and the files of revisions 1 and 2 (the stale gc dir: 4 bytes) */
	uint64_t want = w->size[0] + w->size[1] + w->size[5] + w->trail_bytes[1] +
			w->trail_bytes[2] + 4;
	assert_int_equal(freed, want);
	for (int i = 2; i <= 4; i++) /* kept objects are intact */
		assert_int_equal(storage_object_verify(w->s, &w->obj[i], w->size[i], NULL), 0);
	/* again: nothing left to do */
	assert_int_equal(collect(w, keep34, 2, &freed, &e), 0);
	assert_int_equal(freed, 0);
	assert_final(w);
	/* keep nothing: every revision goes, only keep_objects stay */
	assert_int_equal(collect(w, NULL, 0, &freed, &e), 0);
	assert_false(trail_exists(w, "3") || trail_exists(w, "4"));
	assert_int_equal(present(w), BIT('G'));
	assert_int_equal(gc_collect(w->s, NULL, 0, NULL, 0, &freed, &e), 0);
	assert_int_equal(freed, w->size[6]);
	assert_int_equal(present(w), 0);
}

/* A kept directory holding only a status record references nothing. */
static void test_collect_status_only(void **state)
{
	struct fixture *f = *state;
	world_make(f);
	struct world *w = &f->w;
	char dir[192];
	FMT(dir, "%s/trails/7", w->root);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "status.json", "{\"state\": \"DOWNLOADING\"}", NULL);
	uint64_t freed;
	struct err e = ERR_INIT;
	const uint64_t keep[] = {3, 4, 7};
	assert_int_equal(collect(w, keep, 3, &freed, &e), 0);
	assert_true(trail_exists(w, "7"));
	assert_final(w);
}

static void unprovable(struct fixture *f, const char *what, const char *needle)
{
	world_make(f);
	struct world *w = &f->w;
	char dir[192];
	const uint64_t keep[] = {3, 4, 5};
	if (strcmp(what, "junk") == 0) {
		FMT(dir, "%s/trails/junk", w->root);
		assert_int_equal(mkdir(dir, 0755), 0);
	} else {
		make_trail(w, 5, what);
	}
	uint64_t freed;
	struct err e = ERR_INIT;
	int r = collect(w, keep, 3, &freed, &e);
	if (r >= 0 || !strstr(e.msg, needle) || !strstr(e.msg, "every object kept"))
		fail_msg("gc: got %d \"%s\", want an error with \"%s\"", r, e.msg, needle);
	assert_int_equal(present(w), (1u << NOBJ) - 1); /* not one object deleted */
	assert_false(trail_exists(w, "1") || trail_exists(w, "2")); /* revisions still go */
	assert_true(trail_exists(w, "3") && trail_exists(w, "4"));
	assert_true(trail_exists(w, strcmp(what, "junk") == 0 ? "junk" : "5"));
}

static void test_collect_unprovable(void **state)
{
	struct fixture *f = *state;
	unprovable(f, "{\"spec\": ", "trails/5/revision.json");
	unprovable(f, "{\"spec\": \"cairn-revision@1\"}", "trails/5/revision.json");
	unprovable(f, "junk", "trails/junk: not a revision directory");
}

/* ---- crash at every durable operation of a collect ---- */

static int collect_in_child(void *arg, int out)
{
	unsigned long before = storage_durable_count();
	uint64_t freed;
	int r = collect(arg, keep34, 2, &freed, NULL);
	child_report(out, storage_durable_count() - before);
	return r < 0 ? 3 : 0;
}

/* Run a collect in a child (child.h); returns ops done (no crash) or 0 when killed. */
static unsigned long fork_collect(struct world *w, const char *crash, bool *was_killed)
{
	struct child c;
	run_child(collect_in_child, w, crash ? "CAIRN_CRASH_AT" : NULL, crash, &c);
	*was_killed = killed(&c);
	if (!*was_killed && !(exit_code(&c) == 0 && c.nnums == 1))
		fail_msg("collect child (%s): status %#x", crash ? crash : "no crash", c.status);
	return *was_killed ? 0 : c.nums[0];
}

/* Whatever the crash point: every revision in trails/ is whole, and every
 * object it names is present with the right bytes; kept things are there. */
static void assert_consistent(const struct world *w, const char *crash)
{
	for (uint64_t rev = 1; rev <= 4; rev++) {
		char name[8], path[192];
		FMT(name, "%llu", (unsigned long long)rev);
		if (!trail_exists(w, name))
			continue;
		static const char *const files[] = {"revision.json", "revision.sig", "status.json"};
		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			FMT(path, "%s/trails/%s/%s", w->root, name, files[i]);
			if (access(path, F_OK) < 0)
				fail_msg("%s: trails/%s lacks %s", crash, name, files[i]);
		}
		for (int i = 0; i < 2; i++) {
			int o = revs_of[rev][i];
			if (storage_object_verify(w->s, &w->obj[o], w->size[o], NULL) < 0)
				fail_msg("%s: revision %s lost object %c", crash, name, 'A' + o);
		}
	}
	assert_true(trail_exists(w, "3") && trail_exists(w, "4"));
	assert_true(storage_object_has(w->s, &w->obj['G' - 'A']));
}

static void test_crash_every_op(void **state)
{
	struct fixture *f = *state;
	world_make(f);
	bool was_killed;
	unsigned long total = fork_collect(&f->w, NULL, &was_killed);
	assert_false(was_killed);
	/* stale dir: 2 files + rmdir; revisions 1, 2: rename + 3 files + rmdir; A B F */
	assert_int_equal(total, 3 + 2 * 5 + 3);
	assert_final(&f->w);
	unsigned points = 0;
	for (unsigned long n = 1; n <= total; n++) {
		for (int after = 0; after < 2; after++) {
			char crash[32];
			FMT(crash, "%s:%lu", after ? "after" : "before", n);
			world_make(f);
			(void)fork_collect(&f->w, crash, &was_killed);
			if (!was_killed)
				fail_msg("CAIRN_CRASH_AT=%s: the child was not killed", crash);
			assert_consistent(&f->w, crash);
			uint64_t freed;
			struct err e = ERR_INIT;
			/* the next collect finishes the work */
			if (collect(&f->w, keep34, 2, &freed, &e) < 0)
				fail_msg("%s: gc after the crash: %s", crash, e.msg);
			assert_final(&f->w);
			points++;
		}
	}
	print_message("gc crash points covered: %u (%lu durable operations)\n", points, total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_status_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collect_unprovable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_every_op, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
