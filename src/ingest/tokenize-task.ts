// Runs inside a piscina thread: decodes and tokenizes a batch of reviews, interning each token in this
// thread's own dictionary (token → local id). The main thread merges the dictionaries once at the end,
// so the vocabulary never crosses the thread boundary per task and the results are plain typed arrays.
import { threadId } from "node:worker_threads";
import { Interner } from "./intern.js";
import { forEachTokenRange, normalize } from "./tokenizer.js";
import { withTransfer } from "./piscina.js";

/** N reviews packed into one buffer. */
export interface TokenizeTask {
  /** UTF-8 bytes of the N reviews, back to back. */
  bytes: Uint8Array;
  /** [N+1] byte offsets: review i is bytes[offsets[i] .. offsets[i+1]). */
  offsets: Int32Array;
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
}

const dict = new Interner();
const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");

export default function tokenizeTask(task: TokenizeTask): TokenizeResult {
  const { bytes, offsets } = task;
  const n = offsets.length - 1;
  let ids = new Int32Array(Math.max(1024, bytes.length >> 2)); // ~1 token per 5 bytes: rarely grows
  let count = 0;
  const tokOffsets = new Int32Array(n + 1);
  const invalidUtf8 = new Uint8Array(n);
  const firstNewId = dict.size;
  let text = "";
  const emit = (start: number, end: number) => {
    const id = dict.intern(text, start, end);
    if (count === ids.length) {
      const grown = new Int32Array(ids.length * 2);
      grown.set(ids);
      ids = grown;
    }
    ids[count++] = id;
  };
  for (let i = 0; i < n; i++) {
    const view = bytes.subarray(offsets[i]!, offsets[i + 1]!);
    try {
      text = strict.decode(view);
    } catch {
      text = lenient.decode(view);
      invalidUtf8[i] = 1;
    }
    text = normalize(text);
    forEachTokenRange(text, emit);
    tokOffsets[i + 1] = count;
  }
  const out = ids.slice(0, count);
  const newTokens = dict.tokens.slice(firstNewId);
  return withTransfer<TokenizeResult>(
    { thread: threadId, ids: out, tokOffsets, invalidUtf8, firstNewId, newTokens },
    [out.buffer, tokOffsets.buffer, invalidUtf8.buffer],
  );
}
