#!/usr/bin/env bash
# ONE call on the GPU machine (prepared by bench/gpu/pack.sh; see README.md). It unpacks Node.js, the Vulkan
# loader and the program, lists the adapters, runs the kernels' gradient tests on the real GPU, then
# `bench gpu-engine`: the engine's reviews/s on real IMDB length buckets at batch 64 and 256, and PyTorch's
# cuDNN LSTM (torch_imdb_anchor.py) in the same run on the same card, with the ratio. Then, with what is left
# of the call, full `train` runs (ingest + coordinator + 2 WebGPU workers, 5 epochs) side by side, one per
# learning-rate/max-length candidate in TRAIN_CONFIGS, to choose the defaults by validation accuracy.
# Logs and the results file go to $OUT (the device tool brings them back); commit the JSON under bench/results/.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
t0=$(date +%s)
el() { echo $(($(date +%s) - t0)); }
source .gpu/activate.sh
tar -xJf .gpu/app/app.tar.xz                              # node_modules/ dist/ bin/ (ignored paths)
nproc
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
node --input-type=module -e '
  const d = await import("./dist/src/workers/gpu/device.js");
  console.log("adapters:", JSON.stringify(await d.listAdapters()));
  const g = await d.acquireDevice({ kind: "gpu" });
  const l = g.device.limits;
  console.log("device:", g.name, "| maxStorageBufferBindingSize", l.maxStorageBufferBindingSize, "| maxBufferSize", l.maxBufferSize,
    "| invocations/workgroup", l.maxComputeInvocationsPerWorkgroup, "| storage buffers/stage", l.maxStorageBuffersPerShaderStage);
  g.device.destroy(); process.exit(0);'
if [ "${MODE:-}" = scale ]; then
  # Scaling at GPU speed (see README.md, "MODE=scale"): the engine alone at batch 64, a real `train` with one
  # WebGPU worker on the same kind of batches (its samples/s ÷ the engine's is the round's cost), then
  # `bench cluster` on this machine's cores with 1..8 synthetic workers, with and without a shard.
  echo "== ingest, batches of 64, whole reviews ($(el) s)"
  timeout 60 node bin/imdb-train.js ingest --data .gpu/app/aclImdb-train.tar.gz --batch-size 64 --out /tmp/ds64 --json > "$OUT/ingest-64.json" 2> "$OUT/ingest-64.log"
  echo "ingest rc=$? ($(el) s)"
  echo "== bench gpu-engine, batch 64, engine alone ($(el) s)"
  timeout 120 node bin/imdb-train.js bench gpu-engine --data .gpu/app/aclImdb-train.tar.gz --batch-sizes 64 --max-seconds ${MAX_SECONDS:-30} \
    --skip-baseline --out "$OUT/results" --json > "$OUT/bench.json" 2> "$OUT/bench.log"
  echo "bench gpu-engine rc=$? ($(el) s)"; tail -c 400 "$OUT/bench.json"; echo
  echo "== train, 1 WebGPU worker, 5 epochs ($(el) s)"
  timeout 200 node bin/imdb-train.js train --dataset /tmp/ds64 --workers 1 --backend webgpu --epochs 5 --out /tmp/train-1gpu \
    --timeline "$OUT/train-1gpu.timeline" --json > "$OUT/train-1gpu.json" 2> "$OUT/train-1gpu.log"
  echo "train rc=$? ($(el) s)"; grep -E "epoch [0-9]+/" "$OUT/train-1gpu.log" | tail -5; tail -c 700 "$OUT/train-1gpu.json"; echo
  echo "== bench cluster on $(nproc) cores ($(el) s)"
  timeout 200 node bin/imdb-train.js bench cluster --dataset /tmp/ds64 --workers 1,2,4,8 --steps 30 --warmup 10 --variants rows,rows-shards2 --json \
    > "$OUT/cluster.json" 2> "$OUT/cluster.log"
  echo "bench cluster rc=$? ($(el) s)"; grep "worker(s)" "$OUT/cluster.log"
  if [ "$(id -u)" = 0 ] && command -v tc >/dev/null && ip netns list >/dev/null 2>&1; then
    timeout 120 node bin/imdb-train.js bench cluster --dataset /tmp/ds64 --workers 8 --steps 25 --link-gbps 10 --variants rows,rows-shards2 --json \
      > "$OUT/cluster-10g.json" 2> "$OUT/cluster-10g.log"
    echo "bench cluster --link-gbps 10 rc=$? ($(el) s)"; grep "worker(s)" "$OUT/cluster-10g.log"
  else
    echo "no root, tc or ip netns here: no shaped links"
  fi
  echo "== done ($(el) s)"
  exit 0
