/* trails/revision.c — revision.json: parse and validate (trails/REVISION.md
 * is the spec). The JSON is checked against the grammar and tokenized by
 * lib/json; this file walks the tokens against the schema. Every object is
 * read through one table of its keys (rp_members), so unknown and duplicate
 * keys are rejected in one place, and every value is checked where it is
 * read, with the field named in the document's own terms. */
#include "trails.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "revision_internal.h"

DEFINE_FREEP(struct revision, revision_free)

/* ---------------- top level ---------------- */

static const char *const top_keys[] = {"spec", "revision", "created", "bsp", "groups", "containers"};
enum { T_SPEC, T_REVISION, T_CREATED, T_BSP, T_GROUPS, T_CONTAINERS };

static const char *const group_keys[] = {"name", "timeout_s"};
enum { G_NAME, G_TIMEOUT };

static const char *const bsp_keys[] = {"kernel", "initrd", "modules", "firmware", "cmdline"};
enum { B_KERNEL, B_INITRD, B_MODULES, B_FIRMWARE, B_CMDLINE };

static const struct rp_slot slot_boot = {
	OBJ_RAW, "the kernel and initrd are plain files loaded by the bootloader"};
static const struct rp_slot slot_image = {
	OBJ_SQUASHFS, "modules and firmware are squashfs images mounted by cairn"};

static int rp_spec(struct rp *p, int t)
{
	char got[32];
	char shown[RP_SHOW_MAX];
	if (!jp_is(&p->jp, t, JSMN_STRING))
		return rp_type(p, t, "spec", "a string");
	if (jp_str(&p->jp, t, got, sizeof(got), NULL) == 0 && strcmp(got, REV_SPEC) == 0)
		return 0;
	return rp_fail(p, EPROTONOSUPPORT, "spec",
		       "unsupported document format \"%s\": this cairn reads \"%s\"",
		       rp_show_tok(p, t, shown), REV_SPEC);
}

static bool digits(const char *s, size_t n, unsigned min, unsigned max)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= min && v <= max;
}

