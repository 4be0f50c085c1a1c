/* ctrl/server.c — the control sockets: one libmicrohttpd daemon per
 * listening unix socket, driven from cairn's loop (MHD starts no thread).
 * request.c holds the access handler, follow.c the log streams.
 *
 * Loop integration: every daemon runs in MHD_USE_EPOLL mode. Its epoll fd
 * is one loop_io (readable whenever one of its sockets is, or a suspended
 * connection was resumed), and one loop_timer carries the earlier of
 * MHD_get_timeout() and the nearest request-head deadline (below). Every
 * MHD_run() is followed by re-arming that timer; a timeout of 0 (MHD has
 * buffered work left) fires on the next loop iteration, after the other fds
 * had their turn.
 *
 * Invariants:
 * - A daemon is never stopped from inside one of its own callbacks: while
 *   c->running > 0, removing a socket only unlinks its file and marks it
 *   dead; ctrl_reap() stops dead daemons once MHD_run() has returned. Its
 *   suspended followers are resumed first.
 * - Slow clients. MHD's CONNECTION_TIMEOUT closes idle connections, but a
 *   client trickling one byte at a time is never idle. Each connection has
 *   a slot recording since when it waits for a request head; a head not
 *   complete conn_timeout_s after the connection opened (or after its
 *   previous response) ends with shutdown(2) of the fd, which MHD then sees
 *   as a peer that went away. A slot remembers the socket's inode so a
 *   reused fd number is never cut by mistake.
 * - The connection cap. libmicrohttpd stops accepting at its limit; idle or
 *   trickling clients could hold every slot until their deadline. So the
 *   connection that fills the last slot evicts (shuts down) the one that has
 *   waited longest for a request head: a well-behaved client is always
 *   accepted at once, and a connection between head and answer (a request
 *   being served, a log follower) is never evicted.
 * - A socket file is unlinked only if it still is the inode we bound. */
#define _GNU_SOURCE /* struct ucred */
#define LOG_MODULE "ctrl"
#include <microhttpd.h>

#include "ctrl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define CTRL_DEFAULT_CONNS 512
#define CTRL_MAX_CONNS 4096
#define CTRL_CTR_MAX_CONNS 16 /* a container socket never has more */
#define CTRL_DEFAULT_TIMEOUT_S 10
#define CTRL_MAX_TIMEOUT_S 3600
/* Per connection, libmicrohttpd's pool: the request line and headers must
 * fit in it (measured: 30 KiB pass, 32 KiB get libmicrohttpd's own 431). */
#define CTRL_CONN_MEMORY (32 * 1024)
#define CTRL_BACKLOG 64
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* ---------------- socket files ---------------- */

static void sock_unlink(struct ctrl_sock *s)
{
	struct stat st;
	if (s->bound && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		(void)unlink(s->path);
	s->bound = false;
}

/* A socket file left by an earlier run is removed; a live server on it, or
 * anything that is not a socket, is an error. */
static int stale_clear(const struct sockaddr_un *sa, struct err *e)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "%s: %s", sa->sun_path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, EEXIST, "%s: exists and is not a socket", sa->sun_path);
	_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	if (connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		return err_set(e, EADDRINUSE, "%s: another server answers on it", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return err_set(e, errno, "%s: remove stale socket: %s", sa->sun_path, strerror(errno));
	return 0;
}

static int sock_listen(struct ctrl_sock *s, mode_t mode, int *out, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, s->path, sizeof(sa.sun_path));
	int r = stale_clear(&sa, e);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		return err_set(e, errno, "bind %s: %s", s->path, strerror(errno));
	struct stat st;
	if (lstat(s->path, &st) < 0)
		return err_set(e, errno, "%s: %s", s->path, strerror(errno));
	s->bound = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	/* bind() applied the umask; the mode is the socket's access policy. */
	if (fchmodat(AT_FDCWD, s->path, mode, 0) < 0)
		return err_set(e, errno, "chmod %s: %s", s->path, strerror(errno));
	if (listen(fd, CTRL_BACKLOG) < 0)
		return err_set(e, errno, "listen %s: %s", s->path, strerror(errno));
	*out = TAKE_FD(fd);
	return 0;
}

