/* trails/engine.c — the update engine object, its revision records and the
 * per-revision state table. trails/UPDATE.md explains every cell.
 *
 * Records are kept sorted by revision number in one table sized at
 * trails_new (TR_MAX_RECORDS): steady state allocates nothing. */
#define LOG_MODULE "trails"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

static const char *const state_names[REV_STATE_COUNT] = {
	[REV_RECEIVED] = "RECEIVED", [REV_DOWNLOADING] = "DOWNLOADING",
	[REV_INSTALLED] = "INSTALLED", [REV_TESTING] = "TESTING",
	[REV_DONE] = "DONE",         [REV_REJECTED] = "REJECTED",
	[REV_FAILED] = "FAILED",
};

const char *rev_state_name(enum rev_state s)
{
	return (unsigned)s < REV_STATE_COUNT ? state_names[s] : "?";
}

static const char *const event_names[TE_COUNT] = {
	[TE_RECEIVE] = "receive", [TE_ACCEPT] = "accept", [TE_REJECT] = "reject",
	[TE_PLACED] = "placed",   [TE_TRY] = "try",       [TE_COMMIT] = "commit",
	[TE_FAIL] = "fail",
};

const char *tr_event_name(enum tr_event ev)
{
	return (unsigned)ev < TE_COUNT ? event_names[ev] : "?";
}

/* [state][event] -> next state, TR_STAY or TR_UNDEF. Every pair is decided;
 * UPDATE.md has the same table with the reason for each cell. */
#define S TR_STAY
#define U TR_UNDEF
static const signed char table[REV_STATE_COUNT][TE_COUNT] = {
	/*                 RECEIVE       ACCEPT           REJECT        PLACED         TRY          COMMIT    FAIL */
	[REV_RECEIVED] = {U, REV_DOWNLOADING, REV_REJECTED, REV_INSTALLED, U, U, U},
	[REV_DOWNLOADING] = {S, S, REV_REJECTED, REV_INSTALLED, U, U, U},
	[REV_INSTALLED] = {S, U, U, S, REV_TESTING, U, REV_FAILED},
	[REV_TESTING] = {S, U, U, U, U, REV_DONE, REV_FAILED},
	[REV_DONE] = {S, U, U, U, REV_TESTING, S, U},
	[REV_REJECTED] = {REV_RECEIVED, U, S, U, U, U, U},
	[REV_FAILED] = {S, U, U, U, U, U, S},
};
#undef S
#undef U

int tr_table_next(enum rev_state s, enum tr_event ev)
{
	if ((unsigned)s >= REV_STATE_COUNT || (unsigned)ev >= TE_COUNT)
		return TR_UNDEF;
	return table[s][ev];
}

int64_t tr_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int tr_rec_dir(const struct tr_rec *rec, char *buf, size_t cap)
{
	return str_fmt(buf, cap, "%s/%llu", rec->installed ? TR_TRAILS : TR_OFFERS,
		       (unsigned long long)rec->number);
}

