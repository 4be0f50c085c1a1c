/* tools/pack/build.c — cairn-pack build: SPEC.json -> OUT/revision.json + objects.
 *
 * Every object with a source in the spec becomes bytes in OUT's object store:
 *   dir   mksquashfs of the directory, every file owned by root (-all-root):
 *         a developer's checkout belongs to the developer, not to the image.
 *   tar   extracted (GNU tar, --numeric-owner --same-owner, as root only) into
 *         a private temp dir, then mksquashfs keeping those owners: the tar
 *         carries the intended owners, so a tar is how an image gets non-root
 *         files.
 *   file  the file's bytes as they are (format "raw" unless the spec says so).
 * Images are reproducible: lz4, no xattrs, every timestamp 0, no appending;
 * squashfs-tools 4.5.1 is reproducible by default with any number of
 * processors. Same inputs (names, bytes, modes, and owners for tar) give the
 * same digests, whatever the files' mtimes. See README.md.
 *
 * OUT: parsing the spec touches nothing. Once building starts, OUT's old
 * revision.sig and revision.json are removed first (a signature of other
 * bytes means nothing) and the new revision.json appears, atomically, only
 * when every object is in the store: OUT holds a revision.json only if the
 * last build into it succeeded. Objects already in OUT are kept. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/cleanup.h"
#include "../../lib/digest.h"
#include "../../lib/json.h"
#include "../../lib/util.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"
#include "pack.h"

#define RM_MAX_DEPTH 512
#define HASH_BUF (256u * 1024)

struct build {
	char specdir[PATH_MAX];
	char out[PATH_MAX]; /* OUT, resolved */
	char tmp[PATH_MAX]; /* private temp dir, removed on every path */
	struct storage *store;
	unsigned seq; /* names temp files */
};

DEFINE_FREEP(struct revision, revision_free)
DEFINE_FREEP(struct storage, storage_close)

/* ---------------- external tools ---------------- */

static void child_exec(const char *const argv[], int errpipe)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* stdout is for cairn-pack's own result: the tool talks on stderr */
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		goto fail;
	/* mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time; the
	 * images' times are fixed at 0 anyway. */
	unsetenv("SOURCE_DATE_EPOCH");
	execvp(argv[0], (char *const *)argv);
fail:;
	int err = errno;
	if (write(errpipe, &err, sizeof(err)) < 0) {
		/* the parent then sees a bare failure exit */
	}
	_exit(127);
}

static int wait_child(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Run argv (no shell), its stderr on ours. The error names `field`. */
static int run_tool(const char *const argv[], const char *field, struct err *e)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_field(e, errno, field, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int saved = errno;
		close(p[0]);
		close(p[1]);
		return err_field(e, saved, field, "fork: %s", strerror(saved));
	}
	if (pid == 0)
		child_exec(argv, p[1]);
	close(p[1]);
	int exec_err = 0;
	ssize_t n = read_all(p[0], &exec_err, sizeof(exec_err));
	close(p[0]);
	int status;
	int r = wait_child(pid, &status);
	if (r < 0)
		return err_field(e, r, field, "waitpid %s: %s", argv[0], strerror(-r));
	if (n == (ssize_t)sizeof(exec_err))
		return err_field(e, exec_err, field, "cannot run %s: %s%s", argv[0],
				 strerror(exec_err),
				 exec_err == ENOENT ? " (is squashfs-tools/tar installed?)" : "");
	if (WIFSIGNALED(status))
		return err_field(e, EIO, field, "%s killed by signal %d", argv[0],
				 WTERMSIG(status));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_field(e, EIO, field, "%s failed (exit %d)", argv[0],
				 WEXITSTATUS(status));
	return 0;
}

static int mksquashfs(const char *src, const char *img, bool all_root, const char *field,
		      struct err *e)
{
	const char *argv[] = {"mksquashfs", src, img, "-comp", "lz4", "-noappend", "-no-xattrs",
			      "-mkfs-time", "0", "-all-time", "0", "-no-progress", "-quiet",
			      "-exit-on-error", all_root ? "-all-root" : NULL, NULL};
	return run_tool(argv, field, e);
}

