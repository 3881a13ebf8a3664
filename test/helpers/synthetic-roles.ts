// DEVELOPMENT AID, not evidence: a process that serves one role's /metrics through startMetrics and
// reports made-up telemetry every 200 ms, so the dashboard can be checked before real roles exist.
//   node dist/test/helpers/synthetic-roles.js <ingest|coordinator|worker> <port> [worker-name]
// It prints "listening <port>" once serving and stops on SIGTERM.
import { startMetrics, type Role } from "../../src/metrics/index.js";

const [role, portArg, worker] = process.argv.slice(2) as [Role, string, string | undefined];
const m = await startMetrics({ role, port: Number(portArg), host: "127.0.0.1", ...(worker ? { worker } : {}) });
const t = m.telemetry;
let step = 0;
const workers = ["w0", "w1"];
if (role === "coordinator") for (const w of workers) t.membership("join", w);
const timer = setInterval(() => {
  step++;
  if (role === "coordinator") {
    t.step({ step, epoch: Math.floor(step / 50), loss: 0.7 / (1 + step / 100), accuracy: 0.5 + step / 1000, samples: 64, tokens: 15_000, seconds: 0.2 });
    for (const phase of ["compute", "wait", "reduce", "optimizer", "broadcast"] as const) t.phase(phase, 0.01 + Math.random() * 0.05);
    t.gradNorm(1 + Math.random() * 6, Math.random() < 0.3);
    t.paramVersion(step);
    t.liveWorkers(2);
    t.straggler("w1", 0.05);
    t.bytes("sent", 4_000_000); t.bytes("received", 4_000_000);
    if (step % 10 === 0) t.validation({ epoch: 0, loss: 0.6, accuracy: 0.7 });
    if (step % 5 === 0) t.checkpoint(0.05, 12_000_000);
  } else if (role === "worker" && worker) {
    t.workerStep(worker, { samples: 32, tokens: 7_500, seconds: worker === "w1" ? 0.3 : 0.15, loss: 0.69, accuracy: 0.5 });
    t.engineMemory(worker, 50_000_000);
    t.bytes("sent", 2_000_000, worker);
  } else if (role === "ingest") {
    t.ingest({ reviews: 512, seconds: 0.02, padding: 0.12, skipped: 0 });
    t.jetstreamLag(3);
  }
}, 200);
process.stdout.write(`listening ${m.port}\n`);
process.once("SIGTERM", () => { clearInterval(timer); void m.close().then(() => process.exit(0)); });
