/* storage/mount.c — loop+squashfs, overlay, tmpfs and bind mounts, unmount,
 * mkdir -p, rm -rf that stays on one filesystem, and volume directories.
 *
 * Mounts are runtime state, not durable state: nothing here is a durable op
 * except the directory creations of storage_volume_dir. The decisions behind
 * this file are written down in storage/MOUNTS.md. */
#define _GNU_SOURCE /* statx, O_PATH, AT_EMPTY_PATH */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"

#define LOOP_TAKE_TRIES 16     /* LOOP_CTL_GET_FREE races lost before giving up */
#define LOOP_NODE_TRIES 100    /* 10 ms apart: how long a new /dev/loopN may take */
#define RMTREE_MAX_DEPTH 128   /* one open directory fd per level */
#define MOUNT_DATA_MAX 4096    /* the kernel copies at most one page of mount data */

/* ---- loop devices and squashfs ---- */

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Open /dev/loopN read-only. A device just made by LOOP_CTL_GET_FREE gets its
 * node from devtmpfs asynchronously: ENOENT is waited out briefly (making the
 * node is not our job). ENXIO (device removed meanwhile) is returned as is so
 * the caller takes another one. */
static int loop_open(int n, char *dev, size_t cap, struct err *e)
{
	if (str_fmt(dev, cap, "/dev/loop%d", n) < 0)
		return err_set(e, ENAMETOOLONG, "loop device %d: name too long", n);
	for (int i = 0; i < LOOP_NODE_TRIES; i++) {
		int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			return fd;
		if (errno == ENXIO)
			return -ENXIO;
		if (errno != ENOENT)
			return err_set(e, errno, "open %s: %s", dev, strerror(errno));
		sleep_ms(10);
	}
	return err_set(e, ENOENT, "%s did not appear within 1 s (is devtmpfs mounted on /dev?)",
		       dev);
}

/* Old kernels (< 5.8) lack LOOP_CONFIGURE: set the fd, then the flags. Read-only
 * there comes from opening both the image and the device O_RDONLY
 * (LO_FLAGS_READ_ONLY is not settable through LOOP_SET_STATUS64). */
static int loop_configure_legacy(int loopfd, int imgfd)
{
	if (ioctl(loopfd, LOOP_SET_FD, imgfd) < 0)
		return -errno;
	struct loop_info64 info;
	memset(&info, 0, sizeof(info));
	info.lo_flags = LO_FLAGS_AUTOCLEAR;
	if (ioctl(loopfd, LOOP_SET_STATUS64, &info) < 0) {
		int r = -errno;
		(void)ioctl(loopfd, LOOP_CLR_FD, 0);
		return r;
	}
	return 0;
}

/* Bind imgfd to the loop device, read-only with autoclear; -EBUSY means
 * another taker configured this device first. */
static int loop_configure(int loopfd, int imgfd)
{
	struct loop_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (__u32)imgfd;
	cfg.block_size = 0; /* the backing file's logical block size */
	cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
	if (ioctl(loopfd, LOOP_CONFIGURE, &cfg) == 0)
		return 0;
	if (errno != ENOTTY && errno != EINVAL)
		return -errno;
	return loop_configure_legacy(loopfd, imgfd);
}

/* Take a free loop device and bind the image to it. Returns the open loop
 * fd (the caller mounts, then closes it) and the device path in dev. */
static int loop_attach(int imgfd, const char *image, char *dev, size_t cap, struct err *e)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return err_set(e, errno, "open /dev/loop-control: %s", strerror(errno));
	for (int i = 0; i < LOOP_TAKE_TRIES; i++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return err_set(e, errno, "LOOP_CTL_GET_FREE: %s", strerror(errno));
		_cleanup_close_ int fd = loop_open(n, dev, cap, e);
		if (fd == -ENXIO)
			continue;
		if (fd < 0)
			return fd;
		int r = loop_configure(fd, imgfd);
		if (r == -EBUSY)
			continue; /* lost the race for this device: take another */
		if (r < 0)
			return err_set(e, -r, "bind %s to %s: %s", image, dev, strerror(-r));
		return TAKE_FD(fd);
	}
	return err_set(e, EBUSY, "no free loop device after %d tries (all taken by others)",
		       LOOP_TAKE_TRIES);
}

static int squashfs_mount_error(int code, struct err *e)
{
	switch (code) {
	case ENODEV:
		return err_set(e, code, "kernel lacks squashfs (CONFIG_SQUASHFS)");
	case EINVAL:
		return err_set(e, code, "not a squashfs image (or a corrupt one)");
	case ENOENT:
	case ENOTDIR:
		return err_set(e, code, "target is not an existing directory");
	default:
		return err_set(e, code, "%s", strerror(code));
	}
}

