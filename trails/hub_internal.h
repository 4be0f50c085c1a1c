/* trails/hub_internal.h — the fleet hub client (trails/HUB.md owns the
 * protocol). The client's interface for the orchestrator is in trails.h
 * ("fleet hub client"); this header is shared by trails/hub*.c only.
 *
 *   hub.c         the client: poll timer, pointer, offer, switch, state
 *   hub_fetch.c   objects: queue, resume, backoff
 *   hub_import.c  staged bytes into the store, hashed, while they arrive
 *   hub_report.c  status reports: when, what (JSON), the engine's view
 *   hub_proc.c    helper processes seen from the orchestrator: spawn, pipe, watchdog
 *   hub_helper.c  the helper itself: privilege drop, one libcurl transfer
 *   hub_rec.c     the pipe's records, written by the helper, parsed as hostile
 *   hub_sched.c   jitter and backoff
 *   hub_stage.c   the staging directory and its files
 *   hub_doc.c     the desired pointer */
#ifndef CAIRN_TRAILS_HUB_INTERNAL_H
#define CAIRN_TRAILS_HUB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/digest.h"
#include "../lib/err.h"
#include "../lib/loop.h"
#include "trails.h"

/* ================= shared by trails/hub*.c ================= */

#define HUB_UID 65534u /* the helper's uid and gid ("nobody") */
#define HUB_GID 65534u
#define HUB_STAGE "tmp/hub"
#define HUB_DESIRED_FILE "desired.json"
#define HUB_PART_SUFFIX ".part"
#define HUB_PART_NAME_LEN (DIGEST_HEX_LEN + 5)
/* room for JSON escaping (x2) of the revision's files and a keys document's */
#define HUB_DESIRED_MAX \
	(2 * ((uint64_t)REV_MAX_DOC + SIG_MAX_FILE + KEYS_MAX_DOC + SIG_MAX_FILE) + 4096)
#define HUB_REPORT_MAX 8192
#define HUB_TOKEN_MAX 4096
#define HUB_ETAG_MAX 256
#define HUB_URL_MAX 512
#define HUB_ID_MAX 64
#define HUB_PATH_MAX 1024
#define HUB_PIN_MAX 512
#define HUB_REQ_URL_MAX (HUB_URL_MAX + 160)
#define HUB_CA_MAX (1u << 20)      /* a PEM CA bundle */
#define HUB_PEM_MAX (64u * 1024)   /* a client certificate or key */
#define HUB_DISCARD_MAX (64u * 1024) /* bodies the helper reads and drops */
#define HUB_SILENCE_S 60           /* a helper quiet this long is killed */
#define HUB_IMPORT_STEP (1u << 20) /* bytes copied into the store per loop turn */
#define HUB_REPORT_EVERY_S 5
#define HUB_RUN_RETRY_S 5

/* ---- scheduling (hub_sched.c) ---- */

#define HUB_BACKOFF_CAP_S 3600u
/* base_ms scaled uniformly into [0.8, 1.2] by rnd (all 32 bits used). */
uint64_t hub_jitter_ms(uint64_t base_ms, uint32_t rnd);
/* Next poll after `fails` consecutive failed polls (0: the normal interval). */
uint64_t hub_poll_delay_ms(unsigned poll_s, unsigned fails, uint32_t rnd);
/* Next object fetch after `fails` consecutive fetches without progress. */
uint64_t hub_fetch_delay_ms(unsigned poll_s, unsigned fails, uint32_t rnd);
uint32_t hub_random(void);

/* ---- records (hub_rec.c) ----
 * type (1 byte), length (2 bytes big-endian), payload (length bytes). */

#define HUB_REC_HEAD 3
#define HUB_REC_MAX 512 /* a whole record */
#define HUB_REC_TEXT_MAX 400
enum {
	HUB_REC_HTTP = 'H',     /* u32 status */
	HUB_REC_ETAG = 'E',     /* 1..HUB_ETAG_MAX printable */
	HUB_REC_PROGRESS = 'P', /* u64 staged, u64 wire */
	HUB_REC_DONE = 'D',     /* empty */
	HUB_REC_FAIL = 'X',     /* reason byte + 0..HUB_REC_TEXT_MAX printable */
};
enum {
	HUB_FAIL_NETWORK = 'n',
	HUB_FAIL_HTTP = 'h',
	HUB_FAIL_SIZE = 's',
	HUB_FAIL_WRITE = 'w',
};

/* The orchestrator's side of one helper's pipe. */
struct hub_rx {
	uint8_t buf[HUB_REC_MAX];
	size_t len;
	bool have_http, have_etag, finished, ok; /* ok: D (else X) once finished */
	unsigned http;
	char etag[HUB_ETAG_MAX + 1];
	uint64_t staged, wire;
	char fail; /* HUB_FAIL_* after X */
	char text[HUB_REC_TEXT_MAX + 1];
};

