/* tools/pack/install.c — provisioning: put a signed revision into a device's
 * storage directory as its committed (factory) revision, as a manufacturing
 * line would. The same verified install path the device uses
 * (trails_install_dir), then one durable write of the boot state. A storage
 * that already has a committed revision is refused unless `force` (the
 * factory revision is chosen once). The storage's keys document in effect
 * counts as on the device (keys_load): a revision signed by a signing key
 * installs where the device would accept it. With --keys, a keys document
 * (higher serial than the storage's, or the same one) is checked, counts
 * for the revision's check, and is stored after the revision is placed and
 * before the boot state names it. */
#include <errno.h>

#include "../../lib/cleanup.h"
#include "../../storage/storage.h"
#include "../../trails/trails.h"
#include "pack.h"

DEFINE_FREEP(struct storage, storage_close)
DEFINE_FREEP(struct trust, trust_free)

/* --keys DIR: its document admitted against what the storage has (higher
 * serial, or the same document); its bytes kept to be stored, and its keys
 * in effect in t for the revision's check. */
static int install_keys(struct storage *s, struct trust *t, const char *keys_dir, char **doc,
			size_t *doclen, char **sig, size_t *siglen, uint64_t *serial,
			struct err *e)
{
	struct trust *keys = NULL;
	int r = pack_keys_read(keys_dir, doc, doclen, sig, siglen, e);
	if (r == 0 && (r = keys_admit(s, t, *doc, *doclen, *sig, *siglen, &keys, serial, e)) < 0)
		err_prefix(e, "--keys %s", keys_dir);
	if (r < 0)
		return r;
	if (keys)
		trust_set_signing(t, keys, *serial);
	else
		*serial = 0; /* already in effect: nothing to store */
	return 0;
}

int pack_install(const char *outdir, const char *storage_dir, const char *trust_path,
		 const char *keys_dir, bool force, uint64_t *rev, struct err *e)
{
	_cleanup_(trust_freep) struct trust *t = NULL;
	_cleanup_free_ char *kdoc = NULL, *ksig = NULL;
	size_t kdoclen = 0, ksiglen = 0;
	uint64_t kserial = 0;
	int r = trust_load(trust_path, &t, e);
	if (r < 0)
		return r;
	_cleanup_(storage_closep) struct storage *s = NULL;
	if ((r = storage_open(storage_dir, &s, e)) < 0)
		return r;
	if ((r = keys_load(s, t, e)) < 0)
		return r;
	if (keys_dir &&
	    (r = install_keys(s, t, keys_dir, &kdoc, &kdoclen, &ksig, &ksiglen, &kserial, e)) < 0)
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
	/* the keys before the boot state names a revision that may need them.
	 * With --force over a committed revision the new keys no longer vouch
	 * for, a failure in between leaves that one committed and unverifiable:
	 * provisioning is run again (tools/pack/README.md, install) */
	if (kserial && (r = keys_store(s, kserial, kdoc, kdoclen, ksig, ksiglen, e)) < 0)
		return r;
	struct boot_state fresh = {.committed = number};
	if ((r = trails_boot_write(s, &fresh, e)) < 0)
		return r;
	if (rev)
		*rev = number;
	return 0;
}
