// WGSL shared by the recurrent, embedding and head kernels: the per-batch dimensions (one uniform, written
// once per step), the per-time-step index (one 256-byte slot per t, bound with a dynamic offset) and
// numerically safe activations (tanh through σ: no inf/inf for large |x|).
// Offsets are element offsets into the flat parameter buffer P (src/model/layout.ts layout).
export const DIMS_WORDS = 16;
export const STEP_SLOT_BYTES = 256;

export const COMMON_WGSL = /* wgsl */ `
struct Dims {
  B: u32, T: u32, H: u32, E: u32,
  wih: u32, whh: u32, bih: u32, bhh: u32,
  fcw: u32, fcb: u32, loss: u32, rows: u32,   // loss: 0 bce, 1 mse; rows = T·B
  drop: u32, _p1: u32, _p2: u32, _p3: u32,    // drop: 1 = dropout masks in head[2B ..] (training)
}
struct Step { t: u32, _a: u32, _b: u32, _c: u32 }
fn sig(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn tnh(x: f32) -> f32 { return 2.0 * sig(2.0 * x) - 1.0; }
`;

/**
 * The recurrent part of a backward step, shared by the LSTM and GRU kernels: `acc` = dA_{t+1}[b]·W_hhᵀ[:, j],
 * a 16×16 output tile over K = GH gate columns, staged through workgroup memory 64 columns at a time.
 * `src` names the buffer holding the gate gradients of step t+1 ([T·B, GH], row t·B + b). Expects B, H, GH,
 * t, l, w in scope and workgroup arrays gT [16·64] and wT [16·65] declared by the kernel.
 */
export function recurrentGradTile(src: string): string {
  return /* wgsl */ `
  var acc = 0.0;
  if (t + 1u < d.T) {
    let b0 = w.y * 16u; let j0 = w.x * 16u;
    for (var k0 = 0u; k0 < GH; k0 += 64u) {
      for (var q = 0u; q < 4u; q++) {
        let idx = l.y * 16u + l.x + 256u * q;
        let row = idx / 64u; let col = idx % 64u;
        var gv = 0.0;
        if (b0 + row < B && k0 + col < GH) { gv = ${src}[((t + 1u) * B + b0 + row) * GH + k0 + col]; }
        gT[row * 64u + col] = gv;
        var wv = 0.0;
        if (j0 + row < H && k0 + col < GH) { wv = P[d.whh + (j0 + row) * GH + k0 + col]; }
        wT[row * 65u + col] = wv;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < 64u; kk++) { acc += gT[l.y * 64u + kk] * wT[l.x * 65u + kk]; }
      workgroupBarrier();
    }
  }`;
}
