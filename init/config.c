/* init/config.c — the configuration file and its kernel command line
 * overrides; see config.h. Every value is checked here, where the line is
 * known, so the hub client only ever sees well-formed settings. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/util.h"

#define CMDLINE_PREFIX "cairn."
#define CMDLINE_OURS "cairn.hub."
#define PIN_PREFIX "sha256//"
#define PIN_B64_LEN 44 /* base64 of 32 bytes, one '=' of padding */
#define MACHINE_ID_DEFAULT "/etc/machine-id"

enum cfg_kind { CK_URL, CK_ID, CK_POLL, CK_PATH, CK_PIN };

#define HUB_FIELD(f) offsetof(struct cairn_config, hub.f), sizeof(((struct cairn_config *)0)->hub.f)

static const struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off, cap; /* string keys: where and how big (NUL included) */
} cfg_keys[] = {
	{"hub.url", CK_URL, HUB_FIELD(url)},
	{"hub.device_id", CK_ID, HUB_FIELD(device_id)},
	{"hub.poll_s", CK_POLL, 0, 0},
	{"hub.ca", CK_PATH, HUB_FIELD(ca)},
	{"hub.cert", CK_PATH, HUB_FIELD(cert)},
	{"hub.key", CK_PATH, HUB_FIELD(key)},
	{"hub.token_file", CK_PATH, HUB_FIELD(token_file)},
	{"hub.pin", CK_PIN, HUB_FIELD(pin)},
};
#define NKEYS ARRAY_SIZE(cfg_keys)

void config_init(struct cairn_config *c)
{
	memset(c, 0, sizeof(*c));
	c->hub.poll_s = CONFIG_POLL_DEFAULT;
}

static const struct cfg_key *key_find(const char *k, size_t n)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(cfg_keys[i].name) == n && memcmp(cfg_keys[i].name, k, n) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* ---- values ---- */

static bool printable(const char *v, size_t n, bool space_ok)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < (space_ok ? 0x20 : 0x21) || (unsigned char)v[i] > 0x7e)
			return false;
	return true;
}

static int check_url(const char *name, const char *v, size_t *n, struct err *e)
{
	/* v has a length, not a NUL: compare within it */
	size_t scheme = *n >= 8 && memcmp(v, "https://", 8) == 0  ? 8
			: *n >= 7 && memcmp(v, "http://", 7) == 0 ? 7
								  : 0;
	if (!scheme)
		return err_field(e, EINVAL, name, "want an http:// or https:// URL");
	while (*n > scheme && v[*n - 1] == '/')
		(*n)--;
	if (*n <= scheme || v[scheme] == '/')
		return err_field(e, EINVAL, name, "the URL has no host");
	if (!printable(v, *n, false))
		return err_field(e, EINVAL, name, "spaces and control characters are not allowed");
	if (memchr(v, '?', *n) || memchr(v, '#', *n))
		return err_field(e, EINVAL, name, "a query (?) or fragment (#) is not allowed");
	return 0;
}

