/* init/pid1.c — the tiny PID 1, and sandbox mode around it.
 *
 * PID 1 blocks every signal and takes them one at a time with sigwaitinfo:
 * no handlers, no event loop. It forks the orchestrator once and from then on
 * only reaps (every child: orphans are normal) and forwards SIGTERM, SIGINT,
 * SIGPWR and SIGHUP to the orchestrator. When the orchestrator ends:
 *   exit ORCH_EXIT_POWEROFF / ORCH_EXIT_REBOOT  -> power off / reboot
 *   anything else                               -> write the reason to
 *       <storage>/pid1-last-death.json (durably), sync, reboot
 * A real PID 1 then kills what is left (SIGTERM, grace, SIGKILL), syncs,
 * unmounts what it can and calls reboot(2): it never exits (the kernel would
 * panic). A sandbox PID 1 kills what is left in its namespace and exits with
 * a CAIRN_SANDBOX_EXIT_* status instead. With a hardware watchdog, PID 1
 * also wakes every period to pet it while the orchestrator's heartbeat keeps
 * coming (init/early_watchdog.c). The early boot runs before pid1_main
 * (init/early.c, driven by main.c).
 *
 * Blocked signals are never dropped for PID 1, even with SIG_DFL: the kernel
 * only discards unhandled signals to a namespace's init when they are not
 * blocked. That is what lets sigwaitinfo work here. See init/README.md. */
#define _GNU_SOURCE /* unshare, sigabbrev_np */
#define LOG_MODULE "pid1"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "../lib/cleanup.h"
#include "../lib/json.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../storage/storage.h"
#include "init.h"

#define TERM_GRACE_MS 3000 /* SIGTERM to SIGKILL, real PID 1 */
#define KILL_WAIT_MS 2000  /* after SIGKILL: processes stuck in D state are left */
#define DEATH_FILE "pid1-last-death.json"

enum pid1_end { END_POWEROFF, END_REBOOT, END_CRASHED };

/* ---------------- signals and children ---------------- */

/* The kernel's struct for rt_sigaction(2) (x86-64 and most others). */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

static void signals_default(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	for (int s = 1; s < NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP || sigaction(s, &sa, NULL) == 0)
			continue;
		/* glibc refuses its own internal signals (32, 33) with EINVAL; an
		 * ignored disposition inherited from our parent would survive exec
		 * into every container, so reset them with the raw system call. */
		struct kernel_sigaction k = {.handler = SIG_DFL};
		(void)syscall(SYS_rt_sigaction, s, &k, NULL, sizeof(k.mask));
	}
}

static bool is_forwarded(int sig)
{
	return sig == SIGTERM || sig == SIGINT || sig == SIGPWR || sig == SIGHUP;
}

/* Reap every exited child. Returns true, with its status, if `watch` was one. */
static bool reap(pid_t watch, int *status)
{
	bool seen = false;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return seen; /* 0: children left, none exited; ECHILD: none left */
		if (watch > 0 && pid == watch) {
			*status = st;
			seen = true;
		}
	}
}

/* Reap until no child is left (true) or `ms` passed (false). */
static bool reap_all_within(unsigned ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		pid_t pid;
		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0 || (pid < 0 && errno == EINTR))
			;
		if (pid < 0)
			return true; /* ECHILD */
		uint64_t now = now_ns();
		if (now >= end)
			return false;
		struct timespec ts = {.tv_sec = (time_t)((end - now) / 1000000000u),
				      .tv_nsec = (long)((end - now) % 1000000000u)};
		(void)sigtimedwait(&chld, NULL, &ts);
	}
}

/* ---------------- the orchestrator's process ---------------- */

/* TEST ONLY (test/integration/test_sandbox_pid1.py): CAIRN_TEST_ORCH stands in
 * for the orchestrator so PID 1 can be tested alone:
 *   exit:N  exit with status N at once      sleep  wait, default dispositions
 *   crash   die of SIGSEGV                   (anything else: exit FAILED)
 * Unset, as it always is outside the tests, it does nothing. */
