#!/usr/bin/env node
// `npm test`: check the system programs and libraries the tests use BEFORE running anything, then build
// (tsc) and run every test file (or the files given) one at a time.
//
// Missing prerequisites are never skipped: run as root on Debian/Ubuntu, the missing packages are installed
// with apt-get; otherwise the run stops at once, non-zero, with the exact command to run.
//
//   node test/run.mjs                     check, build, run every dist/test/**/*.test.js
//   node test/run.mjs dist/test/x.test.js check, build, run those files
//   node test/run.mjs --check             check (and install as root) only
// Plain JavaScript on purpose: it runs before TypeScript is compiled (and before `npm ci` in CI).
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** Debian keeps daemons such as nats-server in sbin, which is not on a normal user's PATH. */
const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** What the system tests need: a program on PATH or a Debian package, and the Debian package providing it. */
const NEEDS = [
  { program: "nats-server", pkg: "nats-server", why: "NATS cluster plane, JetStream ingest and NATS auth tests" },
  { program: "prometheus", pkg: "prometheus", why: "the dashboard tested against a live Prometheus" },
  { program: "promtool", pkg: "prometheus", why: "metric names and Prometheus configs linted" },
  { program: "python3", pkg: "python3", why: "bench ingest's baseline and the GPU anchor's runner" },
  // Dawn's OpenGL ES backend on Mesa's llvmpipe: the software WebGPU adapter the WGSL kernels' tests run on.
  ...["libegl1", "libegl-mesa0", "libgles2", "libgl1-mesa-dri"].map((pkg) => ({ pkg, linuxOnly: true, why: "software WebGPU adapter (Mesa llvmpipe over EGL)" })),
];

function executable(path) {
  try { accessSync(path, constants.X_OK); return true; } catch { return false; }
}

/** Directory holding `program`: on PATH first, then in the sbin directories. */
function findProgram(program, path = process.env.PATH ?? "") {
  for (const dir of [...path.split(delimiter).filter(Boolean), ...SBIN]) {
    if (executable(join(dir, program))) return dir;
  }
  return null;
}

function dpkgInstalled(pkg) {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" });
  return r.status === 0 && /install ok installed/.test(r.stdout);
}

/** The needs not met now; `dirs` collects the directories where programs were found. */
function missing(dirs = new Set()) {
  const haveDpkg = findProgram("dpkg-query") !== null;
  return NEEDS.filter((n) => {
    if (n.program) {
      const dir = findProgram(n.program);
      if (dir) dirs.add(dir);
      return dir === null;
    }
    if (n.linuxOnly && process.platform !== "linux") return false;
    // without dpkg (not Debian) we cannot tell which package provides the library: look for the libraries
    return haveDpkg ? !dpkgInstalled(n.pkg) : !libraryFound(n.pkg);
  });
}

const LIBRARY_OF = { "libegl1": "libEGL.so.1", "libegl-mesa0": "libEGL_mesa.so.0", "libgles2": "libGLESv2.so.2", "libgl1-mesa-dri": "swrast_dri.so" };
function libraryFound(pkg) {
  const name = LIBRARY_OF[pkg];
  const r = spawnSync("ldconfig", ["-p"], { encoding: "utf8" });
  if (r.status === 0 && r.stdout.includes(name)) return true;
  const dirs = ["/usr/lib64", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
  return dirs.some((d) => existsSync(join(d, name)) || existsSync(join(d, "dri", name)));
}

function describe(needs) {
  const byPkg = new Map();
  for (const n of needs) {
    const e = byPkg.get(n.pkg) ?? { what: [], why: new Set() };
    e.what.push(n.program ?? n.pkg);
    e.why.add(n.why);
    byPkg.set(n.pkg, e);
  }
  return [...byPkg].map(([pkg, e]) => `  ${e.what.join(", ")} (Debian package ${pkg}): ${[...e.why].join("; ")}`).join("\n");
}

function installCommand(pkgs, sudo) {
  const s = sudo ? "sudo " : "";
  return `${s}apt-get update && ${s}DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs.join(" ")}`;
}

/** Meets every need or exits: installs with apt-get as root, otherwise names the command. Returns the extra PATH dirs. */
function ensurePrerequisites() {
  let lacking = missing();
  if (lacking.length === 0) return extraPath();
  const pkgs = [...new Set(lacking.map((n) => n.pkg))];
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const apt = findProgram("apt-get") !== null;
  if (root && apt) {
    process.stderr.write(`npm test: installing what the system tests need:\n${describe(lacking)}\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    for (const args of [["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", ...pkgs]]) {
      const r = spawnSync("apt-get", args, { stdio: "inherit", env });
      if (r.status !== 0) fail(`apt-get ${args[0]} failed (status ${r.status ?? r.signal}); install by hand:\n  ${installCommand(pkgs, false)}`);
    }
    lacking = missing();
    if (lacking.length === 0) return extraPath();
    fail(`still missing after apt-get install:\n${describe(lacking)}`);
  }
  const how = apt
    ? `Install them, then run npm test again:\n  ${installCommand(pkgs, true)}\n(run as root, npm test installs them itself)`
    : `Install them with this system's package manager (the Debian package names are given), then run npm test again.`;
  fail(`the system tests need what this machine lacks:\n${describe(lacking)}\n${how}`);
}

/** sbin directories holding a needed program that PATH lacks (tests spawn these programs by name). */
function extraPath() {
  const dirs = new Set();
  missing(dirs);
  const path = (process.env.PATH ?? "").split(delimiter);
  return [...dirs].filter((d) => !path.includes(d));
}

function fail(message) {
  process.stderr.write(`npm test: ${message}\n`);
  process.exit(1);
}

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".test.js") ? [join(dir, e.name)] : []).sort();
}

function run(args, env) {
  const r = spawnSync(process.execPath, args, { stdio: "inherit", cwd: REPO, env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const argv = process.argv.slice(2);
const extra = ensurePrerequisites();
if (argv.includes("--check")) process.exit(0);
const env = extra.length ? { ...process.env, PATH: [process.env.PATH, ...extra].filter(Boolean).join(delimiter) } : process.env;
run([join(REPO, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], env);
const files = argv.length ? argv : testFiles(join(REPO, "dist/test"));
if (files.length === 0) fail("no test files under dist/test");
run(["--test", "--test-concurrency=1", ...files], env);
