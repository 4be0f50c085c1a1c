/* init/main.c — cairn's command line.
 *
 *   cairn [--sandbox] --storage DIR --trust DIR [--admin-socket PATH]
 *         [--statedir DIR] [--log-level LVL] [--bootloader SPEC]
 *   cairn --help | --version
 *
 * Exit status (when cairn exits at all): 2 usage, 1 could not start, else
 * the CAIRN_SANDBOX_EXIT_* status of a sandbox (init/init.h, README.md).
 * A real PID 1 (pid 1, no --sandbox) never exits: the kernel would panic; a
 * bad command line there is printed, then the machine reboots.
 * On a real PID 1 the options come from the kernel command line's cairn.*
 * keys (init/early_cmdline.c) unless given as flags (init arguments), and
 * the early boot (init/early*.c) runs before they are checked: the storage
 * directory only exists once its device is mounted. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "init.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.1.0-dev"
#endif

enum opt_id { OPT_SANDBOX, OPT_STORAGE, OPT_TRUST, OPT_ADMIN, OPT_STATEDIR, OPT_LOGLEVEL,
	      OPT_BOOTLOADER, OPT_CONFIG, OPT_HELP, OPT_VERSION, OPT_COUNT };

static const struct {
	const char *name;
	bool arg;
} opts[OPT_COUNT] = {
	[OPT_SANDBOX] = {"--sandbox", false},   [OPT_STORAGE] = {"--storage", true},
	[OPT_TRUST] = {"--trust", true},        [OPT_ADMIN] = {"--admin-socket", true},
	[OPT_STATEDIR] = {"--statedir", true},  [OPT_LOGLEVEL] = {"--log-level", true},
	[OPT_BOOTLOADER] = {"--bootloader", true}, [OPT_CONFIG] = {"--config", true},
	[OPT_HELP] = {"--help", false},         [OPT_VERSION] = {"--version", false},
};

/* Resolved paths live here for the life of the process. */
static struct {
	char storage[PATH_MAX];
	char trust[PATH_MAX];
	char statedir[PATH_MAX];
	char config[PATH_MAX];
} paths;

static void usage(FILE *f)
{
	fputs("usage: cairn [--sandbox] --storage DIR --trust DIR [--admin-socket PATH]\n"
	      "             [--statedir DIR] [--log-level err|warn|info|debug]\n"
	      "             [--bootloader file|uboot:CONFIG|grub:GRUBENV]\n"
	      "       cairn --help | --version\n"
	      "\n"
	      "  --sandbox            run as PID 1 of new PID, mount and UTS namespaces\n"
	      "                       (developer machine; exit 0 power-off, 10 reboot,\n"
	      "                       11 crashed: tools/cairn-sandbox restarts on 10/11)\n"
	      "  --storage DIR        the device's storage directory (must exist)\n"
	      "  --trust DIR          directory with the trust roots (must exist)\n"
	      "  --admin-socket PATH  admin control socket (default " CAIRN_DEFAULT_ADMIN_SOCKET ")\n"
	      "  --statedir DIR       runtime state (default STORAGE/run; a fresh tmpfs in\n"
	      "                       sandbox mode)\n"
	      "  --log-level LVL      err, warn, info (default) or debug\n"
	      "  --bootloader SPEC    where the boot state lives: file (STORAGE/boot.json,\n"
	      "                       default), uboot:FW_ENV_CONFIG or grub:GRUBENV\n"
	      "  --config FILE        the device's configuration file (default on a real\n"
	      "                       PID 1: " CAIRN_DEFAULT_CONFIG " if it exists)\n",
	      f);
}

static int bad(const char *fmt, ...) _printf_(1, 2);
static int bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("cairn: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(cairn --help for usage)\n", stderr);
	va_end(ap);
	return -1;
}

