/* trails/trails_internal.h — shared between trails' .c files only.
 *
 *   bootenv.c   boot state backends: file (boot.json), uboot (libubootenv), grub (grubenv)
 *   gc.c        space admission and garbage collection over the store
 *   engine*.c   the update engine of trails.h (state table, offer, switch, rollback)
 * See trails/UPDATE.md. */
#ifndef CAIRN_TRAILS_INTERNAL_H
#define CAIRN_TRAILS_INTERNAL_H

#include "trails.h"

/* ---- boot state backends (bootenv.c) ----
 * struct boot_state semantics, whatever the backend:
 *   committed  the revision the device falls back to
 *   try_rev    a revision staged to be tried, 0 = none
 *   tries      boots of the try left: 1 = staged, not booted yet; 0 = consumed
 *              (the bootloader — or cairn itself, for a live switch — took it)
 * A try with tries == 0 that is still in the state when cairn boots was
 * interrupted (reboot, power cut, hang): cairn boots `committed` and marks it
 * FAILED "interrupted".
 * Backends:
 *   "file"            <storage>/boot.json via trails_boot_read/write (sandbox, tests)
 *   "uboot:<config>"  libubootenv with the fw_env.config at <config>:
 *                     cairn_rev = committed, cairn_try = try_rev, and
 *                     cairn_trying = try_rev once consumed (tries 0) / unset (tries 1);
 *                     redundant environments honoured by libubootenv
 *   "grub:<path>"     the 1024-byte grubenv block at <path>, same variable names,
 *                     rewritten whole and atomically (temp, fsync, rename, fsync dir)
 * Every write is one atomic operation of the backend. */
struct bootenv;
int bootenv_open(const char *spec, struct storage *s, struct bootenv **out,
		 struct err *e) _must_check_;
void bootenv_close(struct bootenv *b);
const char *bootenv_name(const struct bootenv *b);
int bootenv_read(struct bootenv *b, struct boot_state *out, struct err *e) _must_check_;
int bootenv_write(struct bootenv *b, const struct boot_state *bs, struct err *e) _must_check_;

/* ---- space admission and garbage collection (gc.c) ---- */

/* Bytes the objects of `r` still need in the store (deduplicated: objects
 * already present, and objects listed twice, count once). */
uint64_t gc_missing_bytes(struct storage *s, const struct revision *r);
/* 0 if `need` bytes fit with `reserve` bytes left free; -ENOSPC otherwise with
 * the numbers in the message ("needs 12.0 MiB, 3.1 MiB free, 8.0 MiB reserve"). */
int gc_admit(struct storage *s, uint64_t need, uint64_t reserve, struct err *e) _must_check_;
/* Remove installed revisions (trails/<rev>/) not in keep[], then every object
 * that no remaining installed revision references and that is not in
 * keep_objects[] (objects of revisions still downloading). Durable; a crash
 * part way leaves a consistent store (a revision dir goes first, its objects
 * after). *freed gets the bytes removed. */
int gc_collect(struct storage *s, const uint64_t *keep, size_t nkeep,
	       const struct digest *keep_objects, size_t nkeep_objects, uint64_t *freed,
	       struct err *e) _must_check_;

/* ---- boot files of a revision's BSP (bsp.c, BOOT.md "BSP placement") ----
 * <storage>/boot/<rev>/{vmlinuz,initrd.img,cmdline.env}: hard links to the
 * kernel and initrd objects and the command line as U-Boot's env import
 * reads it, for a boot script. Each revision's directory appears whole in
 * one durable rename. Placing the same revision again is a no-op; a
 * revision without a BSP places nothing. The objects must be in the store.
 * Place before trails/<rev>/ appears (install, engine placement). */
int trails_bsp_place(struct storage *s, const struct revision *r, struct err *e) _must_check_;
/* Remove boot/<rev> (absent is fine); call when the revision is removed. */
int trails_bsp_remove(struct storage *s, uint64_t rev, struct err *e) _must_check_;
/* Remove every boot/<n> whose trails/<n> is not installed (but `except`, the
 * revision being placed), and leftovers of interrupted placements. */
int trails_bsp_sweep(struct storage *s, uint64_t except, struct err *e) _must_check_;

/* ---- names (gc.c) ---- */
/* A directory named by a revision number as install writes it (%llu):
 * 1 to 16 decimal digits, no leading zero (so never 0); its value in *out.
 * Not bounded by REV_MAX_NUMBER: callers that take it as a revision check. */
bool trails_rev_dirname(const char *s, uint64_t *out);

/* ---- signature files and keys documents (signature.c, keys.c) ---- */
/* Members of object `obj` must be exactly `keys` (all required, each once);
 * idx[k] gets the value token of keys[k]. Errors name "<where>.<key>". */
int trails_json_members(const struct jp *p, int obj, const char *const *keys, int *idx, size_t n,
			const char *where, struct err *e) _must_check_;
/* String token i equals `want` once unescaped (at most 39 bytes compared). */
bool trails_json_is(const struct jp *p, int i, const char *want);
/* Verify against t's roots only; `label` names the signature file. */
int sig_verify_roots(const struct trust *t, const char *label, const char *doc, size_t doclen,
		     const char *sig, size_t siglen, struct err *e) _must_check_;
/* t's signing keys, now the caller's (t is left with its roots only). */
struct trust *trust_take_signing(struct trust *t);
/* A trust set of n PEM keys with `threshold` (1..n checked by the caller);
 * errors name keys[i]. */
int trust_from_pems(const char *const *pem, const size_t *len, size_t n, unsigned threshold,
		    struct trust **out, struct err *e) _must_check_;

#endif
