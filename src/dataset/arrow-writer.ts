// The direct Arrow file writer: the same bytes as apache-arrow's RecordBatchFileWriter (tests compare them
// with encodeArrowFileReference), a batch at a time through one reused buffer (fresh memory costs a page
// fault per 4 KiB): token ids are copied straight into it, and no column arrays, record batches or chunk
// lists are built. Arrow's code (arrow.ts) still encodes the metadata: the footer, and the first batch's
// flatbuffer, which the others copy with their own numbers.
// The layout it reproduces, per record batch:
//   message: int32 -1, int32 metadata size, flatbuffer Message(RecordBatch), zero padding to 8 bytes
//   body:    the buffers of the columns in schema order, each zero-padded to 8 bytes, a buffer's recorded
//            length being its padded length; a validity buffer before each column's buffers, empty except
//            for the label of an unlabelled split (all null: ceil(B/8) zero bytes):
//            tokens: offsets [B+1] int32, then its child: values [T] int32; length [B] int32;
//            label [B] uint8; id [B] int32; rating [B] int8; review: offsets [B+1] int32, UTF-8 bytes.
// File: "ARROW1" + 2 zero bytes, the messages and bodies, end-of-stream (int32 -1, int32 0), the footer
// flatbuffer (schema and [offset, metadata size, body size] of every batch), its int32 size, "ARROW1".
import { fileFooter, recordBatchMessage, type BatchRows, type BlockInfo, type FileMeta } from "./arrow.js";

const MAGIC = Uint8Array.from("ARROW1", (c) => c.charCodeAt(0));
const pad8 = (n: number) => (n + 7) & ~7;

/** Byte lengths of one batch's buffers in body order (validity buffers empty, but the label's when unlabelled). */
function bufferLengths(rows: BatchRows, nameBytes: number, labelled: boolean): number[] {
  const B = rows.tokens.length;
  let T = 0;
  for (let b = 0; b < B; b++) T += rows.tokens[b]!.length;
  const labelValidity = labelled ? 0 : (B + 7) >> 3;
  return [0, (B + 1) * 4, 0, T * 4, 0, B * 4, labelValidity, B, 0, B * 4, 0, B, 0, (B + 1) * 4, nameBytes];
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
    return recordBatchMessage(B, nodes, regions, bodyLength);
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
 * `onBatch` is called after each batch (progress). Returns the file's size.
 */
export function writeArrowFile(meta: FileMeta, batches: BatchRows[], sink: (piece: Uint8Array) => void, onBatch?: () => void): number {
  const labelled = meta.labelled !== false;
  // pass 1: sizes, metadata and the footer
  const batchMetadata = new BatchMetadata();
  const metas: Uint8Array[] = [];
  const layouts: number[][] = [];
  const blocks: BlockInfo[] = [];
  let pos = 8;
  let largest = 0;
  for (const rows of batches) {
    const B = rows.tokens.length;
    let nameBytes = 0;
    for (let b = 0; b < B; b++) nameBytes += Buffer.byteLength(rows.names[b]!, "utf8");
    const lens = bufferLengths(rows, nameBytes, labelled);
    const regions: number[] = []; // [offset, length] of each buffer
    let bodyLength = 0;
    for (const len of lens) {
      regions.push(bodyLength, pad8(len));
      bodyLength += pad8(len);
    }
    const T = lens[3]! / 4;
    const nodes = [B, 0, T, 0, B, 0, B, labelled ? 0 : B, B, 0, B, 0, B, 0]; // [length, null count] of each field
    const fb = batchMetadata.encode(B, nodes, regions, bodyLength);
    const metaSize = pad8(fb.length + 8);
    blocks.push({ offset: pos, metaDataLength: metaSize, bodyLength });
    metas.push(fb);
    layouts.push(lens);
    pos += metaSize + bodyLength;
    largest = Math.max(largest, metaSize + bodyLength);
  }
  const footer = fileFooter(meta, blocks);
  // pass 2: the pieces
  const head = new Uint8Array(8);
  head.set(MAGIC, 0);
  sink(head);
  const buf = new Uint8Array(largest);
  const view = new DataView(buf.buffer);
  for (let k = 0; k < batches.length; k++) {
    const fb = metas[k]!;
    const block = blocks[k]!;
    const size = block.metaDataLength + block.bodyLength;
    buf.fill(0, 0, size); // padding is zero
    view.setInt32(0, -1, true);
    view.setInt32(4, block.metaDataLength - 8, true);
    buf.set(fb, 8);
    writeBody(buf, block.metaDataLength, batches[k]!, layouts[k]!);
    sink(buf.subarray(0, size));
    onBatch?.();
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
