/* storage/durable.c — the durable operations and their fault injection.
 *
 * One call of storage_write_durable, storage_rename_durable, storage_fsync,
 * storage_mkdir_durable or storage_unlink_durable is one durable operation,
 * whatever number of syscalls it makes. Operations are numbered per process
 * from 1; the injection points sit at their boundaries:
 *   CAIRN_CRASH_AT=before:N  SIGKILL on entry of op N: nothing of it happened
 *   CAIRN_CRASH_AT=after:N   SIGKILL when op N returns: all of it happened
 *                            (including the directory fsync), or it failed
 *   CAIRN_FAIL_AT=N:ERRNO    op N fails with ERRNO at its critical step (see
 *                            README.md), its effect not applied
 * The environment is read at the first operation of each process (a forked
 * child reads it again and counts from 1). See storage/README.md. */
#define _GNU_SOURCE /* syncfs */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define LOG_MODULE "storage"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* ---- fault injection ---- */

struct faults {
	pid_t pid;               /* process these settings were read for */
	unsigned long count;     /* durable ops started by this process */
	unsigned long crash_n;   /* 0 = no crash */
	bool crash_after;
	unsigned long fail_n;    /* 0 = no failure */
	int fail_errno;
};

static struct faults faults;

static const struct {
	const char *name;
	int code;
} errno_names[] = {
	{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
	{"EACCES", EACCES}, {"EPERM", EPERM},   {"ENOMEM", ENOMEM}, {"EINVAL", EINVAL},
	{"ENOENT", ENOENT}, {"EEXIST", EEXIST}, {"EBUSY", EBUSY},   {"EAGAIN", EAGAIN},
	{"EINTR", EINTR},   {"EFBIG", EFBIG},   {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
	{"EXDEV", EXDEV},   {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR},
};

static bool parse_count(const char *s, unsigned long *out)
{
	char *end;
	if (*s < '1' || *s > '9')
		return false;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (errno || *end)
		return false;
	*out = n;
	return true;
}

static int errno_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(errno_names); i++)
		if (strcmp(s, errno_names[i].name) == 0)
			return errno_names[i].code;
	unsigned long n;
	if (parse_count(s, &n) && n < 4096)
		return (int)n;
	return 0;
}

static void faults_parse_crash(const char *v)
{
	if (strncmp(v, "before:", 7) == 0 && parse_count(v + 7, &faults.crash_n))
		faults.crash_after = false;
	else if (strncmp(v, "after:", 6) == 0 && parse_count(v + 6, &faults.crash_n))
		faults.crash_after = true;
	else
		log_err("CAIRN_CRASH_AT=%s: want before:N or after:N with N >= 1; ignored", v);
}

static void faults_parse_fail(const char *v)
{
	char num[24];
	const char *colon = strchr(v, ':');
	size_t len = colon ? (size_t)(colon - v) : 0;
	if (colon && len < sizeof(num)) {
		memcpy(num, v, len);
		num[len] = '\0';
		if (parse_count(num, &faults.fail_n) && (faults.fail_errno = errno_parse(colon + 1)))
			return;
	}
	faults.fail_n = 0;
	log_err("CAIRN_FAIL_AT=%s: want N:ERRNO (e.g. 3:EIO) with N >= 1; ignored", v);
}

/* Read the variables once per process: a forked child starts again at 1. */
static void faults_load(void)
{
	pid_t pid = getpid();
	if (faults.pid == pid)
		return;
	faults = (struct faults){.pid = pid};
	const char *crash = getenv("CAIRN_CRASH_AT");
	const char *fail = getenv("CAIRN_FAIL_AT");
	if (crash && *crash)
		faults_parse_crash(crash);
	if (fail && *fail)
		faults_parse_fail(fail);
}

unsigned long storage_durable_count(void)
{
	faults_load();
	return faults.count;
}

/* One durable operation in progress. */
struct op {
	unsigned long n;
	int fail; /* injected errno for the critical step, 0 = none */
};

/* The injected crash. SIGKILL cannot stop the init of a pid namespace (the
 * kernel drops it), so such a process ends with _exit, which takes its
 * whole namespace down just the same. */
static void crash_now(void)
{
	kill(getpid(), SIGKILL);
	_exit(128 + SIGKILL);
}

