"""A revision's boot files as trails/BOOT.md ("BSP placement") lays them out:
STORAGE/boot/<rev>/{vmlinuz, initrd.img, cmdline.env}, hard links to the
objects. cairn places them itself when it installs a revision; mkdisk uses
this only when `cairn-pack install` did not (an older cairn-pack)."""
import os


def object_path(storage, ref):
    hexd = ref["object"].split(":", 1)[1]
    return os.path.join(storage, "objects", "sha256", hexd[:2], hexd[2:])


def cmdline_txt(cmdline):
    """U-Boot `env import -t` text: a backslash is written \\\\ (import unescapes)."""
    return "cairn_cmdline=%s\n" % cmdline.replace("\\", "\\\\")


def place(storage, doc):
    """Place the boot files of revision `doc` unless they are there."""
    bsp = doc.get("bsp")
    d = os.path.join(storage, "boot", str(doc["revision"]))
    if not bsp or os.path.exists(os.path.join(d, "vmlinuz")):
        return False
    os.makedirs(d, exist_ok=True)
    os.link(object_path(storage, bsp["kernel"]), os.path.join(d, "vmlinuz"))
    if "initrd" in bsp:
        os.link(object_path(storage, bsp["initrd"]), os.path.join(d, "initrd.img"))
    with open(os.path.join(d, "cmdline.env"), "w") as f:
        f.write(cmdline_txt(bsp.get("cmdline", "")))
    return True
