/* test/fuzz/ctrl_fuzz.c — the control API's request handling: route
 * matching, authorization, body caps and every handler, without sockets.
 *
 * Input: byte 0 picks the caller (even: the admin socket; odd: a container
 * socket, bits 1-2 pick which), then "METHOD\nPATH\n", then the body.
 * Checked on every input: the status is one the API documents, the body is
 * valid JSON (valid UTF-8 included), an error is {"error": string, "field":
 * string}, Allow is set exactly on 405, a "self" route from the admin socket
 * is 400 and the runtime hears of readiness only from a container's socket.
 *
 * routes.c is compiled into this file (not linked from libctrl.a) so the
 * libFuzzer build, which compiles only lib/, storage/ and trails/, gets it
 * too; its runtime calls land on the fake below. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ctrl/routes.c"

/* ---------------- fake runtime ---------------- */

struct runtime {
	int ready_calls;
	char ready_name[NAME_MAX_LEN + 1];
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

/* ---------------- target ---------------- */

static bool status_known(unsigned s)
{
	static const unsigned known[] = {200, 400, 403, 404, 405, 409, 413, 500, 503};
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[CTRL_RESP_MAX];
	static struct runtime rt;
	if (size < 1)
		return 0;
	log_set_level(LOGL_ERR); /* "container x reported ready" on every input */
	struct ctrl c = {.rt = &rt, .resp_buf = buf, .resp_cap = sizeof(buf)};
	struct ctrl_caller who = {CTRL_CALLER_ADMIN, ""};
	if (data[0] & 1)
		who = (struct ctrl_caller){CTRL_CALLER_CONTAINER, ((data[0] >> 1) & 3) == 3
									  ? "ghost"
									  : fake_names[(data[0] >> 1) & 3]};
	const uint8_t *p = data + 1, *end = data + size;
	char method[32], path[2048];
	take_line(&p, end, method, sizeof(method));
	take_line(&p, end, path, sizeof(path));
	struct ctrl_req rq = {.caller = &who, .method = method, .path = path,
			      .body = (const char *)p, .body_len = (size_t)(end - p)};
	struct ctrl_resp rs;
	ctrl_resp_init(&c, &rs);
	int calls = rt.ready_calls;
	ctrl_dispatch(&c, &rq, &rs);
	ctrl_resp_finish(&rs);

	size_t at;
	const char *why;
	if (!status_known(rs.status) || rs.w.len == 0 || rs.w.buf[rs.w.len - 1] != '\n' ||
	    json_validate(rs.w.buf, rs.w.len, &at, &why) < 0)
		abort();
	if (rs.status != 200)
		check_error_body(&rs);
	if ((rs.status == 405) != (rs.allow[0] != '\0'))
		abort();
	if (rt.ready_calls != calls &&
	    (who.kind != CTRL_CALLER_CONTAINER || strcmp(rt.ready_name, who.name) != 0))
		abort(); /* readiness only ever for the socket's own container */
	if (who.kind == CTRL_CALLER_ADMIN && strncmp(path, "/v1/containers/self", 19) == 0 &&
	    (path[19] == '\0' || strcmp(path + 19, "/ready") == 0) &&
	    (rs.status == 200 || rs.status == 409))
		abort();
	return 0;
}
