/* test/unit/checks.h — small helpers any unit test may use: a substring
 * assertion and printf into a fresh buffer. Header-only: each test binary is
 * one .c file (include after cmocka.h). */
#ifndef CAIRN_TEST_CHECKS_H
#define CAIRN_TEST_CHECKS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* vprintf into a fresh buffer (the caller frees it). */
static inline char *vstr_new(const char *f, va_list ap)
{
	char *s = NULL;
	assert_true(vasprintf(&s, f, ap) >= 0);
	return s;
}

static inline char *str_new(const char *f, ...) __attribute__((format(printf, 1, 2)));
static inline char *str_new(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vstr_new(f, ap);
	va_end(ap);
	return s;
}

#endif
