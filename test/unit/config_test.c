/* test/unit/config_test.c — init/config.c: the configuration file (every
 * key, each bad value named with file, line and key), the kernel command
 * line overrides, the machine-id default, and config_load on real files.
 *
 * File tests work in a mkdtemp directory the teardown removes. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* init/ is not an archive: its file is compiled into this test. Make's
 * header dependencies then list init/config.c as a prerequisite, and the
 * unit test rule links every .c prerequisite, so a second copy gets linked
 * from the second build on. The copy compiled here is renamed so the two
 * never clash (and the test always calls this one). */
#define config_init t_config_init
#define config_parse_file t_config_parse_file
#define config_parse_cmdline t_config_parse_cmdline
#define config_finish t_config_finish
#define config_load t_config_load
#define config_device_id_valid t_config_device_id_valid
#include "init/config.c"
#include "storage/storage.h"

struct fx {
	char dir[64];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	memcpy(f->dir, "/tmp/cairn-config-XXXXXX", 25);
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	int r = storage_rmtree(f->dir, &e);
	free(f);
	return r;
}

static void put_file(const struct fx *f, const char *name, const char *data, size_t len,
		     char *path, size_t cap)
{
	assert_int_equal(str_fmt(path, cap, "%s/%s", f->dir, name), 0);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static int parse(struct cairn_config *c, const char *text, struct err *e)
{
	config_init(c);
	return config_parse_file(c, text, strlen(text), "f.conf", e);
}

/* ---------------- a good file ---------------- */

static void test_defaults(void **state)
{
	(void)state;
	struct cairn_config c;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&c, "", &e), 0);
	assert_string_equal(c.hub.url, "");
	assert_int_equal(c.hub.poll_s, CONFIG_POLL_DEFAULT);
	assert_int_equal(CONFIG_POLL_DEFAULT, 300);
	/* no hub: nothing more is required */
	assert_int_equal(config_finish(&c, "/nonexistent/machine-id", &e), 0);
	assert_string_equal(c.hub.device_id, "");
}

static void test_good_file(void **state)
{
	(void)state;
	static const char pin[] = "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=";
	char text[2048];
	assert_int_equal(str_fmt(text, sizeof(text),
				 "# the hub\n"
				 "\n"
				 "   hub.url   =  https://hub.example.com/fleet//  \r\n"
				 "\thub.device_id=Dev_01.a-b\n"
				 "hub.poll_s = 5\n"
				 "  # indented comment\n"
				 "hub.ca = /etc/cairn/ca with space.pem\n"
				 "hub.cert = /etc/cairn/c.pem\n"
				 "hub.key = /etc/cairn/k.pem\n"
				 "hub.token_file = /etc/cairn/token\n"
				 "hub.pin = %s;%s", /* no newline at the end */
				 pin, pin),
			 0);
	struct cairn_config c;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&c, text, &e), 0);
	assert_string_equal(c.hub.url, "https://hub.example.com/fleet"); /* trailing / removed */
	assert_string_equal(c.hub.device_id, "Dev_01.a-b");
	assert_int_equal(c.hub.poll_s, 5);
	assert_string_equal(c.hub.ca, "/etc/cairn/ca with space.pem");
	assert_string_equal(c.hub.cert, "/etc/cairn/c.pem");
	assert_string_equal(c.hub.key, "/etc/cairn/k.pem");
	assert_string_equal(c.hub.token_file, "/etc/cairn/token");
	assert_int_equal(strlen(c.hub.pin), 2 * 52 + 1);
	assert_int_equal(config_finish(&c, NULL, &e), 0);
	assert_string_equal(c.hub.device_id, "Dev_01.a-b"); /* given: machine-id not read */
}

static void test_limits_accepted(void **state)
{
	(void)state;
	char text[1024], id[CONFIG_ID_MAX + 1], url[CONFIG_URL_MAX + 1];
	memset(id, 'a', CONFIG_ID_MAX);
	id[CONFIG_ID_MAX] = '\0';
	memcpy(url, "http://", 7);
	memset(url + 7, 'h', CONFIG_URL_MAX - 7);
	url[CONFIG_URL_MAX] = '\0';
	struct cairn_config c;
	struct err e = ERR_INIT;
	assert_int_equal(str_fmt(text, sizeof(text), "hub.device_id=%s\nhub.url=%s\nhub.poll_s=86400",
				 id, url),
			 0);
	assert_int_equal(parse(&c, text, &e), 0);
	assert_int_equal(strlen(c.hub.device_id), CONFIG_ID_MAX);
	assert_int_equal(strlen(c.hub.url), CONFIG_URL_MAX);
	assert_int_equal(c.hub.poll_s, 86400);
}

