// Writing the experiments' outputs: never half-written (temp name in the same folder, then rename).
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { InputError } from "../errors.js";

/** Writes `text` to `path` atomically, creating the folder when needed. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new InputError("cannot create the output folder", { path: dir, cause: err });
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new InputError("cannot write the output file", { path, cause: err });
  }
}
