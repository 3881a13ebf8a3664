// settledWithin: a limited wait whose timer never outlives it (a pending timer keeps a process alive).
import { test } from "node:test";
import assert from "node:assert/strict";
import { settledWithin } from "../src/wait.js";

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("settledWithin: true when the promise settles first (rejections too), false at the limit; no timer left behind", async () => {
  const before = timers();
  assert.equal(await settledWithin(Promise.resolve(1), 60_000), true);
  assert.equal(timers(), before, "the 60 s timer was cleared, so it cannot hold the process open");
  assert.equal(await settledWithin(Promise.reject(new Error("gone")), 60_000), true);
  assert.equal(timers(), before);
  assert.equal(await settledWithin(new Promise(() => {}), 20), false);
  assert.equal(timers(), before);
});
