# SPDX-License-Identifier: GPL-2.0
"""Debian 12's libvirt (9.0, the monolithic libvirtd), unmodified, against rvgpu, with systemd-udevd
and libvirtd started for this suite only (selftests/libvirt-env.sh):

- the node-device driver lists every bound GPU as an mdev parent, and each type with its name,
  vfio-pci and the live available_instances;
- an mdev defined from XML (type, UUID, an nvidia/vgpu_params attribute) is started, marked
  autostart, stopped and undefined through virsh, and each step shows in sysfs and mdevctl;
- a domain with an mdev <hostdev display='on'> (a VNC <graphics>, <video> none) boots the nested
  guest (scripts/build-nested.sh) by `virsh start`; QEMU gets the vfio-pci device with display=on;
  the guest's engine workload and its CPU stores land in the vGPU's slice of the physical VRAM,
  byte for byte; `virsh screenshot` of its console equals the vGPU's framebuffer in that slice at
  the mode the guest set; `virsh destroy` lets go of the vGPU;
- a full GPU and a bad attribute value fail with a message that says what is wrong;
- mdevctl with udev (issue 14, item 2): a `define --auto` definition is started by udev alone
  when the module is loaded again.
"""
import atexit
import errno
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import uuid as uuidlib
import xml.etree.ElementTree as ET
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403
from nestedvm import display_mode, nested_images, nested_lines, slice_bytes, visible_rgb  # noqa: E402
from qmp import read_image  # noqa: E402

PLAN = 22
ENV = f"{ROOT}/selftests/libvirt-env.sh"
DOMAIN = "rvgpu-nested"
# The nested guest boots in about 3 minutes under TCG in TCG; its workload runs LOAD_SECONDS.
BOOT_TIMEOUT = 900
LOAD_SECONDS = 10
# `virsh screenshot` against the slice: attempts (the guest may redraw between the two reads).
SHOT_TRIES = 5


def run(*argv, timeout=300):
    """(exit status, stdout, stderr) of a command; never raises."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return 255, "", repr(e)


def virsh(*args, timeout=300):
    return run("virsh", "-c", "qemu:///system", *args, timeout=timeout)


def parent_name(gpu):
    """libvirt's node device name of a PCI device: pci_0000_00_05_0."""
    return "pci_" + re.sub(r"[:.]", "_", gpu)


def mdev_name(u, gpu):
    """libvirt's node device name of an mdev: mdev_<uuid with underscores>_<parent address>."""
    return f"mdev_{u.replace('-', '_')}_{re.sub(r'[:.]', '_', gpu)}"


def attempt(fn, *args):
    """fn(*args), or the exception's traceback as a string (a step that broke is a failure, not
    the end of the script: every planned result is reported)."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001
        return traceback.format_exc()


def safe_read(path):
    try:
        return read(path).strip()
    except OSError as e:
        return f"<{e.strerror}>"


def mdev_xml(gpu, type_name, u, attrs=()):
    a = "".join(f"<attr name='{k}' value='{v}'/>" for k, v in attrs)
    return (f"<device><parent>{parent_name(gpu)}</parent><capability type='mdev'>"
            f"<type id='{type_name}'/><uuid>{u}</uuid>{a}</capability></device>\n")


def define(tmp, gpu, type_name, u, attrs=()):
    path = f"{tmp}/{u}.xml"
    with open(path, "w") as f:
        f.write(mdev_xml(gpu, type_name, u, attrs))
    return virsh("nodedev-define", path)


def libvirt_types(gpu):
    """{type id: (name, deviceAPI, availableInstances)} from `virsh nodedev-dumpxml`."""
    rc, out, err = virsh("nodedev-dumpxml", parent_name(gpu))
    if rc != 0:
        raise RuntimeError(f"nodedev-dumpxml {parent_name(gpu)}: {err.strip()}")
    root = ET.fromstring(out)
    got = {}
    for t in root.findall("./capability[@type='pci']/capability[@type='mdev_types']/type"):
        got[t.get("id")] = (t.findtext("name"), t.findtext("deviceAPI"), t.findtext("availableInstances"))
    return got


def sysfs_types(gpu):
    return {t: (a["name"], a["device_api"], a["available_instances"]) for t, a in types(gpu).items()}


def types_match(gpu):
    """'' if libvirt's view of the GPU's types is sysfs's, else what differs."""
    lv, sy = libvirt_types(gpu), sysfs_types(gpu)
    if lv == sy:
        return ""
    diffs = [f"{t}: libvirt {lv.get(t)} sysfs {sy.get(t)}" for t in sorted(set(lv) | set(sy)) if lv.get(t) != sy.get(t)]
    return f"{gpu}: " + "; ".join(diffs)


