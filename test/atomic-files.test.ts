// Temporary files nobody can plant: checkpoints, the control file and the model directory are written under
// names created exclusively (O_EXCL|O_NOFOLLOW, random suffix, mkdtemp), so a symbolic link planted at the
// name a writer used to use (`<file>.tmp-<pid>`, `<dir>.old-<pid>`) or at any name is never followed, and
// what it points to is left as it was.
import test from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { openExclusive, removeStaleTemps, writeAtomic } from "../src/atomic.js";
import { saveRotating, loadCheckpoint, LAST, PREV } from "../src/coordinator/checkpoint.js";
import { saveModel, loadModel } from "../src/model/files.js";
import { paramLayout } from "../src/model/layout.js";
import type { ModelConfig } from "../src/config.js";

const meta = (step: number) => ({ step, epoch: 0, cursor: step, paramVersion: step, seed: 7, runId: 1, layoutHash: "h", adamT: step, reason: "step", config: {} });
const arrays = (step: number) => ({ params: new Float32Array(64).fill(step), adam_m: new Float32Array(64), adam_v: new Float32Array(64) });
const PRECIOUS = "not yours to overwrite\n";

test("a checkpoint is never written through a symbolic link planted at its old temporary name", () => {
  const root = tempDir("imdb-atomic-");
  try {
    const dir = join(root, "checkpoints");
    mkdirSync(dir);
    const victim = join(root, "victim.txt");
    writeFileSync(victim, PRECIOUS);
    // what the writer used to open with "w" (following links): <file>.tmp-<pid>
    symlinkSync(victim, join(dir, `${LAST}.tmp-${process.pid}`));
    symlinkSync(join(root, "created-through-link"), join(dir, `${PREV}.tmp-${process.pid}`));
    saveRotating(dir, meta(1), arrays(1));
    saveRotating(dir, meta(2), arrays(2));
    assert.equal(readFileSync(victim, "utf8"), PRECIOUS, "the link's target is untouched");
    assert.equal(existsSync(join(root, "created-through-link")), false);
    for (const f of [LAST, PREV]) assert.ok(lstatSync(join(dir, f)).isFile(), `${f} is a plain file, not a link`);
    assert.equal(loadCheckpoint(join(dir, LAST)).meta.step, 2);
    assert.equal(loadCheckpoint(join(dir, PREV)).meta.step, 1);
    // the other process's files (a live pid: ours) are left alone; nothing of ours is left behind
    assert.deepEqual(readdirSync(dir).sort(), [LAST, `${LAST}.tmp-${process.pid}`, PREV, `${PREV}.tmp-${process.pid}`]);
  } finally {
    cleanup(root);
  }
});

test("openExclusive refuses whatever is at the name (a link to a file, a dangling link, a file): nothing is followed", () => {
  const root = tempDir("imdb-atomic-");
  try {
    const victim = join(root, "victim.txt");
    writeFileSync(victim, PRECIOUS);
    const guessed = join(root, `x.tmp-${process.pid}-0123456789ab`);
    symlinkSync(victim, guessed);
    assert.throws(() => openExclusive(guessed), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
    const dangling = join(root, `y.tmp-${process.pid}-0123456789ab`);
    symlinkSync(join(root, "would-be-created"), dangling);
    assert.throws(() => openExclusive(dangling), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
    assert.equal(existsSync(join(root, "would-be-created")), false);
    assert.throws(() => openExclusive(victim), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
    assert.equal(readFileSync(victim, "utf8"), PRECIOUS);
    // a link at the final name is replaced by the rename, not written through
    const target = join(root, "control.json");
    symlinkSync(victim, target);
    writeAtomic(target, [Buffer.from("{}\n")]);
    assert.ok(lstatSync(target).isFile());
    assert.equal(readFileSync(victim, "utf8"), PRECIOUS);
    // a secret's mode holds from its creation
    writeAtomic(join(root, "secret.key"), [Buffer.from("k")], 0o600);
    assert.equal((lstatSync(join(root, "secret.key")).mode & 0o777).toString(8), "600");
  } finally {
    cleanup(root);
  }
});

test("saveModel: links planted at the old temporary and old-model names are not followed, and the save succeeds", async () => {
  const root = tempDir("imdb-atomic-");
  try {
    const model: ModelConfig = { cell: "lstm", vocabSize: 10, embedDim: 4, hidden: 4, layers: 1, bidirectional: false };
    const vocabPath = join(root, "vocab.json");
    writeFileSync(vocabPath, JSON.stringify({ tokens: ["<unk>", "<pad>"] }));
    const victimDir = join(root, "victim");
    mkdirSync(victimDir);
    writeFileSync(join(victimDir, "keep.txt"), PRECIOUS);
    const dir = join(root, "model");
    symlinkSync(victimDir, join(root, `.model.tmp-${process.pid}`));
    symlinkSync(victimDir, join(root, `model.old-${process.pid}`));
    const size = paramLayout(model).size;
    for (const v of [1, 2]) {
      await saveModel(dir, { model, params: new Float32Array(size).fill(v), maxLen: 0, keep: "first", vocabPath, vocabHash: "h", training: {} });
      assert.equal(loadModel(dir).params[0], v);
    }
    assert.deepEqual(readdirSync(victimDir), ["keep.txt"], "nothing written into the link's target");
    assert.equal(readFileSync(join(victimDir, "keep.txt"), "utf8"), PRECIOUS);
    assert.equal(lstatSync(dir).isDirectory(), true);
    assert.equal((lstatSync(dir).mode & 0o777).toString(8), "755", "readable by others, like a directory made with the default umask");
    assert.deepEqual(readdirSync(root).sort(), [`.model.tmp-${process.pid}`, "model", `model.old-${process.pid}`, "victim", "vocab.json"], "no temporary left behind");
  } finally {
    cleanup(root);
  }
});

test("removeStaleTemps removes what a dead writer left (links not followed) and keeps a live writer's files", () => {
  const root = tempDir("imdb-atomic-");
  try {
    const victim = join(root, "victim");
    mkdirSync(victim);
    writeFileSync(join(victim, "keep.txt"), PRECIOUS);
    const dead = 2 ** 22 + 12345; // above Linux's pid_max: never a live process
    writeFileSync(join(root, `last.ckpt.tmp-${dead}-abcdef012345`), "torn");
    writeFileSync(join(root, `last.ckpt.tmp-${dead}`), "torn, old name");
    symlinkSync(victim, join(root, `.model.tmp-${dead}-AbCdEf`));
    writeFileSync(join(root, `last.ckpt.tmp-${process.pid}-abcdef012345`), "in progress");
    removeStaleTemps(join(root, "last.ckpt"));
    removeStaleTemps(join(root, "model"));
    assert.deepEqual(readdirSync(root).sort(), [`last.ckpt.tmp-${process.pid}-abcdef012345`, "victim"]);
    assert.deepEqual(readdirSync(victim), ["keep.txt"]);
  } finally {
    cleanup(root);
  }
});