int storage_mount_squashfs(const char *image, const char *target, struct err *e)
{
	_cleanup_close_ int imgfd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (imgfd < 0) {
		err_set(e, errno, "open image: %s", strerror(errno));
		return err_prefix(e, "mount squashfs %s on %s", image, target);
	}
	struct stat st;
	if (fstat(imgfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, EINVAL, "image is not a regular file");
		return err_prefix(e, "mount squashfs %s on %s", image, target);
	}
	char dev[32];
	_cleanup_close_ int loopfd = loop_attach(imgfd, image, dev, sizeof(dev), e);
	if (loopfd < 0)
		return err_prefix(e, "mount squashfs %s on %s", image, target);
	if (mount(dev, target, "squashfs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) {
		int code = errno;
		/* With autoclear set this detaches at our close below: nothing leaks. */
		(void)ioctl(loopfd, LOOP_CLR_FD, 0);
		squashfs_mount_error(code, e);
		return err_prefix(e, "mount squashfs %s on %s (via %s)", image, target, dev);
	}
	/* Closing our fd leaves the mount as the only user: autoclear releases
	 * the device when the last mount of it goes away. */
	return 0;
}

/* ---- overlay, tmpfs, bind, umount ---- */

/* The overlay option parser splits on ',' and lowerdir on ':', both with '\'
 * escapes whose handling changed across kernels: such paths are refused. */
static int overlay_path_ok(const char *what, const char *path, dev_t *dev, struct err *e)
{
	if (!path || !*path)
		return err_field(e, EINVAL, what, "empty path");
	if (strpbrk(path, ",:\\"))
		return err_field(e, EINVAL, what, "%s: ',', ':' and '\\' are not allowed in overlay paths",
				 path);
	struct stat st;
	if (stat(path, &st) < 0)
		return err_field(e, errno, what, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_field(e, ENOTDIR, what, "%s: not a directory", path);
	if (dev)
		*dev = st.st_dev;
	return 0;
}

int storage_mount_overlay(const char *lower, const char *upper, const char *work,
			  const char *target, struct err *e)
{
	dev_t upper_dev, work_dev;
	int r = overlay_path_ok("lower", lower, NULL, e);
	if (r == 0)
		r = overlay_path_ok("upper", upper, &upper_dev, e);
	if (r == 0)
		r = overlay_path_ok("work", work, &work_dev, e);
	if (r == 0 && upper_dev != work_dev)
		r = err_field(e, EXDEV, "work", "%s is not on the filesystem of upper %s", work, upper);
	if (r < 0)
		return err_prefix(e, "mount overlay on %s", target);
	char data[MOUNT_DATA_MAX];
	if (str_fmt(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0) {
		err_set(e, ENAMETOOLONG, "paths longer than the %d bytes of mount data", MOUNT_DATA_MAX);
		return err_prefix(e, "mount overlay on %s", target);
	}
	if (mount("overlay", target, "overlay", MS_NODEV | MS_NOSUID, data) < 0) {
		err_set(e, errno, "%s (lower %s, upper %s, work %s)", strerror(errno), lower, upper,
			work);
		return err_prefix(e, "mount overlay on %s", target);
	}
	return 0;
}

int storage_mount_tmpfs(const char *target, const char *opts, struct err *e)
{
	if (opts && strnlen(opts, MOUNT_DATA_MAX) >= MOUNT_DATA_MAX)
		return err_set(e, E2BIG, "mount tmpfs on %s: options longer than %d bytes", target,
			       MOUNT_DATA_MAX - 1);
	if (mount("tmpfs", target, "tmpfs", MS_NODEV | MS_NOSUID, opts) < 0)
		return err_set(e, errno, "mount tmpfs on %s (options \"%s\"): %s", target,
			       opts ? opts : "", strerror(errno));
	return 0;
}

/* A read-only bind remount must repeat the flags the mount already has that
 * an unprivileged mount namespace would lock (nosuid, nodev, noexec, atime). */
static unsigned long bind_kept_flags(const char *target)
{
	static const struct {
		unsigned long st, ms;
	} map[] = {
		{ST_NOSUID, MS_NOSUID},   {ST_NODEV, MS_NODEV},       {ST_NOEXEC, MS_NOEXEC},
		{ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
	};
	struct statvfs sv;
	unsigned long flags = 0;
	if (statvfs(target, &sv) < 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (sv.f_flag & map[i].st)
			flags |= map[i].ms;
	return flags;
}

static int bind_check(const char *source, const char *target, struct err *e)
{
	struct stat s, t;
	if (stat(source, &s) < 0)
		return err_field(e, errno, "source", "%s: %s", source, strerror(errno));
	if (lstat(target, &t) < 0)
		return err_field(e, errno, "target", "%s: %s", target, strerror(errno));
	if (S_ISLNK(t.st_mode))
		return err_field(e, ELOOP, "target", "%s is a symlink (refused)", target);
	if (S_ISDIR(s.st_mode) != S_ISDIR(t.st_mode))
		return err_field(e, S_ISDIR(s.st_mode) ? ENOTDIR : EISDIR, "target",
				 "%s: source is %sa directory, target is %s", target,
				 S_ISDIR(s.st_mode) ? "" : "not ", S_ISDIR(t.st_mode) ? "one" : "not");
	return 0;
}

int storage_mount_bind(const char *source, const char *target, bool readonly, struct err *e)
{
	if (bind_check(source, target, e) < 0)
		return err_prefix(e, "bind %s on %s", source, target);
	if (mount(source, target, NULL, MS_BIND, NULL) < 0)
		return err_set(e, errno, "bind %s on %s: %s", source, target, strerror(errno));
	if (!readonly)
		return 0;
	unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | bind_kept_flags(target);
	if (mount(NULL, target, NULL, flags, NULL) < 0) {
		int code = errno;
		(void)umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW); /* no writable bind left behind */
		return err_set(e, code, "bind %s on %s: read-only remount: %s", source, target,
			       strerror(code));
	}
	return 0;
}

int storage_umount(const char *target, struct err *e)
{
	if (umount2(target, UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOENT)
		return 0; /* not a mount point, or nothing there: nothing to undo */
	if (errno != EBUSY)
		return err_set(e, errno, "umount %s: %s", target, strerror(errno));
	if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		return err_set(e, errno, "umount %s: busy, and detaching failed: %s", target,
			       strerror(errno));
	return err_set(e, EBUSY,
		       "umount %s: busy; detached (MNT_DETACH), it is freed when its last user "
		       "closes it",
		       target);
}

/* ---- mount points ---- */

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo: decode in place. */
static void mountinfo_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; w++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 4;
		} else {
			*w = *r++;
		}
	}
	*w = '\0';
}

/* Field 5 of a mountinfo line is the mount point. */
static bool mountinfo_has(const char *real)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		mountinfo_unescape(tok);
		if (strcmp(tok, real) == 0)
			return true;
	}
	return false;
}

