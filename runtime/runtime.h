/* runtime/runtime.h — containers and groups: per-container state machine,
 * status goals, restart policy, readiness, ordered group start/stop.
 *
 * The runtime knows nothing of revision documents (trails drives the runtime,
 * never the other way): it is given resolved specs. It uses storage/ for
 * mounts, volumes and logs and a plugins/ backend to run containers.
 * All work happens in the caller's event loop; nothing here blocks. */
#ifndef CAIRN_RUNTIME_H
#define CAIRN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/err.h"
#include "../lib/loop.h"
#include "../lib/util.h"
#include "../plugins/plugins.h"
#include "../storage/storage.h"

enum rt_goal { RT_GOAL_MOUNTED, RT_GOAL_STARTED, RT_GOAL_READY };
enum rt_restart { RT_RESTART_NO, RT_RESTART_ON_FAILURE, RT_RESTART_ALWAYS };
enum rt_persist { RT_PERSIST_PERMANENT, RT_PERSIST_REVISION, RT_PERSIST_BOOT };

enum ctr_state {
	CTR_STOPPED,  /* nothing mounted, nothing running */
	CTR_MOUNTED,  /* rootfs mounted, not started */
	CTR_STARTING, /* keeper spawned, init not seen yet */
	CTR_STARTED,  /* init runs */
	CTR_READY,    /* init runs and reported readiness */
	CTR_STOPPING, /* asked to stop, waiting for the keeper to exit */
	CTR_BACKOFF,  /* exited, waiting to be restarted */
	CTR_FAILED,   /* gave up (restart policy, or could not mount/start) */
	CTR_STATE_COUNT
};
const char *ctr_state_name(enum ctr_state s);

struct rt_volume {
	char name[NAME_MAX_LEN + 1];
	const char *path; /* inside the container */
	enum rt_persist persistence;
};

struct rt_kv {
	const char *key;
	const char *value;
};

/* A container as the runtime needs it. Strings are copied by runtime_load. */
struct rt_ctr_spec {
	char name[NAME_MAX_LEN + 1];
	unsigned group;     /* index into the group specs */
	const char *image;  /* absolute path of the verified squashfs object */
	char *const *argv;  /* NULL-terminated */
	enum rt_goal goal;
	enum rt_restart restart;
	const struct rt_volume *volumes;
	size_t nvolumes;
	const struct rt_kv *lxc;
	size_t nlxc;
	const char *ctrl_socket; /* host path of its control socket, or NULL */
};

struct rt_group_spec {
	char name[NAME_MAX_LEN + 1];
	unsigned timeout_s;
};

struct runtime_config {
	struct loop *loop;
	struct storage *storage;
	const struct plugin_ops *plugin;
	const char *statedir; /* tmpfs: mountpoints, uppers, boot volumes, plugin state */
	uint64_t log_max_bytes; /* per container log file before rotation */
	unsigned log_keep;      /* rotated segments kept */
	unsigned stop_grace_s;  /* SIGTERM -> SIGKILL */
	/* restart backoff: first delay, doubling, capped */
	unsigned backoff_first_ms, backoff_max_ms;
};

/* Called once when all groups reached their goals (ok) or when a group's
 * timeout expired / a container failed its goal (ok=false, reason says which
 * container and goal). Start-up continues with the next group either way:
 * what to do with a failed try is the caller's decision. */
typedef void (*runtime_started_cb)(void *data, bool ok, const char *reason);
typedef void (*runtime_stopped_cb)(void *data);

struct runtime;

int runtime_new(const struct runtime_config *cfg, struct runtime **out, struct err *e) _must_check_;
void runtime_free(struct runtime *rt);
/* Load the containers of revision `rev` (a decimal string used for revision
 * volumes and the log directory logs/<rev>/). Replaces nothing that runs. */
int runtime_load(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		 size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs,
		 struct err *e) _must_check_;
/* Start group by group. */
int runtime_start(struct runtime *rt, runtime_started_cb cb, void *data,
		  struct err *e) _must_check_;
/* Stop everything in reverse group order (grace, then SIGKILL), unmount
 * rootfs and boot volumes; cb when all are STOPPED. */
void runtime_stop_all(struct runtime *rt, runtime_stopped_cb cb, void *data);
/* The loop reaped `pid` with wait status `status`; true if it was one of
 * ours (a keeper), false for an orphan the caller just discards. */
bool runtime_child_exited(struct runtime *rt, pid_t pid, int status);
/* The container reported readiness through its control socket. */
int runtime_ready(struct runtime *rt, const char *name, struct err *e) _must_check_;

/* Read-only view for the control API. */
struct rt_ctr_status {
	const char *name;
	const char *group;
	enum ctr_state state;
	enum rt_goal goal;
	bool goal_met;
	pid_t pid; /* container init, 0 if not running */
	unsigned restarts;
	const char *reason; /* last failure, "" if none */
};
size_t runtime_count(const struct runtime *rt);
int runtime_find(const struct runtime *rt, const char *name); /* index or -1 */
void runtime_status(const struct runtime *rt, size_t i, struct rt_ctr_status *out);
/* "starting", "ready" (every goal met), "degraded" (a goal failed), "stopping", "stopped" */
const char *runtime_phase(const struct runtime *rt);

/* ---- live switch and per-container control (issues 4 and 5) ---- */

/* Make the running set equal to `ctrs` of revision `rev`, with the least
 * disruption: a container whose resolved spec is identical (same name, group
 * name, image, argv, goal, restart, volumes with their resolved host dirs —
 * so a `revision` volume always differs across revisions —, lxc keys and
 * control socket) keeps running with the same pid; a changed or removed one
 * is stopped (reverse group order, grace then SIGKILL, unmounted); then new
 * and changed containers start group by group, and `cb` reports the goals as
 * for runtime_start (kept containers count as having reached their goal).
 * Works whether or not anything runs (the first boot is an apply onto
 * nothing). A second apply while one is in progress is refused (-EBUSY).
 * On -errno nothing was changed. */
int runtime_apply(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		  size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, runtime_started_cb cb,
		  void *data, struct err *e) _must_check_;
/* Names of the containers the last runtime_apply stopped or started (for
 * tests and the switch report), as a comma separated list into buf. */
void runtime_apply_changes(const struct runtime *rt, char *buf, size_t cap);

/* Operator control of one container (control API). stop: stays stopped
 * (no restart) until start; restart: stop then start, keeping its goal.
 * -ENOENT unknown name. */
int runtime_ctr_stop(struct runtime *rt, const char *name, struct err *e) _must_check_;
int runtime_ctr_start(struct runtime *rt, const char *name, struct err *e) _must_check_;
int runtime_ctr_restart(struct runtime *rt, const char *name, struct err *e) _must_check_;

/* What the update engine watches during a try. */
enum rt_ctr_event {
	RT_CTR_GOAL_MET, /* reached its status goal */
	RT_CTR_EXITED,   /* its init exited unasked (restarts says how often so far);
			  * stops the runtime asked for are not reported */
	RT_CTR_FAILED,   /* gave up: restart policy, mount or start failure */
};
typedef void (*runtime_event_cb)(void *data, const char *name, enum rt_ctr_event ev,
				 unsigned restarts, const char *reason);
void runtime_set_event_cb(struct runtime *rt, runtime_event_cb cb, void *data);
/* Path of a container's current console log (logs/<rev>/<name>.log). */
int runtime_log_path(const struct runtime *rt, const char *name, char *buf, size_t cap,
		     struct err *e) _must_check_;

#endif
