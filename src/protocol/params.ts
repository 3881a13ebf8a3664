// A worker's copy of the parameters, reassembled from the Params chunks a coordinator (and its shards) send.
import { Kind, WireError, type Message } from "./wire.js";
import { readBody } from "./bodies.js";
import { firstBadRow, payloadValues } from "./gradcodec.js";
import { joinPieces, type SliceView } from "./slices.js";

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


/**
 * Row pull from a sharded coordinator: each shard sends its piece of a task's parameters (Params {offset, task}
 * + its rows, ids local to its slice) on its own socket, so a piece can come before or after the task's Assign.
 * Pieces wait here, checked against their slice, until the Assign or Eval of their task takes them.
 */
export class TaskPieces {
  private readonly byTask = new Map<number, (Message | undefined)[]>();
  private waiters: (() => void)[] = [];
  /** Shards whose connection dropped and that have sent nothing since: their pieces are not coming. */
  private readonly down = new Set<number>();
  /** `views`: every slice, the coordinator's own first. */
  constructor(private readonly views: readonly SliceView[]) {}

  /** Keep shard `k`'s (1 ≤ k < K) piece; throws WireError when it does not fit the slice. False: no task
   *  (a broadcast chunk, not a piece). */
  put(k: number, m: Message, from: string): boolean {
    const { offset, task } = readBody(m, Kind.Params, from);
    if (task === undefined) return false;
    const v = this.views[k]!, rows = m.rows ?? new Uint32Array(0), max = v.block?.rows ?? 0;
    const i = firstBadRow(rows, max);
    if (i >= 0) throw new WireError("length", `piece of task ${task} from ${from}: row ${rows[i]} at position ${i} is out of range (${max} rows) or not ascending`);
    const want = payloadValues(v.length, v.block, rows.length);
    if (offset !== v.offset || m.payload.length !== want) throw new WireError("length", `piece of task ${task} from ${from} at offset ${offset} with ${m.payload.length} values; its slice starts at ${v.offset} and needs ${want} for ${rows.length} rows`);
    this.down.delete(k);
    let e = this.byTask.get(task);
    if (!e) {
      if (this.byTask.size >= 256) this.byTask.delete(this.byTask.keys().next().value!); // a task nobody took
      this.byTask.set(task, (e = []));
    }
    e[k] = m;
    for (const w of this.waiters.splice(0)) w();
    return true;
  }

  /** Every shard's piece of `task` for parameter `version` (in slice order, from slice 1), or null after
   *  `timeoutMs`. */
  async take(task: number, version: number, timeoutMs: number): Promise<Message[] | null> {
    const until = Date.now() + timeoutMs;
    const complete = () => {
      const e = this.byTask.get(task);
      if (!e) return null;
      const out: Message[] = [];
      for (let k = 1; k < this.views.length; k++) { const m = e[k]; if (!m || m.header.paramVersion !== version) return null; out.push(m); }
      return out;
    };
    let got = complete();
    const gone = () => { for (let k = 1; k < this.views.length; k++) if (this.down.has(k) && !this.byTask.get(task)?.[k]) return true; return false; };
    while (!got && Date.now() < until && !gone()) {
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, Math.min(1000, Math.max(1, until - Date.now()))); });
      got = complete();
    }
    this.byTask.delete(task);
    return got;
  }

  /** Shard k's connection dropped: whoever waits for its pieces stops waiting (take gives null), until it
   *  sends a piece again. */
  lost(k: number): void {
    this.down.add(k);
    for (const w of this.waiters.splice(0)) w();
  }

  /** A task's parameters in the rows form from the coordinator's piece and the shards' (joined in slice order). */
  join(own: Message, pieces: readonly Message[]): { values: Float32Array; rows: Int32Array } {
    return joinPieces([own, ...pieces].map((m) => ({ values: m.payload, rows: m.rows ?? [] })), this.views);
  }
}
