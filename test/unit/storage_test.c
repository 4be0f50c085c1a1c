/* test/unit/storage_test.c — durable operations and the object store.
 * Each test gets a mkdtemp directory with a store in it, removed in teardown.
 * Fault injection reads its environment at a process's first durable op, so
 * crash/failure cases run in a forked child that sets CAIRN_CRASH_AT or
 * CAIRN_FAIL_AT; it reports through its exit status and a pipe, never cmocka. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

struct fixture {
	char dir[64];  /* mkdtemp, removed in teardown */
	char root[96]; /* dir/store */
	int dirfd;
	struct storage *s; /* opened at root by setup */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-storage-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
	if (mkdir(f->root, 0755) < 0)
		return -1;
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->dirfd < 0 || storage_open(f->root, &f->s, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	close(f->dirfd);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* ---- helpers ---- */

static uint8_t *random_bytes(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static struct storage *open_store(const char *root)
{
	struct storage *s = NULL;
	struct err e = ERR_INIT;
	if (storage_open(root, &s, &e) < 0)
		fail_msg("storage_open %s: %s", root, e.msg);
	return s;
}

/* Put with begin/write/commit in uneven pieces. */
static int put_bytes(struct storage *s, const struct digest *d, const void *data, size_t len,
		     uint64_t declared, struct err *e)
{
	struct obj_writer *w;
	int r = storage_object_begin(s, d, declared, &w, e);
	if (r < 0)
		return r;
	const uint8_t *p = data;
	for (size_t off = 0, n = 1; off < len; off += n, n = n * 3 + 7) {
		if (n > len - off)
			n = len - off;
		r = storage_object_write(w, p + off, n, e);
		if (r < 0) {
			storage_object_abort(w);
			return r;
		}
	}
	return storage_object_commit(w, e);
}

/* Number of non-directories anywhere under root/sub (0 if it is missing). */
static int count_files_in;
static int count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path, (void)st, (void)ftw;
	count_files_in += flag != FTW_D && flag != FTW_DP;
	return 0;
}

static int count_files(const char *root, const char *sub)
{
	char path[256];
	assert_int_equal(str_fmt(path, sizeof(path), "%s/%s", root, sub), 0);
	count_files_in = 0;
	if (access(path, F_OK) < 0)
		return 0;
	assert_int_equal(nftw(path, count_one, 16, FTW_PHYS), 0);
	return count_files_in;
}

/* Read end of a pipe holding `len` bytes of `data`, write end closed. */
static int pipe_with(const char *data, size_t len)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write_all(p[1], data, len), 0);
	close(p[1]);
	return p[0];
}

/* mkdir / create a file ("junk") at a formatted path, asserted. */
#define VPATH(path, fmt)                                                                           \
	char path[512];                                                                            \
	va_list ap;                                                                                \
	va_start(ap, fmt);                                                                         \
	int n_ = vsnprintf(path, sizeof(path), fmt, ap);                                          \
	va_end(ap);                                                                                \
	assert_true(n_ > 0 && (size_t)n_ < sizeof(path))

static void _printf_(1, 2) mkdirf(const char *fmt, ...)
{
	VPATH(path, fmt);
	if (mkdir(path, 0755) < 0)
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void _printf_(1, 2) mkfilef(const char *fmt, ...)
{
	VPATH(path, fmt);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, "junk", 4) < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	close(fd);
}

static int list_count_cb(const struct digest *d, void *ctx)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

static int list_count(struct storage *s)
{
	int n = 0;
	struct err e = ERR_INIT;
	assert_int_equal(storage_object_list(s, list_count_cb, &n, &e), 0);
	return n;
}


/* ---- object store: basics ---- */

static void assert_object_path(struct storage *s, const struct digest *d)
{
	char path[512], hex[DIGEST_STR_LEN + 1], want[512];
	digest_format(d, hex);
	assert_int_equal(storage_object_path(s, d, path, sizeof(path)), 0);
	FMT(want, "%s/objects/sha256/%.2s/%s", storage_root_path(s), hex + 7, hex + 9);
	assert_string_equal(path, want);
	assert_int_equal(access(path, R_OK), 0);
	assert_int_equal(storage_object_path(s, d, path, 20), -ENAMETOOLONG);
}

