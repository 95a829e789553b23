# SPDX-License-Identifier: GPL-2.0
#
# TAP helpers for the in-VM tests (sourced by every selftests/vm/*.sh).
#
# A test script declares how many results it will report (`plan N`), then reports each with
# `ok`/`fail`/`check`. The runner (selftests/run-in-vm.sh) numbers results across scripts and
# turns results a script never reported (it died, or a step hung) into failures.

RVGPU_ROOT=${RVGPU_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
RVGPU_KO=${RVGPU_KO:-$RVGPU_ROOT/rvgpu.ko}
: "${TAP_STATE:?run the tests through selftests/run-in-vm.sh}"

_tap_next() {
	local n
	n=$(( $(cat "$TAP_STATE/count") + 1 ))
	echo "$n" >"$TAP_STATE/count"
	echo $(( $(cat "$TAP_STATE/script_count") + 1 )) >"$TAP_STATE/script_count"
	echo "$n"
}

# plan N: this script reports N results.
plan() { echo "$1" >"$TAP_STATE/script_plan"; }

# ok DESC: a passing result.
ok() { echo "ok $(_tap_next) - $*"; }

# fail DESC [DIAGNOSTIC...]: a failing result, with diagnostic lines.
fail() {
	local desc=$1
	shift
	echo "not ok $(_tap_next) - $desc"
	local line
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/#   /'
	done
	echo 1 >"$TAP_STATE/failed"
}

# check DESC CMD...: runs CMD; passes if it exits 0, else fails with its output.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		fail "$desc" "command: $*" "$out"
	fi
}

# expect_errno DESC ERRNO-NAME CMD...: CMD must fail, and its message must name the errno
# (shell redirections report strerror text, e.g. "Invalid argument").
expect_errno() {
	local desc=$1 want=$2 out text
	shift 2
	text=$(errno_text "$want")
	if out=$("$@" 2>&1); then
		fail "$desc" "expected $want, but the command succeeded: $*"
	elif printf '%s' "$out" | grep -qF "$text"; then
		ok "$desc"
	else
		fail "$desc" "expected $want ($text), got: $out"
	fi
}

errno_text() {
	python3 -c 'import errno, os, sys; print(os.strerror(getattr(errno, sys.argv[1])))' "$1"
}

# diag LINE...: a comment line in the TAP stream.
diag() { printf '# %s\n' "$*"; }

# Kernel log since the test script started (the runner clears nothing; scripts mark positions).
dmesg_mark() { dmesg | wc -l; }

# mdevctl_defined: the definitions mdevctl lists, one line each (UUID, parent, type, auto|manual),
# without its attribute lines.
mdevctl_defined() { mdevctl list -d 2>/dev/null | grep -E '^[0-9a-f]{8}-'; }
dmesg_since() { dmesg | tail -n +$(( $1 + 1 )); }

# Module helpers.
load_rvgpu() {
	modprobe -a vfio mdev >/dev/null 2>&1 || true
	insmod "$RVGPU_KO" "$@"
}
unload_rvgpu() { rmmod rvgpu; }

# The PCI addresses of the Bochs boards (1234:1111), in bus order.
bochs_boards() {
	local d
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x1111 ] && basename "$d"
	done
	return 0
}

# known_kernel_defects: filters out of a kernel log (stdin) the reports of known defects of the
# kernel itself that rvgpu cannot avoid, each named in a `# known kernel defect:` line instead.
#  - VFIO type1 takes iommu->device_list_lock while holding iommu->lock (vfio_notify_dma_unmap) and
#    then calls the driver's dma_unmap, which must unpin, and unpinning takes iommu->lock: lockdep
#    reports the inversion for every emulated-IOMMU driver that pins pages (kvmgt too). Lockdep
#    turns itself off after its first report, so the suites that pin run the iommufd path first.
known_kernel_defects() {
	awk '
	/WARNING: possible circular locking dependency detected/ { held = $0; inblock = 1; text = ""; next }
	inblock {
		text = text "\n" $0
		if ($0 ~ /<\/TASK>/) {
			inblock = 0
			if (text ~ /device_list_lock/ && text ~ /vfio_notify_dma_unmap|vfio_iommu_type1_unpin_pages/)
				print "# known kernel defect: VFIO type1 lock inversion (iommu->lock / device_list_lock) reported by lockdep"
			else
				print held text
		}
		next
	}
	{ print }
	END { if (inblock) print held text }'
}