static void orch_test_hook(void)
{
	const char *v = getenv("CAIRN_TEST_ORCH");
	if (!v)
		return;
	char *end;
	if (strncmp(v, "exit:", 5) == 0 && v[5] >= '0' && v[5] <= '9') {
		long n = strtol(v + 5, &end, 10);
		if (!*end && n <= 255)
			_exit((int)n);
	}
	if (strcmp(v, "sleep") == 0)
		for (;;)
			pause();
	if (strcmp(v, "crash") == 0)
		raise(SIGSEGV);
	log_err("CAIRN_TEST_ORCH=%s: want exit:N, sleep or crash", v);
	_exit(ORCH_EXIT_FAILED);
}

/* Children start clean: default dispositions, nothing blocked, own session. */
static _Noreturn void orch_child(const struct init_opts *o)
{
	signals_default();
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		log_warn("orchestrator: setsid: %s", strerror(errno));
	(void)prctl(PR_SET_NAME, "cairn-orch");
	wdog_child();
	orch_test_hook();
	_exit(orch_main(o));
}

/* ---------------- the record of an unexpected death ---------------- */

static void death_reason(int status, char *buf, size_t cap)
{
	int r;
	if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));
		r = str_fmt(buf, cap, "killed by signal %d (SIG%s)%s", WTERMSIG(status),
			    name ? name : "?", WCOREDUMP(status) ? ", core dumped" : "");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == ORCH_EXIT_FAILED) {
		r = str_fmt(buf, cap, "exited with status %d (start-up failed)", WEXITSTATUS(status));
	} else {
		r = str_fmt(buf, cap, "exited with status %d", WEXITSTATUS(status));
	}
	if (r < 0)
		buf[0] = '\0'; /* cannot happen: the caller's 128 bytes hold every form */
}

static void death_json(struct jw *w, const struct init_opts *o, pid_t pid, int status,
		       const char *reason)
{
	struct timespec rt, bt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	char when[32] = "";
	struct tm tm;
	if (gmtime_r(&rt.tv_sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	jw_obj_open(w);
	jw_kv_str(w, "reason", reason);
	if (pid > 0) {
		jw_kv_int(w, "pid", pid);
		if (WIFSIGNALED(status)) {
			jw_kv_int(w, "signal", WTERMSIG(status));
			jw_kv_bool(w, "core_dumped", WCOREDUMP(status));
		} else {
			jw_kv_int(w, "exit_code", WEXITSTATUS(status));
		}
	}
	jw_kv_str(w, "time", when);
	jw_kv_uint(w, "time_unix", (unsigned long long)rt.tv_sec);
	jw_kv_uint(w, "uptime_ms",
		   (unsigned long long)bt.tv_sec * 1000u + (unsigned long long)bt.tv_nsec / 1000000u);
	jw_kv_bool(w, "sandbox", o->sandbox);
	jw_obj_close(w);
}

/* Write <storage>/pid1-last-death.json. Best effort: a failure is logged,
 * the reboot happens either way. pid <= 0: the orchestrator never ran. */
static void death_record(const struct init_opts *o, pid_t pid, int status, const char *reason)
{
	char buf[1024];
	struct jw w;
	struct err e = ERR_INIT;
	jw_init_fixed(&w, buf, sizeof(buf));
	death_json(&w, o, pid, status, reason);
	_cleanup_close_ int dfd = open(o->storage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		(void)err_set(&e, errno, "open %s: %s", o->storage, strerror(errno));
	if (dfd < 0 || jw_finish(&w, &e) < 0 ||
	    storage_write_durable(dfd, DEATH_FILE, w.buf, w.len, 0644, &e) < 0)
		log_err("recording the orchestrator's death: %s", e.msg);
	else
		log_info("recorded in %s/%s", o->storage, DEATH_FILE);
}

/* ---------------- the end: power off, reboot ---------------- */

/* Read the mount table first (unmounting /proc ends it), then unmount in
 * reverse order; what stays busy is remounted read-only. */
static void umount_all(void)
{
	static char buf[64 * 1024];
	static char *mp[512];
	_cleanup_close_ int fd = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd < 0 ? -1 : read_all(fd, buf, sizeof(buf) - 1);
	if (len <= 0)
		return;
	buf[len] = '\0';
	size_t n = 0;
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line && n < ARRAY_SIZE(mp);
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' '); /* "source mountpoint type ..." */
		char *end = sp ? strchr(sp + 1, ' ') : NULL;
		if (!end)
			continue;
		*end = '\0';
		mp[n++] = sp + 1;
	}
	for (size_t i = n; i-- > 0;) {
		char *s = mp[i], *d = mp[i]; /* unescape \ooo (spaces, tabs, newlines) */
		for (; *s; s++, d++)
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
				*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
				s += 3;
			} else {
				*d = *s;
			}
		*d = '\0';
		if (umount2(mp[i], 0) < 0 && errno != EINVAL && errno != ENOENT)
			(void)mount(NULL, mp[i], NULL, MS_REMOUNT | MS_RDONLY, NULL);
	}
}

