#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The module binds every Bochs board of the VM, logs each board's VRAM size as QEMU was given it,
# survives unbind/rebind through sysfs, runs its KUnit suites on load, and leaves no trace when
# it is unloaded.
. "$(dirname "$0")/../lib.sh"
plan 9

drv=/sys/bus/pci/drivers/nvidia
mapfile -t boards < <(bochs_boards)
# What QEMU was given (scripts/test.sh passes the --vram list), in bus order.
read -r -a given <<<"${RVGPU_TEST_VRAM:?RVGPU_TEST_VRAM is not set}"

mark=$(dmesg_mark)
check "rvgpu.ko loads" load_rvgpu

bound=()
for b in "${boards[@]}"; do [ -e "$drv/$b" ] && bound+=("$b"); done
if [ ${#boards[@]} -eq ${#given[@]} ] && [ ${#bound[@]} -eq ${#boards[@]} ]; then
	ok "every Bochs board is bound (${#bound[@]} of ${#given[@]})"
else
	fail "every Bochs board is bound" "boards: ${boards[*]:-none}; bound: ${bound[*]:-none}; QEMU was given ${#given[@]}"
fi

# One line per board, with the VRAM size QEMU was given.
log=$(dmesg_since "$mark")
sizes_ok=1 diags=()
for i in "${!boards[@]}"; do
	want_mib=$(( $(numfmt --from=iec "${given[$i]:-0}") >> 20 ))
	line=$(printf '%s\n' "$log" | grep -F "${boards[$i]}: bochs: " || true)
	if [ "$(printf '%s\n' "$line" | grep -c .)" -ne 1 ] ||
		! printf '%s' "$line" | grep -q ": ${want_mib} MiB VRAM, DISPI interface 0xb0c"; then
		sizes_ok=0
		diags+=("board ${boards[$i]}: QEMU was given ${given[$i]:-?}, log: ${line:-<no line>}")
	fi
done
if [ $sizes_ok = 1 ]; then ok "one log line per board with the VRAM size QEMU was given (${given[*]})"
else fail "one log line per board with the VRAM size QEMU was given" "${diags[@]}"; fi

# KUnit: the module's suites ran on load and all passed.
kunit=/sys/kernel/debug/kunit
suites=$(ls -d "$kunit"/rvgpu_* 2>/dev/null)
if [ -z "$suites" ]; then
	fail "KUnit suites ran on module load" "no $kunit/rvgpu_* directory"
else
	bad=$(cat "$kunit"/rvgpu_*/results | grep -E '^\s*not ok' || true)
	n=$(cat "$kunit"/rvgpu_*/results | grep -cE '^\s+ok [0-9]+ ' || true)
	if [ -z "$bad" ] && [ "$n" -gt 0 ]; then
		ok "KUnit: $(echo "$suites" | wc -l) suites, $n cases passed"
		for d in $suites; do diag "$(basename "$d"): $(grep -cE '^\s+ok [0-9]+ ' "$d/results") cases ok"; done
	else
		fail "KUnit suites ran on module load and passed" "$(cat "$kunit"/rvgpu_*/results)"
	fi
fi

# The memory regions rvgpu has claimed on board $1 (its BAR0 and BAR2 starts in /proc/iomem).
claimed_regions() {
	local bar0 bar2
	bar0=$(printf '%x' "$(awk 'NR == 1 { print $1 }' "/sys/bus/pci/devices/$1/resource")")
	bar2=$(printf '%x' "$(awk 'NR == 3 { print $1 }' "/sys/bus/pci/devices/$1/resource")")
	grep -E "^ *0*($bar0|$bar2)-.* : rvgpu/" /proc/iomem || true
}

# Unbind and rebind the last board through sysfs.
b=${boards[-1]}
mark=$(dmesg_mark)
held=$(claimed_regions "$b")
if [ -n "$held" ] && echo "$b" >"$drv/unbind" && [ ! -e "$drv/$b" ] &&
	[ ! -e "/sys/bus/pci/devices/$b/driver" ] && [ -z "$(claimed_regions "$b")" ]; then
	ok "unbind $b through sysfs releases it and its memory regions"
else
	fail "unbind $b through sysfs releases it and its memory regions" "held before: $held" \
		"$(ls -l "/sys/bus/pci/devices/$b/driver" 2>&1)" "held after: $(claimed_regions "$b")"
fi
if echo "$b" >"$drv/bind" && [ -e "$drv/$b" ] && dmesg_since "$mark" | grep -qF "$b: bochs: "; then
	ok "bind $b again through sysfs"
else
	fail "bind $b again through sysfs" "$(dmesg_since "$mark")"
fi

# rmmod leaves no trace: no driver, no module, no claimed regions, every board unbound.
check "rmmod rvgpu" unload_rvgpu
left=()
[ -e "$drv" ] && left+=("$drv still exists")
[ -e /sys/module/rvgpu ] && left+=("/sys/module/rvgpu still exists")
grep -q rvgpu /proc/iomem && left+=("claimed regions: $(grep rvgpu /proc/iomem | tr '\n' ' ')")
for b in "${boards[@]}"; do
	[ -e "/sys/bus/pci/devices/$b/driver" ] && left+=("$b still has a driver")
done
if [ ${#left[@]} -eq 0 ]; then ok "rmmod leaves no trace"; else fail "rmmod leaves no trace" "${left[@]}"; fi

# The kernel log of this whole test has no warning, oops or BUG.
check_kernel_log
