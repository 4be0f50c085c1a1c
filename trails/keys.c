/* trails/keys.c — the keys document: which signing keys the roots vouch for.
 *
 * keys.json + keys.sig (trails/REVISION.md "Signing keys" owns the format):
 *   {"spec": "cairn-keys@1", "serial": N, "threshold": T, "keys": [PEM, ...]}
 * signed by the roots only. Stored as <storage>/keys/<serial>/{keys.json,
 * keys.sig}; the highest serial that verifies is in effect.
 *
 * Decisions:
 * - keys.sig is checked before keys.json is parsed: an unsigned document is
 *   never interpreted (as for revisions).
 * - A new serial is written whole in keys/.new and renamed to keys/<serial>
 *   in one durable rename; older serials are removed afterwards (a failure
 *   there is logged: the higher serial wins at every boot anyway). A power
 *   cut leaves the old serial or the new one, never neither.
 * - At boot a serial whose files do not verify (damage) is skipped with an
 *   error in the log; the next lower one that verifies is used. Older
 *   serials are pruned once a new one is stored (they may name revoked
 *   keys), so in practice a damaged document leaves the roots alone: a
 *   revision signed by the roots still boots, one signed only by signing
 *   keys is refused until a new document arrives. */
#define LOG_MODULE "trails"
#include "trails_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"

#define KEYS_DIR "keys"
#define KEYS_NEW ".new"
#define KEYS_SERIAL_MAX ((1ull << 53) - 1)
#define KEYS_SERIALS_MAX 64 /* serial dirs considered at load: the highest */
/* the object, 4 members (8 tokens), TRUST_MAX_KEYS strings, and one more
 * so that a 33rd key is seen as too many, not as a token shortage */
#define KEYS_MAX_TOKENS (1 + 8 + TRUST_MAX_KEYS + 1)

static int keys_serial(const struct jp *p, int i, uint64_t *serial, struct err *e)
{
	long long v = 0;
	if (!jp_is(p, i, JSMN_PRIMITIVE) || jp_int(p, i, 1, (long long)KEYS_SERIAL_MAX, &v) < 0)
		return err_field(e, EINVAL, "serial", "must be an integer from 1 to 2^53-1");
	*serial = (uint64_t)v;
	return 0;
}

/* The keys array: n strings, unescaped into pem[] (freed by the caller). */
static int keys_pems(const struct jp *p, int arr, char **pem, size_t *len, size_t *n,
		     struct err *e)
{
	if (!jp_is(p, arr, JSMN_ARRAY))
		return err_field(e, EINVAL, "keys", "must be an array of PEM public keys");
	int count = p->tok[arr].size;
	if (count < 1 || count > TRUST_MAX_KEYS)
		return err_field(e, count ? E2BIG : EINVAL, "keys", "%d keys: 1 to %d allowed",
				 count, TRUST_MAX_KEYS);
	int i = arr + 1;
	for (int k = 0; k < count; k++, i = jp_next(p, i)) {
		char field[24];
		snprintf(field, sizeof(field), "keys[%d]", k);
		if (!jp_is(p, i, JSMN_STRING))
			return err_field(e, EINVAL, field, "must be a string (a PEM public key)");
		size_t cap = (size_t)(p->tok[i].end - p->tok[i].start) + 1;
		pem[k] = malloc(cap);
		if (!pem[k])
			return err_set(e, ENOMEM, "keys: out of memory");
		*n = (size_t)k + 1;
		if (jp_str(p, i, pem[k], cap, &len[k]) < 0)
			return err_field(e, EINVAL, field, "not a valid string");
	}
	return 0;
}

/* keys.json, already verified: its keys as a trust set. */
static int keys_parse(const char *doc, size_t len, struct trust **out, uint64_t *serial,
		      struct err *e)
{
	static const char *const names[] = {"spec", "serial", "threshold", "keys"};
	jsmntok_t toks[KEYS_MAX_TOKENS];
	struct jp p;
	int idx[4];
	int rc = jp_parse(&p, doc, len, toks, KEYS_MAX_TOKENS, e);
	if (rc < 0)
		return err_prefix(e, "keys.json");
	if (!jp_is(&p, 0, JSMN_OBJECT))
		return err_set(e, EINVAL, "keys.json: not a JSON object");
	if ((rc = trails_json_members(&p, 0, names, idx, 4, "", e)) < 0)
		return rc;
	if (!jp_is(&p, idx[0], JSMN_STRING) || !trails_json_is(&p, idx[0], KEYS_SPEC))
		return err_field(e, EINVAL, "spec", "must be \"%s\"", KEYS_SPEC);
	if ((rc = keys_serial(&p, idx[1], serial, e)) < 0)
		return rc;
	char *pem[TRUST_MAX_KEYS] = {NULL};
	size_t plen[TRUST_MAX_KEYS] = {0}, n = 0;
	long long th = 0;
	rc = keys_pems(&p, idx[3], pem, plen, &n, e);
	/* a revision.sig holds SIG_MAX_SIGS signatures: a higher threshold
	 * could never be met */
	size_t most = n < SIG_MAX_SIGS ? n : SIG_MAX_SIGS;
	if (rc == 0 && (!jp_is(&p, idx[2], JSMN_PRIMITIVE) ||
			jp_int(&p, idx[2], 1, (long long)most, &th) < 0))
		rc = err_field(e, EINVAL, "threshold", "must be an integer from 1 to %zu (%s)", most,
			       most == n ? "the keys" : "the signatures a revision.sig holds");
	if (rc == 0)
		rc = trust_from_pems((const char *const *)pem, plen, n, (unsigned)th, out, e);
	for (size_t k = 0; k < n; k++)
		free(pem[k]);
	return rc;
}

