# SPDX-License-Identifier: GPL-2.0
"""Scale figures (run in the test VM by selftests/bench/scale-in-vm.sh, rvgpu loaded and bound):
every bound board filled with its smallest vGPU type through sysfs, then emptied; the time of each
create and remove as the count grows (means per quarter of the run: flat means the last quarter
costs what the first did), the kernel memory a vGPU costs (Slab, SUnreclaim and VmallocUsed of
/proc/meminfo, and Percpu, before and after), and the module's fixed cost (its core size, and the
memory the driver takes when it binds the boards, from an unload and a reload). Figures only."""
import glob
import os
import subprocess
import sys
import time
import uuid as uuidlib

FIELDS = ("Slab", "SUnreclaim", "VmallocUsed", "Percpu")


def rd(path):
    with open(path) as f:
        return f.read().strip()


def w(path, data):
    with open(path, "w") as f:
        f.write(data)


def meminfo():
    """The FIELDS of /proc/meminfo, in KiB, after letting RCU-freed objects go."""
    subprocess.run(["sh", "-c", "sync; echo 2 >/proc/sys/vm/drop_caches"], check=False)
    time.sleep(1)
    out = {}
    for line in open("/proc/meminfo"):
        k, v = line.split(":", 1)
        if k in FIELDS:
            out[k] = int(v.split()[0])
    return out


def boards():
    return sorted(os.path.basename(p) for p in glob.glob("/sys/bus/pci/drivers/nvidia/0000:*"))


def smallest(gpu):
    """The type directory of `gpu` with the most instances (the smallest profile)."""
    types = glob.glob(f"/sys/bus/pci/devices/{gpu}/mdev_supported_types/nvidia-*")
    return max(types, key=lambda t: (int(rd(f"{t}/available_instances")), -int(os.path.basename(t)[7:])))


def quarters(times):
    n = len(times)
    q = [times[i * n // 4:(i + 1) * n // 4] for i in range(4)]
    return [sum(x) / len(x) * 1e3 if x else 0.0 for x in q]


def delta(a, b, n):
    return "  ".join(f"{k} {(b[k] - a[k]) / n:8.1f}" for k in FIELDS)


def main():
    gpus = boards()
    plan = [(g, smallest(g)) for g in gpus]
    total = sum(int(rd(f"{t}/available_instances")) for _, t in plan)
    print(f"scale: {len(gpus)} boards, {total} vGPUs of the smallest type "
          f"({', '.join(sorted({rd(t + '/name') for _, t in plan}))}), created and removed through sysfs:")
    before = meminfo()
    made, creates = [], []
    for g, t in plan:
        for _ in range(int(rd(f"{t}/available_instances"))):
            u = str(uuidlib.uuid4())
            t0 = time.perf_counter()
            w(f"{t}/create", u)
            creates.append(time.perf_counter() - t0)
            made.append(u)
    full = meminfo()
    removes = []
    for u in made:
        t0 = time.perf_counter()
        w(f"/sys/bus/mdev/devices/{u}/remove", "1")
        removes.append(time.perf_counter() - t0)
    after = meminfo()
    qc, qr = quarters(creates), quarters(removes)
    print(f"  create, ms per vGPU by quarter   {qc[0]:7.2f} {qc[1]:7.2f} {qc[2]:7.2f} {qc[3]:7.2f}"
          f"   last/first {qc[3] / qc[0]:5.2f}")
    print(f"  remove, ms per vGPU by quarter   {qr[0]:7.2f} {qr[1]:7.2f} {qr[2]:7.2f} {qr[3]:7.2f}"
          f"   last/first {qr[3] / qr[0]:5.2f}")
    print(f"  kernel memory per vGPU (KiB)     {delta(before, full, len(made))}")
    print(f"  left after removing all (KiB)    {delta(before, after, 1)}")
    # The fixed cost: the module's own size, and what binding the boards takes (unload, reload).
    core = int(rd("/sys/module/rvgpu/coresize"))
    bound = meminfo()
    subprocess.run(["rmmod", "rvgpu"], check=True)
    unloaded = meminfo()
    subprocess.run(["insmod", sys.argv[1]], check=True)
    for _ in range(100):
        if len(boards()) == len(gpus):
            break
        time.sleep(0.1)
    reloaded = meminfo()
    print(f"  module core size (KiB)           {core / 1024:8.1f}")
    print(f"  per bound board (KiB)            {delta(unloaded, reloaded, len(gpus))}")
    print(f"  unload returned (KiB)            {delta(unloaded, bound, 1)}")


if __name__ == "__main__":
    main()
