/* init/early_watchdog.c — the hardware watchdog: PID 1 pets it, the
 * orchestrator proves it is alive.
 *
 * PID 1 is the one process that must never hang, but petting from PID 1
 * alone only proves that PID 1 runs. So the orchestrator writes a heartbeat
 * byte into a pipe every period P from a timer of its own event loop, and
 * PID 1 — which wakes every P anyway — pets the device only while those
 * bytes keep coming (one within 2P). Before the first heartbeat PID 1 pets
 * on its own for at most the grace (start-up runs before the loop does).
 * The device fd lives in PID 1 only; the orchestrator keeps the pipe's write
 * end. See init/README.md "Watchdog". */
#define _GNU_SOURCE /* pipe2 */
#define LOG_MODULE "watchdog"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/watchdog.h>

#include "../lib/log.h"
#include "../lib/loop.h"
#include "../lib/util.h"
#include "init.h"

#define NS_PER_S 1000000000ull

static struct {
	int fd;          /* the device; PID 1 only */
	int hb_r, hb_w;  /* heartbeat pipe: PID 1 reads, the orchestrator writes */
	bool test_hang;  /* TEST ONLY: stop the heartbeat after the first one */
	bool starved;    /* not petting (logged once per episode) */
	bool done;       /* the last pet happened */
	uint64_t next_tick;
	struct wdog_clock clk;
} wd = {.fd = -1, .hb_r = -1, .hb_w = -1};

bool wdog_should_pet(const struct wdog_clock *c, uint64_t now)
{
	if (c->last_beat_ns)
		return now - c->last_beat_ns <= 2 * c->period_ns;
	return now - c->opened_ns <= c->grace_ns;
}

/* Stop the device (the magic close) when we cannot go on with it. */
static void wdog_abandon(void)
{
	if (write(wd.fd, "V", 1) != 1)
		log_warn("magic close: %s (the watchdog keeps running)", strerror(errno));
	close(wd.fd);
	wd.fd = -1;
}

/* The timeout the driver took: it may round or refuse what we asked. */
static unsigned wdog_timeout(unsigned want)
{
	int t = (int)want;
	if (ioctl(wd.fd, WDIOC_SETTIMEOUT, &t) == 0 && t > 0)
		return (unsigned)t;
	log_warn("WDIOC_SETTIMEOUT %u s: %s", want, strerror(errno));
	if (ioctl(wd.fd, WDIOC_GETTIMEOUT, &t) == 0 && t > 0)
		return (unsigned)t;
	log_warn("WDIOC_GETTIMEOUT: %s; assuming %u s", strerror(errno), want);
	return want;
}

int wdog_open(const char *path, unsigned timeout_s, unsigned grace_s, bool test_hang,
	      struct err *e)
{
	wd.fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (wd.fd < 0)
		return err_set(e, errno, "open %s: %s", path, strerror(errno));
	unsigned t = wdog_timeout(timeout_s);
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		int err = errno;
		wdog_abandon();
		return err_set(e, err, "heartbeat pipe: %s", strerror(err));
	}
	wd.hb_r = p[0];
	wd.hb_w = p[1];
	wd.test_hang = test_hang;
	uint64_t now = now_ns(), period = (uint64_t)t * NS_PER_S / 4;
	wd.clk = (struct wdog_clock){
		.opened_ns = now,
		.period_ns = period < NS_PER_S ? NS_PER_S : period,
		.grace_ns = (uint64_t)grace_s * NS_PER_S,
	};
	wd.next_tick = now + wd.clk.period_ns;
	(void)ioctl(wd.fd, WDIOC_KEEPALIVE, 0);
	log_info("%s: timeout %u s, petted every %llu ms while the orchestrator's heartbeat "
		 "comes (start-up grace %u s)%s",
		 path, t, (unsigned long long)(wd.clk.period_ns / 1000000u), grace_s,
		 test_hang ? "; cairn.test_hang=1: the heartbeat stops after one (TEST)" : "");
	return 0;
}

bool wdog_active(void)
{
	return wd.fd >= 0 && !wd.done;
}

int wdog_wait_ms(void)
{
	if (!wdog_active())
		return -1;
	uint64_t now = now_ns();
	return now >= wd.next_tick ? 0 : (int)((wd.next_tick - now + 999999u) / 1000000u);
}

static void drain_heartbeats(uint64_t now)
{
	char buf[64];
	ssize_t n;
	bool beat = false;
	while ((n = read(wd.hb_r, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		beat = beat || n > 0;
	if (beat)
		wd.clk.last_beat_ns = now;
}

void wdog_tick(void)
{
	uint64_t now = now_ns();
	if (!wdog_active() || now < wd.next_tick)
		return;
	wd.next_tick = now + wd.clk.period_ns;
	drain_heartbeats(now);
	if (wdog_should_pet(&wd.clk, now)) {
		if (wd.starved)
			log_info("orchestrator heartbeat back: petting again");
		wd.starved = false;
		if (ioctl(wd.fd, WDIOC_KEEPALIVE, 0) < 0)
			log_warn("WDIOC_KEEPALIVE: %s", strerror(errno));
		return;
	}
	if (!wd.starved)
		log_err("%s: not petting the watchdog, the machine resets when it expires",
			wd.clk.last_beat_ns ? "no heartbeat from the orchestrator"
					    : "the orchestrator never sent a heartbeat within the grace");
	wd.starved = true;
}

void wdog_last_pet(void)
{
	if (!wdog_active())
		return;
	(void)ioctl(wd.fd, WDIOC_KEEPALIVE, 0);
	wd.done = true;
}

void wdog_child(void)
{
	if (wd.fd >= 0)
		close(wd.fd); /* no magic close: the device keeps running, PID 1 holds it */
	if (wd.hb_r >= 0)
		close(wd.hb_r);
	wd.fd = wd.hb_r = -1;
}

/* ---------------- the orchestrator's side ---------------- */

static struct loop_timer hb_timer;

static void heartbeat(struct loop_timer *t)
{
	if (write(wd.hb_w, "h", 1) < 0 && errno != EAGAIN)
		log_warn("heartbeat: %s", strerror(errno));
	if (wd.test_hang) { /* after the first beat: a hang, as PID 1 sees it */
		log_warn("cairn.test_hang=1: heartbeat stopped (TEST ONLY): the watchdog will reset");
		return;
	}
	loop_timer_arm_in(t->data, t, wd.clk.period_ns);
}

int pid1_heartbeat_start(struct loop *l, struct err *e)
{
	(void)e;
	if (wd.hb_w < 0)
		return 0; /* no watchdog: nothing to prove */
	hb_timer.cb = heartbeat;
	hb_timer.data = l;
	loop_timer_arm_in(l, &hb_timer, 0);
	return 0;
}
