/* trails/engine_switch.c — switching revisions: trails_run, the try, the
 * commit, the rollback (trails/UPDATE.md, "Switch").
 *
 * Live:   status TESTING -> boot state try consumed (tries 0) -> runtime_apply
 *         (new) -> goals met -> boot state committed = rev (one write) -> DONE.
 *         Failure: forensics written (FAILED) -> runtime_apply(old) -> boot
 *         state back to committed.
 * Reboot: boot state try staged (tries 1) -> reboot; trails_boot runs it.
 *         Failure: forensics -> boot state back to committed -> reboot.
 * The try is consumed before anything switches, so a crash, a reboot or a
 * power cut while trying always comes back up on the committed revision. */
#define LOG_MODULE "trails"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "engine_internal.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

static void rollback_start(struct trails *tr);

int tr_boot_write(struct trails *tr, uint64_t committed, uint64_t try_rev, unsigned tries,
		  struct err *e)
{
	struct boot_state bs = {.committed = committed, .try_rev = try_rev, .tries = tries};
	int r = bootenv_write(tr->benv, &bs, e);
	if (r < 0)
		return err_prefix(e, "boot state");
	tr->bs = bs;
	return 0;
}

static void set_running(struct trails *tr, uint64_t rev)
{
	tr->running = rev;
	if (tr->cfg.hooks.running)
		tr->cfg.hooks.running(tr->cfg.hooks.data, rev);
}

static void do_reboot(struct trails *tr, const char *why)
{
	log_warn("reboot: %s", why);
	if (tr->cfg.hooks.reboot)
		tr->cfg.hooks.reboot(tr->cfg.hooks.data, why);
}

/* ---- the committed revision ---- */

static void start_cb(void *data, bool ok, const char *reason)
{
	struct trails *tr = data;
	if (tr->op != TR_OP_START)
		return;
	tr->op = TR_OP_NONE;
	if (ok)
		log_info("revision %llu: all status goals reached", (unsigned long long)tr->running);
	else
		log_warn("revision %llu: status goals not reached: %s",
			 (unsigned long long)tr->running, reason);
}

int tr_start_committed(struct trails *tr, struct err *e)
{
	uint64_t c = tr->bs.committed;
	int r = 0;
	if (c == 0)
		r = err_set(e, ENOENT, "no committed revision (provision with cairn-pack install)");
	if (r == 0)
		r = trails_load(tr->cfg.storage, c, tr->cfg.trust, &tr->cur, e);
	if (r == 0) {
		set_running(tr, c);
		tr->op = TR_OP_START;
		r = tr_apply(tr, tr->cur, start_cb, e);
	}
	if (r < 0) {
		tr->op = TR_OP_NONE;
		tr_keep_boot_error(tr, c, e);
		return r;
	}
	log_info("revision %llu: starting %zu containers", (unsigned long long)c,
		 tr->cur->ncontainers);
	return 0;
}

/* ---- failing the try ---- */

/* Note the first failure; act on it from the loop (never inside a runtime
 * callback, which may be in the middle of a container action). */
static void fail_later(struct trails *tr, const char *code, const char *ctr, const char *fmt,
		       ...) _printf_(4, 5);
static void fail_later(struct trails *tr, const char *code, const char *ctr, const char *fmt, ...)
{
	if (tr->pending || tr->finishing)
		return;
	struct tr_fail *f = &tr->pend;
	memset(f, 0, sizeof(*f));
	snprintf(f->code, sizeof(f->code), "%s", code);
	snprintf(f->container, sizeof(f->container), "%s", ctr ? ctr : "");
	const struct rev_container *c = ctr && tr->next ? revision_container(tr->next, ctr) : NULL;
	if (c)
		snprintf(f->goal, sizeof(f->goal), "%s", ctr_goal_name(c->goal));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	f->time = tr_now();
	tr->pending = true;
	loop_timer_arm_in(tr->cfg.loop, &tr->act, 0);
}

