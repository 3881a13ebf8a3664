// A worker's side of a sharded coordinator (--coordinator-shards, src/coordinator/shards.ts): a DEALER to each
// shard's workers' socket (same host as the coordinator, or the endpoint the Welcome names for a shard on
// another host), each shard's piece of every gradient, and the shards' parts of the parameters — broadcast
// chunks of a version (--pull dense) or each row-pull task's pieces, joined with the coordinator's. Unsharded
// row pull: a version's dense values (Dense, before the first task of that version) joined with a task's rows.
import { ConnectionError, errorMessage } from "../errors.js";
import type { Logger } from "../output.js";
import type { Telemetry } from "../telemetry.js";
import { Kind, decode, DEFAULT_MAX_MESSAGE_BYTES, WireError, kindName, type Frames, type Message } from "../protocol/wire.js";
import type { ParamAssembler } from "../protocol/params.js";
import { TaskPieces } from "../protocol/params.js";
import { gradientPieces, sliceView, type SliceView } from "../protocol/slices.js";
import { payloadValues, type SparseBlock } from "../protocol/gradcodec.js";
import { DealerChannel, type CurveClientKeys } from "../transport/zmq/index.js";
import { requireKeysOffMachine } from "../security/policy.js";
import type { Welcome } from "./join.js";
import type { RowParams } from "../engine/index.js";

type Gradient = { values: Float32Array | Uint16Array; rows: Uint32Array | null; scale: number };

export class WorkerShards {
  /** Every slice (the coordinator's first) with its embedding rows where rows travel. */
  readonly views: SliceView[];
  private readonly pieces: TaskPieces | null;
  private readonly links: DealerChannel[];
  /** The newest Dense: a version's dense parameters (a view of the received message). */
  private dense: { version: number; values: Float32Array } | null = null;

