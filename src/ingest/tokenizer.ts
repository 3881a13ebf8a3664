// The English tokenizer used for every review: deterministic rules close to spaCy's `en` tokenizer on
// this kind of text. Pure functions only (it runs inside the piscina workers, see tokenize-task.ts).
//
// Rules, applied in order:
//  1. Markup: every `<br />` (also `<br>`, `<br/>`, any case) becomes a space.
//  2. Lowercase (String.prototype.toLowerCase, locale-independent); curly apostrophes ’ ‘ become '.
//  3. Words are runs of letters, combining marks and digits (any script: "café", "naïve", "2001").
//     A number keeps inner decimal points and thousands commas: "7.5", "1,000".
//  4. Clitics are split off a word and kept as their own token, like spaCy:
//     "don't" → do n't, "can't" → ca n't, "it's" → it 's, "i'm" → i 'm, "we'll" → we 'll,
//     "they're" → they 're, "i've" → i 've, "he'd" → he 'd. Another single inner apostrophe stays in the
//     word ("o'clock"); a second one is split off ("rock'n'roll" → rock'n ' roll).
//  5. Punctuation and symbols are split off one character at a time ("!!" → ! !, "well-made" →
//     well - made), except that runs of dots are one token ("..." stays "...").
//  6. Whitespace separates and is dropped. An empty or all-markup review has no tokens.
//
// Every token is a substring of the normalised text, so the scanners report [start, end) ranges and never
// allocate: `forEachTokenRange` over a string, and the byte path (`unitsOf` + `forEachTokenUnits`, what the
// ingest threads run) over a review's UTF-8 bytes; `tokenizeReference` is the same rules as one regular
// expression: slow, obvious, and the reference the tests hold the scanners to.

import { CHARS } from "./tokenizer-bytes.js";
export { forEachTokenAscii, forEachTokenUnits, isAscii, tokenizeAscii, tokenizeBytes, unitsOf } from "./tokenizer-bytes.js";

const BR = /<br\s*\/?>/gi;
const CURLY = /[\u2018\u2019]/g;

/** Normalise a review before finding tokens: markup removed, lowercase, straight apostrophes. */
export function normalize(text: string): string {
  const s = text.replace(BR, " ").toLowerCase();
  return s.indexOf("\u2019") >= 0 || s.indexOf("\u2018") >= 0 ? s.replace(CURLY, "'") : s;
}


// the character classes (tokenizer-bytes.ts), as constants of this module
const { CLASS, KNOWN, classify, LM, DIGIT, SPACE, WORD, APOS, DOT, COMMA, N, T } = CHARS;
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;
function classifyAll(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (KNOWN[c] === 0) classify(c);
  }
}
const SURROGATE = /[\ud800-\udfff]/;

function isClitic(s: string, j: number, k: number): boolean {
  // s[j] is the apostrophe; suffix = s[j..k)
  const len = k - j;
  const a = s.charCodeAt(j + 1);
  if (len === 2) return a === 115 /* s */ || a === 109 /* m */ || a === 100 /* d */;
  if (len === 3) {
    const b = s.charCodeAt(j + 2);
    return (a === 114 && b === 101) /* re */ || (a === 118 && b === 101) /* ve */ || (a === 108 && b === 108); /* ll */
  }
  return false;
}

/** Emits word [i, k) with its clitic split off (rule 4); s[j] is its apostrophe, or j = k when none. */
function emitWord(s: string, i: number, j: number, k: number, emit: (start: number, end: number) => void): void {
  if (j < k) {
    if (k - j === 2 && s.charCodeAt(j + 1) === T && s.charCodeAt(j - 1) === N && j - 1 > i) {
      emit(i, j - 1); // "don't" → do + n't
      emit(j - 1, k);
      return;
    }
    if (isClitic(s, j, k)) {
      emit(i, j);
      emit(j, k);
      return;
    }
  }
  emit(i, k);
}

/**
 * Calls `emit(start, end)` for each token of the already-normalised string `s`, in order
 * (token = s.slice(start, end)). The allocation-free core the workers use: a table-driven scanner,
 * or the reference expression for the rare text with characters outside the BMP (emoji).
 */
export function forEachTokenRange(s: string, emit: (start: number, end: number) => void): void {
  if (BEYOND_LATIN1.test(s)) {
    if (SURROGATE.test(s)) return forEachTokenRangeRegex(s, emit);
    classifyAll(s);
  }
  const n = s.length;
  let i = 0;
  while (i < n) {
    const cls = CLASS[s.charCodeAt(i)]!;
    if (cls & SPACE) { i++; continue; }
    if (cls & WORD) {
      let j = i + 1;
      if (cls & DIGIT) {
        // a run of digits followed by [.,]digit continues as a number: "7.5", "1,000"
        let d = j;
        while (d < n && (CLASS[s.charCodeAt(d)]! & DIGIT)) d++;
        let end = d;
        while (end + 1 < n) {
          const sep = s.charCodeAt(end);
          if ((sep !== DOT && sep !== COMMA) || !(CLASS[s.charCodeAt(end + 1)]! & DIGIT)) break;
          end += 2;
          while (end < n && (CLASS[s.charCodeAt(end)]! & DIGIT)) end++;
        }
        if (end > d) {
          emit(i, end);
          i = end;
          continue;
        }
        j = d;
      }
      while (j < n && (CLASS[s.charCodeAt(j)]! & WORD)) j++;
      if (j + 1 < n && s.charCodeAt(j) === APOS && (CLASS[s.charCodeAt(j + 1)]! & LM)) {
        let k = j + 2;
        while (k < n && (CLASS[s.charCodeAt(k)]! & LM)) k++;
        emitWord(s, i, j, k, emit);
        i = k;
        continue;
      }
      emit(i, j);
      i = j;
      continue;
    }
    if (s.charCodeAt(i) === DOT && i + 1 < n && s.charCodeAt(i + 1) === DOT) {
      let j = i + 2;
      while (j < n && s.charCodeAt(j) === DOT) j++;
      emit(i, j);
      i = j;
      continue;
    }
    emit(i, i + 1);
    i++;
  }
}

// ---- the reference: the same rules as one regular expression ----------------------------------
const REF_TOKEN = /\p{N}+(?:[.,]\p{N}+)+|[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}]+)?|\.{2,}|[^\s\p{L}\p{M}\p{N}]/gu;

function forEachTokenRangeRegex(s: string, emit: (start: number, end: number) => void): void {
  REF_TOKEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = REF_TOKEN.exec(s)) !== null) {
    const i = m.index;
    const k = i + m[0].length;
    const apo = m[0].indexOf("'");
    emitWord(s, i, apo > 0 ? i + apo : k, k, emit);
  }
}

/** Calls `emit` once per token of `text` (see the rules at the top of this file). */
export function forEachToken(text: string, emit: (token: string) => void): void {
  const s = normalize(text);
  forEachTokenRange(s, (a, b) => emit(s.slice(a, b)));
}

/** The tokens of one review (see the rules at the top of this file). */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  forEachToken(text, (t) => out.push(t));
  return out;
}

/** The same rules through the regular expression alone: the slow, obvious reference for tests. */
export function tokenizeReference(text: string): string[] {
  const s = normalize(text);
  const out: string[] = [];
  forEachTokenRangeRegex(s, (a, b) => out.push(s.slice(a, b)));
  return out;
}
