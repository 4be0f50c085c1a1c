/* runtime/runtime_internal.h — shared between the runtime's .c files only.
 *
 *   runtime.c   public API: new/free, start, stop, ready, reaping, status
 *   load.c      runtime_load: validation and copies of the specs
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
#define RT_STABLE_NS (10 * RT_NS_PER_S) /* up longer than this: backoff resets */
#define RT_KILL_AGAIN_NS (5 * RT_NS_PER_S) /* SIGKILL repeated until reaped */
#define RT_CTRL_TARGET "/run/cairn/ctrl.sock"

enum rt_event {
	EV_START,         /* bring the container up (mount, then spawn) */
	EV_MOUNT_OK,      /* rootfs, volumes mounted */
	EV_MOUNT_FAIL,    /* mounting failed; reason set */
	EV_SPAWNED,       /* keeper forked */
	EV_INIT_SEEN,     /* init_pid() > 0 */
	EV_READY,         /* runtime_ready() */
	EV_EXITED,        /* keeper reaped (or could not be spawned); exit_code set */
	EV_STOP,          /* runtime_stop_all() */
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

	/* state */
	enum ctr_state state;
	bool goal_reached; /* sticky since runtime_start */
	bool goal_missed;  /* reported as missed since runtime_start */
	bool ready_early;  /* READY arrived while STARTING */
	bool mnt_tmpfs, mnt_lower, mnt_rootfs;
	bool kill_sent;
	void *handle; /* plugin's, between prepare and the keeper's exit */
	pid_t keeper;
	pid_t init;
	int exit_code; /* keeper exit per plugins.h */
	uint64_t up_since;
	unsigned restarts;
	unsigned fails; /* consecutive quick exits: the backoff exponent */
	struct loop_timer timer;

	/* console: pipe read end in the loop, write end handed to the plugin */
	int con_rd, con_wr;
	struct loop_io con_io;
	struct logfile *log;
	bool log_broken;

	char dir[PATH_MAX]; /* <statedir>/ctr/<name> */
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

enum rt_phase { RT_IDLE, RT_STARTING, RT_STARTED, RT_STOPPING, RT_STOPPED };

struct runtime {
	struct runtime_config cfg;
	char *statedir;
	char rev[RT_REV_MAX + 1];
	struct rt_group *groups;
	size_t ngroups;
	struct rt_ctr *ctrs;
	size_t nctrs;

	enum rt_phase phase;
	size_t cur_group;  /* starting: next group to finish; stopping: groups left */
	bool failed;       /* a goal was missed / a container failed while starting */
	bool reported;     /* started_cb called */
	runtime_started_cb started_cb;
	void *started_data;
	runtime_stopped_cb stopped_cb;
	void *stopped_data;
	struct loop_timer step; /* deferred group progress: callbacks never nest */
	char fail_reason[RT_REASON_MAX];
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

/* ctr_io.c */
int ctr_mount(struct rt_ctr *c, struct err *e) _must_check_;
void ctr_unmount(struct rt_ctr *c);
int ctr_console_open(struct rt_ctr *c, struct err *e) _must_check_;
void ctr_console_close(struct rt_ctr *c);
/* A line from cairn itself in the container's log ("cairn: ..."). */
void ctr_log_note(struct rt_ctr *c, const char *fmt, ...) _printf_(2, 3);
int ctr_spawn(struct rt_ctr *c, struct err *e) _must_check_;

/* load.c */
void rt_tables_free(struct runtime *rt);
int rt_signal_parse(const char *s, int *sig);

/* group.c */
void rt_schedule(struct runtime *rt); /* run group progress from the loop, soon */
void rt_step_cb(struct loop_timer *t);
void rt_group_timer_cb(struct loop_timer *t);
/* A goal was missed or a container gave up while starting: keep the first
 * reason for the started callback (later ones are only logged). */
void rt_start_failed(struct runtime *rt, const char *reason);

#endif
