#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mdevctl definitions across a reboot, VM 1 of 2 (scripts/test.sh runs 58-mdevctl-boot.sh in a
# second VM): defines two vGPUs with --auto (one with an nvidia/vgpu_params attribute) and one
# without, on two boards, and leaves /etc/mdevctl.d in $RVGPU_OUT for the next boot.
. "$(dirname "$0")/../lib.sh"
plan 2

load_rvgpu
mapfile -t boards < <(ls -d /sys/bus/pci/drivers/nvidia/0000:* | xargs -n1 basename)
a=$(cat /proc/sys/kernel/random/uuid) b=$(cat /proc/sys/kernel/random/uuid) c=$(cat /proc/sys/kernel/random/uuid)
last=${boards[${#boards[@]}-1]}
if mdevctl define -u "$a" -p "${boards[0]}" --type nvidia-9104 --auto >/tmp/def.log 2>&1 &&
	mdevctl modify -u "$a" --addattr=nvidia/vgpu_params --value=frame_rate_limiter=0 >>/tmp/def.log 2>&1 &&
	mdevctl define -u "$b" -p "$last" --type nvidia-9105 --auto >>/tmp/def.log 2>&1 &&
	mdevctl define -u "$c" -p "$last" --type nvidia-9104 >>/tmp/def.log 2>&1 &&
	[ "$(mdevctl_defined | wc -l)" -eq 3 ] && [ -z "$(ls /sys/bus/mdev/devices/)" ]; then
	ok "mdevctl define: two --auto definitions (one with vgpu_params) and one manual, on ${#boards[@]} boards, none started"
else
	fail "mdevctl define of the definitions to keep across the reboot" "$(cat /tmp/def.log)" "$(mdevctl list -d 2>&1)"
fi

if [ -n "${RVGPU_OUT:-}" ] && mkdir -p "$RVGPU_OUT/mdevctl.d" && cp -a /etc/mdevctl.d/. "$RVGPU_OUT/mdevctl.d/" &&
	printf '%s %s nvidia-9104 frame_rate_limiter=0\n%s %s nvidia-9105 -\n' "$a" "${boards[0]}" "$b" "$last" >"$RVGPU_OUT/auto" &&
	printf '%s\n' "$c" >"$RVGPU_OUT/manual"; then
	ok "/etc/mdevctl.d saved for the next boot ($(find /etc/mdevctl.d -type f | wc -l) files)"
else
	fail "/etc/mdevctl.d saved for the next boot (RVGPU_OUT '${RVGPU_OUT:-}')"
fi
for u in "$a" "$b" "$c"; do mdevctl undefine -u "$u" >/dev/null 2>&1; done
unload_rvgpu || diag "rmmod rvgpu failed"
