/* test/unit/ctrl_test.c — ctrl/ as a server: real unix sockets served by
 * libmicrohttpd from a real lib/loop — the basic routes, HTTP edge cases,
 * who is calling, slow and idle clients, the connection cap, and socket
 * files. The routes of the update engine, metadata, logs and commands, and
 * the authorization matrix, are in ctrl_api_test.c; fakes and the fixture
 * in ctrl_fake.h.
 *
 * Timing assertions use generous bounds; the tight ones (a slow or idle
 * crowd must not delay another client's request by 100 ms) measure only
 * the well-behaved client's own round trip. */
#include "ctrl_fake.h"

#define POST_READY "POST /v1/containers/self/ready HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"

#define setup fx_setup
#define teardown fx_teardown

/* ---------------- tests: routes ---------------- */

static void test_status(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->admin, "/v1/status", 200, &d, &rp);
	assert_true(is_null(&d, rp.body, 0, "revision"));
	assert_str(&d, 0, "phase", "starting");
	int ctrs = jp_get(&d.p, 0, "containers");
	assert_int_equal(int_at(&d, ctrs, "total"), 4);
	assert_int_equal(int_at(&d, ctrs, "ready"), 2);
	/* the boot state, as the engine keeps it */
	assert_int_equal(int_at(&d, 0, "committed"), 4);
	assert_int_equal(int_at(&d, 0, "try"), 5);
	f->tr.boot = (struct boot_state){4, 0, 0};

	ctrl_set_revision(f->c, 7);
	f->rt.phase = "ready";
	get_json(f, f->web, "/v1/status", 200, &d, &rp); /* containers may read it too */
	assert_int_equal(int_at(&d, 0, "revision"), 7);
	assert_str(&d, 0, "phase", "ready");
	assert_true(is_null(&d, rp.body, 0, "try"));
}

static void test_containers_list(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->admin, "/v1/containers", 200, &d, &rp);
	assert_true(d.tok[0].type == JSMN_ARRAY && d.tok[0].size == 4);
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
	assert_error(&rp, 400, "name", "'Bad Name' is not a valid name");
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

/* A refusal decided from the head waits for a small body before it answers:
 * closing on unread bytes would make the kernel reset the connection and
 * the client would never read the 403. */
static void test_refusal_reads_small_body(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	const char req[] = "PUT /v1/meta/user/k HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
			   "Content-Length: 14\r\n\r\n{\"value\": \"v\"}";
	struct exch x = {f->web, req, strlen(req), 0, 0, false, strlen(req) - 14, 300};
	exchange_x(f, &x, &rp);
	assert_error(&rp, 403, "", "container 'web' may not call PUT /v1/meta/user/k");
	assert_int_equal(rp.early, 0); /* answered after the body came */
	/* chunked too, and on the admin socket for a stranger */
	const char chunked[] = "PUT /v1/meta/user/k HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
	struct exch y = {f->cfg, chunked, strlen(chunked), 0, 0, false, 60, 300};
	exchange_x(f, &y, &rp);
	assert_error(&rp, 403, "", "container 'cfg' may not call PUT");
	assert_int_equal(rp.early, 0);
	/* a large declared body is refused at once */
	const char big[] = "PUT /v1/meta/user/k HTTP/1.1\r\nHost: c\r\nConnection: close\r\n"
			   "Content-Length: 70000\r\n\r\nxx";
	struct exch z = {f->web, big, strlen(big), 0, 0, false, strlen(big) - 2, 300};
	exchange_x(f, &z, &rp);
	assert_int_equal(rp.status, 403);
	assert_int_equal(rp.early, 1);
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
		assert_true(rp.us < 1000000); /* a stalled loop: seconds */
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

static struct ctrl_sock *admin_sock(struct fx *f)
{
	for (struct ctrl_sock *s = f->c->socks; s; s = s->next)
		if (s->caller.kind == CTRL_CALLER_ADMIN)
			return s;
	fail_msg("no admin socket");
	return NULL;
}

static unsigned conns_open(const struct ctrl_sock *s)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->nconns; i++)
		n += s->conns[i].fd >= 0;
	return n;
}

