/* test/unit/ctrl_store_test.c — the routes of ctrl/ that write to the
 * device, over real sockets: object uploads streamed into a real object
 * store in a temp dir (good, already there, wrong digest, refused, short,
 * interrupted, stalled — nothing under any name and a consistent store
 * after each failure), user and device metadata, commands, and every route
 * answering 503 when the part of cairn it needs is absent. ctrl_fake.h has
 * the fakes (its trails_object_begin opens a real storage_object_begin). */
#include "ctrl_fake.h"

#include <dirent.h>

#define setup fx_setup
#define teardown fx_teardown

#define BLOB (300 * 1024)

struct blob {
	char *bytes;
	size_t len;
	struct digest d;
	char name[DIGEST_STR_LEN + 1];
	char url[128];
};

static void blob_make(struct blob *b, size_t len, unsigned seed)
{
	b->bytes = malloc(len);
	assert_non_null(b->bytes);
	b->len = len;
	for (size_t i = 0; i < len; i++)
		b->bytes[i] = (char)((i * 31 + seed) ^ (i >> 9));
	sha256_buf(b->bytes, len, &b->d);
	digest_format(&b->d, b->name);
	snprintf(b->url, sizeof(b->url), "/v1/objects/%s", b->name);
}

static void want(struct fx *f, const struct blob *b)
{
	f->tr.wanted[f->tr.nwanted] = b->d;
	f->tr.wanted_size[f->tr.nwanted++] = b->len;
}

static int count_cb(const struct digest *d, void *ctx)
{
	struct fx *f = ctx;
	struct err e = ERR_INIT;
	if (storage_object_verify(f->st, d, UINT64_MAX, &e) < 0)
		fail_msg("store inconsistent: %s", e.msg);
	f->reboots++; /* borrowed as a counter */
	return 0;
}

/* Every object in the store verifies, there are `objects` of them, and
 * tmp/ holds no partial upload. */
static void store_check(struct fx *f, int objects)
{
	struct err e = ERR_INIT;
	int saved = f->reboots;
	f->reboots = 0;
	assert_int_equal(storage_object_list(f->st, count_cb, f, &e), 0);
	assert_int_equal(f->reboots, objects);
	f->reboots = saved;
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/tmp", f->storage);
	DIR *d = opendir(tmp);
	assert_non_null(d);
	struct dirent *de;
	int left = 0;
	while ((de = readdir(d)))
		left += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(left, 0);
}

/* ---------------- objects ---------------- */

static void test_object_upload(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	struct blob b;
	struct err e = ERR_INIT;
	blob_make(&b, BLOB, 1);
	want(f, &b);
	get(f, f->admin, "HEAD", b.url, &rp);
	assert_int_equal(rp.status, 404);
	send_body(f, f->admin, "PUT", b.url, b.bytes, b.len, &rp);
	reply_json(&rp, 201, &d);
	assert_str(&d, 0, "object", b.name);
	assert_int_equal(int_at(&d, 0, "size"), BLOB);
	assert_int_equal(storage_object_verify(f->st, &b.d, BLOB, &e), 0);
	assert_int_equal(f->tr.stored_calls, 1);
	assert_true(digest_eq(&f->tr.stored_last, &b.d));
	get(f, f->ops, "HEAD", b.url, &rp); /* mgmt may ask too */
	assert_int_equal(rp.status, 200);
	assert_string_equal(rp.body, ""); /* HEAD: no body */
	/* a second upload of what the device has: 200, body not read */
	send_body(f, f->admin, "PUT", b.url, b.bytes, b.len, &rp);
	reply_json(&rp, 200, &d);
	assert_int_equal(f->tr.stored_calls, 1);
	store_check(f, 1);
	/* an empty object is an object too */
	struct blob z = {.bytes = "", .len = 0};
	sha256_buf("", 0, &z.d);
	digest_format(&z.d, z.name);
	snprintf(z.url, sizeof(z.url), "/v1/objects/%s", z.name);
	want(f, &z);
	send_body(f, f->ops, "PUT", z.url, "", 0, &rp);
	assert_int_equal(rp.status, 201);
	store_check(f, 2);
	free(b.bytes);
}

