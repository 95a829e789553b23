# SPDX-License-Identifier: GPL-2.0
"""Random sequences of mixed creates and removes on every GPU, checked step by step against an
independent model of the documented placement (power-of-two slices at aligned offsets, best fit:
the smallest free aligned block that holds the slice, lowest address among equals): every type's
available_instances, the outcome of every create, and the placement itself."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rvgpu import *  # noqa: E402,F403

PLAN = 4
STEPS = int(os.environ.get("RVGPU_RANDOM_STEPS", "400"))


class Model:
    def __init__(self, total):
        self.total = total
        self.used = {}  # offset -> (size, uuid)

    def free_at(self, off, size):
        return all(o + s <= off or off + size <= o for o, (s, _) in self.used.items())

    def candidates(self, size):
        return [o for o in range(0, self.total, size) if self.free_at(o, size)]

    def enclosing(self, off, size):
        block = size
        while block < self.total:
            up = block * 2
            if not self.free_at(off - off % up, up):
                break
            block = up
        return block

    def place(self, size):
        c = self.candidates(size)
        return min(c, key=lambda o: (self.enclosing(o, size), o)) if c else None


seed = int(os.environ.get("RVGPU_RANDOM_SEED", "0")) or random.randrange(1, 1 << 30)
diag(f"seed {seed}, {STEPS} steps")
rng = random.Random(seed)
# Hundreds of creates are refused here, each with its log line: keep them off the console.
sh("dmesg -n 1")
load_rvgpu()
boards = gpus()
info = {g: {t: int(types(g)[t]["description"].split("framebuffer=")[1].split("M")[0])
            for t in os.listdir(types_dir(g))} for g in boards}
models = {g: Model(int(gpu_attr(g, "vram_total_mib"))) for g in boards}

avail_bad, outcome_bad, place_bad = [], [], []
creates = removes = refusals = 0
for step in range(STEPS):
    g = rng.choice(boards)
    m = models[g]
    if m.used and rng.random() < 0.45:
        off = rng.choice(sorted(m.used))
        size, u = m.used.pop(off)
        e = remove(u)
        removes += 1
        if e:
            outcome_bad.append(f"step {step}: remove {u}: {errname(e)}")
    else:
        t = rng.choice(sorted(info[g]))
        size = info[g][t]
        want = m.place(size)
        e, u = create(g, t)
        if want is None:
            refusals += 1
            if e != errno.ENOSPC:
                outcome_bad.append(f"step {step}: {g} {t}: model says full, got {errname(e)}")
        else:
            creates += 1
            if e:
                outcome_bad.append(f"step {step}: {g} {t}: model places at {want}M, got {errname(e)}")
            else:
                m.used[want] = (size, u)
    for t, size in info[g].items():
        want = len(m.candidates(size))
        got = available(g, t)
        if got != want:
            avail_bad.append(f"step {step}: {g} {t}: available_instances {got}, model {want}")
    got_rows = [(o, s, u) for o, s, kind, u in placement(g) if kind != "free"]
    want_rows = [(o, s, u) for o, (s, u) in sorted(m.used.items())]
    if got_rows != want_rows:
        place_bad.append(f"step {step}: {g}: placement {got_rows} != model {want_rows}")
    if len(avail_bad) + len(outcome_bad) + len(place_bad) > 20:
        break

diag(f"{creates} creates, {refusals} refused as full, {removes} removes on {len(boards)} GPUs")
check(f"every create and remove ended as the model says ({STEPS} steps, seed {seed})", not outcome_bad, *outcome_bad[:10])
check("available_instances of every type matched the model after every step", not avail_bad, *avail_bad[:10])
check("placement matched the model after every step", not place_bad, *place_bad[:10])
for u in instances():
    remove(u)
check("all VRAM free again after removing everything",
      all(gpu_attr(g, "vram_free_mib") == gpu_attr(g, "vram_total_mib") for g in boards) and not instances())
unload_rvgpu()
sh("dmesg -n 5")
