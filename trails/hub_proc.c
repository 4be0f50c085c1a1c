/* trails/hub_proc.c — helper processes seen from the orchestrator: the
 * secrets a job needs (read here, as root, never by the helper), the fork,
 * the non-blocking pipe read from the loop, the silence watchdog, the kill.
 * A helper's word is never trusted: its records go through hub_rx_*, and
 * whatever it claims is checked again by the caller on disk. */
#define LOG_MODULE "hub"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "hub_internal.h"

#define NS_PER_S 1000000000ull
#define READ_CHUNK 4096
#define READS_PER_TURN 64 /* a chatty helper does not monopolise the loop */
#define PROGRESS_EVERY_NS 200000000ull

/* ---- secrets ---- */

static int read_blob(const char *path, size_t max, struct hub_blob *b, struct err *e)
{
	if (!path[0])
		return 0;
	int r = file_read_all(AT_FDCWD, path, max, &b->data, &b->len, e);
	return r < 0 ? err_prefix(e, "hub") : 0;
}

static int read_token(const char *path, char *out, struct err *e)
{
	_cleanup_free_ char *buf = NULL;
	size_t n = 0;
	if (!path[0])
		return 0;
	int r = file_read_all(AT_FDCWD, path, HUB_TOKEN_MAX + 2, &buf, &n, e);
	if (r < 0)
		return err_prefix(e, "hub.token_file");
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	if (n == 0 || n > HUB_TOKEN_MAX)
		return err_field(e, EINVAL, "hub.token_file", "%s: want 1..%u bytes of token", path,
				 HUB_TOKEN_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e)
			return err_field(e, EINVAL, "hub.token_file",
					 "%s: the token must be printable ASCII without blanks",
					 path);
	memcpy(out, buf, n);
	out[n] = '\0';
	explicit_bzero(buf, n);
	return 0;
}

void hub_job_secrets_free(struct hub_job *job)
{
	struct hub_blob *b[] = {&job->ca, &job->cert, &job->key};
	for (size_t i = 0; i < ARRAY_SIZE(b); i++) {
		if (b[i]->data)
			explicit_bzero(b[i]->data, b[i]->len);
		free(b[i]->data);
		b[i]->data = NULL;
	}
	explicit_bzero(job->token, sizeof(job->token));
}

int hub_job_secrets(const struct trails_hub *h, struct hub_job *job, struct err *e)
{
	int r = read_token(h->token_file, job->token, e);
	if (r == 0)
		r = read_blob(h->ca, HUB_CA_MAX, &job->ca, e);
	if (r == 0)
		r = read_blob(h->cert, HUB_PEM_MAX, &job->cert, e);
	if (r == 0)
		r = read_blob(h->key, HUB_PEM_MAX, &job->key, e);
	if (r < 0)
		hub_job_secrets_free(job);
	job->pin = h->pin;
	return r;
}

/* ---- the pipe ---- */

static void proc_end(struct hub_proc *p)
{
	struct trails_hub *h = p->h;
	loop_io_del(h->loop, &p->io);
	if (p->io.fd >= 0)
		close(p->io.fd);
	p->io.fd = -1;
	loop_timer_disarm(h->loop, &p->watchdog);
	if (p->pid > 0)
		kill(p->pid, SIGKILL); /* not reaped yet: the pid is still ours */
	p->running = false;
	if (p->done)
		p->done(p);
}

static void proc_blame(struct hub_proc *p, const struct err *why)
{
	p->err = *why;
	log_warn("helper %d: %s", (int)p->pid, why->msg);
	proc_end(p);
}

static void proc_silent(struct loop_timer *t)
{
	struct hub_proc *p = t->data;
	struct err e = ERR_INIT;
	err_set(&e, ETIMEDOUT, "helper said nothing for %d s: killed", HUB_SILENCE_S);
	proc_blame(p, &e);
}

static void proc_read(struct loop_io *io, uint32_t events)
{
	struct hub_proc *p = io->data;
	(void)events;
	uint8_t buf[READ_CHUNK];
	struct err e = ERR_INIT;
	uint64_t staged = p->rx.staged;
	for (int i = 0; i < READS_PER_TURN; i++) {
		ssize_t n = read(io->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* EOF (or a read error: the same end) */
			if (hub_rx_eof(&p->rx, &e) < 0)
				return proc_blame(p, &e);
			return proc_end(p);
		}
		if (hub_rx_feed(&p->rx, buf, (size_t)n, &e) < 0)
			return proc_blame(p, &e);
		loop_timer_arm_in(p->h->loop, &p->watchdog, HUB_SILENCE_S * NS_PER_S);
	}
	uint64_t now = now_ns();
	if (p->progress && p->rx.staged != staged && now - p->progress_ns >= PROGRESS_EVERY_NS) {
		p->progress_ns = now; /* a chatty helper costs reads, not reports */
		p->progress(p);
	}
}

int hub_proc_start(struct hub_proc *p, const struct hub_job *job, struct err *e)
{
	struct trails_hub *h = p->h;
	int fd = -1;
	hub_rx_init(&p->rx);
	err_clear(&p->err);
	p->kind = job->kind;
	int r = hub_helper_spawn(job, h->stagefd, &p->pid, &fd, e);
	if (r < 0)
		return r;
	p->io = (struct loop_io){.fd = fd, .cb = proc_read, .data = p};
	r = loop_io_add(h->loop, &p->io, EPOLLIN, e);
	if (r < 0) {
		kill(p->pid, SIGKILL);
		close(fd);
		p->io.fd = -1;
		return r;
	}
	p->watchdog.cb = proc_silent;
	p->watchdog.data = p;
	loop_timer_arm_in(h->loop, &p->watchdog, HUB_SILENCE_S * NS_PER_S);
	p->running = true;
	return 0;
}

void hub_proc_stop(struct hub_proc *p)
{
	if (!p->h)
		return;
	p->done = p->progress = NULL;
	if (p->running)
		proc_end(p);
	else if (p->pid > 0)
		kill(p->pid, SIGKILL);
}

bool trails_hub_child_exited(struct trails_hub *h, pid_t pid, int status)
{
	if (!h || pid <= 0)
		return false;
	struct hub_proc *ps[] = {&h->main, &h->rep};
	for (size_t i = 0; i < ARRAY_SIZE(ps); i++) {
		if (ps[i]->pid != pid)
			continue;
		ps[i]->pid = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
			log_debug("helper %d ended with status 0x%x", (int)pid, (unsigned)status);
		return true;
	}
	return false;
}
