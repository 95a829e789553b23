#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The vGPU's interrupts and command engine (uapi/rvgpu.h 0x700-0x73f), driven through VFIO as QEMU
# would, once through the container/type1 path and once through iommufd/cdev
# (selftests/vfio-client, rvgpu-engine-test): interrupt info and SET_IRQS, the ring, FILL / COPY /
# FENCE, a doorbell running a small batch itself, MSI and INTx delivery, every error code, unmapping under queued commands, two vGPUs at
# once, vblank, close with work in flight, closing while the vblank timer runs (200 times), more
# pinned pages than the pin cache holds, pinned pages released.
. "$(dirname "$0")/../lib.sh"
plan 45

mark=$(dmesg_mark)
load_rvgpu
on_two_vgpus "$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-engine-test"
check_kernel_log "$mark"
unload_rvgpu || diag "rmmod rvgpu failed"
