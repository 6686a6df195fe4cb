#!/usr/bin/env bash
# Development build of the native addon into a private folder, without touching build/:
#   scripts/build-native-dev.sh OUTDIR   → OUTDIR/dpo_native.node
# then run with DPO_NATIVE_ADDON=OUTDIR/dpo_native.node. Useful when several people work on
# native/ at once (node-gyp rebuild wipes build/). Same flags as binding.gyp.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: build-native-dev.sh OUTDIR}
mkdir -p "$out"
nodeinc=$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
[ -d "$nodeinc" ] || nodeinc=/usr/include/node
addon=$(node -p "require('node-addon-api').include_dir")
objs=()
for f in native/*.cc; do
  o="$out/$(basename "${f%.cc}").o"
  g++ -std=c++17 -O3 -fno-math-errno -ffp-contract=fast -pthread -fPIC \
    -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED \
    -I"$nodeinc" -I"$addon" -c "$f" -o "$o" &
  objs+=("$o")
done
wait
g++ -shared -pthread -o "$out/dpo_native.node" "${objs[@]}"
echo "$out/dpo_native.node"
