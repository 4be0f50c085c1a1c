/* lib/digest.c — sha256 (FIPS 180-4) and the "sha256:<hex>" text form.
 *
 * Two block functions compute the same thing: a portable C one and, on
 * x86-64 CPUs with the SHA extensions, one built on the SHA-NI instructions
 * (about 5-8x faster; it is what keeps object verification at or below
 * sha256sum's cost). The choice is made once, at the first hash:
 * CAIRN_SHA256_PORTABLE=1 in the environment forces the portable path so
 * tests can check both on a machine that has SHA-NI. */
#include "digest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Test-only: the name of the block function in use ("sha-ni" or "portable").
 * Declared here rather than in digest.h, which does not carry test hooks;
 * test/unit/digest_test.c declares it too. */

typedef void (*sha256_blocks_fn)(uint32_t h[8], const uint8_t *p, size_t nblocks);

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static const uint32_t H0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ---- portable block function ---- */

static inline uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void sha256_schedule(uint32_t w[64], const uint8_t *p)
{
	for (int i = 0; i < 16; i++)
		w[i] = load_be32(p + 4 * i);
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
}

static void sha256_blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[64];
	for (; nblocks > 0; nblocks--, p += 64) {
		sha256_schedule(w, p);
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
		uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
		for (int i = 0; i < 64; i++) {
			uint32_t s1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
			uint32_t ch = (e & f) ^ (~e & g);
			uint32_t t1 = hh + s1 + ch + K[i] + w[i];
			uint32_t s0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
			uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
			uint32_t t2 = s0 + maj;
			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a, h[1] += b, h[2] += c, h[3] += d;
		h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
	}
}

/* ---- SHA-NI block function ----
 * The SHA instructions keep the state as two vectors, ABEF and CDGH (A in
 * the highest lane), instead of h[0..7]; sha256rnds2 does two rounds taking
 * their W+K from the two low lanes of its third operand. The message
 * schedule runs four words at a time with sha256msg1/msg2:
 *   W[t..t+3] = msg2(msg1(W[t-16..], W[t-12..]) + W[t-7..t-4], W[t-4..]) */
#if defined(__x86_64__)
#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

SHA_TARGET static inline void shani_4rounds(__m128i *abef, __m128i *cdgh, __m128i w, int i)
{
	__m128i wk = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * i]));
	*cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
	wk = _mm_shuffle_epi32(wk, 0x0e);
	*abef = _mm_sha256rnds2_epu32(*abef, *cdgh, wk);
}

SHA_TARGET static inline __m128i shani_next(__m128i w0, __m128i w4, __m128i w8, __m128i w12)
{
	__m128i t = _mm_sha256msg1_epu32(w0, w4);
	t = _mm_add_epi32(t, _mm_alignr_epi8(w12, w8, 4));
	return _mm_sha256msg2_epu32(t, w12);
}

SHA_TARGET static void shani_block(__m128i *abef, __m128i *cdgh, const uint8_t *p)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
	__m128i m[4];
	for (int i = 0; i < 4; i++)
		m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
	__m128i save_abef = *abef, save_cdgh = *cdgh;
	/* m[i & 3] holds W[4i..4i+3]; once used it is replaced by W[4i+16..]. */
#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) {
		shani_4rounds(abef, cdgh, m[i & 3], i);
		if (i < 12)
			m[i & 3] = shani_next(m[i & 3], m[(i + 1) & 3], m[(i + 2) & 3],
					      m[(i + 3) & 3]);
	}
	*abef = _mm_add_epi32(*abef, save_abef);
	*cdgh = _mm_add_epi32(*cdgh, save_cdgh);
}

SHA_TARGET static void sha256_blocks_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
	/* h[0..3] = A B C D, h[4..7] = E F G H (lane 0 first) -> ABEF, CDGH */
	__m128i badc = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xb1);
	__m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1b);
	__m128i abef = _mm_alignr_epi8(badc, hgfe, 8);
	__m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xf0);
	for (; nblocks > 0; nblocks--, p += 64)
		shani_block(&abef, &cdgh, p);
	/* and back */
	__m128i efab = _mm_shuffle_epi32(abef, 0x1b);
	__m128i ghcd = _mm_shuffle_epi32(cdgh, 0xb1);
	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(efab, ghcd, 0xf0));
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(ghcd, efab, 8));
}

