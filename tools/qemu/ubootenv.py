"""The U-Boot environment area on the qemu disk: two redundant copies
(libubootenv's block-device layout), read and written from the host.

Each copy is ENV_SIZE bytes: crc32 (LE) | flag byte | "name=value\\0"... \\0,
zero padded; the crc covers everything after the flag byte. The copy with the
valid crc and the newer flag (a counter, 255 -> 0 wraps) is current; a write
goes to the other copy with flag + 1, so a torn write leaves the previous
state readable. This is what libubootenv does with two lines in
fw_env.config, and what tools/qemu/boot.cmd does in U-Boot.
"""
import struct
import zlib

ENV_OFFSET = 0x40000      # byte offset of copy A on the disk (sector 0x200)
ENV_SIZE = 0x4000         # per copy; copy B follows copy A
ENV_OFFSETS = (ENV_OFFSET, ENV_OFFSET + ENV_SIZE)
DATA_SIZE = ENV_SIZE - 5


def fw_env_config(device):
    """The fw_env.config text for `device` (a disk image, or /dev/vda in the
    guest). libubootenv reads offset and size as hex."""
    return "".join("%s 0x%x 0x%x\n" % (device, off, ENV_SIZE) for off in ENV_OFFSETS)


def encode(variables, flag):
    data = b"".join(("%s=%s" % (k, v)).encode() + b"\0" for k, v in sorted(variables.items()))
    data += b"\0"
    if len(data) > DATA_SIZE:
        raise ValueError("environment too large: %d bytes" % len(data))
    data = data.ljust(DATA_SIZE, b"\0")
    return struct.pack("<IB", zlib.crc32(data), flag & 0xff) + data


def decode(raw):
    """(flag, {name: value}) of one copy, or None when its crc is wrong."""
    if len(raw) != ENV_SIZE:
        return None
    crc, flag = struct.unpack("<IB", raw[:5])
    data = raw[5:]
    if zlib.crc32(data) != crc:
        return None
    out = {}
    for item in data.split(b"\0"):
        if not item:
            break
        k, _, v = item.decode(errors="replace").partition("=")
        out[k] = v
    return flag, out


def newer(fa, fb):
    """True when flag fa is newer than fb (U-Boot's and libubootenv's rule)."""
    if fa == 0xff and fb == 0:
        return False
    if fb == 0xff and fa == 0:
        return True
    return fa >= fb


def read(path):
    """(index of the current copy or None, {vars}) read from a disk image."""
    copies = []
    with open(path, "rb") as f:
        for off in ENV_OFFSETS:
            f.seek(off)
            copies.append(decode(f.read(ENV_SIZE)))
    a, b = copies
    if a and b:
        cur = 0 if newer(a[0], b[0]) else 1
    elif a or b:
        cur = 0 if a else 1
    else:
        return None, {}
    return cur, copies[cur][1]


def write(path, variables):
    """Write `variables` as the new current copy of the image at `path`."""
    cur, _ = read(path)
    if cur is None:
        target, flag = 0, 1
    else:
        with open(path, "rb") as f:
            f.seek(ENV_OFFSETS[cur] + 4)
            flag = f.read(1)[0] + 1
        target = 1 - cur
    with open(path, "r+b") as f:
        f.seek(ENV_OFFSETS[target])
        f.write(encode(variables, flag))
        f.flush()
