// Human output goes to stderr (logs, progress bars); machine output is one JSON object, the last
// line on stdout, printed by `emitJson`.

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug(msg: string): void;
}

let quiet = false;
let verbose = process.env.IMDB_TRAIN_DEBUG === "1";

export function setQuiet(q: boolean): void { quiet = q; }
export function setVerbose(v: boolean): void { verbose = v; }

function stamp(): string {
  return new Date().toISOString().slice(11, 23);
}

/** A logger whose lines start with the time and the component name, written to stderr. */
export function logger(component: string): Logger {
  const write = (level: string, msg: string) => {
    clearProgressLine();
    process.stderr.write(`${stamp()} ${level} [${component}] ${msg}\n`);
  };
  return {
    info: (m) => { if (!quiet) write("INFO ", m); },
    warn: (m) => write("WARN ", m),
    error: (m) => write("ERROR", m),
    debug: (m) => { if (verbose) write("DEBUG", m); },
  };
}

/** Print the command's result as one JSON line on stdout (the last stdout line of a `--json` run). */
export function emitJson(value: unknown): void {
  clearProgressLine();
  process.stdout.write(JSON.stringify(value) + "\n");
}

// ---- progress bars ---------------------------------------------------------------------------

let activeLine = false;
function clearProgressLine(): void {
  if (activeLine && process.stderr.isTTY) {
    process.stderr.write("\r\x1b[2K");
    activeLine = false;
  }
}

export interface Progress {
  /** Advance by `n` units (default 1); `extra` replaces the trailing text (e.g. "loss 0.41"). */
  tick(n?: number, extra?: string): void;
  /** Set the absolute position. */
  set(value: number, extra?: string): void;
  /** Finish the bar, leaving a final line on a terminal. */
  done(extra?: string): void;
}

const BAR_WIDTH = 28;
const REDRAW_MS = 100;

/**
 * A progress bar on stderr with count, total, rate and ETA, drawn only when stderr is a terminal
 * (logs and CI output stay clean). `unit` names what is counted ("reviews", "steps").
 */
export function progress(label: string, total: number, unit: string): Progress {
  const tty = Boolean(process.stderr.isTTY) && !quiet;
  const start = performance.now();
  let value = 0;
  let tail = "";
  let last = 0;
  const draw = (final: boolean) => {
    if (!tty) return;
    const now = performance.now();
    if (!final && now - last < REDRAW_MS) return;
    last = now;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? value / secs : 0;
    const frac = total > 0 ? Math.min(1, value / total) : 0;
    const filled = Math.round(frac * BAR_WIDTH);
    const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
    const eta = rate > 0 && total > value ? ` eta ${fmtSecs((total - value) / rate)}` : "";
    const line = `${label} ${bar} ${value}/${total} ${unit} ${fmtRate(rate)}/s ${fmtSecs(secs)}${eta}${tail ? " " + tail : ""}`;
    process.stderr.write("\r\x1b[2K" + line.slice(0, (process.stderr.columns || 120) - 1));
    activeLine = true;
    if (final) { process.stderr.write("\n"); activeLine = false; }
  };
  return {
    tick(n = 1, extra) { value += n; if (extra !== undefined) tail = extra; draw(false); },
    set(v, extra) { value = v; if (extra !== undefined) tail = extra; draw(false); },
    done(extra) { if (extra !== undefined) tail = extra; draw(true); },
  };
}

function fmtRate(r: number): string {
  if (r >= 1e6) return (r / 1e6).toFixed(1) + "M";
  if (r >= 1e4) return (r / 1e3).toFixed(1) + "k";
  if (r >= 100) return r.toFixed(0);
  return r.toFixed(1);
}

export function fmtSecs(s: number): string {
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

// ---- time left, for plain log lines (piped stderr, containers, --json runs) ----------------------------

/** True when long work should report plain log lines: stderr is not a terminal, so no bar is drawn. */
export function plainProgress(): boolean {
  return !process.stderr.isTTY;
}

/** Moving average of the last `window` values (e.g. seconds per step); NaN until the first one. */
export class MovingAverage {
  private readonly values: number[] = [];
  private sum = 0;
  constructor(private readonly window = 20) {}
  /** Adds a value; negative and non-finite ones are ignored. */
  add(x: number): void {
    if (!Number.isFinite(x) || x < 0) return;
    this.values.push(x);
    this.sum += x;
    if (this.values.length > this.window) this.sum -= this.values.shift()!;
  }
  get value(): number { return this.values.length ? this.sum / this.values.length : NaN; }
  get count(): number { return this.values.length; }
}
