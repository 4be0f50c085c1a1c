/* test/unit/ctrl_fake.h — what the ctrl tests share (ctrl_test.c: sockets
 * and robustness; ctrl_api_test.c: the routes and the authorization matrix).
 *
 * Link-time fakes: the runtime and the update engine functions ctrl calls
 * are defined here, so the tests see exactly what ctrl asked of them. Every
 * runtime and engine function ctrl references must be defined: one left out
 * pulls libruntime.a's or libtrails.a's object in, and its definitions clash
 * with these. The object store behind the fake engine is the real storage/
 * in the fixture's temp dir, so uploads are checked against real files.
 *
 * Clients are forked children speaking raw HTTP/1.1 (blocking sockets); the
 * test process runs the loop until every child has exited. */
#ifndef CTRL_FAKE_H
#define CTRL_FAKE_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctrl/ctrl_internal.h"
#include "lib/cleanup.h"
#include "lib/digest.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "runtime/runtime.h"
#include "storage/storage.h"
#include "trails/trails.h"

#define MS 1000000ull
#define NCTR 4

/* ---------------- fake runtime ---------------- */

struct runtime {
	struct rt_ctr_status c[NCTR];
	size_t n;
	const char *phase;
	char ready_name[64];
	int ready_calls;
	struct ctrl *remove_on_ready; /* simulate a removal from inside a handler */
	char op[16], op_name[64];     /* last runtime_ctr_* call */
	int op_calls;
	char logdir[128];
};

/* lowercase, as runtime/ctr.c names them: the API uppercases */
const char *ctr_state_name(enum ctr_state s)
{
	static const char *const names[] = {"stopped", "mounted",  "starting", "started",
					    "ready",   "stopping", "backoff",  "failed"};
	return s < CTR_STATE_COUNT ? names[s] : "?";
}

size_t runtime_count(const struct runtime *rt)
{
	return rt->n;
}

int runtime_find(const struct runtime *rt, const char *name)
{
	for (size_t i = 0; i < rt->n; i++)
		if (strcmp(rt->c[i].name, name) == 0)
			return (int)i;
	return -1;
}

void runtime_status(const struct runtime *rt, size_t i, struct rt_ctr_status *out)
{
	*out = rt->c[i];
}

const char *runtime_phase(const struct runtime *rt)
{
	return rt->phase;
}

int runtime_ready(struct runtime *rt, const char *name, struct err *e)
{
	snprintf(rt->ready_name, sizeof(rt->ready_name), "%s", name);
	rt->ready_calls++;
	if (rt->remove_on_ready)
		ctrl_container_remove(rt->remove_on_ready, name);
	int i = runtime_find(rt, name);
	if (i < 0)
		return err_set(e, ENOENT, "container %s: unknown", name);
	struct rt_ctr_status *c = &rt->c[i];
	if (c->state != CTR_STARTING && c->state != CTR_STARTED && c->state != CTR_READY)
		return err_set(e, ESRCH, "container %s: is %s, not running", name,
			       ctr_state_name(c->state));
	c->state = CTR_READY;
	c->goal_met = true;
	return 0;
}

static int fake_ctr_op(struct runtime *rt, const char *op, const char *name, enum ctr_state to,
		       struct err *e)
{
	snprintf(rt->op, sizeof(rt->op), "%s", op);
	snprintf(rt->op_name, sizeof(rt->op_name), "%s", name);
	rt->op_calls++;
	int i = runtime_find(rt, name);
	if (i < 0)
		return err_set(e, ENOENT, "container %s: unknown", name);
	if (rt->c[i].state == CTR_STOPPING)
		return err_set(e, EBUSY, "container %s: is stopping", name);
	rt->c[i].state = to;
	return 0;
}

int runtime_ctr_stop(struct runtime *rt, const char *name, struct err *e)
{
	return fake_ctr_op(rt, "stop", name, CTR_STOPPING, e);
}

