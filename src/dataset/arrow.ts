// The one module that imports apache-arrow: writes and reads the dataset's Arrow IPC files, and encodes
// one batch as a self-describing IPC stream message (what --publish sends over NATS).
//
// Layout of every file, one record batch per training batch:
//   tokens  List<Int32>  the review's token ids, unpadded (truncated to --max-len when set)
//   length  Int32        number of tokens (>= 1)
//   label   Uint8        1 = positive, 0 = negative
//   id      Int32        sample id, unique across the dataset
//   rating  Int8         star rating from the file name
//   review  Utf8         the review's name, e.g. "train/pos/123_8"
// Schema metadata: imdb_train.format, imdb_train.vocab_hash, imdb_train.split, imdb_train.shard ("k/N").
import {
  Field, Int8, Int32, List, Message, MetadataVersion, RecordBatch, RecordBatchFileWriter, RecordBatchStreamWriter, Schema,
  Struct, Uint8, Utf8, makeData, tableFromIPC, type Data,
} from "apache-arrow";
// Arrow's own encoders of IPC metadata (flatbuffers), for the direct file writer below.
import { FileBlock, Footer } from "apache-arrow/ipc/metadata/file";
import { BufferRegion, FieldNode, RecordBatch as RecordBatchHeader } from "apache-arrow/ipc/metadata/message";
import { PAD_ID } from "../config.js";
import type { Batch, Split } from "./batch.js";
import { InputError } from "../errors.js";

export const ARROW_FORMAT = "imdb-train-arrow/1";

/** One batch's rows before padding: what ingest writes. */
export interface BatchRows {
  /** [B] token ids of each review (unpadded). */
  tokens: Int32Array[];
  labels: Uint8Array;
  ids: Int32Array;
  ratings: Int8Array;
  names: string[];
}

export interface FileMeta {
  vocabHash: string;
  split: Split;
  /** Shard k of N (0-based); the j-th record batch of the file is batch j*N + k of the split. */
  shard: { index: number; count: number };
}

function schemaFor(meta: FileMeta): Schema {
  const md = new Map<string, string>([
    ["imdb_train.format", ARROW_FORMAT],
    ["imdb_train.vocab_hash", meta.vocabHash],
    ["imdb_train.split", meta.split],
    ["imdb_train.shard", `${meta.shard.index}/${meta.shard.count}`],
  ]);
  return new Schema([
    new Field("tokens", new List(new Field("item", new Int32(), false)), false),
    new Field("length", new Int32(), false),
    new Field("label", new Uint8(), false),
    new Field("id", new Int32(), false),
    new Field("rating", new Int8(), false),
    new Field("review", new Utf8(), false),
  ], md);
}

const enc = new TextEncoder();

/** Strings as one UTF-8 buffer with offsets; ASCII strings (all review names) are copied without the encoder. */
function utf8Concat(strings: string[]): { bytes: Uint8Array; offsets: Int32Array } {
  const offsets = new Int32Array(strings.length + 1);
  let ascii = true;
  for (let b = 0; b < strings.length; b++) {
    const s = strings[b]!;
    offsets[b + 1] = offsets[b]! + s.length;
    for (let q = 0; q < s.length && ascii; q++) if (s.charCodeAt(q) > 127) ascii = false;
  }
  if (ascii) {
    const bytes = new Uint8Array(offsets[strings.length]!);
    for (let b = 0; b < strings.length; b++) {
      const s = strings[b]!;
      for (let q = 0, o = offsets[b]!; q < s.length; q++) bytes[o + q] = s.charCodeAt(q);
    }
    return { bytes, offsets };
  }
  const parts = strings.map((s) => enc.encode(s));
  for (let b = 0; b < parts.length; b++) offsets[b + 1] = offsets[b]! + parts[b]!.length;
  const bytes = new Uint8Array(offsets[parts.length]!);
  for (let b = 0; b < parts.length; b++) bytes.set(parts[b]!, offsets[b]!);
  return { bytes, offsets };
}

