/* trails/boot.c — the boot state in <storage>/boot.json:
 *   {"committed": 12, "try": 13, "tries": 1}
 * "try" 0 means no try. Each change is one durable write (storage_write_durable):
 * a power cut leaves either the old or the new state, never a mix. */
#define LOG_MODULE "trails"
#include "trails.h"

#include <errno.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../storage/storage.h"

#define BOOT_FILE "boot.json"
#define BOOT_MAX 4096

static int boot_field(const struct jp *p, int obj, const char *key, long long max, long long *out,
		      struct err *e)
{
	int v = jp_get(p, obj, key);
	if (v < 0)
		return err_field(e, EINVAL, key, "missing in " BOOT_FILE);
	if (jp_int(p, v, 0, max, out) < 0)
		return err_field(e, EINVAL, key, "not an integer in 0..%lld", max);
	return 0;
}

static int boot_parse(const char *buf, size_t len, struct boot_state *out, struct err *e)
{
	jsmntok_t toks[16];
	struct jp p;
	int r = jp_parse(&p, buf, len, toks, (int)ARRAY_SIZE(toks), e);
	if (r < 0)
		return r;
	if (!jp_is(&p, 0, JSMN_OBJECT) || p.tok[0].size != 3)
		return err_set(e, EINVAL, "expected an object with committed, try and tries");
	long long committed, try_rev, tries;
	if ((r = boot_field(&p, 0, "committed", (long long)REV_MAX_NUMBER, &committed, e)) < 0 ||
	    (r = boot_field(&p, 0, "try", (long long)REV_MAX_NUMBER, &try_rev, e)) < 0 ||
	    (r = boot_field(&p, 0, "tries", 1000, &tries, e)) < 0)
		return r;
	out->committed = (uint64_t)committed;
	out->try_rev = (uint64_t)try_rev;
	out->tries = (unsigned)tries;
	return 0;
}

int trails_boot_read(struct storage *s, struct boot_state *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct err fe = ERR_INIT;
	int r = file_read_all(storage_root_fd(s), BOOT_FILE, BOOT_MAX, &buf, &len, &fe);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		*e = fe;
		return err_prefix(e, "boot state");
	}
	r = boot_parse(buf, len, out, e);
	if (r < 0)
		return err_prefix(e, "boot state %s", BOOT_FILE);
	return 0;
}

int trails_boot_write(struct storage *s, const struct boot_state *bs, struct err *e)
{
	char buf[128];
	struct jw w;
	jw_init_fixed(&w, buf, sizeof(buf));
	jw_obj_open(&w);
	jw_kv_uint(&w, "committed", bs->committed);
	jw_kv_uint(&w, "try", bs->try_rev);
	jw_kv_uint(&w, "tries", bs->tries);
	jw_obj_close(&w);
	int r = jw_finish(&w, e);
	if (r < 0)
		return r;
	r = storage_write_durable(storage_root_fd(s), BOOT_FILE, w.buf, w.len, 0644, e);
	if (r < 0)
		return err_prefix(e, "write boot state");
	return 0;
}