int runtime_ctr_start(struct runtime *rt, const char *name, struct err *e)
{
	return fake_ctr_op(rt, "start", name, CTR_STARTING, e);
}

int runtime_ctr_restart(struct runtime *rt, const char *name, struct err *e)
{
	return fake_ctr_op(rt, "restart", name, CTR_STOPPING, e);
}

int runtime_log_path(const struct runtime *rt, const char *name, char *buf, size_t cap,
		     struct err *e)
{
	if (runtime_find(rt, name) < 0)
		return err_set(e, ENOENT, "container %s: unknown", name);
	if (str_fmt(buf, cap, "%s/%s.log", rt->logdir, name) < 0)
		return err_set(e, ENAMETOOLONG, "log path too long");
	return 0;
}

/* ---------------- fake update engine ---------------- */

struct trails {
	struct storage *st;
	struct digest wanted[4]; /* objects a DOWNLOADING revision needs */
	uint64_t wanted_size[4];
	size_t nwanted;
	bool disk_full;          /* trails_object_begin says -ENOSPC */
	int stored_calls;
	struct digest stored_last;
	/* trails_offer: what it was given */
	uint64_t offer_rev;
	char *offer_doc, *offer_sig;
	size_t offer_doclen, offer_siglen;
	/* trails_run */
	uint64_t run_rev;
	int run_admin; /* -1: not called */
	int gc_calls;
	struct boot_state boot;
};

const char *rev_state_name(enum rev_state s)
{
	static const char *const names[] = {"RECEIVED", "DOWNLOADING", "INSTALLED", "TESTING",
					    "DONE",     "REJECTED",    "FAILED"};
	return s < REV_STATE_COUNT ? names[s] : "?";
}

void trails_boot_state(const struct trails *tr, struct boot_state *out)
{
	*out = tr->boot;
}

/* Revisions by number: 5 needs one object, 6 needs nothing, 7 has a bad
 * signature, 3 is a downgrade, 8 does not fit. */
int trails_offer(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
		 const char *sig, size_t siglen, struct trails_offer *out, struct err *e)
{
	free(tr->offer_doc);
	free(tr->offer_sig);
	tr->offer_rev = rev;
	tr->offer_doc = strndup(doc, doclen);
	tr->offer_sig = strndup(sig, siglen);
	tr->offer_doclen = doclen;
	tr->offer_siglen = siglen;
	switch (rev) {
	case 3:
		return err_field(e, ERANGE, "revision", "3 is lower than the committed 4");
	case 7:
		return err_field(e, EBADMSG, "signature", "no valid signature by a trusted key");
	case 8:
		return err_set(e, ENOSPC, "needs 9000 bytes, 100 free");
	}
	out->state = rev == 5 ? REV_DOWNLOADING : REV_INSTALLED;
	out->nmissing = rev == 5 ? 1 : 0;
	out->missing_bytes = rev == 5 ? 4096 : 0;
	memset(&out->missing[0], 0xab, sizeof(out->missing[0]));
	return 0;
}

int trails_object_begin(struct trails *tr, const struct digest *d, uint64_t size,
			struct obj_writer **out, struct err *e)
{
	if (storage_object_has(tr->st, d))
		return err_set(e, EEXIST, "already stored");
	size_t i = 0;
	while (i < tr->nwanted && !digest_eq(&tr->wanted[i], d))
		i++;
	if (i == tr->nwanted)
		return err_set(e, ENOENT, "no revision being installed needs this object");
	if (size != tr->wanted_size[i])
		return err_field(e, EINVAL, "Content-Length", "%llu bytes, the revision says %llu",
				 (unsigned long long)size, (unsigned long long)tr->wanted_size[i]);
	if (tr->disk_full)
		return err_set(e, ENOSPC, "no space for %llu bytes", (unsigned long long)size);
	return storage_object_begin(tr->st, d, size, out, e);
}

