/* tools/ctl/run.c — `run REV` and waiting for a revision to settle.
 *
 * After POST /v1/revisions/REV/run the device tests the revision: it ends
 * DONE (committed) or FAILED (rolled back, with its reason). cairnctl polls
 * GET /v1/revisions/REV until then. A switch that needs a reboot takes the
 * device away for a while: being unable to reach it is not a failure until
 * the wait's deadline (--wait-timeout) passes. */
#include "ctl.h"

#include <string.h>
#include <time.h>

#include "../../lib/util.h"

#define TEXT_MAX 1024
#define TARGET_MAX 128
#define POLL_MS 250

enum { NOT_YET = -1 };

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0)
		;
}

/* An exit status once the revision is DONE, FAILED or REJECTED, else
 * NOT_YET. A new state is reported on stderr as it is seen. */
static int settled(const struct ctl *c, struct reply *rp, uint64_t rev, char *last, size_t cap,
		   struct reply *keep)
{
	char state[64], reason[TEXT_MAX];
	jv_str(&rp->jp, 0, "state", state, sizeof(state));
	if (strcmp(state, last) && !c->json)
		fprintf(stderr, "revision %llu: %s\n", (unsigned long long)rev,
			state[0] ? state : "?");
	if (str_fmt(last, cap, "%s", state) < 0)
		last[0] = '\0';
	bool failed = !strcmp(state, "FAILED") || !strcmp(state, "REJECTED");
	int v = jp_get(&rp->jp, 0, "verifying");
	bool verifying = false;
	if (v >= 0 && jp_bool(&rp->jp, v, &verifying) < 0)
		verifying = false;
	if ((strcmp(state, "DONE") && !failed) || verifying)
		return NOT_YET; /* a revision being verified still shows its old state */
	rev_reason(&rp->jp, 0, reason, sizeof(reason));
	if (keep) {
		*keep = *rp;
		memset(rp, 0, sizeof(*rp));
	} else if (c->json) {
		api_print_json(rp);
	}
	if (!failed)
		return CTL_OK;
	return ctl_fail(CTL_FAILED, "revision %llu %s: %s", (unsigned long long)rev, state,
			reason[0] ? reason : "no reason given");
}

/* One poll: an exit status when done, NOT_YET to poll again. */
static int poll_once(const struct ctl *c, const char *target, uint64_t rev, char *last,
		     size_t cap, struct err *unreach, struct reply *keep)
{
	struct reply rp;
	struct err e = ERR_INIT;
	int code = api_try(c, "GET", target, NULL, 0, &rp, &e);
	if (code == CTL_UNREACHABLE) { /* maybe rebooting: remember why, go on */
		*unreach = e;
		return NOT_YET;
	}
	if (code != CTL_OK)
		return ctl_fail(code, "%s", e.msg);
	unreach->code = 0;
	if (rp.status == 503) { /* starting up */
		reply_free(&rp);
		return NOT_YET;
	}
	if (rp.status < 200 || rp.status >= 300)
		code = api_refused(&rp);
	else
		code = rp.tok ? settled(c, &rp, rev, last, cap, keep) : NOT_YET;
	reply_free(&rp);
	return code;
}

int wait_revision(const struct ctl *c, uint64_t rev, struct reply *keep)
{
	char target[TARGET_MAX], last[64] = "";
	struct err unreach = ERR_INIT;
	uint64_t deadline = now_ns() + (uint64_t)c->wait_timeout_s * 1000000000ull;
	if (str_fmt(target, sizeof(target), "/v1/revisions/%llu", (unsigned long long)rev) < 0)
		return ctl_fail(CTL_FAILED, "revision target too long");
	for (;;) {
		int code = poll_once(c, target, rev, last, sizeof(last), &unreach, keep);
		if (code != NOT_YET)
			return code;
		if (now_ns() >= deadline)
			break;
		sleep_ms(POLL_MS);
	}
	if (unreach.code)
		return ctl_fail(CTL_UNREACHABLE, "%s", unreach.msg);
	return ctl_fail(CTL_FAILED, "revision %llu is still %s after %d s (--wait-timeout)",
			(unsigned long long)rev, last[0] ? last : "unknown", c->wait_timeout_s);
}

int run_revision(const struct ctl *c, uint64_t rev, struct reply *keep)
{
	char target[TARGET_MAX], state[64];
	struct reply rp;
	if (str_fmt(target, sizeof(target), "/v1/revisions/%llu/run", (unsigned long long)rev) < 0)
		return ctl_fail(CTL_FAILED, "revision target too long");
	int code = api_call(c, "POST", target, NULL, 0, &rp);
	if (code != CTL_OK)
		return code;
	if (c->no_wait && keep)
		*keep = rp;
	else if (c->no_wait && c->json)
		api_print_json(&rp);
	else if (c->no_wait && rp.tok && jv_str(&rp.jp, 0, "state", state, sizeof(state)) == 0)
		printf("revision %llu: %s\n", (unsigned long long)rev, state);
	else if (c->no_wait)
		printf("revision %llu: run requested\n", (unsigned long long)rev);
	if (!(c->no_wait && keep))
		reply_free(&rp);
	if (c->no_wait)
		return CTL_OK;
	code = wait_revision(c, rev, keep);
	if (code == CTL_OK && !c->json)
		printf("revision %llu: DONE\n", (unsigned long long)rev);
	return code;
}

int cmd_run(const struct ctl *c, char **pos)
{
	uint64_t rev;
	if (!parse_rev(pos[0], &rev))
		return ctl_fail(CTL_USAGE, "run: '%s' is not a revision number (1 to 2^53-1)",
				pos[0]);
	return run_revision(c, rev, NULL);
}
