/* test/unit/revision_test.c — revision.json: the parser accepts what
 * trails/REVISION.md allows with the right values and defaults, the
 * canonical writer round-trips and refuses what it cannot write, spec mode
 * reads sources (and device mode names them as errors), and the lxc key
 * table. Malformed documents, caps and error order: revision_bad_test.c.
 * Helpers and document macros: revision_helpers.h. */
#include "revision_helpers.h"

/* ---------------- helpers ---------------- */

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

/* ---------------- tables and the writer's own checks ---------------- */

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
		cmocka_unit_test(test_lxc_key_allowed),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_write_refuses_bad_struct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
