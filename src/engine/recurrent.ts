// One recurrent layer in one direction: forward over all time steps with masking by length, and BPTT.
//
// Legend: T time steps, B batch, In input width, H hidden, G gates (LSTM 4: i,f,g,o; GRU 3: r,z,n).
// All per-step buffers are time-major: row (t*B + b). A sequence b is "active" at time t when t < len[b];
// past its length the state is frozen, so the final state is the state at its own last token (forward
// direction) or, for the reverse direction (t = T-1 .. 0), the state after its first token.
//
// Forward:  P = X·W_ih + b_ih                    one matmul over all steps   [T*B, G*H]
//   LSTM per step: S = σ(h·W'_hh + P'_t)         W', P' have the g-columns doubled: g = tanh(a) = 2σ(2a)−1
//   GRU  per step: Q = h·W_hh + b_hh; r,z = σ(P+Q), n = tanh(P_n + r⊙Q_n), h' = (1−z)⊙n + z⊙h
// Backward per step (reverse processing order): gate gradients dA into one [T*B, G*H] buffer and
//   dh_prev = dA_h·W_hhᵀ (explicit transpose, plain matmul); then at the end, in chunks:
//   dW_ih = Xᵀ·dA_x, dW_hh = Hprevᵀ·dA_h, db = Σ rows, dX = dA_x·W_ihᵀ.
import type { CellKind } from "../config.js";
import { mm, mmAddSigmoid, projectAll, upload, uploadTransposed, weightGrad } from "./matmul.js";

export interface DirWeights {
  wih: Float32Array; // [In, G*H]
  whh: Float32Array; // [H, G*H]
  bih: Float32Array; // [G*H]
  bhh: Float32Array; // [G*H]
}

export interface DirGrads {
  wih: Float32Array;
  whh: Float32Array;
  bih: Float32Array;
  bhh: Float32Array;
}

/** Saved forward state of one direction, for its backward pass. */
export interface DirTape {
  acts: Float32Array; //   [T*B, G*H] gate activations (LSTM i,f,g,o; GRU r,z,n)
  hprev: Float32Array; //  [T*B, H] state before each step
  aux: Float32Array; //    [T*B, H] LSTM: c before each step; GRU: Q_n = (h·W_hh + b_hh)_n
  tc: Float32Array; //     [T*B, H] LSTM: tanh(c after the step); GRU: unused (length 0)
  proj: Float32Array; //   [T*B, G*H] input projection, reused as the gate-gradient buffer dA_x
}

export interface DirForward {
  /** [B, H] state after the last processed step (the state at each sequence's own last/first token). */
  final: Float32Array;
  /** [T*B, H] state after each step (the layer's output), when requested. */
  outputs?: Float32Array;
  tape?: DirTape;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Flush to zero: gradients vanishing over hundreds of steps become float32 subnormals, and wasm (no FTZ
 * mode) multiplies subnormals ~40× slower — a T=200 backward pass went from 1.5 s to 39 s. |x| < 1e-30
 * is far below anything that matters to a gradient.
 */
const ftz = (x: number) => (x > -1e-30 && x < 1e-30 ? 0 : x);

export class Direction {
  readonly G: number;
  /** Buffers reused from step to step (a T=200 step needs ~150 MB of them; allocating it anew each time
   *  costs zero-filling and garbage collection). A tape is only valid until the next forward call. */
  private readonly ws = new Map<string, Float32Array>();
  constructor(readonly cell: CellKind, readonly inDim: number, readonly H: number, readonly reverse: boolean) {
    this.G = cell === "gru" ? 3 : 4;
  }

  /** A workspace buffer of n floats (contents left from earlier use: callers overwrite what they read). */
  private buf(name: string, n: number): Float32Array {
    let b = this.ws.get(name);
    if (!b || b.length < n) {
      b = new Float32Array(n); // grows to the longest batch seen (~2.2 GB in all at T=2,739, B=64)
      this.ws.set(name, b);
    }
    return b.subarray(0, n);
  }

