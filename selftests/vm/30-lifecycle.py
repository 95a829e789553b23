# SPDX-License-Identifier: GPL-2.0
"""vGPU lifecycle on the 256 MiB board: create and remove by UUID, the per-instance nvidia/
files, bad input with exact errnos and no side effects, the VRAM scrub, teardown with vGPUs
present (unbind, rmmod)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403

PLAN = 24

Q64, Q256, Q16 = "nvidia-9106", "nvidia-9108", "nvidia-9104"

load_rvgpu()
gpu = [g for g in gpus() if gpu_attr(g, "vram_total_mib").strip() == "256"][0]
base = types_dir(gpu)


def snapshot():
    """Everything a failed operation must leave unchanged."""
    return (placement(gpu), instances(),
            {t: available(gpu, t) for t in os.listdir(base)})


def log_after(mark, needle):
    return [l for l in dmesg_lines()[mark:] if needle in l]


# Create.
e, u1 = create(gpu, Q64)
check("create a GRID RVGPU-64Q by writing a UUID to nvidia-9106/create",
      e == 0 and os.path.isdir(f"{MDEV_DEVICES}/{u1}"), errname(e))
check("the instance's mdev_type is nvidia-9106 named GRID RVGPU-64Q",
      os.path.basename(os.readlink(f"{MDEV_DEVICES}/{u1}/mdev_type")) == Q64
      and read(f"{MDEV_DEVICES}/{u1}/mdev_type/name").strip() == "GRID RVGPU-64Q")
av = (available(gpu, Q64), available(gpu, Q256), available(gpu, Q16))
check("available_instances follows: 64Q 3, 256Q 0, 16Q 12", av == (3, 0, 12), f"got {av}")
nv = f"{MDEV_DEVICES}/{u1}/nvidia"
check("nvidia/vgpu_params and nvidia/vm_name exist and read empty",
      read(f"{nv}/vgpu_params") == "\n" and read(f"{nv}/vm_name") == "\n",
      repr(read(f"{nv}/vgpu_params")), repr(read(f"{nv}/vm_name")))

# Bad UUIDs: the mdev core's checks, nothing changes.
before = snapshot()
bad = [write(f"{base}/{Q64}/create", s) for s in ("not-a-uuid\n", "1234\n", u1[:-1] + "g\n")]
check("a malformed UUID is refused with EINVAL, nothing changes",
      bad == [errno.EINVAL] * 3 and snapshot() == before, [errname(e) for e in bad])
e, _ = create(gpu, Q16, u1)
check("a duplicate UUID is refused with EEXIST, nothing changes",
      e == errno.EEXIST and snapshot() == before, errname(e))

# vgpu_params.
e = write(f"{nv}/vgpu_params", "frame_rate_limiter=0\n")
check("vgpu_params accepts frame_rate_limiter=0 and reads it back",
      e == 0 and read(f"{nv}/vgpu_params") == "frame_rate_limiter=0\n", errname(e), read(f"{nv}/vgpu_params"))
cases = [("foo=1", errno.EINVAL, "unknown key 'foo'"),
         ("frame_rate_limiter=2", errno.EINVAL, "bad value '2' for 'frame_rate_limiter'"),
         ("frame_rate_limiter", errno.EINVAL, "is not key=value"),
         ("frame_rate_limiter=1," + "x" * 1100, errno.E2BIG, "at most 1024 allowed")]
for text, want, msg in cases:
    mark = len(dmesg_lines())
    e = write(f"{nv}/vgpu_params", text + "\n")
    lines = log_after(mark, "vgpu_params:")
    check(f"vgpu_params '{text[:24]}' is refused with {errname(want)}, one log line, value kept",
          e == want and len(lines) == 1 and msg in lines[0]
          and read(f"{nv}/vgpu_params") == "frame_rate_limiter=0\n",
          f"errno {errname(e)}", *lines)

# Open through VFIO (as QEMU does): vm_name names the user, vgpu_params is locked.
dev = VfioDevice(u1)
name = read(f"{nv}/vm_name").strip()
check("vm_name names the task that has the vGPU open", name == f"python3[{os.getpid()}]", repr(name))
mark = len(dmesg_lines())
e = write(f"{nv}/vgpu_params", "frame_rate_limiter=1\n")
lines = log_after(mark, "vgpu_params:")
check("vgpu_params is refused with EPERM while the vGPU is open, one log line",
      e == errno.EPERM and len(lines) == 1 and read(f"{nv}/vgpu_params") == "frame_rate_limiter=0\n",
      errname(e), *lines)
dev.close()
e = write(f"{nv}/vgpu_params", "frame_rate_limiter=1\n")
check("after close: vm_name is empty and vgpu_params is writable again",
      read(f"{nv}/vm_name") == "\n" and e == 0, errname(e))

# Fill the board, then one more: ENOSPC, one log line with the type and the free VRAM.
made = [create(gpu, Q64) for _ in range(3)]
check("three more 64Q fit", all(e == 0 for e, _ in made) and available(gpu, Q64) == 0,
      [errname(e) for e, _ in made])
before = snapshot()
mark = len(dmesg_lines())
e, u = create(gpu, Q16)
lines = log_after(mark, "cannot create")
check("creating on a full GPU is refused with ENOSPC, nothing changes",
      e == errno.ENOSPC and snapshot() == before and not os.path.exists(f"{MDEV_DEVICES}/{u}"), errname(e))
check("one log line names the type, the free VRAM and the reason",
      len(lines) == 1 and "GRID RVGPU-16Q (nvidia-9104)" in lines[0] and "0 MiB free" in lines[0],
      *lines)

# Remove everything: the accounting returns to full.
errs = [remove(u) for u in instances()]
check("echo 1 > remove removes every vGPU; VRAM accounting returns to full",
      all(e == 0 for e in errs) and not instances()
      and gpu_attr(gpu, "vram_free_mib").strip() == "256" and available(gpu, Q256) == 1,
      [errname(e) for e in errs], gpu_attr(gpu, "placement"))

# The scrub: what a vGPU left in its slice is gone when the slice is handed out again, and
# nothing outside the slice is touched.
vram = Vram(gpu)
e, u = create(gpu, Q64)
off = placement(gpu)[0][0] * MIB
pattern = b"rvgpu-scrub-test" * 256
spots = [off, off + 4096 * 17 + 8, off + 64 * MIB - len(pattern)]
for s in spots:
    vram.map[s:s + len(pattern)] = pattern
outside = 128 * MIB + 4096
vram.map[outside:outside + len(pattern)] = pattern
seen = all(vram.map[s:s + len(pattern)] == pattern for s in spots)
remove(u)
e2, u = create(gpu, Q64)
off2 = placement(gpu)[0][0] * MIB
zero = all(vram.map[s:s + len(pattern)] == bytes(len(pattern)) for s in spots)
kept = vram.map[outside:outside + len(pattern)] == pattern
check("data in a removed vGPU's slice is gone when the slice is reused",
      e == 0 and e2 == 0 and seen and off2 == off and zero, f"offsets {off} {off2}, written {seen}, zeroed {zero}")
check("the scrub stays inside the slice", kept)
vram.map[outside:outside + len(pattern)] = bytes(len(pattern))
remove(u)
# The removal does not wait for the scrub: a whole-VRAM vGPU is removed and a new one created at
# once; the create waits for the scrub in progress (the only space) and finds its slice zeroed.
e, u = create(gpu, Q256)
for s in (0, 100 * MIB + 12, 256 * MIB - len(pattern)):
    vram.map[s:s + len(pattern)] = pattern
t0 = time.monotonic()
e1 = remove(u)
took = time.monotonic() - t0
shown = gpu_attr(gpu, "placement").strip()
e2, u = create(gpu, Q256)
zero = all(vram.map[s:s + len(pattern)] == bytes(len(pattern)) for s in (0, 100 * MIB + 12, 256 * MIB - len(pattern)))
diag(f"removing a 256 MiB vGPU took {took * 1000:.1f} ms; placement right after: {shown!r}")
check("a create right after a removal gets the slice only once it is scrubbed (zeros through the physical VRAM)",
      e == 0 and e1 == 0 and e2 == 0 and zero, f"errnos {e} {e1} {e2}", f"zeroed {zero}")
remove(u)
vram.close()

# Teardown with vGPUs present: unbind the GPU, bind it back.
for t in (Q64, Q16, Q16):
    create(gpu, t)
n = len(instances())
e = write(f"{PCI_DRV}/unbind", gpu)
gone = not instances() and not os.path.exists(f"/sys/bus/pci/devices/{gpu}/driver")
e2 = write(f"{PCI_DRV}/bind", gpu)
check(f"unbinding the GPU with {n} vGPUs removes them cleanly",
      e == 0 and n == 3 and gone, errname(e), f"left: {instances()}")
check("after rebinding, the GPU's VRAM is all free again",
      e2 == 0 and gpu_attr(gpu, "vram_free_mib").strip() == "256"
      and placement(gpu) == [(0, 256, "free", None)], errname(e2))

# rmmod with vGPUs present.
for t in (Q64, Q16):
    create(gpu, t)
r = subprocess.run(["rmmod", "rvgpu"], capture_output=True, text=True)
check("rmmod with vGPUs present removes them and the module",
      r.returncode == 0 and not instances() and not os.path.exists("/sys/module/rvgpu"), r.stderr)
