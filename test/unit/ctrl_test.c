/* test/unit/ctrl_test.c — ctrl/: the control API over real unix sockets,
 * served by libmicrohttpd from a real lib/loop.
 *
 * Clients are forked children speaking raw HTTP/1.1 (blocking sockets);
 * the test process runs the loop until every child has exited. The runtime
 * is a link-time fake defined below (ctrl only reads it and reports
 * readiness), so the test sees exactly which container called ready. It
 * must define every runtime function ctrl calls: one left out pulls
 * libruntime.a's object in, and its definitions clash with these.
 *
 * Timing assertions use generous bounds; the one tight bound (a slowloris
 * client must not delay another client's request by 100 ms) measures only
 * the well-behaved client's own round trip. */
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
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"

#define MS 1000000ull
#define POST_READY "POST /v1/containers/self/ready HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"

/* ---------------- fake runtime ---------------- */

struct runtime {
	struct rt_ctr_status c[3];
	size_t n;
	const char *phase;
	char ready_name[64];
	int ready_calls;
	struct ctrl *remove_on_ready; /* simulate a removal from inside a handler */
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

/* ---------------- fixture ---------------- */

#define MAX_KIDS 8

struct fx {
	char dir[64];
	char admin[128], web[128], db[128], cfg[128];
	struct loop *l;
	struct ctrl *c;
	struct runtime rt;
	pid_t kids[MAX_KIDS];
};

static void path_in(struct fx *f, char *out, const char *name)
{
	assert_int_equal(str_fmt(out, 128, "%s/%s", f->dir, name), 0);
}

static int teardown(void **state);

/* *state may hold the limits to test with: {max_conns, conn_timeout_s}. */
static int setup(void **state)
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
	f->rt = (struct runtime){
		.c = {{"web", "app", CTR_STARTED, RT_GOAL_READY, false, 4242, 0, ""},
		      {"db", "middleware", CTR_READY, RT_GOAL_READY, true, 77, 2, ""},
		      {"cfg", "platform", CTR_BACKOFF, RT_GOAL_STARTED, false, 0, 1,
		       "exited with status 3 \"bad\"\n"}},
		.n = 3,
		.phase = "starting",
	};
	assert_int_equal(loop_new(&f->l, &e), 0);
	struct ctrl_config cfg = {.loop = f->l, .rt = &f->rt, .admin_path = f->admin,
				  .max_conns = lim[0], .conn_timeout_s = lim[1]};
	if (ctrl_new(&cfg, &f->c, &e) < 0 || ctrl_container_add(f->c, "web", f->web, &e) < 0 ||
	    ctrl_container_add(f->c, "db", f->db, &e) < 0 ||
	    ctrl_container_add(f->c, "cfg", f->cfg, &e) < 0) {
		print_error("ctrl: %s\n", e.msg);
		teardown(state);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			waitpid(f->kids[i], NULL, 0);
		}
	}
	ctrl_free(f->c);
	loop_free(f->l);
	/* ctrl_free removed every socket file it made; "file" is a test's own. */
	const char *names[] = {"admin.sock", "web.sock", "db.sock", "cfg.sock", "other",
			       "stale.sock", "file"};
	int leftovers = 0;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char p[128];
		path_in(f, p, names[i]);
		leftovers += unlink(p) == 0 && strcmp(names[i], "file") != 0;
	}
	int r = rmdir(f->dir);
	free(f);
	assert_int_equal(leftovers, 0);
	assert_int_equal(r, 0);
	return 0;
}

/* ---------------- clients (forked) ---------------- */

struct kid {
	pid_t pid;
	int out; /* read end of the child's report pipe */
	char buf[16384];
	size_t len;
};

static int unix_connect(const char *path)
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

static void kid_start(struct fx *f, struct kid *k, kid_fn fn, void *arg)
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