void hub_rx_init(struct hub_rx *rx);
/* Take bytes read from the pipe. Anything but well-formed records in the
 * right order is -EPROTO with the reason: the helper is then killed. */
int hub_rx_feed(struct hub_rx *rx, const void *data, size_t len, struct err *e) _must_check_;
/* The pipe is at EOF: -EPROTO unless a final record (D or X) came whole. */
int hub_rx_eof(const struct hub_rx *rx, struct err *e) _must_check_;
/* Encode one record into out; its length, or 0 if it is not a valid record. */
size_t hub_rec_put(uint8_t *out, size_t cap, char type, const void *payload, size_t n);
bool hub_text_printable(const char *s, size_t n);

/* ---- the helper (hub_helper.c) ---- */

enum hub_job_kind { HUB_JOB_DESIRED, HUB_JOB_OBJECT, HUB_JOB_REPORT };

struct hub_blob {
	char *data;
	size_t len;
};

/* Everything one transfer needs, built by the orchestrator (secrets
 * included: the helper reads no file outside the staging directory). */
struct hub_job {
	enum hub_job_kind kind;
	char url[HUB_REQ_URL_MAX];
	char etag[HUB_ETAG_MAX + 1]; /* desired: If-None-Match; "" none */
	char file[HUB_PART_NAME_LEN + 1]; /* staging file (desired, object) */
	uint64_t size;               /* object: declared size; desired: cap */
	const char *body;            /* report */
	size_t body_len;
	struct hub_blob ca, cert, key; /* PEM; data NULL: unset */
	char token[HUB_TOKEN_MAX + 1];
	const char *pin; /* NULL or "": none */
};

/* Fork a helper for job: it enters staging (stagefd), drops privileges and
 * runs the transfer. *rfd: the pipe's non-blocking read end. */
int hub_helper_spawn(const struct hub_job *job, int stagefd, pid_t *pid, int *rfd,
		     struct err *e) _must_check_;

/* ---- staging (hub_stage.c, hub_import.c) ---- */

/* Create (or fix) <root>/tmp/hub owned by uid:gid mode 0700; its fd. */
int hub_stage_prepare(int rootfd, uid_t uid, gid_t gid, int *out, struct err *e) _must_check_;
/* "<64 hex>.part" or "desired.json". */
bool hub_stage_name_valid(const char *name);
void hub_part_name(const struct digest *d, char out[HUB_PART_NAME_LEN + 1]);
/* Open a staged file (read-only, or read-write to punch it): a regular
 * file (no symlink), one link, owned by uid, at most max bytes. */
int hub_stage_open(int stagefd, const char *name, uid_t uid, uint64_t max, bool rw, int *fd,
		   uint64_t *size, struct err *e) _must_check_;
/* Size of a valid staged file, 0 if absent or not valid. */
uint64_t hub_stage_size(int stagefd, const char *name, uid_t uid);
void hub_stage_remove(int stagefd, const char *name);
/* Remove everything but resumable .part files: those of keep[0..nkeep), or
 * every one when keep is NULL (at start, before the hub said what it wants);
 * the part of `active` (the object being imported; may be NULL) stays. */
void hub_stage_sweep(int stagefd, uid_t uid, const struct digest *keep, size_t nkeep,
		     const struct digest *active);

struct hub_import;
/* A store writer for object d (its declared size), fed from the staging
 * file as the helper fills it. 1: the store has it already. */
int hub_import_begin(struct trails *tr, const struct digest *d, uint64_t size,
		     struct hub_import **out, struct err *e) _must_check_;
/* Copy at most `budget` staged bytes not yet copied. *more: staged bytes
 * remain; *finished: committed (digest and size verified by the store) and
 * announced with trails_object_stored. */
int hub_import_step(struct hub_import *im, int stagefd, uid_t uid, size_t budget, bool *more,
		    bool *finished, struct err *e) _must_check_;
bool hub_import_is(const struct hub_import *im, const struct digest *d);
uint64_t hub_import_done(const struct hub_import *im);
/* Part of the staging file was punched: it cannot be resumed from disk. */
bool hub_import_punched(const struct hub_import *im);
void hub_import_free(struct hub_import *im);

/* ---- the desired pointer (hub_doc.c); the engine's view (hub_report.c) ---- */

struct hub_pointer {
	uint64_t revision;
	char *doc, *sig;
	size_t doclen, siglen;
	char *kdoc, *ksig; /* the optional keys document (NULL: none) */
	size_t kdoclen, ksiglen;
};
int hub_pointer_parse(const char *body, size_t len, struct hub_pointer *out,
		      struct err *e) _must_check_;
void hub_pointer_free(struct hub_pointer *p);

/* The engine's record of a revision, as the report needs it. */
struct hub_view {
	bool known;
	enum rev_state state;
	uint64_t done, total;
	char reason[32];
	char message[ERR_MSG_MAX];
	char field[ERR_FIELD_MAX];
};
int hub_view_read(struct trails *tr, uint64_t rev, struct hub_view *v, struct err *e) _must_check_;

