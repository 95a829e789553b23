# SPDX-License-Identifier: GPL-2.0
"""Losing the physical GPU under load: the test VM's second board is unplugged through the QEMU
that runs the VM (device_del: the guest is asked to eject it, ACPI PCI hotplug on the pc machine)
while a nested VM runs its engine workload on one of its vGPUs (iommufd) and a VFIO client holds
another (container);
a vGPU of the first board is open meanwhile. The driver must tear down cleanly: each user gets the
VFIO request interrupt, then errors (ENODEV from the regions, SIGBUS from a framebuffer mapping),
not hangs; the nested VM's QEMU unplugs the vGPU from its guest; the board is gone with all its
vGPUs; the other board's vGPU is untouched. Plugging the board back (device_add) binds it again
with fresh types. The kernel log stays clean."""
import errno
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403
from nestedvm import nested_lines, qemu as nested_qemu, stop, wait_line  # noqa: E402
from qmp import Qmp, device_ids  # noqa: E402

PLAN = 9
BOOT_TIMEOUT = 240
BAR2 = 2 << 40
CONFIG = 7 << 40
REG_ID = 0x500  # the DISPI ID register in BAR2: a read without side effects


def bochs_boards():
    """The Bochs boards' PCI addresses in bus order (= vm-run.sh's --vram order)."""
    out = []
    for d in sorted(os.listdir("/sys/bus/pci/devices")):
        p = f"/sys/bus/pci/devices/{d}"
        if open(f"{p}/vendor").read().strip() == "0x1234" and open(f"{p}/device").read().strip() == "0x1111":
            out.append(d)
    return out


