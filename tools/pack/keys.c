/* tools/pack/keys.c — ECDSA P-256 signing keys, revision.sig and keys.sig
 * (cairn-pack keygen and sign). See trails/REVISION.md for the signature file
 * format and trails/signature.c for its verification.
 *
 * Decisions:
 * - Keys are made with mbedtls (entropy + CTR-DRBG) on secp256r1 only; a key
 *   on another curve or of another type is refused before anything is signed.
 *   The private key file is created with O_EXCL, mode 0600: keygen never
 *   overwrites a key, and if signing.pub cannot be written the new
 *   signing.key is removed again, so a directory holds a pair or nothing.
 * - The key id comes from trails' sig_keyid_from_pem() on the public half,
 *   so the signer and the verifier cannot disagree on it.
 * - sign signs the one document OUT holds: revision.json into revision.sig,
 *   or a keys document, keys.json, into keys.sig (both present is an error:
 *   which one was meant is not for us to guess). Same format, same rules.
 * - sign keeps the entries of an existing signature file that parses (it is
 *   how several parties sign one document), replaces the entry of the same
 *   key, and rewrites the file atomically (storage_write_durable). An
 *   existing file that does not parse is replaced, with a warning. */
#define LOG_MODULE "pack"
#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "../../lib/cleanup.h"
#include "../../lib/json.h"
#include "../../lib/log.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"

#define KEY_MAX_PEM (16u * 1024) /* bytes of a private key file */
#define KEY_PEM_BUF 4096	 /* PEM output of one key (an RSA public half fits) */
#define SIG_DER_MAX 80
#define SIG_B64_MAX ((SIG_DER_MAX + 2) / 3 * 4)

struct rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* One entry of revision.sig, as text. */
struct sig_line {
	char alg[32];
	char keyid[DIGEST_STR_LEN + 1];
	char sig[SIG_B64_MAX + 1];
};

struct sig_list {
	struct sig_line v[SIG_MAX_SIGS];
	size_t n;
};

/* A document OUT may hold, and the file of its signatures. */
struct sign_files {
	const char *doc, *sig;
	size_t max; /* bytes of doc */
};

enum { DOC_REVISION, DOC_KEYS };

static const struct sign_files sign_files[] = {
	[DOC_REVISION] = {"revision.json", "revision.sig", REV_MAX_DOC},
	[DOC_KEYS] = {"keys.json", "keys.sig", KEYS_MAX_DOC},
};

static void pk_freep(mbedtls_pk_context *pk)
{
	mbedtls_pk_free(pk);
}

static void rng_init(struct rng *r)
{
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
}

static void rng_freep(struct rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

static int mbed_err(struct err *e, int code, int mret, const char *what)
{
	char text[128];
	mbedtls_strerror(mret, text, sizeof(text));
	return err_set(e, code, "%s (mbedtls: %s)", what, text);
}

static int rng_seed(struct rng *r, struct err *e)
{
	static const char pers[] = "cairn-pack keys";
	int ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
					(const unsigned char *)pers, sizeof(pers) - 1);
	if (ret != 0)
		return mbed_err(e, EIO, ret, "cannot seed the random generator");
	return 0;
}

/* Key id of a key pair: through its public PEM, so that trails' rules (P-256
 * only) and trails' id apply unchanged. */
static int key_id(mbedtls_pk_context *pk, struct digest *id, struct err *e)
{
	unsigned char pem[KEY_PEM_BUF];
	int ret = mbedtls_pk_write_pubkey_pem(pk, pem, sizeof(pem));
	if (ret != 0)
		return mbed_err(e, EINVAL, ret, "cannot encode the public key");
	return sig_keyid_from_pem((const char *)pem, strlen((const char *)pem), id, e);
}

/* Load a PEM private key; P-256 only. The file's bytes are wiped after use. */
static int key_load(const char *path, mbedtls_pk_context *pk, struct digest *id, struct err *e)
{
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	int rc = file_read_all(AT_FDCWD, path, KEY_MAX_PEM, &pem, &len, e);
	if (rc < 0)
		return err_prefix(e, "signing key");
	/* file_read_all NUL-terminates; mbedtls wants that NUL counted for PEM */
	int ret = mbedtls_pk_parse_key(pk, (const unsigned char *)pem, len + 1, NULL, 0);
	mbedtls_platform_zeroize(pem, len);
	if (ret != 0) {
		mbed_err(e, EINVAL, ret, "not an unencrypted PEM private key");
		return err_prefix(e, "signing key %s", path);
	}
	rc = key_id(pk, id, e);
	if (rc < 0)
		return err_prefix(e, "signing key %s", path);
	return 0;
}

