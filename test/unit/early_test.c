/* test/unit/early_test.c — a real PID 1's early boot, the parts that can be
 * tested without a machine: the kernel command line (init/early_cmdline.c),
 * modules.dep resolution (init/early_modules.c) on a fake tree, the ext4
 * label reader on real images made by mkfs.ext4, the watchdog's decision.
 * (The BSP placement of trails/bsp.c is test/unit/bsp_test.c.)
 * init/ is not an archive: its files are compiled in here.
 * Nothing is mounted, no module is loaded into the host kernel; temp dirs go
 * in the teardown whatever happens. */
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

#include "init/early_cmdline.c"
#undef LOG_MODULE
#include "init/early_modules.c"
#undef LOG_MODULE
#include "init/early_storage.c"
#undef LOG_MODULE
#include "init/early_watchdog.c"
#undef LOG_MODULE


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
	return tmpdir_make(f->dir, sizeof(f->dir), "early");
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
	char path[256];
	FMT(path, "%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	char cmd[300];
	FMT(cmd, "mkdir -p '%s'", path);
	assert_int_equal(system(cmd), 0);
	*slash = '/';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* ---------------- the kernel command line ---------------- */

static int parse(const char *line, struct early_cmdline *c, struct err *e)
{
	return early_cmdline_parse(line, strlen(line), c, e);
}

static void test_cmdline_defaults(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	assert_int_equal(parse("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n", &c, &e), 0);
	assert_string_equal(c.storage, "");
	assert_int_equal(c.storage_wait_s, 10);
	assert_string_equal(c.fstype, "ext4");
	assert_int_equal(c.rev, 0);
	assert_string_equal(c.bootloader, "");
	assert_string_equal(c.trust, "");
	assert_int_equal(c.log_level, -1);
	assert_false(c.modules_given);
	assert_string_equal(c.watchdog, "");
	assert_int_equal(c.watchdog_s, 30);
	assert_int_equal(c.watchdog_grace_s, 300);
	assert_false(c.test_hang);
	assert_int_equal(c.nunknown, 0);
}

static void test_cmdline_every_key(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	const char *line =
		"console=ttyS0 cairn.storage=/dev/vda2 cairn.storage_wait=0 cairn.fstype=btrfs "
		"cairn.rev=9007199254740991 cairn.bootloader=uboot:/etc/fw_env.config "
		"cairn.trust=/etc/keys cairn.loglevel=debug cairn.modules=virtio-blk,ext4 "
		"cairn.watchdog=/dev/watchdog1 cairn.watchdog_s=3600 cairn.watchdog_grace_s=1 "
		"cairn.test_hang=1\n";
	if (parse(line, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.storage, "/dev/vda2");
	assert_int_equal(c.storage_wait_s, 0);
	assert_string_equal(c.fstype, "btrfs");
	assert_true(c.rev == 9007199254740991ull);
	assert_string_equal(c.bootloader, "uboot:/etc/fw_env.config");
	assert_string_equal(c.trust, "/etc/keys");
	assert_int_equal(c.log_level, LOGL_DEBUG);
	assert_true(c.modules_given);
	assert_int_equal(c.nmodules, 2);
	assert_string_equal(c.modules[0], "virtio-blk");
	assert_string_equal(c.modules[1], "ext4");
	assert_string_equal(c.watchdog, "/dev/watchdog1");
	assert_int_equal(c.watchdog_s, 3600);
	assert_int_equal(c.watchdog_grace_s, 1);
	assert_true(c.test_hang);
	/* the other spellings */
	assert_int_equal(parse("cairn.storage=LABEL=cairn cairn.bootloader=file "
			       "cairn.bootloader=grub:/boot/grubenv cairn.watchdog=off "
			       "cairn.test_hang=0 cairn.modules=",
			       &c, &e),
			 0);
	assert_string_equal(c.storage, "LABEL=cairn");
	assert_string_equal(c.bootloader, "grub:/boot/grubenv");
	assert_string_equal(c.watchdog, "off");
	assert_false(c.test_hang);
	assert_true(c.modules_given);
	assert_int_equal(c.nmodules, 0);
}

static void test_cmdline_quoting_and_end(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	assert_int_equal(parse("cairn.storage=\"LABEL=my disk\" x", &c, &e), 0);
	assert_string_equal(c.storage, "LABEL=my disk");
	assert_int_equal(parse("\"cairn.trust=/etc/my keys\"\tcairn.rev=4", &c, &e), 0);
	assert_string_equal(c.trust, "/etc/my keys");
	assert_int_equal(c.rev, 4);
	/* an unterminated quote runs to the end, like the kernel's */
	assert_int_equal(parse("cairn.storage=\"LABEL=ab cd", &c, &e), 0);
	assert_string_equal(c.storage, "LABEL=ab cd");
	/* a lone -- hands the rest to init: not ours; a quoted one does not */
	assert_int_equal(parse("cairn.rev=3 -- cairn.rev=4 --storage /x", &c, &e), 0);
	assert_int_equal(c.rev, 3);
	assert_int_equal(parse("cairn.rev=3 \"--\" cairn.rev=5", &c, &e), 0);
	assert_int_equal(c.rev, 5);
	/* NUL bytes and newlines separate too; a blank value after -- is not parsed */
	const char nul[] = "cairn.rev=6\0cairn.fstype=xfs\n";
	assert_int_equal(early_cmdline_parse(nul, sizeof(nul) - 1, &c, &e), 0);
	assert_int_equal(c.rev, 6);
	assert_string_equal(c.fstype, "xfs");
}

static void test_cmdline_last_wins(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	assert_int_equal(parse("cairn.rev=3 cairn.storage=/dev/a cairn.rev=5 cairn.storage=/dev/b "
			       "cairn.modules=a,b,c cairn.modules=d",
			       &c, &e),
			 0);
	assert_int_equal(c.rev, 5);
	assert_string_equal(c.storage, "/dev/b");
	assert_int_equal(c.nmodules, 1);
	assert_string_equal(c.modules[0], "d");
	/* a bad later value is an error even after a good one */
	assert_true(parse("cairn.rev=3 cairn.rev=x", &c, &e) < 0);
}

static void test_cmdline_unknown_and_foreign(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	assert_int_equal(parse("cairnx=1 cairn=2 cairn.storge=/dev/vda cairn.rev.x=1 "
			       "mycairn.rev=zz root=/dev/sda",
			       &c, &e),
			 0);
	assert_int_equal(c.nunknown, 2);
	assert_string_equal(c.unknown, "cairn.storge=/dev/vda");
	assert_int_equal(c.rev, 0);
}

static void test_cmdline_garbage(void **state)
{
	(void)state;
	static const struct {
		const char *line, *field, *msg;
	} bad_cases[] = {
		{"cairn.storage=/tmp/x", "cairn.storage", "neither /dev/NAME nor LABEL=L"},
		{"cairn.storage=/dev/", "cairn.storage", "neither"},
		{"cairn.storage=/dev/../etc/x", "cairn.storage", "neither"},
		{"cairn.storage=vda2", "cairn.storage", "neither"},
		{"cairn.storage=LABEL=", "cairn.storage", "1-16 bytes"},
		{"cairn.storage=LABEL=12345678901234567", "cairn.storage", "1-16 bytes"},
		{"cairn.storage=\"LABEL=a\tb\"", "cairn.storage", "printable"},
		{"cairn.storage_wait=1O", "cairn.storage_wait", "\"1O\" is not a number of seconds"},
		{"cairn.storage_wait=3601", "cairn.storage_wait", "0-3600"},
		{"cairn.storage_wait=-1", "cairn.storage_wait", "seconds"},
		{"cairn.storage_wait=010", "cairn.storage_wait", "seconds"},
		{"cairn.storage_wait=", "cairn.storage_wait", "seconds"},
		{"cairn.storage_wait=99999999999999999999999", "cairn.storage_wait", "seconds"},
		{"cairn.fstype=EXT4", "cairn.fstype", "filesystem type"},
		{"cairn.fstype=", "cairn.fstype", "filesystem type"},
		{"cairn.fstype=ext4/../x", "cairn.fstype", "filesystem type"},
		{"cairn.rev=0", "cairn.rev", "not a revision number"},
		{"cairn.rev=013", "cairn.rev", "leading zero"},
		{"cairn.rev=+3", "cairn.rev", "not a revision number"},
		{"cairn.rev=9007199254740992", "cairn.rev", "not a revision number"},
		{"cairn.rev=18446744073709551617", "cairn.rev", "not a revision number"},
		{"cairn.bootloader=uboot:rel/fw_env", "cairn.bootloader", "uboot:/ABS/PATH"},
		{"cairn.bootloader=efi", "cairn.bootloader", "file, uboot"},
		{"cairn.bootloader=grub:", "cairn.bootloader", "grub:/ABS/PATH"},
		{"cairn.trust=etc/keys", "cairn.trust", "not an absolute path"},
		{"cairn.trust=/etc/../root", "cairn.trust", "not an absolute path"},
		{"cairn.trust=/etc/..", "cairn.trust", "not an absolute path"},
		{"cairn.loglevel=loud", "cairn.loglevel", "err, warn, info or debug"},
		{"cairn.modules=a,,b", "cairn.modules", "comma-separated"},
		{"cairn.modules=ext4,", "cairn.modules", "comma-separated"},
		{"cairn.modules=,ext4", "cairn.modules", "comma-separated"},
		{"cairn.modules=../x", "cairn.modules", "comma-separated"},
		{"cairn.modules=a23456789012345678901234567890123456789012345678901234567",
		 "cairn.modules", "comma-separated"},
		{"cairn.watchdog=dev/watchdog", "cairn.watchdog", "absolute device path nor off"},
		{"cairn.watchdog_s=0", "cairn.watchdog_s", "1-3600"},
		{"cairn.watchdog_grace_s=x", "cairn.watchdog_grace_s", "1-3600"},
		{"cairn.test_hang=yes", "cairn.test_hang", "neither 0 nor 1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		struct early_cmdline c;
		struct err e = ERR_INIT;
		int r = parse(bad_cases[i].line, &c, &e);
		if (r != -EINVAL || strcmp(e.field, bad_cases[i].field) != 0 ||
		    !strstr(e.msg, bad_cases[i].msg) || strncmp(e.msg, e.field, strlen(e.field)) != 0)
			fail_msg("%s: r=%d field=%s msg=%s", bad_cases[i].line, r, e.field, e.msg);
	}
}

static void test_cmdline_limits(void **state)
{
	(void)state;
	struct early_cmdline c;
	struct err e = ERR_INIT;
	/* a key without a value */
	assert_int_equal(parse("cairn.rev", &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "cairn.rev: needs a value"));
	/* 32 modules fit, 33 do not */
	char line[1024] = "cairn.modules=m0";
	for (int i = 1; i <= 32; i++) {
		size_t n = strlen(line);
		assert_int_equal(str_fmt(line + n, sizeof(line) - n, ",m%d", i), 0);
		if (i == 31) { /* 32 names */
			assert_int_equal(parse(line, &c, &e), 0);
			assert_int_equal(c.nmodules, 32);
			assert_string_equal(c.modules[31], "m31");
		}
	}
	assert_int_equal(parse(line, &c, &e), -EINVAL); /* 33 */
	assert_non_null(strstr(e.msg, "more than 32"));
	/* a cairn word longer than we read is refused; someone else's is skipped */
	size_t big = 5000;
	char *huge = malloc(big + 32);
	assert_non_null(huge);
	memcpy(huge, "cairn.trust=/", 13);
	memset(huge + 13, 'a', big);
	huge[13 + big] = '\0';
	assert_int_equal(parse(huge, &c, &e), -E2BIG);
	memcpy(huge, "other.trust=/", 13);
	memcpy(huge + 13 + big, " cairn.rev=2", 13);
	assert_int_equal(parse(huge, &c, &e), 0);
	assert_int_equal(c.rev, 2);
	free(huge);
	/* a value longer than the buffer */
	char path[400] = "cairn.trust=/";
	memset(path + 13, 'p', 300);
	path[313] = '\0';
	assert_int_equal(parse(path, &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "too long"));
}

/* ---------------- modules.dep ---------------- */

static const char *const fake_dep =
	"kernel/a.ko: kernel/b.ko kernel/c.ko\n"
	"kernel/b.ko: kernel/c.ko\n"
	"kernel/c.ko:\n"
	"\n"
	"kernel/sub/d-x.ko.xz:\n"
	"kernel/e.ko: kernel/missing.ko\n"
	"kernel/cyc1.ko: kernel/cyc2.ko kernel/c.ko\n"
	"kernel/cyc2.ko: kernel/cyc1.ko\n"
	"kernel/f.ko: kernel/c.ko\n"
	"kernel/g_generic.ko:\n"
	"kernel/k.ko: kernel/sub/d-x.ko.xz kernel/a.ko\n";

static struct mod_index *fake_tree(struct fixture *f, int *dfd)
{
	char dir[128];
	FMT(dir, "%s/mods", f->dir);
	write_file(dir, "modules.dep", fake_dep);
	write_file(dir, "modules.softdep",
		   "# softdeps\nsoftdep f pre: crypto-g nosuch post: a\nsoftdep x pre: a\n");
	write_file(dir, "modules.alias",
		   "alias crypto-g g_missing\nalias crypto-gx k\nalias crypto-g g-generic\n");
	write_file(dir, "modules.builtin", "kernel/fs/h.ko\nkernel/lib/i-j.ko\n");
	*dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(*dfd >= 0);
	struct mod_index *x = NULL;
	struct err e = ERR_INIT;
	if (mod_index_load(*dfd, &x, &e) < 0)
		fail_msg("load: %s", e.msg);
	return x;
}

static void assert_plan(const struct mod_plan *p, const char *const *want, size_t n)
{
	if (p->n != n)
		fail_msg("plan has %zu steps, want %zu (first %s)", p->n, n, p->n ? p->step[0].path : "");
	for (size_t i = 0; i < n; i++)
		if (strcmp(p->step[i].path, want[i]) != 0)
			fail_msg("step %zu: %s, want %s", i, p->step[i].path, want[i]);
}

static void test_modules_order(void **state)
{
	struct fixture *f = *state;
	int dfd;
	struct mod_index *x = fake_tree(f, &dfd);
	static struct mod_plan plan;
	plan.n = 0;
	struct err e = ERR_INIT;
	assert_int_equal(mod_plan_add(x, dfd, "a", &plan, &e), 0);
	const char *const want_a[] = {"kernel/c.ko", "kernel/b.ko", "kernel/a.ko"};
	assert_plan(&plan, want_a, 3);
	/* each file once across calls; '-' and '_' are the same */
	assert_int_equal(mod_plan_add(x, dfd, "b", &plan, &e), 0);
	assert_int_equal(mod_plan_add(x, dfd, "d_x", &plan, &e), 0);
	assert_int_equal(mod_plan_add(x, dfd, "k", &plan, &e), 0);
	const char *const want_k[] = {"kernel/c.ko", "kernel/b.ko", "kernel/a.ko",
				      "kernel/sub/d-x.ko.xz", "kernel/k.ko"};
	assert_plan(&plan, want_k, 5);
	assert_string_equal(plan.step[3].name, "d_x");
	for (size_t i = 0; i < plan.n; i++)
		assert_false(plan.step[i].optional);
	/* built in: fine, nothing to load */
	assert_int_equal(mod_plan_add(x, dfd, "h", &plan, &e), 0);
	assert_int_equal(mod_plan_add(x, dfd, "i_j", &plan, &e), 0);
	assert_int_equal(plan.n, 5);
	mod_index_free(x);
	close(dfd);
}

static void test_modules_softdep(void **state)
{
	struct fixture *f = *state;
	int dfd;
	struct mod_index *x = fake_tree(f, &dfd);
	static struct mod_plan plan;
	plan.n = 0;
	struct err e = ERR_INIT;
	/* f: pre crypto-g (an alias: g_missing is not there, g-generic is), nosuch skipped */
	if (mod_plan_add(x, dfd, "f", &plan, &e) < 0)
		fail_msg("%s", e.msg);
	const char *const want[] = {"kernel/g_generic.ko", "kernel/c.ko", "kernel/f.ko"};
	assert_plan(&plan, want, 3);
	assert_true(plan.step[0].optional);
	assert_false(plan.step[1].optional);
	assert_false(plan.step[2].optional);
	/* asked for itself later: no longer optional */
	assert_int_equal(mod_plan_add(x, dfd, "g-generic", &plan, &e), 0);
	assert_int_equal(plan.n, 3);
	assert_false(plan.step[0].optional);
	mod_index_free(x);
	close(dfd);
}

static void test_modules_refused(void **state)
{
	struct fixture *f = *state;
	int dfd;
	struct mod_index *x = fake_tree(f, &dfd);
	static struct mod_plan plan;
	plan.n = 0;
	struct err e = ERR_INIT;
	assert_int_equal(mod_plan_add(x, dfd, "c", &plan, &e), 0);
	/* a missing dependency is named, and nothing is added */
	assert_int_equal(mod_plan_add(x, dfd, "e", &plan, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "module e: kernel/missing.ko (needed by e) is not in modules.dep"));
	assert_int_equal(plan.n, 1);
	/* a cycle is refused with its chain; c planned before stays, nothing else */
	assert_int_equal(mod_plan_add(x, dfd, "cyc1", &plan, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "cyc1 -> cyc2 -> cyc1"));
	assert_int_equal(plan.n, 1);
	/* and it is refused again: a failed resolution leaves no state behind */
	assert_int_equal(mod_plan_add(x, dfd, "cyc2", &plan, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "cyc2 -> cyc1 -> cyc2"));
	/* unknown, empty names */
	assert_int_equal(mod_plan_add(x, dfd, "zz", &plan, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "module zz: neither in modules.dep nor built in"));
	assert_int_equal(mod_plan_add(x, dfd, "", &plan, &e), -EINVAL);
	/* a good one still works after all that */
	assert_int_equal(mod_plan_add(x, dfd, "a", &plan, &e), 0);
	assert_int_equal(plan.n, 3);
	/* loading a file that is not there names it (nothing reaches the kernel) */
	struct mod_step st = {.path = "kernel/nothere.ko", .name = "nothere"};
	assert_int_equal(mod_load(dfd, &st, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "nothere: kernel/nothere.ko"));
	mod_index_free(x);
	close(dfd);
}

static void test_modules_bad_index(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *dep, *msg;
	} cases[] = {
		{"kernel/a.ko kernel/b.ko\n", "modules.dep line 1: no ':'"},
		{"kernel/a.ko:\n../../etc/x.ko:\n", "line 2: \"../../etc/x.ko\" is not a module file"},
		{"/lib/x.ko:\n", "not a module file"},
		{"kernel/notamodule.so:\n", "not a module file"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char dir[128];
		FMT(dir, "%s/bad%zu", f->dir, i);
		write_file(dir, "modules.dep", cases[i].dep);
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct mod_index *x = NULL;
		struct err e = ERR_INIT;
		int r = mod_index_load(dfd, &x, &e);
		close(dfd);
		if (r != -EINVAL || !strstr(e.msg, cases[i].msg))
			fail_msg("case %zu: r=%d %s", i, r, e.msg);
		assert_null(x);
	}
	/* no modules.dep at all */
	int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct mod_index *x = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(mod_index_load(dfd, &x, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "modules.dep"));
	close(dfd);
}

/* ---------------- the ext4 label ---------------- */

static int image_label(struct fixture *f, const char *mkfs_args, char out[17])
{
	char img[128], cmd[512];
	FMT(img, "%s/fs.img", f->dir);
	unlink(img);
	FMT(cmd, "truncate -s 8M %s && mkfs.ext4 -q -F %s %s >/dev/null 2>&1", img, mkfs_args, img);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct err e = ERR_INIT;
	int r = early_ext4_label(fd, out, &e);
	close(fd);
	return r;
}

static void test_ext4_label(void **state)
{
	struct fixture *f = *state;
	char label[17];
	assert_int_equal(image_label(f, "-L cairn", label), 1);
	assert_string_equal(label, "cairn");
	assert_int_equal(image_label(f, "-L 0123456789abcdef", label), 1); /* 16: no NUL on disk */
	assert_string_equal(label, "0123456789abcdef");
	assert_int_equal(image_label(f, "", label), 1);
	assert_string_equal(label, "");
	/* not ext: zeroes, a short file */
	char path[128];
	FMT(path, "%s/zero.img", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	struct err e = ERR_INIT;
	assert_int_equal(early_ext4_label(fd, label, &e), 0);
	assert_int_equal(ftruncate(fd, 1100), 0);
	assert_int_equal(early_ext4_label(fd, label, &e), 0);
	close(fd);
}

/* ---------------- the watchdog's decision ---------------- */

static void test_watchdog_decision(void **state)
{
	(void)state;
	const uint64_t s = 1000000000ull;
	struct wdog_clock c = {.opened_ns = 100 * s, .period_ns = 5 * s, .grace_ns = 60 * s};
	/* start-up: no heartbeat yet, within the grace */
	assert_true(wdog_should_pet(&c, 100 * s));
	assert_true(wdog_should_pet(&c, 160 * s));
	assert_false(wdog_should_pet(&c, 160 * s + 1));
	/* heartbeats: within 2P */
	c.last_beat_ns = 150 * s;
	assert_true(wdog_should_pet(&c, 160 * s));
	assert_false(wdog_should_pet(&c, 160 * s + 1));
	/* after the first beat the grace no longer counts */
	c.last_beat_ns = 101 * s;
	assert_false(wdog_should_pet(&c, 120 * s));
	/* no device: nothing to wait for, PID 1 sleeps in sigwaitinfo */
	assert_int_equal(wdog_wait_ms(), -1);
	assert_false(wdog_active());
	assert_int_equal(pid1_heartbeat_start(NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmdline_defaults),
		cmocka_unit_test(test_cmdline_every_key),
		cmocka_unit_test(test_cmdline_quoting_and_end),
		cmocka_unit_test(test_cmdline_last_wins),
		cmocka_unit_test(test_cmdline_unknown_and_foreign),
		cmocka_unit_test(test_cmdline_garbage),
		cmocka_unit_test(test_cmdline_limits),
		cmocka_unit_test_setup_teardown(test_modules_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modules_softdep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modules_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modules_bad_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ext4_label, setup, teardown),
		cmocka_unit_test(test_watchdog_decision),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
