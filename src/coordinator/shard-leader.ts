// The leader's side of a sharded coordinator (--coordinator-shards K > 1, ./shards.ts): it keeps slice 0 of the
// parameters and Adam's moments in its own arithmetic, the shard processes keep the others. Before the run
// the whole vector lives here (GloVe and resume fill it); `start` hands out the slices; `gathered` puts the
// whole state back together for a checkpoint or the final model.
import { Adam, type AdamState } from "../optim/adam.js";
import { PARAM_CHUNK, type StepArithmetic } from "../optim/step.js";
import { Kind } from "../protocol/wire.js";
import { ShardLinks, type RemoteShard } from "./shards.js";
import type { Peers } from "./peers.js";
import type { CurveServerKeys } from "../transport/zmq/index.js";
import type { SliceBound, SliceView } from "../protocol/slices.js";

export class ShardLeader {
  private ready = false;

  /** `full`: the whole vector (before the run: what GloVe and resume filled; after: gathered from the shards). */
  private constructor(readonly links: ShardLinks, readonly views: SliceView[], readonly rowPull: boolean, readonly full: Float32Array) {}

  /** Start K − 1 shard processes on the leader's host. `views`: the slices and their embedding rows (shards sum
   *  row-sparse gradients where the run sends them); `rowPull`: tasks carry their rows, nothing is broadcast. */
  static async start(views: SliceView[], rowPull: boolean, endpoint: string, full: Float32Array, curve?: CurveServerKeys): Promise<ShardLeader> {
    const host = /^tcp:\/\/(.*):\d+$/.exec(endpoint)?.[1] ?? "127.0.0.1";
    return new ShardLeader(await ShardLinks.start(views, host, full.length, curve), views, rowPull, full);
  }

  /** Shards on other hosts (`coordinator-shard --nats`), slice i + 1 to `shards[i]`. */
  static connect(views: SliceView[], rowPull: boolean, shards: RemoteShard[], full: Float32Array, curve?: CurveServerKeys): ShardLeader {
    return new ShardLeader(ShardLinks.connect(views, shards, full.length, curve), views, rowPull, full);
  }

  get bounds(): SliceBound[] { return this.views; }

  /** Hand each shard its slice of the parameters (and of a resumed Adam state); keep slice 0 in `arith`. */
  async handOut(head: { runId: number; layoutHash: string; version: number }, arith: StepArithmetic, peers: Peers, restored: AdamState | null, paramChunk?: number): Promise<void> {
    if (this.ready) return;
    const n = this.full.length, own = this.bounds[0]!.length;
    const st = restored ?? { m: new Float32Array(n), v: new Float32Array(n), t: 0 };
    arith.params.set(this.full.subarray(0, own));
    arith.adam.load({ m: st.m.subarray(0, own), v: st.v.subarray(0, own), t: st.t });
    await this.links.init(head, arith.adam.o, { params: this.full, m: st.m, v: st.v, t: st.t }, { blocks: this.views.map((v) => v.block), pull: this.rowPull }, paramChunk);
    this.ready = true;
    for (const m of peers.members.live()) this.syncParams(peers, m.id, arith, head.version, paramChunk);
  }

  /** The whole parameter vector and Adam state (slice 0 from `arith`, the rest fetched from the shards). */
  async gathered(head: { runId: number; layoutHash: string; version: number }, arith: StepArithmetic, restored: AdamState | null): Promise<{ params: Float32Array; adam: Adam }> {
    const n = this.full.length;
    if (!this.ready) { // stopped before the shards had their slices: the whole state is still here
      const adam = new Adam(n, { ...arith.adam.o });
      if (restored) adam.load(restored);
      return { params: this.full, adam };
    }
    const s = arith.adam.state();
    const m = new Float32Array(n), v = new Float32Array(n);
    this.full.set(arith.params, 0); m.set(s.m, 0); v.set(s.v, 0);
    await this.links.fetch(head, { params: this.full, m, v });
    const adam = new Adam(n, { ...arith.adam.o });
    adam.load({ m, v, t: s.t });
    return { params: this.full, adam };
  }

  /** The leader's slice of the current parameters to one worker (it just became ready; the shards send theirs
   *  when the worker connects to them). */
  syncParams(peers: Peers, peer: string, arith: StepArithmetic, version: number, paramChunk = PARAM_CHUNK): void {
    if (!this.ready || this.rowPull) return; // row pull: every task carries what it reads
    const p = arith.params, chunk = Math.max(4, paramChunk);
    for (let s = 0; s < p.length; s += chunk) void peers.send(peer, Kind.Params, { offset: s }, p.subarray(s, Math.min(p.length, s + chunk)), { step: 0, version });
  }
}
