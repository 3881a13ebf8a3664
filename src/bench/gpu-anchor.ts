// The peer baseline for `bench gpu-engine`: PyTorch's cuDNN LSTM (torch_imdb_anchor.py, given with --torch-anchor)
// run as a child process on the same machine, in the same command. Its stdout lines look like
//   gpu: NVIDIA H200 torch 2.11.0 cudnn 91900
//   cuda threads=None bs=64 epoch 2: 7.6s train, 3290 samples/s, 888000 tokens/s, test_acc=0.87
// The script ends with a slow 2-thread CPU sample that this benchmark does not need: the child is stopped
// (SIGTERM) as soon as the last CUDA figure (bs=256) is printed.
import { spawn } from "node:child_process";
import { UnavailableError } from "../errors.js";
import { logger } from "../output.js";

const log = logger("torch-anchor");

export interface AnchorEpoch { batch: number; epoch: number; seconds: number; samples_per_s: number; tokens_per_s: number }

export interface AnchorResult {
  gpu?: string;
  epochs: AnchorEpoch[];
  /** samples/s per batch size: the mean over epochs after the first (cuDNN/allocator warm-up) when there are several. */
  samplesPerS: Map<number, number>;
  lines: string[];
}

const EPOCH = /^cuda threads=\S+ bs=(\d+) epoch (\d+): ([\d.]+)s train, (\d+) samples\/s, (\d+) tokens\/s/;

export function parseAnchorLine(line: string): AnchorEpoch | undefined {
  const m = EPOCH.exec(line.trim());
  if (!m) return undefined;
  return { batch: Number(m[1]), epoch: Number(m[2]), seconds: Number(m[3]), samples_per_s: Number(m[4]), tokens_per_s: Number(m[5]) };
}

export function summarizeAnchor(epochs: AnchorEpoch[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const bs of new Set(epochs.map((e) => e.batch))) {
    const es = epochs.filter((e) => e.batch === bs);
    const timed = es.length > 1 ? es.slice(1) : es;
    out.set(bs, timed.reduce((a, e) => a + e.samples_per_s, 0) / timed.length);
  }
  return out;
}

/**
 * Runs `python script train test epochs`; resolves once the bs=`lastBatch` epoch line arrives (then stops
 * the child) or when the child exits. Rejects with UnavailableError if it printed no CUDA epoch.
 */
export function runAnchor(o: { python: string; script: string; train: string; test: string; epochs: number; lastBatch: number; timeoutS: number }): Promise<AnchorResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(o.python, [o.script, o.train, o.test, String(o.epochs)], { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    const epochs: AnchorEpoch[] = [];
    let gpu: string | undefined;
    let buf = "", errTail = "";
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill("SIGTERM");
      if (epochs.length === 0) {
        reject(err ?? new UnavailableError(`the PyTorch anchor printed no CUDA figures (${o.python} ${o.script}): ${errTail.trim().split("\n").slice(-3).join(" | ") || "no output"}`));
      } else {
        resolve({ gpu, epochs, samplesPerS: summarizeAnchor(epochs), lines });
      }
    };
    const timer = setTimeout(() => finish(new UnavailableError(`the PyTorch anchor did not finish within ${o.timeoutS} s`)), o.timeoutS * 1000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        log.info(line);
        if (line.startsWith("gpu: ")) gpu = line.slice(5).split(" torch ")[0];
        const e = parseAnchorLine(line);
        if (e) {
          epochs.push(e);
          if (e.batch === o.lastBatch) finish();
        }
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => { errTail = (errTail + d).slice(-2000); });
    child.once("error", (err) => finish(new UnavailableError(`cannot run ${o.python}: ${err.message}`, { cause: err })));
    child.once("close", () => finish());
  });
}
