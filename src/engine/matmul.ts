// The engine's few tfjs calls: dense matmuls on the backend, with inputs and outputs as typed arrays.
// Traps avoided (measured on wasm): no transposeA/transposeB flags (13–45× slower on wasm) — an
// explicit transpose then a plain matMul; no slicing of big tensors — chunks are uploaded from typed arrays.
import { tf, type Tensor2D } from "../tfjs.js";

// Opt-in timing of every call (IMDB_TRAIN_ENGINE_PROFILE=1): name and shape → [total ms, calls].
const PROFILE = process.env.IMDB_TRAIN_ENGINE_PROFILE === "1";
const timings = new Map<string, [number, number]>();
function timed<A extends unknown[], R>(name: string, f: (...a: A) => R): (...a: A) => R {
  if (!PROFILE) return f;
  return (...a: A) => {
    const s = performance.now();
    const r = f(...a);
    const key = `${name} ${a.filter((x) => typeof x === "number").join("x")}`;
    const e = timings.get(key) ?? [0, 0];
    e[0] += performance.now() - s; e[1]++;
    timings.set(key, e);
    return r;
  };
}

/** Accumulated call timings (empty unless IMDB_TRAIN_ENGINE_PROFILE=1), slowest first. */
export function profile(): { call: string; ms: number; calls: number }[] {
  return [...timings].map(([call, [ms, calls]]) => ({ call, ms, calls })).sort((a, b) => b.ms - a.ms);
}

/** Rows per chunk of the all-time-steps matmuls (bounds backend memory; large enough to run at full speed). */
export const CHUNK_ROWS = 4096;

/** A resident [rows, cols] tensor of `data` (copied to the backend on first use). */
export function upload(data: Float32Array, rows: number, cols: number): Tensor2D {
  return tf.tensor2d(data, [rows, cols]);
}

/** A resident [cols, rows] tensor: the transpose of `data` viewed as [rows, cols]. */
export function uploadTransposed(data: Float32Array, rows: number, cols: number): Tensor2D {
  return tf.tidy(() => tf.transpose(tf.tensor2d(data, [rows, cols])) as Tensor2D);
}

/** out[rows, n] = a[rows, k] · b[k, n]; `out` is written if given, else allocated. */
export const mm = timed("mm", function mm(a: Float32Array, rows: number, k: number, b: Tensor2D, out?: Float32Array): Float32Array {
  const r = tf.tidy(() => tf.matMul(tf.tensor2d(a, [rows, k]), b));
  const data = r.dataSync() as Float32Array;
  r.dispose();
  if (!out) return data;
  out.set(data);
  return out;
});

/** σ(a[rows, k] · b[k, n] + c[rows, n]) on the backend: one LSTM step's gates (3 kernels). */
export const mmAddSigmoid = timed("mmAddSigmoid", function mmAddSigmoid(a: Float32Array, rows: number, k: number, b: Tensor2D, c: Float32Array, out: Float32Array): void {
  const n = b.shape[1];
  const r = tf.tidy(() => tf.sigmoid(tf.add(tf.matMul(tf.tensor2d(a, [rows, k]), b), tf.tensor2d(c, [rows, n]))));
  out.set(r.dataSync() as Float32Array);
  r.dispose();
});

/**
 * out[T*B, n] = x[T*B, k] · w[k, n] + bias[n], in chunks of CHUNK_ROWS rows: the input projection of every
 * time step at once.
 */
export const projectAll = timed("projectAll", function projectAll(x: Float32Array, rows: number, k: number, w: Tensor2D, bias: Float32Array, out: Float32Array): void {
  const n = w.shape[1];
  const b = tf.tensor1d(bias);
  for (let r0 = 0; r0 < rows; r0 += CHUNK_ROWS) {
    const r1 = Math.min(rows, r0 + CHUNK_ROWS);
    const res = tf.tidy(() => tf.add(tf.matMul(tf.tensor2d(x.subarray(r0 * k, r1 * k), [r1 - r0, k]), w), b));
    out.set(res.dataSync() as Float32Array, r0 * n);
    res.dispose();
  }
  b.dispose();
});

/**
 * Weight gradient of a projection used at every time step: returns Σ_chunks xᵀ[k, rows] · d[rows, n]
 * (= x[T*B, k]ᵀ · d[T*B, n]) as a [k*n] array, plus, if `wT` ([n, k]) is given, dx = d · wᵀ into `dx`.
 */
export const weightGrad = timed("weightGrad", function weightGrad(x: Float32Array, d: Float32Array, rows: number, k: number, n: number,
                           wT?: Tensor2D, dx?: Float32Array): Float32Array {
  let acc: Tensor2D | undefined;
  for (let r0 = 0; r0 < rows; r0 += CHUNK_ROWS) {
    const r1 = Math.min(rows, r0 + CHUNK_ROWS);
    const m = r1 - r0;
    const dChunk = tf.tensor2d(d.subarray(r0 * n, r1 * n), [m, n]);
    const next = tf.tidy(() => {
      const xT = tf.transpose(tf.tensor2d(x.subarray(r0 * k, r1 * k), [m, k])); // [k, m]
      const p = tf.matMul(xT, dChunk) as Tensor2D; //                                  [k, n]
      return acc ? (tf.add(acc, p) as Tensor2D) : p;
    });
    acc?.dispose();
    acc = next;
    if (wT && dx) {
      const g = tf.matMul(dChunk, wT); // [m, k]
      dx.set(g.dataSync() as Float32Array, r0 * k);
      g.dispose();
    }
    dChunk.dispose();
  }
  if (!acc) return new Float32Array(k * n);
  const out = acc.dataSync() as Float32Array;
  acc.dispose();
  return out;
});
