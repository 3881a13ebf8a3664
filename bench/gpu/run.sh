#!/usr/bin/env bash
# ONE call on the GPU machine (prepared by bench/gpu/pack.sh; see README.md). It unpacks Node.js, the Vulkan
# loader and the program, lists the adapters, runs the kernels' gradient tests on the real GPU, then
# `bench gpu-engine`: the engine's reviews/s on real IMDB length buckets at batch 64 and 256, and PyTorch's
# cuDNN LSTM (torch_imdb_anchor.py) in the same run on the same card, with the ratio. Logs and the results
# file go to $OUT (the device tool brings them back); commit the JSON under bench/results/.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
t0=$(date +%s)
source .gpu/activate.sh
tar -xJf .gpu/app/app.tar.xz                              # node_modules/ dist/ bin/ (ignored paths)
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
node --input-type=module -e '
  const d = await import("./dist/src/workers/gpu/device.js");
  console.log("adapters:", JSON.stringify(await d.listAdapters()));
  const g = await d.acquireDevice({ kind: "gpu" });
  const l = g.device.limits;
  console.log("device:", g.name, "| maxStorageBufferBindingSize", l.maxStorageBufferBindingSize, "| maxBufferSize", l.maxBufferSize,
    "| invocations/workgroup", l.maxComputeInvocationsPerWorkgroup, "| storage buffers/stage", l.maxStorageBuffersPerShaderStage);
  g.device.destroy(); process.exit(0);'
echo "== kernels' gradient tests on the GPU ($(($(date +%s) - t0)) s)"
timeout 120 node --test dist/test/gpu-grad.test.js > "$OUT/gpu-grad.tap" 2>&1; echo "gpu-grad tests rc=$?"; grep -E '^(not )?ok|^# (pass|fail|skip)' "$OUT/gpu-grad.tap"
echo "== bench gpu-engine ($(($(date +%s) - t0)) s)"
timeout 450 node bin/imdb-train.js bench gpu-engine --data .gpu/app/aclImdb-train.tar.gz \
  --torch-anchor .gpu/app/torch_imdb_anchor.py --batch-sizes 64,256 --max-seconds ${MAX_SECONDS:-45} \
  --torch-epochs ${TORCH_EPOCHS:-3} --torch-timeout 300 --check --out "$OUT/results" --json > "$OUT/bench.json"
echo "bench rc=$? ($(($(date +%s) - t0)) s)"
# Second, short look (no PyTorch): Dawn without validation, robustness and workgroup zeroing (the kernels
# bound-check and initialise what they read), to see what Dawn's safety costs. Not the committed figure.
echo "== bench gpu-engine with Dawn toggles, batch 64 only ($(($(date +%s) - t0)) s)"
IMDB_TRAIN_DAWN_TOGGLES=skip_validation,disable_robustness,disable_workgroup_init timeout 120 node bin/imdb-train.js bench gpu-engine \
  --data .gpu/app/aclImdb-train.tar.gz --batch-sizes 64 --max-seconds 20 --skip-baseline --out "$OUT/results-toggles" --json > "$OUT/bench-toggles.json"
echo "bench (toggles) rc=$? ($(($(date +%s) - t0)) s)"
# Third, short look: where the GPU time goes (timestamp queries around forward, BPTT and weight gradients).
echo "== bench gpu-engine with GPU timestamps, batch 64 only ($(($(date +%s) - t0)) s)"
timeout 120 node bin/imdb-train.js bench gpu-engine --data .gpu/app/aclImdb-train.tar.gz --batch-sizes 64 --max-seconds 20 \
  --skip-baseline --gpu-timestamps --out "$OUT/results-timestamps" --json > "$OUT/bench-timestamps.json"
echo "bench (timestamps) rc=$? ($(($(date +%s) - t0)) s)"
ls "$OUT/results" "$OUT/results-toggles" "$OUT/results-timestamps" 2>/dev/null
cat "$OUT"/results/*.json 2>/dev/null
