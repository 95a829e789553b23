#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (scripts/bench.sh): rvgpu on a 256 MiB board beside the kernel's mbochs
# sample limited to the same 256 MiB, the same vGPU size (16 MiB) on both.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
modprobe -a vfio mdev
modprobe mbochs count=256
insmod "$root/rvgpu.ko"
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
# RVGPU_BENCH_ONLY=sched runs only the scheduler's figures; =perf only the device-path ones
# (create/remove, register and framebuffer access, interrupts and the engine) and stops before
# the display, scheduler and migration figures.
if [ "${RVGPU_BENCH_ONLY:-}" = sched ]; then
	python3 "$root/selftests/bench/sched.py" "$gpu"
	exit
fi
rv=/sys/bus/pci/devices/$gpu/mdev_supported_types/nvidia-9104
mbt=$(grep -l '16 MB' /sys/class/mdev_bus/mbochs/mdev_supported_types/*/description 2>/dev/null | head -1 || true)
mb=$(dirname "${mbt:-/sys/class/mdev_bus/mbochs/mdev_supported_types/mbochs-2/description}")
echo "# rvgpu type: $(cat "$rv/name") ($(basename "$rv")); mbochs type: $(cat "$mb/name") ($(basename "$mb"))"
python3 "$root/selftests/bench/lifecycle.py" "$rv" "$mb"

# Device access: one 64 MiB vGPU and one mbochs instance.
u=$(cat /proc/sys/kernel/random/uuid); echo "$u" >"/sys/bus/pci/devices/$gpu/mdev_supported_types/nvidia-9106/create"
m=$(cat /proc/sys/kernel/random/uuid); echo "$m" >"$mb/create"
"$root/selftests/vfio-client/target/release/rvgpu-bench" "$gpu" "$u" "$m"
echo 1 >"/sys/bus/mdev/devices/$u/remove"
echo 1 >"/sys/bus/mdev/devices/$m/remove"

# Interrupts and the engine, beside the kernel's mtty sample.
"$root/selftests/bench/irq-in-vm.sh"
[ "${RVGPU_BENCH_ONLY:-}" != perf ] || exit 0

# The display plane query beside the kernel's mdpy sample (its 1024x768 type), and the
# screendump round trip of a nested guest on a vGPU beside QEMU's emulated display.
if modprobe mdpy 2>/dev/null; then
	u=$(cat /proc/sys/kernel/random/uuid); echo "$u" >"/sys/bus/pci/devices/$gpu/mdev_supported_types/nvidia-9104/create"
	m=$(cat /proc/sys/kernel/random/uuid); echo "$m" >/sys/class/mdev_bus/mdpy/mdev_supported_types/mdpy-xga/create
	"$root/selftests/vfio-client/target/release/rvgpu-plane-bench" "$u" "$m"
	echo 1 >"/sys/bus/mdev/devices/$u/remove"
	echo 1 >"/sys/bus/mdev/devices/$m/remove"
	rmmod mdpy
else
	echo "# mdpy is not available: no plane-query comparison"
fi
python3 "$root/selftests/bench/display.py"

# The scheduler: throughput, switch cost, shares and waits per policy.
python3 "$root/selftests/bench/sched.py" "$gpu"

# Live migration of the nested guest: rvgpu vGPUs of two sizes beside the emulated display.
python3 "$root/selftests/bench/migration.py"
