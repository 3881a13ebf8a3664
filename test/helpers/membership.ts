// Membership as the coordinator drives it: who is overdue at `now`, each then evicted (src/coordinator/peers.ts).
import type { Membership, Eviction } from "../../src/coordinator/membership.js";

export function expire(m: Membership, now: number): Eviction[] {
  const out = m.overdue(now);
  for (const e of out) m.evict(e.member.id, e.reason);
  return out;
}
