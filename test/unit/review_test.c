/* test/unit/review_test.c — regressions found by an adversarial review of
 * the landed code: each test is a hostile input or a failure that once got
 * through, and must keep failing the way the code now says. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tmpdir.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/loop.h"
#include "plugins/plugins.h"
#include "runtime/runtime.h"
#include "storage/storage.h"
#include "trails/engine_internal.h"
#include "trails/trails.h"

#define X4(s) s s s s
#define X16(s) X4(X4(s))
#define X64(s) X4(X16(s))
#define DG(c) "sha256:" X64(c)
#define ROOTFS "{\"object\":\"" DG("a") "\",\"size\":4096}"
#define DOC_VOL(path, persistence)                                                                 \
	"{\"spec\":\"cairn-revision@1\",\"revision\":7,\"created\":\"2026-11-21T10:00:00Z\","   \
	"\"containers\":[{\"name\":\"web\",\"group\":\"app\",\"rootfs\":" ROOTFS                 \
	",\"exec\":[\"/bin/sh\"],\"volumes\":[{\"name\":\"v\",\"path\":\"" path "\","            \
	"\"persistence\":\"" persistence "\"}]}]}"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

static int parse(const char *doc, struct err *e)
{
	struct revision *r = NULL;
	int rc = revision_parse(doc, strlen(doc), REV_PARSE_DEVICE, &r, e);
	revision_free(r);
	return rc;
}

/* A volume outlives its container, and the control socket is bind-mounted
 * at /run/cairn/ctrl.sock after the volumes: liblxc makes that target with
 * mkdir -p and mknod following symlinks, on the host. A volume at /run lets
 * a container leave /run/cairn -> /anywhere for its next start. */
