/* test/unit/hub_stage_test.c — the fleet hub client's staging directory and
 * the helper process that writes into it: staging names, the validation of
 * staged files (symlink, FIFO, second link, owner, size), the start-up sweep,
 * the directory's preparation, and the helper against a one-shot HTTP server
 * on loopback (privilege drop, Range resume, size caps, ETag) when run as
 * root.
 *
 * File tests work in a mkdtemp directory the teardown removes; the HTTP
 * server is a forked child that is killed and reaped in every case. The
 * schedule, the record parser and the pointer parser are in hub_test.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/util.h"
#include "storage/storage.h"
#include "trails/hub_internal.h"

/* ---------------- staging ---------------- */

struct fx {
	char dir[64];
	int dirfd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	memcpy(f->dir, "/tmp/cairn-hub-XXXXXX", 22);
	assert_non_null(mkdtemp(f->dir));
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	close(f->dirfd);
	int r = storage_rmtree(f->dir, &e);
	free(f);
	return r;
}

static void put_at(int dirfd, const char *name, size_t size)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	for (size_t done = 0; done < size;) {
		size_t k = size - done < sizeof(buf) ? size - done : sizeof(buf);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		done += k;
	}
	close(fd);
}

static const char PART[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.part";

static void test_stage_names(void **state)
{
	(void)state;
	assert_true(hub_stage_name_valid(PART));
	assert_true(hub_stage_name_valid("desired.json"));
	assert_false(hub_stage_name_valid(""));
	assert_false(hub_stage_name_valid("../desired.json"));
	assert_false(hub_stage_name_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789"
					  "abcdef.part"));
	assert_false(hub_stage_name_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
					  "abcde.part"));
	assert_false(hub_stage_name_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
					  "abcdef.partx"));
	struct digest d;
	assert_int_equal(digest_parse_hex(PART, 64, &d), 0);
	char name[HUB_PART_NAME_LEN + 1];
	hub_part_name(&d, name);
	assert_string_equal(name, PART);
}

static void test_stage_open(void **state)
{
	struct fx *f = *state;
	uid_t me = geteuid();
	int fd = -1;
	uint64_t size = 0;
	struct err e = ERR_INIT;
	put_at(f->dirfd, PART, 100);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), 0);
	assert_int_equal(size, 100);
	close(fd);
	assert_int_equal(hub_stage_size(f->dirfd, PART, me), 100);
	/* larger than allowed */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 99, false, &fd, &size, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "100 bytes, more than the 99 allowed"));
	/* another owner */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me + 1, 100, false, &fd, &size, &e), -EPERM);
	assert_non_null(strstr(e.msg, "not the helper's"));
	assert_int_equal(hub_stage_size(f->dirfd, PART, me + 1), 0);
	/* two links */
	assert_int_equal(linkat(f->dirfd, PART, f->dirfd, "other", 0), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "2 links"));
	assert_int_equal(unlinkat(f->dirfd, "other", 0), 0);
	/* a symlink to a file outside: never followed */
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", f->dirfd, PART), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 1 << 20, false, &fd, &size, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "a symlink"));
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	/* a FIFO: refused at once, never waited on */
	assert_int_equal(mkfifoat(f->dirfd, PART, 0600), 0);
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_int_equal(unlinkat(f->dirfd, PART, 0), 0);
	/* a directory; a name that is not a staging name */
	assert_int_equal(mkdirat(f->dirfd, PART, 0700), 0);
	assert_true(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e) < 0);
	assert_int_equal(unlinkat(f->dirfd, PART, AT_REMOVEDIR), 0);
	assert_int_equal(hub_stage_open(f->dirfd, "../x", me, 100, false, &fd, &size, &e), -EINVAL);
	/* missing */
	assert_int_equal(hub_stage_open(f->dirfd, PART, me, 100, false, &fd, &size, &e), -ENOENT);
	assert_int_equal(hub_stage_size(f->dirfd, PART, me), 0);
}

