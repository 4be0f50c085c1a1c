/* tools/pack/publish.c — cairn-pack publish and fleet: the hub side of
 * trails/HUB.md as plain files, so that any static HTTP server can serve them
 * (tools/hub/README.md has the layout and the reasons):
 *
 *   HUB/v1/objects/sha256/<64 hex>     every object, named by its digest
 *   HUB/v1/devices/<id>/desired        {"revision", "document", "signature"}
 *   HUB/v1/devices/<id>/status         the device's last report (its PUT)
 *   HUB/groups/<name>/desired          a group's assignment (not served)
 *   HUB/groups/<name>/members          one device id per line (the operator's)
 *
 * Order: every object first (verified while copied or before linked, each
 * under its final name only by a rename or a link), the objects directory
 * fsynced, then the desired files, each replaced atomically. A device that
 * reads a desired file can therefore fetch every object it names. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/digest.h"
#include "../../lib/json.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"
#include "pack.h"

#define HUB_OBJECTS "v1/objects/sha256"
#define HUB_DEVICES "v1/devices"
#define COPY_BUF (1u << 20)
#define MEMBERS_MAX_FILE (4u << 20)
#define MEMBERS_MAX 100000
#define TMP_PREFIX ".tmp."
#define HUB_ID_MAX 64
#define HUB_ID_RULE "([A-Za-z0-9][A-Za-z0-9._-]{0,63})"

DEFINE_FREEP(struct revision, revision_free)
DEFINE_FREEP(struct trust, trust_free)

struct publish {
	int outfd, hubfd, srcobjfd, dstobjfd;
	char *doc, *sig;
	size_t doclen, siglen;
	char *kdoc, *ksig; /* --keys: the keys document that travels with it */
	size_t kdoclen, ksiglen;
	struct revision *rev;
	struct jw desired;
	char **members;
	size_t nmembers;
	struct pack_publish_result *res;
};

