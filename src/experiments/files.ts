// Writing the experiments' outputs: never half-written (an exclusive temporary name in the same folder, then rename).
import { writeAtomic } from "../atomic.js";
import { InputError } from "../errors.js";

/** Writes `text` to `path` atomically, creating the folder when needed. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  try {
    writeAtomic(path, [Buffer.from(text)]);
  } catch (err) {
    throw new InputError("cannot write the output file", { path, cause: err });
  }
}
