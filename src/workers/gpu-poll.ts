// The GPUs a worker process sees, polled with `nvidia-smi` every few seconds and reported through
// Telemetry.gpuDevice (utilisation, memory used and total, UUID and name). Where NVIDIA's DCGM exporter runs
// (deploy/: Kubernetes and the Compose GPU profile) the dashboard prefers its series, joined to the worker by
// UUID; this poller is the fallback wherever `nvidia-smi` exists. No nvidia-smi, or one that fails (no
// driver, no GPU): the poller stops after saying so once, and the worker carries on.
//
// Which GPUs: CUDA_VISIBLE_DEVICES when set (`train --gpus` sets it for each worker), else IMDB_TRAIN_GPU, else
// every GPU the process can see (in a container: the ones it was given).
import { execFile } from "node:child_process";
import { logger } from "../output.js";
import type { GpuReading, Telemetry } from "../telemetry.js";

const log = logger("gpu-poll");
const MIB = 1024 * 1024;
/** Seconds between polls. */
export const GPU_POLL_S = 5;
/** A poll that takes longer than this (ms) is abandoned. */
const POLL_TIMEOUT_MS = 4000;
/** Lines of output read at most (GPUs per process); a label per GPU stays bounded. */
const MAX_GPUS = 16;
const QUERY = "--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total,name";

/** The `--id` selection for nvidia-smi from the environment, or undefined for every visible GPU. */
export function gpuSelection(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const raw = (env.CUDA_VISIBLE_DEVICES ?? env.IMDB_TRAIN_GPU ?? "").trim();
  return /^[A-Za-z0-9:.,-]+$/.test(raw) ? raw : undefined;
}

/** Parses `nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used,memory.total,name --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(text: string): GpuReading[] {
  const out: GpuReading[] = [];
  for (const line of text.split("\n").slice(0, MAX_GPUS)) {
    const raw = line.split(",");
    if (raw.length < 6) continue;
    const f = raw.slice(0, 5).map((x) => x.trim());
    const index = Number(f[0]);
    if (!Number.isInteger(index) || index < 0) continue;
    // "[N/A]", "[Not Supported]": left out
    const num = (x: string) => (/^\d+(\.\d+)?$/.test(x) ? Number(x) : undefined);
    const util = num(f[2]!), used = num(f[3]!), total = num(f[4]!);
    out.push({
      index, uuid: f[1]!, name: raw.slice(5).join(",").trim(),
      utilization: util === undefined ? undefined : util / 100,
      memoryUsedBytes: used === undefined ? undefined : used * MIB,
      memoryTotalBytes: total === undefined ? undefined : total * MIB,
    });
  }
  return out;
}

function query(bin: string, ids: string | undefined): Promise<string> {
  const args = [QUERY, "--format=csv,noheader,nounits", ...(ids ? [`--id=${ids}`] : [])];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: POLL_TIMEOUT_MS, maxBuffer: 64 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(" ")}: ${(stderr || err.message).trim().split("\n")[0]}`));
      else resolve(stdout);
    });
  });
}

export interface GpuPoller { stop(): void }

/**
 * Polls nvidia-smi for `worker` every `intervalS` seconds (the first poll at once). Stops by itself when
 * nvidia-smi is missing or its first poll fails (later failures are retried); `stop()` ends it. The timer does not keep the process alive.
 */
export function pollGpus(telemetry: Telemetry, worker: string, opts: { intervalS?: number; bin?: string; env?: NodeJS.ProcessEnv } = {}): GpuPoller {
  const bin = opts.bin ?? "nvidia-smi";
  const ids = gpuSelection(opts.env);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let polls = 0;
  const poll = async () => {
    try {
      const gpus = parseNvidiaSmi(await query(bin, ids));
      if (stopped) return;
      for (const g of gpus) telemetry.gpuDevice(worker, g);
      if (polls++ === 0) log.info(`GPU gauges from nvidia-smi every ${opts.intervalS ?? GPU_POLL_S} s: ${gpus.map((g) => `${g.index} ${g.name}`).join("; ") || "no GPU listed"}`);
    } catch (err) {
      const why = (err as Error).message;
      if (polls > 0) log.debug(`a GPU poll failed (trying again): ${why}`);
      else {
        // never worked here: no nvidia-smi (a CPU machine) or no driver/GPU behind it
        if (why.includes("ENOENT")) log.debug(`no ${bin}: no GPU gauges`);
        else log.info(`no GPU gauges: ${why}`);
        stopped = true;
      }
    }
    if (!stopped) timer = setTimeout(() => void poll(), (opts.intervalS ?? GPU_POLL_S) * 1000).unref();
  };
  void poll();
  return { stop() { stopped = true; if (timer) clearTimeout(timer); } };
}
