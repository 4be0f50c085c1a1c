/* trails/hub_stage.c — the staging directory <storage>/tmp/hub and the
 * files the helper leaves there. The directory belongs to the helper's uid:
 * whatever is in it may have been put there by a hostile process, so every
 * file is opened with O_NOFOLLOW and checked (regular, one link, the
 * helper's uid, a size cap) before the orchestrator reads it; objects are
 * then hashed on their way into the store (hub_import.c). */
#define _GNU_SOURCE
#define LOG_MODULE "hub"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "hub_internal.h"

#define STAGE_MODE 0700

static int open_dir(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int hub_stage_prepare(int rootfd, uid_t uid, gid_t gid, int *out, struct err *e)
{
	if (mkdirat(rootfd, HUB_STAGE, STAGE_MODE) < 0 && errno != EEXIST)
		return err_set(e, errno, "mkdir %s: %s", HUB_STAGE, strerror(errno));
	_cleanup_close_ int fd = open_dir(rootfd, HUB_STAGE);
	if (fd < 0)
		return err_set(e, errno, "open %s: %s", HUB_STAGE,
			       errno == ENOTDIR || errno == ELOOP ? "not a directory"
								  : strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "stat %s: %s", HUB_STAGE, strerror(errno));
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
		return err_set(e, errno, "chown %s to %u: %s", HUB_STAGE, (unsigned)uid,
			       strerror(errno));
	if ((st.st_mode & 07777) != STAGE_MODE && fchmod(fd, STAGE_MODE) < 0)
		return err_set(e, errno, "chmod %s: %s", HUB_STAGE, strerror(errno));
	*out = TAKE_FD(fd);
	return 0;
}

static bool hex_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool hub_stage_name_valid(const char *name)
{
	if (strcmp(name, HUB_DESIRED_FILE) == 0)
		return true;
	size_t n = strnlen(name, HUB_PART_NAME_LEN + 1);
	return n == HUB_PART_NAME_LEN && hex_lower(name, DIGEST_HEX_LEN) &&
	       strcmp(name + DIGEST_HEX_LEN, HUB_PART_SUFFIX) == 0;
}

void hub_part_name(const struct digest *d, char out[HUB_PART_NAME_LEN + 1])
{
	hex_encode(d->b, DIGEST_LEN, out);
	memcpy(out + DIGEST_HEX_LEN, HUB_PART_SUFFIX, sizeof(HUB_PART_SUFFIX));
}

int hub_stage_open(int stagefd, const char *name, uid_t uid, uint64_t max, bool rw, int *fd,
		   uint64_t *size, struct err *e)
{
	if (!hub_stage_name_valid(name))
		return err_set(e, EINVAL, "staging: '%s' is not a staging file name", name);
	_cleanup_close_ int f = openat(stagefd, name,
				       (rw ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
					       O_CLOEXEC);
	if (f < 0)
		return err_set(e, errno, "staging %s: %s", name,
			       errno == ELOOP ? "a symlink" : strerror(errno));
	struct stat st;
	if (fstat(f, &st) < 0)
		return err_set(e, errno, "staging %s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(e, EINVAL, "staging %s: not a regular file", name);
	if (st.st_nlink != 1)
		return err_set(e, EINVAL, "staging %s: %lu links, want 1", name,
			       (unsigned long)st.st_nlink);
	if (st.st_uid != uid)
		return err_set(e, EPERM, "staging %s: owned by uid %u, not the helper's %u", name,
			       (unsigned)st.st_uid, (unsigned)uid);
	if ((uint64_t)st.st_size > max)
		return err_set(e, EFBIG, "staging %s: %lld bytes, more than the %llu allowed", name,
			       (long long)st.st_size, (unsigned long long)max);
	*size = (uint64_t)st.st_size;
	*fd = TAKE_FD(f);
	return 0;
}

uint64_t hub_stage_size(int stagefd, const char *name, uid_t uid)
{
	_cleanup_close_ int fd = -1;
	uint64_t size = 0;
	if (hub_stage_open(stagefd, name, uid, UINT64_MAX, false, &fd, &size, NULL) < 0)
		return 0;
	return size;
}

void hub_stage_remove(int stagefd, const char *name)
{
	if (unlinkat(stagefd, name, 0) < 0 && errno != ENOENT)
		log_warn("staging %s: cannot remove: %s", name, strerror(errno));
}

static bool kept(const char *name, const struct digest *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++) {
		char part[HUB_PART_NAME_LEN + 1];
		hub_part_name(&keep[i], part);
		if (strcmp(part, name) == 0)
			return true;
	}
	return false;
}

/* A staged object that can be continued: valid, and no hole at its start
 * (an import had punched it: its first bytes are gone). */
static bool resumable(int stagefd, const char *name, uid_t uid)
{
	_cleanup_close_ int fd = -1;
	uint64_t size = 0;
	if (hub_stage_open(stagefd, name, uid, UINT64_MAX, false, &fd, &size, NULL) < 0)
		return false;
	return size == 0 || lseek(fd, 0, SEEK_DATA) == 0;
}

void hub_stage_sweep(int stagefd, uid_t uid, const struct digest *keep, size_t nkeep,
		     const struct digest *active)
{
	char busy[HUB_PART_NAME_LEN + 1] = "";
	if (active)
		hub_part_name(active, busy);
	int dfd = openat(stagefd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *dir = dfd < 0 ? NULL : fdopendir(dfd);
	if (!dir) {
		if (dfd >= 0)
			close(dfd);
		log_warn("staging: cannot list: %s", strerror(errno));
		return;
	}
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, busy) == 0)
			continue;
		if ((keep ? kept(de->d_name, keep, nkeep)
			  : strcmp(de->d_name, HUB_DESIRED_FILE) != 0 && hub_stage_name_valid(de->d_name)) &&
		    resumable(stagefd, de->d_name, uid))
			continue;
		if (unlinkat(stagefd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR && unlinkat(stagefd, de->d_name, AT_REMOVEDIR) == 0)
			continue;
		log_warn("staging: cannot remove '%.64s': %s", de->d_name, strerror(errno));
	}
}
