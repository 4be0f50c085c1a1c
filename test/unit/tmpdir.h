/* test/unit/tmpdir.h — a private directory per test under /tmp, removed
 * whole in the teardown (files, directories, symlinks; never through a
 * symlink, never across a mount point when asked). Header-only: each test
 * binary is one .c file. */
#ifndef CAIRN_TEST_TMPDIR_H
#define CAIRN_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int tmpdir_rm_one(const char *path, const struct stat *st, int flag,
				struct FTW *ftw)
{
	(void)st, (void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* /tmp/cairn-<what>-test-XXXXXX, created; 0 or -1. */
static inline int tmpdir_make(char *buf, size_t cap, const char *what)
{
	if (snprintf(buf, cap, "/tmp/cairn-%s-test-XXXXXX", what) >= (int)cap)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

/* Remove dir and everything below it (nothing when dir is ""); 0 or -1.
 * extra_flags: FTW_MOUNT to stay on dir's filesystem. */
static inline int tmpdir_remove(const char *dir, int extra_flags)
{
	return dir[0] ? nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS | extra_flags) : 0;
}

#endif
