# SPDX-License-Identifier: GPL-2.0
"""Live-migration figures, all from one test-VM run: the nested guest migrated by QEMU (TCG) over a
unix socket with return-path and switchover-ack, on rvgpu vGPUs with 64 MiB and 256 MiB profiles
(the 256 MiB one from one 256 MiB board to the other), idle and with its engine workload running,
pre-copy on and off (vgpu_params precopy=), beside the same guest with no vGPU (QEMU's emulated
bochs-display) and with the kernel's mtty sample (enable-migration=on). Prints one table:
downtime and total time from query-migrate, bytes of the device's stream against the vGPU's
framebuffer, pre-copy rounds and pages sent again. The rows run at QEMU's default
downtime-limit (300 ms), but those with pre-copy off: a stop-copy of the whole framebuffer cannot
fit in 300 ms at the few MB/s this TCG-in-TCG setup moves, so they get 10 s (the limit KubeVirt
had to force for NVIDIA's STOP_COPY-only vGPUs) and show what the stun costs. A row that has not
converged after 200 s says `active`. The figures are for comparing rows, not absolute."""
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

DEFAULT_LIMIT_MS = 300
STOP_COPY_LIMIT_MS = 10000
MIGRATE_TIMEOUT = 200


def row(gpus_, type_name, busy, precopy, limit):
    a = b = ta = tb = None
    counters = {}
    if type_name == "mtty":
        (ta, _), (tb, _) = lm.create_mtty(), lm.create_mtty()
    elif type_name:
        _, a = create(gpus_[0], type_name)
        _, b = create(gpus_[-1], type_name)
        for u in (a, b):
            write(f"{MDEV_DEVICES}/{u}/nvidia/vgpu_params", f"precopy={int(precopy)}\n")
    tmp = tempfile.mkdtemp(prefix="rvgpu-bench-mig.")
    s = lm.qemu(tmp, "src", a, False, False, load=120 if busy else 0, mtty=ta)
    d = None
    try:
        ready = lm.wait_line(tmp, "src", r"^NESTED: load start" if busy else r"^NESTED: ready", 300, s)
        if ready is None:
            return {"status": "no boot"}, {}
        time.sleep(8 if busy else 2)
        d = lm.qemu(tmp, "dst", b, False, True, load=0, mtty=tb)
        qs, qd = lm.Qmp(f"{tmp}/src.qmp"), lm.Qmp(f"{tmp}/dst.qmp")
        blocker, info = lm.drive(f"[{type_name or 'emulated'}]", tmp, qs, qd,
                                 None if limit == DEFAULT_LIMIT_MS else limit, timeout=MIGRATE_TIMEOUT)
        if blocker:
            return {"status": f"blocked: {blocker}"}, {}
        if a:
            counters = lm.mig_attr(a)
        return info, counters
    finally:
        lm.stop(s)
        if d:
            lm.stop(d)
        for u in (a, b):
            if u:
                remove(u)
        for u in (ta, tb):
            if u:
                write(f"{MDEV_DEVICES}/{u}/remove", "1\n")


def main():
    loaded_here = not os.path.isdir("/sys/module/rvgpu")
    if loaded_here:
        load_rvgpu()
    g = gpus()
    gpu = g[-1]
    rows = [("no vGPU (emulated bochs-display)", None, False, False),
            ("mtty (emulated bochs-display)", "mtty", False, False)]
    for t in ("nvidia-9106", "nvidia-9108"):
        rows += [(t, t, False, True), (t, t, False, False), (t, t, True, True), (t, t, True, False)]
    print("# live migration, one VM run; boards %s" % " ".join(g))
    print("| guest's device | framebuffer | workload | pre-copy | downtime-limit ms | status | downtime ms | total ms | device stream bytes | stream / framebuffer | pre-copy rounds | pages sent again |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, t, busy, pre in rows:
        fb = None
        vgpu = t and t != "mtty"
        if vgpu:
            fb = int(read(f"{types_dir(gpu)}/{t}/description").split("framebuffer=")[1].split("M")[0]) << 20
        limit = STOP_COPY_LIMIT_MS if vgpu and not pre else DEFAULT_LIMIT_MS
        info, c = row(g, t, busy, pre, limit)
        vb = (info.get("vfio") or {}).get("transferred", 0)
        name = read(f"{types_dir(gpu)}/{t}/name").strip() if vgpu else label
        ratio = f"{vb / fb:.2f}" if fb and vb else "-"
        print(f"| {name} | {fb >> 20 if fb else '-'} MiB profile | {'engine + CPU writes' if busy else 'idle'} | "
              f"{('on' if pre else 'off') if vgpu else '-'} | {limit} | {info.get('status')} | {info.get('downtime')} | {info.get('total-time')} | "
              f"{vb or '-'} | {ratio} | {c.get('precopy_rounds', '-')} | {c.get('vram_resent_pages', '-')} |", flush=True)
    if loaded_here:
        unload_rvgpu()


main()
