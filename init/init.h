/* init/init.h — init's internal header: the command line options, the
 * orchestrator's entry point and exit codes, PID 1 and sandbox mode.
 * See init/README.md. */
#ifndef CAIRN_INIT_H
#define CAIRN_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/err.h"

#define CAIRN_DEFAULT_ADMIN_SOCKET "/run/cairn/ctrl.sock"
#define CAIRN_DEFAULT_CONFIG "/etc/cairn/cairn.conf"

/* The parsed command line (init/main.c). Every path is absolute once
 * main.c has validated it; nothing here is ever NULL except where noted. */
struct init_opts {
	bool sandbox;             /* --sandbox: PID 1 of fresh PID+mount+UTS namespaces */
	const char *storage;      /* --storage DIR: an existing directory (the device's storage) */
	const char *trust;        /* --trust DIR: an existing directory of trust roots */
	const char *admin_socket; /* --admin-socket PATH, default CAIRN_DEFAULT_ADMIN_SOCKET */
	const char *statedir;     /* --statedir DIR, default <storage>/run: runtime state; in
				     sandbox mode PID 1 mounts a fresh tmpfs there */
	const char *log_level;    /* --log-level err|warn|info|debug, default "info" */
	const char *bootloader;   /* --bootloader file|uboot:<fw_env.config>|grub:<grubenv>,
				     default "file" (trails/BOOT.md); checked when the engine opens it */
	const char *config;       /* --config FILE: the device's configuration file, absolute;
				     NULL when none (sandbox: only if given; real PID 1:
				     CAIRN_DEFAULT_CONFIG if it exists). Read by init/orch.c */
};

/* How the orchestrator's process ends, as seen by PID 1 (its exit status).
 * The orchestrator never exits on its own; it returns one of the first two
 * after an orderly shutdown (containers stopped, volumes unmounted, synced).
 * Every other end — ORCH_EXIT_FAILED, any other status, any signal — is an
 * unexpected death: PID 1 records it in <storage>/pid1-last-death.json,
 * syncs and reboots. The values stay clear of 0..2 and of 128+signal, so a
 * stray exit(1) or a shell's "killed" status is never mistaken for one. */
#define ORCH_EXIT_POWEROFF 100 /* orderly shutdown done: power off */
#define ORCH_EXIT_REBOOT 101   /* orderly shutdown done: reboot */
#define ORCH_EXIT_FAILED 102   /* start-up failed (logged): an unexpected death */

/* Exit status of `cairn --sandbox` (the namespace's PID 1 exits with it and
 * the outer process passes it on; tools/cairn-sandbox restarts cairn on
 * _REBOOT and _CRASHED). */
#define CAIRN_SANDBOX_EXIT_POWEROFF 0 /* orderly power-off */
#define CAIRN_SANDBOX_EXIT_REBOOT 10  /* orderly reboot */
#define CAIRN_SANDBOX_EXIT_CRASHED 11 /* orchestrator died; recorded, then "rebooted" */
#define CAIRN_EXIT_FAILED 1           /* cairn could not start (message on stderr) */
#define CAIRN_EXIT_USAGE 2            /* bad command line */

/* The orchestrator (init/orch.c): runs in PID 1's only direct child, with a
 * clean signal mask, default dispositions, its own session. Returns its
 * process's exit status: ORCH_EXIT_POWEROFF / _REBOOT / _FAILED. */
int orch_main(const struct init_opts *o);

/* Sandbox mode, in the invoking process: unshare PID, mount and UTS
 * namespaces, fork the namespace's PID 1 (which runs pid1_main), forward
 * SIGTERM/SIGINT/SIGHUP/SIGPWR to it and return the status to exit with. */
int sandbox_main(const struct init_opts *o);

/* PID 1 (a real one, or the namespace's in sandbox mode). Never returns: a
 * real PID 1 ends in reboot(2); a sandbox PID 1 exits with a
 * CAIRN_SANDBOX_EXIT_* status. */
void pid1_main(const struct init_opts *o) __attribute__((noreturn));

/* A real PID 1 that cannot even start (bad command line): the message is on
 * the console; sync, wait 10 s so it can be read, reboot. Never returns. */
void pid1_give_up(void) __attribute__((noreturn));

/* ---- real early boot (init/early*.c, README.md "Kernel command line") ---- */

#define EARLY_STORAGE_MOUNT "/storage"
#define EARLY_DEFAULT_TRUST "/etc/cairn/trust"
#define EARLY_DEFAULT_FW_ENV "/etc/fw_env.config"
#define EARLY_DEFAULT_MODULES "virtio_pci,virtio_blk,ext4,loop,squashfs,overlay"
#define EARLY_VALUE_MAX 256  /* bytes of a cairn.* value, NUL included */
#define EARLY_MAX_MODULES 32 /* names in cairn.modules= */
#define EARLY_MODNAME_MAX 56 /* the kernel's MODULE_NAME_LEN, NUL included */

/* The cairn.* keys of the kernel command line. Strings are "" when the key
 * was not given; numbers hold their default until a key sets them. */
