// Hostile and broken peers against a real coordinator on 127.0.0.1 (tiny model, real ZeroMQ sockets): each
// defect found by trying it, reproduced by a hand-written peer that speaks the wire protocol (./helpers/peer.ts).
import test from "node:test";
import assert from "node:assert/strict";
import { Coordinator, type CoordinatorEvent } from "../src/coordinator/index.js";
import { Kind, encode } from "../src/protocol/wire.js";
import { readBody } from "../src/protocol/bodies.js";
import { paramLayout } from "../src/model/layout.js";
import type { ModelConfig } from "../src/config.js";
import type { CoordinatorOptions } from "../src/coordinator/types.js";
import { Peer } from "./helpers/peer.js";
import { runCli } from "./helpers/cli.js";

const MODEL: ModelConfig = { cell: "lstm", vocabSize: 30, embedDim: 4, hidden: 3, layers: 1, bidirectional: false };
const LAYOUT = paramLayout(MODEL);
const SAMPLES = 2; // every batch holds 2 samples, as the coordinator counts them

function coordinator(extra: Partial<CoordinatorOptions> = {}): { coord: Coordinator; events: CoordinatorEvent[]; applied: number[][] } {
  const events: CoordinatorEvent[] = [];
  const applied: number[][] = [];
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "/nonexistent", model: MODEL, trainBatches: 8, valBatches: 0, workers: 2, batchesPerStep: 2,
    epochs: 1, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 0, seed: 1, stepTimeoutS: 30,
    batchSamples: () => SAMPLES, onEvent: (e) => events.push(e),
    onApplied: (a) => applied.push(a.parts.flatMap((p) => p.batches)),
    ...extra,
  });
  return { coord, events, applied };
}

const filled = (x: number) => new Float32Array(LAYOUT.size).fill(x);

/** Two honest members answering every task with `grad` until the run ends. */
async function honest(endpoint: string, names: string[], grad: (name: string, i: number) => Float32Array, opts: { stop?: () => boolean } = {}): Promise<Peer[]> {
  const peers = await Promise.all(names.map((n) => Peer.join(endpoint, n)));
  for (const p of peers) {
    void (async () => {
      for (let i = 0; ; i++) {
        if (opts.stop?.()) return;
        let t;
        try { t = await p.task(60_000); } catch { return; }
        await p.answer(t, grad(p.name, i), t.body.batches.length * SAMPLES).catch(() => {});
      }
    })();
  }
  return peers;
}

test("finite but huge gradients whose sum overflows: the step is skipped, parameters and Adam untouched, the batches dealt again", async () => {
  const { coord, applied } = coordinator({ trainBatches: 4, maxStepsPerEpoch: 3 });
  const endpoint = await coord.listen();
  const before = Float32Array.from(coord.params);
  const running = coord.run();
  // step 1: both members send 3e38 everywhere (finite, each under float32's max); later steps are honest
  const peers = await honest(endpoint, ["a", "b"], (_, i) => filled(i === 0 ? 3e38 : 0.01));
  try {
    const res = await running;
    for (const x of res.params) assert.ok(Number.isFinite(x), "every parameter is finite");
    // step 1 applied nothing; the two honest steps that followed moved every parameter down by about lr
    assert.equal(res.steps, 3, "three steps ran (the skipped one included)");
    assert.equal(coord.adam.state().t, 2, "Adam took two steps, not three: the skipped step left its state alone");
    let down = 0;
    for (let i = 0; i < LAYOUT.size; i++) if (res.params[i]! < before[i]!) down++;
    assert.equal(down, LAYOUT.size, "both applied steps came from the honest gradients");
    // the refused step's batches were dealt again: the 4 batches of the epoch, each applied exactly once
    assert.deepEqual(applied.flat().sort(), [0, 1, 2, 3]);
    assert.ok((res.rejected.nan ?? 0) >= 2, JSON.stringify(res.rejected));
  } finally {
    for (const p of peers) p.close();
    await coord.close();
  }
});

test("a live member that joins again (a restarted process under the same name): its open task is re-dealt at once, the step ends", async () => {
  const { coord, events } = coordinator({ trainBatches: 4, maxStepsPerEpoch: 1, stepTimeoutS: 600 });
  const endpoint = await coord.listen();
  const running = coord.run();
  const a = await Peer.join(endpoint, "a");
  const b = await Peer.join(endpoint, "b");
  try {
    const ta = await a.task();
    const tb = await b.task();
    // "a" restarts: a new process with the same name joins (its connection still open) while its task is open,
    // and keeps quiet
    const a2 = await Peer.join(endpoint, "a", { pid: 9999, ready: false });
    const beat = setInterval(() => { void a2.send(Kind.Heartbeat, {}).catch(() => {}); }, 200);
    try {
      await b.answer(tb, filled(0.01), SAMPLES);
      const again = await b.task(); // a's batches, re-dealt to b without waiting for any deadline
      assert.deepEqual(again.body.batches, ta.body.batches);
      await b.answer(again, filled(0.01), SAMPLES);
      const res = await running;
      assert.equal(res.steps, 1);
      assert.ok(events.some((e) => e.type === "member" && e.event === "leave" && /joined again/.test(e.reason ?? "")));
    } finally {
      clearInterval(beat);
      a2.close();
    }
  } finally {
    a.close();
    b.close();
    await coord.close();
  }
});

