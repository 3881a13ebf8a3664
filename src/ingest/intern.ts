// Interning tokens given as ranges of a string or of a UTF-16 code unit buffer, without making a string per
// token: token → dense id 0, 1, 2, ... in order of first sight. Only a new token is made into a string.
// Used inside the tokenizer threads, and by the main thread to merge their dictionaries.
//
// Three kinds of token, each found with one or two memory reads (most tokens are short and frequent):
//  - ASCII tokens of one or two characters ("a", "i", ",", "of", "'s"): direct tables indexed by the characters;
//  - ASCII tokens of three to eight characters ("the", "n't", "movie", "actually"): packed into two 32-bit
//    keys (7 bits a character, four characters a key, the length on top of the first) in an open-addressing
//    table of [key0, key1, id + 1, 0] slots — the keys are the token, so a hit compares no characters;
//  - every other token: an open-addressing table (FNV-1a over the code units, linear probing) of
//    [hash, id + 1, offset, length] slots, compared with the token's code units kept in one flat pool.

const FNV_OFFSET = 0x811c9dc5 | 0;
/** Lowercase of an ASCII byte. */
const LOWER_ASCII = Uint8Array.from({ length: 128 }, (_, c) => (c >= 65 && c <= 90 ? c + 32 : c));
const FNV_PRIME = 0x01000193;
const GOLDEN = 0x9e3779b1 | 0;

/** Slot hash of a packed token. */
function mix(key0: number, key1: number): number {
  const x = Math.imul(key0 ^ Math.imul(key1, FNV_PRIME), GOLDEN);
  return x ^ (x >>> 15);
}
/** Packed tokens: up to 8 characters. */
const PACKED_MAX = 8;

export class Interner {
  /** Token of each id, in order of first sight. */
  readonly tokens: string[] = [];
  // Sized for a dataset like IMDB (75,000 distinct tokens, 45,000 of them ASCII of 3-8 characters)
  // so that they never grow there: growing replaces a field that the compiled scanner treats as constant, and
  // V8 then throws that code away.
  private short1 = new Int32Array(128); //           [c0] → id + 1 (0 = not seen)
  private short2 = new Int32Array(128 * 128); //     [c0 << 7 | c1] → id + 1
  private packed = new Int32Array(4 << 17); //       slot s: [4s] = key0, [4s+1] = key1, [4s+2] = id + 1 (0 = empty)
  private packedCount = 0;
  private table = new Int32Array(4 << 18); //        slot s: [4s] = hash, [4s+1] = id + 1 (0 = empty), [4s+2] = pool offset, [4s+3] = length
  private tableCount = 0;
  private pool = new Uint16Array(1 << 20); //        code units of the tokens in `table`, back to back
  private used = 0;

  get size(): number {
    return this.tokens.length;
  }

  /** Forgets every token (the tables keep their size). */
  clear(): void {
    this.tokens.length = 0;
    this.short1.fill(0);
    this.short2.fill(0);
    this.packed.fill(0);
    this.packedCount = 0;
    this.table.fill(0);
    this.tableCount = 0;
    this.used = 0;
  }

  /** Id of s.slice(from, to), adding it when new. */
  intern(s: string, from: number, to: number): number {
    const len = to - from;
    if (len <= PACKED_MAX && len > 0) {
      let k0 = 0;
      let k1 = 0;
      let or = 0;
      for (let q = 0; q < len; q++) {
        const c = s.charCodeAt(from + q);
        or |= c;
        if (q < 4) k0 |= c << (7 * q);
        else k1 |= c << (7 * (q - 4));
      }
      if (or < 128) return this.internPacked(k0, k1, len, s, from, to);
    }
    let h = FNV_OFFSET;
    for (let q = from; q < to; q++) h = Math.imul(h ^ s.charCodeAt(q), FNV_PRIME);
    const table = this.table;
    const mask = (table.length >> 2) - 1;
    let slot = h & mask;
    for (;;) {
      const e = table[4 * slot + 1]!;
      if (e === 0) break;
      if (table[4 * slot] === h && table[4 * slot + 3] === len) {
        const pool = this.pool;
        const off = table[4 * slot + 2]!;
        let q = 0;
        while (q < len && pool[off + q] === s.charCodeAt(from + q)) q++;
        if (q === len) return e - 1;
      }
      slot = (slot + 1) & mask;
    }
    const off = this.reserve(len);
    for (let q = 0; q < len; q++) this.pool[off + q] = s.charCodeAt(from + q);
    return this.addLong(from === 0 && to === s.length ? s : s.slice(from, to), h, slot, off, len);
  }

