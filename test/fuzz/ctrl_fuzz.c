/* test/fuzz/ctrl_fuzz.c — the control API's request handling without
 * sockets: route matching, authorization, query arguments, body caps,
 * streamed uploads and every handler.
 *
 * Input: byte 0 picks the caller and the body's framing:
 *   bit 0     0: the admin socket; 1: a container socket
 *   bits 1-2  which container: web, db, cfg, ghost (not in the revision)
 *   bit 3     the container holds the mgmt role
 *   bit 4     no Content-Length (a chunked body)
 * then "METHOD\nPATH[?QUERY]\n", then the body.
 *
 * Checked on every input: the status is one the API documents, the body is
 * valid JSON (valid UTF-8 included) unless it is a log, an error is
 * {"error": string, "field": string}, Allow is set exactly on 405, a "self"
 * route from the admin socket is never served, the runtime hears of
 * readiness only from a container's own socket, a container without the
 * mgmt role never changes anything (engine, runtime, metadata), and only
 * the admin socket runs a revision as admin.
 *
 * The route side of ctrl/ is compiled into this file (the libFuzzer build
 * compiles only lib/, storage/ and trails/). Its calls into the engine are
 * renamed to the fakes below (the real engine is linked in the libFuzzer
 * build); the runtime is faked whole (every function of runtime.h, as the
 * engine references them). Metadata and objects go to a real storage in a
 * temp dir (on /dev/shm when there is one: fsync is cheap there). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define trails_offer(...) fz_trails_offer(__VA_ARGS__)
#define trails_object_begin(...) fz_trails_object_begin(__VA_ARGS__)
#define trails_object_stored(...) fz_trails_object_stored(__VA_ARGS__)
#define trails_object_has(...) fz_trails_object_has(__VA_ARGS__)
#define trails_run(...) fz_trails_run(__VA_ARGS__)
#define trails_gc(...) fz_trails_gc(__VA_ARGS__)
#define trails_json_revisions(...) fz_trails_json_revisions(__VA_ARGS__)
#define trails_json_revision(...) fz_trails_json_revision(__VA_ARGS__)
#define trails_json_progress(...) fz_trails_json_progress(__VA_ARGS__)
#define trails_boot_read(...) fz_trails_boot_read(__VA_ARGS__)
#define trails_boot_state(...) fz_trails_boot_state(__VA_ARGS__)

#include "../../ctrl/call.c"
#include "../../ctrl/h_device.c"
#include "../../ctrl/h_runtime.c"
#include "../../ctrl/h_update.c"
#include "../../ctrl/logfile.c"
#include "../../ctrl/routes.c"

static unsigned changes; /* anything a plain container must never cause */

/* ---------------- fake runtime (all of runtime.h) ---------------- */

struct runtime {
	int ready_calls;
	char ready_name[NAME_MAX_LEN + 1];
	char logdir[64];
};

static const char *const fake_names[] = {"web", "db", "cfg"};

const char *ctr_state_name(enum ctr_state s)
{
	return s == CTR_READY ? "ready" : "started";
}

size_t runtime_count(const struct runtime *rt)
{
	(void)rt;
	return ARRAY_SIZE(fake_names);
}

int runtime_find(const struct runtime *rt, const char *name)
{
	(void)rt;
	for (size_t i = 0; i < ARRAY_SIZE(fake_names); i++)
		if (strcmp(fake_names[i], name) == 0)
			return (int)i;
	return -1;
}

void runtime_status(const struct runtime *rt, size_t i, struct rt_ctr_status *out)
{
	(void)rt;
	*out = (struct rt_ctr_status){fake_names[i], "app", i == 1 ? CTR_READY : CTR_STARTED,
				      RT_GOAL_READY, i == 1, (pid_t)(100 + i), (unsigned)i,
				      i == 2 ? "exited 1: \"bad\"\n\x01" : ""};
}

const char *runtime_phase(const struct runtime *rt)
{
	(void)rt;
	return "starting";
}

int runtime_ready(struct runtime *rt, const char *name, struct err *e)
{
	rt->ready_calls++;
	snprintf(rt->ready_name, sizeof(rt->ready_name), "%s", name);
	if (strcmp(name, "cfg") == 0)
		return err_set(e, ESRCH, "container cfg: is backoff, not running");
	return runtime_find(rt, name) < 0 ? err_set(e, ENOENT, "no such container") : 0;
}

