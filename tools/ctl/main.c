/* tools/ctl/main.c — the cairnctl command line (see README.md).
 *
 *   cairnctl [--socket PATH] [--json] [--timeout S] COMMAND ARGS...
 *
 * Exit status: 0 done, 1 the device refused or the operation failed, 2 usage
 * error, 3 the device could not be reached (or gave no usable answer).
 *
 * Options may come anywhere on the line; each command lists the options it
 * takes beyond the global ones, and the argument checks and usage text come
 * from the one table below. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "ctl.h"

#define MAX_POS 3

enum opt_bit {
	OPT_FOLLOW = 1u << 0,
	OPT_RUN = 1u << 1,
	OPT_NO_WAIT = 1u << 2,
	OPT_WAIT_TIMEOUT = 1u << 3,
};

struct cmd {
	const char *name;
	const char *args; /* for the usage text */
	unsigned min_pos, max_pos;
	unsigned opts; /* OPT_* beyond the global options */
	const char *help;
	int (*run)(const struct ctl *c, char **pos);
};

static const struct cmd cmds[] = {
	{"status", "", 0, 0, 0, "the device: running revision, phase, containers ready", cmd_status},
	{"ps", "", 0, 0, 0, "the containers: NAME GROUP STATE GOAL MET PID RESTARTS REASON", cmd_ps},
	{"logs", "NAME [-f]", 1, 1, OPT_FOLLOW, "a container's output (-f: keep following)",
	 cmd_logs},
	{"revisions", "", 0, 0, 0, "installed revisions, their state and why any failed",
	 cmd_revisions},
	{"revision", "REV", 1, 1, 0, "one revision in detail", cmd_revision},
	{"progress", "", 0, 0, 0, "the update in progress", cmd_progress},
	{"install", "OUT [--run [--no-wait] [--wait-timeout S]]", 1, 1,
	 OPT_RUN | OPT_NO_WAIT | OPT_WAIT_TIMEOUT,
	 "send the revision in OUT (cairn-pack build output), only the objects the device "
	 "lacks; --run: then run it and wait for DONE",
	 cmd_install},
	{"run", "REV [--no-wait] [--wait-timeout S]", 1, 1, OPT_NO_WAIT | OPT_WAIT_TIMEOUT,
	 "switch to installed revision REV and wait until it is DONE or FAILED", cmd_run},
	{"meta", "ls | get KEY | set KEY VALUE | rm KEY", 1, 3, 0, "user metadata", cmd_meta},
	{"keys", "[install DIR]", 0, 2, 0,
	 "signing keys in effect, and the roots; install DIR: send DIR/keys.json + keys.sig",
	 cmd_keys},
	{"device-meta", "", 0, 0, 0, "what the device says about itself", cmd_device_meta},
	{"reboot", "", 0, 0, 0, "reboot the device (orderly)", cmd_reboot},
	{"poweroff", "", 0, 0, 0, "power the device off (orderly)", cmd_poweroff},
	{"gc", "", 0, 0, 0, "remove revisions and objects no longer needed", cmd_gc},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cairnctl [--socket PATH] [--json] [--timeout S] COMMAND ...\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %s %s\n      %s\n", cmds[i].name, cmds[i].args, cmds[i].help);
	fprintf(f, "\n  --socket PATH   the control socket (default $CAIRN_SOCKET, else %s)\n"
		   "  --json          print the API's JSON instead of tables\n"
		   "  --timeout S     give up on a silent device after S seconds (default 30, "
		   "0: never)\n"
		   "exit status: 0 done, 1 refused or failed, 2 usage error, 3 device not "
		   "reachable\n",
		CTL_DEFAULT_SOCKET);
}

static int usage_error(const char *fmt, ...) _printf_(1, 2);

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("cairnctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (cairnctl --help lists the commands)\n", stderr);
	return CTL_USAGE;
}

static const struct cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* Seconds: 0 .. 86400, decimal digits only. */
static bool parse_seconds(const char *s, int *out)
{
	long v = 0;
	if (!*s || strlen(s) > 5)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v > 86400)
		return false;
	*out = (int)v;
	return true;
}

/* ---------------- the command line ---------------- */

enum opt_id { O_SOCKET, O_JSON, O_TIMEOUT, O_FOLLOW, O_RUN, O_NO_WAIT, O_WAIT_TIMEOUT, O_HELP };

struct optdef {
	const char *name, *alias;
	bool value;
	unsigned bit; /* OPT_*, 0 for a global option */
};

static const struct optdef optdefs[] = {
	[O_SOCKET] = {"--socket", NULL, true, 0},
	[O_JSON] = {"--json", NULL, false, 0},
	[O_TIMEOUT] = {"--timeout", NULL, true, 0},
	[O_FOLLOW] = {"--follow", "-f", false, OPT_FOLLOW},
	[O_RUN] = {"--run", NULL, false, OPT_RUN},
	[O_NO_WAIT] = {"--no-wait", NULL, false, OPT_NO_WAIT},
	[O_WAIT_TIMEOUT] = {"--wait-timeout", NULL, true, OPT_WAIT_TIMEOUT},
	[O_HELP] = {"--help", "-h", false, 0},
};

