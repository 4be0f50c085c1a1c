/* test/bench/verify/driver.c — the store side of the verify benchmark.
 *   driver put ROOT FILE HEX SIZE      put FILE into the store at ROOT
 *   driver verify ROOT HEX SIZE        storage_object_verify, exit 0 if intact
 *   driver path ROOT HEX               print the object's path
 * Compiled by ./run against the build's archives; not part of the Makefile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/digest.h"
#include "storage/storage.h"

static int usage(void)
{
	fprintf(stderr, "usage: driver put ROOT FILE HEX SIZE | verify ROOT HEX SIZE | path ROOT HEX\n");
	return 2;
}

static int run(int argc, char **argv, struct storage *s, const struct digest *d, struct err *e)
{
	if (strcmp(argv[1], "path") == 0 && argc == 4) {
		char path[4096];
		if (storage_object_path(s, d, path, sizeof(path)) < 0)
			return err_set(e, ENAMETOOLONG, "path too long");
		printf("%s\n", path);
		return 0;
	}
	if (strcmp(argv[1], "verify") == 0 && argc == 5)
		return storage_object_verify(s, d, strtoull(argv[4], NULL, 10), e);
	if (strcmp(argv[1], "put") == 0 && argc == 6) {
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return err_set(e, errno, "open %s: %s", argv[3], strerror(errno));
		int r = storage_object_put_fd(s, fd, d, strtoull(argv[5], NULL, 10), e);
		close(fd);
		return r;
	}
	return err_set(e, EINVAL, "bad arguments");
}

int main(int argc, char **argv)
{
	struct err e = ERR_INIT;
	struct digest d;
	struct storage *s;
	if (argc < 4)
		return usage();
	const char *hex = argv[argc == 6 ? 4 : 3];
	if (digest_parse_hex(hex, strlen(hex), &d) < 0)
		return usage();
	if (storage_open(argv[2], &s, &e) < 0 || run(argc, argv, s, &d, &e) < 0) {
		fprintf(stderr, "driver %s: %s\n", argv[1], e.msg);
		return 1;
	}
	storage_close(s);
	return 0;
}
