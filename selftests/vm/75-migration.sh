#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Live migration of a vGPU (VFIO migration v2: STOP_COPY, P2P, PRE_COPY; DMA logging; the stream
# of uapi/rvgpu.h), driven through VFIO as QEMU would, once through the container/type1 path and
# once through iommufd/cdev (selftests/vfio-client, rvgpu-migration-test): the migration feature,
# every arc of the device state machine, STOP quiescing the engine, the PRE_COPY and STOP_COPY
# data fd, migrating A to B idle and with commands queued, A -> B -> A twice, corrupted streams
# refused, reset and close in the middle of a session, DMA logging of the engine's writes, the
# framebuffer's dirty tracking (pages changed in PRE_COPY sent again, STOP_COPY only those).
# 12 results per path, and the kernel-log check.
. "$(dirname "$0")/../lib.sh"
plan 25

mark=$(dmesg_mark)
load_rvgpu
on_two_vgpus "$RVGPU_ROOT/selftests/vfio-client/target/release/rvgpu-migration-test"
check_kernel_log "$mark"
unload_rvgpu || diag "rmmod rvgpu failed"
