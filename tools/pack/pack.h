/* tools/pack/pack.h — cairn-pack: build, sign, verify and install revisions
 * on a developer's machine or a manufacturing line. Never linked into PID 1.
 * A revision directory ("OUT") looks like:
 *   OUT/revision.json  OUT/revision.sig  OUT/objects/sha256/ab/<62 hex>
 * (the object layout is the device store's, so OUT can be opened with
 * storage_open()). */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/err.h"

/* keys.c — ECDSA P-256 keys and signatures (mbedtls). */
/* Write dir/signing.key (PEM private, mode 0600) and dir/signing.pub (PEM
 * public). Refuses to overwrite an existing key. */
int pack_keygen(const char *dir, struct err *e) _must_check_;
/* Sign outdir/revision.json with the PEM private key at keypath; creates
 * outdir/revision.sig or adds this key's signature to it (replacing an older
 * signature by the same key). */
int pack_sign(const char *outdir, const char *keypath, struct err *e) _must_check_;
/* The signature entry primitive: ECDSA-P256/SHA-256 over doc, DER signature
 * into sig (cap >= 80), key id of the signer. Used by pack_sign and tests. */
int pack_sign_bytes(const char *keypath, const void *doc, size_t len, unsigned char *sig,
		    size_t cap, size_t *siglen, char keyid[72], struct err *e) _must_check_;

/* build.c — SPEC.json (REV_PARSE_SPEC) -> outdir/revision.json + objects. */
int pack_build(const char *spec_path, const char *outdir, struct err *e) _must_check_;

/* verify.c — signature against trust (file or dir), schema, every object
 * present with the declared digest and size. On success `summary` gets one
 * line like "revision 12: 3 containers, 4 objects, 1/1 signatures valid". */
int pack_verify(const char *outdir, const char *trust_path, char *summary, size_t cap,
		struct err *e) _must_check_;

/* install.c — provisioning: install OUT into a storage directory (verified
 * against trust_path) and make it the committed revision. */
int pack_install(const char *outdir, const char *storage_dir, const char *trust_path, bool force,
		 uint64_t *rev, struct err *e) _must_check_;

#endif
