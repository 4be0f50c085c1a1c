/* trails/hub_import.c — a staged object into the store, verified.
 *
 * Runs while the helper downloads: each step copies what the staging file
 * holds beyond what was copied (hashing it on the way: the store's writer),
 * then punches the copied range out of the staging file, so the object
 * takes its size on disk once, not twice. A staging file with a hole at
 * its start was being imported when cairn stopped: it cannot be resumed
 * (hub_stage_sweep removes it). The commit verifies digest and size: a
 * helper or hub that lied gets nothing into the store. */
#define _GNU_SOURCE
#define LOG_MODULE "hub"
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../storage/storage.h"
#include "hub_internal.h"

#define COPY_CHUNK (64u * 1024)

struct hub_import {
	struct trails *tr;
	struct digest d;
	uint64_t size, done, punched;
	int fd;
	bool no_punch; /* the filesystem cannot: the staging copy stays whole */
	struct obj_writer *w;
	char name[HUB_PART_NAME_LEN + 1];
};

void hub_import_free(struct hub_import *im)
{
	if (!im)
		return;
	if (im->w)
		storage_object_abort(im->w);
	if (im->fd >= 0)
		close(im->fd);
	free(im);
}
DEFINE_FREEP(struct hub_import, hub_import_free)

int hub_import_begin(struct trails *tr, const struct digest *d, uint64_t size,
		     struct hub_import **out, struct err *e)
{
	_cleanup_(hub_import_freep) struct hub_import *im = calloc(1, sizeof(*im));
	if (!im)
		return err_set(e, ENOMEM, "import: out of memory");
	im->fd = -1;
	im->tr = tr;
	im->d = *d;
	im->size = size;
	hub_part_name(d, im->name);
	int r = trails_object_begin(tr, d, size, &im->w, e);
	if (r == -EEXIST)
		return 1;
	if (r < 0)
		return r;
	*out = TAKE_PTR(im);
	return 0;
}

bool hub_import_is(const struct hub_import *im, const struct digest *d)
{
	return im && digest_eq(&im->d, d);
}

uint64_t hub_import_done(const struct hub_import *im)
{
	return im ? im->done : 0;
}

bool hub_import_punched(const struct hub_import *im)
{
	return im && im->punched > 0;
}

static void import_punch(struct hub_import *im)
{
	if (im->no_punch || im->done <= im->punched)
		return;
	if (fallocate(im->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)im->punched,
		      (off_t)(im->done - im->punched)) < 0) {
		log_info("staging %s: cannot punch holes (%s): the staged copy stays", im->name,
			 strerror(errno));
		im->no_punch = true;
		return;
	}
	im->punched = im->done;
}

static int import_commit(struct hub_import *im, bool *finished, struct err *e)
{
	struct obj_writer *w = TAKE_PTR(im->w);
	int r = storage_object_commit(w, e); /* frees w whatever happens */
	if (r < 0)
		return r;
	trails_object_stored(im->tr, &im->d);
	*finished = true;
	return 0;
}

/* Bytes in the staging file now (opened on first use, read-write: root may
 * punch a file of the helper's). */
static int import_avail(struct hub_import *im, int stagefd, uid_t uid, uint64_t *avail,
			struct err *e)
{
	struct stat st;
	*avail = 0;
	if (im->fd < 0) {
		uint64_t size;
		int r = hub_stage_open(stagefd, im->name, uid, UINT64_MAX, true, &im->fd, &size, e);
		if (r == -ENOENT)
			return 0; /* the helper has not created it yet */
		if (r < 0)
			return r;
	}
	if (fstat(im->fd, &st) < 0)
		return err_set(e, errno, "staging %s: %s", im->name, strerror(errno));
	*avail = (uint64_t)st.st_size < im->size ? (uint64_t)st.st_size : im->size;
	return 0;
}

int hub_import_step(struct hub_import *im, int stagefd, uid_t uid, size_t budget, bool *more,
		    bool *finished, struct err *e)
{
	static char buf[COPY_CHUNK]; /* the loop is one thread; steady state allocates nothing */
	uint64_t avail = 0;
	*more = *finished = false;
	int r = import_avail(im, stagefd, uid, &avail, e);
	if (r < 0)
		return r;
	if (avail < im->punched) /* the helper restarted the file (a 200): punch again from 0 */
		im->punched = 0;
	for (size_t moved = 0; moved < budget && im->done < avail;) {
		size_t want = avail - im->done < sizeof(buf) ? (size_t)(avail - im->done) : sizeof(buf);
		ssize_t n = pread(im->fd, buf, want, (off_t)im->done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(e, errno, "staging %s: read: %s", im->name, strerror(errno));
		if (n == 0)
			break; /* shrank under us: wait for it to grow again */
		if ((r = storage_object_write(im->w, buf, (size_t)n, e)) < 0)
			return r;
		im->done += (uint64_t)n;
		moved += (size_t)n;
	}
	import_punch(im);
	if (im->done == im->size)
		return import_commit(im, finished, e);
	*more = im->done < avail;
	return 0;
}
