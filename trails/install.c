/* trails/install.c — installing and loading revisions in the store.
 *
 * Install order (each step only after the previous one succeeded):
 *   1. signature over the exact bytes of revision.json, then schema;
 *   2. every object put through the store's verifying put (an object
 *      already in the store was verified when it got its name);
 *   3. the BSP's boot files placed for a bootloader (trails/bsp.c: boot/<rev>/,
 *      whatever the device's bootloader: provisioning does not know it);
 *   4. revision.json and revision.sig written into a staging directory
 *      tmp/trail-<rev>-<pid>/, then renamed to trails/<rev>/ in one
 *      durable rename.
 * A crash before step 4's rename leaves only verified objects, boot files
 * (swept by the next placement: trails_bsp_sweep) and a stale staging dir
 * (removed on the next install of that revision); after it, the
 * revision is complete. Re-installing identical bytes is a no-op; other
 * bytes under an installed number are refused. */
#define LOG_MODULE "trails"
#include "trails.h"
#include "trails_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"

DEFINE_FREEP(struct revision, revision_free)
DEFINE_FREEP(struct storage, storage_close)

struct rev_files {
	char *doc;
	size_t doclen;
	char *sig;
	size_t siglen;
};

static void rev_files_free(struct rev_files *f)
{
	free(f->doc);
	free(f->sig);
	f->doc = f->sig = NULL;
}

static int rev_files_read(int dirfd, struct rev_files *f, struct err *e)
{
	memset(f, 0, sizeof(*f));
	int r = file_read_all(dirfd, "revision.json", REV_MAX_DOC, &f->doc, &f->doclen, e);
	if (r < 0)
		return r;
	r = file_read_all(dirfd, "revision.sig", SIG_MAX_FILE, &f->sig, &f->siglen, e);
	if (r < 0)
		rev_files_free(f);
	return r;
}

/* Signature first (it covers the exact bytes), then the schema. */
static int rev_files_check(const struct rev_files *f, const struct trust *t, struct revision **out,
			   struct err *e)
{
	int r = sig_verify(t, f->doc, f->doclen, f->sig, f->siglen, NULL, e);
	if (r < 0)
		return err_prefix(e, "signature");
	r = revision_parse(f->doc, f->doclen, REV_PARSE_DEVICE, out, e);
	if (r < 0)
		return err_prefix(e, "revision.json");
	return 0;
}

static int install_object(struct storage *s, struct storage *src, const struct rev_object_use *u,
			  struct err *e)
{
	if (storage_object_has(s, &u->ref->digest))
		return 0;
	_cleanup_close_ int fd = -1;
	int r = storage_object_open(src, &u->ref->digest, &fd, e);
	if (r < 0)
		return r;
	return storage_object_put_fd(s, fd, &u->ref->digest, u->ref->size, e);
}

static int install_objects(struct storage *s, const char *dir, const struct revision *rev,
			   struct err *e)
{
	_cleanup_(storage_closep) struct storage *src = NULL;
	int r = storage_open(dir, &src, e);
	if (r < 0)
		return r;
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(rev, uses, ARRAY_SIZE(uses));
	for (size_t i = 0; i < n; i++) {
		r = install_object(s, src, &uses[i], e);
		if (r < 0) {
			char id[DIGEST_STR_LEN + 1];
			digest_format(&uses[i].ref->digest, id);
			return err_prefix(e, "object %s (%s)", id, uses[i].field);
		}
	}
	return 0;
}

/* Same bytes already installed under trails/<rev>? 1 yes, 0 absent, <0 differs. */
static int installed_same(int trailsfd, const char *name, const struct rev_files *f, struct err *e)
{
	_cleanup_close_ int dfd = openat(trailsfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT)
		return 0;
	if (dfd < 0)
		return err_set(e, errno, "open trails/%s: %s", name, strerror(errno));
	struct rev_files old;
	int r = rev_files_read(dfd, &old, e);
	if (r < 0)
		return err_prefix(e, "installed revision %s", name);
	bool same = old.doclen == f->doclen && memcmp(old.doc, f->doc, f->doclen) == 0;
	rev_files_free(&old);
	if (!same)
		return err_set(e, EEXIST, "revision %s is already installed with other content", name);
	return 1;
}

/* Best effort: a stale staging dir is harmless and removed next time. */
static void stage_remove(struct storage *s, const char *stage)
{
	char abs[4096];
	struct err ignored = ERR_INIT;
	if (str_fmt(abs, sizeof(abs), "%s/tmp/%s", storage_root_path(s), stage) == 0 &&
	    access(abs, F_OK) == 0)
		(void)!storage_rmtree(abs, &ignored);
}

