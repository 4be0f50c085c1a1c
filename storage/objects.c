/* storage/objects.c — the content-addressed object store.
 *
 *   <root>/objects/sha256/ab/<62 hex>   final names: verified, fsynced, 0444
 *   <root>/tmp/obj-<64 hex>-<pid>-<n>   puts in progress (removed at open)
 *
 * A put streams into a temp file while hashing; commit checks the byte count
 * and the digest, fsyncs the file, makes the fan-out directory durable and
 * renames the file into place durably. Nothing inside the store is reached
 * through a symlink (O_NOFOLLOW on every component below the root). See
 * storage/README.md for the crash behaviour of each step. */
#define _GNU_SOURCE /* fallocate */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define LOG_MODULE "storage"
#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define IO_BUF (1u << 20) /* reads and hashing go 1 MiB at a time */
#define TMP_PREFIX "obj-"
#define OBJ_MODE 0444
#define DIR_MODE 0755

struct storage {
	int rootfd;
	int objfd; /* objects/sha256 */
	int tmpfd; /* tmp */
	char *root; /* absolute */
	unsigned long counter; /* temp file names */
};

struct obj_writer {
	struct storage *s;
	struct digest want;
	uint64_t size, written;
	uint64_t flushed; /* bytes handed to writeback so far (see writer_flush) */
	int failed; /* errno of an earlier failed write: commit refuses */
	int fd;
	struct sha256 ctx;
	char label[DIGEST_STR_LEN + 1]; /* "sha256:<hex>" for messages */
	char tmp[128];                  /* temp name in tmp/, "" once renamed */
};

/* Names of an object: fan-out dir "ab" and the path "ab/<62 hex>" under objfd. */
struct obj_name {
	char label[DIGEST_STR_LEN + 1];
	char fan[3];
	char rel[DIGEST_HEX_LEN + 2];
};

static void obj_name(const struct digest *d, struct obj_name *n)
{
	const char *hex = n->label + sizeof(DIGEST_PREFIX) - 1;
	digest_format(d, n->label);
	memcpy(n->fan, hex, 2);
	n->fan[2] = '\0';
	memcpy(n->rel, hex, 2);
	n->rel[2] = '/';
	memcpy(n->rel + 3, hex + 2, DIGEST_HEX_LEN - 2 + 1);
}

/* ---- open / close ---- */

void storage_close(struct storage *s)
{
	if (!s)
		return;
	closep(&s->rootfd);
	closep(&s->objfd);
	closep(&s->tmpfd);
	free(s->root);
	free(s);
}
DEFINE_FREEP(struct storage, storage_close)

int storage_root_fd(const struct storage *s)
{
	return s->rootfd;
}

size_t storage_fds(const struct storage *s, int fds[3])
{
	fds[0] = s->rootfd;
	fds[1] = s->objfd;
	fds[2] = s->tmpfd;
	return 3;
}

const char *storage_root_path(const struct storage *s)
{
	return s->root;
}

/* openat(O_DIRECTORY | O_NOFOLLOW); a symlink fails with -ELOOP (the kernel
 * says ENOTDIR for it), anything else with -errno. */
