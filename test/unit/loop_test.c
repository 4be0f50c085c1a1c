/* test/unit/loop_test.c — lib/loop.c: timers, fds, signals, quit.
 *
 * Timings are real (CLOCK_MONOTONIC) but the assertions only use lower
 * bounds ("not before the deadline") and generous upper bounds, so a loaded
 * machine slows the test down without making it fail. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/loop.h"
#include "lib/util.h"

#define MS 1000000ull

struct rec {
	struct loop *l;
	int order[16];
	uint64_t at[16];
	int n;
};

struct tmr {
	struct loop_timer t;
	struct rec *r;
	int id;
	int rearm;                 /* re-arm itself 5 ms later this many more times */
	int rearm_due;             /* re-arm itself as already due this many more times */
	struct loop_timer *victim; /* disarm this one when firing */
	bool quit;
};

static void tmr_cb(struct loop_timer *lt)
{
	struct tmr *t = (struct tmr *)lt;
	struct rec *r = t->r;
	assert_false(lt->armed); /* disarmed before its callback runs */
	assert_true(r->n < 16);
	r->order[r->n] = t->id;
	r->at[r->n++] = now_ns();
	if (t->victim)
		loop_timer_disarm(r->l, t->victim);
	if (t->rearm > 0) {
		t->rearm--;
		loop_timer_arm_in(r->l, lt, 5 * MS);
	}
	if (t->rearm_due > 0) {
		t->rearm_due--;
		loop_timer_arm(r->l, lt, 0);
	}
	if (t->quit)
		loop_quit(r->l, 40 + t->id);
}

/* An io that drains its pipe and records itself as id 100. */
struct rec_io {
	struct loop_io io;
	struct rec *r;
};

static void rec_io_cb(struct loop_io *io, uint32_t events)
{
	struct rec_io *p = (struct rec_io *)io;
	char buf[16];
	(void)events;
	while (read(io->fd, buf, sizeof(buf)) > 0)
		;
	assert_true(p->r->n < 16);
	p->r->order[p->r->n] = 100;
	p->r->at[p->r->n++] = now_ns();
}

static void tmr_init(struct tmr *t, struct rec *r, int id)
{
	memset(t, 0, sizeof(*t));
	t->t.cb = tmr_cb;
	t->r = r;
	t->id = id;
}

static int setup(void **state)
{
	struct rec *r = calloc(1, sizeof(*r));
	struct err e = ERR_INIT;
	assert_int_equal(loop_new(&r->l, &e), 0);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rec *r = *state;
	loop_free(r->l);
	free(r);
	return 0;
}

static void test_timers_in_deadline_order_not_early(void **state)
{
	struct rec *r = *state;
	struct tmr a, b, c;
	tmr_init(&a, r, 1);
	tmr_init(&b, r, 2);
	tmr_init(&c, r, 3);
	c.quit = true;
	uint64_t t0 = now_ns();
	/* close together: a loop that fired "nearly due" timers early would show */
	uint64_t dl[4] = {0, t0 + 10 * MS, t0 + 7 * MS, t0 + 11 * MS};
	loop_timer_arm(r->l, &c.t, dl[3]);
	loop_timer_arm(r->l, &a.t, dl[1]);
	loop_timer_arm(r->l, &b.t, dl[2]);
	assert_int_equal(loop_run(r->l), 43);
	assert_int_equal(r->n, 3);
	int want[] = {2, 1, 3};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r->order[i], want[i]);
		assert_true(r->at[i] >= dl[want[i]]); /* never early */
	}
	/* the loop slept until the deadlines, it did not wait for anything longer */
	assert_true(r->at[2] - t0 < 2000 * MS);
}

