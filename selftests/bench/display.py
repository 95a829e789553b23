# SPDX-License-Identifier: GPL-2.0
"""Display figures, from one test-VM run: the screendump round trip (QMP request sent to the
answer, the file written) of the nested guest's 1024x768 console, on a vGPU with display=on (QEMU
reads the vGPU's display region) beside the same guest on QEMU's emulated bochs-display, PPM and
PNG. Figures only: nothing here passes or fails."""
import os
import statistics
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
os.environ.setdefault("TAP_STATE", tempfile.mkdtemp())
for f in ("count", "failed", "script_count", "script_plan"):
    open(os.path.join(os.environ["TAP_STATE"], f), "w").write("0\n")
from rvgpu import *  # noqa: E402,F403
from qmp import Qmp, read_ppm, screendump  # noqa: E402
from nestedvm import qemu, stop, wait_line  # noqa: E402

SHOTS = 20


def row(gpu, type_name):
    u = None
    if type_name:
        _, u = create(gpu, type_name)
    tmp = tempfile.mkdtemp(prefix="rvgpu-bench-display.")
    p = qemu(tmp, "g", u, False, False, display=bool(u), append="video=1024x768")
    out = {}
    try:
        if wait_line(tmp, "g", r"^NESTED: ready", 300, p) is None:
            return {"status": "no boot"}
        q = Qmp(f"{tmp}/g.qmp")
        for fmt in ("ppm", "png"):
            times = []
            for i in range(SHOTS):
                t0 = time.perf_counter()
                screendump(q, f"{tmp}/s{i}.{fmt}", fmt)
                times.append((time.perf_counter() - t0) * 1000)
            out[fmt] = (statistics.median(times), sorted(times)[int(SHOTS * 0.9) - 1])
        w, h, _ = read_ppm(f"{tmp}/s0.ppm")
        out["size"] = f"{w}x{h}"
        return out
    finally:
        stop(p)
        if u:
            remove(u)


def main():
    loaded_here = not os.path.isdir("/sys/module/rvgpu")
    if loaded_here:
        load_rvgpu()
    gpu = gpus()[-1]
    print(f"screendump round trip (QMP request to answer, file written), {SHOTS} each, median / p90 ms:")
    rows = [("vGPU GRID RVGPU-64Q, display=on", "nvidia-9106"), ("emulated bochs-display", None)]
    got = {}
    for label, t in rows:
        r = row(gpu, t)
        got[label] = r
        if "ppm" not in r:
            print(f"  {label:34} {r.get('status')}")
            continue
        print(f"  {label:34} {r['size']:>9}   PPM {r['ppm'][0]:7.1f} / {r['ppm'][1]:7.1f}   PNG {r['png'][0]:7.1f} / {r['png'][1]:7.1f}")
    a, b = (got[label] for label, _ in rows)
    if "ppm" in a and "ppm" in b:
        print(f"  ratio vGPU/emulated, median       PPM {a['ppm'][0] / b['ppm'][0]:7.2f}           PNG {a['png'][0] / b['png'][0]:7.2f}")
    if loaded_here:
        unload_rvgpu()


main()
