// Runs the real `imdb-train` program as a child process.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../../bin/imdb-train.js", import.meta.url));
export const SHARED_ARCHIVE = fileURLToPath(new URL("../../../../shared/data/aclImdb-train.tar.gz", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON, when there is one. */
  json: any;
}

/** Runs `imdb-train args` to its end (killed after `timeoutMs`, default 120 s); its output, and its --json line parsed. */
export async function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  const r = await spawnCli(args, { killAfterMs: opts.timeoutMs ?? 120_000, env: opts.env, cwd: opts.cwd, input: opts.input }).result;
  const lines = r.stdout.trim().split("\n");
  let json: unknown = undefined;
  try { json = JSON.parse(lines[lines.length - 1] ?? ""); } catch { /* not JSON */ }
  return { ...r, json };
}

/** How a spawned child ended, with everything it printed. */
export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running child process: its output so far, its exit, a wait for a line of its output, and signals. */
export interface CliProc {
  p: ChildProcess;
  pid: number;
  out: () => string;
  err: () => string;
  /** The exit code (null when a signal ended it). */
  done: Promise<number | null>;
  /** Code, signal and all output, once the child has exited and its pipes are drained. */
  result: Promise<ProcResult>;
  /**
   * Resolves with the first match of `re` in the child's stderr (or `stream`), already there or still to come.
   * Rejects after `ms`, or as soon as the child exits without printing it; the error names what was awaited,
   * from which command, and shows the end of that output.
   */
  waitFor(re: RegExp, ms?: number, stream?: "stderr" | "stdout"): Promise<RegExpMatchArray>;
  /** Sends `signal` if the child is still running (false when it had already exited). */
  kill(signal?: NodeJS.Signals): boolean;
  /** Ends the child if it still runs (SIGCONT first, so a stopped child gets the signal too); its result. */
  stop(signal?: NodeJS.Signals): Promise<ProcResult>;
}

export interface SpawnOptions {
  /** Safety net: SIGCONT + SIGKILL after this long (default 120 s), so a stuck test cannot leave a process. */
  killAfterMs?: number;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin (which is otherwise empty). */
  input?: string;
}

/**
 * Starts `imdb-train args` without waiting for it (for tests that signal it or read its log while it runs).
 */
export function spawnCli(args: string[], opts: SpawnOptions = {}): CliProc {
  return spawnNode(BIN, args, { ...opts, label: `imdb-train ${args.slice(0, 2).join(" ")}` });
}

/** Starts `node script args` (a helper script of the tests) the same way as spawnCli. */
export function spawnNode(script: string, args: string[], opts: SpawnOptions & { label?: string } = {}): CliProc {
  const label = opts.label ?? `node ${script.split("/").pop()}`;
  const p = spawn(process.execPath, [script, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
  p.stdin!.on("error", () => { /* a child that exits without reading its input */ });
  p.stdin!.end(opts.input ?? "");
  const text = { stdout: "", stderr: "" };
  const waiters = new Set<{ re: RegExp; stream: "stdout" | "stderr"; resolve: (m: RegExpMatchArray) => void }>();
  const feed = (stream: "stdout" | "stderr") => (d: Buffer) => {
    text[stream] += String(d);
    for (const w of waiters) {
      if (w.stream !== stream) continue;
      const m = text[stream].match(w.re);
      if (m) { waiters.delete(w); w.resolve(m); }
    }
  };
  p.stdout!.on("data", feed("stdout"));
  p.stderr!.on("data", feed("stderr"));
  const running = () => p.exitCode === null && p.signalCode === null;
  const killer = setTimeout(() => { p.kill("SIGCONT"); p.kill("SIGKILL"); }, opts.killAfterMs ?? 120_000);
  // never rejects: a child that could not be started ends with code null and the reason in its stderr
  const result = new Promise<ProcResult>((res) => {
    const end = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(killer);
      res({ code, signal, stdout: text.stdout, stderr: text.stderr });
    };
    p.once("error", (err) => { text.stderr += `\n${label}: ${err.message}\n`; end(null, null); });
    p.once("close", end);
  });
  return {
    p, pid: p.pid!, out: () => text.stdout, err: () => text.stderr, result, done: result.then((r) => r.code),
    waitFor: (re, ms = 60_000, stream = "stderr") => new Promise((resolve, reject) => {
      const m = text[stream].match(re);
      if (m) return resolve(m);
      const fail = (why: string) => {
        waiters.delete(w);
        clearTimeout(t);
        reject(new Error(`${why} waiting for ${re} on the ${stream} of ${label}; its ${stream} ends:\n${text[stream].slice(-4000)}`));
      };
      const t = setTimeout(() => fail(`timed out after ${ms} ms`), ms);
      const w = { re, stream, resolve: (x: RegExpMatchArray) => { clearTimeout(t); resolve(x); } };
      waiters.add(w);
      void result.then((r) => { if (waiters.has(w)) fail(`exited (${r.signal ?? `code ${r.code}`}) while`); });
    }),
    kill: (signal = "SIGTERM") => running() && p.kill(signal),
    stop: async (signal = "SIGKILL") => {
      if (running()) { p.kill("SIGCONT"); p.kill(signal); }
      return await result;
    },
  };
}

/** Polls `f` every `everyMs` until it returns a truthy value; rejects after `ms`, naming `what` was awaited. */
export async function until<T>(what: string, f: () => T | undefined | null | false, ms = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
