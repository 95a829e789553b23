#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug kernel's sanitizers are live: a test-only module (selftests/sanitizers) commits one
# deliberate fault of each kind, and the same checks that fail a run (selftests/lib.sh
# kernel_problems and check_kmemleak) must report it: a lock inversion (lockdep), leaked buffers
# (kmemleak) and an out-of-bounds read (KASAN). The runner runs this after the run's own kernel
# checks (selftests/run-in-vm.sh); lockdep reports once per boot, so nothing before this in the
# VM may have set it off (the suite running this pins no guest pages).
. "$(dirname "$0")/../lib.sh"
plan 3

ko=$RVGPU_ROOT/selftests/sanitizers/rvgpu_sancheck.ko

# live NAME FAULT PATTERN...: loads the module with fault=FAULT; kernel_problems must report
# something matching every PATTERN.
live() {
	local name=$1 fault=$2 mark out p missing=
	shift 2
	mark=$(dmesg_mark)
	if ! insmod "$ko" fault="$fault" 2>&1; then
		fail "$name" "insmod $ko fault=$fault failed"
		return
	fi
	rmmod rvgpu_sancheck
	if ! out=$(kernel_problems "$mark"); then
		fail "$name" "the kernel log check found nothing after fault=$fault:" "$(dmesg_since "$mark" | tail -20)"
		return
	fi
	for p in "$@"; do printf '%s\n' "$out" | grep -qE "$p" || missing+=" '$p'"; done
	if [ -n "$missing" ]; then
		fail "$name" "the report does not match$missing:" "$out"
	else
		diag "$(printf '%s\n' "$out" | grep -m1 -E "$1")"
		ok "$name"
	fi
}

if [ ! -f "$ko" ]; then
	for what in lockdep kmemleak KASAN; do fail "$what is live" "$ko is missing (make sancheck)"; done
	exit 0
fi

# lockdep first: it turns itself off after a report, and KASAN's taints the kernel (which turns
# lockdep off too).
live "lockdep is live: a lock inversion in a test module is reported, and the log check fails on it" \
	lockdep 'WARNING: possible circular locking dependency detected' 'sancheck_[ab]'

# kmemleak: the module leaks sixteen 16 KiB buffers; the run's own kmemleak check
# (selftests/lib.sh check_kmemleak, whose kmemleak_leaks this is) must find them: their size,
# their 0x5a bytes and the module's function in their backtraces (read before the module goes,
# while its symbols resolve).
# Then they are marked seen ("clear"), so nothing after this reports them again.
kmemleak_live() {
	local name="kmemleak is live: buffers a test module leaked are reported, and the kmemleak check fails on them"
	local out
	if ! insmod "$ko" fault=kmemleak 2>&1; then
		fail "$name" "insmod $ko fault=kmemleak failed"
		return
	fi
	if ! out=$(kmemleak_leaks); then
		fail "$name" "two kmemleak scans 6 s apart found nothing after fault=kmemleak"
	elif ! printf '%s\n' "$out" | grep -qE 'unreferenced object .*size 16384' ||
		! printf '%s\n' "$out" | grep -qE '5a 5a 5a 5a' ||
		! printf '%s\n' "$out" | grep -q 'sancheck_kmemleak'; then
		fail "$name" "the report does not show the module's 16 KiB buffers (0x5a, from sancheck_kmemleak):" "$out"
	else
		diag "$(grep -c 'size 16384' "$KMEMLEAK") of the 16 leaked buffers reported, e.g." \
			"$(printf '%s\n' "$out" | grep -m1 'unreferenced object')" \
			"$(printf '%s\n' "$out" | grep -m1 'sancheck_kmemleak')"
		ok "$name"
	fi
	echo clear >"$KMEMLEAK" 2>/dev/null
	rmmod rvgpu_sancheck
}
kmemleak_live

live "KASAN is live: an out-of-bounds read in a test module is reported, and the log check fails on it" \
	kasan 'BUG: KASAN: slab-out-of-bounds' 'rvgpu_sancheck'
exit 0
