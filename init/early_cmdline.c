/* init/early_cmdline.c — the cairn.* keys of the kernel command line.
 *
 * The kernel's own splitting rules, as far as a value can tell: words are
 * separated by blanks, a double quote toggles quoting and is dropped (so
 * `cairn.storage="LABEL=my disk"` and `"cairn.storage=LABEL=my disk"` are the
 * same), a lone `--` hands the rest to init's argv. The command line is
 * input like any other: every value is checked, and a bad one is an error
 * naming its key. See init/README.md "Kernel command line". */
#define LOG_MODULE "early"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "init.h"

#define WORD_MAX 4096           /* a word longer than this cannot be ours */
#define REV_NUMBER_MAX 9007199254740991ull /* 2^53-1, as trails/BOOT.md */

void early_cmdline_defaults(struct early_cmdline *c)
{
	*c = (struct early_cmdline){
		.storage_wait_s = 10,
		.fstype = "ext4",
		.log_level = -1,
		.watchdog_s = 30,
		.watchdog_grace_s = 300,
	};
}

/* ---------------- value checks ---------------- */

static int bad(struct err *e, const char *key, const char *v, const char *want)
{
	char field[64];
	if (str_fmt(field, sizeof(field), "cairn.%s", key) < 0)
		field[0] = '\0'; /* cannot happen: keys are short */
	return err_field(e, EINVAL, field, "\"%.64s\" %s", v, want);
}

