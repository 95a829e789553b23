# SPDX-License-Identifier: GPL-2.0
"""Helpers for the in-VM tests written in Python: TAP results shared with selftests/lib.sh,
sysfs access to rvgpu's GPUs and vGPUs, opening a vGPU through VFIO, reading VRAM."""

import ctypes
import errno
import fcntl
import mmap
import os
import struct
import subprocess
import time
import uuid as uuidlib

ROOT = os.environ.get("RVGPU_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The TAP counters' directory (selftests/lib.sh); the benchmarks import this module without one.
STATE = os.environ.get("TAP_STATE", "")
PCI_DRV = "/sys/bus/pci/drivers/nvidia"
MDEV_DEVICES = "/sys/bus/mdev/devices"
MIB = 1 << 20


# --- TAP (shares the counters of selftests/lib.sh) -----------------------------------------
def _bump(name):
    path = os.path.join(STATE, name)
    with open(path) as f:
        n = int(f.read().strip() or 0) + 1
    with open(path, "w") as f:
        f.write(f"{n}\n")
    return n


def ok(desc):
    _bump("script_count")
    print(f"ok {_bump('count')} - {desc}", flush=True)


def fail(desc, *diag):
    _bump("script_count")
    print(f"not ok {_bump('count')} - {desc}", flush=True)
    for d in diag:
        for line in str(d).splitlines():
            print(f"#   {line}", flush=True)
    with open(os.path.join(STATE, "failed"), "w") as f:
        f.write("1\n")


def check(desc, cond, *diag):
    if cond:
        ok(desc)
    else:
        fail(desc, *diag)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print(f"# {line}", flush=True)


# --- Shell and sysfs ------------------------------------------------------------------------
def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: status {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def read(path):
    with open(path) as f:
        return f.read()


def write(path, data):
    """Writes like `echo data > path`; returns 0 or the errno."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "success"


def dmesg_lines():
    return sh("dmesg").splitlines()


def load_rvgpu(*params):
    """Loads the module with `params` (e.g. "persona=t4")."""
    sh("modprobe -a vfio mdev")
    sh(" ".join([f"insmod {ROOT}/rvgpu.ko", *params]))


def unload_rvgpu():
    sh("rmmod rvgpu")


def gpus():
    """The PCI addresses of the bound GPUs, in bus order."""
    return sorted(d for d in os.listdir(PCI_DRV) if d.startswith("0000:"))


def types_dir(gpu):
    return f"/sys/bus/pci/devices/{gpu}/mdev_supported_types"


def types(gpu):
    """{type dir name: attributes} for a GPU."""
    out = {}
    base = types_dir(gpu)
    for t in sorted(os.listdir(base)):
        d = os.path.join(base, t)
        out[t] = {a: read(os.path.join(d, a)).rstrip("\n")
                  for a in ("name", "description", "available_instances", "device_api")}
    return out


def available(gpu, type_name):
    return int(read(f"{types_dir(gpu)}/{type_name}/available_instances"))


def create(gpu, type_name, uuid=None):
    """Creates a vGPU; returns (errno or 0, uuid)."""
    uuid = uuid or str(uuidlib.uuid4())
    return write(f"{types_dir(gpu)}/{type_name}/create", uuid + "\n"), uuid


def remove(uuid):
    return write(f"{MDEV_DEVICES}/{uuid}/remove", "1\n")


def instances():
    return sorted(os.listdir(MDEV_DEVICES)) if os.path.isdir(MDEV_DEVICES) else []


def gpu_attr(gpu, name):
    return read(f"/sys/bus/pci/devices/{gpu}/nvidia/{name}")


def placement(gpu, settle=30):
    """[(offset_mib, size_mib, type or 'free', uuid or None)] from nvidia/placement, once no
    removed vGPU's slice is still being scrubbed (a `scrubbing` line; removal does not wait for
    the scrub), for up to `settle` seconds (then 'scrubbing' rows are returned as they are)."""
    end = time.time() + settle
    text = gpu_attr(gpu, "placement")
    while " scrubbing" in text and time.time() < end:
        time.sleep(0.05)
        text = gpu_attr(gpu, "placement")
    rows = []
    for line in text.splitlines():
        f = line.split()
        off, size = int(f[0].rstrip("M")), int(f[1].rstrip("M"))
        if f[2] in ("free", "scrubbing"):
            rows.append((off, size, f[2], None))
        else:
            rows.append((off, size, f[2], f[-1]))
    return rows


def describe_table(vram, table="bochs"):
    """{type id: (name, description)} expected for a board with `vram` (e.g. '256M'), from the
    type table mdev_types/TABLE.types through the generator's --describe mode."""
    out = sh(f"python3 {ROOT}/scripts/gen-types.py --describe {ROOT}/mdev_types/{table}.types")
    table = {}
    for line in out.splitlines():
        v, tid, name, desc = line.split("\t")
        if v == vram:
            table[int(tid)] = (name, desc)
    return table


# --- VFIO (the group/container path, like QEMU's sysfsdev=) -----------------------------------
VFIO_GET_API_VERSION = 0x3B64
VFIO_SET_IOMMU = 0x3B66
VFIO_GROUP_SET_CONTAINER = 0x3B68
VFIO_GROUP_GET_DEVICE_FD = 0x3B6A
VFIO_TYPE1v2_IOMMU = 3


class VfioDevice:
    """Opens an mdev through its IOMMU group and a type1 container (what QEMU does)."""

    def __init__(self, uuid):
        group = os.path.basename(os.readlink(f"{MDEV_DEVICES}/{uuid}/iommu_group"))
        self.container = os.open("/dev/vfio/vfio", os.O_RDWR)
        self.group = os.open(f"/dev/vfio/{group}", os.O_RDWR)
        fcntl.ioctl(self.group, VFIO_GROUP_SET_CONTAINER, struct.pack("i", self.container))
        fcntl.ioctl(self.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)
        buf = bytearray(uuid.encode() + b"\0")
        self.fd = fcntl.ioctl(self.group, VFIO_GROUP_GET_DEVICE_FD, buf, True)

    def close(self):
        for fd in (self.fd, self.group, self.container):
            os.close(fd)


VFIO_DEVICE_SET_IRQS = 0x3B6E
VFIO_PCI_REQ_IRQ_INDEX = 4
_IRQ_SET_EVENTFD_TRIGGER = (1 << 2) | (1 << 5)


def request_eventfd(dev):
    """An eventfd that the VFIO device-request interrupt of `dev` (a VfioDevice) signals, as QEMU
    sets it up: the driver raises it to ask the user to let go of the device."""
    efd = ctypes.CDLL(None, use_errno=True).eventfd(0, 0)
    fcntl.ioctl(dev.fd, VFIO_DEVICE_SET_IRQS,
                struct.pack("IIIIIi", 24, _IRQ_SET_EVENTFD_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, efd))
    return efd


# --- The physical VRAM, from the host side ----------------------------------------------------
class Vram:
    """The physical GPU's BAR0 through sysfs resource0 (needs iomem=relaxed)."""

    def __init__(self, gpu):
        path = f"/sys/bus/pci/devices/{gpu}/resource0"
        self.size = os.path.getsize(path)
        self.fd = os.open(path, os.O_RDWR | os.O_SYNC)
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self):
        self.map.close()
        os.close(self.fd)


