// Command-line options of the security features, declared once for every role that uses them
// (no imports of the transports here: `--help` stays fast).
import type { OptionSpec, OptionsOf } from "../command.js";

export const CURVE_KEYS_OPTION = {
  name: "curve-keys", value: "<dir>", type: "string",
  description: "ZeroMQ CURVE: encrypt and authenticate the training transport with the keys in <dir> (made by `imdb-train keys`; or $IMDB_TRAIN_CURVE_KEYS)",
} as const satisfies OptionSpec;

/** --insecure: run the training transport off this machine without CURVE keys (./policy.ts). */
export const INSECURE_OPTION = {
  name: "insecure", type: "bool",
  description: "allow a non-loopback --bind / coordinator address without CURVE keys (anyone who can reach the port could join and send gradients; or $IMDB_TRAIN_INSECURE=1); off by default",
} as const satisfies OptionSpec;

/** --nats-token / --nats-nkey-seed / --nats-creds (or $IMDB_TRAIN_NATS_TOKEN / _NKEY_SEED / _CREDS). */
export const NATS_AUTH_OPTIONS = [
  { name: "nats-token", value: "<token>", type: "string", description: "NATS authorization token (visible in `ps`: prefer $IMDB_TRAIN_NATS_TOKEN)" },
  { name: "nats-nkey-seed", value: "<file>", type: "string", description: "file holding an nkey user seed (SU...) for NATS (or $IMDB_TRAIN_NATS_NKEY_SEED)" },
  { name: "nats-creds", value: "<file>", type: "string", description: "NATS .creds file (user JWT + seed) (or $IMDB_TRAIN_NATS_CREDS)" },
] as const satisfies readonly OptionSpec[];

/** The NATS credential flags as parsed. */
export type NatsAuthOptions = OptionsOf<typeof NATS_AUTH_OPTIONS>;
