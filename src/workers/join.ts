// Joining a coordinator: send Join until a Welcome arrives, backing off and saying where it tries; a refused
// CURVE key or a mechanism mismatch fails at once with what to fix.
import { hostname } from "node:os";
import { AuthError, ConnectionError, ProtocolError, AbortedError } from "../errors.js";
import type { Logger } from "../output.js";
import { randomBytes } from "node:crypto";
import { Kind, encode, decode, routingIdFor, DEFAULT_MAX_MESSAGE_BYTES } from "../protocol/wire.js";
import { readBody, type WelcomeBody } from "../protocol/bodies.js";
import { DealerChannel, type CurveClientKeys } from "../transport/zmq/index.js";

/** What the coordinator tells a worker that joins (src/protocol/bodies.ts). */
export type Welcome = WelcomeBody;

/** Fails the join when the transport's handshakes keep failing: refused key, wrong server key, CURVE on one side only. */
function checkHandshake(channel: DealerChannel, endpoint: string, curve: boolean): void {
  const t = channel.handshakeTrouble();
  if (!t) return;
  if (t.kind === "auth") throw new AuthError(`the coordinator at ${endpoint} refused this worker's CURVE key (${t.detail}): its public key is not admitted there (client.pub or clients/*.pub of the coordinator's --curve-keys)`);
  // a ZMTP protocol error (mechanism mismatch, undecryptable HELLO) is final — libzmq does not even reconnect;
  // a connection dropped mid-handshake may be a restarting coordinator: give it three tries
  if (t.kind === "other" && t.count < 3) return;
  throw new AuthError(curve
    ? `the CURVE handshake with ${endpoint} failed ${t.count} times (${t.detail}): server.pub in --curve-keys is not this coordinator's key, or the coordinator runs without CURVE`
    : `the handshake with ${endpoint} failed ${t.count} times (${t.detail}): the coordinator probably requires CURVE keys (start the worker with --curve-keys <dir>)`);
}

/** The coordinator answered a Join with Stop: it is ending its run (it may resume, as another run). */
export class CoordinatorStopping extends Error {
  constructor(readonly reason: string, readonly final: boolean, readonly runId: number) { super(`the coordinator is stopping (${reason})`); }
}

/** Join: send Join until a Welcome arrives, backing off 0.5 s → 8 s, saying where it is trying. */
export async function join(endpoint: string, name: string, opts: { timeoutS: number; signal?: AbortSignal; log: Logger; curve?: CurveClientKeys }): Promise<{ channel: DealerChannel; welcome: Welcome; routingId: string }> {
  // a fresh routing id for this process: a restarted worker never collides with its predecessor's connection,
  // and nobody can take over ours (the coordinator refuses a second connection under a connected id)
  const routingId = routingIdFor(name, randomBytes(8).toString("hex"));
  const channel = DealerChannel.connect(endpoint, routingId, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, sendTimeoutMs: 2000, curve: opts.curve });
  const deadline = Date.now() + opts.timeoutS * 1000;
  let wait = 500;
  let attempt = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError();
      attempt++;
      const joinMsg = encode({ kind: Kind.Join, runId: 0, step: 0, paramVersion: 0, slot: 0, layoutHash: "" }, { name, pid: process.pid, host: hostname() });
      try { await channel.send(joinMsg); } catch { /* not connected yet: the receive below times out */ }
      const until = Date.now() + wait;
      while (Date.now() < until) {
        const frames = await channel.receive(Math.max(1, until - Date.now()));
        if (!frames) break;
        const m = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from: `coordinator ${endpoint}` });
        const from = `coordinator ${endpoint}`;
        if (m.header.kind === Kind.Welcome) return { channel, welcome: readBody(m, Kind.Welcome, from), routingId };
        if (m.header.kind === Kind.Stop) { const b = readBody(m, Kind.Stop, from); throw new CoordinatorStopping(b.reason, b.final === true, m.header.runId); }
        if (m.header.kind === Kind.Reject) {
          const b = readBody(m, Kind.Reject, from);
          throw new ProtocolError(`coordinator at ${endpoint} refused ${name}: ${b.message || b.reason}`);
        }
      }
      checkHandshake(channel, endpoint, opts.curve !== undefined);
      if (Date.now() > deadline) throw new ConnectionError(`no coordinator answered at ${endpoint} within ${opts.timeoutS} s (${attempt} attempts)`);
      opts.log.info(`no answer from the coordinator at ${endpoint} yet (attempt ${attempt}); retrying in ${(Math.min(wait * 2, 8000) / 1000).toFixed(1)} s`);
      wait = Math.min(wait * 2, 8000);
    }
  } catch (err) {
    channel.close();
    throw err;
  }
}

