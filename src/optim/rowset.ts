// The embedding rows a row-sparse sum holds (./step.ts): marks over the table, the list in the order they came,
// and whether a dense part made it every row.

/** Which embedding rows a sum holds: every one (a dense part was folded), or the marked ones. */
export class RowSet {
  readonly mark: Uint8Array;
  readonly list: number[] = [];
  all = false;
  /** `list` is in ascending order (one part's rows are: the wire checks it). */
  private ascending = true;
  constructor(rows: number) { this.mark = new Uint8Array(rows); }
  add(r: number): void {
    if (this.mark[r]) return;
    if (this.list.length && r < this.list[this.list.length - 1]!) this.ascending = false;
    this.mark[r] = 1;
    this.list.push(r);
  }
  clear(): void { for (const r of this.list) this.mark[r] = 0; this.list.length = 0; this.all = false; this.ascending = true; }
  /** The rows in ascending order: as they are, or read off the marks (a scan of the table's marks costs less
   *  than sorting several parts' rows). */
  sorted(): number[] {
    if (this.ascending) return this.list;
    let n = 0;
    for (let r = 0; r < this.mark.length; r++) if (this.mark[r]) this.list[n++] = r;
    this.ascending = true;
    return this.list;
  }
}
