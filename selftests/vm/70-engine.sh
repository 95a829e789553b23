#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The vGPU's interrupts and command engine (uapi/rvgpu.h 0x700-0x73f), driven through VFIO as QEMU
# would, once through the container/type1 path and once through iommufd/cdev
# (selftests/vfio-client, rvgpu-engine-test): interrupt info and SET_IRQS, the ring, FILL / COPY /
# FENCE, MSI and INTx delivery, every error code, unmapping under queued commands, two vGPUs at
# once, vblank, close with work in flight, pinned pages released.
. "$(dirname "$0")/../lib.sh"
plan 37

bin=$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-engine-test
mark=$(dmesg_mark)
load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
types=/sys/bus/pci/devices/$gpu/mdev_supported_types
a=$(cat /proc/sys/kernel/random/uuid)
b=$(cat /proc/sys/kernel/random/uuid)
echo "$a" >"$types/nvidia-9106/create"
echo "$b" >"$types/nvidia-9106/create"

"$bin" "$gpu" "$a" "$b"
"$bin" "$gpu" "$a" "$b" --iommufd

echo 1 >"/sys/bus/mdev/devices/$a/remove"
echo 1 >"/sys/bus/mdev/devices/$b/remove"
log=$(dmesg_since "$mark")
if printf '%s\n' "$log" | grep -qE 'WARNING:|BUG:|Oops|Call Trace'; then
	fail "no kernel warning, oops or BUG" "$(printf '%s\n' "$log" | grep -E -A8 'WARNING:|BUG:|Oops' | head -40)"
else
	ok "no kernel warning, oops or BUG"
fi
unload_rvgpu || diag "rmmod rvgpu failed"
