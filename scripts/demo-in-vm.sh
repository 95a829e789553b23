#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (scripts/run.sh): loads rvgpu and walks through what a host admin does.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; eval "$@"; }

modprobe -a vfio mdev
run insmod rvgpu.ko
run "dmesg | grep -E 'nvidia [0-9a-f:.]+: bochs'"
run "ls /sys/bus/pci/drivers/nvidia/"
gpu=$(basename "$(readlink -f /sys/bus/pci/drivers/nvidia/0000:*  | tail -1)")
types=/sys/bus/pci/devices/$gpu/mdev_supported_types
say "for t in $types/*; do ...; done"
for t in "$types"/*; do
	printf '%-12s %-16s available=%-3s %s\n' "$(basename "$t")" "$(cat "$t/name")" \
		"$(cat "$t/available_instances")" "$(cat "$t/description")"
done
u1=$(cat /proc/sys/kernel/random/uuid)
u2=$(cat /proc/sys/kernel/random/uuid)
run "echo $u1 > $types/nvidia-9106/create"
run "echo $u2 > $types/nvidia-9104/create"
run "cat /sys/bus/mdev/devices/$u1/mdev_type/name; ls /sys/bus/mdev/devices/$u1/nvidia/"
run "echo frame_rate_limiter=0 > /sys/bus/mdev/devices/$u1/nvidia/vgpu_params; cat /sys/bus/mdev/devices/$u1/nvidia/vgpu_params"
run "cat /sys/bus/pci/devices/$gpu/nvidia/placement"
run "grep . $types/nvidia-9106/available_instances $types/nvidia-9108/available_instances"
run "mdevctl list"
u3=$(cat /proc/sys/kernel/random/uuid)
run "mdevctl start -u $u3 -p $gpu --type nvidia-9105"
run "mdevctl list"
say "a VM on vGPU $u1: QEMU with -device vfio-pci,sysfsdev=/sys/bus/mdev/devices/$u1 (a small guest, bochs-drm, its console)"
off=$(awk -v u="$u1" '$NF == u { sub("M", "", $1); print $1 }' "/sys/bus/pci/devices/$gpu/nvidia/placement")
shot=${RVGPU_OUT:-/tmp}/nested-guest.png
scripts/nested-run.sh --append video=1024x768 --device-opts display=on --hold-cmd "
	echo; echo \"nvidia/vm_name: \$(cat /sys/bus/mdev/devices/$u1/nvidia/vm_name)\"
	echo \"nvidia/display: \$(cat /sys/bus/mdev/devices/$u1/nvidia/display)\"
	echo \"the guest's console, read from the vGPU's slice of the physical VRAM (offset ${off}M):\"
	python3 selftests/vram-ascii.py $gpu $off 4096
	python3 selftests/qmp.py screendump \$NESTED_QMP $shot png &&
		echo \"a screenshot of the guest's display (QEMU display=on, the vGPU's region plane): $shot\"" "/sys/bus/mdev/devices/$u1" | grep -v '^NESTED: pci'
run "echo 1 > /sys/bus/mdev/devices/$u2/remove; mdevctl stop -u $u3"
run "cat /sys/bus/pci/devices/$gpu/nvidia/placement"
run rmmod rvgpu
