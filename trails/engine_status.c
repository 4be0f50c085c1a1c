/* trails/engine_status.c — status.json of a revision (trails/UPDATE.md):
 * read, update, durable write; the tail of a failing container's log.
 *
 * A status is always rewritten whole with storage_write_durable. An update
 * reads the file first and changes only the state, the times and the
 * progress: the failure on record, once there, is never replaced (a second
 * failure is only logged), so forensics survive every later write. Unknown
 * keys are ignored (a newer cairn may add some); known keys with bad values
 * make the file unreadable, and the engine then starts the record afresh. */
#define LOG_MODULE "trails"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

/* ---- writer ---- */

static void write_times(struct jw *w, const int64_t *times)
{
	jw_key(w, "times");
	jw_obj_open(w);
	for (int s = 0; s < REV_STATE_COUNT; s++)
		if (times[s])
			jw_kv_int(w, rev_state_name((enum rev_state)s), times[s]);
	jw_obj_close(w);
}

static void write_fail(struct jw *w, const struct tr_fail *f)
{
	jw_key(w, "failure");
	jw_obj_open(w);
	jw_kv_str(w, "reason", f->code);
	jw_kv_str(w, "message", f->msg);
	jw_kv_str(w, "field", f->field);
	jw_kv_str(w, "container", f->container);
	jw_kv_str(w, "goal", f->goal);
	jw_kv_int(w, "time", f->time);
	jw_key(w, "log");
	jw_arr_open(w);
	for (size_t i = 0; i < f->nlog; i++)
		jw_str(w, f->log[i]);
	jw_arr_close(w);
	jw_obj_close(w);
}

void tr_status_members(struct jw *w, const struct tr_status *st)
{
	jw_kv_uint(w, "revision", st->revision);
	jw_kv_str(w, "state", rev_state_name(st->state));
	write_times(w, st->times);
	jw_key(w, "progress");
	jw_obj_open(w);
	jw_kv_uint(w, "done", st->done);
	jw_kv_uint(w, "total", st->total);
	jw_obj_close(w);
	jw_kv_uint(w, "previous", st->previous);
	if (st->has_fail)
		write_fail(w, &st->fail);
	else {
		jw_key(w, "failure");
		jw_null(w);
	}
	jw_key(w, "earlier");
	jw_arr_open(w);
	for (size_t i = 0; i < st->nearlier; i++) {
		jw_obj_open(w);
		jw_kv_str(w, "reason", st->earlier[i].code);
		jw_kv_str(w, "message", st->earlier[i].msg);
		jw_kv_int(w, "time", st->earlier[i].time);
		jw_obj_close(w);
	}
	jw_arr_close(w);
}

/* ---- reader ---- */

static int get_uint(const struct jp *p, int obj, const char *key, bool required, uint64_t *out,
		    struct err *e)
{
	int v = jp_get(p, obj, key);
	if (v < 0)
		return required ? err_field(e, EINVAL, key, "missing") : 0;
	long long x;
	if (jp_int(p, v, 0, (long long)REV_MAX_NUMBER, &x) < 0)
		return err_field(e, EINVAL, key, "not an integer in 0..2^53-1");
	*out = (uint64_t)x;
	return 0;
}

static int get_str(const struct jp *p, int obj, const char *key, char *buf, size_t cap,
		   struct err *e)
{
	int v = jp_get(p, obj, key);
	buf[0] = 0;
	if (v < 0)
		return 0;
	if (jp_str(p, v, buf, cap, NULL) < 0)
		return err_field(e, EINVAL, key, "not a string of at most %zu bytes", cap - 1);
	return 0;
}

static int get_time(const struct jp *p, int obj, const char *key, int64_t *out, struct err *e)
{
	uint64_t t = 0;
	int r = get_uint(p, obj, key, false, &t, e);
	*out = (int64_t)t;
	return r;
}

static int parse_state(const struct jp *p, int v, enum rev_state *out)
{
	for (int s = 0; s < REV_STATE_COUNT; s++)
		if (jp_streq(p, v, rev_state_name((enum rev_state)s))) {
			*out = (enum rev_state)s;
			return 0;
		}
	return -EINVAL;
}

