/* test/unit/runtime_apply_test.c — runtime/: live switches (runtime_apply:
 * keep the identical, stop the changed and removed, start group by group),
 * operator control of one container, container events and log paths.
 * The fake plugin and the fixture are in runtime_fake.h. */
#include "runtime_fake.h"

static void apply_n(struct fx *x, const char *rev, const struct rt_group_spec *g, size_t ng,
		    const struct rt_ctr_spec *c, size_t nc)
{
	struct err e = ERR_INIT;
	x->started_calls = 0;
	x->started_reason[0] = '\0';
	if (runtime_apply(x->rt, rev, g, ng, c, nc, on_started, x, &e) < 0)
		fail_msg("runtime_apply %s: %s", rev, e.msg);
}
#define APPLY(x, rev, g, c) apply_n(x, rev, g, ARRAY_SIZE(g), c, ARRAY_SIZE(c))

static bool started_ok(struct fx *x, unsigned ms)
{
	if (!run_until(x, was_started, ms))
		fail_msg("no started callback within %u ms", ms);
	if (!x->started_ok)
		fail_msg("started with a failure: %s", x->started_reason);
	return true;
}

static const char *changes(struct fx *x)
{
	static char buf[512];
	runtime_apply_changes(x->rt, buf, sizeof(buf));
	return buf;
}

static const char *log_of(struct fx *x, const char *name)
{
	static char buf[512];
	struct err e = ERR_INIT;
	if (runtime_log_path(x->rt, name, buf, sizeof(buf), &e) < 0)
		fail_msg("runtime_log_path %s: %s", name, e.msg);
	return buf;
}

static size_t sigs_to(const char *name)
{
	size_t n;
	rec_of(F.sigs, F.nsigs, name, &n);
	return n;
}

static bool spawned(struct fx *x, const char *name, size_t n, unsigned ms)
{
	uint64_t end = now_ns() + ms * MS;
	while (spawns_of(name) < n && now_ns() < end)
		run_for(x, 10);
	return spawns_of(name) >= n;
}

/* The first boot is an apply onto nothing: groups in order, goals, report,
 * logs under logs/<rev>/. */
static void test_apply_boot(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const hi[] = {"run", "say:hi from c1", NULL};
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, hi),
				  ctr("c2", 1, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "7", g, c);
	assert_string_equal(runtime_phase(x->rt), "starting");
	assert_true(wait_state(x, "c2", CTR_STARTED, 3000));
	assert_int_equal(spawn_of("c2")->states[0], CTR_STARTED); /* c1 first */
	run_for(x, 50);
	assert_int_equal(x->started_calls, 0); /* c2 is not READY yet */
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ready(x->rt, "c2", &e), 0);
	started_ok(x, 1000);
	assert_string_equal(runtime_phase(x->rt), "ready");
	assert_string_equal(changes(x), "c1,c2");
	char want[256];
	FMT(want, "%s/logs/7/c1.log", x->storage_dir);
	assert_string_equal(log_of(x, "c1"), want);
	assert_non_null(strstr(slurp(want), "hi from c1\n"));
	stop_all(x, 5000);
}

/* Applying the same containers again (another revision, fresh copies of
 * every spec) keeps every process: no spawn, no signal, no remount. */