static int open_dir_nofollow(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int err = errno;
	struct stat st;
	if (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = ELOOP;
	return -err;
}

static int open_subdir(int dirfd, const char *name, const char *what, struct err *e)
{
	int fd = open_dir_nofollow(dirfd, name);
	if (fd == -ELOOP)
		return err_set(e, ELOOP, "%s: is a symlink", what);
	if (fd < 0)
		return err_set(e, -fd, "open %s: %s", what, strerror(-fd));
	return fd;
}

/* 1 if removed. Garbage that cannot be removed (a directory, a read-only
 * mount) is harmless: it is reported and the store opens anyway. */
static int sweep_one(struct storage *s, const char *name)
{
	if (unlinkat(s->tmpfd, name, 0) < 0) {
		if (errno != ENOENT)
			log_warn("stale tmp/%s: cannot remove: %s", name, strerror(errno));
		return 0;
	}
	log_info("removed stale temp file tmp/%s", name);
	return 1;
}

/* Remove the temp files of interrupted puts. Not durable one by one: a file
 * that comes back after a power cut is removed again at the next open. */
static int sweep_tmp(struct storage *s, struct err *e)
{
	int dfd = fcntl(s->tmpfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return err_set(e, errno, "tmp/: %s", strerror(errno));
	_cleanup_closedir_ DIR *dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return err_set(e, errno, "tmp/: %s", strerror(errno));
	}
	int removed = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(dir))) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		removed += sweep_one(s, de->d_name);
	}
	if (errno)
		return err_set(e, errno, "read tmp/: %s", strerror(errno));
	return removed ? storage_fsync(s->tmpfd, "tmp/", e) : 0;
}

static int storage_layout(struct storage *s, struct err *e)
{
	int r = storage_mkdir_durable(s->rootfd, "objects", DIR_MODE, e);
	if (r >= 0)
		r = storage_mkdir_durable(s->rootfd, "objects/sha256", DIR_MODE, e);
	if (r >= 0)
		r = storage_mkdir_durable(s->rootfd, "tmp", DIR_MODE, e);
	if (r < 0)
		return r;
	_cleanup_close_ int objects = open_subdir(s->rootfd, "objects", "objects/", e);
	if (objects < 0)
		return objects;
	s->objfd = open_subdir(objects, "sha256", "objects/sha256/", e);
	if (s->objfd < 0)
		return s->objfd;
	s->tmpfd = open_subdir(s->rootfd, "tmp", "tmp/", e);
	if (s->tmpfd < 0)
		return s->tmpfd;
	return sweep_tmp(s, e);
}

int storage_open(const char *root, struct storage **out, struct err *e)
{
	_cleanup_(storage_closep) struct storage *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, ENOMEM, "storage %s: out of memory", root);
	s->objfd = s->tmpfd = -1;
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0)
		return err_set(e, errno, "storage %s: %s", root, strerror(errno));
	s->root = realpath(root, NULL);
	if (!s->root)
		return err_set(e, errno, "storage %s: %s", root, strerror(errno));
	int r = storage_layout(s, e);
	if (r < 0)
		return err_prefix(e, "storage %s", root);
	*out = TAKE_PTR(s);
	return 0;
}

/* ---- put ---- */

static void writer_free(struct obj_writer *w)
{
	if (!w)
		return;
	closep(&w->fd);
	if (w->tmp[0])
		(void)unlinkat(w->s->tmpfd, w->tmp, 0); /* garbage: swept at open if this fails */
	free(w);
}
DEFINE_FREEP(struct obj_writer, writer_free)

