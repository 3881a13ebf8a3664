// Interning tokens given as ranges of a string or of a UTF-16 code unit buffer, without making a string per
// token: token → dense id 0, 1, 2, ... in order of first sight. Only a new token is made into a string.
// Used inside the tokenizer threads, and by the main thread to merge their dictionaries.
//
// Three kinds of token, each found with one or two memory reads (most tokens are short and frequent):
//  - ASCII tokens of one or two characters ("a", "i", ",", "of", "'s"): direct tables indexed by the characters;
//  - ASCII tokens of three or four characters ("the", "and", "n't", "film"): packed into one 32-bit key
//    (7 bits a character, the length on top) in an open-addressing table of [key, id + 1] slots — the key
//    is the token, so a hit needs no comparison of characters;
//  - every other token: an open-addressing table (FNV-1a over the code units, linear probing) of
//    [hash, id + 1, offset, length] slots, compared with the token's code units kept in one flat pool.

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const GOLDEN = 0x9e3779b1 | 0;

/** Slot hash of a packed short token. */
function mix(key: number): number {
  const x = Math.imul(key, GOLDEN);
  return x ^ (x >>> 15);
}

export class Interner {
  /** Token of each id, in order of first sight. */
  readonly tokens: string[] = [];
  // Sized for a dataset like IMDB (75,000 distinct tokens: 700 of 1-2 characters, 7,700 of 3-4, 67,000 longer)
  // so that they never grow there: growing replaces a field that the compiled scanner treats as constant, and
  // V8 then throws that code away.
  private short1 = new Int32Array(128); //           [c0] → id + 1 (0 = not seen)
  private short2 = new Int32Array(128 * 128); //     [c0 << 7 | c1] → id + 1
  private packed = new Int32Array(2 << 16); //       slot s: [2s] = key, [2s+1] = id + 1 (0 = empty)
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
    if (len <= 4) {
      let key = 0;
      let or = 0;
      for (let q = 0; q < len; q++) {
        const c = s.charCodeAt(from + q);
        or |= c;
        key |= c << (7 * q);
      }
      if (or < 128 && len > 0) return this.internShort(key, len, s, from, to);
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
    } else if (len <= 4) {
      const c0 = u[from]!;
      const c1 = u[from + 1]!;
      const c2 = u[from + 2]!;
      const c3 = len === 4 ? u[from + 3]! : 0;
      if ((c0 | c1 | c2 | c3) < 128) {
        const key = c0 | (c1 << 7) | (c2 << 14) | (c3 << 21) | (len << 28);
        const packed = this.packed;
        const mask = (packed.length >> 1) - 1;
        let slot = mix(key) & mask;
        for (;;) {
          const e = packed[2 * slot + 1]!;
          if (e === 0) break;
          if (packed[2 * slot] === key) return e - 1;
          slot = (slot + 1) & mask;
        }
      }
    }
    return this.internUnitsSlow(u, from, to);
  }

  private internUnitsSlow(u: Uint16Array, from: number, to: number): number {
    const len = to - from;
    if (len <= 4) {
      let key = 0;
      let or = 0;
      for (let q = 0; q < len; q++) {
        const c = u[from + q]!;
        or |= c;
        key |= c << (7 * q);
      }
      if (or < 128) return this.internShort(key, len, null, from, to);
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
    return this.addLong(String.fromCharCode.apply(null, this.pool.subarray(off, off + len) as unknown as number[]), h, slot, off, len);
  }

  /**
   * Id of a short ASCII token (1–4 characters, packed 7 bits each into `key`), adding it when new; its text is
   * s.slice(from, to) when `s` is given, else made from the key.
   */
  private internShort(key: number, len: number, s: string | null, from: number, to: number): number {
    let slot = -1;
    if (len === 1) {
      const e = this.short1[key]!;
      if (e !== 0) return e - 1;
    } else if (len === 2) {
      const e = this.short2[((key & 127) << 7) | (key >> 7)]!;
      if (e !== 0) return e - 1;
    } else {
      key |= len << 28;
      const packed = this.packed;
      const mask = (packed.length >> 1) - 1;
      slot = mix(key) & mask;
      for (;;) {
        const e = packed[2 * slot + 1]!;
        if (e === 0) break;
        if (packed[2 * slot] === key) return e - 1;
        slot = (slot + 1) & mask;
      }
    }
    let tok: string;
    if (s !== null) tok = from === 0 && to === s.length ? s : s.slice(from, to);
    else {
      tok = "";
      for (let q = 0; q < len; q++) tok += String.fromCharCode((key >> (7 * q)) & 127);
    }
    const id = this.tokens.length;
    this.tokens.push(tok);
    if (len === 1) this.short1[key] = id + 1;
    else if (len === 2) this.short2[((key & 127) << 7) | (key >> 7)] = id + 1;
    else {
      this.packed[2 * slot] = key;
      this.packed[2 * slot + 1] = id + 1;
      if (++this.packedCount * 2 > this.packed.length >> 1) this.packed = rehash(this.packed, 2, mix);
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
    if (++this.tableCount * 2 > t.length >> 2) this.table = rehash(t, 4, (k) => k);
    return id;
  }
}

/** A table of `width`-int slots (key first, id + 1 second, 0 = empty) at twice the size; slot of key k = home(k) & mask. */
function rehash(old: Int32Array, width: number, home: (key: number) => number): Int32Array<ArrayBuffer> {
  const table = new Int32Array(old.length * 2);
  const mask = (table.length / width) - 1;
  for (let s = 0; s < old.length; s += width) {
    if (old[s + 1] === 0) continue;
    let slot = home(old[s]!) & mask;
    while (table[width * slot + 1] !== 0) slot = (slot + 1) & mask;
    for (let k = 0; k < width; k++) table[width * slot + k] = old[s + k]!;
  }
  return table;
}