bool config_device_id_valid(const char *s, size_t len)
{
	if (len == 0 || len > CONFIG_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

static int check_poll(const char *name, const char *v, size_t n, unsigned *out, struct err *e)
{
	unsigned long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 6)
			return err_field(e, EINVAL, name, "want a whole number of seconds, %u..%u",
					 CONFIG_POLL_MIN, CONFIG_POLL_MAX);
		x = x * 10 + (unsigned long)(v[i] - '0');
	}
	if (x < CONFIG_POLL_MIN || x > CONFIG_POLL_MAX)
		return err_field(e, ERANGE, name, "%lu is outside %u..%u seconds", x, CONFIG_POLL_MIN,
				 CONFIG_POLL_MAX);
	*out = (unsigned)x;
	return 0;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* "sha256//<44 base64>" pins separated by ';'. */
static int check_pin(const char *name, const char *v, size_t n, struct err *e)
{
	const size_t one = strlen(PIN_PREFIX) + PIN_B64_LEN;
	for (size_t at = 0;; at += one + 1) {
		if (n - at < one || memcmp(v + at, PIN_PREFIX, strlen(PIN_PREFIX)) != 0)
			return err_field(e, EINVAL, name,
					 "want sha256//<base64 of the public key's sha256>[;...]");
		const char *b = v + at + strlen(PIN_PREFIX);
		for (size_t i = 0; i + 1 < PIN_B64_LEN; i++)
			if (!b64_char(b[i]) || (i == PIN_B64_LEN - 2 && !strchr("AEIMQUYcgkosw048", b[i])))
				return err_field(e, EINVAL, name, "pin %zu: not base64 of 32 bytes",
						 at / (one + 1) + 1);
		if (b[PIN_B64_LEN - 1] != '=')
			return err_field(e, EINVAL, name, "pin %zu: not base64 of 32 bytes",
					 at / (one + 1) + 1);
		if (at + one == n)
			return 0;
		if (v[at + one] != ';')
			return err_field(e, EINVAL, name, "pins are separated by ';'");
	}
}

static int check_value(const struct cfg_key *k, const char *v, size_t *n, struct cairn_config *c,
		       struct err *e)
{
	if (k->cap && *n >= k->cap)
		return err_field(e, E2BIG, k->name, "longer than %zu bytes", k->cap - 1);
	switch (k->kind) {
	case CK_URL:
		return check_url(k->name, v, n, e);
	case CK_ID:
		return config_device_id_valid(v, *n)
			       ? 0
			       : err_field(e, EINVAL, k->name,
					   "want 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit");
	case CK_POLL:
		return check_poll(k->name, v, *n, &c->hub.poll_s, e);
	case CK_PATH:
		if (v[0] != '/')
			return err_field(e, EINVAL, k->name, "want an absolute path");
		return printable(v, *n, true)
			       ? 0
			       : err_field(e, EINVAL, k->name, "control characters are not allowed");
	case CK_PIN:
		return check_pin(k->name, v, *n, e);
	}
	return err_field(e, EINVAL, k->name, "unknown kind of key");
}

/* Set key k to v[0..n); n == 0 unsets it (command line only). */
static int set_value(struct cairn_config *c, const struct cfg_key *k, const char *v, size_t n,
		     struct err *e)
{
	if (n == 0) {
		if (k->kind == CK_POLL)
			c->hub.poll_s = CONFIG_POLL_DEFAULT;
		else
			*((char *)c + k->off) = '\0';
		return 0;
	}
	if (memchr(v, '\0', n))
		return err_field(e, EINVAL, k->name, "contains a NUL byte");
	int r = check_value(k, v, &n, c, e);
	if (r < 0 || k->kind == CK_POLL)
		return r;
	char *dst = (char *)c + k->off;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

/* ---- the file ---- */

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && blank((*s)[*n - 1]))
		(*n)--;
}

/* One line (without its newline). seen[] marks keys already set. */
static int parse_line(struct cairn_config *c, const char *line, size_t n, bool seen[NKEYS],
		      struct err *e)
{
	trim(&line, &n);
	if (n == 0 || line[0] == '#')
		return 0;
	const char *eq = memchr(line, '=', n);
	if (!eq)
		return err_set(e, EINVAL, "expected 'key = value'");
	const char *key = line, *val = eq + 1;
	size_t klen = (size_t)(eq - line), vlen = n - klen - 1;
	trim(&key, &klen);
	trim(&val, &vlen);
	const struct cfg_key *k = key_find(key, klen);
	if (!k)
		return err_field(e, EINVAL, "", "unknown key '%.*s'", (int)(klen > 64 ? 64 : klen),
				 printable(key, klen, true) ? key : "(binary)");
	size_t idx = (size_t)(k - cfg_keys);
	if (seen[idx])
		return err_field(e, EINVAL, k->name, "given twice");
	seen[idx] = true;
	if (vlen == 0)
		return err_field(e, EINVAL, k->name, "empty value");
	return set_value(c, k, val, vlen, e);
}

int config_parse_file(struct cairn_config *c, const char *text, size_t len, const char *source,
		      struct err *e)
{
	bool seen[NKEYS] = {false};
	if (len > CONFIG_FILE_MAX)
		return err_set(e, EFBIG, "%s: larger than %u bytes", source, CONFIG_FILE_MAX);
	unsigned lineno = 0;
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
		lineno++;
		int r = n > CONFIG_LINE_MAX ? err_set(e, E2BIG, "line longer than %u bytes",
						      CONFIG_LINE_MAX)
					    : parse_line(c, text + at, n, seen, e);
		if (r < 0)
			return err_prefix(e, "%s:%u", source, lineno);
		at += n + 1;
	}
	return 0;
}

/* ---- the kernel command line ---- */

/* The next word of text[*at..len): kernel rules, blanks separate words and
 * double quotes group (they are dropped). Into out (cap bytes with NUL). */
static int next_word(const char *text, size_t len, size_t *at, char *out, size_t cap, size_t *n)
{
	while (*at < len && (blank(text[*at]) || text[*at] == '\n'))
		(*at)++;
	bool quoted = false;
	*n = 0;
	for (; *at < len && (quoted || !(blank(text[*at]) || text[*at] == '\n')); (*at)++) {
		if (text[*at] == '"') {
			quoted = !quoted;
			continue;
		}
		if (*n + 1 >= cap)
			return -E2BIG;
		out[(*n)++] = text[*at];
	}
	out[*n] = '\0';
	return 0;
}

