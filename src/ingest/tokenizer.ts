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
// Every token is a substring of the normalised text, so the fast path (`forEachTokenRange`) reports
// [start, end) ranges and never allocates; `tokenizeReference` is the same rules as one regular
// expression: slow, obvious, and the reference the tests hold the scanner to.

const BR = /<br\s*\/?>/gi;
const CURLY = /[\u2018\u2019]/g;

/** Normalise a review before finding tokens: markup removed, lowercase, straight apostrophes. */
export function normalize(text: string): string {
  const s = text.replace(BR, " ").toLowerCase();
  return s.indexOf("\u2019") >= 0 || s.indexOf("\u2018") >= 0 ? s.replace(CURLY, "'") : s;
}

// ---- character classes of the BMP, computed once per thread ---------------------------------------
const LM = 1; //    letter or combining mark  \p{L} \p{M}
const DIGIT = 2; // number                    \p{N}
const SPACE = 4; // whitespace                \s
const WORD = LM | DIGIT;
// ASCII and Latin-1 are classified up front; any other character the first time a text contains it.
const CLASS = new Uint8Array(65536);
const KNOWN = new Uint8Array(65536);
const RE_LM = /[\p{L}\p{M}]/u;
const RE_N = /\p{N}/u;
const RE_SPACE = /\s/;
function classify(c: number): void {
  const ch = String.fromCharCode(c);
  CLASS[c] = (RE_LM.test(ch) ? LM : 0) | (RE_N.test(ch) ? DIGIT : 0) | (RE_SPACE.test(ch) ? SPACE : 0);
  KNOWN[c] = 1;
}
for (let c = 0; c < 256; c++) classify(c);
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;
function classifyAll(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (KNOWN[c] === 0) classify(c);
  }
}
const SURROGATE = /[\ud800-\udfff]/;

const APOS = 39; // '
const DOT = 46;
const COMMA = 44;
const N = 110; // n
const T = 116; // t

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

// ---- the byte path: ASCII reviews straight from their UTF-8 bytes ----------------------------
// Most reviews are pure ASCII. For them the threads skip decoding, markup replacement and lowercasing
// (three copies of the text): this scanner reads the bytes, treats `<br />` as a space and lowercases
// as it compares. It gives the same tokens as the string path (tests hold it to that).

const LOWER = new Uint8Array(128);
for (let c = 0; c < 128; c++) LOWER[c] = c >= 65 && c <= 90 ? c + 32 : c;
/** A lowercase copy of the ASCII table of character classes. */
const ACLASS = Uint8Array.from({ length: 128 }, (_, c) => CLASS[LOWER[c]!]!);

/** True when bytes[start, end) are all ASCII. */
export function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

/** Length of a `<br>` / `<br/>` / `<br />` (any case, any spaces) starting at i, or 0. */
function brAt(b: Uint8Array, i: number, end: number): number {
  if (i + 3 >= end || b[i] !== 60 /* < */ || LOWER[b[i + 1]!] !== 98 /* b */ || LOWER[b[i + 2]!] !== 114 /* r */) return 0;
  let j = i + 3;
  while (j < end && (ACLASS[b[j]!]! & SPACE)) j++;
  if (j < end && b[j] === 47 /* / */) j++;
  return j < end && b[j] === 62 /* > */ ? j + 1 - i : 0;
}

function isCliticBytes(b: Uint8Array, j: number, k: number): boolean {
  const len = k - j;
  const a = LOWER[b[j + 1]!];
  if (len === 2) return a === 115 || a === 109 || a === 100; // 's 'm 'd
  if (len === 3) {
    const c = LOWER[b[j + 2]!];
    return (a === 114 && c === 101) || (a === 118 && c === 101) || (a === 108 && c === 108); // 're 've 'll
  }
  return false;
}

/**
 * forEachTokenRange for an ASCII review given as bytes[start, end): emits absolute byte ranges; the
 * token is the range lowercased. Markup `<br />` separates like a space.
 */
export function forEachTokenRangeAscii(b: Uint8Array, start: number, end: number, emit: (start: number, end: number) => void): void {
  let i = start;
  while (i < end) {
    const c0 = b[i]!;
    const cls = ACLASS[c0]!;
    if (cls & SPACE) { i++; continue; }
    if (cls & WORD) {
      let j = i + 1;
      if (cls & DIGIT) {
        let d = j;
        while (d < end && (ACLASS[b[d]!]! & DIGIT)) d++;
        let e = d;
        while (e + 1 < end) {
          const sep = b[e];
          if ((sep !== DOT && sep !== COMMA) || !(ACLASS[b[e + 1]!]! & DIGIT)) break;
          e += 2;
          while (e < end && (ACLASS[b[e]!]! & DIGIT)) e++;
        }
        if (e > d) {
          emit(i, e);
          i = e;
          continue;
        }
        j = d;
      }
      while (j < end && (ACLASS[b[j]!]! & WORD)) j++;
      if (j + 1 < end && b[j] === APOS && (ACLASS[b[j + 1]!]! & LM)) {
        let k = j + 2;
        while (k < end && (ACLASS[b[k]!]! & LM)) k++;
        if (k - j === 2 && LOWER[b[j + 1]!] === T && LOWER[b[j - 1]!] === N && j - 1 > i) {
          emit(i, j - 1);
          emit(j - 1, k);
        } else if (isCliticBytes(b, j, k)) {
          emit(i, j);
          emit(j, k);
        } else {
          emit(i, k);
        }
        i = k;
        continue;
      }
      emit(i, j);
      i = j;
      continue;
    }
    if (c0 === 60) {
      const br = brAt(b, i, end);
      if (br > 0) { i += br; continue; }
    }
    if (c0 === DOT && i + 1 < end && b[i + 1] === DOT) {
      let j = i + 2;
      while (j < end && b[j] === DOT) j++;
      emit(i, j);
      i = j;
      continue;
    }
    emit(i, i + 1);
    i++;
  }
}

/** The tokens of an ASCII review through the byte path (tests compare it with `tokenize`). */
export function tokenizeAscii(bytes: Uint8Array): string[] {
  const out: string[] = [];
  forEachTokenRangeAscii(bytes, 0, bytes.length, (a, b) => {
    let t = "";
    for (let q = a; q < b; q++) t += String.fromCharCode(LOWER[bytes[q]!]!);
    out.push(t);
  });
  return out;
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
