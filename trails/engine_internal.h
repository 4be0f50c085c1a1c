/* trails/engine_internal.h — shared by the update engine's files only.
 *
 *   engine.c         the engine object, its revision records, the state table
 *   engine_status.c  status.json: read, update, durable write; log tails; time
 *   engine_offer.c   trails_offer, objects, placing a revision into trails/<rev>/
 *   engine_spec.c    revision -> runtime specs, live or reboot, control sockets
 *   engine_switch.c  trails_run: try, commit, rollback, crash loops
 *   engine_boot.c    trails_boot: settle the boot state, run what must run
 *   engine_gc.c      trails_gc: what is kept, records of failures kept
 *   engine_json.c    JSON views for the control API
 * trails/UPDATE.md is the design: the state table, the files, the reasons. */
#ifndef CAIRN_TRAILS_ENGINE_INTERNAL_H
#define CAIRN_TRAILS_ENGINE_INTERNAL_H

#include <stdint.h>

#include "../lib/loop.h"
#include "../runtime/runtime.h"
#include "trails_internal.h"

#define TR_MAX_RECORDS 128   /* revisions the engine knows: installed + offers/ */
#define TR_KEEP_RECORDS 32   /* REJECTED / collected FAILED records kept in offers/ */
#define TR_CODE_MAX 24       /* reason codes: "goal-timeout" ... */
#define TR_MSG_MAX 256
#define TR_GOAL_MAX 16
#define TR_LOG_LINES 20      /* last lines of the failing container's log */
#define TR_LOG_LINE_MAX 160  /* bytes per kept line (longer ones are cut) */
#define TR_LOG_TAIL 8192     /* bytes read from the end of the log */
#define TR_EARLIER_MAX 4     /* rejections of earlier attempts kept */
#define TR_STATUS_MAX 65536  /* bytes of a status.json */
#define TR_STATUS_TOKENS 512
#define TR_GUARD_EXTRA_S 30  /* TESTING deadline: sum of group timeouts + this */
#define TR_RETRY_MS 200      /* rollback apply refused (-EBUSY): try again after */
#define TR_RETRY_MAX 50      /* ... at most this often, then stop everything first */

#define TR_STATUS "status.json"
#define TR_OFFERS "offers"
#define TR_TRAILS "trails"
#define TR_BOOT_ERROR "last-boot-error.json"

/* ---- events of the per-revision state table (engine.c) ---- */
enum tr_event {
	TE_RECEIVE, /* a document for this number arrived: an attempt starts */
	TE_ACCEPT,  /* signature, schema, number, downgrade, space: all good; objects missing */
	TE_REJECT,  /* one of those failed, or a newer revision superseded it */
	TE_PLACED,  /* every object present, trails/<rev>/ placed */
	TE_TRY,     /* its try starts (the boot state's try is being consumed) */
	TE_COMMIT,  /* every goal met and committed = rev written */
	TE_FAIL,    /* the try failed (or could not start): rolled back */
	TE_COUNT
};
const char *tr_event_name(enum tr_event ev);
/* The table: the next state, TR_STAY (decided: nothing changes) or TR_UNDEF
 * (an impossible pair: logged and ignored). */
#define TR_STAY (-1)
#define TR_UNDEF (-2)
int tr_table_next(enum rev_state s, enum tr_event ev);

/* ---- what status.json holds (engine_status.c) ---- */
struct tr_fail {
	char code[TR_CODE_MAX];
	char msg[TR_MSG_MAX];
	char field[ERR_FIELD_MAX];
	char container[NAME_MAX_LEN + 1];
	char goal[TR_GOAL_MAX];
	int64_t time; /* unix seconds */
	size_t nlog;
	char log[TR_LOG_LINES][TR_LOG_LINE_MAX];
};

struct tr_earlier {
	char code[TR_CODE_MAX];
	char msg[TR_MSG_MAX];
	int64_t time;
};

struct tr_status {
	uint64_t revision;
	enum rev_state state;
	int64_t times[REV_STATE_COUNT]; /* unix seconds the state was last entered, 0 never */
	uint64_t done, total;           /* object bytes stored / needed when offered */
	uint64_t previous;              /* DONE: the committed revision it replaced */
	bool has_fail;
	struct tr_fail fail; /* FAILED / REJECTED: set once, never replaced */
	size_t nearlier;
	struct tr_earlier earlier[TR_EARLIER_MAX]; /* rejections of earlier attempts */
};

