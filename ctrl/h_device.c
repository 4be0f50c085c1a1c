/* ctrl/h_device.c — device-wide handlers: user metadata (read by every
 * container, written by admin and mgmt), device metadata (written by cairn
 * itself, read-only here), and the commands (reboot, poweroff, gc,
 * poll-hub).
 *
 * Metadata lives in <storage>/meta/{user,device}/<key>: one file per key,
 * named by a validated cairn name, written with storage_write_durable. The
 * directories are opened component by component with O_NOFOLLOW. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../storage/storage.h"
#include "../trails/trails.h"

#define META_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* ---------------- metadata files ---------------- */

/* fd of <storage>/meta/<kind>; -ENOENT if it does not exist and !create. */
static int meta_dir(struct ctrl *c, const char *kind, bool create, struct err *e)
{
	int root = storage_root_fd(c->storage);
	char rel[32];
	if (str_fmt(rel, sizeof(rel), "meta/%s", kind) < 0)
		return err_set(e, EINVAL, "meta/%s: name too long", kind);
	int r;
	if (create && ((r = storage_mkdir_durable(root, "meta", 0755, e)) < 0 ||
		       (r = storage_mkdir_durable(root, rel, 0755, e)) < 0))
		return r;
	_cleanup_close_ int meta = openat(root, "meta", META_DIR_FLAGS);
	int fd = meta < 0 ? -1 : openat(meta, kind, META_DIR_FLAGS);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", rel, strerror(errno));
	return fd;
}

/* Read key `name` in dirfd: at most CTRL_META_VALUE_MAX bytes, a regular
 * file. -ENOENT if absent, -EFBIG if larger. */
static int meta_read(int dirfd, const char *name, char *buf, size_t *len, struct err *e)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set(e, errno, "%s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(e, EINVAL, "%s: not a regular file", name);
	if (st.st_size > CTRL_META_VALUE_MAX)
		return err_set(e, EFBIG, "%s: larger than %d bytes", name, CTRL_META_VALUE_MAX);
	ssize_t n = read_all(fd, buf, CTRL_META_VALUE_MAX);
	if (n < 0)
		return err_set(e, (int)-n, "%s: read: %s", name, strerror((int)-n));
	*len = (size_t)n;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The keys in dirfd (valid names, regular files or not), sorted; at most
 * max, *more set if there were others. */
static int meta_keys(int dirfd, char (*keys)[NAME_MAX_LEN + 1], size_t max, size_t *n,
		     bool *more, struct err *e)
{
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	_cleanup_closedir_ DIR *d = dup < 0 ? NULL : fdopendir(dup);
	if (!d) {
		if (dup >= 0)
			close(dup);
		return err_set(e, errno, "meta: %s", strerror(errno));
	}
	*n = 0;
	*more = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!name_valid(de->d_name))
			continue; /* ".", "..", temp files of durable writes */
		if (*n == max) {
			*more = true;
			continue;
		}
		memcpy(keys[(*n)++], de->d_name, strlen(de->d_name) + 1);
	}
	qsort(keys, *n, sizeof(*keys), name_cmp);
	return 0;
}

static bool meta_ready(struct ctrl *c, struct ctrl_resp *rs)
{
	if (c->storage)
		return true;
	ctrl_resp_error(rs, 503, "", "no storage: metadata is not available");
	return false;
}

/* {"key": "value", ...} of every key of meta/<kind>. */
static void meta_list(struct ctrl *c, const char *kind, struct ctrl_resp *rs)
{
	static char keys[CTRL_META_MAX_KEYS][NAME_MAX_LEN + 1];
	static char val[CTRL_META_VALUE_MAX];
	struct err e = ERR_INIT;
	size_t n = 0, len;
	bool more = false;
	int r = meta_dir(c, kind, false, &e);
	_cleanup_close_ int fd = r;
	if (r >= 0)
		r = meta_keys(fd, keys, CTRL_META_MAX_KEYS, &n, &more, &e);
	if (r < 0 && r != -ENOENT) {
		ctrl_resp_err(rs, 500, &e);
		return;
	}
	if (more)
		log_warn("meta/%s: more than %d keys, listing the first", kind, CTRL_META_MAX_KEYS);
	jw_obj_open(&rs->w);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (meta_read(fd, keys[i], val, &len, &e) < 0) {
			log_warn("meta/%s: %s", kind, e.msg);
			continue;
		}
		jw_key(&rs->w, keys[i]);
		jw_strn(&rs->w, val, len);
	}
	jw_obj_close(&rs->w);
}

