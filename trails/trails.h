/* trails/trails.h — revisions: the document format and its validation, the
 * signature file and its verification against a trust directory.
 * trails/REVISION.md is the complete spec of revision.json and revision.sig.
 *
 * Everything here treats its input as hostile: explicit lengths, capped sizes
 * and token counts, whitelisted names, unknown keys rejected, and every error
 * names the offending field (err.field) in the document's own terms, e.g.
 *   containers[2].rootfs.object: not a sha256 digest */
#ifndef CAIRN_TRAILS_H
#define CAIRN_TRAILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/digest.h"
#include "../lib/err.h"
#include "../lib/json.h"
#include "../lib/util.h"

/* ---- caps: oversize input is rejected, never truncated ---- */
#define REV_MAX_DOC (1u << 20)   /* bytes of revision.json */
#define REV_MAX_TOKENS 32768     /* jsmn tokens */
#define REV_MAX_GROUPS 8
#define REV_MAX_CONTAINERS 64
#define REV_MAX_EXEC 64          /* argv entries */
#define REV_MAX_ARG 4096         /* bytes per argv entry, per lxc value, cmdline */
#define REV_MAX_VOLUMES 16       /* per container */
#define REV_MAX_ROLES 8          /* per container */
#define REV_MAX_LXC 64           /* extra lxc.* keys per container */
#define REV_MAX_PATH 4096        /* volume paths, spec-mode source paths */
#define REV_MAX_NUMBER 9007199254740991ull /* 2^53-1: exact in every JSON reader */

#define REV_SPEC "cairn-revision@1"
#define SIG_SPEC "cairn-signature@1"
#define SIG_ALG "ecdsa-p256-sha256"
#define SIG_MAX_FILE (64u * 1024) /* bytes of revision.sig */
#define SIG_MAX_SIGS 16
#define TRUST_MAX_KEYS 32

enum ctr_goal { GOAL_MOUNTED, GOAL_STARTED, GOAL_READY };
enum restart_policy { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };
enum update_mode { UPDATE_LIVE, UPDATE_REBOOT };
enum persistence { PERSIST_PERMANENT, PERSIST_REVISION, PERSIST_BOOT };
enum obj_format { OBJ_RAW, OBJ_SQUASHFS };
/* Where cairn-pack builds an object from (spec documents only). */
enum obj_src { OBJ_SRC_NONE, OBJ_SRC_DIR, OBJ_SRC_TAR, OBJ_SRC_FILE };

struct rev_objref {
	bool present;
	struct digest digest;
	uint64_t size;
	enum obj_format format;
	enum obj_src src; /* != NONE only when parsed with REV_PARSE_SPEC */
	char *src_path;
};

struct rev_group {
	char name[NAME_MAX_LEN + 1];
	unsigned timeout_s;
};

struct rev_volume {
	char name[NAME_MAX_LEN + 1];
	char *path; /* absolute path inside the container */
	enum persistence persistence;
};

struct rev_kv {
	char *key;
	char *value;
};

struct rev_container {
	char name[NAME_MAX_LEN + 1];
	unsigned group; /* index into revision.groups */
	struct rev_objref rootfs;
	char **exec;
	size_t nexec;
	enum ctr_goal goal;
	enum restart_policy restart;
	enum update_mode update;
	struct rev_volume *volumes;
	size_t nvolumes;
	char (*roles)[NAME_MAX_LEN + 1];
	size_t nroles;
	struct rev_kv *lxc;
	size_t nlxc;
};

struct rev_bsp {
	bool present;
	struct rev_objref kernel;   /* required when bsp is present */
	struct rev_objref initrd;   /* optional */
	struct rev_objref modules;  /* optional, squashfs mounted at /lib/modules */
	struct rev_objref firmware; /* optional, squashfs mounted at /lib/firmware */
	char *cmdline;
};

struct revision {
	uint64_t number;
	char created[32];
	struct rev_bsp bsp;
	struct rev_group groups[REV_MAX_GROUPS];
	size_t ngroups;
	struct rev_container *containers;
	size_t ncontainers;
};

