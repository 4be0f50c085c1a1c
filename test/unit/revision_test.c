/* test/unit/revision_test.c — revision.json: the parser rejects what
 * trails/REVISION.md forbids (naming the exact field), accepts what it allows
 * with the right values and defaults, and the canonical writer round-trips.
 *
 * Documents are written with single quotes for readability; q() turns them
 * into JSON (no test document needs a literal apostrophe). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trails/trails.h"

#define X4(s) s s s s
#define X16(s) X4(X4(s))
#define X64(s) X4(X16(s))
#define DG(c) "sha256:" X64(c)

#define ROOTFS "{'object':'" DG("a") "','size':4096}"
#define CTR_BODY "'name':'web','group':'app','rootfs':" ROOTFS ",'exec':['/bin/sh']"
#define CTR(extra) "{" CTR_BODY extra "}"
#define CTR_NAMED(name, extra)                                                                     \
	"{'name':'" name "','group':'app','rootfs':" ROOTFS ",'exec':['/bin/sh']" extra "}"
#define HEAD "'spec':'cairn-revision@1','revision':7,'created':'2026-11-21T10:00:00Z'"
#define DOC(extra, ctrs) "{" HEAD extra ",'containers':[" ctrs "]}"
#define VOL(name, path) "{'name':'" name "','path':'" path "','persistence':'permanent'}"
#define KERNEL "'kernel':{'object':'" DG("b") "','size':100}"

/* ---------------- helpers ---------------- */

static char *q(const char *s)
{
	char *out = strdup(s);
	assert_non_null(out);
	for (char *c = out; *c; c++)
		if (*c == '\'')
			*c = '"';
	return out;
}

static struct revision *parse_ok(const char *doc, enum rev_parse_mode mode)
{
	char *js = q(doc);
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	int rc = revision_parse(js, strlen(js), mode, &r, &e);
	if (rc < 0)
		fail_msg("unexpected error: %s (document %s)", e.msg, js);
	free(js);
	assert_non_null(r);
	return r;
}

/* Parse must fail naming `field` exactly, with `word` in the message. */
static void bad_raw(const char *js, size_t len, enum rev_parse_mode mode, const char *field,
		    const char *word)
{
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	int rc = revision_parse(js, len, mode, &r, &e);
	if (rc == 0) {
		revision_free(r);
		fail_msg("accepted a bad document (expected %s): %.300s", field, js);
	}
	assert_true(rc < 0);
	assert_int_equal(-rc, e.code);
	assert_null(r);
	if (strcmp(e.field, field) != 0 || !strstr(e.msg, word))
		fail_msg("want field '%s' and '%s' in the message, got field '%s': %s", field,
			 word, e.field, e.msg);
	if (field[0]) { /* the message reads "<field>: <what is wrong>" */
		assert_memory_equal(e.msg, field, strlen(field));
		assert_memory_equal(e.msg + strlen(field), ": ", 2);
	}
}

static void bad_mode(const char *doc, enum rev_parse_mode mode, const char *field,
		     const char *word)
{
	char *js = q(doc);
	bad_raw(js, strlen(js), mode, field, word);
	free(js);
}

static void bad(const char *doc, const char *field, const char *word)
{
	bad_mode(doc, REV_PARSE_DEVICE, field, word);
}

static bool rev_eq(const struct revision *a, const struct revision *b)
{
	return revision_equal(a, b);
}

static char *write_doc(const struct revision *r)
{
	struct jw w;
	struct err e = ERR_INIT;
	jw_init_dyn(&w, true);
	if (revision_write(r, &w, &e) < 0 || jw_finish(&w, &e) < 0)
		fail_msg("write: %s", e.msg);
	return w.buf; /* the caller frees */
}

/* printf into a fresh buffer, single quotes turned into double quotes */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, f);
	int n = vasprintf(&s, f, ap);
	va_end(ap);
	assert_true(n >= 0);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	return s;
}

static char *fill(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A document with `n` repetitions of `item` (separated by commas) placed
 * between `pre` and `post`. */
static char *repeat_doc(const char *pre, const char *item, size_t n, const char *post)
{
	size_t il = strlen(item), cap = strlen(pre) + n * (il + 1) + strlen(post) + 1;
	char *s = malloc(cap);
	assert_non_null(s);
	size_t at = 0;
	memcpy(s, pre, strlen(pre));
	at += strlen(pre);
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[at++] = ',';
		memcpy(s + at, item, il);
		at += il;
	}
	memcpy(s + at, post, strlen(post) + 1);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	return s;
}

#define FULL_DOC                                                                                   \
	"{'spec':'cairn-revision@1','revision':9007199254740991,"                                  \
	"'created':'2028-02-29T23:59:59Z',"                                                        \
	"'bsp':{" KERNEL ",'initrd':{'object':'" DG("c") "','size':0,'format':'raw'},"             \
	"'modules':{'object':'" DG("d") "','size':2048,'format':'squashfs'},"                      \
	"'firmware':{'object':'" DG("e") "','size':1},'cmdline':'console=ttyS0 quiet'},"           \
	"'groups':[{'name':'base','timeout_s':1},{'name':'apps','timeout_s':3600}],"               \
	"'containers':["                                                                           \
	"{'name':'net','group':'base','rootfs':{'object':'" DG("0") "','size':1417216,"            \
	"'format':'squashfs'},'exec':['/sbin/init','--debug','','caf\\u00e9'],"                    \
	"'status_goal':'READY','restart':'always','update':'reboot',"                              \
	"'volumes':[" VOL("state", "/var/lib/net") ",{'name':'run','path':'/tmp/run',"             \
	"'persistence':'boot'},{'name':'cache','path':'/var/cache/x_y-z.1',"                       \
	"'persistence':'revision'}],"                                                              \
	"'roles':['mgmt'],"                                                                        \
	"'lxc':{'lxc.cap.drop':'sys_module mknod','lxc.cgroup2.memory.max':'64M',"                 \
	"'lxc.environment':'A=\\'b\\' \\\\ c'}},"                                                  \
	"{'name':'ui','group':'apps','rootfs':{'object':'" DG("0") "','size':1417216},"            \
	"'exec':['/usr/bin/ui'],'status_goal':'MOUNTED','restart':'no','volumes':[],"              \
	"'roles':[],'lxc':{}}]}"

