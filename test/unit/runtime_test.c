/* test/unit/runtime_test.c — runtime/: groups, goals, restart backoff,
 * stop order, mounts, volumes, console logs, spec validation.
 *
 * The runtime runs on a real lib/loop with real mounts (a tiny squashfs made
 * with mksquashfs, overlays, tmpfs: root only) and a FAKE plugin defined
 * here: spawn forks a child of this process that behaves as its argv says,
 *   "run"          sleep until killed       "exit:N"   exit with N
 *   "after:MS"     wait MS before exiting   "say:TEXT" print TEXT first
 *   "ignore-term"  ignore SIGTERM           "polls:N"  init_pid() is 0 N times
 * and records every spawn, signal and mount list, so the tests see what the
 * runtime asked for and when. Teardown stops the runtime, kills any child,
 * detaches every mount under the test directory and removes it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "runtime/runtime.h"
#include "storage/storage.h"

#define MS 1000000ull
#define FMT(buf, ...) assert_int_equal(str_fmt(buf, sizeof(buf), __VA_ARGS__), 0)
#define MAXREC 64

/* ---------------- the fake plugin ---------------- */

struct fake {
	char name[NAME_MAX_LEN + 1];
	int exit_code; /* -1: run until killed */
	unsigned after_ms, polls;
	bool ignore_term;
	char say[64];
	int out_fd;
	pid_t pid;
};

/* A spawn (with every container's state at that moment) or a signal. */
struct rec {
	char name[NAME_MAX_LEN + 1];
	uint64_t t;
	int sig;
	enum ctr_state states[8];
};
struct rec_mounts {
	char name[NAME_MAX_LEN + 1];
	size_t n;
	char source[8][256], target[8][64];
	bool file[8];
	bool rootfs_has_image; /* rootfs/hello.txt visible at prepare */
};

static struct {
	struct runtime *rt;
	struct rec spawns[MAXREC];
	size_t nspawns;
	struct rec sigs[MAXREC];
	size_t nsigs;
	struct rec_mounts mounts[8];
	size_t nmounts;
	pid_t children[MAXREC];
	size_t nchildren;
} F;

static struct rec *record(struct rec *r, size_t *n, const char *name)
{
	static struct rec spare; /* past MAXREC: written, never read */
	struct rec *x = *n < MAXREC ? &r[(*n)++] : &spare;
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->t = now_ns();
	return x;
}

static void fake_parse(struct fake *f, char *const *argv)
{
	f->exit_code = -1;
	for (; *argv; argv++) {
		sscanf(*argv, "exit:%d", &f->exit_code);
		sscanf(*argv, "after:%u", &f->after_ms);
		sscanf(*argv, "polls:%u", &f->polls);
		if (strncmp(*argv, "say:", 4) == 0)
			snprintf(f->say, sizeof(f->say), "%s\n", *argv + 4);
		f->ignore_term |= strcmp(*argv, "ignore-term") == 0;
	}
}

static void fake_record_mounts(const struct plugin_ctr *pc)
{
	if (F.nmounts >= ARRAY_SIZE(F.mounts))
		return;
	struct rec_mounts *m = &F.mounts[F.nmounts++];
	snprintf(m->name, sizeof(m->name), "%s", pc->name);
	for (size_t i = 0; i < pc->nmounts && i < ARRAY_SIZE(m->source); i++, m->n++) {
		snprintf(m->source[i], sizeof(m->source[i]), "%s", pc->mounts[i].source);
		snprintf(m->target[i], sizeof(m->target[i]), "%s", pc->mounts[i].target);
		m->file[i] = pc->mounts[i].file;
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/hello.txt", pc->rootfs);
	m->rootfs_has_image = access(path, R_OK) == 0;
}

static int fake_prepare(const struct plugin_ctr *pc, void **handle, struct err *e)
{
	struct fake *f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(e, ENOMEM, "fake: out of memory");
	snprintf(f->name, sizeof(f->name), "%s", pc->name);
	fake_parse(f, pc->argv);
	f->out_fd = pc->out_fd >= 0 ? fcntl(pc->out_fd, F_DUPFD_CLOEXEC, 3) : -1;
	fake_record_mounts(pc);
	*handle = f;
	return 0;
}

static _Noreturn void fake_child(const struct fake *f)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, f->ignore_term ? SIG_IGN : SIG_DFL);
	if (f->say[0] && f->out_fd >= 0)
		(void)!write(f->out_fd, f->say, strlen(f->say));
	if (f->exit_code >= 0) {
		usleep(f->after_ms * 1000u);
		_exit(f->exit_code);
	}
	for (;;)
		pause();
}

