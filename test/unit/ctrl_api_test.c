/* test/unit/ctrl_api_test.c — the routes of ctrl/ over real sockets:
 * container control, logs (tail, follow, rotation), revisions, and the
 * authorization matrix read from ctrl/API.md. Objects, metadata and
 * commands: ctrl_store_test.c. Fakes: ctrl_fake.h. */
#include "ctrl_fake.h"

#include <dirent.h>

#define setup fx_setup
#define teardown fx_teardown

static struct ctrl_sock *sock_named(struct fx *f, const char *name)
{
	for (struct ctrl_sock *s = f->c->socks; s; s = s->next)
		if (strcmp(s->name, name) == 0 && !s->dead)
			return s;
	fail_msg("no socket %s", name);
	return NULL;
}

/* ---------------- containers ---------------- */

static void test_container_control(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get(f, f->admin, "POST", "/v1/containers/web/restart", &rp);
	reply_json(&rp, 202, &d);
	assert_str(&d, 0, "name", "web");
	assert_str(&d, 0, "state", "STOPPING");
	assert_string_equal(f->rt.op, "restart");
	assert_string_equal(f->rt.op_name, "web");
	/* busy: the runtime's refusal is a 409 with its message */
	get(f, f->admin, "POST", "/v1/containers/web/start", &rp);
	assert_error(&rp, 409, "", "web: is stopping");
	/* mgmt controls others, and itself through "self" */
	get(f, f->ops, "POST", "/v1/containers/db/stop", &rp);
	assert_int_equal(rp.status, 202);
	assert_string_equal(f->rt.op_name, "db");
	get(f, f->ops, "POST", "/v1/containers/self/restart", &rp);
	assert_int_equal(rp.status, 202);
	assert_string_equal(f->rt.op_name, "ops");
	int calls = f->rt.op_calls;
	/* a plain container controls nothing, not even itself */
	get(f, f->web, "POST", "/v1/containers/db/restart", &rp);
	assert_error(&rp, 403, "", "container 'web' may not call POST");
	get(f, f->web, "POST", "/v1/containers/web/stop", &rp);
	assert_int_equal(rp.status, 403);
	get(f, f->admin, "POST", "/v1/containers/self/stop", &rp);
	assert_error(&rp, 400, "", "self needs a container socket");
	get(f, f->admin, "POST", "/v1/containers/nope/start", &rp);
	assert_error(&rp, 404, "", "'nope' is not in the running revision");
	get(f, f->admin, "POST", "/v1/containers/No%20pe/start", &rp);
	assert_error(&rp, 400, "name", "is not a valid name");
	get(f, f->admin, "GET", "/v1/containers/web/start", &rp);
	assert_int_equal(rp.status, 405);
	char allow[64];
	assert_string_equal(header(&rp, "Allow", allow, sizeof(allow)), "POST");
	assert_int_equal(f->rt.op_calls, calls);
	/* a container reads its own status by name, not another's */
	get_json(f, f->web, "/v1/containers/web", 200, &d, &rp);
	assert_str(&d, 0, "name", "web");
}

/* ---------------- logs ---------------- */

/* Undo chunked transfer encoding of body in place; false if malformed. A
 * body cut after a whole chunk (a follower that hung up) ends there. */
static bool dechunk(char *body)
{
	char *in = body, *out = body;
	while (*in) {
		char *end;
		unsigned long n = strtoul(in, &end, 16);
		if (end == in || strncmp(end, "\r\n", 2) != 0)
			return false;
		in = end + 2;
		if (n == 0)
			break;
		if (strlen(in) < n + 2)
			return false;
		memmove(out, in, n);
		out += n;
		in += n + 2;
	}
	*out = '\0';
	return true;
}

