// One shard of a sharded coordinator, as a process: `imdb-train coordinator-shard`, a child of the coordinator
// or (with --nats) on its own host. What the shards do, and the messages between them, the leader and the
// workers: ./shards.ts. Its two sockets: the workers' (Join, Gradient, Heartbeat, Leave in; Params out) and the
// control socket (the leader's messages only).
import type { ShardCliOptions } from "./command.js";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { logger } from "../output.js";
import { ConnectionError, TrainingError, UsageError, errorMessage } from "../errors.js";
import { Kind, encode, decode, checkGradient, nonFiniteGradient, kindName, type Message } from "../protocol/wire.js";
import { readBody, type Bodies, type ShardInitBody as InitBody, type ShardReduceBody as ReduceBody, type ShardApplyBody as ApplyBody, type ShardPullBody as PullBody } from "../protocol/bodies.js";
import { RouterChannel, type CurveServerKeys } from "../transport/zmq/index.js";
import { Counts } from "./limits.js";
import { StepArithmetic, type GradPart } from "../optim/step.js";
import { firstBadRow, gatherRows, type SparseBlock } from "../protocol/gradcodec.js";
import { tuneHeapForMessages, releaseMessages } from "../heap.js";

const log = logger("shard");
/** How long a shard waits for a task's slice that the leader already has. */
const SLICE_WAIT_MS = 30_000;

const sliceKey = (task: number, peer: string) => `${task}\u0000${peer}`;

// ---- the shard process ------------------------------------------------------------------------------------

/** How a shard is configured before it binds: by the leader over IPC (a child), or by its own command line. */
export interface ShardConfig {
  /** The leader's routing id on the control socket: control messages from any other peer are ignored. Unset (a
   *  shard started on its own): the peer whose ShardInit comes first — under CURVE the control socket admits
   *  the coordinator's key only. */
  leader?: string;
  /** CURVE: the workers' socket's server keys, admitting the workers' client keys. */
  curve?: CurveServerKeys;
  /** CURVE: the control socket's server keys, admitting the leader's key only. */
  controlCurve?: CurveServerKeys;
  /** A shard on its own: once initialised, a leader silent this long (ms; it sends a Heartbeat every second)
   *  is gone, and the shard ends this run. */
  leaderTimeoutMs?: number;
}

/** A leader's Heartbeat to its shards, ms. */
export const LEADER_HEARTBEAT_MS = 1000;

/** One shard: sums its slice of the gradients, takes part in the norm, applies Adam to its slice. It has two
 *  sockets: the workers' (Join, Gradient, Heartbeat, Leave in; Params out) and the leader's (control). */
export class ShardServer {
  private channel!: RouterChannel;
  private controlChannel!: RouterChannel;
  private leader: string | undefined;
  private heardLeader = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly ignored = new Counts(1024);
  private init: InitBody | null = null;
  private arith: StepArithmetic | null = null;
  private version = 0;
  private readonly workers = new Set<string>();
  /** Pieces for workers whose Join has not come yet (their connection may still be in its handshake). */
  private readonly parked = new Map<string, Buffer[][]>();
  /** Gradient slices by (task id, sender) of the step being summed, with waiters for late ones. */
  private slices = new Map<string, GradPart>();
  private waiters: (() => void)[] = [];
  private busy: Promise<void> = Promise.resolve();
  private stopped!: () => void;
  readonly done = new Promise<void>((r) => { this.stopped = r; });
  private begun!: () => void;
  /** Resolves when a leader has handed this shard its slice. */
  readonly started = new Promise<void>((r) => { this.begun = r; });

  private maxBytes = 0;
  /** The slice's embedding rows (local offsets), when it holds some. */
  private block: SparseBlock | null = null;
  private get rowPull(): boolean { return this.init?.pull === "rows"; }

  /** Bind the workers' socket on `endpoint` and the control socket on the same host (any free port). */
  async bind(endpoint: string, maxBytes: number, config: ShardConfig, controlEndpoint?: string): Promise<{ endpoint: string; control: string }> {
    this.maxBytes = maxBytes;
    this.leader = config.leader;
    this.channel = await RouterChannel.bind(endpoint, { maxBytes, curve: config.curve });
    const host = /^(tcp:\/\/.*):[^:]*$/.exec(endpoint)?.[1] ?? "tcp://127.0.0.1";
    try {
      this.controlChannel = await RouterChannel.bind(controlEndpoint ?? `${host}:*`, { maxBytes, curve: config.controlCurve });
    } catch (err) {
      this.channel.close();
      throw err;
    }
    void this.loop();
    void this.controlLoop();
    if (config.leaderTimeoutMs) {
      const limit = config.leaderTimeoutMs;
      this.watchdog = setInterval(() => {
        if (this.init && Date.now() - this.heardLeader > limit) {
          log.warn(`the coordinator of run ${this.init.runId} said nothing for ${(limit / 1000).toFixed(0)} s: it is gone; this shard's run ends`);
          this.close();
        }
      }, 500);
    }
    return { endpoint: this.channel.endpoint, control: this.controlChannel.endpoint };
  }