static int fake_spawn(void *handle, pid_t *keeper, struct err *e)
{
	struct fake *f = handle;
	pid_t pid = fork();
	if (pid < 0)
		return err_set(e, errno, "fake: fork");
	if (pid == 0)
		fake_child(f);
	f->pid = *keeper = pid;
	if (F.nchildren < MAXREC)
		F.children[F.nchildren++] = pid;
	struct rec *s = record(F.spawns, &F.nspawns, f->name);
	for (size_t i = 0; F.rt && i < runtime_count(F.rt) && i < 8; i++) {
		struct rt_ctr_status st;
		runtime_status(F.rt, i, &st);
		s->states[i] = st.state;
	}
	return 0;
}

static pid_t fake_init_pid(void *handle)
{
	struct fake *f = handle;
	return f->polls > 0 ? (f->polls--, 0) : f->pid;
}

static int fake_signal(void *handle, int sig)
{
	struct fake *f = handle;
	record(F.sigs, &F.nsigs, f->name)->sig = sig;
	return kill(f->pid, sig) < 0 ? -errno : 0;
}

static void fake_release(void *handle)
{
	struct fake *f = handle;
	if (f->out_fd >= 0)
		close(f->out_fd);
	free(f);
}

static const struct plugin_ops fake_plugin = {
	.name = "fake", .prepare = fake_prepare, .spawn = fake_spawn,
	.init_pid = fake_init_pid, .signal = fake_signal, .release = fake_release};

/* ---------------- fixture ---------------- */

static char g_base[64];  /* per process: the image lives here */
static char g_image[128];

struct fx {
	char dir[128], storage_dir[160], statedir[160], sock[160];
	struct loop *loop;
	struct storage *st;
	struct runtime *rt;
	int started_calls;
	bool started_ok;
	char started_reason[ERR_MSG_MAX];
	uint64_t t0, started_at;
	bool stopped;
};

static void on_sigchld(const struct signalfd_siginfo *si, void *data)
{
	struct fx *x = data;
	(void)si;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		if (x->rt)
			runtime_child_exited(x->rt, pid, status);
	}
}

static void on_started(void *data, bool ok, const char *reason)
{
	struct fx *x = data;
	x->started_calls++;
	x->started_ok = ok;
	x->started_at = now_ns();
	snprintf(x->started_reason, sizeof(x->started_reason), "%s", reason);
}

static void on_stopped(void *data)
{
	((struct fx *)data)->stopped = true;
}

static int write_text(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	return fd < 0 ? -1 : write_all(fd, text, strlen(text));
}