static int fake_op(struct runtime *rt, const char *name, struct err *e)
{
	changes++;
	if (runtime_find(rt, name) < 0)
		return err_set(e, ENOENT, "no such container");
	return strcmp(name, "cfg") == 0 ? err_set(e, EBUSY, "cfg: busy") : 0;
}

int runtime_ctr_stop(struct runtime *rt, const char *name, struct err *e)
{
	return fake_op(rt, name, e);
}

int runtime_ctr_start(struct runtime *rt, const char *name, struct err *e)
{
	return fake_op(rt, name, e);
}

int runtime_ctr_restart(struct runtime *rt, const char *name, struct err *e)
{
	return fake_op(rt, name, e);
}

int runtime_log_path(const struct runtime *rt, const char *name, char *buf, size_t cap,
		     struct err *e)
{
	if (runtime_find(rt, name) < 0)
		return err_set(e, ENOENT, "no such container");
	return str_fmt(buf, cap, "%s/%s.log", rt->logdir, name) < 0 ? err_set(e, EINVAL, "long") : 0;
}

/* Never called by ctrl; the engine (linked in the libFuzzer build) refers to them. */
int runtime_new(const struct runtime_config *cfg, struct runtime **out, struct err *e)
{
	(void)cfg;
	(void)out;
	return err_set(e, ENOSYS, "fake");
}
void runtime_free(struct runtime *rt)
{
	(void)rt;
}
int runtime_load(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		 size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, struct err *e)
{
	(void)rt, (void)rev, (void)groups, (void)ngroups, (void)ctrs, (void)nctrs;
	return err_set(e, ENOSYS, "fake");
}
int runtime_start(struct runtime *rt, runtime_started_cb cb, void *data, struct err *e)
{
	(void)rt, (void)cb, (void)data;
	return err_set(e, ENOSYS, "fake");
}
void runtime_stop_all(struct runtime *rt, runtime_stopped_cb cb, void *data)
{
	(void)rt, (void)cb, (void)data;
}
bool runtime_child_exited(struct runtime *rt, pid_t pid, int status)
{
	(void)rt, (void)pid, (void)status;
	return false;
}
int runtime_apply(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		  size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, runtime_started_cb cb,
		  void *data, struct err *e)
{
	(void)rt, (void)rev, (void)groups, (void)ngroups, (void)ctrs, (void)nctrs, (void)cb;
	(void)data;
	return err_set(e, ENOSYS, "fake");
}
void runtime_apply_changes(const struct runtime *rt, char *buf, size_t cap)
{
	(void)rt;
	if (cap)
		buf[0] = '\0';
}
void runtime_set_event_cb(struct runtime *rt, runtime_event_cb cb, void *data)
{
	(void)rt, (void)cb, (void)data;
}

/* ---------------- fake engine ---------------- */

struct trails {
	struct storage *st;
	int run_admin;
};

static const char hello[] = "hello"; /* the one object a revision "needs" */

int fz_trails_boot_read(struct storage *s, struct boot_state *out, struct err *e)
{
	(void)s, (void)e;
	*out = (struct boot_state){4, 0, 0};
	return 0;
}

/* GET /v1/status asks the engine: the real accessor would read this fake
 * struct as the engine's. */
void fz_trails_boot_state(const struct trails *tr, struct boot_state *out)
{
	(void)tr;
	*out = (struct boot_state){4, 0, 0};
}

int fz_trails_offer(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
		    const char *sig, size_t siglen, struct trails_offer *out, struct err *e)
{
	(void)tr, (void)sig, (void)siglen;
	changes++;
	if (memchr(doc, '\0', doclen))
		abort(); /* jp_str rejects NUL: it must never reach the engine */
	if (rev < 5)
		return err_field(e, ERANGE, "revision", "downgrade");
	if (rev % 3 == 0)
		return err_field(e, EBADMSG, "signature", "bad signature");
	out->state = rev % 2 ? REV_DOWNLOADING : REV_INSTALLED;
	out->nmissing = rev % 2;
	return 0;
}