static void test_put_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	size_t len = 200000;
	_cleanup_free_ uint8_t *data = random_bytes(len, 1);
	struct digest d;
	sha256_buf(data, len, &d);
	assert_false(storage_object_has(s, &d));
	assert_int_equal(put_bytes(s, &d, data, len, len, &e), 0);
	assert_true(storage_object_has(s, &d));
	uint64_t size = 0;
	assert_int_equal(storage_object_size(s, &d, &size, &e), 0);
	assert_int_equal(size, len);
	int fd = -1;
	assert_int_equal(storage_object_open(s, &d, &fd, &e), 0);
	_cleanup_free_ uint8_t *back = malloc(len + 1);
	assert_int_equal(read_all(fd, back, len + 1), len);
	assert_memory_equal(back, data, len);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0444);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	assert_object_path(s, &d);
	assert_int_equal(storage_object_verify(s, &d, len, &e), 0);
	assert_int_equal(storage_object_verify(s, &d, UINT64_MAX, &e), 0);
	assert_int_equal(list_count(s), 1);
	assert_int_equal(count_files(f->root, "tmp"), 0);
	assert_int_equal(storage_object_remove(s, &d, &e), 0);
	assert_false(storage_object_has(s, &d));
	assert_int_equal(list_count(s), 0);
	assert_int_equal(storage_object_verify(s, &d, len, &e), -ENOENT);
	assert_int_equal(storage_object_remove(s, &d, &e), 0); /* absent: fine */
}