static bool kid_poll(struct fx *f, struct kid *k)
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
static void pump(struct fx *f, struct kid *ks, int n)
{
	uint64_t end = now_ns() + 15000 * MS;
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

struct exch {
	const char *path, *req;
	size_t len;
	uid_t uid;         /* 0: stay root */
	unsigned delay_ms; /* before connecting */
};

/* In a child: send the request, report "<round trip in us>\n" and the
 * whole answer, or "CONNECT <errno>". */
static int exch_main(void *arg, int out)
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
	(void)!send(fd, x->req, x->len, MSG_NOSIGNAL);
	static char b[32768];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(b) && (n = read(fd, b + len, sizeof(b) - len)) > 0)
		len += (size_t)n;
	dprintf(out, "%llu\n", (unsigned long long)(now_ns() - t0) / 1000);
	return write_all(out, b, len) < 0;
}

struct reply {
	int status;
	unsigned long long us;
	char raw[16384];
	const char *body;
};

static void parse_reply(const char *report, struct reply *rp)
{
	rp->status = -1;
	rp->us = strtoull(report, NULL, 10);
	const char *nl = strchr(report, '\n');
	snprintf(rp->raw, sizeof(rp->raw), "%s", nl ? nl + 1 : report);
	sscanf(rp->raw, "HTTP/1.1 %d ", &rp->status);
	const char *b = strstr(rp->raw, "\r\n\r\n");
	rp->body = b ? b + 4 : "";
}

static void exchange_as(struct fx *f, const char *path, const char *req, size_t len, uid_t uid,
			struct reply *rp)
{
	struct exch x = {path, req, len, uid, 0};
	struct kid k;
	kid_start(f, &k, exch_main, &x);
	pump(f, &k, 1);
	parse_reply(k.buf, rp);
}

static const char *mkreq(char *buf, size_t cap, const char *method, const char *url)
{
	assert_int_equal(str_fmt(buf, cap, "%s %s HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
				 method, url),
			 0);
	return buf;
}

static void get(struct fx *f, const char *path, const char *method, const char *url,
		struct reply *rp)
{
	char req[512];
	mkreq(req, sizeof(req), method, url);
	exchange_as(f, path, req, strlen(req), 0, rp);
}

/* Header `name` of the reply ("" if absent), case-insensitive. */
static const char *header(const struct reply *rp, const char *name, char *out, size_t cap)
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

/* ---------------- JSON checks ---------------- */

struct doc {
	struct jp p;
	jsmntok_t tok[256];
};

/* The reply has `status` and a JSON body of type application/json. */
static void reply_json(const struct reply *rp, int status, struct doc *d)
{
	struct err e = ERR_INIT;
	char ct[64];
	if (rp->status != status)
		fail_msg("want %d, got: %s", status, rp->raw);
	if (jp_parse(&d->p, rp->body, strlen(rp->body), d->tok, 256, &e) < 0)
		fail_msg("body is not JSON (%s): %s", e.msg, rp->raw);
	assert_string_equal(header(rp, "Content-Type", ct, sizeof(ct)), "application/json");
}

static void get_json(struct fx *f, const char *path, const char *url, int status, struct doc *d,
		     struct reply *rp)
{
	get(f, path, "GET", url, rp);
	reply_json(rp, status, d);
}

static const char *str_at(struct doc *d, int obj, const char *key, char *out, size_t cap)
{
	int i = jp_get(&d->p, obj, key);
	size_t n;
	assert_true(i >= 0);
	assert_int_equal(jp_str(&d->p, i, out, cap, &n), 0);
	return out;
}

static void assert_str(struct doc *d, int obj, const char *key, const char *want)
{
	char s[512];
	assert_string_equal(str_at(d, obj, key, s, sizeof(s)), want);
}

static long long int_at(struct doc *d, int obj, const char *key)
{
	int i = jp_get(&d->p, obj, key);
	long long v;
	assert_true(i >= 0);
	assert_int_equal(jp_int(&d->p, i, 0, INT64_MAX, &v), 0);
	return v;
}