enum rev_parse_mode {
	REV_PARSE_DEVICE, /* every object named by digest and size */
	REV_PARSE_SPEC,   /* cairn-pack build input: objects may be {"dir"|"tar"|"file": PATH} */
};

/* Parse and validate doc[0..len). On error nothing is allocated, e->field
 * names the field and e->msg reads "<field>: <what is wrong>". */
int revision_parse(const char *doc, size_t len, enum rev_parse_mode mode, struct revision **out,
		   struct err *e) _must_check_;
void revision_free(struct revision *r);
/* Serialize in the canonical form (pretty, stable key order). Fails if an
 * object still has a source instead of a digest. Parsing the output in
 * DEVICE mode gives back an equal revision. */
int revision_write(const struct revision *r, struct jw *w, struct err *e) _must_check_;
const struct rev_container *revision_container(const struct revision *r, const char *name);
/* Every object the revision references (containers' rootfs, BSP parts), in
 * document order, with the field that names it ("containers[1].rootfs"). */
struct rev_object_use {
	const struct rev_objref *ref;
	char field[64];
};
size_t revision_objects(const struct revision *r, struct rev_object_use *out, size_t max);
#define REV_MAX_OBJECTS (REV_MAX_CONTAINERS + 4)

/* Deep equality (every field, in order). A container's `group` is an index:
 * compare group names yourself across revisions with other group lists. */
bool revision_equal(const struct revision *a, const struct revision *b);
bool revision_container_equal(const struct rev_container *a, const struct rev_container *b);
bool revision_bsp_equal(const struct rev_bsp *a, const struct rev_bsp *b);
bool revision_objref_equal(const struct rev_objref *a, const struct rev_objref *b);

const char *ctr_goal_name(enum ctr_goal g);
const char *restart_policy_name(enum restart_policy p);
const char *persistence_name(enum persistence p);

/* True if an lxc.* key may be set from a revision (see REVISION.md: the deny
 * list keeps cairn's own rootfs, mounts, hooks, console and isolation). */
bool revision_lxc_key_allowed(const char *key);

/* ---- signatures ---- */

struct trust;

/* Load trusted public keys: `path` is one PEM public key file, or a directory
 * whose *.pub files are PEM public keys (ECDSA P-256) and whose optional file
 * `threshold` holds the number of distinct valid signatures required
 * (default 1). */
int trust_load(const char *path, struct trust **out, struct err *e) _must_check_;
void trust_free(struct trust *t);
unsigned trust_threshold(const struct trust *t);
size_t trust_count(const struct trust *t);

/* Key id: "sha256:<hex>" of the public key's DER (SubjectPublicKeyInfo). */
int sig_keyid_from_pem(const char *pem, size_t len, struct digest *out, struct err *e) _must_check_;

/* Verify sig[0..siglen) (a revision.sig) over the exact bytes doc[0..doclen).
 * 0 when at least trust_threshold() distinct trusted keys signed validly;
 * *nvalid (may be NULL) gets the count. Errors say why: malformed file,
 * unknown algorithm, key not trusted, bad signature, below threshold. */
int sig_verify(const struct trust *t, const char *doc, size_t doclen, const char *sig,
	       size_t siglen, unsigned *nvalid, struct err *e) _must_check_;

/* ---- signing keys (trails/keys.c; REVISION.md "Signing keys") ----
 * The roots on the image (trust_load) sign a keys document, keys.json +
 * keys.sig, naming the signing keys that may sign revisions; a higher
 * serial replaces it. A revision then verifies when the roots' threshold of
 * roots signed it, or the document's threshold of its signing keys. */
struct storage;
#define KEYS_SPEC "cairn-keys@1"
#define KEYS_MAX_DOC (64u * 1024) /* bytes of keys.json */

/* Verify keys.sig against the roots of t only (never its signing keys) and
 * parse keys.json strictly. On success *out is a trust set of the document's
 * keys with its threshold, *serial its serial. Errors name the field
 * (`keys[1]: not a PEM public key`, `serial: …`, `signatures`). */
