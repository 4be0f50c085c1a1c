/* test/unit/mount_test.c — storage/mount.c: loop+squashfs, overlay, tmpfs,
 * bind, umount, mount points, mkdir -p, rmtree, volume directories.
 *
 * Runs as root with real mounts and real loop devices. Every test works in a
 * fresh mkdtemp directory; teardown first detaches every mount under it
 * (deepest first), then releases any loop device still backed by a file in
 * it, then removes the tree without crossing filesystems, so a failed
 * assertion leaves nothing behind. Images are built with mksquashfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <linux/loop.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "lib/cleanup.h"
#include "lib/util.h"
#include "storage/storage.h"

#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)
#define NCONC 8

struct fixture {
	char dir[64]; /* mkdtemp, removed in teardown */
};

/* ---- cleanup, used by teardown whatever a test did ---- */

/* Mount points under dir, read from mountinfo; the last one listed is the
 * newest (so a stacked or nested mount comes before what it covers). */
static bool last_mount_under(const char *dir, char *out, size_t cap)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t lcap = 0, dlen = strlen(dir);
	bool found = false;
	while (f && getline(&line, &lcap, f) > 0) {
		char mp[512];
		if (sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1)
			continue;
		if (strncmp(mp, dir, dlen) == 0 && (mp[dlen] == '/' || mp[dlen] == '\0'))
			found = str_fmt(out, cap, "%s", mp) == 0;
	}
	return found;
}

static void umount_all_under(const char *dir)
{
	char mp[512];
	for (int i = 0; i < 256 && last_mount_under(dir, mp, sizeof(mp)); i++)
		umount2(mp, MNT_DETACH);
}

/* Loop devices whose backing file starts with prefix: count them, and with
 * `clear` detach them. */
