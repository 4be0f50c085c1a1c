/* storage/storage.h — durable file operations and the content-addressed
 * object store. storage knows nothing of revisions.
 *
 * Durable operations: every durable change cairn makes goes through the
 * storage_*durable* functions below (write temp -> fsync -> rename -> fsync
 * dir). They are also the crash-injection point of the tests:
 *   CAIRN_CRASH_AT=before:N | after:N   SIGKILL the process just before /
 *                                        just after the Nth durable operation
 *   CAIRN_FAIL_AT=N:ERRNO               make the Nth durable operation fail
 *                                        with ERRNO (e.g. 3:EIO, 1:ENOSPC)
 * (counted per process from 1; read once from the environment). An fsync that
 * fails is fatal for the operation: never retried, never ignored.
 *
 * Layout under the storage root (see ../shared/DESIGN.md):
 *   objects/sha256/ab/<62 hex>   immutable, verified before they get this name
 *   tmp/                         partial objects and staging
 * See storage/README.md for the decisions behind this module. */
#ifndef CAIRN_STORAGE_H
#define CAIRN_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/digest.h"
#include "../lib/err.h"

/* ---- durable operations (all count as one durable op each) ---- */

/* Atomically replace dirfd/name with `len` bytes: temp file in the same
 * directory, fsync, rename, fsync the directory. */
int storage_write_durable(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			  struct err *e) _must_check_;
/* rename(2) then fsync of both directories. */
int storage_rename_durable(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			   struct err *e) _must_check_;
/* fsync(2) of a file or directory fd; `what` names it in the error. */
int storage_fsync(int fd, const char *what, struct err *e) _must_check_;
/* mkdir (EEXIST as a directory is fine) then fsync of the parent. */
int storage_mkdir_durable(int dirfd, const char *name, mode_t mode, struct err *e) _must_check_;
/* unlinkat(flags) (ENOENT is fine) then fsync of the directory. */
int storage_unlink_durable(int dirfd, const char *name, int flags, struct err *e) _must_check_;
/* Make what is already durable on fd's filesystem visible to a reader that
 * does not replay the journal (a bootloader reading ext4): checkpoint the
 * journal (EXT4_IOC_CHECKPOINT; FIFREEZE + FITHAW on kernels before 5.13).
 * A filesystem without a journal to checkpoint is a no-op. Not a durable op
 * (not counted, no injection): it moves no data, only where it lives. */
int storage_checkpoint(int fd, struct err *e) _must_check_;
/* Number of durable operations this process has done (tests use it to find N). */
unsigned long storage_durable_count(void);

/* ---- object store ---- */

struct storage;
struct obj_writer;

/* Open (creating objects/sha256 and tmp/ durably if missing) the storage at
 * `root`. Stale temp files from an interrupted put are removed. */
int storage_open(const char *root, struct storage **out, struct err *e) _must_check_;
void storage_close(struct storage *s);
int storage_root_fd(const struct storage *s);
/* The fds the store keeps open (root, objects, tmp) into fds; their number.
 * For a forked worker that closes every other fd it inherited. */
size_t storage_fds(const struct storage *s, int fds[3]);
const char *storage_root_path(const struct storage *s);

/* Streaming put: bytes are hashed while written to a temp file; commit gives
 * the object its final name only if both the digest and the byte count match
 * what was declared. Writing more than `size` bytes fails at once (EFBIG).
 * commit and abort free the writer whatever happens; on any failure nothing
 * is left under any name. Putting an object that exists is not an error. */
int storage_object_begin(struct storage *s, const struct digest *want, uint64_t size,
			 struct obj_writer **out, struct err *e) _must_check_;
int storage_object_write(struct obj_writer *w, const void *buf, size_t len,
			 struct err *e) _must_check_;
uint64_t storage_object_written(const struct obj_writer *w);
int storage_object_commit(struct obj_writer *w, struct err *e) _must_check_;
void storage_object_abort(struct obj_writer *w);
/* Whole put from a readable fd (a file, a pipe, a socket in blocking mode). */
int storage_object_put_fd(struct storage *s, int fd, const struct digest *want, uint64_t size,
			  struct err *e) _must_check_;

bool storage_object_has(struct storage *s, const struct digest *d);
/* Read-only, O_CLOEXEC fd of the object. */
int storage_object_open(struct storage *s, const struct digest *d, int *fd,
			struct err *e) _must_check_;
int storage_object_size(struct storage *s, const struct digest *d, uint64_t *size,
			struct err *e) _must_check_;
/* Absolute path of the object (for loop mounts), whether or not it exists. */
int storage_object_path(const struct storage *s, const struct digest *d, char *buf,
			size_t cap) _must_check_;
