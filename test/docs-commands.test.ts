// The documents tell the truth about the CLI: every `imdb-train …` command in a code block of README.md or
// docs/*.md names a real command and only flags its --help lists; the quick start runs as written on a
// machine with nothing but the program (the archive's download served from a local server, or the archive
// in the working directory); and the documents describe the product, not how it was made.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join, normalize } from "node:path";
import { runCli } from "./helpers/cli.js";
import {
  REPO, anchorsOf, checkCommand, commandsIn, docFiles, helpOf, isPlaceholder, readDoc, relativeLinks, shellWords,
  subcommandsIn, type DocCommand,
} from "./helpers/docs.js";
import { gzipSync } from "node:zlib";
import { cleanup, makeLayout, tarBytes, tempDir } from "./helpers/fixture.js";

const allCommands = (): DocCommand[] => docFiles().flatMap((f) => commandsIn(f, readDoc(f)));

test("the documents are found and hold commands (the checks below are not vacuous)", () => {
  const files = docFiles();
  for (const f of ["README.md", "docs/architecture.md", "docs/protocol.md", "docs/operations.md", "docs/performance.md", "docs/experiments.md"]) {
    assert.ok(files.includes(f), `${f} is missing`);
  }
  const cmds = allCommands();
  assert.ok(cmds.length >= 40, `only ${cmds.length} imdb-train commands found in the documents`);
  assert.ok(cmds.some((c) => c.where.startsWith("README.md") && c.section === "Quick start"), "README.md has no quick start commands");
});

test("shell words: quotes group, placeholders stay whole, comments and pipes end the command", () => {
  assert.deepEqual(shellWords(`predict --model m "A wonderful, moving film."   # comment`), ["predict", "--model", "m", "A wonderful, moving film."]);
  assert.deepEqual(shellWords("bench ingest --data <path to aclImdb-train.tar.gz> --json | tail -1"), ["bench", "ingest", "--data", "<path to aclImdb-train.tar.gz>", "--json"]);
  assert.deepEqual(shellWords("train --out runs/a &"), ["train", "--out", "runs/a"]);
});

test("a documented command or flag that does not exist is reported", async () => {
  const md = [
    "## Broken", "```sh",
    "npx imdb-train ingest --out d --no-such-flag 3",
    "npx imdb-train no-such-command --json",
    "npx imdb-train bench no-such-bench",
    "npx imdb-train train --cell transformer",
    "npx imdb-train ingest --out d --keep <first or last>   # placeholders are not checked against choices",
    "```",
  ].join("\n");
  const results = await Promise.all(commandsIn("broken.md", md).map(checkCommand));
  const problems = results.map((r) => r.problems.join(" | "));
  assert.match(problems[0]!, /has no option --no-such-flag/);
  assert.match(problems[1]!, /no command `no-such-command`/);
  assert.match(problems[2]!, /has no subcommand `no-such-bench`/);
  assert.match(problems[3]!, /--cell transformer is not one of lstm, gru/);
  assert.equal(problems[4], "");
});

test("every documented imdb-train command exists and uses only flags its --help lists", { timeout: 300_000 }, async () => {
  const problems: string[] = [];
  const paths = new Set<string>();
  for (const c of allCommands()) {
    const r = await checkCommand(c);
    problems.push(...r.problems);
    if (r.path.length) paths.add(r.path.join(" "));
  }
  assert.deepEqual(problems, [], problems.join("\n"));
  // the commands the documents use span the CLI
  for (const p of ["ingest", "train", "scale", "coordinator", "worker", "eval", "predict", "keys", "dashboard", "bench ingest", "bench engine", "bench allreduce", "bench scaling", "bench gpu-engine", "bench soak", "experiment rnn-count", "experiment count-ones"]) {
    assert.ok(paths.has(p), `no document shows \`imdb-train ${p}\``);
  }
});

test("--help of every command and subcommand runs and explains it", { timeout: 300_000 }, async () => {
  const top = await helpOf([]);
  assert.equal(top.code, 0);
  for (const cmd of subcommandsIn(top.text)) {
    const h = await helpOf([cmd]);
    assert.equal(h.code, 0, `imdb-train ${cmd} --help exits ${h.code}`);
    assert.match(h.text, new RegExp(`^Usage: imdb-train ${cmd}\\b`), `imdb-train ${cmd} --help prints another command's help`);
    for (const sub of subcommandsIn(h.text)) {
      const s = await helpOf([cmd, sub]);
      assert.equal(s.code, 0, `imdb-train ${cmd} ${sub} --help exits ${s.code}`);
      assert.match(s.text, new RegExp(`^Usage: imdb-train ${cmd} ${sub}\\b`));
      assert.match(s.text, /\n {2}--/, `imdb-train ${cmd} ${sub} --help lists no options`);
    }
  }
});

