// Who is in the run: a pure state machine (no I/O, no clock of its own: every call takes `now` in ms).
// The coordinator feeds it joins, messages seen and step deadlines; it answers who is live and who must
// be evicted, and why (elastic training: workers join, leave and rejoin at any step).

export type MemberState = "live" | "evicted" | "left";

export interface Member {
  /** Routing id the worker connected with (its name, e.g. "w0"). */
  id: string;
  /** Stable small slot number (telemetry label, header field). */
  slot: number;
  pid?: number;
  host?: string;
  state: MemberState;
  /** Loaded its dataset and engine (sent Ready): only ready members get work. */
  ready: boolean;
  joinedAt: number;
  /** Last time any message arrived from it. */
  lastSeen: number;
  /** When its current assignment is due (ms), or null when it has none. */
  dueAt: number | null;
  /** Why it is no longer live. */
  reason?: string;
}

/** Why a worker was evicted: its connection went away, it missed a step deadline, it stopped sending
 *  heartbeats while idle, or it never finished loading. */
export type EvictionCause = "connection" | "deadline" | "heartbeat" | "startup";

export interface Eviction {
  member: Member;
  reason: string;
  cause: EvictionCause;
  /** How late it was, ms. */
  lateMs: number;
}

export class Membership {
  private readonly members = new Map<string, Member>();
  private nextSlot = 0;

  /** `heartbeatTimeoutMs`: how long an idle worker may stay silent; `startupTimeoutMs`: how long a joined
   *  worker may take to load its dataset and engine (its JS thread is busy meanwhile). */
  constructor(readonly heartbeatTimeoutMs: number, readonly startupTimeoutMs = 300_000) {}

  /** A worker joins (or rejoins under the same id after an eviction: it gets a fresh live entry, same slot). */
  join(id: string, now: number, info: { pid?: number; host?: string } = {}): Member {
    const old = this.members.get(id);
    const m: Member = {
      id, slot: old ? old.slot : this.nextSlot++, pid: info.pid, host: info.host,
      state: "live", ready: false, joinedAt: now, lastSeen: now, dueAt: null,
    };
    this.members.set(id, m);
    return m;
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** The worker loaded everything: it may get work from now on. */
  markReady(id: string, now: number): void {
    const m = this.members.get(id);
    if (m && m.state === "live") { m.ready = true; m.lastSeen = now; }
  }

  isLive(id: string): boolean {
    return this.members.get(id)?.state === "live";
  }

  /** Any message from the worker proves it is alive. */
  seen(id: string, now: number): void {
    const m = this.members.get(id);
    if (m && m.state === "live") m.lastSeen = now;
  }

  /** It has work due by `dueAt`. */
  assign(id: string, dueAt: number): void {
    const m = this.members.get(id);
    if (m) m.dueAt = dueAt;
  }

  /** Its work arrived. */
  done(id: string, now: number): void {
    const m = this.members.get(id);
    if (m) { m.dueAt = null; if (m.state === "live") m.lastSeen = now; }
  }

  leave(id: string, reason: string): Member | undefined {
    const m = this.members.get(id);
    if (m && m.state === "live") { m.state = "left"; m.reason = reason; m.dueAt = null; }
    return m;
  }

  evict(id: string, reason: string): Member | undefined {
    const m = this.members.get(id);
    if (m && m.state === "live") { m.state = "evicted"; m.reason = reason; m.dueAt = null; }
    return m;
  }

  /** Live, ready workers in slot order (the assignment order, so that runs are deterministic). */
  live(): Member[] {
    return [...this.members.values()].filter((m) => m.state === "live" && m.ready).sort((a, b) => a.slot - b.slot);
  }

  /** Live workers, ready or still loading. */
  connected(): Member[] {
    return [...this.members.values()].filter((m) => m.state === "live").sort((a, b) => a.slot - b.slot);
  }

  all(): Member[] {
    return [...this.members.values()].sort((a, b) => a.slot - b.slot);
  }

  /** Earliest time at which `expire` could evict someone (for the caller's timer), or null. */
  nextDeadline(): number | null {
    let t: number | null = null;
    for (const m of this.members.values()) {
      if (m.state !== "live") continue;
      const d = m.dueAt ?? m.lastSeen + (m.ready ? this.heartbeatTimeoutMs : this.startupTimeoutMs);
      if (t === null || d < t) t = d;
    }
    return t;
  }

  /**
   * The live workers that missed their deadline at `now`, and why: a worker with an assignment by its due time
   * (a busy worker's JS thread may not send heartbeats), an idle one by the heartbeat timeout, one still loading
   * by the startup timeout. Changes nothing: the caller evicts them (`evict`) and does its own bookkeeping.
   */
  overdue(now: number): Eviction[] {
    const out: Eviction[] = [];
    for (const m of this.connected()) {
      if (!m.ready) {
        if (now - m.lastSeen > this.startupTimeoutMs) {
          out.push({ member: m, reason: `did not finish loading within ${(this.startupTimeoutMs / 1000).toFixed(0)} s of joining`, lateMs: now - m.lastSeen - this.startupTimeoutMs, cause: "startup" });
        }
      } else if (m.dueAt !== null) {
        if (now > m.dueAt) {
          const reason = `missed its step deadline by ${((now - m.dueAt) / 1000).toFixed(1)} s (last heard ${((now - m.lastSeen) / 1000).toFixed(1)} s ago)`;
          out.push({ member: m, reason, lateMs: now - m.dueAt, cause: "deadline" });
        }
      } else if (now - m.lastSeen > this.heartbeatTimeoutMs) {
        const reason = `sent no heartbeat for ${((now - m.lastSeen) / 1000).toFixed(1)} s (timeout ${(this.heartbeatTimeoutMs / 1000).toFixed(1)} s)`;
        out.push({ member: m, reason, lateMs: now - m.lastSeen - this.heartbeatTimeoutMs, cause: "heartbeat" });
      }
    }
    return out;
  }
}