static bool exists(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void test_stage_sweep(void **state)
{
	struct fx *f = *state;
	uid_t me = geteuid();
	static const char other[] =
		"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210.part";
	static const char holed[] =
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.part";
	put_at(f->dirfd, PART, 100);
	put_at(f->dirfd, other, 10);
	put_at(f->dirfd, "desired.json", 10);
	put_at(f->dirfd, "junk", 10);
	assert_int_equal(mkdirat(f->dirfd, "emptydir", 0700), 0);
	assert_int_equal(symlinkat("/etc", f->dirfd, "link"), 0);
	/* a part whose start was punched out by an import: not resumable */
	put_at(f->dirfd, holed, 1 << 20);
	int fd = openat(f->dirfd, holed, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	bool punched = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512 << 10) == 0;
	close(fd);
	/* at start: every resumable part stays, the rest goes */
	hub_stage_sweep(f->dirfd, me, NULL, 0, NULL);
	assert_true(exists(f->dirfd, PART));
	assert_true(exists(f->dirfd, other));
	assert_int_equal(exists(f->dirfd, holed), !punched);
	assert_false(exists(f->dirfd, "desired.json"));
	assert_false(exists(f->dirfd, "junk"));
	assert_false(exists(f->dirfd, "emptydir"));
	assert_false(exists(f->dirfd, "link"));
	assert_true(exists(AT_FDCWD, "/etc")); /* the link went, not its target */
	/* a plan: only its parts stay (and the one being imported) */
	struct digest keep, active;
	assert_int_equal(digest_parse_hex(PART, 64, &keep), 0);
	assert_int_equal(digest_parse_hex(other, 64, &active), 0);
	hub_stage_sweep(f->dirfd, me, &keep, 1, &active);
	assert_true(exists(f->dirfd, PART) && exists(f->dirfd, other));
	hub_stage_sweep(f->dirfd, me, &keep, 1, NULL);
	assert_true(exists(f->dirfd, PART));
	assert_false(exists(f->dirfd, other));
	/* a part owned by someone else is not ours to resume */
	if (me == 0) {
		assert_int_equal(fchownat(f->dirfd, PART, 1234, 1234, AT_SYMLINK_NOFOLLOW), 0);
		hub_stage_sweep(f->dirfd, me, &keep, 1, NULL);
		assert_false(exists(f->dirfd, PART));
	}
	hub_stage_sweep(f->dirfd, me, &keep, 0, NULL);
}

static void test_stage_prepare(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip();
	int sfd = -1;
	struct err e = ERR_INIT;
	assert_int_equal(mkdirat(f->dirfd, "tmp", 0755), 0);
	assert_int_equal(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e), 0);
	struct stat st;
	assert_int_equal(fstat(sfd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, HUB_UID);
	assert_int_equal(st.st_gid, HUB_GID);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(sfd);
	/* a wrong owner and mode are put right */
	assert_int_equal(fchownat(f->dirfd, "tmp/hub", 0, 0, 0), 0);
	assert_int_equal(fchmodat(f->dirfd, "tmp/hub", 0777, 0), 0);
	assert_int_equal(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e), 0);
	assert_int_equal(fstat(sfd, &st), 0);
	assert_int_equal(st.st_uid, HUB_UID);
	assert_int_equal(st.st_mode & 07777, 0700);
	close(sfd);
	/* a symlink in its place is refused */
	assert_int_equal(unlinkat(f->dirfd, "tmp/hub", AT_REMOVEDIR), 0);
	assert_int_equal(symlinkat("/etc", f->dirfd, "tmp/hub"), 0);
	assert_true(hub_stage_prepare(f->dirfd, HUB_UID, HUB_GID, &sfd, &e) < 0);
	assert_non_null(strstr(e.msg, "not a directory"));
}

/* ---------------- the helper against a one-shot HTTP server ---------------- */

struct srv {
	pid_t pid;
	int port;
};

/* Serve one connection: save the request (head and body) to `reqpath`,
 * answer `resp`, then `endless` more bytes of 'A' forever if asked. */
static void srv_child(int ls, const char *reqpath, const char *resp, size_t resplen, bool endless)
{
	int c = accept(ls, NULL, NULL);
	if (c < 0)
		_exit(1);
	char req[8192];
	size_t n = 0;
	struct pollfd pfd = {.fd = c, .events = POLLIN};
	while (n < sizeof(req) && poll(&pfd, 1, 300) > 0) { /* head and a small body */
		ssize_t k = read(c, req + n, sizeof(req) - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	int out = open(reqpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out >= 0) {
		(void)!write(out, req, n);
		close(out);
	}
	(void)!write(c, resp, resplen);
	static char block[16384];
	memset(block, 'A', sizeof(block));
	while (endless && write(c, block, sizeof(block)) > 0)
		;
	close(c);
	_exit(0);
}

static void srv_start(struct srv *s, const char *reqpath, const char *resp, bool endless)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0)
		srv_child(ls, reqpath, resp, strlen(resp), endless);
	close(ls);
}

