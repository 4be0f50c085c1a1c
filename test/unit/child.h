/* test/unit/child.h — run a step in a forked child with one environment
 * variable set (CAIRN_FAIL_AT, CAIRN_CRASH_AT: storage/README.md), and read
 * back what it reported. Header-only: each test binary is one .c file. */
#ifndef CAIRN_TEST_CHILD_H
#define CAIRN_TEST_CHILD_H

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"

/* Fork; the child sets `var`=`val` (var may be NULL), runs fn and exits
 * with its result. The child writes up to two numbers to the pipe (fn gets
 * its write end, see child_report); a hang is killed after 30 s. */
struct child {
	int status;
	unsigned long nums[2];
	size_t nnums;
};

static inline void run_child(int (*fn)(void *arg, int out), void *arg, const char *var,
			     const char *val, struct child *c)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		alarm(30); /* a hang is a failure, not a stuck test run */
		if (var)
			setenv(var, val, 1);
		_exit(fn(arg, p[1]));
	}
	close(p[1]);
	memset(c, 0, sizeof(*c));
	ssize_t n = read_all(p[0], c->nums, sizeof(c->nums));
	assert_true(n >= 0);
	c->nnums = (size_t)n / sizeof(unsigned long);
	close(p[0]);
	assert_int_equal(waitpid(pid, &c->status, 0), pid);
}

/* In the child: one number for the parent. */
static inline void child_report(int out, unsigned long v)
{
	if (write(out, &v, sizeof(v)) != sizeof(v))
		_exit(99);
}

#define killed(c) (WIFSIGNALED((c)->status) && WTERMSIG((c)->status) == SIGKILL)
#define exit_code(c) (WIFEXITED((c)->status) ? WEXITSTATUS((c)->status) : -1)

#endif