function recordBatch(schema: Schema, rows: BatchRows): RecordBatch {
  const B = rows.tokens.length;
  const lengths = new Int32Array(B); //       [B]
  const valueOffsets = new Int32Array(B + 1); // [B+1]
  for (let b = 0; b < B; b++) {
    lengths[b] = rows.tokens[b]!.length;
    valueOffsets[b + 1] = valueOffsets[b]! + lengths[b]!;
  }
  const values = new Int32Array(valueOffsets[B]!); // [sum lengths]
  for (let b = 0; b < B; b++) values.set(rows.tokens[b]!, valueOffsets[b]!);
  const nameData = utf8Concat(rows.names); // [sum bytes]
  const nameOffsets = nameData.offsets; //    [B+1]

  const f = schema.fields;
  const listType = f[0]!.type as List<Int32>;
  const children = [
    makeData({ type: listType, length: B, nullCount: 0, valueOffsets, child: makeData({ type: new Int32(), length: values.length, nullCount: 0, data: values }) }),
    makeData({ type: new Int32(), length: B, nullCount: 0, data: lengths }),
    makeData({ type: new Uint8(), length: B, nullCount: 0, data: rows.labels }),
    makeData({ type: new Int32(), length: B, nullCount: 0, data: rows.ids }),
    makeData({ type: new Int8(), length: B, nullCount: 0, data: rows.ratings }),
    makeData({ type: new Utf8(), length: B, nullCount: 0, valueOffsets: nameOffsets, data: nameData.bytes }),
  ];
  const struct = makeData({ type: new Struct(f), length: B, nullCount: 0, children });
  return new RecordBatch(schema, struct);
}

/** The bytes of an Arrow IPC file holding `batches` in order, through apache-arrow's writer (the reference for tests). */
export function encodeArrowFileReference(meta: FileMeta, batches: BatchRows[]): Uint8Array {
  const schema = schemaFor(meta);
  const writer = new RecordBatchFileWriter();
  writer.reset(undefined, schema);
  for (const rows of batches) writer.write(recordBatch(schema, rows));
  writer.finish();
  return writer.toUint8Array(true);
}

// ---- the direct file writer -----------------------------------------------------------------------
// The same bytes as apache-arrow's RecordBatchFileWriter (tests compare them), a batch at a time through one
// reused buffer (fresh memory costs a page fault per 4 KiB): token ids are copied straight into it, and no
// column arrays, record batches or chunk lists are built. Arrow's code still encodes the
// metadata (the footer, and the first batch's flatbuffer, which the others copy with their own numbers).
// The layout it reproduces, per record batch:
//   message: int32 -1, int32 metadata size, flatbuffer Message(RecordBatch), zero padding to 8 bytes
//   body:    the buffers of the columns in schema order, each zero-padded to 8 bytes, a buffer's recorded
//            length being its padded length; an empty validity buffer before each column's buffers:
//            tokens: offsets [B+1] int32, then its child: values [T] int32; length [B] int32;
//            label [B] uint8; id [B] int32; rating [B] int8; review: offsets [B+1] int32, UTF-8 bytes.
// File: "ARROW1" + 2 zero bytes, the messages and bodies, end-of-stream (int32 -1, int32 0), the footer
// flatbuffer (schema and [offset, metadata size, body size] of every batch), its int32 size, "ARROW1".

const MAGIC = Uint8Array.from("ARROW1", (c) => c.charCodeAt(0));
const pad8 = (n: number) => (n + 7) & ~7;

/** Byte lengths of one batch's buffers in body order (validity buffers are empty). */
function bufferLengths(rows: BatchRows, nameBytes: number): number[] {
  const B = rows.tokens.length;
  let T = 0;
  for (let b = 0; b < B; b++) T += rows.tokens[b]!.length;
  return [0, (B + 1) * 4, 0, T * 4, 0, B * 4, 0, B, 0, B * 4, 0, B, 0, (B + 1) * 4, nameBytes];
}

/**
 * The flatbuffer Message(RecordBatch) of a batch: Arrow's encoder for the first batch of a file, then a copy
 * of it with the numbers replaced (the layout depends only on the counts of nodes and buffers, which the
 * schema fixes, as long as no number is 0: flatbuffers leaves out a field at its default, and B >= 1).
 */
