#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (scripts/bench.sh, on a VM with as many boards as the machine type
# holds): the scale figures of selftests/bench/scale.py. Figures only.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
modprobe -a vfio mdev
lsmod | grep -q '^rvgpu ' || insmod "$root/rvgpu.ko"
python3 "$root/selftests/bench/scale.py" "$root/rvgpu.ko"
