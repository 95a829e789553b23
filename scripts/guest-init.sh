#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the VM that scripts/vm-run.sh boots (init=<this file>). The root is the host's root file
# system, read-only over virtio-9p. This sets up a minimal writable system, runs the command script
# vm-run.sh left in the rvgpu_io share (9p, read-write), writes its exit status next to it, and
# powers the VM off. PID 1 must never exit (that panics the kernel): every path ends in power_off.
#
# Kernel command line: rvgpu_vm.kdir=DIR (the kernel build directory; DIR/modroot/lib/modules is
# bind-mounted on /lib/modules), rvgpu_vm.loglevel=N (the console log level while the command runs;
# the boot itself uses loglevel=, kept low to hide the usual warnings of a TCG boot).
#
# Speed matters: under TCG every exec of a dynamically linked program over 9p costs 0.1-0.2 s, so
# this uses bash builtins where it can, the static busybox (when installed) for the rest, and mounts
# everything in two `mount -a -T FSTAB` calls.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022

io=/run/rvgpu-io
say() { echo "vm-init: $*" >&2; }

if [ -x /usr/bin/busybox ]; then
	bb() { /usr/bin/busybox "$@"; }
else
	bb() { "$@"; }
fi

# shellcheck disable=SC2317  # called from the EXIT trap
power_off() {
	trap - EXIT
	bb sync
	# QEMU's isa-debug-exit device (vm-run.sh adds it at port 0xf4) ends QEMU at once, silently.
	printf '\0' | bb dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
	bb sleep 1
	# Otherwise: sysrq works whatever kernel.sysrq says when written through /proc; the power-off runs
	# from a work queue, so keep PID 1 alive meanwhile. With QEMU's -no-reboot a reset exits QEMU too.
	echo o >/proc/sysrq-trigger 2>/dev/null
	bb sleep 10
	echo b >/proc/sysrq-trigger 2>/dev/null
	while :; do bb sleep 3600; done
}
trap power_off EXIT

# Until the guest's own /proc is mounted, /proc is the host's, read over 9p (and so is /sys).
bb mount -t proc -o nosuid,nodev,noexec proc /proc || say "cannot mount proc on /proc"

read -r -a cmdline </proc/cmdline
# cmdline_arg NAME VAR: sets VAR to the value of the last NAME=VALUE on the kernel command line.
cmdline_arg() {
	local w
	printf -v "$2" '%s' ''
	for w in "${cmdline[@]}"; do [[ $w != "$1="* ]] || printf -v "$2" '%s' "${w#*=}"; done
}
read -r -d '' mounts </proc/mounts
read -r -d '' filesystems </proc/filesystems

