# SPDX-License-Identifier: GPL-2.0
"""Live migration of a running VM with its vGPU, driven as a management stack does it: QEMU 10
with its DEFAULT vfio-pci properties (enable-migration=auto, which needs the device's DMA
logging), over a unix socket through QMP, with `return-path` and `switchover-ack` on, the
destination started with `-incoming defer` on its own new vGPU of the same type. Case (a) and the
mtty comparison run at QEMU's default downtime-limit (300 ms), which pre-copy with the
framebuffer's dirty tracking meets; case (b) sets 5 s, so that a slow moment of this TCG-in-TCG
setup (a few MB/s) cannot keep the cross-board check from running.

The nested guest (selftests/nested/init with rvgpu.load=SECONDS) keeps its engine busy across the
switchover: FILL and COPY_TO_FB into an off-screen part of the framebuffer, COPY_FROM_FB back into
its RAM, FENCE, every result checked, plus CPU writes through its BAR0 mapping. Afterwards the
workload must report no mismatch on the destination (so the pages the engine wrote by DMA
arrived), the destination's slice must hold what the guest last wrote, and the source vGPU must
be removable.

(a) same board, VFIO container path; (b) a board with another VRAM size, iommufd path (the
source stays on the container path: each side picks its own). Pre-copy must run more than one
round: the framebuffer's dirty tracking sends the pages the guest changes while it runs again.

(c) The comparison: the same nested guest with the kernel's mtty sample instead of a vGPU
(QEMU's emulated display), migrated the same way; mtty has no DMA logging, so it needs
`enable-migration=on`."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid as uuid_mod

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403
from qmp import Qmp  # noqa: E402
from nestedvm import nested_lines, qemu as nested_qemu, slice_word, stop, wait_line  # noqa: E402

PLAN = 19

TYPE = "nvidia-9104"  # GRID RVGPU-16Q: 13 MiB of framebuffer, on every board
LOAD_SECONDS = 75
BOOT_TIMEOUT = 240
MIGRATE_TIMEOUT = 300
DOWNTIME_LIMIT_MS = 5000  # case (b); None: QEMU's default


def qemu(tmp, name, uuid, iommufd, incoming, load=LOAD_SECONDS, mtty=None):
    return nested_qemu(tmp, name, uuid, iommufd, incoming, load=load, mtty=mtty)


def mig_attr(uuid):
    return dict(kv.split("=", 1) for kv in read(f"{MDEV_DEVICES}/{uuid}/nvidia/migration").split())


def drive(t, tmp, qs, qd, limit=None, timeout=MIGRATE_TIMEOUT):
    """Migrates from QMP `qs` to `qd` over a unix socket, return-path and switchover-ack on, at
    downtime-limit `limit` ms (None: QEMU's default), for at most `timeout` s; the migrate
    command's error (a blocker) or None, and the last query-migrate."""
    caps = [{"capability": "return-path", "state": True}, {"capability": "switchover-ack", "state": True}]
    for q in (qs, qd):
        q.cmd("migrate-set-capabilities", capabilities=caps)
    # The vfio-pci properties stay at their defaults.
    if limit is not None:
        qs.cmd("migrate-set-parameters", **{"downtime-limit": limit})
    qd.cmd("migrate-incoming", uri=f"unix:{tmp}/mig.sock")
    t0 = time.time()
    try:
        qs.cmd("migrate", uri=f"unix:{tmp}/mig.sock")
    except RuntimeError as e:
        return str(e), {}
    info = {}
    while time.time() - t0 < timeout:
        info = qs.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.5)
    diag(f"{t} query-migrate: status={info.get('status')} total-time={info.get('total-time')} ms "
         f"downtime={info.get('downtime')} ms setup-time={info.get('setup-time')} ms "
         f"vfio={info.get('vfio')} ram-transferred={info.get('ram', {}).get('transferred')}")
    return None, info


def create_mtty():
    """An mtty mdev (2 ports); its UUID, or an error text."""
    if subprocess.run(["modprobe", "mtty"], capture_output=True).returncode != 0:
        return None, "modprobe mtty failed"
    u = str(uuid_mod.uuid4())
    try:
        write("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create", u + "\n")
    except OSError as e:
        return None, f"create mtty-2: {e}"
    return u, None