static void test_volume_above_ctrl_socket(void **state)
{
	(void)state;
	static const char *const bad[] = {
		DOC_VOL("/run", "permanent"),
		DOC_VOL("/run", "revision"),
		DOC_VOL("/run", "boot"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = ERR_INIT;
		assert_int_equal(parse(bad[i], &e), -EINVAL);
		assert_string_equal(e.field, "containers[0].volumes[0].path");
		assert_non_null(strstr(e.msg, "/run/cairn"));
	}
	/* beside it, and other places under /run, stay allowed */
	static const char *const good[] = {
		DOC_VOL("/run/user", "permanent"),
		DOC_VOL("/runtime", "permanent"),
		DOC_VOL("/ru", "permanent"),
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct err e = ERR_INIT;
		if (parse(good[i], &e) < 0)
			fail_msg("refused %s: %s", good[i], e.msg);
	}
}

/* ---------------- gc: what a revision left outside trails/ ---------------- */

/* The runtime is only loaded (nothing mounted or started): it says where a
 * container logs. The plugin is never called. */
static int nop_prepare(const struct plugin_ctr *c, void **h, struct err *e)
{
	(void)c, (void)h;
	return err_set(e, ENOSYS, "not in this test");
}
static int nop_spawn(void *h, pid_t *k, struct err *e)
{
	(void)h, (void)k;
	return err_set(e, ENOSYS, "not in this test");
}
static pid_t nop_init_pid(void *h)
{
	(void)h;
	return 0;
}
static int nop_signal(void *h, int sig)
{
	(void)h, (void)sig;
	return -ESRCH;
}
static void nop_release(void *h)
{
	(void)h;
}
static const struct plugin_ops nop_plugin = {"nop", nop_prepare, nop_spawn, nop_init_pid,
					     nop_signal, nop_release};

static void put_file(int root, const char *rel)
{
	char dir[256];
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s", rel), 0);
	for (char *p = strchr(dir, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(root, dir, 0755) < 0)
			assert_int_equal(errno, EEXIST);
		*p = '/';
	}
	int fd = openat(root, rel, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data\n", 5), 5);
	close(fd);
}

static bool there(int root, const char *rel)
{
	struct stat sb;
	return fstatat(root, rel, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Logs and revision volumes of revisions gc removed (or that were never
 * kept) went nowhere: every update left them behind, and a revision
 * volume holds whatever its container wrote, until the disk is full and
 * space admission refuses every update. */
struct gc_fx {
	char dir[32];
	struct storage *s;
	struct loop *loop;
	struct runtime *rt;
	struct trails *tr;
};

/* Everything is released and the directory removed even when a test fails. */
static int gc_teardown(void **state)
{
	struct gc_fx *f = *state;
	trails_free(f->tr);
	runtime_free(f->rt);
	loop_free(f->loop);
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* A store under a temp dir, committed = 3, and a runtime that has loaded
 * container "web" of revision 2 (it logs to logs/2/web.log). */
static int gc_setup(void **state)
{
	struct gc_fx *f = calloc(1, sizeof(*f));
	char root[64], statedir[64];
	static char *const argv[] = {"/bin/sh", NULL};
	struct rt_group_spec g = {"app", 10};
	struct rt_ctr_spec c = {.name = "web", .image = "/nonexistent.img", .argv = argv};
	struct err e = ERR_INIT;
	if (!f)
		return -1;
	*state = f;
	memcpy(f->dir, "/tmp/cairn-review-XXXXXX", sizeof("/tmp/cairn-review-XXXXXX"));
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	if (str_fmt(root, sizeof(root), "%s/store", f->dir) < 0 ||
	    str_fmt(statedir, sizeof(statedir), "%s/state", f->dir) < 0 || mkdir(root, 0755) < 0 ||
	    storage_open(root, &f->s, &e) < 0 || loop_new(&f->loop, &e) < 0)
		return -1;
	struct runtime_config rc = {.loop = f->loop, .storage = f->s, .plugin = &nop_plugin,
				    .statedir = statedir, .log_max_bytes = 4096, .log_keep = 1,
				    .stop_grace_s = 1, .backoff_first_ms = 1, .backoff_max_ms = 1};
	struct trails_config tc = {.loop = f->loop, .storage = f->s, .bootloader = "file",
				   .statedir = statedir};
	if (runtime_new(&rc, &f->rt, &e) < 0 || runtime_load(f->rt, "2", &g, 1, &c, 1, &e) < 0)
		return -1;
	tc.rt = f->rt;
	if (trails_new(&tc, &f->tr, &e) < 0 || tr_boot_write(f->tr, 3, 0, 0, &e) < 0) {
		print_error("setup: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* Logs and revision volumes of revisions gc removed (or that were never
 * kept) went nowhere: every update left them behind, and a revision
 * volume holds whatever its container wrote, until the disk is full and
 * space admission refuses every update. */
static void test_gc_removes_leftovers(void **state)
{
	struct gc_fx *f = *state;
	int root = storage_root_fd(f->s);
	assert_int_equal(mkdirat(root, "trails", 0755), 0);
	assert_int_equal(mkdirat(root, "trails/3", 0755), 0); /* committed */
	assert_int_equal(mkdirat(root, "trails/4", 0755), 0); /* collected by this gc */
	put_file(root, "logs/1/web.log");         /* revision long gone */
	put_file(root, "logs/2/web.log");         /* gone, but "web" still logs there */
	put_file(root, "logs/3/web.log");         /* committed */
	put_file(root, "logs/4/web.log");         /* its revision goes now */
	put_file(root, "logs/007/x");             /* not cairn's name for a revision */
	put_file(root, "volumes/revision/1/web/data/big");
	put_file(root, "volumes/revision/4/web/data/big");
	put_file(root, "volumes/revision/3/web/data/big");
	put_file(root, "volumes/permanent/web/data/keep");

	uint64_t freed = 0;
	struct err e = ERR_INIT;
	assert_int_equal(trails_gc(f->tr, &freed, &e), 0);
	assert_false(there(root, "trails/4"));
	assert_false(there(root, "logs/1"));
	assert_false(there(root, "logs/4"));
	assert_false(there(root, "volumes/revision/1"));
	assert_false(there(root, "volumes/revision/4"));
	assert_true(there(root, "logs/2/web.log"));
	assert_true(there(root, "logs/3/web.log"));
	assert_true(there(root, "logs/007/x"));
	assert_true(there(root, "volumes/revision/3/web/data/big"));
	assert_true(there(root, "volumes/permanent/web/data/keep"));
}

/* ---------------- boot: a try the bootloader booted ---------------- */

struct boot_fx {
	char dir[32];
	char spec[64];
	struct storage *s;
	struct loop *loop;
	struct trails *tr;
	int reboots;
	char why[128];
};

static void on_reboot(void *data, const char *why)
{
	struct boot_fx *f = data;
	f->reboots++;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static int boot_engine(struct boot_fx *f, struct err *e)
{
	struct trails_config tc = {.loop = f->loop, .storage = f->s, .bootloader = f->spec,
				   .hooks = {.data = f, .reboot = on_reboot}};
	trails_free(f->tr);
	f->tr = NULL;
	return trails_new(&tc, &f->tr, e);
}

static int boot_teardown(void **state)
{
	struct boot_fx *f = *state;
	trails_free(f->tr);
	loop_free(f->loop);
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* A store and an empty GRUB environment block (as grub-editenv creates it). */
static int boot_setup(void **state)
{
	struct boot_fx *f = calloc(1, sizeof(*f));
	char root[64], env[64], block[1024];
	struct err e = ERR_INIT;
	if (!f)
		return -1;
	*state = f;
	memcpy(f->dir, "/tmp/cairn-review-XXXXXX", sizeof("/tmp/cairn-review-XXXXXX"));
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	static const char sig[] = "# GRUB Environment Block\n";
	memset(block, '#', sizeof(block));
	memcpy(block, sig, sizeof(sig) - 1);
	int fd = -1;
	if (str_fmt(root, sizeof(root), "%s/store", f->dir) < 0 ||
	    str_fmt(env, sizeof(env), "%s/grubenv", f->dir) < 0 ||
	    str_fmt(f->spec, sizeof(f->spec), "grub:%s", env) < 0 || mkdir(root, 0755) < 0 ||
	    (fd = open(env, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0 ||
	    write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || close(fd) < 0 ||
	    storage_open(root, &f->s, &e) < 0 || loop_new(&f->loop, &e) < 0 ||
	    boot_engine(f, &e) < 0) {
		print_error("setup: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* GRUB booted the try's kernel (tries 1 -> 0) but cairn could not mark the
 * try TESTING (its status write failed): the committed revision must not be
 * started on the try's kernel, the boot state goes back and the device
 * reboots into the committed one. */
static void test_boot_try_unmarkable_reboots(void **state)
{
	struct boot_fx *f = *state;
	struct err e = ERR_INIT;
	int root = storage_root_fd(f->s);
	assert_int_equal(tr_boot_write(f->tr, 3, 5, 0, &e), 0);
	assert_int_equal(mkdirat(root, "trails", 0755), 0);
	assert_int_equal(mkdirat(root, "trails/5", 0755), 0);
	/* status.json a directory: every durable write of it fails */
	assert_int_equal(mkdirat(root, "trails/5/status.json", 0755), 0);

	assert_int_equal(boot_engine(f, &e), 0);
	assert_int_equal(trails_boot(f->tr, &e), 0);
	assert_int_equal(f->reboots, 1);
	assert_non_null(strstr(f->why, "try"));
	assert_int_equal(trails_running(f->tr), 0);
	struct boot_state bs;
	trails_boot_state(f->tr, &bs);
	assert_int_equal(bs.committed, 3);
	assert_int_equal(bs.try_rev, 0);
	/* and that is what the bootloader reads */
	assert_int_equal(boot_engine(f, &e), 0);
	struct bootenv *b = f->tr->benv;
	assert_int_equal(bootenv_read(b, &bs, &e), 0);
	assert_int_equal(bs.committed, 3);
	assert_int_equal(bs.try_rev, 0);
}

/* ---------------- lxc: mount targets ---------------- */

struct tmp_fx {
	char dir[32];
};

static int tmp_setup(void **state)
{
	struct tmp_fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	memcpy(f->dir, "/tmp/cairn-review-XXXXXX", sizeof("/tmp/cairn-review-XXXXXX"));
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp_fx *f = *state;
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

static int lxc_prepare_in(const char *dir, const struct plugin_mount *m, size_t nm, void **h,
			  struct err *e)
{
	char rootfs[96], statedir[96];
	static char *const argv[] = {"/bin/sh", NULL};
	assert_int_equal(str_fmt(rootfs, sizeof(rootfs), "%s/rootfs", dir), 0);
	assert_int_equal(str_fmt(statedir, sizeof(statedir), "%s/lxc", dir), 0);
	struct plugin_ctr pc = {.name = "web", .rootfs = rootfs, .argv = argv, .mounts = m,
				.nmounts = nm, .statedir = statedir, .out_fd = -1};
	return plugin_lxc.prepare(&pc, h, e);
}

/* liblxc makes missing mount targets with mkdir -p and mknod from the
 * host's root, following symlinks: a link in the image (or one a container
 * left in a volume) on the way to a target made it create files and
 * directories on the host. Targets are now made by prepare, never through
 * a symlink. */
static void test_lxc_target_through_symlink(void **state)
{
	struct tmp_fx *f = *state;
	char rootfs[96], host[96], link[128], made[128];
	FMT(rootfs, "%s/rootfs", f->dir);
	FMT(host, "%s/host", f->dir);
	FMT(link, "%s/run", rootfs);
	FMT(made, "%s/cairn", host);
	assert_int_equal(mkdir(rootfs, 0755), 0);
	assert_int_equal(mkdir(host, 0755), 0);
	assert_int_equal(symlink(host, link), 0); /* the image's /run -> <host dir> */
	struct plugin_mount m = {.source = "/dev/null", .target = "/run/cairn/ctrl.sock",
				 .file = true};
	void *h = NULL;
	struct err e = ERR_INIT;
	int r = lxc_prepare_in(f->dir, &m, 1, &h, &e);
	if (r == 0)
		plugin_lxc.release(h);
	assert_int_equal(r, -ELOOP);
	assert_non_null(strstr(e.msg, "symlink"));
	struct stat sb;
	assert_int_equal(lstat(made, &sb), -1); /* nothing made on the "host" */
}

static void test_lxc_targets_made(void **state)
{
	struct tmp_fx *f = *state;
	char rootfs[96], p[160];
	FMT(rootfs, "%s/rootfs", f->dir);
	assert_int_equal(mkdir(rootfs, 0755), 0);
	struct plugin_mount m[] = {
		{.source = "/tmp", .target = "/var/lib/data"},
		{.source = "/dev/null", .target = "/run/cairn/ctrl.sock", .file = true},
	};
	void *h = NULL;
	struct err e = ERR_INIT;
	if (lxc_prepare_in(f->dir, m, 2, &h, &e) < 0)
		fail_msg("prepare: %s", e.msg);
	plugin_lxc.release(h);
	struct stat sb;
	FMT(p, "%s/var/lib/data", rootfs);
	assert_int_equal(lstat(p, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	FMT(p, "%s/run/cairn/ctrl.sock", rootfs);
	assert_int_equal(lstat(p, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	/* a target that is not what the mount needs */
	struct plugin_mount bad = {.source = "/tmp", .target = "/run/cairn/ctrl.sock"};
	assert_int_equal(lxc_prepare_in(f->dir, &bad, 1, &h, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "not a directory"));
}

/* ---------------- rmtree: any depth ---------------- */

/* A revision volume a container filled with a 600-level chain, and names
 * that collide with the ones rmtree moves deep subtrees to: all goes. */
static void test_rmtree_very_deep(void **state)
{
	struct tmp_fx *f = *state;
	char t[96], p[160];
	FMT(t, "%s/vol", f->dir);
	assert_int_equal(mkdir(t, 0755), 0);
	FMT(p, "%s/.rmtree-1", t);
	assert_int_equal(mkdir(p, 0755), 0);
	int fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	put_file(fd, ".rmtree-2");
	for (int i = 0; i < 600; i++) {
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		if (i % 100 == 0)
			put_file(fd, "f");
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = sub;
		assert_true(fd >= 0);
	}
	close(fd);
	struct err e = ERR_INIT;
	if (storage_rmtree(t, &e) < 0)
		fail_msg("rmtree: %s", e.msg);
	assert_int_equal(access(t, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_volume_above_ctrl_socket),
		cmocka_unit_test_setup_teardown(test_gc_removes_leftovers, gc_setup, gc_teardown),
		cmocka_unit_test_setup_teardown(test_boot_try_unmarkable_reboots, boot_setup,
						boot_teardown),
		cmocka_unit_test_setup_teardown(test_lxc_target_through_symlink, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_lxc_targets_made, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_rmtree_very_deep, tmp_setup, tmp_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
