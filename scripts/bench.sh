#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmarks: rvgpu beside the kernel's C mdev samples in the same test VM, so that comparisons
# are ratios from one run. Prints figures; passes or fails nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root scripts/bench.sh "$@"
prepare_build
# The nested guest the migration figures move (built once, cached like the test kernel).
bash scripts/build-nested.sh
(cd selftests/vfio-client && cargo build --release --locked -q)
# Two 256 MiB boards: the 256 MiB vGPU of the migration figures moves from one to the other.
# RVGPU_BENCH_ONLY=sched: only the scheduler's figures; =perf: only the device-path and scale
# figures; =scale: only the scale figures.
only=()
[ -n "${RVGPU_BENCH_ONLY:-}" ] && only=(--env "RVGPU_BENCH_ONLY=$RVGPU_BENCH_ONLY")
if [ "${RVGPU_BENCH_ONLY:-}" != scale ]; then
	scripts/vm-run.sh --vram 256M --vram 256M --timeout 5400 "${only[@]}" -- "$(pwd)/selftests/bench/run-in-vm.sh"
fi
# Scale: a VM with as many 256 MiB boards as the pc machine type holds (7), every one filled with
# its smallest type. Not in RVGPU_BENCH_ONLY=sched.
if [ "${RVGPU_BENCH_ONLY:-}" != sched ]; then
	scripts/vm-run.sh $(printf -- '--vram 256M %.0s' 1 2 3 4 5 6 7) --timeout 1800 -- "$(pwd)/selftests/bench/scale-in-vm.sh"
fi