static int stage_files(struct storage *s, const char *stage, const struct rev_files *f,
		       struct err *e)
{
	int root = storage_root_fd(s);
	char path[64];
	int r = str_fmt(path, sizeof(path), "tmp/%s", stage);
	if (r < 0)
		return err_set(e, -r, "staging path too long");
	stage_remove(s, stage);
	r = storage_mkdir_durable(root, path, 0755, e);
	if (r < 0)
		return r;
	_cleanup_close_ int dfd = openat(root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open %s: %s", path, strerror(errno));
	r = storage_write_durable(dfd, "revision.json", f->doc, f->doclen, 0644, e);
	if (r < 0)
		return r;
	return storage_write_durable(dfd, "revision.sig", f->sig, f->siglen, 0644, e);
}

static int place_trail(struct storage *s, uint64_t number, const struct rev_files *f,
		       struct err *e)
{
	int root = storage_root_fd(s);
	int r = storage_mkdir_durable(root, "trails", 0755, e);
	if (r < 0)
		return r;
	_cleanup_close_ int tfd = openat(root, "trails", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return err_set(e, errno, "open trails/: %s", strerror(errno));
	char name[24], stage[64];
	if (str_fmt(name, sizeof(name), "%llu", (unsigned long long)number) < 0 ||
	    str_fmt(stage, sizeof(stage), "trail-%s-%d", name, (int)getpid()) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	r = installed_same(tfd, name, f, e);
	if (r != 0)
		return r < 0 ? r : 0;
	char stagepath[80];
	if (str_fmt(stagepath, sizeof(stagepath), "tmp/%s", stage) < 0)
		return err_set(e, ENAMETOOLONG, "staging path too long");
	r = stage_files(s, stage, f, e);
	if (r >= 0)
		r = storage_rename_durable(root, stagepath, tfd, name, e);
	if (r < 0)
		stage_remove(s, stage);
	return r;
}

int trails_install_dir(struct storage *s, const char *dir, const struct trust *t, uint64_t *rev,
		       struct err *e)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "install %s: %s", dir, strerror(errno));
	struct rev_files f;
	int r = rev_files_read(dfd, &f, e);
	if (r < 0)
		return err_prefix(e, "install %s", dir);
	_cleanup_(revision_freep) struct revision *parsed = NULL;
	r = rev_files_check(&f, t, &parsed, e);
	if (r >= 0)
		r = install_objects(s, dir, parsed, e);
	if (r >= 0)
		r = trails_bsp_place(s, parsed, e);
	if (r >= 0)
		r = place_trail(s, parsed->number, &f, e);
	rev_files_free(&f);
	if (r < 0)
		return err_prefix(e, "install %s", dir);
	if (rev)
		*rev = parsed->number;
	return 0;
}

int trails_load_doc(struct storage *s, uint64_t rev, const struct trust *t, struct revision **out,
		    struct err *e)
{
	char path[40];
	if (str_fmt(path, sizeof(path), "trails/%llu", (unsigned long long)rev) < 0)
		return err_set(e, ENAMETOOLONG, "revision number too long");
	_cleanup_close_ int dfd =
		openat(storage_root_fd(s), path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return err_set(e, errno, "revision %llu: %s: %s", (unsigned long long)rev, path,
			       errno == ENOENT ? "not installed" : strerror(errno));
	struct rev_files f;
	int r = rev_files_read(dfd, &f, e);
	_cleanup_(revision_freep) struct revision *parsed = NULL;
	if (r >= 0)
		r = rev_files_check(&f, t, &parsed, e);
	rev_files_free(&f);
	if (r >= 0 && parsed->number != rev)
		r = err_field(e, EINVAL, "revision", "is %llu, but it is installed as %llu",
			      (unsigned long long)parsed->number, (unsigned long long)rev);
	if (r < 0)
		return err_prefix(e, "revision %llu", (unsigned long long)rev);
	*out = TAKE_PTR(parsed);
	return 0;
}

/* Each object: present with its size and, when `hash`, its digest. */
static int objects_check(struct storage *s, const struct revision *r, bool hash, struct err *e)
{
	struct rev_object_use uses[REV_MAX_OBJECTS];
	size_t n = revision_objects(r, uses, ARRAY_SIZE(uses));
	int ret = 0;
	for (size_t i = 0; i < n && ret >= 0; i++) {
		const struct rev_objref *ref = uses[i].ref;
		uint64_t size = 0;
		if (hash)
			ret = storage_object_verify(s, &ref->digest, ref->size, e);
		else if ((ret = storage_object_size(s, &ref->digest, &size, e)) >= 0 &&
			 size != ref->size)
			ret = err_set(e, EFBIG, "size %llu != declared %llu",
				      (unsigned long long)size, (unsigned long long)ref->size);
		if (ret < 0) {
			char id[DIGEST_STR_LEN + 1];
			digest_format(&ref->digest, id);
			err_prefix(e, "object %s (%s)", id, uses[i].field);
		}
	}
	return ret < 0 ? err_prefix(e, "revision %llu", (unsigned long long)r->number) : 0;
}

int trails_objects_present(struct storage *s, const struct revision *r, struct err *e)
{
	return objects_check(s, r, false, e);
}

int trails_objects_verify(struct storage *s, const struct revision *r, struct err *e)
{
	return objects_check(s, r, true, e);
}

int trails_load(struct storage *s, uint64_t rev, const struct trust *t, struct revision **out,
		struct err *e)
{
	_cleanup_(revision_freep) struct revision *r = NULL;
	int ret = trails_load_doc(s, rev, t, &r, e);
	if (ret >= 0)
		ret = trails_objects_verify(s, r, e);
	if (ret < 0)
		return ret;
	*out = TAKE_PTR(r);
	return 0;
}