  /**
   * x: [T*B, In] time-major inputs. Returns the final state, the outputs if `keepOutputs`, and the tape
   * if `train`.
   */
  forward(w: DirWeights, x: Float32Array, T: number, B: number, lengths: Int32Array,
          opts: { train: boolean; keepOutputs: boolean }): DirForward {
    const { G, H, inDim } = this;
    const GH = G * H;
    const rows = T * B;
    const lstm = this.cell === "lstm";
    // LSTM: double the g-gate columns of W_ih, W_hh and the summed bias so that one σ gives every gate.
    const wihF = lstm ? scaleGateColumns(w.wih, inDim, H, 2) : w.wih;
    const whhF = lstm ? scaleGateColumns(w.whh, H, H, 2) : w.whh;
    const bias = new Float32Array(GH); // [G*H]
    for (let j = 0; j < GH; j++) bias[j] = lstm ? w.bih[j] + w.bhh[j] : w.bih[j];
    if (lstm) for (let j = 2 * H; j < 3 * H; j++) bias[j] *= 2;

    const proj = this.buf("proj", rows * GH); //                  [T*B, G*H]
    const wihT = upload(wihF, inDim, GH);
    projectAll(x, rows, inDim, wihT, bias, proj);
    wihT.dispose();
    const whhT = upload(whhF, H, GH);

    // Every row of acts/hprev is written below; aux and tc rows only where a sequence is active, and
    // backward reads them only there.
    const tape: DirTape | undefined = opts.train ? {
      acts: this.buf("acts", rows * GH),
      hprev: this.buf("hprev", rows * H),
      aux: this.buf("aux", rows * H),
      tc: lstm ? this.buf("tc", rows * H) : new Float32Array(0),
      proj,
    } : undefined;
    const outputs = opts.keepOutputs ? new Float32Array(rows * H) : undefined;
    const h = new Float32Array(B * H); //  [B, H] state
    const c = new Float32Array(B * H); //  [B, H] LSTM cell
    const s = new Float32Array(B * GH); // [B, G*H] step gates
    for (let k = 0; k < T; k++) {
      const t = this.reverse ? T - 1 - k : k;
      const r0 = t * B;
      const pt = proj.subarray(r0 * GH, (r0 + B) * GH); // [B, G*H]
      if (tape) tape.hprev.set(h, r0 * H);
      if (lstm) {
        if (tape) tape.aux.set(c, r0 * H);
        mmAddSigmoid(h, B, H, whhT, pt, s);
        for (let b = 0; b < B; b++) {
          if (t >= lengths[b]) continue;
          const o4 = b * GH, o1 = b * H;
          for (let j = 0; j < H; j++) {
            const ig = s[o4 + j], fg = s[o4 + H + j], gg = 2 * s[o4 + 2 * H + j] - 1, og = s[o4 + 3 * H + j];
            s[o4 + 2 * H + j] = gg;
            const cn = fg * c[o1 + j] + ig * gg;
            const tcn = Math.tanh(cn);
            c[o1 + j] = cn;
            h[o1 + j] = og * tcn;
            if (tape) tape.tc[(r0 + b) * H + j] = tcn;
          }
        }
      } else {
        const q = mm(h, B, H, whhT); // [B, 3H] = h·W_hh
        for (let b = 0; b < B; b++) {
          if (t >= lengths[b]) continue;
          const o3 = b * GH, o1 = b * H;
          for (let j = 0; j < H; j++) {
            const rg = sigmoid(pt[o3 + j] + q[o3 + j] + w.bhh[j]);
            const zg = sigmoid(pt[o3 + H + j] + q[o3 + H + j] + w.bhh[H + j]);
            const qn = q[o3 + 2 * H + j] + w.bhh[2 * H + j];
            const ng = Math.tanh(pt[o3 + 2 * H + j] + rg * qn);
            s[o3 + j] = rg; s[o3 + H + j] = zg; s[o3 + 2 * H + j] = ng;
            if (tape) tape.aux[(r0 + b) * H + j] = qn;
            h[o1 + j] = (1 - zg) * ng + zg * h[o1 + j];
          }
        }
      }
      if (tape) tape.acts.set(s, r0 * GH);
      if (outputs) outputs.set(h, r0 * H);
    }
    whhT.dispose();
    return { final: h, outputs, tape };
  }

