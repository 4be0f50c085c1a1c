/* plugins/lxc.c — the liblxc backend (see plugins.h and plugins/README.md).
 *
 * The container config is built through liblxc's API only (clear_config +
 * set_config_item): no config file is ever written, so nothing a revision
 * says can reach liblxc except through the keys set here and the extra keys
 * the caller vetted. The keeper is a forked child that runs liblxc's
 * foreground start; it becomes the container's monitor, so its exit is the
 * container's end, and init_pid() asks it over liblxc's command socket. */
#define _GNU_SOURCE
#define LOG_MODULE "lxc"
#include "plugins.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lxc/lxccontainer.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define LXC_LOG_NAME "lxc.log"
#define LXC_LOG_LEVEL "WARN"
#define LXC_ARGV_MAX 256
#define LXC_FAIL_TAIL 2048 /* bytes of liblxc's log copied to the console on failure */
/* PATH of the keeper and the container init (liblxc starts the init with a
 * cleared environment; a revision may set lxc.environment itself). */
#define KEEPER_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct lxc_handle {
	struct lxc_container *c;
	char **argv; /* deep copy, NULL-terminated */
	int out_fd;  /* our own dup of plugin_ctr.out_fd, -1 = /dev/null */
	char logpath[PATH_MAX];
};

static void argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

static int argv_copy(char *const *argv, char ***out, struct err *e)
{
	size_t n = 0;
	while (argv && argv[n])
		n++;
	if (n == 0)
		return err_field(e, EINVAL, "argv", "empty: the container needs a program to run");
	if (n > LXC_ARGV_MAX)
		return err_field(e, E2BIG, "argv", "%zu arguments, at most %d", n, LXC_ARGV_MAX);
	char **copy = calloc(n + 1, sizeof(*copy));
	if (!copy)
		return err_set(e, ENOMEM, "argv: out of memory");
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(argv[i]);
		if (!copy[i]) {
			argv_free(copy);
			return err_set(e, ENOMEM, "argv: out of memory");
		}
	}
	*out = copy;
	return 0;
}

static void handle_free(struct lxc_handle *h)
{
	if (!h)
		return;
	if (h->c)
		lxc_container_put(h->c);
	argv_free(h->argv);
	if (h->out_fd >= 0)
		close(h->out_fd);
	free(h);
}
DEFINE_FREEP(struct lxc_handle, handle_free)

/* ---- config ---- */

static int set_item(struct lxc_container *c, const char *key, const char *value, struct err *e)
{
	if (!c->set_config_item(c, key, value))
		return err_field(e, EINVAL, key, "liblxc rejected the value '%s'", value);
	return 0;
}

/* fstab fields are split on blanks and liblxc does not unescape them: a
 * path with a blank or control character cannot be expressed, and ".."
 * could climb out of the rootfs. Reject both rather than escape. */
static int mount_path_check(const char *path, const char *field, struct err *e)
{
	if (!path || path[0] != '/')
		return err_field(e, EINVAL, field, "'%s' is not an absolute path", path ? path : "");
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return err_field(e, EINVAL, field, "blank or control character in '%s'", path);
	for (const char *p = path; (p = strstr(p, "..")); p += 2) {
		bool starts = p[-1] == '/';
		bool ends = p[2] == '/' || p[2] == '\0';
		if (starts && ends)
			return err_field(e, EINVAL, field, "'..' component in '%s'", path);
	}
	return 0;
}

static int set_mount(struct lxc_container *c, const struct plugin_mount *m, struct err *e)
{
	int r = mount_path_check(m->source, "mounts.source", e);
	if (r == 0)
		r = mount_path_check(m->target, "mounts.target", e);
	if (r < 0)
		return r;
	const char *rel = m->target;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return err_field(e, EINVAL, "mounts.target", "cannot bind over the rootfs itself");
	char entry[2 * PATH_MAX];
	if (str_fmt(entry, sizeof(entry), "%s %s none bind,create=%s%s 0 0", m->source, rel,
		    m->file ? "file" : "dir", m->readonly ? ",ro" : "") < 0)
		return err_field(e, ENAMETOOLONG, "mounts", "entry for %s too long", m->target);
	return set_item(c, "lxc.mount.entry", entry, e);
}

