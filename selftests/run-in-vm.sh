#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in-VM test scripts (selftests/vm/*.sh, or the ones named) and prints one TAP stream.
# Runs inside the test VM (scripts/vm-run.sh). Exit status: 0 only if every planned result
# was reported and passed.
#
# The test kernel is a debug kernel (scripts/kconfig/rvgpu-host.config): after the scripts, two
# more results check the whole run's kernel log (no warning, oops, BUG, sanitizer report, hung
# task or RCU stall: selftests/lib.sh kernel_problems) and kmemleak (no leak once the modules
# are unloaded). A script named *-sanitizers.* (deliberate faults) runs after those checks.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export RVGPU_ROOT=${RVGPU_ROOT:-$(cd "$here/.." && pwd)}
TAP_STATE=$(mktemp -d)
export TAP_STATE
echo 0 >"$TAP_STATE/count"
echo 0 >"$TAP_STATE/failed"

# A script's plan: `plan N` (bash, selftests/lib.sh) or `PLAN = N` (Python, selftests/rvgpu.py).
planned_count() { sed -nE 's/^(plan |PLAN = )([0-9]+).*/\2/p' "$1" | head -1; }

scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then shopt -s nullglob; scripts=("$here"/vm/*.sh "$here"/vm/*.py); shopt -u nullglob; fi
# The ones with deliberate faults go last, after the run's kernel checks.
normal=() faulty=()
for s in "${scripts[@]}"; do
	case $(basename "$s") in *-sanitizers.*) faulty+=("$s") ;; *) normal+=("$s") ;; esac
done
# shellcheck source=lib.sh
. "$here/lib.sh"
FINAL_CHECKS=2

# The plan: every script states its own count in a `plan N` line near its top.
total=$FINAL_CHECKS
for s in "${scripts[@]}"; do
	n=$(planned_count "$s")
	[ -n "$n" ] || { echo "Bail out! $s has no 'plan N' / 'PLAN = N' line"; exit 2; }
	total=$((total + n))
done
echo "TAP version 13"
echo "1..$total"

per_test_timeout=${RVGPU_TEST_TIMEOUT:-600}
run_scripts() {
	local s name rc planned got reason missing n
	for s in "$@"; do
		name=$(basename "$s")
		echo "# --- $name"
		echo 0 >"$TAP_STATE/script_count"
		echo 0 >"$TAP_STATE/script_plan"
		case "$s" in
		*.py) timeout --foreground "$per_test_timeout" python3 "$s" ;;
		*) timeout --foreground "$per_test_timeout" bash "$s" ;;
		esac
		rc=$?
		if [ "$rc" -eq 124 ]; then
			# What was stuck: the tasks not running and their kernel stacks, the kernel's last words.
			echo "# $name timed out; tasks in D or S state with their kernel stacks:"
			for p in $(ps -eo pid=,stat= | awk '$2 ~ /^D/ {print $1}'); do
				echo "#   pid $p: $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)"
				sed 's/^/#     /' /proc/$p/stack 2>/dev/null
			done
			ps -eo pid,stat,wchan:28,args | grep -v ' \[' | sed 's/^/#   /' | tail -40
			dmesg | tail -60 | sed 's/^/#   /'
		fi
		planned=$(planned_count "$s")
		got=$(cat "$TAP_STATE/script_count")
		if [ "$rc" -ne 0 ] || [ "$got" -ne "$planned" ]; then
			reason="exited with status $rc after reporting $got of $planned results"
			[ "$rc" -eq 124 ] && reason="timed out after ${per_test_timeout}s, $got of $planned results reported"
			missing=$((planned - got))
			[ $missing -ge 1 ] || missing=1
			for _ in $(seq "$missing"); do
				n=$(( $(cat "$TAP_STATE/count") + 1 ))
				echo "$n" >"$TAP_STATE/count"
				echo "not ok $n - $name: $reason"
			done
			echo 1 >"$TAP_STATE/failed"
		fi
	done
}

# The run's kernel checks: the whole kernel log, then kmemleak with every module unloaded.
final_checks() {
	echo "# --- the run's kernel log and kmemleak"
	echo 0 >"$TAP_STATE/script_count"
	for m in rvgpu mbochs mdpy mtty; do rmmod "$m" 2>/dev/null; done
	check_kernel_log 0 "the whole run's kernel log: no warning, oops, BUG, sanitizer report, hung task or RCU stall"
	check_kmemleak "kmemleak: no leak once the modules are unloaded"
}

# What leaked before the tests (at boot) is not theirs.
kmemleak_baseline 2>/dev/null || echo "# kmemleak is not on ($KMEMLEAK missing)"
run_scripts "${normal[@]}"
final_checks
[ ${#faulty[@]} -eq 0 ] || run_scripts "${faulty[@]}"

count=$(cat "$TAP_STATE/count")
failed=$(cat "$TAP_STATE/failed")
rm -rf "$TAP_STATE"
[ "$count" -eq "$total" ] && [ "$failed" -eq 0 ]