  /**
   * BPTT. dFinal: [B, H] gradient w.r.t. the final state (or undefined); dOut: [T*B, H] gradient w.r.t. each
   * step's output (or undefined). Returns the weight gradients and, if `needDx`, dX [T*B, In].
   */
  backward(w: DirWeights, x: Float32Array, tape: DirTape, T: number, B: number, lengths: Int32Array,
           dFinal: Float32Array | undefined, dOut: Float32Array | undefined, needDx: boolean): { grads: DirGrads; dx?: Float32Array } {
    const { G, H, inDim } = this;
    const GH = G * H;
    const rows = T * B;
    const lstm = this.cell === "lstm";
    const dAx = tape.proj; //                                            [T*B, G*H] (reuses the projection)
    const dAh = lstm ? dAx : this.buf("dAh", rows * GH); //            GRU: n-gate differs (× r); every row written
    const dh = dFinal ? Float32Array.from(dFinal) : new Float32Array(B * H); // [B, H]
    const dc = new Float32Array(B * H); //                                      [B, H]
    const whhTT = uploadTransposed(w.whh, H, GH); //                            [G*H, H]
    for (let k = T - 1; k >= 0; k--) {
      const t = this.reverse ? T - 1 - k : k;
      const r0 = t * B;
      const a = tape.acts.subarray(r0 * GH, (r0 + B) * GH);
      const da = dAx.subarray(r0 * GH, (r0 + B) * GH);
      const dah = dAh.subarray(r0 * GH, (r0 + B) * GH);
      if (dOut) for (let b = 0; b < B; b++) {
        if (t >= lengths[b]) continue;
        for (let j = 0; j < H; j++) dh[b * H + j] += dOut[(r0 + b) * H + j];
      }
      for (let b = 0; b < B; b++) {
        const o = b * GH, o1 = b * H, rr = (r0 + b) * H;
        if (t >= lengths[b]) { da.fill(0, o, o + GH); if (!lstm) dah.fill(0, o, o + GH); continue; }
        if (lstm) {
          for (let j = 0; j < H; j++) {
            const ig = a[o + j], fg = a[o + H + j], gg = a[o + 2 * H + j], og = a[o + 3 * H + j];
            const tcn = tape.tc[rr + j], cp = tape.aux[rr + j];
            const dhj = dh[o1 + j];
            const dcj = dc[o1 + j] + dhj * og * (1 - tcn * tcn);
            da[o + j] = ftz(dcj * gg * ig * (1 - ig)); //            d a_i
            da[o + H + j] = ftz(dcj * cp * fg * (1 - fg)); //        d a_f
            da[o + 2 * H + j] = ftz(dcj * ig * (1 - gg * gg)); //    d a_g
            da[o + 3 * H + j] = ftz(dhj * tcn * og * (1 - og)); //   d a_o
            dc[o1 + j] = ftz(dcj * fg);
          }
        } else {
          for (let j = 0; j < H; j++) {
            const rg = a[o + j], zg = a[o + H + j], ng = a[o + 2 * H + j];
            const hp = tape.hprev[rr + j], qn = tape.aux[rr + j];
            const dhj = dh[o1 + j];
            const dan = dhj * (1 - zg) * (1 - ng * ng);
            const dar = dan * qn * rg * (1 - rg);
            const daz = dhj * (hp - ng) * zg * (1 - zg);
            da[o + j] = ftz(dar); da[o + H + j] = ftz(daz); da[o + 2 * H + j] = ftz(dan);
            dah[o + j] = da[o + j]; dah[o + H + j] = da[o + H + j]; dah[o + 2 * H + j] = ftz(dan * rg);
            dh[o1 + j] = dhj * zg; // direct path; the recurrent matmul is added below
          }
        }
      }
      const back = mm(dah, B, GH, whhTT); // [B, H] = dA_h · W_hhᵀ
      for (let b = 0; b < B; b++) {
        if (t >= lengths[b]) continue;
        const o1 = b * H;
        if (lstm) for (let j = 0; j < H; j++) dh[o1 + j] = ftz(back[o1 + j]);
        else for (let j = 0; j < H; j++) dh[o1 + j] = ftz(dh[o1 + j] + back[o1 + j]);
      }
    }
    whhTT.dispose();

    const wihTT = needDx ? uploadTransposed(w.wih, inDim, GH) : undefined; // [G*H, In]
    const dx = needDx ? new Float32Array(rows * inDim) : undefined;
    const gwih = weightGrad(x, dAx, rows, inDim, GH, wihTT, dx);
    wihTT?.dispose();
    const gwhh = weightGrad(tape.hprev, dAh, rows, H, GH);
    const bih = colSum(dAx, rows, GH);
    const bhh = lstm ? Float32Array.from(bih) : colSum(dAh, rows, GH); // LSTM: both biases see the same dA
    return { grads: { wih: gwih, whh: gwhh, bih, bhh }, dx };
  }
}

/** Copy of w [rows, G*H] with the third gate's H columns multiplied by `k`. */
function scaleGateColumns(w: Float32Array, rows: number, H: number, k: number): Float32Array {
  const GH = w.length / rows;
  const out = Float32Array.from(w);
  for (let r = 0; r < rows; r++) for (let j = 2 * H; j < 3 * H; j++) out[r * GH + j] *= k;
  return out;
}

/** Σ over rows of d [rows, n] → [n] (accumulated in float64). */
function colSum(d: Float32Array, rows: number, n: number): Float32Array {
  const acc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let j = 0; j < n; j++) acc[j] += d[o + j];
  }
  return Float32Array.from(acc);
}
