/* trails/hub_fetch.c — the objects of the update the hub assigned: one at
 * a time, in document order. The store writer is opened (and the space
 * admitted) before the first byte is fetched; a helper fills the staging
 * file; when it ends (done or cut) the staged bytes are copied into the
 * writer from the loop, hashed, and punched out of the staging file
 * (hub_import.c), so the object is on disk about once. Copying while the
 * helper runs would slow the transfer on a small CPU for nothing: the
 * copy is as fast as the disk. A cut resumes with Range from the staged
 * size, the writer kept across cuts; a wrong digest or size throws the
 * staged bytes away. Backoff: HUB.md, "Polling, jitter, backoff". */
#define LOG_MODULE "hub"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "hub_internal.h"

#define NS_PER_MS 1000000ull
#define FAILS_MAX 32

DEFINE_FREEP(struct revision, revision_free)

static void fetch_failed(struct trails_hub *h, bool progress, const char *code, const char *fmt,
			 ...) _printf_(4, 5);
static void fetch_failed(struct trails_hub *h, bool progress, const char *code, const char *fmt,
			 ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* cut to fit, like err_set */
	va_end(ap);
	hub_reason_set(&h->fetch_err, code, "%s", msg);
	h->fetch_fails = progress ? 0 : h->fetch_fails < FAILS_MAX ? h->fetch_fails + 1 : FAILS_MAX;
	uint64_t ms = hub_fetch_delay_ms(h->poll_s, h->fetch_fails, hub_random());
	log_warn("%s (%s); next try in %llu ms", msg, code, (unsigned long long)ms);
	loop_timer_arm_in(h->loop, &h->fetch_timer, ms * NS_PER_MS);
	hub_report_check(h);
}

/* Forget the store writer; its staged bytes go too when they cannot be
 * resumed from disk (punched) or are not wanted. */
static void import_drop(struct trails_hub *h, bool remove_part)
{
	if (!h->imp)
		return;
	char part[HUB_PART_NAME_LEN + 1];
	hub_part_name(&h->imp_d, part);
	if (remove_part || hub_import_punched(h->imp))
		hub_stage_remove(h->stagefd, part);
	hub_import_free(h->imp);
	h->imp = NULL;
	loop_timer_disarm(h->loop, &h->import_timer);
}

void hub_fetch_stop(struct trails_hub *h)
{
	const struct digest none = {{0}}; /* keep[] of none: every part goes */
	h->nobjs = 0;
	import_drop(h, true);
	hub_stage_sweep(h->stagefd, HUB_UID, &none, 0, NULL);
}

int hub_fetch_plan(struct trails_hub *h, const struct trails_offer *off, const char *doc,
		   size_t doclen, struct err *e)
{
	_cleanup_(revision_freep) struct revision *r = NULL;
	int ret = revision_parse(doc, doclen, REV_PARSE_DEVICE, &r, e);
	if (ret < 0)
		return ret;
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t nuses = revision_objects(r, uses, ARRAY_SIZE(uses)), n = 0;
	struct digest keep[REV_MAX_OBJECTS];
	for (size_t i = 0; i < off->nmissing && n < ARRAY_SIZE(h->objs); i++)
		for (size_t j = 0; j < nuses; j++)
			if (digest_eq(&uses[j].ref->digest, &off->missing[i])) {
				h->objs[n] = (struct hub_obj){off->missing[i], uses[j].ref->size};
				keep[n++] = off->missing[i];
				break;
			}
	h->nobjs = n;
	h->cur = 0;
	bool imp_wanted = false;
	for (size_t i = 0; i < n && h->imp; i++)
		imp_wanted |= digest_eq(&keep[i], &h->imp_d);
	if (!imp_wanted)
		import_drop(h, true);
	hub_stage_sweep(h->stagefd, HUB_UID, keep, n, h->imp ? &h->imp_d : NULL);
	log_info("revision %llu: %zu objects to fetch, %llu bytes", (unsigned long long)h->rev, n,
		 (unsigned long long)off->missing_bytes);
	return 0;
}

/* ---- import steps, from the loop ---- */

static void import_kick(struct trails_hub *h)
{
	if (h->imp && !h->import_timer.armed)
		loop_timer_arm(h->loop, &h->import_timer, now_ns());
}

static void import_failed(struct trails_hub *h, int r, const struct err *e)
{
	char id[DIGEST_STR_LEN + 1];
	digest_format(&h->imp_d, id);
	hub_proc_stop(&h->main); /* whatever it still sends is of no use */
	import_drop(h, true);
	h->staged_now = 0;
	fetch_failed(h, false, r == -EBADMSG ? "hub-digest" : r == -EFBIG ? "hub-size" : "hub-storage",
		     "object %s: %s", id, e->msg);
}

static void import_fire(struct loop_timer *t)
{
	struct trails_hub *h = t->data;
	bool more, finished;
	struct err e = ERR_INIT;
	if (!h->imp)
		return;
	int r = hub_import_step(h->imp, h->stagefd, HUB_UID, HUB_IMPORT_STEP, &more, &finished, &e);
	if (r < 0)
		return import_failed(h, r, &e);
	if (more) {
		loop_timer_arm(h->loop, &h->import_timer, now_ns());
		return;
	}
	if (!finished) { /* all staged bytes copied: fetch the rest */
		if (!h->main.running)
			hub_kick(h);
		return;
	}
	char id[DIGEST_STR_LEN + 1];
	digest_format(&h->imp_d, id);
	log_info("object %s stored (verified)", id);
	import_drop(h, true);
	h->staged_now = 0;
	h->fetch_fails = 0;
	h->fetch_err.code[0] = '\0';
	hub_advance(h);
	hub_kick(h);
}