static void test_put_fd_empty_existing(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	size_t len = 3 * 1024 * 1024 + 17; /* more than one 1 MiB read */
	_cleanup_free_ uint8_t *data = random_bytes(len, 2);
	struct digest d;
	sha256_buf(data, len, &d);
	char src[128];
	FMT(src, "%s/src", f->dir);
	int fd = open(src, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(storage_object_put_fd(s, fd, &d, len, &e), 0);
	close(fd);
	assert_int_equal(storage_object_verify(s, &d, len, &e), 0);
	/* from a pipe */
	int pfd = pipe_with("pipe data", 9);
	sha256_buf("pipe data", 9, &d);
	assert_int_equal(storage_object_put_fd(s, pfd, &d, 9, &e), 0);
	close(pfd);
	assert_true(storage_object_has(s, &d));
	sha256_buf("", 0, &d);
	assert_int_equal(put_bytes(s, &d, "", 0, 0, &e), 0);
	assert_true(storage_object_has(s, &d));
	assert_int_equal(storage_object_verify(s, &d, 0, &e), 0);
	/* the same object again is not an error */
	sha256_buf("hello", 5, &d);
	assert_int_equal(put_bytes(s, &d, "hello", 5, 5, &e), 0);
	assert_int_equal(put_bytes(s, &d, "hello", 5, 5, &e), 0);
	assert_int_equal(list_count(s), 4);
	assert_int_equal(count_files(f->root, "tmp"), 0);
}

/* ---- object store: bad puts leave nothing ---- */

static void assert_store_empty(const struct fixture *f, struct storage *s)
{
	assert_int_equal(count_files(f->root, "objects"), 0);
	assert_int_equal(count_files(f->root, "tmp"), 0);
	assert_int_equal(list_count(s), 0);
}

static void test_bad_puts_leave_nothing(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	struct digest want, got;
	sha256_buf("expected", 8, &want);
	sha256_buf("delivered", 9, &got);
	char ws[DIGEST_STR_LEN + 1], gs[DIGEST_STR_LEN + 1], msg[256];
	digest_format(&want, ws);
	digest_format(&got, gs);
	assert_int_equal(put_bytes(s, &want, "delivered", 9, 9, &e), -EBADMSG);
	FMT(msg, "object %s: digest mismatch (got %s)", ws, gs);
	assert_string_equal(e.msg, msg);
	assert_false(storage_object_has(s, &want));
	assert_false(storage_object_has(s, &got));
	assert_store_empty(f, s);
	/* the same through put_fd */
	int pfd = pipe_with("delivered", 9);
	assert_int_equal(storage_object_put_fd(s, pfd, &want, 9, &e), -EBADMSG);
	close(pfd);
	assert_store_empty(f, s);
	struct digest d;
	sha256_buf("0123456789", 10, &d); /* short puts */
	assert_int_equal(put_bytes(s, &d, "012345678", 9, 10, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "size 9 != declared 10"));
	assert_store_empty(f, s);
	pfd = pipe_with("01234", 5);
	assert_int_equal(storage_object_put_fd(s, pfd, &d, 10, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "size 5 != declared 10"));
	close(pfd);
	assert_store_empty(f, s);
}

static void test_overlong_put(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	struct digest d;
	sha256_buf("0123456789", 10, &d);
	struct obj_writer *w;
	assert_int_equal(storage_object_begin(s, &d, 10, &w, &e), 0);
	assert_int_equal(storage_object_write(w, "01234", 5, &e), 0);
	/* refused at once, before any of it is written */
	assert_int_equal(storage_object_write(w, "567890", 6, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "more than the declared 10 bytes"));
	assert_int_equal(storage_object_written(w), 5);
	assert_int_equal(storage_object_write(w, "56789", 5, &e), -EFBIG); /* stays failed */
	assert_int_equal(storage_object_commit(w, &e), -EFBIG);
	assert_store_empty(f, s);
	int pfd = pipe_with("0123456789!", 11);
	assert_int_equal(storage_object_put_fd(s, pfd, &d, 10, &e), -EFBIG);
	close(pfd);
	assert_store_empty(f, s);
	/* abort, and sizes refused by begin */
	sha256_buf("x", 1, &d);
	assert_int_equal(storage_object_begin(s, &d, 1, &w, &e), 0);
	assert_int_equal(count_files(f->root, "tmp"), 1);
	storage_object_abort(w);
	assert_store_empty(f, s);
	assert_int_equal(storage_object_begin(s, &d, UINT64_MAX, &w, &e), -EFBIG);
	/* a size no disk can hold fails up front (reserved with fallocate) */
	int r = storage_object_begin(s, &d, 1ull << 60, &w, &e);
	if (r == 0)
		storage_object_abort(w); /* a file system without fallocate */
	else
		assert_true(r == -ENOSPC || r == -EFBIG);
	assert_store_empty(f, s);
}

static void test_verify_detects_damage(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	size_t len = 100000;
	_cleanup_free_ uint8_t *data = random_bytes(len, 3);
	struct digest d;
	sha256_buf(data, len, &d);
	assert_int_equal(put_bytes(s, &d, data, len, len, &e), 0);
	assert_int_equal(storage_object_verify(s, &d, len + 1, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "size 100000 != declared 100001"));
	char path[512];
	assert_int_equal(storage_object_path(s, &d, path, sizeof(path)), 0);
	assert_int_equal(chmod(path, 0644), 0);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 5000), 1);
	close(fd);
	assert_int_equal(storage_object_verify(s, &d, len, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "digest mismatch (got sha256:"));
	assert_int_equal(storage_object_verify(s, &d, UINT64_MAX, &e), -EBADMSG);
}

/* ---- layout: junk is ignored, symlinks are refused ---- */


static void test_list_ignores_junk(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	struct digest d;
	sha256_buf("real", 4, &d);
	assert_int_equal(put_bytes(s, &d, "real", 4, 4, &e), 0);
	char p[512], hex[DIGEST_STR_LEN + 1];
	digest_format(&d, hex);
	const char *h62 = hex + 9;
	mkdirf("%s/objects/sha256/zz", f->root);
	mkdirf("%s/objects/sha256/AB", f->root);
	mkdirf("%s/objects/sha256/ab", f->root);
	mkfilef("%s/objects/sha256/README", f->root);
	mkfilef("%s/objects/sha256/ab/notanobject", f->root);
	mkfilef("%s/objects/sha256/ab/%.61s", f->root, h62); /* 61 hex */
	mkfilef("%s/objects/sha256/ab/%.61sF", f->root, h62); /* 62 chars, one uppercase */
	mkdirf("%s/objects/sha256/ab/%s", f->root, h62); /* a directory named like an object */
	mkdirf("%s/objects/sha256/cd", f->root);
	FMT(p, "%s/objects/sha256/cd/%s", f->root, h62);
	assert_int_equal(symlink("/etc/passwd", p), 0); /* a symlink named like an object */
	assert_int_equal(list_count(s), 1);
}

