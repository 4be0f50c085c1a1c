/* trails/hub.c — the fleet hub client (trails/HUB.md): the poll timer, the
 * desired pointer, the offer to the engine, the switch. Objects are in
 * hub_fetch.c, reports in hub_report.c, helpers in hub_proc.c.
 *
 * Everything network runs in helper processes; this side only reacts to
 * their pipes and to timers, so a hub that is down, slow or lying never
 * stalls the loop. The pointer's contents reach the engine only through
 * trails_offer (signature, schema, downgrade, admission) and objects only
 * through the store's verifying writer. */
#define LOG_MODULE "hub"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../storage/storage.h"
#include "hub_internal.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define FIRST_POLL_MS 3000 /* jittered: 2.4 .. 3.6 s after start */
#define FAILS_MAX 32

/* Like err_set: a message cut to fit is still a message, never a failure. */
static void reason_vset(struct hub_reason *r, const char *code, const char *fmt, va_list ap)
	_printf_(3, 0);
static void reason_vset(struct hub_reason *r, const char *code, const char *fmt, va_list ap)
{
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	size_t n = strnlen(code, sizeof(r->code) - 1);
	memcpy(r->code, code, n);
	r->code[n] = '\0';
}

void hub_reason_set(struct hub_reason *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reason_vset(r, code, fmt, ap);
	va_end(ap);
}

void hub_url(const struct trails_hub *h, struct hub_job *job, const char *fmt, ...)
{
	char tail[160];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tail) ||
	    str_fmt(job->url, sizeof(job->url), "%s%s", h->url, tail) < 0)
		job->url[0] = '\0'; /* the caps make it impossible; libcurl would fail the job */
}

/* ---- polling ---- */

static void poll_schedule(struct trails_hub *h, bool ok)
{
	h->poll_fails = ok ? 0 : h->poll_fails < FAILS_MAX ? h->poll_fails + 1 : FAILS_MAX;
	uint64_t ms = hub_poll_delay_ms(h->poll_s, h->poll_fails, hub_random());
	loop_timer_arm_in(h->loop, &h->poll_timer, ms * NS_PER_MS);
	log_debug("next poll in %llu ms", (unsigned long long)ms);
}

static void poll_ok(struct trails_hub *h)
{
	h->poll_err.code[0] = '\0';
	h->poll_err.msg[0] = '\0';
	poll_schedule(h, true);
	if (h->report_failed)
		h->report_due = true;
	hub_report_check(h);
}

static void poll_failed(struct trails_hub *h, const char *code, const char *fmt, ...)
	_printf_(3, 4);
static void poll_failed(struct trails_hub *h, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reason_vset(&h->poll_err, code, fmt, ap);
	va_end(ap);
	log_warn("poll: %s (%s)", h->poll_err.msg, code);
	poll_schedule(h, false);
	hub_report_check(h);
}

static void unassigned(struct trails_hub *h)
{
	if (h->rev)
		log_info("the hub assigns no revision any more (404)");
	h->rev = 0;
	hub_fetch_stop(h);
	h->fetch_err.code[0] = h->run_err.code[0] = '\0';
	loop_timer_disarm(h->loop, &h->tick);
	h->have_body = false;
	h->etag[0] = '\0';
}

/* A new revision from the hub: forget what the old one was doing. */
static void new_update(struct trails_hub *h, uint64_t rev)
{
	if (rev == h->rev)
		return;
	log_info("the hub assigns revision %llu", (unsigned long long)rev);
	h->rev = rev;
	h->nobjs = 0;
	h->fetch_fails = 0;
	h->fetch_err.code[0] = h->run_err.code[0] = '\0';
	loop_timer_disarm(h->loop, &h->fetch_timer);
}

/* The pointer's keys document first: the revision may be signed by a key
 * it names. A refusal of the document itself is logged and the revision
 * offered anyway (signed by the keys in effect, it still installs; if not,
 * its refusal says why); a failure to store it (< 0) is retried with the
 * poll. The engine logs what it puts into effect. */
