/* test/fuzz/revision_fuzz.c — revision_parse() on hostile bytes, in both
 * modes. Whatever parses must write, and what is written must parse back
 * (DEVICE mode) into an equal revision whose canonical form is the same
 * bytes. A document still naming build sources (SPEC mode) must be refused
 * by the writer, naming the source. Any broken promise aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trails/trails.h"

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool ref_eq(const struct rev_objref *a, const struct rev_objref *b)
{
	return a->present == b->present && digest_eq(&a->digest, &b->digest) &&
	       a->size == b->size && a->format == b->format && a->src == b->src &&
	       str_eq(a->src_path, b->src_path);
}

static bool ctr_eq(const struct rev_container *a, const struct rev_container *b)
{
	if (strcmp(a->name, b->name) || a->group != b->group || !ref_eq(&a->rootfs, &b->rootfs) ||
	    a->nexec != b->nexec || a->goal != b->goal || a->restart != b->restart ||
	    a->update != b->update || a->nvolumes != b->nvolumes || a->nroles != b->nroles ||
	    a->nlxc != b->nlxc || a->exec[a->nexec] || b->exec[b->nexec])
		return false;
	for (size_t i = 0; i < a->nexec; i++)
		if (!str_eq(a->exec[i], b->exec[i]))
			return false;
	for (size_t i = 0; i < a->nvolumes; i++)
		if (strcmp(a->volumes[i].name, b->volumes[i].name) ||
		    !str_eq(a->volumes[i].path, b->volumes[i].path) ||
		    a->volumes[i].persistence != b->volumes[i].persistence)
			return false;
	for (size_t i = 0; i < a->nroles; i++)
		if (strcmp(a->roles[i], b->roles[i]))
			return false;
	for (size_t i = 0; i < a->nlxc; i++)
		if (!str_eq(a->lxc[i].key, b->lxc[i].key) || !str_eq(a->lxc[i].value, b->lxc[i].value))
			return false;
	return true;
}

static bool rev_eq(const struct revision *a, const struct revision *b)
{
	if (a->number != b->number || strcmp(a->created, b->created) ||
	    a->bsp.present != b->bsp.present || !ref_eq(&a->bsp.kernel, &b->bsp.kernel) ||
	    !ref_eq(&a->bsp.initrd, &b->bsp.initrd) || !ref_eq(&a->bsp.modules, &b->bsp.modules) ||
	    !ref_eq(&a->bsp.firmware, &b->bsp.firmware) || !str_eq(a->bsp.cmdline, b->bsp.cmdline) ||
	    a->ngroups != b->ngroups || a->ncontainers != b->ncontainers)
		return false;
	for (size_t i = 0; i < a->ngroups; i++)
		if (strcmp(a->groups[i].name, b->groups[i].name) ||
		    a->groups[i].timeout_s != b->groups[i].timeout_s)
			return false;
	for (size_t i = 0; i < a->ncontainers; i++)
		if (!ctr_eq(&a->containers[i], &b->containers[i]))
			return false;
	return true;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "revision_fuzz: %s: %s (field '%s')\n", what, e->msg, e->field);
	abort();
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