void trails_object_stored(struct trails *tr, const struct digest *d)
{
	tr->stored_calls++;
	tr->stored_last = *d;
}

bool trails_object_has(struct trails *tr, const struct digest *d)
{
	return storage_object_has(tr->st, d);
}

/* 9 is busy, 5 and 6 run, anything else is unknown. */
int trails_run(struct trails *tr, uint64_t rev, bool admin, struct err *e)
{
	tr->run_rev = rev;
	tr->run_admin = admin;
	if (rev == 9)
		return err_set(e, EBUSY, "revision 6 is being tried");
	if (rev != 5 && rev != 6)
		return err_set(e, ENOENT, "revision %llu is not installed", (unsigned long long)rev);
	return 0;
}

int trails_gc(struct trails *tr, uint64_t *freed, struct err *e)
{
	(void)e;
	tr->gc_calls++;
	*freed = 12345;
	return 0;
}

int trails_json_revisions(struct trails *tr, struct jw *w, struct err *e)
{
	(void)tr;
	(void)e;
	jw_arr_open(w);
	jw_obj_open(w);
	jw_kv_uint(w, "revision", 4);
	jw_kv_str(w, "state", "DONE");
	jw_obj_close(w);
	jw_arr_close(w);
	return 0;
}

int trails_json_revision(struct trails *tr, uint64_t rev, struct jw *w, struct err *e)
{
	(void)tr;
	if (rev != 4)
		return err_set(e, ENOENT, "revision %llu: not on this device", (unsigned long long)rev);
	jw_obj_open(w);
	jw_kv_uint(w, "revision", 4);
	jw_kv_str(w, "state", "DONE");
	jw_obj_close(w);
	return 0;
}

int trails_json_progress(struct trails *tr, struct jw *w, struct err *e)
{
	(void)tr;
	(void)e;
	jw_obj_open(w);
	jw_kv_str(w, "state", "idle");
	jw_obj_close(w);
	return 0;
}

/* ---------------- fixture ---------------- */

#define MAX_KIDS 16

struct fx {
	char dir[64];
	char admin[128], web[128], db[128], cfg[128], ops[128], storage[128];
	struct loop *l;
	struct ctrl *c;
	struct runtime rt;
	struct trails tr;
	struct storage *st;
	pid_t kids[MAX_KIDS];
	int reboots, poweroffs;
	char why[128];
};

struct trails *fake_tr;

void path_in(struct fx *f, char *out, const char *name)
{
	assert_int_equal(str_fmt(out, 128, "%s/%s", f->dir, name), 0);
}

