// The tokenizer's scanners over a review's UTF-8 bytes (the rules are in tokenizer.ts): what the ingest
// threads run on every review. The character classes live here, beside the hot loops that read them; the
// string scanner in tokenizer.ts shares them through `CHARS`.

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

const APOS = 39; // '
const DOT = 46;
const COMMA = 44;
const N = 110; // n
const T = 116; // t

/** The tables and constants above, for the string scanner (tokenizer.ts) to copy into its own module. */
export const CHARS = { CLASS, KNOWN, classify, LM, DIGIT, SPACE, WORD, APOS, DOT, COMMA, N, T } as const;

// ---- the byte path: reviews straight from their UTF-8 bytes ----------------------------------
// The threads skip decoding into a string, the markup expression and String.prototype.toLowerCase (three
// copies of the text): `unitsOf` turns a review's bytes into its normalised UTF-16 code units in one pass
// (rules 1 and 2: `<br />` becomes a space, lowercase, straight apostrophes) into a reusable buffer, and
// `forEachTokenUnits` is the string scanner of tokenizer.ts over those units. Per character lowercasing
// equals toLowerCase except for final sigma and the few characters whose lowercase is not one code unit
// (İ): a review with one of those, with a character beyond the BMP, or with invalid UTF-8 is left to the
// string path.
// Tests hold the byte path to the string path.

/** Lowercase unit (+1) of each BMP character for the byte path; 0 = not computed yet, BAIL = string path. */
const LOWER_UNIT = new Int32Array(65536);
const BAIL = -1;
for (let c = 0; c < 128; c++) LOWER_UNIT[c] = (c >= 65 && c <= 90 ? c + 32 : c) + 1;
const SIGMA = 0x03a3;

function lowerUnitSlow(c: number): number {
  const l = String.fromCharCode(c).toLowerCase();
  let u = l.length === 1 && c !== SIGMA ? l.charCodeAt(0) : BAIL;
  if (u === 0x2018 || u === 0x2019) u = APOS;
  if (u !== BAIL && KNOWN[u] === 0) classify(u);
  if (KNOWN[c] === 0) classify(c);
  return (LOWER_UNIT[c] = u === BAIL ? BAIL : u + 1);
}

/** A code point of the BMP decoded at b[p] (lead byte c >= 0x80), as cp | length << 16; -1 when invalid or beyond the BMP. */
function decodeAt(b: Uint8Array, p: number, end: number, c: number): number {
  if (c >= 0xc2 && c < 0xe0) {
    if (p + 1 >= end || (b[p + 1]! & 0xc0) !== 0x80) return -1;
    return (((c & 0x1f) << 6) | (b[p + 1]! & 0x3f)) | (2 << 16);
  }
  if (c >= 0xe0 && c < 0xf0) {
    if (p + 2 >= end || (b[p + 1]! & 0xc0) !== 0x80 || (b[p + 2]! & 0xc0) !== 0x80) return -1;
    const cp = ((c & 0x0f) << 12) | ((b[p + 1]! & 0x3f) << 6) | (b[p + 2]! & 0x3f);
    if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) return -1; // overlong, or an encoded surrogate
    return cp | (3 << 16);
  }
  return -1; // continuation byte, overlong lead, or a four-byte sequence (beyond the BMP)
}

/** Length of a `<br>` / `<br/>` / `<br />` (any case, any whitespace) at b[i], or 0. */
function brAt(b: Uint8Array, i: number, end: number): number {
  if (i + 3 >= end || (b[i + 1]! | 0x20) !== 98 /* b */ || (b[i + 2]! | 0x20) !== 114 /* r */) return 0;
  let j = i + 3;
  for (;;) {
    if (j >= end) return 0;
    const c = b[j]!;
    if (c < 0x80) {
      if (!(CLASS[c]! & SPACE)) break;
      j++;
    } else {
      const d = decodeAt(b, j, end, c);
      if (d < 0) return 0;
      const cp = d & 0xffff;
      if (KNOWN[cp] === 0) classify(cp);
      if (!(CLASS[cp]! & SPACE)) break;
      j += d >>> 16;
    }
  }
  if (b[j] === 47 /* / */) j++;
  return j < end && b[j] === 62 /* > */ ? j + 1 - i : 0;
}

