/* tools/pack/keysdoc.c — cairn-pack keys: a keys document, OUT/keys.json
 * (trails/REVISION.md "Signing keys"), naming the signing keys for the roots
 * to sign (cairn-pack sign, into OUT/keys.sig).
 *
 * Decisions:
 * - Everything a device checks is checked here first, by trails' own code
 *   where it exists: sig_keyid_from_pem() says what a PEM ECDSA P-256 public
 *   key is and gives the key id that finds a key given twice. A document
 *   this writes is one a device parses; its signature is another matter.
 * - Each key travels as its file's exact bytes, JSON-escaped. PEM is ASCII
 *   (RFC 7468); a file with other bytes is refused rather than altered (the
 *   JSON writer would replace invalid UTF-8).
 * - The output is compact, members in the spec's order: it is signed as
 *   bytes, and nobody needs to edit it by hand.
 * - An existing OUT/keys.json is never replaced, nor written beside a
 *   revision.json (sign would not know which to sign) or a keys.sig (the
 *   signature of some other document). keys.json is written atomically, so a
 *   failure leaves none. */
#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "../../lib/cleanup.h"
#include "../../lib/json.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"

#define PUB_MAX_PEM (16u * 1024) /* bytes of one public key file, as a trust *.pub */

struct pub {
	char *pem;
	size_t len;
	struct digest id;
};

struct pubs {
	struct pub v[TRUST_MAX_KEYS];
	size_t n;
};

static void pubs_free(struct pubs *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].pem);
	p->n = 0;
}

/* Bytes JSON carries unchanged: ASCII without NUL. */
static int pem_ascii(const struct pub *k, struct err *e)
{
	for (size_t i = 0; i < k->len; i++) {
		unsigned char c = (unsigned char)k->pem[i];
		if (c == 0 || c >= 0x80)
			return err_set(e, EINVAL, "byte 0x%02x at offset %zu: not a PEM file (ASCII)",
				       c, i);
	}
	return 0;
}

/* keys[i], from the file at path: a P-256 public key not given before. */
static int pub_read(struct pubs *p, const char *const *paths, size_t i, struct err *e)
{
	struct pub *k = &p->v[p->n];
	int rc = file_read_all(AT_FDCWD, paths[i], PUB_MAX_PEM, &k->pem, &k->len, e);
	if (rc < 0)
		return err_prefix(e, "keys[%zu]", i);
	p->n++;
	rc = pem_ascii(k, e);
	if (rc == 0)
		rc = sig_keyid_from_pem(k->pem, k->len, &k->id, e);
	if (rc < 0)
		return err_prefix(e, "keys[%zu] %s", i, paths[i]);
	for (size_t j = 0; j < i; j++)
		if (digest_eq(&p->v[j].id, &k->id))
			return err_set(e, EINVAL, "keys[%zu] %s: the same key as keys[%zu] %s", i,
				       paths[i], j, paths[j]);
	return 0;
}

static int doc_make(const struct pubs *p, uint64_t serial, unsigned threshold, struct jw *w,
		    struct err *e)
{
	jw_init_dyn(w, false);
	jw_obj_open(w);
	jw_kv_str(w, "spec", KEYS_SPEC);
	jw_kv_uint(w, "serial", serial);
	jw_kv_uint(w, "threshold", threshold);
	jw_key(w, "keys");
	jw_arr_open(w);
	for (size_t i = 0; i < p->n; i++)
		jw_strn(w, p->v[i].pem, p->v[i].len);
	jw_arr_close(w);
	jw_obj_close(w);
	int rc = jw_finish(w, e);
	if (rc == 0 && w->len > KEYS_MAX_DOC)
		rc = err_set(e, EFBIG, "keys.json would have %zu bytes, more than the %u allowed",
			     w->len, KEYS_MAX_DOC);
	return rc;
}

