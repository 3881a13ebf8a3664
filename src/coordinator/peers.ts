// The coordinator's peers: its ROUTER socket, who is a member (./membership.ts), every message in and out.
//
// In:  decode the envelope → a Join is answered here → anything else from a non-member is refused → the
//      member's message goes to the coordinator's handlers (Ready, Started, Gradient, EvalResult, Leave).
// Out: one `send` for every message to a worker; a peer that cannot be reached is evicted there, once.
// Time: `tick` (every 200 ms) evicts members past their deadline and pings the others (a send to a dead
//       connection fails at once, naming the dead worker long before its step deadline).
import { hostname } from "node:os";
import { AbortedError, ConnectionError, TrainingError, errorMessage } from "../errors.js";
import { logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import type { ParamLayout } from "../model/layout.js";
import { Kind, encode, decode, kindName, workerName, WireError, frameBytes, type Message } from "../protocol/wire.js";
import { readBody, type Bodies, type WelcomeBody } from "../protocol/bodies.js";
import { RouterChannel, type AuthFailure, type CurveServerKeys } from "../transport/zmq/index.js";
import { settledWithin } from "../wait.js";
import { Membership, type EvictionCause, type Member } from "./membership.js";
import { Counts, ReplyBudget } from "./limits.js";
import type { CoordinatorEvent } from "./types.js";

const log = logger("coordinator");

/** Most members (ready or loading) a run accepts: the bound of --workers. */
const MAX_MEMBERS = 256;

/** What the coordinator does with its members' messages and departures. */
export interface PeerHandlers {
  /** A worker finished loading and may get work. */
  ready(peer: string): void;
  /** A worker has its task (Started). */
  started(peer: string, m: Message): void;
  gradient(peer: string, m: Message, now: number): void;
  evalResult(peer: string, m: Message, now: number): void;
  /** A member left or was evicted: its open work must go elsewhere. */
  gone(id: string, message: string): void;
  /** Members whose work is past due at `now` (deadlines kept with the work, outside the membership). */
  overdue(now: number): { peer: string; lateMs: number; reason: string }[];
}

export interface PeersOptions {
  runId: number;
  layout: ParamLayout;
  maxBytes: number;
  tel: Telemetry;
  heartbeatTimeoutS: number;
  joinTimeoutS: number;
  onEvent?: (e: CoordinatorEvent) => void;
  /** The run's step and parameter version, for the headers of messages that belong to no step. */
  position(): { step: number; version: number };
  /** What a joining worker is told (all but its slot). */
  welcome(): Omit<WelcomeBody, "slot">;
}

export class Peers {
  readonly members: Membership;
  /** Worker → the parameter version it holds from Params chunks (its Assign/Eval then carry none) or, row pull,
   *  whose dense values it holds from a Dense (its tasks then carry only their rows). */
  readonly hasParams = new Map<string, number>();
  readonly rejected: Record<string, number> = {};
  readonly evicted: string[] = [];
  private channel!: RouterChannel;
  private handlers!: PeerHandlers;
  private readonly authRefusals = new Map<string, number>();
  /** Rejections per (peer, reason), and the Reject replies each peer may still get: bounded in peers. */
  private readonly rejectLog = new Counts(4096);
  private readonly replies = new ReplyBudget(4096, 5, 20);
  private joinWaiter: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Set once `close` began: a Join is answered with this Stop. */
  private closing: { reason: string; final?: boolean } | null = null;
  private lastPing = 0;

  constructor(private readonly o: PeersOptions) {
    this.members = new Membership(o.heartbeatTimeoutS * 1000, o.joinTimeoutS * 1000);
  }

  get endpoint(): string { return this.channel.endpoint; }

  /** Bytes this coordinator's socket sent and received (every message, all peers). */
  get bytes(): { sent: number; received: number } {
    return { sent: this.channel?.bytesSent ?? 0, received: this.channel?.bytesReceived ?? 0 };
  }

  async bind(endpoint: string, curve: CurveServerKeys | undefined, handlers: PeerHandlers): Promise<string> {
    this.handlers = handlers;
    this.channel = await RouterChannel.bind(endpoint, { maxBytes: this.o.maxBytes, curve, onAuthFailure: (f) => this.authFailure(f) });
    if (curve) log.info(`CURVE on: admitting ${curve.clients.length} client key(s) (${curve.clients.map((c) => c.name).join(", ")})`);
    void this.receiveLoop();
    this.timer = setInterval(() => this.tick(Date.now()), 200);
    return this.channel.endpoint;
  }

  // ---- out ------------------------------------------------------------------------------------------------

  /** One message to a member (slot and run from its entry; step and version the run's unless given). False, and
   *  the member evicted, when it cannot be reached. */
  async send<K extends Kind>(peer: string, kind: K, body?: Bodies[K], payload?: Float32Array | Uint16Array, at?: { step: number; version: number }, rows?: Uint32Array): Promise<boolean> {
    const m = this.members.get(peer);
    if (!m || m.state !== "live") return false;
    const frames = this.encode(kind, m.slot, body, payload, at, rows);
    try {
      await this.channel.send(peer, frames);
      this.o.tel.bytes("sent", frameBytes(frames), workerName(peer));
      return true;
    } catch (err) {
      this.evict(peer, err instanceof ConnectionError && /is not connected/.test(err.message) ? "lost its connection" : `cannot be reached: ${errorMessage(err)}`);
      return false;
    }
  }

  private encode<K extends Kind>(kind: K, slot: number, body?: Bodies[K], payload?: Float32Array | Uint16Array, at?: { step: number; version: number }, rows?: Uint32Array) {
    const pos = at ?? this.o.position();
    return encode({ kind, runId: this.o.runId, step: pos.step, paramVersion: pos.version, slot, layoutHash: this.o.layout.hash }, body, payload, rows);
  }

  /** Refuse a message: counted by reason (always), logged and published (rate-limited per peer and reason:
   *  the first three, then one in a hundred), answered with a Reject (at most a few a second per peer). */
  reject(peer: string, err: WireError, step = 0, rejoin = false): void {
    this.rejected[err.reason] = (this.rejected[err.reason] ?? 0) + 1;
    this.o.tel.rejected(err.reason, this.members.get(peer) ? workerName(peer) : undefined);
    const n = this.rejectLog.hit(`${peer}\u0000${err.reason}`);
    if (n <= 3 || n % 100 === 0) {
      log.warn(`rejected (${err.reason}): ${err.message}${n > 3 ? ` (${n} from ${workerName(peer)} so far)` : ""}`);
      this.o.onEvent?.({ type: "rejected", worker: workerName(peer), reason: err.reason, message: err.message });
    }
    if (!this.replies.take(peer, Date.now())) return;
    const slot = this.members.get(peer)?.slot ?? 0;
    const body: Bodies[Kind.Reject] = { reason: err.reason, message: err.message, ...(rejoin ? { rejoin } : {}) };
    void this.channel.send(peer, this.encode(Kind.Reject, slot, body, undefined, { step, version: this.o.position().version })).catch(() => {});
  }

  /** Tell every connected worker to stop (`final`: the run is over, not interrupted), then close the socket. */
  async close(reason: string, final = false): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.channel) return;
    this.closing = { reason, ...(final ? { final } : {}) };
    const stops = this.members.connected().map((m) => this.channel.send(m.id, this.encode(Kind.Stop, m.slot, this.closing!)).catch(() => {}));
    await settledWithin(Promise.all(stops), 1000);
    await new Promise((r) => setTimeout(r, 50)); // let ZeroMQ flush the stops (linger is 0)
    this.channel.close();
  }

  // ---- membership -----------------------------------------------------------------------------------------

  /** Resolves once `n` workers are ready; fails after `timeoutMs` or on abort. */
  async waitFor(n: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.members.live().length >= n) return;
    log.info(`waiting for ${n} worker(s) to join ${this.channel.endpoint} and load`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.joinWaiter = null;
        reject(new TrainingError(`only ${this.members.live().length} of ${n} worker(s) joined and loaded within ${(timeoutMs / 1000).toFixed(0)} s (endpoint ${this.channel.endpoint})`));
      }, timeoutMs);
      this.joinWaiter = () => {
        if (this.members.live().length >= n) { clearTimeout(timer); this.joinWaiter = null; resolve(); }
      };
      signal?.addEventListener("abort", () => { clearTimeout(timer); reject(new AbortedError()); }, { once: true });
    });
  }

  /** Evict a live member (the one path for every cause), then let the coordinator re-deal its work. */
  evict(id: string, reason: string, lateMs = 0, cause: EvictionCause = "connection"): void {
    const m = this.members.get(id);
    if (!m || m.state !== "live") return;
    this.members.evict(id, reason);
    // how late: past its deadline, or for a dropped connection how long it had been silent
    this.o.tel.evicted(workerName(id), cause, (cause === "connection" ? Math.max(0, Date.now() - m.lastSeen) : Math.max(0, lateMs)) / 1000);
    this.evicted.push(workerName(id));
    this.o.tel.heartbeatMissed(workerName(id));
    if (lateMs > 0) this.o.tel.straggler(workerName(id), lateMs / 1000);
    this.departed(id, "evict", `worker ${workerName(id)}${m.pid ? ` (pid ${m.pid}${m.host ? ` on ${m.host}` : ""})` : ""} ${reason}: evicted`);
  }

  private departed(id: string, event: "evict" | "leave", message: string): void {
    this.hasParams.delete(id);
    const live = this.members.live().length;
    log.warn(`${message}; ${live} worker(s) left`);
    this.o.tel.membership(event, workerName(id));
    this.o.tel.liveWorkers(live);
    this.o.onEvent?.({ type: "member", event, worker: workerName(id), live, reason: message });
    this.handlers.gone(id, message);
  }

  private tick(now: number): void {
    for (const e of this.members.overdue(now)) this.evict(e.member.id, e.reason, e.lateMs, e.cause);
    for (const e of this.handlers.overdue(now)) this.evict(e.peer, e.reason, e.lateMs, "deadline");
    if (now - this.lastPing < 1000) return;
    this.lastPing = now;
    for (const m of this.members.connected()) {
      // ROUTER_MANDATORY: a send to a peer whose connection is gone fails at once (EHOSTUNREACH)
      void this.channel.send(m.id, this.encode(Kind.Heartbeat, m.slot, {}))
        .catch((err) => { if (err instanceof ConnectionError && /is not connected/.test(err.message)) this.evict(m.id, "lost its connection"); });
    }
  }

  /** A refused connection attempt (unadmitted CURVE key, wrong server key, no CURVE): counted as
   *  rejected{reason="auth"} and logged — the first three of each kind, then one line in 100 (peers retry).
   *  A peer that hung up mid-handshake is logged the same way but not counted: it may have just stopped. */
  private authFailure(f: AuthFailure): void {
    const n = (this.authRefusals.get(f.reason) ?? 0) + 1;
    this.authRefusals.set(f.reason, n);
    const what = f.reason === "closed"
      ? `a connection on ${f.address} failed: ${f.detail}`
      : `refused a connection ${f.reason === "client-key" ? "from" : "on"} ${f.address}: ${f.detail}`;
    if (n <= 3 || n % 100 === 0) log.warn(`${what} (${n} of this kind so far)`);
    if (f.reason === "closed") return;
    this.rejected.auth = (this.rejected.auth ?? 0) + 1;
    this.o.tel.rejected("auth");
    this.o.onEvent?.({ type: "rejected", worker: f.address, reason: "auth", message: what });
  }

  // ---- in -------------------------------------------------------------------------------------------------

  private async receiveLoop(): Promise<void> {
    for await (const { peer, frames } of this.channel.messages()) {
      try {
        this.handle(peer, frames);
      } catch (err) {
        if (err instanceof WireError) this.reject(peer, err);
        else log.error(`while handling a message from ${workerName(peer)}: ${errorMessage(err)}`);
      }
    }
  }

  private handle(peer: string, frames: Buffer[]): void {
    const m = decode(frames, { maxBytes: this.o.maxBytes, from: peer });
    this.o.tel.bytes("received", frameBytes(frames), this.members.get(peer) ? workerName(peer) : undefined);
    const now = Date.now();
    if (m.header.kind === Kind.Join) return this.join(peer, m, now);
    const member = this.members.get(peer);
    if (!member || member.state !== "live") return this.refuseStranger(peer, m, member);
    this.members.seen(peer, now);
    switch (m.header.kind) {
      case Kind.Heartbeat: return;
      case Kind.Ready: return this.ready(peer, m, now);
      case Kind.Started: return this.handlers.started(peer, m);
      case Kind.Gradient: return this.handlers.gradient(peer, m, now);
      case Kind.EvalResult: return this.handlers.evalResult(peer, m, now);
      case Kind.Leave: {
        const { reason } = readBody(m, Kind.Leave, `worker ${workerName(peer)}`);
        this.members.leave(peer, reason);
        return this.departed(peer, "leave", `worker ${workerName(peer)} left (${reason})`);
      }
      default:
        this.reject(peer, new WireError("version", `unexpected ${kindName(m.header.kind)} message from worker ${workerName(peer)}`));
    }
  }

  /** A message from a peer that is not a live member: a worker evicted while it computed gets told its
   *  gradient is stale; anyone else is told to join first. */
  private refuseStranger(peer: string, m: Message, gone: Member | undefined): void {
    if (gone && m.header.kind === Kind.Gradient) {
      this.reject(peer, new WireError("stale", `gradient of step ${m.header.step} from worker ${workerName(peer)} is stale: it was ${gone.state} (${gone.reason ?? "?"}) and its batches were given to another worker; join again`), m.header.step, true);
    } else {
      this.reject(peer, new WireError("unknown-worker", `${kindName(m.header.kind)} from ${workerName(peer)}, which is not a live member of run ${this.o.runId}${gone ? ` (${gone.state}: ${gone.reason ?? "?"})` : ""}: join first`), 0, true);
    }
  }

  private ready(peer: string, m: Message, now: number): void {
    const { backend } = readBody(m, Kind.Ready, `worker ${workerName(peer)}`);
    this.members.markReady(peer, now);
    const live = this.members.live().length;
    log.info(`worker ${workerName(peer)} ready (backend ${backend}); ${live} ready`);
    this.o.tel.liveWorkers(live);
    this.joinWaiter?.();
    this.handlers.ready(peer);
  }

  private join(peer: string, m: Message, now: number): void {
    const b = readBody(m, Kind.Join, workerName(peer));
    // stopping: a worker that joins now (it found our announcement before we withdrew it) is told so at once,
    // rather than welcomed into a run that is ending
    if (this.closing) { void this.channel.send(peer, this.encode(Kind.Stop, 0, this.closing)).catch(() => {}); return; }
    if (m.header.layoutHash && m.header.layoutHash !== this.o.layout.hash) {
      this.reject(peer, new WireError("layout", `worker ${workerName(peer)} joined with parameter layout ${m.header.layoutHash}, this run uses ${this.o.layout.hash}`));
      return;
    }
    if (workerName(peer) !== b.name) {
      this.reject(peer, new WireError("malformed", `a Join as ${JSON.stringify(b.name)} from routing id ${JSON.stringify(peer)}: a worker connects as <name> or <name>#<hex>`));
      return;
    }
    // the same process asking again before our Welcome reached it (its retry after 0.5 s, while this loop was
    // busy): welcome it again, but it is one join — no second event, and its state stays as it is
    const old = this.members.get(peer);
    const repeat = old !== undefined && old.state === "live" && !old.ready && old.pid === b.pid && !b.rejoin;
    // a live member of that name joins again (a restarted process, which connects under a new routing id; or a
    // worker that lost its parameters): the old one leaves first, so that its open work goes elsewhere at once
    const before = repeat ? undefined : this.members.connected().find((x) => workerName(x.id) === b.name);
    if (before) {
      this.members.leave(before.id, "joined again");
      this.departed(before.id, "leave", `worker ${b.name} joined again (pid ${b.pid ?? "?"}): its open work goes to another worker`);
    }
    if (!repeat && this.members.connected().length >= MAX_MEMBERS) {
      this.reject(peer, new WireError("size", `worker ${workerName(peer)} cannot join: the run already has ${MAX_MEMBERS} members`));
      return;
    }
    const member = repeat ? old : this.members.join(peer, now, { pid: b.pid, host: b.host, name: b.name });
    if (!repeat) {
      this.hasParams.delete(peer); // a (re)joined worker gets the parameters inline until the next broadcast
      log.info(`worker ${workerName(peer)} joined (slot ${member.slot}${b.pid ? `, pid ${b.pid}` : ""}${b.host ? ` on ${b.host}` : ""}); loading`);
      this.o.tel.membership("join", workerName(peer));
      this.o.onEvent?.({ type: "member", event: "join", worker: workerName(peer), live: this.members.live().length });
    } else {
      this.members.seen(peer, now);
    }
    void this.send(peer, Kind.Welcome, { ...this.o.welcome(), slot: member.slot, coordinator: hostname() })
      .then((ok) => { if (!ok) log.warn(`cannot welcome ${workerName(peer)}`); });
  }
}
