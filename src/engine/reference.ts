// The slow reference: the same model written op by op in tfjs (embedding gather, per-step gates, masking
// by length with h = m·h' + (1−m)·h) and differentiated by tfjs autodiff. Tests compare the fused engine's
// loss and every gradient with it; nothing in training uses it.
//
// Legend: B batch, T time, In input width, H hidden, G gates, K = dirs·H. Weight layout as in model.ts.
import type { ModelConfig } from "../config.js";
import { directionsOf, paramLayout, rnnPrefix, type ParamLayout } from "../model/layout.js";
import { tf, type Tensor, type Tensor2D } from "../tfjs.js";
import type { EngineBatch, InputKind, LossKind } from "./types.js";

type Tensor1D = ReturnType<typeof tf.tensor1d>;

export interface ReferenceOptions {
  model: ModelConfig;
  input?: InputKind;
  inputDim?: number;
  loss?: LossKind;
}

export class ReferenceModel {
  readonly layout: ParamLayout;
  private readonly input: InputKind;
  private readonly loss: LossKind;
  private readonly inDim: number;
  constructor(private readonly o: ReferenceOptions) {
    this.input = o.input ?? "tokens";
    this.loss = o.loss ?? "bce";
    this.inDim = this.input === "dense" ? o.inputDim! : o.model.embedDim;
    this.layout = paramLayout(this.input === "dense" ? { ...o.model, inputDim: o.inputDim } : o.model);
  }