/* ---------------- every bad line ---------------- */

static const struct bad {
	const char *text;
	const char *msg;   /* the whole message starts with this */
	const char *field; /* e.field */
} bads[] = {
	{"hub.foo = 1\n", "f.conf:1: unknown key 'hub.foo'", ""},
	{"\n\nlog.level = debug\n", "f.conf:3: unknown key 'log.level'", ""},
	{"hub.url\n", "f.conf:1: expected 'key = value'", ""},
	{"= x\n", "f.conf:1: unknown key ''", ""},
	{"hub.url =\n", "f.conf:1: hub.url: empty value", "hub.url"},
	{"hub.url = ftp://hub\n", "f.conf:1: hub.url: want an http:// or https:// URL", "hub.url"},
	{"hub.url = hub.example.com\n", "f.conf:1: hub.url: want an http", "hub.url"},
	{"hub.url = http://\n", "f.conf:1: hub.url: the URL has no host", "hub.url"},
	{"hub.url = https:///x\n", "f.conf:1: hub.url: the URL has no host", "hub.url"},
	{"hub.url = http://a b\n", "f.conf:1: hub.url: spaces and control", "hub.url"},
	{"hub.url = http://a\tb\n", "f.conf:1: hub.url: spaces and control", "hub.url"},
	{"hub.url = http://a/?x=1\n", "f.conf:1: hub.url: a query (?) or fragment", "hub.url"},
	{"hub.url = http://a/#x\n", "f.conf:1: hub.url: a query (?) or fragment", "hub.url"},
	{"hub.url = http://h\xc3\xa9\n", "f.conf:1: hub.url: spaces and control", "hub.url"},
	{"hub.device_id = -dev\n", "f.conf:1: hub.device_id: want 1-64", "hub.device_id"},
	{"hub.device_id = .\n", "f.conf:1: hub.device_id: want 1-64", "hub.device_id"},
	{"hub.device_id = ..\n", "f.conf:1: hub.device_id: want 1-64", "hub.device_id"},
	{"hub.device_id = a/b\n", "f.conf:1: hub.device_id: want 1-64", "hub.device_id"},
	{"hub.device_id = a b\n", "f.conf:1: hub.device_id: want 1-64", "hub.device_id"},
	{"hub.poll_s = 4\n", "f.conf:1: hub.poll_s: 4 is outside 5..86400 seconds", "hub.poll_s"},
	{"hub.poll_s = 0\n", "f.conf:1: hub.poll_s: 0 is outside", "hub.poll_s"},
	{"hub.poll_s = 86401\n", "f.conf:1: hub.poll_s: 86401 is outside", "hub.poll_s"},
	{"hub.poll_s = 9999999999\n", "f.conf:1: hub.poll_s: want a whole number", "hub.poll_s"},
	{"hub.poll_s = -5\n", "f.conf:1: hub.poll_s: want a whole number", "hub.poll_s"},
	{"hub.poll_s = 5s\n", "f.conf:1: hub.poll_s: want a whole number", "hub.poll_s"},
	{"hub.poll_s = 1e3\n", "f.conf:1: hub.poll_s: want a whole number", "hub.poll_s"},
	{"hub.poll_s = 0x10\n", "f.conf:1: hub.poll_s: want a whole number", "hub.poll_s"},
	{"hub.ca = etc/ca.pem\n", "f.conf:1: hub.ca: want an absolute path", "hub.ca"},
	{"hub.cert = ~/c.pem\n", "f.conf:1: hub.cert: want an absolute path", "hub.cert"},
	{"hub.key = /k\x01.pem\n", "f.conf:1: hub.key: control characters", "hub.key"},
	{"hub.token_file = token\n", "f.conf:1: hub.token_file: want an absolute", "hub.token_file"},
	{"hub.pin = abc\n", "f.conf:1: hub.pin: want sha256//", "hub.pin"},
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMw=\n",
	 "f.conf:1: hub.pin: want sha256//", "hub.pin"}, /* 43 chars */
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwEA\n",
	 "f.conf:1: hub.pin: pin 1: not base64", "hub.pin"}, /* no '=' */
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRM*E=\n",
	 "f.conf:1: hub.pin: pin 1: not base64", "hub.pin"},
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwF=\n",
	 "f.conf:1: hub.pin: pin 1: not base64", "hub.pin"}, /* F: bits past 32 bytes */
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=,"
	 "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=\n",
	 "f.conf:1: hub.pin: pins are separated by ';'", "hub.pin"},
	{"hub.pin = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=;\n",
	 "f.conf:1: hub.pin: want sha256//", "hub.pin"},
	{"hub.url = http://a\n# ok\nhub.url = http://b\n", "f.conf:3: hub.url: given twice",
	 "hub.url"},
};