static int group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0; /* every test skips */
	snprintf(g_base, sizeof(g_base), "/tmp/cairn-runtime-test-XXXXXX");
	if (!mkdtemp(g_base))
		return -1;
	char src[128], file[160], cmd[512];
	snprintf(src, sizeof(src), "%s/src", g_base);
	snprintf(file, sizeof(file), "%s/hello.txt", src);
	snprintf(g_image, sizeof(g_image), "%s/img.sqfs", g_base);
	if (mkdir(src, 0755) < 0 || write_text(file, "hello from the image\n") < 0)
		return -1;
	/* paths are ours (mkdtemp): nothing to quote */
	snprintf(cmd, sizeof(cmd), "mksquashfs %s %s -noappend -quiet >/dev/null", src, g_image);
	return system(cmd) == 0 ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int group_teardown(void **state)
{
	(void)state;
	if (g_base[0])
		nftw(g_base, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return 0;
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	struct fx *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	*state = x;
	if (geteuid() != 0)
		return 0;
	snprintf(x->dir, sizeof(x->dir), "%s/t-XXXXXX", g_base);
	if (!mkdtemp(x->dir))
		return -1;
	snprintf(x->storage_dir, sizeof(x->storage_dir), "%s/storage", x->dir);
	snprintf(x->statedir, sizeof(x->statedir), "%s/state", x->dir);
	snprintf(x->sock, sizeof(x->sock), "%s/ctrl.sock", x->dir);
	struct err e = ERR_INIT;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (mkdir(x->storage_dir, 0755) < 0 || mkdir(x->statedir, 0755) < 0 ||
	    storage_open(x->storage_dir, &x->st, &e) < 0 || loop_new(&x->loop, &e) < 0 ||
	    loop_signals(x->loop, &set, on_sigchld, x, &e) < 0) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	x->t0 = now_ns();
	return 0;
}

/* Mount points at or under dir (mountinfo field 5). */
static int mounts_under(const char *dir, char *last, size_t cap)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t lcap = 0, dlen = strlen(dir);
	int n = 0;
	while (f && getline(&line, &lcap, f) > 0) {
		char mp[512];
		if (sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1)
			continue;
		if (strncmp(mp, dir, dlen) == 0 && (mp[dlen] == '/' || mp[dlen] == '\0')) {
			n++;
			if (last)
				snprintf(last, cap, "%s", mp);
		}
	}
	return n;
}

static bool run_until(struct fx *x, bool (*cond)(struct fx *), unsigned ms)
{
	uint64_t end = now_ns() + ms * MS;
	while (!cond || !cond(x)) {
		if (now_ns() > end)
			return !cond;
		if (loop_once(x->loop, 10) < 0)
			return false;
	}
	return true;
}

static bool is_stopped(struct fx *x)
{
	return x->stopped;
}

#define run_for(x, ms) run_until(x, NULL, ms)

static int teardown(void **state)
{
	struct fx *x = *state;
	if (x->rt) {
		x->stopped = false;
		runtime_stop_all(x->rt, on_stopped, x);
		run_until(x, is_stopped, 10000);
		runtime_free(x->rt);
	}
	for (size_t i = 0; i < F.nchildren; i++)
		if (kill(F.children[i], SIGKILL) == 0)
			waitpid(F.children[i], NULL, 0);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	loop_free(x->loop);
	storage_close(x->st);
	char mp[512];
	for (int i = 0; x->dir[0] && i < 64 && mounts_under(x->dir, mp, sizeof(mp)) > 0; i++)
		umount2(mp, MNT_DETACH);
	int r = x->dir[0] ? nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) : 0;
	free(x);
	return r;
}

/* ---------------- helpers ---------------- */

static void need_root(void)
{
	if (geteuid() != 0)
		skip(); /* longjmps out of the test */
}

static void rt_make(struct fx *x, unsigned grace_s, unsigned first_ms, unsigned max_ms)
{
	struct runtime_config cfg = {.loop = x->loop, .storage = x->st, .plugin = &fake_plugin,
				     .statedir = x->statedir, .log_max_bytes = 1 << 20, .log_keep = 2,
				     .stop_grace_s = grace_s, .backoff_first_ms = first_ms,
				     .backoff_max_ms = max_ms};
	struct err e = ERR_INIT;
	int r = runtime_new(&cfg, &x->rt, &e);
	if (r < 0)
		fail_msg("runtime_new: %s", e.msg);
	F.rt = x->rt;
}

