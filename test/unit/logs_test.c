/* test/unit/logs_test.c — storage/logs.c: capped logs, rotation into lz4
 * segments, oversize writes, reopen, a full disk.
 *
 * Segments are decompressed here with LZ4F_decompress and compared with the
 * exact bytes written. Every test works in a fresh mkdtemp directory; the
 * full-disk test mounts a small tmpfs there, and teardown unmounts whatever
 * is left under the directory before removing it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lz4frame.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "lib/cleanup.h"
#include "lib/util.h"
#include "storage/storage.h"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

struct fixture {
	char dir[64];
	char log[128]; /* dir/ctr.log */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-logs-test-XXXXXX");
	*state = f;
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/ctr.log", f->dir);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char full[128];
	snprintf(full, sizeof(full), "%s/full", f->dir);
	umount2(full, MNT_DETACH); /* the full-disk test's tmpfs, if still there */
	int r = tmpdir_remove(f->dir, FTW_MOUNT);
	free(f);
	return r;
}

/* ---- helpers ---- */

struct buf {
	char *p;
	size_t len;
};

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->len + n + 1);
	assert_non_null(b->p);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static struct buf read_plain(const char *path)
{
	struct buf b = {0};
	char *p;
	size_t n;
	struct err e = ERR_INIT;
	if (file_read_all(AT_FDCWD, path, 1 << 26, &p, &n, &e) < 0)
		fail_msg("%s", e.msg);
	b.p = p;
	b.len = n;
	return b;
}

/* One lz4 frame, fully checked: the whole input consumed, the frame ended,
 * the declared content size matches. */