static _Noreturn void end_real(enum pid1_end how)
{
	wdog_last_pet(); /* a shutdown that hangs from here on is the watchdog's */
	log_info("sending SIGTERM to all processes");
	(void)kill(-1, SIGTERM);
	if (!reap_all_within(TERM_GRACE_MS)) {
		log_info("sending SIGKILL to all processes");
		(void)kill(-1, SIGKILL);
		if (!reap_all_within(KILL_WAIT_MS))
			log_warn("some processes did not die");
	}
	sync();
	umount_all();
	sync();
	log_info("%s", how == END_POWEROFF ? "power off" : "reboot");
	(void)reboot(how == END_POWEROFF ? RB_POWER_OFF : RB_AUTOBOOT);
	log_err("reboot(2): %s; waiting", strerror(errno));
	sigset_t all;
	sigfillset(&all);
	for (;;) /* never exit: the kernel would panic */
		if (sigwaitinfo(&all, NULL) == SIGCHLD)
			(void)reap(0, NULL);
}

static _Noreturn void end_sandbox(enum pid1_end how)
{
	static const int code[] = {[END_POWEROFF] = CAIRN_SANDBOX_EXIT_POWEROFF,
				   [END_REBOOT] = CAIRN_SANDBOX_EXIT_REBOOT,
				   [END_CRASHED] = CAIRN_SANDBOX_EXIT_CRASHED};
	(void)kill(-1, SIGKILL); /* everyone in the namespace but us */
	if (!reap_all_within(KILL_WAIT_MS))
		log_warn("some processes did not die");
	log_info("sandbox ends: %s (exit status %d)",
		 how == END_POWEROFF ? "power off" : "reboot", code[how]);
	_exit(code[how]); /* nothing buffered: logs are write(2)s */
}

static _Noreturn void pid1_end(const struct init_opts *o, enum pid1_end how)
{
	if (o->sandbox)
		end_sandbox(how);
	end_real(how);
}

static _Noreturn void orch_ended(const struct init_opts *o, pid_t pid, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == ORCH_EXIT_POWEROFF)
		pid1_end(o, END_POWEROFF);
	if (WIFEXITED(status) && WEXITSTATUS(status) == ORCH_EXIT_REBOOT)
		pid1_end(o, END_REBOOT);
	char reason[128];
	death_reason(status, reason, sizeof(reason));
	log_err("orchestrator (pid %d) %s: rebooting", (int)pid, reason);
	death_record(o, pid, status, reason);
	sync();
	pid1_end(o, END_CRASHED);
}

/* ---------------- PID 1 ---------------- */