/* An existing directory, made absolute into out[PATH_MAX]. */
static int check_dir(const char *opt, const char *v, char *out)
{
	struct stat st;
	if (stat(v, &st) < 0)
		return bad("%s %s: %s", opt, v, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bad("%s %s: not a directory", opt, v);
	if (!realpath(v, out))
		return bad("%s %s: cannot resolve the path", opt, v);
	return 0;
}

static int check_admin_socket(const char *v)
{
	struct sockaddr_un sun;
	if (v[0] != '/')
		return bad("--admin-socket %s: must be an absolute path", v);
	if (strlen(v) >= sizeof(sun.sun_path))
		return bad("--admin-socket %s: longer than a unix socket path may be (%zu bytes)", v,
			   sizeof(sun.sun_path) - 1);
	if (v[strlen(v) - 1] == '/')
		return bad("--admin-socket %s: names a directory, not a socket", v);
	return 0;
}

/* The spec's shape only; the engine checks the rest when it opens it. */
static int check_bootloader(const char *v)
{
	if (strcmp(v, "file") == 0)
		return 0;
	const char *path = strncmp(v, "uboot:", 6) == 0 ? v + 6
			   : strncmp(v, "grub:", 5) == 0  ? v + 5
							  : NULL;
	if (!path)
		return bad("--bootloader %s: want file, uboot:CONFIG or grub:GRUBENV", v);
	if (path[0] != '/')
		return bad("--bootloader %s: the path must be absolute", v);
	return 0;
}

/* An existing regular file, made absolute into paths.config. */
static int check_config(const char *v)
{
	struct stat st;
	if (stat(v, &st) < 0)
		return bad("--config %s: %s", v, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return bad("--config %s: not a regular file", v);
	if (!realpath(v, paths.config))
		return bad("--config %s: cannot resolve the path", v);
	return 0;
}

static int check_statedir(const char *v)
{
	if (v[0] != '/')
		return bad("--statedir %s: must be an absolute path", v);
	if (strlen(v) >= sizeof(paths.statedir))
		return bad("--statedir %s: too long", v);
	memcpy(paths.statedir, v, strlen(v) + 1);
	return 0;
}

/* "--name" or "--name=value" exactly (no abbreviations, no short forms). */
static int opt_find(const char *arg, const char **inline_val)
{
	for (int i = 0; i < OPT_COUNT; i++) {
		size_t n = strlen(opts[i].name);
		if (strncmp(arg, opts[i].name, n) != 0 || (arg[n] && arg[n] != '='))
			continue;
		*inline_val = arg[n] == '=' ? arg + n + 1 : NULL;
		return i;
	}
	return -1;
}

/* Options into vals[] (each at most once); 1 for --help/--version done.
 * `kernel_words`: the kernel hands init every bare word of its command line
 * it does not know (`splash`, ...) as an argument; those are skipped, with a
 * warning. Options stay strict. */
static int parse_argv(int argc, char **argv, const char *vals[OPT_COUNT], bool kernel_words)
{
	for (int i = 1; i < argc; i++) {
		const char *v;
		int id = opt_find(argv[i], &v);
		if (id < 0 && kernel_words && argv[i][0] != '-') {
			fprintf(stderr, "cairn: argument '%s' ignored (a kernel command line word)\n",
				argv[i]);
			continue;
		}
		if (id < 0)
			return argv[i][0] == '-' ? bad("unknown option %s", argv[i])
						 : bad("unexpected argument '%s'", argv[i]);
		if (!opts[id].arg && v)
			return bad("%s takes no value", opts[id].name);
		if (opts[id].arg && !v && (v = argv[++i]) == NULL)
			return bad("%s needs a value", opts[id].name);
		if (id == OPT_HELP || id == OPT_VERSION) {
			if (id == OPT_HELP)
				usage(stdout);
			else
				puts("cairn " CAIRN_VERSION);
			return 1;
		}
		if (vals[id])
			return bad("%s given twice", opts[id].name);
		if (opts[id].arg && !*v)
			return bad("%s: empty value", opts[id].name);
		vals[id] = v ? v : "";
	}
	return 0;
}

static int check_opts(const char *vals[OPT_COUNT], struct init_opts *o)
{
	if (!vals[OPT_STORAGE])
		return bad("--storage DIR is required");
	if (!vals[OPT_TRUST])
		return bad("--trust DIR is required");
	int lvl = log_level_parse(vals[OPT_LOGLEVEL] ? vals[OPT_LOGLEVEL] : "info");
	if (lvl < 0)
		return bad("--log-level %s: want err, warn, info or debug", vals[OPT_LOGLEVEL]);
	if (check_dir("--storage", vals[OPT_STORAGE], paths.storage) < 0 ||
	    check_dir("--trust", vals[OPT_TRUST], paths.trust) < 0)
		return -1;
	const char *admin = vals[OPT_ADMIN] ? vals[OPT_ADMIN] : CAIRN_DEFAULT_ADMIN_SOCKET;
	if (check_admin_socket(admin) < 0)
		return -1;
	if (vals[OPT_STATEDIR] && check_statedir(vals[OPT_STATEDIR]) < 0)
		return -1;
	const char *boot = vals[OPT_BOOTLOADER] ? vals[OPT_BOOTLOADER] : "file";
	if (check_bootloader(boot) < 0)
		return -1;
	const char *config = NULL;
	if (vals[OPT_CONFIG] && check_config(vals[OPT_CONFIG]) < 0)
		return -1;
	if (vals[OPT_CONFIG])
		config = paths.config;
	else if (!vals[OPT_SANDBOX] && getpid() == 1 && access(CAIRN_DEFAULT_CONFIG, F_OK) == 0)
		config = CAIRN_DEFAULT_CONFIG;
	if (!vals[OPT_STATEDIR] &&
	    str_fmt(paths.statedir, sizeof(paths.statedir), "%s/run", paths.storage) < 0)
		return bad("--storage %s: too long", paths.storage);
	log_set_level((enum log_level)lvl);
	*o = (struct init_opts){
		.sandbox = vals[OPT_SANDBOX] != NULL,
		.storage = paths.storage,
		.trust = paths.trust,
		.admin_socket = admin,
		.statedir = paths.statedir,
		.log_level = vals[OPT_LOGLEVEL] ? vals[OPT_LOGLEVEL] : "info",
		.bootloader = boot,
		.config = config,
	};
	return 0;
}

static const char *const level_names[] = {"err", "warn", "info", "debug"};

/* A flag not given takes its cairn.* key, else the real PID 1's default. */
static void real_defaults(const char *vals[OPT_COUNT], const struct early_cmdline *kc, bool hw)
{
	if (!vals[OPT_STORAGE] && kc->storage[0] && hw)
		vals[OPT_STORAGE] = EARLY_STORAGE_MOUNT;
	if (!vals[OPT_TRUST])
		vals[OPT_TRUST] = kc->trust[0] ? kc->trust : EARLY_DEFAULT_TRUST;
	if (!vals[OPT_BOOTLOADER] && kc->bootloader[0])
		vals[OPT_BOOTLOADER] = kc->bootloader;
	else if (!vals[OPT_BOOTLOADER] && access(EARLY_DEFAULT_FW_ENV, F_OK) == 0)
		vals[OPT_BOOTLOADER] = "uboot:" EARLY_DEFAULT_FW_ENV;
	if (!vals[OPT_LOGLEVEL] && kc->log_level >= 0)
		vals[OPT_LOGLEVEL] = level_names[kc->log_level];
}

/* The real PID 1: early boot (README.md "Early steps"), the options
 * (flags > cairn.* keys > defaults), then what needs them. */
static int real_pid1_boot(const char *vals[OPT_COUNT], struct init_opts *o)
{
	static struct early_cmdline kc; /* big: keep it off PID 1's stack */
	struct err e = ERR_INIT;
	early_prepare();
	if (early_cmdline_read(&kc, &e) < 0)
		return bad("%s", e.msg);
	if (!vals[OPT_LOGLEVEL] && kc.log_level >= 0)
		log_set_level((enum log_level)kc.log_level);
	bool hw = early_is_machine_init();
	if (!hw && (kc.storage[0] || kc.modules_given || kc.watchdog[0]))
		fputs("cairn: not the machine's init (a PID namespace): modules, storage device and "
		      "watchdog skipped\n",
		      stderr);
	if (hw)
		early_modules(&kc);
	if (hw && kc.storage[0] && early_storage(&kc, &e) < 0)
		return bad("%s", e.msg);
	real_defaults(vals, &kc, hw);
	if (!vals[OPT_STORAGE])
		return bad("no storage: give cairn.storage=/dev/NAME or cairn.storage=LABEL=L on the "
			   "kernel command line (or --storage DIR as an init argument)");
	if (check_opts(vals, o) < 0)
		return -1;
	if (early_finish(&kc, o, &e) < 0)
		return bad("%s", e.msg);
	return 0;
}

int main(int argc, char **argv)
{
	const char *vals[OPT_COUNT] = {0};
	struct init_opts o;
	bool pid1 = getpid() == 1;
	int r = parse_argv(argc, argv, vals, pid1);
	bool real_pid1 = pid1 && !vals[OPT_SANDBOX];
	if (r == 0)
		r = real_pid1 ? real_pid1_boot(vals, &o) : check_opts(vals, &o);
	if (r != 0 && real_pid1)
		pid1_give_up();
	if (r != 0)
		return r > 0 ? 0 : CAIRN_EXIT_USAGE;
	if (o.sandbox) {
		/* Our children are born in the namespace whose init is gone by now:
		 * fork/clone fail (ENOMEM), so skip exit-time hooks that would
		 * (LeakSanitizer's tracer). Nothing of ours is buffered. */
		int status = sandbox_main(&o);
		fflush(NULL);
		_exit(status);
	}
	if (!real_pid1) {
		fprintf(stderr, "cairn: not PID 1 (pid %d): run it as init, or with --sandbox\n"
				"(cairn --help for usage)\n",
			(int)getpid());
		return CAIRN_EXIT_USAGE;
	}
	pid1_main(&o);
}
