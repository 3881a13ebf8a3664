// Interning tokens given as ranges of a string (or of ASCII bytes), without making a string per token:
// an open-addressing hash table (FNV-1a over UTF-16 code units, linear probing) mapping token → dense
// id 0, 1, 2, ... Each slot holds [hash, id + 1] side by side and every token's code units are kept in
// one flat pool, so a lookup touches two or three cache lines. Only a new token is made into a string.
// Used inside the tokenizer threads, and by the main thread to merge their dictionaries.

const LOWER = Uint8Array.from({ length: 128 }, (_, c) => (c >= 65 && c <= 90 ? c + 32 : c));
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

export class Interner {
  /** Token of each id, in order of first sight. */
  readonly tokens: string[] = [];
  private table = new Int32Array(2 << 16); //  slot s: [2s] = hash, [2s+1] = id + 1 (0 = empty)
  private start = new Int32Array(1 << 15); //  id → offset of its code units in `pool`
  private pool = new Uint16Array(1 << 18); //  code units of all tokens, back to back (length = next start)
  private used = 0;
  // Direct tables for the shortest ASCII tokens (punctuation, "a", "i", "of", "'s" ...: a third of all
  // tokens): [first char] and [first char << 7 | second char] → id + 1, filled on first sight.
  private short1 = new Int32Array(128);
  private short2 = new Int32Array(128 * 128);

  get size(): number {
    return this.tokens.length;
  }

  /** Id of s.slice(from, to), adding it when new. */
  intern(s: string, from: number, to: number): number {
    let h = FNV_OFFSET;
    for (let q = from; q < to; q++) h = Math.imul(h ^ s.charCodeAt(q), FNV_PRIME);
    const len = to - from;
    const table = this.table;
    const mask = (table.length >> 1) - 1;
    let slot = h & mask;
    for (;;) {
      const e = table[2 * slot + 1]!;
      if (e === 0) break;
      if (table[2 * slot] === h && this.lengthOf(e - 1) === len) {
        const pool = this.pool;
        const off = this.start[e - 1]!;
        let q = 0;
        while (q < len && pool[off + q] === s.charCodeAt(from + q)) q++;
        if (q === len) return e - 1;
      }
      slot = (slot + 1) & mask;
    }
    const off = this.reserve(len);
    for (let q = 0; q < len; q++) this.pool[off + q] = s.charCodeAt(from + q);
    return this.add(from === 0 && to === s.length ? s : s.slice(from, to), h, slot);
  }

  /** Id of the ASCII bytes b[from, to) lowercased (the same id `intern` gives the lowercase string). */
  internAsciiLower(b: Uint8Array, from: number, to: number): number {
    const len0 = to - from;
    if (len0 === 1) {
      const k = LOWER[b[from]!]!;
      const e = this.short1[k]!;
      if (e !== 0) return e - 1;
      return (this.short1[k] = this.internAsciiLowerSlow(b, from, to) + 1) - 1;
    }
    if (len0 === 2) {
      const k = (LOWER[b[from]!]! << 7) | LOWER[b[from + 1]!]!;
      const e = this.short2[k]!;
      if (e !== 0) return e - 1;
      return (this.short2[k] = this.internAsciiLowerSlow(b, from, to) + 1) - 1;
    }
    return this.internAsciiLowerSlow(b, from, to);
  }

  private internAsciiLowerSlow(b: Uint8Array, from: number, to: number): number {
    let h = FNV_OFFSET;
    for (let q = from; q < to; q++) h = Math.imul(h ^ LOWER[b[q]!]!, FNV_PRIME);
    const len = to - from;
    const table = this.table;
    const mask = (table.length >> 1) - 1;
    let slot = h & mask;
    for (;;) {
      const e = table[2 * slot + 1]!;
      if (e === 0) break;
      if (table[2 * slot] === h && this.lengthOf(e - 1) === len) {
        const pool = this.pool;
        const off = this.start[e - 1]!;
        let q = 0;
        while (q < len && pool[off + q] === LOWER[b[from + q]!]) q++;
        if (q === len) return e - 1;
      }
      slot = (slot + 1) & mask;
    }
    const off = this.reserve(len);
    for (let q = 0; q < len; q++) this.pool[off + q] = LOWER[b[from + q]!]!;
    return this.add(String.fromCharCode.apply(null, this.pool.subarray(off, off + len) as unknown as number[]), h, slot);
  }

  private lengthOf(id: number): number {
    return (id + 1 < this.tokens.length ? this.start[id + 1]! : this.used) - this.start[id]!;
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

  private add(tok: string, h: number, slot: number): number {
    const id = this.tokens.length;
    if (id === this.start.length) {
      const grown = new Int32Array(this.start.length * 2);
      grown.set(this.start);
      this.start = grown;
    }
    this.start[id] = this.used;
    this.used += tok.length;
    this.tokens.push(tok);
    this.table[2 * slot] = h;
    this.table[2 * slot + 1] = id + 1;
    if ((id + 1) * 2 > this.table.length >> 1) this.rehash();
    return id;
  }

  private rehash(): void {
    const old = this.table;
    const table = new Int32Array(old.length * 2);
    const mask = (table.length >> 1) - 1;
    for (let s = 0; s < old.length >> 1; s++) {
      const e = old[2 * s + 1]!;
      if (e === 0) continue;
      let slot = old[2 * s]! & mask;
      while (table[2 * slot + 1] !== 0) slot = (slot + 1) & mask;
      table[2 * slot] = old[2 * s]!;
      table[2 * slot + 1] = e;
    }
    this.table = table;
  }
}
