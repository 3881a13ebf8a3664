// The ZAP handler (ZeroMQ RFC 27): one per process, at the inproc endpoint libzmq asks of a CURVE server
// socket "may this client key connect?". Each CURVE server registers its admitted keys as a ZAP domain.
import * as zmq from "zeromq";
import { ConnectionError } from "../../errors.js";
import { z85Encode } from "./keys.js";
import type { AuthFailure } from "./types.js";

const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

interface ZapDomain { clients: Map<string, string>; onDenied?: (f: AuthFailure) => void }

export class ZapHandler {
  private static current: Promise<ZapHandler> | null = null;
  private static nextDomain = 1;
  private readonly domains = new Map<string, ZapDomain>();
  private closed = false;
  private constructor(private readonly sock: zmq.Router) {}

  /** Registers the admitted keys of a new CURVE server socket; returns its ZAP domain. */
  static async register(d: ZapDomain): Promise<{ domain: string; release(): void }> {
    ZapHandler.current ??= ZapHandler.start();
    let h: ZapHandler;
    try {
      h = await ZapHandler.current;
    } catch (err) {
      ZapHandler.current = null;
      throw err;
    }
    const domain = `imdb-train-${process.pid}-${ZapHandler.nextDomain++}`;
    h.domains.set(domain, d);
    return {
      domain,
      release: () => {
        h.domains.delete(domain);
        if (h.domains.size === 0 && !h.closed) {
          // an idle ZAP socket would keep the process alive
          h.closed = true;
          ZapHandler.current = null;
          h.sock.close();
        }
      },
    };
  }

  private static async start(): Promise<ZapHandler> {
    for (let attempt = 1; ; attempt++) {
      const sock = new zmq.Router({ linger: 0 });
      try {
        await sock.bind(ZAP_ENDPOINT);
      } catch (err) {
        sock.close();
        // a handler closed a moment ago may still hold the endpoint
        if (attempt < 20 && (err as { code?: string }).code === "EADDRINUSE") { await new Promise((r) => setTimeout(r, 25)); continue; }
        throw new ConnectionError(`cannot start the ZeroMQ authentication handler: ${(err as Error).message}`, { cause: err });
      }
      const h = new ZapHandler(sock);
      void h.serve();
      return h;
    }
  }

  private async serve(): Promise<void> {
    try {
      for await (const f of this.sock) {
        // [routing id, "", version, request id, domain, address, identity, mechanism, credentials...]
        const [id, empty, version, requestId, domainF, addressF, , mechanismF, keyF] = f;
        if (!id || !version || !requestId) continue;
        const domain = domainF?.toString("latin1") ?? "";
        const address = addressF?.toString("latin1") ?? "?";
        const mechanism = mechanismF?.toString("latin1") ?? "";
        const d = this.domains.get(domain);
        let status = "400", text = "unknown ZAP domain", user = "";
        if (d && mechanism === "CURVE" && keyF && keyF.length === 32) {
          const key = z85Encode(keyF);
          const name = d.clients.get(key);
          if (name !== undefined) { status = "200"; text = "OK"; user = name; }
          else {
            text = "client key not admitted";
            d.onDenied?.({ reason: "client-key", address, clientKey: key, detail: `CURVE client key ${key} is not among the admitted keys` });
          }
        } else if (d) {
          text = `mechanism ${mechanism || "?"} refused`;
          d.onDenied?.({ reason: "mechanism", address, detail: `a ${mechanism || "?"} handshake where CURVE is required` });
        }
        await this.sock.send([id, empty ?? Buffer.alloc(0), version, requestId, status, text, user, Buffer.alloc(0)]).catch(() => {});
      }
    } catch {
      /* closed */
    }
  }
}

