/* ctrl/follow.c — log bodies: a file streamed by libmicrohttpd through a
 * content reader, and followers (?follow=1) that wait for more.
 *
 * A follower whose file has nothing new is suspended from its content
 * reader (MHD_suspend_connection: libmicrohttpd then neither polls nor
 * times it out). One ctrl-wide timer, armed while any follower is
 * suspended, looks every CTRL_FOLLOW_POLL_MS at each one: bytes appended,
 * a rotated file, or a client that hung up (POLLRDHUP on its socket: a
 * suspended connection's disconnect is otherwise never noticed) resume it.
 * A resume wakes the daemon through its inter-thread channel (an eventfd
 * in its epoll set), so the loop runs it on the next iteration.
 *
 * Bounded: at most max_followers per socket (503 beyond). Before a daemon
 * stops, every suspended follower is resumed and told to end
 * (libmicrohttpd must not be stopped with suspended connections). */
#define _GNU_SOURCE /* POLLRDHUP */
#define LOG_MODULE "ctrl"
#include <microhttpd.h>

#include "ctrl_internal.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/util.h"

#define READ_BLOCK (16 * 1024)
#define NS_PER_MS 1000000ull

struct ctrl_follower {
	struct ctrl_sock *s;
	struct MHD_Connection *conn;
	struct ctrl_logfile *lf;
	bool listed;    /* a follower: in s->followers, counted */
	bool suspended; /* counted in ctrl.nsuspended */
	bool ended;     /* the socket goes away: end the body */
	struct ctrl_follower *next;
};

static void follower_resume(struct ctrl_follower *f)
{
	struct ctrl *c = f->s->ctrl;
	if (!f->suspended)
		return;
	f->suspended = false;
	c->nsuspended--;
	MHD_resume_connection(f->conn);
	/* the eventfd wakes the daemon; its timer makes sure of it */
	loop_timer_arm(c->loop, &f->s->timer, now_ns());
}

static void follower_suspend(struct ctrl_follower *f)
{
	struct ctrl *c = f->s->ctrl;
	MHD_suspend_connection(f->conn);
	f->suspended = true;
	if (c->nsuspended++ == 0)
		loop_timer_arm_in(c->loop, &c->follow_timer, CTRL_FOLLOW_POLL_MS * NS_PER_MS);
}

static ssize_t follower_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ctrl_follower *f = cls;
	(void)pos;
	if (f->ended)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	ssize_t n = ctrl_logfile_read(f->lf, buf, max);
	if (n > 0)
		return n;
	if (n == -1)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0 || !f->lf->follow)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	follower_suspend(f); /* nothing new: wait for the timer */
	return 0;
}

static void follower_free(void *cls)
{
	struct ctrl_follower *f = cls;
	struct ctrl_sock *s = f->s;
	if (f->suspended) { /* cannot happen: released before the daemon stops */
		f->suspended = false;
		s->ctrl->nsuspended--;
	}
	if (f->listed) {
		for (struct ctrl_follower **p = &s->followers; *p; p = &(*p)->next) {
			if (*p == f) {
				*p = f->next;
				break;
			}
		}
		s->nfollowers--;
	}
	ctrl_logfile_free(f->lf);
	free(f);
}

static enum MHD_Result follow_full(struct ctrl_sock *s, struct MHD_Connection *conn,
				   struct ctrl_resp *rs)
{
	ctrl_resp_release(rs);
	ctrl_resp_error(rs, 503, "", "%u log followers on this socket already; try later",
			s->max_followers);
	ctrl_resp_finish(rs);
	return ctrl_respond_json(s, conn, rs);
}

enum MHD_Result ctrl_follow_queue(struct ctrl_sock *s, struct MHD_Connection *conn,
				  struct ctrl_resp *rs)
{
	bool follow = rs->log->follow;
	if (follow && s->nfollowers >= s->max_followers)
		return follow_full(s, conn, rs);
	struct ctrl_follower *f = calloc(1, sizeof(*f));
	if (!f)
		return MHD_NO;
	*f = (struct ctrl_follower){.s = s, .conn = conn, .lf = rs->log};
	rs->log = NULL;
	uint64_t size = follow ? MHD_SIZE_UNKNOWN : f->lf->end - f->lf->off;
	if (f->lf->fd < 0 && !follow)
		size = 0;
	struct MHD_Response *resp = MHD_create_response_from_callback(
		size, READ_BLOCK, follower_read, f, follower_free);
	if (!resp) {
		follower_free(f);
		return MHD_NO;
	}
	if (follow) {
		f->listed = true;
		f->next = s->followers;
		s->followers = f;
		s->nfollowers++;
	}
	enum MHD_Result r =
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	if (r == MHD_YES)
		r = MHD_queue_response(conn, rs->status, resp);
	MHD_destroy_response(resp); /* freed (follower_free) once sent or abandoned */
	return r;
}

/* The client closed its end (or the socket failed). */
static bool client_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return true;
	struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

void ctrl_follow_tick(struct loop_timer *t)
{
	struct ctrl *c = t->data;
	for (struct ctrl_sock *s = c->socks; s; s = s->next) {
		for (struct ctrl_follower *f = s->followers; f; f = f->next) {
			if (!f->suspended)
				continue;
			/* a hang-up while suspended: end the body, libmicrohttpd
			 * then closes the connection */
			if (s->dead || client_gone(f->conn))
				f->ended = true;
			if (f->ended || ctrl_logfile_changed(f->lf))
				follower_resume(f);
		}
	}
	if (c->nsuspended)
		loop_timer_arm_in(c->loop, &c->follow_timer, CTRL_FOLLOW_POLL_MS * NS_PER_MS);
}

void ctrl_follow_release(struct ctrl_sock *s)
{
	for (struct ctrl_follower *f = s->followers; f; f = f->next) {
		f->ended = true;
		follower_resume(f);
	}
}
