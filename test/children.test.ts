// The processes this program starts (src/children.ts). A process's last message to the parent that started it
// arrives whole, however large, though the process disconnects and exits right after sending it: the
// coordinator's report to `train` at the end of a long run (process.send alone drops a message still in the pipe
// when the channel closes). And their V8 young generation stays at the size Node.js 20 gives it.
import test from "node:test";
import assert from "node:assert/strict";
import { fork, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import { tempDir, cleanup } from "./helpers/fixture.js";

const CHILDREN = pathToFileURL(fileURLToPath(new URL("../src/children.js", import.meta.url))).href;
const { childEnv } = await import(CHILDREN) as typeof import("../src/children.js");

test("sendFinal: a 4 MB last message reaches the parent though the child disconnects and exits at once", async () => {
  const dir = tempDir("imdb-ipc-");
  try {
    const script = join(dir, "child.mjs");
    writeFileSync(script, `import { sendFinal } from ${JSON.stringify(CHILDREN)};
await sendFinal({ type: "result", blob: "x".repeat(4_000_000) });
process.disconnect();
process.exit(0);
`);
    const child = fork(script, [], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    let got = -1;
    child.on("message", (m: { type: string; blob: string }) => { if (m.type === "result") got = m.blob.length; });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    await new Promise((r) => setImmediate(r)); // a message read with the exit is delivered by now
    assert.equal(code, 0);
    assert.equal(got, 4_000_000);
  } finally {
    cleanup(dir);
  }
});

test("childEnv: a started process's young generation stays within 32 MB however much short-lived garbage it makes; a size in NODE_OPTIONS is kept", () => {
  // 20 million short-lived objects: enough for Node.js 24's V8 to grow its new space to 128 MB by itself
  const script = `let keep = []; for (let i = 0; i < 2e7; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 20000) keep = []; }
const s = require("node:v8").getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
process.stdout.write(String(s.space_size));`;
  const run = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(process.execPath, ["-e", script], { env, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout) / 2 ** 20;
  };
  const mb = run(childEnv());
  assert.ok(mb > 0 && mb <= 32, `new space ${mb} MB`);
  assert.match(childEnv({}).NODE_OPTIONS ?? "", /--max-semi-space-size=16/);
  const own = { ...process.env, NODE_OPTIONS: "--max-semi-space-size=4" };
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = own.NODE_OPTIONS;
  try {
    assert.equal(childEnv().NODE_OPTIONS, "--max-semi-space-size=4", "the user's size is left alone");
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = saved;
  }
});