/* Forensics first (durable), then back to the committed revision. */
static void try_fail(struct trails *tr, const struct tr_fail *why)
{
	tr->finishing = true;
	loop_timer_disarm(tr->cfg.loop, &tr->guard);
	struct tr_fail *f = &tr->fail;
	if (f != why)
		*f = *why;
	char path[PATH_MAX];
	struct err le = ERR_INIT;
	if (f->container[0] && tr->cfg.rt &&
	    runtime_log_path(tr->cfg.rt, f->container, path, sizeof(path), &le) == 0)
		tr_log_tail(path, f);
	uint64_t rev = tr->next->number;
	struct tr_rec *rec = tr_rec_find(tr, rev);
	struct err e = ERR_INIT;
	if (rec && tr_event(tr, rec, TE_FAIL, f, &e) < 0)
		log_err("revision %llu: recording the failure: %s", (unsigned long long)rev, e.msg);
	log_warn("revision %llu failed (%s): %s; back to revision %llu", (unsigned long long)rev,
		 f->code, f->msg, (unsigned long long)tr->bs.committed);
	if (!tr->try_booted) {
		rollback_start(tr);
		return;
	}
	if (tr_boot_write(tr, tr->bs.committed, 0, 0, &e) < 0)
		log_err("%s (the interrupted try still lands on the committed revision)", e.msg);
	char why_s[96];
	snprintf(why_s, sizeof(why_s), "try of revision %llu failed (%s)", (unsigned long long)rev,
		 f->code);
	do_reboot(tr, why_s);
}

static void try_commit(struct trails *tr);

/* Failures and the commit seen inside a runtime callback are acted on from
 * the loop (a 0 ms timer fires after the iteration's fds): the control API
 * answers what is pending before the commit's durable writes and gc. */
static void act_cb(struct loop_timer *t)
{
	struct trails *tr = t->data;
	if (tr->op != TR_OP_TRY || tr->finishing)
		return;
	if (tr->pending) { /* a failure wins over a commit due in the same tick */
		tr->pending = tr->commit_due = false;
		try_fail(tr, &tr->pend);
	} else if (tr->commit_due) {
		tr->commit_due = false;
		try_commit(tr);
	}
}

static void guard_cb(struct loop_timer *t)
{
	struct trails *tr = t->data;
	if (tr->op == TR_OP_TRY && !tr->finishing)
		fail_later(tr, "goal-timeout", NULL,
			   "revision %llu: status goals not reached in time",
			   (unsigned long long)tr->next->number);
}

/* The first container of the try whose goal is not met (group order). */
static const char *first_unmet(struct trails *tr)
{
	const struct revision *r = tr->next;
	for (size_t g = 0; g < r->ngroups; g++)
		for (size_t i = 0; i < r->ncontainers; i++) {
			if (r->containers[i].group != g)
				continue;
			int k = runtime_find(tr->cfg.rt, r->containers[i].name);
			struct rt_ctr_status st;
			if (k < 0)
				return r->containers[i].name;
			runtime_status(tr->cfg.rt, (size_t)k, &st);
			if (!st.goal_met)
				return r->containers[i].name;
		}
	return NULL;
}

/* ---- committing ---- */

static void try_commit(struct trails *tr)
{
	tr->finishing = true;
	loop_timer_disarm(tr->cfg.loop, &tr->guard);
	uint64_t rev = tr->next->number, old = tr->bs.committed;
	struct err e = ERR_INIT;
	if (tr_boot_write(tr, rev, 0, 0, &e) < 0) {
		try_fail(tr, tr_fail_set(tr, "storage", "", "commit: %s", e.msg));
		return;
	}
	struct tr_rec *rec = tr_rec_find(tr, rev);
	if (rec) {
		rec->previous = old != rev ? old : rec->previous;
		if (tr_event(tr, rec, TE_COMMIT, NULL, &e) < 0)
			log_err("revision %llu: %s (committed all the same)", (unsigned long long)rev,
				e.msg);
	}
	tr_drop_sockets(tr, tr->cur, tr->next);
	revision_free(tr->cur);
	tr->cur = TAKE_PTR(tr->next);
	tr->op = TR_OP_NONE;
	tr->finishing = false;
	log_info("revision %llu committed (was %llu) after %llu ms", (unsigned long long)rev,
		 (unsigned long long)old, (unsigned long long)((now_ns() - tr->op_t0_ns) / NS_PER_MS));
	tr_gc_auto(tr, "commit");
}

