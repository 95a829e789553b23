#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs INSIDE the test VM (scripts/vm-run.sh): boots the nested guest built by
# scripts/build-nested.sh in QEMU (TCG) with a vGPU mdev passed through by vfio-pci, waits for its
# /init (selftests/nested/init) to report on the serial console, and prints its `NESTED:` lines
# (live, as they come). The guest lists its PCI functions, checks that bochs-drm bound the
# 1234:1111 function and made /dev/fb0, draws text on its fbcon console, says `NESTED: ready` and
# `NESTED: done`, and stops.
#
#   scripts/nested-run.sh [OPTIONS] SYSFSDEV
#
#   SYSFSDEV             the mdev, e.g. /sys/bus/mdev/devices/<UUID>
#   --iommufd            attach through iommufd + the VFIO cdev (-object iommufd) instead of the
#                        legacy container/type1 path
#   --timeout SECS       give up (and kill QEMU) if the guest has not said `done` (or, with
#                        --hold-cmd, `ready`) after SECS seconds (default 600)
#   --log FILE           keep the guest's whole serial console in FILE (default: a temporary file,
#                        removed at exit; its tail is shown when the run fails)
#   --hold-cmd CMD       once the guest says `ready` (its framebuffer holds console text), run CMD
#                        with bash -c, here in the test VM, while the nested guest is still up;
#                        then stop QEMU. CMD sees NESTED_LOG (the serial log so far), NESTED_QEMU_PID,
#                        NESTED_QMP (the nested QEMU's QMP socket), NESTED_SYSFSDEV and NESTED_FB ("<name> <virtual_size> <bpp> <stride>" from
#                        the `NESTED: fb` line). It is bounded by what is left of --timeout.
#   --mem SIZE           nested guest RAM (default 128M)
#   --device-opts OPTS   extra vfio-pci properties, appended to the -device option (e.g. display=on)
#   --append ARGS        extra nested kernel command-line arguments (e.g. video=1024x768); repeatable
#   --verbose            boot the nested kernel without `quiet` (its messages land in the log)
#
# Exit status: 0 if the guest said `done` (or `ready` with --hold-cmd) and no `NESTED: error`;
# 1 if it did not (error lines, a QEMU failure, a timeout); 3 if the guest was fine but CMD failed
# (or timed out); 2 for a usage error.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

me=nested-run
usage() {
	sed -n '/^#   scripts\/nested-run.sh/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$here/nested-run.sh"
	exit 0
}
usage_error() { echo "$me: $*" >&2; echo "$me: see scripts/nested-run.sh --help" >&2; exit 2; }
die() { echo "$me: $*" >&2; exit 1; }

iommufd=0 timeout_s=600 log='' hold_cmd='' have_hold=0 mem=128M device_opts='' append=() verbose=0
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs an argument"; }
while [ $# -gt 0 ]; do
	case $1 in
	--iommufd) iommufd=1; shift ;;
	--timeout) need_arg "$1" $#; timeout_s=$2; shift 2 ;;
	--log) need_arg "$1" $#; log=$2; shift 2 ;;
	--hold-cmd) need_arg "$1" $#; hold_cmd=$2; have_hold=1; shift 2 ;;
	--mem) need_arg "$1" $#; mem=$2; shift 2 ;;
	--device-opts) need_arg "$1" $#; device_opts=$2; shift 2 ;;
	--append) need_arg "$1" $#; append+=("$2"); shift 2 ;;
	--verbose) verbose=1; shift ;;
	--timeout=*|--log=*|--hold-cmd=*|--mem=*|--device-opts=*|--append=*)
		set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) usage_error "unknown option '$1'" ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || usage_error "want exactly one SYSFSDEV (usage: scripts/nested-run.sh [OPTIONS] SYSFSDEV)"
sysfsdev=$1
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout wants a number of seconds"
[ "$have_hold" = 0 ] || [ -n "$hold_cmd" ] || usage_error "--hold-cmd wants a command"
[[ $device_opts != *[[:space:]]* ]] || usage_error "--device-opts must not contain white space"

# What we need.
[ -d "$sysfsdev" ] || die "$sysfsdev: no such device (create the mdev first)"
sysfsdev=${sysfsdev%/}
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found"
{ read -r bzimage; read -r initramfs; } < <("$here/build-nested.sh" --print)
for f in "$bzimage" "$initramfs"; do
	[ -f "$f" ] || die "$f missing: run scripts/build-nested.sh (on the host; the test VM's root is read-only)"
done
if [ "$iommufd" = 1 ]; then
	[ -c /dev/iommu ] || die "--iommufd: /dev/iommu missing (kernel without CONFIG_IOMMUFD?)"
	[ -d "$sysfsdev/vfio-dev" ] || die "--iommufd: $sysfsdev has no vfio-dev/ (kernel without CONFIG_VFIO_DEVICE_CDEV?)"
	# shellcheck disable=SC2054  # commas inside QEMU option values
	vfio_dev=(-object iommufd,id=fd0 -device "vfio-pci,iommufd=fd0,sysfsdev=$sysfsdev${device_opts:+,$device_opts}")
else
	[ -e "$sysfsdev/iommu_group" ] || die "$sysfsdev has no iommu_group (not bound to a VFIO mdev driver?)"
	vfio_dev=(-device "vfio-pci,sysfsdev=$sysfsdev${device_opts:+,$device_opts}")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rvgpu-nested.XXXXXX")
