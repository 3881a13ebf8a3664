// Hosts on one machine for `bench cluster --link-gbps G`: each host a network namespace with one veth link to a
// bridge, both directions of every link shaped to G Gb/s (tc tbf), so that the coordinator's one link carries
// what it would on a cluster. Needs root and iproute2; everything made here is removed by `close`.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { UnavailableError } from "../errors.js";

export interface ShapedNetwork {
  /** Address of host i (0 = the coordinator). */
  address(i: number): string;
  /** The argv prefix that runs a command on host i. */
  exec(i: number): string[];
  close(): void;
}

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
const tc = (...args: string[]) => execFileSync("tc", args, { stdio: ["ignore", "ignore", "pipe"] });

/** `hosts` namespaces on a bridge, every link limited to `gbps` in each direction. */
export function shapedNetwork(hosts: number, gbps: number): ShapedNetwork {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new UnavailableError("--link-gbps needs root (network namespaces and tc); run without it to measure on loopback");
  const tag = `ic${randomBytes(2).toString("hex")}`;
  const bridge = `${tag}br`;
  const made: string[] = [];
  const close = () => {
    for (const ns of made) { try { ip("netns", "del", ns); } catch { /* gone */ } }
    try { ip("link", "del", bridge); } catch { /* gone */ }
  };
  try {
    ip("link", "add", bridge, "type", "bridge");
    ip("link", "set", bridge, "up");
    // a token bucket deep enough for the rate (≥ rate × 4 ms) and a queue that holds ~50 ms of traffic
    const shape = (dev: string, ns?: string) => (ns ? execFileSync("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", `${gbps}gbit`, "burst", `${Math.max(64, Math.round(gbps * 500))}kb`, "latency", "50ms"], { stdio: ["ignore", "ignore", "pipe"] })
      : tc("qdisc", "add", "dev", dev, "root", "tbf", "rate", `${gbps}gbit`, "burst", `${Math.max(64, Math.round(gbps * 500))}kb`, "latency", "50ms"));
    for (let i = 0; i < hosts; i++) {
      const ns = `${tag}-${i}`, outside = `${tag}a${i}`, inside = `${tag}b${i}`;
      ip("netns", "add", ns);
      made.push(ns);
      ip("link", "add", outside, "type", "veth", "peer", "name", inside);
      ip("link", "set", inside, "netns", ns);
      ip("link", "set", outside, "master", bridge);
      ip("link", "set", outside, "up");
      ip("netns", "exec", ns, "ip", "addr", "add", `10.77.${i >> 8}.${(i & 255) + 1}/16`, "dev", inside);
      ip("netns", "exec", ns, "ip", "link", "set", inside, "up");
      ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
      shape(outside); //  into the host
      shape(inside, ns); // out of the host
    }
  } catch (err) {
    close();
    throw new UnavailableError(`cannot build the shaped network (${(err as Error).message.split("\n")[0]}); --link-gbps needs root, iproute2 and tc`, { cause: err });
  }
  return {
    address: (i) => `10.77.${i >> 8}.${(i & 255) + 1}`,
    exec: (i) => ["ip", "netns", "exec", `${tag}-${i}`],
    close,
  };
}
