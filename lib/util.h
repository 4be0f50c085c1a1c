/* lib/util.h — small helpers: bounded formatting, full reads/writes, names, hex. */
#ifndef CAIRN_LIB_UTIL_H
#define CAIRN_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* snprintf that fails (-ENAMETOOLONG) instead of truncating. */
int str_fmt(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4) _must_check_;

/* A cairn name: [a-z0-9][a-z0-9_-]{0,31}. Containers, groups, volumes,
 * metadata keys: anything that may become a path component. */
#define NAME_MAX_LEN 32
bool name_valid(const char *s);
bool name_valid_n(const char *s, size_t len);

/* write(2)/read(2) until done, retrying EINTR; a short read means EOF.
 * Return 0 / bytes read, or a negative errno. Never loop on ENOSPC/EIO. */
int write_all(int fd, const void *buf, size_t len) _must_check_;
ssize_t read_all(int fd, void *buf, size_t len) _must_check_;

/* Read a whole file (at most `max` bytes, else -EFBIG) into a NUL-terminated
 * malloc'd buffer. */
int file_read_all(int dirfd, const char *path, size_t max, char **out, size_t *len,
		  struct err *e) _must_check_;

/* Lowercase hex of `n` bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Strict lowercase hex decode of exactly 2n chars; -EINVAL otherwise. */
int hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n) _must_check_;

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
