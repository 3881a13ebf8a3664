// The checkpoints of a run as the Coordinator asks for them, and what a failure to write one means.
// A periodic checkpoint (every --checkpoint-every steps, or at the end of an epoch that is not the last) that
// cannot be written — a full disk — is a warning and a metric (imdb_train_checkpoint_failures_total{reason}):
// training goes on, and the checkpoints already written stay as they were (a new one replaces them only once
// it is complete, see ./checkpoint.ts). The checkpoint that ends the run (the last epoch's, or the exit
// checkpoint of a run that is stopped or fails) must be written: otherwise the run fails with an OutputError
// that names the file and the cause.
import { join } from "node:path";
import { OutputError, errorMessage } from "../errors.js";
import { logger } from "../output.js";
import type { CheckpointFailure, Telemetry } from "../telemetry.js";
import { saveRotating, LAST, type NewMeta } from "./checkpoint.js";
import type { CheckpointState } from "./types.js";

const log = logger("coordinator");

/** The file system's answer as the metric's bounded label. */
export function failureReason(err: unknown): CheckpointFailure {
  switch ((err as NodeJS.ErrnoException | null)?.code) {
    case "ENOSPC": case "EDQUOT": return "no_space";
    case "EROFS": return "read_only";
    case "EACCES": case "EPERM": return "permission";
    default: return "other";
  }
}

export interface RunCheckpointOptions {
  /** Epochs of the run: the checkpoint of the last epoch's end is the one that ends the run. */
  epochs: number;
  /** Step of the checkpoint the run resumed from (null: a new run). */
  resumedStep: number | null;
  telemetry?: Telemetry;
  /** Where in the data a checkpoint is, for the log line ("end of epoch 2"). */
  where(c: CheckpointState): string;
}

export class RunCheckpoints {
  /** The newest checkpoint: `<dir>/last.ckpt`. */
  readonly path: string;
  /** Step held by `path` (null: none written yet). */
  private saved: number | null;
  /** Why the checkpoint that ends the run was not written. */
  private endFailure: { problem: string; cause: unknown } | null = null;

  constructor(private readonly dir: string, private readonly o: RunCheckpointOptions) {
    this.path = join(dir, LAST);
    this.saved = o.resumedStep;
  }

  /** Writes checkpoint `c` with `meta`; a periodic one that fails only warns, the one ending the run throws. */
  write(c: CheckpointState, meta: NewMeta): void {
    const t0 = performance.now();
    const st = c.adam.state();
    let bytes: number;
    try {
      bytes = saveRotating(this.dir, meta, { params: c.params, adam_m: st.m, adam_v: st.v }).bytes;
    } catch (err) {
      this.failed(c, err);
      return;
    }
    this.o.telemetry?.checkpoint((performance.now() - t0) / 1000, bytes);
    this.saved = c.step;
    this.endFailure = null;
    log.info(`checkpoint (${c.reason}) at step ${c.step}, ${this.o.where(c)}: ${this.path}`);
  }

  private failed(c: CheckpointState, err: unknown): void {
    this.o.telemetry?.checkpointFailed(failureReason(err));
    const kept = this.saved === null ? "no checkpoint was written before it" : `${LAST} still holds step ${this.saved}`;
    const endsRun = c.reason === "exit" || c.epoch >= this.o.epochs;
    if (!endsRun) {
      log.warn(`${this.path}: checkpoint (${c.reason}) at step ${c.step} not written (${errorMessage(err)}); training goes on and ${kept}`);
      return;
    }
    const which = c.reason === "exit" ? "exit checkpoint" : "checkpoint at the end of the run";
    this.endFailure = { problem: `the ${which} (step ${c.step}) could not be written (${errorMessage(err)}); ${kept}`, cause: err };
    throw new OutputError(this.endFailure.problem, { path: this.path, cause: err });
  }

  /** The error a failed run ends with: when the checkpoint ending it was not written, that (naming the file). */
  outcome(err: unknown): unknown {
    if (!this.endFailure || err instanceof OutputError) return err;
    return new OutputError(`${this.endFailure.problem}; the run stopped: ${errorMessage(err)}`, { path: this.path, cause: this.endFailure.cause });
  }
}
