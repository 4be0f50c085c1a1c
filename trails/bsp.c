/* trails/bsp.c — a revision's boot files where a boot script loads them.
 *
 *   <storage>/boot/<rev>/vmlinuz      hard link to bsp.kernel's object
 *   <storage>/boot/<rev>/initrd.img   hard link to bsp.initrd's object (if any)
 *   <storage>/boot/<rev>/cmdline.env  "cairn_cmdline=<bsp.cmdline>\n" (env import -t)
 *
 * A revision's directory appears whole, in one durable rename from
 * tmp/bsp-<rev>-<pid>/, or not at all; placing again what is there is a
 * no-op. boot/<rev> goes away (renamed to tmp/ first, then removed) when its
 * revision does; entries of boot/ that are not decimal numbers are never
 * touched (a boot script may live there). See trails/BOOT.md "BSP placement". */
#define LOG_MODULE "trails"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "trails_internal.h"

#define BSP_DIR "boot"
#define CMDLINE_FILE "cmdline.env"

/* ---------------- what a revision's directory must hold ---------------- */

/* "cairn_cmdline=...\n", a backslash doubled (env import unescapes). */
static int cmdline_env(const struct revision *r, char **out, size_t *len, struct err *e)
{
	const char *c = r->bsp.cmdline ? r->bsp.cmdline : "";
	size_t n = strlen(c), k = 0;
	char *buf = malloc(sizeof("cairn_cmdline=\n") + 2 * n);
	if (!buf)
		return err_set(e, ENOMEM, "out of memory");
	memcpy(buf, "cairn_cmdline=", 14);
	k = 14;
	for (size_t i = 0; i < n; i++) {
		if (c[i] == '\\')
			buf[k++] = '\\';
		buf[k++] = c[i];
	}
	buf[k++] = '\n';
	*out = buf;
	*len = k;
	return 0;
}

static int object_stat(struct storage *s, const struct rev_objref *ref, struct stat *st,
		       struct err *e)
{
	char path[4096], id[DIGEST_STR_LEN + 1];
	digest_format(&ref->digest, id);
	if (storage_object_path(s, &ref->digest, path, sizeof(path)) < 0)
		return err_set(e, ENAMETOOLONG, "object %s: path too long", id);
	if (stat(path, st) < 0)
		return err_set(e, errno, "object %s: %s", id, strerror(errno));
	return 0;
}

/* The file `name` in dfd is the object itself (same inode); absent if !ref->present. */
static bool same_link(struct storage *s, int dfd, const char *name, const struct rev_objref *ref)
{
	struct stat want, got;
	struct err ignored = ERR_INIT;
	int r = fstatat(dfd, name, &got, AT_SYMLINK_NOFOLLOW);
	if (!ref->present)
		return r < 0 && errno == ENOENT;
	return r == 0 && object_stat(s, ref, &want, &ignored) == 0 && want.st_dev == got.st_dev &&
	       want.st_ino == got.st_ino;
}

/* boot/<name> already holds exactly what the revision needs. */
static bool placed_same(struct storage *s, int bootfd, const char *name, const struct revision *r,
			const char *env, size_t envlen)
{
	_cleanup_close_ int dfd = openat(bootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0 || !same_link(s, dfd, "vmlinuz", &r->bsp.kernel) ||
	    !same_link(s, dfd, "initrd.img", &r->bsp.initrd))
		return false;
	_cleanup_free_ char *got = NULL;
	size_t len;
	struct err ignored = ERR_INIT;
	return file_read_all(dfd, CMDLINE_FILE, 64 * 1024, &got, &len, &ignored) == 0 &&
	       len == envlen && memcmp(got, env, len) == 0;
}

/* ---------------- placing ---------------- */

static int link_object(struct storage *s, const struct rev_objref *ref, int dfd,
		       const char *name, const char *field, struct err *e)
{
	if (!ref->present)
		return 0;
	char path[4096];
	if (storage_object_path(s, &ref->digest, path, sizeof(path)) < 0)
		return err_field(e, ENAMETOOLONG, field, "object path too long");
	if (linkat(AT_FDCWD, path, dfd, name, 0) < 0)
		return err_field(e, errno, field, "link %s to %s: %s%s", path, name, strerror(errno),
				 errno == EXDEV ? " (boot/ must be on the store's filesystem)" : "");
	return 0;
}