/* ---------------- valid documents ---------------- */

static void test_minimal(void **state)
{
	(void)state;
	struct revision *r = parse_ok(DOC("", CTR("")), REV_PARSE_DEVICE);
	assert_int_equal(r->number, 7);
	assert_string_equal(r->created, "2026-11-21T10:00:00Z");
	assert_false(r->bsp.present);
	assert_int_equal(r->ngroups, 3);
	assert_string_equal(r->groups[0].name, "platform");
	assert_int_equal(r->groups[0].timeout_s, 30);
	assert_string_equal(r->groups[1].name, "middleware");
	assert_int_equal(r->groups[1].timeout_s, 30);
	assert_string_equal(r->groups[2].name, "app");
	assert_int_equal(r->groups[2].timeout_s, 60);
	assert_int_equal(r->ncontainers, 1);
	const struct rev_container *c = &r->containers[0];
	assert_string_equal(c->name, "web");
	assert_int_equal(c->group, 2);
	assert_true(c->rootfs.present);
	assert_int_equal(c->rootfs.size, 4096);
	assert_int_equal(c->rootfs.format, OBJ_SQUASHFS);
	assert_int_equal(c->rootfs.src, OBJ_SRC_NONE);
	assert_int_equal(c->rootfs.digest.b[0], 0xaa);
	assert_int_equal(c->nexec, 1);
	assert_string_equal(c->exec[0], "/bin/sh");
	assert_null(c->exec[1]); /* NULL-terminated for execv */
	assert_int_equal(c->goal, GOAL_STARTED);
	assert_int_equal(c->restart, RESTART_ON_FAILURE);
	assert_int_equal(c->update, UPDATE_LIVE);
	assert_int_equal(c->nvolumes + c->nroles + c->nlxc, 0);
	assert_ptr_equal(revision_container(r, "web"), c);
	assert_null(revision_container(r, "we"));
	assert_null(revision_container(r, NULL));
	revision_free(r);
	revision_free(NULL);
}

static void test_full(void **state)
{
	(void)state;
	struct revision *r = parse_ok(FULL_DOC, REV_PARSE_DEVICE);
	assert_true(r->number == 9007199254740991ull);
	assert_true(r->bsp.present);
	assert_int_equal(r->bsp.kernel.format, OBJ_RAW);
	assert_int_equal(r->bsp.kernel.size, 100);
	assert_int_equal(r->bsp.initrd.size, 0);
	assert_int_equal(r->bsp.modules.format, OBJ_SQUASHFS);
	assert_int_equal(r->bsp.firmware.format, OBJ_SQUASHFS);
	assert_int_equal(r->bsp.firmware.digest.b[31], 0xee);
	assert_string_equal(r->bsp.cmdline, "console=ttyS0 quiet");
	assert_int_equal(r->ngroups, 2);
	assert_int_equal(r->groups[1].timeout_s, 3600);
	const struct rev_container *net = revision_container(r, "net");
	assert_non_null(net);
	assert_int_equal(net->group, 0);
	assert_int_equal(net->nexec, 4);
	assert_string_equal(net->exec[2], "");
	assert_string_equal(net->exec[3], "caf\xc3\xa9");
	assert_int_equal(net->goal, GOAL_READY);
	assert_int_equal(net->restart, RESTART_ALWAYS);
	assert_int_equal(net->update, UPDATE_REBOOT);
	assert_int_equal(net->nvolumes, 3);
	assert_string_equal(net->volumes[0].path, "/var/lib/net");
	assert_int_equal(net->volumes[0].persistence, PERSIST_PERMANENT);
	assert_int_equal(net->volumes[1].persistence, PERSIST_BOOT);
	assert_int_equal(net->volumes[2].persistence, PERSIST_REVISION);
	assert_string_equal(net->volumes[2].name, "cache");
	assert_int_equal(net->nroles, 1);
	assert_string_equal(net->roles[0], "mgmt");
	assert_int_equal(net->nlxc, 3);
	assert_string_equal(net->lxc[0].key, "lxc.cap.drop");
	assert_string_equal(net->lxc[0].value, "sys_module mknod");
	assert_string_equal(net->lxc[2].value, "A=\"b\" \\ c");
	const struct rev_container *ui = &r->containers[1];
	assert_int_equal(ui->group, 1);
	assert_int_equal(ui->goal, GOAL_MOUNTED);
	assert_int_equal(ui->restart, RESTART_NO);
	assert_int_equal(ui->update, UPDATE_LIVE);
	assert_true(digest_eq(&ui->rootfs.digest, &net->rootfs.digest));
	revision_free(r);
}

static void test_objects(void **state)
{
	(void)state;
	struct revision *r = parse_ok(FULL_DOC, REV_PARSE_DEVICE);
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, REV_MAX_OBJECTS);
	static const char *const fields[] = {"containers[0].rootfs", "containers[1].rootfs",
					     "bsp.kernel",	     "bsp.initrd",
					     "bsp.modules",	     "bsp.firmware"};
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(uses[i].field, fields[i]);
	assert_ptr_equal(uses[2].ref, &r->bsp.kernel);
	assert_ptr_equal(uses[1].ref, &r->containers[1].rootfs);
	/* a short array gets what fits, the count is still the total */
	assert_int_equal(revision_objects(r, uses, 1), 6);
	revision_free(r);
	r = parse_ok(DOC(",'bsp':{" KERNEL "}", CTR("")), REV_PARSE_DEVICE);
	assert_int_equal(revision_objects(r, uses, REV_MAX_OBJECTS), 2);
	assert_string_equal(uses[1].field, "bsp.kernel");
	revision_free(r);
}

