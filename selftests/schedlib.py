# SPDX-License-Identifier: GPL-2.0
"""What the scheduler's test (selftests/vm/88-scheduler.py) and benchmark (selftests/bench/sched.py)
share: a GPU's nvidia/scheduler, the accounting files, the scheduler log, engine load processes
(rvgpu-engine-load) and shares measured over a window."""
import subprocess
import time

from rvgpu import MDEV_DEVICES, ROOT, read, write

LOAD = f"{ROOT}/selftests/vfio-client/target/release/rvgpu-engine-load"
WINDOW = 1.0


def sched_file(gpu):
    return f"/sys/bus/pci/devices/{gpu}/nvidia/scheduler"


def sched(gpu):
    return read(sched_file(gpu)).strip()


def set_sched(gpu, text):
    return write(sched_file(gpu), text + "\n")


def acct_path(uuid=None, gpu=None):
    if uuid:
        return f"{MDEV_DEVICES}/{uuid}/nvidia/accounting"
    return f"/sys/bus/pci/devices/{gpu}/nvidia/accounting"


def acct(uuid=None, gpu=None):
    """{key: int or str} of an accounting file (units dropped)."""
    out = {}
    for line in read(acct_path(uuid, gpu)).splitlines():
        k, _, v = line.partition(": ")
        v = v.split()[0] if v else ""
        out[k] = int(v) if v.isdigit() else v
    return out


def sched_log(gpu):
    """([(seq, start_us, id, run_us, target_us, wait_us)], [(seq, t_us, policy, slice_us)])."""
    slices, configs = [], []
    for line in read(f"/sys/bus/pci/devices/{gpu}/nvidia/scheduler_log").splitlines():
        f = line.split()
        if f[2] == "config":
            configs.append((int(f[0]), int(f[1]), f[3], int(f[4])))
        else:
            slices.append(tuple(int(x) for x in f))
    return slices, configs


class Load:
    def __init__(self, uuid, mode, seconds=600, linger=False):
        self.uuid, self.mode = uuid, mode
        self.p = subprocess.Popen([LOAD, uuid, mode, str(seconds)] + (["--linger"] if linger else []),
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"rvgpu-engine-load {uuid} {mode}: {line!r}")

    def result(self):
        """Waits for the end; the `result ...` fields."""
        out = self.p.stdout.read()
        self.p.wait()
        for line in out.splitlines():
            if line.startswith("result "):
                return dict(kv.split("=") for kv in line.split()[1:])
        raise RuntimeError(f"rvgpu-engine-load {self.uuid}: {out!r}")

    def stop(self):
        """SIGTERM, then SIGKILL if it is still there 5 s later (the kernel closes the vGPU either
        way)."""
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                sig = [l.strip() for l in read(f"/proc/{self.p.pid}/status").splitlines()
                       if l.startswith(("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn"))]
                print(f"# rvgpu-engine-load {self.uuid} still runs 5 s after SIGTERM ({', '.join(sig)}): SIGKILL",
                      flush=True)
                self.p.kill()
        self.p.wait()


def window(gpu, uuids, seconds=WINDOW):
    """Shares (busy/wall) of each vGPU and of the GPU over one window."""
    a0 = {u: acct(u) for u in uuids}
    g0 = acct(gpu=gpu)
    time.sleep(seconds)
    a1 = {u: acct(u) for u in uuids}
    g1 = acct(gpu=gpu)

    def share(x0, x1):
        return (x1["drm-engine-gfx"] - x0["drm-engine-gfx"]) / (x1["rvgpu-time"] - x0["rvgpu-time"])

    idle = (g1["rvgpu-runnable-idle"] - g0["rvgpu-runnable-idle"]) / (g1["rvgpu-time"] - g0["rvgpu-time"])
    return [share(a0[u], a1[u]) for u in uuids], share(g0, g1), idle


def jain(xs):
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if xs and any(xs) else 0.0


def fmt(xs):
    return " ".join(f"{x:.3f}" for x in xs)