static void test_connection_cap_evicts(void **state)
{
	struct fx *f = *state; /* max_conns = 3, conn_timeout_s = 5 */
	struct slow idle = {f->admin, 25, 100};
	char req[256];
	mkreq(req, sizeof(req), "GET", "/v1/status");
	struct exch x = {f->admin, req, strlen(req), 0, 600};
	struct kid k[3];
	kid_start(f, &k[0], slow_main, &idle);
	/* k[0] is the older of the two: the server holds it before k[1] starts */
	uint64_t end = now_ns() + 10000 * MS;
	while (conns_open(admin_sock(f)) < 1) {
		assert_true(now_ns() < end);
		assert_true(loop_once(f->l, 5) >= 0);
	}
	kid_start(f, &k[1], slow_main, &idle);
	kid_start(f, &k[2], exch_main, &x);
	pump(f, k, 3);
	struct reply rp;
	parse_reply(k[2].buf, &rp);
	print_message("client taking the last slot: %d after %llu us; trickling: %s / %s\n",
		      rp.status, rp.us, k[0].buf, k[1].buf);
	/* the newcomer is served at once; the trickler waiting longest made room */
	assert_int_equal(rp.status, 200);
	assert_true(rp.us < 1000000); /* a stalled loop: seconds */
	assert_memory_equal(k[0].buf, "closed", 6);
	assert_memory_equal(k[1].buf, "open", 4);
	assert_int_equal(admin_sock(f)->evicted, 1);
	get(f, f->admin, "GET", "/v1/status", &rp);
	assert_int_equal(rp.status, 200);
}

/* A crowd on the admin socket: `idle` connections that never send a byte
 * and `slow` ones trickling one byte a second, for `secs` seconds. Reports
 * how many of them the server closed meanwhile: "crowd <closed>". */
struct crowd {
	const char *path;
	unsigned idle, slow, secs;
};

static int crowd_main(void *arg, int out)
{
	struct crowd *cr = arg;
	static int fds[512];
	unsigned n = cr->idle + cr->slow, closed = 0;
	for (unsigned i = 0; i < n; i++)
		if ((fds[i] = unix_connect(cr->path)) < 0)
			return dprintf(out, "connect %u: %d", i, -fds[i]) < 0;
	const char head[] = "GET /v1/status HTTP/1.1\r\nHost: c\r\nX-Slow: aaaaaaaaaaaaaaaaa";
	for (unsigned t = 0; t < cr->secs && t < sizeof(head) - 1; t++) {
		for (unsigned i = cr->idle; i < n; i++)
			(void)!send(fds[i], head + t, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		sleep(1);
	}
	for (unsigned i = 0; i < n; i++) {
		char b[64];
		closed += recv(fds[i], b, sizeof(b), MSG_DONTWAIT) == 0;
	}
	return dprintf(out, "crowd %u", closed) < 0;
}

static void test_crowd_does_not_delay_others(void **state)
{
	struct fx *f = *state; /* default cap (512), head deadline 10 s */
	struct crowd cr = {f->admin, 200, 20, 4};
	char req[256], ready[256];
	mkreq(req, sizeof(req), "GET", "/v1/status");
	mkreq(ready, sizeof(ready), "POST", "/v1/containers/self/ready");
	struct exch x1 = {f->admin, req, strlen(req), 0, 1500}, x2 = {f->admin, req, strlen(req), 0, 3000};
	struct exch xr = {f->web, ready, strlen(ready), 0, 2000};
	struct kid k[4];
	kid_start(f, &k[0], crowd_main, &cr);
	kid_start(f, &k[1], exch_main, &x1);
	kid_start(f, &k[2], exch_main, &x2);
	kid_start(f, &k[3], exch_main, &xr);
	pump(f, k, 4);
	print_message("%s (of 220 idle or trickling connections closed by the server)\n", k[0].buf);
	assert_string_equal(k[0].buf, "crowd 0"); /* under the cap: nobody evicted */
	for (int i = 1; i < 4; i++) {
		struct reply rp;
		parse_reply(k[i].buf, &rp);
		print_message("%s beside the crowd: %d in %llu us\n",
			      i == 3 ? "POST .../self/ready" : "GET /v1/status", rp.status, rp.us);
		assert_int_equal(rp.status, 200);
		assert_true(rp.us < 1000000); /* a stalled loop: seconds */
	}
	assert_string_equal(f->rt.ready_name, "web");
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
	static unsigned short_timeout[] = {4, 1}, three_conns[] = {3, 5}, defaults[] = {0, 10};
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_status),
		T(test_containers_list),
		T(test_self),
		T(test_ready),
		T(test_unknown_and_method),
		T(test_body_caps),
		T(test_refusal_reads_small_body),
		T(test_garbage_then_keepalive),
		T(test_admin_rejects_non_root),
		T(test_slowloris_does_not_delay_others),
		cmocka_unit_test_prestate_setup_teardown(test_late_head_is_cut, setup, teardown,
							 short_timeout),
		cmocka_unit_test_prestate_setup_teardown(test_connection_cap_evicts, setup, teardown,
							 three_conns),
		cmocka_unit_test_prestate_setup_teardown(test_crowd_does_not_delay_others, setup,
							 teardown, defaults),
		T(test_remove_and_replace),
		T(test_socket_files),
		T(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
