/* storage/logs.c — size-capped container logs with lz4-compressed rotated
 * segments: <path> (live, plain text), <path>.1.lz4 (newest rotated) ..
 * <path>.<keep>.lz4 (oldest). Each segment is one lz4 frame holding at most
 * max_bytes. Best effort: no fsync, no durable ops. See storage/MOUNTS.md. */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"

#define LOG_KEEP_MAX 99          /* rotated segments kept at most */
#define LOG_CHUNK (64 * 1024)    /* one lz4 block per read */
#define LOG_PRUNE_MAX 64         /* stale segments beyond `keep` removed at open */

struct logfile {
	char *path;
	int fd;        /* O_RDWR|O_APPEND (read back to compress); -1 after a failed reopen */
	uint64_t size; /* bytes in the live file */
	uint64_t max;
	unsigned keep;
};

static void lz4_ctx_freep(LZ4F_cctx **c)
{
	if (*c)
		LZ4F_freeCompressionContext(*c);
}

static int seg_name(const struct logfile *lf, unsigned n, char *buf, size_t cap)
{
	return str_fmt(buf, cap, "%s.%u.lz4", lf->path, n);
}

static int log_reopen(struct logfile *lf, struct err *e)
{
	if (lf->fd >= 0)
		close(lf->fd);
	lf->fd = open(lf->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
	if (lf->fd < 0)
		return err_set(e, errno, "log %s: open: %s", lf->path, strerror(errno));
	struct stat st;
	if (fstat(lf->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(lf->fd);
		lf->fd = -1;
		return err_set(e, EINVAL, "log %s: not a regular file", lf->path);
	}
	lf->size = (uint64_t)st.st_size;
	return 0;
}

/* Segments left by an earlier run with a larger `keep`. */
static void log_prune(const struct logfile *lf)
{
	char name[PATH_MAX];
	for (unsigned n = lf->keep + 1; n <= lf->keep + LOG_PRUNE_MAX; n++)
		if (seg_name(lf, n, name, sizeof(name)) < 0 || unlink(name) < 0)
			break;
}

void storage_log_close(struct logfile *lf)
{
	if (!lf)
		return;
	if (lf->fd >= 0)
		close(lf->fd);
	free(lf->path);
	free(lf);
}

int storage_log_open(const char *path, uint64_t max_bytes, unsigned keep, struct logfile **out,
		     struct err *e)
{
	char probe[PATH_MAX];
	if (!path || !*path)
		return err_set(e, EINVAL, "log: empty path");
	if (max_bytes == 0 || max_bytes > SIZE_MAX / 2)
		return err_set(e, EINVAL, "log %s: max_bytes %llu out of range", path,
			       (unsigned long long)max_bytes);
	if (keep > LOG_KEEP_MAX)
		return err_set(e, EINVAL, "log %s: keep %u is more than %d", path, keep, LOG_KEEP_MAX);
	if (str_fmt(probe, sizeof(probe), "%s.%u.lz4.tmp", path, LOG_KEEP_MAX + LOG_PRUNE_MAX) < 0)
		return err_set(e, ENAMETOOLONG, "log %s: path too long", path);
	struct logfile *lf = calloc(1, sizeof(*lf));
	if (!lf || !(lf->path = strdup(path))) {
		free(lf);
		return err_set(e, ENOMEM, "log %s: out of memory", path);
	}
	lf->fd = -1;
	lf->max = max_bytes;
	lf->keep = keep;
	int r = log_reopen(lf, e);
	if (r < 0) {
		storage_log_close(lf);
		return r;
	}
	log_prune(lf);
	*out = lf;
	return 0;
}

static int lz4_fail(size_t code, struct err *e)
{
	return err_set(e, EIO, "lz4: %s", LZ4F_getErrorName(code));
}

/* Compress `len` bytes of `in` from offset `off` into one lz4 frame on `out`.
 * Work and memory are bounded by len (<= max_bytes) and two ~64 KiB buffers. */
static int lz4_copy(int in, off_t off, uint64_t len, int out, struct err *e)
{
	LZ4F_preferences_t prefs;
	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	prefs.frameInfo.contentSize = len;
	size_t cap = LZ4F_compressBound(LOG_CHUNK, &prefs) + LZ4F_HEADER_SIZE_MAX;
	_cleanup_free_ char *ibuf = malloc(LOG_CHUNK);
	_cleanup_free_ char *obuf = malloc(cap);
	_cleanup_(lz4_ctx_freep) LZ4F_cctx *ctx = NULL;
	if (!ibuf || !obuf || LZ4F_isError(LZ4F_createCompressionContext(&ctx, LZ4F_VERSION)))
		return err_set(e, ENOMEM, "out of memory");
	size_t n = LZ4F_compressBegin(ctx, obuf, cap, &prefs);
	for (uint64_t done = 0;;) {
		if (LZ4F_isError(n))
			return lz4_fail(n, e);
		int r = write_all(out, obuf, n);
		if (r < 0)
			return err_set(e, -r, "write: %s", strerror(-r));
		if (done == UINT64_MAX)
			return 0; /* the frame's end is written */
		if (done == len) {
			n = LZ4F_compressEnd(ctx, obuf, cap, NULL);
			done = UINT64_MAX;
			continue;
		}
		size_t want = len - done < LOG_CHUNK ? (size_t)(len - done) : LOG_CHUNK;
		ssize_t got = pread(in, ibuf, want, off + (off_t)done);
		if (got <= 0)
			return err_set(e, got < 0 ? errno : EIO, "read: %s",
				       got < 0 ? strerror(errno) : "file shrank");
		done += (uint64_t)got;
		n = LZ4F_compressUpdate(ctx, obuf, cap, ibuf, (size_t)got, NULL);
	}
}

/* The live file's newest max_bytes into <path>.1.lz4.tmp. */
static int log_compress(struct logfile *lf, const char *tmp, struct err *e)
{
	_cleanup_close_ int out =
		open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
	if (out < 0)
		return err_set(e, errno, "create %s: %s", tmp, strerror(errno));
	struct stat st;
	if (fstat(lf->fd, &st) < 0)
		return err_set(e, errno, "stat: %s", strerror(errno));
	uint64_t len = (uint64_t)st.st_size < lf->max ? (uint64_t)st.st_size : lf->max;
	int r = lz4_copy(lf->fd, (off_t)((uint64_t)st.st_size - len), len, out, e);
	if (r < 0)
		return err_prefix(e, "compress to %s", tmp);
	return 0;
}

/* .N.lz4 -> .N+1.lz4 for N = keep-1 .. 1 (the one at .keep is overwritten),
 * then tmp -> .1.lz4. */
static int log_shift(struct logfile *lf, const char *tmp, struct err *e)
{
	char from[PATH_MAX], to[PATH_MAX];
	for (unsigned n = lf->keep - 1; n >= 1; n--) {
		if (seg_name(lf, n, from, sizeof(from)) < 0 || seg_name(lf, n + 1, to, sizeof(to)) < 0)
			return err_set(e, ENAMETOOLONG, "segment name too long");
		if (rename(from, to) < 0 && errno != ENOENT)
			return err_set(e, errno, "rename %s: %s", from, strerror(errno));
	}
	if (seg_name(lf, 1, to, sizeof(to)) < 0)
		return err_set(e, ENAMETOOLONG, "segment name too long");
	if (rename(tmp, to) < 0)
		return err_set(e, errno, "rename %s: %s", tmp, strerror(errno));
	return 0;
}

/* Save the live file as <path>.1.lz4, shifting older segments up. If that
 * fails (ENOSPC, EIO) the segment is dropped all the same: a full disk costs
 * one failed compression per max_bytes of log, not one per write. */
static int log_save_segment(struct logfile *lf, struct err *e)
{
	char tmp[PATH_MAX];
	int r = str_fmt(tmp, sizeof(tmp), "%s.1.lz4.tmp", lf->path);
	if (r < 0)
		return err_set(e, -r, "segment name too long");
	r = log_compress(lf, tmp, e);
	if (r == 0)
		r = log_shift(lf, tmp, e);
	if (r < 0) {
		unlink(tmp);
		return err_prefix(e, "%llu bytes dropped", (unsigned long long)lf->size);
	}
	return 0;
}

static int log_rotate(struct logfile *lf, struct err *e)
{
	int r = lf->keep > 0 ? log_save_segment(lf, e) : 0;
	if (unlink(lf->path) < 0 && errno != ENOENT && r == 0)
		r = err_set(e, errno, "unlink: %s", strerror(errno));
	int reopened = log_reopen(lf, r < 0 ? NULL : e);
	if (r < 0) {
		err_prefix(e, "log %s: rotate", lf->path);
		return r;
	}
	return reopened;
}

int storage_log_write(struct logfile *lf, const void *buf, size_t len, struct err *e)
{
	const char *p = buf;
	if (len == 0)
		return 0;
	if (len > lf->max) {
		/* Only the newest max_bytes of an oversize write are kept. */
		p += len - lf->max;
		len = (size_t)lf->max;
	}
	int r = lf->fd < 0 ? log_reopen(lf, e) : 0;
	if (r == 0 && lf->size > 0 && lf->size + len > lf->max)
		r = log_rotate(lf, e);
	if (r < 0)
		return r;
	r = write_all(lf->fd, p, len);
	if (r < 0) {
		struct stat st;
		if (fstat(lf->fd, &st) == 0)
			lf->size = (uint64_t)st.st_size; /* a partial write counts */
		return err_set(e, -r, "log %s: write %zu bytes: %s", lf->path, len, strerror(-r));
	}
	lf->size += len;
	return 0;
}
