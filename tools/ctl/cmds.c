/* tools/ctl/cmds.c — the commands other than install: one request each
 * (run waits), a table or a listing by default, the API's JSON with --json. */
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/util.h"

#define TEXT_MAX 1024
#define TARGET_MAX 256
#define POLL_MS 250

bool parse_rev(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0 || v > (uint64_t)CTL_MAX_NUMBER)
		return false;
	*out = v;
	return true;
}

int get_and_show(const struct ctl *c, const char *target, int (*show)(const struct jp *p))
{
	struct reply rp;
	int code = api_call(c, "GET", target, NULL, 0, &rp);
	if (code != CTL_OK)
		return code;
	if (c->json)
		api_print_json(&rp);
	else if (rp.tok)
		code = show(&rp.jp);
	reply_free(&rp);
	return code;
}

static int show_listing(const struct jp *p)
{
	show_value(p, 0, 0, stdout);
	return CTL_OK;
}

/* ---------------- status, ps ---------------- */

static int show_status(const struct jp *p)
{
	char text[TEXT_MAX];
	uint64_t total = 0, ready = 0;
	int rev = jp_get(p, 0, "revision"), ctrs = jp_get(p, 0, "containers");
	if (rev >= 0)
		jv_text(p, rev, text, sizeof(text));
	printf("revision:   %s\n", rev < 0 || !strcmp(text, "null") ? "none" : text);
	jv_str(p, 0, "phase", text, sizeof(text));
	printf("phase:      %s\n", text[0] ? text : "-");
	if (jv_uint(p, ctrs, "total", &total) && jv_uint(p, ctrs, "ready", &ready))
		printf("containers: %llu/%llu ready\n", (unsigned long long)ready,
		       (unsigned long long)total);
	int k = 1;
	for (int m = 0; jp_is(p, 0, JSMN_OBJECT) && m < p->tok[0].size; m++) {
		if (!jp_streq(p, k, "revision") && !jp_streq(p, k, "phase") &&
		    !jp_streq(p, k, "containers"))
			show_member(p, k, 0, stdout);
		k = jp_next(p, k + 1);
	}
	return CTL_OK;
}

int cmd_status(const struct ctl *c, char **pos)
{
	(void)pos;
	return get_and_show(c, "/v1/status", show_status);
}

/* A cell from obj.key: its text, or `dflt` when absent or empty. */
static void cell(struct table *t, const struct jp *p, int obj, const char *key, const char *dflt)
{
	char text[TEXT_MAX];
	int i = jp_get(p, obj, key);
	if (i < 0) {
		table_cell(t, dflt);
		return;
	}
	jv_text(p, i, text, sizeof(text));
	table_cell(t, text[0] && strcmp(text, "null") ? text : dflt);
}

static void ps_row(struct table *t, const struct jp *p, int o)
{
	uint64_t pid = 0;
	bool met = false;
	int m = jp_get(p, o, "goal_met");
	cell(t, p, o, "name", "?");
	cell(t, p, o, "group", "-");
	cell(t, p, o, "state", "-");
	cell(t, p, o, "goal", "-");
	table_cell(t, m >= 0 && jp_bool(p, m, &met) == 0 ? (met ? "yes" : "no") : "-");
	if (jv_uint(p, o, "pid", &pid) && pid > 0)
		cell(t, p, o, "pid", "-");
	else
		table_cell(t, "-");
	cell(t, p, o, "restarts", "0");
	cell(t, p, o, "reason", "-");
}

static int show_ps(const struct jp *p)
{
	static const char *const hdr[] = {"NAME", "GROUP", "STATE",    "GOAL",
					  "MET",  "PID",   "RESTARTS", "REASON"};
	struct table t;
	if (!jp_is(p, 0, JSMN_ARRAY))
		return ctl_fail(CTL_UNREACHABLE, "GET /v1/containers: expected an array");
	table_init(&t, hdr, 8);
	int k = 1;
	for (int m = 0; m < p->tok[0].size; m++, k = jp_next(p, k))
		ps_row(&t, p, k);
	int code = table_print(&t, stdout);
	table_free(&t);
	return code;
}

int cmd_ps(const struct ctl *c, char **pos)
{
	(void)pos;
	return get_and_show(c, "/v1/containers", show_ps);
}

/* ---------------- logs ---------------- */

static int to_stdout(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	return write_all(STDOUT_FILENO, data, len);
}