static void test_logs(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	char p[160], ct[64];
	snprintf(p, sizeof(p), "%s/web.log", f->rt.logdir);
	write_file(p, "one\ntwo\nthree\n");
	get(f, f->admin, "GET", "/v1/logs/web", &rp);
	assert_int_equal(rp.status, 200);
	assert_string_equal(header(&rp, "Content-Type", ct, sizeof(ct)), "text/plain");
	assert_string_equal(rp.body, "one\ntwo\nthree\n");
	get(f, f->admin, "GET", "/v1/logs/web?tail=2", &rp);
	assert_string_equal(rp.body, "two\nthree\n");
	get(f, f->admin, "GET", "/v1/logs/web?tail=99", &rp);
	assert_string_equal(rp.body, "one\ntwo\nthree\n");
	get(f, f->admin, "GET", "/v1/logs/web?tail=0", &rp);
	assert_int_equal(rp.status, 200);
	assert_string_equal(rp.body, "");
	get(f, f->admin, "GET", "/v1/logs/web?tail=-1", &rp);
	assert_error(&rp, 400, "tail", "is not a line count");
	get(f, f->admin, "GET", "/v1/logs/web?follow=maybe", &rp);
	assert_error(&rp, 400, "follow", "must be 1");
	get(f, f->admin, "GET", "/v1/logs/web?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9", &rp);
	assert_error(&rp, 400, "query", "more than 8");
	/* its own log, by name or as "self"; not another's */
	get(f, f->web, "GET", "/v1/logs/self?tail=1", &rp);
	assert_int_equal(rp.status, 200);
	assert_string_equal(rp.body, "three\n");
	get(f, f->web, "GET", "/v1/logs/db", &rp);
	assert_int_equal(rp.status, 403);
	/* mgmt reads any; no file yet is an empty log */
	get(f, f->ops, "GET", "/v1/logs/db", &rp);
	assert_int_equal(rp.status, 200);
	assert_string_equal(rp.body, "");
	get(f, f->admin, "GET", "/v1/logs/zzz", &rp);
	assert_error(&rp, 404, "", "'zzz'");
}

struct follow_arg {
	const char *path, *url, *until;
	unsigned ms;
};

/* Follow a log until `until` shows up (or ms pass), then hang up. */
static int follow_main(void *arg, int out)
{
	struct follow_arg *a = arg;
	char req[256];
	int fd = unix_connect(a->path);
	if (fd < 0)
		return dprintf(out, "CONNECT %d", -fd) < 0;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: c\r\n\r\n", a->url);
	(void)!send(fd, req, (size_t)n, MSG_NOSIGNAL);
	static char b[16384];
	size_t len = 0;
	uint64_t end = now_ns() + a->ms * MS;
	while (len < sizeof(b) - 1 && now_ns() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = read(fd, b + len, sizeof(b) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		b[len] = '\0';
		if (a->until && strstr(b, a->until) && strstr(b, a->until)[strlen(a->until)] == '\r')
			break;
	}
	close(fd);
	dprintf(out, "0\n");
	return write_all(out, b, len) < 0;
}

static void test_logs_follow(void **state)
{
	struct fx *f = *state;
	char p[160];
	snprintf(p, sizeof(p), "%s/web.log", f->rt.logdir);
	write_file(p, "one\n");
	struct follow_arg a = {f->admin, "/v1/logs/web?follow=1", "five\n", 8000};
	struct follow_arg b = {f->web, "/v1/logs/self?follow=true&tail=0", "four\n", 5000};
	struct kid k[3];
	kid_start(f, &k[0], follow_main, &a);
	kid_start(f, &k[1], follow_main, &b);
	kid_start(f, &k[2], follow_main, &b);
	pump_for(f, 400);
	struct ctrl_sock *admin = NULL;
	for (struct ctrl_sock *s = f->c->socks; s; s = s->next)
		admin = s->caller.kind == CTRL_CALLER_ADMIN ? s : admin;
	assert_int_equal(admin->nfollowers, 1);
	assert_int_equal(sock_named(f, "web")->nfollowers, 2);
	/* a third follower on a container socket: over its limit of 2 */
	struct reply rp;
	get(f, f->web, "GET", "/v1/logs/self?follow=1", &rp);
	assert_error(&rp, 503, "", "2 log followers on this socket");
	FILE *fp = fopen(p, "a");
	fputs("two\nfour\n", fp);
	fclose(fp);
	pump_for(f, 500);
	/* rotation: the live file is unlinked and a new one started */
	assert_int_equal(unlink(p), 0);
	write_file(p, "five\n");
	pump(f, k, 3);
	struct reply r0, r1;
	parse_reply(k[0].buf, &r0);
	parse_reply(k[1].buf, &r1);
	assert_int_equal(r0.status, 200);
	char *body0 = strstr(r0.raw, "\r\n\r\n") + 4, *body1 = strstr(r1.raw, "\r\n\r\n") + 4;
	assert_true(dechunk(body0));
	assert_true(dechunk(body1));
	assert_string_equal(body0, "one\ntwo\nfour\nfive\n");
	assert_string_equal(body1, "two\nfour\n"); /* tail=0: only what came after */
	/* the clients hung up: their followers are gone, nothing stays suspended */
	pump_for(f, 600);
	assert_int_equal(admin->nfollowers, 0);
	assert_int_equal(sock_named(f, "web")->nfollowers, 0);
	assert_int_equal(f->c->nsuspended, 0);
}

/* A follower still suspended when its socket goes away (and when ctrl is
 * freed): resumed and ended before the daemon stops (ASan sees the rest). */
static void test_follow_then_remove(void **state)
{
	struct fx *f = *state;
	char p[160];
	snprintf(p, sizeof(p), "%s/db.log", f->rt.logdir);
	write_file(p, "x\n");
	struct follow_arg a = {f->db, "/v1/logs/self?follow=1", NULL, 3000};
	struct follow_arg b = {f->admin, "/v1/logs/db?follow=1", NULL, 60000};
	struct kid k[2];
	kid_start(f, &k[0], follow_main, &a);
	kid_start(f, &k[1], follow_main, &b);
	pump_for(f, 400);
	assert_int_equal(f->c->nsuspended, 2);
	ctrl_container_remove(f->c, "db");
	pump(f, k, 1);
	struct reply rp;
	parse_reply(k[0].buf, &rp);
	assert_int_equal(rp.status, 200);
	assert_non_null(strstr(rp.body, "x\n"));
	assert_int_equal(f->c->nsuspended, 1); /* the admin's follower still waits */
	/* teardown frees ctrl with it suspended; the client is killed there */
}

/* ---------------- revisions ---------------- */

static const char DOC[] = "{\n  \"spec\": \"cairn-revision@1\",\n  \"revision\": 5,\n"
			  "  \"note\": \"caf\xc3\xa9 \\\\ tab\\t\"\n}\n";
static const char SIG[] = "{\"spec\": \"cairn-signature@1\"}\n";

/* {"document": DOC, "signature": SIG} with DOC and SIG escaped. */
static size_t offer_body(char *buf, size_t cap, const char *doc, const char *sig)
{
	struct jw w;
	jw_init_fixed(&w, buf, cap);
	jw_obj_open(&w);
	jw_kv_str(&w, "document", doc);
	jw_kv_str(&w, "signature", sig);
	jw_obj_close(&w);
	assert_int_equal(jw_finish(&w, NULL), 0);
	return w.len;
}

static void put_rev(struct fx *f, const char *url, const char *body, struct reply *rp)
{
	send_body(f, f->admin, "PUT", url, body, strlen(body), rp);
}

static void test_revisions_read(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->admin, "/v1/revisions", 200, &d, &rp);
	assert_true(d.tok[0].type == JSMN_ARRAY && d.tok[0].size == 1);
	get_json(f, f->ops, "/v1/revisions/4", 200, &d, &rp);
	assert_str(&d, 0, "state", "DONE");
	get(f, f->admin, "GET", "/v1/revisions/99", &rp);
	assert_error(&rp, 404, "", "revision 99: not on this device");
	const char *bad[] = {"/v1/revisions/abc", "/v1/revisions/007", "/v1/revisions/0",
			     "/v1/revisions/9007199254740992", "/v1/revisions/-1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		get(f, f->admin, "GET", bad[i], &rp);
		assert_error(&rp, 400, "revision", "is not a revision number");
	}
	get_json(f, f->admin, "/v1/progress", 200, &d, &rp);
	assert_str(&d, 0, "state", "idle");
	get(f, f->web, "GET", "/v1/progress", &rp);
	assert_int_equal(rp.status, 403);
}

