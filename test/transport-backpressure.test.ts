// Back-pressure on the coordinator's ROUTER with real processes: a worker process that stops reading
// (SIGSTOP) fills its queue at the high-water mark. Sends to it must wait for it (in order) while other peers'
// messages keep flowing, and fail with a clear error only when it stays silent past the send timeout.
// (zeromq.js sends on a mandatory ROUTER without blocking whenever ANY peer is writable, so before the
// per-peer wait a full peer failed at once: 8 workers starting together on 2 cores were all evicted.)
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DealerChannel, RouterChannel } from "../src/transport/zmq/index.js";

const ZMQ_MODULE = fileURLToPath(new URL("../src/transport/zmq/index.js", import.meta.url));
const MSG = 1 << 20; // 1 MiB, the size of a parameter chunk
const MAX = 4 << 20;

/** A child process that connects as DEALER `slow`, says hello, then reads `n` messages and checks their order. */
function slowPeer(endpoint: string, n: number) {
  const dir = mkdtempSync(join(tmpdir(), "bp-"));
  const script = join(dir, "peer.mjs");
  writeFileSync(script, `
    import { DealerChannel } from ${JSON.stringify(ZMQ_MODULE)};
    const ch = DealerChannel.connect(${JSON.stringify(endpoint)}, "slow", { maxBytes: ${MAX} });
    await ch.send([Buffer.from("hello")]);
    let got = 0;
    for (; got < ${n};) {
      const frames = await ch.receive();
      const seq = frames[0].readUInt32LE(0);
      if (seq !== got) { console.log("out of order: " + seq + " after " + got); process.exit(1); }
      got++;
    }
    console.log("got " + got + " in order");
    ch.close();
    process.exit(0);
  `);
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => { out += String(d); });
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  return { child, exited, out: () => out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function numbered(seq: number): Buffer[] {
  const b = Buffer.alloc(MSG);
  b.writeUInt32LE(seq, 0);
  return [b];
}

async function hellos(router: RouterChannel, names: string[]): Promise<AsyncGenerator<{ peer: string; frames: Buffer[] }>> {
  const it = router.messages();
  const want = new Set(names);
  while (want.size) {
    const { value } = await it.next();
    want.delete(value!.peer);
  }
  return it;
}

test("a stopped worker's messages wait at the high-water mark, in order, without holding up other peers", async () => {
  const router = await RouterChannel.bind("tcp://127.0.0.1:*", { maxBytes: MAX, sendTimeoutMs: 30_000 });
  const N = 64;
  const peer = slowPeer(router.endpoint, N);
  const fast = DealerChannel.connect(router.endpoint, "fast", { maxBytes: MAX });
  try {
    await fast.send([Buffer.from("hello")]);
    await hellos(router, ["slow", "fast"]);
    peer.child.kill("SIGSTOP");
    let slowDone = 0;
    const slowSends = Array.from({ length: N }, (_, i) => router.send("slow", numbered(i)).then(() => { slowDone++; }));
    // the other peer is served while `slow` is full
    for (let i = 0; i < 5; i++) await router.send("fast", numbered(i));
    for (let i = 0; i < 5; i++) {
      const frames = await fast.receive(10_000);
      assert.ok(frames, "the fast peer received its messages while the slow one was stopped");
      assert.equal(frames[0]!.readUInt32LE(0), i);
    }
    assert.ok(slowDone < N, `some sends to the stopped peer are still waiting (${slowDone} of ${N} done)`);
    await new Promise((r) => setTimeout(r, 1000)); // well past the moment its queue filled
    peer.child.kill("SIGCONT");
    await Promise.all(slowSends);
    assert.equal(await peer.exited, 0, peer.out());
    assert.match(peer.out(), new RegExp(`got ${N} in order`));
  } finally {
    peer.child.kill("SIGKILL");
    fast.close();
    router.close();
    peer.cleanup();
  }
});

test("a peer that stays stopped past the send timeout fails the send with a clear error", async () => {
  const router = await RouterChannel.bind("tcp://127.0.0.1:*", { maxBytes: MAX, sendTimeoutMs: 1500 });
  const peer = slowPeer(router.endpoint, 1000);
  const fast = DealerChannel.connect(router.endpoint, "fast", { maxBytes: MAX });
  try {
    await fast.send([Buffer.from("hello")]);
    await hellos(router, ["slow", "fast"]);
    peer.child.kill("SIGSTOP");
    const sends = Array.from({ length: 200 }, (_, i) => router.send("slow", numbered(i)));
    const results = await Promise.allSettled(sends);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    assert.ok(failed.length > 0, "sends to a peer silent past the timeout fail");
    assert.match(String(failed[0]!.reason), /send to slow timed out at the high-water mark/);
    // the socket still serves the others
    await router.send("fast", numbered(7));
    const frames = await fast.receive(10_000);
    assert.equal(frames?.[0]?.readUInt32LE(0), 7);
  } finally {
    peer.child.kill("SIGKILL");
    fast.close();
    router.close();
    peer.cleanup();
  }
});
