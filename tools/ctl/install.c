/* tools/ctl/install.c — `install OUT`: sideload a revision built by
 * cairn-pack into a running device, sending only the objects it lacks.
 *
 *  1. PUT /v1/revisions/REV {"document", "signature"}: the device verifies
 *     the signed document and answers which objects it still needs
 *     ({"revision", "state", "missing": ["sha256:…"], "missing_bytes"});
 *  2. each missing object: HEAD /v1/objects/sha256:HEX (it may have arrived
 *     meanwhile, e.g. from the hub), else PUT with the bytes streamed from
 *     OUT's store (sendfile), the device verifying them against the digest;
 *  3. GET /v1/revisions/REV: the revision is INSTALLED once every object is
 *     there. A device that still misses objects is offered the document
 *     again (at most ROUNDS times, each round having to send something).
 *
 * The document's own bytes travel unchanged (JSON-escaped in the body): the
 * signature covers them exactly. `keys install` sends its keys document the
 * same way (signed_doc_read, signed_doc_put). */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"

#define ROUNDS 3
#define TARGET_MAX 128
#define DRAW_NS 100000000ull /* progress bar redraw interval */
#define BAR_WIDTH 24

struct install {
	const struct ctl *c;
	const char *out;
	struct revision *rev;
	struct storage *store; /* OUT's object store, opened on first need */
	struct signed_doc sd;  /* revision.json, revision.sig */
	/* what travelled */
	unsigned nsent, nskipped;
	uint64_t bytes_sent;
	/* progress */
	uint64_t total, done, t0, last_draw;
	uint64_t elapsed_ns; /* time spent sending objects, every round */
	char state[32];
	char reason[1024];
};

static void install_free(struct install *in)
{
	revision_free(in->rev);
	storage_close(in->store);
	signed_doc_free(&in->sd);
}

/* ---------------- progress ---------------- */

static void draw(struct install *in, uint64_t now_bytes, bool final)
{
	char a[32], b[32], r[32];
	uint64_t now = now_ns(), dt = now - in->t0;
	if (!in->c->progress_tty || (!final && now - in->last_draw < DRAW_NS))
		return;
	in->last_draw = now;
	unsigned pct = in->total ? (unsigned)(now_bytes * 100 / in->total) : 100;
	unsigned fill = pct * BAR_WIDTH / 100;
	show_bytes(now_bytes, a, sizeof(a));
	show_bytes(in->total, b, sizeof(b));
	show_bytes(dt ? (uint64_t)((double)now_bytes * 1e9 / (double)dt) : 0, r, sizeof(r));
	fprintf(stderr, "\r\033[K%3u%% [", pct);
	for (unsigned i = 0; i < BAR_WIDTH; i++)
		fputc(i < fill ? '#' : '-', stderr);
	fprintf(stderr, "] %s / %s  %s/s", a, b, r);
	if (final)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}

static void on_progress(void *ctx, uint64_t sent)
{
	struct install *in = ctx;
	draw(in, in->done + sent, false);
}

/* ---------------- a signed document ---------------- */

void signed_doc_free(struct signed_doc *d)
{
	free(d->doc);
	free(d->sig);
	memset(d, 0, sizeof(*d));
}

static int read_in(const char *dir, const char *name, size_t max, char **out, size_t *len,
		   struct err *e)
{
	char path[4096];
	if (str_fmt(path, sizeof(path), "%s/%s", dir, name) < 0)
		return err_set(e, ENAMETOOLONG, "%s: path too long", dir);
	return file_read_all(AT_FDCWD, path, max, out, len, e);
}

int signed_doc_read(struct signed_doc *d, const char *dir, const char *doc, size_t max,
		    const char *sig, struct err *e)
{
	int r = read_in(dir, doc, max, &d->doc, &d->doclen, e);
	if (r == 0)
		r = read_in(dir, sig, SIG_MAX_FILE, &d->sig, &d->siglen, e);
	return r;
}