static struct rt_ctr_spec ctr(const char *name, unsigned group, enum rt_goal goal,
			      enum rt_restart restart, char *const *argv)
{
	struct rt_ctr_spec s = {
		.group = group, .image = g_image, .argv = argv, .goal = goal, .restart = restart};
	snprintf(s.name, sizeof(s.name), "%s", name);
	return s;
}

static void load(struct fx *x, const struct rt_group_spec *g, size_t ng,
		 const struct rt_ctr_spec *c, size_t nc)
{
	struct err e = ERR_INIT;
	if (runtime_load(x->rt, "7", g, ng, c, nc, &e) < 0)
		fail_msg("runtime_load: %s", e.msg);
}

static void start(struct fx *x)
{
	struct err e = ERR_INIT;
	if (runtime_start(x->rt, on_started, x, &e) < 0)
		fail_msg("runtime_start: %s", e.msg);
}

#define BOOT(x, g, c) (load(x, g, ARRAY_SIZE(g), c, ARRAY_SIZE(c)), start(x))

static struct rt_ctr_status status_of(struct fx *x, const char *name)
{
	struct rt_ctr_status st;
	int i = runtime_find(x->rt, name);
	assert_true(i >= 0);
	runtime_status(x->rt, (size_t)i, &st);
	return st;
}

static bool was_started(struct fx *x)
{
	return x->started_calls > 0;
}

/* The first record of `name` (NULL if none); *count gets how many. */
static const struct rec *rec_of(const struct rec *r, size_t n, const char *name, size_t *count)
{
	const struct rec *first = NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].name, name) == 0 && k++ == 0)
			first = &r[i];
	if (count)
		*count = k;
	return first;
}
#define spawn_of(name) rec_of(F.spawns, F.nspawns, name, NULL)
#define first_sig(name) rec_of(F.sigs, F.nsigs, name, NULL)

static size_t spawns_of(const char *name)
{
	size_t n;
	rec_of(F.spawns, F.nspawns, name, &n);
	return n;
}

/* Run the loop until container `name` is in state `st`. */
static struct {
	const char *name;
	enum ctr_state st;
} waiting;
static bool in_state(struct fx *x)
{
	return status_of(x, waiting.name).state == waiting.st;
}
static bool wait_state(struct fx *x, const char *name, enum ctr_state st, unsigned ms)
{
	waiting.name = name;
	waiting.st = st;
	return run_until(x, in_state, ms);
}

static void stop_all(struct fx *x, unsigned ms)
{
	x->stopped = false;
	runtime_stop_all(x->rt, on_stopped, x);
	assert_true(run_until(x, is_stopped, ms));
	assert_string_equal(runtime_phase(x->rt), "stopped");
	char mp[512] = "";
	if (mounts_under(x->dir, mp, sizeof(mp)) != 0)
		fail_msg("still mounted after stop: %s", mp);
}

