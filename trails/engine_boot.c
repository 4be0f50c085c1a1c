/* trails/engine_boot.c — trails_boot: read what is on the storage, finish
 * what a crash interrupted, settle the boot state, start what must run
 * (trails/UPDATE.md, "Boot").
 *
 * Every interrupted step has exactly one way forward:
 *   trails/<n> says RECEIVED/DOWNLOADING   the rename happened: INSTALLED
 *   offers/<n> without status.json         an offer cut short: removed
 *   offers/<n> DOWNLOADING, nothing missing the last object arrived: placed
 *   TESTING and committed = n              the commit happened: DONE
 *   TESTING and not the try                cut before its try: FAILED "interrupted"
 *   the try TESTING (consumed, not done)   FAILED "interrupted", committed runs */
#define LOG_MODULE "trails"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

/* A revision number as install writes it (a directory name, cairn.rev=). */
static bool parse_number(const char *s, uint64_t *out)
{
	return trails_rev_dirname(s, out) && *out <= REV_MAX_NUMBER;
}

static void scan_trail(struct trails *tr, uint64_t n)
{
	struct tr_rec *rec = tr_rec_add(tr, n);
	if (!rec) {
		log_warn("trails/%llu: too many revisions on record, ignored", (unsigned long long)n);
		return;
	}
	rec->installed = true;
	char dir[48];
	struct err e = ERR_INIT;
	int r = tr_rec_dir(rec, dir, sizeof(dir));
	if (r >= 0)
		r = tr_status_load(tr, dir, &tr->st, &e);
	if (r >= 0 && tr->st.revision != n)
		r = err_set(&e, EINVAL, "%s/%s: says revision %llu", dir, TR_STATUS,
			    (unsigned long long)tr->st.revision);
	if (r >= 0) {
		tr_rec_from_status(rec, &tr->st);
		return;
	}
	if (r != -ENOENT)
		log_warn("%s", e.msg);
	/* installed by cairn-pack, or unreadable: what the boot state says */
	memset(rec->times, 0, sizeof(rec->times));
	rec->state = n == tr->bs.committed ? REV_DONE : REV_INSTALLED;
}

static void offer_remove(struct trails *tr, uint64_t n)
{
	char abs[PATH_MAX];
	struct err e = ERR_INIT;
	if (str_fmt(abs, sizeof(abs), "%s/%s/%llu", storage_root_path(tr->cfg.storage), TR_OFFERS,
		    (unsigned long long)n) < 0 ||
	    storage_rmtree(abs, &e) < 0)
		log_warn("offers/%llu: %s", (unsigned long long)n, e.msg);
}

static void scan_offer(struct trails *tr, uint64_t n)
{
	if (tr_rec_find(tr, n))
		return; /* installed: trails/<n>/ is the record */
	char dir[48];
	struct err e = ERR_INIT;
	int r = str_fmt(dir, sizeof(dir), "%s/%llu", TR_OFFERS, (unsigned long long)n);
	if (r >= 0)
		r = tr_status_load(tr, dir, &tr->st, &e);
	if (r == -ENOENT) {
		log_info("%s: an offer cut short, removed", dir);
		offer_remove(tr, n);
		return;
	}
	if (r < 0 || tr->st.revision != n || tr->st.state == REV_RECEIVED) {
		log_warn("%s: unusable record, ignored: %s", dir, r < 0 ? e.msg : "bad content");
		return;
	}
	struct tr_rec *rec = tr_rec_add(tr, n);
	if (!rec)
		return;
	tr_rec_from_status(rec, &tr->st);
	const char *code = "";
	if (rec->state == REV_DOWNLOADING && tr_offer_reload(tr, rec, &code, &e) < 0) {
		struct err we = ERR_INIT;
		if (tr_event(tr, rec, TE_REJECT, tr_fail_set(tr, code, e.field, "%s", e.msg), &we) < 0)
			log_err("%s", we.msg);
	}
}