static int offer_keys(struct trails_hub *h, const struct hub_pointer *ptr, struct err *e)
{
	bool changed = false;
	if (!ptr->kdoc)
		return 0;
	int r = trails_keys_put(h->tr, ptr->kdoc, ptr->kdoclen, ptr->ksig, ptr->ksiglen, &changed,
				e);
	switch (-r) {
	case 0:
		return 0;
	case EKEYREJECTED:
	case ERANGE:
	case EEXIST:
	case EINVAL:
	case EFBIG:
	case E2BIG:
		log_warn("keys document from the hub refused: %s", e->msg);
		err_clear(e);
		return 0;
	default:
		return err_prefix(e, "keys document");
	}
}

/* 0: handled (the engine decided, even if it refused); < 0: try again later. */
static int offer(struct trails_hub *h, const struct hub_pointer *ptr, struct err *e)
{
	struct trails_offer off;
	struct err oe = ERR_INIT;
	new_update(h, ptr->revision);
	int kr = offer_keys(h, ptr, e);
	if (kr < 0)
		return kr;
	int r = trails_offer(h->tr, ptr->revision, ptr->doc, ptr->doclen, ptr->sig, ptr->siglen, &off,
			     &oe);
	if (r < 0) {
		struct hub_view v;
		struct err ve = ERR_INIT;
		log_warn("revision %llu from the hub: %s", (unsigned long long)ptr->revision, oe.msg);
		hub_fetch_stop(h);
		if (hub_view_read(h->tr, ptr->revision, &v, &ve) == 0 && v.known &&
		    (v.state == REV_REJECTED || v.state == REV_FAILED))
			return 0;
		if (r != -EEXIST) {
			*e = oe;
			return r;
		}
		hub_reason_set(&h->fetch_err, "hub-pointer", "%s", oe.msg);
		return 0;
	}
	if (off.state == REV_DOWNLOADING)
		return hub_fetch_plan(h, &off, ptr->doc, ptr->doclen, e);
	hub_fetch_stop(h);
	return 0;
}

/* The pointer the helper left in staging. */
static void pointer_handle(struct trails_hub *h, const struct hub_rx *rx)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	uint64_t size = 0;
	struct err e = ERR_INIT;
	if (hub_stage_open(h->stagefd, HUB_DESIRED_FILE, HUB_UID, HUB_DESIRED_MAX, false, &fd, &size,
			   &e) < 0)
		return poll_failed(h, "hub-helper", "the pointer: %s", e.msg);
	if (!(buf = malloc(size + 1)) || read_all(fd, buf, size + 1) != (ssize_t)size)
		return poll_failed(h, "hub-storage", "the pointer: cannot read %s", HUB_DESIRED_FILE);
	struct digest dg;
	sha256_buf(buf, size, &dg);
	if (!(h->have_body && digest_eq(&dg, &h->body))) {
		struct hub_pointer ptr;
		if (hub_pointer_parse(buf, size, &ptr, &e) < 0)
			return poll_failed(h, "hub-pointer", "%s", e.msg);
		int r = offer(h, &ptr, &e);
		hub_pointer_free(&ptr);
		if (r < 0)
			return poll_failed(h, "hub-storage", "revision %llu: %s",
					   (unsigned long long)h->rev, e.msg);
		h->body = dg;
		h->have_body = true;
	}
	memcpy(h->etag, rx->have_etag ? rx->etag : "", rx->have_etag ? strlen(rx->etag) + 1 : 1);
	poll_ok(h);
	hub_advance(h);
}

const char *hub_fail_code(enum hub_job_kind kind, char why)
{
	switch (why) {
	case HUB_FAIL_NETWORK:
		return "hub-network";
	case HUB_FAIL_HTTP:
		return "hub-http";
	case HUB_FAIL_SIZE:
		return kind == HUB_JOB_OBJECT ? "hub-size" : "hub-pointer";
	case HUB_FAIL_WRITE:
		return "hub-storage";
	}
	return "hub-helper";
}

