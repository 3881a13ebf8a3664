// Learning-rate schedule: optional linear warm-up, then constant, linear or cosine decay to `minFactor`×lr.

export interface Schedule {
  warmupSteps: number;
  decay: "none" | "linear" | "cosine";
  /** Final learning rate as a fraction of the base rate (decay only). */
  minFactor: number;
}

export const DEFAULT_SCHEDULE: Schedule = { warmupSteps: 0, decay: "none", minFactor: 0.1 };

/** The rate for 0-based `step` of `total` steps. */
export function learningRate(base: number, step: number, total: number, s: Schedule = DEFAULT_SCHEDULE): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return base * (step + 1) / s.warmupSteps;
  if (s.decay === "none" || total <= s.warmupSteps) return base;
  const p = Math.min(1, (step - s.warmupSteps) / Math.max(1, total - s.warmupSteps));
  const f = s.decay === "linear" ? 1 - p : 0.5 * (1 + Math.cos(Math.PI * p));
  return base * (s.minFactor + (1 - s.minFactor) * f);
}