static int cmdline_word(struct cairn_config *c, const char *w, size_t n, struct err *e)
{
	if (strncmp(w, CMDLINE_PREFIX, strlen(CMDLINE_PREFIX)) != 0)
		return 0;
	const char *eq = memchr(w, '=', n);
	const char *key = w + strlen(CMDLINE_PREFIX);
	size_t klen = (eq ? (size_t)(eq - w) : n) - strlen(CMDLINE_PREFIX);
	const struct cfg_key *k = key_find(key, klen);
	if (!k && strncmp(w, CMDLINE_OURS, strlen(CMDLINE_OURS)) != 0)
		return 0; /* cairn.storage= and friends belong to init */
	if (!k)
		return err_field(e, EINVAL, "", "unknown key '%.*s'", (int)(n > 64 ? 64 : n), w);
	if (!eq)
		return err_field(e, EINVAL, k->name, "want %s%s=VALUE", CMDLINE_PREFIX, k->name);
	return set_value(c, k, eq + 1, n - (size_t)(eq + 1 - w), e);
}

int config_parse_cmdline(struct cairn_config *c, const char *text, size_t len,
			 const char *source, struct err *e)
{
	if (len > CONFIG_FILE_MAX)
		return err_set(e, EFBIG, "%s: larger than %u bytes", source, CONFIG_FILE_MAX);
	char word[CONFIG_LINE_MAX + 1];
	size_t at = 0, n;
	while (at < len) {
		if (next_word(text, len, &at, word, sizeof(word), &n) < 0)
			return err_set(e, E2BIG, "%s: a word longer than %u bytes", source,
				       CONFIG_LINE_MAX);
		if (n == 0)
			continue;
		if (strlen(word) != n)
			return err_set(e, EINVAL, "%s: a NUL byte in a word", source);
		if (cmdline_word(c, word, n, e) < 0)
			return err_prefix(e, "%s", source);
	}
	return 0;
}

/* ---- loading ---- */

/* At most max bytes of path (files in /proc report size 0: read to EOF). */
static int read_capped(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	_cleanup_free_ char *buf = malloc(max + 2);
	if (!buf)
		return err_set(e, ENOMEM, "%s: out of memory", path);
	ssize_t n = read_all(fd, buf, max + 1);
	if (n < 0)
		return err_set(e, (int)-n, "%s: %s", path, strerror((int)-n));
	if ((size_t)n > max)
		return err_set(e, EFBIG, "%s: larger than %zu bytes", path, max);
	buf[n] = '\0';
	*len = (size_t)n;
	*out = TAKE_PTR(buf);
	return 0;
}

static int machine_id(struct cairn_config *c, const char *path, struct err *e)
{
	_cleanup_free_ char *buf = NULL;
	size_t n = 0;
	if (read_capped(path, 128, &buf, &n, e) < 0)
		return err_field(e, EINVAL, "hub.device_id", "not set, and no machine id: %s",
				 e->msg);
	while (n > 0 && (buf[n - 1] == '\n' || blank(buf[n - 1])))
		n--;
	if (n != 32 || !config_device_id_valid(buf, n))
		return err_field(e, EINVAL, "hub.device_id",
				 "not set, and %s does not hold a machine id (32 hex digits)", path);
	memcpy(c->hub.device_id, buf, n + 1);
	c->hub.device_id[n] = '\0';
	return 0;
}

int config_finish(struct cairn_config *c, const char *machine_id_path, struct err *e)
{
	if (!c->hub.cert[0] != !c->hub.key[0])
		return c->hub.cert[0] ? err_field(e, EINVAL, "hub.key", "needed with hub.cert")
				      : err_field(e, EINVAL, "hub.cert", "needed with hub.key");
	if (!c->hub.url[0] || c->hub.device_id[0])
		return 0;
	return machine_id(c, machine_id_path ? machine_id_path : MACHINE_ID_DEFAULT, e);
}

int config_load(struct cairn_config *c, const char *path, const char *cmdline_path,
		struct err *e)
{
	config_init(c);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;
	if (path && ((r = read_capped(path, CONFIG_FILE_MAX, &text, &len, e)) < 0 ||
		     (r = config_parse_file(c, text, len, path, e)) < 0))
		return r;
	free(TAKE_PTR(text));
	if (cmdline_path && ((r = read_capped(cmdline_path, CONFIG_FILE_MAX, &text, &len, e)) < 0 ||
			     (r = config_parse_cmdline(c, text, len, cmdline_path, e)) < 0))
		return r;
	return config_finish(c, NULL, e);
}
