/* trails/bootenv.c — the boot state backends of trails_internal.h.
 *
 *   file             <storage>/boot.json through trails_boot_read/write (boot.c)
 *   uboot:<config>   U-Boot environment through libubootenv (fw_env.config at <config>)
 *   grub:<path>      the 1024-byte GRUB environment block at <path>
 *
 * uboot and grub hold the state in three variables (trails/BOOT.md owns the
 * protocol the bootloader follows with them):
 *   cairn_rev     committed revision            (unset: 0)
 *   cairn_try     revision staged for one try   (unset: no try)
 *   cairn_trying  = cairn_try once the bootloader (or cairn, for a live
 *                 switch) took the try: tries 0; unset while staged: tries 1
 * Values are decimal revision numbers without sign or leading zero (boot
 * scripts compare them as strings); anything else read back is an error that
 * names the variable. Each write is one atomic operation of the backend: one
 * libuboot_env_store, or one storage_write_durable of the whole grub block. */
#define LOG_MODULE "trails"
#include "trails_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libuboot.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"

#define SPEC_MAX 4096
#define VAL_MAX 24 /* a revision number: at most 16 digits */

enum { VAR_REV, VAR_TRY, VAR_TRYING, VAR_COUNT };
static const char *const var_names[VAR_COUNT] = {"cairn_rev", "cairn_try", "cairn_trying"};

enum bootenv_kind { BOOTENV_FILE, BOOTENV_UBOOT, BOOTENV_GRUB };

#define UBOOT_MAX_DEVS 2 /* libubootenv: one copy, or two (redundant) */
struct uboot_dev {
	char *path;
	uint64_t offset;
	uint64_t size;
};

struct bootenv {
	enum bootenv_kind kind;
	char *spec;
	struct storage *s; /* file */
	/* uboot */
	const char *config; /* inside spec */
	struct uboot_ctx *ctx;
	struct uboot_dev devs[UBOOT_MAX_DEVS];
	size_t ndevs;
	/* grub: the block's directory and its name in it */
	int dirfd;
	char *base;
};

/* Variables of one state, as text; "" = unset. */
struct env_vals {
	char v[VAR_COUNT][VAL_MAX];
};

/* ---- values <-> struct boot_state ---- */

