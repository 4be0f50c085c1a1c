/* test/fuzz/config_fuzz.c — init/config.c on hostile text: the
 * configuration file parser (config_parse_file) and the kernel command
 * line overrides (config_parse_cmdline), then config_finish.
 *
 * Input: byte 0 bit 0 picks the parser (0: the file, 1: the command line),
 * the rest is the text (not NUL-terminated: the parsers take a length).
 *
 * Checked on every input:
 *   - an error returns -code, has a message that starts with the source's
 *     name ("<source>:<line>: ..." for the file) and a terminated field;
 *   - a configuration that parses holds only what config.h promises: a URL
 *     "" or http(s)://host... without a trailing '/', '?', '#' or blanks; a
 *     device id "" or valid; poll_s within 5..86400; paths "" or absolute
 *     without control characters; pins "sha256//<44 base64>" joined by ';';
 *   - written back in the same syntax (the file: "key = value" lines; the
 *     command line: quoted "cairn.key=value" words), it parses into the
 *     same configuration;
 *   - config_finish (machine id from a fixed temp file) either fails with a
 *     message naming a key or leaves a device id whenever a hub is set.
 *
 * init/ is not an archive: its file is compiled into this target. The
 * replay rule links only test/fuzz/ sources and archives, and the libFuzzer
 * rule only lib/, storage/, trails/, runtime/, plugins/; the names are
 * still renamed, as in test/unit/config_test.c, so that a rule linking
 * init/config.c too would not clash. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define config_init fz_config_init
#define config_parse_file fz_config_parse_file
#define config_parse_cmdline fz_config_parse_cmdline
#define config_finish fz_config_finish
#define config_load fz_config_load
#define config_device_id_valid fz_config_device_id_valid
#define FUZZ_NAME "config_fuzz"
#include "fuzz_check.h"
#include "init/config.c"

#define SOURCE "fuzz.conf"

static void check_error(int rc, const struct err *e)
{
	if (!err_reported(rc, e))
		die("error not reported", e);
}

static bool all_printable(const char *s, bool space_ok)
{
	for (; *s; s++)
		if ((unsigned char)*s < (space_ok ? 0x20 : 0x21) || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static bool terminated(const char *s, size_t cap)
{
	return strnlen(s, cap) < cap;
}

static bool url_ok(const char *u)
{
	size_t n = strlen(u);
	if (n == 0)
		return true;
	size_t scheme = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
	return scheme && n > scheme && u[scheme] != '/' && u[n - 1] != '/' &&
	       all_printable(u, false) && !strpbrk(u, "?#");
}

static bool pin_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0)
		return true;
	if ((n + 1) % 53 != 0)
		return false;
	for (size_t at = 0; at < n; at += 53)
		if (strncmp(p + at, "sha256//", 8) != 0 || p[at + 51] != '=' ||
		    (at + 52 < n && p[at + 52] != ';'))
			return false;
	return true;
}

static bool path_ok(const char *p)
{
	return p[0] == '\0' || (p[0] == '/' && all_printable(p, true));
}

static void check_config(const struct cairn_config *c)
{
	const char *paths[] = {c->hub.ca, c->hub.cert, c->hub.key, c->hub.token_file};
	if (!terminated(c->hub.url, sizeof(c->hub.url)) ||
	    !terminated(c->hub.device_id, sizeof(c->hub.device_id)) ||
	    !terminated(c->hub.ca, sizeof(c->hub.ca)) ||
	    !terminated(c->hub.cert, sizeof(c->hub.cert)) ||
	    !terminated(c->hub.key, sizeof(c->hub.key)) ||
	    !terminated(c->hub.token_file, sizeof(c->hub.token_file)) ||
	    !terminated(c->hub.pin, sizeof(c->hub.pin)))
		die("a value is not terminated", NULL);
	if (!url_ok(c->hub.url))
		die("bad hub.url accepted", NULL);
	if (c->hub.device_id[0] &&
	    !fz_config_device_id_valid(c->hub.device_id, strlen(c->hub.device_id)))
		die("bad hub.device_id accepted", NULL);
	if (c->hub.poll_s < CONFIG_POLL_MIN || c->hub.poll_s > CONFIG_POLL_MAX)
		die("hub.poll_s out of bounds", NULL);
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (!path_ok(paths[i]))
			die("bad path accepted", NULL);
	if (!pin_ok(c->hub.pin))
		die("bad hub.pin accepted", NULL);
}

static bool config_eq(const struct cairn_config *a, const struct cairn_config *b)
{
	return strcmp(a->hub.url, b->hub.url) == 0 &&
	       strcmp(a->hub.device_id, b->hub.device_id) == 0 && a->hub.poll_s == b->hub.poll_s &&
	       strcmp(a->hub.ca, b->hub.ca) == 0 && strcmp(a->hub.cert, b->hub.cert) == 0 &&
	       strcmp(a->hub.key, b->hub.key) == 0 &&
	       strcmp(a->hub.token_file, b->hub.token_file) == 0 &&
	       strcmp(a->hub.pin, b->hub.pin) == 0;
}

/* Append one setting in the file's syntax or the command line's; "" unset. */
static void put(char *buf, size_t cap, size_t *n, bool cmdline, const char *key, const char *v)
{
	if (!v[0])
		return;
	int k = cmdline ? snprintf(buf + *n, cap - *n, "\"cairn.%s=%s\" ", key, v)
			: snprintf(buf + *n, cap - *n, "%s = %s\n", key, v);
	if (k < 0 || (size_t)k >= cap - *n)
		die("serialized configuration too long", NULL);
	*n += (size_t)k;
}