test("no routing-id handover: a second connection under a worker's name cannot send its gradient", async () => {
  const { coord } = coordinator({ trainBatches: 2, maxStepsPerEpoch: 1, workers: 1, batchesPerStep: 1 });
  const endpoint = await coord.listen();
  const before = Float32Array.from(coord.params);
  const running = coord.run();
  const w = await Peer.join(endpoint, "w");
  const forger = Peer.connect(endpoint, w.routingId); // the worker's own routing id, no Join
  try {
    const t = await w.task();
    forger.welcome = w.welcome;
    await forger.answer(t, filled(-1000), SAMPLES).catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    await w.answer(t, filled(0.01), SAMPLES);
    const res = await running;
    for (let i = 0; i < LAYOUT.size; i++) assert.ok(res.params[i]! < before[i]!, `parameter ${i} moved by the honest gradient (down), not the forged one`);
  } finally {
    forger.close();
    w.close();
    await coord.close();
  }
});

test("self-reported numbers: a wrong sample count is refused and its batches dealt again; a reported duration cannot stretch deadlines", async () => {
  const { coord, applied } = coordinator({ trainBatches: 4, stepTimeoutS: 0 });
  const endpoint = await coord.listen();
  const running = coord.run();
  const a = await Peer.join(endpoint, "a");
  const b = await Peer.join(endpoint, "b");
  try {
    const ta = await a.task(), tb = await b.task();
    await a.answer(ta, filled(0.01), 0, { seconds: 1e9 }); // count 0: refused
    await b.answer(tb, filled(0.01), SAMPLES, { seconds: 1e9 });
    // the refused batch comes back in the next step (with one fresh batch); the deadline is still the floor
    assert.ok(coord.deadlineFor(1) <= 120_000, `deadline ${coord.deadlineFor(1)} ms after a worker reported 1e9 s`);
    const [n1, n2] = [await a.task(), await b.task()];
    assert.ok([...n1.body.batches, ...n2.body.batches].includes(ta.body.batches[0]!), "the refused batch is dealt again");
    await a.answer(n1, filled(0.01), SAMPLES);
    await b.answer(n2, filled(0.01), SAMPLES);
    const t3 = await a.task(); // the last batch of the epoch
    await a.answer(t3, filled(0.01), SAMPLES);
    const res = await running;
    assert.equal(res.rejected.malformed, 1);
    const used = applied.flat().sort();
    assert.deepEqual(used, [...new Set(used)], "no batch applied twice");
    assert.ok(used.includes(ta.body.batches[0]!), "the refused batch was applied once, later");
  } finally {
    a.close();
    b.close();
    await coord.close();
  }
});

test("cheap rejection: strangers' bodies are never parsed, bad shapes are Rejects, log lines are rate-limited, identities are bounded", async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => { lines.push(String(chunk)); return write(chunk, ...(rest as [])); }) as typeof process.stderr.write;
  const { coord } = coordinator({ trainBatches: 2, workers: 1, batchesPerStep: 1, joinTimeoutS: 60, heartbeatTimeoutS: 2 });
  const endpoint = await coord.listen();
  const stranger = Peer.connect(endpoint, "stranger");
  try {
    // a 1 MB deeply nested body from a non-member: refused as unknown (its body never parsed)
    const nested = Buffer.from("[".repeat(1 << 20));
    const head = encode({ kind: Kind.Gradient, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, undefined, new Float32Array(4))[0];
    head.writeUInt32LE(nested.length, 28);
    await stranger.raw([head, nested, Buffer.from(new Float32Array(4).buffer)]);
    const r = readBody(await stranger.next(Kind.Reject), Kind.Reject, "coordinator");
    assert.equal(r.reason, "unknown-worker");
    // a null body is a shape error (a counted Reject), not an exception
    const nul = encode({ kind: Kind.Join, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, null);
    await stranger.raw(nul);
    const r2 = readBody(await stranger.next(Kind.Reject), Kind.Reject, "coordinator");
    assert.equal(r2.reason, "malformed");
    assert.match(r2.message, /must be an object, not null/);
    // 300 more bad messages from the same peer: counted, but only a few log lines
    for (let i = 0; i < 300; i++) await stranger.raw(nul);
    await new Promise((r) => setTimeout(r, 500));
    const logged = lines.filter((l) => /rejected \(malformed\)/.test(l)).length;
    assert.ok(logged <= 6, `${logged} log lines for 301 rejects`);
    assert.equal(lines.filter((l) => /ERROR/.test(l)).length, 0, lines.join(""));
    // 400 one-shot identities join and vanish: the members they leave behind are bounded
    for (let i = 0; i < 400; i++) {
      const p = Peer.connect(endpoint, `one-shot-${i}`);
      await p.send(Kind.Join, { name: `one-shot-${i}`, pid: i + 1 });
      p.close();
    }
    await new Promise((r) => setTimeout(r, 3000)); // their connections are gone: evicted
    const last = await Peer.join(endpoint, "last", { ready: false }); // a join prunes what is kept
    last.close();
    const m = coord.membership;
    assert.ok(m.known <= 256 + m.live + 1, `members held: ${JSON.stringify(m)}`);
  } finally {
    process.stderr.write = write;
    stranger.close();
    await coord.close();
  }
});

