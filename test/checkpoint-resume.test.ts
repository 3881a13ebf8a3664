// Checkpoint files and the choice of what to resume from, on real files: the rotation keeps the previous
// checkpoint, a corrupt / truncated / missing newest one falls back to it (saying why), a format-1 file still
// loads; and the membership state machine says why it evicts (the cause the eviction metric is labelled with).
import test from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { saveRotating, loadForResume, loadCheckpoint, LAST, PREV } from "../src/coordinator/checkpoint.js";
import { InputError } from "../src/errors.js";
import { expire } from "./helpers/membership.js";
import { Membership } from "../src/coordinator/membership.js";

const meta = (step: number) => ({ step, epoch: 0, cursor: step * 2, paramVersion: step, seed: 7, runId: 1, layoutHash: "h", adamT: step, reason: "step", epochStats: { lossSum: step, correct: 1, count: 2, steps: step }, config: {} });
const arrays = (step: number) => ({ params: Float32Array.from({ length: 50 }, (_, i) => i + step), adam_m: new Float32Array(50).fill(step), adam_v: new Float32Array(50) });

test("saveRotating keeps the previous checkpoint; loadForResume takes the newest, from a file or a run directory", () => {
  const root = tempDir("imdb-ckpt-");
  try {
    const dir = join(root, "checkpoints");
    saveRotating(dir, meta(1), arrays(1));
    saveRotating(dir, meta(2), arrays(2));
    assert.deepEqual(readdirSync(dir).sort(), [LAST, PREV], "no temp file left behind");
    assert.equal(loadCheckpoint(join(dir, PREV)).meta.step, 1);
    for (const where of [join(dir, LAST), dir, root]) {
      const c = loadForResume(where);
      assert.equal(c.checkpoint.meta.step, 2, where);
      assert.equal(c.fallback, undefined);
      assert.equal(c.checkpoint.arrays.params![3], 5);
      assert.deepEqual(c.checkpoint.meta.epochStats, meta(2).epochStats);
    }
    // a temp file of a writer that died is cleaned up by the next save
    writeFileSync(join(dir, `${LAST}.tmp-999999`), "torn");
    saveRotating(dir, meta(3), arrays(3));
    assert.deepEqual(readdirSync(dir).sort(), [LAST, PREV]);
  } finally {
    cleanup(root);
  }
});

test("a corrupt, truncated or missing newest checkpoint falls back to prev.ckpt and says why; both bad is an error", () => {
  const root = tempDir("imdb-ckpt-");
  try {
    const dir = join(root, "checkpoints");
    saveRotating(dir, meta(4), arrays(4));
    saveRotating(dir, meta(6), arrays(6));
    const good = readFileSync(join(dir, LAST));
    // one flipped bit in the metadata (the step!) is caught: the checksum covers the whole file
    const flipped = Buffer.from(good);
    const at = flipped.indexOf(Buffer.from('"step":6'));
    flipped[at + 7] = "9".charCodeAt(0);
    writeFileSync(join(dir, LAST), flipped);
    let c = loadForResume(join(dir, LAST));
    assert.equal(c.checkpoint.meta.step, 4);
    assert.match(c.fallback!.problem, /last\.ckpt: checkpoint checksum mismatch \(corrupt file\)/);
    assert.equal(c.path, join(dir, PREV));
    // truncated
    writeFileSync(join(dir, LAST), good.subarray(0, good.length - 7));
    c = loadForResume(dir);
    assert.equal(c.checkpoint.meta.step, 4);
    assert.match(c.fallback!.problem, /checkpoint is truncated \(\d+ of \d+ bytes\)/);
    // missing (a crash between the two renames of a save)
    rmSync(join(dir, LAST));
    c = loadForResume(dir);
    assert.equal(c.checkpoint.meta.step, 4);
    assert.match(c.fallback!.problem, /cannot read checkpoint/);
    // both unusable
    writeFileSync(join(dir, LAST), good.subarray(0, 100));
    writeFileSync(join(dir, PREV), "not a checkpoint at all");
    assert.throws(() => loadForResume(dir), (e: Error) => e instanceof InputError && /last\.ckpt: checkpoint is truncated.*previous checkpoint is unusable too.*not an imdb-train checkpoint/.test(e.message));
    // a directory without checkpoints
    mkdirSync(join(root, "empty"));
    assert.throws(() => loadForResume(join(root, "empty")), /no checkpoint \(last\.ckpt or prev\.ckpt\) in this directory/);
  } finally {
    cleanup(root);
  }
});

test("a format-1 checkpoint (arrays-only SHA-256 in the metadata, no trailer) still loads", () => {
  const root = tempDir("imdb-ckpt-");
  try {
    const params = Float32Array.from([1, 2, 3]);
    const bytes = Buffer.from(params.buffer);
    const m = { format: 1, step: 9, epoch: 1, cursor: 0, paramVersion: 9, seed: 7, runId: 1, layoutHash: "h", adamT: 9, savedAt: "x", config: {},
      arrays: [{ name: "params", length: 3 }], sha256: createHash("sha256").update(bytes).digest("hex") };
    const json = Buffer.from(JSON.stringify(m));
    const len = Buffer.alloc(4); len.writeUInt32LE(json.length, 0);
    const path = join(root, "v1.ckpt");
    writeFileSync(path, Buffer.concat([Buffer.from("IMTRCKPT"), len, json, bytes]));
    const c = loadCheckpoint(path);
    assert.equal(c.meta.step, 9);
    assert.deepEqual(Array.from(c.arrays.params!), [1, 2, 3]);
    const bad = readFileSync(path); bad[bad.length - 1] ^= 1;
    writeFileSync(path, bad);
    assert.throws(() => loadCheckpoint(path), /checksum mismatch/);
  } finally {
    cleanup(root);
  }
});

test("membership: each eviction carries its cause and how late it was", () => {
  const m = new Membership(1_000, 5_000);
  for (const id of ["busy", "idle", "slow-loader"]) m.join(id, 0);
  m.markReady("busy", 0);
  m.markReady("idle", 0);
  m.assign("busy", 2_000);
  assert.deepEqual(expire(m, 1_500).map((e) => [e.member.id, e.cause]), [["idle", "heartbeat"]]);
  const late = expire(m, 2_300);
  assert.deepEqual(late.map((e) => [e.member.id, e.cause, e.lateMs]), [["busy", "deadline", 300]]);
  assert.match(late[0]!.reason, /missed its step deadline by 0\.3 s/);
  assert.deepEqual(expire(m, 6_000).map((e) => [e.member.id, e.cause]), [["slow-loader", "startup"]]);
  assert.deepEqual(m.live(), []);
  // an evicted worker that joins again is live again, in the same slot
  const slot = m.get("busy")!.slot;
  assert.equal(m.join("busy", 7_000).slot, slot);
  assert.equal(m.isLive("busy"), true);
});
