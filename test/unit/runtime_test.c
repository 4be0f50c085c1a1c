/* test/unit/runtime_test.c — runtime/: groups, goals, restart backoff,
 * stop order, mounts, volumes, console logs, spec validation. The fake
 * plugin and the fixture are in runtime_fake.h. */
#include "runtime_fake.h"

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
		/* never sooner than the backoff; the bound above only catches a
		 * lost timer (a loaded machine delays a spawn by tens of ms) */
		assert_true(gap[i] >= want[i] * MS);
		assert_true(gap[i] < (want[i] + 1000) * MS);
	}
	assert_true(status_of(x, "c1").restarts >= 5);
	assert_string_equal(status_of(x, "c1").reason, "exited with status 1");
	char log[256];
	FMT(log, "%s/logs/7/c1.log", x->storage_dir);
	const char *text = slurp(log);
	assert_non_null(strstr(text, "crashing\n"));
	/* the delays themselves, in order: they grow, then stay at the cap */
	const char *at = text;
	for (size_t i = 0; i < 5; i++) {
		char line[96];
		FMT(line, "cairn: exited with status 1; restarting in %llu ms\n",
		    (unsigned long long)want[i]);
		at = strstr(at, line);
		assert_non_null(at);
		at += strlen(line);
	}
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
