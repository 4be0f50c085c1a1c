/* trails/hub_rec.c — the records a helper writes to its pipe (HUB.md, "The
 * download helper"). The orchestrator parses them as hostile input: the
 * helper runs the largest parsers of network input (HTTP, TLS) and may be
 * anyone's by the time it writes. Every record is checked for its type,
 * its exact or maximum length, its content and its place in the sequence:
 *   [P...] [H] [P...] [E] [P...] (D | X)      and nothing after D or X. */
#include <errno.h>
#include <string.h>

#include "hub_internal.h"

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

bool hub_text_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

size_t hub_rec_put(uint8_t *out, size_t cap, char type, const void *payload, size_t n)
{
	if (n > HUB_REC_MAX - HUB_REC_HEAD || HUB_REC_HEAD + n > cap)
		return 0;
	out[0] = (uint8_t)type;
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)n;
	if (n)
		memcpy(out + HUB_REC_HEAD, payload, n);
	return HUB_REC_HEAD + n;
}

void hub_rx_init(struct hub_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
}

/* Lengths each type allows: [min, max]. */
static int rec_bounds(uint8_t type, size_t *min, size_t *max)
{
	switch (type) {
	case HUB_REC_HTTP:
		*min = *max = 4;
		return 0;
	case HUB_REC_ETAG:
		*min = 1, *max = HUB_ETAG_MAX;
		return 0;
	case HUB_REC_PROGRESS:
		*min = *max = 16;
		return 0;
	case HUB_REC_DONE:
		*min = *max = 0;
		return 0;
	case HUB_REC_FAIL:
		*min = 1, *max = 1 + HUB_REC_TEXT_MAX;
		return 0;
	}
	return -EPROTO;
}

static int rec_http(struct hub_rx *rx, const uint8_t *p, struct err *e)
{
	if (rx->have_http)
		return err_set(e, EPROTO, "a second HTTP status record");
	uint64_t code = get_be(p, 4);
	if (code < 100 || code > 599)
		return err_set(e, EPROTO, "HTTP status %llu out of range", (unsigned long long)code);
	rx->have_http = true;
	rx->http = (unsigned)code;
	return 0;
}

static int rec_etag(struct hub_rx *rx, const uint8_t *p, size_t n, struct err *e)
{
	if (!rx->have_http || rx->have_etag)
		return err_set(e, EPROTO, "ETag record %s", rx->have_etag ? "twice" : "before the status");
	if (!hub_text_printable((const char *)p, n))
		return err_set(e, EPROTO, "ETag record with unprintable bytes");
	memcpy(rx->etag, p, n);
	rx->etag[n] = '\0';
	rx->have_etag = true;
	return 0;
}

static int rec_progress(struct hub_rx *rx, const uint8_t *p, struct err *e)
{
	uint64_t staged = get_be(p, 8), wire = get_be(p + 8, 8);
	if (wire < rx->wire)
		return err_set(e, EPROTO, "progress record: wire bytes went back from %llu to %llu",
			       (unsigned long long)rx->wire, (unsigned long long)wire);
	rx->staged = staged; /* may go back: a 200 restarts the file from 0 */
	rx->wire = wire;
	return 0;
}

static int rec_fail(struct hub_rx *rx, const uint8_t *p, size_t n, struct err *e)
{
	char why = (char)p[0];
	if (why != HUB_FAIL_NETWORK && why != HUB_FAIL_HTTP && why != HUB_FAIL_SIZE &&
	    why != HUB_FAIL_WRITE)
		return err_set(e, EPROTO, "failure record with unknown reason 0x%02x", p[0]);
	if (!hub_text_printable((const char *)p + 1, n - 1))
		return err_set(e, EPROTO, "failure record with unprintable bytes");
	rx->fail = why;
	memcpy(rx->text, p + 1, n - 1);
	rx->text[n - 1] = '\0';
	return 0;
}

static int rec_apply(struct hub_rx *rx, uint8_t type, const uint8_t *p, size_t n, struct err *e)
{
	if (rx->finished)
		return err_set(e, EPROTO, "a record after the final one");
	switch (type) {
	case HUB_REC_HTTP:
		return rec_http(rx, p, e);
	case HUB_REC_ETAG:
		return rec_etag(rx, p, n, e);
	case HUB_REC_PROGRESS:
		return rec_progress(rx, p, e);
	case HUB_REC_DONE:
		rx->finished = rx->ok = true;
		return 0;
	case HUB_REC_FAIL:
		rx->finished = true;
		return rec_fail(rx, p, n, e);
	}
	return err_set(e, EPROTO, "unknown record type 0x%02x", type);
}

/* One whole record at the front of rx->buf: its length, 0 if incomplete. */
static int rec_take(struct hub_rx *rx, size_t *used, struct err *e)
{
	*used = 0;
	if (rx->len < HUB_REC_HEAD)
		return 0;
	uint8_t type = rx->buf[0];
	size_t n = (size_t)get_be(rx->buf + 1, 2), min, max;
	if (rec_bounds(type, &min, &max) < 0)
		return err_set(e, EPROTO, "unknown record type 0x%02x", type);
	if (n < min || n > max)
		return err_set(e, EPROTO, "record '%c' of %zu bytes (allowed %zu..%zu)", type, n, min,
			       max);
	if (rx->len < HUB_REC_HEAD + n)
		return 0;
	*used = HUB_REC_HEAD + n;
	return rec_apply(rx, type, rx->buf + HUB_REC_HEAD, n, e);
}

int hub_rx_feed(struct hub_rx *rx, const void *data, size_t len, struct err *e)
{
	const uint8_t *p = data;
	while (len > 0) {
		size_t k = sizeof(rx->buf) - rx->len;
		if (k > len)
			k = len;
		memcpy(rx->buf + rx->len, p, k);
		rx->len += k;
		p += k;
		len -= k;
		for (;;) {
			size_t used;
			int r = rec_take(rx, &used, e);
			if (r < 0)
				return err_prefix(e, "helper protocol");
			if (!used)
				break;
			memmove(rx->buf, rx->buf + used, rx->len - used);
			rx->len -= used;
		}
	}
	return 0;
}

int hub_rx_eof(const struct hub_rx *rx, struct err *e)
{
	if (rx->len)
		return err_set(e, EPROTO, "helper protocol: %zu bytes of a cut record at the end",
			       rx->len);
	if (!rx->finished)
		return err_set(e, EPROTO, "helper protocol: ended without a final record");
	return 0;
}
