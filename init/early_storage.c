/* init/early_storage.c — finding and mounting the storage, then the booted
 * revision's modules and firmware.
 *
 * cairn.storage=/dev/NAME waits for that block device; cairn.storage=LABEL=L
 * reads the ext2/3/4 superblock of every block device the kernel lists in
 * /sys/class/block (no blkid, no udev). Both poll until the device shows up
 * or cairn.storage_wait= seconds pass. See init/README.md "Early steps". */
#define LOG_MODULE "early"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../storage/storage.h"
#include "../trails/trails.h"
#include "init.h"

#define EXT_SB_OFFSET 1024
#define EXT_MAGIC_AT 0x38 /* le16 s_magic */
#define EXT_MAGIC 0xEF53
#define EXT_LABEL_AT 0x78 /* char s_volume_name[16] */
#define POLL_MS 50

int early_ext4_label(int fd, char out[17], struct err *e)
{
	unsigned char sb[256];
	ssize_t n = pread(fd, sb, sizeof(sb), EXT_SB_OFFSET);
	if (n < 0)
		return err_set(e, errno, "read superblock: %s", strerror(errno));
	if ((size_t)n < sizeof(sb) || (sb[EXT_MAGIC_AT] | sb[EXT_MAGIC_AT + 1] << 8) != EXT_MAGIC)
		return 0;
	size_t len = strnlen((const char *)sb + EXT_LABEL_AT, 16);
	memcpy(out, sb + EXT_LABEL_AT, len);
	out[len] = '\0';
	return 1;
}

/* ---------------- finding the device ---------------- */

static bool is_block(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* /dev/<name> of a /sys/class/block entry ('!' stands for '/'). */
static int dev_of_sysname(const char *name, char *dev, size_t cap)
{
	if (str_fmt(dev, cap, "/dev/%s", name) < 0)
		return -ENAMETOOLONG;
	for (char *p = dev; *p; p++)
		if (*p == '!')
			*p = '/';
	return 0;
}

static bool has_label(const char *dev, const char *label)
{
	char got[17];
	struct err ignored = ERR_INIT;
	_cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	return fd >= 0 && early_ext4_label(fd, got, &ignored) == 1 && strcmp(got, label) == 0;
}

/* 1 with the device in dev, 0 not (yet) there, -EEXIST if two have the label. */
static int find_label(const char *label, char *dev, size_t cap, struct err *e)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/class/block");
	if (!d)
		return 0;
	char path[128];
	int found = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.' || dev_of_sysname(de->d_name, path, sizeof(path)) < 0 ||
		    !is_block(path) || !has_label(path, label))
			continue;
		if (found)
			return err_set(e, EEXIST, "LABEL=%s: two devices have it: %s and %s", label,
				       dev, path);
		if (str_fmt(dev, cap, "%s", path) < 0)
			continue;
		found = 1;
	}
	return found;
}