struct tr_fail *tr_fail_set(struct trails *tr, const char *code, const char *field,
			    const char *fmt, ...)
{
	struct tr_fail *f = &tr->fail;
	memset(f, 0, sizeof(*f));
	snprintf(f->code, sizeof(f->code), "%s", code);
	snprintf(f->field, sizeof(f->field), "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	f->time = tr_now();
	return f;
}

const char *tr_load_code(int r)
{
	return r == -EBADMSG || r == -EFBIG ? "digest" : "load";
}

/* ---- records ---- */

struct tr_rec *tr_rec_find(struct trails *tr, uint64_t n)
{
	for (size_t i = 0; i < tr->nrecs; i++)
		if (tr->recs[i].number == n)
			return &tr->recs[i];
	return NULL;
}

static void rec_clear(struct tr_rec *rec)
{
	revision_free(rec->doc);
	memset(rec, 0, sizeof(*rec));
}

void tr_rec_remove(struct trails *tr, uint64_t n)
{
	struct tr_rec *rec = tr_rec_find(tr, n);
	if (!rec)
		return;
	size_t i = (size_t)(rec - tr->recs);
	rec_clear(rec);
	memmove(&tr->recs[i], &tr->recs[i + 1], (tr->nrecs - i - 1) * sizeof(*rec));
	tr->nrecs--;
	memset(&tr->recs[tr->nrecs], 0, sizeof(*rec));
}

/* The lowest-numbered record that is only forensics (REJECTED, or FAILED
 * and no longer installed), or NULL. */
static struct tr_rec *rec_evictable(struct trails *tr)
{
	for (size_t i = 0; i < tr->nrecs; i++) {
		struct tr_rec *r = &tr->recs[i];
		if (!r->installed && (r->state == REV_REJECTED || r->state == REV_FAILED))
			return r;
	}
	return NULL;
}

struct tr_rec *tr_rec_add(struct trails *tr, uint64_t n)
{
	if (tr->nrecs == TR_MAX_RECORDS) {
		struct tr_rec *old = rec_evictable(tr);
		if (!old)
			return NULL;
		log_info("revision %llu: record dropped from memory (%u records at most)",
			 (unsigned long long)old->number, TR_MAX_RECORDS);
		tr_rec_remove(tr, old->number);
	}
	size_t i = 0;
	while (i < tr->nrecs && tr->recs[i].number < n)
		i++;
	memmove(&tr->recs[i + 1], &tr->recs[i], (tr->nrecs - i) * sizeof(tr->recs[0]));
	tr->nrecs++;
	struct tr_rec *rec = &tr->recs[i];
	memset(rec, 0, sizeof(*rec));
	rec->number = n;
	rec->state = REV_RECEIVED;
	rec->times[REV_RECEIVED] = tr_now();
	return rec;
}

/* ---- events ---- */

static int event_undefined(const struct tr_rec *rec, enum tr_event ev, struct err *e)
{
	log_warn("revision %llu: event %s in state %s is undefined: ignored",
		 (unsigned long long)rec->number, tr_event_name(ev), rev_state_name(rec->state));
	return err_set(e, EINVAL, "revision %llu is %s: cannot %s it",
		       (unsigned long long)rec->number, rev_state_name(rec->state),
		       tr_event_name(ev));
}

/* A new attempt of a REJECTED revision starts clean; its old rejection
 * moves to "earlier" when the next status is written. */
static void rec_new_attempt(struct tr_rec *rec)
{
	memset(rec->times, 0, sizeof(rec->times));
	rec->reason[0] = 0;
	rec->done = rec->total = 0;
	rec->new_attempt = true;
}

int tr_event(struct trails *tr, struct tr_rec *rec, enum tr_event ev, const struct tr_fail *fail,
	     struct err *e)
{
	int next = tr_table_next(rec->state, ev);
	if (next == TR_UNDEF)
		return event_undefined(rec, ev, e);
	if (next == TR_STAY) {
		if (fail && (rec->state == REV_FAILED || rec->state == REV_REJECTED))
			log_info("revision %llu: already %s (%s); later reason not recorded: %s",
				 (unsigned long long)rec->number, rev_state_name(rec->state),
				 rec->reason, fail->msg);
		return 0;
	}
	if (rec->state == REV_REJECTED && ev == TE_RECEIVE)
		rec_new_attempt(rec);
	log_info("revision %llu: %s -> %s (%s)", (unsigned long long)rec->number,
		 rev_state_name(rec->state), rev_state_name((enum rev_state)next), tr_event_name(ev));
	rec->state = (enum rev_state)next;
	rec->times[next] = tr_now();
	if ((next == REV_FAILED || next == REV_REJECTED) && fail)
		snprintf(rec->reason, sizeof(rec->reason), "%s", fail->code);
	if (next == REV_RECEIVED)
		return 0; /* lasts inside one call: the outcome is what gets written */
	return tr_status_store(tr, rec, fail, e);
}

/* ---- the object ---- */

int trails_new(const struct trails_config *cfg, struct trails **out, struct err *e)
{
	if (!cfg->storage || !cfg->bootloader)
		return err_set(e, EINVAL, "update engine: storage and bootloader are required");
	struct trails *tr = calloc(1, sizeof(*tr));
	if (!tr)
		return err_set(e, ENOMEM, "update engine: out of memory");
	tr->cfg = *cfg;
	tr->recs = calloc(TR_MAX_RECORDS, sizeof(*tr->recs));
	tr->jbuf = malloc(TR_STATUS_MAX);
	int r = 0;
	if (!tr->recs || !tr->jbuf)
		r = err_set(e, ENOMEM, "update engine: out of memory");
	if (r == 0)
		r = bootenv_open(cfg->bootloader, cfg->storage, &tr->benv, e);
	if (r < 0) {
		trails_free(tr);
		return r;
	}
	tr->benv_self = strcmp(bootenv_name(tr->benv), "file") == 0;
	tr->guard.data = tr->retry.data = tr->act.data = tr;
	if (cfg->rt)
		runtime_set_event_cb(cfg->rt, tr_runtime_event, tr);
	*out = tr;
	return 0;
}

void trails_free(struct trails *tr)
{
	if (!tr)
		return;
	tr_verify_stop(tr);
	if (tr->cfg.loop) {
		loop_timer_disarm(tr->cfg.loop, &tr->guard);
		loop_timer_disarm(tr->cfg.loop, &tr->retry);
		loop_timer_disarm(tr->cfg.loop, &tr->act);
	}
	if (tr->cfg.rt)
		runtime_set_event_cb(tr->cfg.rt, NULL, NULL);
	for (size_t i = 0; tr->recs && i < tr->nrecs; i++)
		rec_clear(&tr->recs[i]);
	free(tr->recs);
	free(tr->jbuf);
	revision_free(tr->cur);
	revision_free(tr->next);
	bootenv_close(tr->benv);
	free(tr);
}

uint64_t trails_running(const struct trails *tr)
{
	return tr->running;
}

void trails_boot_state(const struct trails *tr, struct boot_state *out)
{
	*out = tr->bs;
}