static void try_started_cb(void *data, bool ok, const char *reason)
{
	struct trails *tr = data;
	if (tr->op != TR_OP_TRY || tr->finishing)
		return;
	if (ok) {
		if (!tr->pending) {
			tr->commit_due = true;
			loop_timer_arm_in(tr->cfg.loop, &tr->act, 0);
		}
		return;
	}
	const char *ctr = first_unmet(tr);
	int k = ctr ? runtime_find(tr->cfg.rt, ctr) : -1;
	struct rt_ctr_status st = {.state = CTR_STOPPED};
	if (k >= 0)
		runtime_status(tr->cfg.rt, (size_t)k, &st);
	fail_later(tr, st.state == CTR_FAILED ? "container-failed" : "goal-timeout", ctr, "%s",
		   reason);
}

void tr_runtime_event(void *data, const char *name, enum rt_ctr_event ev, unsigned restarts,
		      const char *reason)
{
	struct trails *tr = data;
	if (tr->op != TR_OP_TRY || tr->finishing || !tr->next)
		return;
	const struct rev_container *c = revision_container(tr->next, name);
	if (!c)
		return;
	size_t i = (size_t)(c - tr->next->containers);
	if (ev == RT_CTR_FAILED) {
		fail_later(tr, "container-failed", name, "container %s: %s", name, reason);
		return;
	}
	if (ev != RT_CTR_EXITED)
		return;
	/* A container being stopped on purpose (the old instance during the
	 * switch) is STOPPING or STOPPED: that exit is not a crash. */
	int k = runtime_find(tr->cfg.rt, name);
	struct rt_ctr_status st;
	if (k >= 0) {
		runtime_status(tr->cfg.rt, (size_t)k, &st);
		if (st.state == CTR_STOPPING || st.state == CTR_STOPPED)
			return;
	}
	tr->exits[i]++;
	log_info("revision %llu: container %s exited during the try (%u of %u): %s",
		 (unsigned long long)tr->next->number, name, tr->exits[i], tr->cfg.crash_loop_max,
		 reason);
	if (tr->cfg.crash_loop_max && tr->exits[i] >= tr->cfg.crash_loop_max)
		fail_later(tr, "crash-loop", name, "container %s exited %u times while tried (%u restarts): %s",
			   name, tr->exits[i], restarts, reason);
}

/* ---- rolling back (live) ---- */

static void rollback_started_cb(void *data, bool ok, const char *reason)
{
	struct trails *tr = data;
	if (tr->op != TR_OP_ROLLBACK)
		return;
	tr->op = TR_OP_NONE;
	if (ok)
		log_info("rollback: revision %llu reached its goals again",
			 (unsigned long long)tr->running);
	else
		log_warn("rollback: revision %llu: %s", (unsigned long long)tr->running, reason);
}

static void rollback_give_up(struct trails *tr, const char *why)
{
	struct err e = ERR_INIT;
	if (tr_boot_write(tr, tr->bs.committed, 0, 0, &e) < 0)
		log_err("%s", e.msg);
	char msg[ERR_MSG_MAX + 96];
	snprintf(msg, sizeof(msg), "rollback impossible (%s): reboot into revision %llu", why,
		 (unsigned long long)tr->bs.committed);
	do_reboot(tr, msg);
}

/* The runtime runs the committed revision again: the try is over. */
static void rollback_applied(struct trails *tr)
{
	struct err e = ERR_INIT;
	uint64_t failed = tr->next->number;
	if (tr_boot_write(tr, tr->bs.committed, 0, 0, &e) < 0)
		log_err("%s (the next boot clears it)", e.msg);
	set_running(tr, tr->cur ? tr->cur->number : 0);
	tr_drop_sockets(tr, tr->next, tr->cur);
	revision_free(tr->next);
	tr->next = NULL;
	tr->finishing = false;
	log_info("revision %llu rolled back to %llu", (unsigned long long)failed,
		 (unsigned long long)tr->running);
	tr_gc_auto(tr, "failed try");
}

static void rollback_stopped_cb(void *data)
{
	rollback_started_cb(data, true, "");
}

static void rollback_try_apply(struct trails *tr);