/* 0 while dirfd holds no `name`; else what is wrong (`why`). */
static int out_refuse(int dirfd, const char *outdir, const char *name, const char *why,
		      struct err *e)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return err_set(e, EEXIST, "%s/%s exists: %s", outdir, name, why);
	if (errno != ENOENT)
		return err_set(e, errno, "%s/%s: %s", outdir, name, strerror(errno));
	return 0;
}

static int out_files(int dirfd, const char *outdir, const struct jw *w, struct err *e)
{
	int rc = out_refuse(dirfd, outdir, "keys.json", "refusing to replace a keys document", e);
	if (rc == 0)
		rc = out_refuse(dirfd, outdir, "keys.sig",
				"it signs some other keys.json; remove it or use a new directory", e);
	if (rc == 0)
		rc = out_refuse(dirfd, outdir, "revision.json",
				"a keys document goes in a directory of its own", e);
	if (rc == 0)
		rc = storage_write_durable(dirfd, "keys.json", w->buf, w->len, 0644, e);
	return rc;
}

/* OUT is created if missing, and removed again if nothing came of it. */
static int out_write(const char *outdir, const struct jw *w, struct err *e)
{
	bool created = mkdir(outdir, 0755) == 0;
	if (!created && errno != EEXIST)
		return err_set(e, errno, "create %s: %s", outdir, strerror(errno));
	_cleanup_close_ int dirfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = dirfd < 0 ? err_set(e, errno, "open %s: %s", outdir, strerror(errno))
			   : out_files(dirfd, outdir, w, e);
	if (rc < 0 && created)
		rmdir(outdir);
	return rc;
}

int pack_keys(const char *outdir, uint64_t serial, unsigned threshold, const char *const *pubs,
	      size_t n, struct err *e)
{
	_cleanup_(pubs_free) struct pubs p = {.n = 0};
	_cleanup_(jw_free) struct jw w = {0};
	if (n < 1 || n > TRUST_MAX_KEYS)
		return err_set(e, EINVAL, "PUB: %zu keys given, 1 to %d allowed", n, TRUST_MAX_KEYS);
	size_t most = n < SIG_MAX_SIGS ? n : SIG_MAX_SIGS; /* a revision.sig holds 16 */
	if (threshold < 1 || threshold > most)
		return err_set(e, EINVAL, "--threshold %u: must be 1 to %zu, %s", threshold, most,
			       most == n ? "the number of keys"
					 : "the signatures a revision.sig holds");
	for (size_t i = 0; i < n; i++) {
		int rc = pub_read(&p, pubs, i, e);
		if (rc < 0)
			return rc;
	}
	int rc = doc_make(&p, serial, threshold, &w, e);
	if (rc == 0)
		rc = out_write(outdir, &w, e);
	return rc;
}

/* ---------------- reading one back ---------------- */

int pack_keys_read(const char *dir, char **doc, size_t *doclen, char **sig, size_t *siglen,
		   struct err *e)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", dir, strerror(errno));
	int r = file_read_all(fd, "keys.json", KEYS_MAX_DOC, doc, doclen, e);
	if (r == 0)
		r = file_read_all(fd, "keys.sig", SIG_MAX_FILE, sig, siglen, e);
	return r < 0 ? err_prefix(e, "%s", dir) : 0;
}

int pack_keys_apply(struct trust *t, const char *doc, size_t doclen, const char *sig,
		    size_t siglen, struct err *e)
{
	struct trust *sg = NULL;
	uint64_t serial = 0;
	int r = keys_doc_check(t, doc, doclen, sig, siglen, &sg, &serial, e);
	if (r < 0)
		return err_prefix(e, "--keys");
	trust_set_signing(t, sg, serial);
	return 0;
}

int pack_trust_keys(struct trust *t, const char *dir, struct err *e)
{
	_cleanup_free_ char *doc = NULL, *sig = NULL;
	size_t doclen = 0, siglen = 0;
	int r = pack_keys_read(dir, &doc, &doclen, &sig, &siglen, e);
	return r < 0 ? r : pack_keys_apply(t, doc, doclen, sig, siglen, e);
}
