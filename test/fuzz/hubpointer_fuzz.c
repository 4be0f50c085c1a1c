/* test/fuzz/hubpointer_fuzz.c — hub_pointer_parse() (trails/hub_doc.c): the
 * desired-revision pointer a hub serves, {"revision": N, "document": "...",
 * "signature": "..."}, on hostile bytes (the hub, a CDN or anyone on the
 * path when TLS is off may have written it).
 *
 * Checked on every input:
 *   - an error returns -code with a message and leaves *out empty
 *     (no document, no signature: nothing to free, nothing half-parsed);
 *   - a pointer that parses has a revision in 1..2^53-1, a document of at
 *     most REV_MAX_DOC bytes and a signature of at most SIG_MAX_FILE bytes,
 *     both NUL-terminated at their length with no NUL inside;
 *   - written back as JSON, the pointer parses into the same pointer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "hubpointer_fuzz"
#include "fuzz_check.h"
#include "lib/json.h"
#include "trails/hub_internal.h"

static void check_error(int rc, const struct err *e, const struct hub_pointer *p)
{
	if (!err_reported(rc, e))
		die("error not reported", e);
	if (p->doc || p->sig || p->doclen || p->siglen || p->revision)
		die("a refused pointer left something in *out", e);
}

static void check_string(const char *s, size_t len, size_t max, const char *what)
{
	if (!s || len > max || s[len] != '\0' || memchr(s, '\0', len))
		die(what, NULL);
}

static bool pointer_eq(const struct hub_pointer *a, const struct hub_pointer *b)
{
	return a->revision == b->revision && a->doclen == b->doclen && a->siglen == b->siglen &&
	       memcmp(a->doc, b->doc, a->doclen) == 0 && memcmp(a->sig, b->sig, a->siglen) == 0;
}

static void round_trip(const struct hub_pointer *a)
{
	struct err e = ERR_INIT;
	struct jw w;
	jw_init_dyn(&w, false);
	jw_obj_open(&w);
	jw_kv_uint(&w, "revision", a->revision);
	jw_key(&w, "document");
	jw_strn(&w, a->doc, a->doclen);
	jw_key(&w, "signature");
	jw_strn(&w, a->sig, a->siglen);
	jw_obj_close(&w);
	if (jw_finish(&w, &e) < 0)
		die("writer", &e);
	struct hub_pointer b;
	if (hub_pointer_parse(w.buf, w.len, &b, &e) < 0)
		die("written pointer does not parse", &e);
	if (!pointer_eq(a, &b))
		die("round trip changed the pointer", NULL);
	hub_pointer_free(&b);
	jw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_pointer p;
	struct err e = ERR_INIT;
	memset(&p, 0xa5, sizeof(p)); /* the parser must set *out whatever happens */
	int rc = hub_pointer_parse((const char *)data, size, &p, &e);
	if (rc < 0) {
		check_error(rc, &e, &p);
		hub_pointer_free(&p);
		return 0;
	}
	if (rc != 0 || e.code != 0)
		die("success with an error set", &e);
	if (p.revision < 1 || p.revision > REV_MAX_NUMBER)
		die("revision out of bounds", NULL);
	check_string(p.doc, p.doclen, REV_MAX_DOC, "document out of bounds");
	check_string(p.sig, p.siglen, SIG_MAX_FILE, "signature out of bounds");
	round_trip(&p);
	hub_pointer_free(&p);
	hub_pointer_free(&p); /* idempotent: free() then zeroed */
	return 0;
}
