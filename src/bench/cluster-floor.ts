// The wire's floor for `bench cluster`: the bare ZeroMQ exchange of a step's bytes and nothing else — no
// protocol, no reduce, no Adam, no parameters taken in. A ROUTER (on the coordinator's host) hands each of N
// DEALERs (on the workers' hosts) a message of a task's pull bytes, one after the other as the coordinator
// hands out tasks; each waits the compute time, as the synthetic workers do (./gpu-wait.ts), and answers with a
// message of a task's push bytes; a round ends with the last answer. What a round takes beyond the compute is
// what moving those bytes costs on this machine and link (ZeroMQ, the kernel, the cores): the least a step
// round of that many bytes can cost here. Both ends free their received messages as the real roles do
// (../heap.ts). A message's first frame is its kind: 0 data, 1 the end.
// Run as:
//   node cluster-floor.js router <bind> <workers> <pullBytes> <pushBytes> <rounds> <warmup>
//     (prints `listening on <endpoint>` on stderr; at the end, the measured rounds' ms as one JSON line on stdout)
//   node cluster-floor.js dealer <endpoint> <name> <computeMs> <pullBytes> <pushBytes>
import { DealerChannel, RouterChannel } from "../transport/zmq/index.js";
import { releaseMessages, tuneHeapForMessages } from "../heap.js";
import { until } from "./gpu-wait.js";

const DATA = Buffer.from([0]), END = Buffer.from([1]);

/** The size limit both ends accept: the larger message, with room for the kind frame. */
const limit = (pull: number, push: number) => Math.max(pull, push) + 1024;

async function router(bind: string, n: number, pull: number, push: number, rounds: number, warmup: number): Promise<void> {
  tuneHeapForMessages(Math.max(pull, push) / 4);
  const ch = await RouterChannel.bind(bind, { maxBytes: limit(pull, push) });
  process.stderr.write(`listening on ${ch.endpoint}\n`);
  const it = ch.messages()[Symbol.asyncIterator]();
  const next = async () => {
    const m = await it.next();
    if (m.done) throw new Error("the floor's socket closed");
    return m.value;
  };
  const peers: string[] = [];
  while (peers.length < n) { const m = await next(); if (!peers.includes(m.peer)) peers.push(m.peer); }
  const payload = Buffer.alloc(pull, 1);
  const ms: number[] = [];
  for (let r = 0; r < warmup + rounds; r++) {
    const t0 = performance.now();
    await Promise.all(peers.map((p) => ch.send(p, [DATA, payload])));
    releaseMessages(); // the tasks are out: as the coordinator does
    for (let k = 0; k < n; k++) await next();
    if (r >= warmup) ms.push(performance.now() - t0);
  }
  await Promise.all(peers.map((p) => ch.send(p, [END])));
  process.stdout.write(JSON.stringify({ ms }) + "\n");
  await new Promise((r) => setTimeout(r, 50)); // let ZeroMQ flush the ends (linger is 0)
  ch.close();
}

async function dealer(endpoint: string, name: string, computeMs: number, pull: number, push: number): Promise<void> {
  tuneHeapForMessages(Math.max(pull, push) / 4);
  const ch = DealerChannel.connect(endpoint, name, { maxBytes: limit(pull, push) });
  await ch.send([DATA]);
  const answer = Buffer.alloc(push, 1);
  for await (const { frames } of ch.messages()) {
    if (frames[0]?.[0] !== 0) break;
    const end = performance.now() + computeMs;
    setImmediate(releaseMessages); // while the GPU computes, as a real worker does
    await until(end);
    await ch.send([DATA, answer]);
  }
  ch.close();
}

const [role, ...a] = process.argv.slice(2);
const num = (s: string | undefined) => Number(s);
const run = role === "router" ? router(a[0]!, num(a[1]), num(a[2]), num(a[3]), num(a[4]), num(a[5]))
  : role === "dealer" ? dealer(a[0]!, a[1]!, num(a[2]), num(a[3]), num(a[4]))
  : Promise.reject(new Error(`cluster-floor: unknown role ${role}`));
run.then(() => process.exit(0), (err: Error) => { process.stderr.write(`cluster-floor ${role}: ${err.stack ?? err}\n`); process.exit(1); });
