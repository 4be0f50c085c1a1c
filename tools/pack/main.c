/* tools/pack/main.c — the cairn-pack command line (see README.md).
 *
 *   cairn-pack COMMAND ARGS...
 *
 * Exit status: 0 done, 1 the operation failed (message on stderr as
 * "cairn-pack: COMMAND: reason"), 2 usage error.
 *
 * Adding a command: write `static int cmd_foo(const struct args *a, struct err *e)`
 * and describe its positionals and options in a `struct cmd` entry of `cmds[]`.
 * Argument checking (counts, required options, flags, --help) and the usage
 * text are done here once for all. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../../lib/cleanup.h"
#include "../../lib/err.h"
#include "../../lib/util.h"
#include "../../trails/trails.h"
#include "pack.h"

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
};

#define CMD_MAX_OPTS 5

struct opt {
	const char *name; /* "--out" */
	const char *arg;  /* value placeholder for the usage text; NULL: a flag */
	bool required;
};

struct args {
	const char **pos; /* npos positionals (room for every argument) */
	unsigned npos;
	const char *opt[CMD_MAX_OPTS]; /* values, by index into cmd.opts; NULL if absent,
					* "" for a flag that is present */
};

struct cmd {
	const char *name;
	const char *pos;  /* positional placeholders for the usage text */
	unsigned npos;    /* exactly this many positionals, */
	bool more;        /* or more: the last one repeats ("OUT PUB...") */
	struct opt opts[CMD_MAX_OPTS];
	const char *help; /* one line */
	int (*run)(const struct args *a, struct err *e);
};

/* ---------------- commands ---------------- */

static int cmd_keygen(const struct args *a, struct err *e)
{
	/* a new key directory is private; an existing one is taken as it is */
	if (mkdir(a->pos[0], 0700) < 0 && errno != EEXIST)
		return err_set(e, errno, "create %s: %s", a->pos[0], strerror(errno));
	int r = pack_keygen(a->pos[0], e);
	if (r < 0)
		return r;
	printf("wrote %s/signing.key (keep it secret) and %s/signing.pub\n", a->pos[0],
	       a->pos[0]);
	return 0;
}

static int cmd_build(const struct args *a, struct err *e)
{
	int r = pack_build(a->pos[0], a->opt[0], e);
	if (r < 0)
		return r;
	printf("built %s/revision.json (unsigned: run cairn-pack sign)\n", a->opt[0]);
	return 0;
}

static int cmd_sign(const struct args *a, struct err *e)
{
	const char *doc = NULL;
	int r = pack_sign_doc(a->pos[0], a->opt[0], &doc, e);
	if (r < 0)
		return r;
	printf("signed %s/%s\n", a->pos[0], doc);
	return 0;
}

