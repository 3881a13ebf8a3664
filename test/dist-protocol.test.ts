// The wire protocol against a real coordinator over real ZeroMQ sockets: a raw DEALER (through our transport)
// plays a worker and sends malformed gradients, a NaN gradient and a good one. Plus the pure pieces
// (membership state machine, sampler) and the sender-side size check.
import test from "node:test";
import assert from "node:assert/strict";
import { Coordinator, type CoordinatorEvent } from "../src/coordinator/index.js";
import type { AppliedStep } from "../src/coordinator/types.js";
import { DealerChannel } from "../src/transport/zmq/index.js";
import { Kind, encode, decode, PROTOCOL_VERSION, type Message } from "../src/protocol/wire.js";
import { ParamAssembler } from "../src/protocol/params.js";
import { readBody } from "../src/protocol/bodies.js";
import { Membership } from "../src/coordinator/membership.js";
import { expire } from "./helpers/membership.js";
import { EpochSampler, STEP_WINDOW } from "../src/coordinator/sampler.js";
import { paramLayout } from "../src/model/layout.js";
import type { ModelConfig } from "../src/config.js";
import { assertMoved } from "./helpers/params.js";
import { sparseBlockOf } from "../src/protocol/gradcodec.js";
import { WorkerShards } from "../src/workers/shards.js";
import { logger } from "../src/output.js";
import { NO_TELEMETRY } from "../src/telemetry.js";

const MODEL: ModelConfig = { cell: "lstm", vocabSize: 30, embedDim: 4, hidden: 3, layers: 1, bidirectional: false };

async function next(ch: DealerChannel, kind: Kind, timeoutMs = 5000): Promise<Message> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const frames = await ch.receive(Math.max(1, until - Date.now()));
    assert.ok(frames, `no ${Kind[kind]} message within ${timeoutMs} ms`);
    const m = decode(frames, { maxBytes: 1 << 24, from: "coordinator" });
    if (m.header.kind === kind) return m;
  }
}

