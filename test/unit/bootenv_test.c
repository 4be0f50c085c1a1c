/* test/unit/bootenv_test.c — the boot state backends (trails/bootenv.c).
 * Each backend goes through every state (none, staged try, consumed try,
 * committed only) and is cross-checked with the bootloader's own tools:
 * libubootenv's fw_printenv/fw_setenv on an environment image made here, and
 * grub-editenv on a block it created. Crash and failure injection run in a
 * forked child (CAIRN_CRASH_AT / CAIRN_FAIL_AT), which reports only through
 * its exit status. Every test works in a mkdtemp directory removed in teardown. */
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

#include "lib/cleanup.h"
#include "lib/util.h"
#include "storage/storage.h"
#include "trails/trails_internal.h"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)
#define ENV_SIZE 0x4000

struct fixture {
	char dir[64];
	char root[96];    /* dir/store */
	char img[96];     /* dir/env.img: U-Boot environment, 2 * ENV_SIZE bytes */
	char cfg[96];     /* dir/fw_env.config: one copy at 0 */
	char cfg2[96];    /* dir/fw_env2.config: two copies (redundant) */
	char defaults[96];
	char grubenv[96]; /* dir/grubenv */
	struct storage *s;
};

/* The four states every backend must carry. */
static const struct boot_state st_none = {0, 0, 0};
static const struct boot_state st_staged = {5, 6, 1};
static const struct boot_state st_consumed = {5, 6, 0};
static const struct boot_state st_committed = {6, 0, 0};

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	int r = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) == 0 ? r : -1;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-bootenv-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/store", f->dir);
	snprintf(f->img, sizeof(f->img), "%s/env.img", f->dir);
	snprintf(f->cfg, sizeof(f->cfg), "%s/fw_env.config", f->dir);
	snprintf(f->cfg2, sizeof(f->cfg2), "%s/fw_env2.config", f->dir);
	snprintf(f->defaults, sizeof(f->defaults), "%s/defaults", f->dir);
	snprintf(f->grubenv, sizeof(f->grubenv), "%s/grubenv", f->dir);
	char line[512];
	int fd = open(f->img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 2 * ENV_SIZE) < 0 || close(fd) < 0)
		return -1;
	snprintf(line, sizeof(line), "# cairn test\n%s 0x0 0x%x\n", f->img, ENV_SIZE);
	if (write_text(f->cfg, line) < 0)
		return -1;
	snprintf(line, sizeof(line), "%s 0x0 0x%x\n%s 0x%x 0x%x\n", f->img, ENV_SIZE, f->img,
		 ENV_SIZE, ENV_SIZE);
	if (write_text(f->cfg2, line) < 0 ||
	    write_text(f->defaults, "bootdelay=3\nnote=hello world\n") < 0)
		return -1;
	return mkdir(f->root, 0755) < 0 || storage_open(f->root, &f->s, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* ---- helpers ---- */

/* Run argv, return its stdout (malloc'd); *status gets the wait status. */
static char *run(const char *const argv[], int *status)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 65536, len = 0;
	char *out = calloc(1, cap);
	assert_non_null(out);
	ssize_t n;
	while ((n = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return out;
}

static void run_ok(const char *const argv[])
{
	int status;
	free(run(argv, &status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void assert_state(const struct boot_state *got, const struct boot_state *want)
{
	assert_int_equal(got->committed, want->committed);
	assert_int_equal(got->try_rev, want->try_rev);
	assert_int_equal(got->tries, want->tries);
}

static struct bootenv *open_backend(struct fixture *f, const char *kind, const char *path)
{
	char spec[256];
	struct err e = ERR_INIT;
	struct bootenv *b = NULL;
	if (path)
		FMT(spec, "%s:%s", kind, path);
	else
		FMT(spec, "%s", kind);
	int r = bootenv_open(spec, f->s, &b, &e);
	if (r < 0)
		fail_msg("open %s: %s", spec, e.msg);
	assert_string_equal(bootenv_name(b), spec);
	return b;
}

static void write_ok(struct bootenv *b, const struct boot_state *bs)
{
	struct err e = ERR_INIT;
	if (bootenv_write(b, bs, &e) < 0)
		fail_msg("write %s: %s", bootenv_name(b), e.msg);
}

static void read_is(struct bootenv *b, const struct boot_state *want)
{
	struct err e = ERR_INIT;
	struct boot_state got;
	if (bootenv_read(b, &got, &e) < 0)
		fail_msg("read %s: %s", bootenv_name(b), e.msg);
	assert_state(&got, want);
}

/* bootenv_read fails with code and a message containing `needle`. */
static void read_fails(struct bootenv *b, int code, const char *needle)
{
	struct err e = ERR_INIT;
	struct boot_state got;
	int r = bootenv_read(b, &got, &e);
	if (r != -code || !strstr(e.msg, needle))
		fail_msg("read: got %d \"%s\", want -%d with \"%s\"", r, e.msg, code, needle);
}

static off_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* ---- file ---- */

static void test_file_states(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "file", NULL);
	read_is(b, &st_none); /* no boot.json yet */
	const struct boot_state *seq[] = {&st_staged, &st_consumed, &st_committed, &st_none};
	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		write_ok(b, seq[i]);
		read_is(b, seq[i]);
		struct boot_state direct;
		assert_int_equal(trails_boot_read(f->s, &direct, NULL), 0);
		assert_state(&direct, seq[i]);
	}
	bootenv_close(b);
}

static void test_file_corrupt(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "file", NULL);
	char path[160];
	FMT(path, "%s/boot.json", f->root);
	assert_int_equal(write_text(path, "{\"committed\": 1, \"try\": \"x\", \"tries\": 0}"), 0);
	read_fails(b, EINVAL, "try");
	bootenv_close(b);
}

/* ---- uboot ---- */

static char *printenv(const char *cfg)
{
	const char *argv[] = {"fw_printenv", "-c", cfg, NULL};
	int status;
	char *out = run(argv, &status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return out;
}

static void printenv_is(const char *cfg, const char *want)
{
	char *out = printenv(cfg);
	if (strcmp(out, want) != 0)
		fail_msg("fw_printenv:\n%s\nwant:\n%s", out, want);
	free(out);
}

static void setenv_tool(struct fixture *f, const char *name, const char *value)
{
	const char *argv[] = {"fw_setenv", "-c", f->cfg, name, value, NULL};
	run_ok(argv);
}

static void provision(struct fixture *f, const char *cfg)
{
	const char *argv[] = {"fw_setenv", "-c", cfg, "-f", f->defaults, NULL};
	run_ok(argv);
}

static void test_uboot_blank(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "uboot", f->cfg);
	read_is(b, &st_none); /* zeroed area: never provisioned */
	write_ok(b, &st_staged); /* a blank area starts from an empty environment */
	read_is(b, &st_staged);
	printenv_is(f->cfg, "cairn_rev=5\ncairn_try=6\n");
	bootenv_close(b);
}

static void test_uboot_states(void **state)
{
	struct fixture *f = *state;
	provision(f, f->cfg);
	struct bootenv *b = open_backend(f, "uboot", f->cfg);
	read_is(b, &st_none);
	static const struct {
		const struct boot_state *bs;
		const char *env;
	} seq[] = {
		{&st_staged, "bootdelay=3\ncairn_rev=5\ncairn_try=6\nnote=hello world\n"},
		{&st_consumed, "bootdelay=3\ncairn_rev=5\ncairn_try=6\ncairn_trying=6\n"
			       "note=hello world\n"},
		{&st_committed, "bootdelay=3\ncairn_rev=6\nnote=hello world\n"},
		{&st_none, "bootdelay=3\nnote=hello world\n"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		write_ok(b, seq[i].bs);
		read_is(b, seq[i].bs);
		printenv_is(f->cfg, seq[i].env);
	}
	/* staging a try again clears a cairn_trying left from an older try */
	write_ok(b, &(struct boot_state){5, 6, 0});
	write_ok(b, &(struct boot_state){5, 7, 1});
	printenv_is(f->cfg, "bootdelay=3\ncairn_rev=5\ncairn_try=7\nnote=hello world\n");
	bootenv_close(b);
}

/* What the bootloader side writes (through libubootenv's own tool) reads back. */
static void test_uboot_reads_tool(void **state)
{
	struct fixture *f = *state;
	provision(f, f->cfg);
	struct bootenv *b = open_backend(f, "uboot", f->cfg);
	setenv_tool(f, "cairn_rev", "41");
	read_is(b, &(struct boot_state){41, 0, 0});
	setenv_tool(f, "cairn_try", "42");
	read_is(b, &(struct boot_state){41, 42, 1});
	setenv_tool(f, "cairn_trying", "42"); /* the boot script took the try */
	read_is(b, &(struct boot_state){41, 42, 0});
	setenv_tool(f, "cairn_trying", "40"); /* stale: the script would take 42 */
	read_is(b, &(struct boot_state){41, 42, 1});
	bootenv_close(b);
}

static void test_uboot_bad_values(void **state)
{
	struct fixture *f = *state;
	provision(f, f->cfg);
	struct bootenv *b = open_backend(f, "uboot", f->cfg);
	static const struct {
		const char *var, *value;
	} bad[] = {
		{"cairn_rev", "12x"}, {"cairn_rev", "+1"}, {"cairn_try", "013"},
		{"cairn_try", " 7"},  {"cairn_trying", "0x10"},
		{"cairn_rev", "99999999999999999"}, /* 17 digits */
		{"cairn_rev", "9007199254740992"},  /* 2^53 */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv_tool(f, "cairn_try", "3");
		setenv_tool(f, bad[i].var, bad[i].value);
		char needle[64];
		FMT(needle, "%s: \"", bad[i].var);
		read_fails(b, EINVAL, needle);
		setenv_tool(f, bad[i].var, "4");
	}
	setenv_tool(f, "cairn_rev", "9007199254740991"); /* 2^53-1: the largest */
	setenv_tool(f, "cairn_try", "4");
	setenv_tool(f, "cairn_trying", "4");
	read_is(b, &(struct boot_state){9007199254740991ull, 4, 0});
	bootenv_close(b);
}

static void corrupt_at(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	char c;
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_uboot_corrupt(void **state)
{
	struct fixture *f = *state;
	provision(f, f->cfg);
	struct bootenv *b = open_backend(f, "uboot", f->cfg);
	write_ok(b, &st_staged);
	corrupt_at(f->img, 10); /* inside the data: the CRC no longer matches */
	read_fails(b, EBADMSG, "no copy has a valid CRC");
	write_ok(b, &st_committed); /* a write repairs it, with cairn's variables only */
	read_is(b, &st_committed);
	printenv_is(f->cfg, "cairn_rev=6\n");
	bootenv_close(b);
}

static off_t find_in(const char *path, const char *needle)
{
	char *buf = calloc(1, 2 * ENV_SIZE + 1);
	assert_non_null(buf);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, buf, 2 * ENV_SIZE), 2 * ENV_SIZE);
	close(fd);
	off_t at = -1;
	for (size_t i = 0; i + strlen(needle) <= 2 * ENV_SIZE && at < 0; i++)
		if (memcmp(buf + i, needle, strlen(needle)) == 0)
			at = (off_t)i;
	free(buf);
	return at;
}

/* Two copies: each store writes the older one; a torn newest copy leaves the
 * previous state, which is what makes a store atomic. */
static void test_uboot_redundant(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "uboot", f->cfg2);
	read_is(b, &st_none);
	const struct boot_state *seq[] = {&st_staged, &st_consumed, &st_committed};
	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		write_ok(b, seq[i]);
		read_is(b, seq[i]);
	}
	printenv_is(f->cfg2, "cairn_rev=6\n");
	off_t newest = find_in(f->img, "cairn_rev=6");
	assert_true(newest >= 0);
	off_t older = find_in(f->img, "cairn_trying=6");
	assert_true(older >= 0);
	assert_true((newest < ENV_SIZE) != (older < ENV_SIZE)); /* one in each copy */
	corrupt_at(f->img, newest);
	read_is(b, &st_consumed);
	printenv_is(f->cfg2, "cairn_rev=5\ncairn_try=6\ncairn_trying=6\n");
	bootenv_close(b);
}

