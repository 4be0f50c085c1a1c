/* tools/ctl/show.c — human output: aligned tables and indented listings.
 *
 * Every cell comes from the device and is made printable first (jv_text):
 * a hostile device cannot send escape sequences to the user's terminal. */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"

#define TEXT_MAX 1024

void table_init(struct table *t, const char *const *headers, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols < TABLE_MAX_COLS ? ncols : TABLE_MAX_COLS;
	for (size_t i = 0; i < t->ncols; i++)
		table_cell(t, headers[i]);
}

void table_cell(struct table *t, const char *s)
{
	if (t->failed)
		return;
	if (t->filled == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16 * t->ncols;
		char **nc = realloc(t->cells, cap * sizeof(*nc));
		if (!nc) {
			t->failed = true;
			return;
		}
		t->cells = nc;
		t->cap = cap;
	}
	char *copy = strdup(s ? s : "");
	if (!copy) {
		t->failed = true;
		return;
	}
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	t->cells[t->filled++] = copy;
}

/* Terminal columns of UTF-8 text: one per code point. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

int table_print(const struct table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLS] = {0};
	if (t->failed)
		return ctl_fail(CTL_FAILED, "out of memory");
	for (size_t i = 0; i < t->filled; i++) {
		size_t w = text_width(t->cells[i]);
		if (w > width[i % t->ncols])
			width[i % t->ncols] = w;
	}
	for (size_t i = 0; i < t->filled; i++) {
		size_t col = i % t->ncols;
		bool last = col + 1 == t->ncols || i + 1 == t->filled;
		fputs(t->cells[i], f);
		if (last) {
			fputc('\n', f);
			continue;
		}
		for (size_t pad = text_width(t->cells[i]); pad < width[col] + 2; pad++)
			fputc(' ', f);
	}
	return CTL_OK;
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->filled; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---------------- listings ---------------- */

static bool scalar(const struct jp *p, int i)
{
	return jp_is(p, i, JSMN_STRING) || jp_is(p, i, JSMN_PRIMITIVE);
}

/* An array of scalars on one line: "a, b, c" ("(none)" when empty). */
static bool scalar_array(const struct jp *p, int i, FILE *f)
{
	if (!jp_is(p, i, JSMN_ARRAY))
		return false;
	int k = i + 1;
	for (int m = 0; m < p->tok[i].size; m++, k = jp_next(p, k))
		if (!scalar(p, k))
			return false;
	if (p->tok[i].size == 0)
		fputs("(none)", f);
	k = i + 1;
	for (int m = 0; m < p->tok[i].size; m++, k++) {
		char text[TEXT_MAX];
		jv_text(p, k, text, sizeof(text));
		fprintf(f, "%s%s", m ? ", " : "", text);
	}
	return true;
}

void show_member(const struct jp *p, int key, int indent, FILE *f)
{
	char name[TEXT_MAX], text[TEXT_MAX];
	int v = key + 1;
	jv_text(p, key, name, sizeof(name));
	fprintf(f, "%*s%s:", indent, "", name);
	if (scalar(p, v)) {
		jv_text(p, v, text, sizeof(text));
		fprintf(f, " %s\n", jp_is(p, v, JSMN_PRIMITIVE) && !strcmp(text, "null") ? "-" : text);
		return;
	}
	fputc(' ', f);
	if (scalar_array(p, v, f)) {
		fputc('\n', f);
		return;
	}
	fputc('\n', f);
	show_value(p, v, indent + 2, f);
}

void show_value(const struct jp *p, int i, int indent, FILE *f)
{
	char text[TEXT_MAX];
	if (jp_is(p, i, JSMN_OBJECT)) {
		int k = i + 1;
		for (int m = 0; m < p->tok[i].size; m++, k = jp_next(p, k + 1))
			show_member(p, k, indent, f);
	} else if (jp_is(p, i, JSMN_ARRAY)) {
		int k = i + 1;
		for (int m = 0; m < p->tok[i].size; m++, k = jp_next(p, k)) {
			fprintf(f, "%*s-%s", indent, "", scalar(p, k) ? " " : "\n");
			if (scalar(p, k)) {
				jv_text(p, k, text, sizeof(text));
				fprintf(f, "%s\n", text);
			} else {
				show_value(p, k, indent + 2, f);
			}
		}
	} else if (i >= 0 && i < p->ntok) {
		jv_text(p, i, text, sizeof(text));
		fprintf(f, "%*s%s\n", indent, "", text);
	}
}

void show_bytes(uint64_t n, char *out, size_t cap)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	if (n < 1024) {
		if (str_fmt(out, cap, "%llu B", (unsigned long long)n) < 0)
			out[0] = '\0';
		return;
	}
	double v = (double)n / 1024;
	size_t u = 0;
	for (; v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0]); u++)
		v /= 1024;
	if (str_fmt(out, cap, "%.1f %s", v, unit[u]) < 0)
		out[0] = '\0';
}