/* ---------------- connection slots ---------------- */

struct ctrl_conn *ctrl_conn_slot(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* shutdown(2) the connection of slot k if its fd still is that socket. */
static void conn_cut(struct ctrl_conn *k)
{
	struct stat st;
	if (fstat(k->fd, &st) == 0 && st.st_ino == k->ino)
		(void)shutdown(k->fd, SHUT_RDWR);
	k->cut = true;
}

/* The last slot was just taken (by `fresh`): evict the connection that has
 * waited longest for a request head, so the next client gets in. */
static void conn_evict(struct ctrl_sock *s, const struct ctrl_conn *fresh)
{
	struct ctrl_conn *old = NULL;
	unsigned used = 0;
	for (unsigned i = 0; i < s->nconns; i++) {
		struct ctrl_conn *k = &s->conns[i];
		if (k->fd < 0)
			continue;
		used++;
		if (k != fresh && !k->in_request && !k->cut && (!old || k->since < old->since))
			old = k;
	}
	if (used < s->nconns || !old)
		return;
	log_info("%s: %u connections (the cap): closing one that waited %llu ms for a request",
		 s->path, used, (unsigned long long)((now_ns() - old->since) / NS_PER_MS));
	conn_cut(old);
	s->evicted++;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct ctrl_sock *s = cls;
	struct ctrl_conn *k = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (k)
			k->fd = -1;
		*socket_context = NULL;
		s->rerun = true;
		return;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct stat st;
	if (!ci || fstat(ci->connect_fd, &st) < 0)
		return;
	for (unsigned i = 0; i < s->nconns; i++) {
		k = &s->conns[i];
		if (k->fd >= 0)
			continue;
		*k = (struct ctrl_conn){.fd = ci->connect_fd, .ino = st.st_ino, .since = now_ns()};
		*socket_context = k;
		conn_evict(s, k);
		return;
	}
	log_warn("%s: no connection slot free (limit %u)", s->path, s->nconns);
}

/* Cut connections whose request head is late; the next head deadline. */
static uint64_t heads_check(struct ctrl_sock *s, uint64_t now)
{
	uint64_t limit = s->ctrl->conn_timeout_s * NS_PER_S, next = UINT64_MAX;
	for (unsigned i = 0; i < s->nconns; i++) {
		struct ctrl_conn *k = &s->conns[i];
		if (k->fd < 0 || k->in_request || k->cut)
			continue;
		if (now - k->since < limit) {
			if (k->since + limit < next)
				next = k->since + limit;
			continue;
		}
		log_debug("%s: request head not complete after %us, closing", s->path,
			  s->ctrl->conn_timeout_s);
		conn_cut(k);
	}
	return next;
}

/* ---------------- running the daemon ---------------- */

/* libmicrohttpd (0.9.75, epoll) takes its listen socket out of its epoll set
 * while at the connection limit and puts it back only at the start of a
 * later MHD_run(); the run that closes a connection does not. With nothing
 * else to wake it, accepting would stall for good, so a closed connection
 * makes the next MHD_run() due at once. */
static void sock_rearm(struct ctrl_sock *s)
{
	uint64_t now = now_ns(), next = heads_check(s, now);
	if (s->rerun) {
		s->rerun = false;
		next = now;
	}
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
		uint64_t at = ms > (UINT64_MAX - now) / NS_PER_MS ? UINT64_MAX : now + ms * NS_PER_MS;
		if (at < next)
			next = at;
	}
	if (next == UINT64_MAX)
		loop_timer_disarm(s->ctrl->loop, &s->timer);
	else
		loop_timer_arm(s->ctrl->loop, &s->timer, next);
}

static void sock_free(struct ctrl_sock *s);

/* Stop the daemons of removed sockets (never from inside MHD_run). */
static void ctrl_reap(struct ctrl *c)
{
	for (struct ctrl_sock **p = &c->socks; *p;) {
		struct ctrl_sock *s = *p;
		if (!s->dead) {
			p = &s->next;
			continue;
		}
		*p = s->next;
		sock_free(s);
	}
}