/* ---------------- temp dir ---------------- */

static int rm_rf_at(int at, const char *name, int depth)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (depth > RM_MAX_DEPTH)
		return -ELOOP;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		int saved = errno;
		close(fd);
		return -saved;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int rr = rm_rf_at(dirfd(d), de->d_name, depth + 1);
		if (rr < 0 && r == 0)
			r = rr;
	}
	if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

static int tmp_create(struct build *b, struct err *e)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (str_fmt(b->tmp, sizeof(b->tmp), "%s/cairn-pack-XXXXXX", base) < 0)
		return err_set(e, ENAMETOOLONG, "TMPDIR too long: %s", base);
	if (!mkdtemp(b->tmp)) {
		int saved = errno;
		b->tmp[0] = '\0';
		return err_set(e, saved, "create temp dir in %s: %s", base, strerror(saved));
	}
	char real[PATH_MAX];
	if (realpath(b->tmp, real)) /* compared with sources by check_not_inside */
		memcpy(b->tmp, real, sizeof(real));
	return 0;
}

static void tmp_remove(struct build *b)
{
	if (!b->tmp[0])
		return;
	int r = rm_rf_at(AT_FDCWD, b->tmp, 0);
	if (r < 0)
		fprintf(stderr, "cairn-pack: warning: could not remove %s: %s\n", b->tmp,
			strerror(-r));
	b->tmp[0] = '\0';
}

/* A fresh path inside the temp dir: "<tmp>/<what>-<n>". */
static int tmp_path(struct build *b, const char *what, char out[PATH_MAX])
{
	return str_fmt(out, PATH_MAX, "%s/%s-%u", b->tmp, what, b->seq++);
}

/* ---------------- objects ---------------- */

static int hash_fd(int fd, struct digest *d, uint64_t *size)
{
	_cleanup_free_ char *buf = malloc(HASH_BUF);
	if (!buf)
		return -ENOMEM;
	struct sha256 c;
	sha256_init(&c);
	uint64_t total = 0;
	ssize_t n;
	while ((n = read_all(fd, buf, HASH_BUF)) > 0) {
		sha256_update(&c, buf, (size_t)n);
		total += (uint64_t)n;
		if ((size_t)n < HASH_BUF)
			break;
	}
	if (n < 0)
		return (int)n;
	sha256_final(&c, d);
	*size = total;
	return 0;
}

/* Hash the file at `path`, then put the same bytes into the store (which
 * hashes again: a file that changes in between fails, it is not stored). */
static int put_file(struct build *b, const char *path, struct rev_objref *ref, const char *field,
		    struct err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_field(e, errno, field, "open %s: %s", path, strerror(errno));
	struct digest d;
	uint64_t size = 0;
	int r = hash_fd(fd, &d, &size);
	if (r < 0)
		return err_field(e, r, field, "read %s: %s", path, strerror(-r));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return err_field(e, errno, field, "seek %s: %s", path, strerror(errno));
	r = storage_object_put_fd(b->store, fd, &d, size, e);
	if (r < 0)
		return err_prefix(e, "%s: store %s", field, path);
	ref->digest = d;
	ref->size = size;
	return 0;
}

static int check_type(const char *path, mode_t want, const char *field, struct err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_field(e, errno, field, "%s: %s", path, strerror(errno));
	if ((st.st_mode & S_IFMT) != want)
		return err_field(e, EINVAL, field, "%s: not a %s", path,
				 want == S_IFDIR ? "directory" : "regular file");
	return 0;
}

/* {"dir": "."} next to the spec would pack OUT (and any earlier image) into
 * the image: refuse a source that contains OUT or the temp dir. */