struct line {
	const char *word; /* the command */
	char *pos[MAX_POS + 1];
	unsigned npos;
	unsigned given; /* OPT_* bits seen */
	bool help;
};

static int apply(struct ctl *c, struct line *l, enum opt_id id, const char *v)
{
	l->given |= optdefs[id].bit;
	switch (id) {
	case O_SOCKET:
		if (!*v)
			return usage_error("--socket needs a path");
		c->socket_path = v;
		break;
	case O_JSON:
		c->json = true;
		break;
	case O_TIMEOUT:
		if (!parse_seconds(v, &c->timeout_ms))
			return usage_error("--timeout %s: use 0 to 86400 seconds", v);
		c->timeout_ms = c->timeout_ms ? c->timeout_ms * 1000 : -1;
		break;
	case O_WAIT_TIMEOUT:
		if (!parse_seconds(v, &c->wait_timeout_s))
			return usage_error("--wait-timeout %s: use 0 to 86400 seconds", v);
		break;
	case O_FOLLOW:
		c->follow = true;
		break;
	case O_RUN:
		c->run = true;
		break;
	case O_NO_WAIT:
		c->no_wait = true;
		break;
	case O_HELP:
		l->help = true;
		break;
	}
	return CTL_OK;
}

/* argv[*i] is an option: find it, take its value, apply it. */
static int option(struct ctl *c, struct line *l, int argc, char **argv, int *i)
{
	const char *s = argv[*i], *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : strlen(s);
	for (size_t k = 0; k < ARRAY_SIZE(optdefs); k++) {
		const struct optdef *o = &optdefs[k];
		bool named = (strlen(o->name) == n && !strncmp(o->name, s, n)) ||
			     (o->alias && strlen(o->alias) == n && !strncmp(o->alias, s, n));
		if (!named)
			continue;
		if (!o->value && eq)
			return usage_error("%s takes no value", o->name);
		const char *v = eq ? eq + 1 : "";
		if (o->value && !eq) {
			if (*i + 1 >= argc)
				return usage_error("%s needs a value", o->name);
			v = argv[++*i];
		}
		return apply(c, l, (enum opt_id)k, v);
	}
	return usage_error("unknown option %s", s);
}

static int parse_line(struct ctl *c, struct line *l, int argc, char **argv)
{
	bool only_pos = false;
	for (int i = 1; i < argc; i++) {
		char *s = argv[i];
		int code = CTL_OK;
		if (!only_pos && !strcmp(s, "--"))
			only_pos = true;
		else if (!only_pos && s[0] == '-' && s[1])
			code = option(c, l, argc, argv, &i);
		else if (!l->word)
			l->word = s;
		else if (l->npos < MAX_POS)
			l->pos[l->npos++] = s;
		else
			code = usage_error("unexpected argument %s", s);
		if (code != CTL_OK)
			return code;
	}
	return CTL_OK;
}

/* The command's argument count and options. */
static int check_line(const struct cmd *cmd, const struct line *l)
{
	if (l->given & ~cmd->opts) {
		for (size_t k = 0; k < ARRAY_SIZE(optdefs); k++)
			if (optdefs[k].bit & l->given & ~cmd->opts)
				fprintf(stderr, "cairnctl: %s: %s does not apply here\n", cmd->name,
					optdefs[k].name);
		return usage_error("usage: cairnctl %s", cmd->name);
	}
	if (l->npos < cmd->min_pos || l->npos > cmd->max_pos) {
		fprintf(stderr, "cairnctl: usage: cairnctl %s%s%s\n", cmd->name,
			cmd->args[0] ? " " : "", cmd->args);
		return CTL_USAGE;
	}
	return CTL_OK;
}

int main(int argc, char **argv)
{
	struct ctl c = {.timeout_ms = 30000, .wait_timeout_s = 600};
	struct line l = {0};
	const char *env = getenv("CAIRN_SOCKET");
	c.socket_path = env && *env ? env : CTL_DEFAULT_SOCKET;
	signal(SIGPIPE, SIG_IGN); /* a closed stdout or socket is an EPIPE error */
	int code = parse_line(&c, &l, argc, argv);
	if (code != CTL_OK)
		return code;
	if (l.help) {
		usage(stdout);
		return CTL_OK;
	}
	if (!l.word) {
		usage(stderr);
		return CTL_USAGE;
	}
	const struct cmd *cmd = cmd_find(l.word);
	if (!cmd)
		return usage_error("unknown command %s", l.word);
	if ((code = check_line(cmd, &l)) != CTL_OK)
		return code;
	c.progress_tty = isatty(STDERR_FILENO) && !c.json;
	code = cmd->run(&c, l.pos);
	if (fflush(stdout) != 0 && code == CTL_OK)
		code = ctl_fail(CTL_FAILED, "write to stdout failed");
	return code;
}