int keys_doc_check(const struct trust *t, const char *doc, size_t doclen, const char *sig,
		   size_t siglen, struct trust **out, uint64_t *serial,
		   struct err *e) _must_check_;
/* t's signing keys become `signing` (owned from now on; NULL: roots only). */
void trust_set_signing(struct trust *t, struct trust *signing, uint64_t serial);
/* 0 while no keys document is in effect. */
uint64_t trust_serial(const struct trust *t);
const struct trust *trust_signing(const struct trust *t);
/* Key id of the i-th key (i < trust_count). */
void trust_key_id(const struct trust *t, size_t i, char out[DIGEST_STR_LEN + 1]);
/* A copy of t's roots with `signing` (owned) as its signing keys: what t
 * would be, for checking before anything changes. */
int trust_with(const struct trust *t, struct trust *signing, uint64_t serial,
	       struct trust **out, struct err *e) _must_check_;

/* <storage>/keys/<serial>/{keys.json,keys.sig}. At boot: the highest serial
 * whose document verifies against t's roots becomes t's signing keys (one
 * that does not is logged and skipped; none: roots only). */
int keys_load(struct storage *s, struct trust *t, struct err *e) _must_check_;
/* A document offered for storage s, whose keys document in effect is t's:
 * keys_doc_check, then its serial must be above t's (*out its keys, owned
 * by the caller), or be that very document again (0, *out NULL: nothing to
 * do). -ERANGE for a lower serial, -EEXIST for another document of t's
 * serial (field "serial"). */
int keys_admit(struct storage *s, const struct trust *t, const char *doc, size_t doclen,
	       const char *sig, size_t siglen, struct trust **out, uint64_t *serial,
	       struct err *e) _must_check_;
/* Store a checked document (its serial above the one in effect) durably:
 * written aside, renamed to keys/<serial> in one step, older serials removed
 * afterwards. On failure the serial in effect is untouched (a damaged
 * directory of the new serial, skipped at boot, may be gone). */
int keys_store(struct storage *s, uint64_t serial, const char *doc, size_t doclen,
	       const char *sig, size_t siglen, struct err *e) _must_check_;

/* ---- installed revisions and boot state (trails/boot.c, trails/install.c) ----
 * <storage>/trails/<rev>/{revision.json,revision.sig}: an installed revision
 * appears under its final name in one rename, only after its signature,
 * schema and every object were verified. <storage>/boot.json holds the boot
 * state; every change to it is one durable write. */
struct storage;

struct boot_state {
	uint64_t committed; /* 0: none (a device that was never provisioned) */
	uint64_t try_rev;   /* 0: no try */
	unsigned tries;
};

/* A missing boot.json reads as all zeroes; a corrupt one is an error. */
int trails_boot_read(struct storage *s, struct boot_state *out, struct err *e) _must_check_;
int trails_boot_write(struct storage *s, const struct boot_state *bs, struct err *e) _must_check_;
/* Install the revision in directory `dir` (cairn-pack's OUT layout): verify
 * signature and schema, put every object (verified) into the store, then
 * place trails/<rev>/. *rev gets its number. Nothing is left on failure but
 * objects that were verified. */
int trails_install_dir(struct storage *s, const char *dir, const struct trust *t, uint64_t *rev,
		       struct err *e) _must_check_;
/* Load installed revision `rev` for running it: signature, schema, and every
 * object present with its declared size and digest (re-hashed). */
int trails_load(struct storage *s, uint64_t rev, const struct trust *t, struct revision **out,
		struct err *e) _must_check_;
/* trails_load in two steps, for a caller that hashes elsewhere (the engine
 * hashes in a worker process so its loop keeps serving): the signed,
 * parsed document; then every object present with its declared size
 * (stat only), or re-hashed. */
int trails_load_doc(struct storage *s, uint64_t rev, const struct trust *t,
		    struct revision **out, struct err *e) _must_check_;
