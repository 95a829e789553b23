#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The vGPU's display plane, through VFIO as QEMU's display=on uses it, once through the VFIO
# container/type1 path and once through iommufd/cdev (selftests/vfio-client, rvgpu-display-test):
# VFIO_DEVICE_QUERY_GFX_PLANE with every flag combination and short argsz, a disabled plane, the
# cursor plane, the plane of each mode; the display region (index 9): its info, contents and mmap,
# following a pan with the same mapping, its bounds, that it never reaches another vGPU's slice,
# and reset.
. "$(dirname "$0")/../lib.sh"
plan 19

load_rvgpu
on_two_vgpus "$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-display-test"
check_kernel_log
unload_rvgpu
