// What an ingest says about bad input: the reviews it skipped or repaired (counted in the manifest) and a
// warning naming each file (the first WARN_LIMIT of a kind printed, then only counted; the first 100
// listed in the manifest).
import type { Manifest } from "../dataset/manifest.js";
import { logger } from "../output.js";

/** Warnings printed per kind before they are only counted. */
const WARN_LIMIT = 10;
/** Warnings listed in manifest.json. */
const LISTED = 100;

const log = logger("ingest");

export class IngestReport {
  readonly warnings: Manifest["warnings"] = [];
  readonly skipped: Manifest["skipped"] = { empty: 0, tooLarge: 0, badName: 0 };
  readonly repaired: Manifest["repaired"] = { invalidUtf8: 0, truncated: 0 };
  private perKind = new Map<string, number>();

  /** A file in a review folder whose name is not <id>_<rating>.txt: skipped. */
  badName(file: string, reason: string): void {
    this.skipped.badName++;
    this.warn("file name", file, reason);
  }

  /** A review over the size limit: skipped (its bytes were never read into memory). */
  tooLarge(file: string, bytes: number, limit: number): void {
    this.skipped.tooLarge++;
    this.warn("size", file, `review of ${bytes} bytes is over the ${limit}-byte limit: skipped`);
  }

  /** A review with no tokens: skipped. */
  empty(file: string): void {
    this.skipped.empty++;
    this.warn("empty", file, "empty review (no tokens): skipped");
  }

  /** A review with invalid UTF-8: kept, the bad bytes replaced. */
  invalidUtf8(file: string): void {
    this.repaired.invalidUtf8++;
    this.warn("utf-8", file, "invalid UTF-8: bad bytes replaced by U+FFFD");
  }

  /** Skipped reviews of every kind. */
  get skippedTotal(): number {
    return this.skipped.empty + this.skipped.tooLarge + this.skipped.badName;
  }

  private warn(kind: string, file: string, reason: string): void {
    const n = (this.perKind.get(kind) ?? 0) + 1;
    this.perKind.set(kind, n);
    if (n <= WARN_LIMIT) log.warn(`${file}: ${reason}`);
    else if (n === WARN_LIMIT + 1) log.warn(`more ${kind} warnings: counted in manifest.json`);
    if (this.warnings.length < LISTED) this.warnings.push({ file, reason });
  }
}
