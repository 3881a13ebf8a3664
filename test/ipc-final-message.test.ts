// A process's last message to the parent that started it arrives whole, however large, though the process
// disconnects and exits right after sending it: the coordinator's report to `train` at the end of a long run
// (src/children.ts's sendFinal; process.send alone drops a message still in the pipe when the channel closes).
import test from "node:test";
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import { tempDir, cleanup } from "./helpers/fixture.js";

const CHILDREN = pathToFileURL(fileURLToPath(new URL("../src/children.js", import.meta.url))).href;

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