static void desired_done(struct hub_proc *p)
{
	struct trails_hub *h = p->h;
	if (p->err.code)
		poll_failed(h, "hub-helper", "%s", p->err.msg);
	else if (!p->rx.ok)
		poll_failed(h, hub_fail_code(p->kind, p->rx.fail), "GET desired: %s", p->rx.text);
	else if (p->rx.http == 304)
		poll_ok(h);
	else if (p->rx.http == 404) {
		unassigned(h);
		poll_ok(h);
	} else if (p->rx.http == 200)
		pointer_handle(h, &p->rx);
	else
		poll_failed(h, "hub-http", "GET desired: HTTP %u", p->rx.http);
	hub_stage_remove(h->stagefd, HUB_DESIRED_FILE);
	hub_kick(h);
}

static void desired_start(struct trails_hub *h)
{
	struct hub_job job = {.kind = HUB_JOB_DESIRED, .size = HUB_DESIRED_MAX};
	struct err e = ERR_INIT;
	hub_url(h, &job, "/v1/devices/%s/desired", h->id);
	memcpy(job.etag, h->etag, sizeof(job.etag));
	memcpy(job.file, HUB_DESIRED_FILE, sizeof(HUB_DESIRED_FILE));
	if (hub_job_secrets(h, &job, &e) < 0)
		return poll_failed(h, "hub-config", "%s", e.msg);
	h->main.done = desired_done;
	h->main.progress = NULL;
	int r = hub_proc_start(&h->main, &job, &e);
	hub_job_secrets_free(&job);
	if (r < 0)
		poll_failed(h, "hub-helper", "%s", e.msg);
}

void hub_kick(struct trails_hub *h)
{
	if (h->main.running || h->import_timer.armed)
		return;
	if (h->want_poll) {
		h->want_poll = false;
		loop_timer_disarm(h->loop, &h->poll_timer);
		desired_start(h);
		return;
	}
	hub_fetch_next(h);
}

static void poll_fire(struct loop_timer *t)
{
	struct trails_hub *h = t->data;
	h->want_poll = true;
	hub_kick(h);
}

/* ---- the switch and the state ---- */

static void run(struct trails_hub *h)
{
	struct err e = ERR_INIT;
	int r = trails_run(h->tr, h->rev, false, &e);
	if (r == 0)
		log_info("revision %llu installed: switching to it", (unsigned long long)h->rev);
	else if (r == -EBUSY)
		log_info("revision %llu: the engine is busy, trying again in %d s (%s)",
			 (unsigned long long)h->rev, HUB_RUN_RETRY_S, e.msg);
	else if (r != -EALREADY) {
		hub_reason_set(&h->run_err, r == -ERANGE ? "downgrade" : "hub-run", "%s", e.msg);
		log_warn("revision %llu: %s", (unsigned long long)h->rev, e.msg);
	}
}

void hub_advance(struct trails_hub *h)
{
	struct hub_view v = {.known = false};
	struct err e = ERR_INIT;
	if (h->rev && hub_view_read(h->tr, h->rev, &v, &e) < 0)
		log_warn("revision %llu: %s", (unsigned long long)h->rev, e.msg);
	uint64_t now = now_ns();
	if (v.known && v.state == REV_INSTALLED && !h->run_err.code[0] &&
	    now >= h->run_after_ns) {
		h->run_after_ns = now + HUB_RUN_RETRY_S * NS_PER_S;
		run(h);
	}
	bool active = v.known && (v.state == REV_DOWNLOADING || v.state == REV_INSTALLED ||
				  v.state == REV_TESTING || v.state == REV_RECEIVED);
	if (active && !h->tick.armed)
		loop_timer_arm_in(h->loop, &h->tick, NS_PER_S);
	else if (!active)
		loop_timer_disarm(h->loop, &h->tick);
	hub_report_check(h);
}

static void tick_fire(struct loop_timer *t)
{
	struct trails_hub *h = t->data;
	hub_advance(h);
	hub_kick(h);
}

/* ---- life ---- */

