#!/usr/bin/env bash
# System packages the tests need (Debian). Skips what is already installed.
set -euo pipefail
need=()
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
# Browser tests of the annotation UI (test/annotate-browser.test.ts) drive Debian's chromium.
[ -x /usr/bin/chromium ] || need+=(chromium)
# The WebAssembly kernels (scripts/build-wasm.mjs, DPO_BACKEND=wasm, the browser page).
command -v emcc >/dev/null || need+=(emscripten)
# The relaxed-SIMD (FMA) builds of the wasm GEMM: clang 19's wasm backend (emscripten's clang 14
# knows only the pre-standard opcodes) and its wasm-ld.
[ -x /usr/lib/llvm-19/bin/clang ] || need+=(clang-19)
[ -x /usr/lib/llvm-19/bin/wasm-ld ] || need+=(lld-19)
# Text in the demo's PNG plots (resvg renders SVG with system fonts).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi
# The emulated arm64 suite (test/arm64-emulated.test.ts): cross compiler, qemu-user and an arm64 Node.
bash "$(dirname "$0")/arm64-sysroot.sh"