int signed_doc_put(const struct ctl *c, const char *target, const struct signed_doc *d,
		   struct reply *rp)
{
	struct jw w;
	struct err e = ERR_INIT;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_key(&w, "document");
	jw_strn(&w, d->doc, d->doclen);
	jw_key(&w, "signature");
	jw_strn(&w, d->sig, d->siglen);
	jw_obj_close(&w);
	if (jw_finish(&w, &e) < 0) {
		jw_free(&w);
		return ctl_fail(CTL_FAILED, "PUT %s: %s", target, e.msg);
	}
	int code = api_call(c, "PUT", target, w.buf, w.len, rp);
	jw_free(&w);
	if (code == CTL_OK && !rp->tok) {
		reply_free(rp);
		return ctl_fail(CTL_UNREACHABLE, "PUT %s: the device answered no JSON", target);
	}
	return code;
}

/* ---------------- reading OUT ---------------- */

static int read_out(struct install *in, struct err *e)
{
	int r = signed_doc_read(&in->sd, in->out, "revision.json", REV_MAX_DOC, "revision.sig", e);
	if (r < 0)
		return r;
	r = revision_parse(in->sd.doc, in->sd.doclen, REV_PARSE_DEVICE, &in->rev, e);
	if (r < 0)
		return err_prefix(e, "%s/revision.json", in->out);
	return 0;
}