static void sock_run(struct ctrl_sock *s)
{
	struct ctrl *c = s->ctrl;
	if (!s->dead) {
		c->running++;
		if (MHD_run(s->mhd) != MHD_YES)
			log_warn("%s: MHD_run failed", s->path);
		c->running--;
	}
	if (!s->dead)
		sock_rearm(s);
	if (!c->running)
		ctrl_reap(c);
}

static void on_io(struct loop_io *io, uint32_t events)
{
	(void)events;
	sock_run(io->data);
}

static void on_timer(struct loop_timer *t)
{
	sock_run(t->data);
}

/* ---------------- sockets ---------------- */

static int sock_start(struct ctrl_sock *s, int fd, struct err *e)
{
	struct ctrl *c = s->ctrl;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK |
			 MHD_ALLOW_SUSPEND_RESUME;
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, ctrl_mhd_request, s, MHD_OPTION_EXTERNAL_LOGGER, ctrl_mhd_log,
		s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, s->nconns,
		MHD_OPTION_CONNECTION_TIMEOUT, c->conn_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CTRL_CONN_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, ctrl_mhd_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
		on_connection, s, MHD_OPTION_END);
	if (!s->mhd) {
		/* Whether a failed start closed the listen fd depends on where it
		 * failed; one thread, so an fd still open here is still ours. */
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd);
		return err_set(e, EIO, "%s: libmicrohttpd would not start", s->path);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || di->epoll_fd < 0)
		return err_set(e, EIO, "%s: libmicrohttpd has no epoll fd", s->path);
	s->io = (struct loop_io){.fd = di->epoll_fd, .cb = on_io, .data = s};
	s->timer = (struct loop_timer){.cb = on_timer, .data = s};
	int r = loop_io_add(c->loop, &s->io, EPOLLIN, e);
	if (r < 0)
		return r;
	sock_rearm(s);
	return 0;
}

static void sock_free(struct ctrl_sock *s)
{
	if (!s)
		return;
	if (s->mhd) {
		loop_io_del(s->ctrl->loop, &s->io);
		ctrl_follow_release(s); /* no suspended connection may remain */
		MHD_stop_daemon(s->mhd); /* closes the listen fd and every connection */
	}
	loop_timer_disarm(s->ctrl->loop, &s->timer);
	sock_unlink(s);
	free(s->conns);
	free(s);
}
DEFINE_FREEP(struct ctrl_sock, sock_free)

/* Remove s: the file goes now, the daemon as soon as no MHD_run() is on
 * the stack. */
static void sock_kill(struct ctrl *c, struct ctrl_sock *s)
{
	sock_unlink(s);
	s->dead = true;
	loop_timer_disarm(c->loop, &s->timer);
	if (!c->running)
		ctrl_reap(c);
}

static int sock_open(struct ctrl *c, const char *name, const char *path, mode_t mode,
		     struct err *e)
{
	_cleanup_(sock_freep) struct ctrl_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, ENOMEM, "out of memory");
	s->ctrl = c;
	s->caller = (struct ctrl_caller){name ? CTRL_CALLER_CONTAINER : CTRL_CALLER_ADMIN, s->name,
					 0};
	if (name && str_fmt(s->name, sizeof(s->name), "%s", name) < 0)
		return err_field(e, EINVAL, "name", "too long");
	if (str_fmt(s->path, sizeof(s->path), "%s", path) < 0)
		return err_field(e, ENAMETOOLONG, "path", "longer than %zu bytes (unix socket limit)",
				 sizeof(s->path) - 1);
	/* A container needs few connections; many sockets with many each
	 * would let containers fill PID 1's file table. */
	s->nconns = name && c->max_conns > CTRL_CTR_MAX_CONNS ? CTRL_CTR_MAX_CONNS : c->max_conns;
	s->max_followers = name ? CTRL_CTR_FOLLOWERS : CTRL_ADMIN_FOLLOWERS;
	s->conns = calloc(s->nconns, sizeof(*s->conns));
	if (!s->conns)
		return err_set(e, ENOMEM, "out of memory");
	for (unsigned i = 0; i < s->nconns; i++)
		s->conns[i].fd = -1;
	int fd = -1;
	int r = sock_listen(s, mode, &fd, e);
	if (r < 0)
		return r;
	r = sock_start(s, fd, e);
	if (r < 0)
		return r;
	s->next = c->socks;
	c->socks = TAKE_PTR(s);
	return 0;
}