  /** Id of the code units u[from, to) (the same id `intern` gives the string of those units). */
  internUnits(u: Uint16Array, from: number, to: number): number {
    const len = to - from;
    if (len === 1) {
      const c = u[from]!;
      if (c < 128) {
        const e = this.short1[c]!;
        if (e !== 0) return e - 1;
      }
    } else if (len === 2) {
      const c0 = u[from]!;
      const c1 = u[from + 1]!;
      if ((c0 | c1) < 128) {
        const e = this.short2[(c0 << 7) | c1]!;
        if (e !== 0) return e - 1;
      }
    } else if (len <= PACKED_MAX) {
      let k0 = u[from]! | (u[from + 1]! << 7) | (u[from + 2]! << 14);
      let or = u[from]! | u[from + 1]! | u[from + 2]!;
      let k1 = 0;
      if (len > 3) {
        const c = u[from + 3]!;
        or |= c;
        k0 |= c << 21;
        for (let q = 4; q < len; q++) {
          const d = u[from + q]!;
          or |= d;
          k1 |= d << (7 * (q - 4));
        }
      }
      if (or < 128) {
        k0 |= len << 28;
        const packed = this.packed;
        const mask = (packed.length >> 2) - 1;
        let slot = mix(k0, k1) & mask;
        for (;;) {
          const e = packed[4 * slot + 2]!;
          if (e === 0) break;
          if (packed[4 * slot] === k0 && packed[4 * slot + 1] === k1) return e - 1;
          slot = (slot + 1) & mask;
        }
      }
    }
    return this.internUnitsSlow(u, from, to);
  }

  /**
   * Id of the ASCII bytes b[from, to) lowercased (the same id `intern` gives that lowercase string): the
   * tokenizer's ASCII path, which never copies a review into code units.
   */
  internAscii(b: Uint8Array, from: number, to: number): number {
    const L = LOWER_ASCII;
    const len = to - from;
    if (len === 1) {
      const e = this.short1[L[b[from]!]!]!;
      if (e !== 0) return e - 1;
    } else if (len === 2) {
      const e = this.short2[(L[b[from]!]! << 7) | L[b[from + 1]!]!]!;
      if (e !== 0) return e - 1;
    } else if (len <= PACKED_MAX) {
      let k0 = L[b[from]!]! | (L[b[from + 1]!]! << 7) | (L[b[from + 2]!]! << 14);
      let k1 = 0;
      if (len > 3) {
        k0 |= L[b[from + 3]!]! << 21;
        for (let q = 4; q < len; q++) k1 |= L[b[from + q]!]! << (7 * (q - 4));
      }
      k0 |= len << 28;
      const packed = this.packed;
      const mask = (packed.length >> 2) - 1;
      let slot = mix(k0, k1) & mask;
      for (;;) {
        const e = packed[4 * slot + 2]!;
        if (e === 0) break;
        if (packed[4 * slot] === k0 && packed[4 * slot + 1] === k1) return e - 1;
        slot = (slot + 1) & mask;
      }
    } else {
      let h = FNV_OFFSET;
      for (let q = from; q < to; q++) h = Math.imul(h ^ L[b[q]!]!, FNV_PRIME);
      const table = this.table;
      const mask = (table.length >> 2) - 1;
      let slot = h & mask;
      for (;;) {
        const e = table[4 * slot + 1]!;
        if (e === 0) break;
        if (table[4 * slot] === h && table[4 * slot + 3] === len) {
          const pool = this.pool;
          const off = table[4 * slot + 2]!;
          let q = 0;
          while (q < len && pool[off + q] === L[b[from + q]!]) q++;
          if (q === len) return e - 1;
        }
        slot = (slot + 1) & mask;
      }
    }
    return this.internAsciiNew(b, from, to);
  }

  /** A token of the ASCII path not seen yet (or a one- or two-character one): through the code-unit path. */
  private internAsciiNew(b: Uint8Array, from: number, to: number): number {
    const len = to - from;
    let u = this.scratch;
    if (u.length < len) u = this.scratch = new Uint16Array(len);
    for (let q = 0; q < len; q++) u[q] = LOWER_ASCII[b[from + q]!]!;
    return this.internUnitsSlow(u, 0, len);
  }

  private scratch = new Uint16Array(256);

  private internUnitsSlow(u: Uint16Array, from: number, to: number): number {
    const len = to - from;
    if (len <= PACKED_MAX) {
      let k0 = 0;
      let k1 = 0;
      let or = 0;
      for (let q = 0; q < len; q++) {
        const c = u[from + q]!;
        or |= c;
        if (q < 4) k0 |= c << (7 * q);
        else k1 |= c << (7 * (q - 4));
      }
      if (or < 128) return this.internPacked(k0, k1, len, null, from, to);
    }
    let h = FNV_OFFSET;
    for (let q = from; q < to; q++) h = Math.imul(h ^ u[q]!, FNV_PRIME);
    const table = this.table;
    const mask = (table.length >> 2) - 1;
    let slot = h & mask;
    for (;;) {
      const e = table[4 * slot + 1]!;
      if (e === 0) break;
      if (table[4 * slot] === h && table[4 * slot + 3] === len) {
        const pool = this.pool;
        const off = table[4 * slot + 2]!;
        let q = 0;
        while (q < len && pool[off + q] === u[from + q]) q++;
        if (q === len) return e - 1;
      }
      slot = (slot + 1) & mask;
    }
    const off = this.reserve(len);
    this.pool.set(u.subarray(from, to), off);
    return this.addLong(unitsToString(this.pool.subarray(off, off + len)), h, slot, off, len);
  }