static void test_escaped_keys_and_whitespace(void **state)
{
	(void)state;
	/* keys compare unescaped; whitespace anywhere between tokens */
	struct revision *r = parse_ok(
		" \n{ 'sp\\u0065c' : 'cairn-revision@1', 'revision':1 ,'created':'2000-02-29T00:00:00Z',"
		"\t'containers' : [" CTR("") "] }\r\n",
		REV_PARSE_DEVICE);
	assert_int_equal(r->number, 1);
	revision_free(r);
}

static void test_round_trip(void **state)
{
	(void)state;
	const char *docs[] = {FULL_DOC, DOC("", CTR("")),
			      DOC(",'bsp':{" KERNEL ",'cmdline':''}", CTR(",'lxc':{'lxc.tty.max':''}"))};
	for (size_t i = 0; i < 3; i++) {
		struct revision *a = parse_ok(docs[i], REV_PARSE_DEVICE);
		char *w1 = write_doc(a);
		char *w2 = write_doc(a);
		assert_string_equal(w1, w2); /* stable */
		struct revision *b = NULL;
		struct err e = ERR_INIT;
		assert_int_equal(revision_parse(w1, strlen(w1), REV_PARSE_DEVICE, &b, &e), 0);
		assert_true(rev_eq(a, b));
		char *w3 = write_doc(b);
		assert_string_equal(w1, w3); /* canonical: a fixed point */
		free(w1);
		free(w2);
		free(w3);
		revision_free(a);
		revision_free(b);
	}
}

static void test_canonical_form(void **state)
{
	(void)state;
	struct revision *r = parse_ok(DOC("", CTR("")), REV_PARSE_DEVICE);
	char *w = write_doc(r);
	const char *want = "{\n"
			   "  \"spec\": \"cairn-revision@1\",\n"
			   "  \"revision\": 7,\n"
			   "  \"created\": \"2026-11-21T10:00:00Z\",\n"
			   "  \"groups\": [\n"
			   "    {\n"
			   "      \"name\": \"platform\",\n"
			   "      \"timeout_s\": 30\n"
			   "    },\n";
	assert_memory_equal(w, want, strlen(want));
	assert_non_null(strstr(w, "\"status_goal\": \"STARTED\",\n"
				  "      \"restart\": \"on-failure\",\n"
				  "      \"update\": \"live\",\n"
				  "      \"volumes\": [],\n"
				  "      \"roles\": [],\n"
				  "      \"lxc\": {}\n"));
	assert_non_null(strstr(w, "\"format\": \"squashfs\""));
	free(w);
	/* into a fixed buffer too small: refused, not truncated silently */
	char small[64];
	struct jw fw;
	struct err e = ERR_INIT;
	jw_init_fixed(&fw, small, sizeof(small));
	assert_int_equal(revision_write(r, &fw, &e), -ENOBUFS);
	revision_free(r);
}

static void test_spec_mode_sources(void **state)
{
	(void)state;
	const char *doc = DOC(",'bsp':{'kernel':{'file':'out/bzImage'},'modules':{'tar':'m.tar',"
			      "'format':'squashfs'}}",
			      "{'name':'a','group':'app','rootfs':{'dir':'rootfs/a'},'exec':['/x']},"
			      "{'name':'b','group':'app','rootfs':{'tar':'/abs/b.tar'},'exec':['/x']},"
			      "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['/x']}");
	struct revision *r = parse_ok(doc, REV_PARSE_SPEC);
	assert_int_equal(r->containers[0].rootfs.src, OBJ_SRC_DIR);
	assert_string_equal(r->containers[0].rootfs.src_path, "rootfs/a");
	assert_int_equal(r->containers[0].rootfs.format, OBJ_SQUASHFS);
	assert_int_equal(r->containers[1].rootfs.src, OBJ_SRC_TAR);
	assert_string_equal(r->containers[1].rootfs.src_path, "/abs/b.tar");
	assert_int_equal(r->containers[2].rootfs.src, OBJ_SRC_NONE);
	assert_int_equal(r->bsp.kernel.src, OBJ_SRC_FILE);
	assert_int_equal(r->bsp.kernel.format, OBJ_RAW);
	assert_int_equal(r->bsp.modules.src, OBJ_SRC_TAR);
	/* a spec still naming sources cannot be written as a device revision */
	struct jw w;
	struct err e = ERR_INIT;
	jw_init_dyn(&w, true);
	assert_int_equal(revision_write(r, &w, &e), -EINVAL);
	assert_string_equal(e.field, "containers[0].rootfs");
	assert_non_null(strstr(e.msg, "cairn-pack"));
	jw_free(&w);
	revision_free(r);
	/* the same document in DEVICE mode: rejected, naming the source */
	bad(doc, "bsp.kernel.file", "spec document"); /* bsp is read before containers */
	bad(DOC("", "{'name':'a','group':'app','rootfs':{'dir':'rootfs/a'},'exec':['/x']}"),
	    "containers[0].rootfs.dir", "spec document");
	bad(DOC("", CTR_NAMED("x", "") "," "{'name':'y','group':'app','rootfs':{'tar':'t'},"
		"'exec':['/x']}"), "containers[1].rootfs.tar", "spec document");
}

static void test_spec_mode_bad(void **state)
{
	(void)state;
	enum rev_parse_mode S = REV_PARSE_SPEC;
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'dir':'d','object':'" DG("a") "'},"
		     "'exec':['/x']}"), S, "containers[0].rootfs.object", "together");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'dir':'d','tar':'t'},'exec':['/x']}"),
		 S, "containers[0].rootfs.tar", "together");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'file':'f'},'exec':['/x']}"), S,
		 "containers[0].rootfs.file", "squashfs");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'dir':''},'exec':['/x']}"), S,
		 "containers[0].rootfs.dir", "empty");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'dir':'a\\nb'},'exec':['/x']}"), S,
		 "containers[0].rootfs.dir", "control");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{'dir':7},'exec':['/x']}"), S,
		 "containers[0].rootfs.dir", "expected a string");
	bad_mode(DOC(",'bsp':{'kernel':{'dir':'k'}}", CTR("")), S, "bsp.kernel.dir", "raw");
	bad_mode(DOC(",'bsp':{'kernel':{'file':'k','format':'squashfs'}}", CTR("")), S,
		 "bsp.kernel.format", "raw");
	bad_mode(DOC("", "{'name':'a','group':'app','rootfs':{},'exec':['/x']}"), S,
		 "containers[0].rootfs.object", "missing");
}

