#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mdevctl definitions across a reboot, VM 2 of 2: this VM boots with the /etc/mdevctl.d that
# 57-mdevctl-define.sh left (RVGPU_MDEVCTL_SAVED, the host directory its VM's RVGPU_OUT went to:
# its definitions, one directory per parent; mdevctl's own scripts.d is the host's).
# As on a host's boot, the driver binds the boards, then udevd starts and replays the boot's
# device events (`udevadm trigger`, selftests/libvirt-env.sh): mdevctl's udev rule then starts
# the --auto definitions, with their types and attributes, and only those.
. "$(dirname "$0")/../lib.sh"
plan 4

saved=${RVGPU_MDEVCTL_SAVED:-}
if [ -n "$saved" ] && [ -s "$saved/auto" ] && [ -d "$saved/mdevctl.d" ] &&
	cp -r "$saved"/mdevctl.d/0000:* /etc/mdevctl.d/ 2>/tmp/cp.log && [ "$(mdevctl_defined | wc -l)" -eq 3 ]; then
	ok "booted with the saved /etc/mdevctl.d: mdevctl lists the three definitions"
else
	fail "booted with the saved /etc/mdevctl.d ('$saved')" "$(cat /tmp/cp.log 2>&1)" "$(ls -R "$saved" 2>&1 | head)" "$(mdevctl list -d 2>&1)"
fi

load_rvgpu
t0=$(date +%s)
up=$("$(dirname "$0")/../libvirt-env.sh" up --udev-only 2>&1)
rc=$?
# udev runs the rule for each board's add event; give mdevctl a moment to finish.
n=$(wc -l <"$saved/auto" 2>/dev/null || echo 0)
for _ in $(seq 60); do
	[ "$(ls /sys/bus/mdev/devices/ 2>/dev/null | wc -l)" -ge "$n" ] && break
	sleep 1
done
bad=
while read -r u gpu type attr; do
	d=/sys/bus/mdev/devices/$u
	if [ ! -d "$d" ]; then bad+=" $u not started;"; continue; fi
	[ "$(basename "$(readlink -f "$d/..")")" = "$gpu" ] || bad+=" $u not on $gpu;"
	[ "$(basename "$(readlink -f "$d/mdev_type")")" = "$type" ] || bad+=" $u not $type;"
	[ "$attr" = - ] || [ "$(cat "$d/nvidia/vgpu_params")" = "$attr" ] || bad+=" $u vgpu_params $(cat "$d/nvidia/vgpu_params");"
done <"${saved:-/nonexistent}/auto"
if [ "$rc" -eq 0 ] && [ -z "$bad" ] && [ "$n" -gt 0 ]; then
	ok "udev started the $n --auto definitions at boot ($(( $(date +%s) - t0 )) s with udevd's start), on their boards, with their types and attributes"
else
	fail "udev starts the --auto definitions at boot:$bad" "$up" "$(ls /sys/bus/mdev/devices/ 2>&1)"
fi
manual=$(cat "$saved/manual" 2>/dev/null)
if [ -n "$manual" ] && [ ! -e "/sys/bus/mdev/devices/$manual" ] && mdevctl_defined | grep -q "^$manual .* manual$"; then
	ok "the manual definition stays defined and is not started"
else
	fail "the manual definition stays defined and is not started" "$(mdevctl list -d 2>&1)"
fi

for u in $(mdevctl_defined | awk '{print $1}'); do
	mdevctl stop -u "$u" >/dev/null 2>&1
	mdevctl undefine -u "$u" >/dev/null 2>&1
done
"$(dirname "$0")/../libvirt-env.sh" down >/tmp/down.log 2>&1
if [ -z "$(ls /sys/bus/mdev/devices/)" ] && [ -z "$(mdevctl_defined)" ] && unload_rvgpu; then
	ok "every vGPU stopped and undefined, udevd stopped, rvgpu unloads"
else
	fail "clean-up after the boot" "$(cat /tmp/down.log)" "$(ls /sys/bus/mdev/devices/)"
fi
