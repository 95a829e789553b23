# SPDX-License-Identifier: GPL-2.0
"""Personas (issue 14): `persona=t4` and `persona=m60` make every board present a real GRID
board's type table (mdev_types/t4.types, mdev_types/m60.types): the real type ids, names and
descriptions (framebuffer= being the slice, the real profile divided by the persona's factor),
available_instances falling as vGPUs of the real type ids are created through sysfs and mdevctl
(an mdevctl definition written for the real board works unchanged), and an unknown persona
refused at load with EINVAL and one log line."""
import errno
import os
import subprocess
import sys
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403

# persona -> (its smallest type's id, a larger type's id for mdevctl)
PERSONAS = {"t4": (222, 231), "m60": (11, 18)}
PLAN = 11  # 5 per persona, and the bogus one


def run(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


given = os.environ["RVGPU_TEST_VRAM"].split()
for persona, (small, large) in PERSONAS.items():
    load_rvgpu(f"persona={persona}")
    bound = gpus()
    bad = []
    for gpu, vram in zip(bound, given):
        want = describe_table(vram, persona)
        got = types(gpu)
        if not want:
            bad.append(f"{gpu}: mdev_types/{persona}.types has no table for {vram}")
        if sorted(got) != sorted(f"nvidia-{i}" for i in want):
            bad.append(f"{gpu}: types {sorted(got)}, the {persona} table at {vram} has {sorted(want)}")
        for tid, (name, desc) in want.items():
            t = got.get(f"nvidia-{tid}")
            if t is None:
                continue
            max_instance = int(desc.rsplit("max_instance=", 1)[1])
            if (t["name"], t["description"], t["device_api"], int(t["available_instances"])) != \
                    (name, desc, "vfio-pci", max_instance):
                bad.append(f"{gpu} nvidia-{tid}: {t}, want {name!r} {desc!r} vfio-pci {max_instance}")
    check(f"persona={persona}: every board shows the real board's type ids, names and descriptions "
          f"({len(bound)} boards)", len(bound) == len(given) and not bad, *bad[:12])

    # Fill the largest board with the smallest real type: available_instances falls by one
    # per create down to 0, then ENOSPC.
    gpu, vram = bound[-1], given[-1]
    tdir = f"nvidia-{small}"
    n = available(gpu, tdir)
    steps, made = [], []
    for _ in range(n):
        e, u = create(gpu, tdir)
        made.append(u)
        steps.append((e, available(gpu, tdir)))
    e_full, _ = create(gpu, tdir)
    others = {t: a["available_instances"] for t, a in types(gpu).items() if a["available_instances"] != "0"}
    check(f"persona={persona}: {n} x {tdir} fill the {vram} board, available_instances falling by one, then ENOSPC",
          n > 1 and steps == [(0, n - 1 - i) for i in range(n)] and e_full == errno.ENOSPC and not others,
          f"steps {steps}", f"then {errname(e_full)}", f"still available: {others}")
    errs = [remove(u) for u in made]
    check(f"persona={persona}: removing them gives everything back", not any(errs) and available(gpu, tdir) == n,
          f"{[errname(e) for e in errs]}")

    # mdevctl: its type listing, and a definition written for the real board.
    rc, out = run("mdevctl", "types", "-p", gpu)
    name = describe_table(vram, persona)[large][0]
    check(f"persona={persona}: mdevctl types lists nvidia-{large} as {name}",
          rc == 0 and f"nvidia-{large}" in out and f"Name: {name}" in out, out[-1500:])
    u = str(uuidlib.uuid4())
    rc1, out1 = run("mdevctl", "define", "-u", u, "-p", gpu, "--type", f"nvidia-{large}")
    rc2, out2 = run("mdevctl", "start", "-u", u)
    there = os.path.isdir(f"{MDEV_DEVICES}/{u}") and \
        os.path.basename(os.readlink(f"{MDEV_DEVICES}/{u}/mdev_type")) == f"nvidia-{large}"
    rc3, out3 = run("mdevctl", "stop", "-u", u)
    rc4, out4 = run("mdevctl", "undefine", "-u", u)
    check(f"persona={persona}: an mdevctl definition of nvidia-{large} ({name}) defines, starts, stops and undefines",
          rc1 == rc2 == rc3 == rc4 == 0 and there and not os.path.exists(f"{MDEV_DEVICES}/{u}"),
          out1, out2, out3, out4)
    unload_rvgpu()

mark = len(dmesg_lines())
r = subprocess.run(["insmod", f"{ROOT}/rvgpu.ko", "persona=bogus"], capture_output=True, text=True)
lines = [line for line in dmesg_lines()[mark:] if "persona=bogus" in line]
# (insmod says "Invalid parameters" for EINVAL from the module's init.)
check("persona=bogus: the module refuses to load (EINVAL), one log line names the known personas",
      r.returncode != 0 and "Invalid param" in r.stderr and not os.path.exists("/sys/module/rvgpu")
      and len(lines) == 1 and "m60" in lines[0] and "t4" in lines[0], r.stderr, *lines)
