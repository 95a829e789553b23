#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The fuzzer (selftests/vfio-client, rvgpu-fuzz): two GRID RVGPU-64Q vGPUs on the last GPU, four
# worker processes (two open the vGPUs and fuzz them, two race them for the devices and fuzz
# sysfs) for a bounded time, once through iommufd/cdev and once through the VFIO container (in
# that order: see known_kernel_defects): every device ioctl with short/exact/huge argsz and
# garbage, region reads/writes/mmaps at any offset, SET_IRQS with bad and closed eventfds, the
# engine on random rings while another thread maps and unmaps the DMA under it, corrupted
# migration streams, sysfs writes. Afterwards both vGPUs must still work, and the kernel log must
# be clean.
#
# RVGPU_FUZZ_SECONDS (default 45) bounds each run; RVGPU_FUZZ_SEED fixes the seed (default: 1 for
# the iommufd run, 2 for the container run, so that the test command is repeatable; "clock" takes
# one from the clock). A failure names its seed: `rvgpu-fuzz ... --seed N` replays its choices.
. "$(dirname "$0")/../lib.sh"
plan 3

bin=$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-fuzz
seconds=${RVGPU_FUZZ_SECONDS:-45}
mark=$(dmesg_mark)
load_rvgpu
two_vgpus

# fuzz PATH-NAME DEFAULT-SEED [--iommufd]
fuzz() {
	local name=$1 seed=${RVGPU_FUZZ_SEED:-$2} out rc args
	shift 2
	args=(--seconds "$seconds" --procs 4)
	[ "$seed" = clock ] || args+=(--seed "$seed")
	out=$(timeout --foreground $((seconds + 180)) "$bin" "$GPU" "$VGPU_A" "$VGPU_B" "${args[@]}" "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^# (seed|ops|errno|worker [0-9]+: [0-9]+ operations|rvgpu-fuzz|.* works afterwards)' | sed 's/^# /# fuzz '"$name"': /'
	tool_result "fuzzer, $name path" fuzz "$rc" "$out"
}
fuzz iommufd 1 --iommufd
fuzz container 2

remove_two_vgpus
check_kernel_log "$mark"
unload_rvgpu || diag "rmmod rvgpu failed"