test("coordinator rejects malformed gradients with clear reasons, skips NaN, accepts a good one", async (t) => {
  const events: CoordinatorEvent[] = [];
  const layout = paramLayout(MODEL);
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "/nonexistent", model: MODEL, trainBatches: 4, valBatches: 0, workers: 1,
    batchesPerStep: 1, epochs: 1, maxStepsPerEpoch: 2, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1,
    stepTimeoutS: 20, onEvent: (e) => events.push(e), paramChunk: 48,
  });
  const endpoint = await coord.listen();
  const running = coord.run();
  const ch = DealerChannel.connect(endpoint, "fake", { maxBytes: 1 << 24 });
  try {
    // a Join sent twice (a worker's retry racing our Welcome): welcomed twice, one join
    const join = encode({ kind: Kind.Join, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, { name: "fake", pid: process.pid });
    await ch.send(join);
    await ch.send(join);
    const welcome = await next(ch, Kind.Welcome);
    const again = await next(ch, Kind.Welcome);
    assert.equal(again.header.slot, welcome.header.slot, "the repeated Join keeps its slot");
    assert.equal(events.filter((e) => e.type === "member" && e.event === "join").length, 1, "one join event for a repeated Join");
    const w = readBody(welcome, Kind.Welcome, "coordinator");
    assert.equal(w.layoutHash, layout.hash);
    assert.equal(w.layoutSize, layout.size);
    await ch.send(encode({ kind: Kind.Ready, runId: w.runId, step: 0, paramVersion: 0, slot: 0, layoutHash: layout.hash }, { backend: "none" }));
    const assign = await next(ch, Kind.Assign);
    assert.equal(assign.payload.length, layout.size, "Assign carries the parameters");
    const { task } = readBody(assign, Kind.Assign, "coordinator");
    const h = { kind: Kind.Gradient, runId: w.runId, step: assign.header.step, paramVersion: assign.header.paramVersion, slot: assign.header.slot, layoutHash: layout.hash };
    const body = { task, lossSum: 1, correct: 1, count: 2 };
    const good = new Float32Array(layout.size).fill(0.01);

    const expectReject = async (frames: Buffer[], reason: string, pattern: RegExp, unchecked = false) => {
      await ch.send(frames, { unchecked });
      const r = await next(ch, Kind.Reject);
      const b = readBody(r, Kind.Reject, "coordinator");
      assert.equal(b.reason, reason, b.message);
      assert.match(b.message, pattern);
    };
    await expectReject(encode({ ...h, version: PROTOCOL_VERSION + 1 }, body, good), "version", new RegExp(`protocol version ${PROTOCOL_VERSION + 1}.*speaks version ${PROTOCOL_VERSION}`));
    await expectReject(encode({ ...h, layoutHash: "0123456789abcdef" }, body, good), "layout", /layout 0123456789abcdef, expected/);
    await expectReject(encode(h, body, good.subarray(0, layout.size - 1)), "length", new RegExp(`${layout.size - 1} values, expected ${layout.size}`));
    await expectReject(encode({ ...h, step: h.step + 7 }, body, good), "stale", /current step is/);
    const huge = new Float32Array(Math.ceil(w.maxBytes / 4) + 10);
    await expectReject(encode(h, body, huge), "size", /over the limit/, true);
    // sender side: our transport refuses to send it at all
    const limited = DealerChannel.connect(endpoint, "limited", { maxBytes: w.maxBytes });
    try {
      await assert.rejects(limited.send(encode(h, body, huge)), /refusing to send a \d+-byte message .* over the \d+-byte limit/);
    } finally {
      limited.close();
    }
    // NaN: counted and skipped; the step completes without this contribution
    const nan = Float32Array.from(good); nan[5] = NaN;
    await expectReject(encode(h, body, nan), "nan", /non-finite value \(NaN\) at index 5: contribution skipped/);
    // step 2: a good gradient is accepted
    const a2 = await next(ch, Kind.Assign);
    assert.equal(a2.header.step, assign.header.step + 1);
    assert.equal(a2.header.paramVersion, assign.header.paramVersion + 1);
    assert.deepEqual(Array.from(a2.payload), Array.from(assign.payload), "a skipped (NaN) step leaves the parameters unchanged");
    await ch.send(encode({ ...h, step: a2.header.step, paramVersion: a2.header.paramVersion }, { ...body, task: readBody(a2, Kind.Assign, "coordinator").task }, good));
    const res = await running;
    assert.equal(res.steps, 2);
    assert.deepEqual(res.rejected, { version: 1, layout: 1, length: 1, stale: 1, size: 1, nan: 1 });
    assert.ok(events.some((e) => e.type === "rejected" && e.reason === "nan"));
    let moved = 0;
    for (let i = 0; i < layout.size; i++) if (res.params[i] !== a2.payload[i]) moved++;
    assert.ok(moved > layout.size / 2, "the accepted gradient moved the parameters");
    // by one Adam step: the gradient is 0.01 in every value, so each value moves by about lr = 0.01 (bias-
    // corrected m̂/√v̂ is ±1 on a first step). The floor, an RMS change of lr/2 in every tensor, fails a step
    // that was not applied, applied to part of the vector only, or applied with a much smaller rate
    const floors = Object.fromEntries(layout.entries.map((e) => [e.name, 0.005]));
    t.diagnostic(assertMoved(a2.payload, res.params, { minRel: 0, layout, tensors: floors }).summary);
    // after the applied step the new parameters came as Params chunks of 48 values, in order; reassembled,
    // they are the result, and an Assign without payload of that version runs on them
    const asm = new ParamAssembler(layout.size);
    const offsets: number[] = [];
    let version = -1;
    while (offsets.length < Math.ceil(layout.size / 48)) {
      const c = await next(ch, Kind.Params);
      offsets.push(readBody(c, Kind.Params, "coordinator").offset);
      version = c.header.paramVersion;
      asm.put(c, "coordinator");
    }
    assert.deepEqual(offsets, [0, 48, 96, 144, 192]);
    assert.equal(version, a2.header.paramVersion + 1);
    const bare = decode(encode({ ...h, kind: Kind.Assign, paramVersion: version }, { task: 0, epoch: 0, split: "train", batches: [] }), { maxBytes: 1 << 20, from: "test" });
    assert.deepEqual(Array.from(asm.paramsFor(bare)!), Array.from(res.params));
    assert.equal(asm.paramsFor({ ...bare, header: { ...bare.header, paramVersion: version + 1 } }), null, "another version is missing");
  } finally {
    ch.close();
    await coord.close();
  }
});