static const char *slurp(const char *path)
{
	static char buf[8192];
	buf[0] = '\0';
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	ssize_t n = read_all(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static char *const ARGV_RUN[] = {"run", NULL};

/* ---------------- tests ---------------- */

/* Group 2 starts only once every container of group 1 reached its goal;
 * the containers of group 1 start in parallel. */
static void test_group_order(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const slow1[] = {"run", "polls:5", NULL}, *const slow2[] = {"run", "polls:10", NULL};
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, slow1),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_NO, slow2),
				  ctr("c3", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	BOOT(x, g, c);
	assert_string_equal(runtime_phase(x->rt), "starting");
	assert_true(wait_state(x, "c3", CTR_STARTED, 5000));
	assert_true(run_until(x, was_started, 1000));
	assert_int_equal(x->started_calls, 1);
	assert_true(x->started_ok);
	assert_string_equal(runtime_phase(x->rt), "ready");
	const struct rec *s1 = spawn_of("c1"), *s2 = spawn_of("c2"), *s3 = spawn_of("c3");
	assert_true(s1 && s2 && s3);
	/* parallel: c2 was spawned while c1 was still starting */
	assert_int_equal(s2->states[0], CTR_STARTING);
	/* ordered: c3 only after both reached STARTED (c2 needs >= 100 ms) */
	assert_int_equal(s3->states[0], CTR_STARTED);
	assert_int_equal(s3->states[1], CTR_STARTED);
	assert_true(s3->t - s2->t >= 100 * MS);
	stop_all(x, 5000);
}

/* A READY goal is met only after runtime_ready(); until then the start-up
 * is not reported. Readiness reported while STARTING is kept. */
static void test_ready_goal(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const early[] = {"run", "polls:30", NULL};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_READY, RT_RESTART_NO, early)};
	load(x, g, 1, c, 2);
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ready(x->rt, "c1", &e), -ESRCH); /* not started yet */
	start(x);
	run_for(x, 100);
	assert_int_equal(status_of(x, "c2").state, CTR_STARTING);
	assert_int_equal(runtime_ready(x->rt, "c2", &e), 0); /* early */
	run_for(x, 300);
	assert_int_equal(status_of(x, "c1").state, CTR_STARTED);
	assert_false(status_of(x, "c1").goal_met);
	assert_int_equal(status_of(x, "c2").state, CTR_READY);
	assert_int_equal(x->started_calls, 0);
	assert_string_equal(runtime_phase(x->rt), "starting");
	assert_int_equal(runtime_ready(x->rt, "nope", &e), -ENOENT);
	assert_int_equal(runtime_ready(x->rt, "c1", &e), 0);
	assert_true(run_until(x, was_started, 1000));
	assert_int_equal(status_of(x, "c1").state, CTR_READY);
	assert_true(x->started_ok);
	assert_true(status_of(x, "c1").goal_met);
	assert_true(status_of(x, "c1").pid > 0);
	stop_all(x, 5000);
}

/* A group timeout reports the container and its goal, and start-up goes on
 * with the next group. */
static void test_group_timeout(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	struct rt_group_spec g[] = {{"platform", 1}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	BOOT(x, g, c);
	assert_true(run_until(x, was_started, 3000));
	assert_false(x->started_ok);
	uint64_t took = x->started_at - x->t0;
	assert_true(took >= 1000 * MS && took < 2500 * MS);
	assert_true(strstr(x->started_reason, "c1") && strstr(x->started_reason, "READY"));
	assert_string_equal(status_of(x, "c1").reason, "goal READY not reached within 1 s");
	assert_int_equal(status_of(x, "c1").state, CTR_STARTED); /* still runs */
	assert_true(wait_state(x, "c2", CTR_STARTED, 2000));
	run_for(x, 50);
	assert_string_equal(runtime_phase(x->rt), "degraded");
	assert_int_equal(x->started_calls, 1);
	stop_all(x, 5000);
}

static bool six_spawns(struct fx *x)
{
	(void)x;
	return spawns_of("c1") >= 6;
}

/* A crashing container is restarted after 50, 100, 200, 400, 400 ms. */
static void test_restart_backoff(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 50, 400);
	char *const crash[] = {"exit:1", "say:crashing", NULL};
	struct rt_group_spec g[] = {{"platform", 30}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ON_FAILURE, crash)};
	BOOT(x, g, c);
	assert_true(run_until(x, six_spawns, 5000));
	static const uint64_t want[] = {50, 100, 200, 400, 400};
	uint64_t gap[5];
	size_t k = 0;
	for (size_t i = 0; i < F.nspawns && k < 6; i++)
		if (strcmp(F.spawns[i].name, "c1") == 0)
			F.spawns[k++] = F.spawns[i];
	for (size_t i = 0; i < 5; i++) {
		gap[i] = F.spawns[i + 1].t - F.spawns[i].t;
		print_message("restart gap %zu: %.1f ms (backoff %llu ms)\n", i, gap[i] / 1e6,
			      (unsigned long long)want[i]);
		assert_true(gap[i] >= want[i] * MS);
		assert_true(gap[i] < (want[i] + 250) * MS);
		if (i > 0)
			assert_true(gap[i] + 20 * MS >= gap[i - 1]); /* never shrinks (20 ms jitter) */
	}
	assert_true(gap[3] > gap[2] && gap[2] > gap[1] && gap[1] > gap[0]);
	assert_true(status_of(x, "c1").restarts >= 5);
	assert_string_equal(status_of(x, "c1").reason, "exited with status 1");
	char log[256];
	FMT(log, "%s/logs/7/c1.log", x->storage_dir);
	assert_non_null(strstr(slurp(log), "crashing\n"));
	assert_non_null(strstr(slurp(log), "cairn: exited with status 1; restarting in 100 ms\n"));
	stop_all(x, 5000);
}

