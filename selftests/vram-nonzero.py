# SPDX-License-Identifier: GPL-2.0
"""Counts the nonzero bytes of a scan-out area of a physical GPU's VRAM, read from the host side:
`vram-nonzero.py GPU OFFSET_MIB WIDTHxHEIGHT STRIDE` prints `pixels <nonzero> <bytes>`."""
import mmap
import os
import sys

gpu, off, geom, stride = sys.argv[1], int(sys.argv[2]) << 20, sys.argv[3], int(sys.argv[4])
w, h = (int(x) for x in geom.split("x"))
n = stride * h
fd = os.open(f"/sys/bus/pci/devices/{gpu}/resource0", os.O_RDONLY | os.O_SYNC)
m = mmap.mmap(fd, off + n, mmap.MAP_SHARED, mmap.PROT_READ)
data = m[off:off + n]
print("pixels", n - data.count(0), n)