/* Everything stopped because the try's apply would not yield: apply now. */
static void rollback_restart_cb(void *data)
{
	struct trails *tr = data;
	if (tr->op == TR_OP_ROLLBACK && tr->next)
		rollback_try_apply(tr);
}

/* The try's apply is still starting (it yields once its start-up reports,
 * which stopping the failed container brings about): wait for it, then as
 * a last resort stop everything and start the committed revision afresh. */
static void rollback_busy(struct trails *tr, const char *why)
{
	if (strcmp(runtime_phase(tr->cfg.rt), "stopping") == 0 && !tr->stopping_all) {
		log_warn("rollback: the device is shutting down; the next boot runs revision %llu",
			 (unsigned long long)tr->bs.committed);
		return;
	}
	if (tr->stopping_all)
		return;
	if (tr->retries++ < TR_RETRY_MAX) {
		loop_timer_arm_in(tr->cfg.loop, &tr->retry, TR_RETRY_MS * NS_PER_MS);
		return;
	}
	log_warn("rollback: %s; stopping every container first", why);
	tr->stopping_all = true;
	runtime_stop_all(tr->cfg.rt, rollback_restart_cb, tr);
}

static void rollback_try_apply(struct trails *tr)
{
	struct err e = ERR_INIT;
	int r = 0;
	tr->stopping_all = false;
	if (tr->cur)
		r = tr_apply(tr, tr->cur, rollback_started_cb, &e);
	else
		runtime_stop_all(tr->cfg.rt, rollback_stopped_cb, tr);
	if (r == -EBUSY) {
		rollback_busy(tr, e.msg);
		return;
	}
	if (r < 0) {
		rollback_give_up(tr, e.msg);
		return;
	}
	rollback_applied(tr);
}

static void retry_cb(struct loop_timer *t)
{
	struct trails *tr = t->data;
	if (tr->op == TR_OP_ROLLBACK && tr->next && !tr->stopping_all)
		rollback_try_apply(tr);
}

static void rollback_start(struct trails *tr)
{
	tr->op = TR_OP_ROLLBACK;
	tr->retries = 0;
	tr->stopping_all = false;
	tr->retry.cb = retry_cb;
	/* the failed container goes first: its stop also ends the try's start-up */
	struct err e = ERR_INIT;
	if (tr->fail.container[0] && runtime_ctr_stop(tr->cfg.rt, tr->fail.container, &e) < 0)
		log_debug("rollback: %s", e.msg);
	rollback_try_apply(tr);
}

/* ---- starting a try ---- */

static uint64_t guard_ns(const struct revision *r)
{
	uint64_t s = TR_GUARD_EXTRA_S;
	for (size_t g = 0; g < r->ngroups; g++)
		s += r->groups[g].timeout_s;
	return s * NS_PER_S;
}

int tr_try_start(struct trails *tr, struct tr_rec *rec, struct revision *r, bool booted,
		 struct err *e)
{
	revision_free(tr->next);
	tr->next = r;
	tr->op = TR_OP_TRY;
	tr->try_booted = booted;
	tr->finishing = tr->pending = tr->commit_due = false;
	memset(tr->exits, 0, sizeof(tr->exits));
	tr->op_t0_ns = now_ns();
	tr->act.cb = act_cb;
	tr->guard.cb = guard_cb;
	set_running(tr, rec->number);
	loop_timer_arm_in(tr->cfg.loop, &tr->guard, guard_ns(r));
	log_info("revision %llu: trying (%s)", (unsigned long long)rec->number,
		 booted ? "booted" : "live");
	int ret = tr_apply(tr, r, try_started_cb, e);
	if (ret < 0)
		try_fail(tr, tr_fail_set(tr, "switch", e->field, "%s", e->msg));
	return ret;
}

/* ---- trails_run ---- */

