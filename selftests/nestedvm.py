# SPDX-License-Identifier: GPL-2.0
"""The nested guest (scripts/build-nested.sh) in QEMU, from inside the test VM: starting it on a
vGPU, reading its `NESTED:` lines, stopping it, and reading a vGPU's slice of the physical VRAM
(words, bytes, and the visible area of its framebuffer at the mode the guest set)."""
import mmap
import os
import re
import subprocess
import time

from qmp import xrgb_to_rgb
from rvgpu import MDEV_DEVICES, ROOT, placement, read


def nested_images():
    out = subprocess.run([f"{ROOT}/scripts/build-nested.sh", "--print"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def qemu(tmp, name, uuid, iommufd, incoming, load=0, mtty=None, display=False, append=""):
    """The nested guest's QEMU on vGPU `uuid` (QEMU's emulated bochs-display if None), with its
    engine workload running for `load` seconds (0: none); `mtty`: an mtty mdev to add
    (enable-migration=on); `display`: the vGPU's display plane as QEMU's console (display=on);
    `append`: more kernel command-line arguments. QMP at TMP/NAME.qmp, the serial console in
    TMP/NAME.serial."""
    bz, initrd = nested_images()
    sysfsdev = f"{MDEV_DEVICES}/{uuid}"
    opts = ",display=on" if display else ""
    if uuid is None:
        dev = ["-device", "bochs-display,id=gpu0,addr=0x4"]
    elif iommufd:
        dev = ["-object", "iommufd,id=fd0",
               "-device", f"vfio-pci,id=gpu0,addr=0x4,iommufd=fd0,sysfsdev={sysfsdev}{opts}"]
    else:
        dev = ["-device", f"vfio-pci,id=gpu0,addr=0x4,sysfsdev={sysfsdev}{opts}"]
    append = f"console=ttyS0 panic=-1 quiet rvgpu.hold=900 rvgpu.load={load} {append}".strip()
    argv = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "128M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-vga", "none", "-display", "none", "-monitor", "none",
            "-no-reboot", "-serial", f"file:{tmp}/{name}.serial",
            "-qmp", f"unix:{tmp}/{name}.qmp,server=on,wait=off",
            "-kernel", bz, "-initrd", initrd, "-append", append] + dev
    if mtty:
        argv += ["-device", f"vfio-pci,id=tty0,addr=0x5,sysfsdev={MDEV_DEVICES}/{mtty},enable-migration=on"]
    if incoming:
        argv += ["-incoming", "defer"]
    out = open(f"{tmp}/{name}.out", "w")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def nested_lines(tmp, name):
    try:
        with open(f"{tmp}/{name}.serial", "rb") as f:
            data = f.read().decode(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return []
    return [line for line in data.split("\n") if line.startswith("NESTED: ")]


def wait_line(tmp, name, pattern, timeout, proc):
    end = time.time() + timeout
    while time.time() < end:
        for line in nested_lines(tmp, name):
            if re.search(pattern, line):
                return line
        if proc.poll() is not None:
            return None
        time.sleep(0.5)
    return None


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def slice_word(gpu, uuid, offset):
    """The 32-bit word at `offset` of vGPU `uuid`'s slice, read from the physical VRAM."""
    return int.from_bytes(slice_bytes(gpu, uuid, offset, 4), "little")


def slice_bytes(gpu, uuid, offset, length):
    """`length` bytes at `offset` of vGPU `uuid`'s slice, read from the physical VRAM."""
    row = next(r for r in placement(gpu) if r[3] == uuid)
    at = (row[0] << 20) + offset
    fd = os.open(f"/sys/bus/pci/devices/{gpu}/resource0", os.O_RDONLY | os.O_SYNC)
    try:
        m = mmap.mmap(fd, at + length, mmap.MAP_SHARED, mmap.PROT_READ)
        try:
            return bytes(m[at:at + length])
        finally:
            m.close()
    finally:
        os.close(fd)


def display_mode(uuid):
    """(width, height, bpp, stride, offset) from the vGPU's nvidia/display, or None (no mode set)."""
    m = re.match(r"(\d+)x(\d+) bpp=(\d+) stride=(\d+) offset=(\d+)",
                 read(f"{MDEV_DEVICES}/{uuid}/nvidia/display").strip())
    return tuple(int(x) for x in m.groups()) if m else None


def visible_rgb(gpu, uuid, mode):
    """RGB bytes of the visible area of vGPU `uuid`'s framebuffer at `mode` (display_mode's tuple,
    32 bpp), read from the physical VRAM: what a screendump of its console must equal."""
    width, height, _, stride, offset = mode
    return xrgb_to_rgb(slice_bytes(gpu, uuid, offset, stride * height), width, height, stride)