static void test_revision_put(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	static char body[8192];
	offer_body(body, sizeof(body), DOC, SIG);
	put_rev(f, "/v1/revisions/5", body, &rp);
	reply_json(&rp, 202, &d);
	assert_int_equal(int_at(&d, 0, "revision"), 5);
	assert_str(&d, 0, "state", "DOWNLOADING");
	assert_int_equal(int_at(&d, 0, "missing_bytes"), 4096);
	int m = jp_get(&d.p, 0, "missing");
	assert_true(m > 0 && d.tok[m].size == 1);
	char dg[80];
	size_t n;
	assert_int_equal(jp_str(&d.p, m + 1, dg, sizeof(dg), &n), 0);
	assert_string_equal(dg, "sha256:abababababababababababababababababababababababababababababababab");
	/* the engine got the exact bytes, escapes undone */
	assert_int_equal(f->tr.offer_rev, 5);
	assert_int_equal(f->tr.offer_doclen, strlen(DOC));
	assert_string_equal(f->tr.offer_doc, DOC);
	assert_string_equal(f->tr.offer_sig, SIG);
	put_rev(f, "/v1/revisions/6", body, &rp);
	reply_json(&rp, 200, &d);
	assert_str(&d, 0, "state", "INSTALLED");
	/* the engine's refusals */
	put_rev(f, "/v1/revisions/7", body, &rp);
	assert_error(&rp, 422, "signature", "no valid signature");
	put_rev(f, "/v1/revisions/3", body, &rp);
	assert_error(&rp, 409, "revision", "lower than the committed");
	put_rev(f, "/v1/revisions/8", body, &rp);
	assert_error(&rp, 507, "", "needs 9000 bytes");
	/* a mgmt container may too, a plain one may not */
	send_body(f, f->ops, "PUT", "/v1/revisions/6", body, strlen(body), &rp);
	assert_int_equal(rp.status, 200);
	send_body(f, f->web, "PUT", "/v1/revisions/6", body, strlen(body), &rp);
	assert_int_equal(rp.status, 403);
}

