/* init/early.c — the early boot of a real PID 1, in order: signals blocked,
 * the API filesystems, the console, the kernel command line, kernel modules,
 * the storage device; then (early_finish, once the options are final) the
 * statedir tmpfs, the booted revision's modules and firmware, the watchdog.
 * main.c drives the steps; each one logs what it did. Hardware steps
 * (modules, storage device, BSP mounts, watchdog) run only on the machine's
 * own init: see init/README.md "Kernel command line". */
#define LOG_MODULE "early"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/magic.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../storage/storage.h"
#include "init.h"

#define CMDLINE_MAX (64u * 1024)

/* ---------------- mounts and console ---------------- */

static const struct early_mount {
	const char *what, *where, *type;
	unsigned long flags;
	const char *data;
	long magic; /* statfs f_type once mounted */
} early_mounts[] = {
	{"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, PROC_SUPER_MAGIC},
	{"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SYSFS_MAGIC},
	{"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", TMPFS_MAGIC},
	{"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666",
	 DEVPTS_SUPER_MAGIC},
	{"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", TMPFS_MAGIC},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
	 CGROUP2_SUPER_MAGIC},
};

/* Already mounted = a mount point (device differs from its parent's) with
 * the expected filesystem type (the kernel or an initramfs did it). */
static bool early_mounted(const struct early_mount *m)
{
	struct statfs sf;
	struct stat st, up;
	char parent[64];
	if (statfs(m->where, &sf) < 0 || (long)sf.f_type != m->magic)
		return false;
	if (str_fmt(parent, sizeof(parent), "%s/..", m->where) < 0 || stat(m->where, &st) < 0 ||
	    stat(parent, &up) < 0)
		return false;
	return st.st_dev != up.st_dev;
}

/* Each step degrades: a failed mount is logged, boot goes on. */
static void early_mount_all(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(early_mounts); i++) {
		const struct early_mount *m = &early_mounts[i];
		if (early_mounted(m)) {
			log_debug("%s: already mounted", m->where);
			continue;
		}
		if (mkdir(m->where, 0755) < 0 && errno != EEXIST)
			log_warn("mkdir %s: %s", m->where, strerror(errno));
		if (mount(m->what, m->where, m->type, m->flags, m->data) < 0 && errno != EBUSY)
			log_err("mount %s on %s: %s", m->type, m->where, strerror(errno));
	}
}

/* The kernel gives init /dev/console as fds 0-2 when the node exists at
 * exec time; when it did not, attach the closed ones now that /dev is up. */
static void early_console(void)
{
	int fd = -1;
	for (int i = 0; i <= 2; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		if (fd < 0 && (fd = open("/dev/console", O_RDWR | O_NOCTTY)) < 0)
			return;
		if (fd != i)
			(void)dup2(fd, i);
	}
	if (fd > 2)
		close(fd);
}

void early_prepare(void)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* taken later by PID 1's sigwaitinfo */
	early_mount_all();
	early_console();
	/* ctrl-alt-del sends SIGINT to PID 1 (forwarded) instead of rebooting at once */
	if (reboot(RB_DISABLE_CAD) < 0)
		log_debug("RB_DISABLE_CAD: %s", strerror(errno));
}

/* ---------------- the kernel command line ---------------- */

/* Not file_read_all: a /proc file has st_size 0, whatever it holds. */
int early_cmdline_read(struct early_cmdline *c, struct err *e)
{
	static char buf[CMDLINE_MAX];
	early_cmdline_defaults(c);
	_cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "open /proc/cmdline: %s", strerror(errno));
	ssize_t n = read_all(fd, buf, sizeof(buf));
	if (n < 0)
		return err_set(e, (int)-n, "read /proc/cmdline: %s", strerror((int)-n));
	int r = early_cmdline_parse(buf, (size_t)n, c, e);
	if (r < 0)
		return err_prefix(e, "kernel command line");
	if (c->nunknown)
		log_warn("kernel command line: %u unknown cairn.* key(s) ignored, first: %s",
			 c->nunknown, c->unknown);
	return 0;
}

/* The initial PID namespace is the only one where pid 2 is kthreadd: a
 * real-PID-1 test inside a PID namespace must not touch the host's modules,
 * disks or watchdog. */
