#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job: sets up what is missing, builds the kernel (cached) and rvgpu.ko, boots a test VM
# with two Bochs boards (64 MiB and 256 MiB of VRAM), loads the driver and shows it working:
# the bound GPUs, their vGPU types, vGPUs created by UUID and by mdevctl, the VRAM placement, and
# a small VM booted by QEMU on a vGPU, whose console is then read back from the physical VRAM and
# shown by QEMU (display=on): its screenshot is saved as rvgpu-nested-guest.png here (or in
# RVGPU_SCREENSHOT_DIR), and `--readme` puts it where the README shows it
# (selftests/screenshots/nested-guest.png).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
as_root scripts/run.sh "$@"
prepare_build
bash scripts/build-nested.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rc=0
scripts/vm-run.sh --vram 64M --vram 256M --out "$out" -- "$(pwd)/scripts/demo-in-vm.sh" || rc=$?
if [ -f "$out/nested-guest.png" ]; then
	dest=${RVGPU_SCREENSHOT_DIR:-$(pwd)}/rvgpu-nested-guest.png
	[ "${1:-}" != --readme ] || dest=selftests/screenshots/nested-guest.png
	mkdir -p "$(dirname "$dest")"
	cp "$out/nested-guest.png" "$dest"
	echo "run: the nested guest's screen, as QEMU shows it from the vGPU: $dest"
fi
exit "$rc"
