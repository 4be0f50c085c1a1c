/* test/unit/bsp_test.c — a revision's boot files for a bootloader
 * (trails/bsp.c, trails/BOOT.md "BSP placement"): hard links to the objects,
 * cmdline.env, idempotence, replacement, removal and sweeping, and a crash
 * before and after every durable operation of a placement. Temp dirs go in
 * the teardown whatever happens. */
#define _GNU_SOURCE
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

#include "tmpdir.h"

#include "lib/digest.h"
#include "lib/util.h"
#include "storage/storage.h"
#include "trails/trails_internal.h"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

struct fixture {
	char dir[64]; /* mkdtemp, removed in teardown */
	struct storage *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	return tmpdir_make(f->dir, sizeof(f->dir), "bsp");
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256], cmd[300];
	FMT(path, "%s/%s", dir, name);
	FMT(cmd, "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static void put(struct storage *s, const char *bytes, struct digest *d)
{
	struct obj_writer *w;
	struct err e = ERR_INIT;
	size_t n = strlen(bytes);
	sha256_buf(bytes, n, d);
	assert_int_equal(storage_object_begin(s, d, n, &w, &e), 0);
	assert_int_equal(storage_object_write(w, bytes, n, &e), 0);
	if (storage_object_commit(w, &e) < 0)
		fail_msg("put: %s", e.msg);
}

static struct revision *bsp_rev(uint64_t number, const struct digest *kernel,
				const struct digest *initrd, const char *cmdline)
{
	char doc[2048], k[DIGEST_STR_LEN + 1], i[DIGEST_STR_LEN + 1], ipart[200] = "", cpart[300] = "";
	digest_format(kernel, k);
	if (initrd) {
		digest_format(initrd, i);
		FMT(ipart, ", \"initrd\": {\"object\": \"%s\", \"size\": 6}", i);
	}
	if (cmdline)
		FMT(cpart, ", \"cmdline\": \"%s\"", cmdline);
	FMT(doc,
	    "{\"spec\": \"cairn-revision@1\", \"revision\": %llu, \"created\": "
	    "\"2026-11-21T10:00:00Z\", \"bsp\": {\"kernel\": {\"object\": \"%s\", \"size\": 6}%s%s}, "
	    "\"containers\": [{\"name\": \"a\", \"group\": \"app\", \"rootfs\": {\"object\": "
	    "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\", "
	    "\"size\": 1}, \"exec\": [\"/bin/sh\"]}]}",
	    (unsigned long long)number, k, ipart, cpart);
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	if (revision_parse(doc, strlen(doc), REV_PARSE_DEVICE, &r, &e) < 0)
		fail_msg("parse: %s", e.msg);
	return r;
}

static void open_store(struct fixture *f)
{
	char root[128];
	FMT(root, "%s/store", f->dir);
	assert_int_equal(mkdir(root, 0755), 0);
	struct err e = ERR_INIT;
	if (storage_open(root, &f->s, &e) < 0)
		fail_msg("open: %s", e.msg);
}

/* Inode of store/<rel> (0 if absent), or of an object. */
static ino_t ino_of(struct fixture *f, const char *rel)
{
	char path[256];
	struct stat st;
	FMT(path, "%s/store/%s", f->dir, rel);
	return lstat(path, &st) < 0 ? 0 : st.st_ino;
}

static ino_t object_ino(struct fixture *f, const struct digest *d)
{
	char path[512];
	struct stat st;
	assert_int_equal(storage_object_path(f->s, d, path, sizeof(path)), 0);
	return stat(path, &st) < 0 ? 0 : st.st_ino;
}

static char *read_rel(struct fixture *f, const char *rel)
{
	char path[256], *buf = NULL;
	size_t len;
	FMT(path, "%s/store/%s", f->dir, rel);
	return file_read_all(AT_FDCWD, path, 4096, &buf, &len, NULL) < 0 ? NULL : buf;
}

static void mark_installed(struct fixture *f, uint64_t rev)
{
	char path[256];
	FMT(path, "%s/store/trails", f->dir);
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
	FMT(path, "%s/store/trails/%llu", f->dir, (unsigned long long)rev);
	assert_int_equal(mkdir(path, 0755), 0);
}

/* No tmp/bsp-* left behind. */
static void assert_tmp_clean(struct fixture *f)
{
	char cmd[300];
	FMT(cmd, "test -z \"$(ls %s/store/tmp | grep '^bsp-')\"", f->dir);
	assert_int_equal(system(cmd), 0);
}

static void test_bsp_place(void **state)
{
	struct fixture *f = *state;
	open_store(f);
	struct digest k, i;
	put(f->s, "KERNEL", &k);
	put(f->s, "INITRD", &i);
	struct revision *r = bsp_rev(7, &k, &i, "console=ttyS0 a\\\\b");
	struct err e = ERR_INIT;
	if (trails_bsp_place(f->s, r, &e) < 0)
		fail_msg("place: %s", e.msg);
	assert_int_equal(ino_of(f, "boot/7/vmlinuz"), object_ino(f, &k));
	assert_int_equal(ino_of(f, "boot/7/initrd.img"), object_ino(f, &i));
	char *env = read_rel(f, "boot/7/cmdline.env");
	assert_non_null(env);
	assert_string_equal(env, "cairn_cmdline=console=ttyS0 a\\\\b\n"); /* one \ doubled */
	free(env);
	/* again: nothing to do, not even a durable operation */
	unsigned long before = storage_durable_count();
	assert_int_equal(trails_bsp_place(f->s, r, &e), 0);
	assert_int_equal(storage_durable_count(), before);
	revision_free(r);
	/* the same number with other contents replaces the directory whole */
	r = bsp_rev(7, &k, NULL, NULL);
	assert_int_equal(trails_bsp_place(f->s, r, &e), 0);
	assert_int_equal(ino_of(f, "boot/7/vmlinuz"), object_ino(f, &k));
	assert_int_equal(ino_of(f, "boot/7/initrd.img"), 0);
	env = read_rel(f, "boot/7/cmdline.env");
	assert_string_equal(env, "cairn_cmdline=\n");
	free(env);
	revision_free(r);
	assert_tmp_clean(f);
}

static void test_bsp_none_and_missing(void **state)
{
	struct fixture *f = *state;
	open_store(f);
	struct digest k, absent;
	put(f->s, "KERNEL", &k);
	sha256_buf("absent", 6, &absent);
	/* no BSP: nothing placed */
	char doc[] = "{\"spec\": \"cairn-revision@1\", \"revision\": 3, \"created\": "
		     "\"2026-11-21T10:00:00Z\", "
		     "\"containers\": [{\"name\": \"a\", \"group\": \"app\", \"rootfs\": {\"object\": "
	    "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\", "
	    "\"size\": 1}, \"exec\": [\"/bin/sh\"]}]}";
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(revision_parse(doc, strlen(doc), REV_PARSE_DEVICE, &r, &e), 0);
	assert_int_equal(trails_bsp_place(f->s, r, &e), 0);
	assert_int_equal(ino_of(f, "boot/3"), 0);
	revision_free(r);
	/* an object not in the store: refused, named, nothing left behind */
	r = bsp_rev(4, &k, &absent, NULL);
	assert_true(trails_bsp_place(f->s, r, &e) < 0);
	assert_string_equal(e.field, "bsp.initrd");
	assert_non_null(strstr(e.msg, "boot files of revision 4"));
	assert_int_equal(ino_of(f, "boot/4"), 0);
	assert_tmp_clean(f);
	revision_free(r);
}

static void test_bsp_remove_and_sweep(void **state)
{
	struct fixture *f = *state;
	open_store(f);
	struct digest k;
	put(f->s, "KERNEL", &k);
	struct err e = ERR_INIT;
	for (uint64_t n = 1; n <= 4; n++) {
		struct revision *r = bsp_rev(n, &k, NULL, "x");
		assert_int_equal(trails_bsp_place(f->s, r, &e), 0);
		revision_free(r);
		if (n != 2)
			mark_installed(f, n);
	}
	/* placing 4 swept 2 (not installed), kept 1 and 3 */
	assert_true(ino_of(f, "boot/1/vmlinuz") && ino_of(f, "boot/3/vmlinuz"));
	assert_int_equal(ino_of(f, "boot/2"), 0);
	/* never touched: names that are not revisions */
	char dir[128];
	FMT(dir, "%s/store/boot", f->dir);
	write_file(dir, "boot.scr", "script");
	write_file(dir, "07/x", "x");
	assert_int_equal(trails_bsp_remove(f->s, 3, &e), 0);
	assert_int_equal(ino_of(f, "boot/3"), 0);
	assert_int_equal(trails_bsp_remove(f->s, 3, &e), 0); /* absent is fine */
	/* sweep: revision 1 no longer installed */
	char path[256];
	FMT(path, "%s/store/trails/1", f->dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(trails_bsp_sweep(f->s, 0, &e), 0);
	assert_int_equal(ino_of(f, "boot/1"), 0);
	assert_true(ino_of(f, "boot/4/vmlinuz") != 0);
	assert_true(ino_of(f, "boot/boot.scr") != 0 && ino_of(f, "boot/07/x") != 0);
	/* the kernel object is still there with its own name */
	assert_true(storage_object_has(f->s, &k));
}

/* Crash before and after every durable operation of a placement that
 * replaces an older directory: boot/5 is always whole, old or new. */
static int child_place(struct storage *s, const struct revision *r, const char *crash)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (crash)
			setenv("CAIRN_CRASH_AT", crash, 1);
		struct err e = ERR_INIT;
		unsigned long before = storage_durable_count();
		int ret = trails_bsp_place(s, r, &e);
		_exit(ret < 0 ? 100 : (int)(storage_durable_count() - before));
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return -1;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 100);
	return WEXITSTATUS(status);
}