/* Decimal digits only, no sign, no leading zero (unless "0"), <= max. */
static int parse_uint(const char *v, uint64_t max, uint64_t *out)
{
	if (!*v || (v[0] == '0' && v[1]))
		return -EINVAL;
	uint64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || n > (max - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*out = n;
	return 0;
}

static int set_seconds(const char *key, const char *v, unsigned lo, unsigned *out, struct err *e)
{
	uint64_t n;
	if (parse_uint(v, 3600, &n) < 0 || n < lo)
		return bad(e, key, v, lo ? "is not a number of seconds (1-3600)"
					  : "is not a number of seconds (0-3600)");
	*out = (unsigned)n;
	return 0;
}

static int copy_value(const char *key, const char *v, char *out, size_t cap, struct err *e)
{
	for (const char *p = v; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return bad(e, key, v, "holds a byte that is not printable ASCII");
	if (str_fmt(out, cap, "%s", v) < 0)
		return bad(e, key, v, "is too long");
	return 0;
}

/* Absolute, and no ".." component. */
static bool is_abs_path(const char *v)
{
	size_t n = strlen(v);
	if (v[0] != '/' || strstr(v, "/../"))
		return false;
	return !(n >= 3 && strcmp(v + n - 3, "/..") == 0);
}

/* ---------------- one setter per key ---------------- */

static int k_storage(struct early_cmdline *c, const char *v, struct err *e)
{
	if (strncmp(v, "LABEL=", 6) == 0) {
		size_t n = strlen(v + 6);
		if (n < 1 || n > 16)
			return bad(e, "storage", v, "has a label of 1-16 bytes after LABEL=");
	} else if (strncmp(v, "/dev/", 5) != 0 || !v[5] || !is_abs_path(v)) {
		return bad(e, "storage", v, "is neither /dev/NAME nor LABEL=L");
	}
	return copy_value("storage", v, c->storage, sizeof(c->storage), e);
}

static int k_storage_wait(struct early_cmdline *c, const char *v, struct err *e)
{
	return set_seconds("storage_wait", v, 0, &c->storage_wait_s, e);
}

static int k_fstype(struct early_cmdline *c, const char *v, struct err *e)
{
	size_t n = strlen(v);
	if (n < 1 || n >= sizeof(c->fstype) || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789") != n)
		return bad(e, "fstype", v, "is not a filesystem type ([a-z0-9]{1,15})");
	memcpy(c->fstype, v, n + 1);
	return 0;
}

static int k_rev(struct early_cmdline *c, const char *v, struct err *e)
{
	if (parse_uint(v, REV_NUMBER_MAX, &c->rev) < 0 || c->rev == 0)
		return bad(e, "rev", v, "is not a revision number (decimal, no sign, no leading zero)");
	return 0;
}

static int k_bootloader(struct early_cmdline *c, const char *v, struct err *e)
{
	const char *path = strncmp(v, "uboot:", 6) == 0 ? v + 6
			   : strncmp(v, "grub:", 5) == 0  ? v + 5
							  : NULL;
	if (strcmp(v, "file") != 0 && (!path || !is_abs_path(path)))
		return bad(e, "bootloader", v, "is not file, uboot:/ABS/PATH or grub:/ABS/PATH");
	return copy_value("bootloader", v, c->bootloader, sizeof(c->bootloader), e);
}

static int k_trust(struct early_cmdline *c, const char *v, struct err *e)
{
	if (!is_abs_path(v))
		return bad(e, "trust", v, "is not an absolute path");
	return copy_value("trust", v, c->trust, sizeof(c->trust), e);
}

static int k_loglevel(struct early_cmdline *c, const char *v, struct err *e)
{
	int lvl = log_level_parse(v);
	if (lvl < 0)
		return bad(e, "loglevel", v, "is not err, warn, info or debug");
	c->log_level = lvl;
	return 0;
}

static bool module_name_valid(const char *s, size_t n)
{
	const char *ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	if (n < 1 || n >= EARLY_MODNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(ok, s[i]))
			return false;
	return true;
}

/* "a,b,c" or "" (none). The whole list is checked before it replaces the last. */
static int k_modules(struct early_cmdline *c, const char *v, struct err *e)
{
	char names[EARLY_MAX_MODULES][EARLY_MODNAME_MAX];
	size_t n = 0;
	for (const char *p = v; *v;) { /* "" is the empty list */
		size_t len = strcspn(p, ",");
		if (!module_name_valid(p, len))
			return bad(e, "modules", v, "is not a comma-separated list of module names");
		if (n == EARLY_MAX_MODULES)
			return bad(e, "modules", v, "names more than 32 modules");
		memcpy(names[n], p, len);
		names[n++][len] = '\0';
		if (!p[len])
			break;
		p += len + 1;
	}
	memcpy(c->modules, names, sizeof(names));
	c->nmodules = n;
	c->modules_given = true;
	return 0;
}

static int k_watchdog(struct early_cmdline *c, const char *v, struct err *e)
{
	if (strcmp(v, "off") != 0 && !is_abs_path(v))
		return bad(e, "watchdog", v, "is neither an absolute device path nor off");
	return copy_value("watchdog", v, c->watchdog, sizeof(c->watchdog), e);
}

static int k_watchdog_s(struct early_cmdline *c, const char *v, struct err *e)
{
	return set_seconds("watchdog_s", v, 1, &c->watchdog_s, e);
}

static int k_watchdog_grace_s(struct early_cmdline *c, const char *v, struct err *e)
{
	return set_seconds("watchdog_grace_s", v, 1, &c->watchdog_grace_s, e);
}

static int k_test_hang(struct early_cmdline *c, const char *v, struct err *e)
{
	if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
		return bad(e, "test_hang", v, "is neither 0 nor 1");
	c->test_hang = v[0] == '1';
	return 0;
}

static const struct {
	const char *key;
	int (*set)(struct early_cmdline *c, const char *v, struct err *e);
} keys[] = {
	{"storage", k_storage},       {"storage_wait", k_storage_wait},
	{"fstype", k_fstype},         {"rev", k_rev},
	{"bootloader", k_bootloader}, {"trust", k_trust},
	{"loglevel", k_loglevel},     {"modules", k_modules},
	{"watchdog", k_watchdog},     {"watchdog_s", k_watchdog_s},
	{"watchdog_grace_s", k_watchdog_grace_s}, {"test_hang", k_test_hang},
};

/* ---------------- words ---------------- */

static void note_unknown(struct early_cmdline *c, const char *word)
{
	if (c->nunknown++ == 0 && str_fmt(c->unknown, sizeof(c->unknown), "%s", word) < 0)
		memcpy(c->unknown, "(too long)", sizeof("(too long)"));
}

static int apply_word(struct early_cmdline *c, char *word, struct err *e)
{
	if (strncmp(word, "cairn.", 6) != 0)
		return 0; /* the kernel's, or another program's */
	char *eq = strchr(word, '=');
	size_t klen = eq ? (size_t)(eq - word - 6) : strlen(word + 6);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strlen(keys[i].key) != klen || strncmp(word + 6, keys[i].key, klen) != 0)
			continue;
		if (!eq)
			return err_field(e, EINVAL, "", "cairn.%s: needs a value (cairn.%s=...)",
					 keys[i].key, keys[i].key);
		return keys[i].set(c, eq + 1, e);
	}
	note_unknown(c, word);
	return 0;
}

/* Next word of buf[*pos..len) into word[WORD_MAX]: 1 found, 0 at the end,
 * -E2BIG for a word too long (skipped). *quoted: a quote was seen in it. */
static int next_word(const char *buf, size_t len, size_t *pos, char *word, bool *quoted)
{
	size_t i = *pos, n = 0;
	bool inq = false, big = false;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\0'))
		i++;
	if (i == len)
		return 0;
	*quoted = false;
	for (; i < len; i++) {
		char ch = buf[i];
		if (ch == '\0' || (!inq && (ch == ' ' || ch == '\t' || ch == '\n')))
			break;
		if (ch == '"') {
			inq = !inq;
			*quoted = true;
		} else if (n + 1 < WORD_MAX) {
			word[n++] = ch;
		} else {
			big = true;
		}
	}
	word[n] = '\0';
	*pos = i;
	return big ? -E2BIG : 1;
}

int early_cmdline_parse(const char *buf, size_t len, struct early_cmdline *c, struct err *e)
{
	early_cmdline_defaults(c);
	static char word[WORD_MAX]; /* PID 1 is single-threaded; keeps the stack small */
	size_t pos = 0;
	bool quoted;
	int r;
	while ((r = next_word(buf, len, &pos, word, &quoted)) != 0) {
		if (r == -E2BIG && strncmp(word, "cairn.", 6) == 0)
			return err_set(e, E2BIG, "%.40s...: longer than %d bytes", word, WORD_MAX - 1);
		if (r == -E2BIG)
			continue;
		if (!quoted && strcmp(word, "--") == 0)
			break;
		if ((r = apply_word(c, word, e)) < 0)
			return r;
	}
	return 0;
}
