// A synthetic worker for `bench allreduce`: no engine, no dataset. It answers each Assign at once with a
// fixed gradient of the model's size, so that a round measures only transport + reduce + clip + Adam +
// broadcast. Before joining, it serves a raw ZeroMQ exchange of the same bytes (the baseline).
// Run as: node synthetic.js <rawEndpoint> <coordinatorEndpoint> <name>
import { Kind, encode, decode, DEFAULT_MAX_MESSAGE_BYTES, ParamAssembler } from "../protocol.js";
import { DealerChannel } from "../transport/zmq.js";
import { join } from "./worker.js";
import { logger } from "../output.js";

async function main(): Promise<void> {
  const [rawEndpoint, coordEndpoint, name] = process.argv.slice(2) as [string, string, string];
  const log = logger(`synthetic ${name}`);
  // 1. raw baseline: reply to each message with a buffer as large as the one received
  const raw = DealerChannel.connect(rawEndpoint, name, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES });
  await raw.send([Buffer.from("hello")]);
  let reply: Buffer | null = null;
  for (;;) {
    const frames = (await raw.receive())!;
    if (frames.length === 1 && frames[0]!.toString() === "bye") break;
    const n = frames.reduce((s, f) => s + f.length, 0);
    if (!reply || reply.length !== n) reply = Buffer.alloc(n, 1);
    await raw.send([reply]);
  }
  raw.close();
  // 2. the real protocol
  const { channel, welcome } = await join(coordEndpoint, name, { timeoutS: 60, log });
  const grads = new Float32Array(welcome.layoutSize).fill(1e-3);
  const head = (kind: Kind, step: number, version: number) => ({ kind, runId: welcome.runId, step, paramVersion: version, slot: welcome.slot, layoutHash: welcome.layoutHash });
  await channel.send(encode(head(Kind.Ready, 0, 0), { backend: "synthetic" }));
  const assembler = new ParamAssembler(welcome.layoutSize); // reassembles Params chunks as a real worker does
  for await (const { frames } of channel.messages()) {
    const m = decode(frames, { maxBytes: welcome.maxBytes, from: "coordinator" });
    if (m.header.kind === Kind.Stop) break;
    if (m.header.kind === Kind.Params) { assembler.put(m); continue; }
    if ((m.header.kind === Kind.Assign || m.header.kind === Kind.Eval) && !assembler.paramsFor(m)) throw new Error(`no parameters for version ${m.header.paramVersion}`);
    const body = m.body as { task: number; batches: number[] };
    if (m.header.kind === Kind.Assign) {
      await channel.send(encode(head(Kind.Gradient, m.header.step, m.header.paramVersion), { task: body.task, lossSum: 0.69 * 64, correct: 32, count: 64, seconds: 0 }, grads));
    } else if (m.header.kind === Kind.Eval) {
      await channel.send(encode(head(Kind.EvalResult, m.header.step, m.header.paramVersion), { task: body.task, lossSum: 0, correct: 0, count: 0 }));
    }
  }
  channel.close();
}

main().catch((err) => { process.stderr.write(`synthetic worker: ${(err as Error).stack ?? err}\n`); process.exit(1); });
