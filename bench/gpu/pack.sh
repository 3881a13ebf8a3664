#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) for ONE call on the GPU machine, which has no Node.js, no Vulkan loader,
# no npm and no copy of ../shared:
#   .gpu/node.xz, .gpu/debs, .gpu/activate.sh   Node.js + Vulkan loader (../shared/device/prepare-carry.sh)
#   .gpu/app/app.tar.xz                         the built program: dist/ JS and the node_modules files Node
#                                               opens for the benchmark and the GPU tests (traced here with
#                                               strace on the software adapter), ~6 MB xz instead of 344 MB
#   .gpu/app/aclImdb-train.tar.gz               the IMDB train archive (never committed)
#   .gpu/app/torch_imdb_anchor.py               the PyTorch peer baseline
# Usage, from the repository root:  bash bench/gpu/pack.sh
# then the device tool: carry [".gpu"], command "bash bench/gpu/run.sh", timeout_s 560 (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ -f .gpu/activate.sh ] && [ -f .gpu/node.xz ] || bash ../shared/device/prepare-carry.sh .gpu
npx tsc -p . >/dev/null 2>&1 || echo "pack: tsc reported errors (emit still happens); continuing"
mkdir -p .gpu/app
trace=$(mktemp -d)
export EGL_PLATFORM=surfaceless
strace -f -qq -e trace=openat -o "$trace/bench" node bin/imdb-train.js bench gpu-engine --data ../shared/data/aclImdb-train.tar.gz --adapter software \
  --count 100 --batch-sizes 4 --max-batches 1 --hidden 16 --embed-dim 8 --vocab-size 300 --check --skip-baseline --out '' >/dev/null 2>&1
strace -f -qq -e trace=openat -o "$trace/test" node --test dist/test/gpu-grad.test.js >/dev/null 2>&1
# A tiny `train` (ingest + coordinator + 2 WebGPU workers over ZeroMQ) so that the training path travels too.
tiny=$(mktemp -d)
strace -f -qq -e trace=openat -o "$trace/train" node bin/imdb-train.js train --data ../shared/data/aclImdb-train.tar.gz \
  --workers 2 --backend webgpu --epochs 1 --max-steps 2 --max-val-batches 1 --hidden 8 --embed-dim 8 --out "$tiny" --json >/dev/null 2>&1 \
  || echo "pack: the traced tiny train failed"
rm -rf "$tiny"
cat "$trace"/bench* "$trace"/test* "$trace"/train* | grep -v ENOENT | grep -oE '"[^"]+"' | tr -d '"' \
  | grep -E "^$root/(node_modules|dist|bin|package\.json)" | sed "s|^$root/||" | sort -u > .gpu/app/files.txt
# All compiled JS (lazy imports on paths the trace did not take), dawn.node (dlopen), the GPU tests.
{ find dist/src -name '*.js'; find dist/test -name 'gpu-*.js'; find dist/test/helpers -name '*.js'
  printf '%s\n' node_modules/webgpu/dist/linux-x64/dawn.node package.json
  # tfjs's WebGPU backend: a model the kernels do not cover (dropout, GRU stacks...) runs the fused engine on it
  find node_modules/@tensorflow/tfjs-backend-webgpu -maxdepth 2 \( -name package.json -o -name '*.js' \) 2>/dev/null; } >> .gpu/app/files.txt
# Only files that still exist (others build in this checkout at the same time).
sort -u .gpu/app/files.txt | while read -r f; do [ -f "$f" ] && echo "$f"; done > .gpu/app/files.ok
mv .gpu/app/files.ok .gpu/app/files.txt
tar -cJf .gpu/app/app.tar.xz -T .gpu/app/files.txt
rm -rf "$trace"
cp ../shared/data/aclImdb-train.tar.gz ../shared/device/torch_imdb_anchor.py .gpu/app/
echo "pack: $(wc -l < .gpu/app/files.txt) files in app.tar.xz ($(du -h .gpu/app/app.tar.xz | cut -f1)); .gpu is $(du -sh .gpu | cut -f1) (carry limit 64 MiB)"
