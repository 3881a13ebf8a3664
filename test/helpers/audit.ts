// The coordinator's exactly-once audit (--audit <file>): one JSON line per applied step with the sample ids
// each worker used, read back and grouped by epoch.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { openTrainingData } from "../../src/dataset/training.js";

export interface Applied { step: number; epoch: number; parts: { worker: string; batches: number[]; ids: number[] | null }[] }

export function readAudit(path: string): Applied[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Applied);
}

/** Sample ids used in each epoch, as the workers reported them (sorted). */
export function idsByEpoch(audit: Applied[]): Map<number, number[]> {
  const by = new Map<number, number[]>();
  for (const a of audit) for (const p of a.parts) {
    assert.ok(p.ids, `step ${a.step}: ${p.worker} reported no sample ids`);
    by.set(a.epoch, [...(by.get(a.epoch) ?? []), ...p.ids!]);
  }
  for (const ids of by.values()) ids.sort((x, y) => x - y);
  return by;
}

/** Every training sample id of a dataset, sorted. */
export async function trainIdsOf(dataset: string): Promise<number[]> {
  const d = await openTrainingData(dataset);
  const ids: number[] = [];
  for (let i = 0; i < d.count("train"); i++) ids.push(...d.batch("train", i).ids);
  return ids.sort((a, b) => a - b);
}
