#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the NESTED guest of the vGPU end-to-end test: a small Linux 7.3 kernel (tinyconfig +
# scripts/kconfig/rvgpu-nested.config, LLVM=-19, bochs-drm + fbcon + 8250 console built in, no
# modules) and an initramfs holding Debian's static busybox, selftests/nested/init and
# /bin/rvgpu-load (selftests/nested/rvgpu-load.c, compiled here static with gcc against
# uapi/rvgpu.h: it drives the vGPU's command engine from inside the nested guest). The nested guest
# runs inside the test VM under scripts/nested-run.sh.
#
# Both go into the cache outside the repository, keyed like scripts/build-kernel.sh: the kernel on
# the source package, the config fragment, this script and the toolchain versions; the initramfs on
# the kernel's key plus its inputs (selftests/nested/init, /bin/busybox, rvgpu-load.c, uapi/rvgpu.h,
# the gcc and glibc versions). A warm machine finds them and returns at once; editing only the init
# or rvgpu-load.c (or the header) rebuilds only the initramfs (seconds).
#
#   scripts/build-nested.sh            build (or find) both, print nothing but progress
#   scripts/build-nested.sh --print    print the bzImage path and the initramfs path, one a line
#                                      (does not build; the files may not exist yet)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

me=build-nested
die() { echo "$me: $*" >&2; exit 1; }

src="$RVGPU_CACHE/src/linux-source-7.3"
fragment="$here/kconfig/rvgpu-nested.config"
init="$repo/selftests/nested/init"
busybox=/bin/busybox
load_src="$repo/selftests/nested/rvgpu-load.c"
uapi_h="$repo/uapi/rvgpu.h"
# rvgpu-load: static, so the initramfs needs no libc; the header straight from the repository.
cc=gcc
cflags=(-static -s -O2 -Wall -Wextra -Werror -I"$repo")

# The first line of a tool's --version (no `| head -1`: under pipefail the tool can die of SIGPIPE
# and change the key at random).
version_of() { local v; v=$("$1" --version 2>/dev/null) || v="no-$1"; echo "${v%%$'\n'*}"; }
kernel_key=$( {
	cat "$RVGPU_CACHE/src/linux-source-7.3.deb-name" 2>/dev/null || echo no-source
	cat "$fragment" "$here/build-nested.sh"
	version_of clang-19
	version_of ld.lld-19
	version_of make
} | sha256sum | cut -c1-16)
initramfs_key=$( {
	echo "$kernel_key"
	cat "$init" 2>/dev/null || echo no-init
	sha256sum <"$busybox" 2>/dev/null || echo no-busybox
	cat "$load_src" 2>/dev/null || echo no-rvgpu-load
	cat "$uapi_h" 2>/dev/null || echo no-uapi-header
	version_of "$cc"
	version_of ldd
} | sha256sum | cut -c1-16)
kdir="$RVGPU_CACHE/nested/kernel-$kernel_key"
bzimage="$kdir/arch/x86/boot/bzImage"
# Uncompressed: unpacking a gzip one costs seconds under TCG-in-TCG, loading 2 MB costs nothing.
initramfs="$RVGPU_CACHE/nested/initramfs-$initramfs_key.cpio"

case ${1:-} in
--print) printf '%s\n' "$bzimage" "$initramfs"; exit 0 ;;
'') ;;
-h|--help) sed -n '/^#   scripts\/build-nested.sh/,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
*) echo "$me: unknown argument '$1' (usage: scripts/build-nested.sh [--print])" >&2; exit 2 ;;
esac

[ -f "$fragment" ] || die "$fragment missing"
[ -f "$init" ] || die "$init missing"
[ -f "$load_src" ] || die "$load_src missing"
[ -f "$uapi_h" ] || die "$uapi_h missing"
[ -x "$busybox" ] || die "$busybox missing: apt-get install -y busybox-static (scripts/setup.sh installs it)"
# Debian's dynamic `busybox` package installs /bin/busybox too; the initramfs has no libc.
ldd_out=$(ldd "$busybox" 2>&1 || true)
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
	die "$busybox is dynamically linked: apt-get install -y busybox-static"
fi
for tool in clang-19 ld.lld-19 zstd; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs the toolchain)"
done

mkdir -p "$RVGPU_CACHE/nested"
# One build at a time (another engineer's run may be building the same key).
exec 9>"$RVGPU_CACHE/nested/.lock"
if ! flock -n 9; then
	echo "$me: waiting for another build-nested.sh to finish"
	flock 9
fi

# The kernel.
if [ -f "$kdir/.rvgpu-complete" ] && [ -f "$bzimage" ]; then
	echo "$me: kernel cached at $kdir"
