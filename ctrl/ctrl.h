/* ctrl/ctrl.h — the control API: HTTP/1.1 + JSON over unix stream sockets,
 * served by libmicrohttpd driven from cairn's own epoll loop (no threads).
 * ctrl/API.md is the full spec.
 *
 * Sockets: the admin socket (root only, checked with SO_PEERCRED) and one
 * socket per container; the server knows a container caller by the socket
 * the request came through, never by anything the caller says. */
#ifndef CAIRN_CTRL_H
#define CAIRN_CTRL_H

#include <stdint.h>

#include "../lib/err.h"
#include "../lib/loop.h"
#include "../runtime/runtime.h"

struct ctrl;
struct trails;
struct storage;

/* What only the orchestrator can do. */
struct ctrl_hooks {
	void *data;
	void (*reboot)(void *data, const char *why);
	void (*poweroff)(void *data, const char *why);
	/* POST /v1/commands/poll-hub: poll the fleet hub now (trails/HUB.md). 0,
	 * or a negative errno with the reason: -ENODEV (501) no hub configured,
	 * or its configuration was refused; others 503. NULL: 501. */
	int (*poll_hub)(void *data, struct err *e);
};

/* Roles a container may hold (granted by `roles` in the signed revision). */
#define CTRL_ROLE_MGMT 1u /* install and run revisions, control other containers */

struct ctrl_config {
	struct loop *loop;
	struct runtime *rt;
	/* update engine: revisions, objects, progress, gc. NULL: those routes
	 * answer 503 (tests, or a device whose engine failed to start) */
	struct trails *tr;
	/* metadata under <storage>/meta/, committed/try in GET /v1/status. NULL:
	 * the metadata routes answer 503 */
	struct storage *storage;
	struct ctrl_hooks hooks; /* NULL functions: that command answers 503 */
	const char *admin_path;  /* e.g. /run/cairn/ctrl.sock; NULL = none */
	/* Connections per socket: 0 = 512 for the admin socket; a container
	 * socket never has more than 16. At the cap, the connection waiting
	 * longest for a request head is closed to let the new one in. */
	unsigned max_conns;
	unsigned conn_timeout_s; /* idle and request-head deadline; 0 = 10 s */
};

int ctrl_new(const struct ctrl_config *cfg, struct ctrl **out, struct err *e) _must_check_;
void ctrl_free(struct ctrl *c);
/* The revision the device runs, for GET /v1/status. */
void ctrl_set_revision(struct ctrl *c, uint64_t rev);
/* Listening socket for container `name` at host path `path` (mode 0666: the
 * container's root may not map to host root). Replaces an old one. */
int ctrl_container_add(struct ctrl *c, const char *name, const char *path,
		       struct err *e) _must_check_;
void ctrl_container_remove(struct ctrl *c, const char *name);
/* Roles of a container's socket (CTRL_ROLE_* bits, the same values as
 * TRAILS_ROLE_*); 0 = the defaults only. They belong to the socket: call it
 * after ctrl_container_add, which starts every new socket with none. */
void ctrl_container_set_roles(struct ctrl *c, const char *name, unsigned roles);

#endif
