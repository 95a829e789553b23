#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Starts and stops, inside the test VM, what Debian's libvirt needs: systemd-udevd (libvirt's
# node-device driver learns of devices through udev, and waits for a new mdev with
# `udevadm settle`; mdevctl's udev rule starts --auto definitions when a parent registers) and
# the monolithic libvirtd.
#
#   selftests/libvirt-env.sh up [--udev-only]   start udevd (and libvirtd); fails if one does not come up
#   selftests/libvirt-env.sh down               stop both and undo every change `up` made
#
# The guest's root is read-only (scripts/guest-init.sh): /etc/libvirt and /var/cache/libvirt get
# a tmpfs holding a copy of the host's files, /var/lib/libvirt, /var/log/libvirt and /run/libvirt
# are made in the guest's tmpfs. The copy of qemu.conf runs QEMU as root with no DAC labelling,
# no namespaces and no cgroups (the test kernel has none), with its stdio in plain files (no
# virtlogd): the files QEMU opens (kernel, initramfs) live on the read-only root, which libvirt
# cannot relabel. udevd must not load drivers (an `add` event of an unbound Bochs board would
# load bochs-drm and let it take the board): an empty /run/udev/rules.d/80-drivers.rules hides
# the driver-loading rule; a copy of mdevctl's rule fixes its path to mdevctl (see below). `down` leaves the VM as it was for the suites after this one.
set -uo pipefail

state=/run/rvgpu-libvirt
say() { echo "# libvirt-env: $*"; }

# wait_for SECONDS CMD...: until CMD succeeds, at most SECONDS.
wait_for() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.5
	done
}

up() {
	local udev_only=$1 d copy rule
	mkdir -p "$state" || return 1
	# udevd, with driver loading off.
	[ -e /run/udev ] || echo /run/udev >>"$state/created"
	mkdir -p /run/udev/rules.d
	echo "# selftests/libvirt-env.sh: no driver loading in the test VM" >/run/udev/rules.d/80-drivers.rules
	# Debian 12's mdevctl (1.2.0-3+b1) installs /usr/bin/mdevctl, but its udev rule runs
	# /usr/sbin/mdevctl ("not found": --auto definitions never start when a parent registers).
	# A copy of the rule with the installed path takes its place, as /etc/udev/rules.d would.
	rule=/lib/udev/rules.d/60-mdevctl.rules
	if [ -f "$rule" ] && grep -q /usr/sbin/mdevctl "$rule" && [ ! -x /usr/sbin/mdevctl ]; then
		sed "s|/usr/sbin/mdevctl|$(command -v mdevctl)|g" "$rule" >/run/udev/rules.d/60-mdevctl.rules
		say "60-mdevctl.rules runs /usr/sbin/mdevctl, which is not installed: using a copy that runs $(command -v mdevctl)"
	fi
	/lib/systemd/systemd-udevd --daemon || { say "systemd-udevd --daemon failed"; return 1; }
	wait_for 30 udevadm control --ping || { say "udevd does not answer"; return 1; }
	udevadm trigger --action=add --type=subsystems
	udevadm trigger --action=add --type=devices
	udevadm settle --timeout=180 || say "udevadm settle timed out"
	[ "$udev_only" = 0 ] || return 0

	for d in /etc/libvirt /var/cache/libvirt; do
		copy=$state/copy${d//\//-}
		cp -a "$d" "$copy" && mount -t tmpfs -o mode=0755 tmpfs "$d" && cp -a "$copy/." "$d/" ||
			{ say "cannot make $d writable"; return 1; }
		echo "$d" >>"$state/mounts"
	done
	for d in /var/lib/libvirt /var/log/libvirt /run/libvirt; do
		[ -e "$d" ] || { mkdir -p "$d" && echo "$d" >>"$state/created"; }
	done
	mkdir -p /var/lib/libvirt/qemu /var/lib/libvirt/images /var/log/libvirt/qemu
	cat >>/etc/libvirt/qemu.conf <<'EOF'

# selftests/libvirt-env.sh: the test VM's read-only root, no cgroups, no virtlogd.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
EOF
	rm -f /etc/libvirt/qemu/networks/autostart/*.xml
	libvirtd -d -p "$state/libvirtd.pid" || { say "libvirtd -d failed"; return 1; }
	# The QEMU driver probes QEMU's capabilities on its first start (a few seconds under TCG).
	wait_for 180 virsh -c qemu:///system version ||
		{ say "libvirtd does not answer"; virsh -c qemu:///system version 2>&1 | sed 's/^/#   /'; return 1; }
}

down() {
	local pid d i
	if pid=$(cat "$state/libvirtd.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	fi
	if udevadm control --ping >/dev/null 2>&1; then
		udevadm settle --timeout=60 >/dev/null 2>&1
		udevadm control --exit
	fi
	if [ -f "$state/mounts" ]; then
		tac "$state/mounts" | while read -r d; do umount "$d" || say "cannot unmount $d"; done
	fi
	if [ -f "$state/created" ]; then
		while read -r d; do rm -rf "$d"; done <"$state/created"
	fi
	rm -rf "$state"
}

case ${1:-} in
up) shift; udev_only=0; [ "${1:-}" = --udev-only ] && udev_only=1; up "$udev_only" ;;
down) down ;;
*) echo "usage: $0 up [--udev-only] | down" >&2; exit 2 ;;
esac
