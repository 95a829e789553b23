#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A vGPU as a vfio-pci device, opened through VFIO as QEMU does, once through the VFIO
# container/type1 path and once through iommufd/cdev (selftests/vfio-client, rvgpu-device-test):
# device and region info, config space, registers, passthrough framebuffer, isolation, reset,
# bad input.
. "$(dirname "$0")/../lib.sh"
plan 35

load_rvgpu
on_two_vgpus "$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-device-test"
check_kernel_log
unload_rvgpu