static void test_symlinks_refused(void **state)
{
	struct fixture *f = *state;
	struct storage *s = f->s;
	struct err e = ERR_INIT;
	struct digest d;
	sha256_buf("target", 6, &d);
	char hex[DIGEST_STR_LEN + 1], fan[512], elsewhere[512], p[512];
	digest_format(&d, hex);
	/* the fan-out directory of d is a symlink to a directory holding "d" */
	FMT(elsewhere, "%s/elsewhere", f->dir);
	assert_int_equal(mkdir(elsewhere, 0755), 0);
	FMT(p, "%s/%s", elsewhere, hex + 9);
	mkfilef("%s", p);
	FMT(fan, "%s/objects/sha256/%.2s", f->root, hex + 7);
	assert_int_equal(symlink(elsewhere, fan), 0);
	assert_false(storage_object_has(s, &d));
	int ofd = -1;
	assert_int_equal(storage_object_open(s, &d, &ofd, &e), -ELOOP);
	assert_int_equal(storage_object_verify(s, &d, 6, &e), -ELOOP);
	assert_int_equal(list_count(s), 0);
	/* a put through it fails and writes nothing there */
	assert_true(put_bytes(s, &d, "target", 6, 6, &e) < 0);
	assert_int_equal(count_files(f->dir, "elsewhere"), 1);
	assert_int_equal(count_files(f->root, "tmp"), 0);
	assert_true(storage_object_remove(s, &d, &e) < 0);
	assert_int_equal(access(p, F_OK), 0);
	/* objects/ itself a symlink: the store does not open */
	char root2[256], objs[300];
	FMT(root2, "%s/store2", f->dir);
	assert_int_equal(mkdir(root2, 0755), 0);
	FMT(objs, "%s/objects", root2);
	assert_int_equal(symlink(elsewhere, objs), 0);
	struct storage *s2 = NULL;
	assert_int_equal(storage_open(root2, &s2, &e), -ENOTDIR);
	assert_null(s2);
}

static void test_open_sweeps_tmp(void **state)
{
	struct fixture *f = *state;
	mkfilef("%s/tmp/obj-0000-1-1", f->root);
	mkfilef("%s/tmp/obj-", f->root);
	mkfilef("%s/tmp/download.part", f->root); /* not ours: kept */
	char p[256];
	FMT(p, "%s/tmp/obj-dir", f->root); /* cannot be unlinked: open still works */
	assert_int_equal(mkdir(p, 0755), 0);
	struct storage *s = open_store(f->root); /* the sweep happens here */
	assert_int_equal(count_files(f->root, "tmp"), 1);
	assert_int_equal(access(p, F_OK), 0);
	FMT(p, "%s/tmp/download.part", f->root);
	assert_int_equal(access(p, F_OK), 0);
	uint64_t free_bytes = 0;
	struct err e = ERR_INIT;
	assert_int_equal(storage_free_bytes(s, &free_bytes, &e), 0);
	assert_true(free_bytes > 0);
	assert_true(storage_root_fd(s) >= 0);
	storage_close(s);
	/* a second open sweeps under a put in flight: that put fails, and the
	 * object already stored under the name keeps it */
	s = f->s;
	struct digest d;
	sha256_buf("kept", 4, &d);
	assert_int_equal(put_bytes(s, &d, "kept", 4, 4, &e), 0);
	struct obj_writer *w;
	assert_int_equal(storage_object_begin(s, &d, 4, &w, &e), 0);
	assert_int_equal(storage_object_write(w, "kept", 4, &e), 0);
	storage_close(open_store(f->root));
	assert_int_equal(storage_object_commit(w, &e), -ENOENT);
	assert_true(storage_object_has(s, &d));
	assert_int_equal(storage_object_verify(s, &d, 4, &e), 0);
	assert_int_equal(count_files(f->root, "tmp"), 1); /* download.part only */
	struct storage *none = NULL;
	FMT(p, "%s/missing", f->dir);
	assert_int_equal(storage_open(p, &none, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "missing"));
}

