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

export async function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += String(d); });
    child.stderr.on("data", (d) => { stderr += String(d); });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.trim().split("\n");
      let json: unknown = undefined;
      try { json = JSON.parse(lines[lines.length - 1] ?? ""); } catch { /* not JSON */ }
      resolve({ code, signal, stdout, stderr, json });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input); else child.stdin.end();
  });
}

/** A running `imdb-train` child: its output so far, its exit, and a wait for a line of its log (stderr). */
export interface CliProc {
  p: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<number | null>;
  /** Resolves with the first match of `re` in stderr (already there or still to come); rejects after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

/**
 * Starts `imdb-train args` without waiting for it (for tests that signal it or read its log while it runs).
 * A safety timer kills it after `killAfterMs` (SIGCONT first, so a process a test stopped dies too).
 */
export function spawnCli(args: string[], opts: { killAfterMs?: number } = {}): CliProc {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  p.stdout!.on("data", (d) => { out += String(d); });
  p.stderr!.on("data", (d) => {
    err += String(d);
    for (const w of [...waiters]) { const m = err.match(w.re); if (m) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); } }
  });
  const killer = setTimeout(() => { p.kill("SIGCONT"); p.kill("SIGKILL"); }, opts.killAfterMs ?? 120_000);
  const done = new Promise<number | null>((res) => p.once("close", (code) => { clearTimeout(killer); res(code); }));
  return {
    p, out: () => out, err: () => err, done,
    waitFor: (re, ms = 60_000) => new Promise((resolve, reject) => {
      const m = err.match(re);
      if (m) return resolve(m);
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${err.slice(-4000)}`)), ms);
      waiters.push({ re, resolve: (x) => { clearTimeout(t); resolve(x); } });
    }),
  };
}