/* The declared size of object d in the revision; -ENOENT if it names none. */
static int declared_size(const struct install *in, const struct digest *d, uint64_t *size)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(in->rev, uses, REV_MAX_OBJECTS);
	for (size_t i = 0; i < n && i < REV_MAX_OBJECTS; i++) {
		if (digest_eq(&uses[i].ref->digest, d)) {
			*size = uses[i].ref->size;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---------------- step 1: the document ---------------- */

static int offer(struct install *in, struct reply *rp)
{
	char target[TARGET_MAX];
	if (str_fmt(target, sizeof(target), "/v1/revisions/%llu",
		    (unsigned long long)in->rev->number) < 0)
		return ctl_fail(CTL_FAILED, "revision target too long");
	return signed_doc_put(in->c, target, &in->sd, rp);
}

/* ---------------- step 2: the objects ---------------- */

static int object_target(const struct digest *d, char *target, size_t cap)
{
	char id[DIGEST_STR_LEN + 1];
	digest_format(d, id);
	return str_fmt(target, cap, "/v1/objects/%s", id);
}

/* Does the device have it already (HEAD answers 200)? Any other answer,
 * even none, means: try the upload, which reports what is wrong. */
static bool device_has(const struct install *in, const char *target)
{
	struct reply rp;
	struct err e = ERR_INIT;
	int code = api_try(in->c, "HEAD", target, NULL, 0, &rp, &e);
	bool has = code == CTL_OK && rp.status == 200;
	reply_free(&rp);
	return has;
}

/* OUT's copy of object d, checked against the size the document declares. */
static int open_object(struct install *in, const struct digest *d, uint64_t size, int *fd)
{
	struct err e = ERR_INIT;
	struct stat st;
	char id[DIGEST_STR_LEN + 1];
	if (!in->store && storage_open(in->out, &in->store, &e) < 0)
		return ctl_fail(CTL_FAILED, "%s", e.msg);
	if (storage_object_open(in->store, d, fd, &e) < 0)
		return ctl_fail(CTL_FAILED, "%s: %s", in->out, e.msg);
	digest_format(d, id);
	if (fstat(*fd, &st) < 0)
		return ctl_fail(CTL_FAILED, "%s: object %s: %s", in->out, id, strerror(errno));
	if ((uint64_t)st.st_size != size)
		return ctl_fail(CTL_FAILED, "%s: object %s has %lld bytes, the revision declares %llu",
				in->out, id, (long long)st.st_size, (unsigned long long)size);
	return CTL_OK;
}

/* Bytes that left for the device: the progress callback saw them. */
struct counted {
	struct install *in;
	uint64_t sent;
};

static void count_progress(void *ctx, uint64_t sent)
{
	struct counted *k = ctx;
	k->sent = sent;
	on_progress(k->in, sent);
}

static int put_object(struct install *in, const struct digest *d, uint64_t size,
		      const char *target)
{
	_cleanup_close_ int fd = -1;
	int code = open_object(in, d, size, &fd);
	if (code != CTL_OK)
		return code;
	struct counted k = {in, 0};
	struct http_body b = {.type = "application/octet-stream",
			      .fd = fd,
			      .size = size,
			      .expect_continue = size > 0,
			      .progress = count_progress,
			      .progress_ctx = &k};
	struct reply rp;
	struct err e = ERR_INIT;
	code = api_send(in->c, "PUT", target, &b, &rp, &e);
	in->bytes_sent += k.sent;
	in->done += size;
	if (code != CTL_OK) {
		draw(in, in->done, true);
		return ctl_fail(code, "%s", e.msg);
	}
	if (rp.status < 200 || rp.status >= 300) {
		draw(in, in->done, true);
		code = api_refused(&rp);
	}
	reply_free(&rp);
	in->nsent += code == CTL_OK;
	return code;
}

/* One missing object named by the device's answer (token i). */
static int send_one(struct install *in, const struct jp *p, int i)
{
	char text[DIGEST_STR_LEN + 8], target[TARGET_MAX];
	struct digest d;
	uint64_t size;
	size_t len = 0;
	if (jp_str(p, i, text, sizeof(text), &len) < 0 || digest_parse(text, len, &d) < 0)
		return ctl_fail(CTL_UNREACHABLE, "the device asked for a malformed object id");
	if (declared_size(in, &d, &size) < 0)
		return ctl_fail(CTL_FAILED, "the device asked for %s, which revision %llu does not "
					    "name", text, (unsigned long long)in->rev->number);
	if (object_target(&d, target, sizeof(target)) < 0)
		return ctl_fail(CTL_FAILED, "object target too long");
	if (device_has(in, target)) {
		in->nskipped++;
		in->done += size;
		return CTL_OK;
	}
	return put_object(in, &d, size, target);
}

static int send_missing(struct install *in, const struct jp *p, int arr)
{
	uint64_t sum = 0, size;
	int k = arr + 1;
	for (int m = 0; m < p->tok[arr].size; m++, k = jp_next(p, k)) {
		struct digest d;
		char text[DIGEST_STR_LEN + 8];
		size_t len = 0;
		if (jp_str(p, k, text, sizeof(text), &len) == 0 &&
		    digest_parse(text, len, &d) == 0 && declared_size(in, &d, &size) == 0)
			sum += size;
	}
	in->total = sum;
	in->done = 0;
	in->t0 = now_ns();
	in->last_draw = 0;
	k = arr + 1;
	for (int m = 0; m < p->tok[arr].size; m++, k = jp_next(p, k)) {
		int code = send_one(in, p, k);
		if (code != CTL_OK)
			return code;
	}
	draw(in, in->done, true);
	in->elapsed_ns += now_ns() - in->t0;
	return CTL_OK;
}

/* ---------------- rounds ---------------- */

/* Offer the document and send what the device lacks; *asked: it lacked
 * something. */
static int install_round(struct install *in, bool first, bool *asked)
{
	struct reply rp;
	char state[32];
	uint64_t mbytes = 0;
	int code = offer(in, &rp);
	if (code != CTL_OK)
		return code;
	int arr = jp_get(&rp.jp, 0, "missing");
	if (arr >= 0 && !jp_is(&rp.jp, arr, JSMN_ARRAY)) {
		reply_free(&rp);
		return ctl_fail(CTL_UNREACHABLE, "the device's \"missing\" is not an array");
	}
	int n = arr >= 0 ? rp.jp.tok[arr].size : 0;
	jv_str(&rp.jp, 0, "state", state, sizeof(state));
	(void)jv_uint(&rp.jp, 0, "missing_bytes", &mbytes);
	if (first && !in->c->json) {
		char b[32];
		show_bytes(mbytes, b, sizeof(b));
		fprintf(stderr, "revision %llu: %s, ", (unsigned long long)in->rev->number,
			state[0] ? state : "?");
		if (n == 0)
			fprintf(stderr, "the device has every object\n");
		else
			fprintf(stderr, "%d object%s missing (%s)\n", n, n == 1 ? "" : "s", b);
	}
	*asked = n > 0;
	code = n > 0 ? send_missing(in, &rp.jp, arr) : CTL_OK;
	reply_free(&rp);
	return code;
}

/* GET the revision's state (and reason) after a round. */
static int fetch_state(struct install *in)
{
	char target[TARGET_MAX];
	struct reply rp;
	if (str_fmt(target, sizeof(target), "/v1/revisions/%llu",
		    (unsigned long long)in->rev->number) < 0)
		return ctl_fail(CTL_FAILED, "revision target too long");
	int code = api_call(in->c, "GET", target, NULL, 0, &rp);
	if (code != CTL_OK)
		return code;
	if (!rp.tok || jv_str(&rp.jp, 0, "state", in->state, sizeof(in->state)) < 0)
		code = ctl_fail(CTL_UNREACHABLE, "GET %s: no \"state\" in the answer", target);
	else
		rev_reason(&rp.jp, 0, in->reason, sizeof(in->reason));
	reply_free(&rp);
	return code;
}

static bool state_is(const struct install *in, const char *s)
{
	return !strcmp(in->state, s);
}

/* "sent N objects, X bytes" (+ time and rate when something travelled). */
static void report_sent(const struct install *in)
{
	char rate[32];
	double s = (double)in->elapsed_ns / 1e9;
	fprintf(stderr, "sent %u object%s, %llu bytes", in->nsent, in->nsent == 1 ? "" : "s",
		(unsigned long long)in->bytes_sent);
	if (in->bytes_sent > 0 && s > 0) {
		show_bytes((uint64_t)((double)in->bytes_sent / s), rate, sizeof(rate));
		fprintf(stderr, " in %.1f s (%s/s)", s, rate);
	}
	fputc('\n', stderr);
}

static int install_rounds(struct install *in)
{
	bool asked = true;
	for (int round = 0; round < ROUNDS && asked; round++) {
		int code = install_round(in, round == 0, &asked);
		if (code == CTL_OK)
			code = fetch_state(in);
		if (code != CTL_OK)
			return code;
		if (!state_is(in, "RECEIVED") && !state_is(in, "DOWNLOADING"))
			break;
	}
	if (!in->c->json)
		report_sent(in);
	if (state_is(in, "REJECTED") || state_is(in, "FAILED"))
		return ctl_fail(CTL_FAILED, "revision %llu %s: %s",
				(unsigned long long)in->rev->number, in->state,
				in->reason[0] ? in->reason : "no reason given");
	if (state_is(in, "RECEIVED") || state_is(in, "DOWNLOADING"))
		return ctl_fail(CTL_FAILED, "revision %llu is still %s: the device still lacks "
					    "objects after %d rounds",
				(unsigned long long)in->rev->number, in->state, ROUNDS);
	return CTL_OK;
}

/* ---------------- the command ---------------- */

static void print_summary(const struct install *in)
{
	struct jw w;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_kv_uint(&w, "revision", in->rev->number);
	jw_kv_str(&w, "state", in->state);
	jw_kv_str(&w, "reason", in->reason);
	jw_kv_uint(&w, "objects_sent", in->nsent);
	jw_kv_uint(&w, "objects_skipped", in->nskipped);
	jw_kv_uint(&w, "bytes_sent", in->bytes_sent);
	jw_obj_close(&w);
	if (jw_finish(&w, NULL) == 0)
		printf("%s\n", w.buf);
	jw_free(&w);
}

/* --run: the final state and reason come from the wait. */
static int install_run(struct install *in)
{
	struct reply last = {0};
	int code = run_revision(in->c, in->rev->number, &last);
	if (last.tok) {
		jv_str(&last.jp, 0, "state", in->state, sizeof(in->state));
		rev_reason(&last.jp, 0, in->reason, sizeof(in->reason));
	}
	reply_free(&last);
	return code;
}

int cmd_install(const struct ctl *c, char **pos)
{
	struct install in = {.c = c, .out = pos[0]};
	struct err e = ERR_INIT;
	int code = CTL_OK;
	if (read_out(&in, &e) < 0)
		code = ctl_fail(CTL_FAILED, "install: %s", e.msg);
	if (code == CTL_OK)
		code = install_rounds(&in);
	if (code == CTL_OK && !c->json)
		printf("revision %llu: %s\n", (unsigned long long)in.rev->number, in.state);
	if (code == CTL_OK && c->run)
		code = install_run(&in);
	if (c->json && in.rev && in.state[0])
		print_summary(&in);
	install_free(&in);
	return code;
}
