#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Debian's mdevctl, unmodified, against rvgpu: types, define (with an nvidia/vgpu_params
# attribute), start, list, stop, undefine.
. "$(dirname "$0")/../lib.sh"
plan 7

load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
u=$(cat /proc/sys/kernel/random/uuid)

out=$(mdevctl types 2>&1)
if printf '%s\n' "$out" | grep -q "nvidia-9106" && printf '%s\n' "$out" | grep -q "GRID RVGPU-64Q" &&
	printf '%s\n' "$out" | grep -q "vfio-pci"; then
	ok "mdevctl types lists rvgpu's types with names and device_api"
else
	fail "mdevctl types lists rvgpu's types" "$out"
fi

check "mdevctl define with an nvidia/vgpu_params attribute" \
	sh -c "mdevctl define -u $u -p $gpu --type nvidia-9106 &&
	       mdevctl modify -u $u --addattr=nvidia/vgpu_params --value=frame_rate_limiter=0"

out=$(mdevctl list -d 2>&1)
if printf '%s\n' "$out" | grep -q "$u $gpu nvidia-9106"; then ok "mdevctl list -d shows the definition"
else fail "mdevctl list -d shows the definition" "$out"; fi

if mdevctl start -u "$u" >/tmp/start.log 2>&1 && [ -d "/sys/bus/mdev/devices/$u" ] &&
	[ "$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params")" = frame_rate_limiter=0 ]; then
	ok "mdevctl start creates the vGPU and applies vgpu_params"
else
	fail "mdevctl start creates the vGPU and applies vgpu_params" "$(cat /tmp/start.log)" \
		"$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params" 2>&1)"
fi

out=$(mdevctl list 2>&1)
if printf '%s\n' "$out" | grep -q "$u $gpu nvidia-9106"; then ok "mdevctl list shows the running vGPU"
else fail "mdevctl list shows the running vGPU" "$out"; fi

if mdevctl stop -u "$u" && [ ! -e "/sys/bus/mdev/devices/$u" ] &&
	[ "$(cat "/sys/bus/pci/devices/$gpu/nvidia/vram_free_mib")" = "$(cat "/sys/bus/pci/devices/$gpu/nvidia/vram_total_mib")" ]; then
	ok "mdevctl stop removes it and frees its VRAM"
else
	fail "mdevctl stop removes it and frees its VRAM" "$(ls /sys/bus/mdev/devices)"
fi

if mdevctl undefine -u "$u" && [ -z "$(mdevctl list -d 2>&1)" ]; then
	ok "mdevctl undefine forgets the definition"
else
	fail "mdevctl undefine forgets the definition" "$(mdevctl list -d 2>&1)"
fi
unload_rvgpu