static void round_trip(const struct cairn_config *a, bool cmdline)
{
	static char buf[8192];
	char poll[16];
	size_t n = 0;
	snprintf(poll, sizeof(poll), "%u", a->hub.poll_s);
	put(buf, sizeof(buf), &n, cmdline, "hub.url", a->hub.url);
	put(buf, sizeof(buf), &n, cmdline, "hub.device_id", a->hub.device_id);
	put(buf, sizeof(buf), &n, cmdline, "hub.poll_s", poll);
	put(buf, sizeof(buf), &n, cmdline, "hub.ca", a->hub.ca);
	put(buf, sizeof(buf), &n, cmdline, "hub.cert", a->hub.cert);
	put(buf, sizeof(buf), &n, cmdline, "hub.key", a->hub.key);
	put(buf, sizeof(buf), &n, cmdline, "hub.token_file", a->hub.token_file);
	put(buf, sizeof(buf), &n, cmdline, "hub.pin", a->hub.pin);
	struct cairn_config b;
	struct err e = ERR_INIT;
	fz_config_init(&b);
	int rc = cmdline ? fz_config_parse_cmdline(&b, buf, n, SOURCE, &e)
			 : fz_config_parse_file(&b, buf, n, SOURCE, &e);
	if (rc < 0) {
		fprintf(stderr, "config_fuzz: serialized:\n%.*s\n", (int)n, buf);
		die("serialized configuration does not parse", &e);
	}
	if (!config_eq(a, &b)) {
		fprintf(stderr, "config_fuzz: serialized:\n%.*s\n", (int)n, buf);
		die("round trip changed the configuration", NULL);
	}
}

static char machine_id_dir[64];

static void rm_machine_id(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/machine-id", machine_id_dir);
	unlink(p);
	rmdir(machine_id_dir);
}

/* A machine-id file, once per process, removed at exit. */
static const char *machine_id_path(void)
{
	static char path[128];
	static const char id[] = "0123456789abcdef0123456789abcdef\n";
	if (path[0])
		return path;
	snprintf(machine_id_dir, sizeof(machine_id_dir), "%s/config-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(machine_id_dir))
		abort();
	atexit(rm_machine_id);
	snprintf(path, sizeof(path), "%s/machine-id", machine_id_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, id, sizeof(id) - 1) != (ssize_t)(sizeof(id) - 1) || close(fd) < 0)
		abort();
	return path;
}

static void check_finish(struct cairn_config *c)
{
	struct err e = ERR_INIT;
	int rc = fz_config_finish(c, machine_id_path(), &e);
	if (rc < 0) {
		check_error(rc, &e);
		if (!e.field[0])
			die("config_finish error names no key", &e);
		return;
	}
	if (c->hub.url[0] && !c->hub.device_id[0])
		die("a hub without a device id", NULL);
	if (!c->hub.cert[0] != !c->hub.key[0])
		die("hub.cert without hub.key (or the reverse) accepted", NULL);
	check_config(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cairn_config c;
	if (size < 1)
		return 0;
	bool cmdline = data[0] & 1;
	const char *text = (const char *)data + 1;
	struct err e = ERR_INIT;
	fz_config_init(&c);
	int rc = cmdline ? fz_config_parse_cmdline(&c, text, size - 1, SOURCE, &e)
			 : fz_config_parse_file(&c, text, size - 1, SOURCE, &e);
	if (rc < 0) {
		check_error(rc, &e);
		if (strncmp(e.msg, SOURCE ":", strlen(SOURCE) + 1) != 0)
			die("error does not name the source", &e);
		return 0;
	}
	if (rc != 0 || e.code != 0)
		die("success with an error set", &e);
	check_config(&c);
	round_trip(&c, cmdline);
	check_finish(&c);
	return 0;
}