/* ---------------- malformed documents ---------------- */

static void test_bad_syntax(void **state)
{
	(void)state;
	bad("", "", "invalid JSON at byte 0");
	bad("{", "", "byte 1");
	bad(DOC("", CTR("")) "x", "", "trailing");
	bad(DOC("", CTR("")) "{}", "", "trailing");
	bad("{'spec':'cairn-revision@1',}", "", "invalid JSON");
	bad("{'spec' 'cairn-revision@1'}", "", "':'");
	bad("{'spec':'a\\u0000b'}", "", "NUL");
	bad("{'spec':'\\ud800'}", "", "escape");
	bad_raw("{\"spec\":\"\xff\"}", 12, REV_PARSE_DEVICE, "", "UTF-8");
	bad_raw(NULL, 0, REV_PARSE_DEVICE, "", "invalid JSON");
	bad("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "",
	    "deep");
	bad("[]", "", "expected an object, got an array");
	bad("'x'", "", "expected an object, got a string");
	bad("7", "", "expected an object, got a number");
	bad(" true\n", "", "expected an object");
	bad("1.5e3 x", "", "invalid JSON at byte 6");
	/* a document with an embedded NUL byte is not JSON */
	char js[] = "{\"spec\":1}";
	js[1] = '\0';
	bad_raw(js, sizeof(js) - 1, REV_PARSE_DEVICE, "", "invalid JSON");
}

static void test_bad_top(void **state)
{
	(void)state;
	bad("{'revision':1,'created':'2026-11-21T10:00:00Z','containers':[" CTR("") "]}", "spec",
	    "missing");
	bad("{'spec':'cairn-revision@1','created':'2026-11-21T10:00:00Z','containers':[" CTR("")
	    "]}", "revision", "missing");
	bad("{'spec':'cairn-revision@1','revision':1,'containers':[" CTR("") "]}", "created",
	    "missing");
	bad("{" HEAD "}", "containers", "missing");
	bad(DOC(",'extra':1", CTR("")), "extra", "unknown key");
	bad(DOC(",'Spec':1", CTR("")), "Spec", "unknown key");
	bad(DOC(",'revision':8", CTR("")), "revision", "duplicate");
	bad(DOC(",'sp\\u0065c':'cairn-revision@1'", CTR("")), "spec", "duplicate");
	bad("{'spec':'cairn-revision@2','revision':1,'created':'2026-11-21T10:00:00Z',"
	    "'containers':[" CTR("") "]}", "spec", "unsupported");
	bad("{'spec':1,'revision':1,'created':'2026-11-21T10:00:00Z','containers':[" CTR("") "]}",
	    "spec", "expected a string, got a number");
}

#define WITH_REV(v)                                                                                \
	"{'spec':'cairn-revision@1','revision':" v ",'created':'2026-11-21T10:00:00Z',"           \
	"'containers':[" CTR("") "]}"
#define WITH_CREATED(v)                                                                            \
	"{'spec':'cairn-revision@1','revision':1,'created':" v ",'containers':[" CTR("") "]}"

