#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the test VM's Linux 7.3 kernel (bzImage + modules) with LLVM=-19 into the cache outside the
# repository. The build is keyed on the source package, the config fragments, this script and the
# toolchain versions: a warm machine finds it and returns at once.
#
#   scripts/build-kernel.sh            build (or find) the kernel, print nothing but progress
#   scripts/build-kernel.sh --kdir     print the kernel build directory (does not build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

src="$RVGPU_CACHE/src/linux-source-7.3"
kdir=$(kernel_build_dir)
if [ "${1:-}" = --kdir ]; then
	echo "$kdir"
	exit 0
fi

if [ -f "$kdir/.rvgpu-complete" ]; then
	echo "kernel: cached at $kdir"
	exit 0
fi

if [ ! -f "$src/Makefile" ]; then
	tarball="$RVGPU_CACHE/src/linux-source-7.3.tar.xz"
	[ -f "$tarball" ] || { echo "kernel: $tarball missing: run scripts/setup.sh" >&2; exit 1; }
	echo "kernel: unpacking $tarball"
	tar -xf "$tarball" -C "$RVGPU_CACHE/src"
fi

jobs=$(( $(nproc) + 1 ))
mk=(make -C "$src" O="$kdir" LLVM=-19 -j"$jobs")
start=$(date +%s)
rm -rf "$kdir"
mkdir -p "$kdir"
echo "kernel: configuring in $kdir"
"${mk[@]}" -s allnoconfig
KCONFIG_CONFIG="$kdir/.config" "$src/scripts/kconfig/merge_config.sh" -m -O "$kdir" "$kdir/.config" \
	"$here/kconfig/rvgpu-host.config" >/dev/null
"${mk[@]}" -s olddefconfig

# Every symbol of our fragment must come out as written.
fragment_applied kernel "$kdir/.config" "$here/kconfig/rvgpu-host.config" ||
	{ echo "kernel: the config fragment did not apply" >&2; exit 1; }

echo "kernel: building bzImage and modules with ${jobs} jobs (about 10-15 minutes on 2 cores)"
# Progress: one line a minute with the number of objects built so far.
build_ticker kernel "$kdir" "$start" &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
"${mk[@]}" -s bzImage modules >"$kdir/build.log" 2>&1 || { tail -50 "$kdir/build.log" >&2; exit 1; }
"${mk[@]}" -s INSTALL_MOD_PATH="$kdir/modroot" INSTALL_MOD_STRIP=1 modules_install >>"$kdir/build.log" 2>&1
kill $ticker 2>/dev/null || true
touch "$kdir/.rvgpu-complete"
echo "kernel: built in $(( $(date +%s) - start )) s at $kdir"
# Builds under other keys are stale now: they would only fill the disk.
find "$RVGPU_CACHE/kernel" -mindepth 1 -maxdepth 1 -name 'host-*' ! -path "$kdir" -exec rm -rf {} +
