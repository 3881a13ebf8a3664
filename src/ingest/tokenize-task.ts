// Runs inside a piscina thread: decodes and tokenizes a batch of reviews, interning each token in this
// thread's own dictionary (token → local id) and counting the tokens of the reviews marked for counting.
// Only new tokens and sparse counts cross the thread boundary. The reviews' bytes come in shared memory
// and the ids go back in the same memory (over the bytes, which are read by then), so that once the
// vocabulary is chosen this thread can map its own ids to vocabulary ids in place (`RemapTask`) while
// the main thread maps its share.
import { threadId } from "node:worker_threads";
import { Interner } from "./intern.js";
import { forEachTokenRange, normalize } from "./tokenizer.js";
import { forEachTokenAscii, forEachTokenUnits, isAscii, unitsOf } from "./tokenizer-bytes.js";
import { withTransfer, type Moved } from "./piscina.js";

/** N reviews packed into one buffer. */
export interface TokenizeTask {
  /** UTF-8 bytes of the N reviews, back to back, in shared memory. */
  bytes: Uint8Array<SharedArrayBuffer>;
  /** [N+1] byte offsets: review i is bytes[offsets[i] .. offsets[i+1]). */
  offsets: Int32Array;
  /** [N] 1 = count this review's tokens (training reviews). */
  counted: Uint8Array;
}

export interface TokenizeResult {
  /** The thread whose dictionary `ids` refer to. */
  thread: number;
  /** [total tokens] local ids of every token of every review, in order; shared memory. */
  ids: Int32Array<SharedArrayBuffer>;
  /** [N+1] token offsets: review i is ids[tokOffsets[i] .. tokOffsets[i+1]). */
  tokOffsets: Int32Array;
  /** [N] 1 = invalid UTF-8 was replaced by U+FFFD. */
  invalidUtf8: Uint8Array;
  /** Tokens first seen by this thread in this task; newTokens[k] has local id firstNewId + k. */
  firstNewId: number;
  newTokens: string[];
  /** [U] local ids that occur in the counted reviews, and [U] how often. */
  countIds: Int32Array;
  countValues: Int32Array;
}

/** Maps ids in place: each array of `ids` (shared memory) through `map` (local id → vocabulary id). */
export interface RemapTask {
  remap: Int32Array<SharedArrayBuffer>[];
  map: Int32Array;
}

export function remapIds(task: RemapTask): void {
  const { map } = task;
  for (const a of task.remap) for (let j = 0; j < a.length; j++) a[j] = map[a[j]!]!;
}

/** This thread's dictionary (token → local id). The main thread, which tokenizes a share of some ingests,
 *  uses the ingest's merger dictionary (`useDictionary`); a piscina thread lives for one ingest. */
let dict = new Interner();
/** IMDB_TRAIN_INGEST_BYTES=0 turns the byte path off (to compare both paths' datasets). */
const BYTE_PATH = process.env.IMDB_TRAIN_INGEST_BYTES !== "0";
const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");
let counts = new Int32Array(1 << 17); // local id → count within the current task (reset after each)

// The current task's state, at module level so that the two emit functions below are created once:
// the scanners then always call the same targets (V8 inlines them and never has to deoptimize).
let ids = new Int32Array(1 << 18); // [tokens] ids of the current task
let count = 0;
let units = new Uint16Array(1 << 16); // the current review's normalised code units (byte path)
let curText = "";
let curBytes: Uint8Array = new Uint8Array(0); // the current task's bytes (ASCII path)

function growIds(): void {
  const grown = new Int32Array(ids.length * 2);
  grown.set(ids);
  ids = grown;
}

const emitText = (start: number, end: number): void => {
  const id = dict.intern(curText, start, end);
  if (count === ids.length) growIds();
  ids[count++] = id;
};

const emitAscii = (start: number, end: number): void => {
  const id = dict.internAscii(curBytes, start, end);
  if (count === ids.length) growIds();
  ids[count++] = id;
};

const emitUnits = (start: number, end: number): void => {
  const id = dict.internUnits(units, start, end);
  if (count === ids.length) growIds();
  ids[count++] = id;
};

/**
 * Appends the ids of the tokens of review bytes[a, b) to `ids`; returns 1 when it had invalid UTF-8 (replaced).
 * The hot function: small, so that V8 compiles it (with the scanner and interner inlined) on its own.
 */
function tokenizeReview(bytes: Uint8Array, a: number, b: number): number {
  if (BYTE_PATH && isAscii(bytes, a, b)) {
    curBytes = bytes;
    forEachTokenAscii(bytes, a, b, emitAscii);
    return 0;
  }
  if (units.length < b - a) units = new Uint16Array(b - a);
  const nUnits = BYTE_PATH ? unitsOf(bytes, a, b, units) : -1;
  if (nUnits >= 0) {
    forEachTokenUnits(units, nUnits, emitUnits);
    return 0;
  }
  const view = bytes.subarray(a, b);
  let bad = 0;
  try {
    curText = strict.decode(view);
  } catch {
    curText = lenient.decode(view);
    bad = 1;
  }
  curText = normalize(curText);
  forEachTokenRange(curText, emitText);
  curText = "";
  return bad;
}