/* restart "no": a failure is FAILED (a start failure), a clean exit of an
 * on-failure container is STOPPED, an image that does not mount is FAILED
 * whatever its policy; none is restarted or left mounted. */
static void test_restart_no(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 50, 400);
	char *const fail3[] = {"exit:3", "after:100", NULL}, *const done[] = {"exit:0", "after:100", NULL};
	char bogus[256];
	FMT(bogus, "%s/not-squashfs.img", x->dir);
	assert_int_equal(write_text(bogus, "this is not a squashfs image\n"), 0);
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_READY, RT_RESTART_NO, fail3),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_ON_FAILURE, done),
				  ctr("c3", 1, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN)};
	c[2].image = bogus;
	BOOT(x, g, c);
	assert_true(wait_state(x, "c1", CTR_FAILED, 3000));
	assert_true(wait_state(x, "c2", CTR_STOPPED, 3000));
	assert_true(wait_state(x, "c3", CTR_FAILED, 3000));
	run_for(x, 300);
	assert_int_equal(spawns_of("c1"), 1);
	assert_int_equal(spawns_of("c2"), 1);
	assert_int_equal(spawns_of("c3"), 0);
	assert_non_null(strstr(status_of(x, "c3").reason, "mount: image"));
	assert_string_equal(status_of(x, "c1").reason, "exited with status 3");
	assert_int_equal(status_of(x, "c1").restarts, 0);
	assert_int_equal(x->started_calls, 1);
	assert_false(x->started_ok);
	assert_true(strstr(x->started_reason, "c1") &&
		    strstr(x->started_reason, "exited with status 3"));
	assert_string_equal(runtime_phase(x->rt), "degraded");
	assert_int_equal(mounts_under(x->dir, NULL, 0), 0);
	stop_all(x, 5000);
}

/* Stop: last group first; each group only once the later one is down; a
 * container deaf to its stop signal is killed after the grace period;
 * lxc.signal.stop picks the signal. Nothing stays mounted. */
static void test_stop_reverse(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 1, 100, 1000);
	char *const deaf[] = {"run", "ignore-term", NULL};
	struct rt_kv usr2[] = {{"lxc.signal.stop", "SIGUSR2"}};
	struct rt_group_spec g[] = {{"platform", 10}, {"middleware", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c3", 2, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c3b", 2, RT_GOAL_STARTED, RT_RESTART_ALWAYS, deaf)};
	c[0].lxc = usr2, c[0].nlxc = 1;
	BOOT(x, g, c);
	assert_true(run_until(x, was_started, 5000));
	assert_true(x->started_ok);
	uint64_t t = now_ns();
	stop_all(x, 8000);
	assert_true(now_ns() - t >= 1000 * MS); /* c3b needed the grace period */
	const struct rec *s1 = first_sig("c1"), *s2 = first_sig("c2"), *s3 = first_sig("c3"),
			 *s3b = first_sig("c3b");
	assert_true(s1 && s2 && s3 && s3b);
	assert_true(s3->sig == SIGTERM && s3b->sig == SIGTERM && s2->sig == SIGTERM);
	assert_int_equal(s1->sig, SIGUSR2);
	assert_true(s2->t >= s3b->t + 1000 * MS); /* app fully down (SIGKILL) first */
	assert_true(s1->t > s2->t);
	bool killed = false;
	for (size_t i = 0; i < F.nsigs; i++)
		killed |= strcmp(F.sigs[i].name, "c3b") == 0 && F.sigs[i].sig == SIGKILL;
	assert_true(killed);
	for (size_t i = 0; i < runtime_count(x->rt); i++) {
		struct rt_ctr_status st;
		runtime_status(x->rt, i, &st);
		assert_int_equal(st.state, CTR_STOPPED);
		assert_int_equal(st.restarts, 0); /* a stop is not a crash */
	}
	char dir[256];
	FMT(dir, "%s/ctr/c1", x->statedir);
	assert_int_equal(access(dir, F_OK), -1);
}