static void test_bad_numbers_and_time(void **state)
{
	(void)state;
	bad(WITH_REV("0"), "revision", "out of range");
	bad(WITH_REV("-1"), "revision", "out of range");
	bad(WITH_REV("9007199254740992"), "revision", "out of range");
	bad(WITH_REV("99999999999999999999999"), "revision", "out of range");
	bad(WITH_REV("1.5"), "revision", "whole number");
	bad(WITH_REV("1e3"), "revision", "whole number");
	bad(WITH_REV("'7'"), "revision", "expected an integer, got a string");
	bad(WITH_REV("true"), "revision", "expected an integer, got a boolean");
	bad(WITH_REV("null"), "revision", "expected an integer, got null");
	bad(WITH_CREATED("'2026-02-29T00:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-31T00:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'1900-02-29T00:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-13-01T00:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T24:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T10:60:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T10:00:60Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21 10:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T10:00:00+01:00'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T10:00:00z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-1-21T10:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'+026-11-21T10:00:00Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("'2026-11-21T10:00:00.5Z'"), "created", "RFC 3339");
	bad(WITH_CREATED("1700000000"), "created", "expected a string");
	bad(WITH_CREATED("'" X64("2026-11-21T10:00:00Z") "'"), "created", "longer than 31");
}

static void test_bad_groups(void **state)
{
	(void)state;
	bad(DOC(",'groups':[]", CTR("")), "groups", "at least 1");
	bad(DOC(",'groups':{}", CTR("")), "groups", "expected an array, got an object");
	bad(DOC(",'groups':[{'name':'app','timeout_s':0}]", CTR("")), "groups[0].timeout_s",
	    "out of range");
	bad(DOC(",'groups':[{'name':'app','timeout_s':3601}]", CTR("")), "groups[0].timeout_s",
	    "1 to 3600");
	bad(DOC(",'groups':[{'name':'app'}]", CTR("")), "groups[0].timeout_s", "missing");
	bad(DOC(",'groups':[{'name':'app','timeout_s':5},{'name':'app','timeout_s':5}]", CTR("")),
	    "groups[1].name", "already declared");
	bad(DOC(",'groups':[{'name':'App','timeout_s':5}]", CTR("")), "groups[0].name",
	    "not a valid name");
	bad(DOC(",'groups':[{'name':'-x','timeout_s':5}]", CTR("")), "groups[0].name",
	    "not a valid name");
	bad(DOC(",'groups':[{'name':'','timeout_s':5}]", CTR("")), "groups[0].name",
	    "not a valid name");
	bad(DOC(",'groups':[{'name':'app','timeout_s':5,'order':1}]", CTR("")), "groups[0].order",
	    "unknown key");
	bad(DOC(",'groups':['app']", CTR("")), "groups[0]", "expected an object, got a string");
	bad(DOC(",'groups':[{'name':'a','timeout_s':5}]", CTR("")), "containers[0].group",
	    "no group \"app\"");
	char *nine = repeat_doc("{" HEAD ",'groups':[", "{'name':'g','timeout_s':1}", 9,
				"],'containers':[" CTR("") "]}");
	bad_raw(nine, strlen(nine), REV_PARSE_DEVICE, "groups", "more than the 8");
	free(nine);
}

static void test_bad_bsp(void **state)
{
	(void)state;
	bad(DOC(",'bsp':{}", CTR("")), "bsp.kernel", "missing");
	bad(DOC(",'bsp':[]", CTR("")), "bsp", "expected an object");
	bad(DOC(",'bsp':{'kernel':{'object':'" DG("b") "','size':'100'}}", CTR("")),
	    "bsp.kernel.size", "expected an integer");
	bad(DOC(",'bsp':{'kernel':{'object':'" DG("b") "'}}", CTR("")), "bsp.kernel.size",
	    "missing");
	bad(DOC(",'bsp':{'kernel':{'object':'" DG("b") "','size':1,'format':'squashfs'}}", CTR("")),
	    "bsp.kernel.format", "must be \"raw\"");
	bad(DOC(",'bsp':{" KERNEL ",'modules':{'object':'" DG("b") "','size':1,'format':'raw'}}",
		CTR("")), "bsp.modules.format", "must be \"squashfs\"");
	bad(DOC(",'bsp':{" KERNEL ",'initrd':{'object':'" DG("b") "','size':1,'format':'zip'}}",
		CTR("")), "bsp.initrd.format", "unknown value \"zip\"");
	bad(DOC(",'bsp':{" KERNEL ",'cmdline':'caf\\u00e9'}", CTR("")), "bsp.cmdline",
	    "printable");
	bad(DOC(",'bsp':{" KERNEL ",'cmdline':'a\\nb'}", CTR("")), "bsp.cmdline", "printable");
	bad(DOC(",'bsp':{" KERNEL ",'dtb':{}}", CTR("")), "bsp.dtb", "unknown key");
	char *x4097 = fill('x', REV_MAX_ARG + 1);
	char *longcmd = fmt("{" HEAD ",'bsp':{" KERNEL ",'cmdline':'%s'},'containers':[" CTR("")
			    "]}", x4097);
	bad_raw(longcmd, strlen(longcmd), REV_PARSE_DEVICE, "bsp.cmdline", "longer than 4096");
	free(x4097);
	free(longcmd);
}

static void test_bad_container_core(void **state)
{
	(void)state;
	bad(DOC("", "'web'"), "containers[0]", "expected an object, got a string");
	bad("{" HEAD ",'containers':[]}", "containers", "at least 1");
	bad("{" HEAD ",'containers':{}}", "containers", "expected an array");
	bad(DOC("", "{'name':'web','group':'app','rootfs':" ROOTFS "}"), "containers[0].exec",
	    "missing");
	bad(DOC("", "{'group':'app','rootfs':" ROOTFS ",'exec':['/x']}"), "containers[0].name",
	    "missing");
	bad(DOC("", CTR_NAMED("Web", "")), "containers[0].name", "not a valid name");
	bad(DOC("", CTR_NAMED("a/b", "")), "containers[0].name", "not a valid name");
	bad(DOC("", CTR_NAMED("..", "")), "containers[0].name", "not a valid name");
	bad(DOC("", CTR_NAMED("abcdefghijklmnopqrstuvwxyz0123456", "")), "containers[0].name",
	    "not a valid name");
	bad(DOC("", CTR_NAMED("a", "") "," CTR_NAMED("b", "") "," CTR_NAMED("a", "")),
	    "containers[2].name", "already declared as containers[0]");
	bad(DOC("", CTR(",'image':'x'")), "containers[0].image", "unknown key");
	bad(DOC("", CTR(",'exec':['/y']")), "containers[0].exec", "duplicate");
	bad(DOC("", CTR_NAMED("a", "") "," CTR_NAMED("b", "") ","
		"{'name':'c','group':'app','rootfs':{'object':'" DG("A") "','size':1},"
		"'exec':['/x']}"), "containers[2].rootfs.object", "sha256");
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'sha256:abc','size':1},"
		"'exec':['/x']}"), "containers[0].rootfs.object", "64 lowercase hex");
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'sha512:" X64("a") "',"
		"'size':1},'exec':['/x']}"), "containers[0].rootfs.object", "sha256");
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'" DG("a") "','size':-1},"
		"'exec':['/x']}"), "containers[0].rootfs.size", "out of range");
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'" DG("a") "','size':1,"
		"'format':'raw'},'exec':['/x']}"), "containers[0].rootfs.format", "squashfs");
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'" DG("a") "','size':1,"
		"'sha':1},'exec':['/x']}"), "containers[0].rootfs.sha", "unknown key");
	bad(DOC("", "{'name':'c','group':'app','rootfs':'" DG("a") "','exec':['/x']}"),
	    "containers[0].rootfs", "expected an object");
	bad(DOC("", "{'name':'c','group':7,'rootfs':" ROOTFS ",'exec':['/x']}"),
	    "containers[0].group", "expected a string");
}