class BatchMetadata {
  private template: Uint8Array | null = null;
  private at = { bodyLength: 0, length: 0, nodes: 0, buffers: 0 };

  encode(B: number, nodes: number[], regions: number[], bodyLength: number): Uint8Array {
    if (B === 0) return this.arrow(B, nodes, regions, bodyLength);
    if (this.template === null) {
      this.template = this.arrow(B, nodes, regions, bodyLength);
      this.locate(this.template, nodes.length / 2, regions.length / 2);
      return this.template;
    }
    const out = this.template.slice();
    const v = new DataView(out.buffer);
    v.setBigInt64(this.at.bodyLength, BigInt(bodyLength), true);
    v.setBigInt64(this.at.length, BigInt(B), true);
    for (let i = 0; i < nodes.length; i++) v.setBigInt64(this.at.nodes + 8 * i, BigInt(nodes[i]!), true);
    for (let i = 0; i < regions.length; i++) v.setBigInt64(this.at.buffers + 8 * i, BigInt(regions[i]!), true);
    return out;
  }

  private arrow(B: number, nodes: number[], regions: number[], bodyLength: number): Uint8Array {
    const fieldNodes: FieldNode[] = [];
    for (let i = 0; i < nodes.length; i += 2) fieldNodes.push(new FieldNode(nodes[i]!, nodes[i + 1]!));
    const bufferRegions: BufferRegion[] = [];
    for (let i = 0; i < regions.length; i += 2) bufferRegions.push(new BufferRegion(regions[i]!, regions[i + 1]!));
    return Message.encode(Message.from(new RecordBatchHeader(B, fieldNodes, bufferRegions, null), bodyLength));
  }

  /** Finds the numbers in an encoded message: Message.bodyLength, RecordBatch.length, .nodes, .buffers. */
  private locate(fb: Uint8Array, nNodes: number, nBuffers: number): void {
    const v = new DataView(fb.buffer, fb.byteOffset, fb.length);
    const field = (table: number, k: number) => { // position of field k of the table at `table`, or -1
      const vt = table - v.getInt32(table, true);
      return 4 + 2 * k < v.getUint16(vt, true) && v.getUint16(vt + 4 + 2 * k, true) !== 0 ? table + v.getUint16(vt + 4 + 2 * k, true) : -1;
    };
    const deref = (at: number) => at + v.getUint32(at, true);
    const message = deref(0);
    const header = deref(field(message, 2)); //      Message { version, header_type, header, bodyLength, ... }
    const nodes = deref(field(header, 1)); //        RecordBatch { length, nodes, buffers, ... }
    const buffers = deref(field(header, 2));
    if (v.getUint32(nodes, true) !== nNodes || v.getUint32(buffers, true) !== nBuffers) throw new Error("unexpected Arrow metadata layout");
    this.at = { bodyLength: field(message, 3), length: field(header, 0), nodes: nodes + 4, buffers: buffers + 4 };
  }
}

/** The bytes of an Arrow IPC file holding `batches` in order (byte for byte what encodeArrowFileReference writes). */
export function encodeArrowFile(meta: FileMeta, batches: BatchRows[]): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  writeArrowFile(meta, batches, (c) => { chunks.push(c.slice()); total += c.length; });
  const out = new Uint8Array(total);
  let p = 0;
  for (const c of chunks) { out.set(c, p); p += c.length; }
  return out;
}

/**
 * Writes the Arrow IPC file of `batches` through `sink`, one piece per call (the header, each batch, the
 * footer). A batch is built in one reused buffer, so `sink` must consume a piece before it returns.
 * Returns the file's size.
 */