static bool said_hello(struct fx *x)
{
	char log[256];
	snprintf(log, sizeof(log), "%s/logs/7/c2.log", x->storage_dir);
	return was_started(x) && strstr(slurp(log), "hello from c2\n");
}

static void check_c2_mounts(struct fx *x)
{
	const struct rec_mounts *m = NULL;
	for (size_t i = 0; i < F.nmounts; i++)
		if (strcmp(F.mounts[i].name, "c2") == 0)
			m = &F.mounts[i];
	assert_non_null(m);
	assert_true(m->rootfs_has_image);
	assert_int_equal(m->n, 4);
	char want[256];
	FMT(want, "%s/volumes/permanent/c2/data", x->storage_dir);
	assert_string_equal(m->source[0], want);
	assert_string_equal(m->target[0], "/data");
	FMT(want, "%s/volumes/revision/7/c2/cache", x->storage_dir);
	assert_string_equal(m->source[1], want);
	FMT(want, "%s/ctr/c2/vol/scratch", x->statedir);
	assert_string_equal(m->source[2], want);
	assert_string_equal(m->source[3], x->sock);
	assert_string_equal(m->target[3], "/run/cairn/ctrl.sock");
	assert_true(m->file[3] && !m->file[0]);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(access(m->source[i], W_OK), 0);
}

/* Goal MOUNTED: the image is mounted (writable through the overlay) and
 * never run. Volumes and the control socket reach the plugin; console
 * output lands in logs/<rev>/<name>.log; stop keeps permanent volumes only. */
static void test_mounts_volumes_logs(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	assert_int_equal(write_text(x->sock, ""), 0); /* stands for ctrl's socket */
	char *const hello[] = {"run", "say:hello from c2", NULL};
	struct rt_volume vols[] = {{"data", "/data", RT_PERSIST_PERMANENT},
				   {"cache", "/var/cache", RT_PERSIST_REVISION},
				   {"scratch", "/tmp", RT_PERSIST_BOOT}};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_MOUNTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_NO, hello)};
	c[1].volumes = vols;
	c[1].nvolumes = 3;
	c[1].ctrl_socket = x->sock;
	BOOT(x, g, c);
	assert_true(run_until(x, said_hello, 3000));
	assert_true(x->started_ok);
	assert_int_equal(status_of(x, "c1").state, CTR_MOUNTED);
	assert_true(status_of(x, "c1").goal_met);
	assert_int_equal(spawns_of("c1"), 0);
	char path[256];
	FMT(path, "%s/ctr/c1/rootfs/hello.txt", x->statedir);
	assert_string_equal(slurp(path), "hello from the image\n");
	FMT(path, "%s/ctr/c1/rootfs/new.txt", x->statedir);
	assert_int_equal(write_text(path, "upper\n"), 0); /* overlay: writable */
	check_c2_mounts(x);
	assert_true(mounts_under(x->dir, NULL, 0) >= 6); /* 2 x (tmpfs, squashfs, overlay) */
	stop_all(x, 5000);
	FMT(path, "%s/volumes/permanent/c2/data", x->storage_dir);
	assert_int_equal(access(path, F_OK), 0);
	FMT(path, "%s/ctr/c2", x->statedir);
	assert_int_equal(access(path, F_OK), -1);
	FMT(path, "%s/logs/7/c2.log", x->storage_dir);
	assert_non_null(strstr(slurp(path), "cairn: stopped\n"));
}

