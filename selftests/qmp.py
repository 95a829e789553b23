# SPDX-License-Identifier: GPL-2.0
"""A minimal QMP client for the tests (a QEMU started with -qmp unix:PATH,server=on,wait=off),
screendumps, and the PPM and PNG files they write (libvirt's `virsh screenshot` too: libvirt 9.0
asks QEMU 10 for PNG).

As a command:
  python3 selftests/qmp.py screendump SOCKET FILE [png|ppm [DEVICE]]
  python3 selftests/qmp.py device-del SOCKET ID [TIMEOUT]    unplug; waits for DEVICE_DELETED
  python3 selftests/qmp.py device-add SOCKET DRIVER ID [KEY=VALUE...]"""
import json
import socket
import struct
import sys
import time
import zlib


class Qmp:
    def __init__(self, path, timeout=30):
        end = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > end:
                    raise
                time.sleep(0.2)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())  # the greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error'].get('desc')}")
            return r.get("return")


def device_ids(qmp):
    """The ids of the devices given one (-device ...,id=, device_add id=)."""
    return {p["name"] for p in qmp.cmd("qom-list", path="/machine/peripheral") if p["type"].startswith("child<")}


def device_del(qmp, dev_id, timeout=120):
    """Unplugs device `dev_id` (the guest is asked to eject it) and waits until QEMU has deleted
    it (gone from /machine/peripheral: QEMU 10 does not send DEVICE_DELETED for an ACPI eject of
    the guest's); False if it was not within `timeout` seconds."""
    qmp.cmd("device_del", id=dev_id)
    end = time.time() + timeout
    while time.time() < end:
        if dev_id not in device_ids(qmp):
            return True
        time.sleep(0.5)
    return False


def screendump(qmp, path, fmt="ppm", device=None):
    """QMP screendump of the console (of qdev `device`, else console 0) into `path`."""
    args = {"filename": path, "format": fmt}
    if device:
        args["device"] = device
    qmp.cmd("screendump", **args)


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM (P6, maxval 255) as QEMU writes it."""
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError(f"{path}: not a P6 PPM with maxval 255 ({fields})")
    w, h = int(fields[1]), int(fields[2])
    pixels = data[pos + 1:pos + 1 + w * h * 3]
    if len(pixels) != w * h * 3:
        raise ValueError(f"{path}: {len(pixels)} pixel bytes, want {w * h * 3}")
    return w, h, pixels


def _add_bytes(a, b):
    """Byte-wise (a + b) mod 256 of two equal-length byte strings, without a loop over the bytes."""
    n = len(a)
    low, high = int.from_bytes(b"\x7f" * n, "little"), int.from_bytes(b"\x80" * n, "little")
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "little")


def _unfilter(data, width, height, bpp):
    """The raw scanlines of PNG image data (after inflating): each row's filter byte undone. Black
    rows under black rows and the None and Up filters go without a loop over the bytes (a
    console is mostly black); Sub, Average and Paeth rows go byte by byte."""
    stride = width * bpp
    if len(data) != height * (stride + 1):
        raise ValueError(f"PNG image data: {len(data)} bytes, want {height * (stride + 1)}")
    zero = bytes(stride)
    prev, rows = zero, []
    for y in range(height):
        pos = y * (stride + 1)
        ft, row = data[pos], data[pos + 1:pos + 1 + stride]
        if ft > 4:
            raise ValueError(f"PNG row {y}: filter type {ft}")
        if ft == 0 or (row == zero and prev == zero):
            cur = row
        elif ft == 2:
            cur = _add_bytes(row, prev)
        else:
            cur = bytearray(row)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                if ft == 1:
                    pred = a
                elif ft == 3:
                    pred = (a + prev[i]) >> 1
                else:
                    b = prev[i]
                    c = prev[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (cur[i] + pred) & 255
            cur = bytes(cur)
        rows.append(cur)
        prev = cur
    return b"".join(rows)


def read_png(path):
    """(width, height, RGB bytes) of a PNG as QEMU writes it (libpng: 8-bit RGB, or RGBA with the
    alpha dropped, not interlaced)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, head = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if head is None:
        raise ValueError(f"{path}: no IHDR")
    w, h, depth, color, _, _, interlace = head
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"{path}: bit depth {depth}, colour type {color}, interlace {interlace}: "
                         f"only 8-bit RGB or RGBA, not interlaced")
    bpp = 3 if color == 2 else 4
    pixels = _unfilter(zlib.decompress(b"".join(idat)), w, h, bpp)
    if bpp == 4:
        rgb = bytearray(w * h * 3)
        for k in range(3):
            rgb[k::3] = pixels[k::4]
        pixels = bytes(rgb)
    return w, h, pixels


def read_image(path):
    """(width, height, RGB bytes) of a screendump or a screenshot, PPM (P6) or PNG."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return read_png(path) if magic == b"\x89P" else read_ppm(path)


def xrgb_to_rgb(fb, width, height, stride):
    """RGB bytes of a little-endian XRGB8888 image (bytes B, G, R, X per pixel)."""
    out = bytearray(width * height * 3)
    for y in range(height):
        line = fb[y * stride:y * stride + width * 4]
        o = y * width * 3
        out[o:o + width * 3:3] = line[2::4]
        out[o + 1:o + width * 3:3] = line[1::4]
        out[o + 2:o + width * 3:3] = line[0::4]
    return bytes(out)


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) in (3, 4, 5) and a[0] == "screendump":
        screendump(Qmp(a[1]), a[2], a[3] if len(a) > 3 else "png", a[4] if len(a) > 4 else None)
    elif len(a) in (3, 4) and a[0] == "device-del":
        if not device_del(Qmp(a[1]), a[2], float(a[3]) if len(a) > 3 else 120):
            sys.exit(f"qmp.py: {a[2]} was not deleted in time (the guest did not eject it)")
    elif len(a) >= 4 and a[0] == "device-add":
        # Decimal numbers go as JSON numbers (integer properties take no strings).
        args = {k: int(v) if v.isdigit() else v for k, v in (kv.split("=", 1) for kv in a[4:])}
        Qmp(a[1]).cmd("device_add", driver=a[2], id=a[3], **args)
    else:
        sys.exit(__doc__.split("As a command:")[1])
