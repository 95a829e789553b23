#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job: sets up what is missing, builds the kernel (cached) and rvgpu.ko, boots a test VM
# with two Bochs boards (64 MiB and 256 MiB of VRAM), loads the driver and shows it working:
# the bound GPUs, their vGPU types, vGPUs created by UUID and by mdevctl, the VRAM placement, and
# a small VM booted by QEMU on a vGPU, whose console is then read back from the physical VRAM.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
prepare_build
bash scripts/build-nested.sh
exec scripts/vm-run.sh --vram 64M --vram 256M -- "$(pwd)/scripts/demo-in-vm.sh"