export function writeArrowFile(meta: FileMeta, batches: BatchRows[], sink: (piece: Uint8Array) => void): number {
  const schema = schemaFor(meta);
  // pass 1: sizes, metadata and the footer
  const batchMetadata = new BatchMetadata();
  const metas: Uint8Array[] = [];
  const layouts: number[][] = [];
  const blocks: FileBlock[] = [];
  let pos = 8;
  let largest = 0;
  for (const rows of batches) {
    const B = rows.tokens.length;
    let nameBytes = 0;
    for (let b = 0; b < B; b++) nameBytes += Buffer.byteLength(rows.names[b]!, "utf8");
    const lens = bufferLengths(rows, nameBytes);
    const regions: number[] = []; // [offset, length] of each buffer
    let bodyLength = 0;
    for (const len of lens) {
      regions.push(bodyLength, pad8(len));
      bodyLength += pad8(len);
    }
    const T = lens[3]! / 4;
    const nodes = [B, 0, T, 0, B, 0, B, 0, B, 0, B, 0, B, 0]; // [length, null count] of each field
    const fb = batchMetadata.encode(B, nodes, regions, bodyLength);
    const metaSize = pad8(fb.length + 8);
    blocks.push(new FileBlock(metaSize, bodyLength, pos));
    metas.push(fb);
    layouts.push(lens);
    pos += metaSize + bodyLength;
    largest = Math.max(largest, metaSize + bodyLength);
  }
  const footer = Footer.encode(new Footer(schema, MetadataVersion.V5, blocks, []));
  // pass 2: the pieces
  const head = new Uint8Array(8);
  head.set(MAGIC, 0);
  sink(head);
  const buf = new Uint8Array(largest);
  const view = new DataView(buf.buffer);
  for (let k = 0; k < batches.length; k++) {
    const fb = metas[k]!;
    const block = blocks[k]!;
    const size = block.metaDataLength + Number(block.bodyLength);
    buf.fill(0, 0, size); // padding is zero
    view.setInt32(0, -1, true);
    view.setInt32(4, block.metaDataLength - 8, true);
    buf.set(fb, 8);
    writeBody(buf, block.metaDataLength, batches[k]!, layouts[k]!);
    sink(buf.subarray(0, size));
  }
  const tail = new Uint8Array(8 + footer.length + 4 + MAGIC.length);
  const tv = new DataView(tail.buffer);
  tv.setInt32(0, -1, true);
  tv.setInt32(4, 0, true);
  tail.set(footer, 8);
  tv.setInt32(8 + footer.length, footer.length, true);
  tail.set(MAGIC, 12 + footer.length);
  sink(tail);
  return pos + tail.length;
}

/** Writes one batch's body at out[p...] (8-byte aligned), buffer lengths `lens` as from bufferLengths. */
function writeBody(out: Uint8Array, p: number, rows: BatchRows, lens: number[]): void {
  const B = rows.tokens.length;
  const at: number[] = []; // start of each buffer
  for (const len of lens) {
    at.push(p);
    p += pad8(len);
  }
  const buf = out.buffer;
  // tokens: offsets, then the values
  const offsets = new Int32Array(buf, out.byteOffset + at[1]!, B + 1);
  const values = new Int32Array(buf, out.byteOffset + at[3]!, lens[3]! / 4);
  let o = 0;
  for (let b = 0; b < B; b++) {
    const src = rows.tokens[b]!;
    values.set(src, o);
    o += src.length;
    offsets[b + 1] = o;
  }
  const lengths = new Int32Array(buf, out.byteOffset + at[5]!, B);
  for (let b = 0; b < B; b++) lengths[b] = rows.tokens[b]!.length;
  out.set(rows.labels.subarray(0, B), at[7]!);
  new Int32Array(buf, out.byteOffset + at[9]!, B).set(rows.ids.subarray(0, B));
  out.set(new Uint8Array(rows.ratings.buffer, rows.ratings.byteOffset, B), at[11]!);
  // review: offsets, then the UTF-8 bytes
  const nameOffsets = new Int32Array(buf, out.byteOffset + at[13]!, B + 1);
  const bytes = Buffer.from(buf, out.byteOffset, out.length);
  let q = at[14]!;
  const start = q;
  for (let b = 0; b < B; b++) {
    q += bytes.write(rows.names[b]!, q, "utf8");
    nameOffsets[b + 1] = q - start;
  }
}

/** One batch as an Arrow IPC stream (schema + one record batch): the payload of a NATS message. */
export function encodeBatchMessage(meta: FileMeta & { index: number }, rows: BatchRows): Uint8Array {
  const schema = schemaFor(meta);
  schema.metadata.set("imdb_train.batch", String(meta.index));
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  writer.write(recordBatch(schema, rows));
  writer.finish();
  return writer.toUint8Array(true);
}

