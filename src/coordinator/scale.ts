// Scaling a running `train` launcher: the launcher listens on a local control socket (a Unix domain socket,
// no external service) and `imdb-train scale --out <dir> --workers N` asks it to start or stop worker
// processes. The socket path is recorded in `<out>/control.json` ({pid, socket, started}) so that `scale`
// finds it from the run's output directory.
//
// Only the launcher's user may connect, from the socket's first moment: it is bound inside a directory made
// private (mode 0700, random name, created exclusively by mkdtemp) before the socket exists, and connecting to
// a Unix socket needs search permission on every directory of its path. (A mode set on the socket after
// listen() would leave a moment when anyone could connect.)
//
// Protocol: one JSON request per connection, one JSON line back.
//   {"op":"status"}              → {"ok":true,"workers":["w0","w1"]}
//   {"op":"scale","workers":N}   → {"ok":true,"workers":[...],"started":["w2"],"stopped":[]}
//   anything wrong               → {"ok":false,"error":"..."}
import type { ScaleCliOptions } from "./command.js";
import { createServer, createConnection, type Server } from "node:net";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { ConnectionError, InputError, UsageError, errorMessage } from "../errors.js";
import { emitJson, logger } from "../output.js";
import { writeAtomic } from "../atomic.js";

const log = logger("scale");
export const CONTROL_FILE = "control.json";
/** Linux limits a socket path to 107 bytes; longer run directories get a socket under the temp directory. */
const MAX_SOCKET_PATH = 100;
const SOCKET = "control.sock";
/** Prefixes of the socket's private directory: in the run directory, or in the temp directory. */
const IN_OUT = ".control-", IN_TMP = "imdb-train-control-";

export interface ControlRequest { op: "status" | "scale"; workers?: number }
export interface ControlReply { ok: boolean; workers?: string[]; started?: string[]; stopped?: string[]; error?: string }

export interface ControlHandler {
  status(): string[];
  /** Start or stop workers until `n` run; returns the names started and stopped. */
  scale(n: number): Promise<{ started: string[]; stopped: string[] }>;
}

export interface ControlServer { socket: string; close(): Promise<void> }

/** A new private directory (0700, random name) to bind the socket in: under `out`, or the temp directory when
 *  that path would be too long for a socket. */
function privateSocketDir(out: string): string {
  const inOut = Buffer.byteLength(join(out, `${IN_OUT}XXXXXX`, SOCKET)) <= MAX_SOCKET_PATH;
  return mkdtempSync(inOut ? join(out, IN_OUT) : join(tmpdir(), IN_TMP));
}

/** The socket directory named by a control file that a killed launcher left in `out`. */
function removeStaleSocketDir(out: string): void {
  let socket: unknown;
  try { socket = (JSON.parse(readFileSync(join(out, CONTROL_FILE), "utf8")) as { socket?: unknown }).socket; } catch { return; }
  if (typeof socket !== "string") return;
  const dir = dirname(socket), name = basename(dir);
  const ours = (dirname(dir) === out && name.startsWith(IN_OUT)) || (dirname(dir) === tmpdir() && name.startsWith(IN_TMP));
  if (ours) rmSync(dir, { recursive: true, force: true });
}

