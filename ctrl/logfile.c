/* ctrl/logfile.c — GET /v1/logs/NAME: a container's current console log
 * (logs/<rev>/<name>.log, from runtime_log_path), as text/plain.
 *
 * Without follow the body is the file as it was when asked (its size then
 * is the Content-Length). With ?follow=1 the body never ends: bytes
 * appended later are sent as they come (server side: follow.c). Rotation
 * (storage/logs.c unlinks the live file and starts a new one) is noticed
 * when the open file is read to its end and the path names another inode:
 * the follower moves to the new file from its start. Rotated segments
 * (.N.lz4) are never sent. ?tail=N starts N lines before the end. */
#define LOG_MODULE "ctrl"
#include "ctrl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "../runtime/runtime.h"

#define TAIL_BLOCK 4096

void ctrl_logfile_free(struct ctrl_logfile *lf)
{
	if (!lf)
		return;
	if (lf->fd >= 0)
		close(lf->fd);
	free(lf);
}
DEFINE_FREEP(struct ctrl_logfile, ctrl_logfile_free)

/* (Re)open lf->path from its start. false if it does not exist (yet). */
static bool lf_open(struct ctrl_logfile *lf)
{
	int fd = open(lf->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (lf->fd >= 0)
		close(lf->fd);
	lf->fd = fd;
	lf->dev = st.st_dev;
	lf->ino = st.st_ino;
	lf->off = 0;
	lf->end = (uint64_t)st.st_size;
	return true;
}

/* Does the path now name another file than the one open? */
static bool lf_rotated(const struct ctrl_logfile *lf)
{
	struct stat st;
	if (stat(lf->path, &st) < 0)
		return false; /* between unlink and the new file: wait */
	return st.st_dev != lf->dev || st.st_ino != lf->ino;
}

bool ctrl_logfile_changed(struct ctrl_logfile *lf)
{
	struct stat st;
	if (lf->fd < 0)
		return access(lf->path, F_OK) == 0;
	if (fstat(lf->fd, &st) == 0 && (uint64_t)st.st_size != lf->off)
		return true; /* appended, or truncated under us */
	return lf_rotated(lf);
}

ssize_t ctrl_logfile_read(struct ctrl_logfile *lf, char *buf, size_t max)
{
	if (lf->fd < 0)
		return lf->follow ? (lf_open(lf) ? ctrl_logfile_read(lf, buf, max) : 0) : -1;
	if (!lf->follow) {
		if (lf->off >= lf->end)
			return -1;
		if (max > lf->end - lf->off)
			max = (size_t)(lf->end - lf->off);
	}
	ssize_t n = pread(lf->fd, buf, max, (off_t)lf->off);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -2;
	if (n > 0) {
		lf->off += (uint64_t)n;
		return n;
	}
	if (!lf->follow)
		return -2; /* shorter than announced */
	struct stat st;
	if (fstat(lf->fd, &st) == 0 && (uint64_t)st.st_size < lf->off) {
		lf->off = 0; /* truncated: start over */
		return 0;
	}
	if (lf_rotated(lf) && lf_open(lf))
		return ctrl_logfile_read(lf, buf, max);
	return 0;
}

/* Offset where the last `lines` lines of fd (size bytes) start. A final
 * newline ends the last line; it does not start another. */
static uint64_t tail_offset(int fd, uint64_t size, unsigned long lines)
{
	char b[TAIL_BLOCK];
	uint64_t pos = size;
	bool skip_last = true;
	if (lines == 0)
		return size;
	while (pos > 0) {
		size_t n = pos < sizeof(b) ? (size_t)pos : sizeof(b);
		if (pread(fd, b, n, (off_t)(pos - n)) != (ssize_t)n)
			return 0;
		for (size_t i = n; i-- > 0;) {
			if (b[i] != '\n')
				continue;
			if (skip_last && pos - n + i == size - 1)
				continue;
			if (--lines == 0)
				return pos - n + i + 1;
		}
		skip_last = false;
		pos -= n;
	}
	return 0;
}

/* ?follow=1|true|0|false and ?tail=N. */
static bool log_query(const struct ctrl_req *rq, bool *follow, long *tail, struct ctrl_resp *rs)
{
	const char *f = ctrl_query(rq, "follow"), *t = ctrl_query(rq, "tail");
	*follow = f && (!*f || strcmp(f, "1") == 0 || strcmp(f, "true") == 0);
	if (f && !*follow && strcmp(f, "0") != 0 && strcmp(f, "false") != 0) {
		ctrl_resp_error(rs, 400, "follow", "must be 1, true, 0 or false");
		return false;
	}
	*tail = -1;
	if (!t)
		return true;
	char *end;
	errno = 0;
	long v = strtol(t, &end, 10);
	if (errno || end == t || *end || t[0] == '-' || t[0] == '+' || v > CTRL_TAIL_MAX) {
		char b[CTRL_ECHO_MAX + 4];
		ctrl_resp_error(rs, 400, "tail", "'%s' is not a line count (0 to %d)",
				ctrl_printable(b, t), CTRL_TAIL_MAX);
		return false;
	}
	*tail = v;
	return true;
}

void ctrl_h_logs(struct ctrl *c, const struct ctrl_req *rq, struct ctrl_resp *rs)
{
	bool follow;
	long tail;
	if (!ctrl_param_name(rq, 0, "name", rs) || ctrl_find_ctr(c, rq->params[0], rs) < 0 ||
	    !log_query(rq, &follow, &tail, rs))
		return;
	_cleanup_(ctrl_logfile_freep) struct ctrl_logfile *lf = calloc(1, sizeof(*lf));
	if (!lf) {
		ctrl_resp_error(rs, 503, "", "out of memory");
		return;
	}
	lf->fd = -1;
	lf->follow = follow;
	struct err e = ERR_INIT;
	int r = runtime_log_path(c->rt, rq->params[0], lf->path, sizeof(lf->path), &e);
	if (r < 0) {
		ctrl_resp_err(rs, r == -ENOENT ? 404 : 500, &e);
		return;
	}
	if (lf_open(lf) && tail >= 0)
		lf->off = tail_offset(lf->fd, lf->end, (unsigned long)tail);
	rs->log = TAKE_PTR(lf);
}