static void test_apply_identical_keeps(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	assert_int_equal(write_text(x->sock, ""), 0);
	char *const a1[] = {"run", "say:one", NULL}, *const a2[] = {"run", "say:one", NULL};
	struct rt_volume vols[] = {{"data", "/data", RT_PERSIST_PERMANENT},
				   {"tmp", "/tmp", RT_PERSIST_BOOT}};
	struct rt_kv kv[] = {{"lxc.signal.stop", "SIGUSR2"}, {"lxc.cgroup2.memory.max", "64M"}};
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, a1),
				  ctr("c2", 1, RT_GOAL_MOUNTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c3", 1, RT_GOAL_READY, RT_RESTART_ON_FAILURE, ARGV_RUN)};
	c[2].volumes = vols, c[2].nvolumes = 2, c[2].lxc = kv, c[2].nlxc = 2;
	c[2].ctrl_socket = x->sock;
	APPLY(x, "7", g, c);
	assert_true(wait_state(x, "c3", CTR_STARTED, 3000));
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ready(x->rt, "c3", &e), 0);
	started_ok(x, 1000);
	pid_t p1 = status_of(x, "c1").pid, p3 = status_of(x, "c3").pid;
	int mounts = mounts_under(x->dir, NULL, 0);
	assert_true(mounts >= 9);
	struct rt_ctr_spec again[] = {c[0], c[1], c[2]};
	again[0].argv = a2;
	uint64_t t = now_ns();
	APPLY(x, "8", g, again);
	started_ok(x, 1000);
	print_message("identical apply reported in %.1f ms\n", (now_ns() - t) / 1e6);
	assert_string_equal(changes(x), "");
	assert_int_equal(status_of(x, "c1").pid, p1);
	assert_int_equal(status_of(x, "c3").pid, p3);
	assert_int_equal(status_of(x, "c3").state, CTR_READY);
	assert_int_equal(status_of(x, "c2").state, CTR_MOUNTED);
	assert_int_equal(F.nspawns, 2);
	assert_int_equal(F.nsigs, 0);
	assert_int_equal(F.nrels, 0);
	assert_int_equal(mounts_under(x->dir, NULL, 0), mounts);
	char want[256];
	FMT(want, "%s/logs/7/c1.log", x->storage_dir); /* still its first log */
	assert_string_equal(log_of(x, "c1"), want);
	assert_string_equal(runtime_phase(x->rt), "ready");
	stop_all(x, 5000);
}

static const struct rec_mounts *last_mounts(const char *name)
{
	const struct rec_mounts *m = NULL;
	for (size_t i = 0; i < F.nmounts; i++)
		if (strcmp(F.mounts[i].name, name) == 0)
			m = &F.mounts[i];
	return m;
}

/* One changed container (argv) is the only one restarted; a `revision`
 * volume resolves to another directory per revision, so its container is
 * restarted too. The restarted ones log into logs/<new rev>/. */
static void test_apply_change_one(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const v1[] = {"run", "say:v1", NULL}, *const v2[] = {"run", "say:v2", NULL};
	struct rt_volume cache[] = {{"cache", "/var/cache", RT_PERSIST_REVISION}};
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_NO, v1),
				  ctr("c3", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	c[2].volumes = cache, c[2].nvolumes = 1;
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	pid_t p1 = status_of(x, "c1").pid, p2 = status_of(x, "c2").pid,
	      p3 = status_of(x, "c3").pid;
	c[1].argv = v2;
	APPLY(x, "8", g, c);
	started_ok(x, 3000);
	assert_string_equal(changes(x), "c2,c3");
	assert_int_equal(status_of(x, "c1").pid, p1);
	assert_int_equal(spawns_of("c1"), 1);
	assert_int_equal(sigs_to("c1"), 0);
	assert_int_equal(spawns_of("c2"), 2);
	assert_int_equal(spawns_of("c3"), 2);
	assert_true(status_of(x, "c2").pid != p2 && status_of(x, "c3").pid != p3);
	assert_int_equal(first_sig("c2")->sig, SIGTERM);
	char want[256];
	FMT(want, "%s/volumes/revision/8/c3/cache", x->storage_dir);
	assert_string_equal(last_mounts("c3")->source[0], want);
	FMT(want, "%s/logs/8/c2.log", x->storage_dir);
	assert_string_equal(log_of(x, "c2"), want);
	run_for(x, 50);
	assert_string_equal(slurp(want), "v2\n");
	FMT(want, "%s/logs/7/c2.log", x->storage_dir);
	assert_non_null(strstr(slurp(want), "v1\ncairn: stopped\n"));
	FMT(want, "%s/logs/7/c1.log", x->storage_dir);
	assert_string_equal(log_of(x, "c1"), want);
	stop_all(x, 5000);
}

/* A removed container is stopped, unmounted and its state dir removed
 * before the added one starts; the others are untouched. */