int pack_sign_bytes(const char *keypath, const void *doc, size_t len, unsigned char *sig,
		    size_t cap, size_t *siglen, char keyid[72], struct err *e)
{
	_cleanup_(pk_freep) mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	_cleanup_(rng_freep) struct rng rng;
	rng_init(&rng);
	unsigned char hash[32], out[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	struct digest id;
	size_t n = 0;

	int rc = key_load(keypath, &pk, &id, e);
	if (rc == 0)
		rc = rng_seed(&rng, e);
	if (rc < 0)
		return rc;
	if (mbedtls_sha256_ret(doc, len, hash, 0) != 0)
		return err_set(e, EIO, "sha256 failed");
	int ret = mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), out, &n,
				  mbedtls_ctr_drbg_random, &rng.drbg);
	if (ret != 0)
		return mbed_err(e, EIO, ret, "signing failed");
	if (n > cap)
		return err_set(e, ENOBUFS, "signature of %zu bytes does not fit in %zu", n, cap);
	memcpy(sig, out, n);
	*siglen = n;
	digest_format(&id, keyid);
	return 0;
}

/* ---------------- keygen ---------------- */

/* Create dirfd/name (never an existing one), write, fsync. On failure the
 * half-written file is removed. */
static int file_create(int dirfd, const char *dir, const char *name, const void *buf, size_t len,
		       mode_t mode, struct err *e)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST)
		return err_set(e, EEXIST, "%s/%s exists: refusing to overwrite a key", dir, name);
	if (fd < 0)
		return err_set(e, errno, "create %s/%s: %s", dir, name, strerror(errno));
	int rc = write_all(fd, buf, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dirfd, name, 0);
		return err_set(e, -rc, "write %s/%s: %s", dir, name, strerror(-rc));
	}
	return 0;
}

static int key_generate(mbedtls_pk_context *pk, struct err *e)
{
	_cleanup_(rng_freep) struct rng rng;
	rng_init(&rng);
	int rc = rng_seed(&rng, e);
	if (rc < 0)
		return rc;
	int ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (ret == 0)
		ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
					  mbedtls_ctr_drbg_random, &rng.drbg);
	if (ret != 0)
		return mbed_err(e, EIO, ret, "cannot generate a P-256 key");
	return 0;
}

/* Write the pair: signing.key first (the precious half), then signing.pub;
 * if the second fails, the first is removed again. */
static int pair_store(int dirfd, const char *dir, mbedtls_pk_context *pk, struct err *e)
{
	unsigned char key[KEY_PEM_BUF], pub[KEY_PEM_BUF];
	int ret = mbedtls_pk_write_key_pem(pk, key, sizeof(key));
	if (ret == 0)
		ret = mbedtls_pk_write_pubkey_pem(pk, pub, sizeof(pub));
	if (ret != 0) {
		mbedtls_platform_zeroize(key, sizeof(key));
		return mbed_err(e, EIO, ret, "cannot encode the key");
	}
	int rc = file_create(dirfd, dir, "signing.key", key, strlen((char *)key), 0600, e);
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc < 0)
		return rc;
	rc = file_create(dirfd, dir, "signing.pub", pub, strlen((char *)pub), 0644, e);
	if (rc < 0) {
		unlinkat(dirfd, "signing.key", 0);
		return rc;
	}
	if (fsync(dirfd) < 0)
		return err_set(e, errno, "fsync %s: %s", dir, strerror(errno));
	return 0;
}

int pack_keygen(const char *dir, struct err *e)
{
	_cleanup_(pk_freep) mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(e, errno, "keygen %s: %s", dir, strerror(errno));
	int rc = key_generate(&pk, e);
	if (rc == 0)
		rc = pair_store(dirfd, dir, &pk, e);
	if (rc < 0)
		return err_prefix(e, "keygen");
	return 0;
}

/* ---------------- sign ---------------- */

static bool line_parse(const struct jp *p, int obj, struct sig_line *l)
{
	struct digest d;
	int a = jp_get(p, obj, "alg"), k = jp_get(p, obj, "keyid"), s = jp_get(p, obj, "sig");
	return jp_is(p, obj, JSMN_OBJECT) && p->tok[obj].size == 3 &&
	       jp_str(p, a, l->alg, sizeof(l->alg), NULL) == 0 && strcmp(l->alg, SIG_ALG) == 0 &&
	       jp_str(p, k, l->keyid, sizeof(l->keyid), NULL) == 0 &&
	       digest_parse(l->keyid, strlen(l->keyid), &d) == 0 &&
	       jp_str(p, s, l->sig, sizeof(l->sig), NULL) == 0;
}

/* Entries of the existing dirfd/name; false when there is none that parses
 * (a missing file, or one to be replaced). */