/** A raw worker's way in: Join as `name`, the Welcome, Ready. */
async function admitted(ch: DealerChannel, name: string, layoutHash: string) {
  await ch.send(encode({ kind: Kind.Join, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, { name, pid: process.pid }));
  const w = readBody(await next(ch, Kind.Welcome), Kind.Welcome, "coordinator");
  await ch.send(encode({ kind: Kind.Ready, runId: w.runId, step: 0, paramVersion: 0, slot: 0, layoutHash }, { backend: "none" }));
  return w;
}

test("Started (a worker has its task) goes to the timeline; one for no open task is dropped, a malformed one refused", async () => {
  const applied: AppliedStep[] = [];
  const layout = paramLayout(MODEL);
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "/nonexistent", model: MODEL, trainBatches: 4, valBatches: 0, workers: 1,
    batchesPerStep: 1, epochs: 1, maxStepsPerEpoch: 1, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1,
    stepTimeoutS: 20, onApplied: (a) => applied.push(a),
  });
  const endpoint = await coord.listen();
  const running = coord.run();
  const ch = DealerChannel.connect(endpoint, "starter", { maxBytes: 1 << 24 });
  try {
    const w = await admitted(ch, "starter", layout.hash);
    const assign = await next(ch, Kind.Assign);
    const { task } = readBody(assign, Kind.Assign, "coordinator");
    const h = { kind: Kind.Started, runId: w.runId, step: assign.header.step, paramVersion: assign.header.paramVersion, slot: assign.header.slot, layoutHash: layout.hash };
    // for a task that is not open, or of another step: dropped, unanswered (it changes nothing)
    await ch.send(encode(h, { task: task + 100 }));
    await ch.send(encode({ ...h, step: h.step + 3 }, { task }));
    // a body that is not {task}: refused, naming the kind
    await ch.send(encode(h, { task: "one" }));
    const r = readBody(await next(ch, Kind.Reject), Kind.Reject, "coordinator");
    assert.equal(r.reason, "malformed");
    assert.match(r.message, /Started from worker starter/);
    const tSend = Date.now();
    await ch.send(encode(h, { task }));
    await ch.send(encode({ ...h, kind: Kind.Gradient }, { task, lossSum: 1, correct: 1, count: 2 }, new Float32Array(layout.size).fill(0.01)));
    const res = await running;
    assert.equal(res.steps, 1);
    assert.deepEqual(res.rejected, { malformed: 1 });
    const t = applied[0]!.timeline.tasks[0]!;
    assert.equal(t.task, task);
    // the good Started's time (the dropped ones came before tSend), before the gradient's
    assert.ok(t.queued > 0 && t.queued <= t.started && t.started >= tSend - 1 && t.started <= t.gradient, `Started taken in after the Assign went out, as sent, before the gradient: ${JSON.stringify(t)}`);
  } finally {
    ch.close();
    await coord.close();
  }
});

/** Messages from the coordinator up to and including the first of `kind`, in the order they came. */
async function upTo(ch: DealerChannel, kind: Kind, timeoutMs = 5000): Promise<Message[]> {
  const until = Date.now() + timeoutMs, got: Message[] = [];
  for (;;) {
    const frames = await ch.receive(Math.max(1, until - Date.now()));
    assert.ok(frames, `no ${Kind[kind]} message within ${timeoutMs} ms`);
    const m = decode(frames, { maxBytes: 1 << 24, from: "coordinator" });
    if (m.header.kind !== Kind.Heartbeat) got.push(m);
    if (m.header.kind === kind) return got;
  }
}