static void test_object_wrong_digest(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct blob good, bad;
	blob_make(&good, BLOB, 2);
	blob_make(&bad, BLOB, 2);
	bad.bytes[BLOB / 2] ^= 1; /* one bit: another digest, same size */
	sha256_buf(bad.bytes, bad.len, &bad.d);
	want(f, &good);
	send_body(f, f->admin, "PUT", good.url, bad.bytes, bad.len, &rp);
	assert_error(&rp, 422, "body", "digest mismatch");
	assert_false(storage_object_has(f->st, &good.d));
	assert_false(storage_object_has(f->st, &bad.d));
	assert_int_equal(f->tr.stored_calls, 0);
	store_check(f, 0);
	/* the right bytes afterwards still go in */
	send_body(f, f->admin, "PUT", good.url, good.bytes, good.len, &rp);
	assert_int_equal(rp.status, 201);
	store_check(f, 1);
	free(good.bytes);
	free(bad.bytes);
}

static void test_object_refused(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct blob b;
	blob_make(&b, 4096, 3);
	send_body(f, f->admin, "PUT", b.url, b.bytes, b.len, &rp);
	assert_error(&rp, 404, "", "no revision being installed needs");
	want(f, &b);
	send_body(f, f->admin, "PUT", b.url, b.bytes, 4000, &rp);
	assert_error(&rp, 422, "Content-Length", "4000 bytes, the revision says 4096");
	f->tr.disk_full = true;
	send_body(f, f->admin, "PUT", b.url, b.bytes, b.len, &rp);
	assert_error(&rp, 507, "", "no space");
	f->tr.disk_full = false;
	const char *bad[] = {"/v1/objects/sha256:XYZ", "/v1/objects/sha512:ab",
			     "/v1/objects/sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		send_body(f, f->admin, "PUT", bad[i], "x", 1, &rp);
		assert_error(&rp, 400, "digest", "is not sha256:");
		get(f, f->admin, "HEAD", bad[i], &rp);
		assert_int_equal(rp.status, 400);
	}
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "PUT %s HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "4\r\nabcd\r\n0\r\n\r\n", b.url);
	exchange_as(f, f->admin, req, (size_t)n, 0, &rp);
	assert_error(&rp, 411, "Content-Length", "needs a Content-Length");
	send_body(f, f->web, "PUT", b.url, b.bytes, b.len, &rp);
	assert_error(&rp, 403, "", "container 'web' may not call PUT");
	get(f, f->web, "HEAD", b.url, &rp);
	assert_int_equal(rp.status, 403);
	assert_int_equal(f->tr.stored_calls, 0);
	store_check(f, 0);
	free(b.bytes);
}

struct partial {
	const char *path;
	char head[256];
	const char *body;
	size_t sent;
	bool half_close;
	unsigned sleep_ms; /* then read whatever comes */
};

/* Send a head declaring more than it sends, then leave (or wait). */
static int partial_main(void *arg, int out)
{
	struct partial *p = arg;
	int fd = unix_connect(p->path);
	if (fd < 0)
		return 1;
	(void)!send(fd, p->head, strlen(p->head), MSG_NOSIGNAL);
	(void)!send(fd, p->body, p->sent, MSG_NOSIGNAL);
	if (p->half_close)
		shutdown(fd, SHUT_WR);
	usleep(p->sleep_ms * 1000);
	if (p->half_close || p->sleep_ms) {
		static char b[4096];
		ssize_t n = read(fd, b, sizeof(b) - 1);
		dprintf(out, "0\n%.*s", n > 0 ? (int)n : 0, b);
		if (n <= 0)
			dprintf(out, "EOF");
	}
	return 0;
}

static void partial_upload(struct fx *f, const struct blob *b, bool half_close,
			   unsigned sleep_ms, struct reply *rp)
{
	struct partial p = {f->admin, "", b->bytes, b->len / 3, half_close, sleep_ms};
	snprintf(p.head, sizeof(p.head), "PUT %s HTTP/1.1\r\nHost: c\r\nContent-Length: %zu\r\n\r\n",
		 b->url, b->len);
	struct kid k;
	kid_start(f, &k, partial_main, &p);
	pump(f, &k, 1);
	pump_for(f, 300); /* let the server see the connection end */
	parse_reply(k.buf, rp);
}

