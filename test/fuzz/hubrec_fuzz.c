/* test/fuzz/hubrec_fuzz.c — the helper pipe's records (trails/hub_rec.c):
 * hub_rx_init / hub_rx_feed / hub_rx_eof on hostile bytes. The download
 * helper runs libcurl on network input; by the time it writes to its pipe it
 * may be anyone's, so the orchestrator parses its records as hostile.
 *
 * Input: byte 0 is the split pattern, the rest is the pipe's bytes. The
 * bytes are fed once whole and once in chunks of 1..(byte 0 + 1) bytes whose
 * sizes a small generator seeded by byte 0 picks (a pipe's reads split
 * anywhere).
 *
 * Checked on every input:
 *   - the split does not matter: both feeds stop at the same record with
 *     the same message, or both take everything into the same state, and
 *     hub_rx_eof gives the same verdict;
 *   - an error is -EPROTO with a message;
 *   - the state holds only what the protocol allows: an HTTP status in
 *     100..599, an ETag of 1..HUB_ETAG_MAX printable bytes, only after a
 *     status, a failure reason of the four known and printable text;
 *     hub_rx_eof accepts exactly a stream that ended on D or X, whole;
 *   - the state re-encoded with hub_rec_put (H, E, P, then D or X) and fed
 *     to a fresh reader gives the same state. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "hubrec_fuzz"
#include "fuzz_check.h"
#include "trails/hub_internal.h"

static void check_error(int rc, const struct err *e)
{
	if (rc != -EPROTO || e->code != EPROTO || e->msg[0] == '\0' ||
	    strnlen(e->msg, sizeof(e->msg)) == sizeof(e->msg))
		die("error not reported as EPROTO with a message", e);
}

/* The parsed part of the state (not the buffer of a cut record). */
static bool rx_eq(const struct hub_rx *a, const struct hub_rx *b)
{
	return a->have_http == b->have_http && a->have_etag == b->have_etag &&
	       a->finished == b->finished && a->ok == b->ok && a->http == b->http &&
	       strcmp(a->etag, b->etag) == 0 && a->staged == b->staged && a->wire == b->wire &&
	       a->fail == b->fail && strcmp(a->text, b->text) == 0;
}

static bool printable(const char *s)
{
	return hub_text_printable(s, strlen(s));
}

static void check_state(const struct hub_rx *rx)
{
	if (rx->len >= HUB_REC_MAX)
		die("buffer full without a whole record", NULL);
	if (rx->have_http != (rx->http != 0) ||
	    (rx->have_http && (rx->http < 100 || rx->http > 599)))
		die("HTTP status out of range", NULL);
	size_t n = strnlen(rx->etag, sizeof(rx->etag));
	if (n == sizeof(rx->etag) || rx->have_etag != (n > 0) || !printable(rx->etag) ||
	    (rx->have_etag && !rx->have_http))
		die("bad ETag state", NULL);
	if (rx->ok && !rx->finished)
		die("ok without a final record", NULL);
	bool failed = rx->finished && !rx->ok;
	if (failed != (rx->fail != 0) ||
	    (failed && !strchr("nhsw", rx->fail)) ||
	    strnlen(rx->text, sizeof(rx->text)) == sizeof(rx->text) || !printable(rx->text) ||
	    (!failed && rx->text[0]))
		die("bad failure state", NULL);
}

/* A fresh reader fed the canonical records of a's state. */
static void re_encode(const struct hub_rx *a)
{
	uint8_t out[4 * HUB_REC_MAX];
	size_t n = 0;
	if (a->have_http) {
		uint8_t p[4] = {(uint8_t)(a->http >> 24), (uint8_t)(a->http >> 16),
				(uint8_t)(a->http >> 8), (uint8_t)a->http};
		n += hub_rec_put(out + n, sizeof(out) - n, HUB_REC_HTTP, p, sizeof(p));
	}
	if (a->have_etag)
		n += hub_rec_put(out + n, sizeof(out) - n, HUB_REC_ETAG, a->etag, strlen(a->etag));
	if (a->staged || a->wire) {
		uint8_t p[16];
		for (int i = 0; i < 8; i++) {
			p[i] = (uint8_t)(a->staged >> (56 - 8 * i));
			p[8 + i] = (uint8_t)(a->wire >> (56 - 8 * i));
		}
		n += hub_rec_put(out + n, sizeof(out) - n, HUB_REC_PROGRESS, p, sizeof(p));
	}
	if (a->finished && a->ok) {
		n += hub_rec_put(out + n, sizeof(out) - n, HUB_REC_DONE, NULL, 0);
	} else if (a->finished) {
		uint8_t p[1 + HUB_REC_TEXT_MAX];
		size_t t = strlen(a->text);
		p[0] = (uint8_t)a->fail;
		memcpy(p + 1, a->text, t);
		size_t k = hub_rec_put(out + n, sizeof(out) - n, HUB_REC_FAIL, p, 1 + t);
		if (k == 0)
			die("hub_rec_put refused a failure record the reader took", NULL);
		n += k;
	}
	struct hub_rx b;
	struct err e = ERR_INIT;
	hub_rx_init(&b);
	if (hub_rx_feed(&b, out, n, &e) < 0)
		die("re-encoded records refused", &e);
	if (!rx_eq(a, &b) || b.len != 0)
		die("re-encoded records give another state", NULL);
}

/* Sizes 1..max, from a xorshift seeded by the input's first byte. */
static size_t next_chunk(uint32_t *s, size_t max)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return 1 + *s % max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hub_rx whole, split;
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t len = size - 1, max = (size_t)data[0] + 1;
	uint32_t seed = 0x9e3779b9u ^ data[0];

	struct err e1 = ERR_INIT, e2 = ERR_INIT;
	hub_rx_init(&whole);
	int r1 = hub_rx_feed(&whole, p, len, &e1);

	hub_rx_init(&split);
	int r2 = 0;
	for (size_t at = 0; at < len && r2 == 0;) {
		size_t k = next_chunk(&seed, max);
		if (k > len - at)
			k = len - at;
		r2 = hub_rx_feed(&split, p + at, k, &e2);
		at += k;
	}
	if (r1 < 0)
		check_error(r1, &e1);
	if (r2 < 0)
		check_error(r2, &e2);
	if (r1 != r2 || strcmp(e1.msg, e2.msg) != 0)
		die("the split changed the verdict", r1 < 0 ? &e1 : &e2);
	if (r1 < 0)
		return 0;
	if (!rx_eq(&whole, &split) || whole.len != split.len ||
	    memcmp(whole.buf, split.buf, whole.len) != 0)
		die("the split changed the state", NULL);
	check_state(&whole);

	err_clear(&e1);
	int eof = hub_rx_eof(&whole, &e1);
	if (eof < 0)
		check_error(eof, &e1);
	if ((eof == 0) != (whole.finished && whole.len == 0))
		die("hub_rx_eof verdict", &e1);
	re_encode(&whole);
	return 0;
}
