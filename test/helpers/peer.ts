// A hand-written peer that speaks the wire protocol over a real DEALER socket: an honest fake worker (joins,
// says Ready, answers tasks with the gradient it is given) or a hostile one (sends whatever a test builds).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { DealerChannel } from "../../src/transport/zmq/index.js";
import { Kind, decode, encode, type Message } from "../../src/protocol/wire.js";
import { readBody, type Bodies, type WelcomeBody } from "../../src/protocol/bodies.js";

export class Peer {
  welcome!: WelcomeBody;
  private constructor(readonly ch: DealerChannel, readonly routingId: string) {}

  /** The worker name the routing id carries. */
  get name(): string { return this.routingId.replace(/#[0-9a-f]+$/, ""); }

  /** Connect as `routingId` (a worker's name, or its name and a random part: "w0#5f3a…"); nothing is sent yet. */
  static connect(endpoint: string, routingId: string): Peer {
    return new Peer(DealerChannel.connect(endpoint, routingId, { maxBytes: 1 << 26 }), routingId);
  }

  /** Connect, Join, wait for the Welcome, and (unless told not to) say Ready. */
  static async join(endpoint: string, name: string, o: { pid?: number; ready?: boolean } = {}): Promise<Peer> {
    const p = Peer.connect(endpoint, `${name}#${randomBytes(8).toString("hex")}`);
    // like a worker, Join again every 0.5 s until welcomed (a first connection may be dropped: a routing id
    // that is still in use by a connection the coordinator has not seen close yet is refused)
    for (let attempt = 0; ; attempt++) {
      await p.send(Kind.Join, { name, pid: o.pid ?? 4242 });
      try {
        p.welcome = readBody(await p.next(Kind.Welcome, 500), Kind.Welcome, "coordinator");
        break;
      } catch (err) {
        if (attempt >= 20) throw err;
      }
    }
    if (o.ready !== false) await p.send(Kind.Ready, { backend: "test" });
    return p;
  }

  /** A message of this run (or run 0 before the Welcome), with the run's layout hash. */
  frames<K extends Kind>(kind: K, body?: Bodies[K], at: { step?: number; version?: number } = {}, payload?: Float32Array): Buffer[] {
    const w = this.welcome;
    return encode({ kind, runId: w?.runId ?? 0, step: at.step ?? 0, paramVersion: at.version ?? 0, slot: w?.slot ?? 0, layoutHash: w?.layoutHash ?? "" }, body, payload);
  }

  async send<K extends Kind>(kind: K, body?: Bodies[K], at: { step?: number; version?: number } = {}, payload?: Float32Array): Promise<void> {
    await this.ch.send(this.frames(kind, body, at, payload));
  }

  async raw(frames: Buffer[]): Promise<void> {
    await this.ch.send(frames, { unchecked: true });
  }

  /** The next message of `kind` (others are skipped), failing after `timeoutMs`. */
  async next(kind: Kind, timeoutMs = 10_000): Promise<Message> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const frames = await this.ch.receive(Math.max(1, until - Date.now()));
      assert.ok(frames, `${this.routingId}: no ${Kind[kind]} within ${timeoutMs} ms`);
      const m = decode(frames, { maxBytes: 1 << 26, from: "coordinator" });
      if (m.header.kind === kind) return m;
    }
  }

  /** The next Assign with its body. */
  async task(timeoutMs = 10_000): Promise<{ m: Message; body: Bodies[Kind.Assign] }> {
    const m = await this.next(Kind.Assign, timeoutMs);
    return { m, body: readBody(m, Kind.Assign, "coordinator") };
  }

  /** Answer a task with `grad` (the gradient of the loss sum) and `count` samples. */
  async answer(t: { m: Message; body: Bodies[Kind.Assign] }, grad: Float32Array, count: number, extra: Partial<Bodies[Kind.Gradient]> = {}): Promise<void> {
    await this.send(Kind.Gradient, { task: t.body.task, lossSum: 0.69 * count, correct: 0, count, ...extra }, { step: t.m.header.step, version: t.m.header.paramVersion }, grad);
  }

  /** Read and drop everything sent to this peer until it is closed. */
  async drain(): Promise<void> {
    try { for await (const _ of this.ch.messages()) { /* dropped */ } } catch { /* closed */ }
  }

  close(): void { this.ch.close(); }
}