static void test_object_interrupted(void **state)
{
	struct fx *f = *state; /* conn_timeout_s = 1 */
	struct reply rp;
	struct blob b;
	blob_make(&b, BLOB, 4);
	want(f, &b);
	/* the client goes away mid-body */
	partial_upload(f, &b, false, 0, &rp);
	store_check(f, 0);
	/* the client says it is done sending (a short body): no success */
	partial_upload(f, &b, true, 0, &rp);
	print_message("short body, half-closed: '%s'\n", rp.raw);
	assert_true(rp.status < 200 || rp.status >= 300);
	store_check(f, 0);
	/* the client stalls: closed at the idle timeout, nothing kept */
	partial_upload(f, &b, false, 2500, &rp);
	assert_string_equal(rp.raw, "EOF");
	store_check(f, 0);
	assert_false(storage_object_has(f->st, &b.d));
	assert_int_equal(f->tr.stored_calls, 0);
	/* and the socket serves on */
	send_body(f, f->admin, "PUT", b.url, b.bytes, b.len, &rp);
	assert_int_equal(rp.status, 201);
	store_check(f, 1);
	free(b.bytes);
}

/* ---------------- metadata ---------------- */

static void put_meta(struct fx *f, const char *sock, const char *key, const char *body,
		     struct reply *rp)
{
	char url[128];
	snprintf(url, sizeof(url), "/v1/meta/user/%s", key);
	send_body(f, sock, "PUT", url, body, strlen(body), rp);
}

static void test_meta_user(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get_json(f, f->web, "/v1/meta/user", 200, &d, &rp);
	assert_true(d.tok[0].type == JSMN_OBJECT && d.tok[0].size == 0);
	put_meta(f, f->admin, "color", "{\"value\": \"bl\\\"ue \\u00e9\\n\"}", &rp);
	reply_json(&rp, 200, &d);
	assert_str(&d, 0, "value", "bl\"ue \xc3\xa9\n");
	/* the file holds the exact bytes */
	char p[200], buf[64] = "";
	snprintf(p, sizeof(p), "%s/meta/user/color", f->storage);
	FILE *fp = fopen(p, "r");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, sizeof(buf), fp), 9);
	fclose(fp);
	assert_string_equal(buf, "bl\"ue \xc3\xa9\n");
	put_meta(f, f->ops, "size", "{\"value\": \"3\"}", &rp);
	assert_int_equal(rp.status, 200);
	put_meta(f, f->web, "size", "{\"value\": \"4\"}", &rp);
	assert_error(&rp, 403, "", "container 'web' may not call PUT");
	/* every container reads, sorted by key */
	get_json(f, f->cfg, "/v1/meta/user", 200, &d, &rp);
	assert_string_equal(rp.body, "{\"color\":\"bl\\\"ue \xc3\xa9\\n\",\"size\":\"3\"}\n");
	get_json(f, f->web, "/v1/meta/user/size", 200, &d, &rp);
	assert_str(&d, 0, "key", "size");
	assert_str(&d, 0, "value", "3");
	get(f, f->web, "DELETE", "/v1/meta/user/size", &rp);
	assert_int_equal(rp.status, 403);
	get(f, f->ops, "DELETE", "/v1/meta/user/size", &rp);
	reply_json(&rp, 200, &d);
	get(f, f->web, "GET", "/v1/meta/user/size", &rp);
	assert_error(&rp, 404, "key", "no user metadata 'size'");
	get(f, f->admin, "DELETE", "/v1/meta/user/size", &rp);
	assert_error(&rp, 404, "key", "no user metadata 'size'");
	get(f, f->admin, "GET", "/v1/meta/user/Bad", &rp);
	assert_error(&rp, 400, "key", "is not a valid key");
}