/* ---- helpers seen from the orchestrator (hub_proc.c) ---- */

struct hub_proc;
typedef void (*hub_proc_cb)(struct hub_proc *p);

/* One helper at a time per slot. `running` from spawn until its pipe ends
 * (EOF, a protocol error, silence); `pid` until the orchestrator reaps it,
 * so a kill never reaches a recycled pid. */
struct hub_proc {
	struct trails_hub *h;
	enum hub_job_kind kind;
	pid_t pid;
	bool running;
	struct loop_io io;
	struct loop_timer watchdog;
	struct hub_rx rx;
	struct err err;      /* spawn, protocol or silence: the helper is to blame */
	hub_proc_cb done;     /* once, when the job ended */
	hub_proc_cb progress; /* after records that moved rx.staged, at most 5/s (may be NULL) */
	uint64_t progress_ns;
};

/* Read the secrets (token, CA, client cert and key) into job. */
int hub_job_secrets(const struct trails_hub *h, struct hub_job *job, struct err *e) _must_check_;
void hub_job_secrets_free(struct hub_job *job);
int hub_proc_start(struct hub_proc *p, const struct hub_job *job, struct err *e) _must_check_;
/* Kill and forget (shutdown). */
void hub_proc_stop(struct hub_proc *p);

/* ---- the client's state (hub.c, hub_fetch.c, hub_report.c) ---- */

struct hub_obj {
	struct digest d;
	uint64_t size;
};

/* A reason code and message of the hub client (HUB.md: hub-*). */
struct hub_reason {
	char code[16];
	char msg[ERR_MSG_MAX];
};

struct trails_hub {
	char url[HUB_URL_MAX + 1], id[HUB_ID_MAX + 1];
	unsigned poll_s;
	char ca[HUB_PATH_MAX + 1], cert[HUB_PATH_MAX + 1], key[HUB_PATH_MAX + 1];
	char token_file[HUB_PATH_MAX + 1], pin[HUB_PIN_MAX + 1];
	struct loop *loop;
	struct storage *s;
	struct trails *tr;
	int stagefd;

	/* polling */
	struct loop_timer poll_timer;
	unsigned poll_fails;
	bool want_poll;
	char etag[HUB_ETAG_MAX + 1]; /* of the pointer handled last */
	struct digest body;          /* sha256 of the pointer handled last */
	bool have_body;
	struct hub_reason poll_err;  /* cleared by a good poll */

	/* the update the hub assigned: revision, objects still to fetch */
	uint64_t rev;
	struct hub_obj objs[REV_MAX_OBJECTS];
	size_t nobjs;
	size_t cur;          /* objs[cur] is being fetched or imported */
	uint64_t staged0;    /* its staged bytes when the fetch started */
	uint64_t staged_now; /* and now (the helper's word: reports only) */
	unsigned fetch_fails;
	struct loop_timer fetch_timer; /* armed: the next fetch waits */
	struct hub_import *imp;      /* the store writer of imp_d, fed while it downloads */
	struct digest imp_d;
	struct loop_timer import_timer;
	struct hub_reason fetch_err; /* cleared by progress or a new update */
	struct hub_reason run_err;   /* trails_run refused (not EBUSY) */
	struct loop_timer tick;      /* 1 s while the update is under way */
	uint64_t run_after_ns;       /* next trails_run attempt (EBUSY waits) */

	struct hub_proc main; /* pointer or object */
	struct hub_proc rep;  /* status report */

	/* reports */
	char sent_key[128];  /* revision/state/reason/keys serial of the last report sent */
	uint64_t sent_ns, sent_done;
	bool report_due;     /* send even if nothing changed (first poll, failed PUT) */
	bool report_failed;
	bool report_pending; /* a change came while a report was on its way */
	uint64_t rate;
	char report[HUB_REPORT_MAX];
};

/* hub.c */
void hub_kick(struct trails_hub *h);
void hub_advance(struct trails_hub *h);
void hub_reason_set(struct hub_reason *r, const char *code, const char *fmt, ...) _printf_(3, 4);
void hub_url(const struct trails_hub *h, struct hub_job *job, const char *fmt, ...) _printf_(3, 4);
/* The report's reason code for a helper's failure record. */
const char *hub_fail_code(enum hub_job_kind kind, char why);
/* hub_fetch.c */
void hub_fetch_next(struct trails_hub *h);
void hub_fetch_init(struct trails_hub *h);
/* Nothing to fetch any more: the writer and every staged part go. */
void hub_fetch_stop(struct trails_hub *h);
int hub_fetch_plan(struct trails_hub *h, const struct trails_offer *off, const char *doc,
		   size_t doclen, struct err *e) _must_check_;
/* hub_report.c */
void hub_report_init(struct trails_hub *h);
void hub_report_check(struct trails_hub *h);
/* The report's JSON into buf (cap bytes); its length. */
int hub_report_json(struct trails_hub *h, char *buf, size_t cap, size_t *len,
		    struct err *e) _must_check_;

#endif