test("row pull: a version's dense values come once, in a Dense before the worker's first task of it; the task carries its rows alone", async () => {
  const layout = paramLayout(MODEL), block = sparseBlockOf(layout)!, E = block.width, D = layout.size - block.rows * E;
  const rowsOf = (_split: "train" | "val", i: number) => Int32Array.from([1, 2 + i]);
  const coord = new Coordinator({
    bind: "tcp://127.0.0.1:*", dataset: "/nonexistent", model: MODEL, trainBatches: 4, valBatches: 1, workers: 1,
    batchesPerStep: 1, epochs: 1, maxStepsPerEpoch: 1, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 5, seed: 1,
    stepTimeoutS: 20, batchRows: rowsOf,
  });
  const endpoint = await coord.listen();
  const running = coord.run();
  const ch = DealerChannel.connect(endpoint, "dense", { maxBytes: 1 << 24 });
  try {
    const w = await admitted(ch, "dense", layout.hash);
    assert.equal(w.pull, "rows");
    // the training task: the dense values of version 0 first, then the Assign with its batch's rows alone
    const first = await upTo(ch, Kind.Assign);
    assert.deepEqual(first.map((m) => m.header.kind), [Kind.Dense, Kind.Assign], "one Dense, then the task");
    const [d0, assign] = first as [Message, Message];
    assert.equal(d0.header.paramVersion, 0);
    assert.equal(d0.payload.length, D, "the Dense carries every value outside the embedding rows");
    const { task, batches } = readBody(assign, Kind.Assign, "coordinator");
    assert.deepEqual(Array.from(assign.rows!), Array.from(rowsOf("train", batches[0]!)));
    assert.equal(assign.payload.length, 2 * E, "the task carries its rows alone");
    const dense0 = Float32Array.from(d0.payload);
    const h = { kind: Kind.Gradient, runId: w.runId, step: assign.header.step, paramVersion: 0, slot: assign.header.slot, layoutHash: layout.hash };
    await ch.send(encode(h, { task, lossSum: 1, correct: 1, count: 2 }, new Float32Array(2 * E + D).fill(0.01), assign.rows!));
    // the evaluation at version 1: its Dense first (new values), then the Eval with the rows alone
    const second = await upTo(ch, Kind.Eval);
    assert.deepEqual(second.map((m) => m.header.kind), [Kind.Dense, Kind.Eval], "one Dense for the new version, then the task");
    const [d1, ev] = second as [Message, Message];
    assert.equal(d1.header.paramVersion, 1);
    const dense1 = Float32Array.from(d1.payload), evRows = Float32Array.from(ev.payload);
    const eb = readBody(ev, Kind.Eval, "coordinator");
    await ch.send(encode({ ...h, kind: Kind.EvalResult, step: ev.header.step, paramVersion: 1 }, { task: eb.task, lossSum: 1, correct: 1, count: 2 }));
    const res = await running;
    // version 1 is the run's result: the Dense is its dense part and the Eval its rows, bit for bit
    assert.deepEqual(Array.from(dense1), Array.from(res.params.subarray(block.rows * E)));
    const want = Array.from(ev.rows!).flatMap((r) => Array.from(res.params.subarray(r * E, (r + 1) * E)));
    assert.deepEqual(Array.from(evRows), want);
    assertMoved(dense0, dense1, { minRel: 1e-4 }); // the dense values moved between versions 0 and 1
    // the worker's side: a Dense of another length is refused; a task of rows alone takes its version's Dense
    const shards = new WorkerShards({ coordinator: endpoint, routingId: "x", name: "t", log: logger("test"), tel: NO_TELEMETRY }, { ...w, slot: 0 }, block, new ParamAssembler(layout.size), [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)], () => {});
    assert.equal(await shards.rowParams(ev, eb.task, layout.size), null, "no Dense of version 1 yet");
    assert.throws(() => shards.putDense({ ...d1, payload: d1.payload.subarray(1) }, layout.size), /Dense carries/);
    shards.putDense(d0, layout.size);
    assert.equal(await shards.rowParams(ev, eb.task, layout.size), null, "the Dense of version 0 is not version 1's");
    shards.putDense(d1, layout.size);
    const got = (await shards.rowParams(ev, eb.task, layout.size))!;
    assert.deepEqual(Array.from(got.dense), Array.from(dense1));
    assert.deepEqual(Array.from(got.values), Array.from(evRows));
    shards.close();
  } finally {
    ch.close();
    await coord.close();
  }
});

test("membership: deadline while busy, heartbeat timeout while idle, pure in `now`", () => {
  const m = new Membership(1000);
  m.join("w0", 0);
  m.join("w1", 0);
  assert.equal(m.live().length, 0, "joined but still loading");
  m.markReady("w0", 0);
  m.markReady("w1", 0);
  m.assign("w0", 5000);
  m.seen("w1", 500);
  assert.deepEqual(expire(m, 1400).map((e) => e.member.id), []);
  const ev = expire(m, 1600);
  assert.deepEqual(ev.map((e) => e.member.id), ["w1"]);
  assert.match(ev[0]!.reason, /no heartbeat for 1\.1 s/);
  assert.deepEqual(expire(m, 4000).map((e) => e.member.id), [], "a busy worker is judged by its step deadline");
  assert.match(expire(m, 5001)[0]!.reason, /missed its step deadline/);
  assert.equal(m.live().length, 0);
  assert.equal(m.join("w1", 6000).slot, 1, "a rejoining worker keeps its slot");
});

