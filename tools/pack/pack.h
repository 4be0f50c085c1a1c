/* tools/pack/pack.h — cairn-pack: build, sign, verify and install revisions
 * on a developer's machine or a manufacturing line. Never linked into PID 1.
 * A revision directory ("OUT") looks like:
 *   OUT/revision.json  OUT/revision.sig  OUT/objects/sha256/ab/<62 hex>
 * (the object layout is the device store's, so OUT can be opened with
 * storage_open()). A keys document (`cairn-pack keys`) gets a directory of its
 * own: OUT/keys.json  OUT/keys.sig. */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../lib/err.h"

struct trust;

/* keys.c — ECDSA P-256 keys and signatures (mbedtls). */
/* Write dir/signing.key (PEM private, mode 0600) and dir/signing.pub (PEM
 * public). Refuses to overwrite an existing key. */
int pack_keygen(const char *dir, struct err *e) _must_check_;
/* Sign the document of outdir with the PEM private key at keypath:
 * revision.json into revision.sig, or keys.json into keys.sig (outdir must
 * hold exactly one of the two). Creates the signature file or adds this
 * key's signature to it (replacing an older signature by the same key).
 * *signed_name (if not NULL): the document signed, "revision.json" or
 * "keys.json". pack_sign: the same, without telling. */
int pack_sign_doc(const char *outdir, const char *keypath, const char **signed_name,
		  struct err *e) _must_check_;
int pack_sign(const char *outdir, const char *keypath, struct err *e) _must_check_;
/* The signature entry primitive: ECDSA-P256/SHA-256 over doc, DER signature
 * into sig (cap >= 80), key id of the signer. Used by pack_sign and tests. */
int pack_sign_bytes(const char *keypath, const void *doc, size_t len, unsigned char *sig,
		    size_t cap, size_t *siglen, char keyid[72], struct err *e) _must_check_;

/* keysdoc.c — write outdir/keys.json (trails/REVISION.md "Signing keys"):
 * the keys document of this serial naming the PEM public keys in the files
 * pubs[0 .. n), each file's bytes as they are, in this order; `threshold`
 * of them must sign a revision. Checked as a device checks it (1 ... 32 P-256
 * keys, no key twice, threshold 1 ... n, at most KEYS_MAX_DOC bytes) before
 * anything is written. outdir is created if missing; an existing keys.json
 * is never replaced. The caller has checked serial (1 ... 2^53-1). */
int pack_keys(const char *outdir, uint64_t serial, unsigned threshold, const char *const *pubs,
	      size_t n, struct err *e) _must_check_;
/* dir/keys.json and dir/keys.sig, read (the caller frees *doc and *sig). */
int pack_keys_read(const char *dir, char **doc, size_t *doclen, char **sig, size_t *siglen,
		   struct err *e) _must_check_;
/* A keys document as t's signing keys, checked as a device checks it
 * (keys_doc_check: the roots' signature, the rules). */
int pack_keys_apply(struct trust *t, const char *doc, size_t doclen, const char *sig,
		    size_t siglen, struct err *e) _must_check_;
/* Both: --keys DIR for verify (and what a device with that document in
 * effect would accept). */
int pack_trust_keys(struct trust *t, const char *dir, struct err *e) _must_check_;

/* build.c — SPEC.json (REV_PARSE_SPEC) -> outdir/revision.json + objects. */
int pack_build(const char *spec_path, const char *outdir, struct err *e) _must_check_;

/* verify.c — signature against trust (file or dir; keys_dir, may be NULL: a
 * keys document whose signing keys count too), schema, every object
 * present with the declared digest and size. On success `summary` gets one
 * line like "revision 12: 3 containers, 4 objects, 1/1 signatures valid". */
int pack_verify(const char *outdir, const char *trust_path, const char *keys_dir, char *summary,
		size_t cap, struct err *e) _must_check_;

/* install.c — provisioning: install OUT into a storage directory (verified
 * against trust_path, and the signing keys of the storage's keys document
 * or of keys_dir's, which is stored too) and make it the committed revision. */
int pack_install(const char *outdir, const char *storage_dir, const char *trust_path,
		 const char *keys_dir, bool force, uint64_t *rev, struct err *e) _must_check_;

/* publish.c — the reference hub's files (tools/hub/README.md, trails/HUB.md).
 * Place OUT's objects under hubdir/v1/objects/sha256/<hex> (verified; hard
 * links when on one filesystem) and then its desired document for one
 * device, or for a group (hubdir/groups/<group>/desired and a copy for every
 * device listed in hubdir/groups/<group>/members). Exactly one of device,
 * group. trust_path may be NULL (then the signature is not checked here; the
 * device checks it anyway). keys_dir (may be NULL): its keys.json and
 * keys.sig travel in the desired document (trails/HUB.md), checked against
 * the roots with trust_path, and their keys count for the revision's check. */
struct pack_publish_result {
	uint64_t revision;
	size_t objects;     /* distinct objects of the revision */
	size_t present;     /* already on the hub */
	size_t linked;      /* hard-linked from OUT */
	size_t copied;      /* copied from OUT */
	uint64_t bytes_new; /* bytes of the linked and copied ones */
	size_t members;     /* --group: devices listed in members */
	size_t written;     /* device desired files written */
	size_t unchanged;   /* device desired files that already held this assignment */
};
int pack_publish(const char *outdir, const char *hubdir, const char *device, const char *group,
		 const char *trust_path, const char *keys_dir, struct pack_publish_result *res,
		 struct err *e) _must_check_;

/* fleet: one line (or with json, one JSON object) per device directory of
 * hubdir/v1/devices, from its desired file and its last status report. */
int pack_fleet(const char *hubdir, bool json, FILE *out, struct err *e) _must_check_;

#endif