static struct ctrl_sock *sock_find(struct ctrl *c, const char *name)
{
	for (struct ctrl_sock *s = c->socks; s; s = s->next)
		if (!s->dead && s->caller.kind == CTRL_CALLER_CONTAINER && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* ---------------- public ---------------- */

void ctrl_free(struct ctrl *c)
{
	if (!c)
		return;
	while (c->socks) {
		struct ctrl_sock *s = c->socks;
		c->socks = s->next;
		sock_free(s);
	}
	loop_timer_disarm(c->loop, &c->follow_timer);
	loop_timer_disarm(c->loop, &c->cmd_timer);
	free(c->resp_buf);
	free(c);
}
DEFINE_FREEP(struct ctrl, ctrl_free)

static int config_check(const struct ctrl_config *cfg, struct err *e)
{
	if (!cfg || !cfg->loop)
		return err_field(e, EINVAL, "loop", "required");
	if (!cfg->rt)
		return err_field(e, EINVAL, "rt", "required");
	if (cfg->max_conns > CTRL_MAX_CONNS)
		return err_field(e, EINVAL, "max_conns", "%u is more than %u", cfg->max_conns,
				 CTRL_MAX_CONNS);
	if (cfg->conn_timeout_s > CTRL_MAX_TIMEOUT_S)
		return err_field(e, EINVAL, "conn_timeout_s", "%u is more than %u",
				 cfg->conn_timeout_s, CTRL_MAX_TIMEOUT_S);
	return 0;
}

int ctrl_new(const struct ctrl_config *cfg, struct ctrl **out, struct err *e)
{
	int r = config_check(cfg, e);
	if (r < 0)
		return err_prefix(e, "control API");
	_cleanup_(ctrl_freep) struct ctrl *c = calloc(1, sizeof(*c));
	if (!c || !(c->resp_buf = malloc(CTRL_RESP_MAX)))
		return err_set(e, ENOMEM, "control API: out of memory");
	c->resp_cap = CTRL_RESP_MAX;
	c->loop = cfg->loop;
	c->rt = cfg->rt;
	c->tr = cfg->tr;
	c->storage = cfg->storage;
	c->hooks = cfg->hooks;
	c->follow_timer = (struct loop_timer){.cb = ctrl_follow_tick, .data = c};
	c->cmd_timer = (struct loop_timer){.data = c};
	c->max_conns = cfg->max_conns ? cfg->max_conns : CTRL_DEFAULT_CONNS;
	c->conn_timeout_s = cfg->conn_timeout_s ? cfg->conn_timeout_s : CTRL_DEFAULT_TIMEOUT_S;
	if (cfg->admin_path) {
		r = sock_open(c, NULL, cfg->admin_path, 0600, e);
		if (r < 0)
			return err_prefix(e, "admin socket");
	}
	*out = TAKE_PTR(c);
	return 0;
}

void ctrl_set_revision(struct ctrl *c, uint64_t rev)
{
	c->has_revision = true;
	c->revision = rev;
}

int ctrl_container_add(struct ctrl *c, const char *name, const char *path, struct err *e)
{
	if (!name_valid(name))
		return err_field(e, EINVAL, "name", "'%s' is not a container name",
				 name ? name : "(null)");
	if (!path || path[0] != '/')
		return err_field(e, EINVAL, "path", "container %s: socket path must be absolute",
				 name);
	struct ctrl_sock *old = sock_find(c, name);
	if (old)
		sock_kill(c, old);
	int r = sock_open(c, name, path, 0666, e);
	if (r < 0)
		return err_prefix(e, "container %s: control socket", name);
	return 0;
}

void ctrl_container_remove(struct ctrl *c, const char *name)
{
	struct ctrl_sock *s = name ? sock_find(c, name) : NULL;
	if (s)
		sock_kill(c, s);
}

void ctrl_container_set_roles(struct ctrl *c, const char *name, unsigned roles)
{
	struct ctrl_sock *s = name ? sock_find(c, name) : NULL;
	if (s)
		s->caller.roles = roles;
}