static void open_fails(struct fixture *f, const char *spec, int code, const char *needle)
{
	struct err e = ERR_INIT;
	struct bootenv *b = NULL;
	int r = bootenv_open(spec, f->s, &b, &e);
	if (r != -code || !strstr(e.msg, needle))
		fail_msg("open %s: got %d \"%s\", want -%d with \"%s\"", spec, r, e.msg, code,
			 needle);
	assert_null(b);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char spec[256], path[160];
	open_fails(f, "lilo", EINVAL, "bootloader: unknown boot backend \"lilo\"");
	open_fails(f, "uboot:", EINVAL, "unknown boot backend");
	open_fails(f, "grub:", EINVAL, "unknown boot backend");
	FMT(spec, "grub:%s/", f->dir);
	open_fails(f, spec, EINVAL, "not a file path");
	FMT(spec, "uboot:%s/none.config", f->dir);
	open_fails(f, spec, ENOENT, "uboot config");
	FMT(path, "%s/bad.config", f->dir);
	assert_int_equal(write_text(path, "/dev/null zz 0x4000\n"), 0);
	FMT(spec, "uboot:%s", path);
	open_fails(f, spec, EINVAL, "want \"<device> <offset> <size in hex>\"");
	FMT(path, "%s/nodev.config", f->dir);
	assert_int_equal(write_text(path, "/nonexistent/env 0x0 0x4000\n"), 0);
	FMT(spec, "uboot:%s", path);
	open_fails(f, spec, EINVAL, "refused by libubootenv");
	FMT(path, "%s/empty.config", f->dir);
	assert_int_equal(write_text(path, "# nothing\n"), 0);
	FMT(spec, "uboot:%s", path);
	open_fails(f, spec, EINVAL, "no environment device");
	struct bootenv *b = NULL;
	assert_int_equal(bootenv_open("file", NULL, &b, NULL), -EINVAL);
}

