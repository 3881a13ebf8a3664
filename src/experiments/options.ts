// Option checks shared by the experiments' commands.
import { UsageError } from "../errors.js";

/** Folder the experiments write their plots to unless --out says otherwise. */
export const DEFAULT_OUT = "runs/experiments";

export function positive(name: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) throw new UsageError(`--${name} must be a positive number, got ${String(v)}`);
  return x;
}

export function positiveInt(name: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${name} must be a positive integer, got ${String(v)}`);
  return x;
}