int trails_objects_present(struct storage *s, const struct revision *r,
			   struct err *e) _must_check_;
int trails_objects_verify(struct storage *s, const struct revision *r,
			  struct err *e) _must_check_;

/* ---- the update engine (issues 4 and 5): trails/engine*.c ----
 * One object owns what the device runs and every revision's progress:
 *   RECEIVED -> DOWNLOADING -> INSTALLED -> TESTING -> DONE
 *   or REJECTED (signature, schema, digest, downgrade, no space)
 *   or FAILED (tried and rolled back; reason kept, never overwritten).
 * The state of each revision is kept durably in its status.json (see
 * trails/UPDATE.md, which owns the state table, the files and the reasons).
 * It drives the runtime through runtime.h (trails -> runtime), never the
 * other way; the orchestrator gives it the loop, the store and a reboot hook. */

enum rev_state {
	REV_RECEIVED,
	REV_DOWNLOADING,
	REV_INSTALLED,
	REV_TESTING,
	REV_DONE,
	REV_REJECTED,
	REV_FAILED,
	REV_STATE_COUNT
};
const char *rev_state_name(enum rev_state s);

struct loop;
struct runtime;
struct obj_writer;
struct jw;
struct trails;

struct trails_hooks {
	void *data;
	/* Reboot now (after the engine wrote everything durably): the device's
	 * bootloader (or the sandbox wrapper) boots what the boot state says. */
	void (*reboot)(void *data, const char *why);
	/* The revision now running changed (for GET /v1/status). */
	void (*running)(void *data, uint64_t rev);
	/* Create (or keep) the control socket of container `name` with `roles`
	 * (TRAILS_ROLE_* bits); its host path into path. The orchestrator owns the
	 * control API, so the engine asks it (trails never calls ctrl). */
	int (*ctr_socket)(void *data, const char *name, unsigned roles, char *path, size_t cap,
			  struct err *e);
	void (*ctr_socket_drop)(void *data, const char *name);
};

#define TRAILS_ROLE_MGMT 1u /* "mgmt" in a container's roles */

struct trails_config {
	struct loop *loop;
	struct storage *storage;
	struct trust *trust; /* its signing keys change with PUT /v1/keys */
	struct runtime *rt;
	const char *statedir;    /* control sockets live in <statedir>/sock/ */
	const char *bootloader;  /* "file" (boot.json), "uboot:<fw_env.config>", "grub:<grubenv>" */
	uint64_t reserve_bytes;  /* free space always kept (space admission) */
	unsigned crash_loop_max; /* exits of one container during a try that mean failure */
	struct trails_hooks hooks;
};

int trails_new(const struct trails_config *cfg, struct trails **out, struct err *e) _must_check_;
void trails_free(struct trails *tr);
/* At boot: settle the boot state (a consumed try that did not commit is marked
 * FAILED "interrupted"), then run the committed revision, or the try when the
 * bootloader is booting it for the first time. Never starts anything that
 * fails verification (the reason is kept). */
int trails_boot(struct trails *tr, struct err *e) _must_check_;
uint64_t trails_running(const struct trails *tr);
/* The boot state as last read from or written to the bootloader backend. */
void trails_boot_state(const struct trails *tr, struct boot_state *out);

/* Sideload step 1 (PUT /v1/revisions/REV): the document and signature. Verified
 * (signature, schema, REV matches, downgrade), then space admission against the
 * objects still missing. On success the revision is DOWNLOADING (or INSTALLED
 * if nothing is missing); `missing` (may be NULL) lists the digests still
 * needed. Failures leave the revision REJECTED with the reason on record. */
struct trails_offer {
	enum rev_state state;
	size_t nmissing;
	uint64_t missing_bytes;
	struct digest missing[REV_MAX_OBJECTS];
};
int trails_offer(struct trails *tr, uint64_t rev, const char *doc, size_t doclen,
		 const char *sig, size_t siglen, struct trails_offer *out,
		 struct err *e) _must_check_;