static void test_loop_once_wakes_for_deadline(void **state)
{
	struct rec *r = *state;
	struct tmr a;
	tmr_init(&a, r, 1);
	uint64_t t0 = now_ns();
	loop_timer_arm(r->l, &a.t, t0 + 15 * MS);
	/* one iteration bounded by 5 s sleeps until the 15 ms deadline, rounded
	 * up to whole ms: it wakes once, not before the deadline and again */
	int n = 0, iterations = 0;
	while (r->n == 0 && iterations < 100) {
		n += loop_once(r->l, 5000);
		iterations++;
	}
	assert_int_equal(n, 1);
	assert_int_equal(iterations, 1);
	assert_true(r->at[0] >= t0 + 15 * MS);
	assert_true(r->at[0] - t0 < 2000 * MS);
	/* nothing armed, nothing watched: a bounded iteration runs nothing */
	assert_int_equal(loop_once(r->l, 10), 0);
}

static void test_rearm_from_callback(void **state)
{
	struct rec *r = *state;
	struct tmr a, q;
	tmr_init(&a, r, 1);
	tmr_init(&q, r, 9);
	a.rearm = 3;
	q.quit = true;
	uint64_t t0 = now_ns();
	loop_timer_arm(r->l, &a.t, t0 + 1 * MS);
	loop_timer_arm(r->l, &q.t, t0 + 200 * MS);
	assert_int_equal(loop_run(r->l), 49);
	assert_int_equal(r->n, 5); /* a four times, then q */
	for (int i = 0; i < 4; i++)
		assert_int_equal(r->order[i], 1);
	for (int i = 1; i < 4; i++)
		assert_true(r->at[i] >= r->at[i - 1] + 5 * MS);
	assert_int_equal(r->order[4], 9);
	assert_false(a.t.armed);
}

/* A callback that re-arms its timer for "already due" does not starve the
 * fds: it fires again at the end of the iteration, after the fds had their
 * turn, and not again before the next iteration. */
static void test_rearm_due_does_not_starve_io(void **state)
{
	struct rec *r = *state;
	struct tmr a;
	tmr_init(&a, r, 1);
	a.rearm_due = 100;
	int fds[2];
	struct err e = ERR_INIT;
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	struct rec_io io = {.io = {.fd = fds[0], .cb = rec_io_cb}, .r = r};
	assert_int_equal(loop_io_add(r->l, &io.io, EPOLLIN, &e), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	loop_timer_arm(r->l, &a.t, 0);
	assert_int_equal(loop_once(r->l, 0), 3);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 100); /* the io */
	assert_int_equal(r->order[2], 1);
	assert_true(a.t.armed);
	loop_timer_disarm(r->l, &a.t);
	loop_timer_disarm(r->l, &a.t); /* idempotent */
	assert_false(a.t.armed);
	assert_int_equal(loop_once(r->l, 20), 0);
	loop_io_del(r->l, &io.io);
	close(fds[0]);
	close(fds[1]);
}

static void test_disarm_other_from_callback(void **state)
{
	struct rec *r = *state;
	struct tmr a, b, c, q;
	tmr_init(&a, r, 1);
	tmr_init(&b, r, 2);
	tmr_init(&c, r, 3);
	tmr_init(&q, r, 4);
	q.quit = true;
	a.victim = &b.t; /* b is still pending in the sorted list */
	uint64_t t0 = now_ns();
	loop_timer_arm(r->l, &a.t, t0 + 2 * MS);
	loop_timer_arm(r->l, &b.t, t0 + 10 * MS);
	loop_timer_arm(r->l, &c.t, t0 + 10 * MS);
	loop_timer_arm(r->l, &q.t, t0 + 30 * MS);
	assert_int_equal(loop_run(r->l), 44);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 3);
	assert_int_equal(r->order[2], 4);
	assert_false(b.t.armed);
}

/* Both due in the same iteration: the first disarms the second, which was
 * already detached as due; it must not fire. */
static void test_disarm_same_batch(void **state)
{
	struct rec *r = *state;
	struct tmr a, b, c;
	tmr_init(&a, r, 1);
	tmr_init(&b, r, 2);
	tmr_init(&c, r, 3);
	a.victim = &b.t;
	loop_timer_arm(r->l, &a.t, 1);
	loop_timer_arm(r->l, &b.t, 2);
	loop_timer_arm(r->l, &c.t, 3);
	assert_int_equal(loop_once(r->l, 0), 2);
	assert_int_equal(r->n, 2);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 3);
	assert_int_equal(loop_once(r->l, 10), 0);
}