static void srv_stop(struct srv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

struct run {
	struct hub_rx rx;
	int rx_err;
	int status;
};

/* Spawn the helper for job and read its pipe to the end (20 s at most). */
static void helper_run(int stagefd, const struct hub_job *job, struct run *out)
{
	pid_t pid;
	int rfd;
	struct err e = ERR_INIT;
	assert_int_equal(hub_helper_spawn(job, stagefd, &pid, &rfd, &e), 0);
	hub_rx_init(&out->rx);
	out->rx_err = 0;
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	for (;;) {
		if (poll(&pfd, 1, 20000) <= 0) {
			kill(pid, SIGKILL);
			out->rx_err = -ETIMEDOUT;
			break;
		}
		uint8_t buf[4096];
		ssize_t n = read(rfd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) {
			out->rx_err = hub_rx_eof(&out->rx, &e);
			break;
		}
		if ((out->rx_err = hub_rx_feed(&out->rx, buf, (size_t)n, &e)) < 0) {
			kill(pid, SIGKILL);
			break;
		}
	}
	close(rfd);
	assert_int_equal(waitpid(pid, &out->status, 0), pid);
	if (out->rx_err)
		fail_msg("helper stream: %s", e.msg);
}

struct hfx {
	struct fx f;
	int stagefd;
	char req[128]; /* where the server saves the request */
	struct srv srv;
};

static int hsetup(void **state)
{
	if (geteuid() != 0) /* the helper drops root: only root can run it */
		return 0;
	struct hfx *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	memcpy(h->f.dir, "/tmp/cairn-hub-XXXXXX", 22);
	assert_non_null(mkdtemp(h->f.dir));
	h->f.dirfd = open(h->f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(mkdirat(h->f.dirfd, "tmp", 0700), 0);
	struct err e = ERR_INIT;
	assert_int_equal(hub_stage_prepare(h->f.dirfd, HUB_UID, HUB_GID, &h->stagefd, &e), 0);
	assert_int_equal(str_fmt(h->req, sizeof(h->req), "%s/request", h->f.dir), 0);
	*state = h;
	return 0;
}

static int hteardown(void **state)
{
	struct hfx *h = *state;
	if (!h)
		return 0;
	srv_stop(&h->srv);
	close(h->stagefd);
	close(h->f.dirfd);
	struct err e = ERR_INIT;
	int r = storage_rmtree(h->f.dir, &e);
	free(h);
	return r;
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len;
	struct err e = ERR_INIT;
	if (file_read_all(AT_FDCWD, path, 1 << 20, &buf, &len, &e) < 0)
		return strdup("");
	return buf;
}

static char *staged(struct hfx *h, const char *name, uid_t *owner)
{
	char path[256];
	struct stat st;
	assert_int_equal(str_fmt(path, sizeof(path), "%s/tmp/hub/%s", h->f.dir, name), 0);
	if (owner)
		*owner = stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
	return slurp(path);
}

static void object_job(struct hfx *h, struct hub_job *job, uint64_t size)
{
	memset(job, 0, sizeof(*job));
	job->kind = HUB_JOB_OBJECT;
	job->size = size;
	memcpy(job->file, PART, sizeof(PART));
	assert_int_equal(str_fmt(job->url, sizeof(job->url),
				 "http://127.0.0.1:%d/v1/objects/sha256/%.64s", h->srv.port, PART),
			 0);
}

static void preset_part(struct hfx *h, const char *data)
{
	int fd = openat(h->stagefd, PART, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchown(fd, HUB_UID, HUB_GID), 0);
	close(fd);
}

#define NEED_ROOT(state)                                                                           \
	struct hfx *h = *(state);                                                                  \
	if (!h)                                                                                    \
		skip()

static void test_helper_object(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false);
	object_job(h, &job, 10);
	memcpy(job.token, "tok-123", 8);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 200);
	assert_int_equal(run.rx.staged, 10);
	assert_true(run.rx.wire >= 10);
	assert_true(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
	uid_t owner;
	char *data = staged(h, PART, &owner);
	assert_string_equal(data, "0123456789");
	assert_int_equal(owner, HUB_UID); /* written as nobody, not root */
	free(data);
	char *req = slurp(h->req);
	assert_non_null(strstr(req, "GET /v1/objects/sha256/0123456789abcdef"));
	assert_non_null(strstr(req, "Authorization: Bearer tok-123\r\n"));
	assert_non_null(strstr(req, "User-Agent: cairn/"));
	assert_null(strstr(req, "Range:"));
	free(req);
}

static void test_helper_resume(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "01234");
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\n"
		  "Content-Length: 5\r\n\r\n56789",
		  false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 206);
	char *data = staged(h, PART, NULL), *req = slurp(h->req);
	assert_string_equal(data, "0123456789");
	assert_non_null(strstr(req, "Range: bytes=5-\r\n"));
	free(data);
	free(req);
}