  /**
   * Id of an ASCII token of 1–8 characters (packed 7 bits each, four a key, into k0 and k1), adding it when
   * new; its text is s.slice(from, to) when `s` is given, else made from the keys.
   */
  private internPacked(k0: number, k1: number, len: number, s: string | null, from: number, to: number): number {
    let slot = -1;
    if (len === 1) {
      const e = this.short1[k0]!;
      if (e !== 0) return e - 1;
    } else if (len === 2) {
      const e = this.short2[((k0 & 127) << 7) | (k0 >> 7)]!;
      if (e !== 0) return e - 1;
    } else {
      k0 |= len << 28;
      const packed = this.packed;
      const mask = (packed.length >> 2) - 1;
      slot = mix(k0, k1) & mask;
      for (;;) {
        const e = packed[4 * slot + 2]!;
        if (e === 0) break;
        if (packed[4 * slot] === k0 && packed[4 * slot + 1] === k1) return e - 1;
        slot = (slot + 1) & mask;
      }
    }
    let tok: string;
    if (s !== null) tok = from === 0 && to === s.length ? s : s.slice(from, to);
    else {
      tok = "";
      for (let q = 0; q < len; q++) tok += String.fromCharCode(((q < 4 ? k0 : k1) >> (7 * (q & 3))) & 127);
    }
    const id = this.tokens.length;
    this.tokens.push(tok);
    if (len === 1) this.short1[k0] = id + 1;
    else if (len === 2) this.short2[((k0 & 127) << 7) | (k0 >> 7)] = id + 1;
    else {
      const packed = this.packed;
      packed[4 * slot] = k0;
      packed[4 * slot + 1] = k1;
      packed[4 * slot + 2] = id + 1;
      if (++this.packedCount * 2 > packed.length >> 2) this.packed = rehashPacked(packed);
    }
    return id;
  }

  /** Room for `len` code units at the end of the pool; returns their offset. */
  private reserve(len: number): number {
    if (this.used + len > this.pool.length) {
      const grown = new Uint16Array(Math.max(this.pool.length * 2, this.used + len));
      grown.set(this.pool);
      this.pool = grown;
    }
    return this.used;
  }

  private addLong(tok: string, h: number, slot: number, off: number, len: number): number {
    const id = this.tokens.length;
    this.used += len;
    this.tokens.push(tok);
    const t = this.table;
    t[4 * slot] = h;
    t[4 * slot + 1] = id + 1;
    t[4 * slot + 2] = off;
    t[4 * slot + 3] = len;
    if (++this.tableCount * 2 > t.length >> 2) this.table = rehashLong(t);
    return id;
  }
}

/** Code units as a string, a slice at a time: one call with a whole long token's units (a 200,000-letter
 *  "word") would overflow the stack with its arguments. */
function unitsToString(u: Uint16Array): string {
  const SLICE = 8192;
  if (u.length <= SLICE) return String.fromCharCode(...u);
  let s = "";
  for (let i = 0; i < u.length; i += SLICE) s += String.fromCharCode(...u.subarray(i, i + SLICE));
  return s;
}

/** The long-token table at twice the size. */
function rehashLong(old: Int32Array): Int32Array<ArrayBuffer> {
  const table = new Int32Array(old.length * 2);
  const mask = (table.length >> 2) - 1;
  for (let s = 0; s < old.length; s += 4) {
    if (old[s + 1] === 0) continue;
    let slot = old[s]! & mask;
    while (table[4 * slot + 1] !== 0) slot = (slot + 1) & mask;
    table.set(old.subarray(s, s + 4), 4 * slot);
  }
  return table;
}

/** The packed-token table at twice the size. */
function rehashPacked(old: Int32Array): Int32Array<ArrayBuffer> {
  const table = new Int32Array(old.length * 2);
  const mask = (table.length >> 2) - 1;
  for (let s = 0; s < old.length; s += 4) {
    if (old[s + 2] === 0) continue;
    let slot = mix(old[s]!, old[s + 1]!) & mask;
    while (table[4 * slot + 2] !== 0) slot = (slot + 1) & mask;
    table.set(old.subarray(s, s + 4), 4 * slot);
  }
  return table;
}
