// A streaming reader of POSIX tar (ustar, pax and GNU long names): push decompressed bytes in any
// chunking, get whole entries out. Entries whose data nobody wants are skipped without buffering, and so
// is a wanted file over `maxFileBytes` (it comes out marked `tooLarge`, decided from its header). A size
// field that is negative, not a number, or over `maxEntryBytes` stops the parse: an archive that claims
// such an entry is not to be trusted.

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);
/** pax extended headers and GNU long names are buffered: larger ones are not from an honest archive. */
export const MAX_META_BYTES = 1 << 20;

export interface TarEntry {
  name: string;
  /** "file", "dir" or the raw type flag of anything else. */
  type: string;
  /** The file's bytes (empty for skipped entries and non-files); may be a view into a pushed chunk. */
  data: Buffer;
  size: number;
  /** A wanted file over `maxFileBytes`: skipped unread, `data` is empty. */
  tooLarge: boolean;
}

export interface TarLimits {
  /** A wanted file larger than this is skipped without being buffered (default: no limit). */
  maxFileBytes?: number;
  /** An entry whose header claims more bytes than this is a TarFormatError (default: 2^53 - 1). */
  maxEntryBytes?: number;
}

/** A tar stream that breaks the format; `offset` is the byte position in the uncompressed stream. */
export class TarFormatError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = "TarFormatError";
  }
}

function readString(b: Buffer, start: number, len: number): string {
  let end = start;
  const stop = start + len;
  while (end < stop && b[end] !== 0) end++;
  return b.toString("utf8", start, end);
}

/** A size field that is not an octal number. */
const BAD_SIZE = -1;
/** A GNU base-256 size with its sign bit set. */
const NEGATIVE_SIZE = -2;

/** A numeric header field: octal text, or GNU base-256 (first byte 0x80 positive, 0xff negative). */
function readSize(b: Buffer, start: number, len: number): number {
  const first = b[start]!;
  if (first & 0x80) {
    // base-256, two's complement in the bits after the marker bit: the 0x40 bit is the sign
    if (first & 0x40) return NEGATIVE_SIZE;
    let v = first & 0x3f;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + b[i]!; // inexact past 2^53: rejected as absurd
    return v;
  }
  const s = readString(b, start, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) return BAD_SIZE;
  return parseInt(s, 8);
}

/** An entry name for a message: quoted, control characters escaped, cut to 200 characters. */
function quoted(name: string): string {
  return JSON.stringify(name.length > 200 ? name.slice(0, 200) + "…" : name);
}

function checksumOk(h: Buffer): boolean {
  const want = readSize(h, 148, 8);
  // the sum of the header's bytes with the checksum field itself counted as eight spaces
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  return want === sum;
}

function paxPath(data: Buffer): string | undefined {
  // records: "<len> key=value\n"
  let i = 0;
  let path: string | undefined;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.toString("utf8", i, sp), 10);
    if (!(len > 0)) break;
    const rec = data.toString("utf8", sp + 1, i + len - 1);
    const eq = rec.indexOf("=");
    if (rec.slice(0, eq) === "path") path = rec.slice(eq + 1);
    i += len;
  }
  return path;
}

export class TarParser {
  private head = Buffer.alloc(BLOCK);
  private headFill = 0;
  private pieces: Buffer[] = [];
  private remaining = 0; // data bytes of the current entry still to read
  private padding = 0; //   bytes to skip after the data
  private current: { name: string; type: string; size: number; keep: boolean; tooLarge: boolean } | null = null;
  private longName: string | undefined;
  private zeroBlocks = 0;
  private pos = 0;
  private finished = false;
  private readonly maxFileBytes: number;
  private readonly maxEntryBytes: number;

