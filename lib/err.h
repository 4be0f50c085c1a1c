/* lib/err.h — the error type every fallible function takes last.
 *
 * Fixed-size buffers only: PID 1 must be able to report ENOMEM without
 * allocating. Callers add context as an error travels up, so the final
 * message reads like a path:
 *   install rev 7: object sha256:ab12…: size 4096 != declared 8192
 * `field` names the offending input field for user-facing errors (the API
 * returns it as {"error": msg, "field": field}); it is empty when no single
 * field is to blame. */
#ifndef CAIRN_LIB_ERR_H
#define CAIRN_LIB_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 512
#define ERR_FIELD_MAX 128

struct err {
	int code; /* positive errno, 0 = no error */
	char field[ERR_FIELD_MAX];
	char msg[ERR_MSG_MAX];
};

#define ERR_INIT {0, "", ""}

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _must_check_ __attribute__((warn_unused_result))

/* Set code and message; returns -code (a negative errno) for `return err_set(...)`.
 * A NULL `e` is allowed: the error is then only returned. */
int err_set(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Same, naming the offending field: msg becomes "<field>: <text>". */
int err_field(struct err *e, int code, const char *field, const char *fmt, ...) _printf_(4, 5);
/* Prepend "<context>: " to the message; returns -e->code. Truncates, never fails.
 * With a NULL e it returns -1: callers that prefix must pass a real error. */
int err_prefix(struct err *e, const char *fmt, ...) _printf_(2, 3);
void err_clear(struct err *e);

#endif