static struct buf read_lz4(const char *path)
{
	struct buf in = read_plain(path), out = {0};
	LZ4F_dctx *d;
	LZ4F_frameInfo_t info;
	assert_false(LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
	size_t pos = 0, n = in.len;
	size_t r = LZ4F_getFrameInfo(d, &info, in.p, &n);
	assert_false(LZ4F_isError(r));
	pos = n;
	while (r != 0) {
		char chunk[16384];
		size_t olen = sizeof(chunk), ilen = in.len - pos;
		r = LZ4F_decompress(d, chunk, &olen, in.p + pos, &ilen, NULL);
		if (LZ4F_isError(r))
			fail_msg("%s: %s", path, LZ4F_getErrorName(r));
		assert_true(ilen > 0 || olen > 0); /* progress, or a truncated frame */
		pos += ilen;
		buf_add(&out, chunk, olen);
	}
	assert_int_equal(pos, in.len);
	assert_int_equal(info.contentSize, out.len);
	LZ4F_freeDecompressionContext(d);
	buf_free(&in);
	if (!out.p)
		buf_add(&out, "", 0);
	return out;
}

static void seg_path(const struct fixture *f, unsigned n, char *out, size_t cap)
{
	assert_int_equal(str_fmt(out, cap, "%s.%u.lz4", f->log, n), 0);
}

static struct logfile *open_log(const char *path, uint64_t max, unsigned keep)
{
	struct logfile *lf = NULL;
	struct err e = ERR_INIT;
	if (storage_log_open(path, max, keep, &lf, &e) < 0)
		fail_msg("%s", e.msg);
	return lf;
}

static void log_put(struct logfile *lf, const void *p, size_t n)
{
	struct err e = ERR_INIT;
	if (storage_log_write(lf, p, n, &e) < 0)
		fail_msg("%s", e.msg);
}

/* ---- tests ---- */

#define NREC 400
#define CAP 1000
#define KEEP 3

/* Oldest .. newest segment, then the live file: one contiguous tail of the
 * stream, cut only at record starts, each piece as full as the cap allows. */
static void check_segments(const struct fixture *f, const struct buf *all, const size_t *starts)
{
	char path[192];
	struct buf seg[KEEP + 1];
	size_t total = 0, k = 0;
	for (unsigned n = KEEP; n >= 1; n--) {
		seg_path(f, n, path, sizeof(path));
		seg[KEEP - n] = read_lz4(path);
	}
	seg[KEEP] = read_plain(f->log);
	for (int i = 0; i <= KEEP; i++)
		total += seg[i].len;
	assert_true(total <= all->len);
	size_t off = all->len - total;
	for (int i = 0; i <= KEEP; i++) {
		while (k < NREC && starts[k] < off)
			k++;
		assert_int_equal(starts[k], off); /* begins at a record */
		assert_true(seg[i].len <= CAP);
		assert_memory_equal(seg[i].p, all->p + off, seg[i].len);
		off += seg[i].len;
		while (k < NREC && starts[k] < off)
			k++;
		assert_int_equal(starts[k], off);
		if (i < KEEP) /* rotated because the next record did not fit */
			assert_true(seg[i].len + (starts[k + 1] - starts[k]) > CAP);
		buf_free(&seg[i]);
	}
	assert_int_equal(off, all->len);
}

/* Records of varying length; the stream and where each record starts are
 * kept so the segments can be checked byte for byte. */
static void test_rotation(void **state)
{
	struct fixture *f = *state;
	struct buf all = {0};
	size_t starts[NREC + 1];
	struct logfile *lf = open_log(f->log, CAP, KEEP);
	for (unsigned i = 0; i < NREC; i++) {
		char rec[128];
		int n = snprintf(rec, sizeof(rec), "record %u %.*s\n", i, (int)(i * 7 % 53),
				 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
		starts[i] = all.len;
		buf_add(&all, rec, (size_t)n);
		log_put(lf, rec, (size_t)n);
	}
	starts[NREC] = all.len;
	storage_log_close(lf);

	char path[192];
	for (unsigned n = 1; n <= KEEP; n++) {
		seg_path(f, n, path, sizeof(path));
		assert_true(exists(path));
	}
	seg_path(f, KEEP + 1, path, sizeof(path));
	assert_false(exists(path));
	FMT(path, "%s.1.lz4.tmp", f->log);
	assert_false(exists(path));

	check_segments(f, &all, starts);
	buf_free(&all);
}

static void test_oversize_write(void **state)
{
	struct fixture *f = *state;
	char big[250], path[192];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('A' + i % 26);
	struct logfile *lf = open_log(f->log, 100, 2);
	log_put(lf, "abc", 3);
	log_put(lf, big, sizeof(big));
	storage_log_close(lf);

	struct buf live = read_plain(f->log);
	assert_int_equal(live.len, 100);
	assert_memory_equal(live.p, big + 150, 100); /* the newest 100 bytes */
	buf_free(&live);
	seg_path(f, 1, path, sizeof(path));
	struct buf one = read_lz4(path);
	assert_string_equal(one.p, "abc");
	buf_free(&one);
	seg_path(f, 2, path, sizeof(path));
	assert_false(exists(path));
}

static void test_reopen_continues(void **state)
{
	struct fixture *f = *state;
	char a[60], b[60], path[192];
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	struct logfile *lf = open_log(f->log, 100, 2);
	log_put(lf, a, sizeof(a));
	storage_log_close(lf);
	struct stat st;
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	lf = open_log(f->log, 100, 2); /* knows the file holds 60 bytes */
	log_put(lf, b, sizeof(b));
	storage_log_close(lf);
	seg_path(f, 1, path, sizeof(path));
	struct buf one = read_lz4(path), live = read_plain(f->log);
	assert_int_equal(one.len, 60);
	assert_memory_equal(one.p, a, 60);
	assert_int_equal(live.len, 60);
	assert_memory_equal(live.p, b, 60);
	buf_free(&one);
	buf_free(&live);
}

static void test_keep_zero_and_prune(void **state)
{
	struct fixture *f = *state;
	char path[192];
	struct logfile *lf = open_log(f->log, 10, 0);
	log_put(lf, "0123456789", 10);
	log_put(lf, "abcdef", 6);
	storage_log_close(lf);
	seg_path(f, 1, path, sizeof(path));
	assert_false(exists(path));
	struct buf live = read_plain(f->log);
	assert_string_equal(live.p, "abcdef");
	buf_free(&live);

	/* segments from a run with a larger keep are removed at open */
	for (unsigned n = 1; n <= 5; n++) {
		seg_path(f, n, path, sizeof(path));
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		assert_true(fd >= 0);
	}
	lf = open_log(f->log, 10, 3);
	storage_log_close(lf);
	for (unsigned n = 1; n <= 5; n++) {
		seg_path(f, n, path, sizeof(path));
		assert_int_equal(exists(path), n <= 3);
	}
}

static void test_bad_args(void **state)
{
	struct fixture *f = *state;
	struct logfile *lf = NULL;
	struct err e = ERR_INIT;
	char path[192];
	assert_int_equal(storage_log_open(f->log, 0, 3, &lf, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "max_bytes"));
	assert_int_equal(storage_log_open(f->log, 100, 1000, &lf, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "keep"));
	assert_int_equal(storage_log_open("", 100, 3, &lf, &e), -EINVAL);
	assert_true(storage_log_open(f->dir, 100, 3, &lf, &e) < 0); /* a directory */
	assert_non_null(strstr(e.msg, f->dir));
	FMT(path, "%s/link.log", f->dir); /* a symlink is not followed */
	assert_int_equal(symlink(f->log, path), 0);
	assert_int_equal(storage_log_open(path, 100, 3, &lf, &e), -ELOOP);
	assert_false(exists(f->log));
	assert_null(lf);
	storage_log_close(NULL);
}

/* Incompressible bytes, so segments take as much room as the log. */
static void fill_random(char *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
		p[i] = (char)seed;
	}
}

/* A full disk (256 KiB of tmpfs for a 64 KiB cap, keep 3, incompressible
 * lines): writes fail with ENOSPC at once (never a loop, never a hang), and
 * logging resumes once there is room again. */
static void test_full_disk(void **state)
{
	struct fixture *f = *state;
	char full[128], log[192];
	struct err e = ERR_INIT;
	FMT(full, "%s/full", f->dir);
	assert_int_equal(mkdir(full, 0755), 0);
	assert_int_equal(storage_mount_tmpfs(full, "size=256k", &e), 0);
	FMT(log, "%s/ctr.log", full);
	struct logfile *lf = open_log(log, 64 * 1024, 3);

	static char chunk[8192];
	int errors = 0, first_err = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < 200; i++) {
		fill_random(chunk, sizeof(chunk), (uint32_t)i + 1);
		int r = storage_log_write(lf, chunk, sizeof(chunk), &e);
		if (r < 0 && !errors++) {
			first_err = r;
			assert_non_null(strstr(e.msg, log));
		}
	}
	uint64_t ms = (now_ns() - t0) / 1000000;
	assert_int_equal(first_err, -ENOSPC);
	assert_true(errors > 0);
	assert_true(ms < 5000);
	printf("full disk: 200 writes of 8 KiB, %d failed, %llu ms\n", errors,
	       (unsigned long long)ms);