static void test_helper_bad_range(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "01234");
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\n"
		  "Content-Length: 10\r\n\r\nXXXXXXXXXX",
		  false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
	assert_non_null(strstr(run.rx.text, "Content-Range 'bytes 0-9/10', want bytes 5-"));
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, "01234"); /* nothing of it written */
	free(data);
}

static void test_helper_restart_on_200(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	preset_part(h, "XXXXX");
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, "0123456789"); /* started over from 0 */
	free(data);
}

static void test_helper_endless_body(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", true);
	object_job(h, &job, 100000);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
	assert_non_null(strstr(run.rx.text, "more than the 100000 bytes declared"));
	uid_t owner;
	char *data = staged(h, PART, &owner);
	assert_true(strlen(data) <= 100000);
	free(data);
	/* a Content-Length above the declared size: refused before the body */
	srv_stop(&h->srv);
	srv_start(&h->srv, h->req, "HTTP/1.1 200 OK\r\nContent-Length: 100001\r\n\r\nabc", false);
	object_job(h, &job, 100000);
	assert_int_equal(ftruncate(openat(h->stagefd, PART, O_WRONLY | O_CLOEXEC), 0), 0);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_SIZE);
}

static void test_helper_http_error(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req,
		  "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", false);
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok); /* the exchange worked: the caller judges the status */
	assert_int_equal(run.rx.http, 404);
	char *data = staged(h, PART, NULL);
	assert_string_equal(data, ""); /* an error page is never staged */
	free(data);
}

static void test_helper_desired_etag(void **state)
{
	NEED_ROOT(state);
	struct hub_job job = {.kind = HUB_JOB_DESIRED, .size = HUB_DESIRED_MAX};
	struct run run;
	static const char body[] = "{\"revision\": 1}";
	char resp[256];
	assert_int_equal(str_fmt(resp, sizeof(resp),
				 "HTTP/1.1 200 OK\r\nETag: \"65f1-2a\"\r\nContent-Length: %zu\r\n\r\n%s",
				 strlen(body), body),
			 0);
	srv_start(&h->srv, h->req, resp, false);
	memcpy(job.file, "desired.json", 13);
	memcpy(job.etag, "\"old\"", 6);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/desired", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok && run.rx.have_etag);
	assert_int_equal(run.rx.http, 200);
	assert_string_equal(run.rx.etag, "\"65f1-2a\"");
	char *data = staged(h, "desired.json", NULL), *req = slurp(h->req);
	assert_string_equal(data, body);
	assert_non_null(strstr(req, "If-None-Match: \"old\"\r\n"));
	free(data);
	free(req);
	/* 304: nothing staged */
	srv_stop(&h->srv);
	srv_start(&h->srv, h->req, "HTTP/1.1 304 Not Modified\r\nETag: \"65f1-2a\"\r\n\r\n", false);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/desired", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok && !run.rx.have_etag);
	assert_int_equal(run.rx.http, 304);
	data = staged(h, "desired.json", NULL);
	assert_string_equal(data, "");
	free(data);
}

static void test_helper_report(void **state)
{
	NEED_ROOT(state);
	static const char body[] = "{\"device\": \"d1\", \"state\": \"DONE\"}";
	struct hub_job job = {.kind = HUB_JOB_REPORT, .body = body, .body_len = sizeof(body) - 1};
	struct run run;
	srv_start(&h->srv, h->req, "HTTP/1.1 204 No Content\r\n\r\n", false);
	assert_int_equal(str_fmt(job.url, sizeof(job.url),
				 "http://127.0.0.1:%d/v1/devices/d1/status", h->srv.port),
			 0);
	helper_run(h->stagefd, &job, &run);
	assert_true(run.rx.ok);
	assert_int_equal(run.rx.http, 204);
	char *req = slurp(h->req);
	assert_non_null(strstr(req, "PUT /v1/devices/d1/status HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(req, body));
	free(req);
}

static void test_helper_unreachable(void **state)
{
	NEED_ROOT(state);
	struct hub_job job;
	struct run run;
	srv_start(&h->srv, h->req, "", false);
	int port = h->srv.port;
	srv_stop(&h->srv); /* nobody listens there any more */
	h->srv.port = port;
	object_job(h, &job, 10);
	helper_run(h->stagefd, &job, &run);
	assert_false(run.rx.ok);
	assert_int_equal(run.rx.fail, HUB_FAIL_NETWORK);
	assert_false(run.rx.have_http);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stage_names),
		cmocka_unit_test_setup_teardown(test_stage_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_object, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_resume, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_bad_range, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_restart_on_200, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_endless_body, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_http_error, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_desired_etag, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_report, hsetup, hteardown),
		cmocka_unit_test_setup_teardown(test_helper_unreachable, hsetup, hteardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
