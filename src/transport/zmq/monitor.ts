// A bound socket's failed handshakes, from its monitor events (key refusals come from the ZAP handler).
import type * as zmq from "zeromq";
import type { AuthFailure } from "./types.js";

/** Reports a bound socket's failed handshakes (monitor events). Key refusals come from the ZAP handler. */
export async function watchHandshakes(sock: zmq.Socket, onAuthFailure: (f: AuthFailure) => void): Promise<void> {
  try {
    for await (const e of sock.events) {
      if (e.type === "handshake:error:protocol") {
        const code = e.error.code;
        const reason = code === "ERR_ZMTP_CRYPTOGRAPHIC" ? "crypto" : code === "ERR_ZMTP_MECHANISM_MISMATCH" ? "mechanism" : "handshake";
        const detail = reason === "crypto" ? "a CURVE handshake that could not be decrypted (the peer holds a different server key)"
          : reason === "mechanism" ? "a peer with another security mechanism (CURVE on one side only)"
          : `handshake protocol error ${code}`;
        onAuthFailure({ reason, address: e.address, detail });
      } else if (e.type === "handshake:error:other" && (e.error.code === "EPIPE" || e.error.code === "ECONNRESET")) {
        // the peer hung up mid-handshake: most often it saw the mechanism mismatch first (CURVE on one side
        // only), or it stopped; no verdict on its credentials, but worth telling whoever watches the log
        onAuthFailure({ reason: "closed", address: e.address, detail: "a peer that closed the connection during its handshake (CURVE on one side only, or a peer that stopped)" });
      }
      // handshake:error:auth is the ZAP handler's refusal, already reported with the key
    }
  } catch {
    /* socket closed */
  }
}