static void test_meta_bad(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	const struct {
		const char *body, *field, *has;
		int status;
	} bad[] = {
		{"", "", "not valid JSON", 400},
		{"{\"value\": 1}", "value", "must be a string", 400},
		{"{}", "value", "required", 400},
		{"{\"value\": \"a\", \"x\": 1}", "", "only \"value\"", 400},
		{"\"a\"", "", "must be a JSON object", 400},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_meta(f, f->admin, "k", bad[i].body, &rp);
		assert_error(&rp, bad[i].status, bad[i].field, bad[i].has);
	}
	static char body[2 * CTRL_META_VALUE_MAX];
	int n = snprintf(body, sizeof(body), "{\"value\": \"");
	memset(body + n, 'v', CTRL_META_VALUE_MAX + 1);
	snprintf(body + n + CTRL_META_VALUE_MAX + 1, 8, "\"}");
	put_meta(f, f->admin, "k", body, &rp);
	assert_error(&rp, 413, "value", "longer than 4096");
	snprintf(body + n + CTRL_META_VALUE_MAX, 8, "\"}"); /* exactly 4096: fine */
	put_meta(f, f->admin, "k", body, &rp);
	assert_int_equal(rp.status, 200);
	/* 32 KiB for all values: the 8th value of 4 KiB does not fit */
	char key[16];
	for (int i = 1; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		put_meta(f, f->admin, key, body, &rp);
		assert_int_equal(rp.status, 200);
	}
	put_meta(f, f->admin, "k8", body, &rp);
	assert_error(&rp, 507, "key", "user metadata full");
	/* replacing a key counts its new size only */
	put_meta(f, f->admin, "k7", body, &rp);
	assert_int_equal(rp.status, 200);
	/* 64 keys at most */
	for (int i = 0; i < 8; i++) {
		char url[64];
		snprintf(url, sizeof(url), "/v1/meta/user/k%.*d", i ? 1 : 0, i);
		get(f, f->admin, "DELETE", url, &rp);
		assert_int_equal(rp.status, 200);
	}
	for (int i = 0; i < CTRL_META_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		put_meta(f, f->admin, key, "{\"value\": \"x\"}", &rp);
		assert_int_equal(rp.status, 200);
	}
	put_meta(f, f->admin, "one-more", "{\"value\": \"x\"}", &rp);
	assert_error(&rp, 507, "key", "65 keys (at most 64)");
}

static void test_meta_device(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	char p[200];
	get_json(f, f->web, "/v1/meta/device", 200, &d, &rp);
	assert_string_equal(rp.body, "{}\n"); /* no directory yet */
	snprintf(p, sizeof(p), "%s/meta", f->storage);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/meta/device", f->storage);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/meta/device/revision", f->storage);
	write_file(p, "4");
	snprintf(p, sizeof(p), "%s/meta/device/.revision.tmp-1", f->storage);
	write_file(p, "junk"); /* a durable write's temp file: not a key */
	snprintf(p, sizeof(p), "%s/meta/device/bootloader", f->storage);
	assert_int_equal(symlink("/etc/passwd", p), 0); /* never followed */
	get_json(f, f->web, "/v1/meta/device", 200, &d, &rp);
	assert_string_equal(rp.body, "{\"revision\":\"4\"}\n");
	get_json(f, f->cfg, "/v1/meta/device/revision", 200, &d, &rp);
	assert_str(&d, 0, "value", "4");
	get(f, f->admin, "GET", "/v1/meta/device/bootloader", &rp);
	assert_int_equal(rp.status, 500);
	char allow[64];
	get(f, f->admin, "PUT", "/v1/meta/device/revision", &rp);
	assert_int_equal(rp.status, 405);
	assert_string_equal(header(&rp, "Allow", allow, sizeof(allow)), "GET");
}

/* ---------------- commands ---------------- */

static void test_commands(void **state)
{
	struct fx *f = *state;
	struct reply rp;
	struct doc d;
	get(f, f->admin, "POST", "/v1/commands/reboot", &rp);
	reply_json(&rp, 202, &d);
	assert_str(&d, 0, "command", "reboot");
	pump_for(f, 20);
	assert_int_equal(f->reboots, 1);
	assert_string_equal(f->why, "reboot asked by admin (control API)");
	get(f, f->ops, "POST", "/v1/commands/poweroff", &rp);
	assert_int_equal(rp.status, 202);
	pump_for(f, 20);
	assert_int_equal(f->poweroffs, 1);
	assert_string_equal(f->why, "poweroff asked by container ops (control API)");
	get(f, f->web, "POST", "/v1/commands/reboot", &rp);
	assert_int_equal(rp.status, 403);
	pump_for(f, 20);
	assert_int_equal(f->reboots, 1);
	get_json(f, f->admin, "/v1/status", 200, &d, &rp); /* (GET on a command: 405) */
	get(f, f->admin, "GET", "/v1/commands/reboot", &rp);
	assert_int_equal(rp.status, 405);
	get(f, f->ops, "POST", "/v1/commands/gc", &rp);
	reply_json(&rp, 200, &d);
	assert_int_equal(int_at(&d, 0, "freed"), 12345);
	assert_int_equal(f->tr.gc_calls, 1);
	get(f, f->admin, "POST", "/v1/commands/poll-hub", &rp);
	assert_error(&rp, 501, "", "no hub configured");
}