struct early_cmdline {
	char storage[EARLY_VALUE_MAX];    /* "/dev/NAME" or "LABEL=L" */
	unsigned storage_wait_s;          /* default 10 */
	char fstype[16];                  /* default "ext4" */
	uint64_t rev;                     /* 0: not said */
	char bootloader[EARLY_VALUE_MAX]; /* file | uboot:/ABS | grub:/ABS */
	char trust[EARLY_VALUE_MAX];      /* absolute */
	int log_level;                    /* enum log_level, -1: not given */
	bool modules_given;               /* else EARLY_DEFAULT_MODULES on a cairn boot */
	size_t nmodules;
	char modules[EARLY_MAX_MODULES][EARLY_MODNAME_MAX];
	char watchdog[EARLY_VALUE_MAX];   /* absolute device path or "off" */
	unsigned watchdog_s;              /* default 30 */
	unsigned watchdog_grace_s;        /* default 300 */
	bool test_hang;                   /* TEST ONLY: stop the heartbeat after one */
	unsigned nunknown;                /* unknown cairn.* keys (ignored) ... */
	char unknown[EARLY_VALUE_MAX];    /* ... the first of them, for the log */
};

/* Defaults, then every cairn.* word of buf[0..len) (a /proc/cmdline):
 * blanks separate words, double quotes group and are dropped, a lone "--"
 * ends the kernel's part, the last of a key given twice wins. A known key
 * with a bad value fails, naming it (e->field = "cairn.KEY"). */
void early_cmdline_defaults(struct early_cmdline *c);
int early_cmdline_parse(const char *buf, size_t len, struct early_cmdline *c,
			struct err *e) _must_check_;

/* Kernel modules (init/early_modules.c). A load plan: module files
 * (relative to the modules directory) in the order to load them. */
#define EARLY_MAX_PLAN 256
struct mod_plan {
	size_t n;
	struct mod_step {
		char path[EARLY_VALUE_MAX]; /* e.g. "kernel/fs/ext4/ext4.ko" */
		char name[EARLY_MODNAME_MAX];
		bool optional; /* a softdep: failing to load it is only a warning */
	} step[EARLY_MAX_PLAN];
};
struct mod_index;
/* Read modules.dep (required), modules.softdep, modules.builtin (optional)
 * of the directory `dirfd` (/lib/modules/<release>). */
int mod_index_load(int dirfd, struct mod_index **out, struct err *e) _must_check_;
void mod_index_free(struct mod_index *x);
/* Append `name` ('-' and '_' are the same) after its softdep pre: modules and
 * its dependencies, each once across calls. 0 also for a built-in module
 * (nothing added). Refuses a dependency cycle, names a missing module or a
 * dependency missing from modules.dep. Nothing is added on failure. */
int mod_plan_add(struct mod_index *x, int dirfd, const char *name, struct mod_plan *plan,
		 struct err *e) _must_check_;
/* finit_module(2) one step (compressed files with MODULE_INIT_COMPRESSED_FILE);
 * already loaded (EEXIST) is success. */
int mod_load(int dirfd, const struct mod_step *st, struct err *e) _must_check_;

/* The label of an ext2/3/4 filesystem on fd (superblock at byte 1024):
 * 1 with the label (NUL-terminated, up to 16 bytes) in out, 0 if fd does not
 * hold one, or a negative errno. */
int early_ext4_label(int fd, char out[17], struct err *e) _must_check_;

/* Hardware watchdog and heartbeat (init/early_watchdog.c). */
struct wdog_clock {
	uint64_t opened_ns;    /* when PID 1 opened the device */
	uint64_t last_beat_ns; /* last heartbeat seen, 0 = none yet */
	uint64_t period_ns;    /* P: PID 1's tick and the heartbeat period */
	uint64_t grace_ns;     /* petting without any heartbeat, from opened_ns */
};
/* Pet now? A heartbeat within 2P, or none ever and still within the grace. */
bool wdog_should_pet(const struct wdog_clock *c, uint64_t now_ns);
/* PID 1: open `path`, set the timeout (what the driver reports is used),
 * ping once, create the heartbeat pipe. */
int wdog_open(const char *path, unsigned timeout_s, unsigned grace_s, bool test_hang,
	      struct err *e) _must_check_;
bool wdog_active(void);
/* PID 1's sigtimedwait timeout until the next tick; -1 without a watchdog. */
int wdog_wait_ms(void);
/* PID 1: drain the heartbeat pipe, pet if wdog_should_pet and the tick is due. */
void wdog_tick(void);
/* PID 1 at the end: pet one last time, then never again. */
void wdog_last_pet(void);
/* In the orchestrator's process, right after fork: drop PID 1's ends. */
void wdog_child(void);

struct loop;
/* The orchestrator calls this once, when its loop exists: a timer of that
 * loop writes one heartbeat byte to PID 1 every period, so PID 1 pets the
 * watchdog only while the orchestrator's loop runs. A no-op (0) without a
 * watchdog (sandbox, no device). */
int pid1_heartbeat_start(struct loop *l, struct err *e) _must_check_;

/* The real early boot, in order (init/early.c); main.c drives it. */
void early_prepare(void);  /* signals blocked, mounts, console, ctrl-alt-del */
int early_cmdline_read(struct early_cmdline *c, struct err *e) _must_check_;
/* True on the machine's own init (initial PID namespace): hardware steps allowed. */
bool early_is_machine_init(void);
void early_modules(const struct early_cmdline *c);
int early_storage(const struct early_cmdline *c, struct err *e) _must_check_;
/* Verify and mount the booted revision's bsp.modules / bsp.firmware
 * (init/early_storage.c); best effort, failures are logged. */
void early_bsp_mounts(uint64_t rev, const char *storage_dir, const char *trustdir);
/* After the options are final: statedir tmpfs, BSP mounts, watchdog. */
int early_finish(const struct early_cmdline *c, const struct init_opts *o,
		 struct err *e) _must_check_;

#endif
