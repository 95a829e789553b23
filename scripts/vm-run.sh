#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs a command as root inside a throw-away QEMU VM that boots the kernel built by
# scripts/build-kernel.sh, with the host's whole root file system shared read-only over virtio-9p as
# the guest's root: host programs, this repository (at its same absolute path) and $RVGPU_CACHE are
# visible in the guest at the same paths. The guest's console (the command's stdout and stderr, and
# kernel warnings/oopses) streams to our stdout; we exit with the command's exit status.
#
#   scripts/vm-run.sh [OPTIONS] -- CMD [ARGS...]
#
#   --vram SIZE          add one Bochs board with SIZE of VRAM (e.g. 64M, 256M, 1G); repeatable,
#                        one board per --vram; default: one 256M board
#   --board MODEL        bochs-display (default; QEMU accepts up to 256M) or secondary-vga (up to
#                        512M); applies to every board
#   --mem SIZE           guest RAM (default 2G; at most 2G of it below 4 GiB, leaving room for the
#                        boards' 32-bit BARs)
#   --machine TYPE       QEMU machine type, pc (default) or q35: pc fits up to 7 boards of 256M
#                        (1.9 GiB of 32-bit PCI space), q35 only 3 (0.98 GiB)
#   --smp N              guest CPUs (default 2)
#   --timeout SECS       kill the VM after SECS seconds (default 900)
#   --boot-timeout SECS  kill the VM if its init has not started after SECS seconds (default 120;
#                        a TCG boot takes 2-5 s; this catches a stalled boot, e.g. a broken KVM)
#   --append "ARGS"      extra kernel command-line arguments; repeatable
#   --qemu-opts "OPTS"   extra QEMU arguments, split on whitespace; repeatable
#   --env NAME=VALUE     extra environment variable for CMD; repeatable
#   --out DIR            CMD gets RVGPU_OUT, a writable directory (the guest's root is read-only);
#                        whatever it leaves there is copied into DIR on the host when the VM stops
#   --verbose            show the kernel's boot messages and its console messages down to
#                        KERN_INFO (default: boot warnings are hidden, and while CMD runs the console
#                        shows KERN_WARNING and worse; oopses and panics always show)
#
# Environment: RVGPU_ACCEL=tcg|kvm forces the accelerator (default: KVM only if a probe boot under
# KVM works, cached per host boot in $RVGPU_CACHE/kvm-probe; TCG otherwise). RVGPU_KDIR overrides
# the kernel build directory. Every RVGPU_* variable, CI, RUST_BACKTRACE and RUST_LOG are passed to
# CMD, which also gets TERM=dumb, HOME=/root and a PATH with /root/.cargo/bin.
#
# Exit status: CMD's, or 125 when the VM reported no result (did not boot, crashed, timed out), or
# 2 for a usage error, or 130/143/129 when SIGINT/SIGTERM/SIGHUP stopped the run.
#
# A test in the guest can ask for a screendump of a board's own display output (the QEMU running the
# VM takes it), and can unplug a board and plug it back: see the host services below,
# selftests/rvgpu.py board_screendump() and board_hotplug().
#
# Guest facts (see scripts/guest-init.sh): the root, $RVGPU_CACHE and the repository are read-only;
# /tmp, /run, /var/tmp, /var/lib and /var/log are empty tmpfs; /root and /etc/mdevctl.d are writable
# and still show the host's entries (~/.cargo, ~/.rustup), read-only; /lib/modules is the build's
# modules_install output (modprobe works); debugfs and tracefs (configfs if built) are mounted; CMD
# runs as root in the directory vm-run.sh was started from, with stdin from /dev/null; the guest has
# no network (loopback only) and no udev (nothing loads drivers for new devices by itself).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

me=vm-run
die() { echo "$me: $*" >&2; exit 125; }
usage() {
	sed -n '/^#   scripts\/vm-run.sh/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$here/vm-run.sh"
	exit 0
}
usage_error() { echo "$me: $*" >&2; echo "$me: see scripts/vm-run.sh --help" >&2; exit 2; }