/* ---- the helper's end ---- */

static void object_progress(struct hub_proc *p)
{
	struct trails_hub *h = p->h;
	uint64_t size = h->objs[h->cur].size;
	h->staged_now = p->rx.staged < size ? p->rx.staged : size; /* its word: reports only */
	hub_report_check(h);
}

static void object_done(struct hub_proc *p)
{
	struct trails_hub *h = p->h;
	const struct hub_obj *o = &h->objs[h->cur];
	char part[HUB_PART_NAME_LEN + 1], id[DIGEST_STR_LEN + 1];
	hub_part_name(&o->d, part);
	digest_format(&o->d, id);
	if (trails_object_has(h->tr, &o->d) && !h->imp)
		return hub_kick(h); /* imported and committed already */
	uint64_t staged = hub_stage_size(h->stagefd, part, HUB_UID);
	bool progress = staged > h->staged0 || (staged > 0 && staged < h->staged0);
	h->staged_now = staged;
	import_kick(h);
	if (p->err.code)
		return fetch_failed(h, progress, "hub-helper", "object %s: %s", id, p->err.msg);
	if (!p->rx.ok) {
		bool lost = p->rx.fail == HUB_FAIL_SIZE || p->rx.fail == HUB_FAIL_WRITE;
		if (lost)
			import_drop(h, true);
		return fetch_failed(h, progress && !lost, hub_fail_code(p->kind, p->rx.fail),
				    "object %s: %s", id, p->rx.text);
	}
	if (!p->rx.have_http || (p->rx.http != 200 && p->rx.http != 206)) {
		if (p->rx.http == 416) /* the hub's object is shorter than the staged part */
			import_drop(h, true);
		return fetch_failed(h, false, "hub-http", "GET object %s: HTTP %u", id, p->rx.http);
	}
	if (staged < o->size)
		fetch_failed(h, progress, "hub-network", "object %s: connection closed at %llu of %llu bytes",
			     id, (unsigned long long)staged, (unsigned long long)o->size);
}

/* ---- the next fetch ---- */

static bool still_downloading(struct trails_hub *h)
{
	struct hub_view v;
	struct err e = ERR_INIT;
	return hub_view_read(h->tr, h->rev, &v, &e) == 0 && v.known && v.state == REV_DOWNLOADING;
}

/* A store writer for objs[cur]; false when there is nothing to fetch now. */
static bool writer_ready(struct trails_hub *h)
{
	const struct hub_obj *o = &h->objs[h->cur];
	char id[DIGEST_STR_LEN + 1];
	struct err e = ERR_INIT;
	if (h->imp && !digest_eq(&h->imp_d, &o->d))
		import_drop(h, true);
	if (h->imp)
		return true;
	digest_format(&o->d, id);
	int r = hub_import_begin(h->tr, &o->d, o->size, &h->imp, &e);
	if (r == 1) { /* stored meanwhile (a sideload): on to the next */
		trails_object_stored(h->tr, &o->d);
		loop_timer_arm(h->loop, &h->fetch_timer, now_ns());
		return false;
	}
	if (r == -ENOENT) { /* no revision wants it any more */
		h->nobjs = 0;
		return false;
	}
	if (r < 0) {
		fetch_failed(h, false, "hub-storage", "object %s: %s", id, e.msg);
		return false;
	}
	h->imp_d = o->d;
	return true;
}

static void fetch_start(struct trails_hub *h, uint64_t staged)
{
	const struct hub_obj *o = &h->objs[h->cur];
	struct hub_job job = {.kind = HUB_JOB_OBJECT, .size = o->size};
	struct err e = ERR_INIT;
	char hex[DIGEST_HEX_LEN + 1];
	hex_encode(o->d.b, DIGEST_LEN, hex);
	hub_url(h, &job, "/v1/objects/sha256/%s", hex);
	hub_part_name(&o->d, job.file);
	if (hub_job_secrets(h, &job, &e) < 0)
		return fetch_failed(h, false, "hub-config", "%s", e.msg);
	h->main.done = object_done;
	h->main.progress = object_progress;
	h->staged0 = h->staged_now = staged;
	int r = hub_proc_start(&h->main, &job, &e);
	hub_job_secrets_free(&job);
	if (r < 0)
		fetch_failed(h, false, "hub-helper", "%s", e.msg);
}

void hub_fetch_next(struct trails_hub *h)
{
	if (h->main.running || h->import_timer.armed || h->fetch_timer.armed || !h->rev || !h->nobjs)
		return;
	if (!still_downloading(h)) {
		h->nobjs = 0;
		import_drop(h, true);
		return;
	}
	size_t i = 0;
	while (i < h->nobjs && trails_object_has(h->tr, &h->objs[i].d))
		i++;
	if (i == h->nobjs) {
		h->nobjs = 0;
		import_drop(h, true);
		return hub_advance(h);
	}
	h->cur = i;
	if (!writer_ready(h))
		return;
	char part[HUB_PART_NAME_LEN + 1];
	hub_part_name(&h->objs[i].d, part);
	uint64_t staged = hub_stage_size(h->stagefd, part, HUB_UID);
	if (staged > hub_import_done(h->imp))
		import_kick(h); /* bytes from before a restart: copied first, then on */
	else
		fetch_start(h, staged);
}

static void fetch_fire(struct loop_timer *t)
{
	hub_kick(t->data);
}

void hub_fetch_init(struct trails_hub *h)
{
	h->fetch_timer.cb = fetch_fire;
	h->fetch_timer.data = h;
	h->import_timer.cb = import_fire;
	h->import_timer.data = h;
}
