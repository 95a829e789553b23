#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug kernel's sanitizers are live: a test-only module (selftests/sanitizers) commits one
# deliberate fault of each kind, and the same checks that fail a run (selftests/lib.sh
# kernel_problems and kmemleak_leaks) must report it: an out-of-bounds read (KASAN), a lock
# inversion (lockdep) and a leak (kmemleak). The runner runs this after the run's own kernel
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
	for what in KASAN lockdep kmemleak; do fail "$what is live" "$ko is missing (make sancheck)"; done
	exit 0
fi

live "KASAN is live: an out-of-bounds read in a test module is reported, and the log check fails on it" \
	kasan 'BUG: KASAN: slab-out-of-bounds' 'sancheck_kasan'
live "lockdep is live: a lock inversion in a test module is reported, and the log check fails on it" \
	lockdep 'WARNING: possible circular locking dependency detected' 'sancheck_[ab]'

# kmemleak: the leak is read while the module is still loaded (its backtrace names it).
name="kmemleak is live: a leaked buffer in a test module is reported, and the leak check fails on it"
if ! insmod "$ko" fault=kmemleak; then
	fail "$name" "insmod $ko fault=kmemleak failed"
elif ! out=$(kmemleak_leaks); then
	fail "$name" "kmemleak_leaks found nothing after fault=kmemleak"
elif ! printf '%s\n' "$out" | grep -q 'size 256' || ! printf '%s\n' "$out" | grep -q '5a 5a 5a 5a'; then
	fail "$name" "no report of the 256-byte buffer of 0x5a:" "$out"
else
	diag "$(printf '%s\n' "$out" | grep -m1 'unreferenced object')"
	ok "$name"
fi
rmmod rvgpu_sancheck 2>/dev/null
exit 0
