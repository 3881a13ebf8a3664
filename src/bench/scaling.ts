// `bench scaling`: real `train` runs on the same samples with 1 worker (the baseline) and 2 workers: samples/s,
// speed-up and the coordinator's share of the step.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { emitJson, logger } from "../output.js";
import { TrainingError } from "../errors.js";
import { DEFAULTS } from "../config.js";
import { BIN } from "../coordinator/index.js";
import { runIngest } from "../ingest/index.js";
import { archiveOrDownload } from "./data.js";
import type { ScalingCliOptions } from "./command.js";

const log = logger("bench");

interface TrainJson { samples_per_s: number; overhead: number; steps: number; phases: { step: number } }

function runTrain(args: string[]): Promise<TrainJson> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, "train", ...args, "--json"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout!.on("data", (d) => { out += String(d); });
    p.once("close", (code) => {
      if (code !== 0) return rej(new TrainingError(`train ${args.join(" ")} exited with ${code}`));
      try { res(JSON.parse(out.trim().split("\n").pop()!) as TrainJson); } catch (e) { rej(e); }
    });
  });
}

export async function benchScaling(o: ScalingCliOptions): Promise<number> {
  let tmp: string | null = null;
  let dataset = o.dataset ? resolve(o.dataset) : "";
  try {
    if (!dataset) {
      const data = await archiveOrDownload(o.data);
      tmp = mkdtempSync(join(tmpdir(), "imdb-bench-scaling-"));
      dataset = join(tmp, "ds");
      log.info(`ingesting ${data} into ${dataset}`);
      // batches as `train` makes them by default (32 reviews, the last --max-len tokens kept)
      await runIngest({ data, out: dataset, maxLen: o.maxLen, batchSize: DEFAULTS.train.batchSize, keep: "last" });
    }
    const steps = o.steps;
    const rows: { workers: number; samples_per_s: number; overhead: number; step_s: number }[] = [];
    for (const n of [1, 2]) {
      const out = mkdtempSync(join(tmpdir(), `imdb-bench-scaling-${n}w-`));
      try {
        // both runs take 2 batches per step, so they process the very same samples (1 worker does both batches)
        const r = await runTrain(["--dataset", dataset, "--out", out, "--workers", String(n), "--batches-per-step", "2", "--epochs", "1", "--max-steps", String(steps), "--max-val-batches", "1", "--backend", "wasm"]);
        rows.push({ workers: n, samples_per_s: r.samples_per_s, overhead: r.overhead, step_s: r.phases.step / r.steps });
        log.info(`${n} worker(s): ${r.samples_per_s.toFixed(1)} samples/s, ${(r.phases.step / r.steps).toFixed(2)} s/step, coordinator share ${(r.overhead * 100).toFixed(1)}%`);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    }
    const two = rows[1]!, one = rows[0]!;
    const result = { bench: "scaling", overhead: two.overhead, speedup: two.samples_per_s / one.samples_per_s, baseline_samples_per_s: one.samples_per_s, samples_per_s: two.samples_per_s, steps, rows };
    if (o.json) emitJson(result);
    return 0;
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
