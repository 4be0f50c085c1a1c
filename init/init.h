/* init/init.h — init's internal header: the command line options, the
 * orchestrator's entry point and exit codes, PID 1 and sandbox mode.
 * See init/README.md. */
#ifndef CAIRN_INIT_H
#define CAIRN_INIT_H

#include <stdbool.h>

#include "../lib/err.h"

#define CAIRN_DEFAULT_ADMIN_SOCKET "/run/cairn/ctrl.sock"

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

#endif
