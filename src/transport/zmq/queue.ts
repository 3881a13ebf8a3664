// What both channels need around a send: the size check before it, one send at a time, and errors that say
// which peer and why.
import { ConnectionError, ProtocolError } from "../../errors.js";

/** ZeroMQ drops messages over maxMessageSize without telling anyone; we let up to 2× through so that
 *  the application can refuse them with a message naming the sender, and drop only beyond that. */
export const RECEIVE_SLACK = 2;

export function checkSize(frames: readonly Buffer[], maxBytes: number, to: string): number {
  let n = 0;
  for (const f of frames) n += f.length;
  if (n > maxBytes) {
    throw new ProtocolError(`refusing to send a ${n}-byte message to ${to}: over the ${maxBytes}-byte limit (ZeroMQ would drop it silently)`, { code: "E_PROTOCOL_SIZE" });
  }
  return n;
}

/** Runs async sends one at a time, in order. */
export class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export function wrapSendError(err: unknown, to: string): Error {
  const code = (err as { code?: string }).code;
  if (code === "EHOSTUNREACH") return new ConnectionError(`peer ${to} is not connected`, { cause: err });
  if (code === "EAGAIN") return new ConnectionError(`send to ${to} timed out at the high-water mark (peer not reading)`, { cause: err });
  return new ConnectionError(`send to ${to} failed: ${(err as Error).message}`, { cause: err });
}

