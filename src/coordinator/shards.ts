// A sharded coordinator (--coordinator-shards K): the flat vector is cut into K slices; the coordinator
// (the leader) owns slice 0 and K − 1 shard processes own the others, so that no process receives all of
// the gradient bytes. The leader keeps everything else (membership, batches, deadlines, epochs, checkpoints).
//
// One step, with the messages that carry it:
//   worker → shard k        Gradient  {task} + slice k of its gradient (fp32 or fp16)   (shards first, then
//   worker → leader         Gradient  {task, loss, count, …} + slice 0                    the leader's slice)
//   leader → every shard    ShardReduce {step, tasks: [ids in task order], count}
//   shard → leader          ShardNorm  {sumsq of its slice of the mean, bad: [task ids with NaN/Inf or missing]}
//                           (any bad task: the leader skips it everywhere and asks again with the rest)
//   leader → every shard    ShardApply {version, scale, coef, lr}: the clip factor of the GLOBAL norm
//                           √(Σ_k sumsq_k), the same for every slice
//   every shard → workers   Params {offset} chunks of its slice of the new parameters (as the leader does)
// Workers connect to every shard (endpoints in Welcome), reassemble the slices, and run an Assign once the
// version is complete. Each shard sums the same tasks in the same order as one coordinator would, so a
// sharded run equals an unsharded one but for the order in which the norm's K partial sums are added.
//
// In the rows forms (row gradients, row pull: the default) every slice holds whole embedding rows
// (../protocol/slices.ts), and what crosses the wire for a slice is its part of the rows form:
//   worker → shard k        Gradient  {task} + the touched rows in slice k (local ids) and its dense values
//   leader → shard k        ShardPull {task, peer} + the task's rows in slice k, as it deals the task
//   shard k → that worker   Params {offset, task} + those rows' new values and the slice's dense values (Adam's
//                           dense part runs at ShardApply, a task's rows just before its piece goes out)
//   leader → every shard    ShardPull {finish}: the round's tasks are out, Adam over the slice's other rows
// The worker joins its task's pieces (the leader's Assign carries slice 0's) in slice order.
//
// Shard processes are children of the coordinator (same host, any free port): `imdb-train coordinator-shard`.
// Who may say what: the leader hands each child, over their IPC channel (never on the command line), a random
// routing id of its own and, when the run uses CURVE, a fresh server key pair and the keys to admit (the
// workers' client keys and a fresh key of the leader's). A shard takes control messages (ShardInit/Reduce/
// Apply/Fetch, Stop) from the leader's routing id only, and sums a task's slice only from the worker the
// leader names for that task: slices are keyed by (task, sender).
import type { ShardCliOptions } from "./command.js";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { logger } from "../output.js";
import { ConnectionError, TrainingError, UsageError, errorMessage } from "../errors.js";
import { Kind, encode, decode, checkGradient, nonFiniteGradient, messageLimitFor, kindName, type Message } from "../protocol/wire.js";
import { readBody, type Bodies, type ShardInitBody as InitBody, type ShardReduceBody as ReduceBody, type ShardApplyBody as ApplyBody, type ShardPullBody as PullBody } from "../protocol/bodies.js";
import { RouterChannel, DealerChannel, newCurveKeyPair, type CurveServerKeys } from "../transport/zmq/index.js";
import { randomBytes } from "node:crypto";
import { Counts } from "./limits.js";
import { StepArithmetic, PARAM_CHUNK, type GradPart } from "../optim/step.js";
import type { AdamOptions } from "../optim/adam.js";
import { childEnv } from "../children.js";
import { sliceBounds, type SliceBound } from "../protocol/slices.js";
import type { SparseBlock } from "../protocol/gradcodec.js";

export { sliceBounds };

const log = logger("shard");
const BIN = fileURLToPath(new URL("../../../bin/imdb-train.js", import.meta.url));
/** How long a shard waits for a task's slice that the leader already has. */
const SLICE_WAIT_MS = 30_000;