def client(uuid, w):
    """A child: opens the vGPU (container path) with a request eventfd, maps and touches its
    framebuffer, reads a register, says ready; then waits for the request, and reports what the
    device does afterwards: the register read's errno and what touching the mapping does."""
    res = {}
    try:
        dev = VfioDevice(uuid)
        efd = request_eventfd(dev)
        fb = mmap.mmap(dev.fd, 1 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        fb[0:4] = b"\x11\x22\x33\x44"
        res["before"] = fb[0:4] == b"\x11\x22\x33\x44" and len(os.pread(dev.fd, 4, BAR2 + REG_ID)) == 4
        os.write(w, b"r")
        res["request"] = bool(select.select([efd], [], [], 300)[0])
        try:
            os.pread(dev.fd, 4, BAR2 + REG_ID)
            res["pread"] = "succeeded"
        except OSError as e:
            res["pread"] = errno.errorcode.get(e.errno, str(e.errno))
        pid = os.fork()
        if pid == 0:
            fb[0]  # noqa: B018 -- the touch
            os._exit(0)
        _, st = os.waitpid(pid, 0)
        res["touch"] = f"signal {signal.Signals(os.WTERMSIG(st)).name}" if os.WIFSIGNALED(st) else "no fault"
        fb.close()
        dev.close()
        res["closed"] = True
    except Exception as e:  # noqa: BLE001
        res["error"] = repr(e)
    os.write(w, json.dumps(res).encode())
    os._exit(0)


load_rvgpu()
boards = bochs_boards()
small, big = gpus()[0], gpus()[-1]
idx = boards.index(big)
# The board comes back in another slot: QEMU 10 keeps an unplugged bochs-display's VRAM
# (a RAMBlock named after its PCI address) and aborts if a new one takes the same address.
used = {int(d.split(":")[2].split(".")[0], 16) for d in os.listdir("/sys/bus/pci/devices") if d.startswith("0000:00:")}
slot = next(s for s in range(0x10, 0x20) if s not in used)
types_before = sorted(os.listdir(f"/sys/bus/pci/devices/{big}/mdev_supported_types"))
mark = len(dmesg_lines())
e1, n = create(big, "nvidia-9106")
e2, c = create(big, "nvidia-9104")
e3, k = create(small, "nvidia-9104")
tmp = tempfile.mkdtemp(prefix="rvgpu-unplug.")
nested = None
try:
    # The bystander on the other board: its framebuffer holds a pattern, read back afterwards.
    kdev = VfioDevice(k)
    os.pwrite(kdev.fd, struct.pack("<H", 6), CONFIG + 4)  # memory decode and bus mastering on
    pattern = bytes(range(256)) * 16
    wrote = os.pwrite(kdev.fd, pattern, 0x1000)

    # The nested VM's QEMU uses iommufd: on the VFIO container path QEMU unmaps its DMA through
    # the container after closing the device, and 7.3's vfio_fops_unl_ioctl() reads the
    # container's IOMMU driver data without container->group_lock while the removal's
    # vfio_group_detach_container() frees it (a use-after-free in the VFIO core; README,
    # "Reliability"). The client below holds its vGPU on the container path.
    nested = nested_qemu(tmp, "n", n, True, False, load=900)
    start = wait_line(tmp, "n", r"^NESTED: load start", BOOT_TIMEOUT, nested)
    check("the nested VM boots on a vGPU of the board to be unplugged and starts its engine workload",
          not (e1 or e2 or e3) and start is not None, f"create: {e1} {e2} {e3}", *nested_lines(tmp, "n")[-8:],
          open(f"{tmp}/n.out").read()[-600:])
    nq = Qmp(f"{tmp}/n.qmp")
    r, w = os.pipe()
    cpid = os.fork()
    if cpid == 0:
        os.close(r)
        client(c, w)
    os.close(w)
    os.read(r, 1)
    time.sleep(3)  # the workload runs on
    busy = wait_line(tmp, "n", r"^NESTED: load iter=", 60, nested)
    t0 = time.monotonic()
    try:
        board_hotplug("del", idx)
        unplugged = None
    except OSError as e:
        unplugged = str(e)
    took = time.monotonic() - t0
    check(f"device_del of the board completes ({took:.1f} s) with the nested VM's engine busy on it and the client holding a vGPU",
          unplugged is None and busy is not None, f"{unplugged}", f"engine running: {busy}")
    end = time.time() + 60
    while "gpu0" in device_ids(nq) and time.time() < end:
        time.sleep(0.5)
    check("the nested VM's QEMU got the request interrupt and unplugged the vGPU from its guest",
          "gpu0" not in device_ids(nq), *nested_lines(tmp, "n")[-6:], open(f"{tmp}/n.out").read()[-600:])
    got = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        got += chunk
    os.waitpid(cpid, 0)
    res = json.loads(got or b"{}")
    check("the client got the request interrupt, then ENODEV from the registers and SIGBUS from its mapping, and let go",
          res.get("before") and res.get("request") and res.get("pread") == "ENODEV"
          and res.get("touch") == "signal SIGBUS" and res.get("closed"), json.dumps(res))
    left = [u for u in (n, c) if os.path.exists(f"{MDEV_DEVICES}/{u}")]
    check("the board and its vGPUs are gone", not os.path.exists(f"/sys/bus/pci/devices/{big}") and not left,
          f"board present: {os.path.exists(f'/sys/bus/pci/devices/{big}')}", f"vGPUs left: {left}")
    back = os.pread(kdev.fd, len(pattern), 0x1000)
    reg = os.pread(kdev.fd, 4, BAR2 + REG_ID)
    check("the other board's vGPU is untouched: its framebuffer holds what it did, its registers answer",
          wrote == len(pattern) and back == pattern and len(reg) == 4,
          f"wrote {wrote} bytes; {sum(a != b for a, b in zip(back, pattern))} bytes differ")
    kdev.close()
    stop(nested)
    nested = None

    try:
        board_hotplug("add", idx, slot)
        added = None
    except OSError as e:
        added = str(e)
    # Bound means its driver-level files are there too: the driver core links the device to the
    # driver before probe and adds the driver's groups (nvidia/) only after probe returns.
    def bound_back():
        return [g for g in gpus() if g != small and os.path.exists(f"/sys/bus/pci/devices/{g}/nvidia/vram_total_mib")]

    t = time.time()
    while time.time() < t + 60 and not bound_back():
        time.sleep(0.5)
    back = bound_back() or [g for g in gpus() if g != small]
    big = back[0] if back else f"0000:00:{slot:02x}.0"
    tdir = f"/sys/bus/pci/devices/{big}/mdev_supported_types"
    types_after = sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []
    avail = read(f"{tdir}/nvidia-9104/available_instances").strip() if types_after else None
    free = read(f"/sys/bus/pci/devices/{big}/nvidia/vram_free_mib").strip() if types_after else None
    total = read(f"/sys/bus/pci/devices/{big}/nvidia/vram_total_mib").strip() if types_after else None
    check(f"device_add plugs the board back (slot {slot:#x}): the driver binds it again with fresh types, all VRAM free",
          added is None and big in gpus() and types_after == types_before and avail == "16" and free == total,
          f"device_add: {added}", f"bound: {gpus()}", f"types {types_after}", f"available {avail}, free {free} of {total}")
    e4, x = create(big, "nvidia-9104")
    check("a vGPU can be created on the board plugged back, and removed", e4 == 0 and remove(x) == 0, f"errno {e4}")
finally:
    if nested is not None:
        stop(nested)
    remove(k)
out = subprocess.run(["bash", "-c", f'. "{ROOT}/selftests/lib.sh"; kernel_problems {mark}'], capture_output=True, text=True)
check("no kernel warning, oops, BUG or sanitizer report during the unplug", out.returncode != 0, out.stdout[-3000:])
unload_rvgpu()