/* ---- crash at every durable op of open + put ---- */

struct put_job {
	const char *root;
	const uint8_t *data;
	size_t len;
	struct digest d;
};

/* Child: open the store, put the object. Reports the op count after the open
 * and after the put; exit 0 = done, 2 = open failed, 3 = put failed; with an
 * injected failure, 10 + (1 open | 2 put) when the error carries that errno. */
static int child_put(void *arg, int out)
{
	struct put_job *j = arg;
	struct storage *s = NULL;
	struct err e = ERR_INIT;
	const char *fail = getenv("CAIRN_FAIL_AT");
	int want = !fail ? 0 : strstr(fail, "ENOSPC") ? ENOSPC : EIO;
	if (storage_open(j->root, &s, &e) < 0)
		return want && e.code == want ? 11 : 2;
	child_report(out, storage_durable_count());
	int r = put_bytes(s, &j->d, j->data, j->len, j->len, &e);
	child_report(out, storage_durable_count());
	storage_close(s);
	if (r < 0)
		return want && -r == want && e.code == want ? 12 : 3;
	return 0;
}

/* After a crash: anything under a final name is complete and correct, and a
 * reopen leaves tmp/ empty. Returns whether the object is there. */
static bool check_after_crash(const struct put_job *j)
{
	struct storage *s = open_store(j->root);
	struct err e = ERR_INIT;
	int n = list_count(s);
	assert_true(n == 0 || n == 1);
	bool has = storage_object_has(s, &j->d);
	assert_int_equal(n, has ? 1 : 0); /* never another name */
	if (has)
		assert_int_equal(storage_object_verify(s, &j->d, j->len, &e), 0);
	assert_int_equal(count_files(j->root, "tmp"), 0);
	storage_close(s);
	return has;
}

static void test_crash_at_each_op(void **state)
{
	struct fixture *f = *state;
	size_t len = 150000;
	_cleanup_free_ uint8_t *data = random_bytes(len, 4);
	char root[256];
	struct put_job j = {.root = root, .data = data, .len = len};
	sha256_buf(data, len, &j.d);
	unsigned long open_ops = 0, all_ops = 0;
	unsigned long n;
	for (n = 1; n < 64; n++) {
		bool done = false;
		for (int after = 0; after < 2; after++) {
			char val[32];
			FMT(root, "%s/crash-%lu-%d", f->dir, n, after);
			assert_int_equal(mkdir(root, 0755), 0);
			FMT(val, "%s:%lu", after ? "after" : "before", n);
			struct child c;
			run_child(child_put, &j, "CAIRN_CRASH_AT", val, &c);
			if (exit_code(&c) == 0) {
				assert_int_equal(c.nnums, 2);
				open_ops = c.nums[0];
				all_ops = c.nums[1];
				assert_true(check_after_crash(&j));
				done = true;
				continue;
			}
			if (!killed(&c))
				fail_msg("CAIRN_CRASH_AT=%s: child status %#x", val, c.status);
			bool has = check_after_crash(&j);
			/* the object appears exactly when its rename has happened */
			if (all_ops && n == all_ops)
				assert_int_equal(has, after);
		}
		if (done)
			break;
	}
	/* every op up to the last was hit; the put itself is 3 ops (README) */
	assert_int_equal(n, all_ops + 1);
	assert_true(open_ops >= 3);
	assert_int_equal(all_ops - open_ops, 3);
}

static void test_fail_at_each_op(void **state)
{
	struct fixture *f = *state;
	size_t len = 70000;
	_cleanup_free_ uint8_t *data = random_bytes(len, 5);
	char root[256];
	struct put_job j = {.root = root, .data = data, .len = len};
	sha256_buf(data, len, &j.d);
	const char *names[] = {"EIO", "ENOSPC"};
	for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
		unsigned long n;
		for (n = 1; n < 64; n++) {
			char val[32];
			FMT(root, "%s/fail-%s-%lu", f->dir, names[k], n);
			assert_int_equal(mkdir(root, 0755), 0);
			FMT(val, "%lu:%s", n, names[k]);
			struct child c;
			run_child(child_put, &j, "CAIRN_FAIL_AT", val, &c);
			if (exit_code(&c) == 0)
				break;
			if (exit_code(&c) != 11 && exit_code(&c) != 12)
				fail_msg("CAIRN_FAIL_AT=%s: child status %#x", val, c.status);
			/* the failed put left nothing, before any reopen cleans up */
			assert_int_equal(count_files(root, "objects"), 0);
			assert_int_equal(count_files(root, "tmp"), 0);
		}
		assert_true(n >= 4 && n < 64);
	}
}