int fz_trails_object_begin(struct trails *tr, const struct digest *d, uint64_t size,
			   struct obj_writer **out, struct err *e)
{
	struct digest want;
	changes++;
	sha256_buf(hello, sizeof(hello) - 1, &want);
	if (!digest_eq(d, &want))
		return err_set(e, ENOENT, "not needed");
	if (storage_object_has(tr->st, d))
		return err_set(e, EEXIST, "have it");
	return storage_object_begin(tr->st, d, size, out, e);
}

void fz_trails_object_stored(struct trails *tr, const struct digest *d)
{
	struct err e = ERR_INIT;
	if (storage_object_verify(tr->st, d, UINT64_MAX, &e) < 0)
		abort(); /* stored means verified */
	if (storage_object_remove(tr->st, d, &e) < 0)
		abort(); /* keep every input independent */
}

bool fz_trails_object_has(struct trails *tr, const struct digest *d)
{
	return storage_object_has(tr->st, d);
}

int fz_trails_run(struct trails *tr, uint64_t rev, bool admin, struct err *e)
{
	changes++;
	tr->run_admin = admin;
	return rev == 9 ? err_set(e, EBUSY, "busy") : 0;
}

int fz_trails_gc(struct trails *tr, uint64_t *freed, struct err *e)
{
	(void)tr, (void)e;
	changes++;
	*freed = 0;
	return 0;
}

int fz_trails_json_revisions(struct trails *tr, struct jw *w, struct err *e)
{
	(void)tr, (void)e;
	jw_arr_open(w);
	jw_arr_close(w);
	return 0;
}

int fz_trails_json_revision(struct trails *tr, uint64_t rev, struct jw *w, struct err *e)
{
	(void)tr;
	if (rev != 4)
		return err_set(e, ENOENT, "unknown");
	jw_obj_open(w);
	jw_kv_uint(w, "revision", rev);
	jw_obj_close(w);
	return 0;
}

int fz_trails_json_progress(struct trails *tr, struct jw *w, struct err *e)
{
	return fz_trails_json_revisions(tr, w, e);
}

/* ---------------- target ---------------- */

static bool status_known(unsigned s)
{
	static const unsigned known[] = {200, 201, 202, 400, 403, 404, 405, 409,
					 411, 413, 422, 500, 501, 503, 507};
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (known[i] == s)
			return true;
	return false;
}

/* Copy up to '\n' (or the end) into out; advance *p past it. */
static void take_line(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
	size_t n = 0;
	while (*p < end && **p != '\n') {
		if (n + 1 < cap)
			out[n++] = (char)**p;
		(*p)++;
	}
	if (*p < end)
		(*p)++;
	out[n] = '\0';
}

/* "a=b&c" after the '?' of path, in place, as libmicrohttpd would give it. */
static void split_query(char *path, struct ctrl_req *rq)
{
	char *q = strchr(path, '?');
	if (!q)
		return;
	*q++ = '\0';
	for (char *arg = strtok(q, "&"); arg; arg = strtok(NULL, "&")) {
		if (rq->nquery == CTRL_MAX_QUERY) {
			rq->query_overflow = true;
			return;
		}
		char *eq = strchr(arg, '=');
		if (eq)
			*eq++ = '\0';
		rq->query[rq->nquery++] = (struct ctrl_kv){arg, eq};
	}
}

static void check_error_body(const struct ctrl_resp *rs)
{
	jsmntok_t tok[16];
	struct jp p;
	if (jp_parse(&p, rs->w.buf, rs->w.len, tok, 16, NULL) < 0 || !jp_is(&p, 0, JSMN_OBJECT))
		abort();
	int m = jp_get(&p, 0, "error"), f = jp_get(&p, 0, "field");
	if (m < 0 || f < 0 || !jp_is(&p, m, JSMN_STRING) || !jp_is(&p, f, JSMN_STRING))
		abort();
}