  /** Connects to every shard the Welcome names; `gone(endpoint, k)` when shard k's connection drops. */
  constructor(private readonly o: { coordinator: string; routingId: string; curve?: CurveClientKeys; insecure?: boolean; name: string; log: Logger; tel: Telemetry },
    private readonly welcome: Welcome, private readonly block: SparseBlock | null, private readonly assembler: ParamAssembler,
    join: Frames, gone: (endpoint: string, k: number) => void) {
    const sh = welcome.shards;
    this.views = sh ? [{ offset: 0, length: sh.own }, ...sh.others].map((b) => sliceView({ offset: b.offset, length: b.length }, block)) : [];
    this.pieces = sh && welcome.pull === "rows" ? new TaskPieces(this.views) : null;
    const host = /^tcp:\/\/(.*):\d+$/.exec(o.coordinator)?.[1] ?? "127.0.0.1";
    this.links = (sh?.others ?? []).map((s, i) => {
      const curve = o.curve && s.serverKey ? { ...o.curve, serverKey: s.serverKey } : undefined;
      // a shard on another host (the coordinator names its endpoint) is held to the same rule as the coordinator
      const endpoint = s.endpoint ?? `tcp://${host}:${s.port}`;
      requireKeysOffMachine({ endpoint, keys: curve !== undefined, insecure: o.insecure ?? false, role: "worker" });
      const channel = DealerChannel.connect(endpoint, o.routingId, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, sendTimeoutMs: 2000, curve });
      void channel.send(join).catch(() => {});
      void this.receive(channel, i + 1);
      channel.onDisconnect = () => gone(endpoint, i + 1);
      return channel;
    });
  }

  /** True when the coordinator is sharded. */
  get any(): boolean { return this.links.length > 0; }

  private async receive(channel: DealerChannel, k: number): Promise<void> {
    const from = `coordinator shard ${channel.endpoint}`;
    for await (const { frames } of channel.messages()) {
      try {
        const pm = decode(frames, { maxBytes: DEFAULT_MAX_MESSAGE_BYTES, from });
        if (pm.header.kind !== Kind.Params || pm.header.runId !== this.welcome.runId) continue;
        if (!this.pieces?.put(k, pm, from)) this.assembler.put(pm, from);
        this.o.tel.bytes("received", pm.payload.byteLength + (pm.rows?.byteLength ?? 0), this.o.name);
      } catch (err) {
        this.o.log.warn(`ignored a message from ${from}: ${errorMessage(err)}`);
      }
    }
  }

  /** A Dense from the coordinator: kept for that version's tasks (only the newest). Throws WireError when its
   *  length is not the layout's dense values, or the run has no rows to pull. */
  putDense(m: Message, size: number): void {
    const b = this.block, want = b ? size - b.rows * b.width : -1;
    if (!b || this.any || m.payload.length !== want) throw new WireError("length", `Dense carries ${m.payload.length} values, expected ${b && !this.any ? want : "none (no row pull from an unsharded coordinator)"}`);
    this.dense = { version: m.header.paramVersion, values: m.payload };
    this.o.tel.bytes("received", m.payload.byteLength, this.o.name);
  }

  /** Shard k went away: stop waiting for its pieces. */
  lost(k: number): void { this.pieces?.lost(k); }

  /** Each shard's piece of a gradient (`g`: rows form, or the whole vector) to it; the coordinator's piece, for
   *  the caller to send with the totals, and the bytes sent here. */
  async send(g: { rows: Uint32Array | null; values: Float32Array }, f16: boolean, task: number, encode: (p: Gradient) => Frames): Promise<{ own: Gradient; bytes: number }> {
    const pieces = gradientPieces(g, this.views, this.block, f16);
    let bytes = 0;
    for (const [i, ch] of this.links.entries()) {
      const p = pieces[i + 1]!;
      try {
        await ch.send(encode(p));
      } catch (err) { // that shard is gone: the coordinator learns it from the shard's silence, not from us
        if (!(err instanceof ConnectionError)) throw err;
        this.o.log.warn(`could not send task ${task}'s gradient slice to coordinator shard ${ch.endpoint}: ${err.message}`);
        continue;
      }
      bytes += p.values.byteLength + (p.rows?.byteLength ?? 0);
    }
    return { own: pieces[0]!, bytes };
  }

  /** Row pull: a task's parameters ([rows of E][dense], the whole vector's `size`) from the coordinator's piece
   *  `m` and the shards' (null when one did not come within a minute, or its shard went away). Unsharded: `m`'s
   *  own, or its rows and the version's Dense (null when that did not come first). Throws WireError when they do
   *  not fit. */
  async rowParams(m: Message, task: number, size: number): Promise<RowParams | null> {
    let rows: Int32Array, values: Float32Array;
    if (this.pieces) {
      const own = payloadValues(this.views[0]!.length, this.views[0]!.block, m.rows!.length);
      if (m.payload.length !== own) throw new WireError("length", `${kindName(m.header.kind)} carries ${m.payload.length} values for ${m.rows!.length} rows of its slice, expected ${own}`);
      const got = await this.pieces.take(task, m.header.paramVersion, 60_000);
      if (!got) return null;
      ({ rows, values } = this.pieces.join(m, got));
    } else {
      rows = Int32Array.from(m.rows!);
      values = m.payload;
    }
    const want = payloadValues(size, this.block, rows.length), E = this.block?.width ?? 0;
    if (!this.pieces && values.length === rows.length * E && want > values.length) { // the rows alone: the dense values came first
      const d = this.dense;
      return d && d.version === m.header.paramVersion ? { rows, values, dense: d.values } : null;
    }
    if (!this.block || values.length !== want) throw new WireError("length", `${kindName(m.header.kind)} carries ${values.length} values for ${rows.length} rows, expected ${want}`);
    return { rows, values: values.subarray(0, rows.length * E), dense: values.subarray(rows.length * E) };
  }

  close(): void { for (const ch of this.links) ch.close(); }
}