struct pio {
	struct loop_io io;
	struct rec *r;
	struct pio *other; /* delete this one from the callback */
	bool del_self;
	int calls;
	char got[8];
};

static void pio_cb(struct loop_io *io, uint32_t events)
{
	struct pio *p = (struct pio *)io;
	assert_true(events & EPOLLIN);
	p->calls++;
	ssize_t n = read(io->fd, p->got, sizeof(p->got) - 1);
	assert_true(n > 0);
	p->got[n] = '\0';
	if (p->del_self)
		loop_io_del(p->r->l, io);
	if (p->other) {
		loop_io_del(p->r->l, &p->other->io);
		memset(p->other, 0xa5, sizeof(*p->other)); /* as if freed */
	}
}

static void pipe_io(struct pio *p, struct rec *r, int fds[2])
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	p->io.fd = fds[0];
	p->io.cb = pio_cb;
	p->r = r;
}

static void test_io_on_pipe(void **state)
{
	struct rec *r = *state;
	struct pio p;
	int fds[2];
	struct err e = ERR_INIT;
	pipe_io(&p, r, fds);
	assert_int_equal(loop_io_add(r->l, &p.io, EPOLLIN, &e), 0);
	assert_true(p.io.registered);
	assert_int_equal(loop_io_add(r->l, &p.io, EPOLLIN, &e), -EEXIST);
	assert_int_equal(loop_once(r->l, 10), 0);
	assert_int_equal(write(fds[1], "hi", 2), 2);
	assert_int_equal(loop_once(r->l, 1000), 1);
	assert_int_equal(p.calls, 1);
	assert_string_equal(p.got, "hi");
	/* EPOLLOUT only: readable data no longer wakes it */
	assert_int_equal(loop_io_mod(r->l, &p.io, EPOLLOUT, &e), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(loop_once(r->l, 20), 0);
	loop_io_del(r->l, &p.io);
	loop_io_del(r->l, &p.io); /* idempotent */
	assert_false(p.io.registered);
	assert_int_equal(loop_io_mod(r->l, &p.io, EPOLLIN, &e), -ENOENT);
	close(fds[0]);
	close(fds[1]);
}

static void test_io_del_inside_callback(void **state)
{
	struct rec *r = *state;
	struct pio p;
	int fds[2];
	struct err e = ERR_INIT;
	pipe_io(&p, r, fds);
	p.del_self = true;
	assert_int_equal(loop_io_add(r->l, &p.io, EPOLLIN, &e), 0);
	assert_int_equal(write(fds[1], "a", 1), 1);
	assert_int_equal(loop_once(r->l, 1000), 1);
	assert_false(p.io.registered);
	assert_int_equal(write(fds[1], "b", 1), 1);
	assert_int_equal(loop_once(r->l, 20), 0);
	assert_int_equal(p.calls, 1);
	/* it can be added again */
	assert_int_equal(loop_io_add(r->l, &p.io, EPOLLIN, &e), 0);
	assert_int_equal(loop_once(r->l, 1000), 1);
	assert_int_equal(p.calls, 2);
	close(fds[0]);
	close(fds[1]);
}

/* Two fds ready in one batch; whichever runs first deletes (and scribbles
 * over) the other: the other's pending event must not be dispatched. */
static void test_io_del_other_in_batch(void **state)
{
	struct rec *r = *state;
	struct pio a, b;
	int fa[2], fb[2];
	struct err e = ERR_INIT;
	pipe_io(&a, r, fa);
	pipe_io(&b, r, fb);
	a.other = &b;
	b.other = &a;
	assert_int_equal(loop_io_add(r->l, &a.io, EPOLLIN, &e), 0);
	assert_int_equal(loop_io_add(r->l, &b.io, EPOLLIN, &e), 0);
	assert_int_equal(write(fa[1], "a", 1), 1);
	assert_int_equal(write(fb[1], "b", 1), 1);
	assert_int_equal(loop_once(r->l, 1000), 1);
	struct pio *ran = a.calls == 1 ? &a : &b;
	assert_int_equal(ran->calls, 1);
	loop_io_del(r->l, &ran->io);
	int fds[] = {fa[0], fa[1], fb[0], fb[1]};
	for (size_t i = 0; i < 4; i++)
		close(fds[i]);
}

struct sigrec {
	struct loop *l;
	int signo[16];
	int n;
	int quit_after;
};

static void sig_cb(const struct signalfd_siginfo *si, void *data)
{
	struct sigrec *s = data;
	assert_true(s->n < 16);
	s->signo[s->n++] = (int)si->ssi_signo;
	if (s->quit_after && s->n == s->quit_after)
		loop_quit(s->l, 7);
}

static void test_signals(void **state)
{
	struct rec *r = *state;
	struct sigrec s = {.l = r->l};
	struct err e = ERR_INIT;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(loop_signals(r->l, &set, sig_cb, &s, &e), 0);
	assert_int_equal(raise(SIGUSR1), 0); /* blocked: queued on the signalfd */
	assert_int_equal(loop_once(r->l, 1000), 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.signo[0], SIGUSR1);
	assert_int_equal(loop_once(r->l, 20), 0); /* once per signal */
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_once(r->l, 1000), 1);
	assert_int_equal(s.n, 2);

	/* a second call adds signals; real-time ones queue: 5 sent, 5 delivered
	 * in one wake-up (the signalfd is drained until EAGAIN) */
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	assert_int_equal(loop_signals(r->l, &set, sig_cb, &s, &e), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = i}), 0);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_once(r->l, 1000), 6);
	assert_int_equal(s.n, 8);
	int usr1 = 0, rt = 0;
	for (int i = 2; i < 8; i++) {
		usr1 += s.signo[i] == SIGUSR1;
		rt += s.signo[i] == SIGRTMIN;
	}
	assert_int_equal(usr1, 1);
	assert_int_equal(rt, 5);

	s.quit_after = 9;
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(r->l), 7);
}