/** Listen for scale requests for the run writing to `out`. */
export async function startControl(out: string, h: ControlHandler): Promise<ControlServer> {
  out = resolve(out);
  mkdirSync(out, { recursive: true });
  removeStaleSocketDir(out);
  const dir = privateSocketDir(out);
  const socket = join(dir, SOCKET);
  let busy: Promise<unknown> = Promise.resolve();
  const server: Server = createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      const reply = (r: ControlReply) => { conn.end(JSON.stringify(r) + "\n"); };
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
      } catch {
        reply({ ok: false, error: "request is not JSON" });
        return;
      }
      // one scale at a time, in arrival order
      busy = busy.then(async () => {
        try {
          if (req.op === "status") return reply({ ok: true, workers: h.status() });
          if (req.op === "scale") {
            const n = Number(req.workers);
            if (!Number.isInteger(n) || n < 1) return reply({ ok: false, error: `workers must be an integer ≥ 1, got ${String(req.workers)}` });
            const r = await h.scale(n);
            return reply({ ok: true, workers: h.status(), ...r });
          }
          reply({ ok: false, error: `unknown op ${String((req as { op?: unknown }).op)}` });
        } catch (err) {
          reply({ ok: false, error: errorMessage(err) });
        }
      });
    });
    conn.on("error", () => {});
  });
  try {
    await new Promise<void>((res, rej) => {
      server.once("error", rej);
      server.listen(socket, () => { server.off("error", rej); res(); });
    });
    chmodSync(socket, 0o600); // the directory already keeps others out; the socket says so too
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  writeAtomic(join(out, CONTROL_FILE), [Buffer.from(JSON.stringify({ pid: process.pid, socket, started: new Date().toISOString() }) + "\n")]);
  return {
    socket,
    async close() {
      await new Promise<void>((res) => server.close(() => res()));
      rmSync(dir, { recursive: true, force: true });
      rmSync(join(out, CONTROL_FILE), { force: true });
    },
  };
}

/** Send one request to the control socket of the run in `out` (or to `socket`). */
export async function control(req: ControlRequest, where: { out?: string; socket?: string }, timeoutMs = 30_000): Promise<ControlReply> {
  let socket = where.socket;
  if (!socket) {
    const file = join(resolve(where.out ?? "runs/latest"), CONTROL_FILE);
    if (!existsSync(file)) throw new InputError("no running `train` launcher writes to this directory (control file missing)", { path: file });
    try {
      socket = String((JSON.parse(readFileSync(file, "utf8")) as { socket?: string }).socket);
    } catch (err) {
      throw new InputError(`control file is not valid JSON: ${errorMessage(err)}`, { path: file });
    }
  }
  return await new Promise<ControlReply>((res, rej) => {
    const conn = createConnection(socket!);
    let buf = "";
    const timer = setTimeout(() => { conn.destroy(); rej(new ConnectionError(`the launcher at ${socket} did not answer within ${timeoutMs / 1000} s`)); }, timeoutMs);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(JSON.stringify(req) + "\n"));
    conn.on("data", (d: string) => { buf += d; });
    conn.on("end", () => {
      clearTimeout(timer);
      try { res(JSON.parse(buf) as ControlReply); } catch { rej(new ConnectionError(`the launcher at ${socket} sent an unreadable reply: ${buf.slice(0, 200)}`)); }
    });
    conn.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      rej(new ConnectionError(`cannot reach the launcher's control socket ${socket} (${err.code ?? err.message}): is the run still going?`, { cause: err }));
    });
  });
}

/** `imdb-train scale`. */
export async function scaleCommand(o: ScaleCliOptions): Promise<number> {
  const where = { out: o.out, socket: o.socket };
  let req: ControlRequest = { op: "status" };
  if (o.workers !== undefined) req = { op: "scale", workers: o.workers };
  // a launcher that is still starting (ingest, coordinator) has no control socket yet: wait for it
  const deadline = Date.now() + o.wait * 1000;
  let said = false;
  let reply: ControlReply;
  for (;;) {
    try {
      reply = await control(req, where);
      break;
    } catch (err) {
      const notYet = err instanceof InputError || (err instanceof ConnectionError && /ENOENT|ECONNREFUSED/.test(err.message));
      if (!notYet || Date.now() > deadline) throw err;
      if (!said) { log.info(`waiting for the launcher's control socket (${errorMessage(err)})`); said = true; }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  if (!reply.ok) throw new UsageError(`the launcher refused: ${reply.error ?? "unknown error"}`);
  const parts = [`workers: ${(reply.workers ?? []).join(", ") || "none"}`];
  if (reply.started?.length) parts.push(`started ${reply.started.join(", ")}`);
  if (reply.stopped?.length) parts.push(`stopping ${reply.stopped.join(", ")}`);
  log.info(parts.join("; "));
  if (o.json) emitJson(reply);
  return 0;
}
