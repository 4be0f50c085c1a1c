/* test/unit/lib_test.c — lib/err.h (messages that read like a path, fields,
 * truncation) and lib/util.h (bounded formatting, names, full reads and
 * writes, whole-file reads, hex).
 *
 * File tests work in a fresh mkdtemp directory that the teardown removes
 * whatever the test did; pipe tests join their writer thread and close
 * every fd before asserting, so a failure leaves nothing behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/util.h"

/* ---------------- err ---------------- */

static void test_err_set(void **state)
{
	(void)state;
	struct err e = ERR_INIT;
	err_field(&e, EINVAL, "old", "stale");
	assert_int_equal(err_set(&e, ENOENT, "open %s: %s", "x.json", "missing"), -ENOENT);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.msg, "open x.json: missing");
	assert_string_equal(e.field, ""); /* a new error forgets the old field */
	/* a negative errno is taken as its magnitude; 0 is never "success" */
	assert_int_equal(err_set(&e, -EIO, "io"), -EIO);
	assert_int_equal(e.code, EIO);
	assert_true(err_set(&e, 0, "zero") < 0);
	assert_true(e.code > 0);
	err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
	assert_string_equal(e.field, "");
}

static void test_err_path(void **state)
{
	(void)state;
	struct err e = ERR_INIT;
	int rc = err_field(&e, EINVAL, "containers[2].rootfs.size", "%d != declared %d", 4096,
			   8192);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(e.field, "containers[2].rootfs.size");
	assert_string_equal(e.msg, "containers[2].rootfs.size: 4096 != declared 8192");
	assert_int_equal(err_prefix(&e, "object %s", "sha256:ab12"), -EINVAL);
	assert_int_equal(err_prefix(&e, "install rev %d", 7), -EINVAL);
	assert_string_equal(e.msg, "install rev 7: object sha256:ab12: "
				   "containers[2].rootfs.size: 4096 != declared 8192");
	assert_string_equal(e.field, "containers[2].rootfs.size"); /* kept */
	assert_int_equal(e.code, EINVAL);

	/* prefixing an error without a message gives just the context */
	struct err f = ERR_INIT;
	assert_true(err_prefix(&f, "trust %s", "/etc/keys") < 0);
	assert_true(f.code > 0);
	assert_string_equal(f.msg, "trust /etc/keys");
	/* a field-less err_field is just the text */
	assert_int_equal(err_field(&f, EINVAL, "", "bad"), -EINVAL);
	assert_string_equal(f.msg, "bad");
}

static void assert_cut(const struct err *e)
{
	size_t n = strnlen(e->msg, sizeof(e->msg));
	assert_true(n < sizeof(e->msg)); /* terminated inside the buffer */
	assert_int_equal(n, ERR_MSG_MAX - 1);
	assert_string_equal(e->msg + n - 3, "...");
}

