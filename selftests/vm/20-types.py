# SPDX-License-Identifier: GPL-2.0
"""Every GPU shows the GRID-style types of its VRAM size, exactly as the type table says."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403

PLAN = 7

load_rvgpu()
given = os.environ["RVGPU_TEST_VRAM"].split()
bound = gpus()
check("one GPU per board QEMU was given", len(bound) == len(given), f"bound {bound}, given {given}")

problems = {k: [] for k in ("dirs", "name", "desc", "api", "avail", "vram")}
for gpu, vram in zip(bound, given):
    want = describe_table(vram)
    got = types(gpu)
    want_dirs = sorted(f"nvidia-{i}" for i in want)
    if sorted(got) != want_dirs:
        problems["dirs"].append(f"{gpu}: {sorted(got)} != {want_dirs}")
    for tid, (name, desc) in want.items():
        t = got.get(f"nvidia-{tid}")
        if t is None:
            continue
        if t["name"] != name:
            problems["name"].append(f"{gpu} nvidia-{tid}: {t['name']!r} != {name!r}")
        if t["description"] != desc:
            problems["desc"].append(f"{gpu} nvidia-{tid}: {t['description']!r} != {desc!r}")
        if t["device_api"] != "vfio-pci":
            problems["api"].append(f"{gpu} nvidia-{tid}: {t['device_api']!r}")
        max_instance = int(desc.rsplit("max_instance=", 1)[1])
        if int(t["available_instances"]) != max_instance:
            problems["avail"].append(f"{gpu} nvidia-{tid}: {t['available_instances']} != {max_instance}")
    total = int(gpu_attr(gpu, "vram_total_mib"))
    free = int(gpu_attr(gpu, "vram_free_mib"))
    largest = int(gpu_attr(gpu, "vram_largest_free_mib"))
    want_mib = int(vram.rstrip("M"))
    rows = placement(gpu)
    if (total, free, largest) != (want_mib,) * 3 or rows != [(0, want_mib, "free", None)]:
        problems["vram"].append(f"{gpu}: total {total} free {free} largest {largest} placement {rows}")

check("type directories are nvidia-<id> for every type of the table", not problems["dirs"], *problems["dirs"])
check("every type's name is the table's GRID name", not problems["name"], *problems["name"])
check("every type's description has the GRID format and the table's values", not problems["desc"], *problems["desc"])
check("every type's device_api is vfio-pci", not problems["api"], *problems["api"])
check("available_instances is max_instance on an empty GPU", not problems["avail"], *problems["avail"])
check("nvidia/ on the GPU: total = free = largest free = VRAM, placement all free", not problems["vram"], *problems["vram"])
unload_rvgpu()
