// Reading the project's documents as a user would: the `imdb-train` commands in their code blocks, split into
// words like a shell would; the commands and flags the real CLI's --help lists; the relative links and the
// headings they point at.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./cli.js";

/** The repository's root (this file runs from dist/test/helpers/). */
export const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** README.md and every docs/*.md, as paths relative to the repository. */
export function docFiles(): string[] {
  const docs = readdirSync(join(REPO, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

export function readDoc(rel: string): string {
  return readFileSync(join(REPO, rel), "utf8");
}

/** One `imdb-train …` command found in a code block. */
export interface DocCommand {
  /** Where: "README.md:42". */
  where: string;
  /** The heading (## or ###) the code block sits under. */
  section: string;
  /** The words after `imdb-train`, as a shell would pass them (quotes removed, `<placeholders>` kept whole). */
  args: string[];
  /** The command as written. */
  text: string;
}

/** Lines of fenced code blocks, with their line numbers and the heading above them; `\` continuations joined. */
export function codeLines(md: string): { line: number; section: string; text: string }[] {
  const out: { line: number; section: string; text: string }[] = [];
  let inBlock = false;
  let section = "";
  let pending: { line: number; text: string } | null = null;
  md.split("\n").forEach((raw, i) => {
    if (/^\s*```/.test(raw)) { inBlock = !inBlock; pending = null; return; }
    if (!inBlock) {
      const h = /^#{1,4}\s+(.*)$/.exec(raw);
      if (h) section = h[1]!.trim();
      return;
    }
    const joined: { line: number; text: string } = pending ? { line: pending.line, text: pending.text + " " + raw.trim() } : { line: i + 1, text: raw };
    if (/\\\s*$/.test(joined.text)) { pending = { line: joined.line, text: joined.text.replace(/\\\s*$/, "") }; return; }
    pending = null;
    out.push({ line: joined.line, section, text: joined.text });
  });
  return out;
}

/**
 * Shell-like words of `s` up to the end of the command: single and double quotes group (and are removed),
 * `<…>` is one placeholder word even with spaces inside, and an unquoted `#` after a space, `|`, `&`, `;`,
 * `>` or `)` ends the command.
 */
export function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur = "";
  let has = false;
  let i = 0;
  const flush = () => { if (has) words.push(cur); cur = ""; has = false; };
  while (i < s.length) {
    const c = s[i]!;
    if (c === "'" || c === '"') {
      const end = s.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unbalanced ${c} in: ${s}`);
      cur += s.slice(i + 1, end); has = true; i = end + 1;
    } else if (c === "<" && !has) {
      const end = s.indexOf(">", i + 1);
      if (end < 0) throw new Error(`unclosed placeholder < in: ${s}`);
      cur += s.slice(i, end + 1); has = true; i = end + 1;
    } else if (/\s/.test(c)) {
      flush(); i++;
      if (s[i] === "#") break;
    } else if ("|&;>)".includes(c)) {
      break;
    } else {
      cur += c; has = true; i++;
    }
  }
  flush();
  return words;
}

/** Every `imdb-train …` / `npx imdb-train …` command in the code blocks of `md` (named `file`). */
export function commandsIn(file: string, md: string): DocCommand[] {
  const out: DocCommand[] = [];
  for (const l of codeLines(md)) {
    const re = /(?:^|[\s(;&|])(?:npx\s+)?imdb-train\s+/g;
    const comment = /(?:^|\s)#/.exec(l.text)?.index ?? Infinity; // a shell comment names no command
    let m: RegExpExecArray | null;
    while ((m = re.exec(l.text)) !== null && m.index < comment) {
      const rest = l.text.slice(m.index + m[0].length);
      const args = shellWords(rest);
      out.push({ where: `${file}:${l.line}`, section: l.section, args, text: `imdb-train ${rest.trim()}` });
    }
  }
  return out;
}

/** A placeholder word such as `<path to aclImdb_v1.tar.gz>`. */
export function isPlaceholder(word: string): boolean {
  return /^<[^>]+>$/.test(word);
}

const helpCache = new Map<string, Promise<{ code: number | null; text: string }>>();

/** `imdb-train <path…> --help`, run for real (cached per command path). */
export function helpOf(path: readonly string[]): Promise<{ code: number | null; text: string }> {
  const key = path.join(" ");
  let h = helpCache.get(key);
  if (!h) {
    h = runCli([...path, "--help"], { timeoutMs: 60_000 }).then((r) => ({ code: r.code, text: r.stdout }));
    helpCache.set(key, h);
  }
  return h;
}

/** The lines of one section ("Options:", "Commands:") of a commander help text. */
function sectionLines(help: string, title: string): string[] {
  const lines = help.split("\n");
  const start = lines.findIndex((l) => l.trim() === title);
  if (start < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (l.trim() === "") break;
    out.push(l);
  }
  return out;
}

/** An option a help text lists: its long flag, whether it takes a value, and its choices when it has some. */
export interface HelpOption { flag: string; takesValue: boolean; choices: string[] | null }

/** The options of a help text's "Options:" section (only the option lines, not their descriptions). */
export function optionsIn(help: string): Map<string, HelpOption> {
  const lines = sectionLines(help, "Options:");
  const opts = new Map<string, HelpOption>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^ {2}(?:-[A-Za-z], )?(--[a-z][a-z0-9-]*)(\s+<[^>]+>|\s+\[[^\]]+\])?/.exec(lines[i]!);
    if (!m) continue;
    // an option's description may wrap onto the following, more indented lines
    let desc = lines[i]!;
    for (let j = i + 1; j < lines.length && !/^ {2}-/.test(lines[j]!); j++) desc += " " + lines[j]!.trim();
    const ch = /\(choices: ([^)]*?)(?:, default: [^)]*)?\)/.exec(desc);
    const choices = ch ? [...ch[1]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!) : null;
    opts.set(m[1]!, { flag: m[1]!, takesValue: m[2] !== undefined, choices });
  }
  return opts;
}

/** The subcommands of a help text's "Commands:" section (without `help`). */
export function subcommandsIn(help: string): string[] {
  return sectionLines(help, "Commands:")
    .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined && c !== "help");
}

/**
 * Problems of one documented command against the real CLI: an unknown command or subcommand, a flag its
 * --help does not list, a value outside an option's choices. Returns the command path it resolved to.
 */
export async function checkCommand(c: DocCommand): Promise<{ path: string[]; problems: string[] }> {
  const problems: string[] = [];
  const top = await helpOf([]);
  const commands = subcommandsIn(top.text);
  const [first, ...rest] = c.args;
  if (!first || !commands.includes(first)) {
    return { path: [], problems: [`${c.where}: \`${c.text}\`: no command \`${first ?? ""}\` (the CLI has: ${commands.join(", ")})`] };
  }
  const path = [first];
  let help = await helpOf(path);
  const subs = subcommandsIn(help.text);
  let args = rest;
  if (subs.length) {
    const sub = rest[0];
    if (!sub || !subs.includes(sub)) {
      return { path, problems: [`${c.where}: \`${c.text}\`: \`${first}\` has no subcommand \`${sub ?? ""}\` (it has: ${subs.join(", ")})`] };
    }
    path.push(sub);
    help = await helpOf(path);
    args = rest.slice(1);
  }
  if (help.code !== 0) return { path, problems: [`${c.where}: \`imdb-train ${path.join(" ")} --help\` exits ${help.code}`] };
  const options = optionsIn(help.text);
  for (const [flag, o] of optionsIn(top.text)) if (!options.has(flag)) options.set(flag, o); // --quiet, --verbose
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) continue;
    const [flag, inline] = a.split("=", 2) as [string, string | undefined];
    const o = options.get(flag);
    if (!o) {
      problems.push(`${c.where}: \`${c.text}\`: \`imdb-train ${path.join(" ")}\` has no option ${flag}`);
      continue;
    }
    if (!o.takesValue) continue;
    const value = inline ?? args[++i];
    if (value === undefined) problems.push(`${c.where}: \`${c.text}\`: ${flag} needs a value`);
    else if (o.choices && !isPlaceholder(value) && !o.choices.includes(value)) {
      problems.push(`${c.where}: \`${c.text}\`: ${flag} ${value} is not one of ${o.choices.join(", ")}`);
    }
  }
  return { path, problems };
}

/** GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[`*_]/g, "").replace(/[^\p{L}\p{N}\s-]/gu, "").replace(/\s/g, "-");
}

/** Relative links `[text](target)` of a markdown file outside code blocks. */
export function relativeLinks(md: string): string[] {
  const prose = md.replace(/```[\s\S]*?```/g, "");
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
}

/** Anchors of every heading of a markdown file. */
export function anchorsOf(md: string): Set<string> {
  const prose = md.replace(/```[\s\S]*?```/g, "");
  return new Set([...prose.matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => slug(m[1]!)));
}
