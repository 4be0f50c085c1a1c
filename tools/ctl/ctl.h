/* tools/ctl/ctl.h — cairnctl's private interfaces (README.md is the user guide).
 *
 *   http.c     a small blocking HTTP/1.1 client over a unix socket
 *   api.c      one request to the control API: exit codes, error bodies, JSON
 *   show.c     human output: tables and key/value listings
 *   install.c  `install OUT`: document, then only the objects the device lacks;
 *              sending a signed document (also `keys install`)
 *   keys.c     keys, keys install
 *   cmds.c     status, ps, logs, revisions, revision, progress
 *   run.c      run REV and waiting for a revision to settle
 *   meta.c     meta, device-meta, reboot, poweroff, gc
 *   main.c     argument parsing and the command table
 *
 * cairnctl talks only to the control API (ctrl/API.md). */
#ifndef CAIRN_CTL_H
#define CAIRN_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../lib/err.h"
#include "../../lib/json.h"

/* Exit statuses (README.md). */
enum {
	CTL_OK = 0,
	CTL_FAILED = 1,      /* the device refused, or the operation failed */
	CTL_USAGE = 2,       /* bad command line */
	CTL_UNREACHABLE = 3, /* no usable answer from the device */
};

#define CTL_DEFAULT_SOCKET "/run/cairn/ctrl.sock"
#define CTL_MAX_NUMBER 9007199254740991LL /* 2^53-1: revision numbers, sizes */

/* ---- http.c ---- */

#define HTTP_HEAD_MAX (32 * 1024)        /* status line + headers of a response */
#define HTTP_JSON_MAX (16u * 1024 * 1024) /* a buffered response body */

/* Which side a failed request is to blame on: the device (unreachable,
 * timeout, malformed answer: exit 3) or this machine (a local file, stdout:
 * exit 1). */
enum http_fault { HTTP_FAULT_NONE, HTTP_FAULT_PEER, HTTP_FAULT_LOCAL };

/* Where the body of a response goes when it is streamed (logs). A negative
 * return stops the request (a local fault). */
typedef int (*http_sink_fn)(void *ctx, const char *data, size_t len);

/* Request body: `len` bytes at `buf`, or `size` bytes read from `fd` (a
 * regular file, sent with sendfile) when fd >= 0. */
struct http_body {
	const char *type; /* Content-Type */
	const char *buf;
	size_t len;
	int fd;
	uint64_t size;
	bool expect_continue; /* ask before sending a large body */
	void (*progress)(void *ctx, uint64_t sent);
	void *progress_ctx;
};

struct http_resp {
	unsigned status;
	char *body; /* buffered body, NUL-terminated (NULL when streamed or empty) */
	size_t body_len;
	bool body_sent; /* false: the server answered before taking the whole body */
};

struct http {
	const char *socket_path;
	int timeout_ms; /* longest silence while waiting for the device; < 0: forever */
	int body_timeout_ms; /* the same for a streamed 2xx body (logs -f: -1) */
	size_t max_body;
	enum http_fault fault; /* of the last failed request */
	int fd;
	char *in; /* read buffer */
	size_t in_start, in_end;
};

void http_init(struct http *h, const char *socket_path, int timeout_ms);
void http_close(struct http *h);
void http_resp_free(struct http_resp *r);
/* One request on a fresh connection (Connection: close). `target` is the
 * path and query. A sink streams a 2xx body to it; other bodies (errors)
 * are always buffered. Any HTTP status is a success here: the caller reads
 * r->status. Errors leave h->fault saying whose fault it was. */
int http_request(struct http *h, const char *method, const char *target,
		 const struct http_body *body, http_sink_fn sink, void *sink_ctx,
		 struct http_resp *r, struct err *e) _must_check_;

/* ---- api.c ---- */

struct ctl {
	const char *socket_path;
	bool json;          /* print the API's JSON, not tables */
	int timeout_ms;     /* per request; see http.timeout_ms */
	int wait_timeout_s; /* install --run / run: how long to wait for DONE */
	bool follow;        /* logs -f */
	bool run;           /* install --run */
	bool no_wait;       /* --no-wait */
	bool progress_tty;  /* stderr is a terminal: draw a progress bar */
};

/* A parsed JSON answer. */
struct reply {
	unsigned status;
	char *body;
	size_t len;
	struct jp jp;
	jsmntok_t *tok;
};
void reply_free(struct reply *rp);

/* Send one request and parse its JSON answer into rp. Returns an exit
 * status: CTL_OK for a 2xx answer with valid JSON; otherwise the message
 * ("cairnctl: <error> (field <field>)" for an error body) is printed
 * already and CTL_FAILED or CTL_UNREACHABLE returned. `body` may be NULL. */
int api_call(const struct ctl *c, const char *method, const char *target, const char *body,
	     size_t len, struct reply *rp);
/* api_try with any request body (an object file): the same semantics. */
int api_send(const struct ctl *c, const char *method, const char *target,
	     const struct http_body *b, struct reply *rp, struct err *e);
/* api_call_any without printing: the message of a failure is in e. */
int api_try(const struct ctl *c, const char *method, const char *target, const char *body,
	    size_t len, struct reply *rp, struct err *e);