static void test_bad_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		struct cairn_config c;
		struct err e = ERR_INIT;
		int r = parse(&c, bads[i].text, &e);
		if (r >= 0 || strncmp(e.msg, bads[i].msg, strlen(bads[i].msg)) != 0 ||
		    strcmp(e.field, bads[i].field) != 0)
			fail_msg("case %zu (%s): r=%d msg '%s' field '%s', want '%s' '%s'", i,
				 bads[i].text, r, e.msg, e.field, bads[i].msg, bads[i].field);
	}
}

static void test_bad_sizes(void **state)
{
	(void)state;
	struct cairn_config c;
	struct err e = ERR_INIT;
	/* a value one byte over each cap */
	char *text = malloc(CONFIG_FILE_MAX + 2);
	assert_non_null(text);
	char id[CONFIG_ID_MAX + 2];
	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(str_fmt(text, CONFIG_FILE_MAX, "hub.device_id = %s\n", id), 0);
	assert_true(parse(&c, text, &e) < 0);
	assert_string_equal(e.msg, "f.conf:1: hub.device_id: longer than 64 bytes");
	memcpy(text, "hub.url = http://", 17);
	memset(text + 17, 'h', CONFIG_URL_MAX);
	text[17 + CONFIG_URL_MAX] = '\0';
	assert_true(parse(&c, text, &e) < 0);
	assert_string_equal(e.msg, "f.conf:1: hub.url: longer than 512 bytes");
	/* a line longer than the cap, even a comment */
	text[0] = '#';
	memset(text + 1, 'x', CONFIG_LINE_MAX);
	memcpy(text + 1 + CONFIG_LINE_MAX, "\nhub.url = http://a\n", 21);
	assert_int_equal(parse(&c, text, &e), -E2BIG);
	assert_string_equal(e.msg, "f.conf:1: line longer than 4096 bytes");
	/* a file over the cap */
	memset(text, '\n', CONFIG_FILE_MAX + 1);
	assert_int_equal(config_parse_file(&c, text, CONFIG_FILE_MAX + 1, "f.conf", &e), -EFBIG);
	assert_string_equal(e.msg, "f.conf: larger than 65536 bytes");
	assert_int_equal(config_parse_file(&c, text, CONFIG_FILE_MAX, "f.conf", &e), 0);
	free(text);
}

static void test_nul_byte(void **state)
{
	(void)state;
	static const char text[] = "hub.url = http://a\0b\n";
	struct cairn_config c;
	struct err e = ERR_INIT;
	config_init(&c);
	assert_int_equal(config_parse_file(&c, text, sizeof(text) - 1, "f.conf", &e), -EINVAL);
	assert_string_equal(e.msg, "f.conf:1: hub.url: contains a NUL byte");
}

static void test_cert_needs_key(void **state)
{
	(void)state;
	struct cairn_config c;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&c, "hub.cert = /c.pem\n", &e), 0);
	assert_int_equal(config_finish(&c, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "hub.key: needed with hub.cert");
	assert_string_equal(e.field, "hub.key");
	assert_int_equal(parse(&c, "hub.key = /k.pem\n", &e), 0);
	assert_int_equal(config_finish(&c, NULL, &e), -EINVAL);
	assert_string_equal(e.field, "hub.cert");
}

/* ---------------- the kernel command line ---------------- */

static void test_cmdline_overrides(void **state)
{
	(void)state;
	static const char cl[] =
		"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro cairn.storage=/dev/vdb quiet "
		"cairn.hub.url=\"http://10.0.0.2:8080/hub/\" cairn.hub.poll_s=60\t"
		"cairn.hub.ca= cairn.debug cairn.hub.device_id=d1 cairn.hub.device_id=d2\n";
	struct cairn_config c;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&c, "hub.url = http://file\nhub.poll_s = 30\nhub.ca = /ca.pem\n"
				   "hub.token_file = /tok\n",
			       &e),
			 0);
	assert_int_equal(config_parse_cmdline(&c, cl, strlen(cl), "/proc/cmdline", &e), 0);
	assert_string_equal(c.hub.url, "http://10.0.0.2:8080/hub");
	assert_int_equal(c.hub.poll_s, 60);
	assert_string_equal(c.hub.ca, "");           /* an empty value unsets */
	assert_string_equal(c.hub.token_file, "/tok"); /* untouched */
	assert_string_equal(c.hub.device_id, "d2");    /* the last word wins */
}

