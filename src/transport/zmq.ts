// ZeroMQ transport: the only module that imports `zeromq`. A ROUTER the coordinator binds and a DEALER
// each worker connects, both carrying multipart messages (see src/protocol.ts). Sends are serialised
// through a small explicit queue (zeromq v6 refuses a second concurrent send), checked against the size
// limit BEFORE sending (ZeroMQ silently drops a message over the receiver's maxMessageSize and resets the
// connection), and Buffers over 128 bytes go out without a copy.
import * as zmq from "zeromq";
import { ConnectionError, ProtocolError } from "../errors.js";

export interface ChannelOptions {
  /** Largest message this side sends or accepts, in bytes. */
  maxBytes: number;
  /** How long a send may wait at the high-water mark before failing, ms (default 10 s). */
  sendTimeoutMs?: number;
}

/** ZeroMQ drops messages over maxMessageSize without telling anyone; we let up to 2× through so that
 *  the application can refuse them with a message naming the sender, and drop only beyond that. */
const RECEIVE_SLACK = 2;

function checkSize(frames: readonly Buffer[], maxBytes: number, to: string): number {
  let n = 0;
  for (const f of frames) n += f.length;
  if (n > maxBytes) {
    throw new ProtocolError(`refusing to send a ${n}-byte message to ${to}: over the ${maxBytes}-byte limit (ZeroMQ would drop it silently)`, { code: "E_PROTOCOL_SIZE" });
  }
  return n;
}

/** Runs async sends one at a time, in order. */
class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function wrapSendError(err: unknown, to: string): Error {
  const code = (err as { code?: string }).code;
  if (code === "EHOSTUNREACH") return new ConnectionError(`peer ${to} is not connected`, { cause: err });
  if (code === "EAGAIN") return new ConnectionError(`send to ${to} timed out at the high-water mark (peer not reading)`, { cause: err });
  return new ConnectionError(`send to ${to} failed: ${(err as Error).message}`, { cause: err });
}

export interface Incoming {
  /** Routing id of the sender (ROUTER side) or "coordinator" (DEALER side). */
  peer: string;
  frames: Buffer[];
}

/** The coordinator's socket: binds, receives from many workers, sends to one by routing id. */
export class RouterChannel {
  private readonly queue = new SendQueue();
  private closed = false;
  bytesSent = 0;
  bytesReceived = 0;
  private constructor(private readonly sock: zmq.Router, readonly endpoint: string, private readonly opts: ChannelOptions) {}

  /** Bind to `endpoint` ("tcp://127.0.0.1:*" picks a free port; read `.endpoint` back). */
  static async bind(endpoint: string, opts: ChannelOptions): Promise<RouterChannel> {
    const sock = new zmq.Router({
      mandatory: true,
      handover: true,
      linger: 0,
      maxMessageSize: opts.maxBytes * RECEIVE_SLACK,
      sendTimeout: opts.sendTimeoutMs ?? 10_000,
      sendHighWaterMark: 16,
      receiveHighWaterMark: 64,
      heartbeatInterval: 500,
      heartbeatTimeout: 2000,
    });
    try {
      await sock.bind(endpoint);
    } catch (err) {
      sock.close();
      throw new ConnectionError(`cannot bind ${endpoint}: ${(err as Error).message}`, { cause: err });
    }
    return new RouterChannel(sock, sock.lastEndpoint ?? endpoint, opts);
  }

  async send(peer: string, frames: readonly Buffer[]): Promise<void> {
    const n = checkSize(frames, this.opts.maxBytes, peer);
    await this.queue.run(async () => {
      if (this.closed) throw new ConnectionError(`channel closed; cannot send to ${peer}`);
      try {
        await this.sock.send([peer, ...frames]);
      } catch (err) {
        throw wrapSendError(err, peer);
      }
    });
    this.bytesSent += n;
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
  }
  [Symbol.dispose](): void { this.close(); }
}

/** A worker's socket: connects to the coordinator with its name as routing id. ZeroMQ reconnects by itself. */
export class DealerChannel {
  private readonly queue = new SendQueue();
  private closed = false;
  private constructor(private readonly sock: zmq.Dealer, readonly endpoint: string, private readonly opts: ChannelOptions) {}

  static connect(endpoint: string, name: string, opts: ChannelOptions): DealerChannel {
    const sock = new zmq.Dealer({
      routingId: name,
      linger: 0,
      maxMessageSize: opts.maxBytes * RECEIVE_SLACK,
      sendTimeout: opts.sendTimeoutMs ?? 10_000,
      sendHighWaterMark: 16,
      reconnectInterval: 100,
      reconnectMaxInterval: 2000,
      heartbeatInterval: 500,
      heartbeatTimeout: 2000,
    });
    try {
      sock.connect(endpoint);
    } catch (err) {
      sock.close();
      throw new ConnectionError(`cannot connect to ${endpoint}: ${(err as Error).message}`, { cause: err });
    }
    return new DealerChannel(sock, endpoint, opts);
  }

  /** Send one message. `unchecked` skips the size check (tests use it to send an oversize message on purpose). */
  async send(frames: readonly Buffer[], opts: { unchecked?: boolean } = {}): Promise<void> {
    if (!opts.unchecked) checkSize(frames, this.opts.maxBytes, this.endpoint);
    await this.queue.run(async () => {
      if (this.closed) throw new ConnectionError(`channel to ${this.endpoint} closed`);
      try {
        await this.sock.send(frames as Buffer[]);
      } catch (err) {
        throw wrapSendError(err, this.endpoint);
      }
    });
  }

  /** Receive the next message, or null after `timeoutMs` (the socket stays usable). */
  async receive(timeoutMs?: number): Promise<Buffer[] | null> {
    if (timeoutMs === undefined) return await this.sock.receive();
    this.sock.receiveTimeout = timeoutMs;
    try {
      return await this.sock.receive();
    } catch (err) {
      if ((err as { code?: string }).code === "EAGAIN") return null;
      throw err;
    } finally {
      this.sock.receiveTimeout = -1;
    }
  }

  async *messages(): AsyncGenerator<Incoming> {
    try {
      for await (const frames of this.sock) yield { peer: "coordinator", frames };
    } catch (err) {
      if (!this.closed) throw new ConnectionError(`receive from ${this.endpoint} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
  [Symbol.dispose](): void { this.close(); }
}
