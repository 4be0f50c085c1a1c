/* test/fuzz/revision_fuzz.c — revision_parse() on hostile bytes, in both
 * modes. Whatever parses must write, and what is written must parse back
 * (DEVICE mode) into an equal revision whose canonical form is the same
 * bytes. A document still naming build sources (SPEC mode) must be refused
 * by the writer, naming the source. Any broken promise aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "revision_fuzz"
#include "fuzz_check.h"
#include "trails/trails.h"

/* revision_equal, plus: exec stays NULL-terminated for execv */
static bool rev_eq(const struct revision *a, const struct revision *b)
{
	for (size_t i = 0; i < a->ncontainers; i++)
		if (a->containers[i].exec[a->containers[i].nexec])
			return false;
	return revision_equal(a, b);
}

static bool has_source(const struct revision *r)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, REV_MAX_OBJECTS);
	if (n > REV_MAX_OBJECTS)
		abort();
	for (size_t i = 0; i < n; i++)
		if (uses[i].ref->src != OBJ_SRC_NONE)
			return true;
	return false;
}

/* An error always names a field that is a prefix-free path and a message
 * that starts with it. */
static void check_error(int rc, const struct err *e)
{
	if (rc >= 0 || e->code != -rc || !e->msg[0])
		die("error not reported", e);
	size_t fl = strlen(e->field);
	if (fl && (strncmp(e->msg, e->field, fl) != 0 || strncmp(e->msg + fl, ": ", 2) != 0))
		die("message does not start with the field", e);
}

static void round_trip(const struct revision *a)
{
	struct err e = ERR_INIT;
	struct jw w1, w2;
	jw_init_dyn(&w1, true);
	int rc = revision_write(a, &w1, &e);
	if (has_source(a) != (rc < 0))
		die("writer and sources disagree", &e);
	if (rc < 0) {
		jw_free(&w1);
		return;
	}
	if (jw_finish(&w1, &e) < 0)
		die("finish", &e);
	struct revision *b = NULL;
	if (revision_parse(w1.buf, w1.len, REV_PARSE_DEVICE, &b, &e) < 0)
		die("canonical form does not parse", &e);
	if (!rev_eq(a, b))
		die("round trip changed the revision", &e);
	jw_init_dyn(&w2, true);
	if (revision_write(b, &w2, &e) < 0 || jw_finish(&w2, &e) < 0)
		die("rewrite", &e);
	if (w1.len != w2.len || memcmp(w1.buf, w2.buf, w1.len) != 0)
		die("canonical form is not stable", &e);
	jw_free(&w1);
	jw_free(&w2);
	revision_free(b);
}

/* DEVICE documents are a subset of SPEC documents: whatever the device
 * accepts, cairn-pack accepts as the same revision. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct revision *r[2] = {NULL, NULL};
	static const enum rev_parse_mode modes[] = {REV_PARSE_DEVICE, REV_PARSE_SPEC};
	for (size_t m = 0; m < 2; m++) {
		struct err e = ERR_INIT;
		int rc = revision_parse((const char *)data, size, modes[m], &r[m], &e);
		if (rc < 0) {
			check_error(rc, &e);
			if (r[m])
				abort();
			continue;
		}
		round_trip(r[m]);
	}
	if (r[0] && (!r[1] || !rev_eq(r[0], r[1])))
		abort();
	revision_free(r[0]);
	revision_free(r[1]);
	return 0;
}