static int scan_dir(struct trails *tr, const char *top, void (*fn)(struct trails *, uint64_t))
{
	int fd = openat(storage_root_fd(tr->cfg.storage), top,
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t n;
		struct stat sb;
		if (!parse_number(de->d_name, &n) ||
		    fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		fn(tr, n);
	}
	return 0;
}

/* ---- what a crash left ---- */

static void recover_event(struct trails *tr, struct tr_rec *rec, enum tr_event ev,
			  const struct tr_fail *f)
{
	struct err e = ERR_INIT;
	if (tr_event(tr, rec, ev, f, &e) < 0)
		log_err("revision %llu: %s", (unsigned long long)rec->number, e.msg);
}

static void recover_one(struct trails *tr, struct tr_rec *rec)
{
	uint64_t n = rec->number, bytes;
	if (rec->installed && (rec->state == REV_RECEIVED || rec->state == REV_DOWNLOADING))
		recover_event(tr, rec, TE_PLACED, NULL);
	else if (rec->installed && rec->state == REV_TESTING && n == tr->bs.committed)
		recover_event(tr, rec, TE_COMMIT, NULL);
	else if (rec->installed && rec->state == REV_TESTING && n != tr->bs.try_rev)
		recover_event(tr, rec, TE_FAIL,
			      tr_fail_set(tr, "interrupted", "",
					  "cairn restarted while revision %llu was being tried "
					  "(reboot, power cut or crash)",
					  (unsigned long long)n));
	else if (!rec->installed && rec->state == REV_DOWNLOADING && rec->doc &&
		 tr_missing(tr, rec->doc, NULL, 0, &bytes) == 0) {
		struct err e = ERR_INIT;
		if (tr_place(tr, rec, &e) < 0)
			log_err("%s", e.msg);
	}
}

/* ---- the boot decision ---- */

/* Back to the committed revision: the try is over. */
static int settle(struct trails *tr, struct err *e)
{
	struct err we = ERR_INIT;
	if (tr_boot_write(tr, tr->bs.committed, 0, 0, &we) < 0)
		log_err("%s", we.msg);
	return tr_start_committed(tr, e);
}

static int fail_try(struct trails *tr, struct tr_rec *rec, const char *code, const char *msg,
		    struct err *e)
{
	if (rec) {
		log_warn("revision %llu: %s", (unsigned long long)rec->number, msg);
		recover_event(tr, rec, TE_FAIL, tr_fail_set(tr, code, "", "%s", msg));
	}
	int r = settle(tr, e);
	tr_gc_auto(tr, "failed try");
	return r;
}

/* The try booted for the first time cannot run. "file": the committed
 * revision starts in this boot. A bootloader booted the try's kernel: the
 * committed revision must not run on it (never a mix), so the boot state
 * goes back to it and the device reboots. */
static int boot_try_abort(struct trails *tr, const char *why, struct err *e)
{
	struct err we = ERR_INIT;
	if (tr->benv_self)
		return settle(tr, e);
	if (tr_boot_write(tr, tr->bs.committed, 0, 0, &we) < 0)
		log_err("%s", we.msg);
	if (tr->cfg.hooks.reboot)
		tr->cfg.hooks.reboot(tr->cfg.hooks.data, why);
	return 0;
}

/* Run the try booted for the first time; its status says TESTING before
 * the try is consumed (by cairn itself for "file"). */
static int boot_try(struct trails *tr, struct tr_rec *rec, struct err *e)
{
	uint64_t n = rec->number;
	struct err we = ERR_INIT;
	if (tr_event(tr, rec, TE_TRY, NULL, &we) < 0) {
		log_err("revision %llu: cannot be tried: %s", (unsigned long long)n, we.msg);
		recover_event(tr, rec, TE_FAIL, tr_fail_set(tr, "storage", "", "%s", we.msg));
		return boot_try_abort(tr, "the try could not be started", e);
	}
	if (tr->benv_self && tr_boot_write(tr, tr->bs.committed, n, 0, &we) < 0)
		return fail_try(tr, rec, "storage", we.msg, e);
	struct revision *r = NULL;
	int ret = trails_load(tr->cfg.storage, n, tr->cfg.trust, &r, &we);
	if (ret < 0) {
		recover_event(tr, rec, TE_FAIL, tr_fail_set(tr, tr_load_code(ret), we.field, "%s", we.msg));
		return boot_try_abort(tr, "the try could not be loaded", e);
	}
	return tr_try_start(tr, rec, r, true, e);
}

/* cairn.rev=N on the kernel command line: the revision a bootloader booted
 * (trails/BOOT.md); 0 when it does not say. */
static uint64_t booted_rev(void)
{
	/* /proc files report size 0: read until EOF, not by stat */
	char buf[4097];
	_cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd < 0 ? -1 : read_all(fd, buf, sizeof(buf) - 1);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	uint64_t n = 0;
	for (char *save = NULL, *w = strtok_r(buf, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save))
		if (strncmp(w, "cairn.rev=", 10) == 0 && !parse_number(w + 10, &n))
			n = 0;
	return n;
}

static int boot_decide(struct trails *tr, struct err *e)
{
	uint64_t t = tr->bs.try_rev;
	if (t == 0)
		return tr_start_committed(tr, e);
	struct tr_rec *rec = tr_rec_find(tr, t);
	char msg[TR_MSG_MAX];
	if (!rec || !rec->installed) {
		snprintf(msg, sizeof(msg), "the try %llu is not installed", (unsigned long long)t);
		return fail_try(tr, rec, "load", msg, e);
	}
	bool taken = rec->state == REV_TESTING || rec->state == REV_FAILED;
	uint64_t booted = tr->benv_self ? 0 : booted_rev();
	bool elsewhere = booted && booted != t;
	if (taken || (tr->bs.tries == 0 && (tr->benv_self || elsewhere))) {
		snprintf(msg, sizeof(msg),
			 "cairn restarted while revision %llu was being tried (reboot, power cut "
			 "or crash)", (unsigned long long)t);
		return fail_try(tr, rec, "interrupted", msg, e);
	}
	if (!tr->benv_self && (tr->bs.tries > 0 || elsewhere)) {
		snprintf(msg, sizeof(msg), "the bootloader (%s) did not boot the try %llu",
			 bootenv_name(tr->benv), (unsigned long long)t);
		return fail_try(tr, rec, "not-booted", msg, e);
	}
	return boot_try(tr, rec, e);
}

static int boot(struct trails *tr, struct err *e)
{
	int r = bootenv_read(tr->benv, &tr->bs, e);
	if (r < 0) {
		err_prefix(e, "boot state (%s)", bootenv_name(tr->benv));
		tr_keep_boot_error(tr, 0, e);
		return r;
	}
	log_info("boot state (%s): committed %llu, try %llu, tries %u", bootenv_name(tr->benv),
		 (unsigned long long)tr->bs.committed, (unsigned long long)tr->bs.try_rev,
		 tr->bs.tries);
	if ((r = scan_dir(tr, TR_TRAILS, scan_trail)) < 0 ||
	    (r = scan_dir(tr, TR_OFFERS, scan_offer)) < 0)
		return err_set(e, -r, "reading the trails: %s", strerror(-r));
	for (size_t i = 0; i < tr->nrecs; i++)
		recover_one(tr, &tr->recs[i]);
	return boot_decide(tr, e);
}

int trails_boot(struct trails *tr, struct err *e)
{
	int r = boot(tr, e);
	storage_boot_memo(false); /* from now on every verify hashes */
	return r;
}
