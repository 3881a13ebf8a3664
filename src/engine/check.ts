// Checks of what an engine is given, shared by the engines that read token batches without labels (the
// language model and skip-gram): a wrong shape is the caller's mistake (UsageError), a token outside the
// vocabulary is bad data (InputError, naming where it is).
import { InputError, UsageError } from "../errors.js";
import type { EngineBatch } from "./types.js";

/** Throws unless `params` has `size` values and `batch` is a well-formed token batch over a vocabulary of `V`,
 *  without dropout (`engine` names the engine in the message). */
export function checkTokenBatch(engine: string, size: number, V: number, params: Float32Array, batch: EngineBatch): void {
  const { size: B, maxLen: T, lengths, tokens } = batch;
  if (params.length !== size) throw new UsageError(`expected ${size} parameters, got ${params.length}`);
  if (!(B >= 1 && T >= 1)) throw new UsageError(`batch must have size >= 1 and maxLen >= 1 (got ${B}, ${T})`);
  if (lengths.length !== B) throw new UsageError(`batch lengths must have ${B} entries`);
  if (tokens?.length !== B * T) throw new UsageError(`batch.tokens must have B*T = ${B * T} entries`);
  if (batch.dropout && batch.dropout.rate > 0) throw new UsageError(`the ${engine} engine has no dropout`);
  if (batch.ids && batch.ids.length !== B) throw new UsageError(`batch ids must have ${B} entries`);
  for (let b = 0; b < B; b++) {
    if (!(lengths[b] >= 1 && lengths[b] <= T)) throw new UsageError(`length ${lengths[b]} of row ${b} is outside 1..${T}`);
    for (let t = 0; t < lengths[b]; t++) {
      const id = tokens[b * T + t];
      if (!(id >= 0 && id < V)) throw new InputError(`token id ${id} at batch row ${b}, position ${t} is outside the vocabulary (V=${V})`);
    }
  }
}