/* Printable excerpt of a hostile value for an error message. */
static void value_show(const char *val, size_t len, char out[32])
{
	size_t n = 0;
	for (size_t i = 0; i < len && n < 24; i++)
		out[n++] = val[i] >= 0x20 && val[i] < 0x7f ? val[i] : '?';
	if (n < len)
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

static int var_number(int var, const char *val, size_t len, uint64_t *out, struct err *e)
{
	bool ok = len > 0 && len <= 16 && !(len > 1 && val[0] == '0');
	uint64_t n = 0;
	for (size_t i = 0; ok && i < len; i++) {
		ok = val[i] >= '0' && val[i] <= '9';
		n = n * 10 + (uint64_t)(val[i] - '0');
	}
	if (ok && n <= REV_MAX_NUMBER) {
		*out = n;
		return 0;
	}
	char shown[32];
	value_show(val, len, shown);
	return err_field(e, EINVAL, var_names[var],
			 "\"%s\" is not a revision number (decimal, no sign, no leading zero)",
			 shown);
}

/* vals[i] NULL = variable unset. */
static int vals_to_state(const char *const vals[VAR_COUNT], const size_t lens[VAR_COUNT],
			 struct boot_state *out, struct err *e)
{
	uint64_t n[VAR_COUNT] = {0, 0, 0};
	for (int i = 0; i < VAR_COUNT; i++) {
		int r = vals[i] ? var_number(i, vals[i], lens[i], &n[i], e) : 0;
		if (r < 0)
			return r;
	}
	out->committed = n[VAR_REV];
	out->try_rev = n[VAR_TRY];
	/* the bootloader takes a try whose cairn_trying differs from it */
	out->tries = n[VAR_TRY] && !(vals[VAR_TRYING] && n[VAR_TRYING] == n[VAR_TRY]) ? 1 : 0;
	return 0;
}

static int state_to_vals(const struct boot_state *bs, struct env_vals *v, struct err *e)
{
	memset(v, 0, sizeof(*v));
	if (bs->committed > REV_MAX_NUMBER || bs->try_rev > REV_MAX_NUMBER)
		return err_set(e, EINVAL, "boot state: revision number above %llu",
			       (unsigned long long)REV_MAX_NUMBER);
	if (bs->try_rev && bs->tries > 1)
		return err_field(e, EINVAL, "tries",
				 "%u: a bootloader boots a try once (tries must be 0 or 1)",
				 bs->tries);
	int r = 0;
	if (bs->committed)
		r = str_fmt(v->v[VAR_REV], VAL_MAX, "%llu", (unsigned long long)bs->committed);
	if (bs->try_rev && r == 0)
		r = str_fmt(v->v[VAR_TRY], VAL_MAX, "%llu", (unsigned long long)bs->try_rev);
	if (bs->try_rev && bs->tries == 0 && r == 0)
		r = str_fmt(v->v[VAR_TRYING], VAL_MAX, "%s", v->v[VAR_TRY]);
	return r < 0 ? err_set(e, -r, "boot state: number too long") : 0;
}

/* ---- uboot: libubootenv ---- */

/* Device lines of fw_env.config, read the way libubootenv reads them
 * ("<device> <offset> <size hex> ..."; '#' comments), kept to check whether a
 * copy is blank and to fsync the devices after a store: libubootenv 0.3.2
 * ignores the result of its own fsync. */
static int uboot_config_line(struct bootenv *b, char *line, struct err *e)
{
	char *save = NULL;
	char *dev = strtok_r(line, " \t\r", &save);
	if (!dev || dev[0] == '#')
		return 0;
	char *off = strtok_r(NULL, " \t\r", &save), *size = strtok_r(NULL, " \t\r", &save);
	char *end1 = NULL, *end2 = NULL;
	uint64_t o = off ? strtoull(off, &end1, 0) : 0, n = size ? strtoull(size, &end2, 16) : 0;
	if (!off || !size || *end1 || *end2 || n == 0)
		return err_set(e, EINVAL, "uboot config %s: line for %s: want \"<device> <offset> "
			       "<size in hex>\"", b->config, dev);
	if (b->ndevs == UBOOT_MAX_DEVS)
		return err_set(e, EINVAL, "uboot config %s: more than two environment copies",
			       b->config);
	struct uboot_dev *d = &b->devs[b->ndevs];
	if (!(d->path = strdup(dev)))
		return err_set(e, ENOMEM, "uboot config: out of memory");
	d->offset = o, d->size = n;
	b->ndevs++;
	return 0;
}

static int uboot_config_read(struct bootenv *b, struct err *e)
{
	_cleanup_free_ char *buf = NULL;
	int r = file_read_all(AT_FDCWD, b->config, 64 * 1024, &buf, NULL, e);
	if (r < 0)
		return err_prefix(e, "uboot config");
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if ((r = uboot_config_line(b, line, e)) < 0)
			return r;
	if (b->ndevs == 0)
		return err_set(e, EINVAL, "uboot config %s: no environment device", b->config);
	return 0;
}

static int uboot_init(struct bootenv *b, struct err *e)
{
	int r = uboot_config_read(b, e);
	if (r < 0)
		return r;
	r = libuboot_initialize(&b->ctx, NULL);
	if (r < 0)
		return err_set(e, -r, "libubootenv: initialize: %s", strerror(-r));
	r = libuboot_read_config(b->ctx, b->config);
	if (r < 0)
		return err_set(e, -r, "uboot config %s: refused by libubootenv (%s): is every "
			       "device there?", b->config, strerror(-r));
	return 0;
}

/* 1 if the copy is all 0x00 or all 0xff (a zeroed disk, an erased flash). */
static int uboot_dev_blank(const struct uboot_dev *d, struct err *e)
{
	_cleanup_close_ int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, errno, "uboot environment %s: %s", d->path, strerror(errno));
	uint8_t buf[4096];
	int first = -1;
	for (uint64_t at = 0; at < d->size;) {
		size_t want = d->size - at < sizeof(buf) ? (size_t)(d->size - at) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)(d->offset + at));
		if (n <= 0)
			return err_set(e, n < 0 ? errno : EIO, "uboot environment %s: read: %s",
				       d->path, n < 0 ? strerror(errno) : "short");
		if (first < 0)
			first = buf[0];
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != first || (first != 0 && first != 0xff))
				return 0;
		at += (uint64_t)n;
	}
	return 1;
}

