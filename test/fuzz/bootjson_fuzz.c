/* test/fuzz/bootjson_fuzz.c — the boot state as cairn reads it back at every
 * boot, on hostile bytes, through two backends of trails/bootenv.c:
 *   byte 0 even: the rest is <storage>/boot.json ("file": trails_boot_read);
 *   byte 0 odd:  the rest is a GRUB environment block ("grub:<path>"),
 *                cut or padded with '#' to its 1024 bytes.
 * Both files live in a temp dir (on /dev/shm when there is one: fsync is
 * cheap there) made once per process and removed at exit; nothing needs
 * root.
 *
 * Checked on every input:
 *   - an error returns -code with a message;
 *   - a state that reads has revisions within 0..2^53-1; boot.json's tries
 *     within 0..1000; grub's tries 0 or 1, and 1 only with a try;
 *   - the state written back by the backend reads back equal; for grub,
 *     writing what was read always fits (cairn's own lines are never
 *     longer than what they replace), keeps every other line of the block
 *     in order and byte for byte, and is idempotent; a second, different
 *     state either does not fit (ENOSPC) or reads back equal too. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_NAME "bootjson_fuzz"
#include "fuzz_check.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/storage.h"
#include "trails/trails_internal.h"

#define GRUB_SIZE 1024
#define GRUB_HEAD "# GRUB Environment Block\n"

struct fz {
	char dir[64];
	char grubenv[96];
	struct storage *st;
	struct bootenv *file, *grub;
};

static struct fz fz;

static void check_error(int rc, const struct err *e)
{
	if (!err_reported(rc, e))
		die("error not reported", e);
}

static void fz_cleanup(void)
{
	struct err e = ERR_INIT;
	bootenv_close(fz.file);
	bootenv_close(fz.grub);
	storage_close(fz.st);
	if (storage_rmtree(fz.dir, &e) < 0)
		fprintf(stderr, "bootjson_fuzz: %s\n", e.msg);
}

static void fz_setup(void)
{
	struct err e = ERR_INIT;
	char p[128], spec[128];
	snprintf(fz.dir, sizeof(fz.dir), "%s/bootjson-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fz.dir))
		abort();
	atexit(fz_cleanup);
	snprintf(p, sizeof(p), "%s/storage", fz.dir);
	snprintf(fz.grubenv, sizeof(fz.grubenv), "%s/grubenv", fz.dir);
	snprintf(spec, sizeof(spec), "grub:%s", fz.grubenv);
	if (mkdir(p, 0755) < 0 || storage_open(p, &fz.st, &e) < 0 ||
	    bootenv_open("file", fz.st, &fz.file, &e) < 0 ||
	    bootenv_open(spec, fz.st, &fz.grub, &e) < 0)
		die("setup", &e);
}

/* Plain (not durable) write of the input: the fuzzer's own fixture. */
static void put_file(int dirfd, const char *path, const void *data, size_t len)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (len && write_all(fd, data, len) < 0) || close(fd) < 0)
		abort();
}

static bool state_eq(const struct boot_state *a, const struct boot_state *b)
{
	return a->committed == b->committed && a->try_rev == b->try_rev && a->tries == b->tries;
}

/* Write bs, read it back: equal. -ENOSPC (grub, when allowed) is passed up. */
static int write_read(struct bootenv *b, const struct boot_state *bs, bool nospc_ok)
{
	struct err e = ERR_INIT;
	struct boot_state back;
	int rc = bootenv_write(b, bs, &e);
	if (rc == -ENOSPC && nospc_ok) {
		check_error(rc, &e);
		return rc;
	}
	if (rc < 0)
		die("writing back a state that was read", &e);
	if (bootenv_read(b, &back, &e) < 0)
		die("what was written does not read", &e);
	if (!state_eq(bs, &back)) {
		fprintf(stderr, "bootjson_fuzz: wrote %llu/%llu/%u, read %llu/%llu/%u\n",
			(unsigned long long)bs->committed, (unsigned long long)bs->try_rev,
			bs->tries, (unsigned long long)back.committed,
			(unsigned long long)back.try_rev, back.tries);
		die("round trip changed the state", NULL);
	}
	return 0;
}