/* ---------------- without engine, storage, hooks ---------------- */

/* One request without sockets; body of clen bytes (-1: none). */
static unsigned dispatch(struct ctrl *c, const char *method, const char *path, const char *body,
			 int64_t clen)
{
	static const struct ctrl_caller admin = {CTRL_CALLER_ADMIN, "", 0};
	struct ctrl_req rq = {.caller = &admin, .method = method, .path = path, .body = body,
			      .body_len = clen > 0 ? (size_t)clen : 0, .content_length = clen};
	struct ctrl_resp rs;
	ctrl_resp_init(c, &rs);
	ctrl_dispatch(c, &rq, &rs);
	ctrl_resp_finish(&rs);
	ctrl_resp_release(&rs);
	return rs.status;
}

static void test_parts_absent(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct ctrl *c = NULL;
	struct ctrl_config cfg = {.loop = f->l, .rt = &f->rt};
	assert_int_equal(ctrl_new(&cfg, &c, &e), 0);
	const char *obj = "/v1/objects/sha256:abababababababababababababababababababababababababababababababab";
	assert_int_equal(dispatch(c, "GET", "/v1/revisions", NULL, -1), 503);
	assert_int_equal(dispatch(c, "GET", "/v1/revisions/4", NULL, -1), 503);
	assert_int_equal(dispatch(c, "PUT", "/v1/revisions/4", "{\"document\":\"\",\"signature\":\"\"}", 30), 503);
	assert_int_equal(dispatch(c, "POST", "/v1/revisions/4/run", NULL, -1), 503);
	assert_int_equal(dispatch(c, "GET", "/v1/progress", NULL, -1), 503);
	assert_int_equal(dispatch(c, "HEAD", obj, NULL, -1), 503);
	assert_int_equal(dispatch(c, "PUT", obj, "abc", 3), 503);
	assert_int_equal(dispatch(c, "GET", "/v1/meta/user", NULL, -1), 503);
	assert_int_equal(dispatch(c, "PUT", "/v1/meta/user/k", "{\"value\":\"v\"}", 13), 503);
	assert_int_equal(dispatch(c, "GET", "/v1/meta/device/k", NULL, -1), 503);
	assert_int_equal(dispatch(c, "POST", "/v1/commands/reboot", NULL, -1), 503);
	assert_int_equal(dispatch(c, "POST", "/v1/commands/gc", NULL, -1), 503);
	assert_int_equal(dispatch(c, "GET", "/v1/status", NULL, -1), 200);
	ctrl_free(c);
	/* and through the fixture's full ctrl, the same upload goes in */
	struct blob b;
	blob_make(&b, 100, 5);
	want(f, &b);
	assert_int_equal(dispatch(f->c, "PUT", b.url, b.bytes, 99), 422); /* size != revision */
	f->tr.wanted_size[0] = 99;
	assert_int_equal(dispatch(f->c, "PUT", b.url, b.bytes, 99), 422); /* bytes != digest */
	store_check(f, 0);
	free(b.bytes);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CTRL_TEST"))
		cmocka_set_test_filter(getenv("CTRL_TEST"));
	if (getenv("CTRL_DEBUG"))
		log_set_level(LOGL_DEBUG);
	else
		log_set_level(LOGL_ERR);
	static unsigned short_idle[] = {8, 1};
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_object_upload),
		T(test_object_wrong_digest),
		T(test_object_refused),
		cmocka_unit_test_prestate_setup_teardown(test_object_interrupted, setup, teardown,
							 short_idle),
		T(test_meta_user),
		T(test_meta_bad),
		T(test_meta_device),
		T(test_commands),
		T(test_parts_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
