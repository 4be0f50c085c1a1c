/* test/fuzz/cmdline_fuzz.c — early_cmdline_parse() (init/early_cmdline.c):
 * the cairn.* keys of the kernel command line, as a real PID 1 reads
 * /proc/cmdline, on hostile bytes (NULs, quotes, words of any length).
 *
 * Checked on every input:
 *   - an error returns -code, has a message, and names the key
 *     (e->field "cairn.KEY") unless it is about a word, not a value;
 *   - what parses is within init.h's promises: storage "" or /dev/NAME or
 *     LABEL=L (1-16 bytes), fstype [a-z0-9]{1,15}, rev 0..2^53-1, seconds
 *     within their ranges, absolute paths without a ".." component,
 *     bootloader file | uboot:/ABS | grub:/ABS, watchdog "" | off | /ABS,
 *     at most 32 valid module names, every string printable and terminated;
 *   - written back as quoted "cairn.KEY=VALUE" words, it parses into the
 *     same settings, and so does the input with " -- cairn.rev=x" appended
 *     (a lone "--" ends the kernel's part) unless a quote is left open.
 *
 * init/ is not an archive: the file is compiled into this target (as in
 * test/unit/early_test.c); the replay and libFuzzer rules never link
 * another copy of it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "cmdline_fuzz"
#include "fuzz_check.h"
#include "init/early_cmdline.c"

static const char *const level_names[] = {"err", "warn", "info", "debug"};

static void check_error(int rc, const struct err *e)
{
	if (!err_reported(rc, e))
		die("error not reported", e);
	if (rc == -EINVAL && e->field[0] && strncmp(e->field, "cairn.", 6) != 0)
		die("error field is not a cairn.* key", e);
}

static bool value_ok(const char *s)
{
	if (strnlen(s, EARLY_VALUE_MAX) == EARLY_VALUE_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"')
			return false;
	return true;
}

static bool abs_ok(const char *p)
{
	size_t n = strlen(p);
	return p[0] == '/' && !strstr(p, "/../") && !(n >= 3 && strcmp(p + n - 3, "/..") == 0);
}

static void check_strings(const struct early_cmdline *c)
{
	if (!value_ok(c->storage) || !value_ok(c->bootloader) || !value_ok(c->trust) ||
	    !value_ok(c->watchdog) || strnlen(c->unknown, EARLY_VALUE_MAX) == EARLY_VALUE_MAX)
		die("a value is not terminated printable ASCII", NULL);
	size_t fl = strnlen(c->fstype, sizeof(c->fstype));
	if (fl == 0 || fl == sizeof(c->fstype) ||
	    strspn(c->fstype, "abcdefghijklmnopqrstuvwxyz0123456789") != fl)
		die("bad fstype accepted", NULL);
	size_t sl = strlen(c->storage);
	if (sl && !(strncmp(c->storage, "LABEL=", 6) == 0 && sl >= 7 && sl <= 22) &&
	    !(strncmp(c->storage, "/dev/", 5) == 0 && sl > 5 && abs_ok(c->storage)))
		die("bad storage accepted", NULL);
	const char *b = c->bootloader;
	if (b[0] && strcmp(b, "file") != 0 && !(strncmp(b, "uboot:", 6) == 0 && abs_ok(b + 6)) &&
	    !(strncmp(b, "grub:", 5) == 0 && abs_ok(b + 5)))
		die("bad bootloader accepted", NULL);
	if (c->trust[0] && !abs_ok(c->trust))
		die("bad trust accepted", NULL);
	if (c->watchdog[0] && strcmp(c->watchdog, "off") != 0 && !abs_ok(c->watchdog))
		die("bad watchdog accepted", NULL);
}

static void check_bounds(const struct early_cmdline *c)
{
	check_strings(c);
	if (c->rev > REV_NUMBER_MAX || c->storage_wait_s > 3600 || c->watchdog_s < 1 ||
	    c->watchdog_s > 3600 || c->watchdog_grace_s < 1 || c->watchdog_grace_s > 3600 ||
	    c->log_level < -1 || c->log_level >= (int)ARRAY_SIZE(level_names))
		die("number out of bounds", NULL);
	if (c->nmodules > EARLY_MAX_MODULES || (c->nmodules && !c->modules_given))
		die("module count out of bounds", NULL);
	for (size_t i = 0; i < c->nmodules; i++)
		if (!module_name_valid(c->modules[i],
				       strnlen(c->modules[i], EARLY_MODNAME_MAX)))
			die("bad module name accepted", NULL);
}

static bool settings_eq(const struct early_cmdline *a, const struct early_cmdline *b)
{
	if (strcmp(a->storage, b->storage) || a->storage_wait_s != b->storage_wait_s ||
	    strcmp(a->fstype, b->fstype) || a->rev != b->rev ||
	    strcmp(a->bootloader, b->bootloader) || strcmp(a->trust, b->trust) ||
	    a->log_level != b->log_level || a->modules_given != b->modules_given ||
	    a->nmodules != b->nmodules || strcmp(a->watchdog, b->watchdog) ||
	    a->watchdog_s != b->watchdog_s || a->watchdog_grace_s != b->watchdog_grace_s ||
	    a->test_hang != b->test_hang)
		return false;
	for (size_t i = 0; i < a->nmodules; i++)
		if (strcmp(a->modules[i], b->modules[i]))
			return false;
	return true;
}

static void put(char *buf, size_t cap, size_t *n, const char *key, const char *v)
{
	int k = snprintf(buf + *n, cap - *n, "\"cairn.%s=%s\" ", key, v);
	if (k < 0 || (size_t)k >= cap - *n)
		die("serialized command line too long", NULL);
	*n += (size_t)k;
}

static size_t serialize(const struct early_cmdline *c, char *buf, size_t cap)
{
	char num[24], mods[EARLY_MAX_MODULES * EARLY_MODNAME_MAX];
	size_t n = 0, m = 0;
	if (c->storage[0])
		put(buf, cap, &n, "storage", c->storage);
	snprintf(num, sizeof(num), "%u", c->storage_wait_s);
	put(buf, cap, &n, "storage_wait", num);
	put(buf, cap, &n, "fstype", c->fstype);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)c->rev);
	if (c->rev)
		put(buf, cap, &n, "rev", num);
	if (c->bootloader[0])
		put(buf, cap, &n, "bootloader", c->bootloader);
	if (c->trust[0])
		put(buf, cap, &n, "trust", c->trust);
	if (c->log_level >= 0)
		put(buf, cap, &n, "loglevel", level_names[c->log_level]);
	mods[0] = '\0';
	for (size_t i = 0; i < c->nmodules; i++)
		m += (size_t)snprintf(mods + m, sizeof(mods) - m, "%s%s", i ? "," : "",
				      c->modules[i]);
	if (c->modules_given)
		put(buf, cap, &n, "modules", mods);
	if (c->watchdog[0])
		put(buf, cap, &n, "watchdog", c->watchdog);
	snprintf(num, sizeof(num), "%u", c->watchdog_s);
	put(buf, cap, &n, "watchdog_s", num);
	snprintf(num, sizeof(num), "%u", c->watchdog_grace_s);
	put(buf, cap, &n, "watchdog_grace_s", num);
	put(buf, cap, &n, "test_hang", c->test_hang ? "1" : "0");
	return n;
}

static void reparse(const char *buf, size_t len, const struct early_cmdline *want,
		    const char *what)
{
	static struct early_cmdline c;
	struct err e = ERR_INIT;
	if (early_cmdline_parse(buf, len, &c, &e) < 0) {
		fprintf(stderr, "cmdline_fuzz: %s: %.*s\n", what, (int)len, buf);
		die("does not parse again", &e);
	}
	if (!settings_eq(want, &c)) {
		fprintf(stderr, "cmdline_fuzz: %s: %.*s\n", what, (int)len, buf);
		die("parses into other settings", NULL);
	}
}

/* Is a double quote still open at the end of buf (NUL ends a word too)? */
static bool quote_open(const uint8_t *buf, size_t len)
{
	bool q = false;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '"')
			q = !q;
		else if (buf[i] == '\0')
			q = false;
	}
	return q;
}

static void check_dashdash(const uint8_t *data, size_t size, const struct early_cmdline *want)
{
	static const char tail[] = " -- cairn.rev=x cairn.storage=";
	if (quote_open(data, size))
		return;
	char *buf = malloc(size + sizeof(tail));
	if (!buf)
		abort();
	if (size)
		memcpy(buf, data, size);
	memcpy(buf + size, tail, sizeof(tail) - 1);
	reparse(buf, size + sizeof(tail) - 1, want, "with -- appended");
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct early_cmdline c;
	static char buf[16384];
	struct err e = ERR_INIT;
	log_set_level(LOGL_ERR);
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (log_level_parse(level_names[i]) != (int)i)
			die("log level names moved", NULL);
	int rc = early_cmdline_parse((const char *)data, size, &c, &e);
	if (rc < 0) {
		check_error(rc, &e);
		return 0;
	}
	if (rc != 0 || e.code != 0)
		die("success with an error set", &e);
	check_bounds(&c);
	reparse(buf, serialize(&c, buf, sizeof(buf)), &c, "serialized");
	check_dashdash(data, size, &c);
	return 0;
}
