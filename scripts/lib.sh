# SPDX-License-Identifier: GPL-2.0
# Shared settings for the scripts: where the build cache lives (outside the repository).
RVGPU_CACHE=${RVGPU_CACHE:-/var/cache/rvgpu}
export RVGPU_CACHE
export PATH="$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

# The kernel build directory, keyed on everything that changes the built kernel.
kernel_build_dir() {
	local here key
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	key=$( {
		cat "$RVGPU_CACHE/src/linux-source-7.3.deb-name" 2>/dev/null || echo no-source
		cat "$here/kconfig/rvgpu-host.config" "$here/build-kernel.sh"
		rustc --version; clang-19 --version | head -1; bindgen --version 2>/dev/null
	} | sha256sum | cut -c1-16)
	echo "$RVGPU_CACHE/kernel/host-$key"
}

# Installs what is missing (unless RVGPU_SKIP_SETUP=1), builds (or finds) the kernel and builds
# rvgpu.ko: what every command that boots the test VM needs first. Run from the repository root.
prepare_build() {
	[ "${RVGPU_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
	bash scripts/build-kernel.sh
	make -s
}
