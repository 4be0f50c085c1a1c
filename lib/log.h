/* lib/log.h — levelled logging with a module tag.
 *
 * Each .c file defines LOG_MODULE before including this header:
 *   #define LOG_MODULE "storage"
 * Sinks: stderr (default), /dev/kmsg (real PID 1, before storage exists) and
 * an append-only file. Lines look like
 *   cairn[storage] warn: object sha256:ab…: removed stale temp file
 * Logging never allocates and never fails the caller. */
#ifndef CAIRN_LIB_LOG_H
#define CAIRN_LIB_LOG_H

#include "err.h"

enum log_level { LOGL_ERR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

enum log_sink { LOG_SINK_STDERR = 1, LOG_SINK_KMSG = 2, LOG_SINK_FILE = 4 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Level from a word ("err", "warn", "info", "debug"); -1 if unknown. */
int log_level_parse(const char *word);
void log_set_sinks(unsigned sinks);
/* Open (append) a file sink; closes any previous one. */
int log_open_file(const char *path, struct err *e) _must_check_;
void log_write(enum log_level lvl, const char *mod, const char *fmt, ...) _printf_(3, 4);

#ifndef LOG_MODULE
#define LOG_MODULE "cairn"
#endif

#define log_err(...) log_write(LOGL_ERR, LOG_MODULE, __VA_ARGS__)
#define log_warn(...) log_write(LOGL_WARN, LOG_MODULE, __VA_ARGS__)
#define log_info(...) log_write(LOGL_INFO, LOG_MODULE, __VA_ARGS__)
#define log_debug(...) log_write(LOGL_DEBUG, LOG_MODULE, __VA_ARGS__)

#endif