static int loops_backed_by(const char *prefix, bool clear)
{
	glob_t g;
	int n = 0;
	if (glob("/sys/block/loop*/loop/backing_file", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char buf[512] = "", dev[64];
		_cleanup_fclose_ FILE *f = fopen(g.gl_pathv[i], "re");
		if (!f || !fgets(buf, sizeof(buf), f) || strncmp(buf, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		unsigned num;
		if (clear && sscanf(g.gl_pathv[i], "/sys/block/loop%u/", &num) == 1 &&
		    str_fmt(dev, sizeof(dev), "/dev/loop%u", num) == 0) {
			_cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				ioctl(fd, LOOP_CLR_FD, 0);
		}
	}
	globfree(&g);
	return n;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-mount-test-XXXXXX");
	*state = f;
	return mkdtemp(f->dir) ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	umount_all_under(f->dir);
	loops_backed_by(f->dir, true);
	/* FTW_MOUNT: should a mount survive, never delete inside it */
	int r = tmpdir_remove(f->dir, FTW_MOUNT);
	free(f);
	return r;
}

/* ---- helpers ---- */

static void write_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
}

/* Whole small file as a string (static buffer; "" if unreadable). */
static const char *slurp(const char *path)
{
	static char buf[4096];
	buf[0] = '\0';
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	ssize_t n = read_all(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void mkdir_in(const struct fixture *f, const char *name, char *out, size_t cap)
{
	assert_int_equal(str_fmt(out, cap, "%s/%s", f->dir, name), 0);
	assert_int_equal(mkdir(out, 0755), 0);
}

static int run(char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* dir/src with hello.txt and sub/deep.txt, packed to dir/img.sqfs. */
static void make_image(const struct fixture *f, char *img, size_t cap)
{
	char src[128], path[192];
	mkdir_in(f, "src", src, sizeof(src));
	FMT(path, "%s/hello.txt", src);
	write_file(path, "hello from squashfs\n");
	FMT(path, "%s/sub", src);
	assert_int_equal(mkdir(path, 0755), 0);
	FMT(path, "%s/sub/deep.txt", src);
	write_file(path, "deep\n");
	assert_int_equal(str_fmt(img, cap, "%s/img.sqfs", f->dir), 0);
	char *argv[] = {"mksquashfs", src, img, "-comp", "lz4", "-noappend", "-quiet", NULL};
	assert_int_equal(run(argv), 0);
}

/* The mountinfo fields of the newest mount at target: options (field 6) and
 * source (after " - fstype "). false if target is not mounted. */
static bool mount_info(const char *target, char *opts, char *source)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (f && getline(&line, &cap, f) > 0) {
		char mp[512], o[512], src[512];
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %511s %511s", mp, o) != 2 ||
		    sscanf(sep, " - %*s %511s", src) != 1 || strcmp(mp, target) != 0)
			continue;
		memcpy(opts, o, sizeof(o));
		memcpy(source, src, sizeof(src));
		found = true;
	}
	return found;
}

static bool has_opt(const char *opts, const char *opt)
{
	size_t n = strlen(opt);
	for (const char *p = opts; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, opt, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* Poll (autoclear may finish just after umount returns): true once the
 * device no longer holds img (it may already serve someone else's image). */
static bool loop_released(const char *dev, const char *img)
{
	char path[128];
	unsigned n;
	assert_int_equal(sscanf(dev, "/dev/loop%u", &n), 1);
	FMT(path, "/sys/block/loop%u/loop/backing_file", n);
	for (int i = 0; i < 200; i++) {
		char buf[512] = "";
		_cleanup_fclose_ FILE *f = fopen(path, "re");
		if (!f || !fgets(buf, sizeof(buf), f) || strncmp(buf, img, strlen(img)) != 0)
			return true;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

static bool no_loop_for(const char *img)
{
	for (int i = 0; i < 200; i++) {
		if (loops_backed_by(img, false) == 0)
			return true;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* ---- squashfs ---- */

static void test_squashfs_mount(void **state)
{
	struct fixture *f = *state;
	char img[128], mnt[128], path[192], opts[512], src[512];
	struct err e = ERR_INIT;
	make_image(f, img, sizeof(img));
	mkdir_in(f, "mnt", mnt, sizeof(mnt));

	int r = storage_mount_squashfs(img, mnt, &e);
	assert_int_equal(r, 0);
	assert_true(storage_is_mountpoint(mnt));
	FMT(path, "%s/hello.txt", mnt);
	assert_string_equal(slurp(path), "hello from squashfs\n");
	FMT(path, "%s/sub/deep.txt", mnt);
	assert_string_equal(slurp(path), "deep\n");

	/* read-only: neither a new file nor a write to an existing one */
	FMT(path, "%s/new", mnt);
	assert_int_equal(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);
	FMT(path, "%s/hello.txt", mnt);
	assert_int_equal(open(path, O_WRONLY | O_CLOEXEC), -1);
	assert_int_equal(errno, EROFS);

	assert_true(mount_info(mnt, opts, src));
	assert_true(has_opt(opts, "ro"));
	assert_true(has_opt(opts, "nodev"));
	assert_true(has_opt(opts, "nosuid"));
	assert_int_equal(strncmp(src, "/dev/loop", 9), 0);
	assert_int_equal(loops_backed_by(img, false), 1);

	assert_int_equal(storage_umount(mnt, &e), 0);
	assert_false(storage_is_mountpoint(mnt));
	assert_true(loop_released(src, img));
	assert_true(no_loop_for(img));
}

static void test_squashfs_corrupt(void **state)
{
	struct fixture *f = *state;
	char img[128], mnt[128];
	struct err e = ERR_INIT;
	FMT(img, "%s/bad.sqfs", f->dir);
	{
		_cleanup_close_ int fd = open(img, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		char junk[4096];
		memset(junk, 'J', sizeof(junk));
		for (int i = 0; i < 32; i++)
			assert_int_equal(write_all(fd, junk, sizeof(junk)), 0);
	}
	mkdir_in(f, "mnt", mnt, sizeof(mnt));

	int r = storage_mount_squashfs(img, mnt, &e);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(e.msg, "not a squashfs image"));
	assert_non_null(strstr(e.msg, img));
	assert_non_null(strstr(e.msg, mnt));
	assert_false(storage_is_mountpoint(mnt));
	assert_true(no_loop_for(img));
}

static void test_squashfs_bad_paths(void **state)
{
	struct fixture *f = *state;
	char img[128], missing[128], mnt[128];
	struct err e = ERR_INIT;
	make_image(f, img, sizeof(img));
	FMT(missing, "%s/nope.sqfs", f->dir);
	FMT(mnt, "%s/no-such-dir", f->dir);

	/* image missing: the error names it */
	assert_int_equal(storage_mount_squashfs(missing, f->dir, &e), -ENOENT);
	assert_non_null(strstr(e.msg, missing));
	/* a directory is not an image */
	assert_int_equal(storage_mount_squashfs(f->dir, mnt, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	/* target missing: fails, and the loop device taken for it is released */
	err_clear(&e);
	assert_int_equal(storage_mount_squashfs(img, mnt, &e), -ENOENT);
	assert_non_null(strstr(e.msg, mnt));
	assert_non_null(strstr(e.msg, "target"));
	assert_true(no_loop_for(img));
}

/* Fork one mounter per target; they wait on a pipe until all are forked,
 * then race for free loop devices. Returns how many failed (each says why
 * on stderr). */
static int race_mounts(const char *img, char mnt[][128], int n)
{
	pid_t pids[NCONC];
	int gate[2], failed = 0;
	assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c;
			struct err e = ERR_INIT;
			close(gate[1]);
			alarm(30);
			if (read(gate[0], &c, 1) != 0)
				_exit(98);
			if (storage_mount_squashfs(img, mnt[i], &e) < 0) {
				fprintf(stderr, "child %d: %s\n", i, e.msg);
				_exit(1);
			}
			_exit(0);
		}
	}
	close(gate[0]);
	close(gate[1]); /* go */
	for (int i = 0; i < n; i++) {
		int st;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	return failed;
}

static void test_squashfs_concurrent(void **state)
{
	struct fixture *f = *state;
	char img[128], mnt[NCONC][128], path[192], opts[512], src[NCONC][512];
	make_image(f, img, sizeof(img));
	for (int i = 0; i < NCONC; i++) {
		char name[16];
		FMT(name, "mnt%d", i);
		mkdir_in(f, name, mnt[i], sizeof(mnt[i]));
	}
	assert_int_equal(race_mounts(img, mnt, NCONC), 0);
	for (int i = 0; i < NCONC; i++) {
		FMT(path, "%s/hello.txt", mnt[i]);
		assert_string_equal(slurp(path), "hello from squashfs\n");
		assert_true(mount_info(mnt[i], opts, src[i]));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(src[i], src[j]); /* one device each */
	}
	assert_int_equal(loops_backed_by(img, false), NCONC);
	for (int i = 0; i < NCONC; i++) {
		struct err e = ERR_INIT;
		assert_int_equal(storage_umount(mnt[i], &e), 0);
	}
	assert_true(no_loop_for(img));
}

/* ---- overlay, tmpfs, bind ---- */

static void test_overlay(void **state)
{
	struct fixture *f = *state;
	char lower[128], upper[128], work[128], mnt[128], path[192];
	struct err e = ERR_INIT;
	mkdir_in(f, "lower", lower, sizeof(lower));
	mkdir_in(f, "upper", upper, sizeof(upper));
	mkdir_in(f, "work", work, sizeof(work));
	mkdir_in(f, "mnt", mnt, sizeof(mnt));
	FMT(path, "%s/a", lower);
	write_file(path, "from lower\n");

	assert_int_equal(storage_mount_overlay(lower, upper, work, mnt, &e), 0);
	FMT(path, "%s/a", mnt);
	assert_string_equal(slurp(path), "from lower\n");
	write_file(path, "changed\n"); /* copy-up */
	FMT(path, "%s/new", mnt);
	write_file(path, "new file\n");

	FMT(path, "%s/new", upper);
	assert_string_equal(slurp(path), "new file\n");
	FMT(path, "%s/a", upper);
	assert_string_equal(slurp(path), "changed\n");
	FMT(path, "%s/a", lower);
	assert_string_equal(slurp(path), "from lower\n");
	FMT(path, "%s/new", lower);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(storage_umount(mnt, &e), 0);
	assert_false(storage_is_mountpoint(mnt));
}

static void test_overlay_rejects(void **state)
{
	struct fixture *f = *state;
	char lower[128], upper[128], work[128], mnt[128], odd[128];
	struct err e = ERR_INIT;
	mkdir_in(f, "lower", lower, sizeof(lower));
	mkdir_in(f, "upper", upper, sizeof(upper));
	mkdir_in(f, "work", work, sizeof(work));
	mkdir_in(f, "mnt", mnt, sizeof(mnt));
	mkdir_in(f, "a,b", odd, sizeof(odd));

	assert_int_equal(storage_mount_overlay(odd, upper, work, mnt, &e), -EINVAL);
	assert_string_equal(e.field, "lower");
	assert_non_null(strstr(e.msg, "not allowed"));
	assert_int_equal(storage_mount_overlay(lower, upper, "/nonexistent-work", mnt, &e), -ENOENT);
	assert_string_equal(e.field, "work");
	/* work on another filesystem than upper */
	assert_int_equal(storage_mount_tmpfs(work, "size=1m", &e), 0);
	assert_int_equal(storage_mount_overlay(lower, upper, work, mnt, &e), -EXDEV);
	assert_string_equal(e.field, "work");
	assert_false(storage_is_mountpoint(mnt));
	assert_int_equal(storage_umount(work, &e), 0);
}

static void test_tmpfs(void **state)
{
	struct fixture *f = *state;
	char mnt[128], opts[512], src[512];
	struct err e = ERR_INIT;
	struct stat st;
	mkdir_in(f, "mnt", mnt, sizeof(mnt));
	assert_int_equal(storage_mount_tmpfs(mnt, "mode=0710,size=1m", &e), 0);
	assert_true(mount_info(mnt, opts, src));
	assert_true(has_opt(opts, "nodev"));
	assert_true(has_opt(opts, "nosuid"));
	assert_int_equal(stat(mnt, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0710);
	assert_int_equal(storage_umount(mnt, &e), 0);
	/* bad options: the error quotes them */
	assert_true(storage_mount_tmpfs(mnt, "size=bogus", &e) < 0);
	assert_non_null(strstr(e.msg, "size=bogus"));
	assert_false(storage_is_mountpoint(mnt));
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_int_equal(str_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", path), 0);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_int_equal(str_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", path), 0);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The per-container control socket case: a unix socket bound onto a file. */
static void test_bind_socket(void **state)
{
	struct fixture *f = *state;
	char sock[128], target[128];
	struct err e = ERR_INIT;
	FMT(sock, "%s/real.sock", f->dir);
	FMT(target, "%s/ctrl.sock", f->dir);
	_cleanup_close_ int lfd = listen_unix(sock);
	write_file(target, "");
	assert_int_equal(connect_unix(target), -1); /* a plain file before the bind */

	assert_int_equal(storage_mount_bind(sock, target, false, &e), 0);
	assert_true(storage_is_mountpoint(target));
	_cleanup_close_ int c = connect_unix(target);
	assert_true(c >= 0);
	_cleanup_close_ int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	char buf[4] = "";
	assert_int_equal(write(c, "hey", 3), 3);
	assert_int_equal(read(a, buf, 3), 3);
	assert_memory_equal(buf, "hey", 3);
	assert_int_equal(storage_umount(target, &e), 0);
	assert_int_equal(connect_unix(target), -1);
}

static void test_bind_readonly(void **state)
{
	struct fixture *f = *state;
	char src[128], mnt[128], path[192], opts[512], dev[512];
	struct err e = ERR_INIT;
	mkdir_in(f, "src", src, sizeof(src));
	mkdir_in(f, "mnt", mnt, sizeof(mnt));
	assert_int_equal(storage_mount_bind(src, mnt, true, &e), 0);
	assert_true(mount_info(mnt, opts, dev));
	assert_true(has_opt(opts, "ro"));
	FMT(path, "%s/x", mnt);
	assert_int_equal(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);
	FMT(path, "%s/x", src); /* the source stays writable, and shows through */
	write_file(path, "through\n");
	FMT(path, "%s/x", mnt);
	assert_string_equal(slurp(path), "through\n");
	assert_int_equal(storage_umount(mnt, &e), 0);

	/* a directory onto a file, and a symlink as target, are refused */
	FMT(path, "%s/file", f->dir);
	write_file(path, "");
	assert_int_equal(storage_mount_bind(src, path, false, &e), -ENOTDIR);
	assert_string_equal(e.field, "target");
	FMT(path, "%s/link", f->dir);
	assert_int_equal(symlink(mnt, path), 0);
	assert_int_equal(storage_mount_bind(src, path, false, &e), -ELOOP);
	assert_false(storage_is_mountpoint(mnt));
}

/* ---- umount and mount points ---- */

static void test_umount(void **state)
{
	struct fixture *f = *state;
	char mnt[128], path[192];
	struct err e = ERR_INIT;
	mkdir_in(f, "mnt", mnt, sizeof(mnt));
	assert_int_equal(storage_umount(mnt, &e), 0);            /* not mounted */
	assert_int_equal(storage_umount("/nonexistent/x", &e), 0); /* not there */

	assert_int_equal(storage_mount_tmpfs(mnt, NULL, &e), 0);
	FMT(path, "%s/open", mnt);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(storage_umount(mnt, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "busy"));
	assert_non_null(strstr(e.msg, "detached"));
	assert_false(storage_is_mountpoint(mnt)); /* gone from the tree already */
	close(fd);
}

static void test_is_mountpoint(void **state)
{
	struct fixture *f = *state;
	char a[128], b[128];
	struct err e = ERR_INIT;
	mkdir_in(f, "a", a, sizeof(a));
	mkdir_in(f, "b", b, sizeof(b));
	assert_true(storage_is_mountpoint("/"));
	assert_true(storage_is_mountpoint("/proc"));
	assert_false(storage_is_mountpoint(a));
	assert_false(storage_is_mountpoint("/nonexistent"));
	assert_false(storage_is_mountpoint(""));
	/* a bind mount of the same filesystem has the same st_dev */
	assert_int_equal(storage_mount_bind(a, b, false, &e), 0);
	assert_true(storage_is_mountpoint(b));
	assert_false(storage_is_mountpoint(a));
	assert_int_equal(storage_umount(b, &e), 0);
	assert_false(storage_is_mountpoint(b));
}

/* ---- directories ---- */

static void test_mkdir_p(void **state)
{
	struct fixture *f = *state;
	char path[192];
	struct stat st;
	struct err e = ERR_INIT;
	FMT(path, "%s/x/y/z", f->dir);
	assert_int_equal(storage_mkdir_p(path, 0750, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_int_equal(storage_mkdir_p(path, 0750, &e), 0); /* exists: fine */
	FMT(path, "%s//x2///y/", f->dir);
	assert_int_equal(storage_mkdir_p(path, 0755, &e), 0);
	FMT(path, "%s/x2/y", f->dir);
	assert_int_equal(stat(path, &st), 0);

	FMT(path, "%s/file", f->dir);
	write_file(path, "");
	FMT(path, "%s/file/sub", f->dir);
	assert_int_equal(storage_mkdir_p(path, 0755, &e), -ENOTDIR);
	assert_non_null(strstr(e.msg, "not a directory"));
	assert_int_equal(storage_mkdir_p("", 0755, &e), -EINVAL);
}

static void test_rmtree(void **state)
{
	struct fixture *f = *state;
	char t[128], keep[128], path[192];
	struct err e = ERR_INIT;
	mkdir_in(f, "keep", keep, sizeof(keep));
	FMT(path, "%s/file", keep);
	write_file(path, "precious\n");
	FMT(t, "%s/t/a/b/c", f->dir);
	assert_int_equal(storage_mkdir_p(t, 0755, &e), 0);
	FMT(path, "%s/t/a/b/c/f", f->dir);
	write_file(path, "x");
	FMT(path, "%s/t/top", f->dir);
	write_file(path, "y");
	FMT(path, "%s/t/a/dirlink", f->dir); /* symlinks are removed, not followed */
	assert_int_equal(symlink(keep, path), 0);
	FMT(path, "%s/t/a/filelink", f->dir);
	FMT(t, "%s/file", keep);
	assert_int_equal(symlink(t, path), 0);
	FMT(path, "%s/t/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);

	FMT(t, "%s/t", f->dir);
	assert_int_equal(storage_rmtree(t, &e), 0);
	assert_int_equal(access(t, F_OK), -1);
	FMT(path, "%s/file", keep);
	assert_string_equal(slurp(path), "precious\n");
	assert_int_equal(storage_rmtree(t, &e), 0); /* missing: nothing to do */

	/* a symlink as the root is refused, and its target left alone */
	FMT(path, "%s/rootlink", f->dir);
	assert_int_equal(symlink(keep, path), 0);
	assert_true(storage_rmtree(path, &e) < 0);
	assert_non_null(strstr(e.msg, "symlink"));
	FMT(path, "%s/file", keep);
	assert_string_equal(slurp(path), "precious\n");
}

static void test_rmtree_refuses_mounts(void **state)
{
	struct fixture *f = *state;
	char t[128], m[192], path[256], other[128];
	struct err e = ERR_INIT;
	/* another filesystem inside the tree */
	FMT(m, "%s/t/sub/mnt", f->dir);
	assert_int_equal(storage_mkdir_p(m, 0755, &e), 0);
	assert_int_equal(storage_mount_tmpfs(m, "size=1m", &e), 0);
	FMT(path, "%s/inside", m);
	write_file(path, "mounted\n");
	FMT(t, "%s/t", f->dir);
	assert_int_equal(storage_rmtree(t, &e), -EXDEV);
	assert_non_null(strstr(e.msg, m));
	assert_non_null(strstr(e.msg, "mount point"));
	assert_string_equal(slurp(path), "mounted\n");
	assert_true(storage_is_mountpoint(m));
	/* the mount itself as the root */
	assert_int_equal(storage_rmtree(m, &e), -EXDEV);
	assert_string_equal(slurp(path), "mounted\n");
	assert_int_equal(storage_umount(m, &e), 0);

	/* a bind mount of the same filesystem (same st_dev) */
	mkdir_in(f, "other", other, sizeof(other));
	FMT(path, "%s/precious", other);
	write_file(path, "keep me\n");
	assert_int_equal(storage_mount_bind(other, m, false, &e), 0);
	assert_int_equal(storage_rmtree(t, &e), -EXDEV);
	assert_string_equal(slurp(path), "keep me\n");
	assert_int_equal(storage_umount(m, &e), 0);
	assert_int_equal(storage_rmtree(t, &e), 0);
	assert_int_equal(access(t, F_OK), -1);
}

static void test_rmtree_depth(void **state)
{
	struct fixture *f = *state;
	char t[128];
	struct err e = ERR_INIT;
	FMT(t, "%s/deep", f->dir);
	assert_int_equal(mkdir(t, 0755), 0);
	int fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = sub;
		assert_true(fd >= 0);
	}
	close(fd);
	/* a container can build any depth in its volume, and the volume must
	 * still go: deeper levels are moved up, at most 128 fds open at once */
	int before = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(before >= 0);
	close(before);
	assert_int_equal(storage_rmtree(t, &e), 0);
	assert_int_equal(access(t, F_OK), -1);
	int after = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(after, before); /* no fd left open */
	close(after);
}

/* ---- volumes ---- */

static void test_volume_dir(void **state)
{
	struct fixture *f = *state;
	char root[128], buf[256], want[256], path[256];
	struct storage *s = NULL;
	struct err e = ERR_INIT;
	struct stat st;
	FMT(root, "%s/store", f->dir);
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(storage_open(root, &s, &e), 0);

	static const char *const bad[] = {"../x", "a//b", "/abs", "",   "a/",    "a/./b",
					  "a/..", ".",    "Up",   "a b", "a/b\n", "x/../../y"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err_clear(&e);
		assert_int_equal(storage_volume_dir(s, bad[i], buf, sizeof(buf), &e), -EINVAL);
		assert_string_equal(e.field, "volume");
	}
	assert_int_equal(storage_volume_dir(s, "a/../x", buf, sizeof(buf), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'..' are not allowed"));
	assert_int_equal(storage_volume_dir(s, "a//b", buf, sizeof(buf), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "empty component"));
	FMT(path, "%s/volumes", root);
	bool had_volumes = access(path, F_OK) == 0;

	unsigned long before = storage_durable_count();
	assert_int_equal(storage_volume_dir(s, "permanent/net/state", buf, sizeof(buf), &e), 0);
	FMT(want, "%s/volumes/permanent/net/state", root);
	assert_string_equal(buf, want);
	assert_int_equal(stat(buf, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(storage_durable_count() - before, had_volumes ? 3 : 4);
	/* again: nothing to create, no durable op */
	before = storage_durable_count();
	assert_int_equal(storage_volume_dir(s, "permanent/net/state", buf, sizeof(buf), &e), 0);
	assert_int_equal(storage_durable_count(), before);

	/* too small a buffer */
	assert_int_equal(storage_volume_dir(s, "permanent/net/state", buf, 8, &e), -ENAMETOOLONG);
	storage_close(s);
}

/* A symlink planted where a component goes (volumes are writable by
 * containers) is not followed. */
static void test_volume_symlink(void **state)
{
	struct fixture *f = *state;
	char root[128], buf[256], path[256], outside[128];
	struct storage *s = NULL;
	struct err e = ERR_INIT;
	FMT(root, "%s/store", f->dir);
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(storage_open(root, &s, &e), 0);
	assert_int_equal(storage_volume_dir(s, "permanent/net/state", buf, sizeof(buf), &e), 0);
	mkdir_in(f, "outside", outside, sizeof(outside));
	FMT(path, "%s/volumes/permanent/evil", root);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_equal(storage_volume_dir(s, "permanent/evil/x", buf, sizeof(buf), &e), -ENOTDIR);
	assert_non_null(strstr(e.msg, "evil: a symlink"));
	FMT(path, "%s/x", outside);
	assert_int_equal(access(path, F_OK), -1);
	storage_close(s);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "mount_test: needs root (real mounts and loop devices)\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_squashfs_mount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_squashfs_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_squashfs_bad_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_squashfs_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_umount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_is_mountpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmtree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmtree_refuses_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmtree_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_symlink, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
