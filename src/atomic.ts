// Files and directories written atomically, through temporary names nobody can plant. A temporary file is
// created with O_CREAT|O_EXCL|O_NOFOLLOW under a random name: a file or symbolic link already at that name
// makes the open fail (another random name is tried) instead of being opened, truncated or followed. The
// bytes are fsynced, the file renamed over the target, and the directory fsynced. Temporary directories come
// from mkdtemp (random name, created exclusively, mode 0700).
//
// Names carry the writer's pid (`<name>.tmp-<pid>-<random>`), so that a later writer can remove what a process
// that died mid-write left behind without touching the files of one still running.
import { randomBytes } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Create, write only, fail if anything (a symbolic link included) is already at the name. */
const EXCLUSIVE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Random names tried before giving up (each collision means a file planted at a 48-bit random name). */
const ATTEMPTS = 8;

/** Opens a file that must not exist yet (EEXIST when anything, even a dangling symbolic link, is there). */
export function openExclusive(path: string, mode = 0o666): number {
  return openSync(path, EXCLUSIVE, mode);
}

/** The prefix of every temporary name this process uses for `path` (`<name>.tmp-<pid>-`). */
function tempPrefix(path: string): string {
  return `${basename(path)}.tmp-${process.pid}-`;
}

/** Writes all of `buf` (writeSync may write less than asked). */
function writeAll(fd: number, buf: Buffer): void {
  for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at, buf.length - at);
}

/**
 * Opens a new temporary file beside `path` for writing (random name, created exclusively with `mode` less the
 * umask; the directory must exist). The caller writes it, then `renameSync(tmp, path)`, or removes it on failure.
 */
export function openTemp(path: string, mode = 0o666): { tmp: string; fd: number } {
  const dir = dirname(path);
  for (let attempt = 1; ; attempt++) {
    const tmp = join(dir, tempPrefix(path) + randomBytes(6).toString("hex"));
    try {
      return { tmp, fd: openExclusive(tmp, mode) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST" && attempt < ATTEMPTS) continue;
      throw err;
    }
  }
}

/**
 * Writes `parts` to a new temporary file beside `path` (created exclusively with `mode`, less the umask; fsynced).
 * Returns its name and the bytes written; on failure (a full disk) nothing is left behind and the error is thrown.
 */
export function writeTemp(path: string, parts: readonly Buffer[], mode = 0o666): { tmp: string; bytes: number } {
  mkdirSync(dirname(path), { recursive: true });
  const { tmp, fd } = openTemp(path, mode);
  let bytes = 0;
  try {
    for (const p of parts) { writeAll(fd, p); bytes += p.length; }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return { tmp, bytes };
}

/** fsync a directory (the renames in it are durable); some file systems refuse, which is not an error. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* not every file system lets a directory be fsynced */ }
}

/**
 * Writes a file atomically: exclusive temporary name in the same directory, fsync, rename. Returns the bytes.
 * `mode` (less the umask) applies from the file's creation: 0o600 for a secret is never readable by others.
 */
export function writeAtomic(path: string, parts: readonly Buffer[], mode = 0o666): number {
  const { tmp, bytes } = writeTemp(path, parts, mode);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
  return bytes;
}

/** A new private directory beside `path` (`.<name>.tmp-<pid>-XXXXXX`, mode 0700) to build its contents in. */
export function tempDirBeside(path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  return mkdtempSync(join(dirname(path), `.${tempPrefix(path)}`));
}

/**
 * Puts the finished directory `tmp` at `dir`. What was at `dir` is first moved to a new empty private directory
 * (rename may replace an empty directory; nothing planted is used), put back if the second rename fails, and
 * removed once the new one is in place.
 */
export function replaceDir(tmp: string, dir: string): void {
  let old: string | null = null;
  if (existsSync(dir)) {
    old = tempDirBeside(dir);
    renameSync(dir, old);
  }
  try {
    renameSync(tmp, dir);
  } catch (err) {
    if (old) renameSync(old, dir);
    throw err;
  }
  fsyncDir(dirname(dir));
  if (old) rmSync(old, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

/**
 * Removes the temporary files and directories that writers of `path` left in its directory when they died
 * (`<name>.tmp-<pid>-…` or `.<name>.tmp-<pid>-…` of a pid no longer running). Symbolic links are removed, not
 * followed.
 */
export function removeStaleTemps(path: string): void {
  const dir = dirname(path);
  const name = basename(path);
  let entries: string[];
  try { entries = readdirSync(dir); } catch { return; }
  for (const f of entries) {
    const rest = f.startsWith(`${name}.tmp-`) ? f.slice(name.length + 5) : f.startsWith(`.${name}.tmp-`) ? f.slice(name.length + 6) : null;
    if (rest === null) continue;
    const pid = Number.parseInt(rest, 10);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) continue;
    rmSync(join(dir, f), { recursive: true, force: true });
  }
}