# fstab lines: SOURCE TARGET TYPE OPTIONS, with blanks and backslashes escaped as getmntent wants.
# (No $(...) here: every command substitution is a fork, and forks are slow under TCG too.)
fstab=()
add() {
	local f=("$1" "$2") i
	for i in 0 1; do
		f[i]=${f[i]//\\/\\134} f[i]=${f[i]// /\\040} f[i]=${f[i]//$'\t'/\\011} f[i]=${f[i]//$'\n'/\\012}
	done
	fstab+=("${f[0]} ${f[1]} $3 $4 0 0")
}
mount_all() {
	local file=$1
	if ! { printf '%s\n' "${fstab[@]}" >"$file" && bb mount -a -T "$file"; }; then
		say "some mounts of $file failed"
	fi
	fstab=()
}

# Phase 1: the kernel's file systems and the tmpfs directories, on the read-only root.
[[ $mounts == *" /dev devtmpfs "* ]] || bb mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev ||
	say "cannot mount devtmpfs on /dev"
bb mkdir -p /dev/pts /dev/shm
# devtmpfs has no /dev/fd (bash's <(...) needs it) nor /dev/std*: one shell makes them all.
# shellcheck disable=SC2016  # for that shell
bb sh -c 'ln -s /proc/self/fd /dev/fd; for i in 0:stdin 1:stdout 2:stderr; do
	ln -s "/proc/self/fd/${i%:*}" "/dev/${i#*:}"; done' 2>/dev/null
add sysfs /sys sysfs nosuid,nodev,noexec
add devpts /dev/pts devpts nosuid,noexec,gid=5,mode=0620,ptmxmode=0666
add tmpfs /dev/shm tmpfs nosuid,nodev,mode=1777
add tmpfs /run tmpfs nosuid,nodev,mode=0755
add tmpfs /tmp tmpfs nosuid,nodev,mode=1777
add tmpfs /var/tmp tmpfs nosuid,nodev,mode=1777
add tmpfs /var/lib tmpfs mode=0755
add tmpfs /var/log tmpfs mode=0755
add debugfs /sys/kernel/debug debugfs defaults
[[ $filesystems == *tracefs* ]] && add tracefs /sys/kernel/tracing tracefs defaults
[[ $filesystems == *configfs* ]] && add configfs /sys/kernel/config configfs defaults
mount_all /dev/shm/fstab.1 # /dev is the only writable place yet

# Phase 2: directories of the read-only root made writable by mirrors (see mirror), the kernel's
# modules, /etc/mdevctl.d and the rvgpu_io share.
mkdirs=()

# mirror DIR: a directory under /run, rbind-mounted over DIR, that holds DIR's entries: each
# subdirectory bind-mounted from the original (read-only, like the root), files and symbolic links
# copied. New entries can be made in DIR; changes to the existing ones fail or stay in the guest.
mirror() {
	local dir=$1 new e subdirs=() copies=()
	new=/run/rvgpu/mirror${dir//\//-}
	for e in "$dir"/.[!.]* "$dir"/..?* "$dir"/*; do
		if [ -d "$e" ] && [ ! -L "$e" ]; then
			subdirs+=("$new/${e##*/}")
			add "$e" "$new/${e##*/}" none bind
		elif [ -e "$e" ] || [ -L "$e" ]; then
			copies+=("$e")
		fi
	done
	bb mkdir -p -m "$(bb stat -c %a "$dir")" "$new" "${subdirs[@]}"
	[ ${#copies[@]} -eq 0 ] || bb cp -a "${copies[@]}" "$new/"
	MIRRORED=$new
}
mirrors=()

# ensure_dir DIR: makes sure DIR will exist (as a mount point, say) though the root is read-only, by
# mirroring the nearest existing parent. Sets DIR_AS to where DIR gets created before the rbinds.
ensure_dir() {
	local dir=$1 parent
	DIR_AS=$dir
	[ -d "$dir" ] && return 0
	parent=$(bb readlink -f "${dir%/*}")
	[ -d "$parent" ] || { say "no directory $parent to create ${dir##*/} in"; return 1; }
	mirror "$parent"
	mirrors+=("$parent" "$MIRRORED")
	DIR_AS=$MIRRORED/${dir##*/}
	mkdirs+=("$DIR_AS")
}

mirror /root
mirrors+=(/root "$MIRRORED")

cmdline_arg rvgpu_vm.kdir kdir
read -r release </proc/sys/kernel/osrelease
modules=
if [ -n "$kdir" ] && [ -d "$kdir/modroot/lib/modules" ]; then
	ensure_dir /lib/modules && modules=$kdir/modroot/lib/modules
	[ -f "$kdir/modroot/lib/modules/$release/modules.dep" ] ||
		say "no modules.dep for $release in $kdir/modroot/lib/modules: modprobe will not work"
else
	say "no rvgpu_vm.kdir=DIR with DIR/modroot/lib/modules on the kernel command line: modprobe will not work"
fi
# mdevctl keeps its definitions in /etc/mdevctl.d/<parent>/<uuid> and wants scripts.d/callouts and
# scripts.d/notifiers there.
if [ -d /etc/mdevctl.d ]; then
	mirror /etc/mdevctl.d
	mirrors+=(/etc/mdevctl.d "$MIRRORED")
	mkdirs+=("$MIRRORED/scripts.d/callouts" "$MIRRORED/scripts.d/notifiers")
elif ensure_dir /etc/mdevctl.d; then
	mkdirs+=("$DIR_AS/scripts.d/callouts" "$DIR_AS/scripts.d/notifiers")
fi
mkdirs+=("$io")

bb mkdir -p "${mkdirs[@]}"
for ((i = 0; i < ${#mirrors[@]}; i += 2)); do add "${mirrors[i + 1]}" "${mirrors[i]}" none rbind; done
[ -z "$modules" ] || add "$modules" /lib/modules none bind
add rvgpu_io "$io" 9p trans=virtio,version=9p2000.L,msize=512000
mount_all /run/rvgpu/fstab.2

# Phase 3: directories vm-run.sh shared on their own because a tmpfs above hides them (a clone
# under /tmp): io/shares holds one "TAG PATH" per line.
if [ -f "$io/shares" ]; then
	mkdirs=()
	while IFS= read -r line; do
		tag=${line%% *} path=${line#* }
		mkdirs+=("$path")
		add "$tag" "$path" 9p trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro
	done <"$io/shares"
	bb mkdir -p "${mkdirs[@]}"
	mount_all /run/rvgpu/fstab.3
fi

echo rvgpu-vm >/proc/sys/kernel/hostname
bb ip link set lo up

[ -f "$io/cmd.sh" ] || { say "no command script in the rvgpu_io share"; exit 1; }
: >"$io/booted" # vm-run.sh's boot watchdog waits for this
cd / || exit 1
cmdline_arg rvgpu_vm.loglevel loglevel
[ -z "$loglevel" ] || echo "$loglevel" >/proc/sys/kernel/printk
bash "$io/cmd.sh" </dev/null
rc=$?
if ! { echo "$rc" >"$io/status.tmp" && bb mv "$io/status.tmp" "$io/status"; }; then
	say "cannot write the exit status"
fi
exit 0
