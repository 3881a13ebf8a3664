// A synthetic GPU worker for `bench cluster`: it speaks the real protocol and reads the real dataset, but its
// "compute" is a wait proportional to the padded tokens of its batches (B × T at --tokens-per-s, the speed of
// a GPU engine), and its gradient has the real size and sparsity: every dense value, and the embedding rows
// its batches' tokens touch (all rows when the run wants dense gradients). It follows the Welcome like a real
// worker: rows or dense parameters, rows or dense gradients, fp32 or fp16, a sharded coordinator's slices.
// Each task's timing goes to stdout as one JSON line when the run ends: {task, samples, computeMs, recvAt, sendAt}
// — wall-clock ms (sub-millisecond) of the Assign's arrival and of the gradient's send to the coordinator (the
// coordinator's --timeline has the other ends: push and pull).
// Run as: node cluster-worker.js <coordinatorEndpoint> <name> <tokensPerS>
import { Kind, encode, decode, type Message } from "../protocol/wire.js";
import { ParamAssembler } from "../protocol/params.js";
import { readBody } from "../protocol/bodies.js";
import { sparseBlockOf, type SparseBlock } from "../protocol/gradcodec.js";
import { toHalves } from "../optim/half-encoder.js";
import { paramLayout } from "../model/layout.js";
import { openTrainingData, type TrainingData } from "../dataset/training.js";
import { batchRows } from "../engine/rows.js";
import { join, WorkerShards } from "../workers/index.js";
import { NO_TELEMETRY } from "../telemetry.js";
import { logger } from "../output.js";
import { tuneHeapForMessages, releaseMessages } from "../heap.js";
import { wallClock } from "../clock.js";
import { until } from "./gpu-wait.js";

const VALUE = 1e-3;

/** The embedding rows each batch reads (computed once a batch). */
const rowsCache = new Map<number, Int32Array>();

/** The embedding rows a task's batches read (ascending, unique; one batch: its cached list, never written). */
function taskRows(data: TrainingData, batches: number[], V: number): Uint32Array {
  const lists = batches.map((i) => {
    let rows = rowsCache.get(i);
    if (!rows) {
      const b = data.batch("train", i);
      rows = batchRows({ size: b.size, maxLen: b.maxLen, lengths: b.lengths, tokens: b.tokens, targets: new Float32Array(b.size) }, V);
      rowsCache.set(i, rows);
    }
    return rows;
  });
  if (lists.length === 1) return new Uint32Array(lists[0]!.buffer, lists[0]!.byteOffset, lists[0]!.length);
  const seen = new Set<number>();
  for (const rows of lists) for (const r of rows) seen.add(r);
  return Uint32Array.from(seen).sort();
}

/** A batch's padded tokens, reviews and tokens (read once a batch). */
const shapes = new Map<number, { padded: number; samples: number; tokens: number }>();
function shapeOf(data: TrainingData, i: number): { padded: number; samples: number; tokens: number } {
  let s = shapes.get(i);
  if (!s) {
    const b = data.batch("train", i);
    let tokens = 0;
    for (let k = 0; k < b.size; k++) tokens += b.lengths[k]!;
    shapes.set(i, (s = { padded: b.size * b.maxLen, samples: b.size, tokens }));
  }
  return s;
}

/** The gradient values: every one VALUE, never written after this fill, so one buffer serves every message
 *  (a real worker's gradient comes out of its engine; the bench times the round, not the filling). */
let constant = new Float32Array(0);
function values(n: number): Float32Array {
  if (constant.length < n) constant = new Float32Array(n).fill(VALUE);
  return constant.subarray(0, n);
}

/** What the worker sends for a task: rows form (the touched rows and the dense values) or the whole vector. */
function gradientFor(block: SparseBlock | null, rows: Uint32Array | null, size: number, f16: boolean): { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number } {
  const n = rows && block ? size - (block.rows - rows.length) * block.width : size;
  const g = values(n);
  if (!f16) return { values: g, rows, scale: 1 };
  return { ...toHalves(g), rows };
}