static void check_bounds(const struct boot_state *bs, unsigned max_tries)
{
	if (bs->committed > REV_MAX_NUMBER || bs->try_rev > REV_MAX_NUMBER ||
	    bs->tries > max_tries)
		die("boot state out of bounds", NULL);
}

static void run_file(const uint8_t *data, size_t len)
{
	struct err e = ERR_INIT;
	struct boot_state bs;
	put_file(storage_root_fd(fz.st), "boot.json", data, len);
	int rc = bootenv_read(fz.file, &bs, &e);
	if (rc < 0) {
		check_error(rc, &e);
		return;
	}
	check_bounds(&bs, 1000);
	write_read(fz.file, &bs, false);
	struct boot_state other = {bs.try_rev, bs.committed, bs.tries ? bs.tries - 1 : 1};
	write_read(fz.file, &other, false);
}

/* ---- grub ---- */

static bool cairn_line(const char *line, size_t n)
{
	static const char *const names[] = {"cairn_rev=", "cairn_try=", "cairn_trying="};
	for (size_t i = 0; i < 3; i++)
		if (n >= strlen(names[i]) && memcmp(line, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* Every line of a valid block but cairn's, raw, concatenated. */
static size_t foreign_lines(const char *blk, char *out)
{
	size_t n = 0, p = strlen(GRUB_HEAD);
	while (p < GRUB_SIZE) {
		size_t q = p;
		while (q < GRUB_SIZE && blk[q] != '\n')
			q += blk[q] == '\\' ? 2 : 1;
		if (q >= GRUB_SIZE)
			break; /* the '#' padding */
		if (!cairn_line(blk + p, q - p)) {
			memcpy(out + n, blk + p, q + 1 - p);
			n += q + 1 - p;
		}
		p = q + 1;
	}
	return n;
}

static void read_block(char *out)
{
	int fd = open(fz.grubenv, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size != GRUB_SIZE ||
	    read_all(fd, out, GRUB_SIZE) != GRUB_SIZE)
		die("the written grubenv is not a 1024-byte file", NULL);
	close(fd);
}

static void run_grub(const uint8_t *data, size_t len)
{
	static char in[GRUB_SIZE], b1[GRUB_SIZE], b2[GRUB_SIZE];
	static char f_in[GRUB_SIZE], f_out[GRUB_SIZE];
	struct err e = ERR_INIT;
	struct boot_state bs;
	memset(in, '#', sizeof(in));
	memcpy(in, data, len < GRUB_SIZE ? len : GRUB_SIZE);
	put_file(AT_FDCWD, fz.grubenv, in, GRUB_SIZE);
	int rc = bootenv_read(fz.grub, &bs, &e);
	if (rc < 0) {
		check_error(rc, &e);
		return;
	}
	check_bounds(&bs, 1);
	if (bs.tries && !bs.try_rev)
		die("tries without a try", NULL);
	write_read(fz.grub, &bs, false);
	read_block(b1);
	size_t n_in = foreign_lines(in, f_in), n_out = foreign_lines(b1, f_out);
	if (n_in != n_out || memcmp(f_in, f_out, n_in) != 0)
		die("the write lost or changed a line that is not cairn's", NULL);
	write_read(fz.grub, &bs, false);
	read_block(b2);
	if (memcmp(b1, b2, GRUB_SIZE) != 0)
		die("writing the same state twice changed the block", NULL);
	struct boot_state other = {bs.try_rev ? bs.try_rev : 1, bs.committed + 1, !bs.tries};
	if (other.committed > REV_MAX_NUMBER)
		other.committed = 1;
	write_read(fz.grub, &other, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!fz.st)
		fz_setup();
	log_set_level(LOGL_ERR);
	if (data[0] & 1)
		run_grub(data + 1, size - 1);
	else
		run_file(data + 1, size - 1);
	return 0;
}