/* For kernels without STATX_ATTR_MOUNT_ROOT (< 5.8). */
static bool mountpoint_fallback(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, pst;
	if (stat(path, &st) < 0 || str_fmt(parent, sizeof(parent), "%s/..", path) < 0 ||
	    stat(parent, &pst) < 0)
		return false;
	if (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino)
		return true; /* another filesystem, or "/" */
	_cleanup_free_ char *real = realpath(path, NULL);
	return real && mountinfo_has(real);
}

/* 1 if the object at dirfd/name (AT_EMPTY_PATH with "") is the root of a
 * mount, 0 if not, -1 if the kernel cannot say. */
static int statx_mount_root(int dirfd, const char *name, int flags)
{
	struct statx stx;
	if (statx(dirfd, name, flags, STATX_TYPE, &stx) < 0)
		return -1;
	if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -1;
	return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

bool storage_is_mountpoint(const char *path)
{
	if (!path || !*path)
		return false;
	int r = statx_mount_root(AT_FDCWD, path, 0);
	if (r >= 0)
		return r == 1;
	return mountpoint_fallback(path);
}

/* ---- directories ---- */

/* Copy the path component starting at *p (up to '/' or the end) into comp and
 * move *p past it and one '/'. Returns its length (0 for an empty component)
 * or -ENAMETOOLONG. */
static int path_next(const char **p, char comp[NAME_MAX + 1])
{
	size_t n = strcspn(*p, "/");
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(comp, *p, n);
	comp[n] = '\0';
	*p += n;
	if (**p == '/')
		(*p)++;
	return (int)n;
}

int storage_mkdir_p(const char *path, mode_t mode, struct err *e)
{
	if (!path || !*path)
		return err_set(e, EINVAL, "mkdir -p: empty path");
	_cleanup_close_ int dirfd = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(e, errno, "mkdir -p %s: %s", path, strerror(errno));
	char comp[NAME_MAX + 1];
	for (const char *p = path; *p;) {
		int n = path_next(&p, comp);
		if (n < 0)
			return err_set(e, -n, "mkdir -p %s: a component is longer than %d bytes", path,
				       NAME_MAX);
		if (n == 0)
			continue;
		if (mkdirat(dirfd, comp, mode) < 0 && errno != EEXIST)
			return err_set(e, errno, "mkdir -p %s: %s: %s", path, comp, strerror(errno));
		int fd = openat(dirfd, comp, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return err_set(e, errno, "mkdir -p %s: %s: %s", path, comp,
				       errno == ENOTDIR ? "exists and is not a directory"
							: strerror(errno));
		close(dirfd);
		dirfd = fd;
	}
	return 0;
}

/* ---- rm -rf on one filesystem ---- */

struct rmtree {
	dev_t dev;           /* the filesystem the tree lives on */
	size_t len;          /* strlen(path) */
	char path[PATH_MAX]; /* where we are, for error messages */
	struct err *e;
	int rootfd;          /* the tree's root: deeper subtrees are moved here */
	unsigned hoisted;    /* names given to them: .rmtree-<n> */
	bool again;          /* one was moved: walk the root once more */
};

static int rm_children(struct rmtree *t, int fd, unsigned depth);

/* Refuse a directory that is the root of any mount: another filesystem
 * (st_dev differs) or a bind mount of this one (statx says so). */
static int rm_same_fs(struct rmtree *t, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(t->e, errno, "rmtree: %s: %s", t->path, strerror(errno));
	if (st.st_dev != t->dev || statx_mount_root(fd, "", AT_EMPTY_PATH) == 1)
		return err_set(t->e, EXDEV, "rmtree: %s is a mount point: refusing to cross it",
			       t->path);
	return 0;
}

/* Too deep to descend with one fd per level: move the subtree up into the
 * root under a fresh name; the walk of the root goes again for it. A
 * container can build any depth in its volume, and its volume must go. */
static int rm_hoist(struct rmtree *t, int dirfd, const char *name)
{
	for (;;) {
		char to[32];
		if (str_fmt(to, sizeof(to), ".rmtree-%u", ++t->hoisted) < 0)
			return err_set(t->e, ENAMETOOLONG, "rmtree: %s: no name left", t->path);
		if (renameat2(dirfd, name, t->rootfd, to, RENAME_NOREPLACE) == 0) {
			t->again = true;
			return 0;
		}
		if (errno != EEXIST)
			return err_set(t->e, errno, "rmtree: %s: deeper than %d levels, and moving "
				       "it up failed: %s", t->path, RMTREE_MAX_DEPTH, strerror(errno));
	}
}

static int rm_subdir(struct rmtree *t, int dirfd, const char *name, unsigned depth)
{
	if (depth >= RMTREE_MAX_DEPTH)
		return rm_hoist(t, dirfd, name);
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(t->e, errno, "rmtree: %s: %s", t->path,
						     strerror(errno));
	int r = rm_same_fs(t, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = rm_children(t, fd, depth + 1); /* takes fd */
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return err_set(t->e, errno, "rmtree: rmdir %s: %s", t->path, strerror(errno));
	return 0;
}

static int rm_entry(struct rmtree *t, int dirfd, const char *name, unsigned depth)
{
	size_t saved = t->len;
	if (str_fmt(t->path + saved, sizeof(t->path) - saved, "/%s", name) < 0)
		return err_set(t->e, ENAMETOOLONG, "rmtree: %s/%s: path too long", t->path, name);
	t->len += strlen(t->path + saved);
	struct stat st;
	int r = 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			r = err_set(t->e, errno, "rmtree: %s: %s", t->path, strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		r = rm_subdir(t, dirfd, name, depth);
	} else if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
		r = err_set(t->e, errno, "rmtree: unlink %s: %s", t->path, strerror(errno));
	}
	t->len = saved;
	t->path[saved] = '\0';
	return r;
}

/* Remove everything in the directory open at fd (which this takes). */
static int rm_children(struct rmtree *t, int fd, unsigned depth)
{
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		int code = errno;
		close(fd);
		return err_set(t->e, code, "rmtree: %s: %s", t->path, strerror(code));
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = rm_entry(t, dirfd(d), de->d_name, depth);
		if (r < 0)
			return r;
	}
	if (errno)
		return err_set(t->e, errno, "rmtree: read %s: %s", t->path, strerror(errno));
	return 0;
}

/* Empty the root open at fd (taken), again while subtrees were moved up. */
static int rm_walk(struct rmtree *t, int fd)
{
	t->rootfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (t->rootfd < 0) {
		int code = errno;
		close(fd);
		return err_set(t->e, code, "rmtree: %s: %s", t->path, strerror(code));
	}
	int r;
	do {
		t->again = false;
		r = rm_children(t, fd, 0);
		/* a fresh open file: its own read position, from the start */
		if (r == 0 && t->again &&
		    (fd = openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			r = err_set(t->e, errno, "rmtree: %s: %s", t->path, strerror(errno));
	} while (r == 0 && t->again);
	close(t->rootfd);
	return r;
}

int storage_rmtree(const char *path, struct err *e)
{
	_cleanup_free_ struct rmtree *t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(e, ENOMEM, "rmtree %s: out of memory", path);
	t->e = e;
	if (str_fmt(t->path, sizeof(t->path), "%s", path) < 0)
		return err_set(e, ENAMETOOLONG, "rmtree: path too long");
	t->len = strlen(t->path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* like rm -rf: nothing to remove */
		int code = errno;
		struct stat lst;
		if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
			return err_set(e, ENOTDIR, "rmtree %s: is a symlink, not a directory", path);
		return err_set(e, code, "rmtree %s: %s", path, strerror(code));
	}
	struct stat st;
	if (fstat(fd, &st) == 0)
		t->dev = st.st_dev;
	int r = rm_same_fs(t, fd);
	if (r == 0 && statx_mount_root(fd, "", AT_EMPTY_PATH) == -1 && storage_is_mountpoint(path))
		r = err_set(e, EXDEV, "rmtree: %s is a mount point: refusing to remove it", path);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = rm_walk(t, fd);
	if (r == 0 && rmdir(path) < 0 && errno != ENOENT)
		r = err_set(e, errno, "rmtree: rmdir %s: %s", path, strerror(errno));
	return r;
}

/* ---- volumes ---- */

/* rel: names separated by single '/', no leading or trailing '/'. */
static int volume_rel_check(const char *rel, struct err *e)
{
	if (!rel || !*rel)
		return err_field(e, EINVAL, "volume", "empty path");
	if (rel[0] == '/')
		return err_field(e, EINVAL, "volume", "\"%s\": must be relative (no leading '/')", rel);
	char comp[NAME_MAX + 1];
	for (const char *p = rel; *p;) {
		int n = path_next(&p, comp);
		if (n < 0)
			return err_field(e, EINVAL, "volume", "\"%s\": component too long", rel);
		bool last_slash = !*p && p[-1] == '/';
		if (n == 0 || last_slash)
			return err_field(e, EINVAL, "volume", "\"%s\": empty component", rel);
		if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0)
			return err_field(e, EINVAL, "volume", "\"%s\": '.' and '..' are not allowed",
					 rel);
		if (!name_valid(comp))
			return err_field(e, EINVAL, "volume",
					 "\"%s\": \"%s\" is not a name ([a-z0-9][a-z0-9_-]{0,31})", rel,
					 comp);
	}
	return 0;
}

/* Open dirfd/name as a directory, creating it durably first if missing.
 * Existing directories cost no durable op (and no fsync) on every boot. */
static int volume_step(int dirfd, const char *name, struct err *e)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return err_set(e, errno, "%s: %s", name, strerror(errno));
		int r = storage_mkdir_durable(dirfd, name, 0755, e);
		if (r < 0)
			return r;
	} else if (!S_ISDIR(st.st_mode)) {
		return err_set(e, ENOTDIR, "%s: %s, not a directory", name,
			       S_ISLNK(st.st_mode) ? "a symlink" : "exists");
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", name,
			       errno == ENOTDIR || errno == ELOOP ? "not a directory" : strerror(errno));
	return fd;
}

int storage_volume_dir(struct storage *s, const char *rel, char *buf, size_t cap, struct err *e)
{
	int r = volume_rel_check(rel, e);
	if (r < 0)
		return r;
	if (str_fmt(buf, cap, "%s/volumes/%s", storage_root_path(s), rel) < 0)
		return err_set(e, ENAMETOOLONG, "volume %s: path longer than %zu bytes", rel, cap);
	_cleanup_close_ int dirfd = volume_step(storage_root_fd(s), "volumes", e);
	if (dirfd < 0)
		return err_prefix(e, "volume %s", rel);
	char comp[NAME_MAX + 1];
	for (const char *p = rel; *p;) {
		if (path_next(&p, comp) < 0)
			return err_set(e, ENAMETOOLONG, "volume %s: component too long", rel);
		int fd = volume_step(dirfd, comp, e);
		if (fd < 0)
			return err_prefix(e, "volume %s", rel);
		close(dirfd);
		dirfd = fd;
	}
	return 0;
}