int tr_status_parse(const char *buf, size_t len, struct tr_status *st, struct err *e) _must_check_;
/* The members of st (no braces), for the file and the API's view. */
void tr_status_members(struct jw *w, const struct tr_status *st);

/* ---- one revision the engine knows ---- */
struct tr_rec {
	uint64_t number;
	enum rev_state state;
	bool installed;               /* trails/<n>/ exists; else the record is in offers/<n>/ */
	char reason[TR_CODE_MAX];     /* FAILED / REJECTED */
	int64_t times[REV_STATE_COUNT];
	uint64_t done, total, previous;
	bool new_attempt;             /* REJECTED -> RECEIVED: old rejection -> "earlier" at the next write */
	struct revision *doc;         /* DOWNLOADING: the verified document */
	uint64_t t0_ns;               /* DOWNLOADING: when this boot started taking objects */
};

enum tr_op {
	TR_OP_NONE,
	TR_OP_START,    /* running the committed revision at boot */
	TR_OP_TRY,      /* testing tr->next */
	TR_OP_ROLLBACK, /* applying tr->cur again after a failed live try */
	TR_OP_VERIFY,   /* a worker re-hashes tr->verify.r before trails_run goes on */
};

/* The re-hash of a revision trails_run was asked for (engine_verify.c). */
struct tr_verify_result {
	int32_t code;   /* 0, or the negative errno of the failure */
	struct err err; /* the failure */
};

struct tr_verify {
	uint64_t rev;
	struct revision *r; /* parsed, signature checked; objects being hashed */
	int pidfd;          /* the worker (reaped by the orchestrator like any child) */
	struct loop_io io;  /* the worker's result pipe */
	size_t got;
	struct tr_verify_result res;
	uint64_t t0_ns;
};

struct trails {
	struct trails_config cfg;
	struct bootenv *benv;
	bool benv_self; /* the backend's try is consumed by cairn ("file"), not a bootloader */
	struct boot_state bs;
	struct tr_rec *recs; /* sorted by number */
	size_t nrecs;

	uint64_t running;     /* 0: nothing runs */
	struct revision *cur; /* what runs (or ran before the try) */
	struct revision *next;
	enum tr_op op;
	bool try_booted;      /* the try was booted (reboot switch): failing it reboots */
	bool finishing;       /* commit or failure is being written: events ignored */
	uint64_t op_t0_ns;
	unsigned exits[REV_MAX_CONTAINERS];
	char failed_ctr[NAME_MAX_LEN + 1]; /* RT_CTR_FAILED seen during the try */
	char failed_why[TR_MSG_MAX];
	struct loop_timer guard; /* TESTING deadline */
	struct loop_timer retry; /* rollback apply retried after -EBUSY */
	unsigned retries;
	bool stopping_all;       /* rollback's last resort: everything stops, then the apply */
	struct loop_timer act;   /* a failure or the commit seen inside a runtime callback, acted on from the loop */
	bool commit_due;         /* every goal met: commit on the next act tick */
	bool pending;            /* a failure of the try waits for `act` (the first one wins) */
	struct tr_fail pend;

	struct tr_verify verify; /* TR_OP_VERIFY */

	struct tr_status st; /* scratch: one status.json at a time (single thread) */
	struct tr_fail fail; /* scratch: forensics being collected */
	char *jbuf;          /* TR_STATUS_MAX bytes for writing status.json */
};

/* ---- engine.c ---- */
struct tr_rec *tr_rec_find(struct trails *tr, uint64_t n);
/* A new record (state RECEIVED); NULL if the table is full after pruning. */
struct tr_rec *tr_rec_add(struct trails *tr, uint64_t n);
void tr_rec_remove(struct trails *tr, uint64_t n);
/* Run event ev on rec: the table decides. A transition writes status.json
 * durably (RECEIVED is never written: it lasts inside one call). `fail`
 * (entering FAILED / REJECTED) is recorded only if none is on record yet.
 * 0 on a transition or a decided stay; -EINVAL on an undefined pair (logged);
 * a write failure is returned (the state in memory has changed). */
int tr_event(struct trails *tr, struct tr_rec *rec, enum tr_event ev, const struct tr_fail *fail,
	     struct err *e) _must_check_;
