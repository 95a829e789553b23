# SPDX-License-Identifier: GPL-2.0
"""Live-migration figures, all from one test-VM run: the nested guest migrated by QEMU (TCG) over a
unix socket with return-path and switchover-ack, on rvgpu vGPUs of two sizes, idle and with its
engine workload running, pre-copy on and off (vgpu_params precopy=), beside the same guest with no
vGPU (QEMU's emulated bochs-display). Prints one table: downtime and total time from
query-migrate, bytes of the vGPU's stream against its framebuffer. Every row uses the same
downtime-limit, 1 s (QEMU's default 300 ms is out of reach for the busy guest at the few MB/s this
TCG-in-TCG setup moves, vGPU or not); a row that has not converged after 240 s says `active`.
The figures are for comparing rows, not absolute."""
import importlib.util
import os
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
os.environ.setdefault("TAP_STATE", tempfile.mkdtemp())
for f in ("count", "failed", "script_count", "script_plan"):
    open(os.path.join(os.environ["TAP_STATE"], f), "w").write("0\n")
from rvgpu import *  # noqa: E402,F403

spec = importlib.util.spec_from_file_location("livemig", os.path.join(os.path.dirname(here), "vm", "85-live-migration.py"))
lm = importlib.util.module_from_spec(spec)
src = open(spec.origin).read().split("\nload_rvgpu()\n")[0]  # the helpers, not the test run
exec(compile(src, spec.origin, "exec"), lm.__dict__)

DOWNTIME_LIMIT_MS = 1000
MIGRATE_TIMEOUT = 240


def row(gpu, type_name, busy, precopy):
    a = b = None
    if type_name:
        _, a = create(gpu, type_name)
        _, b = create(gpu, type_name)
        for u in (a, b):
            write(f"{MDEV_DEVICES}/{u}/nvidia/vgpu_params", f"precopy={int(precopy)}\n")
    tmp = tempfile.mkdtemp(prefix="rvgpu-bench-mig.")
    s = lm.qemu(tmp, "src", a, False, False, load=120 if busy else 0)
    d = None
    try:
        ready = lm.wait_line(tmp, "src", r"^NESTED: load start" if busy else r"^NESTED: ready", 300, s)
        if ready is None:
            return {"status": "no boot"}
        time.sleep(8 if busy else 2)
        d = lm.qemu(tmp, "dst", b, False, True, load=0)
        qs, qd = lm.Qmp(f"{tmp}/src.qmp"), lm.Qmp(f"{tmp}/dst.qmp")
        caps = [{"capability": "return-path", "state": True}, {"capability": "switchover-ack", "state": True}]
        for q in (qs, qd):
            q.cmd("migrate-set-capabilities", capabilities=caps)
        qs.cmd("migrate-set-parameters", **{"downtime-limit": DOWNTIME_LIMIT_MS})
        qd.cmd("migrate-incoming", uri=f"unix:{tmp}/mig.sock")
        qs.cmd("migrate", uri=f"unix:{tmp}/mig.sock")
        t0 = time.time()
        info = {}
        while time.time() - t0 < MIGRATE_TIMEOUT:
            info = qs.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.3)
        return info
    finally:
        lm.stop(s)
        if d:
            lm.stop(d)
        for u in (a, b):
            if u:
                remove(u)


def main():
    loaded_here = not os.path.isdir("/sys/module/rvgpu")
    if loaded_here:
        load_rvgpu()
    gpu = gpus()[-1]
    rows = [("no vGPU (emulated bochs-display)", None, False, False)]
    for t in ("nvidia-9104", "nvidia-9106"):
        rows += [(t, t, False, True), (t, t, False, False), (t, t, True, True), (t, t, True, False)]
    print("# live migration, one VM run, downtime-limit %d ms" % DOWNTIME_LIMIT_MS)
    print("| guest's display | framebuffer | workload | pre-copy | status | downtime ms | total ms | vGPU stream bytes | stream / framebuffer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, t, busy, pre in rows:
        fb = None
        if t:
            fb = int(read(f"{types_dir(gpu)}/{t}/description").split("framebuffer=")[1].split("M")[0]) << 20
        info = row(gpu, t, busy, pre)
        vb = (info.get("vfio") or {}).get("transferred", 0)
        name = read(f"{types_dir(gpu)}/{t}/name").strip() if t else label
        ratio = f"{vb / fb:.2f}" if fb and vb else "-"
        print(f"| {name} | {fb >> 20 if fb else '-'} MiB profile | {'engine + CPU writes' if busy else 'idle'} | "
              f"{('on' if pre else 'off') if t else '-'} | {info.get('status')} | {info.get('downtime')} | {info.get('total-time')} | "
              f"{vb or '-'} | {ratio} |", flush=True)
    if loaded_here:
        unload_rvgpu()


main()
