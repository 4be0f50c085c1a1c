/* tools/ctl/keys.c — the signing keys (trails/REVISION.md "Signing keys").
 *
 * `keys` shows what the device trusts (GET /v1/keys): the keys document in
 * effect, its serial, signing keys and threshold, and the roots on the image.
 * `keys install DIR` sends a keys document that cairn-pack keys wrote and the
 * roots signed, DIR/keys.json and DIR/keys.sig, as `install` sends a
 * revision (PUT /v1/keys); the device checks it against its roots. */
#include "ctl.h"

#include <string.h>

#include "../../trails/trails.h"

#define TEXT_MAX 256

/* Entries of the string array obj.key, or -1 when it is not an array. */
static int id_count(const struct jp *p, const char *key)
{
	int arr = jp_get(p, 0, key);
	return jp_is(p, arr, JSMN_ARRAY) ? p->tok[arr].size : -1;
}

/* The entries of obj.key, one a line, indented. */
static void show_ids(const struct jp *p, const char *key)
{
	char text[TEXT_MAX];
	int arr = jp_get(p, 0, key), k = arr + 1;
	for (int m = 0; m < p->tok[arr].size; m++, k = jp_next(p, k)) {
		jv_text(p, k, text, sizeof(text));
		printf("  %s\n", text);
	}
}

/* {"serial", "roots", "roots_threshold", "keys", "threshold"}. */
static int show_keys(const struct jp *p)
{
	uint64_t serial = 0, threshold = 0, roots_threshold = 0;
	int nkeys = id_count(p, "keys"), nroots = id_count(p, "roots");
	if (!jv_uint(p, 0, "serial", &serial) || !jv_uint(p, 0, "roots_threshold",
							   &roots_threshold) ||
	    nroots < 0 || (serial > 0 && (nkeys < 0 || !jv_uint(p, 0, "threshold", &threshold))))
		return ctl_fail(CTL_UNREACHABLE, "GET /v1/keys: expected {\"serial\", \"roots\", "
						 "\"roots_threshold\", \"keys\", \"threshold\"}");
	if (serial == 0) {
		printf("serial 0: no keys document, only the roots sign\n");
	} else {
		printf("serial %llu: %d signing key%s, threshold %llu\n",
		       (unsigned long long)serial, nkeys, nkeys == 1 ? "" : "s",
		       (unsigned long long)threshold);
		show_ids(p, "keys");
	}
	printf("roots: %d key%s, threshold %llu\n", nroots, nroots == 1 ? "" : "s",
	       (unsigned long long)roots_threshold);
	show_ids(p, "roots");
	return CTL_OK;
}

/* The answer to PUT: GET's, plus "changed". */
static int show_installed(const struct jp *p)
{
	uint64_t serial = 0;
	bool changed = false;
	int ch = jp_get(p, 0, "changed");
	if (!jv_uint(p, 0, "serial", &serial) || ch < 0 || jp_bool(p, ch, &changed) < 0)
		return ctl_fail(CTL_UNREACHABLE,
				"PUT /v1/keys: expected \"serial\" and \"changed\" in the answer");
	printf("keys serial %llu %s\n", (unsigned long long)serial,
	       changed ? "in effect" : "already in effect");
	return CTL_OK;
}

static int keys_install(const struct ctl *c, const char *dir)
{
	struct signed_doc sd = {0};
	struct reply rp;
	struct err e = ERR_INIT;
	if (signed_doc_read(&sd, dir, "keys.json", KEYS_MAX_DOC, "keys.sig", &e) < 0) {
		signed_doc_free(&sd);
		return ctl_fail(CTL_FAILED, "keys install: %s", e.msg);
	}
	int code = signed_doc_put(c, "/v1/keys", &sd, &rp);
	signed_doc_free(&sd);
	if (code != CTL_OK)
		return code;
	if (c->json)
		api_print_json(&rp);
	else
		code = show_installed(&rp.jp);
	reply_free(&rp);
	return code;
}

int cmd_keys(const struct ctl *c, char **pos)
{
	if (!pos[0])
		return get_and_show(c, "/v1/keys", show_keys);
	if (!strcmp(pos[0], "install") && pos[1] && !pos[2])
		return keys_install(c, pos[1]);
	return ctl_fail(CTL_USAGE, "keys: use 'keys' or 'keys install DIR'");
}