const sliceKey = (task: number, peer: string) => `${task}\u0000${peer}`;

// ---- the shard process ------------------------------------------------------------------------------------

/** What the leader tells a shard process before it binds (over IPC). */
export interface ShardConfig {
  /** The leader's routing id: control messages from any other peer are ignored. */
  leader: string;
  /** CURVE: the shard's server keys, admitting the workers' client keys and the leader's. */
  curve?: CurveServerKeys;
}

/** One shard: sums its slice of the gradients, takes part in the norm, applies Adam to its slice. */
export class ShardServer {
  private channel!: RouterChannel;
  private leader = "";
  private readonly ignored = new Counts(1024);
  private init: InitBody | null = null;
  private arith: StepArithmetic | null = null;
  private version = 0;
  private readonly workers = new Set<string>();
  /** Gradient slices by (task id, sender) of the step being summed, with waiters for late ones. */
  private slices = new Map<string, GradPart>();
  private waiters: (() => void)[] = [];
  private busy: Promise<void> = Promise.resolve();
  private stopped!: () => void;
  readonly done = new Promise<void>((r) => { this.stopped = r; });

  private maxBytes = 0;
  /** The slice's embedding rows (local offsets), when it holds some. */
  private block: SparseBlock | null = null;
  private get rowPull(): boolean { return this.init?.pull === "rows"; }

  async bind(endpoint: string, maxBytes: number, config: ShardConfig): Promise<string> {
    this.maxBytes = maxBytes;
    this.leader = config.leader;
    this.channel = await RouterChannel.bind(endpoint, { maxBytes, curve: config.curve });
    void this.loop();
    return this.channel.endpoint;
  }

  private async loop(): Promise<void> {
    for await (const { peer, frames } of this.channel.messages()) {
      let m: Message;
      try {
        m = decode(frames, { maxBytes: this.maxBytes, from: peer });
      } catch (err) {
        this.ignore(peer, errorMessage(err));
        continue;
      }
      // control messages run one after another (an Apply must finish before the next Reduce)
      const k = m.header.kind;
      if (k === Kind.Join) { this.workers.add(peer); if (!this.rowPull) this.busy = this.busy.then(() => this.sync(peer)); continue; }
      if (k === Kind.Gradient) {
        try { this.onSlice(peer, m); } catch (err) { log.warn(`ignored a gradient slice from ${peer}: ${errorMessage(err)}`); }
        continue;
      }
      if (k === Kind.Heartbeat || k === Kind.Leave) { if (k === Kind.Leave) this.workers.delete(peer); continue; }
      if (peer !== this.leader) { this.ignore(peer, `a ${kindName(k)} message, which only the coordinator may send`); continue; }
      if (k === Kind.Stop) { this.close(); return; }
      this.busy = this.busy.then(() => this.control(peer, m)).catch((err) => log.error(`shard: ${errorMessage(err)}`));
    }
  }

  /** A message dropped: logged the first three times per peer, then one in a hundred. */
  private ignore(peer: string, why: string): void {
    const n = this.ignored.hit(peer);
    if (n <= 3 || n % 100 === 0) log.warn(`ignored ${why} from ${peer}${n > 3 ? ` (${n} so far)` : ""}`);
  }