static int uboot_all_blank(const struct bootenv *b, struct err *e)
{
	for (size_t i = 0; i < b->ndevs; i++) {
		int r = uboot_dev_blank(&b->devs[i], e);
		if (r <= 0)
			return r;
	}
	return 1;
}

/* libuboot_open takes the library's lock (/var/lock/fw_printenv.lock) until
 * libuboot_close: every read and write opens and closes, so fw_printenv and
 * fw_setenv are never locked out for longer than one operation. */
static void uboot_closep(struct uboot_ctx **c)
{
	if (*c)
		libuboot_close(*c);
}

/* Load the environment. 1: a valid copy; 0: no copy has a valid CRC (the
 * library then holds an empty variable list). The caller closes. */
static int uboot_load(struct bootenv *b, struct err *e)
{
	int r = libuboot_open(b->ctx);
	if (r == 0)
		return 1;
	if (r == -ENODATA)
		return 0;
	libuboot_close(b->ctx);
	return err_set(e, r < 0 ? -r : EIO, "uboot environment (%s): cannot read it: %s",
		       b->config, strerror(r < 0 ? -r : EIO));
}

static int uboot_read(struct bootenv *b, struct boot_state *out, struct err *e)
{
	int valid = uboot_load(b, e);
	if (valid < 0)
		return valid;
	_cleanup_(uboot_closep) struct uboot_ctx *opened = b->ctx;
	if (!valid) {
		int blank = uboot_all_blank(b, e);
		if (blank < 0)
			return blank;
		if (!blank)
			return err_set(e, EBADMSG, "uboot environment (%s): no copy has a valid "
				       "CRC: corrupt", b->config);
		return 0; /* blank: a device never provisioned, all zero */
	}
	char *vals[VAR_COUNT];
	size_t lens[VAR_COUNT];
	for (int i = 0; i < VAR_COUNT; i++) {
		vals[i] = libuboot_get_env(b->ctx, var_names[i]);
		lens[i] = vals[i] ? strlen(vals[i]) : 0;
	}
	int r = vals_to_state((const char *const *)vals, lens, out, e);
	for (int i = 0; i < VAR_COUNT; i++)
		free(vals[i]);
	return r < 0 ? err_prefix(e, "uboot environment (%s)", b->config) : 0;
}