static void test_cmdline_errors(void **state)
{
	(void)state;
	static const struct {
		const char *cl, *msg;
	} cases[] = {
		{"cairn.hub.nope=1", "/proc/cmdline: unknown key 'cairn.hub.nope=1'"},
		{"ro cairn.hub.poll_s=2", "/proc/cmdline: hub.poll_s: 2 is outside 5..86400"},
		{"cairn.hub.url", "/proc/cmdline: hub.url: want cairn.hub.url=VALUE"},
		{"cairn.hub.url=gopher://x", "/proc/cmdline: hub.url: want an http"},
		{"cairn.hub.device_id=\"a b\"", "/proc/cmdline: hub.device_id: want 1-64"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cairn_config c;
		struct err e = ERR_INIT;
		config_init(&c);
		int r = config_parse_cmdline(&c, cases[i].cl, strlen(cases[i].cl), "/proc/cmdline", &e);
		if (r >= 0 || strncmp(e.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: r=%d '%s', want '%s'", i, r, e.msg, cases[i].msg);
	}
	/* a word over the line cap; a NUL inside the text */
	char *big = malloc(CONFIG_LINE_MAX + 32);
	assert_non_null(big);
	memcpy(big, "cairn.hub.url=http://", 21);
	memset(big + 21, 'a', CONFIG_LINE_MAX);
	struct cairn_config c;
	struct err e = ERR_INIT;
	config_init(&c);
	assert_int_equal(config_parse_cmdline(&c, big, 21 + CONFIG_LINE_MAX, "cl", &e), -E2BIG);
	free(big);
	static const char nul[] = "cairn.hub.url=http://a\0b";
	assert_int_equal(config_parse_cmdline(&c, nul, sizeof(nul) - 1, "cl", &e), -EINVAL);
}

/* ---------------- machine-id and config_load ---------------- */

static void test_machine_id(void **state)
{
	struct fx *f = *state;
	char path[128];
	struct cairn_config c;
	struct err e = ERR_INIT;
	put_file(f, "machine-id", "0123456789abcdef0123456789abcdef\n", 33, path, sizeof(path));
	assert_int_equal(parse(&c, "hub.url = http://h\n", &e), 0);
	assert_int_equal(config_finish(&c, path, &e), 0);
	assert_string_equal(c.hub.device_id, "0123456789abcdef0123456789abcdef");
	put_file(f, "machine-id", "\n", 1, path, sizeof(path)); /* empty: first boot */
	assert_int_equal(parse(&c, "hub.url = http://h\n", &e), 0);
	assert_int_equal(config_finish(&c, path, &e), -EINVAL);
	assert_string_equal(e.field, "hub.device_id");
	assert_non_null(strstr(e.msg, "does not hold a machine id"));
	assert_int_equal(parse(&c, "hub.url = http://h\n", &e), 0);
	assert_int_equal(config_finish(&c, "/nonexistent/machine-id", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "hub.device_id: not set, and no machine id"));
}

static void test_load(void **state)
{
	struct fx *f = *state;
	char conf[128], cl[128], missing[128];
	struct cairn_config c;
	struct err e = ERR_INIT;
	put_file(f, "cairn.conf", "hub.url = http://h\nhub.device_id = d\n", 37, conf,
		 sizeof(conf));
	put_file(f, "cmdline", "quiet cairn.hub.poll_s=7\n", 25, cl, sizeof(cl));
	assert_int_equal(config_load(&c, conf, cl, &e), 0);
	assert_string_equal(c.hub.url, "http://h");
	assert_int_equal(c.hub.poll_s, 7);
	assert_int_equal(config_load(&c, conf, NULL, &e), 0); /* the command line not read */
	assert_int_equal(c.hub.poll_s, 300);
	assert_int_equal(config_load(&c, NULL, NULL, &e), 0);
	assert_string_equal(c.hub.url, "");
	assert_int_equal(str_fmt(missing, sizeof(missing), "%s/none.conf", f->dir), 0);
	assert_int_equal(config_load(&c, missing, NULL, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "none.conf"));
	put_file(f, "bad.conf", "hub.url = http://h\nhub.poll_s = 1\n", 33, conf, sizeof(conf));
	assert_int_equal(config_load(&c, conf, NULL, &e), -ERANGE);
	assert_non_null(strstr(e.msg, "bad.conf:2: hub.poll_s: 1 is outside"));
	assert_int_equal(config_load(&c, f->dir, NULL, &e) < 0, true); /* a directory */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_limits_accepted),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_cert_needs_key),
		cmocka_unit_test(test_cmdline_overrides),
		cmocka_unit_test(test_cmdline_errors),
		cmocka_unit_test_setup_teardown(test_machine_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