# What counts as a problem report in the kernel log: warnings and oopses, BUGs (KASAN's,
# sleeping in atomic context, soft lockups), lockdep's reports, debugobjects' (ODEBUG), list and
# refcount corruption, hung tasks and RCU stalls.
KERNEL_REPORT='WARNING:|BUG:|Oops|Call Trace|INFO: task .* blocked|INFO: rcu_|rcu: .*stall|ODEBUG:|list_(add|del) corruption|refcount_t:|UBSAN:'

# kernel_problems [MARK]: prints the problem reports (with their next lines) in the kernel log
# since line MARK (the whole log by default), the known kernel defects above left out and named on
# `# known kernel defect:` lines; succeeds if there is a report.
kernel_problems() {
	local log
	log=$(dmesg_since "${1:-0}" | known_kernel_defects)
	printf '%s\n' "$log" | grep '^# known kernel defect:' | sort -u || true
	printf '%s\n' "$log" | grep -qE "$KERNEL_REPORT" || return 1
	printf '%s\n' "$log" | grep -E -A8 "$KERNEL_REPORT" | head -60
}

# check_kernel_log [MARK [DESC]]: one result: no problem report in the kernel log since MARK
# (see kernel_problems).
check_kernel_log() {
	local out desc=${2:-no kernel warning, oops, BUG or sanitizer report}
	if out=$(kernel_problems "${1:-0}"); then
		fail "$desc" "$out"
	else
		[ -z "$out" ] || printf '%s\n' "$out"
		ok "$desc"
	fi
}

# check_kmemleak DESC: one result: kmemleak is on and finds no leak (see kmemleak_leaks).
check_kmemleak() {
	local out
	if [ ! -w "$KMEMLEAK" ]; then
		fail "$1" "kmemleak is not on: $KMEMLEAK missing"
	elif out=$(kmemleak_leaks); then
		fail "$1" "$out"
	else
		ok "$1"
	fi
}

# tool_result DESC KIND RC OUT: one result from a test program that ends its output OUT with
# `ok - KIND: ...` or `not ok - KIND: ...` and exited with RC.
tool_result() {
	local desc=$1 kind=$2 rc=$3 out=$4 last
	last=$(printf '%s\n' "$out" | grep -E "^(not )?ok - $kind:" | tail -1)
	if [ "$rc" -eq 0 ] && [[ $last == "ok - $kind:"* ]]; then
		ok "$desc: ${last#"ok - $kind: "}"
	else
		fail "$desc (exit status $rc)" "${last:-no result line}" "$(printf '%s\n' "$out" | tail -30)"
	fi
}

# kmemleak_scan: has kmemleak scan memory now. An object is reported once it has been
# unreferenced for 5 s, so a scan right after something leaked needs a second one 6 s later.
KMEMLEAK=/sys/kernel/debug/kmemleak
kmemleak_scan() { [ -w "$KMEMLEAK" ] && echo scan >"$KMEMLEAK"; }
# kmemleak_baseline: what already leaked (at boot, say) is marked seen and not reported again.
kmemleak_baseline() { kmemleak_scan && echo clear >"$KMEMLEAK"; }
# kmemleak_leaks: scans twice and prints the suspected leaks (their first lines and backtraces);
# succeeds if there is one. Fails (prints nothing) when kmemleak is off.
kmemleak_leaks() {
	kmemleak_scan || return 1
	sleep 6
	kmemleak_scan
	grep -q 'unreferenced object' "$KMEMLEAK" || return 1
	head -80 "$KMEMLEAK"
}

# on_two_vgpus BIN: creates two GRID RVGPU-64Q vGPUs on the last bound GPU, runs
# `BIN GPU UUID_A UUID_B` through the iommufd path and then the VFIO container path (in that order:
# see known_kernel_defects), and removes them. BIN reports its own results.
on_two_vgpus() {
	two_vgpus
	"$1" "$GPU" "$VGPU_A" "$VGPU_B" --iommufd
	"$1" "$GPU" "$VGPU_A" "$VGPU_B"
	remove_two_vgpus
}

# two_vgpus: creates two GRID RVGPU-64Q vGPUs on the last bound GPU: GPU, VGPU_A, VGPU_B.
two_vgpus() {
	local types
	GPU=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
	types=/sys/bus/pci/devices/$GPU/mdev_supported_types
	VGPU_A=$(cat /proc/sys/kernel/random/uuid)
	VGPU_B=$(cat /proc/sys/kernel/random/uuid)
	echo "$VGPU_A" >"$types/nvidia-9106/create"
	echo "$VGPU_B" >"$types/nvidia-9106/create"
}

# remove_two_vgpus: removes what two_vgpus created.
remove_two_vgpus() {
	echo 1 >"/sys/bus/mdev/devices/$VGPU_A/remove"
	echo 1 >"/sys/bus/mdev/devices/$VGPU_B/remove"
}