static void test_err_truncation(void **state)
{
	(void)state;
	char big[3 * ERR_MSG_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct err e;
	memset(&e, 0x55, sizeof(e)); /* no help from a zeroed buffer */

	assert_int_equal(err_set(&e, E2BIG, "%s", big), -E2BIG);
	assert_cut(&e);

	/* the context stays at the front, the cut is at the end */
	assert_int_equal(err_prefix(&e, "ctx"), -E2BIG);
	assert_cut(&e);
	assert_memory_equal(e.msg, "ctx: xxx", 8);
	for (int i = 0; i < 100; i++)
		assert_int_equal(err_prefix(&e, "level %d", i), -E2BIG);
	assert_cut(&e);
	assert_memory_equal(e.msg, "level 99: level 98: ", 20);

	/* a short message prefixed with a huge context is cut too */
	err_set(&e, EIO, "short");
	err_prefix(&e, "%s", big);
	assert_cut(&e);

	/* an oversized field is cut to the field buffer, message still bounded */
	err_field(&e, EINVAL, big, "%s", big);
	assert_int_equal(strnlen(e.field, sizeof(e.field)), ERR_FIELD_MAX - 1);
	assert_cut(&e);
	err_field(&e, EINVAL, "f", "%s", big);
	assert_memory_equal(e.msg, "f: xxx", 6);
	assert_cut(&e);

	/* exactly full is not a cut */
	big[ERR_MSG_MAX - 1] = '\0';
	err_set(&e, EINVAL, "%s", big);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_int_equal(e.msg[ERR_MSG_MAX - 2], 'x');
}

static void test_err_null(void **state)
{
	(void)state;
	assert_int_equal(err_set(NULL, ENOENT, "x %d", 1), -ENOENT);
	assert_int_equal(err_set(NULL, -EBUSY, "x"), -EBUSY);
	assert_int_equal(err_field(NULL, EINVAL, "f", "x"), -EINVAL);
	assert_true(err_prefix(NULL, "ctx") < 0);
	err_clear(NULL);
}

/* ---------------- str_fmt, names ---------------- */

static void test_str_fmt(void **state)
{
	(void)state;
	char buf[8];
	assert_int_equal(str_fmt(buf, sizeof(buf), "%s-%d", "ab", 1234), 0);
	assert_string_equal(buf, "ab-1234"); /* 7 bytes + NUL: exactly full */
	assert_int_equal(str_fmt(buf, sizeof(buf), "%s-%d", "ab", 12345), -ENAMETOOLONG);
	assert_true(strnlen(buf, sizeof(buf)) < sizeof(buf));
	assert_int_equal(str_fmt(buf, 1, "%s", ""), 0);
	assert_string_equal(buf, "");
	assert_int_equal(str_fmt(buf, 1, "x"), -ENAMETOOLONG);
	assert_int_equal(str_fmt(buf, 0, "x"), -ENAMETOOLONG);
}

static void test_name_valid(void **state)
{
	(void)state;
	static const char *const good[] = {
		"a", "0", "web", "a-b_c9", "9lives", "x-", "y_", "abcdefghijklmnopqrstuvwxyz012345",
	};
	static const char *const bad[] = {
		"",	  "-a",	 "_a",	 "A",	 "aB",	 "a/b",	 "/",  "a.b",
		".",	  "..",	 "a b",	 "a\n",	 "\xc3\xa9", "a\xff", "a:b", "a@b",
		"abcdefghijklmnopqrstuvwxyz0123456", /* 33 */
	};
	assert_int_equal(strlen(good[ARRAY_SIZE(good) - 1]), NAME_MAX_LEN);
	assert_int_equal(strlen(bad[ARRAY_SIZE(bad) - 1]), NAME_MAX_LEN + 1);
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (!name_valid(good[i]) || !name_valid_n(good[i], strlen(good[i])))
			fail_msg("good name \"%s\" refused", good[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (name_valid(bad[i]) || name_valid_n(bad[i], strlen(bad[i])))
			fail_msg("bad name \"%s\" accepted", bad[i]);
	}
	assert_false(name_valid(NULL));
	assert_false(name_valid_n(NULL, 3));
	/* explicit length: a NUL inside is a bad byte, not an end */
	assert_false(name_valid_n("ab\0c", 4));
	assert_false(name_valid_n("ab\0", 3));
	assert_true(name_valid_n("abc", 2)); /* only the first 2 bytes count */
	assert_false(name_valid_n("abc", 0));
	/* a long string is refused without reading all of it */
	char longname[4096];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(name_valid(longname));
	assert_false(name_valid_n(longname, NAME_MAX_LEN + 1));
	assert_true(name_valid_n(longname, NAME_MAX_LEN));
}

/* ---------------- write_all / read_all ---------------- */

/* One end of a pipe driven by a helper thread that blocks every signal
 * (they are meant for the main thread's read_all/write_all). It moves
 * `len` bytes in `chunk`s, pausing between them, then closes its end. */
struct peer {
	int fd;
	uint8_t *data;
	size_t len, chunk;
	unsigned pause_us;
	bool reads;
	ssize_t rc; /* write: 0 or -errno; read: bytes read or -errno */
};

static void *peer_run(void *arg)
{
	struct peer *f = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	f->rc = 0;
	for (size_t off = 0; off < f->len; off += f->chunk) {
		size_t n = f->len - off < f->chunk ? f->len - off : f->chunk;
		ssize_t r = f->reads ? read_all(f->fd, f->data + off, n)
				     : write_all(f->fd, f->data + off, n);
		if (r < 0 || (f->reads && r == 0)) {
			f->rc = r < 0 ? r : f->rc;
			break;
		}
		f->rc += f->reads ? r : 0;
		if (f->pause_us)
			usleep(f->pause_us);
	}
	close(f->fd);
	return NULL;
}

static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + (i >> 8));
	return p;
}

/* 1 MiB through a 64 KiB pipe: write_all keeps going after partial writes,
 * read_all collects everything and reports the short read at EOF. */
static void test_pipe_full(void **state)
{
	(void)state;
	const size_t len = 1 << 20;
	_cleanup_free_ uint8_t *data = pattern(len);
	_cleanup_free_ uint8_t *got = calloc(1, len + 100);
	assert_non_null(got);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct peer f = {p[1], data, len, len, 0, false, -1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, peer_run, &f), 0);
	ssize_t n1 = read_all(p[0], got, 1000);
	ssize_t n2 = read_all(p[0], got + 1000, len + 100 - 1000); /* more than there is */
	ssize_t n3 = read_all(p[0], got, 10);			  /* at EOF */
	close(p[0]); /* a peer still writing gets EPIPE instead of hanging */
	pthread_join(t, NULL);
	assert_int_equal(f.rc, 0);
	assert_int_equal(n1, 1000);
	assert_int_equal(n2, (ssize_t)len - 1000);
	assert_int_equal(n3, 0);
	assert_memory_equal(got, data, len);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* Main thread runs `io` on its end of a pipe while a slow peer serves the
 * other end and SIGALRM (without SA_RESTART) fires every 2 ms. */