void hook_reboot(void *data, const char *why)
{
	struct fx *f = data;
	f->reboots++;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

void hook_poweroff(void *data, const char *why)
{
	struct fx *f = data;
	f->poweroffs++;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

int fx_teardown(void **state);

static const struct rt_ctr_status fx_ctrs[NCTR] = {
	{"web", "app", CTR_STARTED, RT_GOAL_READY, false, 4242, 0, ""},
	{"db", "middleware", CTR_READY, RT_GOAL_READY, true, 77, 2, ""},
	{"cfg", "platform", CTR_BACKOFF, RT_GOAL_STARTED, false, 0, 1,
	 "exited with status 3 \"bad\"\n"},
	{"ops", "platform", CTR_READY, RT_GOAL_READY, true, 99, 0, ""},
};

/* *state may hold the limits to test with: {max_conns, conn_timeout_s}.
 * Sockets: admin, and web, db, cfg, ops (ops holds the mgmt role). */
int fx_setup(void **state)
{
	const unsigned *lim = *state ? *state : (const unsigned[]){8, 5};
	struct fx *f = calloc(1, sizeof(*f));
	struct err e = ERR_INIT;
	assert_non_null(f);
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/ctrl-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(chmod(f->dir, 0755), 0); /* the uid 65534 client must reach it */
	path_in(f, f->admin, "admin.sock");
	path_in(f, f->web, "web.sock");
	path_in(f, f->db, "db.sock");
	path_in(f, f->cfg, "cfg.sock");
	path_in(f, f->ops, "ops.sock");
	path_in(f, f->storage, "storage");
	path_in(f, f->rt.logdir, "logs");
	assert_int_equal(mkdir(f->rt.logdir, 0755), 0);
	memcpy(f->rt.c, fx_ctrs, sizeof(fx_ctrs));
	f->rt.n = NCTR;
	f->rt.phase = "starting";
	assert_int_equal(mkdir(f->storage, 0755), 0);
	assert_int_equal(storage_open(f->storage, &f->st, &e), 0);
	f->tr = (struct trails){.st = f->st, .run_admin = -1, .boot = {4, 5, 1}};
	fake_tr = &f->tr;
	assert_int_equal(loop_new(&f->l, &e), 0);
	struct ctrl_config cfg = {.loop = f->l, .rt = &f->rt, .tr = &f->tr, .storage = f->st,
				  .hooks = {f, hook_reboot, hook_poweroff}, .admin_path = f->admin,
				  .max_conns = lim[0], .conn_timeout_s = lim[1]};
	if (ctrl_new(&cfg, &f->c, &e) < 0 || ctrl_container_add(f->c, "web", f->web, &e) < 0 ||
	    ctrl_container_add(f->c, "db", f->db, &e) < 0 ||
	    ctrl_container_add(f->c, "cfg", f->cfg, &e) < 0 ||
	    ctrl_container_add(f->c, "ops", f->ops, &e) < 0) {
		print_error("ctrl: %s\n", e.msg);
		fx_teardown(state);
		return -1;
	}
	ctrl_container_set_roles(f->c, "ops", CTRL_ROLE_MGMT);
	return 0;
}

int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			waitpid(f->kids[i], NULL, 0);
		}
	}
	ctrl_free(f->c);
	loop_free(f->l);
	storage_close(f->st);
	free(f->tr.offer_doc);
	free(f->tr.offer_sig);
	/* ctrl_free removed every socket file it made; "file" is a test's own. */
	const char *names[] = {"admin.sock", "web.sock", "db.sock", "cfg.sock", "ops.sock",
			       "other",      "stale.sock", "file"};
	int leftovers = 0;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char p[128];
		path_in(f, p, names[i]);
		leftovers += unlink(p) == 0 && strcmp(names[i], "file") != 0;
	}
	int r = storage_rmtree(f->dir, &e);
	free(f);
	assert_int_equal(leftovers, 0);
	assert_int_equal(r, 0);
	return 0;
}

/* ---------------- clients (forked) ---------------- */

struct kid {
	pid_t pid;
	int out; /* read end of the child's report pipe */
	char buf[65536];
	size_t len;
};

int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 5};
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno; /* (a child about to exit: the fd closes with it) */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

typedef int (*kid_fn)(void *arg, int out);

void kid_start(struct fx *f, struct kid *k, kid_fn fn, void *arg)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	memset(k, 0, sizeof(*k));
	k->pid = fork();
	assert_true(k->pid >= 0);
	if (k->pid == 0)
		_exit(fn(arg, p[1]));
	close(p[1]);
	k->out = p[0];
	assert_int_equal(fcntl(k->out, F_SETFL, O_NONBLOCK), 0);
	int i = 0;
	while (i < MAX_KIDS && f->kids[i] > 0)
		i++;
	assert_true(i < MAX_KIDS);
	f->kids[i] = k->pid;
}

bool kid_poll(struct fx *f, struct kid *k)
{
	ssize_t n = 1;
	while (k->out >= 0 && (n = read(k->out, k->buf + k->len, sizeof(k->buf) - 1 - k->len)) > 0)
		k->len += (size_t)n;
	k->buf[k->len] = '\0';
	if (k->out >= 0 && (n == 0 || k->len == sizeof(k->buf) - 1)) {
		close(k->out);
		k->out = -1;
	}
	if (k->pid > 0 && waitpid(k->pid, NULL, WNOHANG) == k->pid) {
		for (int i = 0; i < MAX_KIDS; i++)
			if (f->kids[i] == k->pid)
				f->kids[i] = 0;
		k->pid = 0;
	}
	return k->out < 0 && k->pid == 0;
}

