#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (called by the benchmark runner): interrupt latency of rvgpu's engine
# (doorbell -> FENCE completion interrupt) beside the kernel's mtty sample (IER write -> its
# interrupt), and COPY_TO_FB bandwidth beside a user-space memcpy. Figures only.
#   irq-in-vm.sh [N]    N latency samples per figure (default 2000)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/selftests/vfio-client/target/release/rvgpu-irq-bench
n=${1:-2000}
modprobe -a vfio mdev
lsmod | grep -q '^rvgpu ' || insmod "$root/rvgpu.ko"
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")

u=$(cat /proc/sys/kernel/random/uuid)
echo "$u" >"/sys/bus/pci/devices/$gpu/mdev_supported_types/nvidia-9106/create"
m=-
if modprobe mtty 2>/dev/null; then
	m=$(cat /proc/sys/kernel/random/uuid)
	echo "$m" >/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create
else
	echo "# mtty is not available: rvgpu figures only"
fi
cleanup() {
	echo 1 >"/sys/bus/mdev/devices/$u/remove" 2>/dev/null || true
	[ "$m" = - ] || echo 1 >"/sys/bus/mdev/devices/$m/remove" 2>/dev/null || true
}
trap cleanup EXIT
echo "# rvgpu: $(cat "/sys/bus/pci/devices/$gpu/mdev_supported_types/nvidia-9106/name") on $gpu; $(nproc) CPUs"
"$bin" "$u" "$m" "$n"