/* cpuid directly: clang 14's __builtin_cpu_supports does not know "sha"
 * (the fuzz targets are built with clang), and gcc's pulls libgcc's whole
 * cpu model (4.5 KB and a constructor) into the binary for three bits. */
static bool cpu_has_shani(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#else
static bool cpu_has_shani(void)
{
	return false;
}
#endif

/* ---- dispatch: chosen once, at the first hash ---- */

static sha256_blocks_fn blocks_fn;
static const char *blocks_name;

static sha256_blocks_fn sha256_blocks(void)
{
	sha256_blocks_fn fn = __atomic_load_n(&blocks_fn, __ATOMIC_ACQUIRE);
	if (fn)
		return fn;
	const char *force = getenv("CAIRN_SHA256_PORTABLE");
	bool portable = force && strcmp(force, "1") == 0;
	fn = sha256_blocks_portable;
	blocks_name = "portable";
#if defined(__x86_64__)
	if (!portable && cpu_has_shani()) {
		fn = sha256_blocks_shani;
		blocks_name = "sha-ni";
	}
#else
	(void)portable;
	(void)cpu_has_shani;
#endif
	__atomic_store_n(&blocks_fn, fn, __ATOMIC_RELEASE);
	return fn;
}

const char *sha256_impl(void)
{
	sha256_blocks();
	return blocks_name;
}

/* ---- streaming interface ---- */

void sha256_init(struct sha256 *c)
{
	memcpy(c->h, H0, sizeof(c->h));
	c->total = 0;
	c->used = 0;
}

void sha256_update(struct sha256 *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	sha256_blocks_fn fn = sha256_blocks();
	if (len == 0)
		return; /* data may be NULL */
	c->total += len;
	if (c->used > 0) {
		size_t take = 64 - c->used < len ? 64 - c->used : len;
		memcpy(c->buf + c->used, p, take);
		c->used += take;
		p += take;
		len -= take;
		if (c->used < 64)
			return;
		fn(c->h, c->buf, 1);
		c->used = 0;
	}
	if (len >= 64) {
		fn(c->h, p, len / 64);
		p += len & ~(size_t)63;
		len &= 63;
	}
	memcpy(c->buf, p, len);
	c->used = len;
}

void sha256_final(struct sha256 *c, struct digest *out)
{
	sha256_blocks_fn fn = sha256_blocks();
	uint64_t bits = c->total * 8;
	c->buf[c->used++] = 0x80;
	if (c->used > 56) {
		memset(c->buf + c->used, 0, 64 - c->used);
		fn(c->h, c->buf, 1);
		c->used = 0;
	}
	memset(c->buf + c->used, 0, 56 - c->used);
	for (int i = 0; i < 8; i++)
		c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	fn(c->h, c->buf, 1);
	for (int i = 0; i < 8; i++) {
		out->b[4 * i] = (uint8_t)(c->h[i] >> 24);
		out->b[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out->b[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out->b[4 * i + 3] = (uint8_t)c->h[i];
	}
	sha256_init(c); /* no digest state is left behind */
}

void sha256_buf(const void *data, size_t len, struct digest *out)
{
	struct sha256 c;
	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, out);
}

/* ---- text form ---- */

int digest_parse_hex(const char *s, size_t len, struct digest *out)
{
	struct digest d;
	if (!s || len != DIGEST_HEX_LEN || hex_decode(s, len, d.b, DIGEST_LEN) < 0)
		return -EINVAL;
	*out = d; /* untouched on error */
	return 0;
}

int digest_parse(const char *s, size_t len, struct digest *out)
{
	const size_t plen = sizeof(DIGEST_PREFIX) - 1;
	if (!s || len != DIGEST_STR_LEN || memcmp(s, DIGEST_PREFIX, plen) != 0)
		return -EINVAL;
	return digest_parse_hex(s + plen, len - plen, out);
}

void digest_format(const struct digest *d, char out[DIGEST_STR_LEN + 1])
{
	const size_t plen = sizeof(DIGEST_PREFIX) - 1;
	memcpy(out, DIGEST_PREFIX, plen);
	hex_encode(d->b, DIGEST_LEN, out + plen);
}

bool digest_eq(const struct digest *a, const struct digest *b)
{
	return memcmp(a->b, b->b, DIGEST_LEN) == 0;
}