int keys_doc_check(const struct trust *t, const char *doc, size_t doclen, const char *sig,
		   size_t siglen, struct trust **out, uint64_t *serial, struct err *e)
{
	if (doclen > KEYS_MAX_DOC)
		return err_field(e, EFBIG, "document", "%zu bytes, more than the %u allowed", doclen,
				 KEYS_MAX_DOC);
	int rc = sig_verify_roots(t, "keys.sig", doc, doclen, sig, siglen, e);
	if (rc < 0)
		return rc;
	return keys_parse(doc, doclen, out, serial, e);
}

/* ---------------- on the storage ---------------- */

/* keys/<serial>/keys.json on s holds exactly doc (the same one again). */
static bool keys_same(struct storage *s, uint64_t serial, const char *doc, size_t doclen)
{
	char name[64];
	_cleanup_free_ char *cur = NULL;
	size_t len = 0;
	struct err e = ERR_INIT;
	snprintf(name, sizeof(name), KEYS_DIR "/%llu/keys.json", (unsigned long long)serial);
	return file_read_all(storage_root_fd(s), name, KEYS_MAX_DOC, &cur, &len, &e) == 0 &&
	       len == doclen && memcmp(cur, doc, len) == 0;
}

int keys_admit(struct storage *s, const struct trust *t, const char *doc, size_t doclen,
	       const char *sig, size_t siglen, struct trust **out, uint64_t *serial,
	       struct err *e)
{
	struct trust *keys = NULL;
	uint64_t have = trust_serial(t);
	*out = NULL;
	int rc = keys_doc_check(t, doc, doclen, sig, siglen, &keys, serial, e);
	if (rc < 0)
		return rc;
	if (*serial > have) {
		*out = keys;
		return 0;
	}
	trust_free(keys);
	if (*serial == have && keys_same(s, have, doc, doclen))
		return 0;
	return err_field(e, *serial == have ? EEXIST : ERANGE, "serial",
			 "%llu: the device has serial %llu (%s)", (unsigned long long)*serial,
			 (unsigned long long)have,
			 *serial == have ? "another document of that serial"
					 : "a key set never goes back");
}

static int keys_dirfd(struct storage *s, bool create, struct err *e)
{
	int root = storage_root_fd(s);
	if (create) {
		int rc = storage_mkdir_durable(root, KEYS_DIR, 0755, e);
		if (rc < 0)
			return err_prefix(e, "keys");
	}
	int fd = openat(root, KEYS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(e, errno, "%s/%s: %s", storage_root_path(s), KEYS_DIR,
			       strerror(errno));
	return fd;
}

/* Remove keys/<name> and what it holds (absent is fine). */
static int keys_rm(struct storage *s, const char *name, struct err *e)
{
	char path[PATH_MAX];
	if (str_fmt(path, sizeof(path), "%s/%s/%s", storage_root_path(s), KEYS_DIR, name) < 0)
		return err_set(e, ENAMETOOLONG, "keys/%s: path too long", name);
	return storage_rmtree(path, e);
}

/* Serial directory names under keys/, highest first; *n of them (the cap
 * highest, whatever else a damaged directory holds). */
static int keys_serials(int dirfd, uint64_t *out, size_t cap, size_t *n, struct err *e)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own position */
	_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return err_set(e, err, "keys: %s", strerror(err));
	}
	*n = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		uint64_t v;
		if (!trails_rev_dirname(de->d_name, &v) || v > KEYS_SERIAL_MAX ||
		    (*n == cap && out[cap - 1] >= v))
			continue;
		size_t at = *n < cap ? (*n)++ : cap - 1;
		while (at > 0 && out[at - 1] < v) {
			out[at] = out[at - 1];
			at--;
		}
		out[at] = v;
	}
	return errno ? err_set(e, errno, "keys: %s", strerror(errno)) : 0;
}

