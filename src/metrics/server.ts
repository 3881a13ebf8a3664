// A small node:http server that answers GET /metrics with a registry's exposition text.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ConnectionError } from "../errors.js";

export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface HttpEndpoint {
  port: number;
  host: string;
  close(): Promise<void>;
}

/** Listen on host:port (0 = a free port) and serve `/metrics` (and `/` with a pointer to it). */
export async function serveMetrics(source: MetricsSource, port: number, host: string): Promise<HttpEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      source.text().then(
        (body) => { res.writeHead(200, { "content-type": source.contentType }).end(req.method === "HEAD" ? undefined : body); },
        (err: unknown) => { res.writeHead(500, { "content-type": "text/plain" }).end(`metrics collection failed: ${String(err)}\n`); },
      );
      return;
    }
    if (path === "/" || path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("imdb-train: metrics at /metrics\n");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found; metrics are at /metrics\n");
  });
  // Scrapes are short: don't let keep-alive sockets hold the process open on shutdown.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new ConnectionError(`cannot serve metrics on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(port, host, () => { server.off("error", onError); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    port: addr.port,
    host,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
