#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Debian's mdevctl, unmodified, against rvgpu: types, define (with an nvidia/vgpu_params
# attribute), start, list, stop, undefine; then a definition with --auto and two attributes
# (list --dumpjson, applied in order), modify of its type, and a definition of a type the GPU
# lacks (start fails, naming it).
. "$(dirname "$0")/../lib.sh"
plan 11

load_rvgpu
gpu=$(basename "$(ls -d /sys/bus/pci/drivers/nvidia/0000:* | tail -1)")
u=$(cat /proc/sys/kernel/random/uuid)

out=$(mdevctl types 2>&1)
if printf '%s\n' "$out" | grep -q "nvidia-9106" && printf '%s\n' "$out" | grep -q "GRID RVGPU-64Q" &&
	printf '%s\n' "$out" | grep -q "vfio-pci"; then
	ok "mdevctl types lists rvgpu's types with names and device_api"
else
	fail "mdevctl types lists rvgpu's types" "$out"
fi

check "mdevctl define with an nvidia/vgpu_params attribute" \
	sh -c "mdevctl define -u $u -p $gpu --type nvidia-9106 &&
	       mdevctl modify -u $u --addattr=nvidia/vgpu_params --value=frame_rate_limiter=0"

out=$(mdevctl list -d 2>&1)
if printf '%s\n' "$out" | grep -q "$u $gpu nvidia-9106"; then ok "mdevctl list -d shows the definition"
else fail "mdevctl list -d shows the definition" "$out"; fi

if mdevctl start -u "$u" >/tmp/start.log 2>&1 && [ -d "/sys/bus/mdev/devices/$u" ] &&
	[ "$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params")" = frame_rate_limiter=0 ]; then
	ok "mdevctl start creates the vGPU and applies vgpu_params"
else
	fail "mdevctl start creates the vGPU and applies vgpu_params" "$(cat /tmp/start.log)" \
		"$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params" 2>&1)"
fi

out=$(mdevctl list 2>&1)
if printf '%s\n' "$out" | grep -q "$u $gpu nvidia-9106"; then ok "mdevctl list shows the running vGPU"
else fail "mdevctl list shows the running vGPU" "$out"; fi

if mdevctl stop -u "$u" && [ ! -e "/sys/bus/mdev/devices/$u" ] &&
	[ "$(cat "/sys/bus/pci/devices/$gpu/nvidia/vram_free_mib")" = "$(cat "/sys/bus/pci/devices/$gpu/nvidia/vram_total_mib")" ]; then
	ok "mdevctl stop removes it and frees its VRAM"
else
	fail "mdevctl stop removes it and frees its VRAM" "$(ls /sys/bus/mdev/devices)"
fi

if mdevctl undefine -u "$u" && [ -z "$(mdevctl list -d 2>&1)" ]; then
	ok "mdevctl undefine forgets the definition"
else
	fail "mdevctl undefine forgets the definition" "$(mdevctl list -d 2>&1)"
fi

# --auto, two attributes in order, --dumpjson.
u=$(cat /proc/sys/kernel/random/uuid)
mdevctl define -u "$u" -p "$gpu" --type nvidia-9104 --auto >/tmp/def.log 2>&1 &&
	mdevctl modify -u "$u" --addattr=nvidia/vgpu_params --value=frame_rate_limiter=0 >>/tmp/def.log 2>&1 &&
	mdevctl modify -u "$u" --addattr=nvidia/vgpu_params --value=frame_rate_limiter=1,precopy=0 >>/tmp/def.log 2>&1
json=$(mdevctl list -d --dumpjson 2>&1)
if printf '%s' "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
u, gpu = sys.argv[1], sys.argv[2]
# [{parent: [{uuid: {mdev_type, start, attrs: [{name: value}, ...]}}, ...]}, ...]
dev = next(v for p in d for m in p.get(gpu, []) for k, v in m.items() if k == u)
attrs = [list(a.items())[0] for a in dev["attrs"]]
assert dev["mdev_type"] == "nvidia-9104" and dev["start"] == "auto", dev
assert attrs == [("nvidia/vgpu_params", "frame_rate_limiter=0"),
                 ("nvidia/vgpu_params", "frame_rate_limiter=1,precopy=0")], attrs
' "$u" "$gpu" 2>/tmp/json.err; then
	ok "mdevctl define --auto with two attributes: list --dumpjson shows the type, start auto and the attributes in order"
else
	fail "mdevctl define --auto with two attributes, list --dumpjson" "$(cat /tmp/def.log /tmp/json.err)" "$json"
fi
if mdevctl start -u "$u" >/tmp/start.log 2>&1 &&
	[ "$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params")" = frame_rate_limiter=1,precopy=0 ]; then
	ok "mdevctl start applies the attributes in order (the last vgpu_params is the one left)"
else
	fail "mdevctl start applies the attributes in order" "$(cat /tmp/start.log)" \
		"$(cat "/sys/bus/mdev/devices/$u/nvidia/vgpu_params" 2>&1)"
fi
mdevctl stop -u "$u" >/dev/null 2>&1
if mdevctl modify -u "$u" --type nvidia-9105 >/tmp/mod.log 2>&1 && mdevctl start -u "$u" >>/tmp/mod.log 2>&1 &&
	[ "$(basename "$(readlink "/sys/bus/mdev/devices/$u/mdev_type")")" = nvidia-9105 ]; then
	ok "mdevctl modify --type: the definition starts as the new type"
else
	fail "mdevctl modify --type: the definition starts as the new type" "$(cat /tmp/mod.log)"
fi
mdevctl stop -u "$u" >/dev/null 2>&1
mdevctl undefine -u "$u" >/dev/null 2>&1

# A type this GPU does not have: starting the definition fails and says which type.
u=$(cat /proc/sys/kernel/random/uuid)
mdevctl define -u "$u" -p "$gpu" --type nvidia-1 >/tmp/bad.log 2>&1
if ! mdevctl start -u "$u" >>/tmp/bad.log 2>&1 && [ ! -e "/sys/bus/mdev/devices/$u" ] &&
	grep -q "nvidia-1" /tmp/bad.log; then
	ok "mdevctl start of a definition for a type the GPU lacks fails, naming the type"
	diag "$(grep -m1 -i 'nvidia-1' /tmp/bad.log)"
else
	fail "mdevctl start of a definition for a type the GPU lacks fails, naming the type" "$(cat /tmp/bad.log)"
fi
mdevctl undefine -u "$u" >/dev/null 2>&1
unload_rvgpu
