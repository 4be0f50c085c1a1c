/* test/unit/revision_helpers.h — what the revision.json tests share
 * (revision_test.c: valid documents, the writer, spec mode;
 * revision_bad_test.c: malformed documents, caps, error order): the document
 * building macros and the parse-and-expect helpers.
 *
 * Documents are written with single quotes for readability; q() turns them
 * into JSON (no test document needs a literal apostrophe). */
#ifndef CAIRN_TEST_REVISION_HELPERS_H
#define CAIRN_TEST_REVISION_HELPERS_H

#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trails/trails.h"

#define X4(s) s s s s
#define X16(s) X4(X4(s))
#define X64(s) X4(X16(s))
#define DG(c) "sha256:" X64(c)

#define ROOTFS "{'object':'" DG("a") "','size':4096}"
#define CTR_BODY "'name':'web','group':'app','rootfs':" ROOTFS ",'exec':['/bin/sh']"
#define CTR(extra) "{" CTR_BODY extra "}"
#define CTR_NAMED(name, extra)                                                                     \
	"{'name':'" name "','group':'app','rootfs':" ROOTFS ",'exec':['/bin/sh']" extra "}"
#define HEAD "'spec':'cairn-revision@1','revision':7,'created':'2026-11-21T10:00:00Z'"
#define DOC(extra, ctrs) "{" HEAD extra ",'containers':[" ctrs "]}"
#define VOL(name, path) "{'name':'" name "','path':'" path "','persistence':'permanent'}"
#define KERNEL "'kernel':{'object':'" DG("b") "','size':100}"

/* ---------------- helpers ---------------- */

static inline char *q(const char *s)
{
	char *out = strdup(s);
	assert_non_null(out);
	for (char *c = out; *c; c++)
		if (*c == '\'')
			*c = '"';
	return out;
}

static inline struct revision *parse_ok(const char *doc, enum rev_parse_mode mode)
{
	char *js = q(doc);
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	int rc = revision_parse(js, strlen(js), mode, &r, &e);
	if (rc < 0)
		fail_msg("unexpected error: %s (document %s)", e.msg, js);
	free(js);
	assert_non_null(r);
	return r;
}

/* Parse must fail naming `field` exactly, with `word` in the message. */
static inline void bad_raw(const char *js, size_t len, enum rev_parse_mode mode,
			   const char *field, const char *word)
{
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	int rc = revision_parse(js, len, mode, &r, &e);
	if (rc == 0) {
		revision_free(r);
		fail_msg("accepted a bad document (expected %s): %.300s", field, js);
	}
	assert_true(rc < 0);
	assert_int_equal(-rc, e.code);
	assert_null(r);
	if (strcmp(e.field, field) != 0 || !strstr(e.msg, word))
		fail_msg("want field '%s' and '%s' in the message, got field '%s': %s", field,
			 word, e.field, e.msg);
	if (field[0]) { /* the message reads "<field>: <what is wrong>" */
		assert_memory_equal(e.msg, field, strlen(field));
		assert_memory_equal(e.msg + strlen(field), ": ", 2);
	}
}

static inline void bad_mode(const char *doc, enum rev_parse_mode mode, const char *field,
			    const char *word)
{
	char *js = q(doc);
	bad_raw(js, strlen(js), mode, field, word);
	free(js);
}

static inline void bad(const char *doc, const char *field, const char *word)
{
	bad_mode(doc, REV_PARSE_DEVICE, field, word);
}

#endif
