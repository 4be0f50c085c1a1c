/* lib/loop.h — the one event loop: epoll, signalfd, absolute-deadline timers.
 *
 * Intrusive and allocation-free in steady state: the caller owns every
 * `struct loop_io` and `struct loop_timer` (usually embedded in its own
 * structs) and registers it; the loop only links it. Timers are absolute
 * CLOCK_MONOTONIC deadlines in nanoseconds (lib/util.h now_ns()); the loop
 * sleeps until the earliest one. Signals are blocked and delivered through a
 * signalfd that is drained until EAGAIN; the callback runs once per signal. */
#ifndef CAIRN_LIB_LOOP_H
#define CAIRN_LIB_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "err.h"

struct loop;
struct loop_io;
struct loop_timer;

/* `events` are EPOLLIN/EPOLLOUT/... as reported by epoll_wait. */
typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop_timer *t);
typedef void (*loop_signal_cb)(const struct signalfd_siginfo *si, void *data);

struct loop_io {
	int fd;
	loop_io_cb cb;
	void *data;
	bool registered;
};

struct loop_timer {
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	loop_timer_cb cb;
	void *data;
	bool armed;
	struct loop_timer *next; /* the loop's sorted list */
};

int loop_new(struct loop **out, struct err *e) _must_check_;
void loop_free(struct loop *l);

/* Watch io->fd for `events` (EPOLLIN | EPOLLOUT ...). */
int loop_io_add(struct loop *l, struct loop_io *io, uint32_t events, struct err *e) _must_check_;
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events, struct err *e) _must_check_;
/* Idempotent; safe from inside the io's own callback. Does not close the fd. */
void loop_io_del(struct loop *l, struct loop_io *io);

/* (Re)arm at an absolute deadline; disarm is idempotent and safe from any callback. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline_ns);
void loop_timer_arm_in(struct loop *l, struct loop_timer *t, uint64_t delay_ns);
void loop_timer_disarm(struct loop *l, struct loop_timer *t);

/* Block `set` for the process and deliver those signals to cb via a signalfd. */
int loop_signals(struct loop *l, const sigset_t *set, loop_signal_cb cb, void *data,
		 struct err *e) _must_check_;

/* Run until loop_quit(); returns the code given to loop_quit. One iteration:
 * fire due timers, wait for fds until the next deadline, dispatch. */
int loop_run(struct loop *l);
void loop_quit(struct loop *l, int code);
/* One bounded iteration (tests): waits at most timeout_ms. */
int loop_once(struct loop *l, int timeout_ms);

#endif
