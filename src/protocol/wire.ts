// The training wire protocol between coordinator and workers (carried by src/transport/zmq/).
//
// Every message is three frames (four with flag ROWS: a gradient or task that carries embedding rows):
//   [0] header   64 bytes, little-endian, fixed layout (below)
//   [1] body     UTF-8 JSON (may be empty): the small, kind-specific fields
//   [2] payload  raw float32 values (may be empty): parameters or gradients, sent without copies;
//                IEEE half floats instead when flags has F16 (gradients only, see src/protocol/gradcodec.ts)
//   [3] rows     flags ROWS only: u32 ids of the embedding rows the payload carries (ascending)
//
// Bodies: their shapes and size limits are declared in ./bodies.ts and checked before use.
//
// Parameters travel in one of two ways (Welcome.pull). "rows" (the default): each Assign/Eval carries, with
// flag ROWS, the embedding rows its batches read (ids in frame 3) and every dense parameter, in their newest
// values; nothing is broadcast. "dense": after each step the coordinator sends the new parameters to every
// ready worker as Params chunks (1 MiB each, sent as soon as Adam has finished that slice, so the wire works
// while the next slice is computed); an Assign or Eval for that version then carries no payload and the
// worker uses its reassembled copy (./params.ts). A worker that has not received that version (it just
// joined) gets the parameters in the Assign/Eval payload itself.
//
// Header layout (byte offset: field):
//    0: magic u32 "IMTR"        4: version u16          6: kind u8        7: flags u8 (F16 = 1, ROWS = 2)
//    8: runId u32              12: step u32            16: paramVersion u32
//   20: slot u16 (worker slot) 22: reserved u16        24: payload length (values) u32
//   28: body length (bytes) u32                        32: layout hash (32 ASCII bytes, NUL-padded)
import { ProtocolError } from "../errors.js";
import { firstBadRow, payloadValues, type SparseBlock } from "./gradcodec.js";

// 2: Params chunks, Assign/Eval may omit the parameters; fp16 and embedding-rows gradients (flags)
// 3: Started (a worker has its task)
export const PROTOCOL_VERSION = 4;
/** Header flags: the payload holds IEEE half floats; a fourth frame lists the embedding rows carried. */
export const FLAG_F16 = 1;
export const FLAG_ROWS = 2;
export const HEADER_BYTES = 64;

/** Why a message was refused (the label of imdb_train_rejected_gradients_total). */
export type RejectReason = "stale" | "nan" | "length" | "layout" | "version" | "size" | "auth" | "unknown-worker" | "malformed";
export const REJECT_REASONS: readonly RejectReason[] = ["stale", "nan", "length", "layout", "version", "size", "auth", "unknown-worker", "malformed"];
const MAGIC = 0x52544d49; // "IMTR" read as little-endian u32
const HASH_BYTES = 32;

export enum Kind {
  Join = 1, //        worker → coordinator: {name, pid, host}
  Welcome = 2, //     coordinator → worker: {slot, model, dataset, layoutHash, limits}
  Heartbeat = 3, //   both ways, empty
  Assign = 4, //      coordinator → worker: {task, epoch, batches} + the rows and dense parameters it reads, the whole vector, or none
  Gradient = 5, //    worker → coordinator: {lossSum, correct, count, tokens, seconds} + gradient of the loss SUM
  Eval = 6, //        coordinator → worker: {split, batches} + parameters (none: use the assembled version)
  EvalResult = 7, //  worker → coordinator: {lossSum, correct, count}
  Reject = 8, //      coordinator → worker: {reason, message}
  Stop = 9, //        coordinator → worker: {reason, final?}
  Leave = 10, //      worker → coordinator: {reason}
  Ready = 11, //      worker → coordinator: {backend}: dataset and engine loaded, assign work
  Started = 20, //    worker → coordinator: {task}: an Assign arrived (the coordinator's work off the critical path
  //                  waits for every task of the step to be with its worker: ../coordinator/rounds.ts)
  Dense = 21, //      coordinator → worker: {} + the dense parameters (all but the embedding rows) of version
  //                  paramVersion: row pull, sent before a worker's first task of that version, whose Assign or
  //                  Eval then carries only its rows (ZeroMQ moves it while the task's rows are gathered)
  Params = 12, //     coordinator → worker: {offset} + parameters [offset, offset + n) of version paramVersion;
  //                  from a shard with row pull: {offset, task} + rows: its slice's piece of a task's parameters
  // between the coordinator and its shard processes (--coordinator-shards, src/coordinator/shards.ts)
  ShardInit = 13, //   leader → shard: {offset, length, adam, version} + [params | m | v] of its slice
  ShardReduce = 14, // leader → shard: {step, tasks, count}: sum these tasks' slices in this order
  ShardNorm = 15, //   shard → leader: {sumsq, bad}: its slice's part of the squared norm; tasks to skip
  ShardApply = 16, //  leader → shard: {version, scale, coef, lr} (or {skip}): Adam, then Params to workers
  ShardFetch = 17, //  leader → shard: send your state
  ShardState = 18, //  shard → leader: {offset, t} + [params | m | v] of its slice
  ShardPull = 19, //   leader → shard: {task, peer} + rows: send that worker the task's rows and dense values of
  //                   the slice (Params {offset, task} + rows); {finish}: Adam over the slice's other rows now
}