static void check_response(struct ctrl_resp *rs)
{
	size_t at;
	const char *why;
	if (!status_known(rs->status))
		abort();
	if ((rs->status == 405) != (rs->allow[0] != '\0'))
		abort();
	if (rs->log) {
		static char b[4096];
		ssize_t n;
		if (rs->status != 200)
			abort();
		while ((n = ctrl_logfile_read(rs->log, b, sizeof(b))) > 0)
			;
		return;
	}
	if (rs->w.len == 0 || rs->w.buf[rs->w.len - 1] != '\n' ||
	    json_validate(rs->w.buf, rs->w.len, &at, &why) < 0)
		abort();
	if (rs->status >= 400)
		check_error_body(rs);
}

static void rm_tree(void)
{
	extern char fz_dir[];
	struct err e = ERR_INIT;
	if (storage_rmtree(fz_dir, &e) < 0)
		fprintf(stderr, "%s\n", e.msg);
}

char fz_dir[64];

/* A storage and a log directory, once per process. */
static struct storage *fz_storage(struct runtime *rt)
{
	static struct storage *st;
	struct err e = ERR_INIT;
	char p[128];
	if (st)
		return st;
	snprintf(fz_dir, sizeof(fz_dir), "%s/ctrl-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fz_dir))
		abort();
	atexit(rm_tree);
	snprintf(p, sizeof(p), "%s/storage", fz_dir);
	snprintf(rt->logdir, sizeof(rt->logdir), "%s", fz_dir);
	if (mkdir(p, 0755) < 0 || storage_open(p, &st, &e) < 0)
		abort();
	snprintf(p, sizeof(p), "%s/web.log", fz_dir);
	FILE *f = fopen(p, "w");
	if (!f || fputs("line one\nline two\n\xff\n", f) < 0 || fclose(f) != 0)
		abort();
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[CTRL_RESP_MAX];
	static struct runtime rt;
	static struct trails tr;
	if (size < 1)
		return 0;
	log_set_level(LOGL_ERR); /* "container x reported ready" on every input */
	tr.st = fz_storage(&rt);
	tr.run_admin = -1;
	struct ctrl c = {.rt = &rt, .tr = &tr, .storage = tr.st, .resp_buf = buf,
			 .resp_cap = sizeof(buf)};
	struct ctrl_caller who = {CTRL_CALLER_ADMIN, "", 0};
	if (data[0] & 1)
		who = (struct ctrl_caller){CTRL_CALLER_CONTAINER,
					   ((data[0] >> 1) & 3) == 3 ? "ghost"
								     : fake_names[(data[0] >> 1) & 3],
					   data[0] & 8 ? CTRL_ROLE_MGMT : 0};
	const uint8_t *p = data + 1, *end = data + size;
	char method[32], path[2048];
	take_line(&p, end, method, sizeof(method));
	take_line(&p, end, path, sizeof(path));
	struct ctrl_req rq = {.caller = &who, .method = method, .path = path,
			      .body = (const char *)p, .body_len = (size_t)(end - p),
			      .content_length = data[0] & 16 ? -1 : (int64_t)(end - p)};
	split_query(path, &rq);
	struct ctrl_resp rs;
	ctrl_resp_init(&c, &rs);
	int calls = rt.ready_calls;
	unsigned before = changes;
	unsigned long durable = storage_durable_count();
	ctrl_dispatch(&c, &rq, &rs);
	ctrl_resp_finish(&rs);
	check_response(&rs);
	ctrl_resp_release(&rs);
	if (c.buffered != 0)
		abort(); /* every buffered body was given back */

	bool plain = who.kind == CTRL_CALLER_CONTAINER && !(who.roles & CTRL_ROLE_MGMT);
	if (plain && (changes != before || storage_durable_count() != durable))
		abort(); /* a container without roles changed something */
	if (tr.run_admin >= 0 && tr.run_admin != (who.kind == CTRL_CALLER_ADMIN))
		abort();
	if (rt.ready_calls != calls &&
	    (who.kind != CTRL_CALLER_CONTAINER || strcmp(rt.ready_name, who.name) != 0))
		abort(); /* readiness only ever for the socket's own container */
	if (who.kind == CTRL_CALLER_ADMIN && strncmp(path, "/v1/containers/self", 19) == 0 &&
	    (path[19] == '\0' || path[19] == '/') && rs.status >= 200 && rs.status < 300)
		abort(); /* the admin socket has no self */
	return 0;
}
