#!/usr/bin/env node
// Entry point of the `imdb-train` command. The TypeScript sources are compiled to dist/ by
// `npm ci` (the package's `prepare` script); run `npm run build` after editing src/.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("imdb-train: dist/ is missing; run `npm run build` (or `npm ci`) in " +
    fileURLToPath(new URL("..", import.meta.url)) + "\n");
  process.exit(2);
}
const { main } = await import(cli.href);
await main(process.argv);