/* tmp/<stage>/ with the links and cmdline.env, synced. */
static int stage_fill(struct storage *s, const char *stage, const struct revision *r,
		      const char *env, size_t envlen, struct err *e)
{
	int root = storage_root_fd(s);
	int ret = storage_mkdir_durable(root, stage, 0755, e);
	if (ret < 0)
		return ret;
	_cleanup_close_ int dfd = openat(root, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open %s: %s", stage, strerror(errno));
	if ((ret = link_object(s, &r->bsp.kernel, dfd, "vmlinuz", "bsp.kernel", e)) < 0 ||
	    (ret = link_object(s, &r->bsp.initrd, dfd, "initrd.img", "bsp.initrd", e)) < 0 ||
	    (ret = storage_write_durable(dfd, CMDLINE_FILE, env, envlen, 0644, e)) < 0)
		return ret;
	return storage_fsync(dfd, stage, e); /* the links' directory entries */
}

/* Not durable: once out of boot/ (or never in it), a directory is garbage. */
static void tmp_remove(struct storage *s, const char *rel)
{
	char abs[4096];
	struct err e = ERR_INIT;
	if (str_fmt(abs, sizeof(abs), "%s/%s", storage_root_path(s), rel) == 0 &&
	    storage_rmtree(abs, &e) < 0)
		log_warn("%s (removed next time)", e.msg);
}

/* boot/<name> out of the way: one durable rename into tmp/, then removed. */
static int bsp_unplace(struct storage *s, int bootfd, const char *name, struct err *e)
{
	char gone[64];
	if (str_fmt(gone, sizeof(gone), "tmp/bsp-gone-%s-%d", name, (int)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "boot/%s: name too long", name);
	tmp_remove(s, gone);
	int r = storage_rename_durable(bootfd, name, storage_root_fd(s), gone, e);
	if (r == -ENOENT) {
		err_clear(e);
		return 0;
	}
	if (r < 0)
		return err_prefix(e, "remove boot/%s", name);
	tmp_remove(s, gone);
	return 0;
}

/* boot/, created (durably) only when missing and asked for. */
static int open_boot(struct storage *s, bool create, int *out, struct err *e)
{
	int root = storage_root_fd(s);
	*out = openat(root, BSP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*out < 0 && errno == ENOENT && create) {
		int r = storage_mkdir_durable(root, BSP_DIR, 0755, e);
		if (r < 0)
			return r;
		*out = openat(root, BSP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (*out < 0)
		return err_set(e, errno, "open %s/: %s", BSP_DIR, strerror(errno));
	return 0;
}

static int bsp_place(struct storage *s, int bootfd, const struct revision *r, const char *name,
		     struct err *e)
{
	_cleanup_free_ char *env = NULL;
	size_t envlen = 0;
	int ret = cmdline_env(r, &env, &envlen, e);
	if (ret < 0 || placed_same(s, bootfd, name, r, env, envlen))
		return ret;
	char stage[64];
	if (str_fmt(stage, sizeof(stage), "tmp/bsp-%s-%d", name, (int)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	tmp_remove(s, stage);
	ret = stage_fill(s, stage, r, env, envlen, e);
	if (ret >= 0)
		ret = bsp_unplace(s, bootfd, name, e); /* what was there is not what we need */
	if (ret >= 0)
		ret = storage_rename_durable(storage_root_fd(s), stage, bootfd, name, e);
	if (ret < 0)
		tmp_remove(s, stage);
	return ret;
}

int trails_bsp_place(struct storage *s, const struct revision *r, struct err *e)
{
	if (!r->bsp.present)
		return 0;
	char name[24];
	if (str_fmt(name, sizeof(name), "%llu", (unsigned long long)r->number) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	_cleanup_close_ int bootfd = -1;
	int ret = open_boot(s, true, &bootfd, e);
	if (ret >= 0)
		ret = bsp_place(s, bootfd, r, name, e);
	if (ret >= 0) /* before anything can name this revision to the bootloader */
		ret = storage_checkpoint(bootfd, e);
	if (ret < 0)
		return err_prefix(e, "boot files of revision %s", name);
	struct err se = ERR_INIT;
	if (trails_bsp_sweep(s, r->number, &se) < 0)
		log_warn("%s", se.msg);
	return 0;
}

int trails_bsp_remove(struct storage *s, uint64_t rev, struct err *e)
{
	char name[24];
	if (str_fmt(name, sizeof(name), "%llu", (unsigned long long)rev) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	_cleanup_close_ int bootfd = -1;
	int r = open_boot(s, false, &bootfd, e);
	if (r == -ENOENT) {
		err_clear(e);
		return 0;
	}
	return r < 0 ? r : bsp_unplace(s, bootfd, name, e);
}

/* ---------------- sweeping ---------------- */

static bool installed(struct storage *s, const char *name)
{
	char path[48];
	struct stat st;
	return str_fmt(path, sizeof(path), "trails/%s", name) == 0 &&
	       (fstatat(storage_root_fd(s), path, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		errno != ENOENT);
}

/* Leftovers of an interrupted placement or removal: tmp/bsp-*. */
static void sweep_tmp(struct storage *s)
{
	_cleanup_close_ int tfd = openat(storage_root_fd(s), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = tfd < 0 ? NULL : fdopendir(tfd);
	if (d)
		tfd = -1; /* the DIR owns it now */
	char rel[300];
	for (struct dirent *de; d && (de = readdir(d));)
		if (strncmp(de->d_name, "bsp-", 4) == 0 &&
		    str_fmt(rel, sizeof(rel), "tmp/%s", de->d_name) == 0)
			tmp_remove(s, rel);
}

int trails_bsp_sweep(struct storage *s, uint64_t except, struct err *e)
{
	_cleanup_close_ int bootfd = -1;
	int r = open_boot(s, false, &bootfd, e);
	if (r == -ENOENT) {
		err_clear(e);
		return 0;
	}
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = fdopendir(fcntl(bootfd, F_DUPFD_CLOEXEC, 3));
	if (!d)
		return err_set(e, errno, "read %s/: %s", BSP_DIR, strerror(errno));
	char keep[24];
	if (str_fmt(keep, sizeof(keep), "%llu", (unsigned long long)except) < 0)
		keep[0] = '\0';
	for (struct dirent *de; (de = readdir(d));) {
		uint64_t n;
		if (!trails_rev_dirname(de->d_name, &n) || strcmp(de->d_name, keep) == 0 ||
		    installed(s, de->d_name))
			continue;
		log_info("boot/%s: its revision is not installed: removed", de->d_name);
		if ((r = bsp_unplace(s, bootfd, de->d_name, e)) < 0)
			return r;
	}
	sweep_tmp(s);
	return 0;
}
