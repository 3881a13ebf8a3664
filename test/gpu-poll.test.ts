// The worker's nvidia-smi poller: parsing, which GPUs it asks for, and its gauges on a real /metrics
// endpoint; a fake nvidia-smi (a shell script) stands in for the driver's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { gpuSelection, parseNvidiaSmi, pollGpus } from "../src/workers/gpu-poll.js";
import { startMetrics } from "../src/metrics/index.js";

test("parseNvidiaSmi: base units, [N/A] fields left out, names with commas kept, garbage skipped", () => {
  const gpus = parseNvidiaSmi([
    "0, GPU-aaaa-1, 87, 2048, 81559, NVIDIA H100 80GB HBM3",
    "1, GPU-bbbb-2, [N/A], 10, [Not Supported], Some GPU, rev 2",
    "not, a, gpu, line, at, all",
    "",
  ].join("\n"));
  assert.deepEqual(gpus, [
    { index: 0, uuid: "GPU-aaaa-1", name: "NVIDIA H100 80GB HBM3", utilization: 0.87, memoryUsedBytes: 2048 * 1048576, memoryTotalBytes: 81559 * 1048576 },
    { index: 1, uuid: "GPU-bbbb-2", name: "Some GPU, rev 2", utilization: undefined, memoryUsedBytes: 10 * 1048576, memoryTotalBytes: undefined },
  ]);
});

test("gpuSelection: CUDA_VISIBLE_DEVICES, else IMDB_TRAIN_GPU, else every GPU; odd values ignored", () => {
  assert.equal(gpuSelection({ CUDA_VISIBLE_DEVICES: "2,3", IMDB_TRAIN_GPU: "1" }), "2,3");
  assert.equal(gpuSelection({ IMDB_TRAIN_GPU: "1" }), "1");
  assert.equal(gpuSelection({}), undefined);
  assert.equal(gpuSelection({ CUDA_VISIBLE_DEVICES: "0; rm -rf /" }), undefined);
});

test("pollGpus: the GPUs nvidia-smi lists for --id become gauges on /metrics; a failing nvidia-smi is not asked again", async () => {
  const dir = tempDir("imdb-gpupoll-");
  const metrics = await startMetrics({ role: "worker", port: 0, host: "127.0.0.1", worker: "w3" });
  try {
    const calls = join(dir, "calls");
    writeFileSync(calls, "");
    const smi = join(dir, "nvidia-smi");
    writeFileSync(smi, `#!/bin/sh\necho "$@" >> ${calls}\necho "1, GPU-0000-1, 42, 512, 1024, NVIDIA Test GPU"\n`);
    chmodSync(smi, 0o755);
    const poller = pollGpus(metrics.telemetry, "w3", { bin: smi, env: { CUDA_VISIBLE_DEVICES: "1" }, intervalS: 0.05 });
    await waitFor(() => readFileSync(calls, "utf8").split("\n").length > 3);
    poller.stop();
    assert.match(readFileSync(calls, "utf8"), /--query-gpu=index,uuid,utilization\.gpu,memory\.used,memory\.total,name --format=csv,noheader,nounits --id=1/);
    const text = await metrics.text();
    assert.match(text, /imdb_train_gpu_utilization_ratio\{worker="w3",gpu="1",role="worker"\} 0\.42/);
    assert.match(text, /imdb_train_gpu_memory_used_bytes\{worker="w3",gpu="1",role="worker"\} 536870912/);
    assert.match(text, /imdb_train_gpu_memory_total_bytes\{worker="w3",gpu="1",role="worker"\} 1073741824/);
    assert.match(text, /imdb_train_gpu_info\{worker="w3",gpu="1",uuid="GPU-0000-1",name="NVIDIA Test GPU",role="worker"\} 1/);

    const failing = join(dir, "broken-smi");
    const failCalls = join(dir, "fail-calls");
    writeFileSync(failing, `#!/bin/sh\necho x >> ${failCalls}\necho "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2\nexit 9\n`);
    chmodSync(failing, 0o755);
    const stopped = pollGpus(metrics.telemetry, "w4", { bin: failing, env: {}, intervalS: 0.05 });
    await new Promise((r) => setTimeout(r, 500));
    stopped.stop();
    assert.equal(readFileSync(failCalls, "utf8"), "x\n", "asked once, then no more");
    assert.doesNotMatch(await metrics.text(), /worker="w4"/);
  } finally {
    await metrics.close();
    cleanup(dir);
  }
});

async function waitFor(ok: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
