// Reading deploy/ for the deploy tests: every YAML document, the imdb-train invocations in compose
// and Kubernetes files, and the flags the real CLI's --help lists.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseYamlDocuments } from "../../src/metrics/yaml.js";
import { runCli } from "./cli.js";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const DEPLOY = join(REPO, "deploy");

export interface YamlDoc { file: string; doc: any }

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
}

/** Every file under deploy/, relative to the repository root. */
export function deployFiles(): string[] {
  return walk(DEPLOY).map((p) => relative(REPO, p)).sort();
}

/** Every document of every .yaml/.yml file under `dir` (relative to the repo). */
export function yamlDocs(dir = "deploy"): YamlDoc[] {
  return walk(join(REPO, dir))
    .filter((p) => /\.ya?ml$/.test(p))
    .flatMap((p) => parseYamlDocuments(readFileSync(p, "utf8"), relative(REPO, p)).map((doc) => ({ file: relative(REPO, p), doc })));
}

export interface Invocation {
  where: string;
  image: string;
  argv: string[];
}

/** Value of `--name` in argv (the next element), if present. */
export function flagValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

const helpCache = new Map<string, Promise<string>>();

/** The real `imdb-train <sub> --help` text (cached per subcommand); "" when the command fails. */
export function helpOf(sub: string): Promise<string> {
  let h = helpCache.get(sub);
  if (!h) {
    // An unknown subcommand makes commander print the program's help: accept only the command's own.
    h = runCli([sub, "--help"], { timeoutMs: 60_000 }).then((r) =>
      r.code === 0 && r.stdout.startsWith(`Usage: imdb-train ${sub} `) ? r.stdout : "");
    helpCache.set(sub, h);
  }
  return h;
}

/** The long flags a help text lists, e.g. ["--data", "--out", ...]. */
export function flagsIn(help: string): Set<string> {
  return new Set([...help.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
}

/** The default a help text shows for `--name`, e.g. `(default: 9401)` → "9401". */
export function defaultIn(help: string, name: string): string | undefined {
  const line = help.split("\n").find((l) => new RegExp(`--${name}\\b`).test(l));
  const m = line?.match(/\(default: "?([^")]*)"?\)/);
  return m?.[1];
}
