// A worker's socket: a DEALER that connects with the worker's name as routing id (a CURVE client with keys);
// ZeroMQ reconnects by itself. It watches its handshakes so that a refused key is named at once.
import * as zmq from "zeromq";
import { ConnectionError, ProtocolError } from "../../errors.js";
import { isZ85Key } from "./keys.js";
import { RECEIVE_SLACK, SendQueue, checkSize, wrapSendError } from "./queue.js";
import type { ChannelOptions, DealerOptions, HandshakeTrouble, Incoming } from "./types.js";

/** A worker's socket: connects to the coordinator with its name as routing id. ZeroMQ reconnects by itself. */
export class DealerChannel {
  private readonly queue = new SendQueue();
  private closed = false;
  private trouble: HandshakeTrouble | null = null;
  /** Called when an established connection drops (the peer went away; ZeroMQ will try to reconnect). */
  onDisconnect: (() => void) | null = null;
  private constructor(private readonly sock: zmq.Dealer, readonly endpoint: string, private readonly opts: ChannelOptions) {
    void this.watch();
  }

  /** Failed handshakes since the last good one (null when the last handshake succeeded or none failed). */
  handshakeTrouble(): HandshakeTrouble | null { return this.trouble; }

  private async watch(): Promise<void> {
    // a connection that closes before its handshake completed counts too: depending on timing the peer's
    // refusal shows up as a handshake error event or only as a disconnect
    let handshaking = false;
    const fail = (kind: HandshakeTrouble["kind"], detail: string) => { this.trouble = { kind, count: (this.trouble?.count ?? 0) + 1, detail }; };
    try {
      for await (const e of this.sock.events) {
        if (e.type === "connect") handshaking = true;
        else if (e.type === "handshake") { handshaking = false; this.trouble = null; }
        else if (e.type === "handshake:error:auth" || e.type === "handshake:error:protocol" || e.type === "handshake:error:other") {
          handshaking = false;
          const err = e.error as Error & { code?: string; status?: number };
          if (e.type === "handshake:error:auth") fail("auth", `refused by the server's authentication (status ${err.status ?? "?"})`);
          else fail(e.type === "handshake:error:protocol" ? "protocol" : "other", `${err.code ?? ""} ${err.message}`.trim());
        } else if (e.type === "disconnect" && handshaking) {
          handshaking = false;
          fail("other", "the connection closed during the handshake");
        } else if (e.type === "disconnect") {
          this.onDisconnect?.();
        }
      }
    } catch {
      /* socket closed */
    }
  }

  static connect(endpoint: string, name: string, opts: DealerOptions): DealerChannel {
    if (opts.curve) {
      for (const [what, k] of [["server", opts.curve.serverKey], ["public", opts.curve.publicKey], ["secret", opts.curve.secretKey]] as const) {
        if (!isZ85Key(k)) throw new ProtocolError(`CURVE ${what} key is not a 40-character Z85 key`, { code: "E_KEY" });
      }
    }
    const sock = new zmq.Dealer({
      ...(opts.curve ? { curveServerKey: opts.curve.serverKey, curvePublicKey: opts.curve.publicKey, curveSecretKey: opts.curve.secretKey } : {}),
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
    // watch the socket's events before connecting: on localhost the first handshake can fail before a
    // monitor attached afterwards sees it, and libzmq does not retry after a mechanism mismatch it detected
    // itself, so the worker would wait out its whole connect timeout instead of naming the problem
    const channel = new DealerChannel(sock, endpoint, opts);
    try {
      sock.connect(endpoint);
    } catch (err) {
      channel.close();
      throw new ConnectionError(`cannot connect to ${endpoint}: ${(err as Error).message}`, { cause: err });
    }
    return channel;
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
