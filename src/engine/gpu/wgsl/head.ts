// WGSL: the classifier head on the final states F = Hs block T ([B, H]): logit z = F·w_fc + b_fc, and
// dOut = dLoss/dz (bce: σ(z) − y; mse: 2(z − y)). head [2B + B·H] = logits, dOut, then (training with
// dropout, d.drop = 1) the inverted dropout masks [B, H]: F is multiplied by its mask in place first (nothing
// else reads block T), so the head's weight gradients — matmuls run by the matmul kernel, dW = dOutᵀ·F,
// db = Σ dOut — see the masked features, and the backward kernels scale dFinal by the same mask.
// One thread per review.
import { COMMON_WGSL } from "./common.js";

export const HEAD_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<storage, read_write> Hs: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> head: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let b = g.x;
  if (b >= d.B) { return; }
  let f = (d.T * d.B + b) * d.H;
  var z = P[d.fcb];
  if (d.drop == 1u) {
    let m = 2u * d.B + b * d.H;
    for (var k = 0u; k < d.H; k++) { Hs[f + k] = Hs[f + k] * head[m + k]; }
  }
  for (var k = 0u; k < d.H; k++) { z += Hs[f + k] * P[d.fcw + k]; }
  head[b] = z;
  if (d.loss == 0u) { head[d.B + b] = sig(z) - y[b]; } else { head[d.B + b] = 2.0 * (z - y[b]); }
}
`;
