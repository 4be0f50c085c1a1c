/* test/unit/ctrl_auth_test.c — the authorization matrix, walked whole over
 * real sockets against the table in ctrl/API.md (the spec is the oracle):
 * every route × {admin, a container with the mgmt role, a container without
 * roles, a non-root peer on the admin socket}. The table and the server's
 * route table must also list exactly the same routes. Run from the
 * repository root (make test-unit does). */
#include "ctrl_fake.h"

#define setup fx_setup
#define teardown fx_teardown

#define API_MD "ctrl/API.md"
#define MAX_ROWS 64

struct row {
	char method[8];
	char path[96];   /* as written: /v1/containers/NAME */
	char cell[3][8]; /* admin, mgmt, container: yes | no | own | 400 */
};

/* "`GET`" -> "GET"; trims spaces and backquotes. */
static void cell_text(const char *s, size_t n, char *out, size_t cap)
{
	while (n && (*s == ' ' || *s == '`'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '`'))
		n--;
	assert_true(n < cap);
	memcpy(out, s, n);
	out[n] = '\0';
}

/* The rows between the authorization table's markers. */
static size_t read_table(struct row *rows)
{
	char *text = NULL;
	size_t len, n = 0;
	struct err e = ERR_INIT;
	assert_int_equal(file_read_all(AT_FDCWD, API_MD, 1 << 20, &text, &len, &e), 0);
	char *p = strstr(text, "<!-- authorization table");
	char *end = p ? strstr(p, "<!-- end of authorization table") : NULL;
	assert_non_null(end);
	for (char *line = strchr(p, '\n') + 1; line < end; line = strchr(line, '\n') + 1) {
		if (strncmp(line, "| `", 3) != 0)
			continue; /* header and separator */
		char *col[6];
		int k = 0;
		for (char *q = line; *q != '\n' && k < 6; q++)
			if (*q == '|')
				col[k++] = q + 1;
		assert_int_equal(k, 6);
		struct row *r = &rows[n++];
		cell_text(col[0], (size_t)(col[1] - col[0] - 1), r->method, sizeof(r->method));
		cell_text(col[1], (size_t)(col[2] - col[1] - 1), r->path, sizeof(r->path));
		for (int c = 0; c < 3; c++)
			cell_text(col[2 + c], (size_t)(col[3 + c] - col[2 + c] - 1), r->cell[c],
				  sizeof(r->cell[c]));
		assert_true(n < MAX_ROWS);
	}
	free(text);
	return n;
}

/* A documented path with its placeholders (NAME, REV, KEY, sha256:HEX)
 * replaced by vals[0..3]. */
static void fill(const char *tmpl, const char *const vals[4], char *out, size_t cap)
{
	static const char *const words[] = {"NAME", "REV", "KEY", "sha256:HEX"};
	size_t o = 0;
	for (const char *s = tmpl; *s;) {
		size_t i = 0;
		while (i < ARRAY_SIZE(words) && strncmp(s, words[i], strlen(words[i])) != 0)
			i++;
		const char *v = i < ARRAY_SIZE(words) ? vals[i] : s;
		size_t vl = i < ARRAY_SIZE(words) ? strlen(v) : 1;
		assert_true(o + vl < cap);
		memcpy(out + o, v, vl);
		o += vl;
		s += i < ARRAY_SIZE(words) ? strlen(words[i]) : 1;
	}
	out[o] = '\0';
}

static void concrete(const char *tmpl, const char *name, char *out, size_t cap)
{
	const char *const vals[4] = {
		name, "5", "color",
		"sha256:abababababababababababababababababababababababababababababababab"};
	fill(tmpl, vals, out, cap);
}

/* The documented path as a route pattern. */
static void as_pattern(const char *tmpl, char *out, size_t cap)
{
	const char *const stars[4] = {"*", "*", "*", "*"};
	fill(tmpl, stars, out, cap);
}

/* A request as `sock`; PUT routes carry "{}". */
static void call(struct fx *f, const char *sock, uid_t uid, const struct row *r, const char *path,
		 struct reply *rp)
{
	char req[512];
	bool body = strcmp(r->method, "PUT") == 0;
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: c\r\nConnection: close\r\n%s\r\n%s", r->method,
			 path, body ? "Content-Length: 2\r\n" : "", body ? "{}" : "");
	exchange_as(f, sock, req, (size_t)n, uid, rp);
}

