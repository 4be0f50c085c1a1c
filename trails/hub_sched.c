/* trails/hub_sched.c — when the next poll or fetch happens (HUB.md,
 * "Polling, jitter, backoff"). Pure arithmetic; randomness comes in as an
 * argument so the tests can pin it. */
#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

#include "../lib/util.h"
#include "hub_internal.h"

#define MS 1000ull

uint64_t hub_jitter_ms(uint64_t base_ms, uint32_t rnd)
{
	/* base * (0.8 + 0.4 * rnd / 2^32), in integers: base * (4 * 2^32 + 2 * rnd) / (5 * 2^32) */
	unsigned __int128 x = (unsigned __int128)base_ms * ((4ull << 32) + 2ull * rnd);
	return (uint64_t)(x / (5ull << 32));
}

/* min(unit_ms * 2^n, cap_ms) without overflow. */
static uint64_t doubled(uint64_t unit_ms, unsigned n, uint64_t cap_ms)
{
	uint64_t v = unit_ms;
	for (unsigned i = 0; i < n && v < cap_ms; i++)
		v *= 2;
	return v < cap_ms ? v : cap_ms;
}

static uint64_t cap_ms(unsigned poll_s)
{
	return (poll_s > HUB_BACKOFF_CAP_S ? poll_s : HUB_BACKOFF_CAP_S) * MS;
}

uint64_t hub_poll_delay_ms(unsigned poll_s, unsigned fails, uint32_t rnd)
{
	return hub_jitter_ms(doubled(poll_s * MS, fails, cap_ms(poll_s)), rnd);
}

uint64_t hub_fetch_delay_ms(unsigned poll_s, unsigned fails, uint32_t rnd)
{
	return hub_jitter_ms(fails ? doubled(MS, fails, cap_ms(poll_s)) : MS, rnd);
}

uint32_t hub_random(void)
{
	uint32_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	uint64_t t = now_ns(); /* early boot without entropy: good enough to spread a fleet */
	return (uint32_t)(t ^ (t >> 29) ^ ((uint64_t)getpid() << 16));
}
