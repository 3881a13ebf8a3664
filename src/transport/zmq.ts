// ZeroMQ transport: the only module that imports `zeromq`. A ROUTER the coordinator binds and a DEALER
// each worker connects, both carrying multipart messages (see src/protocol/wire.ts). Sends are serialised
// through a small explicit queue (zeromq v6 refuses a second concurrent send); the ROUTER waits for a busy
// peer on its own, per peer (see RouterChannel.send), instead of failing; sends are checked against the size
// limit BEFORE sending (ZeroMQ silently drops a message over the receiver's maxMessageSize and resets the
// connection), and Buffers over 128 bytes go out without a copy.
//
// Security (optional): ZeroMQ CURVE. The coordinator's ROUTER is a CURVE server that admits only the client
// public keys it was given — a ZAP handler (RFC 27) in this process answers libzmq's question "may this key
// connect?" — and every refused handshake (unknown client key, wrong server key, a peer without CURVE) is
// reported through `onAuthFailure` (from the ZAP handler and the socket's monitor events). A worker's DEALER
// is a CURVE client; `handshakeTrouble()` tells the caller that its handshakes keep failing.
import * as zmq from "zeromq";
import { ConnectionError, ProtocolError } from "../errors.js";

/** A CURVE key pair as Z85 text (40 characters each). */
export interface CurveKeyPair { publicKey: string; secretKey: string }

/** The coordinator's side: its secret key and the public keys of the clients it admits. */
export interface CurveServerKeys {
  secretKey: string;
  /** Z85 public keys of admitted clients, each with a name for the logs (e.g. the key file). */
  clients: { name: string; publicKey: string }[];
}

/** A worker's side: the server's public key and the worker's own key pair. */
export interface CurveClientKeys { serverKey: string; publicKey: string; secretKey: string }

/** A refused connection attempt, as seen by the binding side. */
export interface AuthFailure {
  /** "client-key": CURVE client key not admitted; "crypto": wrong server key (the HELLO cannot be opened);
   *  "mechanism": the peer uses another security mechanism (e.g. no CURVE); "handshake": another ZMTP protocol
   *  error (e.g. a peer that does not speak ZMTP); "closed": the peer closed the connection mid-handshake — the
   *  other half of "mechanism": when both sides see the mismatch at once, the one that closes first leaves the
   *  other a broken pipe, so a peer without CURVE shows up as either (or it was a peer that stopped). */
  reason: "client-key" | "crypto" | "mechanism" | "handshake" | "closed";
  /** Peer IP address where known (client-key), else the bound endpoint. */
  address: string;
  /** Z85 public key the peer presented (client-key only). */
  clientKey?: string;
  detail: string;
}

export interface ChannelOptions {
  /** Largest message this side sends or accepts, in bytes. */
  maxBytes: number;
  /** How long a send may wait at the high-water mark before failing, ms (default 10 s). */
  sendTimeoutMs?: number;
}

export interface RouterOptions extends ChannelOptions {
  /** Be a CURVE server admitting only these client keys. */
  curve?: CurveServerKeys;
  /** Called for every refused connection attempt (also without CURVE: a CURVE client at a plain socket). */
  onAuthFailure?: (f: AuthFailure) => void;
}

export interface DealerOptions extends ChannelOptions {
  /** Connect as a CURVE client. */
  curve?: CurveClientKeys;
}

/** Handshake failures a connecting socket has seen since its last successful handshake. */
export interface HandshakeTrouble {
  /** "auth": the server refused our key (ZAP 400 / 300 / 500); "protocol"/"other": the handshake broke
   *  (wrong server key, or the two sides disagree on CURVE). */
  kind: "auth" | "protocol" | "other";
  /** Consecutive failed handshakes. */
  count: number;
  detail: string;
}

/** A fresh CURVE key pair (libzmq's generator). */
export function newCurveKeyPair(): CurveKeyPair {
  const k = zmq.curveKeyPair();
  return { publicKey: k.publicKey, secretKey: k.secretKey };
}

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** True when `s` is a 32-byte key in Z85 (40 characters of the Z85 alphabet). */
export function isZ85Key(s: string): boolean {
  if (s.length !== 40) return false;
  for (const ch of s) if (!Z85.includes(ch)) return false;
  return true;
}

/** Z85 text of a binary key (length a multiple of 4). */
function z85Encode(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i + 4 <= b.length; i += 4) {
    let v = ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!;
    let chunk = "";
    for (let j = 0; j < 5; j++) { chunk = Z85[v % 85]! + chunk; v = Math.floor(v / 85); }
    out += chunk;
  }
  return out;
}

// ---- ZAP handler: one per process (libzmq looks for it at this inproc endpoint of the socket's context) ----

const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

interface ZapDomain { clients: Map<string, string>; onDenied?: (f: AuthFailure) => void }

class ZapHandler {
  private static current: Promise<ZapHandler> | null = null;
  private static nextDomain = 1;
  private readonly domains = new Map<string, ZapDomain>();
  private closed = false;
  private constructor(private readonly sock: zmq.Router) {}

