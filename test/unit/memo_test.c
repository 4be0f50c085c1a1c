/* test/unit/memo_test.c — the boot memo of storage_object_verify.
 * While the memo is on, an object hashed (or vouched for) once is not hashed
 * again while its inode is unchanged; any change to the file (which moves its
 * ctime) makes verify hash it again; turning the memo off forgets it all.
 * "Not hashed" is seen by corrupting an object behind the memo's back in a
 * way it is meant to trust (a vouch for bytes that are already bad). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "lib/cleanup.h"
#include "lib/digest.h"
#include "lib/util.h"
#include "storage/storage.h"

#define LEN 100000

struct fixture {
	char dir[64];
	struct storage *s;
	struct digest d;
	char path[256]; /* the object's file */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	if (tmpdir_make(f->dir, sizeof(f->dir), "memo") < 0 || storage_open(f->dir, &f->s, NULL) < 0)
		return -1;
	static uint8_t data[LEN];
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	sha256_buf(data, LEN, &f->d);
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	/* the pipe holds 64 KiB: write from a child */
	if (fork() == 0) {
		close(pfd[0]);
		_exit(write_all(pfd[1], data, LEN) < 0);
	}
	close(pfd[1]);
	int r = storage_object_put_fd(f->s, pfd[0], &f->d, LEN, NULL);
	close(pfd[0]);
	storage_boot_memo(false);
	return r < 0 || storage_object_path(f->s, &f->d, f->path, sizeof(f->path)) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_boot_memo(false);
	storage_close(f->s);
	int r = tmpdir_remove(f->dir, 0);
	free(f);
	return r;
}

/* Flip one byte of the object in place (the store keeps it 0444). */
static void corrupt(const char *path)
{
	assert_int_equal(chmod(path, 0644), 0);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, LEN / 2), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, LEN / 2), 1);
	close(fd);
	assert_int_equal(chmod(path, 0444), 0);
}

static int verify(struct fixture *f)
{
	struct err e = ERR_INIT;
	return storage_object_verify(f->s, &f->d, LEN, &e);
}

/* A change after the hash makes the next verify hash again. */
static void test_changed_object_is_hashed_again(void **state)
{
	struct fixture *f = *state;
	storage_boot_memo(true);
	assert_int_equal(verify(f), 0);
	assert_int_equal(verify(f), 0);
	/* ctime ticks with the kernel's coarse clock (a jiffy, up to 4 ms on
	 * 6.1): a change within the same tick as the hash would keep it */
	usleep(20 * 1000);
	corrupt(f->path);
	assert_int_equal(verify(f), -EBADMSG);
}

/* A vouched-for object is not hashed while the memo is on, and is again
 * once it is off (then the corruption shows). */
static void test_vouch_holds_until_the_memo_is_off(void **state)
{
	struct fixture *f = *state;
	struct err e = ERR_INIT;
	corrupt(f->path);
	storage_boot_memo(true);
	assert_int_equal(storage_object_vouch(f->s, &f->d, LEN, &e), 0);
	assert_int_equal(verify(f), 0); /* trusted, not hashed */
	storage_boot_memo(false);
	assert_int_equal(verify(f), -EBADMSG);
	storage_boot_memo(true); /* on again: it starts empty */
	assert_int_equal(verify(f), -EBADMSG);
}

/* With the memo off, a vouch records nothing; a vouch still checks that the
 * object is there with its size. */
static void test_vouch_checks_presence_and_size(void **state)
{
	struct fixture *f = *state;
	struct err e = ERR_INIT;
	corrupt(f->path);
	assert_int_equal(storage_object_vouch(f->s, &f->d, LEN, &e), 0);
	assert_int_equal(verify(f), -EBADMSG);
	storage_boot_memo(true);
	assert_int_equal(storage_object_vouch(f->s, &f->d, LEN + 1, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "size"));
	assert_int_equal(verify(f), -EBADMSG); /* the failed vouch recorded nothing */
	struct digest other;
	sha256_buf("other", 5, &other);
	assert_int_equal(storage_object_vouch(f->s, &other, 5, &e), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_changed_object_is_hashed_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vouch_holds_until_the_memo_is_off, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vouch_checks_presence_and_size, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