static void test_bad_exec_and_modes(void **state)
{
	(void)state;
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':[]}"),
	    "containers[0].exec", "at least 1");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':'/bin/sh'}"),
	    "containers[0].exec", "expected an array");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['bin/sh']}"),
	    "containers[0].exec[0]", "absolute");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['']}"),
	    "containers[0].exec[0]", "absolute");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['/a','b\\nc']}"),
	    "containers[0].exec[1]", "control character");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['/a','b',3]}"),
	    "containers[0].exec[2]", "expected a string, got a number");
	bad(DOC("", "{'name':'c','group':'app','rootfs':" ROOTFS ",'exec':['/a',['b']]}"),
	    "containers[0].exec[1]", "expected a string, got an array");
	bad(DOC("", CTR(",'status_goal':'RUNNING'")), "containers[0].status_goal",
	    "use one of MOUNTED, STARTED, READY");
	bad(DOC("", CTR(",'status_goal':'ready'")), "containers[0].status_goal", "unknown value");
	bad(DOC("", CTR(",'restart':true")), "containers[0].restart", "expected a string");
	bad(DOC("", CTR(",'restart':'sometimes'")), "containers[0].restart", "on-failure");
	bad(DOC("", CTR(",'update':'never'")), "containers[0].update", "live, reboot");
	char *many = repeat_doc("{" HEAD ",'containers':[{'name':'c','group':'app','rootfs':" ROOTFS
				",'exec':[", "'/x'", 65, "]}]}");
	bad_raw(many, strlen(many), REV_PARSE_DEVICE, "containers[0].exec", "more than the 64");
	free(many);
}

#define VOLS(v) CTR(",'volumes':[" v "]")

static void test_bad_volumes(void **state)
{
	(void)state;
	bad(DOC("", VOLS(VOL("data", "data"))), "containers[0].volumes[0].path", "absolute");
	bad(DOC("", VOLS(VOL("data", ""))), "containers[0].volumes[0].path", "empty");
	bad(DOC("", VOLS(VOL("data", "/"))), "containers[0].volumes[0].path", "root");
	bad(DOC("", VOLS(VOL("data", "/data/"))), "containers[0].volumes[0].path", "trailing");
	bad(DOC("", VOLS(VOL("data", "/a//b"))), "containers[0].volumes[0].path", "normalized");
	bad(DOC("", VOLS(VOL("data", "/a/../etc"))), "containers[0].volumes[0].path", "..");
	bad(DOC("", VOLS(VOL("data", "/a/."))), "containers[0].volumes[0].path", "normalized");
	bad(DOC("", VOLS(VOL("data", "/./a"))), "containers[0].volumes[0].path", "normalized");
	bad(DOC("", VOLS(VOL("data", "/my data"))), "containers[0].volumes[0].path",
	    "may only contain");
	bad(DOC("", VOLS(VOL("data", "/proc"))), "containers[0].volumes[0].path", "runtime owns");
	bad(DOC("", VOLS(VOL("data", "/sys/fs/x"))), "containers[0].volumes[0].path",
	    "runtime owns");
	bad(DOC("", VOLS(VOL("data", "/dev/shm"))), "containers[0].volumes[0].path",
	    "runtime owns");
	bad(DOC("", VOLS(VOL("data", "/run/cairn/ctrl.sock"))), "containers[0].volumes[0].path",
	    "runtime owns");
	bad(DOC("", VOLS(VOL("a", "/data") "," VOL("a", "/other"))),
	    "containers[0].volumes[1].name", "already declared");
	bad(DOC("", VOLS(VOL("a", "/data") "," VOL("b", "/data"))),
	    "containers[0].volumes[1].path", "already the path of volume \"a\"");
	bad(DOC("", VOLS(VOL("a", "/data/x") "," VOL("b", "/data"))),
	    "containers[0].volumes[1].path", "nest");
	bad(DOC("", VOLS("{'name':'a','path':'/data','persistence':'forever'}")),
	    "containers[0].volumes[0].persistence", "permanent, revision, boot");
	bad(DOC("", VOLS("{'name':'a','path':'/data'}")), "containers[0].volumes[0].persistence",
	    "missing");
	bad(DOC("", VOLS("{'name':'a','path':'/data','persistence':'boot','size':1}")),
	    "containers[0].volumes[0].size", "unknown key");
	bad(DOC("", VOLS("{'name':'a_','path':'/data','persistence':'boot','name':'b'}")),
	    "containers[0].volumes[0].name", "duplicate");
	char *many = repeat_doc("{" HEAD ",'containers':[{'name':'c','group':'app','rootfs':" ROOTFS
				",'exec':['/x'],'volumes':[", VOL("v", "/v"), 17, "]}]}");
	bad_raw(many, strlen(many), REV_PARSE_DEVICE, "containers[0].volumes",
		"more than the 16");
	free(many);
	/* allowed lookalikes of the reserved places */
	struct revision *r = parse_ok(DOC("", VOLS(VOL("a", "/procfs") "," VOL("b", "/run/cairnx") ","
					       VOL("c", "/data.d") "," VOL("d", "/data"))),
				      REV_PARSE_DEVICE);
	assert_int_equal(r->containers[0].nvolumes, 4);
	revision_free(r);
}