export interface Header {
  version: number;
  kind: Kind;
  runId: number;
  step: number;
  paramVersion: number;
  slot: number;
  /** FLAG_F16 | FLAG_ROWS (gradients). */
  flags: number;
  /** Values in the payload frame (4 bytes each, 2 with FLAG_F16). */
  payloadLength: number;
  bodyLength: number;
  layoutHash: string;
}

export interface Message {
  header: Header;
  /** The JSON body as it arrived, unparsed: read it with readBody (./bodies.ts), which checks its shape. */
  bodyBytes: Buffer;
  /** Zero-copy view of a float32 payload (empty when there is none, or when it is half floats). */
  payload: Float32Array;
  /** The payload as IEEE half bits (FLAG_F16), else null. */
  half: Uint16Array | null;
  /** Embedding row ids (FLAG_ROWS), else null. */
  rows: Uint32Array | null;
}

export type Frames = [Buffer, Buffer, Buffer] | [Buffer, Buffer, Buffer, Buffer];

/** Default size limit of one message: a model of 25k×100 embeddings + LSTM(256) is ~11.5 MB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The limit the coordinator configures for a model of `paramCount` floats: the payload plus 1 MiB of room. */
export function messageLimitFor(paramCount: number): number {
  return paramCount * 4 + HEADER_BYTES + (1 << 20);
}

export function kindName(k: number): string {
  return Kind[k] ?? `kind#${k}`;
}

/** Encode one message. The payload's bytes are shared with `payload` (no copy): do not modify it until sent.
 *  A Uint16Array payload is sent as half floats (FLAG_F16); `rows` adds the fourth frame (FLAG_ROWS). */
export function encode(h: Omit<Header, "version" | "payloadLength" | "bodyLength" | "flags"> & { version?: number }, body?: unknown, payload?: Float32Array | Uint16Array, rows?: Uint32Array): Frames {
  const bodyBuf = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body), "utf8");
  const payBuf = payload ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : Buffer.alloc(0);
  const flags = (payload instanceof Uint16Array ? FLAG_F16 : 0) | (rows ? FLAG_ROWS : 0);
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt16LE(h.version ?? PROTOCOL_VERSION, 4);
  head.writeUInt8(h.kind, 6);
  head.writeUInt8(flags, 7);
  head.writeUInt32LE(h.runId >>> 0, 8);
  head.writeUInt32LE(h.step >>> 0, 12);
  head.writeUInt32LE(h.paramVersion >>> 0, 16);
  head.writeUInt16LE(h.slot & 0xffff, 20);
  head.writeUInt32LE(payload ? payload.length : 0, 24);
  head.writeUInt32LE(bodyBuf.length, 28);
  const hash = Buffer.from(h.layoutHash.slice(0, HASH_BYTES), "ascii");
  hash.copy(head, 32);
  return rows ? [head, bodyBuf, payBuf, Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength)] : [head, bodyBuf, payBuf];
}

