// The ZeroMQ transport's types: keys, refused handshakes, channel options, incoming messages.

/** A CURVE key pair as Z85 text (40 characters each). */
export interface CurveKeyPair { publicKey: string; secretKey: string }

/** The coordinator's side: its secret key and the public keys of the clients it admits. */
export interface CurveServerKeys {
  secretKey: string;
  /** Z85 public keys of admitted clients, each with a name for the logs (e.g. the key file). */
  clients: { name: string; publicKey: string }[];
  /** The server's own public key, where known (a coordinator whose shards run on other hosts needs it). */
  publicKey?: string;
}

/** A worker's side: the server's public key and the worker's own key pair. */
export interface CurveClientKeys { serverKey: string; publicKey: string; secretKey: string }

/** A refused connection attempt, as seen by the binding side. */
export interface AuthFailure {
  /** "client-key": CURVE client key not admitted; "crypto": wrong server key (the HELLO cannot be opened);
   *  "mechanism": the peer uses another security mechanism (e.g. no CURVE); "handshake": another ZMTP protocol
   *  error (e.g. a peer that does not speak ZMTP); "closed": the peer closed the connection mid-handshake — the
   *  other half of "mechanism": when both sides see the mismatch at once, the one that closes first leaves the
   *  other a broken pipe, so a peer without CURVE shows up as either (or it was a peer that stopped). */
  reason: "client-key" | "crypto" | "mechanism" | "handshake" | "closed";
  /** Peer IP address where known (client-key), else the bound endpoint. */
  address: string;
  /** Z85 public key the peer presented (client-key only). */
  clientKey?: string;
  detail: string;
}

export interface ChannelOptions {
  /** Largest message this side sends or accepts, in bytes. */
  maxBytes: number;
  /** How long a send may wait at the high-water mark before failing, ms (default 10 s). */
  sendTimeoutMs?: number;
}

export interface RouterOptions extends ChannelOptions {
  /** Be a CURVE server admitting only these client keys. */
  curve?: CurveServerKeys;
  /** Called for every refused connection attempt (also without CURVE: a CURVE client at a plain socket). */
  onAuthFailure?: (f: AuthFailure) => void;
}

export interface DealerOptions extends ChannelOptions {
  /** Connect as a CURVE client. */
  curve?: CurveClientKeys;
}

/** Handshake failures a connecting socket has seen since its last successful handshake. */
export interface HandshakeTrouble {
  /** "auth": the server refused our key (ZAP 400 / 300 / 500); "protocol"/"other": the handshake broke
   *  (wrong server key, or the two sides disagree on CURVE). */
  kind: "auth" | "protocol" | "other";
  /** Consecutive failed handshakes. */
  count: number;
  detail: string;
}

export interface Incoming {
  /** Routing id of the sender (ROUTER side) or "coordinator" (DEALER side). */
  peer: string;
  frames: Buffer[];
}

