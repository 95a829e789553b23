# SPDX-License-Identifier: GPL-2.0
"""The scheduler's figures (issue 11), from one VM run; nothing passes or fails.

- Engine throughput of one vGPU alone (1 MiB FILLs, kept queued) under each policy and at the
  shortest and longest slice, beside the same bytes written by the CPU through the vGPU's BAR0
  mapping (no engine, no scheduler: the bypass).
- The cost of a switch: the GPU's idle time while a vGPU could run, per slice, with 2 vGPUs.
- Per policy with 2, 4 and 8 saturating vGPUs: mean, min and max share against the entitlement,
  Jain's index, the GPU's busy share, and the p50/p99/max wait of a slice (the scheduler log,
  polled so that no entry is missed).

`sched.py GPU` (a bound 256 MiB board)."""
import ctypes
import fcntl
import mmap
import os
import struct
import sys
import time
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import VfioDevice  # noqa: E402
from schedlib import Load, acct, jain, sched_log, set_sched, window  # noqa: E402

VFIO_DEVICE_GET_REGION_INFO = 0x3B6C

T32Q = "nvidia-9105"
CMD_BYTES = 1 << 20  # rvgpu-engine-load's saturating FILL


def create(gpu, t):
    u = str(uuidlib.uuid4())
    with open(f"/sys/bus/pci/devices/{gpu}/mdev_supported_types/{t}/create", "w") as f:
        f.write(u)
    return u


def remove(u):
    with open(f"/sys/bus/mdev/devices/{u}/remove", "w") as f:
        f.write("1")


def throughput(gpu, u, seconds=3.0):
    """MiB/s of FILL through the engine, from the vGPU's bytes-moved counter."""
    ld = Load(u, "saturate")
    try:
        time.sleep(0.5)
        a0 = acct(u)
        time.sleep(seconds)
        a1 = acct(u)
    finally:
        ld.stop()
    return (a1["rvgpu-bytes-moved"] - a0["rvgpu-bytes-moved"]) / ((a1["rvgpu-time"] - a0["rvgpu-time"]) / 1e9) / 2**20


def cpu_bypass(u, seconds=3.0):
    """MiB/s of the CPU writing 1 MiB blocks into the vGPU's framebuffer mapping (no engine)."""
    dev = VfioDevice(u)
    # BAR0's region info: offset of region 0.
    info = struct.pack("IIIIQQ", 32, 0, 0, 0, 0, 0)
    info = fcntl.ioctl(dev.fd, VFIO_DEVICE_GET_REGION_INFO, info)
    _, _, _, _, size, offset = struct.unpack("IIIIQQ", info)
    m = mmap.mmap(dev.fd, CMD_BYTES * 16, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
    block = bytes([0x5a]) * CMD_BYTES
    buf = (ctypes.c_char * len(m)).from_buffer(m)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        at = (n % 16) * CMD_BYTES
        ctypes.memmove(ctypes.addressof(buf) + at, block, CMD_BYTES)
        n += 1
    took = time.perf_counter() - t0
    del buf
    m.close()
    dev.close()
    return n * CMD_BYTES / took / 2**20


def waits_during(gpu, seconds):
    """Slice waits (us) of every log entry over `seconds`, polling the 56-entry log."""
    seen, waits = set(), []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        slices, _ = sched_log(gpu)
        for s in slices:
            if s[0] not in seen:
                seen.add(s[0])
                waits.append(s[5])
        time.sleep(0.02)
    return sorted(waits)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0


def main():
    gpu = sys.argv[1]
    vgpus = [create(gpu, T32Q) for _ in range(8)]
    try:
        print("# scheduler: engine throughput of one vGPU alone (1 MiB FILLs), MiB/s")
        print(f"# {'setting':34s} {'MiB/s':>8s} {'vs bypass':>9s}")
        bypass = cpu_bypass(vgpus[0])
        print(f"  {'bypass: CPU memcpy into BAR0 mmap':34s} {bypass:8.1f} {1.0:9.3f}")
        for policy, slice_us in (("best_effort", 2000), ("best_effort", 1000), ("best_effort", 30000),
                                 ("equal_share", 2000), ("fixed_share", 2000)):
            set_sched(gpu, f"policy={policy} timeslice_us={slice_us}")
            t = throughput(gpu, vgpus[0])
            print(f"  {policy + ' ' + str(slice_us) + ' us':34s} {t:8.1f} {t / bypass:9.3f}")
        set_sched(gpu, "policy=best_effort timeslice_us=2000")

        loads = [Load(u, "saturate") for u in vgpus[:2]]
        try:
            time.sleep(0.5)
            g0 = acct(gpu=gpu)
            time.sleep(3)
            g1 = acct(gpu=gpu)
        finally:
            for ld in loads:
                ld.stop()
        sl = g1["rvgpu-slices"] - g0["rvgpu-slices"]
        idle = g1["rvgpu-runnable-idle"] - g0["rvgpu-runnable-idle"]
        print(f"# switch cost (2 vGPUs, best effort, 2 ms): {sl} slices in 3 s, "
              f"GPU idle while runnable {idle / max(sl, 1) / 1000:.1f} us per slice "
              f"({idle / (g1['rvgpu-time'] - g0['rvgpu-time']) * 100:.2f} % of the time)")

        print("# scheduler: shares over 1 s windows and slice waits, N vGPUs saturating (2 ms slices)")
        print(f"# {'policy':12s} {'N':>2s} {'entitled':>8s} {'mean':>7s} {'min':>7s} {'max':>7s} "
              f"{'Jain':>7s} {'GPU':>6s} {'wait p50':>9s} {'p99':>7s} {'max':>7s} (us)")
        for n in (2, 4, 8):
            loads = [Load(u, "saturate") for u in vgpus[:n]]
            try:
                for policy in ("best_effort", "equal_share", "fixed_share"):
                    set_sched(gpu, f"policy={policy}")
                    time.sleep(0.3)
                    shares, g, _ = window(gpu, vgpus[:n])
                    waits = waits_during(gpu, 1.0)
                    ent = 1 / 8 if policy == "fixed_share" else 1 / n
                    print(f"  {policy:12s} {n:2d} {ent:8.4f} {sum(shares) / n:7.4f} {min(shares):7.4f} "
                          f"{max(shares):7.4f} {jain(shares):7.4f} {g:6.3f} {pct(waits, 0.5):9d} "
                          f"{pct(waits, 0.99):7d} {waits[-1] if waits else 0:7d}")
            finally:
                for ld in loads:
                    ld.stop()
        set_sched(gpu, "policy=best_effort")
    finally:
        for u in vgpus:
            remove(u)


if __name__ == "__main__":
    main()
