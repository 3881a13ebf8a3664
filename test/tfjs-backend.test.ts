// src/tfjs.ts starts one tfjs backend per process; the webgpu backend's entry point comes from the loader
// the caller injects (src/engine/index.ts: the `webgpu` package's owner), so tfjs.ts imports no engine module.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { UnavailableError } from "../src/errors.js";
import { backendLoaders } from "../src/engine/index.js";
import { currentBackend, useBackend } from "../src/tfjs.js";

test("tfjs.ts imports no engine module", () => {
  const src = readFileSync(new URL("../../src/tfjs.ts", import.meta.url), "utf8");
  const imports = [...src.matchAll(/(?:from\s+|import\s*\(\s*)"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(imports.length > 3, "the import scan found the module's imports");
  assert.deepEqual(imports.filter((p) => p.includes("engine/") || p === "webgpu"), []);
});

test("one backend per process; webgpu only through an injected loader", async () => {
  assert.equal(currentBackend(), undefined);
  await assert.rejects(useBackend("webgpu"), (err: Error) => err instanceof UnavailableError && /backend webgpu is not available: no WebGPU loader/.test(err.message));
  // With the engine's loader: a real GPU starts it; without one (CI) the reason is Dawn's or the Vulkan loader's.
  const gpu = await useBackend("webgpu", backendLoaders).then((name) => name, (err: Error) => err);
  if (gpu instanceof Error) {
    assert.ok(gpu instanceof UnavailableError, String(gpu));
    assert.match(gpu.message, /^backend webgpu is not available: /);
    assert.equal(currentBackend(), undefined, "a failed start leaves no backend behind");
    assert.equal(await useBackend("wasm"), "wasm");
    await assert.rejects(useBackend("cpu"), /backend wasm already runs in this process; cannot switch to cpu/);
    assert.equal(await useBackend("auto"), "wasm", "auto takes whatever runs");
  } else {
    assert.equal(gpu, "webgpu");
    await assert.rejects(useBackend("wasm"), /backend webgpu already runs in this process; cannot switch to wasm/);
  }
});