static void quit_cb(struct loop_timer *t)
{
	struct rec *r = t->data;
	loop_quit(r->l, 123);
}

static void test_quit_code(void **state)
{
	struct rec *r = *state;
	struct loop_timer t = {.cb = quit_cb, .data = r};
	loop_timer_arm_in(r->l, &t, 1 * MS);
	assert_int_equal(loop_run(r->l), 123);
	/* quit before run: returns at once, and the loop is usable again */
	loop_quit(r->l, -5);
	assert_int_equal(loop_run(r->l), -5);
	loop_timer_arm_in(r->l, &t, 1 * MS);
	assert_int_equal(loop_run(r->l), 123);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal with a handler (not on the signalfd) interrupts epoll_wait:
 * an empty iteration, not an error. */
static void test_eintr(void **state)
{
	struct rec *r = *state;
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = {.it_value = {.tv_usec = 20000}};
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	uint64_t t0 = now_ns();
	assert_int_equal(loop_once(r->l, 3000), 0);
	assert_true(now_ns() - t0 < 2000 * MS);
	signal(SIGALRM, SIG_DFL);
}

static void test_bad_args(void **state)
{
	struct rec *r = *state;
	struct err e = ERR_INIT;
	struct loop_io io = {.fd = 12345, .cb = pio_cb};
	assert_int_equal(loop_io_add(r->l, &io, EPOLLIN, &e), -EBADF);
	assert_non_null(strstr(e.msg, "fd 12345"));
	assert_false(io.registered);
	struct loop_io nocb = {.fd = 0};
	assert_int_equal(loop_io_add(r->l, &nocb, EPOLLIN, &e), -EINVAL);
	sigset_t set;
	sigemptyset(&set);
	assert_int_equal(loop_signals(r->l, &set, NULL, NULL, &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timers_in_deadline_order_not_early, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_loop_once_wakes_for_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rearm_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rearm_due_does_not_starve_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disarm_other_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disarm_same_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_on_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_del_inside_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_del_other_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quit_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eintr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