static void meta_get(struct ctrl *c, const char *kind, const struct ctrl_req *rq,
		     struct ctrl_resp *rs)
{
	static char val[CTRL_META_VALUE_MAX];
	if (!ctrl_param_name(rq, 0, "key", rs) || !meta_ready(c, rs))
		return;
	const char *key = rq->params[0];
	struct err e = ERR_INIT;
	size_t len;
	_cleanup_close_ int fd = meta_dir(c, kind, false, &e);
	int r = fd < 0 ? fd : meta_read(fd, key, val, &len, &e);
	if (r == -ENOENT) {
		ctrl_resp_error(rs, 404, "key", "no %s metadata '%s'", kind, key);
		return;
	}
	if (r < 0) {
		ctrl_resp_err(rs, 500, &e);
		return;
	}
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "key", key);
	jw_key(&rs->w, "value");
	jw_strn(&rs->w, val, len);
	jw_obj_close(&rs->w);
}

void ctrl_h_meta_list(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	if (meta_ready(c, rs))
		meta_list(c, "user", rs);
}

void ctrl_h_meta_get(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	meta_get(c, "user", rq, rs);
}

void ctrl_h_device_list(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	(void)rq;
	if (meta_ready(c, rs))
		meta_list(c, "device", rs);
}

void ctrl_h_device_get(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	meta_get(c, "device", rq, rs);
}

/* The value of a PUT body {"value": "..."}: unescaped into val. */
static bool value_parse(const struct ctrl_req *rq, char *val, size_t *len, struct ctrl_resp *rs)
{
	jsmntok_t tok[8];
	struct jp p;
	struct err e = ERR_INIT;
	if (jp_parse(&p, rq->body, rq->body_len, tok, 8, &e) < 0) {
		ctrl_resp_error(rs, 400, "", "body is not valid JSON: %s", e.msg);
		return false;
	}
	if (!jp_is(&p, 0, JSMN_OBJECT)) {
		ctrl_resp_error(rs, 400, "", "body must be a JSON object");
		return false;
	}
	int v = jp_get(&p, 0, "value");
	if (p.tok[0].size != 1 || v < 0) {
		ctrl_resp_error(rs, 400, v < 0 ? "value" : "", v < 0 ? "required" : "only \"value\" is allowed");
		return false;
	}
	if (!jp_is(&p, v, JSMN_STRING)) {
		ctrl_resp_error(rs, 400, "value", "must be a string");
		return false;
	}
	int r = jp_str(&p, v, val, CTRL_META_VALUE_MAX + 1, len);
	if (r == -ENAMETOOLONG)
		ctrl_resp_error(rs, 413, "value", "longer than %d bytes", CTRL_META_VALUE_MAX);
	else if (r < 0)
		ctrl_resp_error(rs, 400, "value", "not a valid string (bad escape, NUL or invalid UTF-8)");
	return r == 0;
}

