/* test/unit/runtime_fake.h — shared by the runtime's unit tests
 * (runtime_test.c, runtime_apply_test.c): a FAKE plugin and the fixture.
 *
 * The runtime runs on a real lib/loop with real mounts (a tiny squashfs made
 * with mksquashfs, overlays, tmpfs: root only). The fake plugin's spawn forks
 * a child of this process that behaves as its argv says,
 *   "run"          sleep until killed       "exit:N"   exit with N
 *   "after:MS"     wait MS before exiting   "say:TEXT" print TEXT first
 *   "fail-prepare" prepare() fails
 *   "linger:MS"    the keeper is not the init: it forks the init, and when
 *                  the init is gone it lingers MS before exiting (liblxc's
 *                  teardown)
 *   "ignore-term"  ignore SIGTERM           "polls:N"  init_pid() is 0 for
 *                                          N x 10 ms after the spawn (what N
 *                                          polls at the steady rate take)
 * and records every spawn, signal, release and mount list, so the tests see
 * what the runtime asked for and when. Teardown stops the runtime, kills any
 * child, detaches every mount under the test directory and removes it.
 * Everything here is static: each test binary uses what it needs. */
#ifndef CAIRN_TEST_RUNTIME_FAKE_H
#define CAIRN_TEST_RUNTIME_FAKE_H

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

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
#include <sys/prctl.h>
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
	bool ignore_term, fail_prepare;
	char say[64];
	int out_fd;
	pid_t pid;
	uint64_t init_at; /* init_pid() answers 0 before this */
	unsigned linger_ms;
	pid_t init;  /* with linger: the keeper's child, read from init_rd */
	int init_rd;
};

/* A spawn (with every container's state at that moment), a signal or a
 * release (the runtime is done with the container: after its stop). */
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
	struct rec rels[MAXREC];
	size_t nrels;
	struct rec preps[MAXREC]; /* successful prepare() calls */
	size_t npreps;
	unsigned npolls; /* init_pid() calls */
	uint64_t poll_last, poll_gap_min; /* ns: the last call, the shortest gap between two */
	struct rec_mounts mounts[16];
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
		sscanf(*argv, "linger:%u", &f->linger_ms);
		if (strncmp(*argv, "say:", 4) == 0)
			snprintf(f->say, sizeof(f->say), "%s\n", *argv + 4);
		f->ignore_term |= strcmp(*argv, "ignore-term") == 0;
		f->fail_prepare |= strcmp(*argv, "fail-prepare") == 0;
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
	if (f->fail_prepare) {
		free(f);
		return err_field(e, EINVAL, "lxc", "fake: prepare fails on purpose");
	}
	record(F.preps, &F.npreps, pc->name);
	f->out_fd = pc->out_fd >= 0 ? fcntl(pc->out_fd, F_DUPFD_CLOEXEC, 3) : -1;
	f->init_rd = -1;
	fake_record_mounts(pc);
	*handle = f;
	return 0;
}

static _Noreturn void fake_child(const struct fake *f)
{
	/* SIGTERM comes blocked from fake_spawn: one sent before the
	 * disposition is set is applied (or dropped) only now */
	signal(SIGTERM, f->ignore_term ? SIG_IGN : SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (f->say[0] && f->out_fd >= 0)
		(void)!write(f->out_fd, f->say, strlen(f->say));
	if (f->exit_code >= 0) {
		usleep(f->after_ms * 1000u);
		_exit(f->exit_code);
	}
	for (;;)
		pause();
}

/* "linger:MS": the keeper forks the init, tells its pid, waits for it and
 * lingers; the init dies with the keeper (PDEATHSIG). */
static _Noreturn void fake_keeper(const struct fake *f, int wr)
{
	pid_t init = fork();
	if (init == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fake_child(f);
	}
	(void)!write(wr, &init, sizeof(init));
	int st = 0;
	while (init > 0 && waitpid(init, &st, 0) < 0 && errno == EINTR)
		;
	usleep(f->linger_ms * 1000u);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static int fake_spawn(void *handle, pid_t *keeper, struct err *e)
{
	struct fake *f = handle;
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	int p[2] = {-1, -1};
	if (f->linger_ms && pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, errno, "fake: pipe");
	pid_t pid = fork();
	if (pid == 0 && f->linger_ms)
		fake_keeper(f, p[1]);
	if (pid == 0)
		fake_child(f);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p[1] >= 0)
		close(p[1]);
	f->init_rd = p[0];
	if (pid < 0)
		return err_set(e, errno, "fake: fork");
	f->pid = *keeper = pid;
	f->init_at = now_ns() + f->polls * 10 * MS;
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
	uint64_t now = now_ns();
	if (F.npolls++ > 0 && (F.poll_gap_min == 0 || now - F.poll_last < F.poll_gap_min))
		F.poll_gap_min = now - F.poll_last;
	F.poll_last = now;
	if (f->init_rd >= 0 && !f->init && read(f->init_rd, &f->init, sizeof(f->init)) > 0 &&
	    F.nchildren < MAXREC)
		F.children[F.nchildren++] = f->init;
	if (now_ns() < f->init_at)
		return 0;
	return f->init ? f->init : f->pid;
}

static int fake_signal(void *handle, int sig)
{
	struct fake *f = handle;
	record(F.sigs, &F.nsigs, f->name)->sig = sig;
	pid_t init = f->init_rd >= 0 ? fake_init_pid(f) : f->pid;
	return kill(init ? init : f->pid, sig) < 0 ? -errno : 0;
}

static void fake_release(void *handle)
{
	struct fake *f = handle;
	record(F.rels, &F.nrels, f->name);
	if (f->out_fd >= 0)
		close(f->out_fd);
	if (f->init_rd >= 0)
		close(f->init_rd);
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
#define first_rel(name) rec_of(F.rels, F.nrels, name, NULL)

/* The n-th (from 0) record of `name`, NULL if there are fewer. */
static const struct rec *nth_of(const struct rec *r, size_t n, const char *name, size_t nth)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].name, name) == 0 && nth-- == 0)
			return &r[i];
	return NULL;
}

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

#pragma GCC diagnostic pop

#endif