int64_t tr_now(void);
/* "trails/12" or "offers/12" for rec (no trailing slash). */
int tr_rec_dir(const struct tr_rec *rec, char *buf, size_t cap) _must_check_;
/* Fill tr->fail (time now, no log) from a code and a message. */
struct tr_fail *tr_fail_set(struct trails *tr, const char *code, const char *field,
			    const char *fmt, ...) _printf_(4, 5);
/* Code for an error: "digest" (EBADMSG/EFBIG), "load" otherwise. */
const char *tr_load_code(int r);

/* ---- engine_status.c ---- */
/* Bring status.json of rec up to date (read, change, durable write). */
int tr_status_store(struct trails *tr, struct tr_rec *rec, const struct tr_fail *fail,
		    struct err *e) _must_check_;
/* Read status.json from dir (relative to the storage root) into st. */
int tr_status_load(struct trails *tr, const char *dir, struct tr_status *st,
		   struct err *e) _must_check_;
/* Fill the record's summary from a status. */
void tr_rec_from_status(struct tr_rec *rec, const struct tr_status *st);
/* Last lines of a file into f->log (best effort: nothing on error). */
void tr_log_tail(const char *path, struct tr_fail *f);
/* Keep why the revision to boot could not run: <storage>/last-boot-error.json. */
void tr_keep_boot_error(struct trails *tr, uint64_t rev, const struct err *why);

/* ---- engine_offer.c ---- */
/* Objects of r not in the store (deduplicated): into out (may be NULL). */
size_t tr_missing(struct trails *tr, const struct revision *r, struct digest *out, size_t max,
		  uint64_t *bytes);
/* rec (DOWNLOADING, nothing missing) -> trails/<rev>/, INSTALLED. */
int tr_place(struct trails *tr, struct tr_rec *rec, struct err *e) _must_check_;
/* Read and verify offers/<n>/ (at boot): signature, schema, number; *code
 * names what failed. */
int tr_offer_reload(struct trails *tr, struct tr_rec *rec, const char **code,
		    struct err *e) _must_check_;

/* ---- engine_spec.c ---- */
/* True if going from `from` (NULL: nothing runs) to `to` needs a reboot:
 * the BSP differs, or a container that differs is marked update "reboot". */
bool tr_needs_reboot(const struct revision *from, const struct revision *to);
/* runtime_apply of r: control sockets through the hooks, specs resolved. */
int tr_apply(struct trails *tr, const struct revision *r, runtime_started_cb cb,
	     struct err *e) _must_check_;
/* Drop control sockets of containers of `gone` that `kept` does not have. */
void tr_drop_sockets(struct trails *tr, const struct revision *gone, const struct revision *kept);

/* ---- engine_switch.c ---- */
/* Run `r` (owned from now on) for rec as a try; booted: the bootloader (or
 * cairn, "file") booted it as a try, so failing it reboots. */
int tr_try_start(struct trails *tr, struct tr_rec *rec, struct revision *r, bool booted,
		 struct err *e) _must_check_;
/* Start the committed revision (boot). Nothing to run is not an error. */
int tr_start_committed(struct trails *tr, struct err *e) _must_check_;
int tr_boot_write(struct trails *tr, uint64_t committed, uint64_t try_rev, unsigned tries,
		  struct err *e) _must_check_;
void tr_runtime_event(void *data, const char *name, enum rt_ctr_event ev, unsigned restarts,
		      const char *reason);
/* trails_run after the re-hash: reboot or live switch to r (owned). */
int tr_run_verified(struct trails *tr, struct tr_rec *rec, struct revision *r,
		    struct err *e) _must_check_;
/* rec could not be loaded (code < 0, why): an INSTALLED one becomes FAILED. */
void tr_run_failed(struct trails *tr, struct tr_rec *rec, int code, const struct err *why);

/* ---- engine_verify.c ---- */
/* Re-hash r's objects (r owned from now on) in a worker process, then
 * tr_run_verified or tr_run_failed from the loop; op is TR_OP_VERIFY
 * meanwhile. Without a loop (tests) the hash runs here. */
int tr_verify_start(struct trails *tr, struct tr_rec *rec, struct revision *r,
		    struct err *e) _must_check_;
/* trails_free: the worker killed, its revision freed. */
void tr_verify_stop(struct trails *tr);

/* ---- engine_gc.c ---- */
/* Automatic gc after a commit or a failed try: errors are logged. */
void tr_gc_auto(struct trails *tr, const char *why);

/* engine_gc.c: keep only the TR_KEEP_RECORDS newest REJECTED/FAILED records. */
void tr_records_prune(struct trails *tr);

#endif