/* An error reply: the status, JSON {"error", "field"}, error containing `has`. */
static void assert_error(const struct reply *rp, int status, const char *field, const char *has)
{
	struct doc d;
	char msg[512];
	reply_json(rp, status, &d);
	assert_str(&d, 0, "field", field);
	if (!strstr(str_at(&d, 0, "error", msg, sizeof(msg)), has))
		fail_msg("error '%s' lacks '%s'", msg, has);
}

/* ---------------- tests: routes ---------------- */

static void test_status(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->admin, "/v1/status", 200, &d, &rp);
	int rev = jp_get(&d.p, 0, "revision");
	assert_true(rev > 0 && d.tok[rev].type == JSMN_PRIMITIVE && rp.body[d.tok[rev].start] == 'n');
	assert_str(&d, 0, "phase", "starting");
	int ctrs = jp_get(&d.p, 0, "containers");
	assert_int_equal(int_at(&d, ctrs, "total"), 3);
	assert_int_equal(int_at(&d, ctrs, "ready"), 1);

	ctrl_set_revision(f->c, 7);
	f->rt.phase = "ready";
	get_json(f, f->web, "/v1/status", 200, &d, &rp); /* containers may read it too */
	assert_int_equal(int_at(&d, 0, "revision"), 7);
	assert_str(&d, 0, "phase", "ready");
}

static void test_containers_list(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->admin, "/v1/containers", 200, &d, &rp);
	assert_true(d.tok[0].type == JSMN_ARRAY && d.tok[0].size == 3);
	const char *names[] = {"web", "db", "cfg"}, *groups[] = {"app", "middleware", "platform"};
	const char *states[] = {"STARTED", "READY", "BACKOFF"}, *goals[] = {"READY", "READY", "STARTED"};
	const char *reasons[] = {"", "", "exited with status 3 \"bad\"\n"}; /* escaped and back */
	const int pids[] = {4242, 77, 0}, restarts[] = {0, 2, 1};
	for (int k = 0, i = 1; k < 3; k++, i = jp_next(&d.p, i)) {
		assert_str(&d, i, "name", names[k]);
		assert_str(&d, i, "group", groups[k]);
		assert_str(&d, i, "state", states[k]);
		assert_str(&d, i, "goal", goals[k]);
		assert_str(&d, i, "reason", reasons[k]);
		assert_int_equal(int_at(&d, i, "pid"), pids[k]);
		assert_int_equal(int_at(&d, i, "restarts"), restarts[k]);
		bool met;
		assert_int_equal(jp_bool(&d.p, jp_get(&d.p, i, "goal_met"), &met), 0);
		assert_int_equal(met, k == 1);
	}
	get_json(f, f->admin, "/v1/containers/db", 200, &d, &rp);
	assert_str(&d, 0, "name", "db");
	get(f, f->admin, "GET", "/v1/containers/zzz", &rp);
	assert_error(&rp, 404, "", "'zzz'");
	get(f, f->admin, "GET", "/v1/containers/Bad%20Name", &rp);
	assert_error(&rp, 400, "name", "'Bad Name' is not a container name");
}

static void test_self(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->db, "/v1/containers/self", 200, &d, &rp);
	assert_str(&d, 0, "name", "db");
	assert_int_equal(int_at(&d, 0, "restarts"), 2);
	get(f, f->admin, "GET", "/v1/containers/self", &rp);
	assert_error(&rp, 400, "", "self needs a container socket");
	get(f, f->web, "GET", "/v1/containers", &rp);
	assert_error(&rp, 403, "", "container 'web' may not call GET /v1/containers");
	get(f, f->web, "GET", "/v1/containers/db", &rp); /* another container: not its business */
	assert_error(&rp, 403, "", "container 'web' may not");
}

