/* plugins/plugins.h — runtime backends behind one ops table. lxc (liblxc) is
 * the main one. Plugins know nothing of revisions or trails: they receive a
 * fully resolved container description (mounted rootfs, argv, mounts).
 *
 * Process model: spawn() forks a "keeper" child of the caller that runs the
 * container in the foreground (liblxc non-daemonized start) and exits when
 * the container's init exits. The keeper's exit status encodes the result:
 *   0..125   the container init exited with this code
 *   128+N    the container init was killed by signal N
 *   PLUGIN_EXIT_START_FAILED  the container could not be started at all
 * The container's stdout/stderr are the fd given in out_fd. */
#ifndef CAIRN_PLUGINS_H
#define CAIRN_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../lib/err.h"

#define PLUGIN_EXIT_START_FAILED 126

struct plugin_kv {
	const char *key;
	const char *value;
};

struct plugin_mount {
	const char *source; /* host path */
	const char *target; /* absolute path inside the container */
	bool readonly;
	bool file; /* bind a file (e.g. a socket), not a directory */
};

struct plugin_ctr {
	const char *name;
	const char *rootfs;  /* host path of the mounted root filesystem */
	char *const *argv;   /* NULL-terminated */
	const struct plugin_kv *cfg; /* extra backend keys (already vetted) */
	size_t ncfg;
	const struct plugin_mount *mounts;
	size_t nmounts;
	const char *statedir; /* backend's private state dir (tmpfs) */
	int out_fd;           /* container stdout+stderr; -1 = /dev/null */
};

struct plugin_ops {
	const char *name;
	/* Build the backend's container object and config. */
	int (*prepare)(const struct plugin_ctr *c, void **handle, struct err *e);
	/* Fork the keeper (see above); *keeper gets its pid. */
	int (*spawn)(void *handle, pid_t *keeper, struct err *e);
	/* The container init's pid (in the caller's pid namespace) once it runs,
	 * 0 before that or after it ended. Cheap enough to poll. */
	pid_t (*init_pid)(void *handle);
	/* Send `sig` to the container's init; -ESRCH if it does not run. */
	int (*signal)(void *handle, int sig);
	void (*release)(void *handle);
};

extern const struct plugin_ops plugin_lxc;

#endif