  /** Registers the admitted keys of a new CURVE server socket; returns its ZAP domain. */
  static async register(d: ZapDomain): Promise<{ domain: string; release(): void }> {
    ZapHandler.current ??= ZapHandler.start();
    let h: ZapHandler;
    try {
      h = await ZapHandler.current;
    } catch (err) {
      ZapHandler.current = null;
      throw err;
    }
    const domain = `imdb-train-${process.pid}-${ZapHandler.nextDomain++}`;
    h.domains.set(domain, d);
    return {
      domain,
      release: () => {
        h.domains.delete(domain);
        if (h.domains.size === 0 && !h.closed) {
          // an idle ZAP socket would keep the process alive
          h.closed = true;
          ZapHandler.current = null;
          h.sock.close();
        }
      },
    };
  }

  private static async start(): Promise<ZapHandler> {
    for (let attempt = 1; ; attempt++) {
      const sock = new zmq.Router({ linger: 0 });
      try {
        await sock.bind(ZAP_ENDPOINT);
      } catch (err) {
        sock.close();
        // a handler closed a moment ago may still hold the endpoint
        if (attempt < 20 && (err as { code?: string }).code === "EADDRINUSE") { await new Promise((r) => setTimeout(r, 25)); continue; }
        throw new ConnectionError(`cannot start the ZeroMQ authentication handler: ${(err as Error).message}`, { cause: err });
      }
      const h = new ZapHandler(sock);
      void h.serve();
      return h;
    }
  }

  private async serve(): Promise<void> {
    try {
      for await (const f of this.sock) {
        // [routing id, "", version, request id, domain, address, identity, mechanism, credentials...]
        const [id, empty, version, requestId, domainF, addressF, , mechanismF, keyF] = f;
        if (!id || !version || !requestId) continue;
        const domain = domainF?.toString("latin1") ?? "";
        const address = addressF?.toString("latin1") ?? "?";
        const mechanism = mechanismF?.toString("latin1") ?? "";
        const d = this.domains.get(domain);
        let status = "400", text = "unknown ZAP domain", user = "";
        if (d && mechanism === "CURVE" && keyF && keyF.length === 32) {
          const key = z85Encode(keyF);
          const name = d.clients.get(key);
          if (name !== undefined) { status = "200"; text = "OK"; user = name; }
          else {
            text = "client key not admitted";
            d.onDenied?.({ reason: "client-key", address, clientKey: key, detail: `CURVE client key ${key} is not among the admitted keys` });
          }
        } else if (d) {
          text = `mechanism ${mechanism || "?"} refused`;
          d.onDenied?.({ reason: "mechanism", address, detail: `a ${mechanism || "?"} handshake where CURVE is required` });
        }
        await this.sock.send([id, empty ?? Buffer.alloc(0), version, requestId, status, text, user, Buffer.alloc(0)]).catch(() => {});
      }
    } catch {
      /* closed */
    }
  }
}

/** Reports a bound socket's failed handshakes (monitor events). Key refusals come from the ZAP handler. */
async function watchHandshakes(sock: zmq.Socket, onAuthFailure: (f: AuthFailure) => void): Promise<void> {
  try {
    for await (const e of sock.events) {
      if (e.type === "handshake:error:protocol") {
        const code = e.error.code;
        const reason = code === "ERR_ZMTP_CRYPTOGRAPHIC" ? "crypto" : code === "ERR_ZMTP_MECHANISM_MISMATCH" ? "mechanism" : "handshake";
        const detail = reason === "crypto" ? "a CURVE handshake that could not be decrypted (the peer holds a different server key)"
          : reason === "mechanism" ? "a peer with another security mechanism (CURVE on one side only)"
          : `handshake protocol error ${code}`;
        onAuthFailure({ reason, address: e.address, detail });
      } else if (e.type === "handshake:error:other" && (e.error.code === "EPIPE" || e.error.code === "ECONNRESET")) {
        // the peer hung up mid-handshake: most often it saw the mechanism mismatch first (CURVE on one side
        // only), or it stopped; no verdict on its credentials, but worth telling whoever watches the log
        onAuthFailure({ reason: "closed", address: e.address, detail: "a peer that closed the connection during its handshake (CURVE on one side only, or a peer that stopped)" });
      }
      // handshake:error:auth is the ZAP handler's refusal, already reported with the key
    }
  } catch {
    /* socket closed */
  }
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
      handover: true,
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
    // the wait counts from this call: messages queued behind one that timed out do not wait again
    const deadline = performance.now() + (this.opts.sendTimeoutMs ?? 10_000);
    const attempt = () => this.sendWaiting(peer, frames, deadline);
    const run = (this.peerTail.get(peer) ?? Promise.resolve()).then(attempt, attempt);
    const tail = run.catch(() => undefined);
    this.peerTail.set(peer, tail);
    void tail.then(() => { if (this.peerTail.get(peer) === tail) this.peerTail.delete(peer); });
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

/** A worker's socket: connects to the coordinator with its name as routing id. ZeroMQ reconnects by itself. */
export class DealerChannel {
  private readonly queue = new SendQueue();
  private closed = false;
  private trouble: HandshakeTrouble | null = null;
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
