// WGSL shared by the recurrent, embedding and head kernels: the per-batch dimensions (one uniform, written
// once per step), the per-time-step index (one 256-byte slot per t, bound with a dynamic offset) and
// numerically safe activations (tanh through σ: no inf/inf for large |x|).
// Offsets are element offsets into the flat parameter buffer P (src/model.ts layout).
export const DIMS_WORDS = 16;
export const STEP_SLOT_BYTES = 256;

export const COMMON_WGSL = /* wgsl */ `
struct Dims {
  B: u32, T: u32, H: u32, E: u32,
  wih: u32, whh: u32, bih: u32, bhh: u32,
  fcw: u32, fcb: u32, loss: u32, rows: u32,   // loss: 0 bce, 1 mse; rows = T·B
  _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}
struct Step { t: u32, _a: u32, _b: u32, _c: u32 }
fn sig(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn tnh(x: f32) -> f32 { return 2.0 * sig(2.0 * x) - 1.0; }
`;