static int copy_str(char *dst, size_t cap, const char *src, const char *what, struct err *e)
{
	if (!src)
		src = "";
	if (strlen(src) >= cap)
		return err_field(e, E2BIG, what, "longer than %zu bytes", cap - 1);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int hub_configure(struct trails_hub *h, const struct trails_hub_config *c, struct err *e)
{
	int r;
	if ((r = copy_str(h->url, sizeof(h->url), c->url, "hub.url", e)) < 0 ||
	    (r = copy_str(h->id, sizeof(h->id), c->device_id, "hub.device_id", e)) < 0 ||
	    (r = copy_str(h->ca, sizeof(h->ca), c->ca, "hub.ca", e)) < 0 ||
	    (r = copy_str(h->cert, sizeof(h->cert), c->cert, "hub.cert", e)) < 0 ||
	    (r = copy_str(h->key, sizeof(h->key), c->key, "hub.key", e)) < 0 ||
	    (r = copy_str(h->token_file, sizeof(h->token_file), c->token_file, "hub.token_file",
			  e)) < 0 ||
	    (r = copy_str(h->pin, sizeof(h->pin), c->pin, "hub.pin", e)) < 0)
		return r;
	if (!h->url[0] || !h->id[0])
		return err_field(e, EINVAL, h->url[0] ? "hub.device_id" : "hub.url", "not set");
	h->poll_s = c->poll_s ? c->poll_s : 300;
	return 0;
}

static void timer_init(struct loop_timer *t, loop_timer_cb cb, struct trails_hub *h)
{
	t->cb = cb;
	t->data = h;
}

int trails_hub_new(const struct trails_hub_config *cfg, struct loop *loop, struct storage *s,
		   struct trails *tr, struct trails_hub **out, struct err *e)
{
	struct trails_hub *h = calloc(1, sizeof(*h));
	if (!h)
		return err_set(e, ENOMEM, "hub: out of memory");
	h->stagefd = -1;
	h->loop = loop;
	h->s = s;
	h->tr = tr;
	h->main = h->rep = (struct hub_proc){.h = h, .io = {.fd = -1}};
	int r = hub_configure(h, cfg, e);
	if (r == 0)
		r = hub_stage_prepare(storage_root_fd(s), HUB_UID, HUB_GID, &h->stagefd, e);
	if (r < 0) {
		trails_hub_free(h);
		return err_prefix(e, "hub");
	}
	hub_stage_sweep(h->stagefd, HUB_UID, NULL, 0, NULL);
	timer_init(&h->poll_timer, poll_fire, h);
	timer_init(&h->tick, tick_fire, h);
	hub_fetch_init(h);
	hub_report_init(h);
	h->report_due = true; /* the first poll after boot reports */
	loop_timer_arm_in(loop, &h->poll_timer, hub_jitter_ms(FIRST_POLL_MS, hub_random()) * NS_PER_MS);
	log_info("following hub %s as device %s, every %u s", h->url, h->id, h->poll_s);
	*out = h;
	return 0;
}

void trails_hub_free(struct trails_hub *h)
{
	if (!h)
		return;
	hub_proc_stop(&h->main);
	hub_proc_stop(&h->rep);
	hub_import_free(h->imp);
	struct loop_timer *ts[] = {&h->poll_timer, &h->tick, &h->fetch_timer, &h->import_timer};
	for (size_t i = 0; i < ARRAY_SIZE(ts); i++)
		if (ts[i]->cb)
			loop_timer_disarm(h->loop, ts[i]);
	if (h->stagefd >= 0)
		close(h->stagefd);
	free(h);
}

int trails_hub_poll_now(struct trails_hub *h, struct err *e)
{
	if (!h)
		return err_set(e, ENODEV, "no hub configured");
	h->want_poll = true;
	h->poll_fails = 0;
	h->fetch_fails = 0;
	h->run_after_ns = 0;
	if (h->fetch_timer.armed)
		loop_timer_disarm(h->loop, &h->fetch_timer);
	hub_kick(h);
	return 0;
}