  /** Named views of the flat parameter tensor p [N]. */
  private unpack(p: Tensor1D): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const e of this.layout.entries) m.set(e.name, tf.reshape(tf.slice(p, [e.offset], [e.size]), e.shape));
    return m;
  }

  /** Outputs [B] (logits or predictions) as a tensor. */
  private outputs(p: Tensor1D, batch: EngineBatch): Tensor1D {
    const { size: B, maxLen: T, lengths } = batch;
    const cfg = this.o.model, H = cfg.hidden, nd = directionsOf(cfg);
    const w = this.unpack(p);
    // Per-step inputs x_t [B, In], time-major.
    let xs: Tensor2D[];
    if (this.input === "tokens") {
      const tm = new Int32Array(T * B); // [T*B]
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) tm[t * B + b] = batch.tokens![b * T + t];
      const X = tf.reshape(tf.gather(w.get("embedding.weight")!, tf.tensor1d(tm, "int32")), [T, B, this.inDim]);
      xs = perStep(X, T, B, this.inDim);
    } else {
      const D = this.inDim, x = new Float32Array(T * B * D);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) x[(t * B + b) * D + j] = batch.inputs![(b * T + t) * D + j];
      xs = perStep(tf.tensor3d(x, [T, B, D]), T, B, D);
    }
    // masks[t] [B, 1]: 1 where t < len[b]
    const masks = Array.from({ length: T }, (_, t) => tf.tensor2d(Array.from(lengths, (l) => (t < l ? 1 : 0)), [B, 1]));
    let finals: Tensor2D[] = [];
    for (let l = 0; l < cfg.layers; l++) {
      const outs: Tensor2D[][] = [];
      finals = [];
      for (let d = 0; d < nd; d++) {
        const pre = rnnPrefix(l, d === 1);
        const [wih, whh, bih, bhh] = ["w_ih", "w_hh", "b_ih", "b_hh"].map((n) => w.get(`${pre}.${n}`)!) as [Tensor2D, Tensor2D, Tensor1D, Tensor1D];
        let h: Tensor2D = tf.zeros([B, H]);
        let c: Tensor2D = tf.zeros([B, H]);
        const out: Tensor2D[] = new Array(T);
        for (let k = 0; k < T; k++) {
          const t = d === 1 ? T - 1 - k : k;
          const m = masks[t];
          const gx = tf.add(tf.matMul(xs[t], wih), bih); // [B, G*H]
          const gh = tf.add(tf.matMul(h, whh), bhh); //     [B, G*H]
          let hNew: Tensor2D;
          if (cfg.cell === "lstm") {
            const [i, f, g, o] = tf.split(tf.add(gx, gh), 4, 1);
            const cNew = tf.add(tf.mul(tf.sigmoid(f), c), tf.mul(tf.sigmoid(i), tf.tanh(g))) as Tensor2D;
            hNew = tf.mul(tf.sigmoid(o), tf.tanh(cNew));
            c = tf.add(tf.mul(m, cNew), tf.mul(tf.sub(1, m), c));
          } else {
            const [xr, xz, xn] = tf.split(gx, 3, 1);
            const [hr, hz, hn] = tf.split(gh, 3, 1);
            const r = tf.sigmoid(tf.add(xr, hr));
            const z = tf.sigmoid(tf.add(xz, hz));
            const n = tf.tanh(tf.add(xn, tf.mul(r, hn)));
            hNew = tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, h));
          }
          h = tf.add(tf.mul(m, hNew), tf.mul(tf.sub(1, m), h));
          out[t] = h;
        }
        outs.push(out);
        finals.push(h);
      }
      xs = nd === 1 ? outs[0] : outs[0].map((o, t) => tf.concat([o, outs[1][t]], 1));
    }
    const feat = nd === 1 ? finals[0] : tf.concat(finals, 1); // [B, K]
    const z = tf.add(tf.matMul(feat, w.get("fc.weight")! as Tensor2D), w.get("fc.bias")!); // [B, 1]
    return tf.reshape(z, [B]);
  }

  private lossSum(z: Tensor1D, y: Tensor1D): Tensor {
    if (this.loss === "mse") return tf.sum(tf.square(tf.sub(z, y)));
    // max(z,0) − z·y + log(1 + e^−|z|)
    return tf.sum(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z))))));
  }

  /** Loss sum, correct count and outputs, forward only. */
  evaluate(params: Float32Array, batch: EngineBatch): { lossSum: number; correct: number; outputs: Float32Array } {
    let lossSum = NaN;
    let outputs = new Float32Array(0);
    tf.tidy(() => {
      const z = this.outputs(tf.tensor1d(params), batch);
      lossSum = this.lossSum(z, tf.tensor1d(batch.targets)).dataSync()[0];
      outputs = Float32Array.from(z.dataSync());
    });
    return { lossSum, correct: countCorrect(outputs, batch.targets, this.loss), outputs };
  }

  /** Loss sum and its gradient w.r.t. the flat parameters, by tfjs autodiff. */
  grads(params: Float32Array, batch: EngineBatch): { lossSum: number; grads: Float32Array } {
    let out = { lossSum: NaN, grads: new Float32Array(0) };
    tf.tidy(() => {
      const y = tf.tensor1d(batch.targets);
      const { value, grad } = tf.valueAndGrad((q: Tensor) => this.lossSum(this.outputs(q as Tensor1D, batch), y))(tf.tensor1d(params));
      out = { lossSum: value.dataSync()[0], grads: Float32Array.from(grad.dataSync()) };
    });
    return out;
  }
}

/** x_t [B, In] for each t of X [T, B, In] (slices: tf.unstack's gradient fails for T = 1 in tfjs 4.22). */
function perStep(X: Tensor, T: number, B: number, In: number): Tensor2D[] {
  return Array.from({ length: T }, (_, t) => tf.reshape(tf.slice(X, [t, 0, 0], [1, B, In]), [B, In]) as Tensor2D);
}

export function countCorrect(outputs: Float32Array, targets: Float32Array, loss: LossKind): number {
  let n = 0;
  for (let b = 0; b < outputs.length; b++) {
    if (loss === "bce" ? (outputs[b] > 0) === (targets[b] > 0.5) : Math.round(outputs[b]) === targets[b]) n++;
  }
  return n;
}
