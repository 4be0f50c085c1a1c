/* init/orch.c — the orchestrator: one thread, one epoll loop.
 *
 * PID 1 forks it and only watches it. It is a child subreaper, so every
 * orphan of its containers (liblxc's helpers, a container's grandchildren
 * whose parent died) comes back to it and is reaped here.
 *
 * Boot: open the storage, read the boot state, load the committed revision
 * (signature, schema, every object re-hashed: a revision that fails is never
 * started; the reason is logged and kept in <storage>/last-boot-error.json),
 * open the control sockets, then start the containers group by group.
 * Signals (signalfd): SIGCHLD reaps; SIGTERM and SIGPWR stop everything in
 * reverse group order and power off; SIGINT (ctrl-alt-del) does the same and
 * reboots — in sandbox mode SIGINT is a developer's Ctrl-C and powers off;
 * SIGHUP is logged and ignored (no configuration to reload yet). */
#define LOG_MODULE "orch"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../ctrl/ctrl.h"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/loop.h"
#include "../plugins/plugins.h"
#include "../runtime/runtime.h"
#include "../storage/storage.h"
#include "../trails/trails.h"
#include "init.h"

struct orch {
	const struct init_opts *o;
	struct loop *loop;
	struct storage *storage;
	struct trust *trust;
	struct revision *rev;
	struct runtime *rt;
	struct ctrl *ctrl;
	int exit_code;
	bool stopping;
};

static void orch_reap(struct orch *m)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return; /* 0: none left to reap now; -1 ECHILD: no children */
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

static void orch_started(void *data, bool ok, const char *reason)
{
	struct orch *m = data;
	(void)m;
	if (ok)
		log_info("all status goals reached");
	else
		log_warn("status goals not reached: %s", reason);
}

/* Keep why the committed revision could not run, for a person or a later
 * boot to read. Best effort: the error is logged either way. */
static void orch_keep_boot_error(struct orch *m, uint64_t rev, const struct err *why)
{
	struct jw w;
	jw_init_dyn(&w, true);
	jw_obj_open(&w);
	jw_kv_uint(&w, "revision", rev);
	jw_kv_str(&w, "error", why->msg);
	jw_kv_str(&w, "field", why->field);
	jw_obj_close(&w);
	struct err e = ERR_INIT;
	if (jw_finish(&w, &e) < 0 ||
	    storage_write_durable(storage_root_fd(m->storage), "last-boot-error.json", w.buf, w.len,
				  0644, &e) < 0)
		log_err("keeping the boot error: %s", e.msg);
	jw_free(&w);
}

/* The runtime's view of a revision: resolved paths, mapped enums. Built for
 * runtime_load(), which copies what it keeps; freed right after. */
struct orch_specs {
	struct rt_group_spec groups[REV_MAX_GROUPS];
	struct rt_ctr_spec ctrs[REV_MAX_CONTAINERS];
	char images[REV_MAX_CONTAINERS][4096];
	char sockets[REV_MAX_CONTAINERS][4096];
	char **argv[REV_MAX_CONTAINERS];
	struct rt_volume *vols[REV_MAX_CONTAINERS];
	struct rt_kv *kvs[REV_MAX_CONTAINERS];
};

static void orch_specs_free(struct orch_specs *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < REV_MAX_CONTAINERS; i++) {
		free(sp->argv[i]);
		free(sp->vols[i]);
		free(sp->kvs[i]);
	}
	free(sp);
}
DEFINE_FREEP(struct orch_specs, orch_specs_free)

static const enum rt_goal goal_map[] = {
	[GOAL_MOUNTED] = RT_GOAL_MOUNTED, [GOAL_STARTED] = RT_GOAL_STARTED, [GOAL_READY] = RT_GOAL_READY};
static const enum rt_restart restart_map[] = {[RESTART_NO] = RT_RESTART_NO,
					      [RESTART_ON_FAILURE] = RT_RESTART_ON_FAILURE,
					      [RESTART_ALWAYS] = RT_RESTART_ALWAYS};
static const enum rt_persist persist_map[] = {[PERSIST_PERMANENT] = RT_PERSIST_PERMANENT,
					      [PERSIST_REVISION] = RT_PERSIST_REVISION,
					      [PERSIST_BOOT] = RT_PERSIST_BOOT};