test("secure by default: a coordinator refuses a non-loopback --bind without CURVE keys, and says how to fix it", async () => {
  const r = await runCli(["coordinator", "--dataset", "/nonexistent", "--bind", "tcp://0.0.0.0:0"], { timeoutMs: 30_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refusing: binding tcp:\/\/0\.0\.0\.0:0 without CURVE keys/);
  assert.match(r.stderr, /imdb-train keys --out keys/);
  assert.match(r.stderr, /--insecure/);
  const w = await runCli(["worker", "--coordinator", "tcp://10.255.255.1:5555", "--connect-timeout", "1"], { timeoutMs: 30_000 });
  assert.equal(w.code, 2, w.stderr);
  assert.match(w.stderr, /refusing: connecting to tcp:\/\/10\.255\.255\.1:5555 without CURVE keys/);
});

/** One honest worker of a sharded coordinator: its slice of each gradient to each shard, the rest to the
 *  coordinator. Returns the final parameters of a run of `steps` steps; `hostile` runs beside it. */
async function shardedRun(steps: number, hostile?: (endpoint: string, welcome: Peer["welcome"]) => Promise<void>): Promise<Float32Array> {
  const { coord } = coordinator({ trainBatches: steps, maxStepsPerEpoch: steps, workers: 1, batchesPerStep: 1, coordinatorShards: 2, paramChunk: 64 });
  const endpoint = await coord.listen();
  const running = coord.run();
  const w = await Peer.join(endpoint, "w");
  const shards = w.welcome.shards!.others.map((sh) => ({ ...sh, peer: Peer.connect(`tcp://127.0.0.1:${sh.port}`, w.routingId) }));
  for (const sh of shards) { sh.peer.welcome = w.welcome; await sh.peer.send(Kind.Join, { name: "w" }); }
  try {
    const attack = hostile?.(endpoint, w.welcome);
    await attack; // before the first step: the forged slices wait in the shard for their tasks
    for (let i = 0; i < steps; i++) {
      const t = await w.task(30_000);
      const g = filled(0.01 * (i + 1));
      const at = { step: t.m.header.step, version: t.m.header.paramVersion };
      // as a real worker, compute only on this version's parameters from every shard: its slice sent earlier
      // could reach the shard before the coordinator's order to apply the last step (another socket) and be
      // dropped as stale
      for (const sh of shards) while (at.version > 0 && (await sh.peer.next(Kind.Params, 30_000)).header.paramVersion < at.version) { /* older chunks */ }
      for (const sh of shards) await sh.peer.send(Kind.Gradient, { task: t.body.task }, at, g.subarray(sh.offset, sh.offset + sh.length));
      await w.answer(t, g.subarray(0, w.welcome.shards!.own), SAMPLES);
    }
    const res = await running;
    return Float32Array.from(res.params);
  } finally {
    for (const sh of shards) sh.peer.close();
    w.close();
    await coord.close();
  }
}

test("shard sockets: control messages only from the coordinator, slices only from the worker the task went to", async () => {
  const clean = await shardedRun(3);
  let sent = 0;
  const attacked = await shardedRun(3, async (endpoint, welcome) => {
    // a stranger reads the shard ports from its own Welcome, then orders the shards about and forges slices
    const spy = await Peer.join(endpoint, "spy", { ready: false });
    for (const sh of welcome.shards!.others) {
      const evil = Peer.connect(`tcp://127.0.0.1:${sh.port}`, "evil");
      evil.welcome = spy.welcome;
      await evil.send(Kind.ShardApply, { step: 1, version: 1, scale: 1, coef: 1, lr: 100 });
      await evil.send(Kind.ShardInit, { runId: welcome.runId, offset: sh.offset, length: sh.length, layoutHash: welcome.layoutHash, version: 0, chunk: 64, adam: { lr: 100, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0 } }, {}, new Float32Array(3 * sh.length).fill(7));
      // slices of every task id and version the run will use, from a peer the tasks did not go to
      for (let version = 0; version <= 3; version++) {
        for (let task = 1; task <= 3; task++) await evil.send(Kind.Gradient, { task }, { step: version + 1, version }, new Float32Array(sh.length).fill(-1000));
      }
      await evil.send(Kind.ShardPull, { task: 1, peer: "evil" }); // a task's piece of the parameters to the spy
      await evil.send(Kind.Stop, { reason: "evil" });
      sent += 16;
      evil.close();
    }
    spy.close();
  });
  assert.ok(sent >= 15, `${sent} forged messages sent`);
  assert.deepEqual(Array.from(attacked), Array.from(clean), "the forged orders and slices changed nothing");
});