static void test_bad_roles_and_lxc(void **state)
{
	(void)state;
	bad(DOC("", CTR(",'roles':['admin']")), "containers[0].roles[0]", "unknown value");
	bad(DOC("", CTR(",'roles':['mgmt','mgmt']")), "containers[0].roles[1]", "already listed");
	bad(DOC("", CTR(",'roles':'mgmt'")), "containers[0].roles", "expected an array");
	bad(DOC("", CTR(",'lxc':{'lxc.rootfs.path':'/x'}")), "containers[0].lxc.lxc.rootfs.path",
	    "not allowed");
	bad(DOC("", CTR(",'lxc':{'lxc.hook.pre-start':'/x'}")),
	    "containers[0].lxc.lxc.hook.pre-start", "host");
	bad(DOC("", CTR(",'lxc':{'lxc.net.0.script.up':'/x'}")),
	    "containers[0].lxc.lxc.net.0.script.up", "host");
	bad(DOC("", CTR(",'lxc':{'lxc.mount.entry':'/a b none bind 0 0'}")),
	    "containers[0].lxc.lxc.mount.entry", "volumes");
	bad(DOC("", CTR(",'lxc':{'lxc.cap.drop':'a\\nlxc.hook.start = /evil'}")),
	    "containers[0].lxc.lxc.cap.drop", "control character");
	bad(DOC("", CTR(",'lxc':{'lxc.cap.drop':1}")), "containers[0].lxc.lxc.cap.drop",
	    "expected a string");
	bad(DOC("", CTR(",'lxc':{'foo.bar':'1'}")), "containers[0].lxc.foo.bar", "not an lxc");
	bad(DOC("", CTR(",'lxc':{'lxc.Cap.drop':'1'}")), "containers[0].lxc.lxc.Cap.drop",
	    "a-z");
	bad(DOC("", CTR(",'lxc':{'lxc.cap.drop':'a','lxc.cap.drop':'b'}")),
	    "containers[0].lxc.lxc.cap.drop", "duplicate");
	bad(DOC("", CTR(",'lxc':['lxc.cap.drop']")), "containers[0].lxc", "expected an object");
	bad(DOC("", CTR(",'lxc':{'lxc." X16("abcd") "':'1'}")), "containers[0].lxc.lxc." X4("abcd")
	    X4("abcd") "abcd...", "longer than 64");
	char *many = repeat_doc("{" HEAD ",'containers':[{'name':'c','group':'app','rootfs':" ROOTFS
				",'exec':['/x'],'lxc':{", "'lxc.x':'1'", 65, "}}]}");
	bad_raw(many, strlen(many), REV_PARSE_DEVICE, "containers[0].lxc", "more than the 64");
	free(many);
	many = repeat_doc("{" HEAD ",'containers':[{'name':'c','group':'app','rootfs':" ROOTFS
			  ",'exec':['/x'],'roles':[", "'mgmt'", 9, "]}]}");
	bad_raw(many, strlen(many), REV_PARSE_DEVICE, "containers[0].roles", "more than the 8");
	free(many);
}

static void test_caps(void **state)
{
	(void)state;
	/* 64 containers are fine, 65 are not */
	char item[400];
	assert_true(snprintf(item, sizeof(item), "%s", CTR_NAMED("c", "")) < (int)sizeof(item));
	for (int n = 64; n <= 65; n++) {
		size_t cap = (size_t)n * 400 + 400, at = 0;
		char *js = malloc(cap);
		assert_non_null(js);
		at += (size_t)snprintf(js, cap, "{" HEAD ",'containers':[");
		for (int i = 0; i < n; i++)
			at += (size_t)snprintf(js + at, cap - at, "%s" CTR_NAMED("c%d", ""),
					       i ? "," : "", i);
		snprintf(js + at, cap - at, "]}");
		if (n == 64) {
			struct revision *r = parse_ok(js, REV_PARSE_DEVICE);
			assert_int_equal(r->ncontainers, 64);
			assert_string_equal(r->containers[63].name, "c63");
			revision_free(r);
		} else {
			bad(js, "containers", "65 entries, more than the 64");
		}
		free(js);
	}
}

static void test_caps_size_and_tokens(void **state)
{
	(void)state;
	/* over 1 MiB: refused before any parsing (even valid JSON) */
	size_t big = REV_MAX_DOC + 1;
	char *js = malloc(big);
	assert_non_null(js);
	memset(js, ' ', big);
	memcpy(js, "{}", 2);
	struct revision *r = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(revision_parse(js, big, REV_PARSE_DEVICE, &r, &e), -E2BIG);
	assert_string_equal(e.field, "");
	assert_non_null(strstr(e.msg, "1048576"));
	assert_null(r);
	free(js);
	/* token cap: 40000 exec entries (~160 KB) exceed 32768 tokens */
	js = repeat_doc("{" HEAD ",'containers':[{'name':'c','group':'app','rootfs':" ROOTFS
			",'exec':[", "'/'", 40000, "]}]}");
	assert_true(strlen(js) < REV_MAX_DOC);
	bad_raw(js, strlen(js), REV_PARSE_DEVICE, "", "32768 tokens");
	free(js);
}

static void test_caps_big_strings(void **state)
{
	(void)state;
	char *js;
	/* arguments of 4096 bytes pass, 4097 do not */
	char *arg = fill('y', REV_MAX_ARG + 1);
	js = fmt("{" HEAD ",'containers':[" CTR_NAMED("c", ",'lxc':{'lxc.x':'%s'}") "]}", arg);
	bad_raw(js, strlen(js), REV_PARSE_DEVICE, "containers[0].lxc.lxc.x", "longer than 4096");
	free(js);
	arg[REV_MAX_ARG] = '\0';
	js = fmt("{" HEAD ",'containers':[" CTR_NAMED("c", ",'lxc':{'lxc.x':'%s'}") "]}", arg);
	struct revision *r = parse_ok(js, REV_PARSE_DEVICE);
	assert_int_equal(strlen(r->containers[0].lxc[0].value), REV_MAX_ARG);
	revision_free(r);
	free(js);
	/* near 1 MiB and valid: 64 containers with 4 arguments of 4000 bytes */
	arg[4000] = '\0';
	char *ctrs = NULL;
	for (int i = 0; i < 64; i++) {
		char *prev = ctrs;
		ctrs = fmt("%s%s{'name':'c%d','group':'app','rootfs':" ROOTFS ",'exec':['/%s','%s',"
			   "'%s','%s']}", prev ? prev : "", prev ? "," : "", i, arg, arg, arg, arg);
		free(prev);
	}
	js = fmt("{" HEAD ",'containers':[%s]}", ctrs);
	assert_true(strlen(js) > 1000000 && strlen(js) <= REV_MAX_DOC);
	struct revision *rbig = parse_ok(js, REV_PARSE_DEVICE);
	assert_int_equal(rbig->ncontainers, 64);
	assert_int_equal(strlen(rbig->containers[63].exec[0]), 4001);
	revision_free(rbig);
	free(js);
	free(ctrs);
	free(arg);
}

