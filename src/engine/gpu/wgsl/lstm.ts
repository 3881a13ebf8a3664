// WGSL: one LSTM time step per dispatch, forward and backward, recurrent matmul and gate arithmetic fused.
//
// Legend: B batch, T steps, H hidden, GH = 4H gate columns (i, f, g, o as PyTorch), rows time-major
// (row t·B + b). Buffers: P params; A [T·B, 4H] (input projection in, gate activations out; in backward
// the gate gradients dA overwrite the activations of the same step); Hs, Cs [(T+1)·B, H] with row block 0
// the zero state and block t+1 the state after step t (frozen past each length: copied).
// Grid: (⌈H/16⌉, ⌈B/16⌉), workgroup 16×16, thread (j, b) owns hidden unit j of review b.
import { COMMON_WGSL, recurrentGradTile } from "./common.js";

export const LSTM_FORWARD_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<i32>;
@group(0) @binding(4) var<storage, read_write> A: array<f32>;
@group(0) @binding(5) var<storage, read_write> Hs: array<f32>;
@group(0) @binding(6) var<storage, read_write> Cs: array<f32>;

var<workgroup> hT: array<f32, 512>;  // [16 b][32 k]   h_{t-1}
var<workgroup> wT: array<f32, 2048>; // [4 g][32 k][16 j] W_hh columns of each gate

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let B = d.B; let H = d.H; let GH = 4u * H; let t = s.t;
  let j = w.x * 16u + l.x;
  let b = w.y * 16u + l.y;
  var acc = vec4f(0.0);                             // (h_{t-1}·W_hh)[b, g·H + j], g = i, f, g, o
  let b0 = w.y * 16u; let j0 = w.x * 16u; let lid = l.y * 16u + l.x;
  for (var k0 = 0u; k0 < H; k0 += 32u) {
    for (var q = 0u; q < 2u; q++) {
      let idx = lid + 256u * q;
      let hb = idx / 32u; let hk = idx % 32u;      // h tile element (b0 + hb, k0 + hk)
      var hv = 0.0;
      if (b0 + hb < B && k0 + hk < H) { hv = Hs[(t * B + b0 + hb) * H + k0 + hk]; }
      hT[hb * 32u + hk] = hv;
      let wk = idx / 16u; let wj = idx % 16u;      // W tile element (k0 + wk, g·H + j0 + wj)
      for (var g = 0u; g < 4u; g++) {
        var wv = 0.0;
        if (k0 + wk < H && j0 + wj < H) { wv = P[d.whh + (k0 + wk) * GH + g * H + j0 + wj]; }
        wT[(g * 32u + wk) * 16u + wj] = wv;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      acc += hT[l.y * 32u + kk] * vec4f(wT[(0u + kk) * 16u + l.x], wT[(32u + kk) * 16u + l.x], wT[(64u + kk) * 16u + l.x], wT[(96u + kk) * 16u + l.x]);
    }
    workgroupBarrier();
  }
  if (b >= B || j >= H) { return; }
  let r = t * B + b;                                // this step's row
  let hp = Hs[r * H + j];
  let cp = Cs[r * H + j];
  let o = (r + B) * H + j;                          // state after the step
  if (i32(t) >= lens[b]) {                          // past the review's end: state frozen
    Hs[o] = hp; Cs[o] = cp;
    for (var g = 0u; g < 4u; g++) { A[r * GH + g * H + j] = 0.0; }
    return;
  }
  let a = r * GH + j;
  let ig = sig(A[a] + acc[0]);
  let fg = sig(A[a + H] + acc[1]);
  let gg = tnh(A[a + 2u * H] + acc[2]);
  let og = sig(A[a + 3u * H] + acc[3]);
  let c = fg * cp + ig * gg;
  Cs[o] = c;
  Hs[o] = og * tnh(c);
  A[a] = ig; A[a + H] = fg; A[a + 2u * H] = gg; A[a + 3u * H] = og;
}
`;

// Backward of step t (dispatched for t = T−1 down to 0). The gradient reaching h_t for review b is
//   dFinal[b] = dOut[b]·w_fc (⊙ the dropout mask, when there is one)   when t = len_b − 1 (the state the head reads),
//   dA_{t+1}[b]·W_hhᵀ                  when t < len_b − 1 (the recurrent matmul over K = 4H, fused here);
// dc [B, H] carries dL/dc_t between dispatches (same thread, in place). Gate gradients overwrite A row t.
// head [2B + B·H]: logits, dOut, dropout masks.
export const LSTM_BACKWARD_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> lens: array<i32>;
@group(0) @binding(4) var<storage, read_write> A: array<f32>;
@group(0) @binding(5) var<storage, read> Cs: array<f32>;
@group(0) @binding(6) var<storage, read_write> dc: array<f32>;
@group(0) @binding(7) var<storage, read> head: array<f32>;

var<workgroup> gT: array<f32, 1024>; // [16 b][64 k] gradients of step t+1
var<workgroup> wT: array<f32, 1040>; // [16 j][65 k] W_hh rows (padded: no bank conflicts)

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let B = d.B; let H = d.H; let GH = 4u * H; let t = s.t;
  let j = w.x * 16u + l.x;
  let b = w.y * 16u + l.y;
${recurrentGradTile("A")}
  if (b >= B || j >= H) { return; }
  let r = t * B + b;
  let a = r * GH + j;
  let len = lens[b];
  if (i32(t) >= len) {
    for (var g = 0u; g < 4u; g++) { A[a + g * H] = 0.0; }
    return;
  }
  var dh = acc;
  if (i32(t) == len - 1) {
    dh = head[B + b] * P[d.fcw + j];
    if (d.drop == 1u) { dh = dh * head[2u * B + b * H + j]; }
  }
  let ig = A[a]; let fg = A[a + H]; let gg = A[a + 2u * H]; let og = A[a + 3u * H];
  let cp = Cs[r * H + j];
  let tc = tnh(Cs[(r + B) * H + j]);
  let dcj = dc[b * H + j] + dh * og * (1.0 - tc * tc);
  A[a] = dcj * gg * ig * (1.0 - ig);
  A[a + H] = dcj * cp * fg * (1.0 - fg);
  A[a + 2u * H] = dcj * ig * (1.0 - gg * gg);
  A[a + 3u * H] = dh * tc * og * (1.0 - og);
  dc[b * H + j] = dcj * fg;
}
`;