static int check_not_inside(const struct build *b, const char *src, const char *field,
			    struct err *e)
{
	_cleanup_free_ char *real = realpath(src, NULL);
	if (!real)
		return err_field(e, errno, field, "%s: %s", src, strerror(errno));
	const char *inner[] = {b->out, b->tmp};
	size_t n = strlen(real);
	for (size_t i = 0; i < ARRAY_SIZE(inner); i++)
		if (!strncmp(inner[i], real, n) && (inner[i][n] == '/' || !inner[i][n] || n == 1))
			return err_field(e, EINVAL, field, "%s contains %s: the image would contain "
					 "its own output", src, inner[i]);
	return 0;
}

static int build_dir(struct build *b, const char *src, struct rev_objref *ref, const char *field,
		     struct err *e)
{
	char img[PATH_MAX];
	int r = check_type(src, S_IFDIR, field, e);
	if (r == 0)
		r = check_not_inside(b, src, field, e);
	if (r < 0)
		return r;
	if (tmp_path(b, "image", img) < 0)
		return err_field(e, ENAMETOOLONG, field, "temp path too long");
	r = mksquashfs(src, img, true, field, e);
	if (r == 0)
		r = put_file(b, img, ref, field, e);
	(void)rm_rf_at(AT_FDCWD, img, 0);
	ref->format = OBJ_SQUASHFS;
	return r;
}

static int extract_tar(const char *src, const char *root, const char *field, struct err *e)
{
	if (mkdir(root, 0755) < 0 || chmod(root, 0755) < 0)
		return err_field(e, errno, field, "mkdir %s: %s", root, strerror(errno));
	const char *argv[] = {"tar", "--numeric-owner", "--same-owner", "--same-permissions",
			      "-C", root, "-xf", src, NULL};
	return run_tool(argv, field, e);
}

static int build_tar(struct build *b, const char *src, struct rev_objref *ref, const char *field,
		     struct err *e)
{
	char root[PATH_MAX], img[PATH_MAX];
	int r = check_type(src, S_IFREG, field, e);
	if (r < 0)
		return r;
	if (geteuid() != 0)
		return err_field(e, EPERM, field,
				 "a tar's owners can only be kept as root: run cairn-pack as "
				 "root, or use a \"dir\" source (every file owned by root)");
	if (tmp_path(b, "root", root) < 0 || tmp_path(b, "image", img) < 0)
		return err_field(e, ENAMETOOLONG, field, "temp path too long");
	r = extract_tar(src, root, field, e);
	if (r == 0)
		r = mksquashfs(root, img, false, field, e);
	(void)rm_rf_at(AT_FDCWD, root, 0);
	if (r == 0)
		r = put_file(b, img, ref, field, e);
	(void)rm_rf_at(AT_FDCWD, img, 0);
	ref->format = OBJ_SQUASHFS;
	return r;
}

static const char *src_word(enum obj_src s)
{
	switch (s) {
	case OBJ_SRC_DIR:
		return "dir";
	case OBJ_SRC_TAR:
		return "tar";
	case OBJ_SRC_FILE:
		return "file";
	case OBJ_SRC_NONE:
		break;
	}
	return "object";
}

static int build_object(struct build *b, struct rev_objref *ref, const char *objfield,
			struct err *e)
{
	char field[128], path[PATH_MAX];
	if (str_fmt(field, sizeof(field), "%s.%s", objfield, src_word(ref->src)) < 0)
		return err_set(e, ENAMETOOLONG, "%s: field name too long", objfield);
	const char *src = ref->src_path;
	if (!src || !*src)
		return err_field(e, EINVAL, field, "empty source path");
	if (src[0] != '/' && str_fmt(path, sizeof(path), "%s/%s", b->specdir, src) < 0)
		return err_field(e, ENAMETOOLONG, field, "path too long");
	if (src[0] == '/' && str_fmt(path, sizeof(path), "%s", src) < 0)
		return err_field(e, ENAMETOOLONG, field, "path too long");
	int r;
	if (ref->src == OBJ_SRC_DIR)
		r = build_dir(b, path, ref, field, e);
	else if (ref->src == OBJ_SRC_TAR)
		r = build_tar(b, path, ref, field, e);
	else
		r = check_type(path, S_IFREG, field, e) ?: put_file(b, path, ref, field, e);
	if (r < 0)
		return r;
	ref->present = true;
	ref->src = OBJ_SRC_NONE;
	return 0;
}