static void assert_whole(struct fixture *f, const struct digest *k, const struct digest *i,
			 const char *crash)
{
	char *env = read_rel(f, "boot/5/cmdline.env");
	if (!env)
		fail_msg("%s: boot/5 lost", crash);
	bool is_new = strcmp(env, "cairn_cmdline=new\n") == 0;
	if (!is_new && strcmp(env, "cairn_cmdline=old\n") != 0)
		fail_msg("%s: cmdline.env is \"%s\"", crash, env);
	free(env);
	if (ino_of(f, "boot/5/vmlinuz") != object_ino(f, k))
		fail_msg("%s: vmlinuz is not the kernel", crash);
	if ((ino_of(f, "boot/5/initrd.img") != 0) != is_new ||
	    (is_new && ino_of(f, "boot/5/initrd.img") != object_ino(f, i)))
		fail_msg("%s: initrd.img does not match cmdline.env (%s)", crash, is_new ? "new" : "old");
}

static void test_bsp_crash_every_op(void **state)
{
	struct fixture *f = *state;
	open_store(f);
	struct digest k, i;
	put(f->s, "KERNEL", &k);
	put(f->s, "INITRD", &i);
	mark_installed(f, 5);
	struct revision *old = bsp_rev(5, &k, NULL, "old"), *new = bsp_rev(5, &k, &i, "new");
	struct err e = ERR_INIT;
	assert_int_equal(trails_bsp_place(f->s, old, &e), 0);
	int total = child_place(f->s, new, NULL);
	/* mkdir stage, cmdline.env, fsync stage, rename old away, rename stage in */
	assert_int_equal(total, 5);
	unsigned points = 0;
	for (int n = 1; n <= total; n++)
		for (int after = 0; after < 2; after++) {
			char crash[32];
			FMT(crash, "%s:%d", after ? "after" : "before", n);
			assert_int_equal(trails_bsp_place(f->s, old, &e), 0);
			assert_int_equal(child_place(f->s, new, crash), -1);
			/* old or new, whole: a crash between the two renames leaves none,
			 * which the boot script treats as missing files (falls back) */
			if (ino_of(f, "boot/5") != 0)
				assert_whole(f, &k, &i, crash);
			else if (!(n == 4 && after) && !(n == 5 && !after))
				fail_msg("%s: boot/5 missing", crash);
			if (trails_bsp_place(f->s, new, &e) < 0)
				fail_msg("%s: placing again: %s", crash, e.msg);
			assert_whole(f, &k, &i, crash);
			points++;
		}
	print_message("bsp placement crash points: %u (%d durable operations)\n", points, total);
	revision_free(old);
	revision_free(new);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bsp_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bsp_none_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bsp_remove_and_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bsp_crash_every_op, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
