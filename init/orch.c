/* init/orch.c — the orchestrator: one thread, one epoll loop.
 *
 * PID 1 forks it and only watches it. It is a child subreaper, so every
 * orphan of its containers (liblxc's helpers, a container's grandchildren
 * whose parent died) comes back to it and is reaped here.
 *
 * Boot: open the storage, load the trust roots and the signing keys they
 * vouch for (<storage>/keys, trails/REVISION.md), start the runtime, the
 * update engine (trails) and the control API, then let the engine boot:
 * it settles the boot state (an interrupted try is marked FAILED), loads
 * the revision to run (signature, schema, every object re-hashed: one that
 * fails is never started; the reason is kept in
 * <storage>/last-boot-error.json) and starts it group by group.
 * The engine reaches the control API and the shutdown path only through the
 * hooks below (trails never calls ctrl).
 * Fleet hub: the configuration file (--config, init/config.c) and, on a
 * real PID 1, cairn.hub.* words of /proc/cmdline say which hub to follow;
 * the hub client (trails/hub*.c) then polls it from this loop, its network
 * work in unprivileged helper processes that are reaped here like any
 * child. A configuration that is refused turns the hub client off (logged,
 * and the poll-hub command says why); the device runs on regardless.
 * Signals (signalfd): SIGCHLD reaps; SIGTERM and SIGPWR stop everything in
 * reverse group order and power off; SIGINT (ctrl-alt-del) does the same and
 * reboots — in sandbox mode SIGINT is a developer's Ctrl-C and powers off;
 * SIGHUP is logged and ignored (no configuration to reload yet). */
#define LOG_MODULE "orch"
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../ctrl/ctrl.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/loop.h"
#include "../plugins/plugins.h"
#include "../runtime/runtime.h"
#include "../storage/storage.h"
#include "../trails/trails.h"
#include "config.h"
#include "init.h"

#define ORCH_RESERVE_BYTES (8ull << 20) /* free space the update engine always keeps */
#define ORCH_CRASH_LOOP_MAX 3          /* exits of one container during a try = failure */
/* Containers with a control socket: two revisions' worth during a switch. */
#define ORCH_MAX_SOCKETS (2 * REV_MAX_CONTAINERS)

#define ORCH_NOFILE 4096

struct orch {
	const struct init_opts *o;
	struct loop *loop;
	struct storage *storage;
	struct trust *trust;
	struct runtime *rt;
	struct trails *tr;
	struct ctrl *ctrl;
	struct cairn_config cfg;
	struct trails_hub *hub; /* NULL: no hub followed; hub_off says why */
	char hub_off[ERR_MSG_MAX];
	int exit_code;
	bool stopping;
	/* names whose control socket exists: kept across a switch, so a kept
	 * container keeps the socket inode bind-mounted inside it */
	char sockets[ORCH_MAX_SOCKETS][NAME_MAX_LEN + 1];
	size_t nsockets;
};

static void orch_reap(struct orch *m)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return; /* 0: none left to reap now; -1 ECHILD: no children */
		if (trails_hub_child_exited(m->hub, pid, status))
			continue;
		if (!m->rt || !runtime_child_exited(m->rt, pid, status))
			log_debug("reaped orphan %d", (int)pid);
	}
}

static void orch_stopped(void *data)
{
	struct orch *m = data;
	log_info("all containers stopped");
	loop_quit(m->loop, m->exit_code);
}

static void orch_shutdown(struct orch *m, int exit_code, const char *why)
{
	if (m->stopping) {
		log_info("%s: already shutting down", why);
		return;
	}
	m->stopping = true;
	m->exit_code = exit_code;
	log_info("%s: stopping containers", why);
	if (m->rt)
		runtime_stop_all(m->rt, orch_stopped, m);
	else
		loop_quit(m->loop, exit_code);
}

