// The environment of the processes this program starts (coordinator, workers, shards, benchmarks' peers).
//
// Every step moves messages of megabytes (parameters out, gradients in). glibc serves allocations that large
// with fresh mmap()ed pages and gives them back on free(), so every message pays a page fault per 4 KiB —
// on some virtual machines ~12 µs each, more than the copy itself (a 2.7 MB message: ~8 ms). Fixed thresholds
// keep such buffers in the heap and the heap's memory in the process, so the next message reuses warm pages.
// Variables the user set are left alone. (The Docker images set the same.)
const MALLOC_DEFAULTS: Record<string, string> = {
  MALLOC_MMAP_THRESHOLD_: String(64 << 20), //  allocations below 64 MiB come from the heap
  MALLOC_TRIM_THRESHOLD_: String(1 << 30), //   and the heap keeps up to 1 GiB of freed memory
};

// V8's young generation at most 16 MB a semi-space (32 MB in all), what Node.js 20 has by default. Node.js 24's V8
// doubles it up to 64 MB a semi-space over a long run (16 → 128 MB of new space in a 12,000-step `bench soak`,
// its use staying under 25 MB), so every process's RSS grows by ~100 MB though nothing leaks. It can only be set
// when the process starts, so it goes in NODE_OPTIONS; a size the user set there is left alone.
const YOUNG_GENERATION = "--max-semi-space-size=16";

/** process.env with the allocator and young-generation settings above (unless already set) and `extra`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(MALLOC_DEFAULTS)) if (env[k] === undefined) env[k] = v;
  if (!/--max-semi-space-size\b/.test(env.NODE_OPTIONS ?? "")) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} ${YOUNG_GENERATION}`.trim();
  return { ...env, ...extra };
}

/** Sends a process's last message to the parent that started it (its IPC channel) and resolves once the message
 *  is written out. A message sent with process.send is dropped if the channel closes or the process exits while
 *  it is still being written — anything larger than the pipe holds (a long run's report) — so the last one is
 *  awaited before either. Resolves at once without a channel. */
export function sendFinal(msg: unknown): Promise<void> {
  return new Promise<void>((done) => {
    if (typeof process.send !== "function" || !process.connected) return done();
    process.send(msg, undefined, {}, () => done());
  });
}
