/* runtime/runtime_internal.h — shared between the runtime's .c files only.
 *
 *   runtime.c   public API: new/free, start, stop, ready, reaping, status
 *   load.c      validation and copies of the specs into a set; runtime_load
 *   apply.c     runtime_apply: the diff, the stop-then-start switch, the swap
 *   control.c   operator stop/start/restart, container events, log paths
 *   group.c     group sequencing: start in order, timeouts, stop in reverse
 *   ctr.c       the per-container state x event table and its actions
 *   ctr_io.c    what a container needs on the host: mounts, volumes, console log
 *
 * See runtime/README.md for the state table and the decisions. */
#ifndef CAIRN_RUNTIME_INTERNAL_H
#define CAIRN_RUNTIME_INTERNAL_H

#include <limits.h>

#include "../lib/cleanup.h"

#include "runtime.h"

/* Caps: runtime_load rejects larger input (tables are sized at load). */
#define RT_MAX_GROUPS 16
#define RT_MAX_CTRS 128
#define RT_MAX_ARGV 256
#define RT_MAX_VOLUMES 32
#define RT_MAX_KV 128
#define RT_REASON_MAX ERR_MSG_MAX
#define RT_REV_MAX 20 /* decimal digits of a revision number */

#define RT_NS_PER_MS 1000000ull
#define RT_NS_PER_S 1000000000ull
#define RT_POLL_NS (10 * RT_NS_PER_MS)  /* init_pid poll while STARTING */
/* Right after a spawn the init usually appears within tens of ms: poll every
 * millisecond for that long, then every RT_POLL_NS. */
#define RT_POLL_FAST_NS (1 * RT_NS_PER_MS)
#define RT_POLL_FAST_FOR_NS (50 * RT_NS_PER_MS)
#define RT_STABLE_NS (10 * RT_NS_PER_S) /* up longer than this: backoff resets */
#define RT_KILL_AGAIN_NS (5 * RT_NS_PER_S) /* SIGKILL repeated until reaped */
#define RT_CTRL_TARGET "/run/cairn/ctrl.sock"
/* Container events waiting for delivery (one loop iteration's worth: every
 * container can exit and fail at once, plus some slack). */
#define RT_EVQ_MAX (2 * RT_MAX_CTRS + 16)
#define RT_EV_REASON_MAX 256
/* runtime_apply_changes: every name of two sets, comma separated. */
#define RT_CHANGES_MAX (2 * RT_MAX_CTRS * (NAME_MAX_LEN + 1) + 1)

enum rt_event {
	EV_START,         /* bring the container up (mount, then spawn) */
	EV_MOUNT_OK,      /* rootfs, volumes mounted */
	EV_MOUNT_FAIL,    /* mounting failed; reason set */
	EV_SPAWNED,       /* keeper forked */
	EV_INIT_SEEN,     /* init_pid() > 0 */
	EV_READY,         /* runtime_ready() */
	EV_EXITED,        /* keeper reaped (or could not be spawned); exit_code set */
	EV_STOP,          /* runtime_stop_all(), an apply, the operator */
	EV_TIMER,         /* the container's timer: poll, backoff, grace */
	EV_GROUP_TIMEOUT, /* its group's timeout expired */
	EV_COUNT,
	EV_NONE = EV_COUNT /* an action's "no follow-up event" */
};

struct runtime;

struct rt_vol {
	char name[NAME_MAX_LEN + 1];
	char *path; /* inside the container */
	enum rt_persist persistence;
	char *source; /* host directory while mounted, else NULL */
};

struct rt_ctr {
	struct runtime *rt;
	size_t index;
	/* spec (owned copies) */
	char name[NAME_MAX_LEN + 1];
	unsigned group;
	char *image;
	char **argv;
	enum rt_goal goal;
	enum rt_restart restart;
	struct rt_vol *vols;
	size_t nvols;
	struct plugin_kv *kv; /* key/value strings owned (cast away const to free) */
	size_t nkv;
	char *ctrl_socket;
	int stop_signal;

