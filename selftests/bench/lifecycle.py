# SPDX-License-Identifier: GPL-2.0
"""Create+remove latency of vGPUs beside the kernel's mbochs sample, in the same VM: one instance
created and removed N times, and a GPU filled with its smallest type then emptied. Figures only."""
import os
import sys
import time
import uuid as uuidlib

ROUNDS = int(os.environ.get("RVGPU_BENCH_ROUNDS", "50"))


def w(path, data):
    with open(path, "w") as f:
        f.write(data)


def one(create_dir):
    u = str(uuidlib.uuid4())
    t0 = time.perf_counter()
    w(f"{create_dir}/create", u)
    t1 = time.perf_counter()
    w(f"/sys/bus/mdev/devices/{u}/remove", "1")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def single(create_dir):
    c = r = 0.0
    for _ in range(ROUNDS):
        a, b = one(create_dir)
        c += a
        r += b
    return c / ROUNDS * 1e6, r / ROUNDS * 1e6


def fill(create_dir):
    n = int(open(f"{create_dir}/available_instances").read())
    us = [str(uuidlib.uuid4()) for _ in range(n)]
    t0 = time.perf_counter()
    for u in us:
        w(f"{create_dir}/create", u)
    t1 = time.perf_counter()
    for u in us:
        w(f"/sys/bus/mdev/devices/{u}/remove", "1")
    t2 = time.perf_counter()
    return n, (t1 - t0) * 1e3, (t2 - t1) * 1e3


def main():
    rv, mb = sys.argv[1], sys.argv[2]
    print(f"create/remove latency, mean of {ROUNDS} (us):")
    rc, rr = single(rv)
    mc, mr = single(mb)
    print(f"  rvgpu  {os.path.basename(rv):14} create {rc:9.0f}  remove {rr:9.0f}")
    print(f"  mbochs {os.path.basename(mb):14} create {mc:9.0f}  remove {mr:9.0f}")
    print(f"  ratio rvgpu/mbochs   create {rc / mc:9.2f}  remove {rr / mr:9.2f}")
    print("filling a GPU with its smallest type, then emptying it (ms):")
    rn, rfc, rfr = fill(rv)
    mn, mfc, mfr = fill(mb)
    print(f"  rvgpu  {rn:3} instances  create {rfc:8.0f}  remove {rfr:8.0f}")
    print(f"  mbochs {mn:3} instances  create {mfc:8.0f}  remove {mfr:8.0f}")
    print(f"  ratio per instance   create {rfc / rn / (mfc / mn):8.2f}  remove {rfr / rn / (mfr / mn):8.2f}")


main()
