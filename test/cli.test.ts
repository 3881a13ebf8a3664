import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.js";

test("--help lists the program and exits 0", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Usage: imdb-train/);
});

test("an unknown subcommand exits 2 with a message", async () => {
  const r = await runCli(["no-such-command"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command/);
});