static void test_apply_remove_add(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c3", 1, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	char c2dir[256];
	FMT(c2dir, "%s/ctr/c2", x->statedir);
	assert_int_equal(mounts_under(c2dir, NULL, 0), 3); /* tmpfs, squashfs, overlay */
	struct rt_ctr_spec next[] = {c[0], c[2],
				     ctr("c4", 1, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN)};
	APPLY(x, "8", g, next);
	started_ok(x, 3000);
	assert_string_equal(changes(x), "c2,c4");
	assert_int_equal(runtime_count(x->rt), 3);
	assert_int_equal(runtime_find(x->rt, "c2"), -1);
	assert_int_equal(status_of(x, "c4").state, CTR_STARTED);
	assert_int_equal(mounts_under(c2dir, NULL, 0), 0);
	assert_int_equal(access(c2dir, F_OK), -1);
	assert_non_null(first_rel("c2"));
	assert_true(first_rel("c2")->t < spawn_of("c4")->t);
	assert_int_equal(spawns_of("c1") + spawns_of("c3"), 2);
	assert_int_equal(sigs_to("c1") + sigs_to("c3"), 0);
	stop_all(x, 5000);
}

/* Two revisions that put the same names in other groups: every retiree is
 * down (last group of the old revision first) before anything starts, and
 * the new revision starts in its own group order. */
static void test_apply_order(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 1, 100, 1000);
	char *const deaf[] = {"run", "ignore-term", NULL}, *const slow[] = {"run", "polls:10", NULL};
	struct rt_group_spec g[] = {{"platform", 10}, {"app", 10}};
	struct rt_ctr_spec old[] = {ctr("a", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				    ctr("b", 1, RT_GOAL_STARTED, RT_RESTART_NO, deaf),
				    ctr("c", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "7", g, old);
	started_ok(x, 3000);
	struct rt_ctr_spec nw[] = {ctr("a", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				   ctr("b", 0, RT_GOAL_STARTED, RT_RESTART_NO, slow),
				   ctr("c", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				   ctr("d", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "8", g, nw);
	started_ok(x, 5000);
	assert_string_equal(changes(x), "a,b,d");
	const struct rec *sa = first_sig("a"), *sb = first_sig("b");
	assert_true(sa && sb);
	assert_true(sa->t >= sb->t + 1000 * MS); /* b (app) needed SIGKILL, a waited */
	const struct rec *ra = first_rel("a"), *rb = first_rel("b");
	const struct rec *a2 = nth_of(F.spawns, F.nspawns, "a", 1),
			 *b2 = nth_of(F.spawns, F.nspawns, "b", 1), *d = spawn_of("d");
	assert_true(ra && rb && a2 && b2 && d);
	assert_true(b2->t > ra->t && b2->t > rb->t && d->t > ra->t); /* stops, then starts */
	assert_true(a2->t >= b2->t + 100 * MS); /* platform (b: 10 polls) first */
	assert_int_equal(a2->states[1], CTR_STARTED);
	assert_int_equal(a2->states[3], CTR_STARTED);
	assert_int_equal(spawns_of("c"), 1);
	assert_int_equal(sigs_to("c"), 0);
	stop_all(x, 5000);
}

/* One apply at a time; a refused or invalid apply changes nothing. */
static void test_apply_busy(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN)};
	struct err e = ERR_INIT;
	APPLY(x, "7", g, c);
	assert_int_equal(runtime_apply(x->rt, "8", g, 1, c, 1, on_started, x, &e), -EBUSY);
	assert_true(wait_state(x, "c1", CTR_STARTED, 3000));
	err_clear(&e);
	assert_int_equal(runtime_apply(x->rt, "8", g, 1, c, 1, on_started, x, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "still being applied"));
	assert_int_equal(runtime_ready(x->rt, "c1", &e), 0);
	started_ok(x, 1000);
	struct rt_ctr_spec bad[] = {c[0]};
	snprintf(bad[0].name, sizeof(bad[0].name), "Bad");
	assert_int_equal(runtime_apply(x->rt, "8", g, 1, bad, 1, on_started, x, &e), -EINVAL);
	assert_string_equal(e.field, "containers[0]");
	assert_string_equal(runtime_phase(x->rt), "ready");
	assert_int_equal(status_of(x, "c1").state, CTR_READY);
	APPLY(x, "8", g, c);
	started_ok(x, 1000);
	x->stopped = false;
	runtime_stop_all(x->rt, on_stopped, x);
	assert_int_equal(runtime_apply(x->rt, "9", g, 1, c, 1, on_started, x, &e), -EBUSY);
	assert_true(run_until(x, is_stopped, 5000));
	assert_int_equal(spawns_of("c1"), 1);
}

/* stop_all while an apply stops its retirees: the retirees go down first,
 * then the rest; the apply's callback never runs and its set stays loaded. */
static void test_apply_then_stop_all(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 1, 100, 1000);
	char *const deaf[] = {"run", "ignore-term", NULL};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_NO, deaf)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	struct rt_ctr_spec next[] = {c[0], ctr("c3", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "8", g, next);
	assert_int_equal(runtime_find(x->rt, "c2"), -1); /* the status shows rev 8 at once */
	assert_int_equal(status_of(x, "c3").state, CTR_STOPPED);
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ctr_start(x->rt, "c3", &e), -EBUSY); /* c2 is not down yet */
	run_for(x, 100);
	assert_non_null(first_sig("c2"));
	assert_null(first_rel("c2")); /* deaf: still stopping */
	stop_all(x, 5000);
	assert_int_equal(x->started_calls, 0);
	assert_true(first_rel("c1")->t > first_rel("c2")->t); /* the retiree first */
	assert_int_equal(runtime_count(x->rt), 2);
	assert_int_equal(spawns_of("c3"), 0);
	assert_int_equal(status_of(x, "c1").state, CTR_STOPPED);
}

