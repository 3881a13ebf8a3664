// The `train` launcher's control socket is private from its first moment: it is bound inside a directory that
// is already mode 0700 (random name, made by mkdtemp), so that even with the socket's own mode wide open — as it
// was between listen() and the chmod that used to follow — another user cannot connect. Checked with a real
// process running as another user (nobody), which needs root to start; the rest runs as anyone.
import test, { afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { tempDir, cleanup } from "./helpers/fixture.js";
import { startControl, control, CONTROL_FILE } from "../src/coordinator/scale.js";

const ROOT_ONLY = process.getuid?.() === 0 ? false : "connecting as another user (nobody) needs root to start that process; CI runs as root";
const NOBODY = 65534;

const handler = { status: () => ["w0"], scale: async () => ({ started: [], stopped: [] }) };

/** Tries to connect to `socket` as the user `uid`; resolves with "connected" or the error code. */
function connectAs(uid: number, socket: string): Promise<string> {
  const code = `const c = require("node:net").createConnection(${JSON.stringify(socket)});
    c.on("connect", () => { console.log("connected"); c.destroy(); });
    c.on("error", (e) => console.log(e.code));`;
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ["-e", code], { uid, gid: uid, cwd: "/", stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => { out += String(d); });
    p.stderr.on("data", (d) => { err += String(d); });
    p.once("error", rej);
    p.once("close", () => (out.trim() ? res(out.trim()) : rej(new Error(`no answer from the probe: ${err}`))));
  });
}

/** A run directory as `train` usually gets one: readable and searchable by everyone (0755). */
function publicRunDir(root: string, name: string): string {
  const out = join(root, name);
  mkdirSync(out, { recursive: true });
  chmodSync(root, 0o755);
  chmodSync(out, 0o755);
  return out;
}

/** Servers a test started, closed even when it fails (an open server keeps the test process alive). */
const started: { close(): Promise<void> }[] = [];
async function start(out: string) {
  const s = await startControl(out, handler);
  started.push(s);
  return s;
}
afterEach(async () => { await Promise.all(started.splice(0).map((s) => s.close())); });

test("the control socket is bound in a private directory: mode 0700 before it exists, 0600 itself, removed on close", async () => {
  const root = tempDir("imdb-control-");
  try {
    const out = publicRunDir(root, "run");
    const server = await start(out);
    const dir = dirname(server.socket);
    assert.equal(dirname(dir), out);
    assert.match(basename(dir), /^\.control-.{6}$/);
    const d = statSync(dir);
    assert.equal((d.mode & 0o777).toString(8), "700", "only its owner may enter the socket's directory");
    assert.equal(d.uid, process.getuid!());
    assert.equal((statSync(server.socket).mode & 0o777).toString(8), "600");
    assert.equal(JSON.parse(readFileSync(join(out, CONTROL_FILE), "utf8")).socket, server.socket);
    assert.deepEqual(await control({ op: "status" }, { out }), { ok: true, workers: ["w0"] });
    await server.close();
    assert.equal(existsSync(dir), false);
    assert.equal(existsSync(join(out, CONTROL_FILE)), false);
  } finally {
    cleanup(root);
  }
});

test("another user cannot connect even while the socket's own mode is still open (the moment before a chmod)", { skip: ROOT_ONLY }, async () => {
  const root = tempDir("imdb-control-");
  try {
    const out = publicRunDir(root, "run");
    const server = await start(out);
    chmodSync(server.socket, 0o666); // what listen() creates with the usual umask, before any chmod
    assert.equal(await connectAs(NOBODY, server.socket), "EACCES");
    assert.equal(await connectAs(process.getuid!(), server.socket), "connected", "its owner still connects");
  } finally {
    cleanup(root);
  }
});

test("a run directory too long for a socket path gets a private directory under the temp directory; a killed launcher's is cleared", async () => {
  const root = tempDir("imdb-control-");
  try {
    const out = publicRunDir(root, "a-rather-long-run-directory-name/".repeat(3).slice(0, -1));
    const server = await start(out);
    const dir = dirname(server.socket);
    assert.equal(dirname(dir), tmpdir());
    assert.match(basename(dir), /^imdb-train-control-.{6}$/);
    assert.equal((statSync(dir).mode & 0o777).toString(8), "700");
    // a launcher killed with SIGKILL leaves its directory and control file; the next one clears them
    const next = publicRunDir(root, "next");
    const stale = await start(next);
    const staleDir = dirname(stale.socket);
    writeFileSync(join(next, "kept.txt"), "x");
    const second = await start(next);
    assert.equal(existsSync(staleDir), false, "the killed launcher's socket directory is gone");
    assert.notEqual(dirname(second.socket), staleDir);
    await server.close();
    assert.equal(existsSync(dir), false);
  } finally {
    cleanup(root);
  }
});
