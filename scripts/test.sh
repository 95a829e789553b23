#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The test command: sets up what is missing, builds the kernel (cached) and the module, runs the
# host-side checks and the in-VM test suites, and closes with "N passed, N failed".
# Exit status is non-zero on any failure, including a VM that did not boot or a test that did not
# run.
#
#   scripts/test.sh              everything
#   scripts/test.sh --vm-only    skip the host-side checks (module still built)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib.sh
as_root scripts/test.sh "$@"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok - $*"; }
flunk() { failed=$((failed + 1)); echo "not ok - $*"; }
finish() {
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
step() { # step DESC CMD...: one host-side result; output shown only on failure
	local desc=$1 log
	shift
	log=$(mktemp)
	if "$@" >"$log" 2>&1; then pass "$desc"; else flunk "$desc"; sed 's/^/#   /' "$log" | tail -60; fi
	rm -f "$log"
}

vm_only=0
[ "${1:-}" = --vm-only ] && vm_only=1

t0=$(date +%s)
# --- Set-up and builds (a failure here stops everything: nothing after it could run) -------------
if [ "${RVGPU_SKIP_SETUP:-0}" != 1 ]; then
	bash scripts/setup.sh || { flunk "set-up (scripts/setup.sh)"; finish; }
fi
bash scripts/build-kernel.sh || { flunk "kernel build (scripts/build-kernel.sh)"; finish; }
bash scripts/build-nested.sh || { flunk "nested guest build (scripts/build-nested.sh)"; finish; }
echo "# kernels ready after $(( $(date +%s) - t0 )) s"

# The user-space Rust crates: the in-VM VFIO test client and rvgpu-smi (std only). A build failure
# stops everything: the in-VM suites need both.
cargo_builds() { # cargo_builds DIR
	if (cd "$1" && cargo clippy --release --locked -q --all-targets -- -D warnings && cargo build --release --locked -q) >build.log 2>&1; then
		pass "$1 builds clippy-clean"
		rm -f build.log
	else
		flunk "$1 builds clippy-clean"
		sed 's/^/#   /' build.log | tail -40
		finish
	fi
}
cargo_builds selftests/vfio-client
cargo_builds tools/rvgpu-smi

# The module is built with clippy: with the kernel's CONFIG_WERROR every rustc and clippy warning
# is an error.
if make -s CLIPPY=1 >build.log 2>&1; then
	pass "rvgpu.ko builds warning-free with clippy"
	rm -f build.log
else
	flunk "rvgpu.ko builds warning-free with clippy"
	sed 's/^/#   /' build.log | tail -60
	finish
fi

# The test-only module of deliberate faults (selftests/vm/99-sanitizers.sh).
if make -s sancheck >build.log 2>&1; then
	pass "selftests/sanitizers/rvgpu_sancheck.ko builds"
	rm -f build.log
else
	flunk "selftests/sanitizers/rvgpu_sancheck.ko builds"
	sed 's/^/#   /' build.log | tail -30
fi

# --- Host-side checks --------------------------------------------------------------------------
if [ $vm_only = 0 ]; then
	step "rustfmt: the Rust sources are formatted" make -s rustfmtcheck
	step "selftests/vfio-client: unit tests" sh -c 'cd selftests/vfio-client && cargo test --release --locked -q'
	step "tools/rvgpu-smi: unit tests on fake sysfs trees" sh -c 'cd tools/rvgpu-smi && cargo fmt --check && cargo test --release --locked -q'
	# A clone anywhere works: one under /tmp (which the guest covers with a tmpfs) is shared into
	# the test VM on its own, and the command runs in it.
	clone_in_tmp() {
		local d rc
		d=$(mktemp -d /tmp/rvgpu-clone.XXXXXX) && git clone -q "$root" "$d/rvgpu" || return 1
		(cd "$d/rvgpu" && scripts/vm-run.sh --vram 64M --timeout 300 -- sh -c 'test -x scripts/vm-run.sh && pwd') >"$d/out" 2>&1
		rc=$?
		cat "$d/out"
		[ "$rc" -eq 0 ] && grep -qx "$d/rvgpu" "$d/out"
		rc=$?
		rm -rf "$d"
		return "$rc"
	}
	step "a clone under /tmp runs its commands in the test VM (the clone is shared in on its own)" clone_in_tmp
	if [ -d scripts/tests ]; then
		log=$(mktemp)
		if python3 -m unittest discover -s scripts/tests >"$log" 2>&1; then
			pass "host unit tests (scripts/tests): $(grep -Eo '^Ran [0-9]+ tests?' "$log")"
		else
			flunk "host unit tests (scripts/tests)"
			sed 's/^/#   /' "$log" | tail -60
		fi
		rm -f "$log"
	fi
fi

# --- In-VM suites --------------------------------------------------------------------------------
# vm_suite NAME VRAM-LIST [VM-OPTIONS...] -- TEST-SCRIPTS...
vm_suite() {
	local name=$1 vram=$2 opts=() tests=() v out rc plan got nok
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	tests=("$@")
	for v in $vram; do opts+=(--vram "$v"); done
	echo "# === VM suite: $name (boards: $vram)"
	out=$(mktemp)
	scripts/vm-run.sh "${opts[@]}" -- env RVGPU_TEST_VRAM="$vram" RVGPU_ROOT="$root" \
		"$root/selftests/run-in-vm.sh" "${tests[@]}" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	plan=$(grep -m1 -Eo '^1\.\.[0-9]+' "$out" | cut -c4-)
	got=$(grep -cE '^ok [0-9]+ ' "$out")
	nok=$(grep -cE '^not ok [0-9]+ ' "$out")
	passed=$((passed + got))
	failed=$((failed + nok))
	if [ -z "$plan" ]; then
		flunk "VM suite '$name': the VM did not run the tests (status $rc)"
	elif [ $((got + nok)) -lt "$plan" ]; then
		failed=$((failed + plan - got - nok))
		echo "not ok - VM suite '$name': $((plan - got - nok)) of $plan results never reported (status $rc)"
	elif [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
		flunk "VM suite '$name': exited with status $rc"
	fi
	rm -f "$out"
}

vm_suite "two bochs-display boards" "64M 256M" --timeout 3300 -- \
	selftests/vm/10-bind.sh selftests/vm/20-types.py selftests/vm/25-personas.py selftests/vm/30-lifecycle.py \
	selftests/vm/40-random.py selftests/vm/50-mdevctl.sh selftests/vm/55-libvirt.py selftests/vm/60-device.sh \
	selftests/vm/62-display.sh selftests/vm/65-request.py selftests/vm/70-engine.sh \
	selftests/vm/75-migration.sh selftests/vm/80-qemu.sh selftests/vm/85-live-migration.py \
	selftests/vm/87-display.py selftests/vm/88-scheduler.py selftests/vm/90-fuzz.sh selftests/vm/91-stress.sh \
	selftests/vm/92-isolation.sh selftests/vm/93-unplug.py
# mdevctl definitions across a reboot of the test VM: the first VM defines them and keeps its
# /etc/mdevctl.d, the second boots with it (udev starts the --auto ones).
saved=$RVGPU_CACHE/mdevctl-reboot.$$
rm -rf "$saved"
vm_suite "mdevctl across a reboot, 1 of 2: define" "64M 256M" --out "$saved" -- selftests/vm/57-mdevctl-define.sh
vm_suite "mdevctl across a reboot, 2 of 2: boot with the same /etc/mdevctl.d" "64M 256M" \
	--env RVGPU_MDEVCTL_SAVED="$saved" -- selftests/vm/58-mdevctl-boot.sh
rm -rf "$saved"
vm_suite "one secondary-vga board" "512M" --board secondary-vga -- \
	selftests/vm/10-bind.sh selftests/vm/20-types.py selftests/vm/25-personas.py selftests/vm/99-sanitizers.sh

echo "# total time $(( $(date +%s) - t0 )) s"
finish
