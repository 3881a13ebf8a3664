// Bounded `worker` label values: a worker name becomes a label only if it is short and plain, and at
// most `max` distinct names are kept per process; the rest share "other". This keeps a misbehaving
// or hostile peer (e.g. a gradient from an unknown worker) from growing the series count without end.

export const MAX_WORKER_LABELS = 64;
export const OVERFLOW_WORKER = "other";
const PLAIN = /^[A-Za-z0-9_.:-]{1,40}$/;

export class WorkerLabels {
  private readonly seen = new Set<string>();
  constructor(
    private readonly max = MAX_WORKER_LABELS,
    /** Called once for each new label value (to initialise its series at zero). */
    private readonly onNew: (label: string) => void = () => {},
  ) {}

  /** The label value to use for worker name `name`. */
  label(name: string): string {
    const v = PLAIN.test(name) ? name : "invalid";
    if (this.seen.has(v)) return v;
    const out = this.seen.size < this.max ? v : OVERFLOW_WORKER;
    if (!this.seen.has(out)) {
      this.seen.add(out);
      this.onNew(out);
    }
    return out;
  }

  get size(): number { return this.seen.size; }
}