function toBatch(rb: RecordBatch, split: Split, index: number): Batch {
  const tokensData = rb.getChild("tokens")?.data[0] as Data<List<Int32>> | undefined;
  const lengthVec = rb.getChild("length");
  const labelVec = rb.getChild("label");
  const idVec = rb.getChild("id");
  if (!tokensData || !lengthVec || !labelVec || !idVec) throw new Error("missing column (tokens, length, label, id)");
  const B = rb.numRows;
  const offsets = tokensData.valueOffsets; // [B+1] (+ tokensData.offset)
  const values = tokensData.children[0]!.values as Int32Array;
  const lengths = Int32Array.from(lengthVec.toArray() as Int32Array); // [B]
  let T = 0;
  for (let b = 0; b < B; b++) if (lengths[b]! > T) T = lengths[b]!;
  const tokens = new Int32Array(B * T).fill(PAD_ID); // [B*T] row-major
  for (let b = 0; b < B; b++) {
    const start = offsets[tokensData.offset + b]!;
    const end = offsets[tokensData.offset + b + 1]!;
    if (end - start !== lengths[b]) throw new Error(`row ${b}: ${end - start} tokens but length ${lengths[b]}`);
    tokens.set(values.subarray(start, end), b * T);
  }
  return {
    split, index, size: B, maxLen: T, tokens, lengths,
    labels: Uint8Array.from(labelVec.toArray() as Uint8Array),
    ids: Int32Array.from(idVec.toArray() as Int32Array),
  };
}

export interface ArrowFileContents {
  meta: FileMeta & { format: string };
  /** Padded batches, `index` = position in the split (shard-aware). */
  batches: Batch[];
}

function readMeta(md: Map<string, string>, where: string): FileMeta & { format: string } {
  const format = md.get("imdb_train.format");
  if (format !== ARROW_FORMAT) throw new InputError(`not an imdb-train Arrow file (format ${format ?? "missing"}, expected ${ARROW_FORMAT})`, { path: where });
  const [k, n] = (md.get("imdb_train.shard") ?? "0/1").split("/").map(Number);
  return {
    format, vocabHash: md.get("imdb_train.vocab_hash") ?? "", split: (md.get("imdb_train.split") ?? "train") as Split,
    shard: { index: k ?? 0, count: n ?? 1 },
  };
}

/** Reads an Arrow IPC file written by encodeArrowFile; `where` names it in errors. */
export function decodeArrowFile(bytes: Uint8Array, where: string): ArrowFileContents {
  try {
    const table = tableFromIPC(bytes);
    const meta = readMeta(table.schema.metadata, where);
    // a file with no record batch reads back as one empty batch: ingest never writes empty batches
    const batches = table.batches.filter((rb) => rb.numRows > 0)
      .map((rb, j) => toBatch(rb, meta.split, j * meta.shard.count + meta.shard.index));
    return { meta, batches };
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`corrupt Arrow file: ${(err as Error).message}`, { path: where, cause: err });
  }
}

/** Decodes a NATS batch message (encodeBatchMessage). */
export function decodeBatchMessage(bytes: Uint8Array, where = "batch message"): Batch & { vocabHash: string } {
  try {
    const table = tableFromIPC(bytes);
    const md = table.schema.metadata;
    const meta = readMeta(md, where);
    const rb = table.batches[0];
    if (!rb || table.batches.length !== 1) throw new Error(`expected one record batch, got ${table.batches.length}`);
    return { ...toBatch(rb, meta.split, Number(md.get("imdb_train.batch") ?? 0)), vocabHash: meta.vocabHash };
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`corrupt batch message: ${(err as Error).message}`, { path: where, cause: err });
  }
}

/** Row-level view of a file for tests and tools: names and ratings as well as the batch columns. */
export function readArrowRows(bytes: Uint8Array): { review: string[]; rating: number[]; label: number[]; id: number[]; length: number[] } {
  const table = tableFromIPC(bytes);
  const col = (name: string) => [...(table.getChild(name)?.toArray() ?? [])] as never[];
  return { review: col("review"), rating: col("rating"), label: col("label"), id: col("id"), length: col("length") };
}
