#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Concurrency stress (selftests/vfio-client, rvgpu-stress): 8 threads creating, removing, opening,
# closing, resetting, mapping and unmapping DMA and ringing doorbells on the vGPUs of one GPU
# (GRID RVGPU-16Q on the last board, up to 16 of them), once through the VFIO container and once
# through iommufd/cdev; afterwards the accounting must be exact (vram_free_mib and
# available_instances as before, pinned_pages 0, no vGPU left), rvgpu must unload, and kmemleak
# must find nothing.
#
# RVGPU_STRESS_SECONDS (default 20) bounds each run; RVGPU_STRESS_SEED fixes the seed (default 1
# and 2, so the test command is repeatable; "clock" takes one from the clock).
. "$(dirname "$0")/../lib.sh"
plan 5

bin=$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-stress
seconds=${RVGPU_STRESS_SECONDS:-20}
mark=$(dmesg_mark)
load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")

# stress NAME DEFAULT-SEED [--iommufd]
stress() {
	local name=$1 seed=${RVGPU_STRESS_SEED:-$2} out rc args
	shift 2
	args=(--threads 8 --seconds "$seconds")
	[ "$seed" = clock ] || args+=(--seed "$seed")
	out=$(timeout --foreground $((seconds + 240)) "$bin" "$gpu" nvidia-9104 "${args[@]}" "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep '^# ' | sed 's/^# /# stress '"$name"': /'
	tool_result "8-thread stress, $name path" stress "$rc" "$out"
}
stress iommufd 1 --iommufd
stress container 2

check_kernel_log "$mark"
if out=$(rmmod rvgpu 2>&1); then
	ok "rvgpu unloads after the stress"
else
	fail "rvgpu unloads after the stress" "$out"
fi
check_kmemleak "kmemleak finds no leak after the stress (rvgpu unloaded)"