  private async control(peer: string, m: Message): Promise<void> {
    const k = m.header.kind;
    if (k === Kind.ShardInit) {
      const b = readBody(m, Kind.ShardInit, `leader ${peer}`);
      const n = b.length;
      if (b.block && (b.block.width === 0 || b.block.offset + b.block.rows * b.block.width > n)) throw new TrainingError(`ShardInit: an embedding block of ${b.block.rows} rows of ${b.block.width} at ${b.block.offset} does not fit a slice of ${n} values`);
      this.init = b;
      this.block = b.block ?? null;
      this.arith = new StepArithmetic(n, b.adam, m.payload.subarray(0, n), this.block);
      this.arith.adam.load({ m: m.payload.subarray(n, 2 * n), v: m.payload.subarray(2 * n, 3 * n), t: b.adam.t });
      this.version = b.version;
      log.info(`shard of run ${b.runId}: values [${b.offset}, ${b.offset + n}) of the parameters, version ${b.version}`);
      await this.reply(Kind.ShardNorm, { ready: true });
      if (!this.rowPull) for (const w of this.workers) await this.sync(w); // workers that connected before the leader did
      return;
    }
    if (!this.arith || !this.init) return;
    if (k === Kind.ShardReduce) await this.reduce(readBody(m, Kind.ShardReduce, "leader"));
    else if (k === Kind.ShardApply) await this.apply(readBody(m, Kind.ShardApply, "leader"));
    else if (k === Kind.ShardPull) await this.pull(readBody(m, Kind.ShardPull, "leader"), m.rows);
    else if (k === Kind.ShardFetch) {
      this.arith.finish();
      const a = this.arith, s = a.adam.state(), n = this.init.length;
      const all = new Float32Array(3 * n);
      all.set(a.params, 0); all.set(s.m, n); all.set(s.v, 2 * n);
      await this.reply(Kind.ShardState, { offset: this.init.offset, t: s.t, version: this.version }, all);
    }
  }

  private reply<K extends Kind>(kind: K, body: Bodies[K], payload?: Float32Array): Promise<void> {
    const i = this.init!;
    return this.channel.send(this.leader, encode({ kind, runId: i.runId, step: 0, paramVersion: this.version, slot: 0, layoutHash: i.layoutHash }, body, payload));
  }

  private onSlice(peer: string, m: Message): void {
    const i = this.init;
    if (!i) return;
    const from = `worker ${peer} (shard [${i.offset}, …))`;
    const body = readBody(m, Kind.Gradient, from);
    const bad = checkGradient(m, { runId: i.runId, step: m.header.step, paramVersion: this.version, layoutHash: i.layoutHash, size: i.length, sparse: this.block }, from, { finite: false, gradScale: body.gradScale });
    if (bad) { this.ignore(peer, `a gradient slice: ${bad.message}`); return; }
    this.slices.set(sliceKey(body.task, peer), { values: m.half ?? m.payload, scale: m.half ? 1 / (body.gradScale ?? 1) : 1, rows: m.rows });
    for (const w of this.waiters.splice(0)) w();
  }

