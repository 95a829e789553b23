#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs everything rvgpu needs on a Debian 12 (bookworm) machine, as root:
#   - clang/lld/llvm 19 and the kernel build packages (bookworm),
#   - QEMU 10 (bookworm-backports), mdevctl, udev and libvirt 9.0 (bookworm; the test VM's libvirt
#     suite runs libvirtd and systemd-udevd itself, so no service is started here),
#   - rust-src (rustup) and bindgen-cli (cargo),
#   - the Linux 7.3 source tarball from Debian's linux-source-7.3 (trixie-backports),
#     downloaded through a private apt configuration so nothing else from trixie is installed.
# Idempotent: on a machine where it already ran it only checks and returns.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root "$0" "$@"
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || log "warning: tested on Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}"

export DEBIAN_FRONTEND=noninteractive

# --- Debian packages --------------------------------------------------------
bpo=/etc/apt/sources.list.d/rvgpu-bookworm-backports.sources
if [ ! -f "$bpo" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	log "adding bookworm-backports (for QEMU 10)"
	cat >"$bpo" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	rm -f /var/lib/apt/periodic/rvgpu-updated
fi

pkgs=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev cpio kmod
      make xz-utils zstd rsync busybox-static mdevctl pciutils python3 ca-certificates
      gcc libc6-dev linux-libc-dev udev libvirt-daemon-system libvirt-clients)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
qemu_ok() {
	command -v qemu-system-x86_64 >/dev/null &&
		[ "$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')" -ge 10 ]
}
if [ ${#missing[@]} -gt 0 ] || ! qemu_ok; then
	log "apt-get update"
	apt-get update -qq
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		# Without a running systemd (a container), the packages' maintainer scripts would try to
		# start libvirtd and udevd through their init scripts: a policy-rc.d that says "not now"
		# (101) stops them, unless the machine already has its own.
		policy=
		if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
			policy=/usr/sbin/policy-rc.d
			printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
			chmod 755 "$policy"
		fi
		rc=0
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
		[ -z "$policy" ] || rm -f "$policy"
		[ "$rc" -eq 0 ] || die "apt-get install failed (status $rc)"
	fi
	if ! qemu_ok; then
		log "installing qemu-system-x86 from bookworm-backports"
		apt-get install -y -qq --no-install-recommends -t bookworm-backports \
			qemu-system-x86 qemu-system-gui- ipxe-qemu seabios qemu-utils >/dev/null
	fi
fi
qemu_ok || die "QEMU >= 10 is not installed"

# --- Rust -------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null || die "rustup is not installed (the project uses the machine's rustup toolchain)"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "rustup component add rust-src"
	if [ -n "${RVGPU_TOOLCHAIN_USER:-}" ] && [ "$RVGPU_TOOLCHAIN_USER" != root ]; then
		# Under sudo (scripts/lib.sh as_root): the toolchain is the user's, so is the change.
		runuser -u "$RVGPU_TOOLCHAIN_USER" -- env PATH="$PATH" RUSTUP_HOME="$RUSTUP_HOME" rustup component add rust-src
	else
		rustup component add rust-src
	fi
fi
if ! bindgen --version 2>/dev/null | grep -q '0\.72\.1'; then
	log "cargo install bindgen-cli 0.72.1"
	cargo install --locked bindgen-cli --version 0.72.1
fi

# --- Linux 7.3 source ---------------------------------------------------------
if [ ! -f "$RVGPU_CACHE/src/linux-source-7.3.tar.xz" ]; then
	log "downloading linux-source-7.3 from trixie-backports (download only)"
	priv="$RVGPU_CACHE/apt-trixie"
	mkdir -p "$priv/lists/partial" "$priv/archives/partial" "$RVGPU_CACHE/src"
	cat >"$priv/sources.list" <<'SRC'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
SRC
	aptopts=(-o "Dir::Etc::SourceList=$priv/sources.list" -o "Dir::Etc::SourceParts=-"
		 -o "Dir::State::Lists=$priv/lists" -o "Dir::Cache::Archives=$priv/archives"
		 -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0")
	apt-get "${aptopts[@]}" update -qq
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get "${aptopts[@]}" download linux-source-7.3)
	deb=$(ls "$tmp"/linux-source-7.3_*.deb)
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './usr/src/linux-source-7.3.tar.xz'
	mv "$tmp/usr/src/linux-source-7.3.tar.xz" "$RVGPU_CACHE/src/"
	basename "$deb" >"$RVGPU_CACHE/src/linux-source-7.3.deb-name"
	rm -rf "$tmp"
fi
log "ready ($(cat "$RVGPU_CACHE/src/linux-source-7.3.deb-name"))"
