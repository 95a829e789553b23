#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A vGPU as a vfio-pci device, opened through VFIO as QEMU does, once through the VFIO
# container/type1 path and once through iommufd/cdev (selftests/vfio-client, rvgpu-device-test):
# device and region info, config space, registers, passthrough framebuffer, isolation, reset,
# bad input.
. "$(dirname "$0")/../lib.sh"
plan 35

bin=$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-device-test
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
if dmesg | grep -qE 'WARNING:|BUG:|Oops|Call Trace'; then
	fail "no kernel warning, oops or BUG" "$(dmesg | grep -E -A8 'WARNING:|BUG:|Oops' | head -40)"
else
	ok "no kernel warning, oops or BUG"
fi
unload_rvgpu