export function frameBytes(frames: readonly Buffer[]): number {
  let n = 0;
  for (const f of frames) n += f.length;
  return n;
}

/** A protocol violation with the reason the coordinator counts it under. */
export class WireError extends ProtocolError {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, message: string) {
    super(message, { code: `E_PROTOCOL_${reason.toUpperCase().replace(/-/g, "_")}` });
    this.reason = reason;
  }
}

/**
 * Decode and check the envelope of a message: frame count, magic, protocol version, declared lengths,
 * size limit. Throws `WireError` naming what is wrong. `from` names the peer in messages.
 */
export function decode(frames: readonly Buffer[], opts: { maxBytes: number; from: string }): Message {
  const total = frameBytes(frames);
  if (total > opts.maxBytes) {
    throw new WireError("size", `message from ${opts.from} is ${total} bytes, over the limit of ${opts.maxBytes} bytes`);
  }
  if (frames.length !== 3 && frames.length !== 4) throw new WireError("length", `message from ${opts.from} has ${frames.length} frames, expected 3 (header, body, payload) or 4 (… and rows)`);
  const [head, bodyBuf, payBuf, rowsBuf] = frames as Frames;
  if (head.length !== HEADER_BYTES || head.readUInt32LE(0) !== MAGIC) {
    throw new WireError("version", `message from ${opts.from} does not start with an imdb-train header (${head.length} bytes)`);
  }
  const version = head.readUInt16LE(4);
  if (version !== PROTOCOL_VERSION) {
    throw new WireError("version", `message from ${opts.from} speaks protocol version ${version}; this program speaks version ${PROTOCOL_VERSION}`);
  }
  const header: Header = {
    version,
    kind: head.readUInt8(6) as Kind,
    runId: head.readUInt32LE(8),
    step: head.readUInt32LE(12),
    paramVersion: head.readUInt32LE(16),
    slot: head.readUInt16LE(20),
    flags: head.readUInt8(7),
    payloadLength: head.readUInt32LE(24),
    bodyLength: head.readUInt32LE(28),
    layoutHash: head.toString("ascii", 32, 64).replace(/\0+$/, ""),
  };
  if (Kind[header.kind] === undefined) throw new WireError("version", `message from ${opts.from} has unknown kind ${header.kind}`);
  if (bodyBuf.length !== header.bodyLength) {
    throw new WireError("length", `${kindName(header.kind)} from ${opts.from}: body is ${bodyBuf.length} bytes but the header says ${header.bodyLength}`);
  }
  const f16 = (header.flags & FLAG_F16) !== 0;
  if (payBuf.length !== header.payloadLength * (f16 ? 2 : 4)) {
    throw new WireError("length", `${kindName(header.kind)} from ${opts.from}: payload is ${payBuf.length} bytes but the header says ${header.payloadLength} ${f16 ? "half" : "float32"} values`);
  }
  if (((header.flags & FLAG_ROWS) !== 0) !== (rowsBuf !== undefined) || (rowsBuf && rowsBuf.length % 4 !== 0)) {
    throw new WireError("length", `${kindName(header.kind)} from ${opts.from}: ${frames.length} frames with flags ${header.flags} (the rows frame comes with flag ROWS, 4 bytes per row)`);
  }
  // typed arrays need aligned offsets; ZeroMQ frames usually are, copy when not
  const view = <T>(b: Buffer, bytes: number, make: (ab: ArrayBuffer, off: number, n: number) => T): T =>
    b.byteOffset % bytes === 0 ? make(b.buffer as ArrayBuffer, b.byteOffset, b.length / bytes) : make(new Uint8Array(b).buffer, 0, b.length / bytes);
  const half = f16 ? view(payBuf, 2, (ab, o, n) => new Uint16Array(ab, o, n)) : null;
  const payload = f16 || payBuf.length === 0 ? new Float32Array(0) : view(payBuf, 4, (ab, o, n) => new Float32Array(ab, o, n));
  const rows = rowsBuf ? view(rowsBuf, 4, (ab, o, n) => new Uint32Array(ab, o, n)) : null;
  return { header, bodyBytes: bodyBuf, payload, half, rows };
}

