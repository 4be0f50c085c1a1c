/* test/fuzz/replay.c — run a libFuzzer target's corpus as an ordinary test
 * (built with gcc, no fuzzer runtime). Usage: replay DIR|FILE...
 * Each input goes through LLVMFuzzerTestOneInput once; a crash or sanitizer
 * report fails the test. An empty corpus is an error: a replay that runs
 * nothing cannot fail. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	static uint8_t buf[4 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* a private copy of exactly n bytes, so ASan sees overreads */
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return -1;
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			count++;
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, alphasort);
		if (n < 0) {
			perror(argv[i]);
			return 1;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			if (names[k]->d_name[0] != '.' &&
			    snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name) <
				    (int)sizeof(path)) {
				if (run_file(path) < 0)
					return 1;
				count++;
			}
			free(names[k]);
		}
		free(names);
	}
	if (count == 0) {
		fprintf(stderr, "replay: no corpus inputs found\n");
		return 1;
	}
	printf("replay: %u inputs, no crash\n", count);
	return 0;
}