/** Adds the ids[from, to) to `counts`, listing each id seen for the first time in `touched`. */
function countIds(from: number, to: number, touched: number[]): void {
  if (counts.length < dict.size) {
    const grown = new Int32Array(Math.max(dict.size, counts.length * 2));
    grown.set(counts);
    counts = grown;
  }
  for (let j = from; j < to; j++) {
    const id = ids[j]!;
    if (counts[id]++ === 0) touched.push(id);
  }
}

// Warm-up: run every branch of the scanner, the interner and the string path on a sample before the first
// task, so that the code V8 optimises from the real reviews has seen them all (otherwise each branch met
// later throws the optimised code away and the thread compiles it again). The dictionary is emptied after.
{
  const sample = new TextEncoder().encode(
    "Don't we'll I'm they're you've he'd it's o'clock rock'n'roll CAN'T 1,000.50 7.5 2001 ... .. !! " +
    "<br /><BR>< br> <b> a-b (c) \"q\" é É naïve Ω ж ’S N’T – ½ ٣ \u00a0\u2003 long-long-words aaaaaaaaaa\n\t");
  const more = new Uint8Array(sample.length + 6);
  more.set(sample);
  more.set([0x61, 0xff, 0x20, 0xf0, 0x9f, 0x98], sample.length); // invalid UTF-8, a cut emoji: the string path
  const ascii = new TextEncoder().encode( // the ASCII path
    "Don't WE'LL I'm they're You've he'd it's o'clock rock'n'roll CAN'T 1,000.50 7.5 2001 ... .. !! x.y " +
    "<br /><BR>< br> <b> <br  /> a-b (c) \"q\" long-long-words Aaaaaaaaaaa Incomprehensible\n\t");
  for (let k = 0; k < 30; k++) {
    count = 0;
    tokenizeReview(ascii, 0, ascii.length);
    tokenizeReview(sample, 0, sample.length);
    tokenizeReview(more, 0, more.length);
    countIds(0, count, []);
  }
  counts.fill(0);
  count = 0;
  dict = new Interner(); // a new one is cheaper than clearing the warm one's tables
}

/** Tokenizes with `d` from now on (ids are d's ids; tokens new to it are added to it); returns the
 *  dictionary used until now, to be put back afterwards. */
export function useDictionary(d: Interner): Interner {
  const before = dict;
  dict = d;
  return before;
}

/**
 * Tokenizes one task on the calling thread (a piscina thread, or the main thread helping at the end);
 * `thread` names the dictionary the ids refer to in the result (default: this thread's id).
 */
export function tokenizeBatch(task: TokenizeTask, thread = threadId): TokenizeResult {
  const { bytes, offsets, counted } = task;
  const n = offsets.length - 1;
  if (ids.length < bytes.length >> 2) ids = new Int32Array(bytes.length >> 2); // ~1 token per 5 bytes
  count = 0;
  const tokOffsets = new Int32Array(n + 1);
  const invalidUtf8 = new Uint8Array(n);
  const firstNewId = dict.size;
  const touched: number[] = [];
  for (let i = 0; i < n; i++) {
    const from = count;
    invalidUtf8[i] = tokenizeReview(bytes, offsets[i]!, offsets[i + 1]!);
    tokOffsets[i + 1] = count;
    if (counted[i]) countIds(from, count, touched);
  }
  const countIdsOut = Int32Array.from(touched);
  const countValues = new Int32Array(countIdsOut.length);
  for (let k = 0; k < countIdsOut.length; k++) {
    countValues[k] = counts[countIdsOut[k]!]!;
    counts[countIdsOut[k]!] = 0;
  }
  // The ids go back in the task's own buffer when they fit (its text is read): fresh memory costs a page
  // fault per 4 KiB, and on a virtual machine that is as much as the tokenizing of those bytes.
  const out = new Int32Array(count * 4 <= bytes.buffer.byteLength ? bytes.buffer : new SharedArrayBuffer(count * 4), 0, count);
  out.set(ids.subarray(0, count));
  const newTokens = dict.tokens.slice(firstNewId);
  return { thread, ids: out, tokOffsets, invalidUtf8, firstNewId, newTokens, countIds: countIdsOut, countValues };
}

/** The piscina task: a tokenize result's own arrays go back to the main thread by transfer (the ids are
 *  shared); a remap answers null once done. */
export default function poolTask(task: TokenizeTask | RemapTask): Moved | null {
  if ("remap" in task) {
    remapIds(task);
    return null;
  }
  const r = tokenizeBatch(task);
  return withTransfer(r, [r.tokOffsets.buffer, r.invalidUtf8.buffer, r.countIds.buffer, r.countValues.buffer] as ArrayBuffer[]);
}