static unsigned month_days(unsigned year, unsigned month)
{
	static const unsigned char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYY-MM-DDTHH:MM:SSZ", checked digit by digit; no leap second. */
static bool created_valid(const char *s, size_t n)
{
	if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z')
		return false;
	if (!digits(s, 4, 1970, 9999) || !digits(s + 5, 2, 1, 12) || !digits(s + 11, 2, 0, 23) ||
	    !digits(s + 14, 2, 0, 59) || !digits(s + 17, 2, 0, 59))
		return false;
	unsigned year = (unsigned)atoi(s), month = (unsigned)atoi(s + 5);
	return digits(s + 8, 2, 1, month_days(year, month));
}

static int rp_created(struct rp *p, int t, char out[32])
{
	size_t n;
	int rc = rp_strbuf(p, t, "created", out, 32, &n);
	if (rc < 0)
		return rc;
	if (!created_valid(out, n)) {
		char shown[RP_SHOW_MAX];
		return rp_fail(p, EINVAL, "created",
			       "\"%s\" is not a UTC time: use RFC 3339 \"YYYY-MM-DDTHH:MM:SSZ\", "
			       "e.g. \"2026-11-21T10:00:00Z\"",
			       rp_show(out, n, shown));
	}
	return 0;
}

static void groups_default(struct revision *r)
{
	static const struct rev_group def[] = {{"platform", 30}, {"middleware", 30}, {"app", 60}};
	memcpy(r->groups, def, sizeof(def));
	r->ngroups = ARRAY_SIZE(def);
}

static int rp_group(struct rp *p, int t, const char *f, struct revision *r, size_t i)
{
	struct rp_obj o = RP_OBJ(group_keys);
	char cf[ERR_FIELD_MAX];
	uint64_t timeout = 0;
	int rc = rp_members(p, t, f, &o);
	if (!rc)
		rc = rp_require(p, &o, RP_BIT(G_NAME) | RP_BIT(G_TIMEOUT), f);
	if (!rc) {
		rp_field_key(cf, f, "name");
		rc = rp_name(p, o.idx[G_NAME], cf, r->groups[i].name);
	}
	for (size_t k = 0; !rc && k < i; k++)
		if (strcmp(r->groups[k].name, r->groups[i].name) == 0)
			rc = rp_fail(p, EEXIST, cf, "group \"%s\" is already declared as groups[%zu]",
				     r->groups[i].name, k);
	if (!rc) {
		rp_field_key(cf, f, "timeout_s");
		rc = rp_uint(p, o.idx[G_TIMEOUT], cf, 1, 3600, &timeout);
	}
	r->groups[i].timeout_s = (unsigned)timeout;
	return rc;
}

static int rp_groups(struct rp *p, int t, struct revision *r)
{
	if (t < 0) {
		groups_default(r);
		return 0;
	}
	size_t n;
	int rc = rp_array(p, t, "groups", 1, REV_MAX_GROUPS, &n);
	int k = t + 1;
	for (size_t i = 0; !rc && i < n; i++, k = jp_next(&p->jp, k)) {
		char f[ERR_FIELD_MAX];
		rp_field_idx(f, "groups", i);
		rc = rp_group(p, k, f, r, i);
	}
	r->ngroups = rc ? 0 : n;
	return rc;
}

/* Printable ASCII only: the command line ends up in a bootloader variable. */
static int rp_cmdline(struct rp *p, int t, char **out)
{
	size_t n;
	int rc = rp_strdup(p, t, "bsp.cmdline", REV_MAX_ARG, out, &n);
	for (size_t i = 0; !rc && i < n; i++)
		if ((*out)[i] < 0x20 || (*out)[i] > 0x7e)
			rc = rp_fail(p, EINVAL, "bsp.cmdline",
				     "byte %zu is not printable ASCII: the bootloader takes plain "
				     "text only",
				     i);
	return rc;
}

static int rp_bsp(struct rp *p, int t, struct rev_bsp *b)
{
	struct rev_objref *parts[] = {&b->kernel, &b->initrd, &b->modules, &b->firmware};
	const struct rp_slot *slots[] = {&slot_boot, &slot_boot, &slot_image, &slot_image};
	struct rp_obj o = RP_OBJ(bsp_keys);
	int rc = rp_members(p, t, "bsp", &o);
	if (!rc)
		rc = rp_require(p, &o, RP_BIT(B_KERNEL), "bsp");
	b->present = true;
	for (size_t i = 0; !rc && i < ARRAY_SIZE(parts); i++) {
		char f[ERR_FIELD_MAX];
		rp_field_key(f, "bsp", bsp_keys[i]);
		if (o.idx[i] >= 0)
			rc = rp_objref(p, o.idx[i], f, slots[i], parts[i]);
	}
	if (!rc && o.idx[B_CMDLINE] >= 0)
		rc = rp_cmdline(p, o.idx[B_CMDLINE], &b->cmdline);
	return rc;
}

static int rp_containers(struct rp *p, int t, struct revision *r)
{
	size_t n;
	int rc = rp_array(p, t, "containers", 1, REV_MAX_CONTAINERS, &n);
	if (rc < 0)
		return rc;
	r->containers = calloc(n, sizeof(*r->containers));
	if (!r->containers)
		return rp_fail(p, ENOMEM, "containers", "out of memory");
	r->ncontainers = n;
	int k = t + 1;
	for (size_t i = 0; !rc && i < n; i++, k = jp_next(&p->jp, k)) {
		char f[ERR_FIELD_MAX];
		rp_field_idx(f, "containers", i);
		rc = rp_container(p, k, f, r, i);
	}
	return rc;
}

static int rp_top(struct rp *p, struct revision *r)
{
	struct rp_obj o = RP_OBJ(top_keys);
	unsigned required = RP_BIT(T_SPEC) | RP_BIT(T_REVISION) | RP_BIT(T_CREATED) |
			    RP_BIT(T_CONTAINERS);
	int rc = rp_members(p, 0, "", &o);
	if (!rc)
		rc = rp_require(p, &o, required, "");
	if (!rc)
		rc = rp_spec(p, o.idx[T_SPEC]);
	if (!rc)
		rc = rp_uint(p, o.idx[T_REVISION], "revision", 1, REV_MAX_NUMBER, &r->number);
	if (!rc)
		rc = rp_created(p, o.idx[T_CREATED], r->created);
	if (!rc)
		rc = rp_groups(p, o.idx[T_GROUPS], r);
	if (!rc && o.idx[T_BSP] >= 0)
		rc = rp_bsp(p, o.idx[T_BSP], &r->bsp);
	if (!rc)
		rc = rp_containers(p, o.idx[T_CONTAINERS], r);
	return rc;
}

/* Every token of a JSON text but a lone top-level primitive owns at least
 * two bytes (a string its quotes, a container its opening bracket plus the
 * separator after it, a primitive itself plus its separator), so len/2 + 1
 * tokens always suffice: small documents get small token arrays. */
static size_t tokens_for(size_t len)
{
	size_t n = len / 2 + 1;
	return n < REV_MAX_TOKENS ? n : REV_MAX_TOKENS;
}

int revision_parse(const char *doc, size_t len, enum rev_parse_mode mode, struct revision **out,
		   struct err *e)
{
	if (len > REV_MAX_DOC)
		return err_set(e, E2BIG, "document is %zu bytes, more than the %u allowed", len,
			       REV_MAX_DOC);
	if (!doc)
		len = 0;
	size_t ntok = tokens_for(len);
	_cleanup_free_ jsmntok_t *toks = calloc(ntok, sizeof(*toks));
	if (!toks)
		return err_set(e, ENOMEM, "out of memory for %zu JSON tokens", ntok);
	struct rp p = {.mode = mode, .e = e};
	int rc = jp_parse(&p.jp, doc ? doc : "", len, toks, (int)ntok, e);
	if (rc < 0)
		return rc;
	_cleanup_(revision_freep) struct revision *r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(e, ENOMEM, "out of memory");
	rc = rp_top(&p, r);
	if (rc < 0)
		return rc;
	*out = TAKE_PTR(r);
	return 0;
}
