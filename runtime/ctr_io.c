/* runtime/ctr_io.c — what a container needs on the host: its private tmpfs,
 * the image (squashfs) with an overlay on top, volume directories, the
 * console pipe and its log file, and the plugin description for a spawn.
 *
 * Layout of <statedir>/ctr/<name>/ (a tmpfs of its own, mounted first):
 *   lower/   the squashfs image, read-only
 *   upper/ work/   the overlay's writable layer: writes vanish on stop
 *   rootfs/  the overlay: what the container sees as /
 *   vol/<v>/ boot volumes (empty at every start of the revision)
 *   lxc/     the plugin's state (liblxc's lxcpath and log) */
#define _GNU_SOURCE
#define LOG_MODULE "runtime"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "runtime_internal.h"

#define CON_CHUNK 4096
#define CON_MAX_PER_WAKE 16 /* chunks per callback: other fds get their turn */

static int sub(const struct rt_ctr *c, const char *leaf, char *buf, size_t cap, struct err *e)
{
	if (str_fmt(buf, cap, "%s/%s", c->dir, leaf) < 0)
		return err_set(e, ENAMETOOLONG, "%s/%s: path too long", c->dir, leaf);
	return 0;
}

/* ---- mounts ---- */

static int mount_layers(struct rt_ctr *c, struct err *e)
{
	char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], rootfs[PATH_MAX];
	int r = sub(c, "lower", lower, sizeof(lower), e);
	if (r == 0)
		r = sub(c, "upper", upper, sizeof(upper), e);
	if (r == 0)
		r = sub(c, "work", work, sizeof(work), e);
	if (r == 0)
		r = sub(c, "rootfs", rootfs, sizeof(rootfs), e);
	const char *dirs[] = {lower, upper, work, rootfs};
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++)
		r = storage_mkdir_p(dirs[i], 0755, e);
	if (r < 0)
		return r;
	if ((r = storage_mount_squashfs(c->image, lower, e)) < 0)
		return err_prefix(e, "image %s", c->image);
	c->mnt_lower = true;
	if ((r = storage_mount_overlay(lower, upper, work, rootfs, e)) < 0)
		return r;
	c->mnt_rootfs = true;
	return 0;
}

static int vol_source(struct rt_ctr *c, struct rt_vol *v, char *buf, size_t cap, struct err *e)
{
	struct runtime *rt = c->rt;
	char rel[PATH_MAX];
	int r = 0;
	switch (v->persistence) {
	case RT_PERSIST_PERMANENT:
		r = str_fmt(rel, sizeof(rel), "permanent/%s/%s", c->name, v->name);
		break;
	case RT_PERSIST_REVISION:
		r = str_fmt(rel, sizeof(rel), "revision/%s/%s/%s", c->rev, c->name, v->name);
		break;
	case RT_PERSIST_BOOT:
		if (str_fmt(buf, cap, "%s/vol/%s", c->dir, v->name) < 0)
			return err_set(e, ENAMETOOLONG, "path too long");
		return storage_mkdir_p(buf, 0755, e);
	}
	if (r < 0)
		return err_set(e, ENAMETOOLONG, "path too long");
	return storage_volume_dir(rt->cfg.storage, rel, buf, cap, e);
}

static int mount_volumes(struct rt_ctr *c, struct err *e)
{
	char buf[PATH_MAX];
	for (size_t i = 0; i < c->nvols; i++) {
		struct rt_vol *v = &c->vols[i];
		int r = vol_source(c, v, buf, sizeof(buf), e);
		if (r < 0)
			return err_prefix(e, "volume %s", v->name);
		free(v->source);
		v->source = strdup(buf);
		if (!v->source)
			return err_set(e, ENOMEM, "volume %s: out of memory", v->name);
	}
	return 0;
}

/* <statedir>/ctr/<name>, or with `alt` <statedir>/ctr/<name>.1 (names
 * never hold a dot): a replacement is prepared beside its predecessor. */
static int ctr_dir(const struct rt_ctr *c, bool alt, char *buf, size_t cap, struct err *e)
{
	if (str_fmt(buf, cap, "%s/ctr/%s%s", c->rt->statedir, c->name, alt ? ".1" : "") < 0)
		return err_set(e, ENAMETOOLONG, "statedir %s: path too long", c->rt->statedir);
	return 0;
}

/* Mount everything under c->dir (leftovers of an orchestrator that died
 * are unmounted first); the caller unmounts on error. */