/* Create tmp/obj-<hex>-<pid>-<n>, exclusively. */
static int writer_create_temp(struct obj_writer *w, struct err *e)
{
	const char *hex = w->label + sizeof(DIGEST_PREFIX) - 1;
	for (int tries = 0; tries < 16; tries++) {
		char name[sizeof(w->tmp)];
		if (str_fmt(name, sizeof(name), TMP_PREFIX "%s-%ld-%lu", hex, (long)getpid(),
			    ++w->s->counter) < 0)
			return err_set(e, ENAMETOOLONG, "object %s: temp name too long", w->label);
		w->fd = openat(w->s->tmpfd, name,
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		if (w->fd >= 0) {
			memcpy(w->tmp, name, sizeof(name));
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	return err_set(e, errno, "object %s: create temp file in tmp/: %s", w->label,
		       strerror(errno));
}

/* Reserve the declared size now, so a full disk fails the put before any byte
 * is transferred. File systems without fallocate just skip this. */
static int writer_reserve(struct obj_writer *w, struct err *e)
{
	if (w->size == 0 || fallocate(w->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)w->size) == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINTR)
		return 0;
	return err_set(e, errno, "object %s: reserve %llu bytes: %s", w->label,
		       (unsigned long long)w->size, strerror(errno));
}

int storage_object_begin(struct storage *s, const struct digest *want, uint64_t size,
			 struct obj_writer **out, struct err *e)
{
	_cleanup_(writer_freep) struct obj_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(e, ENOMEM, "object: out of memory");
	w->s = s;
	w->fd = -1;
	w->want = *want;
	w->size = size;
	digest_format(want, w->label);
	if (size > (uint64_t)INT64_MAX)
		return err_set(e, EFBIG, "object %s: declared size %llu is too large", w->label,
			       (unsigned long long)size);
	int r = writer_create_temp(w, e);
	if (r >= 0)
		r = writer_reserve(w, e);
	if (r < 0)
		return r;
	sha256_init(&w->ctx);
	*out = TAKE_PTR(w);
	return 0;
}

/* Start writeback of every full OBJ_FLUSH_CHUNK as it is written, and wait
 * for the chunk before it, so a large object never piles up as dirty pages
 * and the fsync at commit (in the caller's event loop) stays short. Both are
 * hints: errors surface at that fsync, which is never skipped. */
#define OBJ_FLUSH_CHUNK (8u << 20)
static void writer_flush(struct obj_writer *w)
{
	while (w->written - w->flushed >= OBJ_FLUSH_CHUNK) {
		(void)sync_file_range(w->fd, (off64_t)w->flushed, OBJ_FLUSH_CHUNK,
				      SYNC_FILE_RANGE_WRITE);
		if (w->flushed >= OBJ_FLUSH_CHUNK)
			(void)sync_file_range(w->fd, (off64_t)(w->flushed - OBJ_FLUSH_CHUNK),
					      OBJ_FLUSH_CHUNK, SYNC_FILE_RANGE_WAIT_BEFORE |
								       SYNC_FILE_RANGE_WRITE |
								       SYNC_FILE_RANGE_WAIT_AFTER);
		w->flushed += OBJ_FLUSH_CHUNK;
	}
}

int storage_object_write(struct obj_writer *w, const void *buf, size_t len, struct err *e)
{
	if (w->failed)
		return err_set(e, w->failed, "object %s: an earlier write failed", w->label);
	if (len > w->size - w->written) {
		w->failed = EFBIG;
		return err_set(e, EFBIG, "object %s: more than the declared %llu bytes", w->label,
			       (unsigned long long)w->size);
	}
	int r = write_all(w->fd, buf, len);
	if (r < 0) {
		w->failed = -r;
		return err_set(e, r, "object %s: write tmp/%s: %s", w->label, w->tmp,
			       strerror(-r));
	}
	sha256_update(&w->ctx, buf, len);
	w->written += len;
	writer_flush(w);
	return 0;
}

uint64_t storage_object_written(const struct obj_writer *w)
{
	return w->written;
}

static int writer_check(struct obj_writer *w, struct err *e)
{
	if (w->failed)
		return err_set(e, w->failed, "object %s: an earlier write failed", w->label);
	if (w->written != w->size)
		return err_set(e, EBADMSG, "object %s: size %llu != declared %llu", w->label,
			       (unsigned long long)w->written, (unsigned long long)w->size);
	struct digest got;
	sha256_final(&w->ctx, &got);
	if (!digest_eq(&got, &w->want)) {
		char gs[DIGEST_STR_LEN + 1];
		digest_format(&got, gs);
		return err_set(e, EBADMSG, "object %s: digest mismatch (got %s)", w->label, gs);
	}
	return 0;
}

/* The rename failed: if it happened anyway (a directory fsync failed after
 * it), take the final name away again, so a failed put leaves no name. Only
 * when that name is our file: a temp removed by someone else must not cost
 * an existing object its name. */
static void writer_undo_rename(struct obj_writer *w, const struct obj_name *n)
{
	struct stat ours, named;
	if (fstat(w->fd, &ours) < 0 ||
	    fstatat(w->s->objfd, n->rel, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
	    ours.st_dev != named.st_dev || ours.st_ino != named.st_ino)
		return;
	(void)unlinkat(w->s->objfd, n->rel, 0);
	w->tmp[0] = '\0';
}

/* Durable ops of a commit: fsync file, mkdir fan-out dir, rename. An existing
 * object is replaced by the verified bytes (same content, repairs bit rot). */
static int writer_install(struct obj_writer *w, struct err *e)
{
	struct obj_name n;
	obj_name(&w->want, &n);
	if (fchmod(w->fd, OBJ_MODE) < 0)
		return err_set(e, errno, "object %s: chmod: %s", w->label, strerror(errno));
	int r = storage_fsync(w->fd, w->tmp, e);
	if (r >= 0)
		r = storage_mkdir_durable(w->s->objfd, n.fan, DIR_MODE, e);
	if (r < 0)
		return err_prefix(e, "object %s", w->label);
	r = storage_rename_durable(w->s->tmpfd, w->tmp, w->s->objfd, n.rel, e);
	if (r < 0) {
		writer_undo_rename(w, &n);
		return err_prefix(e, "object %s", w->label);
	}
	w->tmp[0] = '\0'; /* renamed: nothing left to remove */
	return 0;
}

int storage_object_commit(struct obj_writer *w, struct err *e)
{
	_cleanup_(writer_freep) struct obj_writer *owned = w;
	int r = writer_check(owned, e);
	return r < 0 ? r : writer_install(owned, e);
}

void storage_object_abort(struct obj_writer *w)
{
	writer_free(w);
}

int storage_object_put_fd(struct storage *s, int fd, const struct digest *want, uint64_t size,
			  struct err *e)
{
	_cleanup_free_ uint8_t *buf = malloc(IO_BUF);
	if (!buf)
		return err_set(e, ENOMEM, "object: out of memory");
	struct obj_writer *w;
	int r = storage_object_begin(s, want, size, &w, e);
	if (r < 0)
		return r;
	for (;;) {
		/* ask for one byte past the declared size, to notice a longer stream */
		uint64_t left = size - w->written;
		size_t ask = left < IO_BUF ? (size_t)left + 1 : IO_BUF;
		ssize_t n = read_all(fd, buf, ask);
		if (n < 0) {
			r = err_set(e, (int)-n, "object %s: read: %s", w->label, strerror((int)-n));
			break;
		}
		if (n > 0 && (r = storage_object_write(w, buf, (size_t)n, e)) < 0)
			break;
		if ((size_t)n < ask)
			return storage_object_commit(w, e); /* end of stream */
	}
	storage_object_abort(w);
	return r;
}

/* ---- looking objects up ---- */

/* Open the object read-only, checking it is a regular file reached without
 * symlinks. -ENOENT when absent (the error says so). */
static int object_open(struct storage *s, const struct obj_name *n, int *out, struct stat *st,
		       struct err *e)
{
	_cleanup_close_ int fan = open_dir_nofollow(s->objfd, n->fan);
	if (fan < 0)
		return err_set(e, -fan, "object %s: %s", n->label,
			       fan == -ELOOP ? "fan-out directory is a symlink" : strerror(-fan));
	_cleanup_close_ int fd = openat(fan, n->rel + 3, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
								  O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return err_set(e, err, "object %s: %s", n->label,
			       err == ELOOP ? "is a symlink" : strerror(err));
	}
	if (fstat(fd, st) < 0)
		return err_set(e, errno, "object %s: %s", n->label, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return err_set(e, EINVAL, "object %s: not a regular file", n->label);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return err_set(e, errno, "object %s: %s", n->label, strerror(errno));
	*out = TAKE_FD(fd);
	return 0;
}

bool storage_object_has(struct storage *s, const struct digest *d)
{
	struct obj_name n;
	obj_name(d, &n);
	_cleanup_close_ int fan = open_dir_nofollow(s->objfd, n.fan);
	struct stat st;
	return fan >= 0 && fstatat(fan, n.rel + 3, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

int storage_object_open(struct storage *s, const struct digest *d, int *fd, struct err *e)
{
	struct obj_name n;
	struct stat st;
	obj_name(d, &n);
	return object_open(s, &n, fd, &st, e);
}

int storage_object_size(struct storage *s, const struct digest *d, uint64_t *size, struct err *e)
{
	struct obj_name n;
	struct stat st;
	_cleanup_close_ int fd = -1;
	obj_name(d, &n);
	int r = object_open(s, &n, &fd, &st, e);
	if (r < 0)
		return r;
	*size = (uint64_t)st.st_size;
	return 0;
}

int storage_object_path(const struct storage *s, const struct digest *d, char *buf, size_t cap)
{
	struct obj_name n;
	obj_name(d, &n);
	return str_fmt(buf, cap, "%s/objects/sha256/%s", s->root, n.rel);
}

/* ---- verify: the benchmarked path ---- */

static int hash_fd(int fd, struct sha256 *ctx, uint64_t *total)
{
	_cleanup_free_ uint8_t *buf = malloc(IO_BUF);
	if (!buf)
		return -ENOMEM;
	*total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, IO_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		sha256_update(ctx, buf, (size_t)n);
		*total += (uint64_t)n;
	}
}

/* ---- the boot memo (storage_boot_memo in storage.h) ---- */

#define MEMO_MAX 64

/* An object as it was when it was hashed (or vouched for): the same inode,
 * unchanged since (ctime moves with every write, chmod or link count change). */
struct memo_entry {
	struct digest d;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec ctime;
};

static struct {
	bool on;
	size_t n;
	struct memo_entry e[MEMO_MAX];
} memo;

void storage_boot_memo(bool on)
{
	memo.on = on;
	memo.n = 0;
}

static bool memo_same(const struct memo_entry *m, const struct digest *d, const struct stat *st)
{
	return digest_eq(&m->d, d) && m->dev == st->st_dev && m->ino == st->st_ino &&
	       m->size == st->st_size && m->ctime.tv_sec == st->st_ctim.tv_sec &&
	       m->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool memo_has(const struct digest *d, const struct stat *st)
{
	for (size_t i = 0; memo.on && i < memo.n; i++)
		if (memo_same(&memo.e[i], d, st))
			return true;
	return false;
}

static void memo_add(const struct digest *d, const struct stat *st)
{
	if (!memo.on || memo.n == MEMO_MAX || memo_has(d, st))
		return;
	memo.e[memo.n++] = (struct memo_entry){.d = *d, .dev = st->st_dev, .ino = st->st_ino,
					       .size = st->st_size, .ctime = st->st_ctim};
}

/* Open the object and check its size; *fd < 0 when the memo already has it. */
static int verify_open(struct storage *s, const struct obj_name *n, const struct digest *d,
		       uint64_t size, int *fd, struct stat *st, struct err *e)
{
	int r = object_open(s, n, fd, st, e);
	if (r < 0)
		return r;
	if (size != UINT64_MAX && (uint64_t)st->st_size != size)
		return err_set(e, EFBIG, "object %s: size %llu != declared %llu", n->label,
			       (unsigned long long)st->st_size, (unsigned long long)size);
	if (memo_has(d, st)) {
		close(*fd);
		*fd = -1;
	}
	return 0;
}

int storage_object_vouch(struct storage *s, const struct digest *d, uint64_t size, struct err *e)
{
	struct obj_name n;
	struct stat st;
	_cleanup_close_ int fd = -1;
	obj_name(d, &n);
	int r = verify_open(s, &n, d, size, &fd, &st, e);
	if (r >= 0)
		memo_add(d, &st);
	return r;
}

int storage_object_verify(struct storage *s, const struct digest *d, uint64_t size, struct err *e)
{
	struct obj_name n;
	struct stat st;
	_cleanup_close_ int fd = -1;
	obj_name(d, &n);
	int r = verify_open(s, &n, d, size, &fd, &st, e);
	if (r < 0 || fd < 0)
		return r; /* an error, or hashed earlier in this boot */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a hint: failure is harmless */
	struct sha256 ctx;
	struct digest got;
	uint64_t total;
	sha256_init(&ctx);
	r = hash_fd(fd, &ctx, &total);
	if (r < 0)
		return err_set(e, r, "object %s: read: %s", n.label, strerror(-r));
	sha256_final(&ctx, &got);
	if (size != UINT64_MAX && total != size)
		return err_set(e, EFBIG, "object %s: size %llu != declared %llu", n.label,
			       (unsigned long long)total, (unsigned long long)size);
	if (!digest_eq(&got, d)) {
		char gs[DIGEST_STR_LEN + 1];
		digest_format(&got, gs);
		return err_set(e, EBADMSG, "object %s: digest mismatch (got %s)", n.label, gs);
	}
	memo_add(d, &st);
	return 0;
}

/* ---- list / remove / free space ---- */

typedef int (*list_cb)(const struct digest *d, void *ctx);

static bool is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[len] == '\0';
}

/* One fan-out directory; entries that are not regular files named <62 hex> are ignored. */
static int list_fan(struct storage *s, const char *fan, list_cb cb, void *ctx, struct err *e)
{
	int fd = open_dir_nofollow(s->objfd, fan);
	if (fd == -ELOOP || fd == -ENOTDIR || fd == -ENOENT)
		return 0;
	if (fd < 0)
		return err_set(e, -fd, "objects/sha256/%s: %s", fan, strerror(-fd));
	_cleanup_closedir_ DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return err_set(e, errno, "objects/sha256/%s: %s", fan, strerror(errno));
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(dir))) {
		char hex[DIGEST_HEX_LEN + 1];
		struct digest d;
		struct stat st;
		if (!is_hex(de->d_name, DIGEST_HEX_LEN - 2) ||
		    str_fmt(hex, sizeof(hex), "%s%s", fan, de->d_name) < 0 ||
		    digest_parse_hex(hex, DIGEST_HEX_LEN, &d) < 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		int r = cb(&d, ctx);
		if (r)
			return r;
	}
	if (errno)
		return err_set(e, errno, "read objects/sha256/%s: %s", fan, strerror(errno));
	return 0;
}

int storage_object_list(struct storage *s, int (*cb)(const struct digest *d, void *ctx), void *ctx,
			struct err *e)
{
	int fd = fcntl(s->objfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return err_set(e, errno, "objects/sha256: %s", strerror(errno));
	_cleanup_closedir_ DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return err_set(e, errno, "objects/sha256: %s", strerror(errno));
	}
	rewinddir(dir); /* the dup shares its offset with objfd */
	struct dirent *de;
	while ((errno = 0, de = readdir(dir))) {
		if (!is_hex(de->d_name, 2))
			continue;
		int r = list_fan(s, de->d_name, cb, ctx, e);
		if (r)
			return r;
	}
	if (errno)
		return err_set(e, errno, "read objects/sha256: %s", strerror(errno));
	return 0;
}

int storage_object_remove(struct storage *s, const struct digest *d, struct err *e)
{
	struct obj_name n;
	obj_name(d, &n);
	int r = storage_unlink_durable(s->objfd, n.rel, 0, e);
	if (r == -ENOENT) {
		err_clear(e); /* no fan-out directory: nothing to remove */
		return 0;
	}
	return r < 0 ? err_prefix(e, "object %s", n.label) : 0;
}

int storage_free_bytes(struct storage *s, uint64_t *out, struct err *e)
{
	struct statvfs sv;
	if (fstatvfs(s->rootfd, &sv) < 0)
		return err_set(e, errno, "storage %s: statvfs: %s", s->root, strerror(errno));
	*out = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
