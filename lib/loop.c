/* lib/loop.c — see loop.h.
 *
 * Invariants:
 * - `timers` is sorted by deadline (equal deadlines keep arming order); an
 *   armed timer is on exactly one of `timers` or `due`, `armed` says so.
 * - One iteration detaches every timer due at its start onto `due` and fires
 *   them from there: a callback that re-arms a timer (itself included) for
 *   "now" puts it back on `timers`, so it fires next iteration, after the fds
 *   had their turn; a callback that disarms a timer still on `due` removes it
 *   from `due`, so it does not fire.
 * - epoll events of the batch being dispatched point at caller-owned
 *   `struct loop_io`s; loop_io_del() blanks the deleted io's pending events,
 *   so a callback may delete (and free) any io, including one whose event is
 *   further down the batch.
 * - The loop never allocates after loop_new(). */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util.h"

#define LOOP_MAX_EVENTS 32
#define NS_PER_MS 1000000ull

struct loop {
	int epfd;
	struct loop_timer *timers; /* armed, sorted by deadline */
	struct loop_timer *due;    /* armed, detached for this iteration */
	struct epoll_event ev[LOOP_MAX_EVENTS];
	int nev; /* events of the batch being dispatched */
	struct loop_io sig_io;
	loop_signal_cb sig_cb;
	void *sig_data;
	sigset_t sig_set;
	int fired; /* callbacks run by the current loop_once() */
	bool quit;
	int code;
};

int loop_new(struct loop **out, struct err *e)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, ENOMEM, "event loop: out of memory");
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = err_set(e, errno, "epoll_create1: %s", strerror(errno));
		free(l);
		return r;
	}
	l->sig_io.fd = -1;
	sigemptyset(&l->sig_set);
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	for (struct loop_timer *t = l->timers; t; t = t->next)
		t->armed = false;
	for (struct loop_timer *t = l->due; t; t = t->next)
		t->armed = false;
	if (l->sig_io.fd >= 0)
		close(l->sig_io.fd);
	close(l->epfd);
	free(l);
}

/* ---------------- io ---------------- */

static int io_ctl(struct loop *l, int op, struct loop_io *io, uint32_t events, struct err *e)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0)
		return err_set(e, errno, "epoll_ctl(%s, fd %d): %s",
			       op == EPOLL_CTL_ADD ? "add" : "mod", io->fd, strerror(errno));
	return 0;
}

int loop_io_add(struct loop *l, struct loop_io *io, uint32_t events, struct err *e)
{
	if (io->registered)
		return err_set(e, EEXIST, "fd %d: already watched", io->fd);
	if (!io->cb)
		return err_set(e, EINVAL, "fd %d: no callback", io->fd);
	int r = io_ctl(l, EPOLL_CTL_ADD, io, events, e);
	if (r < 0)
		return r;
	io->registered = true;
	return 0;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events, struct err *e)
{
	if (!io->registered)
		return err_set(e, ENOENT, "fd %d: not watched", io->fd);
	return io_ctl(l, EPOLL_CTL_MOD, io, events, e);
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
	if (!io->registered)
		return;
	/* ENOENT/EBADF: the fd was closed first; epoll already forgot it. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->registered = false;
	for (int i = 0; i < l->nev; i++)
		if (l->ev[i].data.ptr == io)
			l->ev[i].data.ptr = NULL;
}

/* ---------------- timers ---------------- */

/* Remove t from the list at *head; true if it was there. */
static bool timer_unlink(struct loop_timer **head, struct loop_timer *t)
{
	for (struct loop_timer **p = head; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			t->next = NULL;
			return true;
		}
	}
	return false;
}

void loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	if (!timer_unlink(&l->timers, t))
		(void)timer_unlink(&l->due, t);
	t->armed = false;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline_ns)
{
	loop_timer_disarm(l, t);
	t->deadline = deadline_ns;
	struct loop_timer **p = &l->timers;
	while (*p && (*p)->deadline <= deadline_ns)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	t->armed = true;
}

void loop_timer_arm_in(struct loop *l, struct loop_timer *t, uint64_t delay_ns)
{
	uint64_t now = now_ns();
	uint64_t deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
	loop_timer_arm(l, t, deadline);
}

