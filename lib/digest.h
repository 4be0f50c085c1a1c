/* lib/digest.h — sha256 digests: the names of objects.
 *
 * Text form: "sha256:" + exactly 64 lowercase hex digits (DIGEST_STR_LEN
 * chars). Anything else (uppercase, short, other algorithm) is rejected.
 * The streaming hasher is the one every byte of an object goes through on
 * its way into the store; see storage/README.md for its speed budget. */
#ifndef CAIRN_LIB_DIGEST_H
#define CAIRN_LIB_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64
#define DIGEST_PREFIX "sha256:"
#define DIGEST_STR_LEN (7 + DIGEST_HEX_LEN) /* without the NUL */

struct digest {
	uint8_t b[DIGEST_LEN];
};

/* Parse exactly `len` bytes of "sha256:<64 lowercase hex>". */
int digest_parse(const char *s, size_t len, struct digest *out) _must_check_;
/* Parse exactly 64 lowercase hex (no prefix), as in object paths and URLs. */
int digest_parse_hex(const char *s, size_t len, struct digest *out) _must_check_;
/* "sha256:<hex>" into out[DIGEST_STR_LEN + 1]. */
void digest_format(const struct digest *d, char out[DIGEST_STR_LEN + 1]);
bool digest_eq(const struct digest *a, const struct digest *b);

struct sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t buf[64];
	size_t used;
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, struct digest *out);
void sha256_buf(const void *data, size_t len, struct digest *out);
/* Which implementation runs: "sha-ni" or "portable" (CAIRN_SHA256_PORTABLE=1
 * forces the portable one; read once). */
const char *sha256_impl(void);

#endif