static struct {
	struct rt_group_spec g[2];
	struct rt_ctr_spec c[2];
	int rc;
	bool tried;
} rb;

/* What the update engine does: the try failed, roll back from the callback. */
static void on_started_rollback(void *data, bool ok, const char *reason)
{
	struct fx *x = data;
	on_started(data, ok, reason);
	if (ok || rb.tried)
		return;
	rb.tried = true;
	struct err e = ERR_INIT;
	rb.rc = runtime_apply(x->rt, "7", rb.g, 2, rb.c, 2, on_started, x, &e);
}

static bool two_reports(struct fx *x)
{
	return x->started_calls >= 2;
}

static void test_apply_rollback_from_callback(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const bad[] = {"exit:3", "after:50", NULL};
	memset(&rb, 0, sizeof(rb));
	rb.g[0] = (struct rt_group_spec){"platform", 10};
	rb.g[1] = (struct rt_group_spec){"app", 10};
	rb.c[0] = ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN);
	rb.c[1] = ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN);
	apply_n(x, "7", rb.g, 2, rb.c, 2);
	started_ok(x, 3000);
	pid_t p1 = status_of(x, "c1").pid;
	struct rt_ctr_spec try[] = {rb.c[0], ctr("c2", 1, RT_GOAL_READY, RT_RESTART_NO, bad)};
	struct err e = ERR_INIT;
	x->started_calls = 0;
	assert_int_equal(runtime_apply(x->rt, "8", rb.g, 2, try, 2, on_started_rollback, x, &e), 0);
	assert_true(run_until(x, two_reports, 5000));
	assert_true(rb.tried);
	assert_int_equal(rb.rc, 0);
	assert_true(x->started_ok); /* the rollback's report */
	assert_string_equal(changes(x), "c2");
	assert_int_equal(status_of(x, "c2").state, CTR_STARTED);
	assert_int_equal(spawns_of("c2"), 3);
	assert_int_equal(status_of(x, "c1").pid, p1);
	assert_int_equal(spawns_of("c1"), 1);
	char want[256];
	FMT(want, "%s/logs/7/c2.log", x->storage_dir);
	assert_string_equal(log_of(x, "c2"), want);
	stop_all(x, 5000);
}

/* ---------------- container events ---------------- */

#define MAXEV 64
static struct {
	struct evrec {
		char name[NAME_MAX_LEN + 1];
		enum rt_ctr_event ev;
		unsigned restarts;
		char reason[128];
	} r[MAXEV];
	size_t n;
	bool in_call; /* the test is inside a runtime call */
	bool nested;  /* an event arrived inside one */
	struct fx *x;
} EV;

static void on_event(void *data, const char *name, enum rt_ctr_event ev, unsigned restarts,
		     const char *reason)
{
	(void)data;
	EV.nested |= EV.in_call;
	if (EV.n < MAXEV) {
		struct evrec *r = &EV.r[EV.n++];
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->ev = ev, r->restarts = restarts;
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
	}
	/* the update engine's reaction to a crash loop, from the callback */
	struct err e = ERR_INIT;
	if (strcmp(name, "c1") == 0 && ev == RT_CTR_EXITED && restarts >= 3)
		assert_int_equal(runtime_ctr_stop(EV.x->rt, "c1", &e), 0);
}