IO_DIR = "/run/rvgpu-io"


def _host_request(service, line, timeout):
    """Asks the QEMU that runs this test VM for something (scripts/vm-run.sh's host services):
    writes `line` to io/SERVICE.req and returns what io/SERVICE.done says, or None if nothing
    after `timeout` seconds."""
    done = f"{IO_DIR}/{service}.done"
    if os.path.exists(done):
        os.unlink(done)
    with open(f"{IO_DIR}/{service}.req.tmp", "w") as f:
        f.write(f"{line}\n")
    os.rename(f"{IO_DIR}/{service}.req.tmp", f"{IO_DIR}/{service}.req")
    end = time.time() + timeout
    while time.time() < end:
        try:
            return open(done).read().strip()
        except FileNotFoundError:
            time.sleep(0.2)
    return None


def board_hotplug(op, idx, slot=None, timeout=330):
    """Unplugs board `idx` (the `--vram` order of scripts/vm-run.sh: op "del"; the guest is asked
    to eject it, and this returns once QEMU has deleted it) or plugs it back into PCI slot `slot`
    of the root bus (op "add", fresh VRAM), through the QEMU that runs this test VM (vm-run.sh's
    hotplug service). Raises OSError if that failed."""
    got = _host_request("hotplug", f"{op} {idx} {'' if slot is None else hex(slot)}", timeout)
    if got is None:
        raise OSError(f"hotplug {op} of board {idx}: no answer after {timeout} s (is this VM run by scripts/vm-run.sh?)")
    if got != "ok":
        raise OSError(f"hotplug {op} of board {idx}: {got}")


def board_screendump(gpu, name, timeout=60):
    """A picture (PPM) of board `gpu`'s own display output, taken by the QEMU that runs this test
    VM (scripts/vm-run.sh's screendump service); its path, or raises OSError."""
    idx = gpus().index(gpu)
    got = _host_request("screendump", f"{idx} {name}", timeout)
    if got is None:
        raise OSError(f"no screendump of board {idx} after {timeout} s (is this VM run by scripts/vm-run.sh?)")
    if got != name:
        raise OSError(f"screendump of board {idx} failed: {open(f'{IO_DIR}/screendump.err').read()[-300:]}")
    return f"{IO_DIR}/{name}"