def migrate_mtty(tag):
    """(c) Three results."""
    t = f"[{tag}]"
    (a, ea), (b, eb) = create_mtty(), create_mtty()
    tmp = tempfile.mkdtemp(prefix="rvgpu-mig-mtty.")
    src = dst = None
    try:
        if ea or eb:
            for _ in range(3):
                fail(f"{t} create two mtty devices", f"{ea} {eb}")
            return
        src = qemu(tmp, "src", None, False, False, load=0, mtty=a)
        ready = wait_line(tmp, "src", r"^NESTED: ready", BOOT_TIMEOUT, src)
        check(f"{t} the nested guest boots with an mtty device", ready is not None,
              *nested_lines(tmp, "src")[-10:], open(f"{tmp}/src.out").read()[-800:])
        if ready is None:
            fail(f"{t} (not reached: the guest did not boot)")
            fail(f"{t} (not reached: the guest did not boot)")
            return
        dst = qemu(tmp, "dst", None, False, True, load=0, mtty=b)
        qs, qd = Qmp(f"{tmp}/src.qmp"), Qmp(f"{tmp}/dst.qmp")
        blocker, info = drive(t, tmp, qs, qd)
        check(f"{t} QEMU migrates the guest with mtty (enable-migration=on): completed",
              blocker is None and info.get("status") == "completed", f"migrate: {blocker}", json.dumps(info)[:400],
              open(f"{tmp}/src.out").read()[-800:], open(f"{tmp}/dst.out").read()[-800:])
        running = qd.cmd("query-status").get("status") if info.get("status") == "completed" else None
        check(f"{t} the guest runs on the destination", running == "running", f"status {running}")
    finally:
        for p in (src, dst):
            if p:
                stop(p)
        for u in (a, b):
            if u:
                try:
                    write(f"{MDEV_DEVICES}/{u}/remove", "1\n")
                except OSError as e:
                    diag(f"{t} removing mtty {u}: {e}")


def stuck_report(tmp, q, proc, uuid):
    """What a destination that makes no progress is doing: its QEMU's state and output, the
    vGPU's registers as nvidia/ shows them, and the kernel stacks of QEMU's threads."""
    out = []
    try:
        out.append(f"query-status: {q.cmd('query-status')}")
    except (OSError, ValueError, RuntimeError) as e:
        out.append(f"query-status: {e}")
    try:
        out.append("dst QEMU output: " + open(f"{tmp}/dst.out").read()[-600:])
    except OSError:
        pass
    for name in ("display", "migration", "vm_name"):
        try:
            out.append(f"nvidia/{name}: {read(f'{MDEV_DEVICES}/{uuid}/nvidia/{name}').strip()}")
        except OSError:
            pass
    tasks = f"/proc/{proc.pid}/task"
    for tid in sorted(os.listdir(tasks)) if os.path.isdir(tasks) else []:
        try:
            comm = read(f"{tasks}/{tid}/comm").strip()
            stack = read(f"{tasks}/{tid}/stack").strip().replace("\n", " | ")
            out.append(f"thread {tid} {comm}: {stack[:300]}")
        except OSError:
            pass
    return out


def migrate(tag, src_gpu, dst_gpu, dst_iommufd, limit=None):
    """One migration; reports eight results."""
    t = f"[{tag}]"
    e1, a = create(src_gpu, TYPE)
    e2, b = create(dst_gpu, TYPE)
    if e1 or e2:
        for _ in range(8):
            fail(f"{t} create the source and destination vGPUs", f"create: {e1} {e2}")
        return
    tmp = tempfile.mkdtemp(prefix="rvgpu-mig.")
    src = qemu(tmp, "src", a, False, False)
    try:
        start = wait_line(tmp, "src", r"^NESTED: load start", BOOT_TIMEOUT, src)
        check(f"{t} the nested guest boots on the source vGPU and starts its engine workload",
              start is not None, *nested_lines(tmp, "src")[-10:], open(f"{tmp}/src.out").read())
        if start is None:
            for _ in range(6):
                fail(f"{t} (not reached: the guest did not start)")
        else:
            run_migration(t, tmp, src, start, a, b, dst_gpu, dst_iommufd, limit)
    finally:
        stop(src)
    e = remove(a)
    check(f"{t} the source vGPU is removed after the migration", e == 0, f"remove: {e}")
    remove(b)


