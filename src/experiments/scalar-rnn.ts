// The chapter's scalar linear RNN that counts ones, in plain float64 TypeScript: forward pass keeping the
// state stack, backpropagation through time, plain gradient descent, optional clipping by norm.
//
// Legend (everything is a scalar number):
//   T        length of the input sequence
//   x[t]     input at step t (t = 0..T-1), 0 or 1
//   U        input weight     W   recurrent weight
//   S[t]     state after t inputs, S[0] = 0, S[t] = x[t-1]·U + S[t-1]·W      (stack S has T+1 entries)
//   y        output = S[T]            loss = (y - target)²   (MSE of one sample)

/** The two parameters of the recurrence. */
export interface ScalarRnnParams {
  U: number;
  W: number;
}

/** Forward pass: returns the state stack S[0..T] (S[0] = 0); the output is S[T]. */
export function forwardStates(x: ArrayLike<number>, p: ScalarRnnParams): Float64Array {
  const T = x.length;
  const S = new Float64Array(T + 1); //                    S[T+1], S[0] = 0
  for (let t = 1; t <= T; t++) {
    S[t] = x[t - 1]! * p.U + S[t - 1]! * p.W; //          s_t = x_t·U + s_{t-1}·W
  }
  return S;
}

/** MSE of one sample on the last state. */
export function lossOf(y: number, target: number): number {
  const e = y - target;
  return e * e;
}

export interface ScalarRnnGrads {
  loss: number;
  dU: number;
  dW: number;
}

/**
 * Loss and its gradients by backpropagation through time. Walking back from the last step, `dS` is
 * ∂loss/∂S[t]; each step adds its share to dU and dW and passes dS·W to the step before.
 */
export function lossAndGrads(x: ArrayLike<number>, target: number, p: ScalarRnnParams): ScalarRnnGrads {
  const T = x.length;
  const S = forwardStates(x, p); //                        S[T+1]
  const loss = lossOf(S[T]!, target);
  let dS = 2 * (S[T]! - target); //                        ∂loss/∂S[T]
  let dU = 0;
  let dW = 0;
  for (let t = T; t >= 1; t--) {
    dU += dS * x[t - 1]!; //                               ∂S[t]/∂U = x[t-1]   (holding S[t-1] fixed)
    dW += dS * S[t - 1]!; //                               ∂S[t]/∂W = S[t-1]
    dS = dS * p.W; //                                      ∂loss/∂S[t-1] = ∂loss/∂S[t] · W
  }
  return { loss, dU, dW };
}

/** One record per epoch: the loss and gradients at the parameters the epoch started from. */
export interface EpochRecord {
  epoch: number; //  1-based
  loss: number;
  dU: number;
  dW: number;
  /** Norm of (dU, dW) before clipping. */
  gradNorm: number;
  clipped: boolean;
  /** Parameters after this epoch's update. */
  U: number;
  W: number;
}

export interface GradientDescentOptions {
  lr: number;
  epochs: number;
  /** Clip (dU, dW) to this Euclidean norm before the update; undefined = no clipping. */
  clipNorm?: number;
}

export interface TrainResult {
  history: EpochRecord[];
  /** True when the loss, a gradient or a weight stopped being a finite number. */
  diverged: boolean;
  /** The 1-based epoch in which that happened, or null. */
  divergedEpoch: number | null;
  /** Parameters at the end (NaN/±Infinity when diverged). */
  final: ScalarRnnParams;
  /** Loss at the final parameters (NaN/Infinity when diverged). */
  finalLoss: number;
  /** The last parameters that were still finite, and the epoch after which they held (0 = the start). */
  lastFinite: ScalarRnnParams & { epoch: number };
}

/**
 * Plain gradient descent: per epoch, one forward + BPTT on the sequence, then U -= lr·dU, W -= lr·dW.
 * Stops at the first epoch whose loss, gradients or new weights are not finite and reports it as a
 * divergence (it never throws for numerical blow-up).
 */
export function trainScalarRnn(x: ArrayLike<number>, target: number, init: ScalarRnnParams, o: GradientDescentOptions): TrainResult {
  let U = init.U;
  let W = init.W;
  const history: EpochRecord[] = [];
  let lastFinite = { U, W, epoch: 0 };
  let divergedEpoch: number | null = null;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const g = lossAndGrads(x, target, { U, W });
    let dU = g.dU;
    let dW = g.dW;
    const gradNorm = Math.hypot(dU, dW);
    let clipped = false;
    if (o.clipNorm !== undefined && gradNorm > o.clipNorm) {
      const scale = o.clipNorm / gradNorm; //               rescale (dU, dW) onto the circle of radius clipNorm
      dU *= scale;
      dW *= scale;
      clipped = true;
    }
    U = U - o.lr * dU;
    W = W - o.lr * dW;
    history.push({ epoch, loss: g.loss, dU: g.dU, dW: g.dW, gradNorm, clipped, U, W });
    const finite = Number.isFinite(g.loss) && Number.isFinite(gradNorm) && Number.isFinite(U) && Number.isFinite(W);
    if (!finite) {
      divergedEpoch = epoch;
      break;
    }
    lastFinite = { U, W, epoch };
  }
  const finalLoss = lossOf(forwardStates(x, { U, W })[x.length]!, target);
  return { history, diverged: divergedEpoch !== null, divergedEpoch, final: { U, W }, finalLoss, lastFinite };
}
