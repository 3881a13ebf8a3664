// Runs inside a piscina thread: decodes and tokenizes a batch of reviews, interning each token in this
// thread's own dictionary (token → local id) and counting the tokens of the reviews marked for counting.
// Only new tokens and sparse counts cross the thread boundary; ids come back as transferred typed arrays.
import { threadId } from "node:worker_threads";
import { Interner } from "./intern.js";
import { forEachTokenRange, forEachTokenUnits, normalize, unitsOf } from "./tokenizer.js";
import { withTransfer } from "./piscina.js";

/** N reviews packed into one buffer. */
export interface TokenizeTask {
  /** UTF-8 bytes of the N reviews, back to back. */
  bytes: Uint8Array;
  /** [N+1] byte offsets: review i is bytes[offsets[i] .. offsets[i+1]). */
  offsets: Int32Array;
  /** [N] 1 = count this review's tokens (training reviews). */
  counted: Uint8Array;
}

export interface TokenizeResult {
  /** The thread whose dictionary `ids` refer to. */
  thread: number;
  /** [total tokens] local ids of every token of every review, in order. */
  ids: Int32Array;
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

const dict = new Interner();
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

const emitUnits = (start: number, end: number): void => {
  const id = dict.internUnits(units, start, end);
  if (count === ids.length) growIds();
  ids[count++] = id;
};

export default function tokenizeTask(task: TokenizeTask): TokenizeResult {
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
    const a = offsets[i]!;
    const b = offsets[i + 1]!;
    if (units.length < b - a) units = new Uint16Array(b - a);
    const nUnits = BYTE_PATH ? unitsOf(bytes, a, b, units) : -1;
    if (nUnits >= 0) {
      forEachTokenUnits(units, nUnits, emitUnits);
    } else {
      const view = bytes.subarray(a, b);
      try {
        curText = strict.decode(view);
      } catch {
        curText = lenient.decode(view);
        invalidUtf8[i] = 1;
      }
      curText = normalize(curText);
      forEachTokenRange(curText, emitText);
    }
    tokOffsets[i + 1] = count;
    if (counted[i]) {
      if (counts.length < dict.size) {
        const grown = new Int32Array(Math.max(dict.size, counts.length * 2));
        grown.set(counts);
        counts = grown;
      }
      for (let j = from; j < count; j++) {
        const id = ids[j]!;
        if (counts[id]++ === 0) touched.push(id);
      }
    }
  }
  const countIds = Int32Array.from(touched);
  const countValues = new Int32Array(countIds.length);
  for (let k = 0; k < countIds.length; k++) {
    countValues[k] = counts[countIds[k]!]!;
    counts[countIds[k]!] = 0;
  }
  const out = ids.slice(0, count);
  const newTokens = dict.tokens.slice(firstNewId);
  curText = "";
  return withTransfer<TokenizeResult>(
    { thread: threadId, ids: out, tokOffsets, invalidUtf8, firstNewId, newTokens, countIds, countValues },
    [out.buffer, tokOffsets.buffer, invalidUtf8.buffer, countIds.buffer, countValues.buffer],
  );
}