/* ---- durable operations ---- */

static void assert_file(int dirfd, const char *name, const char *want)
{
	char *got = NULL;
	size_t len;
	struct err e = ERR_INIT;
	if (file_read_all(dirfd, name, 4096, &got, &len, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(got, want);
	free(got);
}

static int count_temps(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fdopendir(fd);
	assert_non_null(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dir)))
		n += strstr(de->d_name, ".tmp-") != NULL;
	closedir(dir);
	return n;
}

static void test_write_durable_replaces(void **state)
{
	struct fixture *f = *state;
	struct err e = ERR_INIT;
	unsigned long before = storage_durable_count();
	assert_int_equal(storage_write_durable(f->dirfd, "state", "old", 3, 0640, &e), 0);
	assert_int_equal(storage_durable_count(), before + 1);
	assert_file(f->dirfd, "state", "old");
	assert_int_equal(storage_write_durable(f->dirfd, "state", "new!", 4, 0600, &e), 0);
	assert_file(f->dirfd, "state", "new!");
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, "state", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_temps(f->dirfd), 0);
	/* a relative path: the parent directory is the one fsynced */
	assert_int_equal(mkdirat(f->dirfd, "sub", 0755), 0);
	assert_int_equal(storage_write_durable(f->dirfd, "sub/x.json", "{}", 2, 0644, &e), 0);
	assert_file(f->dirfd, "sub/x.json", "{}");
	assert_int_equal(storage_write_durable(f->dirfd, "../x", "a", 1, 0644, &e), -EINVAL);
	assert_int_equal(storage_write_durable(f->dirfd, "/etc/x", "a", 1, 0644, &e), -EINVAL);
	assert_int_equal(storage_write_durable(f->dirfd, "sub//x", "a", 1, 0644, &e), -EINVAL);
	assert_int_equal(storage_write_durable(f->dirfd, "", "a", 1, 0644, &e), -EINVAL);
	/* a symlinked component is refused and nothing is written behind it */
	assert_int_equal(symlinkat("sub", f->dirfd, "link"), 0);
	assert_int_equal(storage_write_durable(f->dirfd, "link/y", "a", 1, 0644, &e), -ELOOP);
	assert_int_equal(faccessat(f->dirfd, "sub/y", F_OK, 0), -1);
	/* the final name itself a symlink: replaced, not followed */
	assert_int_equal(symlinkat("sub/x.json", f->dirfd, "state2"), 0);
	assert_int_equal(storage_write_durable(f->dirfd, "state2", "s2", 2, 0644, &e), 0);
	assert_file(f->dirfd, "sub/x.json", "{}");
	assert_file(f->dirfd, "state2", "s2");
}

static int child_write(void *arg, int out)
{
	int dirfd = *(int *)arg;
	struct err e = ERR_INIT;
	int r = storage_write_durable(dirfd, "state", "new", 3, 0644, &e);
	child_report(out, (unsigned long)-r);
	if (r < 0)
		return strstr(e.msg, "fsync") && strstr(e.msg, "not retried") ? 10 : 11;
	return 0;
}