/* The next signal; with a watchdog, wake up for its ticks too (returns -1). */
static int pid1_wait(const sigset_t *set, siginfo_t *si)
{
	int ms = wdog_wait_ms();
	if (ms < 0)
		return sigwaitinfo(set, si);
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	int sig = sigtimedwait(set, si, &ts);
	wdog_tick();
	return sig;
}

_Noreturn void pid1_main(const struct init_opts *o)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signals_default();
	pid_t orch = fork();
	if (orch == 0)
		orch_child(o);
	/* PID 1's own durable write (the death record) is not a test's target */
	unsetenv("CAIRN_CRASH_AT");
	unsetenv("CAIRN_FAIL_AT");
	if (orch < 0) {
		char reason[128];
		if (str_fmt(reason, sizeof(reason), "could not start: fork: %s", strerror(errno)) < 0)
			reason[0] = '\0'; /* cannot happen: strerror texts are short */
		log_err("orchestrator %s: rebooting", reason);
		death_record(o, -1, 0, reason);
		sync();
		pid1_end(o, END_CRASHED);
	}
	log_info("PID 1 up%s, orchestrator pid %d", o->sandbox ? " (sandbox)" : "", (int)orch);
	for (;;) {
		siginfo_t si;
		int sig = pid1_wait(&all, &si);
		int status;
		if (sig == SIGCHLD && reap(orch, &status))
			orch_ended(o, orch, status);
		else if (sig > 0 && is_forwarded(sig))
			(void)kill(orch, sig);
		else if (sig > 0 && sig != SIGCHLD)
			log_debug("signal %d ignored", sig);
	}
}

_Noreturn void pid1_give_up(void)
{
	log_err("cannot run as PID 1: rebooting in 10 s");
	sync();
	sleep(10);
	(void)reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* ---------------- sandbox mode ---------------- */

/* The namespace's PID 1, before it becomes PID 1 proper. */
static int sandbox_ns_setup(const struct init_opts *o, struct err *e)
{
	/* the outer process is the machine: if it dies, so does the namespace */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return err_set(e, errno, "mount proc on /proc: %s", strerror(errno));
	if (sethostname("cairn", 5) < 0)
		return err_set(e, errno, "sethostname: %s", strerror(errno));
	int r = storage_mkdir_p(o->statedir, 0755, e);
	if (r < 0)
		return err_prefix(e, "statedir");
	r = storage_mount_tmpfs(o->statedir, "mode=0755", e);
	if (r < 0)
		return err_prefix(e, "statedir");
	return 0;
}

static int exit_status_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	log_err("sandbox PID 1 killed by signal %d", WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

/* Forward signals to the namespace's PID 1 until it exits. */
static int sandbox_wait(pid_t pid, const sigset_t *set)
{
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(set, &si);
		int status;
		if (sig == SIGCHLD) {
			pid_t r = waitpid(pid, &status, WNOHANG);
			if (r == pid)
				return exit_status_of(status);
		} else if (sig > 0) {
			(void)kill(pid, sig);
		}
	}
}

int sandbox_main(const struct init_opts *o)
{
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPWR};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		sigaddset(&set, sigs[i]);
		signal(sigs[i], SIG_DFL); /* a shell may have left SIGINT ignored */
	}
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS) < 0) {
		log_err("sandbox: unshare(PID, mount, UTS namespaces): %s%s", strerror(errno),
			errno == EPERM ? " (sandbox mode needs root)" : "");
		return CAIRN_EXIT_FAILED;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		log_err("sandbox: make / private (MS_REC|MS_PRIVATE): %s", strerror(errno));
		return CAIRN_EXIT_FAILED;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_err("sandbox: fork: %s", strerror(errno));
		return CAIRN_EXIT_FAILED;
	}
	if (pid == 0) {
		struct err e = ERR_INIT;
		if (sandbox_ns_setup(o, &e) < 0) {
			log_err("sandbox: %s", e.msg);
			_exit(CAIRN_EXIT_FAILED);
		}
		pid1_main(o);
	}
	return sandbox_wait(pid, &set);
}