static void orch_signal(const struct signalfd_siginfo *si, void *data)
{
	struct orch *m = data;
	switch (si->ssi_signo) {
	case SIGCHLD:
		orch_reap(m);
		break;
	case SIGTERM:
	case SIGPWR:
		orch_shutdown(m, ORCH_EXIT_POWEROFF, si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGPWR");
		break;
	case SIGINT: /* ctrl-alt-del on a device; Ctrl-C at the sandbox's terminal */
		orch_shutdown(m, m->o->sandbox ? ORCH_EXIT_POWEROFF : ORCH_EXIT_REBOOT, "SIGINT");
		break;
	default:
		log_info("signal %u ignored", si->ssi_signo);
	}
}

/* ---- hooks: what the engine and the control API may ask of us ---- */

static void orch_hook_reboot(void *data, const char *why)
{
	orch_shutdown(data, ORCH_EXIT_REBOOT, why);
}

static void orch_hook_poweroff(void *data, const char *why)
{
	orch_shutdown(data, ORCH_EXIT_POWEROFF, why);
}

static int orch_hook_poll_hub(void *data, struct err *e)
{
	struct orch *m = data;
	if (!m->hub)
		return err_set(e, ENODEV, "no hub configured: %s", m->hub_off);
	return trails_hub_poll_now(m->hub, e);
}

static void orch_hook_running(void *data, uint64_t rev)
{
	struct orch *m = data;
	ctrl_set_revision(m->ctrl, rev);
}

static int orch_socket_find(const struct orch *m, const char *name)
{
	for (size_t i = 0; i < m->nsockets; i++)
		if (strcmp(m->sockets[i], name) == 0)
			return (int)i;
	return -1;
}

/* Create (or keep) <statedir>/sock/<name>.sock with its roles. */
static int orch_hook_ctr_socket(void *data, const char *name, unsigned roles, char *path,
				size_t cap, struct err *e)
{
	struct orch *m = data;
	if (!name_valid(name))
		return err_set(e, EINVAL, "container name '%s' is not valid", name);
	if (str_fmt(path, cap, "%s/sock/%s.sock", m->o->statedir, name) < 0)
		return err_set(e, ENAMETOOLONG, "container %s: socket path too long", name);
	if (orch_socket_find(m, name) < 0) {
		if (m->nsockets == ORCH_MAX_SOCKETS)
			return err_set(e, EMFILE, "container %s: too many control sockets", name);
		int r = ctrl_container_add(m->ctrl, name, path, e);
		if (r < 0)
			return r;
		memcpy(m->sockets[m->nsockets++], name, strlen(name) + 1);
	}
	ctrl_container_set_roles(m->ctrl, name, roles & TRAILS_ROLE_MGMT ? CTRL_ROLE_MGMT : 0);
	return 0;
}

static void orch_hook_ctr_socket_drop(void *data, const char *name)
{
	struct orch *m = data;
	int i = orch_socket_find(m, name);
	if (i < 0)
		return;
	ctrl_container_remove(m->ctrl, name);
	memmove(m->sockets[i], m->sockets[i + 1], (m->nsockets - (size_t)i - 1) * sizeof(m->sockets[0]));
	m->nsockets--;
}

static int orch_engine(struct orch *m, struct err *e)
{
	struct trails_config tc = {
		.loop = m->loop,
		.storage = m->storage,
		.trust = m->trust,
		.rt = m->rt,
		.statedir = m->o->statedir,
		.bootloader = m->o->bootloader,
		.reserve_bytes = ORCH_RESERVE_BYTES,
		.crash_loop_max = ORCH_CRASH_LOOP_MAX,
		.hooks = {.data = m,
			  .reboot = orch_hook_reboot,
			  .running = orch_hook_running,
			  .ctr_socket = orch_hook_ctr_socket,
			  .ctr_socket_drop = orch_hook_ctr_socket_drop},
	};
	int r = trails_new(&tc, &m->tr, e);
	if (r < 0)
		return err_prefix(e, "update engine");
	return 0;
}

static int orch_runtime(struct orch *m, struct err *e)
{
	char sockdir[4096];
	if (str_fmt(sockdir, sizeof(sockdir), "%s/sock", m->o->statedir) < 0)
		return err_set(e, ENAMETOOLONG, "statedir too long");
	int r = storage_mkdir_p(sockdir, 0755, e);
	if (r < 0)
		return r;
	struct runtime_config rc = {
		.loop = m->loop,
		.storage = m->storage,
		.plugin = &plugin_lxc,
		.statedir = m->o->statedir,
		.log_max_bytes = 1u << 20,
		.log_keep = 3,
		.stop_grace_s = 5,
		.backoff_first_ms = 500,
		.backoff_max_ms = 30000,
	};
	return runtime_new(&rc, &m->rt, e);
}

/* Everything the loop needs before any container may start: the runtime,
 * the update engine (its hooks reach the control API, made right after),
 * the control API (which is given the engine). */
static int orch_setup(struct orch *m, struct err *e)
{
	int r;
	if ((r = loop_new(&m->loop, e)) < 0)
		return r;
	/* a log reader (a pipe on stderr) that goes away must not kill us */
	signal(SIGPIPE, SIG_IGN);
	/* PID 1 pets the hardware watchdog only while this loop runs */
	if ((r = pid1_heartbeat_start(m->loop, e)) < 0)
		return err_prefix(e, "watchdog heartbeat");
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGHUP};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	if ((r = loop_signals(m->loop, &set, orch_signal, m, e)) < 0)
		return r;
	if ((r = storage_open(m->o->storage, &m->storage, e)) < 0)
		return err_prefix(e, "storage %s", m->o->storage);
	if ((r = trust_load(m->o->trust, &m->trust, e)) < 0)
		return err_prefix(e, "trust %s", m->o->trust);
	struct err ke = ERR_INIT; /* unreadable keys/: the roots alone still boot it */
	if (keys_load(m->storage, m->trust, &ke) < 0)
		log_err("signing keys: %s (only the roots sign revisions)", ke.msg);
	if ((r = orch_runtime(m, e)) < 0 || (r = orch_engine(m, e)) < 0)
		return r;
	struct ctrl_config cc = {
		.loop = m->loop,
		.rt = m->rt,
		.tr = m->tr,
		.storage = m->storage,
		.hooks = {.data = m,
			  .reboot = orch_hook_reboot,
			  .poweroff = orch_hook_poweroff,
			  .poll_hub = orch_hook_poll_hub},
		.admin_path = m->o->admin_socket,
		.max_conns = 0, /* ctrl's defaults: 512 admin, 16 per container */
		.conn_timeout_s = 10,
	};
	return ctrl_new(&cc, &m->ctrl, e);
}