# Converts a size (1234, 64K, 64M, 1G, 64MiB, 64MB) to MiB; fails on anything else.
size_mib() {
	local s=${1^^} n unit
	s=${s%IB}; s=${s%B}
	n=${s%[KMGT]}; unit=${s#"$n"}
	[[ $n =~ ^[0-9]+$ ]] || return 1
	case $unit in
	'') (( n % (1024 * 1024) == 0 )) || return 1; echo $(( n / 1024 / 1024 )) ;;
	K) (( n % 1024 == 0 )) || return 1; echo $(( n / 1024 )) ;;
	M) echo "$n" ;;
	G) echo $(( n * 1024 )) ;;
	T) echo $(( n * 1024 * 1024 )) ;;
	esac
}

vram=() board=bochs-display machine=pc mem=2G smp=2 timeout_s=900 boot_timeout_s=120
append=() qemu_extra=() extra_env=() out_dir=
boot_loglevel=4 run_loglevel=5
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs an argument"; }
while [ $# -gt 0 ]; do
	case $1 in
	--vram) need_arg "$1" $#; vram+=("$2"); shift 2 ;;
	--board) need_arg "$1" $#; board=$2; shift 2 ;;
	--mem) need_arg "$1" $#; mem=$2; shift 2 ;;
	--machine) need_arg "$1" $#; machine=$2; shift 2 ;;
	--smp) need_arg "$1" $#; smp=$2; shift 2 ;;
	--timeout) need_arg "$1" $#; timeout_s=$2; shift 2 ;;
	--boot-timeout) need_arg "$1" $#; boot_timeout_s=$2; shift 2 ;;
	--append) need_arg "$1" $#; append+=("$2"); shift 2 ;;
	--qemu-opts) need_arg "$1" $#; read -r -a opts <<<"$2"; qemu_extra+=("${opts[@]}"); shift 2 ;;
	--out) need_arg "$1" $#; out_dir=$2; shift 2 ;;
	--env) need_arg "$1" $#; [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env wants NAME=VALUE"
		extra_env+=("$2"); shift 2 ;;
	--vram=*|--board=*|--mem=*|--machine=*|--smp=*|--timeout=*|--boot-timeout=*|--append=*|--qemu-opts=*|--env=*|--out=*)
		set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
	--verbose) boot_loglevel=7 run_loglevel=7; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	*) usage_error "unknown option '$1' (the command goes after --)" ;;
	esac
done
[ $# -gt 0 ] || usage_error "no command given (usage: scripts/vm-run.sh [OPTIONS] -- CMD [ARGS...])"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout wants a number of seconds"
[[ $boot_timeout_s =~ ^[1-9][0-9]*$ ]] || usage_error "--boot-timeout wants a number of seconds"
[[ $smp =~ ^[1-9][0-9]*$ ]] || usage_error "--smp wants a number"
[ ${#vram[@]} -gt 0 ] || vram=(256M)
boards=() vram_total=0 vram_ids=() board_props=()
for v in "${vram[@]}"; do
	if ! mib=$(size_mib "$v") || [ "$mib" -eq 0 ]; then usage_error "bad --vram size '$v'"; fi
	bar=1
	while [ $bar -lt "$mib" ]; do bar=$((bar * 2)); done
	vram_total=$((vram_total + bar))
	case $board in
	bochs-display) boards+=(-device "bochs-display,vgamem=${mib}M,id=board${#vram_ids[@]}") props="vgamem=$((mib << 20))" ;;
	secondary-vga) boards+=(-device "secondary-vga,vgamem_mb=$mib,id=board${#vram_ids[@]}") props="vgamem_mb=$mib" ;;
	*) usage_error "--board must be bochs-display or secondary-vga, not '$board'" ;;
	esac
	vram_ids+=("board${#vram_ids[@]}")
	board_props+=("$props")
