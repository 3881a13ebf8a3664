// A worker's copy of the parameters, reassembled from the Params chunks a coordinator (and its shards) send.
import { Kind, WireError, type Message } from "./wire.js";
import { readBody } from "./bodies.js";

/**
 * A worker's copy of the parameters, reassembled from Params chunks. The coordinator sends each version's
 * chunks once, in order, before the Assign or Eval that uses them (one ZeroMQ pipe keeps the order).
 */
export class ParamAssembler {
  readonly params: Float32Array;
  private version = -1;
  private filled = 0;
  constructor(readonly size: number) {
    this.params = new Float32Array(size);
  }

  private waiters: (() => void)[] = [];

  /** Copy one Params chunk in; the first chunk of a newer version starts over, an older version's chunk
   *  (a shard's late catch-up) is ignored. */
  put(m: Message, from: string): void {
    const { offset } = readBody(m, Kind.Params, from);
    const n = m.payload.length;
    if (offset + n > this.size) {
      throw new WireError("length", `Params chunk of version ${m.header.paramVersion} at offset ${offset} with ${n} values does not fit ${this.size} parameters`);
    }
    if (m.header.paramVersion < this.version) return;
    if (m.header.paramVersion !== this.version) { this.version = m.header.paramVersion; this.filled = 0; }
    this.params.set(m.payload, offset);
    this.filled += n;
    if (this.filled === this.size) for (const w of this.waiters.splice(0)) w();
  }

  /** The assembled parameters of `version` once complete (chunks from several coordinator shards arrive on
   *  different sockets, so an Assign can overtake them), or null after `timeoutMs`. */
  async waitFor(version: number, timeoutMs: number): Promise<Float32Array | null> {
    const until = Date.now() + timeoutMs;
    while (!(this.version === version && this.filled === this.size) && Date.now() < until && !(this.version > version)) {
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, Math.min(1000, Math.max(1, until - Date.now()))); });
    }
    return this.version === version && this.filled === this.size ? this.params : null;
  }

  /** The parameters an Assign or Eval runs on: its own payload, else the complete assembled copy of its
   *  version, else null (chunks missing: the caller must ask again). */
  paramsFor(m: Message): Float32Array | null {
    if (m.payload.length) return m.payload;
    return m.header.paramVersion === this.version && this.filled === this.size ? this.params : null;
  }
}