bool early_is_machine_init(void)
{
	char comm[32];
	_cleanup_close_ int fd = open("/proc/2/comm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read_all(fd, comm, sizeof(comm) - 1);
	if (n <= 0)
		return false;
	comm[n] = '\0';
	return strcmp(comm, "kthreadd\n") == 0;
}

/* ---------------- kernel modules ---------------- */

DEFINE_FREEP(struct mod_index, mod_index_free)

/* cairn.modules=, else the default list on a cairn boot (cairn.storage=). */
static size_t module_list(const struct early_cmdline *c, struct early_cmdline *tmp)
{
	if (c->modules_given || !c->storage[0])
		return c->modules_given ? c->nmodules : 0;
	struct err ignored = ERR_INIT;
	if (early_cmdline_parse("cairn.modules=" EARLY_DEFAULT_MODULES,
				strlen("cairn.modules=" EARLY_DEFAULT_MODULES), tmp, &ignored) < 0)
		return 0; /* cannot happen: the default is a valid list */
	return tmp->nmodules;
}

static void load_plan(int dirfd, const struct mod_plan *plan)
{
	unsigned ok = 0;
	for (size_t i = 0; i < plan->n; i++) {
		struct err e = ERR_INIT;
		if (mod_load(dirfd, &plan->step[i], &e) == 0)
			ok++;
		else if (plan->step[i].optional)
			log_warn("optional module (softdep) %s", e.msg);
		else
			log_err("module %s", e.msg);
	}
	log_info("%u of %zu module files loaded", ok, plan->n);
}

void early_modules(const struct early_cmdline *c)
{
	static struct early_cmdline deflt; /* big: not on PID 1's stack */
	static struct mod_plan plan;
	size_t n = module_list(c, &deflt);
	const char(*names)[EARLY_MODNAME_MAX] = c->modules_given ? c->modules : deflt.modules;
	struct utsname u;
	char dir[128];
	struct err e = ERR_INIT;
	if (n == 0)
		return;
	if (uname(&u) < 0 || str_fmt(dir, sizeof(dir), "/lib/modules/%s", u.release) < 0) {
		log_err("modules: cannot name the kernel release's directory");
		return;
	}
	uint64_t t0 = now_ns();
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_(mod_index_freep) struct mod_index *x = NULL;
	if (dfd < 0 || mod_index_load(dfd, &x, &e) < 0) {
		log_err("modules: %s: %s", dir, dfd < 0 ? strerror(errno) : e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++, err_clear(&e))
		if (mod_plan_add(x, dfd, names[i], &plan, &e) < 0)
			log_err("%s", e.msg);
	load_plan(dfd, &plan);
	log_info("modules done in %llu ms", (unsigned long long)((now_ns() - t0) / 1000000u));
}

/* ---------------- after the options are final ---------------- */

static void early_watchdog(const struct early_cmdline *c)
{
	const char *path = c->watchdog[0] ? c->watchdog : NULL;
	if (!path && c->storage[0] && access("/dev/watchdog", F_OK) == 0)
		path = "/dev/watchdog";
	if (!path || strcmp(path, "off") == 0) {
		log_info("no hardware watchdog%s", path ? " (cairn.watchdog=off)" : "");
		return;
	}
	struct err e = ERR_INIT;
	if (wdog_open(path, c->watchdog_s, c->watchdog_grace_s, c->test_hang, &e) < 0)
		log_err("watchdog: %s: running without one", e.msg);
}

/* The admin socket's directory: /run is a fresh tmpfs on a real PID 1. */
static int admin_dir(const char *sock, struct err *e)
{
	char dir[128];
	if (str_fmt(dir, sizeof(dir), "%s", sock) < 0)
		return err_set(e, ENAMETOOLONG, "admin socket path too long");
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	int r = storage_mkdir_p(dir, 0755, e);
	return r < 0 ? err_prefix(e, "admin socket directory") : 0;
}

int early_finish(const struct early_cmdline *c, const struct init_opts *o, struct err *e)
{
	int r = admin_dir(o->admin_socket, e);
	if (r < 0)
		return r;
	r = storage_mkdir_p(o->statedir, 0755, e);
	if (r >= 0)
		r = storage_mount_tmpfs(o->statedir, "mode=0755", e);
	if (r < 0)
		return err_prefix(e, "statedir %s", o->statedir);
	if (!early_is_machine_init())
		return 0;
	early_bsp_mounts(c->rev, o->storage, o->trust);
	early_watchdog(c);
	return 0;
}