static ssize_t eintr_run(bool main_reads, uint8_t *mine, uint8_t *theirs, size_t len,
			 struct peer *f)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*f = (struct peer){main_reads ? p[1] : p[0], theirs, len, 4096, 3000, !main_reads, -1};
	int my = main_reads ? p[0] : p[1];
	struct itimerval every = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
	pthread_t t;
	if (pthread_create(&t, NULL, peer_run, f) != 0) {
		close(p[0]);
		close(p[1]);
		return -EAGAIN;
	}
	setitimer(ITIMER_REAL, &every, NULL);
	ssize_t n = main_reads ? read_all(my, mine, len) : write_all(my, mine, len);
	setitimer(ITIMER_REAL, &off, NULL);
	close(my);
	pthread_join(t, NULL);
	return n;
}

/* A signal without SA_RESTART interrupts a blocked read(2)/write(2) with
 * EINTR; both helpers must retry, not fail or return early. */
static void test_pipe_eintr(void **state)
{
	(void)state;
	const size_t len = 256 * 1024;
	_cleanup_free_ uint8_t *data = pattern(len);
	_cleanup_free_ uint8_t *got = calloc(1, len);
	assert_non_null(got);
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	struct peer f;

	alarms = 0;
	ssize_t nr = eintr_run(true, got, data, len, &f);
	sig_atomic_t alarms_r = alarms;
	ssize_t wrc = f.rc;
	bool same_r = memcmp(got, data, len) == 0;

	memset(got, 0, len);
	alarms = 0;
	ssize_t nw = eintr_run(false, data, got, len, &f);
	sig_atomic_t alarms_w = alarms;
	sigaction(SIGALRM, &old, NULL);

	assert_true(alarms_r > 10); /* the calls really were interrupted, often */
	assert_int_equal(wrc, 0);
	assert_int_equal(nr, (ssize_t)len);
	assert_true(same_r);
	assert_true(alarms_w > 10);
	assert_int_equal(nw, 0);
	assert_int_equal(f.rc, (ssize_t)len);
	assert_memory_equal(got, data, len);
}

static void test_pipe_errors(void **state)
{
	(void)state;
	int p[2];
	char buf[4];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	int rc = write_all(p[1], "abc", 3);
	sigaction(SIGPIPE, &old, NULL);
	close(p[1]);
	assert_int_equal(rc, -EPIPE);
	assert_int_equal(write_all(-1, "abc", 3), -EBADF);
	assert_int_equal(read_all(-1, buf, sizeof(buf)), -EBADF);
	assert_int_equal(write_all(-1, "", 0), 0); /* nothing to do is success */
	/* a full device fails at once: no loop on ENOSPC */
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full >= 0) {
		rc = write_all(full, "abc", 3);
		close(full);
		assert_int_equal(rc, -ENOSPC);
	}
}

/* ---------------- file_read_all ---------------- */

struct tmp {
	char dir[64];
	int dfd;
};

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/cairn-lib-test.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	t->dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = t;
	return t->dfd < 0 ? -1 : 0;
}

/* The tests only make plain entries (files, a FIFO, one empty directory). */
static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	DIR *d = fdopendir(dup(t->dfd));
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(t->dfd, de->d_name, 0) < 0)
			unlinkat(t->dfd, de->d_name, AT_REMOVEDIR);
	}
	if (d)
		closedir(d);
	close(t->dfd);
	int rc = rmdir(t->dir);
	free(t);
	return rc;
}