static void test_tries_not_representable(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"grub-editenv", f->grubenv, "create", NULL};
	run_ok(argv);
	struct bootenv *bs[] = {open_backend(f, "uboot", f->cfg),
				open_backend(f, "grub", f->grubenv)};
	for (size_t i = 0; i < ARRAY_SIZE(bs); i++) {
		struct err e = ERR_INIT;
		assert_int_equal(bootenv_write(bs[i], &(struct boot_state){5, 6, 2}, &e), -EINVAL);
		assert_string_equal(e.field, "tries");
		read_is(bs[i], &st_none); /* nothing written */
		bootenv_close(bs[i]);
	}
}

/* ---- grub ---- */

static void grub_create(struct fixture *f)
{
	const char *create[] = {"grub-editenv", f->grubenv, "create", NULL};
	run_ok(create);
	/* other variables, with both escapes of grub-editenv */
	const char *set[] = {"grub-editenv", f->grubenv, "set", "saved_entry=1", "c=x\\y",
			     "n=l1\nl2", NULL};
	run_ok(set);
}

static void grub_list_is(struct fixture *f, const char *want)
{
	const char *argv[] = {"grub-editenv", f->grubenv, "list", NULL};
	int status;
	char *out = run(argv, &status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (strcmp(out, want) != 0)
		fail_msg("grub-editenv list:\n%s\nwant:\n%s", out, want);
	free(out);
	assert_int_equal(file_size(f->grubenv), 1024);
}

#define GRUB_OTHERS "saved_entry=1\nc=x\\y\nn=l1\nl2\n"

static void test_grub_states(void **state)
{
	struct fixture *f = *state;
	grub_create(f);
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	read_is(b, &st_none);
	static const struct {
		const struct boot_state *bs;
		const char *list;
	} seq[] = {
		{&st_staged, GRUB_OTHERS "cairn_rev=5\ncairn_try=6\n"},
		{&st_consumed, GRUB_OTHERS "cairn_rev=5\ncairn_try=6\ncairn_trying=6\n"},
		{&st_committed, GRUB_OTHERS "cairn_rev=6\n"},
		{&st_none, GRUB_OTHERS},
	};
	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		write_ok(b, seq[i].bs);
		read_is(b, seq[i].bs);
		grub_list_is(f, seq[i].list);
	}
	/* the block keeps grub-editenv's header and comment line, '#' padding */
	char buf[1024];
	int fd = open(f->grubenv, O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, buf, sizeof(buf)), 1024);
	close(fd);
	const char *head = "# GRUB Environment Block\n# WARNING: Do not edit this file by tools "
			   "other than grub-editenv!!!\nsaved_entry=1\nc=x\\\\y\nn=l1\\\nl2\n";
	assert_memory_equal(buf, head, strlen(head));
	for (size_t i = strlen(head); i < sizeof(buf); i++)
		assert_int_equal(buf[i], '#');
	bootenv_close(b);
}

