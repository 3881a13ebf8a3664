// The shape of the code, checked: roles meet only through their index, shared modules never reach into a
// role, each third-party library has one owner, no source file grows past 400 lines, no `as unknown as`.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const SRC = join(REPO, "src");
const ROLES = ["ingest", "workers", "coordinator", "metrics"];
/** Tools that may use any role, through its index only. */
const TOOLS = ["bench", "experiments"];
const MAX_LINES = 400;
/** Each third-party library and the one place (file or folder) that may import it. */
const OWNERS: Record<string, string> = {
  "@tensorflow/": "src/tfjs.ts",
  "apache-arrow": "src/dataset/arrow.ts",
  "zeromq": "src/transport/zmq/",
  "@nats-io/": "src/transport/nats.ts",
  "piscina": "src/ingest/piscina.ts",
  "prom-client": "src/metrics/prom.ts",
  "webgpu": "src/engine/gpu/device.ts",
  "commander": "src/cli.ts",
  "@grafana/grafana-foundation-sdk": "src/metrics/dashboard.ts",
  "yaml": "src/metrics/yaml.ts",
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Every import of a file: static, dynamic and re-exports, as written. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:\bfrom\s+|\bimport\(\s*|\bimport\s+)"([^"]+)"/g)].map((m) => m[1]!);
}

/** "coordinator" for src/coordinator/x.ts, "(shared)" for shared modules, the tool's name for tools. */
function area(file: string): string {
  const parts = relative(SRC, file).split("/");
  return parts.length > 1 ? parts[0]! : "(shared)";
}

const FILES = sources(SRC);
const rel = (f: string) => relative(REPO, f);

/** True when `file` importing `target` crosses into a role the wrong way: the CLI may wire any role's commands,
 *  tools and other roles enter a role through its index, shared code never enters one. */
function crosses(file: string, target: string): boolean {
  const from = area(file), to = area(target);
  if (from === to || !ROLES.includes(to)) return false;
  const viaIndex = relative(join(SRC, to), target) === "index.ts";
  if (relative(SRC, file) === "cli.ts") return !/\/(command|index)\.ts$/.test(target);
  return !((ROLES.includes(from) || TOOLS.includes(from)) && viaIndex);
}

test("roles import each other only through index.ts; shared modules import no role", () => {
  const bad: string[] = [];
  for (const file of FILES) {
    for (const spec of importsOf(file)) {
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
      if (crosses(file, target)) bad.push(`${rel(file)} → ${rel(target)}`);
    }
  }
  assert.deepEqual(bad, [], "imports that cross into a role");
});

test("each third-party library is imported by its owner only", () => {
  const bad: string[] = [];
  for (const file of FILES) {
    for (const spec of importsOf(file)) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const lib = Object.keys(OWNERS).find((k) => spec === k || spec.startsWith(k.endsWith("/") ? k : `${k}/`));
      if (!lib) { bad.push(`${rel(file)} imports ${spec}, which has no owner in this test`); continue; }
      const owner = OWNERS[lib]!;
      if (!(owner.endsWith("/") ? rel(file).startsWith(owner) : rel(file) === owner)) bad.push(`${rel(file)} imports ${spec} (owner: ${owner})`);
    }
  }
  assert.deepEqual(bad, []);
});

test(`no source file over ${MAX_LINES} lines`, () => {
  const long = FILES.map((f) => [rel(f), readFileSync(f, "utf8").split("\n").length] as const).filter(([, n]) => n > MAX_LINES);
  assert.deepEqual(long, []);
});

test("no `as unknown as` outside tests", () => {
  const found = FILES.filter((f) => /\bas unknown as\b/.test(readFileSync(f, "utf8"))).map(rel);
  assert.deepEqual(found, []);
});

test("the crossing rule itself (so the test above can fail)", () => {
  const p = (x: string) => join(SRC, x);
  assert.equal(crosses(p("model/layout.ts"), p("coordinator/index.ts")), true, "shared code into a role");
  assert.equal(crosses(p("workers/worker.ts"), p("ingest/tokenizer.ts")), true, "a role past another's index");
  assert.equal(crosses(p("bench/ingest.ts"), p("ingest/pipeline.ts")), true, "a tool past a role's index");
  assert.equal(crosses(p("workers/evaluate.ts"), p("ingest/index.ts")), false);
  assert.equal(crosses(p("cli.ts"), p("ingest/command.ts")), false);
  assert.equal(crosses(p("coordinator/peers.ts"), p("coordinator/rounds.ts")), false);
  assert.equal(crosses(p("coordinator/peers.ts"), p("protocol/wire.ts")), false);
});