/* The first problem in the documented order wins, whatever the key order. */
static void test_error_order(void **state)
{
	(void)state;
	/* unknown keys before values, in the same object */
	bad(DOC("", "{'restart':'x','name':'web','group':'app','rootfs':" ROOTFS
		",'exec':['/x'],'zzz':1}"), "containers[0].zzz", "unknown key");
	/* missing before values */
	bad(DOC("", "{'restart':'x','group':'app','rootfs':" ROOTFS ",'exec':['/x']}"),
	    "containers[0].name", "missing");
	/* exec before status_goal, even when written after it */
	bad(DOC("", "{'name':'web','group':'app','rootfs':" ROOTFS ",'status_goal':'x',"
		"'exec':['x']}"), "containers[0].exec[0]", "absolute");
	/* groups before bsp before containers at the top level */
	bad("{'containers':[{}],'bsp':{},'groups':[]," HEAD "}", "groups", "at least 1");
	bad("{'containers':[{}],'bsp':{}," HEAD "}", "bsp.kernel", "missing");
	/* spec before revision */
	bad("{'revision':0,'spec':'x','created':'x','containers':[]}", "spec", "unsupported");
	/* format before the object id in an object reference */
	bad(DOC("", "{'name':'c','group':'app','rootfs':{'object':'x','size':1,'format':'raw'},"
		"'exec':['/x']}"), "containers[0].rootfs.format", "squashfs");
}

static void test_lxc_key_allowed(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"lxc.cap.drop",	      "lxc.cgroup2.memory.max", "lxc.cgroup.devices.allow",
		"lxc.net.0.type",     "lxc.net.0.link",		"lxc.prlimit.nofile",
		"lxc.sysctl.net.ipv4.ip_forward", "lxc.environment", "lxc.pty.max",
		"lxc.tty.max",	      "lxc.uts.name",		"lxc.net.0.ipv4.address",
		"lxc.rootfsx",	      "lxc.cgroup.dirty",	"lxc.hooks"};
	static const char *const denied[] = {
		"lxc.rootfs",	       "lxc.rootfs.path",	  "lxc.rootfs.options",
		"lxc.mount.entry",     "lxc.mount.fstab",	  "lxc.mount.auto",
		"lxc.hook.pre-start",  "lxc.hook.version",	  "lxc.include",
		"lxc.console.path",    "lxc.console.logfile",	  "lxc.log.file",
		"lxc.log.level",       "lxc.init.cmd",		  "lxc.init.uid",
		"lxc.execute.cmd",     "lxc.cap.keep",		  "lxc.apparmor.profile",
		"lxc.selinux.context", "lxc.seccomp.profile",	  "lxc.namespace.share.net",
		"lxc.namespace.clone", "lxc.idmap",		  "lxc.cgroup.dir",
		"lxc.cgroup.dir.container", "lxc.cgroup.relative", "lxc.autodev",
		"lxc.autodev.tmpfs.size", "lxc.net.0.script.up", "lxc.net.12.script.down",
		"lxc.ephemeral",       "lxc.monitor.unshare"};
	static const char *const invalid[] = {
		"",	   "lxc",	 "lxc.",     "lxc..cap", "LXC.cap.drop", "lxc.cap drop",
		"foo.bar", "lxc.cap.drop.", "lxc.é", "lxc." X16("abc") "abcdefghijklm"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!revision_lxc_key_allowed(ok[i]))
			fail_msg("%s should be allowed", ok[i]);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (revision_lxc_key_allowed(denied[i]))
			fail_msg("%s should be denied", denied[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		if (revision_lxc_key_allowed(invalid[i]))
			fail_msg("%s should be invalid", invalid[i]);
	assert_false(revision_lxc_key_allowed(NULL));
	assert_true(revision_lxc_key_allowed("lxc." X16("abc") "abcdefghijkl")); /* 64 bytes */
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(ctr_goal_name(GOAL_MOUNTED), "MOUNTED");
	assert_string_equal(ctr_goal_name(GOAL_READY), "READY");
	assert_string_equal(restart_policy_name(RESTART_ON_FAILURE), "on-failure");
	assert_string_equal(restart_policy_name(RESTART_NO), "no");
	assert_string_equal(persistence_name(PERSIST_BOOT), "boot");
	assert_string_equal(persistence_name(PERSIST_REVISION), "revision");
	assert_string_equal(ctr_goal_name((enum ctr_goal)42), "?");
}

static void test_write_refuses_bad_struct(void **state)
{
	(void)state;
	struct revision *r = parse_ok(DOC("", CTR("")), REV_PARSE_DEVICE);
	struct jw w;
	struct err e = ERR_INIT;
	r->containers[0].group = 3; /* out of range */
	jw_init_dyn(&w, true);
	assert_int_equal(revision_write(r, &w, &e), -EINVAL);
	assert_string_equal(e.field, "containers[0]");
	jw_free(&w);
	revision_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_objects),
		cmocka_unit_test(test_escaped_keys_and_whitespace),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_canonical_form),
		cmocka_unit_test(test_spec_mode_sources),
		cmocka_unit_test(test_spec_mode_bad),
		cmocka_unit_test(test_bad_syntax),
		cmocka_unit_test(test_bad_top),
		cmocka_unit_test(test_bad_numbers_and_time),
		cmocka_unit_test(test_bad_groups),
		cmocka_unit_test(test_bad_bsp),
		cmocka_unit_test(test_bad_container_core),
		cmocka_unit_test(test_bad_exec_and_modes),
		cmocka_unit_test(test_bad_volumes),
		cmocka_unit_test(test_bad_roles_and_lxc),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_caps_size_and_tokens),
		cmocka_unit_test(test_caps_big_strings),
		cmocka_unit_test(test_error_order),
		cmocka_unit_test(test_lxc_key_allowed),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_write_refuses_bad_struct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