static int find_device(const char *spec, char *dev, size_t cap, struct err *e)
{
	if (strncmp(spec, "LABEL=", 6) == 0)
		return find_label(spec + 6, dev, cap, e);
	if (!is_block(spec))
		return 0;
	return str_fmt(dev, cap, "%s", spec) < 0 ? err_set(e, ENAMETOOLONG, "%s: too long", spec)
						  : 1;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int wait_device(const char *spec, unsigned wait_s, char *dev, size_t cap, struct err *e)
{
	uint64_t start = now_ns(), end = start + (uint64_t)wait_s * 1000000000u;
	for (;;) {
		int r = find_device(spec, dev, cap, e);
		if (r != 0)
			return r < 0 ? r : 0;
		if (now_ns() >= end)
			return err_set(e, ENODEV,
				       "cairn.storage=%s: no such device after %u s (its driver in "
				       "cairn.modules=? cairn.storage_wait= to wait longer)",
				       spec, wait_s);
		sleep_ms(POLL_MS);
	}
}

int early_storage(const struct early_cmdline *c, struct err *e)
{
	char dev[128];
	uint64_t t0 = now_ns();
	int r = wait_device(c->storage, c->storage_wait_s, dev, sizeof(dev), e);
	if (r < 0)
		return r;
	if (mkdir(EARLY_STORAGE_MOUNT, 0755) < 0 && errno != EEXIST)
		return err_set(e, errno, "mkdir %s: %s", EARLY_STORAGE_MOUNT, strerror(errno));
	if (mount(dev, EARLY_STORAGE_MOUNT, c->fstype, MS_NODEV | MS_NOSUID, NULL) < 0)
		return err_set(e, errno, "mount %s (%s) on %s: %s%s", dev, c->fstype,
			       EARLY_STORAGE_MOUNT, strerror(errno),
			       errno == ENODEV ? " (the kernel lacks this filesystem: cairn.modules=?)"
					       : "");
	log_info("storage %s (%s) mounted on %s after %llu ms", dev, c->fstype,
		 EARLY_STORAGE_MOUNT, (unsigned long long)((now_ns() - t0) / 1000000u));
	return 0;
}

/* ---------------- the booted revision's modules and firmware ---------------- */

DEFINE_FREEP(struct revision, revision_free)
DEFINE_FREEP(struct trust, trust_free)
DEFINE_FREEP(struct storage, storage_close)

/* trails/<rev>/revision.json as the orchestrator will load it
 * (trails_load_doc), its signature checked with the trust roots and the
 * signing keys they vouch for (keys/ on the storage; unreadable: the roots
 * alone, logged). */
static int bsp_revision(struct storage *s, const char *trustdir, uint64_t rev,
			struct revision **out, struct err *e)
{
	_cleanup_(trust_freep) struct trust *t = NULL;
	int r = trust_load(trustdir, &t, e);
	if (r < 0)
		return r;
	struct err ke = ERR_INIT;
	if (keys_load(s, t, &ke) < 0)
		log_warn("signing keys: %s (only the roots count)", ke.msg);
	return trails_load_doc(s, rev, t, out, e);
}

static int bsp_mount(struct storage *s, const struct rev_objref *ref, const char *field,
		     const char *target, struct err *e)
{
	if (!ref->present) {
		log_info("%s: none in this revision", field);
		return 0;
	}
	char path[4096];
	uint64_t t0 = now_ns();
	int r = storage_object_verify(s, &ref->digest, ref->size, e);
	if (r >= 0 && storage_object_path(s, &ref->digest, path, sizeof(path)) < 0)
		r = err_set(e, ENAMETOOLONG, "object path too long");
	if (r >= 0)
		r = storage_mkdir_p(target, 0755, e);
	if (r >= 0)
		r = storage_mount_squashfs(path, target, e);
	if (r < 0)
		return err_prefix(e, "%s", field);
	log_info("%s (%llu bytes) verified and mounted on %s in %llu ms", field,
		 (unsigned long long)ref->size, target,
		 (unsigned long long)((now_ns() - t0) / 1000000u));
	return 0;
}

/* The bootloader ran these bytes: hashing them now cannot take that back.
 * They were hashed when the revision was installed. */
static void bsp_vouch(struct storage *s, const struct rev_objref *ref, const char *field)
{
	struct err e = ERR_INIT;
	if (!ref->present)
		return;
	if (storage_object_vouch(s, &ref->digest, ref->size, &e) < 0)
		log_warn("%s: %s", field, e.msg); /* the engine's load reports it */
	else
		log_info("%s: booted by the bootloader: not hashed again", field);
}

/* Best effort: every failure is logged, boot goes on (the engine decides
 * whether the revision can run; trails_load checks it all again). */
void early_bsp_mounts(uint64_t rev, const char *storage_dir, const char *trustdir)
{
	struct err e = ERR_INIT;
	if (!rev) {
		log_warn("no cairn.rev= on the kernel command line: no BSP modules or firmware mounted");
		return;
	}
	_cleanup_(storage_closep) struct storage *s = NULL;
	_cleanup_(revision_freep) struct revision *r = NULL;
	if (storage_open(storage_dir, &s, &e) < 0 || bsp_revision(s, trustdir, rev, &r, &e) < 0) {
		log_err("BSP of revision %llu: %s", (unsigned long long)rev, e.msg);
		return;
	}
	if (!r->bsp.present) {
		log_warn("revision %llu has no BSP: no modules or firmware mounted",
			 (unsigned long long)rev);
		return;
	}
	/* Objects hashed or vouched for from here on are not hashed again by the
	 * engine's load of this boot's revision (storage_boot_memo). */
	storage_boot_memo(true);
	bsp_vouch(s, &r->bsp.kernel, "bsp.kernel");
	bsp_vouch(s, &r->bsp.initrd, "bsp.initrd");
	if (bsp_mount(s, &r->bsp.modules, "bsp.modules", "/lib/modules", &e) < 0)
		log_err("revision %llu: %s", (unsigned long long)rev, e.msg);
	err_clear(&e);
	if (bsp_mount(s, &r->bsp.firmware, "bsp.firmware", "/lib/firmware", &e) < 0)
		log_err("revision %llu: %s", (unsigned long long)rev, e.msg);
}