/** What a gradient must match to be summed into the current step. */
export interface GradientExpectation {
  runId: number;
  step: number;
  paramVersion: number;
  layoutHash: string;
  size: number;
  /** The embedding block, when the layout has one (gradients may then carry only some of its rows). */
  sparse?: SparseBlock | null;
}

/**
 * Check a decoded Gradient message against the current step. Returns null when it may be summed,
 * otherwise the reason and a message that names the worker and the mismatch. NaN/Inf is reported
 * as reason "nan" (the caller skips the contribution and counts it); `finite: false` leaves that scan to
 * the caller (the coordinator sees it in the norm of the sum and then looks for the culprit).
 */
export function checkGradient(m: Message, want: GradientExpectation, from: string, opts: { finite?: boolean; gradScale?: number } = {}): WireError | null {
  const h = m.header;
  if (h.layoutHash !== want.layoutHash) {
    return new WireError("layout", `gradient from ${from} has parameter layout ${h.layoutHash || "(none)"}, expected ${want.layoutHash}`);
  }
  const rows = m.rows;
  if (rows) {
    if (!want.sparse) return new WireError("length", `gradient from ${from} lists embedding rows, but this model has no embedding`);
    const i = firstBadRow(rows, want.sparse.rows);
    if (i >= 0) return new WireError("length", `gradient from ${from}: embedding row id ${rows[i]} at position ${i} is out of range (0..${want.sparse.rows - 1}) or not ascending`);
  }
  const expected = payloadValues(want.size, want.sparse ?? null, rows ? rows.length : null);
  if (m.header.payloadLength !== expected) {
    return new WireError("length", `gradient from ${from} has ${m.header.payloadLength} values${rows ? ` (${rows.length} embedding rows)` : ""}, expected ${expected}`);
  }
  if (m.half) {
    const s = opts.gradScale ?? 1;
    if (!(s > 0) || Math.log2(s) % 1 !== 0 || Math.abs(Math.log2(s)) > 100) return new WireError("length", `fp16 gradient from ${from} has scale ${s}, expected a power of two within 2^±100`);
  }
  if (h.runId !== want.runId) {
    return new WireError("stale", `gradient from ${from} belongs to run ${h.runId}, this run is ${want.runId}`);
  }
  if (h.step !== want.step || h.paramVersion !== want.paramVersion) {
    return new WireError("stale", `gradient from ${from} is for step ${h.step} (parameter version ${h.paramVersion}); the current step is ${want.step} (version ${want.paramVersion})`);
  }
  return opts.finite === false ? null : nonFiniteGradient(m.half ?? m.payload, from);
}

/** A "nan" WireError naming the first NaN/±Inf value of a gradient payload (float32 or half bits), or null
 *  when all are finite. The index is into the payload as sent. */
export function nonFiniteGradient(g: Float32Array | Uint16Array, from: string): WireError | null {
  const bad = g instanceof Uint16Array ? g.findIndex((h) => (h & 0x7c00) === 0x7c00) : firstNonFinite(g);
  if (bad < 0) return null;
  const what = g instanceof Uint16Array ? ((g[bad]! & 0x3ff) ? "NaN" : "Infinity") : String(g[bad]);
  return new WireError("nan", `gradient from ${from} has a non-finite value (${what}) at index ${bad}: contribution skipped`);
}

/** Index of the first NaN/±Inf value, or -1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i; // NaN - NaN and Inf - Inf are NaN
  }
  return -1;
}

/** A worker's name from its routing id: a worker connects as `<name>#<random hex>` (a fresh id per process,
 *  which nobody else can guess or take over), and is known everywhere else by its name. */
export function workerName(routingId: string): string {
  return routingId.replace(/#[0-9a-f]+$/, "");
}

/** A fresh routing id for a worker named `name`. */
export function routingIdFor(name: string, random: string): string {
  return `${name}#${random}`;
}

/** A run id: random u32, nonzero. */
export function newRunId(): number {
  return ((Math.random() * 0xfffffffe) >>> 0) + 1;
}