/* The events of `name` as "G0 E0:reason F0:reason ..." (goal met, exited,
 * failed, with the restarts so far). */
static const char *events_of(const char *name)
{
	static char buf[1024];
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < EV.n; i++) {
		const struct evrec *r = &EV.r[i];
		if (strcmp(r->name, name) != 0)
			continue;
		const char *k = r->ev == RT_CTR_GOAL_MET ? "G" : r->ev == RT_CTR_EXITED ? "E" : "F";
		int n = snprintf(buf + len, sizeof(buf) - len, "%s%s%u%s%s", len ? " " : "", k,
				 r->restarts, r->reason[0] ? ":" : "", r->reason);
		if (n > 0 && (size_t)n < sizeof(buf) - len)
			len += (size_t)n;
	}
	return buf;
}

static void test_events_crash_loop(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 20, 40);
	memset(&EV, 0, sizeof(EV));
	EV.x = x;
	runtime_set_event_cb(x->rt, on_event, NULL);
	char *const loop1[] = {"exit:1", "after:80", NULL}, *const once[] = {"exit:3", "after:80", NULL};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ON_FAILURE, loop1),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_NO, once),
				  ctr("c3", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	EV.in_call = true;
	APPLY(x, "7", g, c);
	EV.in_call = false;
	assert_true(wait_state(x, "c2", CTR_FAILED, 3000));
	assert_true(spawned(x, "c1", 4, 3000));
	assert_true(wait_state(x, "c1", CTR_STOPPED, 3000));
	run_for(x, 200);
	assert_false(EV.nested);
	assert_string_equal(events_of("c1"), "G0 E0:exited with status 1 G1 E1:exited with status 1 "
					     "G2 E2:exited with status 1 G3 E3:exited with status 1");
	assert_string_equal(events_of("c2"),
			    "G0 E0:exited with status 3 F0:exited with status 3");
	assert_string_equal(events_of("c3"), "G0");
	assert_int_equal(spawns_of("c1"), 4);
	/* a stop the runtime asked for is not an exit event */
	stop_all(x, 5000);
	assert_string_equal(events_of("c3"), "G0");
}

/* ---------------- operator control ---------------- */

static void test_ctr_stop_start(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 3000, 3000);
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	pid_t p = status_of(x, "c1").pid;
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ctr_stop(x->rt, "c1", &e), 0);
	assert_true(wait_state(x, "c1", CTR_STOPPED, 3000));
	run_for(x, 300); /* restart "always", yet it stays down */
	assert_int_equal(status_of(x, "c1").state, CTR_STOPPED);
	assert_int_equal(spawns_of("c1"), 1);
	char dir[256];
	FMT(dir, "%s/ctr/c1", x->statedir);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(mounts_under(x->dir, NULL, 0), 0);
	assert_int_equal(runtime_ctr_start(x->rt, "c1", &e), 0);
	assert_true(wait_state(x, "c1", CTR_STARTED, 3000));
	assert_true(status_of(x, "c1").pid != p);
	assert_int_equal(runtime_ctr_start(x->rt, "c1", &e), 0); /* runs: nothing to do */
	run_for(x, 50);
	assert_int_equal(spawns_of("c1"), 2);
	assert_int_equal(runtime_ctr_stop(x->rt, "nope", &e), -ENOENT);
	assert_int_equal(runtime_ctr_start(x->rt, "nope", &e), -ENOENT);
	assert_int_equal(runtime_ctr_restart(x->rt, "nope", &e), -ENOENT);
	char small[8];
	assert_int_equal(runtime_log_path(x->rt, "c1", small, sizeof(small), &e), -ENAMETOOLONG);
	assert_int_equal(runtime_log_path(x->rt, "nope", small, sizeof(small), &e), -ENOENT);
	x->stopped = false;
	runtime_stop_all(x->rt, on_stopped, x);
	assert_int_equal(runtime_ctr_start(x->rt, "c1", &e), -EBUSY);
	assert_true(run_until(x, is_stopped, 5000));
}

/* An apply starts what does not run, even an identical container the
 * operator stopped; it then logs under the new revision. */