  private async reduce(b: ReduceBody): Promise<void> {
    const a = this.arith!;
    // the slice of each task from the worker the leader names for it, in the leader's task order
    const keys = b.tasks.map((t, i) => sliceKey(t, b.peers[i] ?? ""));
    const until = Date.now() + SLICE_WAIT_MS;
    while (keys.some((k) => !this.slices.has(k)) && Date.now() < until) {
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
    const missing = b.tasks.filter((_, i) => !this.slices.has(keys[i]!));
    if (missing.length) log.warn(`step ${b.step}: no slice for task(s) ${missing.join(", ")} within ${SLICE_WAIT_MS / 1000} s`);
    a.reset();
    for (const k of keys) { const p = this.slices.get(k); if (p) a.add(p); }
    let sumsq = b.count > 0 ? a.sumsq(1 / b.count) : 0;
    const bad = [...missing];
    if (!Number.isFinite(sumsq)) {
      b.tasks.forEach((t, i) => { const p = this.slices.get(keys[i]!); if (p && nonFiniteGradient(p.values, "")) bad.push(t); });
      sumsq = NaN;
    }
    await this.reply(Kind.ShardNorm, { step: b.step, sumsq, bad });
  }

  private async apply(b: ApplyBody): Promise<void> {
    const a = this.arith!, i = this.init!;
    // slices that arrive from now on belong to the new version's step
    this.version = b.version;
    this.slices = new Map();
    const peers = [...this.workers];
    if (b.skip) { // no usable gradient: the same parameters under the new version
      if (!this.rowPull) for (const p of peers) await this.sync(p);
      return;
    }
    a.adam.o.lr = b.lr;
    if (this.rowPull) { // the dense values now; each task's rows when the leader names them (pull), the rest at finish
      a.begin(b.scale, b.coef);
      return;
    }
    for (const c of a.update(b.scale, b.coef, i.chunk)) {
      await Promise.all(peers.map((p) => this.sendChunk(p, b.version, c.params, c.start, c.end)));
    }
  }

  /** Row pull: the slice's piece of one task's parameters — its dense values and the task's rows in it, the
   *  newest values (Adam finishes those rows first) — to the task's worker; or, with `finish`, Adam over every
   *  other row of the slice (the leader says so once a round's tasks are out). */
  private async pull(b: PullBody, rows: Uint32Array | null): Promise<void> {
    const a = this.arith!, i = this.init!, blk = this.block;
    if (b.finish) { a.finish(); return; }
    if (b.task === undefined || b.peer === undefined) return;
    const want = rows ?? new Uint32Array(0);
    for (let k = 0; k < want.length; k++) {
      if (!blk || want[k]! >= blk.rows || (k > 0 && want[k]! <= want[k - 1]!)) { log.warn(`ignored a pull for task ${b.task}: row ${want[k]} out of range or not ascending`); return; }
    }
    let payload: Float32Array;
    if (blk) {
      a.ensureRows(want);
      const p = a.readable, E = blk.width, end = blk.offset + blk.rows * E;
      payload = new Float32Array(i.length - (blk.rows - want.length) * E);
      payload.set(p.subarray(0, blk.offset), 0);
      for (let k = 0; k < want.length; k++) payload.set(p.subarray(blk.offset + want[k]! * E, blk.offset + (want[k]! + 1) * E), blk.offset + k * E);
      payload.set(p.subarray(end), blk.offset + want.length * E);
    } else {
      payload = Float32Array.from(a.readable); // a slice of dense values only (after its Adam's begin: final)
    }
    try {
      await this.channel.send(b.peer, encode({ kind: Kind.Params, runId: i.runId, step: 0, paramVersion: this.version, slot: 0, layoutHash: i.layoutHash }, { offset: i.offset, task: b.task }, payload, want));
    } catch (err) {
      if (err instanceof ConnectionError) { this.workers.delete(b.peer); return; }
      throw err;
    }
  }

  /** The current parameters of this slice to one worker (it just connected). */
  private async sync(peer: string): Promise<void> {
    const a = this.arith, i = this.init;
    if (!a || !i) return;
    for (let s = 0; s < i.length; s += i.chunk) await this.sendChunk(peer, this.version, a.params, s, Math.min(i.length, s + i.chunk));
  }

  private async sendChunk(peer: string, version: number, params: Float32Array, start: number, end: number): Promise<void> {
    const i = this.init!;
    try {
      await this.channel.send(peer, encode({ kind: Kind.Params, runId: i.runId, step: 0, paramVersion: version, slot: 0, layoutHash: i.layoutHash }, { offset: i.offset + start }, params.subarray(start, end)));
    } catch (err) {
      if (err instanceof ConnectionError) { this.workers.delete(peer); return; }
      throw err;
    }
  }

  close(): void {
    this.channel?.close();
    this.stopped();
  }
}

/** `imdb-train coordinator-shard`: serve one shard until the leader says Stop (or the parent goes away). Its
 *  configuration (leader id, keys) comes over the IPC channel of the coordinator that started it. */
export async function shardCommand(o: ShardCliOptions): Promise<number> {
  if (typeof process.send !== "function") throw new UsageError("coordinator-shard is started by `coordinator --coordinator-shards k`, which hands it its keys; it does not run on its own");
  const config = await new Promise<ShardConfig>((res) => process.once("message", (m: ShardConfig) => res(m)));
  const s = new ShardServer();
  const endpoint = await s.bind(o.bind, o.maxBytes, config);
  process.stdout.write(JSON.stringify({ endpoint }) + "\n");
  process.once("disconnect", () => s.close());
  process.once("SIGTERM", () => s.close());
  process.once("SIGINT", () => s.close());
  await s.done;
  return 0;
}

// ---- the leader's side ------------------------------------------------------------------------------------

/** The leader's links to its shard processes (which it starts). */
export class ShardLinks {
  /** `serverKeys`: each shard's CURVE public key (workers connect with it), null without CURVE. */
  private constructor(private readonly kids: ChildProcess[], private readonly links: DealerChannel[], readonly endpoints: string[], readonly bounds: SliceBound[], readonly serverKeys: (string | null)[]) {}

