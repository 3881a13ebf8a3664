// Human output goes to stderr (logs, progress bars); machine output is one JSON object, the last
// line on stdout, printed by `emitJson`. Neither ever shows the credentials of a URL (see redactUrls).

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

/** scheme://, then the userinfo: everything up to the authority's last "@" (a password may hold an "@"). */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#]*)@/gi;

/**
 * `text` with the credentials of every URL in it hidden: `nats://user:pass@host` → `nats://user:***@host`, and a
 * lone user part, which NATS reads as a token, `nats://token@host` → `nats://***@host`. Every log line and every
 * string of the JSON output goes through it; messages that embed a URL use it too, so errors carry no secret.
 * It errs on the side of hiding: the userinfo runs to the last "@" before a space, "/", "?" or "#".
 */
export function redactUrls(text: string): string {
  return text.replace(URL_USERINFO, (_all, scheme: string, info: string) => {
    const colon = info.indexOf(":");
    return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:***` : "***"}@`;
  });
}

function logLine(level: string, component: string, msg: string): void {
  clearProgressLine();
  process.stderr.write(`${stamp()} ${level} [${component}] ${redactUrls(msg)}\n`);
}

/** A logger whose lines start with the time and the component name, written to stderr. */
export function logger(component: string): Logger {
  const write = (level: string, msg: string) => logLine(level, component, msg);
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
  process.stdout.write(JSON.stringify(value, (_key, v: unknown) => (typeof v === "string" ? redactUrls(v) : v)) + "\n");
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
  /** Finish the bar, leaving a final line on a terminal (and in a log, when progress lines were printed). */
  done(extra?: string): void;
}

const BAR_WIDTH = 28;
const REDRAW_MS = 100;

export interface ProgressOptions {
  /**
   * Where stderr is not a terminal (a pipe, a file, `docker logs`, `kubectl logs`), also print the position,
   * rate and time left as a plain log line (`HH:MM:SS.mmm INFO  [component] label 12/43 MB (28%) …`) at most
   * every this many seconds, and a last line when done if any was printed. The environment variable
   * IMDB_TRAIN_PROGRESS_EVERY (seconds; 0 = at every update) overrides it. Absent: no such lines.
   */
  logEvery?: number;
  /** The component those lines name (default: the label). */
  component?: string;
}

/** The seconds between plain progress lines: $IMDB_TRAIN_PROGRESS_EVERY when set, else the caller's. */
function logInterval(requested: number | undefined): number | undefined {
  if (requested === undefined) return undefined;
  const env = Number(process.env.IMDB_TRAIN_PROGRESS_EVERY);
  return process.env.IMDB_TRAIN_PROGRESS_EVERY !== undefined && env >= 0 ? env : requested;
}

/**
 * A progress bar on stderr with count, total, rate and ETA, drawn only when stderr is a terminal
 * (logs and CI output stay clean); with `opts.logEvery`, plain lines instead where it is not (see
 * ProgressOptions). `unit` names what is counted ("reviews", "steps").
 */
export function progress(label: string, total: number, unit: string, opts: ProgressOptions = {}): Progress {
  const tty = Boolean(process.stderr.isTTY) && !quiet;
  const every = tty || quiet ? undefined : logInterval(opts.logEvery);
  const start = performance.now();
  let value = 0;
  let tail = "";
  let last = 0;
  let lastLine = start;
  let lines = 0;
  const plain = (final: boolean) => {
    const now = performance.now();
    if (every === undefined || (!final && now - lastLine < every * 1000) || (final && lines === 0 && now - start < every * 1000)) return;
    lastLine = now;
    lines++;
    logLine("INFO ", opts.component ?? label, final ? plainDone(label, value, total, unit, (now - start) / 1000, tail) : plainLine(label, value, total, unit, (now - start) / 1000, tail));
  };
  const draw = (final: boolean) => {
    if (!tty) return plain(final);
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

/** "read 12/43 MB (28%), 3.1 MB/s, 4.0s elapsed, 10.0s left · 9000 reviews" (no total: no share, no time left). */
function plainLine(label: string, value: number, total: number, unit: string, secs: number, tail: string): string {
  const rate = secs > 0 ? value / secs : 0;
  const share = total > 0 ? `/${total} ${unit} (${Math.floor((100 * Math.min(value, total)) / total)}%)` : ` ${unit}`;
  const left = total > 0 ? (rate > 0 ? `, ${fmtSecs(Math.max(0, total - value) / rate)} left` : ", time left unknown") : "";
  return `${label} ${value}${share}, ${fmtRate(rate)} ${unit}/s, ${fmtSecs(secs)} elapsed${left}${tail ? " · " + tail : ""}`;
}

/** "read done: 43/43 MB in 11.2s · 25000 reviews". */
function plainDone(label: string, value: number, total: number, unit: string, secs: number, tail: string): string {
  return `${label} done: ${value}${total > 0 ? `/${total}` : ""} ${unit} in ${fmtSecs(secs)}${tail ? " · " + tail : ""}`;
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
