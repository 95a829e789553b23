# SPDX-License-Identifier: GPL-2.0
"""Draws the top-left corner of a vGPU's scan-out, read from the physical GPU's VRAM on the host
side (resource0), as text: `vram-ascii.py GPU OFFSET_MIB STRIDE [WIDTH_PX HEIGHT_PX]`.
Lit pixels become half blocks, two pixel rows to a text line."""
import mmap
import os
import sys

gpu, off, stride = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3])
w = int(sys.argv[4]) if len(sys.argv) > 4 else 176
h = int(sys.argv[5]) if len(sys.argv) > 5 else 64
fd = os.open(f"/sys/bus/pci/devices/{gpu}/resource0", os.O_RDONLY | os.O_SYNC)
m = mmap.mmap(fd, off + stride * h, mmap.MAP_SHARED, mmap.PROT_READ)


def lit(x, y):
    p = off + y * stride + 4 * x
    b, g, r = m[p], m[p + 1], m[p + 2]
    return r + g + b > 192


for y in range(0, h, 2):
    line = ""
    for x in range(w):
        top, bottom = lit(x, y), lit(x, y + 1)
        line += "█" if top and bottom else "▀" if top else "▄" if bottom else " "
    print(line.rstrip())
