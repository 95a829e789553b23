#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU as the real client: a nested guest (scripts/build-nested.sh: a small kernel with bochs-drm
# and fbcon built in) boots with a vGPU passed through by `-device vfio-pci,sysfsdev=...`, once
# through the VFIO container path and once through iommufd. bochs-drm must bind the vGPU, set a
# mode and draw its console; while the guest is up, the vGPU's slice of the physical VRAM (read
# from this side, through resource0) must hold the console's pixels, and the vGPU's mode
# registers what the guest set.
. "$(dirname "$0")/../lib.sh"
plan 9

load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
types=/sys/bus/pci/devices/$gpu/mdev_supported_types
timeout_s=${RVGPU_NESTED_TIMEOUT:-600}

# The command nested-run.sh runs here while the nested guest is up. It prints
# "pixels <nonzero bytes> <bytes>" and "display <nvidia/display> | fb <fb line> | vm <vm_name>".
hold_check() {
	local u=$1
	cat <<EOF
off=\$(awk -v u=$u '\$NF == u { sub("M", "", \$1); print \$1 }' /sys/bus/pci/devices/$gpu/nvidia/placement)
display=\$(cat /sys/bus/mdev/devices/$u/nvidia/display)
vm=\$(cat /sys/bus/mdev/devices/$u/nvidia/vm_name)
set -- \$display
geom=\${1:-0x0}; stride=\${3#stride=}
python3 "$RVGPU_ROOT/selftests/vram-nonzero.py" "$gpu" "\$off" "\$geom" "\${stride:-0}"
echo "display \$display | fb \$NESTED_FB | vm \$vm"
EOF
}

run_path() {
	local path=$1 opt=() u out rc line pixels total display fb
	[ "$path" = iommufd ] && opt=(--iommufd)
	u=$(cat /proc/sys/kernel/random/uuid)
	echo "$u" >"$types/nvidia-9106/create"
	out=$(mktemp)
	"$RVGPU_ROOT/scripts/nested-run.sh" "${opt[@]}" --timeout "$timeout_s" --append video=1024x768 \
		--hold-cmd "$(hold_check "$u")" "/sys/bus/mdev/devices/$u" >"$out" 2>&1
	rc=$?
	sed 's/^/# /' "$out"
	if [ $rc -eq 0 ] && grep -q "^NESTED: drm bochs-drm" "$out" && grep -q "^NESTED: ready" "$out"; then
		ok "[$path] the nested guest boots; bochs-drm binds the vGPU and draws its console"
	else
		fail "[$path] the nested guest boots; bochs-drm binds the vGPU and draws its console" "exit status $rc"
	fi
	line=$(grep -m1 '^pixels ' "$out" || true)
	read -r _ pixels total <<<"${line:-pixels 0 0}"
	if [ "${total:-0}" -gt 0 ] && [ "$pixels" -gt $((total / 1000)) ]; then
		ok "[$path] the vGPU's VRAM slice holds the guest's console pixels ($pixels of $total bytes nonzero)"
	else
		fail "[$path] the vGPU's VRAM slice holds the guest's console pixels" "${line:-no pixel count}"
	fi
	line=$(grep -m1 '^display ' "$out" || true)
	display=$(sed -n 's/^display \([0-9]*x[0-9]*\) .*/\1/p' <<<"$line")
	fb=$(sed -n 's/.*| fb [^ ]* \([0-9]*\),\([0-9]*\) .*/\1x\2/p' <<<"$line")
	if [ -n "$display" ] && [ "$display" = "$fb" ] && grep -q "bpp=32" <<<"$line"; then
		ok "[$path] the mode registers hold the mode the guest set ($display, 32 bpp)"
	else
		fail "[$path] the mode registers hold the mode the guest set" "${line:-no display line}"
	fi
	if grep -q "| vm qemu-system-x86\[" <<<"$line" && [ -z "$(cat "/sys/bus/mdev/devices/$u/nvidia/vm_name")" ]; then
		ok "[$path] vm_name named QEMU while the guest ran, and is empty after"
	else
		fail "[$path] vm_name named QEMU while the guest ran, and is empty after" "${line:-}" \
			"after: $(cat "/sys/bus/mdev/devices/$u/nvidia/vm_name")"
	fi
	echo 1 >"/sys/bus/mdev/devices/$u/remove"
	rm -f "$out"
}

run_path container
run_path iommufd
check_kernel_log
unload_rvgpu