done

# The boards' VRAM BARs are 32-bit: SeaBIOS places them between the top of the RAM below 4 GiB
# (at most 2 GiB here, see max-ram-below-4g) or, on q35, 3 GiB, and 0xfec00000, and stops silently
# ("PCI: out of 32bit address space") if they do not fit; the run would then time out.
case $machine in
q35*|pc-q35-*) window=$((0xfec00000 - 0xc0000000)) ;;
*) window=$((0xfec00000 - 0x80000000)) ;;
esac
window_mib=$(( (window >> 20) - 16 )) # 16 MiB for the other devices' BARs
if [ "$vram_total" -gt "$window_mib" ]; then
	usage_error "the boards' VRAM (${vram_total} MiB, BARs rounded up to powers of two) does not fit in the" \
		"$window_mib MiB of 32-bit PCI space of QEMU's $machine machine"
fi
case $machine in
pc|pc,*|pc-*|q35|q35,*) machine_opt=$machine,max-ram-below-4g=2G ;;
*) machine_opt=$machine ;;
esac

# The kernel.
kdir=${RVGPU_KDIR:-$("$here/build-kernel.sh" --kdir)}
bzimage=$kdir/arch/x86/boot/bzImage
if [ ! -f "$kdir/.rvgpu-complete" ] || [ ! -f "$bzimage" ]; then
	if [ -d "$kdir" ]; then
		die "the kernel at $kdir is not complete (a build in progress, or one that failed): run scripts/build-kernel.sh"
	fi
	die "no built kernel at $kdir: run scripts/build-kernel.sh"
fi
# Both paths go on the kernel command line, which has no quoting we want to depend on.
for p in "$kdir" "$here/guest-init.sh"; do
	[[ $p =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "path '$p' has characters the kernel command line cannot carry"
done
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (scripts/setup.sh installs it)"

# The accelerator.
kvm_usable() { [ -c /dev/kvm ] && { : <>/dev/kvm; } 2>/dev/null; }
accel=${RVGPU_ACCEL:-}
case $accel in
tcg) why="RVGPU_ACCEL=tcg" ;;
kvm)
	kvm_usable || die "RVGPU_ACCEL=kvm but /dev/kvm is missing or not usable"
	why="RVGPU_ACCEL=kvm"
	boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
	if [ -z "${RVGPU_VM_PROBE:-}" ] && [ "$(cat "$RVGPU_CACHE/kvm-probe" 2>/dev/null)" = "$boot_id no" ]; then
		echo "$me: warning: the KVM probe failed on this host boot; a KVM guest will probably stall" \
			"until the ${boot_timeout_s} s boot timeout" >&2
	fi ;;
'')
	accel=tcg
	if ! kvm_usable; then
		why="/dev/kvm missing or not usable"
	else
		boot_id=$(cat /proc/sys/kernel/random/boot_id)
		verdict=$(sed -n "s/^$boot_id //p" "$RVGPU_CACHE/kvm-probe" 2>/dev/null || true)
		if [ -z "$verdict" ]; then
			echo "$me: probing KVM (a 20 s test boot, once per host boot)..." >&2
			verdict=no
			if RVGPU_ACCEL=kvm RVGPU_VM_PROBE=1 "$here/vm-run.sh" --mem 512M --boot-timeout 20 --timeout 40 -- true \
				>/dev/null 2>&1 </dev/null; then
				verdict=yes
			fi
			{ mkdir -p "$RVGPU_CACHE" && echo "$boot_id $verdict" >"$RVGPU_CACHE/kvm-probe"; } 2>/dev/null ||
				echo "$me: warning: cannot cache the KVM probe verdict in $RVGPU_CACHE/kvm-probe" >&2
		fi
		if [ "$verdict" = yes ]; then
			accel=kvm why="the KVM probe boot worked"
		else
			why="/dev/kvm opens, but a test boot under KVM failed or did not reach user space in 20 s"
		fi
	fi ;;