async function main(): Promise<void> {
  const [endpoint, name, tokensPerS] = process.argv.slice(2) as [string, string, string];
  const speed = Number(tokensPerS);
  const log = logger(`cluster ${name}`);
  const { channel, welcome, routingId } = await join(endpoint, name, { timeoutS: 120, log });
  tuneHeapForMessages(welcome.layoutSize); // as a real worker does (../workers/worker.ts)
  const data = await openTrainingData(welcome.dataset);
  const layout = paramLayout(welcome.model);
  const block = sparseBlockOf(layout);
  const f16 = welcome.grad?.dtype === "fp16";
  const rowsPush = welcome.pull === "rows" || welcome.grad?.rows === true;
  const head = (kind: Kind, step: number, version: number) => ({ kind, runId: welcome.runId, step, paramVersion: version, slot: welcome.slot, layoutHash: welcome.layoutHash });
  const assembler = new ParamAssembler(welcome.layoutSize);
  // a sharded coordinator: the real worker's links to its shards (the bench runs without keys)
  const shards = new WorkerShards({ coordinator: endpoint, routingId, insecure: true, name, log, tel: NO_TELEMETRY }, welcome, rowsPush ? block : null, assembler,
    encode(head(Kind.Join, 0, 0), { name }), (shard) => log.warn(`coordinator shard ${shard} went away`));
  await channel.send(encode(head(Kind.Ready, 0, 0), { backend: "synthetic-gpu" }));
  const beat = setInterval(() => { void channel.send(encode(head(Kind.Heartbeat, 0, 0))).catch(() => {}); }, welcome.heartbeatMs);
  const timings: string[] = [];
  // a task's parameters as a real worker gets them (sharded row pull: the shards' pieces joined to ours)
  const hasParams = async (m: Message, task: number) => {
    if (!m.rows) return (assembler.paramsFor(m) ?? await assembler.waitFor(m.header.paramVersion, 60_000)) !== null;
    return (await shards.rowParams(m, task, welcome.layoutSize)) !== null;
  };
  for await (const { frames } of channel.messages()) {
    const recvAt = wallClock();
    const m = decode(frames, { maxBytes: welcome.maxBytes, from: "coordinator" });
    if (m.header.kind === Kind.Stop) break;
    if (m.header.kind === Kind.Params) { assembler.put(m, "coordinator"); continue; }
    if (m.header.kind === Kind.Dense) { shards.putDense(m, welcome.layoutSize); continue; }
    if (m.header.kind === Kind.Eval) {
      const body = readBody(m, Kind.Eval, "coordinator");
      const count = body.batches.reduce((n, i) => n + data.batch(body.split, i).size, 0);
      await channel.send(encode(head(Kind.EvalResult, m.header.step, m.header.paramVersion), { task: body.task, lossSum: 0.69 * count, correct: 0, count }));
      continue;
    }
    if (m.header.kind !== Kind.Assign) continue;
    const body = readBody(m, Kind.Assign, "coordinator");
    void channel.send(encode(head(Kind.Started, m.header.step, m.header.paramVersion), { task: body.task })).catch(() => {}); // as a real worker does
    if (!(await hasParams(m, body.task))) throw new Error(`no parameters for version ${m.header.paramVersion}`);
    const tStart = performance.now(); // the GPU starts once every piece of its parameters is here
    // the GPU's time: padded tokens at the engine's speed
    let padded = 0, samples = 0, tokens = 0;
    for (const i of body.batches) { const s = shapeOf(data, i); padded += s.padded; samples += s.samples; tokens += s.tokens; }
    const computeMs = (padded / speed) * 1000;
    const rows = rowsPush && block ? taskRows(data, body.batches, block.rows) : null;
    setImmediate(releaseMessages); // while the GPU computes, as a real worker does (../workers/worker.ts)
    await until(tStart + computeMs);
    // fp16: encoded once the gradient is out of the engine, on the CPU, as a real worker does
    let g = gradientFor(block, rows, welcome.layoutSize, f16 && !shards.any);
    const at = { step: m.header.step, version: m.header.paramVersion };
    // sharded: each shard's piece to it, as the real worker sends them (../workers/shards.ts)
    if (shards.any) g = (await shards.send({ rows, values: g.values as Float32Array }, f16, body.task, (p) => encode(head(Kind.Gradient, at.step, at.version), { task: body.task, gradScale: p.scale }, p.values, p.rows ?? undefined))).own;
    const sendAt = wallClock();
    await channel.send(encode(head(Kind.Gradient, at.step, at.version), { task: body.task, lossSum: 0.69 * samples, correct: 0, count: samples, tokens, seconds: computeMs / 1000, gradScale: g.scale }, g.values, g.rows ?? undefined));
    // kept until the run ends: writing (and the bench reading) a line a step would take CPU the round needs
    timings.push(JSON.stringify({ task: body.task, samples, computeMs, recvAt, sendAt }));
  }
  clearInterval(beat);
  process.stdout.write(timings.map((t) => t + "\n").join(""));
  channel.close();
  shards.close();
}

main().catch((err) => { process.stderr.write(`cluster worker: ${(err as Error).stack ?? err}\n`); process.exit(1); });
