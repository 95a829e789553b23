# SPDX-License-Identifier: GPL-2.0
"""Removing a vGPU that a VM still has open: the driver raises the VFIO device-request
interrupt (what QEMU listens on to unplug the device), so the removal completes as soon as the
user lets go, instead of blocking until it happens to close the device."""
import fcntl
import os
import select
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403

PLAN = 4

VFIO_DEVICE_GET_IRQ_INFO = 0x3B6D
REQ_INDEX = VFIO_PCI_REQ_IRQ_INDEX

load_rvgpu()
gpu = gpus()[-1]


def user(uuid, listen, ready_fd):
    """A child that opens the vGPU (as QEMU does) and closes it when asked, or after 3 s."""
    dev = VfioDevice(uuid)
    asked = False
    if listen:
        efd = request_eventfd(dev)
        os.write(ready_fd, b"r")
        asked = bool(select.select([efd], [], [], 60)[0])
    else:
        os.write(ready_fd, b"r")
        time.sleep(3)
    dev.close()
    os._exit(0 if asked or not listen else 1)


def remove_in_use(listen):
    e, u = create(gpu, "nvidia-9104")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        user(u, listen, w)
    os.close(w)
    os.read(r, 1)
    mark = len(dmesg_lines())
    t0 = time.monotonic()
    err = remove(u)
    took = time.monotonic() - t0
    _, status = os.waitpid(pid, 0)
    lines = [l for l in dmesg_lines()[mark:] if "removal requested" in l]
    return err, took, os.waitstatus_to_exitcode(status), lines


e, u = create(gpu, "nvidia-9104")
dev = VfioDevice(u)
b = bytearray(struct.pack("IIII", 16, 0, REQ_INDEX, 0))
fcntl.ioctl(dev.fd, VFIO_DEVICE_GET_IRQ_INFO, b, True)
argsz, flags, index, count = struct.unpack("IIII", b)
dev.close()
remove(u)
check("the device-request interrupt (index 4) is offered: one eventfd", count == 1 and flags & 1, f"flags {flags:#x} count {count}")

err, took, code, lines = remove_in_use(True)
check(f"removing a vGPU in use signals its request eventfd and completes once it is closed ({took:.1f} s)",
      err == 0 and code == 0 and took < 10 and not instances(), f"errno {errname(err)}, child {code}, {took:.1f} s")
check("one log line says the VM was asked to release the vGPU",
      len(lines) == 1 and "asking the VM to release" in lines[0], *lines)

err, took, code, lines = remove_in_use(False)
check("a user that takes no request: removal waits for the close, one log line says so",
      err == 0 and code == 0 and took >= 2 and len(lines) == 1 and "takes no request" in lines[0],
      f"errno {errname(err)}, child {code}, {took:.1f} s", *lines)
unload_rvgpu()
