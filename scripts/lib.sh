# SPDX-License-Identifier: GPL-2.0
# Shared settings for the scripts: where the build cache lives (outside the repository).
RVGPU_CACHE=${RVGPU_CACHE:-/var/cache/rvgpu}
export RVGPU_CACHE
export PATH="$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

# as_root SCRIPT ARGS...: runs the rest of SCRIPT as root. As root it returns; otherwise it runs
# SCRIPT again under sudo (a fresh Debian 12 machine used as root has no sudo, so this is only for
# a user who has it), keeping the RVGPU_* and CI variables and the user's Rust toolchain: its
# rustup (RUSTUP_HOME, used read-only; scripts/setup.sh adds rust-src as that user) and its cargo
# and rustc on PATH, with root's own CARGO_HOME in the cache, so that nothing root owns ends up in
# the user's home.
as_root() {
	local script=$1 keep=() v
	shift
	[ "$(id -u)" = 0 ] && return 0
	command -v sudo >/dev/null ||
		{ echo "${script##*/}: run as root (apt-get, /var/cache and the test VM's devices need it); sudo is not installed" >&2; exit 1; }
	while IFS= read -r v; do keep+=("$v=${!v}"); done < <(compgen -e | grep -E '^(RVGPU_[A-Z0-9_]*|CI)$')
	echo "${script##*/}: not root: running it again under sudo" >&2
	exec sudo env "${keep[@]}" PATH="$RVGPU_CACHE/cargo/bin:$PATH" CARGO_HOME="$RVGPU_CACHE/cargo" \
		RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" RVGPU_TOOLCHAIN_USER="$(id -un)" \
		bash "$script" "$@"
}

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

# fragment_applied PREFIX CONFIG FRAGMENT: whether every line of a config FRAGMENT came out as
# written in the .config file CONFIG ("# X is not set" also matches an absent symbol); prints
# each mismatch, prefixed with PREFIX.
fragment_applied() {
	local me=$1 config=$2 fragment=$3 line want sym got bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) want="$line" sym=${line%%=*} ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}; want="# $sym is not set" ;;
		*) continue ;;
		esac
		got=$(grep -E "^($sym=|# $sym is not set)" "$config" || true)
		if [ "$got" != "$want" ] && ! { [ -z "$got" ] && [ "${want#\#}" != "$want" ]; }; then
			echo "$me: config: wanted '$want', got '${got:-<absent>}'" >&2
			bad=1
		fi
	done <"$fragment"
	[ $bad = 0 ]
}

# build_ticker PREFIX DIR START: prints once a minute how long a build in DIR has run and how many
# objects it has made (run it in the background and kill it when the build is over).
build_ticker() {
	while sleep 60; do
		echo "$1: ... $(( ($(date +%s) - $3) / 60 )) min, $(find "$2" -name '*.o' 2>/dev/null | wc -l) objects"
	done
}
