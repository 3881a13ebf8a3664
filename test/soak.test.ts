// A shorter `bench soak` (the real launcher, 1 coordinator + 4 workers on loopback, a small model, many epochs of
// a tiny invented dataset): every process's RSS stays within 5% of its post-warm-up level, descriptors do not
// grow, and after the exit no process is left (checked here again by pid) and no socket is open on the
// coordinator's port.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runCli } from "./helpers/cli.js";
import { socketsOnPort } from "../src/bench/soak.js";

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try { return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8")); } catch { return true; }
}

// 1,000 steps: on a fast machine 400 steps take under 3 s, and a coordinator's RSS is then still ramping up to
// its steady level in the judged windows (up to 12% above its post-warm-up level on Node 24); 1,000 steps put
// both windows past that ramp (0.3–2.1% in six runs on Node 20 and 24).
test("bench soak: 1,000 steps × 4 workers keep RSS flat and leave no process or socket behind", async () => {
  const r = await runCli(["bench", "soak", "--steps", "1000", "--workers", "4", "--json"], { timeoutMs: 150_000 });
  assert.equal(r.code, 0, r.stderr);
  const j = r.json;
  assert.equal(j.ok, true, j.problems?.join("\n"));
  assert.equal(j.exit_code, 0);
  assert.ok(j.steps >= 1000);
  assert.equal(j.processes.length, 5, "coordinator + 4 workers watched");
  for (const p of j.processes) {
    assert.ok(p.samples >= 20, `${p.name}: ${p.samples} samples`);
    assert.ok(p.growth < 0.05, `${p.name}: RSS ${p.rss_start_mib.toFixed(1)} → ${p.rss_end_mib.toFixed(1)} MiB`);
    assert.ok(p.fds_end <= p.fds_start, `${p.name}: fds ${p.fds_start} → ${p.fds_end}`);
  }
  assert.deepEqual(j.leftover_pids, []);
  assert.equal(Object.keys(j.pids).length, 6, JSON.stringify(j.pids));
  for (const [name, pid] of Object.entries(j.pids as Record<string, number>)) assert.ok(gone(pid), `${name} (pid ${pid}) still running`);
  assert.ok(j.coordinator_port > 0);
  assert.equal(socketsOnPort(j.coordinator_port), 0, `sockets left on port ${j.coordinator_port}`);
});