static struct op op_begin(void)
{
	faults_load();
	struct op op = {.n = ++faults.count};
	if (faults.crash_n == op.n && !faults.crash_after)
		crash_now();
	if (faults.fail_n == op.n)
		op.fail = faults.fail_errno;
	return op;
}

/* Runs when the op's scope ends, i.e. after its last syscall. */
static void op_endp(struct op *op)
{
	if (faults.crash_n == op->n && faults.crash_after)
		crash_now();
}

#define DURABLE_OP(var) _cleanup_(op_endp) struct op var = op_begin()

/* The critical step of an op: the syscall `call` is made only when no
 * failure is injected into this op; evaluates to 0 or -errno. */
#define OP_STEP(op, call) ((op)->fail ? -(op)->fail : neg_errno(call))

static int neg_errno(int r)
{
	return r < 0 ? -errno : 0;
}

/* ---- path handling: never through a symlink ---- */

/* open(O_DIRECTORY | O_NOFOLLOW) of a symlink fails with ENOTDIR, not ELOOP:
 * tell the two apart so the error says what is wrong. */
static bool is_symlink_err(int dirfd, const char *name, int err)
{
	struct stat st;
	if (err == ELOOP)
		return true;
	return err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISLNK(st.st_mode);
}

static bool component_ok(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX)
		return false;
	return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

static int open_dir_at(int dirfd, const char *name, const char *path, struct err *e)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int err = errno;
	if (is_symlink_err(dirfd, name, err))
		return err_set(e, ELOOP, "%s: component %s is a symlink", path, name);
	return err_set(e, err, "open directory of %s: %s", path, strerror(err));
}

/* Parent directory of the relative path `path` (components separated by '/',
 * no ".", "..", empty or symlinked ones) and the offset of its last component.
 * Returns an fd the caller closes (a dup of dirfd for a bare name). */
static int open_parent(int dirfd, const char *path, size_t *leaf, struct err *e)
{
	if (!path || path[0] == '/')
		return err_set(e, EINVAL, "%s: not a relative path", path ? path : "(null)");
	_cleanup_close_ int fd = dirfd == AT_FDCWD
					 ? open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
					 : fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	size_t start = 0;
	for (;;) {
		const char *slash = strchr(path + start, '/');
		size_t len = slash ? (size_t)(slash - path) - start : strlen(path + start);
		if (!component_ok(path + start, len))
			return err_set(e, EINVAL, "%s: bad path component", path);
		if (!slash)
			break;
		char comp[NAME_MAX + 1];
		memcpy(comp, path + start, len);
		comp[len] = '\0';
		int next = open_dir_at(fd, comp, path, e);
		if (next < 0)
			return next;
		close(fd);
		fd = next;
		start += len + 1;
	}
	*leaf = start;
	return TAKE_FD(fd);
}

/* fsync of the directory holding `name`: the step that makes a name durable. */
static int fsync_dir(int pfd, const char *name, struct err *e)
{
	if (fsync(pfd) < 0)
		return err_set(e, errno, "fsync directory of %s: %s (not retried)", name,
			       strerror(errno));
	return 0;
}

/* ---- the operations ---- */

int storage_fsync(int fd, const char *what, struct err *e)
{
	DURABLE_OP(op);
	int r = OP_STEP(&op, fsync(fd));
	if (r < 0)
		return err_set(e, r, "fsync %s: %s (not retried)", what, strerror(-r));
	return 0;
}

/* Linux >= 5.13 (fs/ext4/ext4.h; not in every distribution's uapi headers). */
#ifndef EXT4_IOC_CHECKPOINT
#define EXT4_IOC_CHECKPOINT _IOW('f', 43, uint32_t)
#endif

int storage_checkpoint(int fd, struct err *e)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return err_set(e, errno, "statfs: %s", strerror(errno));
	if (sf.f_type != EXT4_SUPER_MAGIC)
		return 0; /* no journal a reader would have to replay */
	uint32_t flags = 0;
	if (ioctl(fd, EXT4_IOC_CHECKPOINT, &flags) == 0 || errno == ENODEV /* no journal */)
		return 0;
	if (errno != ENOTTY && errno != EOPNOTSUPP && errno != EINVAL && errno != EPERM)
		return err_set(e, errno, "checkpoint the journal: %s", strerror(errno));
	/* An older kernel (or no CAP_SYS_ADMIN): syncfs also writes the block device's dirty
	 * buffers, which is where committed metadata waits for its home. */
	if (syncfs(fd) < 0)
		return err_set(e, errno, "syncfs: %s", strerror(errno));
	return 0;
}

