// Interning tokens given as ranges of a string, without making a string per token: an open-addressing
// hash table (FNV-1a over UTF-16 code units, linear probing) mapping token → dense id 0, 1, 2, ...
// Only a token seen for the first time is sliced out. Used inside the tokenizer threads.

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

export class Interner {
  /** Token of each id, in order of first sight. */
  readonly tokens: string[] = [];
  private table = new Int32Array(1 << 16); // slot → id + 1 (0 = empty); size a power of two
  private hashes = new Int32Array(1 << 15); // id → hash

  get size(): number {
    return this.tokens.length;
  }

  /** Id of s.slice(start, end), adding it when new. */
  intern(s: string, start: number, end: number): number {
    let h = FNV_OFFSET;
    for (let q = start; q < end; q++) h = Math.imul(h ^ s.charCodeAt(q), FNV_PRIME);
    const len = end - start;
    const table = this.table;
    const mask = table.length - 1;
    let slot = h & mask;
    for (;;) {
      const e = table[slot]!;
      if (e === 0) break;
      if (this.hashes[e - 1] === h) {
        const t = this.tokens[e - 1]!;
        if (t.length === len) {
          let q = 0;
          while (q < len && t.charCodeAt(q) === s.charCodeAt(start + q)) q++;
          if (q === len) return e - 1;
        }
      }
      slot = (slot + 1) & mask;
    }
    const id = this.tokens.length;
    this.tokens.push(s.slice(start, end));
    if (id === this.hashes.length) {
      const grown = new Int32Array(this.hashes.length * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    this.hashes[id] = h;
    table[slot] = id + 1;
    if ((id + 1) * 2 > table.length) this.rehash();
    return id;
  }

  private rehash(): void {
    const table = new Int32Array(this.table.length * 2);
    const mask = table.length - 1;
    for (let id = 0; id < this.tokens.length; id++) {
      let slot = this.hashes[id]! & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = id + 1;
    }
    this.table = table;
  }
}
