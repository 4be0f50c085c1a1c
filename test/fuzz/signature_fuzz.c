/* test/fuzz/signature_fuzz.c — the input is a revision.sig, verified with
 * sig_verify() over a fixed document against a fixed trust (one P-256 key).
 * The corpus in test/fuzz/corpus/signature/ holds one valid signature by
 * that key (made with openssl; the private key was thrown away), so the
 * fuzzer starts from the path that reaches ECDSA verification.
 * The input is also given to sig_keyid_from_pem() (PEM parsing in mbedtls).
 *
 * Invariants checked beyond "no crash": a verdict of 0 comes with at least
 * one valid signature; an error has a code, a message, and returns -code. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../trails/trails.h"

static const char PUB[] = "-----BEGIN PUBLIC KEY-----\n"
			  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzoDzk/TVL2WCBdfXXZxdOFBlgBUa\n"
			  "0kGh0rMI8Cd7j9AkPfgc1qbLDFDBGemo/BlHnZTrGHfvuEpp5cO/ERpvjQ==\n"
			  "-----END PUBLIC KEY-----\n";
static const char DOC[] = "{\"spec\": \"cairn-revision@1\", \"revision\": 1}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* trust_load() reads files: write the key once to a temp file. */
static struct trust *fixed_trust(void)
{
	char path[] = "/tmp/cairn-sigfuzz-XXXXXX";
	struct trust *t = NULL;
	struct err e = ERR_INIT;
	int fd = mkstemp(path);
	if (fd < 0 || write_all(fd, PUB, strlen(PUB)) < 0) {
		perror("signature_fuzz: temp key");
		abort();
	}
	close(fd);
	int rc = trust_load(path, &t, &e);
	unlink(path);
	if (rc < 0) {
		fprintf(stderr, "signature_fuzz: %s\n", e.msg);
		abort();
	}
	return t;
}

static void check_err(int rc, const struct err *e)
{
	if (rc == 0)
		return;
	if (rc > 0 || e->code != -rc || e->msg[0] == '\0' ||
	    strnlen(e->msg, sizeof(e->msg)) == sizeof(e->msg) ||
	    strnlen(e->field, sizeof(e->field)) == sizeof(e->field)) {
		fprintf(stderr, "signature_fuzz: bad error %d/%d \"%.*s\"\n", rc, e->code,
			(int)sizeof(e->msg), e->msg);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trust *t;
	if (!t)
		t = fixed_trust();
	struct err e = ERR_INIT;
	unsigned n = 99;
	int rc = sig_verify(t, DOC, strlen(DOC), (const char *)data, size, &n, &e);
	check_err(rc, &e);
	if ((rc == 0 && n < 1) || n > 1) {
		fprintf(stderr, "signature_fuzz: rc %d with %u valid\n", rc, n);
		abort();
	}

	struct digest id;
	err_clear(&e);
	rc = sig_keyid_from_pem((const char *)data, size, &id, &e);
	check_err(rc, &e);
	return 0;
}
