// WGSL: one GRU time step per dispatch, forward and backward (PyTorch's GRU: gates r, z, n).
//   r = σ(P_r + (h·W_hh)_r + b_hh,r), z = σ(P_z + (h·W_hh)_z + b_hh,z), q = (h·W_hh)_n + b_hh,n,
//   n = tanh(P_n + r⊙q), h' = (1−z)⊙n + z⊙h          (P = X·W_ih + b_ih, the projection in A)
// Legend and buffers as lstm.ts, GH = 3H; Q [T·B, H] keeps q for backward; Ah [T·B, 3H] holds the
// gradients w.r.t. the recurrent pre-activations (n-column scaled by r), which differ from A's.
import { COMMON_WGSL, recurrentGradTile } from "./common.js";

export const GRU_FORWARD_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<i32>;
@group(0) @binding(4) var<storage, read_write> A: array<f32>;
@group(0) @binding(5) var<storage, read_write> Hs: array<f32>;
@group(0) @binding(6) var<storage, read_write> Q: array<f32>;

var<workgroup> hT: array<f32, 512>;  // [16 b][32 k]   h_{t-1}
var<workgroup> wT: array<f32, 1536>; // [3 g][32 k][16 j] W_hh columns of each gate

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let B = d.B; let H = d.H; let GH = 3u * H; let t = s.t;
  let j = w.x * 16u + l.x;
  let b = w.y * 16u + l.y;
  var acc = vec3f(0.0);
  let b0 = w.y * 16u; let j0 = w.x * 16u; let lid = l.y * 16u + l.x;
  for (var k0 = 0u; k0 < H; k0 += 32u) {
    for (var q = 0u; q < 2u; q++) {
      let idx = lid + 256u * q;
      let hb = idx / 32u; let hk = idx % 32u;      // h tile element (b0 + hb, k0 + hk)
      var hv = 0.0;
      if (b0 + hb < B && k0 + hk < H) { hv = Hs[(t * B + b0 + hb) * H + k0 + hk]; }
      hT[hb * 32u + hk] = hv;
      let wk = idx / 16u; let wj = idx % 16u;      // W tile element (k0 + wk, g·H + j0 + wj)
      for (var g = 0u; g < 3u; g++) {
        var wv = 0.0;
        if (k0 + wk < H && j0 + wj < H) { wv = P[d.whh + (k0 + wk) * GH + g * H + j0 + wj]; }
        wT[(g * 32u + wk) * 16u + wj] = wv;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      acc += hT[l.y * 32u + kk] * vec3f(wT[(0u + kk) * 16u + l.x], wT[(32u + kk) * 16u + l.x], wT[(64u + kk) * 16u + l.x]);
    }
    workgroupBarrier();
  }
  if (b >= B || j >= H) { return; }
  let r = t * B + b;
  let hp = Hs[r * H + j];
  let o = (r + B) * H + j;
  let a = r * GH + j;
  if (i32(t) >= lens[b]) {
    Hs[o] = hp; Q[r * H + j] = 0.0;
    A[a] = 0.0; A[a + H] = 0.0; A[a + 2u * H] = 0.0;
    return;
  }
  let rg = sig(A[a] + acc[0] + P[d.bhh + j]);
  let zg = sig(A[a + H] + acc[1] + P[d.bhh + H + j]);
  let q = acc[2] + P[d.bhh + 2u * H + j];
  let ng = tnh(A[a + 2u * H] + rg * q);
  Q[r * H + j] = q;
  Hs[o] = (1.0 - zg) * ng + zg * hp;
  A[a] = rg; A[a + H] = zg; A[a + 2u * H] = ng;
}
`;

// Backward of step t: dh = dFinal (t = len−1) or carry + Ah_{t+1}·W_hhᵀ (fused matmul, K = 3H), where
// carry [B, H] = dh_{t+1}⊙z_{t+1} is the direct path written by the previous dispatch (same thread).
export const GRU_BACKWARD_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<i32>;
@group(0) @binding(4) var<storage, read_write> A: array<f32>;
@group(0) @binding(5) var<storage, read> Hs: array<f32>;
@group(0) @binding(6) var<storage, read> Q: array<f32>;
@group(0) @binding(7) var<storage, read_write> Ah: array<f32>;
@group(0) @binding(8) var<storage, read_write> carry: array<f32>;
@group(0) @binding(9) var<storage, read> head: array<f32>;

var<workgroup> gT: array<f32, 1024>; // [16 b][64 k] gradients of step t+1
var<workgroup> wT: array<f32, 1040>; // [16 j][65 k] W_hh rows (padded: no bank conflicts)

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let B = d.B; let H = d.H; let GH = 3u * H; let t = s.t;
  let j = w.x * 16u + l.x;
  let b = w.y * 16u + l.y;
${recurrentGradTile("Ah")}
  if (b >= B || j >= H) { return; }
  let r = t * B + b;
  let a = r * GH + j;
  let len = lens[b];
  if (i32(t) >= len) {
    A[a] = 0.0; A[a + H] = 0.0; A[a + 2u * H] = 0.0;
    Ah[a] = 0.0; Ah[a + H] = 0.0; Ah[a + 2u * H] = 0.0;
    return;
  }
  var dh = carry[b * H + j] + acc;
  if (i32(t) == len - 1) {
    dh = head[B + b] * P[d.fcw + j];
    if (d.drop == 1u) { dh = dh * head[2u * B + b * H + j]; }
  }
  let rg = A[a]; let zg = A[a + H]; let ng = A[a + 2u * H];
  let hp = Hs[r * H + j];
  let q = Q[r * H + j];
  let dan = dh * (1.0 - zg) * (1.0 - ng * ng);
  let dar = dan * q * rg * (1.0 - rg);
  let daz = dh * (hp - ng) * zg * (1.0 - zg);
  A[a] = dar; A[a + H] = daz; A[a + 2u * H] = dan;
  Ah[a] = dar; Ah[a + H] = daz; Ah[a + 2u * H] = dan * rg;
  carry[b * H + j] = dh * zg;
}
`;