static void test_apply_starts_stopped(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ctr_stop(x->rt, "c1", &e), 0);
	assert_true(wait_state(x, "c1", CTR_STOPPED, 3000));
	APPLY(x, "8", g, c);
	started_ok(x, 3000);
	assert_string_equal(changes(x), "c1");
	assert_int_equal(spawns_of("c1"), 2);
	assert_int_equal(spawns_of("c2"), 1);
	char want[256];
	FMT(want, "%s/logs/8/c1.log", x->storage_dir);
	assert_string_equal(log_of(x, "c1"), want);
	FMT(want, "%s/logs/7/c2.log", x->storage_dir);
	assert_string_equal(log_of(x, "c2"), want);
	stop_all(x, 5000);
}

/* restart: a running container is stopped (grace, then SIGKILL for a deaf
 * one) and started again; a BACKOFF one starts now, not after its delay. */
static void test_ctr_restart(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 1, 3000, 3000);
	char *const deaf[] = {"run", "ignore-term", NULL}, *const crash[] = {"exit:1", "after:50", NULL};
	struct rt_group_spec g[] = {{"platform", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_ALWAYS, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_ON_FAILURE, crash),
				  ctr("c3", 0, RT_GOAL_STARTED, RT_RESTART_NO, deaf)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	struct err e = ERR_INIT;
	pid_t p1 = status_of(x, "c1").pid;
	assert_int_equal(runtime_ctr_restart(x->rt, "c1", &e), 0);
	assert_true(spawned(x, "c1", 2, 3000));
	assert_true(wait_state(x, "c1", CTR_STARTED, 3000));
	assert_true(status_of(x, "c1").pid != p1);
	assert_int_equal(first_sig("c1")->sig, SIGTERM);
	assert_true(wait_state(x, "c2", CTR_BACKOFF, 3000));
	assert_int_equal(runtime_ctr_restart(x->rt, "c2", &e), 0);
	assert_true(spawned(x, "c2", 2, 2000)); /* the backoff was 3 s */
	assert_true(wait_state(x, "c2", CTR_BACKOFF, 3000));
	assert_int_equal(runtime_ctr_start(x->rt, "c2", &e), 0);
	assert_true(spawned(x, "c2", 3, 2000)); /* not after a backoff */
	uint64_t t = now_ns();
	assert_int_equal(runtime_ctr_restart(x->rt, "c3", &e), 0);
	assert_int_equal(status_of(x, "c3").state, CTR_STOPPING);
	assert_true(spawned(x, "c3", 2, 4000));
	assert_true(now_ns() - t >= 1000 * MS); /* the grace period, then SIGKILL */
	assert_true(wait_state(x, "c3", CTR_STARTED, 3000));
	assert_int_equal(nth_of(F.sigs, F.nsigs, "c3", 1)->sig, SIGKILL);
	stop_all(x, 5000);
}

/* An operator stop during start-up misses the goal at once (no waiting for
 * the group timeout) and the container stays down when its group starts. */
static void test_ctr_stop_during_startup(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	struct rt_group_spec g[] = {{"platform", 30}, {"app", 30}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 1, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "7", g, c);
	struct err e = ERR_INIT;
	assert_int_equal(runtime_ctr_stop(x->rt, "c2", &e), 0);
	assert_true(run_until(x, was_started, 2000));
	assert_false(x->started_ok);
	assert_string_equal(x->started_reason,
			    "container c2: goal STARTED not reached: stopped by the operator");
	assert_int_equal(runtime_ready(x->rt, "c1", &e), 0);
	run_for(x, 200);
	assert_int_equal(spawns_of("c2"), 0);
	assert_int_equal(status_of(x, "c2").state, CTR_STOPPED);
	assert_int_equal(x->started_calls, 1);
	stop_all(x, 5000);
}

static int mounts_in(struct fx *x, const char *leaf)
{
	char dir[256];
	FMT(dir, "%s/ctr/%s", x->statedir, leaf);
	return mounts_under(dir, NULL, 0);
}

static bool c2_ready(struct fx *x)
{
	struct err e = ERR_INIT;
	if (!wait_state(x, "c2", CTR_STARTED, 3000))
		fail_msg("c2 did not start");
	if (runtime_ready(x->rt, "c2", &e) < 0)
		fail_msg("runtime_ready: %s", e.msg);
	return started_ok(x, 1000);
}

/* A changed container whose predecessor runs is prepared inside the apply
 * call (image, overlay, plugin config) in the other state dir, before the
 * predecessor gets its stop signal; the spawn comes after the predecessor
 * is down and released. The state dirs alternate: ctr/c2, ctr/c2.1. */
