/* trails/engine_verify.c — the re-hash before a switch, off the loop.
 *
 * trails_run checks the request and the revision's signed document in the
 * loop (milliseconds) and hands the revision here. A forked worker re-hashes
 * every object — seconds for a large revision on a CPU without SHA
 * instructions, during which the loop used to serve nothing — and writes one
 * result record into a pipe: the loop watches the pipe and goes on serving
 * (the control API, the hub, the containers' events). Meanwhile the engine's
 * op is TR_OP_VERIFY: another switch is refused (EBUSY), /v1/progress says
 * "verify". At the end of the pipe the switch goes on as before
 * (tr_run_verified: reboot or live), or the revision becomes FAILED
 * "digest"/"load" with the worker's message (tr_run_failed); a worker that
 * ends without a result (killed) fails it as "load".
 *
 * The worker only hashes: it closes every fd it inherited but the store's
 * and its pipe (a client socket the orchestrator closes must not stay open
 * here), touches neither the loop nor the store's metadata, dies with the
 * orchestrator (PR_SET_PDEATHSIG) and leaves by _exit. The orchestrator
 * reaps it like any other child; the engine holds a pidfd to kill it when
 * it is freed mid-verification. See trails/UPDATE.md "Switch". */
#define _GNU_SOURCE /* pipe2 */
#define LOG_MODULE "trails"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "engine_internal.h"

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Close every fd but 0-2, the store's and the result pipe: a client socket
 * or a pipe the orchestrator closes must not stay open here (its peer
 * would wait for the worker's end to see EOF). */
static void close_others(const struct storage *s, int fd)
{
	int keep[4] = {fd};
	size_t n = 1 + storage_fds(s, keep + 1);
	qsort(keep, n, sizeof(keep[0]), int_cmp);
	int from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] > from)
			close_range((unsigned)from, (unsigned)keep[i] - 1, 0);
		if (keep[i] + 1 > from)
			from = keep[i] + 1;
	}
	close_range((unsigned)from, ~0U, 0);
}

static _Noreturn void worker(struct trails *tr, const struct revision *r, int fd, pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(2);
	(void)prctl(PR_SET_NAME, "cairn-verify");
	close_others(tr->cfg.storage, fd);
	struct tr_verify_result res = {.err = ERR_INIT};
	res.code = trails_objects_verify(tr->cfg.storage, r, &res.err);
	_exit(write_all(fd, &res, sizeof(res)) < 0 ? 1 : 0);
}

static void finish(struct trails *tr)
{
	struct tr_verify *v = &tr->verify;
	loop_io_del(tr->cfg.loop, &v->io);
	close(v->io.fd);
	v->io.fd = -1;
	if (v->pidfd >= 0)
		close(v->pidfd);
	v->pidfd = -1;
	struct revision *r = TAKE_PTR(v->r);
	tr->op = TR_OP_NONE;
	struct err e = ERR_INIT;
	int code = v->res.code;
	if (v->got != sizeof(v->res))
		code = err_set(&e, EPIPE, "the verification worker ended without a result");
	else if (code < 0) {
		e = v->res.err;
		e.field[sizeof(e.field) - 1] = e.msg[sizeof(e.msg) - 1] = '\0'; /* from a pipe */
	}
	struct tr_rec *rec = tr_rec_find(tr, v->rev);
	uint64_t ms = (now_ns() - v->t0_ns) / 1000000u;
	if (!rec || !rec->installed) {
		log_warn("revision %llu went away while it was verified", (unsigned long long)v->rev);
		revision_free(r);
	} else if (code < 0) {
		log_warn("revision %llu: not run: %s", (unsigned long long)v->rev, e.msg);
		tr_run_failed(tr, rec, code, &e);
		revision_free(r);
	} else {
		log_info("revision %llu: every object verified in %llu ms", (unsigned long long)v->rev,
			 (unsigned long long)ms);
		if (tr_run_verified(tr, rec, r, &e) < 0)
			log_err("revision %llu: %s", (unsigned long long)v->rev, e.msg);
	}
}

static void on_result(struct loop_io *io, uint32_t events)
{
	(void)events;
	struct trails *tr = io->data;
	struct tr_verify *v = &tr->verify;
	for (;;) {
		char *p = (char *)&v->res + v->got;
		size_t want = v->got < sizeof(v->res) ? sizeof(v->res) - v->got : 0;
		char spill[64];
		ssize_t n = read(io->fd, want ? p : spill, want ? want : sizeof(spill));
		if (n > 0 && want) {
			v->got += (size_t)n;
			continue;
		}
		if (n > 0)
			continue; /* more than a record: ignored until the end */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		finish(tr); /* end of the pipe (or an error reading it) */
		return;
	}
}

int tr_verify_start(struct trails *tr, struct tr_rec *rec, struct revision *r, struct err *e)
{
	if (!tr->cfg.loop) {
		int ret = trails_objects_verify(tr->cfg.storage, r, e);
		if (ret < 0) {
			tr_run_failed(tr, rec, ret, e);
			revision_free(r);
			return ret;
		}
		return tr_run_verified(tr, rec, r, e);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		int err = errno;
		revision_free(r);
		return err_set(e, err, "verification pipe: %s", strerror(err));
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		worker(tr, r, p[1], parent);
	}
	int err = errno;
	close(p[1]);
	struct tr_verify *v = &tr->verify;
	/* A pidfd, not the pid: the loop may reap the worker before it reads the
	 * pipe's end, and a pid killed after that could be anyone's. Not reaped
	 * yet here: the loop has not run since the fork. */
	*v = (struct tr_verify){.rev = rec->number, .pidfd = pid > 0 ? pidfd_open(pid, 0) : -1,
				.t0_ns = now_ns(), .io = {.fd = p[0], .cb = on_result, .data = tr}};
	int ret = pid < 0 ? err_set(e, err, "fork the verification worker: %s", strerror(err)) : 0;
	if (ret == 0 && fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
		ret = err_set(e, errno, "verification pipe: %s", strerror(errno));
	if (ret == 0)
		ret = loop_io_add(tr->cfg.loop, &v->io, EPOLLIN, e);
	if (ret < 0) {
		if (pid > 0)
			kill(pid, SIGKILL); /* still unreaped: the loop has not run */
		if (v->pidfd >= 0)
			close(v->pidfd);
		close(p[0]);
		*v = (struct tr_verify){.io = {.fd = -1}, .pidfd = -1};
		revision_free(r);
		return ret;
	}
	v->r = r;
	tr->op = TR_OP_VERIFY;
	log_info("revision %llu: verifying every object (worker %d)", (unsigned long long)v->rev,
		 (int)pid);
	return 0;
}

void tr_verify_stop(struct trails *tr)
{
	struct tr_verify *v = &tr->verify;
	if (tr->op != TR_OP_VERIFY)
		return;
	if (v->pidfd >= 0) {
		(void)pidfd_send_signal(v->pidfd, SIGKILL, NULL, 0); /* ESRCH once it ended */
		close(v->pidfd);
	}
	loop_io_del(tr->cfg.loop, &v->io);
	close(v->io.fd);
	revision_free(TAKE_PTR(v->r));
	*v = (struct tr_verify){.io = {.fd = -1}, .pidfd = -1};
	tr->op = TR_OP_NONE;
}