static void test_revision_put_bad(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	f->tr.offer_rev = 0;
	const struct {
		const char *body, *field, *has;
	} bad[] = {
		{"{\"document\": \"x\"", "", "not valid JSON"},
		{"[1]", "", "must be a JSON object"},
		{"{\"document\": \"x\"}", "signature", "required"},
		{"{\"signature\": \"x\"}", "document", "required"},
		{"{\"document\": 5, \"signature\": \"x\"}", "document", "must be a string"},
		{"{\"document\": \"a\\u0000b\", \"signature\": \"x\"}", "", "not valid JSON"},
		{"{\"document\": \"\xff\", \"signature\": \"x\"}", "", "not valid JSON"},
		{"{\"document\": \"x\", \"signature\": \"x\", \"extra\": 1}", "extra", "unknown key"},
		{"{\"document\": \"x\", \"document\": \"y\", \"signature\": \"x\"}", "document",
		 "duplicate key"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_rev(f, "/v1/revisions/5", bad[i].body, &rp);
		assert_error(&rp, 400, bad[i].field, bad[i].has);
	}
	assert_int_equal(f->tr.offer_rev, 0); /* none reached the engine */
	/* this route's cap is 2.5 MiB: a 1 MiB document passes, 3 MiB do not */
	size_t big = REV_MAX_DOC;
	char *doc = malloc(big + 1), *body = malloc(big + 4096);
	memset(doc, 'a', big);
	doc[big] = '\0';
	size_t len = offer_body(body, big + 4096, doc, SIG);
	send_body(f, f->admin, "PUT", "/v1/revisions/6", body, len, &rp);
	assert_int_equal(rp.status, 200);
	assert_int_equal(f->tr.offer_doclen, big);
	doc[1000] = '\0';
	char head[256];
	int hn = snprintf(head, sizeof(head), "PUT /v1/revisions/6 HTTP/1.1\r\nHost: c\r\n"
					     "Content-Length: %d\r\n\r\n", 3 << 20);
	exchange_as(f, f->admin, head, (size_t)hn, 0, &rp);
	assert_error(&rp, 413, "", "larger than 2621440");
	/* a document over 1 MiB inside a body under the cap */
	char *doc2 = malloc(big + 2);
	memset(doc2, 'b', big + 1);
	doc2[big + 1] = '\0';
	free(body);
	body = malloc(big + 4096);
	len = offer_body(body, big + 4096, doc2, SIG);
	send_body(f, f->admin, "PUT", "/v1/revisions/6", body, len, &rp);
	assert_error(&rp, 413, "document", "more than 1048576");
	free(doc2);
	free(doc);
	free(body);
	/* other routes keep 64 KiB */
	hn = snprintf(head, sizeof(head), "PUT /v1/meta/user/k HTTP/1.1\r\nHost: c\r\n"
					  "Content-Length: 70000\r\n\r\n");
	exchange_as(f, f->admin, head, (size_t)hn, 0, &rp);
	assert_error(&rp, 413, "", "larger than 65536");
}

static void test_revision_run(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get(f, f->admin, "POST", "/v1/revisions/5/run", &rp);
	reply_json(&rp, 202, &d);
	assert_int_equal(int_at(&d, 0, "revision"), 5);
	assert_int_equal(f->tr.run_rev, 5);
	assert_int_equal(f->tr.run_admin, 1);
	get(f, f->ops, "POST", "/v1/revisions/6/run", &rp);
	assert_int_equal(rp.status, 202);
	assert_int_equal(f->tr.run_admin, 0); /* mgmt is not the admin socket */
	get(f, f->admin, "POST", "/v1/revisions/9/run", &rp);
	assert_error(&rp, 409, "", "being tried");
	get(f, f->admin, "POST", "/v1/revisions/77/run", &rp);
	assert_error(&rp, 404, "", "not installed");
	f->tr.run_rev = 0;
	get(f, f->web, "POST", "/v1/revisions/5/run", &rp);
	assert_int_equal(rp.status, 403);
	assert_int_equal(f->tr.run_rev, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CTRL_TEST"))
		cmocka_set_test_filter(getenv("CTRL_TEST"));
	if (getenv("CTRL_DEBUG"))
		log_set_level(LOGL_DEBUG);
	else
		log_set_level(LOGL_WARN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_container_control), T(test_logs),           T(test_logs_follow),
		T(test_follow_then_remove), T(test_revisions_read), T(test_revision_put),
		T(test_revision_put_bad),   T(test_revision_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