static void test_apply_prepares_replacement_first(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const v1[] = {"run", "say:v1", NULL}, *const v2[] = {"run", "say:v2", NULL};
	struct rt_volume vols[] = {{"data", "/data", RT_PERSIST_PERMANENT}};
	struct rt_group_spec g[] = {{"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_READY, RT_RESTART_ON_FAILURE, v1)};
	c[1].volumes = vols, c[1].nvolumes = 1;
	APPLY(x, "7", g, c);
	c2_ready(x);
	pid_t p1 = status_of(x, "c1").pid;
	size_t preps = F.npreps;
	c[1].argv = v2;
	APPLY(x, "8", g, c);
	/* before the loop ran: prepared beside the running predecessor */
	assert_int_equal(F.npreps, preps + 1);
	assert_string_equal(F.preps[preps].name, "c2");
	assert_int_equal(sigs_to("c2"), 0);
	assert_int_equal(mounts_in(x, "c2"), 3);
	assert_int_equal(mounts_in(x, "c2.1"), 3); /* tmpfs, squashfs, overlay */
	assert_true(last_mounts("c2")->rootfs_has_image);
	char want[256];
	FMT(want, "%s/volumes/permanent/c2/data", x->storage_dir);
	assert_string_equal(last_mounts("c2")->source[0], want); /* bound at spawn */
	assert_int_equal(status_of(x, "c2").state, CTR_MOUNTED);
	c2_ready(x);
	const struct rec *sig = first_sig("c2"), *rel = first_rel("c2"),
			 *sp = nth_of(F.spawns, F.nspawns, "c2", 1);
	assert_true(sig && rel && sp);
	assert_true(F.preps[preps].t < sig->t);
	assert_true(sp->t > rel->t); /* the predecessor is down before the spawn */
	assert_int_equal(mounts_in(x, "c2"), 0);
	assert_int_equal(access(want, F_OK), 0);
	assert_int_equal(mounts_in(x, "c2.1"), 3);
	assert_int_equal(status_of(x, "c1").pid, p1);
	FMT(want, "%s/logs/8/c2.log", x->storage_dir);
	run_for(x, 50);
	assert_string_equal(slurp(want), "v2\n");
	c[1].argv = v1; /* and back: prepared in ctr/c2 again */
	APPLY(x, "9", g, c);
	assert_int_equal(mounts_in(x, "c2"), 3);
	c2_ready(x);
	assert_int_equal(mounts_in(x, "c2.1"), 0);
	FMT(want, "%s/ctr/c2.1", x->statedir);
	assert_int_equal(access(want, F_OK), -1);
	assert_int_equal(spawns_of("c2"), 3);
	assert_int_equal(spawns_of("c1"), 1);
	stop_all(x, 5000);
}

/* A replacement that cannot be prepared (its image does not mount, its
 * plugin config is refused) fails the apply call: the predecessors keep
 * running untouched, nothing of the replacements stays mounted or held,
 * and the runtime takes the next apply. */
static void test_apply_prepare_failure_keeps_old(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const v2[] = {"run", "say:v2", NULL}, *const bad[] = {"run", "fail-prepare", NULL};
	struct rt_group_spec g[] = {{"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, ARGV_RUN),
				  ctr("c2", 0, RT_GOAL_READY, RT_RESTART_NO, ARGV_RUN)};
	APPLY(x, "7", g, c);
	c2_ready(x);
	pid_t p1 = status_of(x, "c1").pid, p2 = status_of(x, "c2").pid;
	int mounts = mounts_under(x->dir, NULL, 0);
	size_t rels = F.nrels;
	struct rt_ctr_spec n1[] = {c[0], c[1]};
	n1[1].image = "/nonexistent/image.sqfs";
	struct err e = ERR_INIT;
	assert_true(runtime_apply(x->rt, "8", g, 1, n1, 2, on_started, x, &e) < 0);
	assert_non_null(strstr(e.msg, "container c2"));
	assert_non_null(strstr(e.msg, "/nonexistent/image.sqfs"));
	struct rt_ctr_spec n2[] = {c[0], c[1]}; /* c1 prepares, then c2 fails */
	n2[0].argv = v2;
	n2[1].argv = bad;
	err_clear(&e);
	assert_true(runtime_apply(x->rt, "8", g, 1, n2, 2, on_started, x, &e) < 0);
	assert_non_null(strstr(e.msg, "container c2"));
	assert_non_null(strstr(e.msg, "on purpose"));
	assert_int_equal(F.nrels, rels + 1); /* c1's prepared handle released */
	assert_string_equal(F.rels[rels].name, "c1");
	run_for(x, 100);
	assert_int_equal(sigs_to("c1") + sigs_to("c2"), 0);
	assert_int_equal(status_of(x, "c1").pid, p1);
	assert_int_equal(status_of(x, "c2").pid, p2);
	assert_int_equal(status_of(x, "c2").state, CTR_READY);
	assert_string_equal(runtime_phase(x->rt), "ready");
	assert_int_equal(mounts_under(x->dir, NULL, 0), mounts);
	assert_int_equal(mounts_in(x, "c1.1") + mounts_in(x, "c2.1"), 0);
	n2[1].argv = ARGV_RUN;
	x->started_calls = 0;
	assert_int_equal(runtime_apply(x->rt, "8", g, 1, n2, 2, on_started, x, &e), 0);
	started_ok(x, 3000);
	assert_true(status_of(x, "c1").pid != p1);
	assert_int_equal(status_of(x, "c2").pid, p2);
	stop_all(x, 5000);
}

/* A retiree is down when its init is: its replacement is spawned while
 * the old keeper still lingers (liblxc's teardown), whose exit is then
 * nobody's; nothing of the retiree stays mounted. */
static void test_apply_retiree_down_at_init_death(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const v1[] = {"run", "linger:2500", NULL}, *const v2[] = {"run", "say:v2", NULL};
	struct rt_group_spec g[] = {{"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c2", 0, RT_GOAL_STARTED, RT_RESTART_NO, v1)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	pid_t keeper = F.children[0];
	assert_true(status_of(x, "c2").pid != keeper); /* the init is the keeper's child */
	c[0].argv = v2;
	APPLY(x, "8", g, c);
	started_ok(x, 3000);
	const struct rec *sig = first_sig("c2"), *sp = nth_of(F.spawns, F.nspawns, "c2", 1);
	assert_true(sig && sp);
	print_message("replacement spawned %.1f ms after the stop signal\n",
		      (sp->t - sig->t) / 1e6);
	assert_true(sp->t - sig->t < 1500 * MS); /* the keeper lingers 2.5 s */
	assert_int_equal(kill(keeper, 0), 0); /* still tearing down */
	assert_int_equal(mounts_in(x, "c2"), 0);
	run_for(x, 3000);
	assert_true(kill(keeper, 0) < 0); /* gone and reaped */
	assert_int_equal(status_of(x, "c2").state, CTR_STARTED);
	stop_all(x, 5000);
}

/* Right after a spawn the init is polled every millisecond, not every 10. */
static void test_fast_init_poll(void **state)
{
	need_root();
	struct fx *x = *state;
	rt_make(x, 2, 100, 1000);
	char *const slow[] = {"run", "polls:3", NULL};
	struct rt_group_spec g[] = {{"app", 10}};
	struct rt_ctr_spec c[] = {ctr("c1", 0, RT_GOAL_STARTED, RT_RESTART_NO, slow)};
	APPLY(x, "7", g, c);
	started_ok(x, 3000);
	print_message("init polls within 30 ms: %u, shortest gap %.2f ms\n", F.npolls,
		      F.poll_gap_min / 1e6);
	/* at the steady rate every gap is 10 ms or more; a stall of the
	 * machine may lose polls, never make them closer */
	assert_true(F.npolls >= 2 && F.poll_gap_min < 5 * MS);
	stop_all(x, 5000);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_apply_boot),
		T(test_apply_identical_keeps),
		T(test_apply_change_one),
		T(test_apply_remove_add),
		T(test_apply_order),
		T(test_apply_busy),
		T(test_apply_then_stop_all),
		T(test_apply_rollback_from_callback),
		T(test_events_crash_loop),
		T(test_ctr_stop_start),
		T(test_apply_starts_stopped),
		T(test_ctr_restart),
		T(test_ctr_stop_during_startup),
		T(test_apply_prepares_replacement_first),
		T(test_apply_prepare_failure_keeps_old),
		T(test_fast_init_poll),
		T(test_apply_retiree_down_at_init_death),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