static int orch_spec_ctr(struct orch *m, struct orch_specs *sp, size_t i, struct err *e)
{
	const struct rev_container *c = &m->rev->containers[i];
	struct rt_ctr_spec *s = &sp->ctrs[i];
	memcpy(s->name, c->name, sizeof(s->name));
	s->group = c->group;
	s->goal = goal_map[c->goal];
	s->restart = restart_map[c->restart];
	if (storage_object_path(m->storage, &c->rootfs.digest, sp->images[i], sizeof(sp->images[i])) < 0 ||
	    str_fmt(sp->sockets[i], sizeof(sp->sockets[i]), "%s/sock/%s.sock", m->o->statedir, c->name) < 0)
		return err_set(e, ENAMETOOLONG, "container %s: path too long", c->name);
	s->image = sp->images[i];
	s->ctrl_socket = sp->sockets[i];
	sp->argv[i] = calloc(c->nexec + 1, sizeof(char *));
	sp->vols[i] = calloc(c->nvolumes + 1, sizeof(struct rt_volume));
	sp->kvs[i] = calloc(c->nlxc + 1, sizeof(struct rt_kv));
	if (!sp->argv[i] || !sp->vols[i] || !sp->kvs[i])
		return err_set(e, ENOMEM, "container %s: out of memory", c->name);
	for (size_t k = 0; k < c->nexec; k++)
		sp->argv[i][k] = c->exec[k];
	for (size_t k = 0; k < c->nvolumes; k++) {
		memcpy(sp->vols[i][k].name, c->volumes[k].name, sizeof(sp->vols[i][k].name));
		sp->vols[i][k].path = c->volumes[k].path;
		sp->vols[i][k].persistence = persist_map[c->volumes[k].persistence];
	}
	for (size_t k = 0; k < c->nlxc; k++) {
		sp->kvs[i][k].key = c->lxc[k].key;
		sp->kvs[i][k].value = c->lxc[k].value;
	}
	s->argv = sp->argv[i];
	s->volumes = sp->vols[i];
	s->nvolumes = c->nvolumes;
	s->lxc = sp->kvs[i];
	s->nlxc = c->nlxc;
	return 0;
}

static int orch_load_runtime(struct orch *m, struct err *e)
{
	_cleanup_(orch_specs_freep) struct orch_specs *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return err_set(e, ENOMEM, "out of memory");
	for (size_t g = 0; g < m->rev->ngroups; g++) {
		memcpy(sp->groups[g].name, m->rev->groups[g].name, sizeof(sp->groups[g].name));
		sp->groups[g].timeout_s = m->rev->groups[g].timeout_s;
	}
	int r;
	for (size_t i = 0; i < m->rev->ncontainers; i++) {
		if ((r = orch_spec_ctr(m, sp, i, e)) < 0)
			return r;
		r = ctrl_container_add(m->ctrl, sp->ctrs[i].name, sp->sockets[i], e);
		if (r < 0)
			return err_prefix(e, "container %s", sp->ctrs[i].name);
	}
	char rev[24];
	if (str_fmt(rev, sizeof(rev), "%llu", (unsigned long long)m->rev->number) < 0)
		return err_set(e, EINVAL, "revision number");
	return runtime_load(m->rt, rev, sp->groups, m->rev->ngroups, sp->ctrs, m->rev->ncontainers, e);
}

/* Everything the loop needs before any container may start. */
static int orch_setup(struct orch *m, struct err *e)
{
	int r;
	if ((r = loop_new(&m->loop, e)) < 0)
		return r;
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
	char sockdir[4096];
	if (str_fmt(sockdir, sizeof(sockdir), "%s/sock", m->o->statedir) < 0)
		return err_set(e, ENAMETOOLONG, "statedir too long");
	if ((r = storage_mkdir_p(sockdir, 0755, e)) < 0)
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
	if ((r = runtime_new(&rc, &m->rt, e)) < 0)
		return r;
	struct ctrl_config cc = {
		.loop = m->loop,
		.rt = m->rt,
		.admin_path = m->o->admin_socket,
		.max_conns = 64,
		.conn_timeout_s = 10,
	};
	return ctrl_new(&cc, &m->ctrl, e);
}

/* Load and start the committed revision; on failure keep the reason and
 * stay up (the control API still answers) with nothing started. */
static void orch_boot(struct orch *m)
{
	struct err e = ERR_INIT;
	struct boot_state bs;
	int r = trails_boot_read(m->storage, &bs, &e);
	if (r >= 0 && bs.committed == 0)
		r = err_set(&e, ENOENT, "no committed revision (provision with cairn-pack install)");
	if (r >= 0)
		r = trails_load(m->storage, bs.committed, m->trust, &m->rev, &e);
	if (r >= 0) {
		ctrl_set_revision(m->ctrl, m->rev->number);
		r = orch_load_runtime(m, &e);
	}
	if (r >= 0)
		r = runtime_start(m->rt, orch_started, m, &e);
	if (r < 0) {
		log_err("boot: %s", e.msg);
		orch_keep_boot_error(m, bs.committed, &e);
		return;
	}
	log_info("revision %llu: starting %zu containers", (unsigned long long)m->rev->number,
		 m->rev->ncontainers);
}

static void orch_teardown(struct orch *m)
{
	ctrl_free(m->ctrl);
	runtime_free(m->rt);
	revision_free(m->rev);
	trust_free(m->trust);
	storage_close(m->storage);
	loop_free(m->loop);
}

int orch_main(const struct init_opts *o)
{
	struct orch m = {.o = o, .exit_code = ORCH_EXIT_POWEROFF};
	struct err e = ERR_INIT;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	if (orch_setup(&m, &e) < 0) {
		log_err("start-up: %s", e.msg);
		orch_teardown(&m);
		return ORCH_EXIT_FAILED;
	}
	orch_boot(&m);
	int code = loop_run(m.loop);
	orch_teardown(&m);
	sync();
	return code;
}