test("README's quick start runs as written on a fresh machine (archive downloaded, or in the working directory)", { timeout: 900_000 }, async (t) => {
  const quick = commandsIn("README.md", readDoc("README.md")).filter((c) => c.section === "Quick start");
  assert.ok(quick.some((c) => c.args[0] === "train" && !c.args.includes("--data") && !c.args.includes("--dataset")), "the quick start should show the download path (train without --data)");
  assert.ok(quick.some((c) => c.args[0] === "eval" && !c.args.includes("--data")), "the quick start should score the official test split (eval without --data)");
  const dir = tempDir("imdb-docs-quickstart-");
  t.after(() => cleanup(dir));
  // an invented dataset in the official archive's layout, as the official file name, and served for the download
  // the official archive's layout: labelled train and test reviews, and unlabelled ones in train/unsup/ (--pretrain)
  const unsup = makeLayout({ train: 10, words: [5, 60], seed: 2 }).filter((f) => /\/train\/(pos|neg)\//.test(f.name))
    .map((f, i) => ({ name: `aclImdb/train/unsup/${i}_0.txt`, data: f.data }));
  const archive = gzipSync(tarBytes([...makeLayout({ train: 20, test: 5, words: [5, 60] }), ...unsup]));
  writeFileSync(join(dir, "aclImdb_v1.tar.gz"), archive);
  let downloads = 0;
  const server = createServer((req, res) => {
    downloads++;
    res.writeHead(200, { "content-type": "application/gzip", "content-length": archive.length });
    res.end(archive);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const env = {
    IMDB_TRAIN_CACHE: join(dir, "cache"),
    IMDB_TRAIN_DATA_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/aclImdb_v1.tar.gz`,
    IMDB_TRAIN_DATA_SHA256: createHash("sha256").update(archive).digest("hex"),
  };
  for (const c of quick) {
    const args = c.args.map((a, i) => (isPlaceholder(a) && c.args[i - 1] === "--data" ? join(dir, "aclImdb_v1.tar.gz") : a));
    assert.ok(!args.some(isPlaceholder), `${c.where}: the quick start should be pasteable, without placeholders: ${c.text}`);
    const r = await runCli(args, { cwd: dir, env, timeoutMs: 240_000 });
    assert.equal(r.code, 0, `${c.where}: \`${c.text}\` exited ${r.code}:\n${r.stderr.slice(-3000)}`);
    if (!args.includes("--data") && !args.includes("--dataset") && ["ingest", "train", "eval"].includes(args[0]!)) {
      assert.equal(downloads, 1, `${c.where}: the archive is downloaded once and then reused`);
      assert.ok(existsSync(join(dir, "cache", "aclImdb_v1.tar.gz")), "the downloaded archive is kept in the cache");
    }
    const out = args[args.indexOf("--out") + 1];
    if (args[0] === "ingest" && out) {
      const manifest = JSON.parse(readFileSync(join(dir, out, "manifest.json"), "utf8")) as { splits: Record<string, { reviews: number }> };
      assert.equal(manifest.splits.train!.reviews + manifest.splits.val!.reviews, 40, `${c.where}: ${out} holds every training review`);
    }
    if (args[0] === "train" && out) {
      assert.ok(existsSync(join(dir, out, "model", "params.bin")), `${c.where}: no model in ${out}/model`);
      assert.ok(existsSync(join(dir, out, "checkpoints", "last.ckpt")), `${c.where}: no checkpoint in ${out}/checkpoints`);
    }
    if (args[0] === "predict") {
      const p = Number(r.stdout.trim().split("\n").pop());
      assert.ok(p > 0 && p < 1, `${c.where}: predict printed ${JSON.stringify(r.stdout)}, not a probability`);
    }
    if (args[0] === "eval") {
      assert.equal(r.json?.split, "test", `${c.where}: eval of the official layout scores its test split`);
      assert.equal(r.json?.n, 10, `${c.where}: eval scores every review of the split`);
    }
  }
  assert.ok(quick.length >= 4, `the quick start has ${quick.length} commands`);
});

test("README stays short: at most 250 lines", () => {
  const lines = readDoc("README.md").split("\n").length;
  assert.ok(lines <= 250, `README.md has ${lines} lines`);
});

test("the documents describe the product: no local test paths, no sessions, people or internal targets", () => {
  const rules: [RegExp, string][] = [
    [/\.\.\/shared/, "a path of this repository's test set-up (../shared)"],
    [/\bsessions?\b/i, "a session"],
    [/\bthe lead\b|\blead engineer/i, "a person (the lead)"],
    [/(?<![\w/.-])helpers?\b(?!\/)/i, "a person (helper)"],
    [/\bengineers?\b/i, "a person (engineer)"],
    [/\bcolleagues?\b|\bteammates?\b/i, "a person"],
    [/\bgoals?\b/i, "an internal target (goal)"],
    [/(?<!progress )\bbar\b(?! gauge)/i, "an internal target (bar)"],
  ];
  const problems: string[] = [];
  for (const f of docFiles()) {
    readDoc(f).split("\n").forEach((line, i) => {
      for (const [re, what] of rules) if (re.test(line)) problems.push(`${f}:${i + 1}: ${what}: ${line.trim().slice(0, 120)}`);
    });
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});

test("every relative link of the documents points at a file that exists, and at a heading it has", () => {
  const problems: string[] = [];
  for (const f of docFiles()) {
    for (const link of relativeLinks(readDoc(f))) {
      const [target, anchor] = link.split("#", 2) as [string, string | undefined];
      const path = target ? normalize(join(dirname(f), target)) : f;
      if (!existsSync(join(REPO, path))) { problems.push(`${f}: link ${link}: ${path} does not exist`); continue; }
      if (anchor !== undefined && path.endsWith(".md") && !anchorsOf(readDoc(path)).has(anchor)) {
        problems.push(`${f}: link ${link}: ${path} has no heading #${anchor}`);
      }
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});
