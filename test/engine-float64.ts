// A plain TypeScript float64 forward pass of the whole model (loss sum only), written independently of the
// engine, for finite-difference checks of the engine's float32 gradients (llm.c style).
// Legend: B batch, T time, In input width, H hidden, K = dirs·H. Weights from the flat layout (model.ts).
import type { ModelConfig } from "../src/config.js";
import { directionsOf, paramLayout, rnnPrefix } from "../src/model/layout.js";
import type { EngineBatch, LossKind } from "../src/engine/index.js";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** Named views of a float64 copy of the flat parameters. */
export function params64(layout: ReturnType<typeof paramLayout>, params: Float64Array): (name: string) => Float64Array {
  return (name: string) => {
    const e = layout.entries.find((x) => x.name === name)!;
    return params.subarray(e.offset, e.offset + e.size);
  };
}

/**
 * Embedding (or dense input) → the recurrent layers, in float64: seq[b][t] is the top layer's output after
 * step t (frozen past a review's length), feat[b] its final state [K].
 */
export function recurrent64(cfg: ModelConfig, params: Float64Array, batch: EngineBatch, dense?: number): { seq: Float64Array[][]; feat: Float64Array[] } {
  const P = params64(paramLayout(dense ? { ...cfg, inputDim: dense } : cfg), params);
  const { size: B, maxLen: T, lengths } = batch;
  const H = cfg.hidden, nd = directionsOf(cfg), G = cfg.cell === "gru" ? 3 : 4;
  // seq[b][t] = input vector of review b at step t
  let inDim = dense ?? cfg.embedDim;
  let seq: Float64Array[][] = [];
  for (let b = 0; b < B; b++) {
    const row: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      if (dense) row.push(Float64Array.from(batch.inputs!.subarray((b * T + t) * inDim, (b * T + t + 1) * inDim)));
      else { const id = batch.tokens![b * T + t]; row.push(Float64Array.from(P("embedding.weight").subarray(id * inDim, (id + 1) * inDim))); }
    }
    seq.push(row);
  }
  let feat: Float64Array[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const next: Float64Array[][] = seq.map(() => Array.from({ length: T }, () => new Float64Array(nd * H)));
    feat = seq.map(() => new Float64Array(nd * H));
    for (let d = 0; d < nd; d++) {
      const pre = rnnPrefix(l, d === 1);
      const wih = P(`${pre}.w_ih`), whh = P(`${pre}.w_hh`), bih = P(`${pre}.b_ih`), bhh = P(`${pre}.b_hh`);
      for (let b = 0; b < B; b++) {
        let h = new Float64Array(H), c = new Float64Array(H);
        for (let k = 0; k < T; k++) {
          const t = d === 1 ? T - 1 - k : k;
          if (t < lengths[b]) {
            const x = seq[b][t];
            const gx = new Float64Array(G * H), gh = new Float64Array(G * H);
            for (let j = 0; j < G * H; j++) {
              let s1 = bih[j], s2 = bhh[j];
              for (let i = 0; i < inDim; i++) s1 += x[i] * wih[i * G * H + j];
              for (let i = 0; i < H; i++) s2 += h[i] * whh[i * G * H + j];
              gx[j] = s1; gh[j] = s2;
            }
            const hn = new Float64Array(H), cn = new Float64Array(H);
            for (let j = 0; j < H; j++) {
              if (cfg.cell === "lstm") {
                const a = (q: number) => gx[q * H + j] + gh[q * H + j];
                cn[j] = sig(a(1)) * c[j] + sig(a(0)) * Math.tanh(a(2));
                hn[j] = sig(a(3)) * Math.tanh(cn[j]);
              } else {
                const r = sig(gx[j] + gh[j]), z = sig(gx[H + j] + gh[H + j]);
                const n = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
                hn[j] = (1 - z) * n + z * h[j];
              }
            }
            h = hn; c = cn;
          }
          next[b][t].set(h, d * H);
        }
        feat[b].set(h, d * H);
      }
    }
    seq = next;
    inDim = nd * H;
  }
  return { seq, feat };
}

export function lossSum64(cfg: ModelConfig, params: Float64Array, batch: EngineBatch,
                          opts: { dense?: number; loss?: LossKind; mask?: Float32Array } = {}): number {
  const P = params64(paramLayout(opts.dense ? { ...cfg, inputDim: opts.dense } : cfg), params);
  const { size: B } = batch;
  const H = cfg.hidden, nd = directionsOf(cfg);
  const { feat } = recurrent64(cfg, params, batch, opts.dense);
  const w = P("fc.weight"), bias = P("fc.bias")[0];
  let loss = 0;
  for (let b = 0; b < B; b++) {
    let z = bias;
    for (let k = 0; k < nd * H; k++) z += feat[b][k] * (opts.mask ? opts.mask[b * nd * H + k] : 1) * w[k];
    const y = batch.targets[b];
    loss += (opts.loss ?? "bce") === "bce" ? Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z))) : (z - y) ** 2;
  }
  return loss;
}