  /** A socket's messages, decoded (one that does not decode is dropped, and logged as ignored). */
  private async *decoded(ch: RouterChannel): AsyncGenerator<{ peer: string; m: Message }> {
    for await (const { peer, frames } of ch.messages()) {
      try {
        yield { peer, m: decode(frames, { maxBytes: this.maxBytes, from: peer }) };
      } catch (err) {
        this.ignore(peer, errorMessage(err));
      }
    }
  }

  /** The workers' socket: joins, gradient slices, heartbeats and goodbyes. */
  private async loop(): Promise<void> {
    for await (const { peer, m } of this.decoded(this.channel)) {
      const k = m.header.kind;
      if (k === Kind.Join) {
        this.workers.add(peer);
        if (!this.rowPull) this.busy = this.busy.then(() => this.sync(peer));
        const waiting = this.parked.get(peer);
        this.parked.delete(peer);
        for (const f of waiting ?? []) void this.toWorker(peer, f).catch(() => {});
        continue;
      }
      if (k === Kind.Gradient) {
        try { this.onSlice(peer, m); } catch (err) { log.warn(`ignored a gradient slice from ${peer}: ${errorMessage(err)}`); }
        continue;
      }
      if (k === Kind.Heartbeat || k === Kind.Leave) { if (k === Kind.Leave) this.workers.delete(peer); continue; }
      this.ignore(peer, `a ${kindName(k)} message on the workers' socket, which only the coordinator may send, on its own`);
    }
  }