	/* what an apply or the operator asked of it */
	bool pending_start;    /* gets START when its group starts */
	bool start_after_stop; /* operator start/restart while STOPPING */
	bool kept;             /* an apply carries it into the new set as it is */
	bool retiring;         /* an apply removed or changed it: it only stops */

	/* state */
	enum ctr_state state;
	bool goal_reached; /* sticky since runtime_start / the apply */
	bool goal_missed;  /* reported as missed since then */
	bool ready_early;  /* READY arrived while STARTING */
	bool mnt_tmpfs, mnt_lower, mnt_rootfs;
	bool kill_sent;
	void *handle; /* plugin's, between prepare and the keeper's exit */
	pid_t keeper;
	pid_t init;
	int exit_code; /* keeper exit per plugins.h */
	uint64_t up_since;
	uint64_t spawned_at; /* the keeper's fork: fast init polls for a while */
	unsigned restarts; /* since runtime_start / the apply */
	unsigned fails; /* consecutive quick exits: the backoff exponent */
	struct loop_timer timer;
	/* A retiree's init while it stops (pidfd): its death ends the container */
	int init_fd;
	struct loop_io init_io;
	bool keeper_left; /* stopped at its init's death: the keeper still tears
			   * down, its namespaces hold our mounts a while */

	/* console: pipe read end in the loop, write end handed to the plugin */
	int con_rd, con_wr;
	struct loop_io con_io;
	struct logfile *log;
	bool log_broken;

	char rev[RT_REV_MAX + 1]; /* revision it was last mounted in: logs, volumes */
	char dir[PATH_MAX];       /* <statedir>/ctr/<name> or <name>.1 (ctr_prepare) */
	char reason[RT_REASON_MAX];
};

struct rt_group {
	struct runtime *rt;
	size_t index;
	char name[NAME_MAX_LEN + 1];
	unsigned timeout_s; /* 0: no timeout */
	bool start_sent, stop_sent;
	struct loop_timer timer;
};

/* One revision's groups and containers. Containers are allocated one by one
 * (their timers and console are linked into the loop by address) so that an
 * apply can carry a running one into the new set without moving it. */
struct rt_set {
	char rev[RT_REV_MAX + 1];
	struct rt_group *groups;
	size_t ngroups;
	struct rt_ctr **ctrs;
	size_t nctrs;
};

/* RETIRING: an apply stops the containers it removes or changes (`old`, in
 * its own reverse group order) before the new set (`cur`) starts. */
enum rt_phase { RT_IDLE, RT_RETIRING, RT_STARTING, RT_STARTED, RT_STOPPING, RT_STOPPED };

struct rt_evq_item {
	char name[NAME_MAX_LEN + 1];
	enum rt_ctr_event ev;
	unsigned restarts;
	char reason[RT_EV_REASON_MAX];
};

struct runtime {
	struct runtime_config cfg;
	char *statedir;
	struct rt_set cur; /* the revision applied last: what the status shows */
	struct rt_set old; /* while an apply retires: what it removed or changed */
	bool has_old;

	enum rt_phase phase;
	unsigned gen;       /* +1 per start, apply, stop_all: "did a callback act?" */
	size_t cur_group;   /* starting: next group to finish; stopping: groups left */
	size_t old_group;   /* retiring: groups of `old` left to stop */
	bool failed;        /* a goal was missed / a container failed while starting */
	bool reported;      /* started_cb called */
	runtime_started_cb started_cb;
	void *started_data;
	runtime_stopped_cb stopped_cb;
	void *stopped_data;
	struct loop_timer step; /* deferred progress and events: callbacks never nest */
	char fail_reason[RT_REASON_MAX];
	char changes[RT_CHANGES_MAX];

	runtime_event_cb event_cb;
	void *event_data;
	struct rt_evq_item *evq; /* ring of RT_EVQ_MAX */
	size_t evq_head, evq_len;
	unsigned evq_dropped;
};