/* Fire every timer due now. A timer is disarmed before its callback runs. */
static void timers_fire(struct loop *l)
{
	uint64_t now = now_ns();
	struct loop_timer **p = &l->timers;
	while (*p && (*p)->deadline <= now)
		p = &(*p)->next;
	if (p == &l->timers)
		return;
	l->due = l->timers; /* detach the due prefix */
	l->timers = *p;
	*p = NULL;
	while (l->due) {
		struct loop_timer *t = l->due;
		l->due = t->next;
		t->next = NULL;
		t->armed = false;
		l->fired++;
		t->cb(t);
	}
}

/* epoll_wait timeout: the caller's bound, shortened to reach the next
 * deadline, rounded up to whole ms (never wake before the deadline). */
static int timers_timeout(const struct loop *l, int max_ms)
{
	if (!l->timers)
		return max_ms;
	uint64_t now = now_ns();
	if (l->timers->deadline <= now)
		return 0;
	uint64_t ms = (l->timers->deadline - now + NS_PER_MS - 1) / NS_PER_MS;
	if (ms > INT_MAX)
		ms = INT_MAX;
	if (max_ms >= 0 && (uint64_t)max_ms < ms)
		return max_ms;
	return (int)ms;
}

/* ---------------- signals ---------------- */

/* One signal per read: the callback runs once per signal, drained until
 * EAGAIN so a burst of queued signals is handled in one wake-up. */
static void signals_drain(struct loop_io *io, uint32_t events)
{
	struct loop *l = io->data;
	(void)events;
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(io->fd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return; /* EAGAIN: drained */
		l->fired++;
		l->sig_cb(&si, l->sig_data);
	}
}

static int signals_update(struct loop *l, const sigset_t *set, struct err *e)
{
	sigset_t all = l->sig_set;
	for (int s = 1; s < NSIG; s++)
		if (sigismember(set, s) == 1)
			sigaddset(&all, s);
	if (sigprocmask(SIG_BLOCK, &all, NULL) < 0)
		return err_set(e, errno, "block signals: %s", strerror(errno));
	int fd = signalfd(l->sig_io.fd, &all, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "signalfd: %s", strerror(errno));
	l->sig_io.fd = fd;
	l->sig_set = all;
	return 0;
}

int loop_signals(struct loop *l, const sigset_t *set, loop_signal_cb cb, void *data, struct err *e)
{
	if (!cb)
		return err_set(e, EINVAL, "signals: no callback");
	int r = signals_update(l, set, e);
	if (r < 0)
		return r;
	l->sig_cb = cb;
	l->sig_data = data;
	if (l->sig_io.registered)
		return 0;
	l->sig_io.cb = signals_drain;
	l->sig_io.data = l;
	return loop_io_add(l, &l->sig_io, EPOLLIN, e);
}

/* ---------------- running ---------------- */

static void io_dispatch(struct loop *l)
{
	for (int i = 0; i < l->nev; i++) {
		struct loop_io *io = l->ev[i].data.ptr;
		if (!io)
			continue; /* deleted by an earlier callback of this batch */
		if (io != &l->sig_io)
			l->fired++; /* signals count one per signal, in signals_drain */
		io->cb(io, l->ev[i].events);
	}
	l->nev = 0;
}

/* Returns the number of callbacks run (timers, fds, one per signal), or a negative errno if epoll_wait
 * failed (only a bug can make it: EBADF, EFAULT, EINVAL). EINTR is an empty
 * iteration. */
int loop_once(struct loop *l, int timeout_ms)
{
	l->fired = 0;
	timers_fire(l);
	if (l->quit)
		return l->fired;
	int timeout = l->fired ? 0 : timers_timeout(l, timeout_ms);
	int n = epoll_wait(l->epfd, l->ev, LOOP_MAX_EVENTS, timeout);
	if (n < 0)
		return errno == EINTR ? l->fired : -errno;
	l->nev = n;
	io_dispatch(l);
	if (!l->quit)
		timers_fire(l);
	return l->fired;
}

int loop_run(struct loop *l)
{
	while (!l->quit) {
		int r = loop_once(l, -1);
		if (r < 0)
			return r;
	}
	l->quit = false; /* the loop may be run again */
	return l->code;
}

void loop_quit(struct loop *l, int code)
{
	l->quit = true;
	l->code = code;
}