/* The hub to follow, if any. On a real PID 1 the kernel command line
 * overrides the file; a sandbox reads a stand-in only when CAIRN_CMDLINE
 * names one (tests). Never fatal: without a hub the device runs what it has. */
static void orch_hub(struct orch *m)
{
	struct err e = ERR_INIT;
	const char *cmdline = m->o->sandbox ? getenv("CAIRN_CMDLINE") : "/proc/cmdline";
	int r = config_load(&m->cfg, m->o->config, cmdline, &e);
	if (r == 0 && !m->cfg.hub.url[0])
		r = err_set(&e, ENODEV, "hub.url is not set (%s)",
			    m->o->config ? m->o->config : "no configuration file");
	if (r == 0) {
		struct trails_hub_config hc = {
			.url = m->cfg.hub.url,
			.device_id = m->cfg.hub.device_id,
			.poll_s = m->cfg.hub.poll_s,
			.ca = m->cfg.hub.ca,
			.cert = m->cfg.hub.cert,
			.key = m->cfg.hub.key,
			.token_file = m->cfg.hub.token_file,
			.pin = m->cfg.hub.pin,
		};
		r = trails_hub_new(&hc, m->loop, m->storage, m->tr, &m->hub, &e);
	}
	if (r == 0)
		return;
	memcpy(m->hub_off, e.msg, sizeof(m->hub_off));
	if (r == -ENODEV)
		log_info("fleet hub: none: %s", e.msg);
	else
		log_err("fleet hub: off: %s", e.msg);
}

/* The engine boots: on failure the reason is logged and kept, and we stay
 * up (the control API still answers, a revision can still be sideloaded). */
static void orch_boot(struct orch *m)
{
	struct err e = ERR_INIT;
	if (trails_boot(m->tr, &e) < 0)
		log_err("boot: %s", e.msg);
}

static void orch_teardown(struct orch *m)
{
	trails_hub_free(m->hub);
	ctrl_free(m->ctrl);
	trails_free(m->tr);
	runtime_free(m->rt);
	trust_free(m->trust);
	storage_close(m->storage);
	loop_free(m->loop);
}

/* 512 admin connections plus 16 per container socket for up to 64
 * containers, plus logs, mounts and liblxc: more than the default 1024. */
static void orch_raise_nofile(void)
{
	struct rlimit rl = {.rlim_cur = ORCH_NOFILE, .rlim_max = ORCH_NOFILE};
	struct rlimit cur;
	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max > ORCH_NOFILE)
		rl.rlim_max = cur.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("RLIMIT_NOFILE %d: %s", ORCH_NOFILE, strerror(errno));
}

int orch_main(const struct init_opts *o)
{
	struct orch m = {.o = o, .exit_code = ORCH_EXIT_POWEROFF};
	struct err e = ERR_INIT;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	orch_raise_nofile();
	if (orch_setup(&m, &e) < 0) {
		log_err("start-up: %s", e.msg);
		orch_teardown(&m);
		return ORCH_EXIT_FAILED;
	}
	orch_hub(&m);
	orch_boot(&m);
	malloc_trim(0); /* start-up's transient buffers back to the kernel */
	int code = loop_run(m.loop);
	orch_teardown(&m);
	sync();
	return code;
}