static void test_ready(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get(f, f->web, "POST", "/v1/containers/self/ready", &rp);
	reply_json(&rp, 200, &d);
	assert_int_equal(f->rt.ready_calls, 1);
	assert_string_equal(f->rt.ready_name, "web");
	assert_str(&d, 0, "container", "web");
	assert_str(&d, 0, "state", "READY");
	assert_int_equal(f->rt.c[0].state, CTR_READY);

	/* cfg is waiting to be restarted: the runtime refuses, the API says 409 */
	get(f, f->cfg, "POST", "/v1/containers/self/ready", &rp);
	assert_error(&rp, 409, "", "is backoff, not running");
	assert_string_equal(f->rt.ready_name, "cfg");
	/* the admin socket has no "self" */
	get(f, f->admin, "POST", "/v1/containers/self/ready", &rp);
	assert_error(&rp, 400, "", "self needs a container socket");
	assert_int_equal(f->rt.ready_calls, 2);

	/* a body (some clients send "{}") is read and ignored */
	const char req[] = POST_READY "Content-Length: 2\r\n\r\n{}";
	exchange_as(f, f->db, req, strlen(req), 0, &rp);
	assert_int_equal(rp.status, 200);
	assert_string_equal(f->rt.ready_name, "db");
	/* a socket whose container the runtime does not know */
	f->rt.n = 2;
	get(f, f->cfg, "POST", "/v1/containers/self/ready", &rp);
	assert_error(&rp, 404, "", "'cfg'");
	assert_int_equal(f->rt.ready_calls, 3);
}

static void test_unknown_and_method(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	char allow[64];
	const char *paths[] = {"/v1/nope", "/v1/status/", "/", "/v1//status", "/v2/status",
			       "/v1/containers/self/ready/x"};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		get(f, f->admin, "GET", paths[i], &rp);
		assert_error(&rp, 404, "", "no such route");
	}
	get(f, f->admin, "DELETE", "/v1/status", &rp);
	assert_error(&rp, 405, "", "DELETE is not allowed on /v1/status");
	assert_string_equal(header(&rp, "Allow", allow, sizeof(allow)), "GET");
	get(f, f->admin, "HEAD", "/v1/containers", &rp);
	assert_int_equal(rp.status, 405);
	get(f, f->web, "GET", "/v1/containers/self/ready", &rp);
	assert_error(&rp, 405, "", "allowed: POST");
	assert_string_equal(header(&rp, "Allow", allow, sizeof(allow)), "POST");
	get(f, f->web, "PUT", "/v1/containers/self", &rp);
	assert_string_equal(header(&rp, "Allow", allow, sizeof(allow)), "GET");
	assert_int_equal(f->rt.ready_calls, 0);
}

/* POST .../self/ready with a body of `n` bytes: one chunk, or a length. */
static size_t mkbody(char *req, size_t cap, size_t n, bool chunked)
{
	size_t len = (size_t)(chunked ? snprintf(req, cap, "%sTransfer-Encoding: chunked\r\n\r\n"
							   "%zx\r\n", POST_READY, n)
				      : snprintf(req, cap, "%sContent-Length: %zu\r\n\r\n",
						 POST_READY, n));
	memset(req + len, 'x', n);
	len += n;
	if (chunked)
		len += (size_t)snprintf(req + len, cap - len, "\r\n0\r\n\r\n");
	return len;
}

static void test_body_caps(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	/* declared too large: refused from the head alone, body never sent */
	const char big[] = POST_READY "Content-Length: 70000\r\n\r\n";
	exchange_as(f, f->web, big, strlen(big), 0, &rp);
	assert_error(&rp, 413, "", "larger than 65536");
	static char req[100 * 1024];
	size_t cap = sizeof(req);
	/* chunked, no length: counted as it arrives */
	exchange_as(f, f->web, req, mkbody(req, cap, 72 * 1024, true), 0, &rp);
	assert_error(&rp, 413, "", "larger than 65536");
	assert_int_equal(f->rt.ready_calls, 0);
	/* exactly at the cap, either way: accepted */
	exchange_as(f, f->web, req, mkbody(req, cap, CTRL_BODY_MAX, true), 0, &rp);
	assert_int_equal(rp.status, 200);
	exchange_as(f, f->web, req, mkbody(req, cap, CTRL_BODY_MAX, false), 0, &rp);
	assert_int_equal(rp.status, 200);
	assert_int_equal(f->rt.ready_calls, 2);
}