/* Run the loop until every kid has exited and said all it had to say. */
void pump(struct fx *f, struct kid *ks, int n)
{
	uint64_t end = now_ns() + 30000 * MS;
	for (;;) {
		bool done = true;
		for (int i = 0; i < n; i++)
			done &= kid_poll(f, &ks[i]);
		if (done)
			return;
		assert_true(now_ns() < end);
		assert_true(loop_once(f->l, 5) >= 0);
	}
}

/* Run the loop for ms milliseconds (let the server notice a closed client). */
void pump_for(struct fx *f, unsigned ms)
{
	uint64_t end = now_ns() + ms * MS;
	while (now_ns() < end)
		assert_true(loop_once(f->l, 5) >= 0);
}

struct exch {
	const char *path, *req;
	size_t len;
	uid_t uid;         /* 0: stay root */
	unsigned delay_ms; /* before connecting */
	bool half_close;   /* shutdown(SHUT_WR) after sending */
	size_t split;      /* > 0: send this many bytes, wait split_ms, send the rest */
	unsigned split_ms;
};

/* In a child: send the request, report "<round trip in us>\n" and the
 * whole answer, or "CONNECT <errno>". */
int exch_main(void *arg, int out)
{
	struct exch *x = arg;
	usleep(x->delay_ms * 1000);
	if (x->uid && setuid(x->uid) < 0)
		return 3;
	uint64_t t0 = now_ns();
	int fd = unix_connect(x->path);
	if (fd < 0)
		return dprintf(out, "CONNECT %d", -fd) < 0;
	/* the server may answer (413) and close before taking it all */
	size_t first = x->split && x->split < x->len ? x->split : x->len;
	char peek;
	bool early = false; /* an answer came before the rest was sent */
	(void)!send(fd, x->req, first, MSG_NOSIGNAL);
	if (first < x->len) {
		usleep(x->split_ms * 1000);
		early = recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
		(void)!send(fd, x->req + first, x->len - first, MSG_NOSIGNAL);
	}
	if (x->half_close)
		shutdown(fd, SHUT_WR);
	static char b[65000];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(b) && (n = read(fd, b + len, sizeof(b) - len)) > 0)
		len += (size_t)n;
	dprintf(out, "%llu %d\n", (unsigned long long)(now_ns() - t0) / 1000, early);
	return write_all(out, b, len) < 0;
}

struct reply {
	int status;
	unsigned long long us;
	int early; /* split requests: answered before the rest was sent */
	char raw[65536];
	const char *body;
};

void parse_reply(const char *report, struct reply *rp)
{
	rp->status = -1;
	char *end;
	rp->us = strtoull(report, &end, 10);
	rp->early = (int)strtol(end, NULL, 10);
	const char *nl = strchr(report, '\n');
	snprintf(rp->raw, sizeof(rp->raw), "%s", nl ? nl + 1 : report);
	sscanf(rp->raw, "HTTP/1.1 %d ", &rp->status);
	const char *b = strstr(rp->raw, "\r\n\r\n");
	rp->body = b ? b + 4 : "";
}

void exchange_x(struct fx *f, struct exch *x, struct reply *rp)
{
	struct kid *k = malloc(sizeof(*k));
	assert_non_null(k);
	kid_start(f, k, exch_main, x);
	pump(f, k, 1);
	parse_reply(k->buf, rp);
	free(k);
}

void exchange_as(struct fx *f, const char *path, const char *req, size_t len, uid_t uid,
		 struct reply *rp)
{
	struct exch x = {path, req, len, uid, 0, false, 0, 0};
	exchange_x(f, &x, rp);
}