/* The same with a non-2xx status returned as CTL_OK (rp->status tells),
 * for callers that handle some refusals themselves. */
int api_call_any(const struct ctl *c, const char *method, const char *target, const char *body,
		 size_t len, struct reply *rp);
/* Print rp's error body as "cairnctl: <error> (field <field>)"; CTL_FAILED. */
int api_refused(const struct reply *rp);
/* GET target with its 2xx body streamed to sink (logs): an exit status,
 * messages printed. A reader that went away (EPIPE) is a normal end. */
int api_stream(const struct ctl *c, const char *target, int body_timeout_ms, http_sink_fn sink,
	       void *ctx);
/* Print the raw JSON answer (for --json), newline-terminated. */
void api_print_json(const struct reply *rp);
/* "cairnctl: " + message on stderr; returns `code`. */
int ctl_fail(int code, const char *fmt, ...) _printf_(2, 3);

/* Reading a reply. */
int jv_str(const struct jp *p, int obj, const char *key, char *out, size_t cap);
bool jv_uint(const struct jp *p, int obj, const char *key, uint64_t *out);
/* Any value as one line of text for a table cell or a listing: strings
 * unescaped, others as written; control characters shown as '?'. */
void jv_text(const struct jp *p, int i, char *out, size_t cap);

/* ---- show.c ---- */

#define TABLE_MAX_COLS 10

struct table {
	size_t ncols;
	size_t filled, cap; /* cells, row by row; the header is the first row */
	char **cells;
	bool failed; /* out of memory: table_print reports it */
};
void table_init(struct table *t, const char *const *headers, size_t ncols);
/* Append one cell; rows fill left to right. Text is made printable. */
void table_cell(struct table *t, const char *s);
/* CTL_OK, or CTL_FAILED (printed) if a cell could not be stored. */
int table_print(const struct table *t, FILE *f);
void table_free(struct table *t);

/* A JSON value as indented "key: value" lines. */
void show_value(const struct jp *p, int i, int indent, FILE *f);
/* One member of an object (its key token) the same way. */
void show_member(const struct jp *p, int key, int indent, FILE *f);
/* Human byte counts: "1.5 MiB". */
void show_bytes(uint64_t n, char *out, size_t cap);

/* ---- commands (cmds.c, install.c) ---- */

int cmd_status(const struct ctl *c, char **pos);
int cmd_ps(const struct ctl *c, char **pos);
int cmd_logs(const struct ctl *c, char **pos);
int cmd_revisions(const struct ctl *c, char **pos);
int cmd_revision(const struct ctl *c, char **pos);
int cmd_progress(const struct ctl *c, char **pos);
int cmd_run(const struct ctl *c, char **pos);
int cmd_meta(const struct ctl *c, char **pos);
int cmd_device_meta(const struct ctl *c, char **pos);
int cmd_reboot(const struct ctl *c, char **pos);
int cmd_poweroff(const struct ctl *c, char **pos);
int cmd_gc(const struct ctl *c, char **pos);
int cmd_install(const struct ctl *c, char **pos);
int cmd_keys(const struct ctl *c, char **pos);

/* A signed document as cairn-pack wrote it (install.c): its bytes as they
 * are, and its signature file's. */
struct signed_doc {
	char *doc, *sig;
	size_t doclen, siglen;
};
void signed_doc_free(struct signed_doc *d);
/* dir/doc (at most max bytes) and dir/sig (at most SIG_MAX_FILE). */
int signed_doc_read(struct signed_doc *d, const char *dir, const char *doc, size_t max,
		    const char *sig, struct err *e) _must_check_;
/* PUT target {"document", "signature"}, the document's bytes unchanged
 * (JSON-escaped: the signature covers them exactly). An exit status as
 * api_call's; a 2xx answer without JSON is CTL_UNREACHABLE. */
int signed_doc_put(const struct ctl *c, const char *target, const struct signed_doc *d,
		   struct reply *rp);

/* Poll GET /v1/revisions/REV until DONE, FAILED or REJECTED (run.c): an
 * exit status, a failure's reason printed. The last answer goes to `keep`
 * (the caller frees it) or, when keep is NULL and --json, to stdout. */
int wait_revision(const struct ctl *c, uint64_t rev, struct reply *keep);
/* POST /v1/revisions/REV/run, then (unless --no-wait) wait_revision. The
 * answer or the last state goes to `keep` as for wait_revision. */
int run_revision(const struct ctl *c, uint64_t rev, struct reply *keep);
/* Why a revision failed, from object o of a reply: "failure": {"reason",
 * "message"} as "reason: message" (or a plain "reason" string); "" if none. */
void rev_reason(const struct jp *p, int o, char *out, size_t cap);
/* GET target (cmds.c); --json prints the answer as it came, else show()
 * does: an exit status. */
int get_and_show(const struct ctl *c, const char *target, int (*show)(const struct jp *p));
/* A revision number argument: 1 .. 2^53-1, decimal digits only. */
bool parse_rev(const char *s, uint64_t *out);

#endif