/* Hostile specs are refused with the field named; so is a bad config. */
static void test_load_rejects(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const empty[] = {NULL};
	struct rt_volume up[] = {{"data", "/data/../../etc", RT_PERSIST_PERMANENT}},
			 blank[] = {{"data", "/da ta", RT_PERSIST_PERMANENT}};
	struct rt_kv sig[] = {{"lxc.signal.stop", "SIGFOO"}};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c = ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN), b[8];
	for (size_t i = 0; i < ARRAY_SIZE(b); i++)
		b[i] = c;
	snprintf(b[1].name, sizeof(b[1].name), "Bad");
	b[2].group = 3;
	b[3].image = "relative.sqfs";
	b[4].argv = empty;
	b[5].volumes = up, b[5].nvolumes = 1;
	b[6].volumes = blank, b[6].nvolumes = 1;
	b[7].lxc = sig, b[7].nlxc = 1;
	static const char *const want[][3] = {
		{"7x", "revision", "decimal"},
		{"7", "containers[0]", "name"},
		{"7", "containers[0]", "group 3"},
		{"7", "containers[0]", "image"},
		{"7", "containers[0]", "argv"},
		{"7", "containers[0].volumes[0]", "path"},
		{"7", "containers[0].volumes[0]", "path"},
		{"7", "containers[0].lxc.lxc.signal.stop", "'SIGFOO' is not a signal"},
	};
	struct err e = ERR_INIT;
	for (size_t i = 0; i < ARRAY_SIZE(b); i++) {
		err_clear(&e);
		assert_true(runtime_load(x->rt, want[i][0], g, 1, &b[i], 1, &e) < 0);
		if (strcmp(e.field, want[i][1]) != 0 || !strstr(e.msg, want[i][2]))
			fail_msg("case %zu: want %s / '%s', got '%s': %s", i, want[i][1], want[i][2],
				 e.field, e.msg);
	}
	struct rt_ctr_spec two[] = {c, c};
	assert_int_equal(runtime_load(x->rt, "7", g, 1, two, 2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "duplicate container c1"));
	/* a good one still loads after all that */
	struct rt_kv usr2[] = {{"lxc.signal.stop", "usr2"}, {"lxc.cgroup2.memory.max", "64M"}};
	c.lxc = usr2, c.nlxc = 2;
	assert_int_equal(runtime_load(x->rt, "7", g, 1, &c, 1, &e), 0);
	assert_int_equal(runtime_count(x->rt), 1);
	assert_int_equal(runtime_find(x->rt, "c1"), 0);
	assert_int_equal(runtime_find(x->rt, "c2"), -1);
	struct runtime_config cfg = {.loop = x->loop, .storage = x->st, .plugin = &fake_plugin,
				     .statedir = "relative", .backoff_first_ms = 1, .backoff_max_ms = 2};
	struct runtime *rt = NULL;
	assert_int_equal(runtime_new(&cfg, &rt, &e), -EINVAL);
	assert_string_equal(e.field, "statedir");
	cfg.statedir = x->statedir, cfg.backoff_first_ms = 0;
	assert_int_equal(runtime_new(&cfg, &rt, &e), -EINVAL);
	assert_null(rt);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_group_order),	T(test_ready_goal),	    T(test_group_timeout),
		T(test_restart_backoff), T(test_restart_no),	    T(test_stop_reverse),
		T(test_mounts_volumes_logs), T(test_load_rejects),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