static int uboot_sync(const struct bootenv *b, struct err *e)
{
	for (size_t i = 0; i < b->ndevs; i++) {
		_cleanup_close_ int fd = open(b->devs[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0 || fsync(fd) < 0)
			return err_set(e, errno, "uboot environment %s: %s: %s (not retried)",
				       b->devs[i].path, fd < 0 ? "open" : "fsync", strerror(errno));
	}
	return 0;
}

static int uboot_write(struct bootenv *b, const struct boot_state *bs, struct err *e)
{
	struct env_vals v;
	int r = state_to_vals(bs, &v, e);
	if (r < 0)
		return r;
	int valid = uboot_load(b, e);
	if (valid < 0)
		return valid;
	_cleanup_(uboot_closep) struct uboot_ctx *opened = b->ctx;
	if (!valid)
		log_warn("uboot environment (%s): no valid copy: writing cairn's variables into "
			 "an empty environment", b->config);
	for (int i = 0; i < VAR_COUNT; i++) {
		r = libuboot_set_env(b->ctx, var_names[i], v.v[i][0] ? v.v[i] : NULL);
		if (r < 0)
			return err_field(e, -r, var_names[i], "libubootenv refuses to set it: %s%s",
					 strerror(-r), r == -EPERM ? " (.flags)" : "");
	}
	r = libuboot_env_store(b->ctx);
	if (r != 0)
		return err_set(e, r < 0 ? -r : EIO, "uboot environment (%s): store failed "
			       "(libubootenv %d)", b->config, r);
	return uboot_sync(b, e);
}

/* ---- grub: the GRUB environment block ----
 * Exactly 1024 bytes: the header line, then lines "name=value\n" (a '\\' in
 * a value escapes the next byte: "\\\\" is a backslash, "\\\n" a newline) or
 * "#..." comments, then '#' up to the end. */
#define GRUB_BLOCK 1024
#define GRUB_SIG "# GRUB Environment Block\n"
#define GRUB_SIG_LEN (sizeof(GRUB_SIG) - 1)

struct grub_line {
	uint16_t off, len; /* raw bytes, '\n' included */
	int var;           /* VAR_* of a cairn variable, -1 for anything else */
	uint16_t eq;       /* offset of its '=' */
};

struct grub_block {
	char buf[GRUB_BLOCK];
	struct grub_line lines[GRUB_BLOCK]; /* a line is 1 byte or more */
	size_t nlines;
	int found[VAR_COUNT]; /* line index, -1 unset */
};

/* Offset of the '\n' ending the line at p (escapes honoured), GRUB_BLOCK if none. */
static size_t grub_eol(const char *buf, size_t p)
{
	for (; p < GRUB_BLOCK; p++) {
		if (buf[p] == '\\')
			p++;
		else if (buf[p] == '\n')
			return p;
	}
	return GRUB_BLOCK;
}

static int grub_var_of(const char *name, size_t len)
{
	for (int i = 0; i < VAR_COUNT; i++)
		if (strlen(var_names[i]) == len && memcmp(var_names[i], name, len) == 0)
			return i;
	return -1;
}

static int grub_add_line(struct grub_block *g, size_t p, size_t eol, struct err *e)
{
	struct grub_line *l = &g->lines[g->nlines];
	const char *eq = g->buf[p] == '#' ? NULL : memchr(g->buf + p, '=', eol - p);
	l->off = (uint16_t)p, l->len = (uint16_t)(eol + 1 - p);
	l->var = eq ? grub_var_of(g->buf + p, (size_t)(eq - g->buf) - p) : -1;
	l->eq = eq ? (uint16_t)(eq - g->buf) : 0;
	if (l->var >= 0 && g->found[l->var] >= 0)
		return err_field(e, EBADMSG, var_names[l->var], "set twice in the block");
	if (l->var >= 0)
		g->found[l->var] = (int)g->nlines;
	g->nlines++;
	return 0;
}

static int grub_parse(struct grub_block *g, struct err *e)
{
	g->nlines = 0;
	for (int i = 0; i < VAR_COUNT; i++)
		g->found[i] = -1;
	if (memcmp(g->buf, GRUB_SIG, GRUB_SIG_LEN) != 0)
		return err_set(e, EBADMSG, "no \"# GRUB Environment Block\" header");
	const char *nul = memchr(g->buf, '\0', GRUB_BLOCK);
	if (nul)
		return err_set(e, EBADMSG, "NUL byte at offset %zu", (size_t)(nul - g->buf));
	for (size_t p = GRUB_SIG_LEN; p < GRUB_BLOCK;) {
		size_t eol = grub_eol(g->buf, p);
		if (eol == GRUB_BLOCK) {
			for (size_t i = p; i < GRUB_BLOCK; i++)
				if (g->buf[i] != '#')
					return err_set(e, EBADMSG, "line at offset %zu is not "
						       "terminated", p);
			break; /* the '#' padding */
		}
		int r = grub_add_line(g, p, eol, e);
		if (r < 0)
			return r;
		p = eol + 1;
	}
	return 0;
}

/* Unescaped value of a cairn variable's line into out[VAL_MAX]. */
static int grub_value(const struct grub_block *g, const struct grub_line *l, char *out,
		      size_t *len, struct err *e)
{
	size_t n = 0, end = (size_t)l->off + l->len - 1; /* the '\n' */
	for (size_t p = (size_t)l->eq + 1; p < end; p++) {
		if (g->buf[p] == '\\')
			p++;
		if (n + 1 >= VAL_MAX)
			return err_field(e, EINVAL, var_names[l->var], "value too long for a "
					 "revision number");
		out[n++] = g->buf[p];
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

static int grub_load(struct bootenv *b, struct grub_block *g, struct err *e)
{
	struct stat st;
	if (fstatat(b->dirfd, b->base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(e, errno, "%s%s", strerror(errno),
			       errno == ENOENT ? " (create it with grub-editenv FILE create)" : "");
	if (!S_ISREG(st.st_mode))
		return err_set(e, EINVAL, "not a regular file%s",
			       S_ISLNK(st.st_mode) ? " (a symlink: give the real path)" : "");
	if (st.st_size != GRUB_BLOCK)
		return err_set(e, EBADMSG, "%lld bytes: a GRUB environment block is exactly %d",
			       (long long)st.st_size, GRUB_BLOCK);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = file_read_all(b->dirfd, b->base, GRUB_BLOCK, &buf, &len, e);
	if (r < 0)
		return r;
	if (len != GRUB_BLOCK)
		return err_set(e, EBADMSG, "%zu bytes: a GRUB environment block is exactly %d",
			       len, GRUB_BLOCK);
	memcpy(g->buf, buf, GRUB_BLOCK);
	return grub_parse(g, e);
}

static int grub_read(struct bootenv *b, struct boot_state *out, struct err *e)
{
	_cleanup_free_ struct grub_block *g = malloc(sizeof(*g));
	if (!g)
		return err_set(e, ENOMEM, "grub: out of memory");
	int r = grub_load(b, g, e);
	char text[VAR_COUNT][VAL_MAX];
	const char *vals[VAR_COUNT] = {NULL, NULL, NULL};
	size_t lens[VAR_COUNT] = {0, 0, 0};
	for (int i = 0; i < VAR_COUNT && r >= 0; i++) {
		if (g->found[i] < 0)
			continue;
		r = grub_value(g, &g->lines[g->found[i]], text[i], &lens[i], e);
		vals[i] = text[i];
	}
	if (r >= 0)
		r = vals_to_state(vals, lens, out, e);
	return r < 0 ? err_prefix(e, "grubenv %s", b->spec + 5) : 0;
}

static bool grub_put(char *out, size_t *n, const char *s, size_t len)
{
	if (*n + len > GRUB_BLOCK)
		return false;
	memcpy(out + *n, s, len);
	*n += len;
	return true;
}

/* Every line but cairn's, in order, then cairn's variables, then padding.
 * Values are decimal digits: nothing in them needs escaping. */
static int grub_render(const struct grub_block *g, const struct env_vals *v, char *out,
		       struct err *e)
{
	size_t n = 0;
	bool ok = grub_put(out, &n, GRUB_SIG, GRUB_SIG_LEN);
	for (size_t i = 0; i < g->nlines && ok; i++)
		if (g->lines[i].var < 0)
			ok = grub_put(out, &n, g->buf + g->lines[i].off, g->lines[i].len);
	for (int i = 0; i < VAR_COUNT && ok; i++) {
		char line[64];
		if (v->v[i][0] && str_fmt(line, sizeof(line), "%s=%s\n", var_names[i], v->v[i]))
			return err_set(e, ENAMETOOLONG, "grub: line too long");
		if (v->v[i][0])
			ok = grub_put(out, &n, line, strlen(line));
	}
	if (!ok)
		return err_set(e, ENOSPC, "the variables do not fit in the %d-byte block",
			       GRUB_BLOCK);
	memset(out + n, '#', GRUB_BLOCK - n);
	return 0;
}

static int grub_write(struct bootenv *b, const struct boot_state *bs, struct err *e)
{
	struct env_vals v;
	int r = state_to_vals(bs, &v, e);
	if (r < 0)
		return r;
	_cleanup_free_ struct grub_block *g = malloc(sizeof(*g));
	if (!g)
		return err_set(e, ENOMEM, "grub: out of memory");
	char out[GRUB_BLOCK];
	r = grub_load(b, g, e);
	if (r >= 0)
		r = grub_render(g, &v, out, e);
	if (r >= 0)
		r = storage_write_durable(b->dirfd, b->base, out, GRUB_BLOCK, 0644, e);
	return r < 0 ? err_prefix(e, "grubenv %s", b->spec + 5) : 0;
}

static int grub_init(struct bootenv *b, const char *path, struct err *e)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return err_field(e, EINVAL, "bootloader", "grub:%s: not a file path", path);
	_cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	b->base = strdup(base);
	if (!dir || !b->base)
		return err_set(e, ENOMEM, "grub: out of memory");
	b->dirfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dirfd < 0)
		return err_set(e, errno, "grubenv %s: directory: %s", path, strerror(errno));
	return 0;
}

/* ---- the interface ---- */

void bootenv_close(struct bootenv *b)
{
	if (!b)
		return;
	if (b->ctx)
		libuboot_exit(b->ctx);
	for (size_t i = 0; i < b->ndevs; i++)
		free(b->devs[i].path);
	if (b->dirfd >= 0)
		close(b->dirfd);
	free(b->base);
	free(b->spec);
	free(b);
}
DEFINE_FREEP(struct bootenv, bootenv_close)

static int bootenv_init(struct bootenv *b, struct storage *s, struct err *e)
{
	const char *spec = b->spec;
	if (strcmp(spec, "file") == 0) {
		b->kind = BOOTENV_FILE;
		b->s = s;
		return s ? 0 : err_set(e, EINVAL, "boot backend file: no storage");
	}
	if (strncmp(spec, "uboot:", 6) == 0 && spec[6]) {
		b->kind = BOOTENV_UBOOT;
		b->config = spec + 6;
		return uboot_init(b, e);
	}
	if (strncmp(spec, "grub:", 5) == 0 && spec[5]) {
		b->kind = BOOTENV_GRUB;
		return grub_init(b, spec + 5, e);
	}
	return err_field(e, EINVAL, "bootloader", "unknown boot backend \"%.64s\" (file, "
			 "uboot:<fw_env.config>, grub:<grubenv>)", spec);
}

int bootenv_open(const char *spec, struct storage *s, struct bootenv **out, struct err *e)
{
	if (!spec || strnlen(spec, SPEC_MAX) == SPEC_MAX)
		return err_field(e, EINVAL, "bootloader", "missing or too long");
	_cleanup_(bootenv_closep) struct bootenv *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(e, ENOMEM, "boot backend: out of memory");
	b->dirfd = -1;
	if (!(b->spec = strdup(spec)))
		return err_set(e, ENOMEM, "boot backend: out of memory");
	int r = bootenv_init(b, s, e);
	if (r < 0)
		return r;
	*out = TAKE_PTR(b);
	return 0;
}

const char *bootenv_name(const struct bootenv *b)
{
	return b->spec;
}

int bootenv_read(struct bootenv *b, struct boot_state *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	switch (b->kind) {
	case BOOTENV_FILE:
		return trails_boot_read(b->s, out, e);
	case BOOTENV_UBOOT:
		return uboot_read(b, out, e);
	case BOOTENV_GRUB:
		return grub_read(b, out, e);
	}
	return err_set(e, EINVAL, "boot backend: bad kind");
}

int bootenv_write(struct bootenv *b, const struct boot_state *bs, struct err *e)
{
	switch (b->kind) {
	case BOOTENV_FILE:
		return trails_boot_write(b->s, bs, e);
	case BOOTENV_UBOOT:
		return uboot_write(b, bs, e);
	case BOOTENV_GRUB:
		return grub_write(b, bs, e);
	}
	return err_set(e, EINVAL, "boot backend: bad kind");
}