fi
echo "== kernels' gradient tests on the GPU ($(el) s)"
timeout 90 node --test dist/test/gpu-grad.test.js > "$OUT/gpu-grad.tap" 2>&1; echo "gpu-grad tests rc=$?"; grep -E '^(not )?ok|^# (pass|fail|skip)' "$OUT/gpu-grad.tap"
echo "== bench gpu-engine ($(el) s)"
timeout ${BENCH_TIMEOUT:-220} node bin/imdb-train.js bench gpu-engine --data .gpu/app/aclImdb-train.tar.gz \
  --torch-anchor .gpu/app/torch_imdb_anchor.py --batch-sizes 64,256 --max-seconds ${MAX_SECONDS:-30} \
  --torch-epochs ${TORCH_EPOCHS:-3} --torch-timeout 150 --check --out "$OUT/results" --json > "$OUT/bench.json"
echo "bench rc=$? ($(el) s)"
cat "$OUT"/results/*.json 2>/dev/null
echo
# Training runs side by side on the same GPU (each: coordinator + 2 worker processes; one ingest shared by
# the candidates with the default max length). Per-epoch lines land in $OUT/train-<name>.log.
left=$(( ${CALL_SECONDS:-570} - $(el) - 15 ))
echo "== train candidates, ${left} s left ($(el) s)"
if [ "$left" -gt 60 ]; then
  for L in 400; do   # train's default --max-len is 400 (ingest's own default keeps whole reviews)
    # batches of 32: train's default step is 32 per worker (a --dataset keeps its own batch size)
    timeout 40 node bin/imdb-train.js ingest --data .gpu/app/aclImdb-train.tar.gz --max-len $L --batch-size 32 --out /tmp/ds$L --json > "$OUT/ingest-$L.json" 2> "$OUT/ingest-$L.log"
    echo "ingest --max-len $L rc=$? ($(el) s)"; tail -c 300 "$OUT/ingest-$L.json"; echo
  done
  left=$(( ${CALL_SECONDS:-570} - $(el) - 10 ))
  pids=()
  # name:max-len:extra train flags (train's defaults otherwise: dropout 0.5, lr 0.002, batch 32 per worker)
  IFS=';' read -ra configs <<< "${TRAIN_CONFIGS:-defaults:400:;lr1e-3:400:--lr 0.001;dropout0.3:400:--dropout 0.3}"
  for c in "${configs[@]}"; do
    IFS=':' read -r name L args <<< "$c"
    # shellcheck disable=SC2086
    timeout "$left" node bin/imdb-train.js train --dataset /tmp/ds$L --workers 2 --backend webgpu --epochs 5 $args \
      --out "/tmp/train-$name" --json > "$OUT/train-$name.json" 2> "$OUT/train-$name.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; echo "train pid $p rc=$? ($(el) s)"; done
  for c in "${configs[@]}"; do
    name=${c%%:*}
    echo "-- $name"; grep -E "epoch [0-9]+: (val|train)|samples/s" "$OUT/train-$name.log" | grep -E "\[train\] epoch|\[coordinator\] epoch" | tail -12
    tail -c 600 "$OUT/train-$name.json"; echo
  done
fi
echo "== done ($(el) s)"