static int mount_at(struct rt_ctr *c, const char *rev, struct err *e)
{
	uint64_t t0 = now_ns();
	ctr_unmount(c);
	rt_textf(c->rev, sizeof(c->rev), "%s", rev); /* its logs and revision volumes */
	int r = storage_mkdir_p(c->dir, 0755, e);
	if (r == 0 && (r = storage_mount_tmpfs(c->dir, "mode=0755", e)) == 0)
		c->mnt_tmpfs = true;
	if (r == 0)
		r = mount_layers(c, e);
	if (r == 0)
		r = mount_volumes(c, e);
	struct stat st;
	if (r == 0 && c->ctrl_socket && lstat(c->ctrl_socket, &st) < 0)
		r = err_set(e, errno, "control socket %s: %s", c->ctrl_socket, strerror(errno));
	if (r < 0)
		return r;
	log_info("container %s: mounted %s at %s/rootfs", c->name, c->image, c->dir);
	log_debug("container %s: mounted in %llu us", c->name,
		  (unsigned long long)((now_ns() - t0) / 1000));
	return 0;
}

/* Nothing else of this name runs or is mounted here (every retiree is down
 * before an apply mounts the normal way): leftovers under both names go. */
int ctr_mount(struct rt_ctr *c, struct err *e)
{
	int r = ctr_dir(c, true, c->dir, sizeof(c->dir), e);
	if (r < 0)
		return r;
	ctr_unmount(c);
	if ((r = ctr_dir(c, false, c->dir, sizeof(c->dir), e)) < 0)
		return r;
	return mount_at(c, c->rt->cur.rev, e);
}

static int plugin_prepare(struct rt_ctr *c, struct err *e);

int ctr_prepare(struct rt_ctr *c, const char *rev, const struct rt_ctr *pred, struct err *e)
{
	char base[PATH_MAX];
	int r = ctr_dir(c, false, base, sizeof(base), e);
	if (r == 0)
		r = ctr_dir(c, strcmp(pred->dir, base) == 0, c->dir, sizeof(c->dir), e);
	if (r < 0)
		return r;
	if ((r = mount_at(c, rev, e)) == 0 && (r = ctr_console_open(c, e)) == 0)
		r = plugin_prepare(c, e);
	if (r < 0) {
		ctr_unmount(c);
		return r;
	}
	c->state = CTR_MOUNTED;
	log_debug("container %s: prepared in %s while its predecessor runs", c->name, c->dir);
	return 0;
}

static void umount_one(struct rt_ctr *c, const char *leaf, bool *flag)
{
	char path[PATH_MAX];
	struct err e = ERR_INIT;
	if (leaf && sub(c, leaf, path, sizeof(path), &e) < 0)
		return;
	/* busy (then detached) is expected while a keeper tears down: ctr.c */
	if (storage_umount(leaf ? path : c->dir, &e) < 0) {
		if (c->keeper_left)
			log_debug("container %s: %s", c->name, e.msg);
		else
			log_warn("container %s: %s", c->name, e.msg);
	}
	if (flag)
		*flag = false;
}

/* Best effort and idempotent: every layer is tried, failures are logged. */
void ctr_unmount(struct rt_ctr *c)
{
	if (c->handle && c->keeper <= 0) { /* prepared, never spawned */
		c->rt->cfg.plugin->release(c->handle);
		c->handle = NULL;
	}
	if (!c->dir[0])
		return;
	uint64_t t0 = now_ns();
	ctr_console_close(c);
	umount_one(c, "rootfs", &c->mnt_rootfs);
	umount_one(c, "lower", &c->mnt_lower);
	umount_one(c, NULL, &c->mnt_tmpfs);
	for (size_t i = 0; i < c->nvols; i++) {
		free(c->vols[i].source);
		c->vols[i].source = NULL;
	}
	struct err e = ERR_INIT;
	if (storage_rmtree(c->dir, &e) < 0)
		log_warn("container %s: %s", c->name, e.msg);
	log_debug("container %s: unmounted in %llu us", c->name,
		  (unsigned long long)((now_ns() - t0) / 1000));
}

/* ---- console ---- */

static void log_bytes(struct rt_ctr *c, const void *buf, size_t len)
{
	struct err e = ERR_INIT;
	if (!c->log || c->log_broken)
		return;
	if (storage_log_write(c->log, buf, len, &e) < 0) {
		log_warn("container %s: log: %s (further output is dropped)", c->name, e.msg);
		c->log_broken = true;
	}
}