int cmd_logs(const struct ctl *c, char **pos)
{
	char target[TARGET_MAX];
	if (!name_valid(pos[0]))
		return ctl_fail(CTL_USAGE, "logs: '%s' is not a container name "
					   "([a-z0-9][a-z0-9_-]{0,31})", pos[0]);
	if (str_fmt(target, sizeof(target), "/v1/logs/%s%s", pos[0],
		    c->follow ? "?follow=1" : "") < 0)
		return ctl_fail(CTL_USAGE, "logs: name too long");
	return api_stream(c, target, c->follow ? -1 : c->timeout_ms, to_stdout, NULL);
}

/* ---------------- revisions ---------------- */

/* "code: message" from an object with those two keys (named ck, mk). */
static void code_msg(const struct jp *p, int o, const char *ck, const char *mk, char *out,
		     size_t cap)
{
	char code[TEXT_MAX], msg[TEXT_MAX];
	jv_str(p, o, ck, code, sizeof(code));
	jv_str(p, o, mk, msg, sizeof(msg));
	if (str_fmt(out, cap, "%s%s%s", code, code[0] && msg[0] ? ": " : "", msg) < 0)
		jv_text(p, o, out, cap);
}

/* The engine records a failure as "failure": {"reason": code, "message",
 * ...} (trails/UPDATE.md); a plain "reason" string is taken too. */
void rev_reason(const struct jp *p, int o, char *out, size_t cap)
{
	int f = jp_get(p, o, "failure"), r = jp_get(p, o, "reason");
	out[0] = '\0';
	if (jp_is(p, f, JSMN_OBJECT))
		code_msg(p, f, "reason", "message", out, cap);
	else if (jp_is(p, r, JSMN_OBJECT))
		code_msg(p, r, "code", "message", out, cap);
	else if (jp_is(p, r, JSMN_STRING))
		jv_text(p, r, out, cap);
}

static void reason_cell(struct table *t, const struct jp *p, int o)
{
	char text[TEXT_MAX];
	rev_reason(p, o, text, sizeof(text));
	table_cell(t, text[0] ? text : "-");
}

/* Which roles the revision plays on the device: running, committed, try. */
static void flags_cell(struct table *t, const struct jp *p, int o)
{
	static const char *const names[] = {"running", "committed", "try"};
	char text[64] = "";
	size_t len = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		bool v = false;
		int k = jp_get(p, o, names[i]);
		if (k < 0 || jp_bool(p, k, &v) < 0 || !v)
			continue;
		if (str_fmt(text + len, sizeof(text) - len, "%s%s", len ? "," : "", names[i]) == 0)
			len = strlen(text);
	}
	table_cell(t, len ? text : "-");
}

static int show_revisions(const struct jp *p)
{
	static const char *const hdr[] = {"REV", "STATE", "ROLE", "REASON"};
	int arr = jp_is(p, 0, JSMN_ARRAY) ? 0 : jp_get(p, 0, "revisions");
	struct table t;
	if (!jp_is(p, arr, JSMN_ARRAY))
		return ctl_fail(CTL_UNREACHABLE, "GET /v1/revisions: expected an array");
	table_init(&t, hdr, 4);
	int k = arr + 1;
	for (int m = 0; m < p->tok[arr].size; m++, k = jp_next(p, k)) {
		cell(&t, p, k, "revision", "?");
		cell(&t, p, k, "state", "-");
		flags_cell(&t, p, k);
		reason_cell(&t, p, k);
	}
	int code = table_print(&t, stdout);
	table_free(&t);
	return code;
}

int cmd_revisions(const struct ctl *c, char **pos)
{
	(void)pos;
	return get_and_show(c, "/v1/revisions", show_revisions);
}

static int rev_target(const char *arg, const char *suffix, uint64_t *rev, char *target,
		      size_t cap)
{
	if (!parse_rev(arg, rev))
		return ctl_fail(CTL_USAGE, "'%s' is not a revision number (1 to 2^53-1)", arg);
	if (str_fmt(target, cap, "/v1/revisions/%llu%s", (unsigned long long)*rev, suffix) < 0)
		return ctl_fail(CTL_USAGE, "revision target too long");
	return CTL_OK;
}

int cmd_revision(const struct ctl *c, char **pos)
{
	char target[TARGET_MAX];
	uint64_t rev;
	int code = rev_target(pos[0], "", &rev, target, sizeof(target));
	return code != CTL_OK ? code : get_and_show(c, target, show_listing);
}

int cmd_progress(const struct ctl *c, char **pos)
{
	(void)pos;
	return get_and_show(c, "/v1/progress", show_listing);
}
