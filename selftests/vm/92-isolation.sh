#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Tenant isolation under attack (selftests/vfio-client, rvgpu-isolation): three GRID RVGPU-16Q
# vGPUs side by side on the first board; the middle one programs its engine to reach outside its
# slice and its DMA mappings (rectangles past the end or wrapping 32 bits, IOVAs across the ends
# of a mapping, into a read-only one or wrapping, a ring running into unmapped memory, bad TAILs),
# through iommufd and then through the VFIO container. Canaries in the physical VRAM outside its
# slice, in the unmapped pages around its DMA buffer and in a read-only mapping must be
# untouched; nothing from outside its slice may reach its memory; every attack is reported.
. "$(dirname "$0")/../lib.sh"
plan 11

bin=$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-isolation
mark=$(dmesg_mark)
load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | head -1)")
types=/sys/bus/pci/devices/$gpu/mdev_supported_types
u=()
for i in 0 1 2; do
	u[i]=$(cat /proc/sys/kernel/random/uuid)
	echo "${u[i]}" >"$types/nvidia-9104/create"
done
sed 's/^/# placement: /' "/sys/bus/pci/devices/$gpu/nvidia/placement"
"$bin" "$gpu" "${u[1]}" "${u[0]}" --iommufd
"$bin" "$gpu" "${u[1]}" "${u[0]}"
for i in 0 1 2; do echo 1 >"/sys/bus/mdev/devices/${u[i]}/remove"; done
check_kernel_log "$mark"
unload_rvgpu || diag "rmmod rvgpu failed"
