/* tools/pack/install.c — provisioning: put a signed revision into a device's
 * storage directory as its committed (factory) revision, as a manufacturing
 * line would. The same verified install path the device uses
 * (trails_install_dir), then one durable write of the boot state. A storage
 * that already has a committed revision is refused unless `force` (the
 * factory revision is chosen once). The storage's keys document in effect
 * counts as on the device (keys_load): a revision signed by a signing key
 * installs where the device would accept it. */
#include <errno.h>

#include "../../lib/cleanup.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"
#include "pack.h"

DEFINE_FREEP(struct storage, storage_close)
DEFINE_FREEP(struct trust, trust_free)

int pack_install(const char *outdir, const char *storage_dir, const char *trust_path, bool force,
		 uint64_t *rev, struct err *e)
{
	_cleanup_(trust_freep) struct trust *t = NULL;
	int r = trust_load(trust_path, &t, e);
	if (r < 0)
		return r;
	_cleanup_(storage_closep) struct storage *s = NULL;
	if ((r = storage_open(storage_dir, &s, e)) < 0)
		return r;
	if ((r = keys_load(s, t, e)) < 0)
		return r;
	struct boot_state bs;
	if ((r = trails_boot_read(s, &bs, e)) < 0)
		return r;
	if (bs.committed && !force)
		return err_set(e, EEXIST,
			       "storage %s already has committed revision %llu (use --force to replace)",
			       storage_dir, (unsigned long long)bs.committed);
	uint64_t number;
	if ((r = trails_install_dir(s, outdir, t, &number, e)) < 0)
		return r;
	struct boot_state fresh = {.committed = number};
	if ((r = trails_boot_write(s, &fresh, e)) < 0)
		return r;
	if (rev)
		*rev = number;
	return 0;
}