/* The value of option `name`: decimal digits only, min .. max. */
static int parse_number(const char *name, const char *s, uint64_t min, uint64_t max,
			uint64_t *out, struct err *e)
{
	uint64_t v = 0;
	bool ok = *s != '\0';
	for (const char *c = s; ok && *c; c++) {
		ok = *c >= '0' && *c <= '9' && v <= max;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	if (!ok || v < min || v > max)
		return err_set(e, EINVAL, "%s %s: must be an integer from %llu to %llu", name, s,
			       (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

static int cmd_keys(const struct args *a, struct err *e)
{
	uint64_t serial = 0, threshold = 1;
	int r = parse_number("--serial", a->opt[0], 1, REV_MAX_NUMBER, &serial, e);
	if (r == 0 && a->opt[1])
		r = parse_number("--threshold", a->opt[1], 1, TRUST_MAX_KEYS, &threshold, e);
	if (r == 0)
		r = pack_keys(a->pos[0], serial, (unsigned)threshold, a->pos + 1, a->npos - 1, e);
	if (r < 0)
		return r;
	printf("wrote %s/keys.json: serial %llu, %u key%s, threshold %llu (unsigned: run "
	       "cairn-pack sign with a root key)\n", a->pos[0], (unsigned long long)serial,
	       a->npos - 1, a->npos == 2 ? "" : "s", (unsigned long long)threshold);
	return 0;
}

static int cmd_verify(const struct args *a, struct err *e)
{
	char summary[256];
	int r = pack_verify(a->pos[0], a->opt[0], a->opt[1], summary, sizeof(summary), e);
	if (r < 0)
		return r;
	printf("%s\n", summary);
	return 0;
}

static int cmd_install(const struct args *a, struct err *e)
{
	uint64_t rev = 0;
	/* a fresh device storage is created; its parent must exist */
	if (mkdir(a->opt[0], 0755) < 0 && errno != EEXIST)
		return err_set(e, errno, "create %s: %s", a->opt[0], strerror(errno));
	int r = pack_install(a->pos[0], a->opt[0], a->opt[1], a->opt[3], a->opt[2] != NULL, &rev, e);
	if (r < 0)
		return r;
	printf("installed revision %llu into %s as its committed revision\n",
	       (unsigned long long)rev, a->opt[0]);
	return 0;
}

static int cmd_publish(const struct args *a, struct err *e)
{
	struct pack_publish_result res;
	int r = pack_publish(a->pos[0], a->opt[0], a->opt[1], a->opt[2], a->opt[3], a->opt[4],
			     &res, e);
	if (r < 0)
		return r;
	printf("published revision %llu to %s %s: %zu objects (%zu new, %llu bytes; %zu already "
	       "on the hub)", (unsigned long long)res.revision, a->opt[1] ? "device" : "group",
	       a->opt[1] ? a->opt[1] : a->opt[2], res.objects, res.linked + res.copied,
	       (unsigned long long)res.bytes_new, res.present);
	if (a->opt[2])
		printf(", %zu member%s (%zu updated)", res.members, res.members == 1 ? "" : "s",
		       res.written);
	printf("\n");
	return 0;
}

static int cmd_fleet(const struct args *a, struct err *e)
{
	return pack_fleet(a->pos[0], a->opt[0] != NULL, stdout, e);
}

static const struct cmd cmds[] = {
	{"keygen", "DIR", 1, false, {{0}},
	 "create DIR/signing.key and DIR/signing.pub (ECDSA P-256)", cmd_keygen},
	{"build", "SPEC.json", 1, false, {{"--out", "OUT", true}},
	 "build the objects and OUT/revision.json described by SPEC.json", cmd_build},
	{"sign", "OUT", 1, false, {{"--key", "KEY", true}},
	 "add a signature by KEY (PEM private key) to OUT/revision.sig "
	 "(OUT/keys.sig for a keys document)",
	 cmd_sign},
	{"verify", "OUT", 1, false, {{"--trust", "PUB_OR_DIR", true}, {"--keys", "KEYSDIR", false}},
	 "check OUT's signature against trusted keys (and the signing keys of KEYSDIR's keys "
	 "document), its schema and every object",
	 cmd_verify},
	{"install", "OUT", 1, false,
	 {{"--storage", "DIR", true},
	  {"--trust", "PUB_OR_DIR", true},
	  {"--force", NULL, false},
	  {"--keys", "KEYSDIR", false}},
	 "provision: install OUT into a device storage DIR as its committed revision (and "
	 "KEYSDIR's keys document)",
	 cmd_install},
	{"publish", "OUT", 1, false,
	 {{"--hub", "DIR", true}, {"--device", "ID", false}, {"--group", "NAME", false},
	  {"--trust", "PUB_OR_DIR", false}, {"--keys", "KEYSDIR", false}},
	 "place OUT on a hub directory for one device or a group (exactly one of the two), "
	 "with the keys document of KEYSDIR",
	 cmd_publish},
	{"fleet", "DIR", 1, false, {{"--json", NULL, false}},
	 "list the devices of hub DIR: assignment and last report", cmd_fleet},
	{"keys", "OUT PUB...", 2, true, {{"--serial", "N", true}, {"--threshold", "T", false}},
	 "write OUT/keys.json naming the signing keys PUB... (PEM), for the roots to sign",
	 cmd_keys},
};

/* ---------------- argument handling ---------------- */

static void usage_cmd(FILE *f, const struct cmd *c)
{
	fprintf(f, "  cairn-pack %s %s", c->name, c->pos);
	for (unsigned i = 0; i < CMD_MAX_OPTS && c->opts[i].name; i++) {
		const struct opt *o = &c->opts[i];
		fprintf(f, " %s%s%s%s%s", o->required ? "" : "[", o->name, o->arg ? " " : "",
			o->arg ? o->arg : "", o->required ? "" : "]");
	}
	fprintf(f, "\n      %s\n", c->help);
}

static int usage(const struct cmd *only)
{
	fprintf(stderr, "usage:\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!only || only == &cmds[i])
			usage_cmd(stderr, &cmds[i]);
	if (!only)
		fprintf(stderr, "exit status: 0 done, 1 failed, 2 usage error\n");
	return EXIT_USAGE;
}

static int usage_error(const struct cmd *c, const char *what, const char *arg)
{
	fprintf(stderr, "cairn-pack: %s: %s%s%s\n", c->name, what, arg ? " " : "", arg ? arg : "");
	return usage(c);
}

static int opt_index(const struct cmd *c, const char *name)
{
	for (int i = 0; i < CMD_MAX_OPTS && c->opts[i].name; i++)
		if (!strcmp(c->opts[i].name, name))
			return i;
	return -1;
}

/* The value of option o at argv[*i] ("=VALUE" in eq, or the next argument),
 * "" for a flag; NULL if a value is missing or given to a flag. */
static const char *opt_value(const struct opt *o, const char *eq, int argc, char **argv, int *i)
{
	if (!o->arg)
		return eq ? NULL : "";
	if (eq)
		return eq + 1;
	return *i + 1 < argc ? argv[++*i] : NULL;
}

/* Options and positionals in any order; "--opt VALUE" or "--opt=VALUE";
 * everything after "--" is positional. */
static int args_parse(const struct cmd *c, int argc, char **argv, struct args *a)
{
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (!only_pos && !strcmp(s, "--")) {
			only_pos = true;
			continue;
		}
		if (only_pos || s[0] != '-' || !s[1]) {
			if (a->npos >= c->npos && !c->more)
				return usage_error(c, "unexpected argument", s);
			a->pos[a->npos++] = s;
			continue;
		}
		if (!strcmp(s, "--help") || !strcmp(s, "-h"))
			return usage(c);
		const char *eq = strchr(s, '=');
		char name[32];
		if (str_fmt(name, sizeof(name), "%.*s", eq ? (int)(eq - s) : (int)strlen(s), s) < 0)
			return usage_error(c, "unknown option", s);
		int k = opt_index(c, name);
		if (k < 0)
			return usage_error(c, "unknown option", s);
		if (a->opt[k])
			return usage_error(c, "option given twice:", name);
		a->opt[k] = opt_value(&c->opts[k], eq, argc, argv, &i);
		if (!a->opt[k])
			return usage_error(c, c->opts[k].arg ? "missing value for" : "no value allowed for",
					   name);
	}
	if (a->npos < c->npos)
		return usage_error(c, "missing", c->pos);
	for (int k = 0; k < CMD_MAX_OPTS && c->opts[k].name; k++)
		if (c->opts[k].required && !a->opt[k])
			return usage_error(c, "missing option", c->opts[k].name);
	return 0;
}

static const struct cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(NULL);
	const struct cmd *c = cmd_find(argv[1]);
	if (!c) {
		if (strcmp(argv[1], "help") && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
			fprintf(stderr, "cairn-pack: unknown command '%s'\n", argv[1]);
		return usage(NULL);
	}
	_cleanup_free_ const char **pos = calloc((size_t)argc, sizeof(*pos));
	if (!pos) {
		fprintf(stderr, "cairn-pack: out of memory\n");
		return EXIT_FAILED;
	}
	struct args a = {.pos = pos};
	int r = args_parse(c, argc - 2, argv + 2, &a);
	if (r)
		return r;
	struct err e = ERR_INIT;
	if (c->run(&a, &e) < 0) {
		fprintf(stderr, "cairn-pack: %s: %s\n", c->name, e.msg[0] ? e.msg : "failed");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}