/* ctr.c */
/* vsnprintf into buf, ending in "..." when cut: reasons never fail. */
void rt_textf(char *buf, size_t cap, const char *fmt, ...) _printf_(3, 4);
void ctr_event(struct rt_ctr *c, enum rt_event ev);
const char *ctr_event_name(enum rt_event ev);
void ctr_timer_cb(struct loop_timer *t);
/* A stopped container is fully torn down; the others still hold something. */
static inline bool ctr_is_idle(const struct rt_ctr *c)
{
	return c->state == CTR_STOPPED;
}
bool ctr_goal_met_now(const struct rt_ctr *c);
unsigned ctr_backoff_ms(const struct runtime_config *cfg, unsigned fails);
/* The goal cannot be reached any more: `how` continues "goal X not reached". */
void ctr_goal_miss(struct rt_ctr *c, const char *how);
/* Running: the keeper or the mounts are up (MOUNTED .. READY, BACKOFF). */
bool ctr_is_up(const struct rt_ctr *c);

/* Stop watching the init (idempotent). */
void ctr_init_unwatch(struct rt_ctr *c);

/* ctr_io.c */
int ctr_mount(struct rt_ctr *c, struct err *e) _must_check_;
/* An apply replaces running `pred` by `c` (same name): mount c's image,
 * overlay and console in the state dir pred does not use and build the
 * plugin's config, while pred still runs. On success c is MOUNTED with its
 * plugin handle; on error nothing of c stays mounted. */
int ctr_prepare(struct rt_ctr *c, const char *rev, const struct rt_ctr *pred,
		struct err *e) _must_check_;
/* Unmount, remove the state dir and release a plugin handle never spawned. */
void ctr_unmount(struct rt_ctr *c);
int ctr_console_open(struct rt_ctr *c, struct err *e) _must_check_;
void ctr_console_close(struct rt_ctr *c);
/* A line from cairn itself in the container's log ("cairn: ..."). */
void ctr_log_note(struct rt_ctr *c, const char *fmt, ...) _printf_(2, 3);
int ctr_spawn(struct rt_ctr *c, struct err *e) _must_check_;

/* load.c */
/* Validate and copy specs into a new set; on error nothing is allocated. */
int rt_set_build(struct runtime *rt, const char *rev, const struct rt_group_spec *groups,
		 size_t ngroups, const struct rt_ctr_spec *ctrs, size_t nctrs, struct rt_set *out,
		 struct err *e) _must_check_;
/* Free a set and every container in it (NULL entries skipped): timers
 * disarmed, console closed, plugin handle released. */
void rt_set_free(struct runtime *rt, struct rt_set *s);
void rt_ctr_drop(struct rt_ctr *c);
int rt_signal_parse(const char *s, int *sig);
/* An apply or a start is running and has not reported yet, or a stop. */
static inline bool rt_busy(const struct runtime *rt)
{
	return rt->phase == RT_RETIRING || rt->phase == RT_STOPPING ||
	       (rt->phase == RT_STARTING && !rt->reported);
}

/* apply.c */
/* The retirees are down (and freed): start the new set. */
void rt_retired(struct runtime *rt);

/* control.c */
/* Queue a container event; delivered from the step (never inside a call). */
void rt_event_push(struct rt_ctr *c, enum rt_ctr_event ev);
void rt_events_deliver(struct runtime *rt);

/* group.c */
void rt_schedule(struct runtime *rt); /* run group progress from the loop, soon */
/* Start the current set group by group (containers marked pending_start). */
void rt_start_phase(struct runtime *rt);
void rt_step_cb(struct loop_timer *t);
void rt_group_timer_cb(struct loop_timer *t);
/* A goal was missed or a container gave up while starting: keep the first
 * reason for the started callback (later ones are only logged). */
void rt_start_failed(struct runtime *rt, const char *reason);

#endif