test("sampler: every batch once per epoch, seeded order, given-back batches handed out again", () => {
  const s = new EpochSampler(10, 0, 42);
  const a = s.take(3);
  s.giveBack([a[1]!]);
  const seen = [a[0]!, a[2]!];
  while (!s.exhausted()) { const t = s.take(3); seen.push(...t); s.markDone(t); }
  assert.deepEqual([...seen].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(new EpochSampler(10, 0, 42).order, s.order);
  assert.notDeepEqual(new EpochSampler(10, 1, 42).order, s.order);
});

test("sampler grouped by cost: the steps of a window are cut from its batches sorted by cost, a short last step stays last", () => {
  const n = 1000, group = 4;
  const cost = (b: number) => ((b * 7919) % 613) + 1; // costs in no relation to the indices
  const plain = new EpochSampler(n, 3, 42);
  assert.deepEqual(new EpochSampler(n, 3, 42, { group: 1, cost }).order, plain.order, "a group of 1 is the plain shuffle");
  const s = new EpochSampler(n, 3, 42, { group, cost });
  assert.deepEqual(new EpochSampler(n, 3, 42, { group, cost }).order, s.order, "seeded");
  assert.deepEqual([...s.order].sort((a, b) => a - b), plain.order.slice().sort((a, b) => a - b), "every batch once");
  const size = group * STEP_WINDOW;
  for (let w = 0; w < n; w += size) {
    // a window holds the same batches as the plain shuffle's window, and its steps do not overlap in cost
    const mine = s.order.slice(w, w + size);
    assert.deepEqual(mine.slice().sort((a, b) => a - b), plain.order.slice(w, w + size).sort((a, b) => a - b), `window at ${w}`);
    const steps: { lo: number; hi: number }[] = [];
    for (let k = 0; k < mine.length; k += group) {
      const c = mine.slice(k, k + group).map(cost);
      steps.push({ lo: Math.min(...c), hi: Math.max(...c) });
    }
    const sorted = steps.slice().sort((a, b) => a.lo - b.lo);
    for (let k = 1; k < sorted.length; k++) assert.ok(sorted[k]!.lo >= sorted[k - 1]!.hi, `window at ${w}: steps overlap in cost`);
    assert.notDeepEqual(steps, sorted, "the steps are shuffled, not in cost order");
  }
  // 1000 = 3 × 256 + 232: the last window's 58 steps are whole; 1001 batches leave one short step, last
  const odd = new EpochSampler(n + 1, 3, 42, { group, cost });
  const tail = odd.order.slice(-1);
  const window = odd.order.slice(3 * size);
  assert.equal(cost(tail[0]!), Math.max(...window.map(cost)), "the short step is the costliest batch, at the end");
});

test("checkpoints round-trip and a truncated or corrupt file is refused with its name", async () => {
  const { saveCheckpoint, loadCheckpoint } = await import("../src/coordinator/checkpoint.js");
  const { mkdtempSync, readFileSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "imdb-ckpt-"));
  try {
    const path = join(dir, "c", "last.ckpt");
    const params = Float32Array.from({ length: 100 }, (_, i) => i / 7);
    saveCheckpoint(path, { step: 12, epoch: 1, cursor: 3, orderGroup: 4, paramVersion: 12, seed: 5, runId: 9, layoutHash: "abc", adamT: 12, config: { a: 1 } }, { params, adam_m: params, adam_v: params });
    const c = loadCheckpoint(path);
    assert.equal(c.meta.step, 12);
    assert.equal(c.meta.orderGroup, 4, "the step size the epoch's order was grouped for (resume rebuilds the same order)");
    saveCheckpoint(join(dir, "g.ckpt"), { step: 1, epoch: 0, cursor: 1, orderGroup: 0, paramVersion: 1, seed: 5, runId: 9, layoutHash: "abc", adamT: 1, config: {} }, { params });
    assert.throws(() => loadCheckpoint(join(dir, "g.ckpt")), /orderGroup 0 is not a positive integer/);
    assert.deepEqual(Array.from(c.arrays.params!), Array.from(params));
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => loadCheckpoint(path), (e: Error) => e.message.includes(path) && /truncated/.test(e.message));
    const bad = Buffer.from(bytes); bad[bad.length - 5] ^= 0xff;
    writeFileSync(path, bad);
    assert.throws(() => loadCheckpoint(path), /checksum mismatch/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("learning-rate schedule: warm-up then cosine decay to 0.1 × lr", async () => {
  const { learningRate } = await import("../src/optim/schedule.js");
  const s = { warmupSteps: 10, decay: "cosine" as const, minFactor: 0.1 };
  assert.equal(learningRate(1, 0, 100, s), 0.1);
  assert.equal(learningRate(1, 9, 100, s), 1);
  assert.ok(Math.abs(learningRate(1, 10, 100, s) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(1, 100, 100, s) - 0.1) < 1e-12);
  assert.equal(learningRate(1, 50, 100, { warmupSteps: 0, decay: "none", minFactor: 0.1 }), 1);
});