def run_migration(t, tmp, src, start, a, b, dst_gpu, dst_iommufd, limit):
    """Six results."""
    dst = None
    try:
        diag(f"{t} {start}")
        dbg = f"/sys/kernel/debug/vfio/{a}/migration"
        try:
            features, state = read(f"{dbg}/features").split(), read(f"{dbg}/state").strip()
        except OSError as e:
            features, state = [], f"unreadable: {e}"
        check(f"{t} the VFIO core's debugfs shows the vGPU's migration features and state",
              {"stop-copy", "p2p", "pre-copy", "dirty-tracking"} <= set(features) and state == "RUNNING",
              f"{dbg}: features {features}, state {state}")
        base = int(re.search(r"base=(0x[0-9a-f]+)", start).group(1), 16)
        time.sleep(8)  # the engine is busy now
        dst = qemu(tmp, "dst", b, dst_iommufd, True)
        qs, qd = Qmp(f"{tmp}/src.qmp"), Qmp(f"{tmp}/dst.qmp")
        blocker, info = drive(t, tmp, qs, qd, limit)
        check(f"{t} QEMU migrates the vGPU with its default vfio-pci properties (no migration blocker)",
              blocker is None, f"migrate: {blocker}")
        status = info.get("status")
        check(f"{t} the migration completes (pre-copy, switchover-ack, downtime-limit "
              f"{limit or 'QEMU default 300'} ms)",
              status == "completed", json.dumps(info)[:400], open(f"{tmp}/src.out").read()[-800:],
              open(f"{tmp}/dst.out").read()[-800:])
        m = mig_attr(a)
        diag(f"{t} source nvidia/migration: {read(f'{MDEV_DEVICES}/{a}/nvidia/migration').strip()}")
        diag(f"{t} destination nvidia/migration: {read(f'{MDEV_DEVICES}/{b}/nvidia/migration').strip()}")
        check(f"{t} pre-copy ran more than one round: the pages the guest changed were sent again",
              int(m.get("precopy_rounds", 0)) > 1 and int(m.get("vram_resent_pages", 0)) > 0, str(m))
        running = qd.cmd("query-status").get("status") if status == "completed" else None
        try:
            qs.cmd("quit")
        except (OSError, ValueError, RuntimeError):
            pass  # QEMU may close the socket before it answers
        try:
            src.wait(30)
        except subprocess.TimeoutExpired:
            stop(src)
        done = wait_line(tmp, "dst", r"^NESTED: load done", LOAD_SECONDS + 120, dst)
        last = [line for line in nested_lines(tmp, "dst") if line.startswith("NESTED: load iter")]
        diag(f"{t} destination: status {running}; {done}; last report: {last[-1] if last else '-'}")
        mism = [line for line in nested_lines(tmp, "dst") if line.startswith(("NESTED: load mismatch", "NESTED: load error"))]
        ok = running == "running" and done == "NESTED: load done status=0" and not mism
        check(f"{t} the guest runs on the destination and its engine workload reports no mismatch across the switchover",
              ok, *(mism[:10] or nested_lines(tmp, "dst")[-8:]), *([] if ok else stuck_report(tmp, qd, dst, b)))
        want = None
        if last:
            fbv = re.search(r"fb=(0x[0-9a-f]+)", last[-1])
            want = int(fbv.group(1), 16) if fbv else None
        got = slice_word(dst_gpu, b, base + 0x8000) if want is not None else None
        check(f"{t} the destination slice holds what the guest last wrote (CPU page {want and hex(want)})",
              want is not None and got == want, f"slice word {got and hex(got)}, the guest's last value {want and hex(want)}")
    finally:
        if dst:
            stop(dst)


load_rvgpu()
g = gpus()
migrate("same board, container", g[-1], g[-1], False)
migrate(f"board {g[-1]} to board {g[0]}, destination on iommufd", g[-1], g[0], True, DOWNTIME_LIMIT_MS)
unload_rvgpu()
migrate_mtty("mtty, the comparison")
subprocess.run(["rmmod", "mtty"], capture_output=True)