static int keys_read(int dirfd, uint64_t serial, char **doc, size_t *doclen, char **sig,
		     size_t *siglen, struct err *e)
{
	char name[48];
	snprintf(name, sizeof(name), "%llu/keys.json", (unsigned long long)serial);
	int rc = file_read_all(dirfd, name, KEYS_MAX_DOC, doc, doclen, e);
	if (rc == 0) {
		snprintf(name, sizeof(name), "%llu/keys.sig", (unsigned long long)serial);
		rc = file_read_all(dirfd, name, SIG_MAX_FILE, sig, siglen, e);
	}
	return rc;
}

/* keys/<serial> as t's signing keys, if it verifies and says that serial. */
static int keys_try(int dirfd, uint64_t serial, struct trust *t, struct err *e)
{
	_cleanup_free_ char *doc = NULL, *sig = NULL;
	size_t doclen = 0, siglen = 0;
	struct trust *k = NULL;
	uint64_t said = 0;
	int rc = keys_read(dirfd, serial, &doc, &doclen, &sig, &siglen, e);
	if (rc == 0)
		rc = keys_doc_check(t, doc, doclen, sig, siglen, &k, &said, e);
	if (rc == 0 && said != serial) {
		trust_free(k);
		rc = err_field(e, EINVAL, "serial", "%llu in a directory named %llu",
			       (unsigned long long)said, (unsigned long long)serial);
	}
	if (rc < 0)
		return rc;
	trust_set_signing(t, k, serial);
	return 0;
}

int keys_load(struct storage *s, struct trust *t, struct err *e)
{
	int fd = keys_dirfd(s, false, e);
	if (fd == -ENOENT) {
		err_clear(e);
		return 0;
	}
	if (fd < 0)
		return fd;
	_cleanup_close_ int dirfd = fd;
	struct err le = ERR_INIT;
	if (keys_rm(s, KEYS_NEW, &le) < 0)
		log_warn("keys: removing an interrupted write: %s", le.msg);
	uint64_t serials[KEYS_SERIALS_MAX];
	size_t n = 0;
	int rc = keys_serials(dirfd, serials, KEYS_SERIALS_MAX, &n, e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct err ke = ERR_INIT;
		if (keys_try(dirfd, serials[i], t, &ke) == 0) {
			log_info("keys: serial %llu in effect, %zu signing keys",
				 (unsigned long long)serials[i], trust_count(trust_signing(t)));
			return 0;
		}
		log_err("keys: serial %llu skipped: %s", (unsigned long long)serials[i], ke.msg);
	}
	return 0;
}

/* Remove every serial below `keep` (best effort: logged). */
static void keys_prune(struct storage *s, int dirfd, uint64_t keep)
{
	uint64_t serials[KEYS_SERIALS_MAX];
	size_t n = 0;
	struct err e = ERR_INIT;
	if (keys_serials(dirfd, serials, KEYS_SERIALS_MAX, &n, &e) < 0) {
		log_warn("keys: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char name[24];
		snprintf(name, sizeof(name), "%llu", (unsigned long long)serials[i]);
		if (serials[i] < keep && keys_rm(s, name, &e) < 0)
			log_warn("keys: removing serial %s: %s", name, e.msg);
	}
}

int keys_store(struct storage *s, uint64_t serial, const char *doc, size_t doclen,
	       const char *sig, size_t siglen, struct err *e)
{
	_cleanup_close_ int dirfd = keys_dirfd(s, true, e);
	if (dirfd < 0)
		return dirfd;
	char name[24];
	snprintf(name, sizeof(name), "%llu", (unsigned long long)serial);
	/* an interrupted write, or a damaged serial that was skipped at boot */
	int rc = keys_rm(s, KEYS_NEW, e);
	if (rc == 0)
		rc = keys_rm(s, name, e);
	if (rc == 0)
		rc = storage_mkdir_durable(dirfd, KEYS_NEW, 0755, e);
	_cleanup_close_ int nfd = rc < 0 ? -1
					 : openat(dirfd, KEYS_NEW,
						  O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (rc == 0 && nfd < 0)
		rc = err_set(e, errno, "%s: %s", KEYS_NEW, strerror(errno));
	if (rc == 0)
		rc = storage_write_durable(nfd, "keys.json", doc, doclen, 0644, e);
	if (rc == 0)
		rc = storage_write_durable(nfd, "keys.sig", sig, siglen, 0644, e);
	if (rc == 0)
		rc = storage_rename_durable(dirfd, KEYS_NEW, dirfd, name, e);
	if (rc < 0) {
		struct err le = ERR_INIT;
		if (keys_rm(s, KEYS_NEW, &le) < 0)
			log_warn("keys: %s", le.msg);
		return err_prefix(e, "keys: storing serial %s", name);
	}
	keys_prune(s, dirfd, serial);
	return 0;
}