[ -n "$log" ] || log=$tmp/serial.log
: >"$log" || die "cannot write $log"
qemu_pid=
# shellcheck disable=SC2317  # called from traps
stop_qemu() {
	[ -n "$qemu_pid" ] || return 0
	if kill -0 "$qemu_pid" 2>/dev/null; then
		# SIGTERM: QEMU shuts down cleanly (closes the VFIO device); SIGKILL after 10 s.
		kill -TERM "$qemu_pid" 2>/dev/null || true
		local end=$(( SECONDS + 10 ))
		while kill -0 "$qemu_pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
		kill -KILL "$qemu_pid" 2>/dev/null || true
	fi
	wait "$qemu_pid" 2>/dev/null || true
	qemu_pid=
}
# shellcheck disable=SC2317
cleanup() { stop_qemu; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 130' INT
trap 'echo "$me: terminated" >&2; exit 143' TERM

# With a hold command the guest stays up after `ready` until we stop it.
hold=0
[ "$have_hold" = 0 ] || hold=$(( timeout_s + 60 ))
cmdline=(console=ttyS0 panic=-1 "rvgpu.hold=$hold")
[ "$verbose" = 1 ] || cmdline+=(quiet)
cmdline+=("${append[@]}")
qemu=(
	qemu-system-x86_64 -machine pc -accel tcg -m "$mem" -smp 1
	-nodefaults -no-user-config -vga none -display none -monitor none -no-reboot
	-serial "file:$log" -qmp "unix:$tmp/qmp.sock,server=on,wait=off"
	-kernel "$bzimage" -initrd "$initramfs" -append "${cmdline[*]}"
	"${vfio_dev[@]}"
)
echo "$me: $(if [ "$iommufd" = 1 ]; then echo iommufd; else echo container; fi) path, $sysfsdev, timeout ${timeout_s} s"
start=$(date +%s)
"${qemu[@]}" </dev/null >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!

# Follow the log: print new NESTED: lines, react to ready/done, notice QEMU exiting or the timeout.
printed=0 ready=0 done_=0 errors=0 exited=0 exit_seen=0 timed_out=0 hold_rc='' fb=''
while :; do
	mapfile -t lines < <(grep -a '^NESTED: ' "$log" 2>/dev/null | tr -d '\r' || true)
	while [ "$printed" -lt "${#lines[@]}" ]; do
		line=${lines[$printed]}
		printed=$((printed + 1))
		echo "$line"
		case $line in
		"NESTED: ready") ready=1 ;;
		"NESTED: done") done_=1 ;;
		"NESTED: error"*) errors=$((errors + 1)) ;;
		"NESTED: fb "*) fb=${line#NESTED: fb } ;;
		esac
	done
	[ "$done_" = 0 ] || break
	if [ "$ready" = 1 ] && [ "$have_hold" = 1 ]; then
		remaining=$(( timeout_s - ($(date +%s) - start) ))
		[ "$remaining" -gt 0 ] || remaining=1
		echo "$me: guest ready after $(( $(date +%s) - start )) s; running the hold command (up to $remaining s)"
		hold_rc=0
		NESTED_LOG=$log NESTED_QEMU_PID=$qemu_pid NESTED_SYSFSDEV=$sysfsdev NESTED_FB=$fb NESTED_QMP=$tmp/qmp.sock \
			timeout -k 5 "$remaining" bash -c "$hold_cmd" </dev/null || hold_rc=$?
		echo "$me: hold command exited with status $hold_rc; stopping the nested guest"
		break
	fi
	if ! kill -0 "$qemu_pid" 2>/dev/null; then
		exited=1
		# The last lines may have landed between our read and QEMU's exit.
		[ "$exit_seen" = 1 ] && break
		exit_seen=1
		continue
	fi
	if [ $(( $(date +%s) - start )) -ge "$timeout_s" ]; then
		timed_out=1
		break
	fi
	sleep 0.5
done
elapsed=$(( $(date +%s) - start ))

# After `done` the guest resets and QEMU (-no-reboot) exits by itself; give it a moment, then
# stop it (the guest has nothing left to do).
if [ "$done_" = 1 ] && [ "$have_hold" = 0 ]; then
	end=$(( SECONDS + 5 ))
	while kill -0 "$qemu_pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
fi
qemu_rc=
if [ "$exited" = 1 ]; then
	qemu_rc=0
	wait "$qemu_pid" || qemu_rc=$?
	qemu_pid=
fi
stop_qemu

ok=0
if [ "$errors" -eq 0 ] && { [ "$done_" = 1 ] || { [ "$have_hold" = 1 ] && [ "$ready" = 1 ]; }; }; then
	ok=1
fi
if [ "$ok" = 1 ]; then
	echo "$me: nested guest OK in $elapsed s"
else
	if [ "$timed_out" = 1 ]; then
		echo "$me: timed out after $timeout_s s (ready=$ready done=$done_)" >&2
	elif [ "$exited" = 1 ] && [ "$done_" = 0 ]; then
		echo "$me: QEMU exited with status $qemu_rc after $elapsed s before the guest said done" >&2
	elif [ "$errors" -gt 0 ]; then
		echo "$me: the nested guest reported $errors error(s)" >&2
	fi
	if [ -s "$tmp/qemu.out" ]; then
		echo "$me: QEMU said:" >&2
		sed 's/^/  /' "$tmp/qemu.out" >&2
	fi
	echo "$me: last lines of the serial console ($log):" >&2
	tail -n 30 "$log" | tr -d '\r' | sed 's/^/  /' >&2
	exit 1
fi
if [ -s "$tmp/qemu.out" ]; then
	echo "$me: QEMU said:"
	sed 's/^/  /' "$tmp/qemu.out"
fi
if [ -n "$hold_rc" ] && [ "$hold_rc" != 0 ]; then
	echo "$me: the hold command failed (status $hold_rc)" >&2
	exit 3
fi
exit 0
