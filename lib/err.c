/* lib/err.c — see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int err_code(int code)
{
	if (code < 0)
		code = -code;
	return code ? code : 1; /* an error is never "success" */
}

/* A message cut to fit ends in "...", so a reader knows it was cut. */
static void mark_cut(char msg[ERR_MSG_MAX], int n)
{
	if (n >= ERR_MSG_MAX)
		memcpy(msg + ERR_MSG_MAX - 4, "...", 4);
}

/* msg = "a: b" (no ": " when either is empty), truncated to fit: an error
 * message never fails. */
static void join2(char msg[ERR_MSG_MAX], const char *a, const char *b)
{
	mark_cut(msg, snprintf(msg, ERR_MSG_MAX, "%s%s%s", a, *a && *b ? ": " : "", b));
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	code = err_code(code);
	if (!e)
		return -code;
	va_list ap;
	va_start(ap, fmt);
	mark_cut(e->msg, vsnprintf(e->msg, sizeof(e->msg), fmt, ap));
	va_end(ap);
	e->code = code;
	e->field[0] = '\0';
	return -code;
}

int err_field(struct err *e, int code, const char *field, const char *fmt, ...)
{
	code = err_code(code);
	if (!e)
		return -code;
	char text[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	mark_cut(text, vsnprintf(text, sizeof(text), fmt, ap));
	va_end(ap);
	if (!field)
		field = "";
	snprintf(e->field, sizeof(e->field), "%s", field);
	join2(e->msg, field, text);
	e->code = code;
	return -code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char ctx[ERR_MSG_MAX];
	char old[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	join2(e->msg, ctx, old);
	if (!e->code)
		e->code = 1;
	return -e->code;
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->field[0] = '\0';
	e->msg[0] = '\0';
}