  /** Start k − 1 shard processes next to the coordinator (binding on `host`), one slice each; with `curve`,
   *  each shard is a CURVE server (a fresh key pair) admitting the workers' keys and a fresh key of ours. */
  static async start(bounds: SliceBound[], host: string, size: number, curve?: CurveServerKeys): Promise<ShardLinks> {
    const k = bounds.length;
    const maxBytes = messageLimitFor(3 * size); // ShardInit/ShardState carry params, m and v of a slice
    const kids: ChildProcess[] = [];
    const endpoints: string[] = [];
    const leader = `leader-${randomBytes(16).toString("hex")}`; // unguessable: only we can give orders
    const own = curve ? newCurveKeyPair() : null;
    const serverKeys: (string | null)[] = [];
    try {
      for (let i = 1; i < k; i++) {
        const p = spawn(process.execPath, [BIN, "coordinator-shard", "--bind", `tcp://${host}:*`, "--max-bytes", String(maxBytes)], { stdio: ["ignore", "pipe", "inherit", "ipc"], env: childEnv() });
        kids.push(p);
        const server = curve ? newCurveKeyPair() : null;
        serverKeys.push(server?.publicKey ?? null);
        const config: ShardConfig = { leader, curve: server ? { secretKey: server.secretKey, clients: [...curve!.clients, { name: "coordinator", publicKey: own!.publicKey }] } : undefined };
        p.send(config);
        endpoints.push(await new Promise<string>((res, rej) => {
          let out = "";
          const t = setTimeout(() => rej(new TrainingError(`coordinator shard ${i} did not start within 30 s`)), 30_000);
          p.stdout!.on("data", (d) => {
            out += String(d);
            const line = out.split("\n").find((l) => l.startsWith("{"));
            if (line) { clearTimeout(t); res(String((JSON.parse(line) as { endpoint: string }).endpoint)); }
          });
          p.once("exit", (code) => { clearTimeout(t); rej(new TrainingError(`coordinator shard ${i} exited with ${code} before it listened`)); });
        }));
      }
    } catch (err) {
      for (const p of kids) p.kill("SIGKILL");
      throw err;
    }
    const links = endpoints.map((e, i) => DealerChannel.connect(e, leader, {
      maxBytes, curve: own ? { serverKey: serverKeys[i]!, publicKey: own.publicKey, secretKey: own.secretKey } : undefined,
    }));
    log.info(`${k - 1} coordinator shard(s) at ${endpoints.join(", ")}${curve ? " (CURVE)" : ""}: slices ${bounds.map((b) => `[${b.offset}, ${b.offset + b.length})`).join(" ")}`);
    return new ShardLinks(kids, links, endpoints, bounds, serverKeys);
  }

  private async ask(i: number, frames: Buffer[], want: Kind): Promise<Message> {
    const l = this.links[i]!;
    await l.send(frames);
    for (;;) {
      const f = await l.receive(120_000);
      if (!f) throw new TrainingError(`coordinator shard ${i + 1} (${this.endpoints[i]}) did not answer within 120 s`);
      const m = decode(f, { maxBytes: 1 << 30, from: `shard ${i + 1}` });
      if (m.header.kind === want) return m;
    }
  }

  private head(kind: Kind, h: { runId: number; layoutHash: string; version: number }) {
    return { kind, runId: h.runId, step: 0, paramVersion: h.version, slot: 0, layoutHash: h.layoutHash };
  }