/* Does the answer match the cell? */
static void expect(const struct row *r, const char *who, const char *cell, bool own,
		   const struct reply *rp)
{
	bool self_400 = rp->status == 400 && strstr(rp->body, "self needs a container socket");
	bool ok = false;
	if (strcmp(cell, "yes") == 0 || (strcmp(cell, "own") == 0 && own))
		ok = rp->status != 403 && !self_400 && rp->status > 0;
	else if (strcmp(cell, "no") == 0 || strcmp(cell, "own") == 0)
		ok = rp->status == 403;
	else if (strcmp(cell, "400") == 0)
		ok = self_400;
	else
		fail_msg("API.md: %s %s: unknown cell '%s'", r->method, r->path, cell);
	if (!ok)
		fail_msg("%s %s as %s%s: API.md says %s, got: %s", r->method, r->path, who,
			 own ? " (own name)" : "", cell, rp->raw);
}

static void test_matrix(void **state)
{
	struct fx *f = *state;
	static struct row rows[MAX_ROWS];
	size_t n = read_table(rows);
	const char *who[3] = {"admin", "mgmt container", "container"};
	const char *sock[3] = {f->admin, f->ops, f->web};
	const char *own[3] = {NULL, "ops", "web"};
	unsigned calls = 0;
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		for (int c = 0; c < 3; c++) {
			char path[160];
			struct reply rp;
			concrete(r->path, "db", path, sizeof(path));
			call(f, sock[c], 0, r, path, &rp);
			expect(r, who[c], r->cell[c], false, &rp);
			calls++;
			if (!own[c] || !strstr(r->path, "NAME"))
				continue;
			concrete(r->path, own[c], path, sizeof(path));
			call(f, sock[c], 0, r, path, &rp);
			expect(r, who[c], r->cell[c], true, &rp);
			calls++;
		}
	}
	print_message("authorization matrix: %zu routes, %u requests, as API.md says\n", n, calls);
	assert_true(n >= 25);
}

static void test_non_root_admin(void **state)
{
	struct fx *f = *state;
	if (getuid() != 0)
		skip();
	static struct row rows[MAX_ROWS];
	size_t n = read_table(rows);
	assert_int_equal(chmod(f->admin, 0666), 0); /* past the file mode: SO_PEERCRED */
	for (size_t i = 0; i < n; i++) {
		char path[160];
		struct reply rp;
		concrete(rows[i].path, "db", path, sizeof(path));
		call(f, f->admin, 65534, &rows[i], path, &rp);
		bool head = strcmp(rows[i].method, "HEAD") == 0; /* no body to read */
		if (rp.status != 403 || (!head && !strstr(rp.body, "root only, not uid 65534")))
			fail_msg("%s %s as uid 65534: %s", rows[i].method, path, rp.raw);
	}
	assert_int_equal(f->reboots + f->poweroffs, 0);
	assert_int_equal(f->tr.gc_calls, 0);
}

/* Every route of the server is in API.md's table, and nothing else. */
static void test_table_is_complete(void **state)
{
	(void)state;
	static struct row rows[MAX_ROWS];
	size_t n = read_table(rows), nr;
	const struct ctrl_route *routes = ctrl_routes(&nr);
	bool seen[MAX_ROWS] = {false};
	for (size_t k = 0; k < nr; k++) {
		size_t i = 0;
		for (; i < n; i++) {
			char pat[160];
			as_pattern(rows[i].path, pat, sizeof(pat));
			if (strcmp(rows[i].method, routes[k].method) == 0 &&
			    strcmp(pat, routes[k].pattern) == 0)
				break;
		}
		if (i == n)
			fail_msg("route %s %s is not in API.md's table", routes[k].method,
				 routes[k].pattern);
		seen[i] = true;
	}
	for (size_t i = 0; i < n; i++)
		if (!seen[i])
			fail_msg("API.md lists %s %s, the server has no such route", rows[i].method,
				 rows[i].path);
	assert_int_equal(n, nr);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("CTRL_DEBUG"))
		log_set_level(LOGL_DEBUG);
	else
		log_set_level(LOGL_ERR);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_table_is_complete),
		T(test_matrix),
		T(test_non_root_admin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
