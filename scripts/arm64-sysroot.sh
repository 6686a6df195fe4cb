#!/usr/bin/env bash
# An arm64 Node for the emulated test suite (test/arm64-emulated.test.ts): Debian's nodejs:arm64
# and the libraries it needs, unpacked into a root directory that qemu-user runs it from
# (`qemu-aarch64-static -L ROOT ROOT/usr/bin/node`), plus the cross compiler for the addon.
# Nothing is installed for arm64 system-wide (nodejs:arm64 cannot sit beside the amd64 nodejs).
# Usage: scripts/arm64-sysroot.sh [ROOT]   (default /opt/dpo-ts-arm64-root; needs root for apt)
set -euo pipefail
root="${1:-${DPO_ARM64_ROOT:-/opt/dpo-ts-arm64-root}}"
if [ -x "$root/usr/bin/node" ] && command -v qemu-aarch64-static >/dev/null && command -v aarch64-linux-gnu-g++ >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "arm64 emulation needs: apt-get install g++-aarch64-linux-gnu qemu-user-static, and Debian's nodejs:arm64 unpacked into $root (run this script as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user-static >/dev/null
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"  # apt-get download runs as _apt where it can
# nodejs:arm64 and its run-time dependencies (Debian 12: Node 18, N-API 9), plus the arch-all
# JavaScript packages Debian's build loads its bundled modules from.
pkgs=(nodejs:arm64 libnode108:arm64 libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 libuv1:arm64 libssl3:arm64
      libicu72:arm64 libbrotli1:arm64 libc-ares2:arm64 libnghttp2-14:arm64 zlib1g:arm64
      node-acorn node-cjs-module-lexer node-undici)
(cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null)
mkdir -p "$root"
for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$root"; done
qemu-aarch64-static -L "$root" "$root/usr/bin/node" -e 'console.log(`arm64 Node ${process.version} (${process.arch}) ready`)'