def defined_mdevs():
    """{uuid: (parent, definition)} from `mdevctl list --defined --dumpjson`."""
    rc, out, err = run("mdevctl", "list", "--defined", "--dumpjson")
    if rc != 0:
        raise RuntimeError(f"mdevctl list --defined --dumpjson: {err.strip()}")
    found = {}
    for parents in json.loads(out or "[]"):
        for parent, devs in parents.items():
            for d in devs:
                for u, v in d.items():
                    found[u] = (parent, v)
    return found


def mdev_type(u):
    link = f"{MDEV_DEVICES}/{u}/mdev_type"
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def kernel_log_problems(mark):
    r = subprocess.run(["bash", "-c", f'. "{ROOT}/selftests/lib.sh"; kernel_problems {mark}'],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stdout[-3000:]


def pattern_word(it, w):
    """What rvgpu-load's COPY_TO_FB writes at word w of its copy line in iteration it."""
    return (((it << 10) | w) * 0x9E3779B1) & 0xFFFFFFFF


def qemu_devices(pid):
    """The -device options of QEMU process `pid`, each as a dict (libvirt 9.0 writes them as JSON;
    QEMU's key=value form, driver first, is read too)."""
    argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
    devs = []
    for opt, val in zip(argv, argv[1:]):
        if opt != "-device":
            continue
        if val.startswith("{"):
            devs.append(json.loads(val))
        else:
            parts = val.split(",")
            devs.append({"driver": parts[0], **dict(p.split("=", 1) for p in parts[1:] if "=" in p)})
    return devs


def screenshot_vs_slice(path):
    """`virsh screenshot` of the domain into `path` against the vGPU's framebuffer in its slice,
    up to SHOT_TRIES times until they are equal: (equal, what was seen, lines for diagnostics).
    libvirt 9.0 asks QEMU 10 for a PNG (image/png); a PPM is read too."""
    notes = []
    seen = ""
    for n in range(1, SHOT_TRIES + 1):
        if n > 1:
            time.sleep(2)
        mode = display_mode(u)
        rc, out, err = virsh("screenshot", DOMAIN, path, "--screen", "0")
        if rc != 0:
            notes.append(f"try {n}: virsh screenshot: {(out + err).strip()}")
            continue
        try:
            w, h, rgb = read_image(path)
        except (ValueError, IndexError, zlib.error) as e:
            notes.append(f"try {n}: {out.strip()}: {e!r}")
            continue
        if mode is None or mode[2] != 32 or mode != display_mode(u):
            notes.append(f"try {n}: nvidia/display {mode} (now {display_mode(u)})")
            continue
        want = visible_rgb(big, u, mode)
        lit = sum(1 for i in range(0, len(rgb), 3 * 97) if rgb[i:i + 3] != b"\0\0\0")
        seen = (f"{w}x{h}, mode {mode[0]}x{mode[1]} stride {mode[3]} offset {mode[4]:#x}, "
                f"{lit} sampled pixels lit, try {n} of {SHOT_TRIES}")
        if (w, h) == mode[:2] and rgb == want and lit > 0:
            return True, seen, notes + [out.strip()]
        diff = next((i for i in range(0, min(len(rgb), len(want)), 3) if rgb[i:i + 3] != want[i:i + 3]), None)
        notes.append(f"try {n}: screenshot {w}x{h} ({len(rgb)} bytes), nvidia/display {mode} ({len(want)} bytes), "
                     f"{lit} sampled pixels lit"
                     + (f", first difference at pixel ({diff // 3 % w}, {diff // 3 // w})" if diff is not None else ""))
    return False, seen, notes


def domain_xml(tmp, u):
    bz, initrd = nested_images()
    # <acpi/>: libvirt 9.0 turns ACPI off with -no-acpi, which QEMU 10 no longer has; with ACPI
    # on it uses neither (the nested kernel has no ACPI: it does not matter to the guest).
    # display='on' needs a <graphics> (libvirt refuses it without one); <video> none keeps libvirt
    # from adding its default VGA, so the vGPU's display is QEMU's console 0, the screenshot's.
    return f"""<domain type='qemu'>
  <name>{DOMAIN}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{bz}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet rvgpu.hold=900 rvgpu.load={LOAD_SECONDS}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='file'><source path='{tmp}/{DOMAIN}.serial'/><target port='0'/></serial>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='none'/></video>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on'>
      <source><address uuid='{u}'/></source>
    </hostdev>
  </devices>
</domain>
"""


mark = len(dmesg_lines())
load_rvgpu()
bound = gpus()
small, big = bound[0], bound[-1]
tmp = tempfile.mkdtemp(prefix="rvgpu-libvirt.", dir="/run")
env_down = False


@atexit.register
def _leave_vm_as_found():
    """Whatever broke, the suites after this one get a VM without libvirtd and udevd."""
    if not env_down:
        virsh("destroy", DOMAIN)
        run(ENV, "down", timeout=300)


# --- libvirtd and udevd -----------------------------------------------------------------------
t0 = time.monotonic()
rc, out, err = run(ENV, "up", timeout=600)
up = rc == 0
check(f"udevd and libvirtd start in the test VM ({time.monotonic() - t0:.0f} s)", up, out, err)

# --- Parents and types ------------------------------------------------------------------------
# Every PCI device bound to `nvidia` is a parent with mdev types, and nothing else is.
rc, out, err = virsh("nodedev-list", "--cap", "mdev_types")
listed = sorted(out.split())
check(f"virsh nodedev-list --cap mdev_types lists every bound GPU ({', '.join(listed)})",
      rc == 0 and listed == sorted(parent_name(g) for g in bound), f"listed {listed}", f"bound {bound}", err)

# Each type with its name, vfio-pci and the live available_instances, exactly as in sysfs.
res = [attempt(types_match, g) for g in bound]
check("virsh nodedev-dumpxml shows every type of every GPU with sysfs's name, deviceAPI vfio-pci and availableInstances",
      all(r == "" for r in res) and all(a[1] == "vfio-pci" for g in bound for a in sysfs_types(g).values()), *res)

# --- An mdev defined, started, autostarted, stopped and undefined through virsh -------------------
u = str(uuidlib.uuid4())
name = mdev_name(u, big)
avail_before = available(big, "nvidia-9104")
rc, out, err = define(tmp, big, "nvidia-9104", u, [("nvidia/vgpu_params", "frame_rate_limiter=0")])
d = attempt(defined_mdevs)
rc2, out2, _ = virsh("nodedev-list", "--cap", "mdev", "--inactive")
check("virsh nodedev-define of an mdev XML (type, UUID, nvidia/vgpu_params): an inactive node device, an mdevctl definition, no vGPU yet",
      rc == 0 and name in out2.split() and isinstance(d, dict) and u in d
      and d[u][0] == big and d[u][1].get("mdev_type") == "nvidia-9104"
      and d[u][1].get("attrs") == [{"nvidia/vgpu_params": "frame_rate_limiter=0"}]
      and not os.path.exists(f"{MDEV_DEVICES}/{u}"), out + err, out2, d)

rc, out, err = virsh("nodedev-start", name)
params = safe_read(f"{MDEV_DEVICES}/{u}/nvidia/vgpu_params")
check("virsh nodedev-start creates the vGPU in sysfs with its type and the attribute applied",
      rc == 0 and mdev_type(u) == "nvidia-9104" and params == "frame_rate_limiter=0"
      and os.path.realpath(f"{MDEV_DEVICES}/{u}").startswith(f"/sys/devices/pci0000:00/{big}/"),
      out + err, f"type {mdev_type(u)}, vgpu_params {params}")

res = attempt(types_match, big)
check(f"availableInstances follows sysfs after one vGPU was created (nvidia-9104: {avail_before} -> {available(big, 'nvidia-9104')})",
      res == "" and available(big, "nvidia-9104") == avail_before - 1, res)

rc, out, err = virsh("nodedev-autostart", name)
rc2, info, _ = virsh("nodedev-info", name)
d = attempt(defined_mdevs)
check("virsh nodedev-autostart: libvirt says Autostart yes, mdevctl's definition starts auto",
      rc == 0 and re.search(r"^Autostart:\s+yes$", info, re.M) and isinstance(d, dict)
      and d.get(u, (None, {}))[1].get("start") == "auto", out + err, info, d)

# --- A domain on the vGPU -----------------------------------------------------------------------
# The nested guest's bochs-drm drives the vGPU; its rvgpu-load runs the vGPU's engine (DMA into
# the guest's memory and back) and writes a page through the BAR with the CPU; the host then
# reads the same bytes from the vGPU's slice of the physical VRAM.
dom = f"{tmp}/{DOMAIN}.xml"
with open(dom, "w") as f:
    f.write(domain_xml(tmp, u))
rc, out, err = virsh("define", dom)
t0 = time.monotonic()
rc2, out2, err2 = virsh("start", DOMAIN)
pid = safe_read(f"/run/libvirt/qemu/{DOMAIN}.pid")
vm_name = safe_read(f"{MDEV_DEVICES}/{u}/nvidia/vm_name")
check(f"virsh start of a domain with an mdev hostdev: QEMU runs and holds the vGPU (vm_name {vm_name})",
      rc == 0 and rc2 == 0 and vm_name == f"qemu-system-x86[{pid}]", out + err, out2 + err2,
      f"QEMU pid {pid}", run("tail", "-5", f"/var/log/libvirt/qemu/{DOMAIN}.log")[1])

# libvirt hands the hostdev's display='on' to QEMU's vfio-pci device, with the VNC server and no
# emulated video device.
devs = attempt(qemu_devices, pid)
vfio = [d for d in devs if d.get("driver") == "vfio-pci"] if isinstance(devs, list) else []
video = [d for d in devs if d.get("driver") in ("VGA", "cirrus-vga", "qxl-vga", "virtio-vga", "bochs-display",
                                               "ramfb")] if isinstance(devs, list) else []
args = safe_read(f"/proc/{pid}/cmdline").split("\0")
check("QEMU's command line: the mdev's vfio-pci device with display=on, a VNC server, no emulated video device",
      len(vfio) == 1 and vfio[0].get("sysfsdev") == f"{MDEV_DEVICES}/{u}" and vfio[0].get("display") == "on"
      and "-vnc" in args and not video, f"vfio-pci devices: {vfio}", f"video devices: {video}",
      f"QEMU pid {pid}: {' '.join(args)[-1500:]}" if isinstance(devs, list) else devs)

# The vGPU is in use: its parameters cannot change under the guest.
m = len(dmesg_lines())
e = write(f"{MDEV_DEVICES}/{u}/nvidia/vgpu_params", "frame_rate_limiter=1\n")
log = "\n".join(dmesg_lines()[m:])
check("while the domain runs, vgpu_params is refused with EPERM (and the driver says why)",
      e == errno.EPERM and "vgpu_params: refused while the vGPU is open" in log, errname(e), log)

end = time.time() + BOOT_TIMEOUT
lines = []
while time.time() < end:
    lines = nested_lines(tmp, DOMAIN)
    if any(x.startswith(("NESTED: load done", "NESTED: done")) for x in lines):
        break
    if virsh("domstate", DOMAIN)[1].strip() != "running":
        break
    time.sleep(3)
took = time.monotonic() - t0
lines = nested_lines(tmp, DOMAIN)
loads = [x for x in lines if re.match(r"NESTED: load (mismatch|error)", x)]
check(f"the nested guest's console: bochs-drm drives the vGPU, the engine workload ran clean ({took:.0f} s after virsh start)",
      any(x.startswith("NESTED: drm bochs-drm ") for x in lines) and "NESTED: ready" in lines
      and "NESTED: load done status=0" in lines and not loads, *lines[-25:])


def slice_holds_pattern():
    start = next(x for x in lines if x.startswith("NESTED: load start"))
    base = int(re.search(r"base=0x([0-9a-f]+)", start).group(1), 16)
    last = [x for x in lines if x.startswith("NESTED: load iter=")][-1]
    m = re.search(r"iter=(\d+) ok=(\d+) mismatches=0 errors=0 fb=0x([0-9a-f]+)", last)
    it, fb = int(m.group(1)), int(m.group(3), 16)
    probs = []
    if it < 1 or fb != 0xFB000000 | (it & 0xFFFFFF):
        probs.append(f"last report: {last}")
    want = {
        "CPU page": (base + 0x8000, struct.pack("<I", fb) * 1024),
        "engine copy line": (base + 0x4000, b"".join(struct.pack("<I", pattern_word(it, w)) for w in range(1024))),
    }
    for k in range(4):
        want[f"engine fill line {k}"] = (base + k * 0x1000, struct.pack("<I", 0xF1000000 | (it & 0xFFFFFF)) * 256)
    for what, (off, data) in want.items():
        got = slice_bytes(big, u, off, len(data))
        if got != data:
            probs.append(f"{what} at {off:#x}: {sum(a != b for a, b in zip(got, data))} bytes differ, first word "
                         f"{int.from_bytes(got[:4], 'little'):#x} want {int.from_bytes(data[:4], 'little'):#x}")
    return probs, it


r = attempt(slice_holds_pattern)
check(f"the vGPU's slice of the physical VRAM holds what the nested guest wrote, byte for byte"
      f"{f' (iteration {r[1]})' if isinstance(r, tuple) else ''}",
      isinstance(r, tuple) and not r[0], *(r[0] if isinstance(r, tuple) else [r]))

# The guest's console (fbcon on bochs-drm, still while the guest holds) through libvirt: QEMU takes
# the vGPU's region display plane, and `virsh screenshot` (a PNG) must equal the visible area of
# the framebuffer at the mode the guest set, read from the vGPU's slice of the physical VRAM.
end = time.time() + 60
while time.time() < end and attempt(display_mode, u) is None:
    time.sleep(1)
r = attempt(screenshot_vs_slice, f"{tmp}/{DOMAIN}.png")
check(f"virsh screenshot of the nested guest's console equals the vGPU's framebuffer at the guest's mode, "
      f"and is not blank{f' ({r[1]})' if isinstance(r, tuple) and r[1] else ''}",
      isinstance(r, tuple) and r[0], *(r[2] if isinstance(r, tuple) else [r]),
      f"nvidia/display: {safe_read(f'{MDEV_DEVICES}/{u}/nvidia/display')}",
      run("tail", "-5", f"/var/log/libvirt/qemu/{DOMAIN}.log")[1])
if isinstance(r, tuple) and r[0]:
    diag(f"virsh: {r[2][-1]}")

rc, out, err = virsh("destroy", DOMAIN)
state = virsh("domstate", DOMAIN)[1].strip()
gone = not pid.isdigit() or not os.path.exists(f"/proc/{pid}")
vm_after = safe_read(f"{MDEV_DEVICES}/{u}/nvidia/vm_name")
e = write(f"{MDEV_DEVICES}/{u}/nvidia/vgpu_params", "frame_rate_limiter=0\n")
check("virsh destroy: the domain is shut off, its QEMU gone, the vGPU free (vm_name empty, vgpu_params writable)",
      rc == 0 and state == "shut off" and gone and vm_after == "" and e == 0 and os.path.exists(f"{MDEV_DEVICES}/{u}"),
      out + err, f"state {state}, QEMU gone {gone}, vm_name {vm_after!r}, write {errname(e)}")
virsh("undefine", DOMAIN)

rc, out, err = virsh("nodedev-destroy", name)
res = attempt(types_match, big)
check("virsh nodedev-destroy removes the vGPU; availableInstances is back and still sysfs's",
      rc == 0 and not os.path.exists(f"{MDEV_DEVICES}/{u}") and res == ""
      and available(big, "nvidia-9104") == avail_before, out + err, res)

rc, out, err = virsh("nodedev-undefine", name)
d = attempt(defined_mdevs)
rc2, out2, _ = virsh("nodedev-list", "--all")
check("virsh nodedev-undefine: gone from mdevctl list --defined and from libvirt",
      rc == 0 and isinstance(d, dict) and u not in d and name not in out2.split(), out + err, d)

# --- Errors -------------------------------------------------------------------------------------
# A full GPU: the small GPU holds one nvidia-9106. mdevctl checks available_instances before it
# writes `create`, and libvirt passes its message on.
u1, u2 = str(uuidlib.uuid4()), str(uuidlib.uuid4())
define(tmp, small, "nvidia-9106", u1)
define(tmp, small, "nvidia-9106", u2)
rc1, out1, err1 = virsh("nodedev-start", mdev_name(u1, small))
rc2, out2, err2 = virsh("nodedev-start", mdev_name(u2, small))
res = attempt(types_match, small)
want = f"No available instances of nvidia-9106 on {small}"
check("a full GPU: the second nodedev-start fails, virsh saying there is no available instance of the type on that GPU",
      rc1 == 0 and rc2 != 0 and want in err2 and not os.path.exists(f"{MDEV_DEVICES}/{u2}")
      and available(small, "nvidia-9106") == 0 and res == "", err1, err2, res)
diag(f"virsh: {' '.join(err2.split())}")
for x in (u1, u2):
    virsh("nodedev-destroy", mdev_name(x, small))
    virsh("nodedev-undefine", mdev_name(x, small))

# A bad attribute value: the driver refuses the write with EINVAL and logs why; mdevctl removes
# the vGPU it made and names the attribute and the value; libvirt passes that on.
u3 = str(uuidlib.uuid4())
define(tmp, big, "nvidia-9104", u3, [("nvidia/vgpu_params", "frame_rate_limiter=2")])
m = len(dmesg_lines())
rc, out, err = virsh("nodedev-start", mdev_name(u3, big))
log = "\n".join(dmesg_lines()[m:])
check("a bad vgpu_params value: nodedev-start fails naming the attribute, the value and EINVAL; the driver's log line says why",
      rc != 0 and "Failed to write frame_rate_limiter=2 to attribute nvidia/vgpu_params" in err
      and "Invalid argument" in err and "vgpu_params: bad value '2' for 'frame_rate_limiter'" in log
      and not os.path.exists(f"{MDEV_DEVICES}/{u3}"), err, log)
diag(f"virsh: {' '.join(err.split())}")
virsh("nodedev-undefine", mdev_name(u3, big))

# --- mdevctl and udev: a --auto definition comes back when the driver is loaded again -----------
# mdevctl's udev rule runs `mdevctl start-parent-mdevs` when a parent registers with mdev (the
# change event with MDEV_STATE=registered): nothing else starts it here. (Debian 12's rule names
# /usr/sbin/mdevctl, which the package does not install: libvirt-env.sh puts a copy with the
# right path in /run/udev/rules.d.)
u4 = str(uuidlib.uuid4())
rc, out, err = run("mdevctl", "define", "-u", u4, "-p", big, "--type", "nvidia-9105", "--auto")
rc2, out2, err2 = run("mdevctl", "modify", "-u", u4, "--addattr=nvidia/vgpu_params", "--value=precopy=0")
left = sorted(os.listdir(MDEV_DEVICES))
rm_rc, _, rm_err = run("rmmod", "rvgpu")
ins_rc, _, ins_err = run("insmod", f"{ROOT}/rvgpu.ko")
t0 = time.monotonic()
while time.monotonic() < t0 + 120 and not os.path.exists(f"{MDEV_DEVICES}/{u4}/nvidia/vgpu_params"):
    run("udevadm", "settle", "--timeout=10")
    time.sleep(0.5)
took = time.monotonic() - t0
params = safe_read(f"{MDEV_DEVICES}/{u4}/nvidia/vgpu_params")
check(f"mdevctl define --auto, rmmod, insmod: udev starts the definition again by itself ({took:.1f} s), with its type and attribute",
      rc == 0 and rc2 == 0 and not left and rm_rc == 0 and ins_rc == 0 and mdev_type(u4) == "nvidia-9105"
      and params == "precopy=0", err + err2, f"vGPUs before rmmod: {left}", rm_err, ins_err,
      f"type {mdev_type(u4)}, vgpu_params {params}")
run("mdevctl", "stop", "-u", u4)
run("mdevctl", "undefine", "-u", u4)
d = attempt(defined_mdevs)
check("after the reload: every board bound again, no vGPU and no definition left",
      gpus() == bound and not os.listdir(MDEV_DEVICES) and d == {}, f"bound {gpus()} (before: {bound})",
      f"vGPUs {os.listdir(MDEV_DEVICES)}", d)

# --- The VM as it was -----------------------------------------------------------------------------
rc, out, err = run(ENV, "down", timeout=300)
env_down = True
procs = run("ps", "-eo", "comm=")[1].split()
mounts = read("/proc/mounts")
check("libvirtd and udevd stopped, /etc/libvirt and /var/cache/libvirt unmounted, /run/udev removed",
      rc == 0 and "libvirtd" not in procs and "systemd-udevd" not in procs
      and " /etc/libvirt " not in mounts and " /var/cache/libvirt " not in mounts
      and not os.path.exists("/run/udev"), out + err, [p for p in procs if "udev" in p or "libvirt" in p])
shutil.rmtree(tmp, ignore_errors=True)

found, text = kernel_log_problems(mark)
check("no kernel warning, oops, BUG or sanitizer report during the libvirt suite", not found, text)
unload_rvgpu()
