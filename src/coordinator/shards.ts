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
// The shard processes (`imdb-train coordinator-shard`, ./shard-server.ts) are children of the coordinator on its
// host, or with --remote-shards processes on other hosts (the workers') that announced themselves on NATS. A
// shard has two sockets: the workers' and a control socket for the leader. Who may say what: a child gets, over
// its IPC channel (never on the command line), the leader's random routing id and, with CURVE, a fresh server
// key pair — its workers' socket admits the workers' keys, its control socket only a fresh key of the leader's.
// A shard on its own holds the coordinator's key pair and admits only server.pub on its control socket. Either
// way a shard takes control messages (ShardInit/Reduce/Apply/Pull/Fetch, Stop) from the leader only, and sums a
// task's slice only from the worker the leader names for that task: slices are keyed by (task, sender).
//
// A shard's slice of Adam's moments lives only there: a shard whose connection drops ends the run (ShardLinks
// below), and the last checkpoint — every slice gathered — is what the run resumes from.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { logger } from "../output.js";
import { TrainingError, UsageError } from "../errors.js";
import { Kind, encode, decode, messageLimitFor, type Message } from "../protocol/wire.js";
import { readBody, type ShardInitBody as InitBody, type ShardReduceBody as ReduceBody, type ShardApplyBody as ApplyBody } from "../protocol/bodies.js";
import { DealerChannel, newCurveKeyPair, type CurveServerKeys } from "../transport/zmq/index.js";
import { PARAM_CHUNK } from "../optim/step.js";
import type { AdamOptions } from "../optim/adam.js";
import { childEnv } from "../children.js";
import { sliceBounds, type SliceBound } from "../protocol/slices.js";
import type { SparseBlock } from "../protocol/gradcodec.js";
import { LEADER_HEARTBEAT_MS, type ShardConfig } from "./shard-server.js";

export { sliceBounds };

const log = logger("shard");
const BIN = fileURLToPath(new URL("../../../bin/imdb-train.js", import.meta.url));

// ---- the leader's side ------------------------------------------------------------------------------------

/** Where a shard started on its own listens (its announcement on NATS): the workers' and the control socket. */
export interface RemoteShard { endpoint: string; control: string }

/** The leader's links to its shards: child processes it starts, or shards on other hosts (`coordinator-shard
 *  --nats`). A shard that goes away takes its slice's Adam state with it: every question to the shards fails
 *  from then on, naming it, and the run stops (its last checkpoint holds the whole state). */
export class ShardLinks {
  private lost: TrainingError | null = null;
  private loseNow: (err: TrainingError) => void = () => {};
  private readonly lostSignal = new Promise<never>((_, rej) => { this.loseNow = rej; });
  private beat: NodeJS.Timeout | undefined;
  /** Called once when a shard is lost (the coordinator stops the step under way). */
  onLost: ((err: TrainingError) => void) | null = null;

  /** `endpoints`: the workers' sockets (in the Welcome); `serverKeys`: each shard's CURVE public key (workers
   *  connect with it), null without CURVE. */
  private constructor(private readonly kids: ChildProcess[], private readonly links: DealerChannel[], readonly endpoints: string[], readonly bounds: SliceBound[], readonly serverKeys: (string | null)[], readonly remote: boolean) {
    this.lostSignal.catch(() => {});
  }

  /** Start k − 1 shard processes next to the coordinator (binding on `host`), one slice each; with `curve`,
   *  each shard is a CURVE server (a fresh key pair) admitting the workers' keys on its workers' socket and a
   *  fresh key of ours, only, on its control socket. */
  static async start(bounds: SliceBound[], host: string, size: number, curve?: CurveServerKeys): Promise<ShardLinks> {
    const k = bounds.length;
    const maxBytes = messageLimitFor(3 * size); // ShardInit/ShardState carry params, m and v of a slice
    const kids: ChildProcess[] = [];
    const bound: RemoteShard[] = [];
    const leader = `leader-${randomBytes(16).toString("hex")}`; // unguessable: only we can give orders
    const own = curve ? newCurveKeyPair() : null;
    const serverKeys: (string | null)[] = [];
    try {
      for (let i = 1; i < k; i++) {
        const p = spawn(process.execPath, [BIN, "coordinator-shard", "--bind", `tcp://${host}:*`, "--max-bytes", String(maxBytes)], { stdio: ["ignore", "pipe", "inherit", "ipc"], env: childEnv() });
        kids.push(p);
        const server = curve ? newCurveKeyPair() : null;
        serverKeys.push(server?.publicKey ?? null);
        const config: ShardConfig = {
          leader,
          curve: server ? { secretKey: server.secretKey, clients: curve!.clients } : undefined,
          controlCurve: server ? { secretKey: server.secretKey, clients: [{ name: "coordinator", publicKey: own!.publicKey }] } : undefined,
        };
        p.send(config);
        bound.push(await new Promise<RemoteShard>((res, rej) => {
          let out = "";
          const t = setTimeout(() => rej(new TrainingError(`coordinator shard ${i} did not start within 30 s`)), 30_000);
          p.stdout!.on("data", (d) => {
            out += String(d);
            const line = out.split("\n").find((l) => l.startsWith("{"));
            if (line) { clearTimeout(t); res(JSON.parse(line) as RemoteShard); }
          });
          p.once("exit", (code) => { clearTimeout(t); rej(new TrainingError(`coordinator shard ${i} exited with ${code} before it listened`)); });
        }));
      }
    } catch (err) {
      for (const p of kids) p.kill("SIGKILL");
      throw err;
    }
    const links = bound.map((b, i) => DealerChannel.connect(b.control, leader, {
      maxBytes, curve: own ? { serverKey: serverKeys[i]!, publicKey: own.publicKey, secretKey: own.secretKey } : undefined,
    }));
    log.info(`${k - 1} coordinator shard(s) at ${bound.map((b) => b.endpoint).join(", ")}${curve ? " (CURVE)" : ""}: slices ${bounds.map((b) => `[${b.offset}, ${b.offset + b.length})`).join(" ")}`);
    return new ShardLinks(kids, links, bound.map((b) => b.endpoint), bounds, serverKeys, false);
  }