static void put_file(struct tmp *t, const char *name, const void *data, size_t len)
{
	int fd = openat(t->dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	int rc = write_all(fd, data, len);
	close(fd);
	assert_int_equal(rc, 0);
}

static void test_file_read(void **state)
{
	struct tmp *t = *state;
	struct err e = ERR_INIT;
	char *buf = NULL;
	size_t len = 99;
	put_file(t, "hello", "hello\0world", 11);
	assert_int_equal(file_read_all(t->dfd, "hello", 11, &buf, &len, &e), 0);
	assert_int_equal(len, 11);
	assert_memory_equal(buf, "hello\0world", 11);
	assert_int_equal(buf[11], '\0');
	free(buf);

	put_file(t, "empty", "", 0);
	buf = NULL;
	assert_int_equal(file_read_all(t->dfd, "empty", 0, &buf, NULL, &e), 0);
	assert_non_null(buf);
	assert_string_equal(buf, "");
	free(buf);

	/* an absolute path ignores dirfd */
	char path[128];
	assert_int_equal(str_fmt(path, sizeof(path), "%s/hello", t->dir), 0);
	buf = NULL;
	assert_int_equal(file_read_all(-1, path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 11);
	free(buf);
}

static void test_file_read_too_big(void **state)
{
	struct tmp *t = *state;
	struct err e = ERR_INIT;
	char *buf = NULL;
	put_file(t, "big", "0123456789", 10);
	assert_int_equal(file_read_all(t->dfd, "big", 9, &buf, NULL, &e), -EFBIG);
	assert_null(buf);
	assert_int_equal(e.code, EFBIG);
	assert_string_equal(e.msg, "big: 10 bytes, more than the 9 allowed");
	assert_int_equal(file_read_all(t->dfd, "big", 10, &buf, NULL, &e), 0);
	free(buf);
}

static void test_file_read_not_regular(void **state)
{
	struct tmp *t = *state;
	struct err e = ERR_INIT;
	char *buf = NULL;
	assert_int_equal(mkdirat(t->dfd, "dir", 0755), 0);
	assert_int_equal(file_read_all(t->dfd, "dir", 100, &buf, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "dir: not a regular file");
	assert_int_equal(file_read_all(AT_FDCWD, "/dev/null", 100, &buf, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "/dev/null: not a regular file");
	/* a FIFO with no writer must not block the caller (PID 1): if open(2)
	 * waits, SIGALRM (no SA_RESTART) breaks it off with EINTR */
	assert_int_equal(mkfifoat(t->dfd, "fifo", 0600), 0);
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	alarm(2);
	int rc = file_read_all(t->dfd, "fifo", 100, &buf, NULL, &e);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(e.msg, "fifo: not a regular file");
	assert_null(buf);
}

static void test_file_read_missing(void **state)
{
	struct tmp *t = *state;
	struct err e = ERR_INIT;
	char *buf = NULL;
	assert_int_equal(file_read_all(t->dfd, "nope.json", 100, &buf, NULL, &e), -ENOENT);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.msg, "open nope.json: No such file or directory");
	assert_int_equal(file_read_all(t->dfd, "nope/x", 100, &buf, NULL, NULL), -ENOENT);
	assert_null(buf);
}

/* ---------------- hex, clock ---------------- */

static void test_hex(void **state)
{
	(void)state;
	static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	char s[2 * sizeof(in) + 1];
	uint8_t out[sizeof(in)];
	hex_encode(in, sizeof(in), s);
	assert_string_equal(s, "00017f80abff");
	assert_int_equal(hex_decode(s, strlen(s), out, sizeof(out)), 0);
	assert_memory_equal(out, in, sizeof(in));
	hex_encode(in, 0, s);
	assert_string_equal(s, "");
	assert_int_equal(hex_decode("", 0, out, 0), 0);

	/* every byte value both ways */
	uint8_t all[256], back[256];
	char hs[513];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	hex_encode(all, 256, hs);
	assert_int_equal(strlen(hs), 512);
	assert_int_equal(hex_decode(hs, 512, back, 256), 0);
	assert_memory_equal(back, all, 256);

	static const char *const bad[] = {"AB", "aB", "Ab", "0g", "g0", " 0", "0 ", "+1", "\0\0",
					  "0x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (hex_decode(bad[i], 2, out, 1) != -EINVAL)
			fail_msg("hex \"%s\" accepted", bad[i]);
	/* the length must be exactly 2n: odd, short, long */
	assert_int_equal(hex_decode("abc", 3, out, 1), -EINVAL);
	assert_int_equal(hex_decode("abc", 3, out, 2), -EINVAL);
	assert_int_equal(hex_decode("ab", 2, out, 2), -EINVAL);
	assert_int_equal(hex_decode("abcd", 4, out, 1), -EINVAL);
}

static void test_now_ns(void **state)
{
	(void)state;
	uint64_t a = now_ns();
	struct timespec ten_ms = {0, 10 * 1000 * 1000};
	nanosleep(&ten_ms, NULL);
	uint64_t b = now_ns();
	assert_true(b >= a + 10 * 1000 * 1000);
	assert_true(b - a < 10ull * 1000 * 1000 * 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_path),
		cmocka_unit_test(test_err_truncation),
		cmocka_unit_test(test_err_null),
		cmocka_unit_test(test_str_fmt),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_pipe_full),
		cmocka_unit_test(test_pipe_eintr),
		cmocka_unit_test(test_pipe_errors),
		cmocka_unit_test_setup_teardown(test_file_read, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_read_too_big, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_read_not_regular, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_read_missing, tmp_setup, tmp_teardown),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_now_ns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