/* Would storing `len` bytes under `key` stay within the caps? */
static bool meta_fits(int fd, const char *key, size_t len, struct ctrl_resp *rs)
{
	static char keys[CTRL_META_MAX_KEYS + 1][NAME_MAX_LEN + 1];
	struct err e = ERR_INIT;
	size_t n, total = len, count = 1;
	bool more;
	if (meta_keys(fd, keys, CTRL_META_MAX_KEYS + 1, &n, &more, &e) < 0) {
		ctrl_resp_err(rs, 500, &e);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (strcmp(keys[i], key) == 0 || fstatat(fd, keys[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		count++;
		total += (size_t)st.st_size;
	}
	if (count <= CTRL_META_MAX_KEYS && total <= CTRL_META_TOTAL_MAX && !more)
		return true;
	ctrl_resp_error(rs, 507, "key",
			"user metadata full: %zu keys (at most %d), %zu bytes (at most %d)", count,
			CTRL_META_MAX_KEYS, total, CTRL_META_TOTAL_MAX);
	return false;
}

void ctrl_h_meta_put(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	static char val[CTRL_META_VALUE_MAX + 1];
	size_t len;
	if (!ctrl_param_name(rq, 0, "key", rs) || !meta_ready(c, rs) ||
	    !value_parse(rq, val, &len, rs))
		return;
	const char *key = rq->params[0];
	struct err e = ERR_INIT;
	_cleanup_close_ int fd = meta_dir(c, "user", true, &e);
	int r = fd;
	if (fd >= 0 && !meta_fits(fd, key, len, rs))
		return;
	if (fd >= 0)
		r = storage_write_durable(fd, key, val, len, 0644, &e);
	if (r < 0) {
		ctrl_resp_err(rs, r == -ENOSPC || r == -EDQUOT ? 507 : 500, &e);
		return;
	}
	char who[64];
	log_info("%s: user metadata %s set (%zu bytes)",
		 ctrl_caller_label(rq->caller, who, sizeof(who)), key, len);
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "key", key);
	jw_key(&rs->w, "value");
	jw_strn(&rs->w, val, len);
	jw_obj_close(&rs->w);
}

void ctrl_h_meta_delete(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (!ctrl_param_name(rq, 0, "key", rs) || !meta_ready(c, rs))
		return;
	const char *key = rq->params[0];
	struct err e = ERR_INIT;
	struct stat st;
	_cleanup_close_ int fd = meta_dir(c, "user", false, &e);
	if (fd < 0 && fd != -ENOENT) {
		ctrl_resp_err(rs, 500, &e);
		return;
	}
	if (fd < 0 || fstatat(fd, key, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		ctrl_resp_error(rs, 404, "key", "no user metadata '%s'", key);
		return;
	}
	int r = storage_unlink_durable(fd, key, 0, &e);
	if (r < 0) {
		ctrl_resp_err(rs, 500, &e);
		return;
	}
	char who[64];
	log_info("%s: user metadata %s removed", ctrl_caller_label(rq->caller, who, sizeof(who)),
		 key);
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "key", key);
	jw_kv_bool(&rs->w, "deleted", true);
	jw_obj_close(&rs->w);
}

/* ---------------- commands ---------------- */

/* reboot and poweroff run from the loop, after this request's answer is
 * queued: the orchestrator may tear a lot down. */
static void cmd_fire(struct loop_timer *t)
{
	struct ctrl *c = t->data;
	void (*fn)(void *, const char *) = c->cmd;
	c->cmd = NULL;
	if (fn)
		fn(c->hooks.data, c->cmd_why);
}

static void command(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs,
		    void (*fn)(void *, const char *), const char *what)
{
	if (!fn || !c->loop) {
		ctrl_resp_error(rs, 503, "", "%s is not available on this device", what);
		return;
	}
	char who[64];
	const char *label = ctrl_caller_label(rq->caller, who, sizeof(who));
	if (str_fmt(c->cmd_why, sizeof(c->cmd_why), "%s asked by %s (control API)", what, label) < 0)
		c->cmd_why[0] = '\0';
	log_info("%s", c->cmd_why);
	c->cmd = fn;
	c->cmd_timer.cb = cmd_fire; /* (re-)armed in place: it may be armed already */
	c->cmd_timer.data = c;
	loop_timer_arm(c->loop, &c->cmd_timer, now_ns());
	rs->status = 202;
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "command", what);
	jw_obj_close(&rs->w);
}

void ctrl_h_reboot(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	command(c, rq, rs, c->hooks.reboot, "reboot");
}

void ctrl_h_poweroff(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	command(c, rq, rs, c->hooks.poweroff, "poweroff");
}

void ctrl_h_gc(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (!c->tr) {
		ctrl_resp_error(rs, 503, "", "the update engine is not running");
		return;
	}
	uint64_t freed = 0;
	struct err e = ERR_INIT;
	int r = trails_gc(c->tr, &freed, &e);
	if (r < 0) {
		ctrl_resp_err(rs, r == -EBUSY ? 409 : 500, &e);
		return;
	}
	char who[64];
	log_info("%s: gc freed %llu bytes", ctrl_caller_label(rq->caller, who, sizeof(who)),
		 (unsigned long long)freed);
	jw_obj_open(&rs->w);
	jw_kv_uint(&rs->w, "freed", freed);
	jw_obj_close(&rs->w);
}

/* Runs at once: the hub client only arms a poll (its network work is in a
 * helper process), so nothing is torn down under this request. */
void ctrl_h_poll_hub(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	if (!c->hooks.poll_hub) {
		ctrl_resp_error(rs, 501, "", "no hub configured: this cairn has no hub client");
		return;
	}
	struct err e = ERR_INIT;
	int r = c->hooks.poll_hub(c->hooks.data, &e);
	if (r < 0) {
		ctrl_resp_err(rs, r == -ENODEV ? 501 : 503, &e);
		return;
	}
	char who[64];
	log_info("poll-hub asked by %s (control API)", ctrl_caller_label(rq->caller, who, sizeof(who)));
	rs->status = 202;
	jw_obj_open(&rs->w);
	jw_kv_str(&rs->w, "command", "poll-hub");
	jw_obj_close(&rs->w);
}