  /** Shards started on their own (on the workers' hosts), slice i + 1 to `shards[i]`. With `curve`, they hold
   *  the coordinator's server key pair: workers connect to them with server.pub, and we to their control
   *  sockets with the same pair, which is all those admit. */
  static connect(bounds: SliceBound[], shards: RemoteShard[], size: number, curve?: CurveServerKeys): ShardLinks {
    if (curve && !curve.publicKey) throw new UsageError("shards on other hosts need the coordinator's public key too: server.pub in the --curve-keys directory");
    const maxBytes = messageLimitFor(3 * size);
    const leader = `leader-${randomBytes(16).toString("hex")}`;
    const keys = curve ? { serverKey: curve.publicKey!, publicKey: curve.publicKey!, secretKey: curve.secretKey } : undefined;
    const links = shards.map((sh) => DealerChannel.connect(sh.control, leader, { maxBytes, curve: keys }));
    log.info(`${shards.length} coordinator shard(s) on other hosts at ${shards.map((b) => b.endpoint).join(", ")}${curve ? " (CURVE)" : ""}: slices ${bounds.map((b) => `[${b.offset}, ${b.offset + b.length})`).join(" ")}`);
    return new ShardLinks([], links, shards.map((sh) => sh.endpoint), bounds, shards.map(() => curve?.publicKey ?? null), true);
  }

  /** From now on a shard whose connection drops is lost (called once every shard holds its slice). */
  private watch(): void {
    // a shard on its own ends its run when we fall silent: a Heartbeat every second while nothing else goes
    if (this.remote) this.beat = setInterval(() => { for (const x of this.links) void x.send(encode({ kind: Kind.Heartbeat, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" })).catch(() => {}); }, LEADER_HEARTBEAT_MS);
    this.links.forEach((l, i) => {
      l.onDisconnect = () => {
        if (this.lost) return;
        this.lost = new TrainingError(`coordinator shard ${i + 1} (${this.endpoints[i]}) went away: the Adam state of its slice since the last checkpoint went with it, so the run stops here. The last checkpoint holds the whole state: start the shard again and resume (--auto-resume, or --resume <out>/checkpoints)`);
        this.loseNow(this.lost);
        this.onLost?.(this.lost);
      };
    });
  }

  private async ask(i: number, frames: Buffer[], want: Kind, timeoutMs = 120_000): Promise<Message> {
    if (this.lost) throw this.lost;
    return await Promise.race([this.askOne(i, frames, want, timeoutMs), this.lostSignal]);
  }

  private async askOne(i: number, frames: Buffer[], want: Kind, timeoutMs: number): Promise<Message> {
    const l = this.links[i]!;
    await l.send(frames);
    for (;;) {
      const f = await l.receive(timeoutMs);
      if (!f) throw new TrainingError(`coordinator shard ${i + 1} (${this.endpoints[i]}) did not answer within ${timeoutMs / 1000} s${this.remote ? " (a shard that died after it announced itself, or a firewall between this host and its control socket)" : ""}`);
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
      return this.ask(i, encode(this.head(Kind.ShardInit, h), body, all), Kind.ShardNorm, this.remote ? 30_000 : 120_000);
    }));
    this.watch();
  }

  /** Every shard sums `tasks` (in this order); their squared norms in shard order, and the bad tasks. */
  async reduce(h: { runId: number; layoutHash: string; version: number }, b: ReduceBody): Promise<{ sumsq: number[]; bad: number[] }> {
    const r = await Promise.all(this.links.map((_, i) => this.ask(i, encode(this.head(Kind.ShardReduce, h), b), Kind.ShardNorm)));
    const bodies = r.map((m, i) => readBody(m, Kind.ShardNorm, `shard ${i + 1}`));
    return { sumsq: bodies.map((x) => x.sumsq ?? NaN), bad: [...new Set(bodies.flatMap((x) => x.bad ?? []))] };
  }

  async apply(h: { runId: number; layoutHash: string; version: number }, b: ApplyBody): Promise<void> {
    if (this.lost) throw this.lost;
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
    if (this.beat) clearInterval(this.beat);
    for (const l of this.links) l.onDisconnect = null;
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