static int build_objects(struct build *b, struct revision *rev, struct err *e)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(rev, uses, ARRAY_SIZE(uses));
	for (size_t i = 0; i < n && i < ARRAY_SIZE(uses); i++) {
		/* revision_objects() hands out const views of our own, mutable
		 * revision: it is the one list of where objects live. */
		struct rev_objref *ref = (struct rev_objref *)uses[i].ref;
		if (ref->src == OBJ_SRC_NONE)
			continue; /* already named by digest in the spec */
		int r = build_object(b, ref, uses[i].field, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------- spec and OUT ---------------- */

/* The spec's directory, absolute: relative sources resolve against it, and
 * a path handed to a tool never starts with '-'. */
static int spec_dir(const char *spec_path, char out[PATH_MAX], struct err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(spec_path, '/');
	int dirlen = !slash ? 1 : slash == spec_path ? 1 : (int)(slash - spec_path);
	if (str_fmt(dir, sizeof(dir), "%.*s", dirlen, slash ? spec_path : ".") < 0)
		return err_set(e, ENAMETOOLONG, "%s: path too long", spec_path);
	if (!realpath(dir, out))
		return err_set(e, errno, "%s: %s", dir, strerror(errno));
	return 0;
}

static int spec_load(const char *spec_path, struct build *b, struct revision **out, struct err *e)
{
	_cleanup_free_ char *doc = NULL;
	size_t len;
	int r = file_read_all(AT_FDCWD, spec_path, REV_MAX_DOC, &doc, &len, e);
	if (r < 0)
		return r;
	r = revision_parse(doc, len, REV_PARSE_SPEC, out, e);
	if (r < 0)
		return err_prefix(e, "%s", spec_path);
	return spec_dir(spec_path, b->specdir, e);
}

/* Create OUT if needed and drop its old revision (signature first). */
static int out_prepare(const char *outdir, int *dirfd, struct err *e)
{
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		return err_set(e, errno, "create %s: %s", outdir, strerror(errno));
	int fd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "open %s: %s", outdir, strerror(errno));
	int r = storage_unlink_durable(fd, "revision.sig", 0, e);
	if (r == 0)
		r = storage_unlink_durable(fd, "revision.json", 0, e);
	if (r < 0) {
		close(fd);
		return err_prefix(e, "%s", outdir);
	}
	*dirfd = fd;
	return 0;
}

static int write_revision(int dirfd, const struct revision *rev, const char *outdir,
			  struct err *e)
{
	struct jw w;
	jw_init_dyn(&w, true);
	int r = revision_write(rev, &w, e);
	if (r == 0)
		r = jw_finish(&w, e);
	if (r == 0)
		r = storage_write_durable(dirfd, "revision.json", w.buf, w.len, 0644, e);
	jw_free(&w);
	return r < 0 ? err_prefix(e, "%s/revision.json", outdir) : 0;
}

int pack_build(const char *spec_path, const char *outdir, struct err *e)
{
	_cleanup_(revision_freep) struct revision *rev = NULL;
	_cleanup_(storage_closep) struct storage *store = NULL;
	_cleanup_close_ int outfd = -1;
	struct build b = {.tmp = ""};
	int r = spec_load(spec_path, &b, &rev, e);
	if (r < 0)
		return r;
	r = out_prepare(outdir, &outfd, e);
	if (r < 0)
		return r;
	if (!realpath(outdir, b.out))
		return err_set(e, errno, "%s: %s", outdir, strerror(errno));
	r = storage_open(outdir, &store, e);
	if (r < 0)
		return err_prefix(e, "%s", outdir);
	b.store = store;
	r = tmp_create(&b, e);
	if (r == 0)
		r = build_objects(&b, rev, e);
	tmp_remove(&b);
	if (r < 0)
		return r;
	return write_revision(outfd, rev, outdir, e);
}
