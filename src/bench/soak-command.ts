// `bench soak`: memory and clean-exit check of a long multi-worker run (implementation in soak.ts).
import { JSON_OPTION, defineCommand, type OptionSpec, type OptionsOf } from "../command.js";
import { BACKEND_CHOICES } from "../backend-choice.js";

export const SOAK_OPTIONS = [
  { name: "steps", value: "<n>", type: "int", default: 1000, min: 1, description: "training steps in the run" },
  { name: "workers", value: "<n>", type: "int", default: 4, min: 1, description: "worker processes" },
  { name: "hidden", value: "<n>", type: "int", default: 8, min: 1, description: "hidden size H" },
  { name: "embed-dim", value: "<n>", type: "int", default: 8, min: 1, description: "embedding width E" },
  { name: "dataset", value: "<dir>", type: "string", description: "ingested dataset (default: a tiny invented one)" },
  { name: "backend", value: "<name>", type: "string", choices: BACKEND_CHOICES, default: "wasm", description: "workers' tfjs backend" },
  { name: "warmup", value: "<fraction>", type: "float", default: 0.4, min: 0, below: 1, description: "share of the steps treated as warm-up (the coordinator's V8 heap grows into its steady size over the first ~1,000 steps of the default run)" },
  { name: "sample-ms", value: "<ms>", type: "int", default: 50, min: 1, description: "/proc sampling period" },
  { name: "max-growth", value: "<fraction>", type: "float", default: 0.05, min: 0, description: "largest accepted RSS growth after warm-up" },
  { name: "timeout", value: "<s>", type: "int", default: 1800, min: 1, description: "stop the run after this long (and fail)" },
  { name: "trace", value: "<file.csv>", type: "string", description: "write every sample (process, pid, seconds, step, RSS, fds) to a CSV file" },
  JSON_OPTION,
] as const satisfies readonly OptionSpec[];
export type SoakCliOptions = OptionsOf<typeof SOAK_OPTIONS>;

export const commands = [
  defineCommand({
    path: ["bench", "soak"],
    summary: "a long 1 coordinator + N worker run on loopback: RSS stays flat after warm-up, every process and socket closes",
    help:
      "Runs the real `train` launcher (a small model, a tiny invented dataset made in a temporary directory unless\n" +
      "--dataset is given, as many epochs as --steps needs) and samples every process's VmRSS and open file\n" +
      "descriptors from /proc. Baseline: each process's median RSS over the 20% of steps right after warm-up;\n" +
      "figure: its median RSS over the last 20% of steps; the ratio end / baseline − 1 must stay under\n" +
      "--max-growth for every process, descriptors must not grow, and after the exit no process may be left and\n" +
      "no socket open on the coordinator's port. Exit status 6 when any check fails. Linux only (/proc).",
    options: SOAK_OPTIONS,
    examples: ["imdb-train bench soak --json", "imdb-train bench soak --steps 200 --workers 4 --json   # the CI version"],
    async run(o) {
      const { benchSoak } = await import("./soak.js");
      return await benchSoak(o);
    },
  }),
];
