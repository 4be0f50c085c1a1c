/* test/fuzz/fuzz_check.h — what every fuzz target asserts about an error.
 * Define FUZZ_NAME ("revision_fuzz", ...) before including. Header-only: a
 * target is one .c file, built by gcc for the corpus replay and by clang
 * with libFuzzer. */
#ifndef CAIRN_FUZZ_CHECK_H
#define CAIRN_FUZZ_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

/* A finding: say what and abort (libFuzzer keeps the input). */
static inline _Noreturn void die(const char *what, const struct err *e)
{
	fprintf(stderr, FUZZ_NAME ": %s: %s (field '%s')\n", what, e ? e->msg : "",
		e ? e->field : "");
	abort();
}

/* A refusal reported as the contract says: a negative errno that e carries,
 * a message, and message and field both terminated. */
static inline bool err_reported(int rc, const struct err *e)
{
	return rc < 0 && e->code == -rc && e->msg[0] != '\0' &&
	       strnlen(e->msg, sizeof(e->msg)) < sizeof(e->msg) &&
	       strnlen(e->field, sizeof(e->field)) < sizeof(e->field);
}

#endif
