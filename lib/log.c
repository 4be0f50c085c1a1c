/* lib/log.c — see log.h. One formatted line, then one write(2) per sink so
 * lines from several processes never interleave mid-line. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level cur_level = LOGL_INFO;
static unsigned cur_sinks = LOG_SINK_STDERR;
static int file_fd = -1;
static int kmsg_fd = -1;

static const char *const level_names[] = {"err", "warn", "info", "debug"};
/* kernel log priorities for /dev/kmsg: KERN_ERR=3, WARNING=4, INFO=6, DEBUG=7 */
static const int kmsg_prio[] = {3, 4, 6, 7};

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

int log_level_parse(const char *word)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(word, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void log_set_sinks(unsigned sinks)
{
	cur_sinks = sinks;
	if ((sinks & LOG_SINK_KMSG) && kmsg_fd < 0)
		kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
}

int log_open_file(const char *path, struct err *e)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return err_set(e, errno, "open log file %s: %s", path, strerror(errno));
	if (file_fd >= 0)
		close(file_fd);
	file_fd = fd;
	cur_sinks |= LOG_SINK_FILE;
	return 0;
}

static void write_line(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* a log sink that fails is dropped for this line */
		buf += n;
		len -= (size_t)n;
	}
}

void log_write(enum log_level lvl, const char *mod, const char *fmt, ...)
{
	if (lvl > cur_level)
		return;
	int saved = errno;
	char line[1024];
	int head = snprintf(line, sizeof(line), "cairn[%s] %s: ", mod, level_names[lvl]);
	if (head < 0)
		head = 0;
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(line + head, sizeof(line) - (size_t)head - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)head + (body > 0 ? (size_t)body : 0);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: keep the newline */
	line[len++] = '\n';

	if (cur_sinks & LOG_SINK_STDERR)
		write_line(STDERR_FILENO, line, len);
	if ((cur_sinks & LOG_SINK_FILE) && file_fd >= 0)
		write_line(file_fd, line, len);
	if ((cur_sinks & LOG_SINK_KMSG) && kmsg_fd >= 0) {
		char k[1100];
		int n = snprintf(k, sizeof(k), "<%d>%.*s", kmsg_prio[lvl], (int)len, line);
		if (n > 0)
			write_line(kmsg_fd, k, (size_t)n < sizeof(k) ? (size_t)n : sizeof(k) - 1);
	}
	errno = saved;
}