static int parse_times(const struct jp *p, int obj, int64_t *times, struct err *e)
{
	int v = jp_get(p, obj, "times");
	if (v < 0)
		return 0;
	if (!jp_is(p, v, JSMN_OBJECT))
		return err_field(e, EINVAL, "times", "not an object");
	for (int s = 0; s < REV_STATE_COUNT; s++) {
		int r = get_time(p, v, rev_state_name((enum rev_state)s), &times[s], e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_log(const struct jp *p, int obj, struct tr_fail *f, struct err *e)
{
	int v = jp_get(p, obj, "log");
	if (v < 0)
		return 0;
	if (!jp_is(p, v, JSMN_ARRAY) || p->tok[v].size > TR_LOG_LINES)
		return err_field(e, EINVAL, "failure.log", "not an array of at most %d lines",
				 TR_LOG_LINES);
	int t = v + 1;
	for (int i = 0; i < p->tok[v].size; i++, t = jp_next(p, t))
		if (jp_str(p, t, f->log[f->nlog++], TR_LOG_LINE_MAX, NULL) < 0)
			return err_field(e, EINVAL, "failure.log", "line %d is not a short string", i);
	return 0;
}

static int parse_fail(const struct jp *p, int obj, struct tr_status *st, struct err *e)
{
	int v = jp_get(p, obj, "failure");
	if (v < 0 || jp_is(p, v, JSMN_PRIMITIVE))
		return 0; /* absent or null */
	if (!jp_is(p, v, JSMN_OBJECT))
		return err_field(e, EINVAL, "failure", "not an object");
	struct tr_fail *f = &st->fail;
	int r;
	if ((r = get_str(p, v, "reason", f->code, sizeof(f->code), e)) < 0 ||
	    (r = get_str(p, v, "message", f->msg, sizeof(f->msg), e)) < 0 ||
	    (r = get_str(p, v, "field", f->field, sizeof(f->field), e)) < 0 ||
	    (r = get_str(p, v, "container", f->container, sizeof(f->container), e)) < 0 ||
	    (r = get_str(p, v, "goal", f->goal, sizeof(f->goal), e)) < 0 ||
	    (r = get_time(p, v, "time", &f->time, e)) < 0 || (r = parse_log(p, v, f, e)) < 0)
		return err_prefix(e, "failure");
	st->has_fail = true;
	return 0;
}

static int parse_earlier(const struct jp *p, int obj, struct tr_status *st, struct err *e)
{
	int v = jp_get(p, obj, "earlier");
	if (v < 0)
		return 0;
	if (!jp_is(p, v, JSMN_ARRAY) || p->tok[v].size > TR_EARLIER_MAX)
		return err_field(e, EINVAL, "earlier", "not an array of at most %d entries",
				 TR_EARLIER_MAX);
	int t = v + 1;
	for (int i = 0; i < p->tok[v].size; i++, t = jp_next(p, t)) {
		struct tr_earlier *x = &st->earlier[st->nearlier++];
		int r;
		if (!jp_is(p, t, JSMN_OBJECT) ||
		    (r = get_str(p, t, "reason", x->code, sizeof(x->code), e)) < 0 ||
		    (r = get_str(p, t, "message", x->msg, sizeof(x->msg), e)) < 0 ||
		    (r = get_time(p, t, "time", &x->time, e)) < 0)
			return err_field(e, EINVAL, "earlier", "entry %d is malformed", i);
	}
	return 0;
}

int tr_status_parse(const char *buf, size_t len, struct tr_status *st, struct err *e)
{
	memset(st, 0, sizeof(*st));
	jsmntok_t toks[TR_STATUS_TOKENS];
	struct jp p;
	int r = jp_parse(&p, buf, len, toks, (int)ARRAY_SIZE(toks), e);
	if (r < 0)
		return r;
	if (!jp_is(&p, 0, JSMN_OBJECT))
		return err_set(e, EINVAL, "not a JSON object");
	int sv = jp_get(&p, 0, "state");
	if (sv < 0 || parse_state(&p, sv, &st->state) < 0)
		return err_field(e, EINVAL, "state", "missing or not a state name");
	int pv = jp_get(&p, 0, "progress");
	if (pv >= 0 && !jp_is(&p, pv, JSMN_OBJECT))
		return err_field(e, EINVAL, "progress", "not an object");
	if ((r = get_uint(&p, 0, "revision", true, &st->revision, e)) < 0 ||
	    (r = get_uint(&p, 0, "previous", false, &st->previous, e)) < 0 ||
	    (pv >= 0 && (r = get_uint(&p, pv, "done", false, &st->done, e)) < 0) ||
	    (pv >= 0 && (r = get_uint(&p, pv, "total", false, &st->total, e)) < 0) ||
	    (r = parse_times(&p, 0, st->times, e)) < 0 || (r = parse_fail(&p, 0, st, e)) < 0 ||
	    (r = parse_earlier(&p, 0, st, e)) < 0)
		return r;
	if (st->revision == 0)
		return err_field(e, EINVAL, "revision", "must be at least 1");
	return 0;
}

int tr_status_load(struct trails *tr, const char *dir, struct tr_status *st, struct err *e)
{
	char path[64];
	if (str_fmt(path, sizeof(path), "%s/%s", dir, TR_STATUS) < 0)
		return err_set(e, ENAMETOOLONG, "%s: path too long", dir);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = file_read_all(storage_root_fd(tr->cfg.storage), path, TR_STATUS_MAX, &buf, &len, e);
	if (r < 0)
		return r;
	r = tr_status_parse(buf, len, st, e);
	if (r < 0)
		return err_prefix(e, "%s", path);
	return 0;
}

void tr_rec_from_status(struct tr_rec *rec, const struct tr_status *st)
{
	rec->state = st->state;
	memcpy(rec->times, st->times, sizeof(rec->times));
	rec->done = st->done;
	rec->total = st->total;
	rec->previous = st->previous;
	rec->reason[0] = 0;
	if (st->has_fail && (st->state == REV_FAILED || st->state == REV_REJECTED))
		snprintf(rec->reason, sizeof(rec->reason), "%s", st->fail.code);
}

/* ---- update ---- */

/* offers/<n>/ is created when its first status is written. */
static int ensure_dir(struct trails *tr, const struct tr_rec *rec, const char *dir, struct err *e)
{
	int root = storage_root_fd(tr->cfg.storage);
	struct stat sb;
	if (rec->installed || fstatat(root, dir, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	int r = 0;
	if (fstatat(root, TR_OFFERS, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		r = storage_mkdir_durable(root, TR_OFFERS, 0755, e);
	if (r == 0)
		r = storage_mkdir_durable(root, dir, 0755, e);
	return r;
}

/* A new attempt: the old attempt's rejection joins "earlier" (oldest dropped). */
static void push_earlier(struct tr_status *st)
{
	if (!st->has_fail)
		return;
	if (st->nearlier == TR_EARLIER_MAX) {
		memmove(&st->earlier[0], &st->earlier[1], (TR_EARLIER_MAX - 1) * sizeof(st->earlier[0]));
		st->nearlier--;
	}
	struct tr_earlier *x = &st->earlier[st->nearlier++];
	memcpy(x->code, st->fail.code, sizeof(x->code));
	memcpy(x->msg, st->fail.msg, sizeof(x->msg));
	x->time = st->fail.time;
	st->has_fail = false;
	memset(&st->fail, 0, sizeof(st->fail));
}

static void status_refresh(struct tr_status *st, struct tr_rec *rec, const struct tr_fail *fail)
{
	if (rec->new_attempt)
		push_earlier(st);
	rec->new_attempt = false;
	st->revision = rec->number;
	st->state = rec->state;
	memcpy(st->times, rec->times, sizeof(st->times));
	st->done = rec->done;
	st->total = rec->total;
	st->previous = rec->previous;
	bool failing = rec->state == REV_FAILED || rec->state == REV_REJECTED;
	if (fail && failing && !st->has_fail) {
		st->fail = *fail;
		st->has_fail = true;
	}
	tr_rec_from_status(rec, st);
}

int tr_status_store(struct trails *tr, struct tr_rec *rec, const struct tr_fail *fail,
		    struct err *e)
{
	char dir[48], path[64];
	if (tr_rec_dir(rec, dir, sizeof(dir)) < 0 ||
	    str_fmt(path, sizeof(path), "%s/%s", dir, TR_STATUS) < 0)
		return err_set(e, ENAMETOOLONG, "revision %llu: path too long",
			       (unsigned long long)rec->number);
	int r = ensure_dir(tr, rec, dir, e);
	if (r < 0)
		return err_prefix(e, "revision %llu status", (unsigned long long)rec->number);
	struct tr_status *st = &tr->st;
	struct err le = ERR_INIT;
	r = tr_status_load(tr, dir, st, &le);
	if (r < 0 && r != -ENOENT)
		log_warn("revision %llu: %s unreadable, written afresh: %s",
			 (unsigned long long)rec->number, path, le.msg);
	if (r < 0)
		memset(st, 0, sizeof(*st));
	status_refresh(st, rec, fail);
	struct jw w;
	jw_init_fixed(&w, tr->jbuf, TR_STATUS_MAX);
	jw_obj_open(&w);
	tr_status_members(&w, st);
	jw_obj_close(&w);
	r = jw_finish(&w, e);
	if (r >= 0)
		r = storage_write_durable(storage_root_fd(tr->cfg.storage), path, w.buf, w.len, 0644,
					  e);
	if (r < 0)
		return err_prefix(e, "revision %llu status", (unsigned long long)rec->number);
	return 0;
}

/* ---- log tail ---- */

/* One line into out: printable ASCII kept, anything else '?', cut to fit. */
static void keep_line(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < TR_LOG_LINE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r')
			continue;
		out[k++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
	}
	out[k] = 0;
}

static void tail_lines(const char *buf, size_t len, struct tr_fail *f)
{
	const char *starts[TR_LOG_LINES];
	size_t lens[TR_LOG_LINES], n = 0;
	size_t end = len;
	while (end > 0 && n < TR_LOG_LINES) {
		size_t b = end;
		while (b > 0 && buf[b - 1] != '\n')
			b--;
		if (end > b) {
			starts[n] = buf + b;
			lens[n++] = end - b;
		}
		end = b > 0 ? b - 1 : 0;
	}
	f->nlog = 0;
	while (n > 0) {
		n--;
		keep_line(starts[n], lens[n], f->log[f->nlog++]);
	}
}

void tr_log_tail(const char *path, struct tr_fail *f)
{
	f->nlog = 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return;
	char buf[TR_LOG_TAIL];
	off_t off = sb.st_size > (off_t)sizeof(buf) ? sb.st_size - (off_t)sizeof(buf) : 0;
	ssize_t n = pread(fd, buf, sizeof(buf), off);
	if (n <= 0)
		return;
	size_t len = (size_t)n, skip = 0;
	if (off > 0) /* the first line is cut: drop it */
		while (skip < len && buf[skip++] != '\n')
			;
	tail_lines(buf + skip, len - skip, f);
}

void tr_keep_boot_error(struct trails *tr, uint64_t rev, const struct err *why)
{
	struct jw w;
	jw_init_fixed(&w, tr->jbuf, TR_STATUS_MAX);
	jw_obj_open(&w);
	jw_kv_uint(&w, "revision", rev);
	jw_kv_str(&w, "error", why->msg);
	jw_kv_str(&w, "field", why->field);
	jw_kv_int(&w, "time", tr_now());
	jw_obj_close(&w);
	struct err e = ERR_INIT;
	if (jw_finish(&w, &e) < 0 ||
	    storage_write_durable(storage_root_fd(tr->cfg.storage), TR_BOOT_ERROR, w.buf, w.len,
				  0644, &e) < 0)
		log_err("keeping the boot error: %s", e.msg);
}
