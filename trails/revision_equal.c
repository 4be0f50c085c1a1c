/* trails/revision_equal.c — deep equality of parsed revisions, used by the
 * update engine (what changed between two revisions decides a live or a
 * reboot switch) and by the parser's round-trip tests. */
#include <string.h>

#include "trails.h"

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool revision_objref_equal(const struct rev_objref *a, const struct rev_objref *b)
{
	return a->present == b->present && digest_eq(&a->digest, &b->digest) &&
	       a->size == b->size && a->format == b->format && a->src == b->src &&
	       str_eq(a->src_path, b->src_path);
}

static bool ctr_lists_equal(const struct rev_container *a, const struct rev_container *b)
{
	for (size_t i = 0; i < a->nexec; i++)
		if (!str_eq(a->exec[i], b->exec[i]))
			return false;
	for (size_t i = 0; i < a->nvolumes; i++)
		if (strcmp(a->volumes[i].name, b->volumes[i].name) ||
		    !str_eq(a->volumes[i].path, b->volumes[i].path) ||
		    a->volumes[i].persistence != b->volumes[i].persistence)
			return false;
	for (size_t i = 0; i < a->nroles; i++)
		if (strcmp(a->roles[i], b->roles[i]))
			return false;
	for (size_t i = 0; i < a->nlxc; i++)
		if (!str_eq(a->lxc[i].key, b->lxc[i].key) || !str_eq(a->lxc[i].value, b->lxc[i].value))
			return false;
	return true;
}

bool revision_container_equal(const struct rev_container *a, const struct rev_container *b)
{
	if (strcmp(a->name, b->name) || a->group != b->group ||
	    !revision_objref_equal(&a->rootfs, &b->rootfs) || a->nexec != b->nexec ||
	    a->goal != b->goal || a->restart != b->restart || a->update != b->update ||
	    a->nvolumes != b->nvolumes || a->nroles != b->nroles || a->nlxc != b->nlxc)
		return false;
	return ctr_lists_equal(a, b);
}

bool revision_bsp_equal(const struct rev_bsp *a, const struct rev_bsp *b)
{
	return a->present == b->present && revision_objref_equal(&a->kernel, &b->kernel) &&
	       revision_objref_equal(&a->initrd, &b->initrd) &&
	       revision_objref_equal(&a->modules, &b->modules) &&
	       revision_objref_equal(&a->firmware, &b->firmware) && str_eq(a->cmdline, b->cmdline);
}

bool revision_equal(const struct revision *a, const struct revision *b)
{
	if (a->number != b->number || strcmp(a->created, b->created) ||
	    !revision_bsp_equal(&a->bsp, &b->bsp) || a->ngroups != b->ngroups ||
	    a->ncontainers != b->ncontainers)
		return false;
	for (size_t i = 0; i < a->ngroups; i++)
		if (strcmp(a->groups[i].name, b->groups[i].name) ||
		    a->groups[i].timeout_s != b->groups[i].timeout_s)
			return false;
	for (size_t i = 0; i < a->ncontainers; i++)
		if (!revision_container_equal(&a->containers[i], &b->containers[i]))
			return false;
	return true;
}
