// `imdb-train train`: the single-machine launcher. Ingest (when not given --dataset), then the run as one
// stage (./stage.ts: a coordinator child and N worker children) — or, with --pretrain, two: the pretraining
// task on train + unsup (lm: a language model; vectors: skip-gram word vectors) in <out>/pretrain, then the
// classifier in <out>, initialised from it (--init <out>/pretrain/model, or --glove <out>/pretrain/vectors.txt).
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULTS } from "../config.js";
import { UsageError } from "../errors.js";
import { emitJson, logger } from "../output.js";
import { MODEL_OPTIONS, PASS_ON, optimFrom, toArgv } from "./options.js";
import type { TrainCliOptions } from "./command.js";
import type { TrainReport } from "./role.js";
import { runStage, BIN } from "./stage.js";

export { BIN };
const log = logger("train");

export async function runTrain(o: TrainCliOptions): Promise<number> {
  const out = resolve(o.out);
  const gpus = o.gpus ?? [];
  const workers = gpus.length || o.workers;
  const settings = optimFrom(o); // validate before any work
  const pretrain = o.pretrain;
  if (pretrain !== "none") {
    if (o.resume) throw new UsageError("--resume names one checkpoint; with --pretrain use --auto-resume (each stage continues from its own checkpoints, a finished pretraining is kept)");
    if (o.bidirectional) throw new UsageError("--pretrain lm and vectors pretrain a left-to-right model's layers; --bidirectional has no pretrained counterpart");
    if (o.glove) throw new UsageError("--pretrain vectors makes the embedding's initial vectors itself; drop --glove (or --pretrain)");
  }
  let dataset = o.dataset ? resolve(o.dataset) : undefined;
  if (!dataset) {
    // no --data: the official archive, downloaded once into the cache (as `ingest` does)
    const data = o.data?.length ? o.data : [await (await import("../ingest/index.js")).ensureOfficialArchive()];
    dataset = join(out, "dataset");
    // pretraining also reads the unlabelled reviews: train/unsup/ of any input
    const unsup = pretrain !== "none";
    const want = { vocabSize: o.vocabSize, minFreq: o.minFreq, batchSize: o.batchSize, maxLen: o.maxLen, keep: o.keep, valFraction: o.valFraction, seed: settings.seed };
    if (sameIngest(dataset, data, want, unsup)) {
      log.info(`reusing ${dataset} (ingested from the same input with the same options)`);
    } else {
      const { runIngest } = await import("../ingest/index.js");
      log.info(`ingesting ${data.join(" + ")} into ${dataset}${unsup ? " (with the unlabelled reviews)" : ""}`);
      await runIngest({ data, out: dataset, ...want, unsup, shards: 1, force: true });
    }
  }
  const secureArgs = o.secure ? ["--curve-keys", await launcherKeys(out)] : [];
  const stage = { workers, gpus, backend: o.backend, secureArgs, metricsPort: o.metricsPort, controlDir: out };
  const common = ["--dataset", dataset, "--bind", "tcp://127.0.0.1:*", "--workers", String(workers), ...secureArgs];
  if (o.metricsPort !== undefined) common.push("--metrics-port", String(o.metricsPort));
  const t0 = performance.now();
  const classifierArgs = ["coordinator", ...common, "--out", out, ...toArgv(PASS_ON, o)];
  let pre: TrainReport | null = null;
  if (pretrain !== "none") {
    const preOut = join(out, "pretrain");
    const task = pretrain === "lm" ? "lm" : "sgns";
    const made = pretrain === "lm" ? join(preOut, "model") : join(preOut, "vectors.txt");
    const epochs = o.pretrainEpochs ?? DEFAULTS.pretrain[pretrain].epochs, lr = o.pretrainLr ?? DEFAULTS.pretrain[pretrain].lr;
    if (o.autoResume && existsSync(made) && existsSync(join(preOut, "model", "config.json"))) {
      log.info(`pretraining already done: reusing ${made}`);
    } else {
      // the pretraining run: the model's shape (not its dropout), the run's seed and wire settings, its own lr and epochs
      const shape = toArgv(MODEL_OPTIONS.filter((m) => m.name !== "glove" && m.name !== "forget-bias"), o);
      const wire = toArgv(PASS_ON.filter((p) => ["seed", "grad-dtype", "pull", "embedding-grads", "checkpoint-every", "step-timeout", "heartbeat-timeout", "join-timeout", "max-steps", "max-val-batches", "clip", "warmup-steps", "decay"].includes(p.name)), o);
      const args = ["coordinator", ...common, "--out", preOut, "--task", task, ...shape, ...wire, "--epochs", String(epochs), "--lr", String(lr)];
      if (o.autoResume) args.push("--auto-resume");
      log.info(`pretraining (${pretrain === "lm" ? "a language model" : "skip-gram word vectors"}) on train + unsup for ${epochs} epoch(s) at lr ${lr} into ${preOut}`);
      pre = await runStage({ ...stage, label: "pretrain", coordArgs: args, epochs });
      log.info(`pretraining done in ${(pre.seconds / 60).toFixed(1)} min`);
    }
    classifierArgs.push(pretrain === "lm" ? "--init" : "--glove", made);
  }
  if (o.resume) classifierArgs.push("--resume", resolve(o.resume));
  if (o.autoResume) classifierArgs.push("--auto-resume");
  const r = await runStage({ ...stage, label: "train", coordArgs: classifierArgs, epochs: settings.epochs });
  for (const e of r.epochs) log.info(`epoch ${e.epoch}: val accuracy ${(e.val_accuracy * 100).toFixed(2)}% (loss ${e.val_loss.toFixed(4)}), ${e.seconds.toFixed(1)} s`);
  log.info(`model: ${r.model}${pretrain !== "none" ? ` (pretraining ${pretrain}; both stages ${((performance.now() - t0) / 60000).toFixed(1)} min)` : ""}`);
  if (o.json) emitJson({ ...r, dataset, ...(pretrain !== "none" ? { pretrain: pre ? { task: pre.task, model: pre.model, vectors: pre.vectors, epochs: pre.epochs, seconds: pre.seconds, steps: pre.steps } : { reused: true } } : {}) });
  return 0;
}

/** `train --secure`: the CURVE keys in <out>/keys, made on first use and reused (e.g. by --resume). */
async function launcherKeys(out: string): Promise<string> {
  const { writeKeyDir, KEY_FILES } = await import("../security/keys.js");
  const dir = join(out, "keys");
  if (existsSync(join(dir, KEY_FILES.serverSecret))) {
    log.info(`CURVE keys: reusing ${dir}`);
  } else {
    writeKeyDir(dir);
    log.info(`CURVE keys: made ${dir}`);
  }
  return dir;
}

/** An ingested dataset at `dir` made from the inputs `data` with these options, with or without the unlabelled
 *  reviews (manifest.json says so). */
function sameIngest(dir: string, data: readonly string[], want: Record<string, number | string>, unsup: boolean): boolean {
  try {
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { source?: { path?: string }; inputs?: { path: string }[]; options?: Record<string, number | string | boolean> };
    const inputs = (m.inputs ?? (m.source ? [m.source] : [])).map((i) => resolve(i.path ?? ""));
    if (!m.options || inputs.join("\n") !== data.map((d) => resolve(d)).join("\n")) return false;
    if ((m.options.unsup === true) !== unsup) return false;
    return Object.entries(want).every(([k, v]) => m.options![k] === v);
  } catch {
    return false;
  }
}