  /** `want(name)` decides whether a file's data is kept; other files are skipped. */
  constructor(private readonly want: (name: string) => boolean, limits: TarLimits = {}) {
    this.maxFileBytes = limits.maxFileBytes ?? Infinity;
    this.maxEntryBytes = Math.min(limits.maxEntryBytes ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  }

  /** Bytes of the current entry held until it completes (pieces of pushed chunks). */
  get buffered(): number {
    let n = 0;
    for (const p of this.pieces) n += p.length;
    return n;
  }

  /** Parses `chunk`; returns the entries completed by it. */
  push(chunk: Buffer): TarEntry[] {
    const out: TarEntry[] = [];
    let i = 0;
    while (i < chunk.length && !this.finished) {
      if (this.current) {
        const n = Math.min(this.remaining, chunk.length - i);
        if (n > 0) {
          if (this.current.keep) this.pieces.push(chunk.subarray(i, i + n));
          this.remaining -= n;
          i += n;
          this.pos += n;
        }
        if (this.remaining === 0) {
          const skip = Math.min(this.padding, chunk.length - i);
          this.padding -= skip;
          i += skip;
          this.pos += skip;
          if (this.padding === 0) this.complete(out);
        }
        continue;
      }
      const n = Math.min(BLOCK - this.headFill, chunk.length - i);
      chunk.copy(this.head, this.headFill, i, i + n);
      this.headFill += n;
      i += n;
      this.pos += n;
      if (this.headFill === BLOCK) {
        this.headFill = 0;
        this.header(out);
      }
    }
    return out;
  }

  /** Call at the end of the stream; throws when it ends inside an entry. */
  end(): void {
    if (this.current || this.headFill !== 0) {
      throw new TarFormatError(`archive is truncated (ends inside ${this.current ? `"${this.current.name}"` : "a header"})`, this.pos);
    }
  }

  private header(out: TarEntry[]): void {
    const h = this.head;
    let zero = true;
    for (let k = 0; k < BLOCK; k++) if (h[k] !== 0) { zero = false; break; }
    if (zero) {
      if (++this.zeroBlocks >= 2) this.finished = true;
      return;
    }
    this.zeroBlocks = 0;
    const at = this.pos - BLOCK;
    if (!checksumOk(h)) throw new TarFormatError("corrupt tar header (bad checksum)", at);
    const flag = String.fromCharCode(h[156]!);
    let name = readString(h, 0, 100);
    if (h.toString("latin1", 257, 262) === "ustar") {
      const prefix = readString(h, 345, 155);
      if (prefix) name = prefix + "/" + name;
    }
    if (this.longName !== undefined) {
      name = this.longName;
      this.longName = undefined;
    }
    const size = this.checkedSize(readSize(h, 124, 12), name, at);
    const type = flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "dir" : flag;
    const meta = flag === "x" || flag === "L";
    if (meta && size > MAX_META_BYTES) throw new TarFormatError(`${flag === "x" ? "pax header" : "long name"} of ${size} bytes before ${quoted(name)} (over ${MAX_META_BYTES})`, at);
    const wanted = type === "file" && this.want(name);
    const tooLarge = wanted && size > this.maxFileBytes;
    const keep = meta || (wanted && !tooLarge);
    this.current = { name, type, size, keep, tooLarge };
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.pieces = [];
    if (size === 0) this.complete(out);
  }

  private complete(out: TarEntry[]): void {
    const cur = this.current!;
    this.current = null;
    // one piece: a view into the input chunk (no copy; the caller copies when it packs reviews)
    const data = cur.keep ? (this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces)) : EMPTY;
    this.pieces = [];
    if (cur.type === "L") {
      this.longName = readString(data, 0, data.length);
    } else if (cur.type === "x") {
      const p = paxPath(data);
      if (p !== undefined) this.longName = p;
    } else if (cur.type !== "g") {
      out.push({ name: cur.name, type: cur.type, data, size: cur.size, tooLarge: cur.tooLarge });
    }
  }

  /** The header's size, or a TarFormatError naming the entry when it cannot be a real one. */
  private checkedSize(size: number, name: string, at: number): number {
    if (size === BAD_SIZE) throw new TarFormatError(`corrupt tar header of ${quoted(name)} (bad size field)`, at);
    if (size === NEGATIVE_SIZE) throw new TarFormatError(`entry ${quoted(name)} has a negative size (base-256 field with its sign bit set)`, at);
    if (!(size <= this.maxEntryBytes)) throw new TarFormatError(`entry ${quoted(name)} claims ${size} bytes, over the ${this.maxEntryBytes}-byte limit on what the archive unpacks to`, at);
    return size;
  }
}