/* Always drain: a full pipe would block the container's writes. */
static void console_drain(struct rt_ctr *c)
{
	char buf[CON_CHUNK];
	for (unsigned i = 0; i < CON_MAX_PER_WAKE; i++) {
		ssize_t n = read(c->con_rd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		log_bytes(c, buf, (size_t)n);
	}
}

static void console_cb(struct loop_io *io, uint32_t events)
{
	(void)events;
	console_drain(io->data);
}

static int log_open(struct rt_ctr *c, struct err *e)
{
	struct runtime *rt = c->rt;
	char dir[PATH_MAX], path[PATH_MAX];
	const char *root = storage_root_path(rt->cfg.storage);
	if (str_fmt(dir, sizeof(dir), "%s/logs/%s", root, c->rev) < 0 ||
	    str_fmt(path, sizeof(path), "%s/%s.log", dir, c->name) < 0)
		return err_set(e, ENAMETOOLONG, "log path too long");
	int r = storage_mkdir_p(dir, 0755, e);
	if (r == 0)
		r = storage_log_open(path, rt->cfg.log_max_bytes, rt->cfg.log_keep, &c->log, e);
	return r;
}

int ctr_console_open(struct rt_ctr *c, struct err *e)
{
	if (c->con_rd >= 0)
		return 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, errno, "console pipe: %s", strerror(errno));
	/* Only our end is non-blocking: the container's stdout stays blocking. */
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int code = errno;
		close(p[0]);
		close(p[1]);
		return err_set(e, code, "console pipe: %s", strerror(code));
	}
	c->con_rd = p[0];
	c->con_wr = p[1];
	c->con_io = (struct loop_io){.fd = p[0], .cb = console_cb, .data = c};
	int r = loop_io_add(c->rt->cfg.loop, &c->con_io, EPOLLIN, e);
	if (r < 0) {
		ctr_console_close(c);
		return r;
	}
	struct err le = ERR_INIT;
	c->log_broken = false;
	if (log_open(c, &le) < 0)
		log_warn("container %s: console output is not kept: %s", c->name, le.msg);
	return 0;
}

void ctr_console_close(struct rt_ctr *c)
{
	if (c->con_rd >= 0) {
		console_drain(c);
		loop_io_del(c->rt->cfg.loop, &c->con_io);
		close(c->con_rd);
	}
	if (c->con_wr >= 0)
		close(c->con_wr);
	c->con_rd = c->con_wr = -1;
	storage_log_close(c->log);
	c->log = NULL;
}

void ctr_log_note(struct rt_ctr *c, const char *fmt, ...)
{
	char line[RT_REASON_MAX + 128];
	int n = snprintf(line, sizeof(line), "cairn: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	if (c->con_rd >= 0)
		console_drain(c); /* keep the container's own lines first */
	log_bytes(c, line, len);
}

/* ---- spawn ---- */

static size_t build_mounts(const struct rt_ctr *c, struct plugin_mount *m)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nvols; i++)
		m[n++] = (struct plugin_mount){.source = c->vols[i].source,
					       .target = c->vols[i].path};
	if (c->ctrl_socket)
		m[n++] = (struct plugin_mount){.source = c->ctrl_socket,
					       .target = RT_CTRL_TARGET,
					       .file = true};
	return n;
}

/* The plugin's container object and config (the rootfs is mounted). */
static int plugin_prepare(struct rt_ctr *c, struct err *e)
{
	char rootfs[PATH_MAX], statedir[PATH_MAX];
	int r;
	if ((r = sub(c, "rootfs", rootfs, sizeof(rootfs), e)) < 0 ||
	    (r = sub(c, "lxc", statedir, sizeof(statedir), e)) < 0)
		return r;
	struct plugin_mount mounts[RT_MAX_VOLUMES + 1];
	struct plugin_ctr pc = {
		.name = c->name,
		.rootfs = rootfs,
		.argv = c->argv,
		.cfg = c->kv,
		.ncfg = c->nkv,
		.mounts = mounts,
		.nmounts = build_mounts(c, mounts),
		.statedir = statedir,
		.out_fd = c->con_wr,
	};
	const struct plugin_ops *p = c->rt->cfg.plugin;
	uint64_t t0 = now_ns();
	if ((r = p->prepare(&pc, &c->handle, e)) < 0)
		return err_prefix(e, "%s prepare", p->name);
	log_debug("container %s: %s prepare in %llu us", c->name, p->name,
		  (unsigned long long)((now_ns() - t0) / 1000));
	return 0;
}

/* Prepared ahead by an apply (ctr_prepare), or now. */
int ctr_spawn(struct rt_ctr *c, struct err *e)
{
	int r = ctr_console_open(c, e);
	if (r == 0 && !c->handle)
		r = plugin_prepare(c, e);
	if (r < 0)
		return r;
	const struct plugin_ops *p = c->rt->cfg.plugin;
	uint64_t t0 = now_ns();
	if ((r = p->spawn(c->handle, &c->keeper, e)) < 0) {
		p->release(c->handle);
		c->handle = NULL;
		c->keeper = 0;
		return err_prefix(e, "%s spawn", p->name);
	}
	c->spawned_at = now_ns();
	log_info("container %s: keeper %d spawned", c->name, (int)c->keeper);
	log_debug("container %s: spawn in %llu us", c->name,
		  (unsigned long long)((c->spawned_at - t0) / 1000));
	return 0;
}
