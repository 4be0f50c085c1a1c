/* test/unit/json_helpers.h — what the lib/json.h tests share (json_test.c:
 * the writer; json_reader_test.c: the strict reader): the includes, a parse
 * that must succeed, and a deeply nested array. */
#ifndef CAIRN_TEST_JSON_HELPERS_H
#define CAIRN_TEST_JSON_HELPERS_H

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/json.h"

/* Parse `js` (n bytes) expecting success. */
static inline void parse_ok(struct jp *p, const char *js, size_t n, jsmntok_t *toks, int max)
{
	struct err e = ERR_INIT;
	int rc = jp_parse(p, js, n, toks, max, &e);
	if (rc < 0)
		fail_msg("jp_parse(%.*s): %d %s", (int)n, js, rc, e.msg);
}

/* [[[ ... ]]] nested `depth` deep, NUL-terminated (caller frees). */
static inline char *nested(int depth)
{
	char *s = malloc((size_t)depth * 2 + 1);
	assert_non_null(s);
	memset(s, '[', (size_t)depth);
	memset(s + depth, ']', (size_t)depth);
	s[depth * 2] = '\0';
	return s;
}

#endif