*) usage_error "RVGPU_ACCEL must be tcg or kvm, not '$accel'" ;;
esac
if [ "$accel" = kvm ]; then
	accel_opts=(-accel kvm -cpu host)
else
	accel_opts=(-accel 'tcg,thread=multi' -cpu max)
fi
[ -n "${RVGPU_VM_PROBE:-}" ] || echo "$me: accelerator: $accel ($why)" >&2

# The private directory: the command script and the status file live in io/, shared read-write.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rvgpu-vm.XXXXXX")
io=$tmp/io
mkdir "$io" "$io/out"
# shellcheck disable=SC2317  # called from traps
qemu_pid() { local p; p=$(cat "$tmp/qemu.pid" 2>/dev/null) && [ -n "$p" ] && echo "$p"; }
# shellcheck disable=SC2317
cleanup() {
	local p
	if p=$(qemu_pid) && kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# The guest mounts empty tmpfs over these (scripts/guest-init.sh): a directory the run needs that
# lives under one (a clone in /tmp, say) is shared on its own and mounted back at its own path.
guest_tmpfs=(/tmp /var/tmp /run /var/lib /var/log /dev/shm)
shares=()
share_if_hidden() {
	local d t s
	d=$(realpath -e -- "$1" 2>/dev/null) || return 0
	for t in "${guest_tmpfs[@]}"; do
		[[ $d == "$t" || $d == "$t"/* ]] || continue
		[[ $d == "$t" ]] && die "$1 is $t itself, which the guest hides under a tmpfs: use a directory in it"
		[[ $d == *$'\n'* ]] && die "cannot share $d into the guest: its name has a newline"
		for s in "${shares[@]}"; do [[ $d == "$s" || $d == "$s"/* ]] && return 0; done
		shares+=("$d")
		return 0
	done
}
share_if_hidden "$here/.."
share_if_hidden "$PWD"
share_if_hidden "$kdir"
[ -z "${RVGPU_ROOT:-}" ] || share_if_hidden "$RVGPU_ROOT"
[ -z "${RVGPU_KO:-}" ] || share_if_hidden "$(dirname -- "$RVGPU_KO")"
share_opts=()
for i in "${!shares[@]}"; do
	# The guest reads io/shares (TAG PATH per line) and mounts each TAG at PATH, read-only.
	printf 'rvgpu_share%d %s\n' "$i" "${shares[i]}" >>"$io/shares"
	share_opts+=(-fsdev "local,id=share$i,path=${shares[i]//,/,,},security_model=none,readonly=on,multidevs=remap"
		-device "virtio-9p-pci,fsdev=share$i,mount_tag=rvgpu_share$i")
done
[ ${#shares[@]} -eq 0 ] || echo "$me: shared into the guest on their own (under a guest tmpfs): ${shares[*]}" >&2

# The guest command: environment, working directory, then CMD with its arguments quoted.
guest_path=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IFS=: read -r -a host_path <<<"$PATH"
for d in "${host_path[@]}"; do
	case $d in /*) [[ :$guest_path: == *:"$d":* ]] || guest_path+=:$d ;; esac
done
{
	echo "# generated by scripts/vm-run.sh; run by scripts/guest-init.sh"
	while IFS= read -r name; do
		printf 'export %s=%q\n' "$name" "${!name}"
	done < <(compgen -e | grep -E '^(RVGPU_[A-Z0-9_]*|CI|RUST_BACKTRACE|RUST_LOG)$' |
		grep -vx -e RVGPU_ACCEL -e RVGPU_VM_PROBE)
	printf 'export %s=%q\n' PATH "$guest_path" TERM dumb HOME /root LANG C.UTF-8 RVGPU_VM 1
	[ -z "$out_dir" ] || printf 'export %s=%q\n' RVGPU_OUT /run/rvgpu-io/out
	for e in "${extra_env[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
	printf 'dir=%q\n' "$PWD"
	# shellcheck disable=SC2016  # $dir is for the guest
	echo 'cd -- "$dir" 2>/dev/null ||'
	# shellcheck disable=SC2016
	echo '	{ echo "vm-run: cannot enter $dir in the guest (not on the shared root?)" >&2; exit 125; }'
	printf '%q ' "$@"; echo
} >"$io/cmd.sh"

cmdline=(
	console=ttyS0 "loglevel=$boot_loglevel" "rvgpu_vm.loglevel=$run_loglevel" panic=-1 iomem=relaxed
	root=rvgpu_root rootfstype=9p 'rootflags=trans=virtio,version=9p2000.L,msize=512000,cache=loose' ro
	init="$here/guest-init.sh" rvgpu_vm.kdir="$kdir"
	8250.nr_uarts=1 tsc=reliable log_buf_len=8M kasan_multi_shot no5lvl
	"${append[@]}"
)
qemu=(
	qemu-system-x86_64 -machine "$machine_opt" "${accel_opts[@]}" -smp "$smp" -m "$mem"
	-nodefaults -no-user-config -vga none -display none -monitor none -no-reboot
	-pidfile "$tmp/qemu.pid" -qmp "unix:$tmp/qmp.sock,server=on,wait=off"
	-kernel "$bzimage" -append "${cmdline[*]}"
	-chardev 'stdio,id=console,signal=off' -serial chardev:console
	-fsdev 'local,id=rootfs,path=/,security_model=none,readonly=on,multidevs=remap'
	-device 'virtio-9p-pci,fsdev=rootfs,mount_tag=rvgpu_root'
	-fsdev "local,id=io,path=$io,security_model=none"
	-device 'virtio-9p-pci,fsdev=io,mount_tag=rvgpu_io'
	-device 'isa-debug-exit,iobase=0xf4,iosize=1'
	"${share_opts[@]}"
	"${boards[@]}"
	"${qemu_extra[@]}"
)

# Run QEMU in the background (so a signal to us can stop it) with its output through a filter that
# drops the serial console's carriage returns, line by line so that the output stays live.
exec 3> >(trap '' INT; LC_ALL=C exec sed -u 's/\r$//')
filter=$!
start=$(date +%s)
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null >&3 &
runner=$!
exec 3>&-
caught=
# shellcheck disable=SC2317
on_signal() { caught=$1; kill -TERM "$runner" 2>/dev/null || true; }
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
# The boot watchdog: stops QEMU if the guest's init has not said it started (io/booted) in time.
# shellcheck disable=SC2317
boot_watchdog() {
	local i
	for ((i = 0; i < boot_timeout_s; i++)); do
		sleep 1
		[ ! -e "$io/booted" ] || return 0
	done
	: >"$tmp/boot-stalled"
	kill -TERM "$runner" 2>/dev/null
}
boot_watchdog &
watchdog=$!
# The host services, for tests in the guest:
#  - screendump: a picture of a board's own display (what this QEMU shows of it): the guest writes
#    "<board index> <file name>" to io/screendump.req; the picture (PPM) lands in io/<file name>,
#    and io/screendump.done names it (or says "error");
#  - hotplug: losing and regaining a board: "del <board index>" in io/hotplug.req unplugs it
#    (device_del: the guest is asked to eject it; done when QEMU has deleted it, within 300 s);
#    "add <board index> <PCI slot>" plugs the same board back into that slot of the root bus
#    (device_add, fresh VRAM; not the slot it left: QEMU 10 keeps an unplugged bochs-display's
#    VRAM, named after its PCI address, and aborts on a second one there). io/hotplug.done then
#    says "ok", or "error: <why>". The pc machine hot-plugs through ACPI; q35's root bus takes
#    no hot-plug.
# shellcheck disable=SC2317
host_services() {
	local idx name op slot why
	while kill -0 "$runner" 2>/dev/null; do
		if [ -f "$io/screendump.req" ] && read -r idx name <"$io/screendump.req"; then
			rm -f "$io/screendump.req" "$io/screendump.done"
			if [[ $idx =~ ^[0-9]+$ && $name =~ ^[A-Za-z0-9._-]+$ ]] &&
				python3 "$here/../selftests/qmp.py" screendump "$tmp/qmp.sock" "$io/$name" ppm "board$idx" \
					>"$io/screendump.err" 2>&1; then
				echo "$name" >"$io/screendump.done"
			else
				echo "error" >"$io/screendump.done"
			fi
		fi
		if [ -f "$io/hotplug.req" ] && read -r op idx slot <"$io/hotplug.req"; then
			rm -f "$io/hotplug.req" "$io/hotplug.done"
			why=
			if ! [[ $idx =~ ^[0-9]+$ ]] || [ "$idx" -ge ${#board_props[@]} ]; then
				why="no board $idx"
			elif [ "$op" = del ]; then
				why=$(python3 "$here/../selftests/qmp.py" device-del "$tmp/qmp.sock" "board$idx" 300 2>&1) || why=${why:-device_del failed}
			elif [ "$op" = add ] && [[ $slot =~ ^(0x)?[0-9a-fA-F]{1,2}$ ]]; then
				# shellcheck disable=SC2086  # the board's properties, KEY=VALUE words
				why=$(python3 "$here/../selftests/qmp.py" device-add "$tmp/qmp.sock" "$board" "board$idx" \
					${board_props[idx]} bus=pci.0 "addr=$slot" 2>&1) || why=${why:-device_add failed}
			else
				why="bad request '$op $idx $slot'"
			fi
			if [ -z "$why" ]; then echo ok; else echo "error: $why" | tail -3; fi >"$io/hotplug.done"
		fi
		sleep 0.2
	done
}
host_services &
screendumper=$!
rc=0
wait "$runner" || rc=$?
while kill -0 "$runner" 2>/dev/null; do rc=0; wait "$runner" || rc=$?; done # after a trap
kill "$watchdog" "$screendumper" 2>/dev/null || true
wait "$filter" 2>/dev/null || true
elapsed=$(( $(date +%s) - start ))
if [ -n "$out_dir" ] && [ -n "$(ls -A "$io/out")" ]; then
	mkdir -p "$out_dir" && cp -r "$io/out/." "$out_dir/" || echo "$me: cannot copy the guest's output into $out_dir" >&2
fi

if [ -n "$caught" ]; then
	echo "$me: interrupted by SIG$caught after $elapsed s" >&2
	case $caught in INT) exit 130 ;; TERM) exit 143 ;; *) exit 129 ;; esac
fi
if [ -f "$io/status" ] && status=$(cat "$io/status") && [[ $status =~ ^[0-9]+$ ]]; then
	exit "$status"
fi
if [ -e "$tmp/boot-stalled" ]; then
	detail="the guest's init did not start within $boot_timeout_s s (--boot-timeout)"
	[ "$accel" != kvm ] || detail+="; KVM stalls on some hosts (nested virtualization): try RVGPU_ACCEL=tcg"
elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	detail="timed out after $timeout_s s (--timeout)"
elif [ ! -e "$io/booted" ]; then
	if [ "$rc" = 0 ]; then
		detail="the guest rebooted after $elapsed s, before its init started (a kernel panic? see above)"
	else
		detail="QEMU exited with status $rc after $elapsed s, before the guest's init started (see above)"
	fi
elif [ "$rc" = 0 ]; then
	detail="the guest rebooted after $elapsed s (a kernel panic? see the console output above)"
elif [ "$rc" = 1 ]; then
	detail="the guest powered off after $elapsed s without one (see the console output above)"
else
	detail="QEMU exited with status $rc after $elapsed s"
fi
echo "$me: the VM did not report a result (boot failure, crash or timeout after $timeout_s s)" >&2
echo "$me: $detail" >&2
exit 125