static void test_grub_reads_tool(void **state)
{
	struct fixture *f = *state;
	grub_create(f);
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	const char *set1[] = {"grub-editenv", f->grubenv, "set", "cairn_rev=3", "cairn_try=4",
			      NULL};
	run_ok(set1);
	read_is(b, &(struct boot_state){3, 4, 1});
	const char *set2[] = {"grub-editenv", f->grubenv, "set", "cairn_trying=4", NULL};
	run_ok(set2); /* what grub.cfg's save_env does when it takes the try */
	read_is(b, &(struct boot_state){3, 4, 0});
	write_ok(b, &(struct boot_state){4, 0, 0}); /* commit */
	grub_list_is(f, GRUB_OTHERS "cairn_rev=4\n");
	bootenv_close(b);
}

static void write_block(const char *path, const char *body, size_t size, char pad)
{
	char *buf = malloc(size + 1);
	assert_non_null(buf);
	memset(buf, pad, size);
	memcpy(buf, body, strlen(body) < size ? strlen(body) : size);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(file_read_all(AT_FDCWD, path, 1 << 20, &buf, &len, NULL), 0);
	return buf;
}

static void test_grub_rejects(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	read_fails(b, ENOENT, "grub-editenv FILE create");
	static const struct {
		const char *body;
		size_t size;
		int code;
		const char *needle;
	} bad[] = {
		{"# GRUB Environment Block\n", 1000, EBADMSG, "1000 bytes"},
		{"# GRUB Environment Block\n", 2048, EBADMSG, "2048 bytes"},
		{"# GRUB Environment Blocks\n", 1024, EBADMSG, "header"},
		{"# GRUB Environment Block\ncairn_rev=1x\n", 1024, EINVAL, "cairn_rev: \"1x\""},
		{"# GRUB Environment Block\ncairn_try=1\\\n2\n", 1024, EINVAL,
		 "cairn_try: \"1?2\""},
		{"# GRUB Environment Block\ncairn_rev=1\ncairn_rev=2\n", 1024, EBADMSG,
		 "cairn_rev: set twice"},
		{"# GRUB Environment Block\ncairn_rev=1234567890123456789012345678901234567890\n",
		 1024, EINVAL,
		 "cairn_rev: value too long"},
		{"# GRUB Environment Block\nx=1\nabc", 1024, EBADMSG, "not terminated"},
		{"# GRUB Environment Block\nx=1\n\0", 1024, EBADMSG, "NUL byte at offset 29"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (strstr(bad[i].needle, "NUL"))
			write_block(f->grubenv, bad[i].body, bad[i].size, '\0');
		else if (strstr(bad[i].body, "abc"))
			write_block(f->grubenv, bad[i].body, bad[i].size, 'c');
		else
			write_block(f->grubenv, bad[i].body, bad[i].size, '#');
		read_fails(b, bad[i].code, bad[i].needle);
		struct err e = ERR_INIT;
		if (bad[i].code == EINVAL) { /* a bad value of cairn's: a write replaces it */
			write_ok(b, &st_staged);
			read_is(b, &st_staged);
			continue;
		}
		char *before = slurp(f->grubenv);
		assert_int_equal(bootenv_write(b, &st_staged, &e), -bad[i].code);
		char *after = slurp(f->grubenv);
		assert_memory_equal(before, after, bad[i].size); /* a bad block is never touched */
		free(before), free(after);
	}
	bootenv_close(b);
}

/* A symlink would be replaced, not followed, by the atomic rename: refused. */
static void test_grub_symlink(void **state)
{
	struct fixture *f = *state;
	char target[160];
	FMT(target, "%s/real", f->dir);
	write_block(target, "# GRUB Environment Block\n", 1024, '#');
	assert_int_equal(symlink(target, f->grubenv), 0);
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	read_fails(b, EINVAL, "a symlink");
	struct err e = ERR_INIT;
	assert_int_equal(bootenv_write(b, &st_staged, &e), -EINVAL);
	struct stat st;
	assert_int_equal(lstat(f->grubenv, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	bootenv_close(b);
}

static void test_grub_full(void **state)
{
	struct fixture *f = *state;
	char vals[961], body[1100];
	memset(vals, 'v', 960);
	vals[960] = '\0';
	FMT(body, "# GRUB Environment Block\nbig=%s\n", vals);
	write_block(f->grubenv, body, 1024, '#');
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	struct err e = ERR_INIT;
	assert_int_equal(bootenv_write(b, &st_consumed, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "do not fit in the 1024-byte block"));
	read_is(b, &st_none); /* unchanged */
	write_ok(b, &(struct boot_state){6, 0, 0}); /* "cairn_rev=6\n" still fits */
	read_is(b, &st_committed);
	bootenv_close(b);
}

/* ---- crashes around the one durable write ---- */

struct child_res {
	bool killed;
	int code; /* exit status when not killed */
};

static struct child_res child_write(struct bootenv *b, const struct boot_state *bs,
				    const char *var, const char *val)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv(var, val, 1);
		_exit(bootenv_write(b, bs, NULL) < 0 ? 3 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	struct child_res res = {WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
				WIFEXITED(status) ? WEXITSTATUS(status) : -1};
	return res;
}

static void crash_cases(struct fixture *f, struct bootenv *b)
{
	write_ok(b, &st_staged);
	struct child_res c = child_write(b, &st_consumed, "CAIRN_CRASH_AT", "before:1");
	assert_true(c.killed);
	read_is(b, &st_staged); /* old */
	c = child_write(b, &st_consumed, "CAIRN_CRASH_AT", "after:1");
	assert_true(c.killed);
	read_is(b, &st_consumed); /* new */
	c = child_write(b, &st_committed, "CAIRN_FAIL_AT", "1:EIO");
	assert_false(c.killed);
	assert_int_equal(c.code, 3);
	read_is(b, &st_consumed); /* failed fsync: old */
	c = child_write(b, &st_committed, "CAIRN_CRASH_AT", "before:2");
	assert_false(c.killed); /* exactly one durable operation per write */
	assert_int_equal(c.code, 0);
	read_is(b, &st_committed);
	(void)f;
}

static void test_crash_file(void **state)
{
	struct fixture *f = *state;
	struct bootenv *b = open_backend(f, "file", NULL);
	crash_cases(f, b);
	bootenv_close(b);
}

static void test_crash_grub(void **state)
{
	struct fixture *f = *state;
	grub_create(f);
	struct bootenv *b = open_backend(f, "grub", f->grubenv);
	crash_cases(f, b);
	grub_list_is(f, GRUB_OTHERS "cairn_rev=6\n");
	bootenv_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_blank, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_reads_tool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_bad_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uboot_redundant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tries_not_representable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grub_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grub_reads_tool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grub_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grub_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grub_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_grub, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