static void test_write_durable_faults(void **state)
{
	struct fixture *f = *state;
	struct err e = ERR_INIT;
	struct child c;
	assert_int_equal(storage_write_durable(f->dirfd, "state", "old", 3, 0644, &e), 0);
	run_child(child_write, &f->dirfd, "CAIRN_FAIL_AT", "1:EIO", &c);
	assert_int_equal(exit_code(&c), 10); /* failed fsync reported as such */
	assert_int_equal(c.nums[0], EIO);
	assert_file(f->dirfd, "state", "old");
	assert_int_equal(count_temps(f->dirfd), 0);
	run_child(child_write, &f->dirfd, "CAIRN_FAIL_AT", "2:EIO", &c);
	assert_int_equal(exit_code(&c), 0); /* not the op the child does */
	assert_file(f->dirfd, "state", "new");
	assert_int_equal(storage_write_durable(f->dirfd, "state", "old", 3, 0644, &e), 0);
	run_child(child_write, &f->dirfd, "CAIRN_CRASH_AT", "before:1", &c);
	assert_true(killed(&c));
	assert_file(f->dirfd, "state", "old");
	assert_int_equal(count_temps(f->dirfd), 0);
	run_child(child_write, &f->dirfd, "CAIRN_CRASH_AT", "after:1", &c);
	assert_true(killed(&c));
	assert_int_equal(c.nnums, 0); /* killed before returning */
	assert_file(f->dirfd, "state", "new");
	assert_int_equal(count_temps(f->dirfd), 0);
	/* a malformed variable is ignored (and logged), never misread */
	run_child(child_write, &f->dirfd, "CAIRN_CRASH_AT", "during:1", &c);
	assert_int_equal(exit_code(&c), 0);
	run_child(child_write, &f->dirfd, "CAIRN_FAIL_AT", "1:ENOTANERRNO", &c);
	assert_int_equal(exit_code(&c), 0);
}

static int child_ops(void *arg, int out)
{
	int dirfd = *(int *)arg;
	struct err e = ERR_INIT;
	int r = storage_mkdir_durable(dirfd, "d", 0755, &e);
	child_report(out, (unsigned long)-r);
	r = storage_fsync(dirfd, "test dir", &e);
	child_report(out, (unsigned long)-r);
	return 0;
}

static void test_other_ops(void **state)
{
	struct fixture *f = *state;
	struct err e = ERR_INIT;
	unsigned long n0 = storage_durable_count();
	assert_int_equal(storage_mkdir_durable(f->dirfd, "d", 0755, &e), 0);
	assert_int_equal(storage_mkdir_durable(f->dirfd, "d", 0755, &e), 0); /* exists: fine */
	assert_int_equal(storage_write_durable(f->dirfd, "d/a", "A", 1, 0644, &e), 0);
	assert_int_equal(storage_mkdir_durable(f->dirfd, "d/a", 0755, &e), -ENOTDIR);
	assert_int_equal(storage_rename_durable(f->dirfd, "d/a", f->dirfd, "b", &e), 0);
	assert_file(f->dirfd, "b", "A");
	assert_int_equal(faccessat(f->dirfd, "d/a", F_OK, 0), -1);
	assert_int_equal(storage_rename_durable(f->dirfd, "d/a", f->dirfd, "c", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "d/a"));
	assert_int_equal(storage_unlink_durable(f->dirfd, "b", 0, &e), 0);
	assert_int_equal(storage_unlink_durable(f->dirfd, "b", 0, &e), 0); /* gone: fine */
	assert_int_equal(storage_unlink_durable(f->dirfd, "d", AT_REMOVEDIR, &e), 0);
	int fd = openat(f->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(storage_fsync(fd, "test dir", &e), 0);
	close(fd);
	assert_int_equal(storage_durable_count(), n0 + 10);
	/* injected failures: the op fails with that errno and has no effect */
	struct child c;
	run_child(child_ops, &f->dirfd, "CAIRN_FAIL_AT", "1:ENOSPC", &c);
	assert_int_equal(c.nums[0], ENOSPC);
	assert_int_equal(c.nums[1], 0);
	assert_int_equal(faccessat(f->dirfd, "d", F_OK, 0), -1);
	run_child(child_ops, &f->dirfd, "CAIRN_FAIL_AT", "2:EIO", &c);
	assert_int_equal(c.nums[0], 0);
	assert_int_equal(c.nums[1], EIO);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_put_roundtrip), T(test_put_fd_empty_existing),
		T(test_bad_puts_leave_nothing), T(test_overlong_put),
		T(test_verify_detects_damage), T(test_list_ignores_junk),
		T(test_symlinks_refused), T(test_open_sweeps_tmp),
		T(test_crash_at_each_op), T(test_fail_at_each_op),
		T(test_write_durable_replaces), T(test_write_durable_faults),
		T(test_other_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
