// A synthetic worker for `bench allreduce`: no engine, no dataset. It answers each Assign at once with a
// fixed gradient of the model's size, so that a round measures only transport + reduce + clip + Adam +
// broadcast. Before joining, it serves a raw ZeroMQ exchange of the same bytes (the baseline).
// It follows the Welcome's gradient encoding (fp16, embedding rows: `touchedRows` rows of the embedding are
// nonzero, as in a batch of real reviews) and a sharded coordinator (slices to the shards, their parameter
// slices reassembled), like a real worker.
// Run as: node synthetic.js <rawEndpoint | -> <coordinatorEndpoint> <name> [touchedRows]
import { Kind, encode, decode, DEFAULT_MAX_MESSAGE_BYTES } from "../protocol/wire.js";
import { ParamAssembler } from "../protocol/params.js";
import { readBody } from "../protocol/bodies.js";
import { encodeGradient, encodeRows, sparseBlockOf } from "../protocol/gradcodec.js";
import { gradientPieces, sliceView } from "../protocol/slices.js";
import { paramLayout } from "../model/layout.js";
import { DealerChannel } from "../transport/zmq/index.js";
import { join } from "../workers/index.js";
import { logger } from "../output.js";

async function main(): Promise<void> {
  const [rawEndpoint, coordEndpoint, name, touched] = process.argv.slice(2) as [string, string, string, string | undefined];
  const log = logger(`synthetic ${name}`);
  // 1. raw baseline: reply to each message with a buffer as large as the one received
  if (rawEndpoint !== "-") {
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
  }
  // 2. the real protocol
  const { channel, welcome, routingId } = await join(coordEndpoint, name, { timeoutS: 60, log });
  const grads = new Float32Array(welcome.layoutSize).fill(1e-3);
  const block = sparseBlockOf(paramLayout(welcome.model));
  if (block) { // only `touched` embedding rows are nonzero (spread over the vocabulary)
    const rows = Math.min(block.rows, Number(touched ?? 5000));
    grads.fill(0, block.offset, block.offset + block.rows * block.width);
    for (let k = 0; k < rows; k++) grads.fill(1e-3, block.offset + Math.floor((k * block.rows) / rows) * block.width, block.offset + (Math.floor((k * block.rows) / rows) + 1) * block.width);
  }
  const head = (kind: Kind, step: number, version: number) => ({ kind, runId: welcome.runId, step, paramVersion: version, slot: welcome.slot, layoutHash: welcome.layoutHash });
  const f16 = welcome.grad?.dtype === "fp16";
  const host = /^tcp:\/\/(.*):\d+$/.exec(coordEndpoint)?.[1] ?? "127.0.0.1";
  const assembler = new ParamAssembler(welcome.layoutSize); // reassembles Params chunks as a real worker does
  // encoded once: the bench times transport and the coordinator, not the workers' encoding (sharded: a piece
  // of the gradient for each slice, rows where the run sends rows)
  const rowsBlock = welcome.grad?.rows ? block : null;
  const sh0 = welcome.shards;
  const pieces = sh0
    ? gradientPieces(rowsBlock ? encodeRows(grads, rowsBlock) : { rows: null, values: grads }, [{ offset: 0, length: sh0.own }, ...sh0.others].map((b) => sliceView({ offset: b.offset, length: b.length }, rowsBlock)), rowsBlock, f16)
    : [];
  const shards = (sh0?.others ?? []).map((sh, i) => {
    const ch = DealerChannel.connect(sh.endpoint ?? `tcp://${host}:${sh.port}`, routingId, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES });
    void ch.send(encode(head(Kind.Join, 0, 0), { name }));
    void (async () => { for await (const { frames } of ch.messages()) { const pm = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from: "shard" }); if (pm.header.kind === Kind.Params) assembler.put(pm, "shard"); } })();
    return { ch, g: pieces[i + 1]! };
  });
  const own = pieces[0] ?? encodeGradient(grads, { f16, block: rowsBlock });
  await channel.send(encode(head(Kind.Ready, 0, 0), { backend: "synthetic" }));
  // heartbeats as a real worker sends them: with 16 of these starting on 2 cores, the first ones wait long
  // for the last to join, and an idle worker that says nothing for 10 s is evicted
  const beat = setInterval(() => { void channel.send(encode(head(Kind.Heartbeat, 0, 0))).catch(() => {}); }, welcome.heartbeatMs);
  for await (const { frames } of channel.messages()) {
    const m = decode(frames, { maxBytes: welcome.maxBytes, from: "coordinator" });
    if (m.header.kind === Kind.Stop) break;
    if (m.header.kind === Kind.Params) { assembler.put(m, "coordinator"); continue; }
    if ((m.header.kind === Kind.Assign || m.header.kind === Kind.Eval) && !(assembler.paramsFor(m) ?? await assembler.waitFor(m.header.paramVersion, 60_000))) throw new Error(`no parameters for version ${m.header.paramVersion}`);
    if (m.header.kind === Kind.Assign) {
      const body = readBody(m, Kind.Assign, "coordinator");
      for (const sh of shards) await sh.ch.send(encode(head(Kind.Gradient, m.header.step, m.header.paramVersion), { task: body.task, gradScale: sh.g.scale }, sh.g.values, sh.g.rows ?? undefined));
      await channel.send(encode(head(Kind.Gradient, m.header.step, m.header.paramVersion), { task: body.task, lossSum: 0.69 * 64, correct: 32, count: 64, seconds: 0, gradScale: own.scale }, own.values, own.rows ?? undefined));
    } else if (m.header.kind === Kind.Eval) {
      const body = readBody(m, Kind.Eval, "coordinator");
      await channel.send(encode(head(Kind.EvalResult, m.header.step, m.header.paramVersion), { task: body.task, lossSum: 0, correct: 0, count: 0 }));
    }
  }
  clearInterval(beat);
  channel.close();
  for (const sh of shards) sh.ch.close();
}

main().catch((err) => { process.stderr.write(`synthetic worker: ${(err as Error).stack ?? err}\n`); process.exit(1); });
