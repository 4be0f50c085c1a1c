/* test/fuzz/status_fuzz.c — tr_status_parse() (trails/engine_status.c), the
 * reader of a revision's status.json, on hostile bytes.
 *
 * status.json lives on the device's storage and is read back at every boot
 * and every state change; a corrupt or planted one must be refused with a
 * message, never trusted half-way.
 *
 * Checked on every input:
 *   - an error returns -code, has a message and a terminated field;
 *   - a status that parses has its numbers within bounds (revision
 *     1..2^53-1, a known state, at most TR_LOG_LINES log lines and
 *     TR_EARLIER_MAX earlier entries) and terminated strings;
 *   - what parses is written back by the engine's own writer
 *     (tr_status_members), that text parses into an equal status, and
 *     writing it again gives the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "status_fuzz"
#include "fuzz_check.h"
#include "lib/json.h"
#include "trails/engine_internal.h"

/* engine_status.o comes with the rest of the engine (tr_now, tr_rec_dir in
 * engine.o), which calls the runtime. The replay rule links the archives
 * once, runtime's before trails', so the runtime functions the engine calls
 * are named here first (the Makefile's "MODULES" comment): the linker then
 * takes them from libruntime.a before it meets the engine. A link error
 * naming runtime_* means the engine calls one more: add it. */
void *const status_fuzz_runtime_anchor[] = {
	(void *)runtime_apply,	      (void *)runtime_count,	(void *)runtime_ctr_stop,
	(void *)runtime_find,	      (void *)runtime_log_path, (void *)runtime_phase,
	(void *)runtime_set_event_cb, (void *)runtime_status,	(void *)runtime_stop_all,
};

static void check_error(int rc, const struct err *e)
{
	if (!err_reported(rc, e))
		die("error not reported", e);
}

static bool terminated(const char *s, size_t cap)
{
	return strnlen(s, cap) < cap;
}

static void check_bounds(const struct tr_status *st)
{
	const struct tr_fail *f = &st->fail;
	if (st->revision < 1 || st->revision > REV_MAX_NUMBER || st->state >= REV_STATE_COUNT ||
	    st->previous > REV_MAX_NUMBER || st->done > REV_MAX_NUMBER ||
	    st->total > REV_MAX_NUMBER || st->nearlier > TR_EARLIER_MAX || f->nlog > TR_LOG_LINES)
		die("number out of bounds", NULL);
	for (int s = 0; s < REV_STATE_COUNT; s++)
		if (st->times[s] < 0)
			die("negative time", NULL);
	if (!terminated(f->code, sizeof(f->code)) || !terminated(f->msg, sizeof(f->msg)) ||
	    !terminated(f->field, sizeof(f->field)) ||
	    !terminated(f->container, sizeof(f->container)) ||
	    !terminated(f->goal, sizeof(f->goal)) || f->time < 0)
		die("failure not terminated", NULL);
	for (size_t i = 0; i < f->nlog; i++)
		if (!terminated(f->log[i], TR_LOG_LINE_MAX))
			die("log line not terminated", NULL);
	for (size_t i = 0; i < st->nearlier; i++)
		if (!terminated(st->earlier[i].code, TR_CODE_MAX) ||
		    !terminated(st->earlier[i].msg, TR_MSG_MAX) || st->earlier[i].time < 0)
			die("earlier entry out of bounds", NULL);
}

static bool fail_eq(const struct tr_fail *a, const struct tr_fail *b)
{
	if (strcmp(a->code, b->code) || strcmp(a->msg, b->msg) || strcmp(a->field, b->field) ||
	    strcmp(a->container, b->container) || strcmp(a->goal, b->goal) ||
	    a->time != b->time || a->nlog != b->nlog)
		return false;
	for (size_t i = 0; i < a->nlog; i++)
		if (strcmp(a->log[i], b->log[i]))
			return false;
	return true;
}

static bool status_eq(const struct tr_status *a, const struct tr_status *b)
{
	if (a->revision != b->revision || a->state != b->state || a->done != b->done ||
	    a->total != b->total || a->previous != b->previous || a->has_fail != b->has_fail ||
	    a->nearlier != b->nearlier ||
	    memcmp(a->times, b->times, sizeof(a->times)) != 0)
		return false;
	if (a->has_fail && !fail_eq(&a->fail, &b->fail))
		return false;
	for (size_t i = 0; i < a->nearlier; i++)
		if (strcmp(a->earlier[i].code, b->earlier[i].code) ||
		    strcmp(a->earlier[i].msg, b->earlier[i].msg) ||
		    a->earlier[i].time != b->earlier[i].time)
			return false;
	return true;
}

/* The file as tr_status_store writes it. */
static void write_status(const struct tr_status *st, struct jw *w)
{
	struct err e = ERR_INIT;
	jw_init_dyn(w, false);
	jw_obj_open(w);
	tr_status_members(w, st);
	jw_obj_close(w);
	if (jw_finish(w, &e) < 0)
		die("writer", &e);
	if (w->len > TR_STATUS_MAX)
		die("written status larger than TR_STATUS_MAX", NULL);
}

static void round_trip(const struct tr_status *a)
{
	static struct tr_status b; /* large: off the stack */
	struct err e = ERR_INIT;
	struct jw w1, w2;
	write_status(a, &w1);
	if (tr_status_parse(w1.buf, w1.len, &b, &e) < 0)
		die("written status does not parse", &e);
	if (!status_eq(a, &b))
		die("round trip changed the status", NULL);
	write_status(&b, &w2);
	if (w1.len != w2.len || memcmp(w1.buf, w2.buf, w1.len) != 0)
		die("written form is not stable", NULL);
	jw_free(&w1);
	jw_free(&w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tr_status st;
	struct err e = ERR_INIT;
	int rc = tr_status_parse((const char *)data, size, &st, &e);
	if (rc < 0) {
		check_error(rc, &e);
		return 0;
	}
	if (rc != 0 || e.code != 0)
		die("success with an error set", &e);
	check_bounds(&st);
	round_trip(&st);
	return 0;
}