static void test_garbage_then_keepalive(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	const char junk[] = "\x01\x02 not http at all\r\n\r\n";
	exchange_as(f, f->admin, junk, sizeof(junk) - 1, 0, &rp);
	assert_true(rp.status == 400 || rp.status == -1); /* libmicrohttpd's own answer */
	static char huge[40 * 1024]; /* a head over the per-connection memory cap */
	size_t n = (size_t)snprintf(huge, sizeof(huge), "GET /v1/status HTTP/1.1\r\nX-Big: ");
	memset(huge + n, 'a', sizeof(huge) - n);
	exchange_as(f, f->admin, huge, sizeof(huge), 0, &rp);
	assert_int_equal(rp.status, 431);
	/* two requests on one connection */
	const char two[] = "GET /v1/status HTTP/1.1\r\nHost: c\r\n\r\n"
			   "GET /v1/containers/self HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
	exchange_as(f, f->db, two, strlen(two), 0, &rp);
	assert_int_equal(rp.status, 200);
	const char *second = strstr(rp.body, "HTTP/1.1 200");
	assert_true(second && strstr(second, "\"name\":\"db\""));
}

/* ---------------- tests: who is calling ---------------- */

static void test_admin_rejects_non_root(void **state)
{
	struct fx *f = *state;
	if (getuid() != 0)
		skip();
	struct reply rp;
	struct stat st;
	char req[256];
	mkreq(req, sizeof(req), "GET", "/v1/status");
	/* first line of defence: the file mode (0600) */
	assert_int_equal(stat(f->admin, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	exchange_as(f, f->admin, req, strlen(req), 65534, &rp);
	assert_string_equal(rp.raw, "CONNECT 13"); /* EACCES */
	/* second: SO_PEERCRED, even if the mode were wrong */
	assert_int_equal(chmod(f->admin, 0666), 0);
	exchange_as(f, f->admin, req, strlen(req), 65534, &rp);
	assert_error(&rp, 403, "", "root only, not uid 65534");
	/* container sockets are open to the container's (mapped) root */
	assert_int_equal(stat(f->web, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	exchange_as(f, f->web, req, strlen(req), 65534, &rp);
	assert_int_equal(rp.status, 200);
}

/* ---------------- tests: slow clients ---------------- */

struct slow {
	const char *path;
	unsigned bytes, every_ms;
};

/* Trickle a request head, one byte per every_ms; report how long until the
 * server closed ("closed <ms>") or that it never did ("open <ms>"). */
static int slow_main(void *arg, int out)
{
	struct slow *s = arg;
	char head[128] = "GET /v1/status HTTP/1.1\r\nHost: cairn\r\nX-Slow: ";
	memset(head + strlen(head), 'a', sizeof(head) - 1 - strlen(head));
	int fd = unix_connect(s->path);
	uint64_t t0 = now_ns();
	bool closed = fd < 0;
	for (unsigned i = 0; !closed && i < s->bytes && i < sizeof(head) - 1; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char b[256];
		closed = send(fd, head + i, 1, MSG_NOSIGNAL) != 1 ||
			 (poll(&p, 1, (int)s->every_ms) > 0 && read(fd, b, sizeof(b)) <= 0);
	}
	dprintf(out, "%s %llu", closed ? "closed" : "open",
		(unsigned long long)(now_ns() - t0) / MS);
	return 0;
}

static void test_slowloris_does_not_delay_others(void **state)
{
	struct fx *f = *state;
	struct slow s = {f->admin, 20, 100}; /* 2 s of trickling, under the 5 s deadline */
	char req[256];
	mkreq(req, sizeof(req), "GET", "/v1/status");
	struct exch x1 = {f->admin, req, strlen(req), 0, 300}, x2 = {f->web, req, strlen(req), 0, 900};
	struct kid k[3];
	kid_start(f, &k[0], slow_main, &s);
	kid_start(f, &k[1], exch_main, &x1);
	kid_start(f, &k[2], exch_main, &x2);
	pump(f, k, 3);
	assert_memory_equal(k[0].buf, "open", 4);
	for (int i = 1; i < 3; i++) {
		struct reply rp;
		parse_reply(k[i].buf, &rp);
		assert_int_equal(rp.status, 200);
		print_message("GET /v1/status beside a slowloris client: %llu us\n", rp.us);
		assert_true(rp.us < 100000);
	}
}

static void test_late_head_is_cut(void **state)
{
	struct fx *f = *state; /* conn_timeout_s = 1 */
	struct slow s = {f->web, 40, 100};
	struct kid k;
	kid_start(f, &k, slow_main, &s);
	pump(f, &k, 1);
	unsigned long long ms;
	if (sscanf(k.buf, "closed %llu", &ms) != 1)
		fail_msg("slow client was not cut: %s", k.buf);
	print_message("slow head cut after %llu ms (deadline 1000 ms)\n", ms);
	assert_true(ms >= 900 && ms <= 2500);
	/* the slot is free again and the socket serves */
	struct reply rp;
	get(f, f->web, "GET", "/v1/containers/self", &rp);
	assert_int_equal(rp.status, 200);
}

static void test_connection_cap(void **state)
{
	struct fx *f = *state; /* max_conns = 2, conn_timeout_s = 2 */
	struct slow idle = {f->admin, 15, 100};
	char req[256];
	mkreq(req, sizeof(req), "GET", "/v1/status");
	struct exch x = {f->admin, req, strlen(req), 0, 300};
	struct kid k[3];
	kid_start(f, &k[0], slow_main, &idle);
	kid_start(f, &k[1], slow_main, &idle);
	kid_start(f, &k[2], exch_main, &x);
	pump(f, k, 3);
	struct reply rp;
	parse_reply(k[2].buf, &rp);
	print_message("third client with both slots taken: %d after %llu us\n", rp.status, rp.us);
	/* Not served while both slots are held, but queued, not lost: served
	 * once the idle clients leave (1.5 s after they came, 1.2 s after it). */
	assert_int_equal(rp.status, 200);
	assert_true(rp.us > 1000000 && rp.us < 3000000);
	get(f, f->admin, "GET", "/v1/status", &rp);
	assert_int_equal(rp.status, 200);
}

/* ---------------- tests: socket lifecycle ---------------- */

static void test_remove_and_replace(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct reply rp;
	ctrl_container_remove(f->c, "web");
	assert_int_equal(access(f->web, F_OK), -1);
	get(f, f->web, "GET", "/v1/containers/self", &rp);
	assert_string_equal(rp.raw, "CONNECT 2"); /* ENOENT */
	ctrl_container_remove(f->c, "web"); /* twice: nothing */
	ctrl_container_remove(f->c, "nope");

	/* the same name again, then replaced by a new socket elsewhere */
	assert_int_equal(ctrl_container_add(f->c, "web", f->web, &e), 0);
	get(f, f->web, "GET", "/v1/containers/self", &rp);
	assert_int_equal(rp.status, 200);
	char other[128];
	path_in(f, other, "other");
	assert_int_equal(ctrl_container_add(f->c, "web", other, &e), 0);
	assert_int_equal(access(f->web, F_OK), -1);
	get(f, other, "GET", "/v1/containers/self", &rp);
	assert_int_equal(rp.status, 200);
	ctrl_container_remove(f->c, "web");
	assert_int_equal(access(other, F_OK), -1);

	/* the runtime drops db's socket inside the handler: the answer still
	 * goes out, the socket goes after MHD_run() (ASan checks the rest) */
	f->rt.remove_on_ready = f->c;
	get(f, f->db, "POST", "/v1/containers/self/ready", &rp);
	assert_int_equal(rp.status, 200);
	assert_int_equal(access(f->db, F_OK), -1);
	get(f, f->cfg, "GET", "/v1/containers/self", &rp);
	assert_int_equal(rp.status, 200);
}

/* A socket file at `p`, listening or left behind by a dead server. */
static int sock_file(const char *p, bool listening)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listening ? listen(fd, 1) : close(fd), 0);
	return listening ? fd : -1;
}

static void test_socket_files(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct reply rp;
	char p[128];
	/* a stale socket file from an earlier run is replaced */
	path_in(f, p, "stale.sock");
	sock_file(p, false);
	assert_int_equal(ctrl_container_add(f->c, "stale", p, &e), 0);
	get(f, p, "GET", "/v1/containers/self", &rp);
	assert_error(&rp, 404, "", "'stale' is not in the running revision");
	ctrl_container_remove(f->c, "stale");
	/* a live server on the path is never stolen */
	int fd = sock_file(p, true);
	assert_int_equal(ctrl_container_add(f->c, "stale", p, &e), -EADDRINUSE);
	assert_non_null(strstr(e.msg, "another server answers"));
	close(fd);
	unlink(p);
	/* nor is a file that is not a socket */
	path_in(f, p, "file");
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(ctrl_container_add(f->c, "x", p, &e), -EEXIST);
	assert_int_equal(access(p, F_OK), 0);
}

static void test_bad_arguments(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct reply rp;
	const char *bad[] = {"", "Web", "-a", "a/b", "..", "abcdefghijabcdefghijabcdefghijabc", NULL};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(ctrl_container_add(f->c, bad[i], f->web, &e), -EINVAL);
		assert_string_equal(e.field, "name");
	}
	assert_int_equal(ctrl_container_add(f->c, "rel", "rel.sock", &e), -EINVAL);
	assert_string_equal(e.field, "path");
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(ctrl_container_add(f->c, "long", longp, &e), -ENAMETOOLONG);
	assert_string_equal(e.field, "path");
	get(f, f->web, "GET", "/v1/containers/self", &rp); /* web untouched by all that */
	assert_int_equal(rp.status, 200);

	struct ctrl *c = NULL;
	struct ctrl_config cfg = {.loop = f->l};
	assert_int_equal(ctrl_new(&cfg, &c, &e), -EINVAL);
	assert_string_equal(e.field, "rt");
	cfg = (struct ctrl_config){.loop = f->l, .rt = &f->rt, .max_conns = 100000};
	assert_int_equal(ctrl_new(&cfg, &c, &e), -EINVAL);
	assert_string_equal(e.field, "max_conns");
	cfg = (struct ctrl_config){.loop = f->l, .rt = &f->rt, .admin_path = f->admin};
	assert_int_equal(ctrl_new(&cfg, &c, &e), -EADDRINUSE); /* the fixture's */
	assert_non_null(strstr(e.msg, "admin socket"));
	assert_null(c);
	cfg.admin_path = NULL; /* no admin socket at all is fine */
	assert_int_equal(ctrl_new(&cfg, &c, &e), 0);
	ctrl_free(c);
	ctrl_free(NULL);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* CTRL_TEST=name runs one test; CTRL_DEBUG=1 shows the server's log */
	if (getenv("CTRL_TEST"))
		cmocka_set_test_filter(getenv("CTRL_TEST"));
	if (getenv("CTRL_DEBUG"))
		log_set_level(LOGL_DEBUG);
	static unsigned short_timeout[] = {4, 1}, two_conns[] = {2, 2};
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_status),
		T(test_containers_list),
		T(test_self),
		T(test_ready),
		T(test_unknown_and_method),
		T(test_body_caps),
		T(test_garbage_then_keepalive),
		T(test_admin_rejects_non_root),
		T(test_slowloris_does_not_delay_others),
		cmocka_unit_test_prestate_setup_teardown(test_late_head_is_cut, setup, teardown,
							 short_timeout),
		cmocka_unit_test_prestate_setup_teardown(test_connection_cap, setup, teardown,
							 two_conns),
		T(test_remove_and_replace),
		T(test_socket_files),
		T(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