else
	if [ ! -f "$src/Makefile" ]; then
		tarball="$RVGPU_CACHE/src/linux-source-7.3.tar.xz"
		[ -f "$tarball" ] || die "$tarball missing: run scripts/setup.sh"
		echo "$me: unpacking $tarball"
		tar -xf "$tarball" -C "$RVGPU_CACHE/src"
	fi
	jobs=$(( $(nproc) + 1 ))
	mk=(make -C "$src" O="$kdir" LLVM=-19 -j"$jobs")
	start=$(date +%s)
	rm -rf "$kdir"
	mkdir -p "$kdir"
	echo "$me: configuring in $kdir (tinyconfig + $(basename "$fragment"))"
	"${mk[@]}" -s tinyconfig >/dev/null
	KCONFIG_CONFIG="$kdir/.config" "$src/scripts/kconfig/merge_config.sh" -m -O "$kdir" "$kdir/.config" \
		"$fragment" >/dev/null
	"${mk[@]}" -s olddefconfig

	# Every symbol of the fragment must come out as written.
	fragment_applied "$me" "$kdir/.config" "$fragment" || die "the config fragment $fragment did not apply"

	echo "$me: building bzImage with $jobs jobs ($(grep -c '=y$' "$kdir/.config") options =y; a few minutes on 2 cores)"
	build_ticker "$me" "$kdir" "$start" &
	ticker=$!
	trap 'kill $ticker 2>/dev/null || true' EXIT
	"${mk[@]}" -s bzImage >"$kdir/build.log" 2>&1 || { tail -50 "$kdir/build.log" >&2; die "kernel build failed (log: $kdir/build.log)"; }
	kill $ticker 2>/dev/null || true
	trap - EXIT
	[ -f "$bzimage" ] || die "no $bzimage after the build"
	touch "$kdir/.rvgpu-complete"
	echo "$me: kernel built in $(( $(date +%s) - start )) s: $bzimage ($(stat -c %s "$bzimage") bytes)"
fi

# The initramfs, written with the kernel's own gen_init_cpio (device nodes without root, fixed
# owners and timestamps).
if [ -f "$initramfs" ]; then
	echo "$me: initramfs cached at $initramfs"
else
	gen="$kdir/usr/gen_init_cpio"
	[ -x "$gen" ] || make -C "$src" O="$kdir" LLVM=-19 -s usr/gen_init_cpio >/dev/null
	[ -x "$gen" ] || die "cannot build $gen"

	# rvgpu-load, static (Debian: gcc, libc6-dev for libc.a, linux-libc-dev for <linux/types.h>).
	command -v "$cc" >/dev/null || die "$cc not found (rvgpu-load is built with it): apt-get install -y gcc libc6-dev linux-libc-dev"
	libc_a=$("$cc" -print-file-name=libc.a)
	[ -f "$libc_a" ] || die "$cc has no static C library (libc.a) for rvgpu-load: apt-get install -y libc6-dev"
	[ -f /usr/include/linux/types.h ] || die "/usr/include/linux/types.h missing (uapi/rvgpu.h needs it): apt-get install -y linux-libc-dev"
	list=$(mktemp "$RVGPU_CACHE/nested/.initramfs-list.XXXXXX")
	load_bin=$(mktemp "$RVGPU_CACHE/nested/.rvgpu-load.XXXXXX")
	tmp_out="$initramfs.tmp.$$"
	trap 'rm -f "$list" "$load_bin" "$tmp_out"' EXIT
	"$cc" "${cflags[@]}" -o "$load_bin" "$load_src" || die "cannot compile $load_src with $cc ${cflags[*]}"
	# Device-free checks (header constants, command encoding, pagemap when root), here where it runs.
	st_out=$("$load_bin" --self-test 2>&1) || { printf '%s\n' "$st_out" >&2; die "rvgpu-load --self-test failed"; }
	echo "$me: rvgpu-load built ($(stat -c %s "$load_bin") bytes; self-test ok)"
	cat >"$list" <<-EOF
	dir /dev 0755 0 0
	nod /dev/console 0600 0 0 c 5 1
	nod /dev/null 0666 0 0 c 1 3
	dir /proc 0755 0 0
	dir /sys 0755 0 0
	dir /tmp 1777 0 0
	dir /bin 0755 0 0
	dir /sbin 0755 0 0
	dir /usr 0755 0 0
	dir /usr/bin 0755 0 0
	dir /usr/sbin 0755 0 0
	file /bin/busybox $busybox 0755 0 0
	slink /bin/sh busybox 0777 0 0
	file /init $init 0755 0 0
	file /bin/rvgpu-load $load_bin 0755 0 0
	EOF
	"$gen" -t 0 "$list" >"$tmp_out"
	mv "$tmp_out" "$initramfs"
	rm -f "$list" "$load_bin"
	trap - EXIT
	echo "$me: initramfs built: $initramfs ($(stat -c %s "$initramfs") bytes)"
fi