static int run_check(struct trails *tr, uint64_t rev, bool admin, struct tr_rec **out,
		     struct err *e)
{
	if (tr->op == TR_OP_VERIFY)
		return err_set(e, EBUSY, "revision %llu is being verified for a switch",
			       (unsigned long long)tr->verify.rev);
	if (tr->op == TR_OP_TRY || tr->op == TR_OP_ROLLBACK || tr->op == TR_OP_START)
		return err_set(e, EBUSY, "a switch is in progress (revision %llu)",
			       (unsigned long long)tr->running);
	if (tr->bs.try_rev && tr->bs.tries > 0)
		return err_set(e, EBUSY, "a reboot into revision %llu is pending",
			       (unsigned long long)tr->bs.try_rev);
	struct tr_rec *rec = tr_rec_find(tr, rev);
	if (!rec || !rec->installed)
		return err_field(e, ENOENT, "revision", "revision %llu is not installed (%s)",
				 (unsigned long long)rev, rec ? rev_state_name(rec->state) : "unknown");
	if (rev == tr->running)
		return err_set(e, EALREADY, "revision %llu is already running", (unsigned long long)rev);
	if (rec->state == REV_FAILED)
		return err_field(e, EPERM, "revision", "revision %llu failed (%s): it is not run again",
				 (unsigned long long)rev, rec->reason);
	if (rec->state != REV_INSTALLED && rec->state != REV_DONE)
		return err_field(e, EINVAL, "revision", "revision %llu is %s",
				 (unsigned long long)rev, rev_state_name(rec->state));
	if (rev <= tr->bs.committed && !admin)
		return err_field(e, ERANGE, "revision",
				 "revision %llu is not newer than the committed %llu: only the admin "
				 "socket may run it (downgrade)",
				 (unsigned long long)rev, (unsigned long long)tr->bs.committed);
	*out = rec;
	return 0;
}

static int run_reboot(struct trails *tr, struct tr_rec *rec, struct err *e)
{
	int r = tr_boot_write(tr, tr->bs.committed, rec->number, 1, e);
	if (r < 0)
		return r;
	char why[64];
	snprintf(why, sizeof(why), "switch to revision %llu", (unsigned long long)rec->number);
	do_reboot(tr, why);
	return 0;
}

static int run_live(struct trails *tr, struct tr_rec *rec, struct revision *r, struct err *e)
{
	enum rev_state before = rec->state;
	int ret = tr_event(tr, rec, TE_TRY, NULL, e);
	if (ret < 0) {
		rec->state = before; /* nothing switched: it stays as it was */
		revision_free(r);
		return ret;
	}
	ret = tr_boot_write(tr, tr->bs.committed, rec->number, 0, e);
	if (ret < 0) {
		struct err fe = ERR_INIT;
		if (tr_event(tr, rec, TE_FAIL, tr_fail_set(tr, "storage", "", "%s", e->msg), &fe) < 0)
			log_err("%s", fe.msg);
		revision_free(r);
		return ret;
	}
	return tr_try_start(tr, rec, r, false, e);
}

/* A load failure of rec: an INSTALLED revision becomes FAILED with it. */
void tr_run_failed(struct trails *tr, struct tr_rec *rec, int code, const struct err *why)
{
	struct err fe = ERR_INIT;
	if (rec->state == REV_INSTALLED &&
	    tr_event(tr, rec, TE_FAIL, tr_fail_set(tr, tr_load_code(code), why->field, "%s", why->msg),
		     &fe) < 0)
		log_err("%s", fe.msg);
}

int tr_run_verified(struct trails *tr, struct tr_rec *rec, struct revision *r, struct err *e)
{
	if (tr_needs_reboot(tr->cur, r)) {
		revision_free(r);
		return run_reboot(tr, rec, e);
	}
	return run_live(tr, rec, r, e);
}

/* The document is checked here (signature, schema, objects present with
 * their sizes: milliseconds); the objects are re-hashed by a worker process
 * (engine_verify.c), after which tr_run_verified goes on. */
int trails_run(struct trails *tr, uint64_t rev, bool admin, struct err *e)
{
	struct tr_rec *rec = NULL;
	int ret = run_check(tr, rev, admin, &rec, e);
	if (ret < 0)
		return ret;
	struct revision *r = NULL;
	ret = trails_load_doc(tr->cfg.storage, rev, tr->cfg.trust, &r, e);
	if (ret >= 0 && (ret = trails_objects_present(tr->cfg.storage, r, e)) < 0)
		revision_free(r);
	if (ret < 0) {
		tr_run_failed(tr, rec, ret, e);
		return ret;
	}
	return tr_verify_start(tr, rec, r, e);
}