/**
 * Writes the normalised code units of the review bytes[start, end) to `out` (room for end - start units)
 * and returns how many; -1 when the review must take the string path (see above).
 */
export function unitsOf(b: Uint8Array, start: number, end: number, out: Uint16Array): number {
  let n = 0;
  let p = start;
  while (p < end) {
    const c = b[p]!;
    if (c < 0x80) {
      if (c === 60 /* < */) {
        const br = brAt(b, p, end);
        if (br > 0) {
          out[n++] = 32;
          p += br;
          continue;
        }
      }
      out[n++] = LOWER_UNIT[c]! - 1;
      p++;
      continue;
    }
    const d = decodeAt(b, p, end, c);
    if (d < 0) return -1;
    const cp = d & 0xffff;
    let l = LOWER_UNIT[cp]!;
    if (l === 0) l = lowerUnitSlow(cp);
    if (l === BAIL) return -1;
    out[n++] = l - 1;
    p += d >>> 16;
  }
  return n;
}

/**
 * forEachTokenRange over normalised code units u[0, n) (from `unitsOf`): emits [start, end) unit ranges.
 * Every unit's class is known (unitsOf classified it).
 */
export function forEachTokenUnits(u: Uint16Array, n: number, emit: (start: number, end: number) => void): void {
  let i = 0;
  while (i < n) {
    const c0 = u[i]!;
    const cls = CLASS[c0]!;
    if (cls & SPACE) { i++; continue; }
    if (cls & WORD) {
      let j = i + 1;
      if (cls & DIGIT) {
        // a run of digits followed by [.,]digit continues as a number: "7.5", "1,000"
        let d = j;
        while (d < n && (CLASS[u[d]!]! & DIGIT)) d++;
        let e = d;
        while (e + 1 < n) {
          const sep = u[e]!;
          if ((sep !== DOT && sep !== COMMA) || !(CLASS[u[e + 1]!]! & DIGIT)) break;
          e += 2;
          while (e < n && (CLASS[u[e]!]! & DIGIT)) e++;
        }
        if (e > d) {
          emit(i, e);
          i = e;
          continue;
        }
        j = d;
      }
      while (j < n && (CLASS[u[j]!]! & WORD)) j++;
      if (j + 1 < n && u[j] === APOS && (CLASS[u[j + 1]!]! & LM)) {
        let k = j + 2;
        while (k < n && (CLASS[u[k]!]! & LM)) k++;
        // rule 4: "n't" when the word goes on before the n, else 's 'm 'd 're 've 'll
        const len = k - j;
        if (len === 2 && u[j + 1] === T && u[j - 1] === N && j - 1 > i) {
          emit(i, j - 1);
          emit(j - 1, k);
        } else if ((len === 2 && (u[j + 1] === 115 || u[j + 1] === 109 || u[j + 1] === 100)) ||
          (len === 3 && ((u[j + 1] === 114 && u[j + 2] === 101) || (u[j + 1] === 118 && u[j + 2] === 101) || (u[j + 1] === 108 && u[j + 2] === 108)))) {
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
    if (c0 === DOT && i + 1 < n && u[i + 1] === DOT) {
      let j = i + 2;
      while (j < n && u[j] === DOT) j++;
      emit(i, j);
      i = j;
      continue;
    }
    emit(i, i + 1);
    i++;
  }
}

// ---- the ASCII path: most IMDB reviews are pure ASCII --------------------------------------------
// For those, normalising is only lowercasing and `<br />` → space, and every token is a run of the bytes
// themselves: the scanner above runs straight over the bytes (a `<` that starts a `<br />` is skipped like a
// space), without the code-unit copy, and the interner lowercases as it reads (`Interner.internAscii`).

/** True when bytes[start, end) are all ASCII (< 0x80). */
export function isAscii(b: Uint8Array, start: number, end: number): boolean {
  let or = 0;
  let p = start;
  for (; p + 4 <= end; p += 4) or |= b[p]! | b[p + 1]! | b[p + 2]! | b[p + 3]!;
  for (; p < end; p++) or |= b[p]!;
  return or < 0x80;
}

/** Lowercase of an ASCII byte. */
const LOWER_ASCII = Uint8Array.from({ length: 128 }, (_, c) => (c >= 65 && c <= 90 ? c + 32 : c));

/**
 * forEachTokenUnits over the ASCII review b[start, end) (every byte < 0x80: see isAscii): emits [start, end)
 * byte ranges; a token's text is its bytes lowercased.
 */
export function forEachTokenAscii(b: Uint8Array, start: number, end: number, emit: (start: number, end: number) => void): void {
  const L = LOWER_ASCII;
  let i = start;
  while (i < end) {
    const c0 = b[i]!;
    const cls = CLASS[c0]!;
    if (cls & SPACE) { i++; continue; }
    if (cls & WORD) {
      let j = i + 1;
      if (cls & DIGIT) {
        let d = j;
        while (d < end && (CLASS[b[d]!]! & DIGIT)) d++;
        let e = d;
        while (e + 1 < end) {
          const sep = b[e]!;
          if ((sep !== DOT && sep !== COMMA) || !(CLASS[b[e + 1]!]! & DIGIT)) break;
          e += 2;
          while (e < end && (CLASS[b[e]!]! & DIGIT)) e++;
        }
        if (e > d) {
          emit(i, e);
          i = e;
          continue;
        }
        j = d;
      }
      while (j < end && (CLASS[b[j]!]! & WORD)) j++;
      if (j + 1 < end && b[j] === APOS && (CLASS[b[j + 1]!]! & LM)) {
        let k = j + 2;
        while (k < end && (CLASS[b[k]!]! & LM)) k++;
        const len = k - j;
        const a1 = L[b[j + 1]!]!;
        if (len === 2 && a1 === T && L[b[j - 1]!] === N && j - 1 > i) {
          emit(i, j - 1);
          emit(j - 1, k);
        } else if ((len === 2 && (a1 === 115 || a1 === 109 || a1 === 100)) ||
          (len === 3 && ((a1 === 114 && L[b[j + 2]!] === 101) || (a1 === 118 && L[b[j + 2]!] === 101) || (a1 === 108 && L[b[j + 2]!] === 108)))) {
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
    if (c0 === 60 /* < */) {
      const br = brAt(b, i, end);
      if (br > 0) { i += br; continue; }
    } else if (c0 === DOT && i + 1 < end && b[i + 1] === DOT) {
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

/** The tokens of an ASCII review through the ASCII path, or null when it is not ASCII (tests compare it with `tokenize`). */
export function tokenizeAscii(bytes: Uint8Array): string[] | null {
  if (!isAscii(bytes, 0, bytes.length)) return null;
  const out: string[] = [];
  forEachTokenAscii(bytes, 0, bytes.length, (a, b) => out.push(String.fromCharCode(...bytes.subarray(a, b)).toLowerCase()));
  return out;
}

/** The tokens of a review through the byte path, or null when it needs the string path (tests compare it with `tokenize`). */
export function tokenizeBytes(bytes: Uint8Array): string[] | null {
  const u = new Uint16Array(bytes.length);
  const n = unitsOf(bytes, 0, bytes.length, u);
  if (n < 0) return null;
  const out: string[] = [];
  forEachTokenUnits(u, n, (a, b) => out.push(String.fromCharCode(...u.subarray(a, b))));
  return out;
}