  /** Hand every shard its slice of the parameters and of Adam's state. */
  async init(h: { runId: number; layoutHash: string; version: number }, adam: AdamOptions, state: { params: Float32Array; m: Float32Array; v: Float32Array; t: number }, rows: { blocks: (SparseBlock | null)[]; pull: boolean }, chunk = PARAM_CHUNK): Promise<void> {
    await Promise.all(this.links.map((_, i) => {
      const b = this.bounds[i + 1]!, n = b.length;
      const all = new Float32Array(3 * n);
      all.set(state.params.subarray(b.offset, b.offset + n), 0);
      all.set(state.m.subarray(b.offset, b.offset + n), n);
      all.set(state.v.subarray(b.offset, b.offset + n), 2 * n);
      const block = rows.blocks[i + 1] ?? undefined;
      const body: InitBody = { runId: h.runId, offset: b.offset, length: n, layoutHash: h.layoutHash, adam: { ...adam, t: state.t }, version: h.version, chunk, block, pull: rows.pull ? "rows" : "dense" };
      return this.ask(i, encode(this.head(Kind.ShardInit, h), body, all), Kind.ShardNorm);
    }));
  }

  /** Every shard sums `tasks` (in this order); their squared norms in shard order, and the bad tasks. */
  async reduce(h: { runId: number; layoutHash: string; version: number }, b: ReduceBody): Promise<{ sumsq: number[]; bad: number[] }> {
    const r = await Promise.all(this.links.map((_, i) => this.ask(i, encode(this.head(Kind.ShardReduce, h), b), Kind.ShardNorm)));
    const bodies = r.map((m, i) => readBody(m, Kind.ShardNorm, `shard ${i + 1}`));
    return { sumsq: bodies.map((x) => x.sumsq ?? NaN), bad: [...new Set(bodies.flatMap((x) => x.bad ?? []))] };
  }

  async apply(h: { runId: number; layoutHash: string; version: number }, b: ApplyBody): Promise<void> {
    await Promise.all(this.links.map((l) => l.send(encode(this.head(Kind.ShardApply, h), b))));
  }

  /** Row pull: shard i sends `peer` its piece of task `task`'s parameters (`rows`: the task's rows in its
   *  slice, local ids). Not awaited by the caller beyond the queueing: the link keeps the order. */
  pull(h: { runId: number; layoutHash: string; version: number }, i: number, task: number, peer: string, rows: Uint32Array): Promise<void> {
    return this.links[i]!.send(encode(this.head(Kind.ShardPull, h), { task, peer }, undefined, rows));
  }

  /** Row pull: every shard finishes Adam over its slice's other rows (a round's tasks are out). */
  async finish(h: { runId: number; layoutHash: string; version: number }): Promise<void> {
    await Promise.all(this.links.map((l) => l.send(encode(this.head(Kind.ShardPull, h), { finish: true }))));
  }

  /** Every shard's slice of the parameters and of Adam's moments, written into full-size arrays. */
  async fetch(h: { runId: number; layoutHash: string; version: number }, into: { params: Float32Array; m: Float32Array; v: Float32Array }): Promise<void> {
    const r = await Promise.all(this.links.map((_, i) => this.ask(i, encode(this.head(Kind.ShardFetch, h)), Kind.ShardState)));
    r.forEach((m, i) => {
      const b = this.bounds[i + 1]!, n = b.length;
      into.params.set(m.payload.subarray(0, n), b.offset);
      into.m.set(m.payload.subarray(n, 2 * n), b.offset);
      into.v.set(m.payload.subarray(2 * n, 3 * n), b.offset);
    });
  }

  async close(h: { runId: number; layoutHash: string; version: number }): Promise<void> {
    await Promise.all(this.links.map((l) => l.send(encode(this.head(Kind.Stop, h))).catch(() => {})));
    await new Promise((r) => setTimeout(r, 50));
    for (const l of this.links) l.close();
    await Promise.all(this.kids.map((p) => new Promise((r) => {
      if (p.exitCode !== null) return r(null);
      const t = setTimeout(() => p.kill("SIGKILL"), 3000);
      p.once("exit", () => { clearTimeout(t); r(null); });
    })));
  }
}