/* Write, fchmod and fsync the temp file; the injected failure hits the fsync. */
static int write_temp(struct op *op, int dirfd, const char *tmp, const char *path,
		      const void *data, size_t len, mode_t mode, struct err *e)
{
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
							   O_CLOEXEC | O_NOCTTY, mode & 07777);
	if (fd < 0)
		return err_set(e, errno, "%s: create temp file: %s", path, strerror(errno));
	int r = write_all(fd, data, len);
	if (r < 0)
		return err_set(e, r, "%s: write: %s", path, strerror(-r));
	if (fchmod(fd, mode & 07777) < 0)
		return err_set(e, errno, "%s: chmod: %s", path, strerror(errno));
	r = OP_STEP(op, fsync(fd));
	if (r < 0)
		return err_set(e, r, "%s: fsync: %s (not retried)", path, strerror(-r));
	return 0;
}

int storage_write_durable(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			  struct err *e)
{
	DURABLE_OP(op);
	size_t leaf;
	_cleanup_close_ int pfd = open_parent(dirfd, name, &leaf, e);
	if (pfd < 0)
		return pfd;
	char tmp[NAME_MAX + 1];
	if (str_fmt(tmp, sizeof(tmp), ".%s.tmp-%ld", name + leaf, (long)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "%s: name too long for a temp file", name);
	int r = write_temp(&op, pfd, tmp, name, data, len, mode, e);
	if (r >= 0 && renameat(pfd, tmp, pfd, name + leaf) < 0)
		r = err_set(e, errno, "%s: rename: %s", name, strerror(errno));
	if (r < 0) {
		unlinkat(pfd, tmp, 0); /* the old content stays, untouched */
		return r;
	}
	return fsync_dir(pfd, name, e);
}

/* fsync the directories on both sides of a rename (once if they are one). */
static int fsync_rename_dirs(int oldpfd, const char *oldname, int newpfd, const char *newname,
			     struct err *e)
{
	struct stat a, b;
	int r = fsync_dir(newpfd, newname, e);
	if (r < 0)
		return r;
	if (fstat(oldpfd, &a) == 0 && fstat(newpfd, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		return 0;
	return fsync_dir(oldpfd, oldname, e);
}

int storage_rename_durable(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			   struct err *e)
{
	DURABLE_OP(op);
	size_t oleaf, nleaf;
	_cleanup_close_ int opfd = open_parent(olddirfd, oldname, &oleaf, e);
	if (opfd < 0)
		return opfd;
	_cleanup_close_ int npfd = open_parent(newdirfd, newname, &nleaf, e);
	if (npfd < 0)
		return npfd;
	int r = OP_STEP(&op, renameat(opfd, oldname + oleaf, npfd, newname + nleaf));
	if (r < 0)
		return err_set(e, r, "rename %s to %s: %s", oldname, newname, strerror(-r));
	return fsync_rename_dirs(opfd, oldname, npfd, newname, e);
}

int storage_mkdir_durable(int dirfd, const char *name, mode_t mode, struct err *e)
{
	DURABLE_OP(op);
	size_t leaf;
	_cleanup_close_ int pfd = open_parent(dirfd, name, &leaf, e);
	if (pfd < 0)
		return pfd;
	int r = OP_STEP(&op, mkdirat(pfd, name + leaf, mode));
	if (r == -EEXIST) {
		struct stat st;
		if (fstatat(pfd, name + leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return err_set(e, errno, "mkdir %s: %s", name, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return err_set(e, ENOTDIR, "mkdir %s: exists and is not a directory", name);
		r = 0;
	}
	if (r < 0)
		return err_set(e, r, "mkdir %s: %s", name, strerror(-r));
	return fsync_dir(pfd, name, e);
}

int storage_unlink_durable(int dirfd, const char *name, int flags, struct err *e)
{
	DURABLE_OP(op);
	size_t leaf;
	_cleanup_close_ int pfd = open_parent(dirfd, name, &leaf, e);
	if (pfd < 0)
		return pfd;
	int r = OP_STEP(&op, unlinkat(pfd, name + leaf, flags));
	if (r < 0 && r != -ENOENT)
		return err_set(e, r, "remove %s: %s", name, strerror(-r));
	/* even after ENOENT: an earlier unlink of the name may not be durable yet */
	return fsync_dir(pfd, name, e);
}
