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
# RVGPU_BENCH_ONLY=sched: only the scheduler's figures; =perf: only the device-path figures.
only=()
[ -n "${RVGPU_BENCH_ONLY:-}" ] && only=(--env "RVGPU_BENCH_ONLY=$RVGPU_BENCH_ONLY")
exec scripts/vm-run.sh --vram 256M --vram 256M --timeout 5400 "${only[@]}" -- "$(pwd)/selftests/bench/run-in-vm.sh"