  /** The control socket: the leader's messages, which run one after another (an Apply must finish before the
   *  next Reduce). */
  private async controlLoop(): Promise<void> {
    for await (const { peer, m } of this.decoded(this.controlChannel)) {
      const k = m.header.kind;
      if (this.leader === undefined && k === Kind.ShardInit) this.leader = peer;
      if (peer !== this.leader) { this.ignore(peer, `a ${kindName(k)} message, which only the coordinator may send`); continue; }
      this.heardLeader = Date.now();
      if (k === Kind.Heartbeat) continue;
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
      tuneHeapForMessages(n);
      this.arith = new StepArithmetic(n, b.adam, m.payload.subarray(0, n), this.block);
      this.arith.adam.load({ m: m.payload.subarray(n, 2 * n), v: m.payload.subarray(2 * n, 3 * n), t: b.adam.t });
      this.version = b.version;
      log.info(`shard of run ${b.runId}: values [${b.offset}, ${b.offset + n}) of the parameters${this.block ? ` (embedding rows ${this.block.rows} from local ${this.block.offset})` : ""}, version ${b.version}`);
      this.heardLeader = Date.now();
      this.begun();
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

  /** The header of what this shard sends in its run (at `version`, the current one unless given). */
  private head(kind: Kind, version = this.version) {
    const i = this.init!;
    return { kind, runId: i.runId, step: 0, paramVersion: version, slot: 0, layoutHash: i.layoutHash };
  }

  private reply<K extends Kind>(kind: K, body: Bodies[K], payload?: Float32Array): Promise<void> {
    return this.controlChannel.send(this.leader!, encode(this.head(kind), body, payload));
  }

  /** A message to a worker; one that is no longer connected is forgotten. */
  private async toWorker(peer: string, frames: Buffer[]): Promise<void> {
    try {
      await this.channel.send(peer, frames);
    } catch (err) {
      if (err instanceof ConnectionError) { this.workers.delete(peer); return; }
      throw err;
    }
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
    releaseMessages(); // the step's slices are applied (../heap.ts)
  }

  /** Row pull: the slice's piece of one task's parameters — its dense values and the task's rows in it, the
   *  newest values (Adam finishes those rows first) — to the task's worker; or, with `finish`, Adam over every
   *  other row of the slice (the leader says so once a round's tasks are out). */
  private async pull(b: PullBody, rows: Uint32Array | null): Promise<void> {
    const a = this.arith!, i = this.init!, blk = this.block;
    if (b.finish) { a.finish(); releaseMessages(); return; } // the round's tasks are out (../heap.ts)
    if (b.task === undefined || b.peer === undefined) return;
    const want = rows ?? new Uint32Array(0);
    const bad = firstBadRow(want, blk?.rows ?? 0);
    if (bad >= 0) { log.warn(`ignored a pull for task ${b.task}: row ${want[bad]} out of range or not ascending`); return; }
    a.ensureRows(want);
    // a slice of dense values only is copied whole (after its Adam's begin it is final)
    const payload = blk ? gatherRows(a.readable, i.length, blk, want) : Float32Array.from(a.readable);
    const frames = encode(this.head(Kind.Params), { offset: i.offset, task: b.task }, payload, want);
    if (!this.workers.has(b.peer)) { // its Join is still on the way: the piece waits for it (a few, a few peers)
      const q = this.parked.get(b.peer) ?? [];
      if (q.length >= 8) q.shift();
      q.push(frames);
      this.parked.set(b.peer, q);
      if (this.parked.size > 256) this.parked.delete(this.parked.keys().next().value!);
      return;
    }
    await this.toWorker(b.peer, frames);
  }

  /** The current parameters of this slice to one worker (it just connected). */
  private async sync(peer: string): Promise<void> {
    const a = this.arith, i = this.init;
    if (!a || !i) return;
    for (let s = 0; s < i.length; s += i.chunk) await this.sendChunk(peer, this.version, a.params, s, Math.min(i.length, s + i.chunk));
  }

  private sendChunk(peer: string, version: number, params: Float32Array, start: number, end: number): Promise<void> {
    return this.toWorker(peer, encode(this.head(Kind.Params, version), { offset: this.init!.offset + start }, params.subarray(start, end)));
  }

  close(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.channel?.close();
    this.controlChannel?.close();
    this.stopped();
  }
}

/** `imdb-train coordinator-shard`: a child of a coordinator (its configuration — leader id, keys — comes over
 *  the IPC channel; it serves until Stop or the parent goes away), or with --nats a shard on its own that serves
 *  one coordinator's run after another until a signal stops it. */
export async function shardCommand(o: ShardCliOptions): Promise<number> {
  if (o.nats) return await standaloneShard(o, o.nats);
  if (typeof process.send !== "function") throw new UsageError("coordinator-shard on its own needs --nats <url> (the cluster plane, where a coordinator started with --coordinator-shards k --remote-shards finds it); without it, it is started by `coordinator --coordinator-shards k`");
  const config = await new Promise<ShardConfig>((res) => process.once("message", (m: ShardConfig) => res(m)));
  const s = new ShardServer();
  const bound = await s.bind(o.bind, o.maxBytes, config, o.controlBind);
  process.stdout.write(JSON.stringify(bound) + "\n");
  process.once("disconnect", () => s.close());
  process.once("SIGTERM", () => s.close());
  process.once("SIGINT", () => s.close());
  await s.done;
  return 0;
}

async function standaloneShard(o: ShardCliOptions, nats: string): Promise<number> {
  // credentials first: a bad key file or NATS credential stops the shard before it binds anything
  const { loadCurveServerKeys, natsAuthFrom, CURVE_KEYS_ENV } = await import("../security/keys.js");
  const { requireKeysOffMachine } = await import("../security/policy.js");
  const { shardPlane, dialable } = await import("../transport/plane.js");
  const keyDir = o.curveKeys ?? process.env[CURVE_KEYS_ENV];
  const curve = keyDir ? loadCurveServerKeys(keyDir) : undefined;
  if (curve && !curve.publicKey) throw new UsageError(`a coordinator shard holds the coordinator's key pair: server.pub is missing from ${keyDir}`);
  for (const e of [o.bind, o.controlBind ?? o.bind]) requireKeysOffMachine({ endpoint: e, keys: curve !== undefined, insecure: o.insecure, role: "coordinator" });
  const config: ShardConfig = {
    curve,
    controlCurve: curve ? { secretKey: curve.secretKey, clients: [{ name: "server.pub (the coordinator)", publicKey: curve.publicKey! }] } : undefined,
    leaderTimeoutMs: 10 * LEADER_HEARTBEAT_MS,
  };
  const plane = await shardPlane(nats, natsAuthFrom(o));
  let stopping = false, current: ShardServer | null = null;
  const stop = () => { stopping = true; current?.close(); };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  try {
    while (!stopping) {
      const s = (current = new ShardServer());
      const bound = await s.bind(o.bind, o.maxBytes, config, o.controlBind);
      plane.announce({ id: randomBytes(8).toString("hex"), endpoint: dialable(bound.endpoint), control: dialable(bound.control), host: hostname() });
      await Promise.race([s.started, s.done]);
      await plane.withdraw();
      await s.done;
      if (!stopping) log.info("the run is over: announcing this shard again for the next one");
    }
  } finally {
    await plane.close();
  }
  return 0;
}