static int set_base(struct lxc_container *c, const struct plugin_ctr *pc, struct err *e)
{
	char rootfs[PATH_MAX + 8];
	if (str_fmt(rootfs, sizeof(rootfs), "dir:%s", pc->rootfs) < 0)
		return err_field(e, ENAMETOOLONG, "rootfs", "path too long");
	const struct plugin_kv base[] = {
		{"lxc.rootfs.path", rootfs},
		{"lxc.uts.name", pc->name},
		{"lxc.console.path", "none"},
		{"lxc.net.0.type", "empty"},
		{"lxc.mount.auto", "proc:mixed sys:ro cgroup:mixed"},
		{"lxc.autodev", "1"},
		{"lxc.tty.max", "0"},
		{"lxc.pty.max", "16"},
		{"lxc.cap.drop", "sys_module mac_admin mac_override sys_time"},
		{"lxc.environment", "PATH=" KEEPER_PATH},
	};
	for (size_t i = 0; i < ARRAY_SIZE(base); i++) {
		int r = set_item(c, base[i].key, base[i].value, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int configure(struct lxc_container *c, const struct plugin_ctr *pc, struct err *e)
{
	c->clear_config(c);
	int r = set_base(c, pc, e);
	for (size_t i = 0; r == 0 && i < pc->nmounts; i++)
		r = set_mount(c, &pc->mounts[i], e);
	for (size_t i = 0; r == 0 && i < pc->ncfg; i++) {
		if (!pc->cfg[i].key || !pc->cfg[i].value)
			return err_field(e, EINVAL, "lxc", "key or value missing");
		r = set_item(c, pc->cfg[i].key, pc->cfg[i].value, e);
	}
	return r;
}

/* One component of a mount target in directory dfd: made if missing (a
 * directory, or for the last one of a file mount an empty file), never
 * through a symlink. Returns the directory's fd for a directory, 0 for the
 * file. */
static int target_step(int dfd, const char *comp, bool file, const char *target,
		       struct err *e)
{
	struct stat st;
	int r = fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW);
	if (r < 0 && errno == ENOENT)
		r = file ? mknodat(dfd, comp, S_IFREG | 0644, 0) : mkdirat(dfd, comp, 0755);
	if (r == 0 && (r = fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW)) == 0 &&
	    (S_ISLNK(st.st_mode) || (file ? S_ISDIR(st.st_mode) : !S_ISDIR(st.st_mode))))
		return err_field(e, S_ISLNK(st.st_mode) ? ELOOP : EEXIST, "mounts.target",
				 "'%s': '%s' in the image is %s", target, comp,
				 S_ISLNK(st.st_mode) ? "a symlink (refused)"
				 : file		     ? "a directory, not a file"
						     : "not a directory");
	if (r < 0)
		return err_field(e, errno, "mounts.target", "'%s': %s: %s", target, comp,
				 strerror(errno));
	if (file)
		return 0;
	int fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_field(e, errno, "mounts.target", "'%s': %s: %s", target, comp,
				 strerror(errno));
	return fd;
}

/* Make mount target m->target below the rootfs open at rootfd. liblxc would
 * make it itself (create=dir|file: mkdir -p, then mknod), but from the
 * host's root and following symlinks, before the container's root is
 * pivoted: an image's /var/run -> /run, or a link a container left in a
 * volume, would have it create directories and files on the host. */
static int target_prepare(int rootfd, const struct plugin_mount *m, struct err *e)
{
	_cleanup_close_ int dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return err_set(e, errno, "rootfs: %s", strerror(errno));
	for (const char *p = m->target;;) {
		char comp[NAME_MAX + 1];
		p += strspn(p, "/");
		size_t n = strcspn(p, "/");
		if (n == 0 || n > NAME_MAX)
			return err_field(e, EINVAL, "mounts.target", "'%s': bad path component",
					 m->target);
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		bool last = p[strspn(p, "/")] == '\0';
		int fd = target_step(dfd, comp, last && m->file, m->target, e);
		if (fd <= 0)
			return fd;
		close(dfd);
		dfd = fd;
		if (last)
			return 0;
	}
}

/* liblxc mounts proc, sys and a tmpfs /dev over these directories but does
 * not create them; busybox-style images often lack them. The rootfs the
 * runtime gives us is writable (an overlay), so make them here, and every
 * mount target (target_prepare). */
static int rootfs_prepare(const struct plugin_ctr *pc, struct err *e)
{
	_cleanup_close_ int dfd = open(pc->rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_field(e, errno, "rootfs", "%s: %s", pc->rootfs, strerror(errno));
	static const char *const dirs[] = {"proc", "sys", "dev"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (mkdirat(dfd, dirs[i], 0755) < 0 && errno != EEXIST)
			return err_field(e, errno, "rootfs", "%s: cannot create /%s: %s", pc->rootfs,
					 dirs[i], strerror(errno));
	}
	for (size_t i = 0; i < pc->nmounts; i++) {
		const struct plugin_mount *m = &pc->mounts[i];
		int r = mount_path_check(m->target, "mounts.target", e);
		if (r == 0)
			r = target_prepare(dfd, m, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int lxc_prepare(const struct plugin_ctr *pc, void **handle, struct err *e)
{
	if (!name_valid(pc->name))
		return err_field(e, EINVAL, "name", "'%s' is not a valid container name",
				 pc->name ? pc->name : "");
	if (!pc->rootfs || pc->rootfs[0] != '/' || !pc->statedir || pc->statedir[0] != '/')
		return err_field(e, EINVAL, "rootfs", "rootfs and statedir must be absolute paths");
	int r = rootfs_prepare(pc, e);
	if (r < 0)
		return r;
	if (mkdir(pc->statedir, 0700) < 0 && errno != EEXIST)
		return err_field(e, errno, "statedir", "%s: %s", pc->statedir, strerror(errno));
	_cleanup_(handle_freep) struct lxc_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return err_set(e, ENOMEM, "out of memory");
	h->out_fd = -1;
	if (str_fmt(h->logpath, sizeof(h->logpath), "%s/" LXC_LOG_NAME, pc->statedir) < 0)
		return err_field(e, ENAMETOOLONG, "statedir", "path too long");
	h->c = lxc_container_new(pc->name, pc->statedir);
	if (!h->c)
		return err_set(e, ENOMEM, "liblxc could not create container object %s", pc->name);
	r = configure(h->c, pc, e);
	if (r == 0)
		r = argv_copy(pc->argv, &h->argv, e);
	if (r < 0)
		return err_prefix(e, "container %s", pc->name);
	if (pc->out_fd >= 0) {
		h->out_fd = fcntl(pc->out_fd, F_DUPFD_CLOEXEC, 3);
		if (h->out_fd < 0)
			return err_set(e, errno, "dup console fd: %s", strerror(errno));
	}
	*handle = TAKE_PTR(h);
	return 0;
}

/* ---- the keeper (runs in the forked child; only _exit from here) ---- */

static int keeper_stdio(int out_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return -errno;
	/* Move both above 2 first: dup2 onto its own number would keep CLOEXEC. */
	int hinull = fcntl(null, F_DUPFD_CLOEXEC, 3);
	int hiout = fcntl(out_fd >= 0 ? out_fd : null, F_DUPFD_CLOEXEC, 3);
	if (hinull < 0 || hiout < 0)
		return -errno;
	if (dup2(hinull, 0) < 0 || dup2(hiout, 1) < 0 || dup2(hiout, 2) < 0)
		return -errno;
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	return 0;
}

static int keeper_reset(int out_fd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL); /* fails harmlessly for KILL, STOP, glibc-reserved */
	if (setsid() < 0)
		return -errno;
	clearenv();
	if (setenv("PATH", KEEPER_PATH, 1) < 0)
		return -errno;
	return keeper_stdio(out_fd);
}

/* Copy the end of liblxc's log to the console so the container log says
 * why the start failed (the state dir is a tmpfs removed on stop). */
static void keeper_report_failure(const struct lxc_handle *h)
{
	static const char head[] = "cairn: liblxc could not start the container; its log ends:\n";
	(void)!write(1, head, sizeof(head) - 1);
	int fd = open(h->logpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[LXC_FAIL_TAIL];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0;
	ssize_t n = pread(fd, buf, sizeof(buf), from);
	if (n > 0)
		(void)!write(1, buf, (size_t)n);
	close(fd);
}

/* Encode the init's wait status per plugins.h. An exit code above 125
 * cannot be told apart from the signal/start-failure codes: it becomes 125.
 * liblxc 5.0 rebuilds the status from the pidfd's siginfo and encodes a
 * killed init as a *stop* status ((sig << 8) | 0x7f, checked here with
 * SIGKILL giving 0x97f): read WIFSTOPPED as "killed by WSTOPSIG". */
static int keeper_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st) > 125 ? 125 : WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	if (WIFSTOPPED(st))
		return 128 + WSTOPSIG(st);
	return PLUGIN_EXIT_START_FAILED;
}

static _Noreturn void keeper_run(struct lxc_handle *h)
{
	struct lxc_container *c = h->c;
	if (keeper_reset(h->out_fd) < 0)
		_exit(PLUGIN_EXIT_START_FAILED);
	/* Set in the child, after the fds were closed: liblxc keeps the log
	 * fd open in the container object. */
	if (!c->set_config_item(c, "lxc.log.file", h->logpath) ||
	    !c->set_config_item(c, "lxc.log.level", LXC_LOG_LEVEL))
		_exit(PLUGIN_EXIT_START_FAILED);
	c->want_daemonize(c, false);
	c->want_close_all_fds(c, true);
	bool ok = c->start(c, 0, h->argv);
	if (!ok) {
		keeper_report_failure(h);
		_exit(PLUGIN_EXIT_START_FAILED);
	}
	/* After a foreground start, error_num holds the init's wait status. */
	_exit(keeper_status(c->error_num));
}

static int lxc_spawn(void *handle, pid_t *keeper, struct err *e)
{
	struct lxc_handle *h = handle;
	pid_t pid = fork();
	if (pid < 0)
		return err_set(e, errno, "fork keeper for %s: %s", h->c->name, strerror(errno));
	if (pid == 0)
		keeper_run(h);
	*keeper = pid;
	/* The keeper has its own copy of the configured object; ours is only
	 * needed to reach the keeper's command socket (init_pid): a bare one
	 * does that without keeping liblxc's parsed configuration resident. */
	struct lxc_container *bare = lxc_container_new(h->c->name, h->c->config_path);
	if (bare) {
		lxc_container_put(h->c);
		h->c = bare;
	}
	return 0;
}

/* Blocks for one round trip to the keeper's command socket; while the
 * keeper is still setting the container up it answers only once its main
 * loop runs (see plugins/README.md). */
static pid_t lxc_init_pid(void *handle)
{
	struct lxc_handle *h = handle;
	pid_t pid = h->c->init_pid(h->c);
	return pid > 0 ? pid : 0;
}

static int lxc_signal(void *handle, int sig)
{
	pid_t pid = lxc_init_pid(handle);
	if (pid == 0)
		return -ESRCH;
	return kill(pid, sig) < 0 ? -errno : 0;
}

static void lxc_release(void *handle)
{
	handle_free(handle);
}

const struct plugin_ops plugin_lxc = {
	.name = "lxc",
	.prepare = lxc_prepare,
	.spawn = lxc_spawn,
	.init_pid = lxc_init_pid,
	.signal = lxc_signal,
	.release = lxc_release,
};
