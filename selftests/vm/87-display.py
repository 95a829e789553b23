# SPDX-License-Identifier: GPL-2.0
"""QEMU shows a vGPU's screen. The nested guest runs on a vGPU with `display=on` (QEMU 10 takes
the region plane: the vGPU refuses dma-buf, so no OpenGL is needed), `-display none` and a QMP
socket. A QMP screendump of its console must equal the visible area of the vGPU's framebuffer,
read from the vGPU's slice of the physical VRAM at the mode the guest set (nvidia/display), and
must not be blank; it must follow a mode change and a pan (Y_OFFSET) that a guest-side program
makes (`rvgpu-load --display`, steps 1 and 2). On the container path and on the iommufd path.

The board's own display (`nvidia/scanout`, on the container run): once it names the vGPU, a
screendump of the physical board, taken by the QEMU that runs this test VM, must equal the vGPU's
console, and follow its mode change and pan; a bad value or a vGPU of another board is refused
with EINVAL and one log line; `none` releases it, and so does removing the vGPU."""
import errno
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403
from qmp import Qmp, read_ppm, screendump  # noqa: E402
from nestedvm import display_mode, nested_lines, qemu, stop, visible_rgb, wait_line  # noqa: E402

PLAN = 13
TYPE = "nvidia-9104"  # GRID RVGPU-16Q, 13 MiB of framebuffer: room for the second buffer at 3 MiB
STEP_SECONDS = 25
BOOT_TIMEOUT = 240
STEPS = 3


def shot(t, tmp, q, gpu, uuid, step, line, board=False):
    """One screendump (of the nested guest's console, or with `board` of the physical board)
    against the slice: one result."""
    what = "the physical board's screendump" if board else "the screendump"
    mode = display_mode(uuid)
    try:
        if board:
            path = board_screendump(gpu, f"board-step{step}.ppm")
        else:
            path = f"{tmp}/step{step}.ppm"
            screendump(q, path)
        w, h, rgb = read_ppm(path)
    except (OSError, RuntimeError, ValueError) as e:
        fail(f"{t} step {step}: {what} equals the vGPU's framebuffer", f"screendump: {e}", line)
        return
    if mode is None or mode[2] != 32:
        fail(f"{t} step {step}: {what} equals the vGPU's framebuffer", f"nvidia/display: {mode}", line)
        return
    mw, mh, _, _, offset = mode
    want = visible_rgb(gpu, uuid, mode)
    diff = next((i for i in range(0, min(len(rgb), len(want)), 3) if rgb[i:i + 3] != want[i:i + 3]), None)
    lit = sum(1 for i in range(0, len(rgb), 3 * 97) if rgb[i:i + 3] != b"\0\0\0")
    diag(f"{t} step {step}: {line}; nvidia/display {mode}; screendump {w}x{h}, {lit} sampled pixels lit")
    where = f"first difference at pixel ({diff // 3 % w}, {diff // 3 // w})" if diff is not None and w else ""
    qemu_out = "" if board else open(f"{tmp}/g.out").read()[-600:]
    check(f"{t} step {step}: {what} ({w}x{h}) equals the vGPU's framebuffer at the guest's mode "
          f"{mw}x{mh} offset {offset:#x}, and is not blank",
          (w, h) == (mw, mh) and rgb == want and lit > 0, where, f"{len(rgb)} vs {len(want)} bytes", line,
          qemu_out)


def scanout_file(gpu):
    return f"/sys/bus/pci/devices/{gpu}/nvidia/scanout"


def bad_scanout(t, gpu, other):
    """Bad values for nvidia/scanout: EINVAL and one log line each. One result."""
    problems = []
    for value in ("not-a-uuid", other):
        before = len(dmesg_lines())
        err = write(scanout_file(gpu), value + "\n")
        if err != errno.EINVAL:
            problems.append(f"{value!r}: {os.strerror(err) if err else 'accepted'}")
        new = [line for line in dmesg_lines()[before:] if "nvidia/scanout" in line]
        if len(new) != 1:
            problems.append(f"{value!r}: {len(new)} log lines {new}")
    check(f"{t} nvidia/scanout refuses a bad value and a vGPU of another board with EINVAL and one log line",
          not problems, *problems)


def run(tag, gpu, iommufd, board=False, other_gpu=None):
    t = f"[{tag}]"
    e, u = create(gpu, TYPE)
    if e:
        for _ in range(1 + STEPS + (5 if board else 0)):
            fail(f"{t} create a vGPU", f"create: {e}")
        return
    tmp = tempfile.mkdtemp(prefix="rvgpu-display.")
    p = qemu(tmp, "g", u, iommufd, False, display=True,
             append=f"video=1024x768 rvgpu.display={STEP_SECONDS}")
    try:
        ready = wait_line(tmp, "g", r"^NESTED: ready", BOOT_TIMEOUT, p)
        out = open(f"{tmp}/g.out").read()
        # QEMU's own complaints, but its warnings (vfio: "Could not enable error recovery").
        errors = [x for x in out.splitlines() if x.startswith("qemu-system") and ": warning: " not in x]
        check(f"{t} the nested guest boots with display=on (QEMU takes the region plane, no OpenGL)",
              ready is not None and not errors, out[-800:], *nested_lines(tmp, "g")[-8:])
        if ready is None:
            for s in range(STEPS + (4 if board else 0)):
                fail(f"{t} step {s}: (not reached: the guest did not boot)")
            if board:
                remove(u)
                u = None
                fail(f"{t} (not reached)")
            return
        q = Qmp(f"{tmp}/g.qmp")
        for s in range(STEPS):
            line = wait_line(tmp, "g", rf"^NESTED: load display step={s} ", STEP_SECONDS * 3, p)
            if line is None:
                fail(f"{t} step {s}: the guest's display step", *nested_lines(tmp, "g")[-6:])
                if board:
                    fail(f"{t} step {s}: the physical board's display (not reached)")
                continue
            shot(t, tmp, q, gpu, u, s, line)
            if board:
                if s == 0:
                    write(scanout_file(gpu), u + "\n")
                shot(t, tmp, q, gpu, u, s, line, board=True)
        if board:
            e2, other = create(other_gpu, TYPE)
            bad_scanout(t, gpu, other if not e2 else "00000000-0000-0000-0000-000000000000")
            if not e2:
                remove(other)
    finally:
        stop(p)
        if u:
            released = shown = None
            if board:
                write(scanout_file(gpu), "none\n")
                released = read(scanout_file(gpu)).strip()
                write(scanout_file(gpu), u + "\n")
                shown = read(scanout_file(gpu)).strip()
            remove(u)
            if board:
                after = read(scanout_file(gpu)).strip()
                check(f"{t} 'none' releases the board's display, and so does removing the vGPU it shows",
                      released == "none" and shown == u and after == "none",
                      f"after none: {released}; after the UUID: {shown}; after the removal: {after}")


load_rvgpu()
g = gpus()
run("container", g[-1], False, board=True, other_gpu=g[0])
run("iommufd", g[-1], True)
unload_rvgpu()