static bool sigs_read(int dirfd, const char *dir, const char *name, struct sig_list *l)
{
	_cleanup_free_ char *js = NULL;
	size_t len = 0;
	jsmntok_t toks[256];
	struct jp p;
	struct err e = ERR_INIT;
	l->n = 0;
	int rc = file_read_all(dirfd, name, SIG_MAX_FILE, &js, &len, &e);
	if (rc == -ENOENT)
		return false;
	if (rc == 0)
		rc = jp_parse(&p, js, len, toks, (int)ARRAY_SIZE(toks), &e);
	int arr = rc == 0 ? jp_get(&p, 0, "signatures") : -1;
	bool ok = arr >= 0 && p.tok[0].size == 2 && jp_streq(&p, jp_get(&p, 0, "spec"), SIG_SPEC) &&
		  jp_is(&p, arr, JSMN_ARRAY) && p.tok[arr].size <= SIG_MAX_SIGS;
	for (int m = 0, i = arr + 1; ok && m < p.tok[arr].size; m++, i = jp_next(&p, i))
		ok = line_parse(&p, i, &l->v[l->n++]);
	if (!ok) {
		log_warn("%s/%s: %s; replacing it", dir, name, rc < 0 ? e.msg : "malformed");
		l->n = 0;
	}
	return ok;
}

/* Add `add`, replacing an entry by the same key (name: the file, for errors). */
static int sigs_put(struct sig_list *l, const struct sig_line *add, const char *name,
		    struct err *e)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].keyid, add->keyid) == 0) {
			l->v[i] = *add;
			return 0;
		}
	}
	if (l->n >= SIG_MAX_SIGS)
		return err_set(e, E2BIG, "%s already holds %d signatures, the most allowed", name,
			       SIG_MAX_SIGS);
	l->v[l->n++] = *add;
	return 0;
}

static int sigs_write(int dirfd, const char *name, const struct sig_list *l, struct err *e)
{
	_cleanup_(jw_free) struct jw w;
	jw_init_dyn(&w, true);
	jw_obj_open(&w);
	jw_kv_str(&w, "spec", SIG_SPEC);
	jw_key(&w, "signatures");
	jw_arr_open(&w);
	for (size_t i = 0; i < l->n; i++) {
		jw_obj_open(&w);
		jw_kv_str(&w, "alg", l->v[i].alg);
		jw_kv_str(&w, "keyid", l->v[i].keyid);
		jw_kv_str(&w, "sig", l->v[i].sig);
		jw_obj_close(&w);
	}
	jw_arr_close(&w);
	jw_obj_close(&w);
	int rc = jw_finish(&w, e);
	if (rc < 0)
		return rc;
	return storage_write_durable(dirfd, name, w.buf, w.len, 0644, e);
}

static int line_make(const char *keypath, const char *doc, size_t len, struct sig_line *l,
		     struct err *e)
{
	unsigned char der[SIG_DER_MAX];
	size_t derlen = 0, b64len = 0;
	int rc = pack_sign_bytes(keypath, doc, len, der, sizeof(der), &derlen, l->keyid, e);
	if (rc < 0)
		return rc;
	if (mbedtls_base64_encode((unsigned char *)l->sig, sizeof(l->sig), &b64len, der, derlen))
		return err_set(e, EIO, "base64 of the signature does not fit");
	snprintf(l->alg, sizeof(l->alg), "%s", SIG_ALG);
	return 0;
}

/* Present, or there but unreadable (reading it then says why). */
static bool has_file(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, 0) == 0 || errno != ENOENT;
}

/* The one document in dirfd there is to sign. */
static int doc_pick(int dirfd, const struct sign_files **out, struct err *e)
{
	bool rev = has_file(dirfd, sign_files[DOC_REVISION].doc);
	bool keys = has_file(dirfd, sign_files[DOC_KEYS].doc);
	if (rev && keys)
		return err_set(e, EINVAL, "both revision.json and keys.json: keep a keys document "
					  "in a directory of its own");
	if (!rev && !keys)
		return err_set(e, ENOENT, "no revision.json (cairn-pack build) and no keys.json "
					  "(cairn-pack keys)");
	*out = &sign_files[keys ? DOC_KEYS : DOC_REVISION];
	return 0;
}

int pack_sign_doc(const char *outdir, const char *keypath, const char **signed_name,
		  struct err *e)
{
	_cleanup_close_ int dirfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(e, errno, "sign %s: %s", outdir, strerror(errno));
	_cleanup_free_ char *doc = NULL;
	const struct sign_files *d = NULL;
	size_t len = 0;
	struct sig_line line;
	struct sig_list list;

	int rc = doc_pick(dirfd, &d, e);
	if (rc == 0)
		rc = file_read_all(dirfd, d->doc, d->max, &doc, &len, e);
	if (rc == 0)
		rc = line_make(keypath, doc, len, &line, e);
	if (rc < 0)
		return err_prefix(e, "sign %s", outdir);
	sigs_read(dirfd, outdir, d->sig, &list);
	rc = sigs_put(&list, &line, d->sig, e);
	if (rc == 0)
		rc = sigs_write(dirfd, d->sig, &list, e);
	if (rc < 0)
		return err_prefix(e, "sign %s", outdir);
	if (signed_name)
		*signed_name = d->doc;
	return 0;
}

int pack_sign(const char *outdir, const char *keypath, struct err *e)
{
	return pack_sign_doc(outdir, keypath, NULL, e);
}
