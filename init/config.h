/* init/config.h — the device's configuration file (`cairn --config FILE`,
 * /etc/cairn/cairn.conf on a device) and its kernel command line overrides.
 *
 * File: one `key = value` per line; blank lines and lines starting with `#`
 * (after leading blanks) are ignored; blanks around key and value are
 * stripped. Every key is known (an unknown key is an error naming the file,
 * the line and the key); a key given twice in one source is an error.
 * Kernel command line: `cairn.<key>=<value>` words (e.g. cairn.hub.url=...)
 * override the file, word by word; other words, and cairn.* words that are
 * not configuration keys of this file (cairn.storage=...), are left alone
 * unless they start with `cairn.hub.`, which must then be known.
 * README.md ("Follow a fleet hub") documents the keys and their defaults;
 * trails/HUB.md the protocol they configure. */
#ifndef CAIRN_INIT_CONFIG_H
#define CAIRN_INIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/err.h"

#define CONFIG_FILE_MAX (64u * 1024) /* bytes of the file (and of /proc/cmdline) */
#define CONFIG_LINE_MAX 4096         /* bytes of one line, newline excluded */
#define CONFIG_URL_MAX 512
#define CONFIG_ID_MAX 64
#define CONFIG_PATH_MAX 1024
#define CONFIG_PIN_MAX 512

#define CONFIG_POLL_DEFAULT 300u
#define CONFIG_POLL_MIN 5u
#define CONFIG_POLL_MAX 86400u

/* Empty strings are unset. */
struct cairn_config {
	struct {
		char url[CONFIG_URL_MAX + 1];      /* "" = no hub: the client is off */
		char device_id[CONFIG_ID_MAX + 1]; /* default: /etc/machine-id */
		unsigned poll_s;                   /* default CONFIG_POLL_DEFAULT */
		char ca[CONFIG_PATH_MAX + 1];
		char cert[CONFIG_PATH_MAX + 1];
		char key[CONFIG_PATH_MAX + 1];
		char token_file[CONFIG_PATH_MAX + 1];
		char pin[CONFIG_PIN_MAX + 1];
	} hub;
};

/* The defaults (no hub). */
void config_init(struct cairn_config *c);

/* Parse text[0..len) of the file named `source` (for messages) into c, over
 * what c holds. Errors read "<source>:<line>: <key>: <what is wrong>" and
 * set e->field to the key. */
int config_parse_file(struct cairn_config *c, const char *text, size_t len, const char *source,
		      struct err *e) _must_check_;
/* Apply the cairn.* words of a kernel command line (text[0..len)). */
int config_parse_cmdline(struct cairn_config *c, const char *text, size_t len,
			 const char *source, struct err *e) _must_check_;
/* Checks that need every key (cert without key, device id default from
 * `machine_id_path` when a hub is set; NULL = /etc/machine-id). */
int config_finish(struct cairn_config *c, const char *machine_id_path,
		  struct err *e) _must_check_;

/* All of it: defaults, then `path` (NULL: none; a file that does not exist
 * is an error), then `cmdline_path` (NULL: not read; a real PID 1 passes
 * /proc/cmdline), then config_finish. */
int config_load(struct cairn_config *c, const char *path, const char *cmdline_path,
		struct err *e) _must_check_;

/* Is `s` a valid hub.device_id (HUB.md: [A-Za-z0-9][A-Za-z0-9._-]{0,63})? */
bool config_device_id_valid(const char *s, size_t len);

#endif
