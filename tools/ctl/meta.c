/* tools/ctl/meta.c — user and device metadata, and the device commands
 * (reboot, poweroff, gc).
 *
 * User metadata is small key/value text the device keeps under
 * <storage>/meta/user/<key>; keys are cairn names. `meta get` prints the
 * value alone (for scripts), made printable only when stdout is a terminal. */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/util.h"

#define TEXT_MAX 1024
#define TARGET_MAX 128

static int key_target(const char *key, char *target, size_t cap)
{
	if (!name_valid(key))
		return ctl_fail(CTL_USAGE, "meta: '%s' is not a key ([a-z0-9][a-z0-9_-]{0,31})",
				key);
	if (str_fmt(target, cap, "/v1/meta/user/%s", key) < 0)
		return ctl_fail(CTL_USAGE, "meta: key too long");
	return CTL_OK;
}

/* The whole string token i, unescaped, on stdout. */
static int print_string(const struct jp *p, int i)
{
	size_t cap = (size_t)(p->tok[i].end - p->tok[i].start) + 1, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return ctl_fail(CTL_FAILED, "out of memory");
	if (jp_str(p, i, buf, cap, &len) < 0)
		return ctl_fail(CTL_UNREACHABLE, "meta: the device sent a malformed value");
	bool tty = isatty(STDOUT_FILENO);
	for (size_t k = 0; tty && k < len; k++)
		if ((unsigned char)buf[k] < 0x20 && buf[k] != '\n' && buf[k] != '\t')
			buf[k] = '?';
	fwrite(buf, 1, len, stdout);
	if (len == 0 || buf[len - 1] != '\n')
		fputc('\n', stdout);
	return CTL_OK;
}

static int meta_get(const struct ctl *c, const char *key)
{
	char target[TARGET_MAX];
	struct reply rp;
	int code = key_target(key, target, sizeof(target));
	if (code != CTL_OK || (code = api_call(c, "GET", target, NULL, 0, &rp)) != CTL_OK)
		return code;
	int v = jp_is(&rp.jp, 0, JSMN_STRING) ? 0 : jp_get(&rp.jp, 0, "value");
	if (c->json)
		api_print_json(&rp);
	else if (rp.tok && jp_is(&rp.jp, v, JSMN_STRING))
		code = print_string(&rp.jp, v);
	else if (rp.tok)
		show_value(&rp.jp, 0, 0, stdout);
	reply_free(&rp);
	return code;
}

static int meta_set(const struct ctl *c, const char *key, const char *value)
{
	char target[TARGET_MAX];
	struct reply rp;
	struct jw w;
	struct err e = ERR_INIT;
	int code = key_target(key, target, sizeof(target));
	if (code != CTL_OK)
		return code;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_kv_str(&w, "value", value);
	jw_obj_close(&w);
	if (jw_finish(&w, &e) < 0) {
		jw_free(&w);
		return ctl_fail(CTL_FAILED, "meta set: %s", e.msg);
	}
	code = api_call(c, "PUT", target, w.buf, w.len, &rp);
	jw_free(&w);
	if (code == CTL_OK && c->json)
		api_print_json(&rp);
	reply_free(&rp);
	return code;
}

static int meta_rm(const struct ctl *c, const char *key)
{
	char target[TARGET_MAX];
	struct reply rp;
	int code = key_target(key, target, sizeof(target));
	if (code != CTL_OK || (code = api_call(c, "DELETE", target, NULL, 0, &rp)) != CTL_OK)
		return code;
	if (c->json)
		api_print_json(&rp);
	reply_free(&rp);
	return CTL_OK;
}

/* KEY VALUE rows from {"key": "value", ...} (ctrl/API.md). */
static int show_kv(const struct jp *p)
{
	static const char *const hdr[] = {"KEY", "VALUE"};
	char text[TEXT_MAX];
	struct table t;
	if (!jp_is(p, 0, JSMN_OBJECT))
		return ctl_fail(CTL_UNREACHABLE, "metadata: expected an object");
	table_init(&t, hdr, 2);
	int k = 1;
	for (int m = 0; m < p->tok[0].size; m++, k = jp_next(p, k + 1)) {
		jv_text(p, k, text, sizeof(text));
		table_cell(&t, text);
		jv_text(p, k + 1, text, sizeof(text));
		table_cell(&t, text);
	}
	int code = table_print(&t, stdout);
	table_free(&t);
	return code;
}

int cmd_meta(const struct ctl *c, char **pos)
{
	const char *verb = pos[0];
	unsigned n = 0;
	while (n < 3 && pos[n])
		n++;
	if (!strcmp(verb, "ls") && n == 1)
		return get_and_show(c, "/v1/meta/user", show_kv);
	if (!strcmp(verb, "get") && n == 2)
		return meta_get(c, pos[1]);
	if (!strcmp(verb, "set") && n == 3)
		return meta_set(c, pos[1], pos[2]);
	if (!strcmp(verb, "rm") && n == 2)
		return meta_rm(c, pos[1]);
	return ctl_fail(CTL_USAGE, "meta: use 'meta ls', 'meta get KEY', 'meta set KEY VALUE' "
				   "or 'meta rm KEY'");
}

int cmd_device_meta(const struct ctl *c, char **pos)
{
	(void)pos;
	return get_and_show(c, "/v1/meta/device", show_kv);
}

/* ---------------- commands ---------------- */

/* gc: {"freed": bytes} */
static void show_freed(const struct jp *p)
{
	uint64_t freed = 0;
	char b[32];
	if (!jv_uint(p, 0, "freed", &freed)) {
		show_value(p, 0, 0, stdout);
		return;
	}
	show_bytes(freed, b, sizeof(b));
	printf("freed %s (%llu bytes)\n", b, (unsigned long long)freed);
}

static int command(const struct ctl *c, const char *name, const char *done)
{
	char target[TARGET_MAX];
	struct reply rp;
	if (str_fmt(target, sizeof(target), "/v1/commands/%s", name) < 0)
		return ctl_fail(CTL_FAILED, "command name too long");
	int code = api_call(c, "POST", target, NULL, 0, &rp);
	if (code != CTL_OK)
		return code;
	if (c->json)
		api_print_json(&rp);
	else if (done)
		printf("%s\n", done);
	else if (rp.tok)
		show_freed(&rp.jp);
	reply_free(&rp);
	return CTL_OK;
}

int cmd_reboot(const struct ctl *c, char **pos)
{
	(void)pos;
	return command(c, "reboot", "reboot requested");
}

int cmd_poweroff(const struct ctl *c, char **pos)
{
	(void)pos;
	return command(c, "poweroff", "poweroff requested");
}

int cmd_gc(const struct ctl *c, char **pos)
{
	(void)pos;
	return command(c, "gc", NULL);
}