static void publish_done(struct publish *p)
{
	int *fds[] = {&p->outfd, &p->hubfd, &p->srcobjfd, &p->dstobjfd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(p->doc);
	free(p->sig);
	free(p->kdoc);
	free(p->ksig);
	revision_free(p->rev);
	jw_free(&p->desired);
	for (size_t i = 0; i < p->nmembers; i++)
		free(p->members[i]);
	free(p->members);
}

/* ---------------- the revision ---------------- */

/* --keys DIR: DIR/keys.json and DIR/keys.sig, sent with the revision. */
static int load_keys(struct publish *p, const char *keys_dir, struct err *e)
{
	if (!keys_dir)
		return 0;
	return pack_keys_read(keys_dir, &p->kdoc, &p->kdoclen, &p->ksig, &p->ksiglen, e);
}

/* With --trust: the keys document is the roots', and its keys count for the
 * revision as they will on the device. */
static int check_keys(struct publish *p, struct trust *t, struct err *e)
{
	if (!p->kdoc)
		return 0;
	return pack_keys_apply(t, p->kdoc, p->kdoclen, p->ksig, p->ksiglen, e);
}

static int load_revision(struct publish *p, const char *outdir, const char *trust_path,
			 struct err *e)
{
	int r = file_read_all(p->outfd, "revision.json", REV_MAX_DOC, &p->doc, &p->doclen, e);
	if (r < 0)
		return err_prefix(e, "%s", outdir);
	r = file_read_all(p->outfd, "revision.sig", SIG_MAX_FILE, &p->sig, &p->siglen, e);
	if (r == -ENOENT)
		return err_set(e, ENOENT, "%s/revision.sig: missing: the revision is not signed "
				       "(cairn-pack sign %s --key KEY)", outdir, outdir);
	if (r < 0)
		return err_prefix(e, "%s", outdir);
	if (trust_path) {
		_cleanup_(trust_freep) struct trust *t = NULL;
		if ((r = trust_load(trust_path, &t, e)) < 0 || (r = check_keys(p, t, e)) < 0)
			return r;
		if ((r = sig_verify(t, p->doc, p->doclen, p->sig, p->siglen, NULL, e)) < 0)
			return err_prefix(e, "%s/revision.sig", outdir);
	}
	r = revision_parse(p->doc, p->doclen, REV_PARSE_DEVICE, &p->rev, e);
	if (r < 0)
		return err_prefix(e, "%s/revision.json", outdir);
	p->res->revision = p->rev->number;
	return 0;
}

/* The body of GET /v1/devices/<id>/desired: the files' exact bytes as strings. */
static int build_desired(struct publish *p, struct err *e)
{
	jw_init_dyn(&p->desired, false);
	jw_obj_open(&p->desired);
	jw_kv_uint(&p->desired, "revision", p->rev->number);
	jw_key(&p->desired, "document");
	jw_strn(&p->desired, p->doc, p->doclen);
	jw_key(&p->desired, "signature");
	jw_strn(&p->desired, p->sig, p->siglen);
	if (p->kdoc) {
		jw_key(&p->desired, "keys");
		jw_obj_open(&p->desired);
		jw_key(&p->desired, "document");
		jw_strn(&p->desired, p->kdoc, p->kdoclen);
		jw_key(&p->desired, "signature");
		jw_strn(&p->desired, p->ksig, p->ksiglen);
		jw_obj_close(&p->desired);
	}
	jw_obj_close(&p->desired);
	int r = jw_finish(&p->desired, e);
	return r < 0 ? err_prefix(e, "desired document") : 0;
}

/* A device id (trails/HUB.md): [A-Za-z0-9][A-Za-z0-9._-]{0,63}, one safe
 * path component ("." and ".." cannot match). */
static bool id_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool hub_id_valid(const char *s, size_t len)
{
	if (len < 1 || len > HUB_ID_MAX || !id_alnum(s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!id_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* ---------------- group members ---------------- */

static int member_add(struct publish *p, const char *id, size_t len, unsigned line, struct err *e)
{
	if (!hub_id_valid(id, len))
		return err_set(e, EINVAL, "line %u: '%.*s' is not a device id " HUB_ID_RULE, line,
			       (int)(len > 80 ? 80 : len), id);
	if (p->nmembers >= MEMBERS_MAX)
		return err_set(e, E2BIG, "line %u: more than %u devices", line, MEMBERS_MAX);
	char **grown = realloc(p->members, (p->nmembers + 1) * sizeof(*grown));
	if (!grown)
		return err_set(e, ENOMEM, "members: out of memory");
	p->members = grown;
	if (!(p->members[p->nmembers] = strndup(id, len)))
		return err_set(e, ENOMEM, "members: out of memory");
	p->nmembers++;
	return 0;
}

/* One id per line; blank lines and lines starting with '#' are skipped,
 * spaces and tabs around an id are ignored. A missing file: no members. */
static int read_members(struct publish *p, const char *group, struct err *e)
{
	char path[128];
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (str_fmt(path, sizeof(path), "groups/%s/members", group) < 0)
		return err_set(e, ENAMETOOLONG, "group name too long");
	int r = file_read_all(p->hubfd, path, MEMBERS_MAX_FILE, &text, &len, e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	unsigned line = 0;
	for (size_t at = 0; at < len;) {
		size_t end = at;
		while (end < len && text[end] != '\n')
			end++;
		line++;
		size_t a = at, b = end;
		while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
			a++;
		while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
			b--;
		if (b > a && text[a] != '#' && (r = member_add(p, text + a, b - a, line, e)) < 0)
			return err_prefix(e, "%s", path);
		at = end + 1;
	}
	return 0;
}

/* ---------------- objects ---------------- */

/* mkdir each component of rel under dirfd (durably); the last one's fd. */
static int mkdirs_open(int dirfd, const char *rel, struct err *e)
{
	char path[PATH_MAX];
	if (str_fmt(path, sizeof(path), "%s", rel) < 0)
		return err_set(e, ENAMETOOLONG, "%s: path too long", rel);
	for (char *s = path;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		int r = storage_mkdir_durable(dirfd, path, 0755, e);
		if (r < 0)
			return r;
		if (!c)
			break;
		*s = c;
	}
	int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(e, errno, "open %s: %s", rel, strerror(errno));
	return fd;
}

/* Temp files of publishes that died (".tmp.<hex>.<pid>" whose pid is gone)
 * are removed; the web server never serves them (not a 64-hex name). */
static void sweep_temps(int dirfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *dot = strrchr(de->d_name, '.');
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) || !dot)
			continue;
		long pid = strtol(dot + 1, NULL, 10);
		if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			unlinkat(dirfd, de->d_name, 0);
	}
}

/* err_field naming the object and the document field that references it. */
static int obj_err(struct err *e, int code, const struct rev_object_use *u, const char *fmt, ...)
	_printf_(4, 5);
static int obj_err(struct err *e, int code, const struct rev_object_use *u, const char *fmt, ...)
{
	char id[DIGEST_STR_LEN + 1], text[ERR_MSG_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	digest_format(&u->ref->digest, id);
	return err_field(e, code, u->field, "object %s: %s", id, text);
}

/* Hash src from its start (copying it to dst when dst >= 0): exactly the
 * declared size, and bytes that hash to the object's name. */
static int hash_copy(int src, int dst, const struct rev_object_use *u, struct err *e)
{
	_cleanup_free_ unsigned char *buf = malloc(COPY_BUF);
	if (!buf)
		return err_set(e, ENOMEM, "out of memory");
	struct sha256 h;
	sha256_init(&h);
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read_all(src, buf, COPY_BUF);
		if (n < 0)
			return obj_err(e, (int)-n, u, "read: %s", strerror((int)-n));
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > u->ref->size)
			return obj_err(e, EFBIG, u, "more than the declared %llu bytes",
				       (unsigned long long)u->ref->size);
		sha256_update(&h, buf, (size_t)n);
		int r = dst >= 0 ? write_all(dst, buf, (size_t)n) : 0;
		if (r < 0)
			return obj_err(e, -r, u, "write: %s", strerror(-r));
	}
	struct digest got;
	sha256_final(&h, &got);
	if (total != u->ref->size)
		return obj_err(e, EFBIG, u, "size %llu != declared %llu", (unsigned long long)total,
			       (unsigned long long)u->ref->size);
	if (!digest_eq(&got, &u->ref->digest))
		return obj_err(e, EBADMSG, u, "digest mismatch: its bytes changed");
	return 0;
}

/* Same filesystem: a hard link to the very inode that was hashed. 1 if
 * linked, 0 if a link is impossible here (copy instead). */
static int link_object(struct publish *p, int src, const char *srcname, const char *tmp,
		       const struct rev_object_use *u, struct err *e)
{
	struct stat a, b;
	if (fstat(src, &a) < 0 || fstat(p->dstobjfd, &b) < 0 || a.st_dev != b.st_dev)
		return 0;
	int r = hash_copy(src, -1, u, e);
	if (r < 0)
		return r;
	if (linkat(p->srcobjfd, srcname, p->dstobjfd, tmp, 0) < 0)
		return 0; /* EPERM (protected_hardlinks), EMLINK, ...: copy */
	if (fstatat(p->dstobjfd, tmp, &b, AT_SYMLINK_NOFOLLOW) < 0 || b.st_ino != a.st_ino) {
		unlinkat(p->dstobjfd, tmp, 0);
		return obj_err(e, EAGAIN, u, "replaced while being published");
	}
	return 1;
}

static int copy_object(struct publish *p, int src, const char *tmp,
		       const struct rev_object_use *u, struct err *e)
{
	if (lseek(src, 0, SEEK_SET) < 0)
		return obj_err(e, errno, u, "seek: %s", strerror(errno));
	_cleanup_close_ int dst = openat(p->dstobjfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
						       O_NOFOLLOW, 0444);
	if (dst < 0)
		return obj_err(e, errno, u, "create %s: %s", tmp, strerror(errno));
	int r = hash_copy(src, dst, u, e);
	if (r >= 0)
		r = storage_fsync(dst, tmp, e);
	if (r < 0)
		unlinkat(p->dstobjfd, tmp, 0);
	return r;
}

/* Present on the hub with the declared size: kept (not re-hashed). */
static bool object_present(struct publish *p, const char *hex, const struct rev_object_use *u)
{
	struct stat st;
	return fstatat(p->dstobjfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size == u->ref->size;
}

static int publish_object(struct publish *p, const struct rev_object_use *u, struct err *e)
{
	char hex[DIGEST_HEX_LEN + 1], srcname[DIGEST_HEX_LEN + 2], tmp[DIGEST_HEX_LEN + 32];
	hex_encode(u->ref->digest.b, DIGEST_LEN, hex);
	if (object_present(p, hex, u)) {
		p->res->present++;
		return 0;
	}
	if (str_fmt(srcname, sizeof(srcname), "%.2s/%s", hex, hex + 2) < 0 ||
	    str_fmt(tmp, sizeof(tmp), TMP_PREFIX "%s.%ld", hex, (long)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "object name");
	_cleanup_close_ int src = openat(p->srcobjfd, srcname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (src < 0)
		return obj_err(e, errno, u, "not in OUT: %s", strerror(errno));
	int linked = link_object(p, src, srcname, tmp, u, e);
	if (linked < 0)
		return linked;
	int r = linked ? 0 : copy_object(p, src, tmp, u, e);
	if (r < 0)
		return r;
	if (renameat(p->dstobjfd, tmp, p->dstobjfd, hex) < 0) {
		r = obj_err(e, errno, u, "rename into place: %s", strerror(errno));
		unlinkat(p->dstobjfd, tmp, 0);
		return r;
	}
	if (linked)
		p->res->linked++;
	else
		p->res->copied++;
	p->res->bytes_new += u->ref->size;
	return 0;
}

static bool seen_before(const struct rev_object_use *uses, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (digest_eq(&uses[j].ref->digest, &uses[i].ref->digest))
			return true;
	return false;
}

static int publish_objects(struct publish *p, struct err *e)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(p->rev, uses, ARRAY_SIZE(uses));
	if (n > ARRAY_SIZE(uses))
		return err_set(e, E2BIG, "more than %zu objects", ARRAY_SIZE(uses));
	p->srcobjfd = openat(p->outfd, "objects/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->srcobjfd < 0)
		return err_set(e, errno, "OUT/objects/sha256: %s", strerror(errno));
	int fd = mkdirs_open(p->hubfd, HUB_OBJECTS, e);
	if (fd < 0)
		return fd;
	p->dstobjfd = fd;
	sweep_temps(p->dstobjfd);
	for (size_t i = 0; i < n; i++) {
		if (seen_before(uses, i))
			continue;
		p->res->objects++;
		int r = publish_object(p, &uses[i], e);
		if (r < 0)
			return r;
	}
	/* every rename above is durable before a desired file names them */
	return storage_fsync(p->dstobjfd, HUB_OBJECTS, e);
}

/* ---------------- desired files ---------------- */

/* Replace dirfd/desired (temp, fsync, rename, fsync dir). A web server's
 * ETag is "<mtime>-<size>" (nginx): the new file gets an mtime at least one
 * second after the one it replaces (trails/HUB.md), so no poll can take the
 * new assignment for the old one. */
static int replace_desired(struct publish *p, int dirfd, const struct stat *old, struct err *e)
{
	char tmp[64];
	if (str_fmt(tmp, sizeof(tmp), TMP_PREFIX "desired.%ld", (long)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "temp name");
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
							O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(e, errno, "create %s: %s", tmp, strerror(errno));
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	if (old && ts[0].tv_sec <= old->st_mtim.tv_sec)
		ts[0] = (struct timespec){.tv_sec = old->st_mtim.tv_sec + 1};
	ts[1] = ts[0];
	int r = write_all(fd, p->desired.buf, p->desired.len);
	if (r < 0)
		r = err_set(e, -r, "write %s: %s", tmp, strerror(-r));
	else if (fchmod(fd, 0644) < 0 || futimens(fd, ts) < 0)
		r = err_set(e, errno, "%s: %s", tmp, strerror(errno));
	if (r >= 0)
		r = storage_fsync(fd, tmp, e);
	if (r >= 0 && renameat(dirfd, tmp, dirfd, "desired") < 0)
		r = err_set(e, errno, "rename %s to desired: %s", tmp, strerror(errno));
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return storage_fsync(dirfd, "directory", e);
}

/* dir/desired := the desired document, unless it holds these bytes already
 * (then its mtime, and with it the ETag, stays: devices poll for nothing). */
static int write_desired(struct publish *p, const char *dir, struct err *e)
{
	_cleanup_close_ int fd = mkdirs_open(p->hubfd, dir, e);
	if (fd < 0)
		return fd;
	sweep_temps(fd);
	_cleanup_free_ char *old = NULL;
	size_t oldlen;
	struct stat st;
	struct err ignored = ERR_INIT;
	bool exists = fstatat(fd, "desired", &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (exists && file_read_all(fd, "desired", p->desired.len, &old, &oldlen, &ignored) == 0 &&
	    oldlen == p->desired.len && !memcmp(old, p->desired.buf, oldlen)) {
		p->res->unchanged++;
		return 0;
	}
	int r = replace_desired(p, fd, exists ? &st : NULL, e);
	if (r < 0)
		return err_prefix(e, "%s", dir);
	p->res->written++;
	return 0;
}

static int write_targets(struct publish *p, const char *device, const char *group, struct err *e)
{
	char dir[PATH_MAX];
	int r;
	if (group) {
		if (str_fmt(dir, sizeof(dir), "groups/%s", group) < 0)
			return err_set(e, ENAMETOOLONG, "group name too long");
		if ((r = write_desired(p, dir, e)) < 0)
			return r;
		p->res->written = p->res->unchanged = 0; /* count devices only */
	}
	for (size_t i = 0; i < (group ? p->nmembers : 1); i++) {
		const char *id = group ? p->members[i] : device;
		if (str_fmt(dir, sizeof(dir), HUB_DEVICES "/%s", id) < 0)
			return err_set(e, ENAMETOOLONG, "device id too long");
		if ((r = write_desired(p, dir, e)) < 0)
			return r;
	}
	return 0;
}

static int check_target(const char *device, const char *group, struct err *e)
{
	if (!device == !group)
		return err_set(e, EINVAL, "give exactly one of --device ID or --group NAME");
	if (device && !hub_id_valid(device, strlen(device)))
		return err_field(e, EINVAL, "--device", "'%.80s' is not a device id " HUB_ID_RULE,
				 device);
	if (group && !name_valid(group))
		return err_field(e, EINVAL, "--group", "'%s' is not a group name "
				 "([a-z0-9][a-z0-9_-]{0,31})", group);
	return 0;
}

int pack_publish(const char *outdir, const char *hubdir, const char *device, const char *group,
		 const char *trust_path, const char *keys_dir, struct pack_publish_result *res,
		 struct err *e)
{
	struct publish p = {.outfd = -1, .hubfd = -1, .srcobjfd = -1, .dstobjfd = -1, .res = res};
	*res = (struct pack_publish_result){0};
	int r = check_target(device, group, e);
	if (r < 0)
		return r;
	if ((p.outfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = err_set(e, errno, "%s: %s", outdir, strerror(errno));
	if (r >= 0)
		r = load_keys(&p, keys_dir, e);
	if (r >= 0)
		r = load_revision(&p, outdir, trust_path, e);
	if (r >= 0)
		r = build_desired(&p, e);
	if (r >= 0 && mkdir(hubdir, 0755) < 0 && errno != EEXIST)
		r = err_set(e, errno, "create %s: %s", hubdir, strerror(errno));
	if (r >= 0 && (p.hubfd = open(hubdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = err_set(e, errno, "%s: %s", hubdir, strerror(errno));
	/* everything that can be refused is refused before the hub changes */
	if (r >= 0 && group)
		r = read_members(&p, group, e);
	if (r >= 0)
		r = publish_objects(&p, e);
	if (r >= 0)
		r = write_targets(&p, device, group, e);
	res->members = p.nmembers;
	publish_done(&p);
	return r;
}

/* ---------------- fleet ---------------- */

#define FLEET_MAX_STATUS (64u * 1024) /* devices send at most 8 KiB (HUB.md) */
#define FLEET_MAX_TOKENS 256
#define FLEET_MAX_DEVICES 1000000

/* One device: its assignment and last report (trails/HUB.md, "Status
 * report"). Numbers are -1 when absent; texts are what the device wrote
 * (unescaped, valid UTF-8), shown sanitized in the table. */
struct fleet_row {
	char id[HUB_ID_MAX + 1];
	long long desired, reported; /* hub side: the desired file, the report's mtime */
	long long running, committed, try_rev, keys, update, done, total, rate, time;
	char state[32], reason[64], message[256], field[128], error[160];
};

static const struct {
	const char *key;
	size_t off;
} fleet_nums[] = {
	{"running", offsetof(struct fleet_row, running)},
	{"committed", offsetof(struct fleet_row, committed)},
	{"try", offsetof(struct fleet_row, try_rev)},
	{"keys", offsetof(struct fleet_row, keys)},
	{"revision", offsetof(struct fleet_row, update)},
	{"done", offsetof(struct fleet_row, done)},
	{"total", offsetof(struct fleet_row, total)},
	{"rate", offsetof(struct fleet_row, rate)},
	{"time", offsetof(struct fleet_row, time)},
};

static long long jp_key_int(const struct jp *p, const char *key)
{
	long long v;
	int i = jp_get(p, 0, key);
	return i >= 0 && jp_int(p, i, 0, (long long)REV_MAX_NUMBER, &v) == 0 ? v : -1;
}

static void jp_key_str(const struct jp *p, const char *key, char *out, size_t cap)
{
	int i = jp_get(p, 0, key);
	if (i < 0 || jp_str(p, i, out, cap, NULL) < 0)
		out[0] = '\0';
}

static void fleet_read_status(int devfd, struct fleet_row *row)
{
	_cleanup_free_ char *js = NULL;
	_cleanup_free_ jsmntok_t *toks = NULL;
	size_t len;
	struct stat st;
	struct err e = ERR_INIT;
	struct jp p;
	if (fstatat(devfd, "status", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* never reported */
	row->reported = (long long)st.st_mtime;
	if (file_read_all(devfd, "status", FLEET_MAX_STATUS, &js, &len, &e) < 0 ||
	    !(toks = calloc(FLEET_MAX_TOKENS, sizeof(*toks))) ||
	    jp_parse(&p, js, len, toks, FLEET_MAX_TOKENS, &e) < 0 || !jp_is(&p, 0, JSMN_OBJECT)) {
		snprintf(row->error, sizeof(row->error), "bad report: %.100s",
			 e.msg[0] ? e.msg : "not a JSON object");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fleet_nums); i++)
		*(long long *)((char *)row + fleet_nums[i].off) = jp_key_int(&p, fleet_nums[i].key);
	jp_key_str(&p, "state", row->state, sizeof(row->state));
	jp_key_str(&p, "reason", row->reason, sizeof(row->reason));
	jp_key_str(&p, "message", row->message, sizeof(row->message));
	jp_key_str(&p, "field", row->field, sizeof(row->field));
}

static void fleet_read_desired(int devfd, struct fleet_row *row)
{
	_cleanup_free_ char *js = NULL;
	size_t len;
	jsmntok_t toks[16];
	struct jp p;
	struct err e = ERR_INIT;
	/* the largest pointer a device accepts (trails/HUB.md) */
	if (file_read_all(devfd, "desired", 2 * (REV_MAX_DOC + SIG_MAX_FILE) + 4096, &js, &len,
			  &e) == 0 &&
	    jp_parse(&p, js, len, toks, (int)ARRAY_SIZE(toks), &e) == 0 && jp_is(&p, 0, JSMN_OBJECT))
		row->desired = jp_key_int(&p, "revision");
}

static int fleet_row_read(int devsfd, const char *id, struct fleet_row *row)
{
	*row = (struct fleet_row){.desired = -1, .reported = -1};
	for (size_t i = 0; i < ARRAY_SIZE(fleet_nums); i++)
		*(long long *)((char *)row + fleet_nums[i].off) = -1;
	if (str_fmt(row->id, sizeof(row->id), "%s", id) < 0)
		return -ENAMETOOLONG;
	_cleanup_close_ int fd = openat(devsfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	fleet_read_desired(fd, row);
	fleet_read_status(fd, row);
	return 0;
}

static int fleet_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fleet_row *)a)->id, ((const struct fleet_row *)b)->id);
}

/* Every directory of v1/devices named like a device id, sorted by id. */
static int fleet_rows(int hubfd, struct fleet_row **out, size_t *n, struct err *e)
{
	_cleanup_free_ struct fleet_row *rows = NULL;
	size_t count = 0;
	*n = 0;
	_cleanup_close_ int fd = openat(hubfd, HUB_DEVICES, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, HUB_DEVICES ": %s", strerror(errno));
	int dfd = dup(fd);
	_cleanup_closedir_ DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int err = errno;
		if (dfd >= 0)
			close(dfd);
		return err_set(e, err, HUB_DEVICES ": %s", strerror(err));
	}
	struct dirent *de;
	while ((de = readdir(d)) && count < FLEET_MAX_DEVICES) {
		if (!hub_id_valid(de->d_name, strlen(de->d_name)))
			continue;
		struct fleet_row *grown = realloc(rows, (count + 1) * sizeof(*rows));
		if (!grown)
			return err_set(e, ENOMEM, "out of memory");
		rows = grown;
		if (fleet_row_read(fd, de->d_name, &rows[count]) == 0)
			count++;
	}
	if (count)
		qsort(rows, count, sizeof(*rows), fleet_cmp);
	*out = TAKE_PTR(rows);
	*n = count;
	return 0;
}

/* A device's text on an operator's terminal: printable ASCII only, cut to cap. */
static const char *cell_text(const char *s, char *buf, size_t cap)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return i ? buf : "-";
}

static const char *cell_num(long long v, char *buf, size_t cap)
{
	return v < 0 || str_fmt(buf, cap, "%lld", v) < 0 ? "-" : buf;
}

/* "DOWNLOADING 45%" while a download makes progress. */
static const char *cell_state(const struct fleet_row *r, char *buf, size_t cap)
{
	char text[sizeof(r->state)];
	const char *s = cell_text(r->state, text, sizeof(text));
	if (!strcmp(r->state, "DOWNLOADING") && r->total > 0 && r->done >= 0 &&
	    str_fmt(buf, cap, "%s %lld%%", s, r->done >= r->total ? 100 : r->done * 100 / r->total) == 0)
		return buf;
	return str_fmt(buf, cap, "%s", s) < 0 ? "?" : buf;
}

static const char *cell_age(long long reported, time_t now, char *buf, size_t cap)
{
	if (reported < 0)
		return "never";
	long long s = (long long)now > reported ? (long long)now - reported : 0;
	int r = s < 120 ? str_fmt(buf, cap, "%llds", s)
		: s < 7200 ? str_fmt(buf, cap, "%lldm", s / 60)
		: s < 172800 ? str_fmt(buf, cap, "%lldh", s / 3600)
			     : str_fmt(buf, cap, "%lldd", s / 86400);
	return r < 0 ? "?" : buf;
}

#define FLEET_FMT "%-20s %-8s %-8s %-9s %-5s %-8s %-16s %-6s %s\n"

static void fleet_print_row(FILE *out, const struct fleet_row *r, time_t now)
{
	char b[6][24], state[40], reason[200];
	const char *why = r->error[0] ? r->error : r->reason;
	fprintf(out, FLEET_FMT, r->id, cell_num(r->desired, b[0], sizeof(b[0])),
		cell_num(r->running, b[1], sizeof(b[1])), cell_num(r->committed, b[2], sizeof(b[2])),
		cell_num(r->keys, b[5], sizeof(b[5])), cell_num(r->update, b[3], sizeof(b[3])),
		cell_state(r, state, sizeof(state)), cell_age(r->reported, now, b[4], sizeof(b[4])),
		cell_text(why, reason, 48));
}

static void jw_kv_num(struct jw *w, const char *key, long long v)
{
	jw_key(w, key);
	if (v < 0)
		jw_null(w);
	else
		jw_int(w, v);
}

static void fleet_json_row(struct jw *w, const struct fleet_row *r, time_t now)
{
	jw_obj_open(w);
	jw_kv_str(w, "device", r->id);
	jw_kv_num(w, "desired", r->desired);
	for (size_t i = 0; i < ARRAY_SIZE(fleet_nums); i++)
		jw_kv_num(w, !strcmp(fleet_nums[i].key, "revision") ? "update" : fleet_nums[i].key,
			  *(const long long *)((const char *)r + fleet_nums[i].off));
	jw_kv_str(w, "state", r->state);
	jw_kv_str(w, "reason", r->reason);
	jw_kv_str(w, "message", r->message);
	jw_kv_str(w, "field", r->field);
	jw_kv_num(w, "reported", r->reported);
	jw_kv_num(w, "age_s", r->reported < 0 ? -1
			      : (long long)now > r->reported ? (long long)now - r->reported : 0);
	jw_kv_str(w, "error", r->error);
	jw_obj_close(w);
}

static int fleet_json(FILE *out, const struct fleet_row *rows, size_t n, time_t now,
		      struct err *e)
{
	struct jw w;
	jw_init_dyn(&w, true);
	jw_arr_open(&w);
	for (size_t i = 0; i < n; i++)
		fleet_json_row(&w, &rows[i], now);
	jw_arr_close(&w);
	int r = jw_finish(&w, e);
	if (r == 0)
		fprintf(out, "%s\n", w.buf);
	jw_free(&w);
	return r;
}

int pack_fleet(const char *hubdir, bool json, FILE *out, struct err *e)
{
	_cleanup_close_ int hubfd = open(hubdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (hubfd < 0)
		return err_set(e, errno, "%s: %s", hubdir, strerror(errno));
	_cleanup_free_ struct fleet_row *rows = NULL;
	size_t n;
	int r = fleet_rows(hubfd, &rows, &n, e);
	if (r < 0)
		return err_prefix(e, "%s", hubdir);
	time_t now = time(NULL);
	if (json)
		r = fleet_json(out, rows, n, now, e);
	else {
		fprintf(out, FLEET_FMT, "DEVICE", "DESIRED", "RUNNING", "COMMITTED", "KEYS", "UPDATE",
			"STATE", "AGE", "REASON");
		for (size_t i = 0; i < n; i++)
			fleet_print_row(out, &rows[i], now);
	}
	if (r == 0 && fflush(out) != 0)
		r = err_set(e, errno, "write: %s", strerror(errno));
	return r;
}