/* Sideload step 2 (PUT /v1/objects/sha256:HEX): objects are accepted only if
 * a DOWNLOADING revision needs them (-ENOENT otherwise: nothing unasked fills
 * the disk) and the space admission still holds (-ENOSPC); -EEXIST when the
 * object is already stored (nothing to upload). After a commit of
 * the writer, call trails_object_stored: revisions whose last object arrived
 * become INSTALLED. */
int trails_object_begin(struct trails *tr, const struct digest *d, uint64_t size,
			struct obj_writer **out, struct err *e) _must_check_;
void trails_object_stored(struct trails *tr, const struct digest *d);
bool trails_object_has(struct trails *tr, const struct digest *d);

/* POST /v1/revisions/REV/run: switch to an INSTALLED revision (live or by
 * reboot). `admin` = the local admin socket, the only caller allowed to run a
 * revision lower than or equal to the committed one (if still installed).
 * 0 = accepted: the document and the objects' sizes were checked; the
 * objects are re-hashed by a worker process and the switch goes on from the
 * loop (engine_verify.c), or the revision becomes FAILED. */
int trails_run(struct trails *tr, uint64_t rev, bool admin, struct err *e) _must_check_;

/* Garbage collection: remove revisions that are none of committed, try,
 * running, the previous committed, or in progress, then every object no
 * remaining revision references. Returns the bytes freed. */
int trails_gc(struct trails *tr, uint64_t *freed, struct err *e) _must_check_;

/* JSON views for the control API (written into w as one value each). */
int trails_json_revisions(struct trails *tr, struct jw *w, struct err *e) _must_check_;
int trails_json_revision(struct trails *tr, uint64_t rev, struct jw *w,
			 struct err *e) _must_check_; /* -ENOENT unknown */
int trails_json_progress(struct trails *tr, struct jw *w, struct err *e) _must_check_;
/* PUT /v1/keys: a keys document and its signature (keys_doc_check). Its
 * serial must be above the one in effect (the same document again: nothing
 * to do, *changed false; -ERANGE for a lower serial, -EEXIST for another
 * document of the same serial). Refused (-EKEYREJECTED, field "keys") when
 * the committed revision, the try, the running revision or one being
 * verified to be tried would no longer verify: a rotation never strands
 * the device. Then stored durably and in effect. */
int trails_keys_put(struct trails *tr, const char *doc, size_t doclen, const char *sig,
		    size_t siglen, bool *changed, struct err *e) _must_check_;
/* The serial of the keys document in effect (0: only the roots sign). */
uint64_t trails_keys_serial(const struct trails *tr);
/* GET /v1/keys: {"serial", "roots": [ids], "roots_threshold", "keys": [ids],
 * "threshold"} (serial 0, keys [] while only the roots sign); with
 * `changed` (PUT's answer) a member "changed" first. */
int trails_json_keys(struct trails *tr, const bool *changed, struct jw *w,
		     struct err *e) _must_check_;

/* ---- fleet hub client (trails/hub*.c, trails/HUB.md) ---- */

/* Strings are copied; NULL or "" = unset. url and device_id are required
 * and must already be valid (init/config.c checks them). */
struct trails_hub_config {
	const char *url;
	const char *device_id;
	unsigned poll_s;
	const char *ca, *cert, *key, *token_file, *pin;
};

struct trails_hub;
struct storage;

/* Create <storage>/tmp/hub (owned by HUB_UID) and arm the first poll. */
int trails_hub_new(const struct trails_hub_config *cfg, struct loop *loop, struct storage *s,
		   struct trails *tr, struct trails_hub **out, struct err *e) _must_check_;
/* Kills the helpers still running; NULL is fine. */
void trails_hub_free(struct trails_hub *h);
/* POST /v1/commands/poll-hub: poll now, backoff reset. */
int trails_hub_poll_now(struct trails_hub *h, struct err *e) _must_check_;
/* The orchestrator reaped `pid`: true if it was one of the hub's helpers. */
bool trails_hub_child_exited(struct trails_hub *h, pid_t pid, int status);

#endif
