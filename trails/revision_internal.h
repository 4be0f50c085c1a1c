/* trails/revision_internal.h — shared by the revision parser's files
 * (revision.c: top level, groups, bsp; revision_json.c: typed readers;
 * revision_ctr.c: containers; revision_write.c: writer and accessors).
 * Not part of the module's interface. */
#ifndef CAIRN_TRAILS_REVISION_INTERNAL_H
#define CAIRN_TRAILS_REVISION_INTERNAL_H

#include "../lib/cleanup.h"
#include "trails.h"

/* Parser state: the token tree, the mode and where errors go. */
struct rp {
	struct jp jp;
	enum rev_parse_mode mode;
	struct err *e;
};

/* An object read against its table of keys: idx[k] is the value token of
 * names[k], or -1 when the key is absent. */
#define RP_MAX_KEYS 16
struct rp_obj {
	const char *const *names;
	size_t n;
	int idx[RP_MAX_KEYS];
};
#define RP_OBJ(keys) {.names = (keys), .n = ARRAY_SIZE(keys)}
#define RP_BIT(k) (1u << (k))

/* Where an object goes: the format it must have, and why (for the message). */
struct rp_slot {
	enum obj_format format;
	const char *why;
};

/* A hostile string quoted in a message: printable ASCII, at most 40 bytes. */
#define RP_SHOW_MAX 48
const char *rp_show(const char *s, size_t n, char out[RP_SHOW_MAX]);
const char *rp_show_tok(const struct rp *p, int t, char out[RP_SHOW_MAX]);

/* Field names: "<parent>.<key>" and "<parent>[<i>]". */
void rp_field_key(char out[ERR_FIELD_MAX], const char *parent, const char *key);
void rp_field_idx(char out[ERR_FIELD_MAX], const char *parent, size_t i);

/* Set the error naming field f (an empty f names the whole document). */
int rp_fail(struct rp *p, int code, const char *f, const char *fmt, ...) _printf_(4, 5);
/* "expected <want>, got <what token t is>". */
int rp_type(struct rp *p, int t, const char *f, const char *want);

int rp_members(struct rp *p, int t, const char *f, struct rp_obj *o) _must_check_;
int rp_require(struct rp *p, const struct rp_obj *o, unsigned required,
	       const char *f) _must_check_;
int rp_array(struct rp *p, int t, const char *f, size_t min, size_t max,
	     size_t *n) _must_check_;
int rp_strbuf(struct rp *p, int t, const char *f, char *out, size_t cap,
	      size_t *outlen) _must_check_;
int rp_strdup(struct rp *p, int t, const char *f, size_t max, char **out,
	      size_t *outlen) _must_check_;
int rp_uint(struct rp *p, int t, const char *f, uint64_t min, uint64_t max,
	    uint64_t *out) _must_check_;
int rp_enum(struct rp *p, int t, const char *f, const char *const *names, size_t n,
	    int *out) _must_check_;
int rp_name(struct rp *p, int t, const char *f, char out[NAME_MAX_LEN + 1]) _must_check_;
/* Index of the first control byte (< 0x20 or 0x7f) in s[0..n), or -1. */
long rp_control_at(const char *s, size_t n);
int rp_objref(struct rp *p, int t, const char *f, const struct rp_slot *slot,
	      struct rev_objref *o) _must_check_;

int rp_container(struct rp *p, int t, const char *f, struct revision *r,
		 size_t i) _must_check_;

const char *rev_update_name(enum update_mode u);

#endif
