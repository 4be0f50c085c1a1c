/* test/unit/revision_bad_test.c — revision.json: the parser rejects what
 * trails/REVISION.md forbids, naming the exact field (syntax, the top level,
 * numbers and time, groups, bsp, containers, exec, volumes, roles, lxc keys),
 * holds every cap exactly (one under passes, one over is refused), and
 * reports the first problem in the documented order. Valid documents and the
 * writer: revision_test.c. Helpers and document macros: revision_helpers.h. */
#include "revision_helpers.h"
#include "checks.h"

/* ---------------- helpers ---------------- */

/* printf into a fresh buffer, single quotes turned into double quotes */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vstr_new(f, ap);
	va_end(ap);
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

/* ---------------- caps ---------------- */

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

/* ---------------- error order ---------------- */

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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