const char *mkreq(char *buf, size_t cap, const char *method, const char *url)
{
	assert_int_equal(str_fmt(buf, cap, "%s %s HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
				 method, url),
			 0);
	return buf;
}

void get(struct fx *f, const char *path, const char *method, const char *url, struct reply *rp)
{
	char req[512];
	mkreq(req, sizeof(req), method, url);
	exchange_as(f, path, req, strlen(req), 0, rp);
}

/* `method url` with a body of `len` bytes and a Content-Length. */
void send_body(struct fx *f, const char *path, const char *method, const char *url,
	       const char *body, size_t len, struct reply *rp)
{
	size_t cap = len + 512;
	char *req = malloc(cap);
	assert_non_null(req);
	int n = snprintf(req, cap,
			 "%s %s HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 method, url, len);
	memcpy(req + n, body, len);
	exchange_as(f, path, req, (size_t)n + len, 0, rp);
	free(req);
}

/* Header `name` of the reply ("" if absent), case-insensitive. */
const char *header(const struct reply *rp, const char *name, char *out, size_t cap)
{
	out[0] = '\0';
	size_t nl = strlen(name);
	for (const char *p = strstr(rp->raw, "\r\n"); p && p < rp->body; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
			const char *v = p + 3 + nl + strspn(p + 3 + nl, " ");
			snprintf(out, cap, "%.*s", (int)strcspn(v, "\r"), v);
			break;
		}
	}
	return out;
}

void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* ---------------- JSON checks ---------------- */

struct doc {
	struct jp p;
	jsmntok_t tok[256];
};

/* The reply has `status` and a JSON body of type application/json. */
void reply_json(const struct reply *rp, int status, struct doc *d)
{
	struct err e = ERR_INIT;
	char ct[64];
	if (rp->status != status)
		fail_msg("want %d, got: %s", status, rp->raw);
	if (jp_parse(&d->p, rp->body, strlen(rp->body), d->tok, 256, &e) < 0)
		fail_msg("body is not JSON (%s): %s", e.msg, rp->raw);
	assert_string_equal(header(rp, "Content-Type", ct, sizeof(ct)), "application/json");
}

void get_json(struct fx *f, const char *path, const char *url, int status, struct doc *d,
	      struct reply *rp)
{
	get(f, path, "GET", url, rp);
	reply_json(rp, status, d);
}

const char *str_at(struct doc *d, int obj, const char *key, char *out, size_t cap)
{
	int i = jp_get(&d->p, obj, key);
	size_t n;
	if (i < 0)
		fail_msg("no key '%s'", key);
	assert_int_equal(jp_str(&d->p, i, out, cap, &n), 0);
	return out;
}

void assert_str(struct doc *d, int obj, const char *key, const char *want)
{
	char s[4200];
	assert_string_equal(str_at(d, obj, key, s, sizeof(s)), want);
}

long long int_at(struct doc *d, int obj, const char *key)
{
	int i = jp_get(&d->p, obj, key);
	long long v;
	if (i < 0)
		fail_msg("no key '%s'", key);
	assert_int_equal(jp_int(&d->p, i, 0, INT64_MAX, &v), 0);
	return v;
}

bool is_null(struct doc *d, const char *body, int obj, const char *key)
{
	int i = jp_get(&d->p, obj, key);
	return i > 0 && d->tok[i].type == JSMN_PRIMITIVE && body[d->tok[i].start] == 'n';
}

/* An error reply: the status, JSON {"error", "field"}, error containing `has`. */
void assert_error(const struct reply *rp, int status, const char *field, const char *has)
{
	struct doc d;
	char msg[512];
	reply_json(rp, status, &d);
	assert_str(&d, 0, "field", field);
	if (!strstr(str_at(&d, 0, "error", msg, sizeof(msg)), has))
		fail_msg("error '%s' lacks '%s'", msg, has);
}

#endif
