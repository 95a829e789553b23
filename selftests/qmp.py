# SPDX-License-Identifier: GPL-2.0
"""A minimal QMP client for the tests (a QEMU started with -qmp unix:PATH,server=on,wait=off),
screendumps, and the PPM files they write.

As a command: `python3 selftests/qmp.py screendump SOCKET FILE [png|ppm [DEVICE]]`."""
import json
import socket
import sys
import time


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
    if len(sys.argv) not in (4, 5, 6) or sys.argv[1] != "screendump":
        sys.exit("usage: qmp.py screendump SOCKET FILE [png|ppm [DEVICE]]")
    screendump(Qmp(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "png",
               sys.argv[5] if len(sys.argv) > 5 else None)