	/* room again: drop the oldest segments, writes succeed */
	for (unsigned n = 1; n <= 3; n++) {
		char seg[200];
		FMT(seg, "%s.%u.lz4", log, n);
		unlink(seg);
	}
	assert_int_equal(storage_log_write(lf, "back\n", 5, &e), 0);
	storage_log_close(lf);
	assert_int_equal(umount2(full, 0), 0);
}

/* Rotation of a full 1 MiB segment of log-like text: the cost the
 * orchestrator loop pays once per MiB of a container's output. */
static void test_rotation_cost(void **state)
{
	struct fixture *f = *state;
	const uint64_t cap = 1 << 20;
	struct logfile *lf = open_log(f->log, cap, 2);
	char line[4096];
	size_t used = 0;
	unsigned seq = 0;
	while (used + sizeof(line) <= cap) {
		/* distinct lines, like a daemon's output: timestamps, counters */
		size_t n = 0;
		for (;;) {
			char one[160];
			int k = snprintf(one, sizeof(one),
					 "2026-11-21T10:%02u:%02u.%06uZ net[%u]: eth0 rx %u tx %u "
					 "drops %u\n",
					 seq / 3600 % 60, seq / 60 % 60, seq * 7919 % 1000000,
					 100 + seq % 7, seq * 1543, seq * 977, seq % 13);
			if (n + (size_t)k > sizeof(line))
				break;
			memcpy(line + n, one, (size_t)k);
			n += (size_t)k;
			seq++;
		}
		memset(line + n, '\n', sizeof(line) - n);
		log_put(lf, line, sizeof(line));
		used += sizeof(line);
	}
	uint64_t t0 = now_ns();
	log_put(lf, line, sizeof(line)); /* does not fit: rotates */
	uint64_t us = (now_ns() - t0) / 1000;
	storage_log_close(lf);
	char path[192];
	struct stat st;
	seg_path(f, 1, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	struct buf one = read_lz4(path);
	assert_int_equal(one.len, used);
	buf_free(&one);
	printf("rotation of %zu bytes: %llu us, segment %lld bytes (%.1f%%)\n", used,
	       (unsigned long long)us, (long long)st.st_size, 100.0 * (double)st.st_size / (double)used);
	assert_true(us < 2000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_zero_and_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_cost, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
