// The one module that imports apache-arrow: the dataset's Arrow schema, the metadata encoders the direct
// file writer (arrow-writer.ts) uses, apache-arrow's own writer (the reference for tests), one batch as a
// self-describing IPC stream message (what --publish sends over NATS), and the readers.
//
// Layout of every file, one record batch per training batch:
//   tokens  List<Int32>  the review's token ids, unpadded (truncated to --max-len when set)
//   length  Int32        number of tokens (>= 1)
//   label   Uint8        1 = positive, 0 = negative; null in every row of an unlabelled split (unsup):
//                        the field is then nullable and the schema says imdb_train.labelled = "false"
//   id      Int32        sample id, unique across the dataset
//   rating  Int8         star rating from the file name (0 for unlabelled reviews)
//   review  Utf8         the review's name, e.g. "train/pos/123_8", "train/unsup/123_0"
// Schema metadata: imdb_train.format, imdb_train.vocab_hash, imdb_train.split, imdb_train.shard ("k/N"),
// and imdb_train.labelled ("false") on unlabelled files only.
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
  /** false: the reviews have no label (the label column is all null). Default true. */
  labelled?: boolean;
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
  const labelled = meta.labelled !== false;
  if (!labelled) md.set("imdb_train.labelled", "false");
  return new Schema([
    new Field("tokens", new List(new Field("item", new Int32(), false)), false),
    new Field("length", new Int32(), false),
    new Field("label", new Uint8(), !labelled),
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
    f[2]!.nullable // an unlabelled split: every label null
      ? makeData({ type: new Uint8(), length: B, nullCount: B, nullBitmap: new Uint8Array((B + 7) >> 3), data: rows.labels })
      : makeData({ type: new Uint8(), length: B, nullCount: 0, data: rows.labels }),
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

// ---- what the direct file writer (arrow-writer.ts) needs from Arrow: its metadata encoders ----------

/** The flatbuffer Message(RecordBatch) of one batch: B rows, [length, null count] per field node, [offset, length] per buffer. */
export function recordBatchMessage(B: number, nodes: number[], regions: number[], bodyLength: number): Uint8Array {
  const fieldNodes: FieldNode[] = [];
  for (let i = 0; i < nodes.length; i += 2) fieldNodes.push(new FieldNode(nodes[i]!, nodes[i + 1]!));
  const bufferRegions: BufferRegion[] = [];
  for (let i = 0; i < regions.length; i += 2) bufferRegions.push(new BufferRegion(regions[i]!, regions[i + 1]!));
  return Message.encode(Message.from(new RecordBatchHeader(B, fieldNodes, bufferRegions, null), bodyLength));
}

/** A record batch's place in the file: where its message starts, its metadata size and its body size. */
export interface BlockInfo {
  offset: number;
  metaDataLength: number;
  bodyLength: number;
}

/** The flatbuffer Footer of a file of `meta`'s schema holding `blocks`. */
export function fileFooter(meta: FileMeta, blocks: BlockInfo[]): Uint8Array {
  const fileBlocks = blocks.map((b) => new FileBlock(b.metaDataLength, b.bodyLength, b.offset));
  return Footer.encode(new Footer(schemaFor(meta), MetadataVersion.V5, fileBlocks, []));
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
  // an unlabelled batch has every label null (a label column partly null is not one ingest writes)
  const labelled = labelVec.nullCount === 0;
  if (!labelled && labelVec.nullCount !== B) throw new Error(`label column has ${labelVec.nullCount} nulls in ${B} rows`);
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
    labels: labelled ? Uint8Array.from(labelVec.toArray() as Uint8Array) : new Uint8Array(B),
    ids: Int32Array.from(idVec.toArray() as Int32Array),
    ...(labelled ? {} : { labelled: false }),
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
    shard: { index: k ?? 0, count: n ?? 1 }, labelled: md.get("imdb_train.labelled") !== "false",
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

/** Row-level view of a file for tests and tools: names and ratings as well as the batch columns (null labels as null). */
export function readArrowRows(bytes: Uint8Array): { review: string[]; rating: number[]; label: (number | null)[]; id: number[]; length: number[] } {
  const table = tableFromIPC(bytes);
  const col = (name: string) => [...(table.getChild(name) ?? [])] as never[];
  return { review: col("review"), rating: col("rating"), label: col("label"), id: col("id"), length: col("length") };
}
