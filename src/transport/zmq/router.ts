// The coordinator's socket: a ROUTER that binds, receives from many workers and sends to one by routing id;
// a CURVE server admitting only the given client keys when it has keys.
import * as zmq from "zeromq";
import { ConnectionError, ProtocolError } from "../../errors.js";
import { isZ85Key } from "./keys.js";
import { ZapHandler } from "./zap.js";
import { watchHandshakes } from "./monitor.js";
import { RECEIVE_SLACK, SendQueue, checkSize, wrapSendError } from "./queue.js";
import type { ChannelOptions, Incoming, RouterOptions } from "./types.js";

/** Messages that may wait for one peer (a worker gets a few per step; more means it stopped reading). */
const MAX_PENDING_PER_PEER = 256;

/** The coordinator's socket: binds, receives from many workers, sends to one by routing id. */
export class RouterChannel {
  private readonly queue = new SendQueue();
  /** Per peer: how many of its sends wait (bounded by MAX_PENDING_PER_PEER). */
  private readonly pending = new Map<string, number>();
  /** Per peer: the tail of its pending sends (a peer's messages leave in the order they were sent). */
  private readonly peerTail = new Map<string, Promise<unknown>>();
  private closed = false;
  bytesSent = 0;
  bytesReceived = 0;
  private constructor(private readonly sock: zmq.Router, readonly endpoint: string, private readonly opts: ChannelOptions, private readonly releaseZap?: () => void) {}

  /** True when the socket is a CURVE server. */
  get secure(): boolean { return this.releaseZap !== undefined; }

  /** Bind to `endpoint` ("tcp://127.0.0.1:*" picks a free port; read `.endpoint` back). */
  static async bind(endpoint: string, opts: RouterOptions): Promise<RouterChannel> {
    let zap: { domain: string; release(): void } | undefined;
    if (opts.curve) {
      for (const c of opts.curve.clients) if (!isZ85Key(c.publicKey)) throw new ProtocolError(`CURVE client key ${c.name} is not a 40-character Z85 key`, { code: "E_KEY" });
      if (!isZ85Key(opts.curve.secretKey)) throw new ProtocolError("CURVE server secret key is not a 40-character Z85 key", { code: "E_KEY" });
      zap = await ZapHandler.register({ clients: new Map(opts.curve.clients.map((c) => [c.publicKey, c.name])), onDenied: opts.onAuthFailure });
    }
    const sock = new zmq.Router({
      ...(opts.curve ? { curveServer: true, curveSecretKey: opts.curve.secretKey, zapDomain: zap!.domain } : {}),
      mandatory: true,
      handover: false, // a second connection with a connected worker's routing id is refused, never handed its identity
      linger: 0,
      maxMessageSize: opts.maxBytes * RECEIVE_SLACK,
      sendTimeout: 0, // never block the socket for one peer: send() waits per peer (see below)
      sendHighWaterMark: 16,
      receiveHighWaterMark: 64,
      heartbeatInterval: 500,
      heartbeatTimeout: 2000,
    });
    if (opts.onAuthFailure) void watchHandshakes(sock, opts.onAuthFailure);
    try {
      await sock.bind(endpoint);
    } catch (err) {
      sock.close();
      zap?.release();
      throw new ConnectionError(`cannot bind ${endpoint}: ${(err as Error).message}`, { cause: err });
    }
    return new RouterChannel(sock, sock.lastEndpoint ?? endpoint, opts, zap?.release);
  }

  /**
   * Send one message to `peer`, waiting (up to the send timeout) while that peer's queue is at its high-water
   * mark. A mandatory ROUTER cannot wait for one peer: zeromq.js sends without blocking whenever ANY peer is
   * writable and so fails at once with EAGAIN for a peer whose queue is full (a worker busy for a moment,
   * or a burst of parameter chunks). So a full peer is retried here, with a short growing pause, off the
   * socket's send queue: the other peers' messages go out meanwhile, and this peer's stay in order.
   */
  async send(peer: string, frames: readonly Buffer[]): Promise<void> {
    const n = checkSize(frames, this.opts.maxBytes, peer);
    // a peer that does not read its socket must not make us hold messages without bound
    const waiting = this.pending.get(peer) ?? 0;
    if (waiting >= MAX_PENDING_PER_PEER) throw new ConnectionError(`send to ${peer} refused: ${waiting} messages already wait for it (peer not reading)`);
    this.pending.set(peer, waiting + 1);
    // the wait counts from this call: messages queued behind one that timed out do not wait again
    const deadline = performance.now() + (this.opts.sendTimeoutMs ?? 10_000);
    const attempt = () => this.sendWaiting(peer, frames, deadline);
    const run = (this.peerTail.get(peer) ?? Promise.resolve()).then(attempt, attempt);
    const tail = run.catch(() => undefined);
    this.peerTail.set(peer, tail);
    void tail.then(() => {
      if (this.peerTail.get(peer) === tail) this.peerTail.delete(peer);
      const left = (this.pending.get(peer) ?? 1) - 1;
      if (left > 0) this.pending.set(peer, left); else this.pending.delete(peer);
    });
    await run;
    this.bytesSent += n;
  }

  private async sendWaiting(peer: string, frames: readonly Buffer[], deadline: number): Promise<void> {
    let pause = 1;
    for (;;) {
      let full = false;
      await this.queue.run(async () => {
        if (this.closed) throw new ConnectionError(`channel closed; cannot send to ${peer}`);
        try {
          await this.sock.send([peer, ...frames]);
        } catch (err) {
          if ((err as { code?: string }).code !== "EAGAIN") throw wrapSendError(err, peer);
          full = true;
        }
      });
      if (!full) return;
      const left = deadline - performance.now();
      if (left <= 0 || this.closed) throw wrapSendError(Object.assign(new Error("EAGAIN"), { code: "EAGAIN" }), peer);
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
      pause = Math.min(pause * 2, 25);
    }
  }

  /** Messages as they arrive; ends when the channel is closed. */
  async *messages(): AsyncGenerator<Incoming> {
    try {
      for await (const [id, ...frames] of this.sock) {
        let n = 0;
        for (const f of frames) n += f.length;
        this.bytesReceived += n;
        yield { peer: id!.toString("utf8"), frames };
      }
    } catch (err) {
      if (!this.closed) throw new ConnectionError(`receive on ${this.endpoint} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    this.releaseZap?.();
  }
  [Symbol.dispose](): void { this.close(); }
}

