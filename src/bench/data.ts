// The archive a benchmark reads: the one given with --data, else the official archive, downloaded once into
// the cache (as `ingest` does without --data).
import { ensureOfficialArchive } from "../ingest/index.js";

export async function archiveOrDownload(data: string | undefined): Promise<string> {
  return data ?? await ensureOfficialArchive();
}