/* Re-hash the stored object: 0 if its bytes still have digest `d` and, when
 * size != UINT64_MAX, that size; -EBADMSG / -EFBIG with the numbers otherwise.
 * This is the "verify path" of the benchmark: it must run at sha256sum speed. */
int storage_object_verify(struct storage *s, const struct digest *d, uint64_t size,
			  struct err *e) _must_check_;
/* The boot memo: while it is on, storage_object_verify remembers each object
 * it hashed (digest, inode, size, ctime) and does not hash it again while
 * its inode is unchanged; a fork inherits it. PID 1's early boot turns it on
 * (the BSP's modules are hashed there), the engine turns it off (and forgets)
 * once the booted revision is loaded, so every later verify hashes: a
 * re-hash before a switch is there to catch flash that rotted since install.
 * Off by default. See storage/README.md "Boot memo". */
void storage_boot_memo(bool on);
/* While the memo is on: record the object as verified without hashing it,
 * after checking it is there with that size. For bytes this boot already
 * consumed, which a hash cannot take back: the kernel and initrd the
 * bootloader ran. */
int storage_object_vouch(struct storage *s, const struct digest *d, uint64_t size,
			 struct err *e) _must_check_;
/* Call cb for every object with a final name (in no particular order). A
 * non-zero return from cb stops the walk and is returned. */
int storage_object_list(struct storage *s, int (*cb)(const struct digest *d, void *ctx), void *ctx,
			struct err *e) _must_check_;
int storage_object_remove(struct storage *s, const struct digest *d, struct err *e) _must_check_;

/* Bytes available to cairn on the storage filesystem (statvfs f_bavail). */
int storage_free_bytes(struct storage *s, uint64_t *out, struct err *e) _must_check_;

/* ---- mounts, volumes, state dirs (storage/mount.c) ----
 * Mounts are not durable state: they are never counted as durable ops. */

/* Loop-mount a squashfs image at `target` (an existing dir): read-only,
 * nodev, nosuid. The loop device is taken with LOOP_CTL_GET_FREE (the race
 * with another taker is retried), configured read-only with autoclear, so
 * it is released with the last unmount. ENODEV from mount(2) is reported as
 * "kernel lacks squashfs". */
int storage_mount_squashfs(const char *image, const char *target, struct err *e) _must_check_;
/* overlay at target: lower read-only, upper and work dirs on one filesystem. */
int storage_mount_overlay(const char *lower, const char *upper, const char *work,
			  const char *target, struct err *e) _must_check_;
/* tmpfs at target with mount data `opts` (e.g. "mode=0755,size=16m"); nodev, nosuid. */
int storage_mount_tmpfs(const char *target, const char *opts, struct err *e) _must_check_;
/* Bind `source` (dir or file) onto `target`; read-only remount when asked. */
int storage_mount_bind(const char *source, const char *target, bool readonly,
		       struct err *e) _must_check_;
/* Unmount target; EINVAL/ENOENT (not mounted) is success. A busy mount is
 * detached (MNT_DETACH) and reported in the error. */
int storage_umount(const char *target, struct err *e) _must_check_;
/* True if `path` is a mount point (its st_dev differs from its parent's, or
 * it appears in /proc/self/mountinfo). */
bool storage_is_mountpoint(const char *path);
/* mkdir -p (not durable: for runtime state under tmpfs). */
int storage_mkdir_p(const char *path, mode_t mode, struct err *e) _must_check_;
/* rm -rf of a directory tree that must not contain mount points (refuses,
 * with an error, to cross into another filesystem). */
int storage_rmtree(const char *path, struct err *e) _must_check_;

/* Persistent volume directory <root>/volumes/<rel>, every missing component
 * created durably; `rel` is made of names the caller validated, e.g.
 * "permanent/net/state" or "revision/12/net/state". Absolute path in buf. */
int storage_volume_dir(struct storage *s, const char *rel, char *buf, size_t cap,
		       struct err *e) _must_check_;

/* ---- container logs (storage/logs.c) ----
 * An append-only log file capped at max_bytes: when a write would pass the
 * cap, the file is rotated to <path>.1.lz4 (lz4 frame, the older <path>.N.lz4
 * shifted up, at most `keep` rotated segments) and a fresh file started.
 * Log writes are not durable ops (no fsync): logs are best-effort. */
struct logfile;
int storage_log_open(const char *path, uint64_t max_bytes, unsigned keep, struct logfile **out,
		     struct err *e) _must_check_;
int storage_log_write(struct logfile *lf, const void *buf, size_t len, struct err *e) _must_check_;
void storage_log_close(struct logfile *lf);

#endif
