// `imdb-train keys`: CURVE key pairs for the training transport (and an nkey user for NATS).
import { JSON_OPTION, defineCommand } from "../command.js";

export const commands = [
  defineCommand({
    path: ["keys"],
    summary: "make ZeroMQ CURVE key pairs (coordinator and workers) for --curve-keys / train --secure",
    help:
      "Writes into --out (mode 0700; every file one line of Z85 text, mode 0600):\n" +
      "  server.pub server.key   the coordinator's pair      client.pub client.key   the workers' pair\n" +
      "The coordinator needs server.key and client.pub (it admits client.pub and clients/*.pub); a worker needs\n" +
      "server.pub, client.pub and client.key. A peer without an admitted key cannot join: the coordinator logs the\n" +
      "attempt and counts it (imdb_train_rejected_gradients_total{reason=\"auth\"}). With --nats-nkey it also writes\n" +
      "nats-user.seed and nats-user.pub, an nkey user for a NATS server with authorization (--nats-nkey-seed).\n" +
      "Never overwrites existing keys without --force.",
    options: [
      { name: "out", value: "<dir>", type: "string", required: true, description: "directory for the key files" },
      { name: "force", type: "bool", description: "replace keys that already exist" },
      { name: "if-missing", type: "bool", description: "keep a complete existing set and exit 0 (for a one-shot container at every start)" },
      { name: "nats-nkey", type: "bool", description: "also make an nkey user for NATS (nats-user.seed, nats-user.pub)" },
      JSON_OPTION,
    ],
    examples: [
      "imdb-train keys --out /etc/imdb-train/keys",
      "imdb-train coordinator --dataset ds --curve-keys /etc/imdb-train/keys --workers 2",
      "imdb-train worker --coordinator tcp://10.0.0.5:5555 --curve-keys /etc/imdb-train/keys",
    ],
    async run(o) {
      const { writeKeyDir } = await import("./keys.js");
      const { emitJson, logger } = await import("../output.js");
      const r = writeKeyDir(o.out, { force: o.force, natsNkey: o.natsNkey, ifMissing: o.ifMissing });
      logger("keys").info(r.kept ? `kept the keys in ${r.dir} (server public key ${r.server_public})` : `wrote ${r.files.length} key files to ${r.dir} (server public key ${r.server_public})`);
      if (o.json) emitJson(r);
      return 0;
    },
  }),
];
