// The benchmark's baseline: the same model built from tf.layers (Embedding → LSTM/GRU → Dense) and trained
// by tfjs autodiff, op by op — what the project would run without the fused engine.
// Legend: B batch, T padded length, V vocabulary, E embedding width, H hidden.
import type { ModelConfig } from "../config.js";
import { UsageError } from "../errors.js";
import { tf, tfl } from "../tfjs.js";
import type { EngineBatch } from "../engine/types.js";

export interface LayersBaseline {
  /** One training step's forward and backward (gradients of the summed BCE loss); returns the loss sum. */
  step(batch: EngineBatch): number;
  dispose(): void;
}

/** The baseline does not mask by length: it runs every padded step (its batches are length-bucketed). */
export function createLayersBaseline(cfg: ModelConfig): LayersBaseline {
  if (cfg.layers !== 1 || cfg.bidirectional) throw new UsageError("the tf.layers baseline is a single unidirectional layer");
  const model = tfl.sequential();
  model.add(tfl.layers.embedding({ inputDim: cfg.vocabSize, outputDim: cfg.embedDim, inputShape: [null] }));
  // glorotUniform: tfjs-layers 4.22's default orthogonal recurrent initializer fails in Node ("rMat.flatten is not a function").
  const rnn = { units: cfg.hidden, recurrentActivation: "sigmoid" as const, recurrentInitializer: "glorotUniform" as const };
  model.add(cfg.cell === "gru" ? tfl.layers.gru(rnn) : tfl.layers.lstm(rnn));
  model.add(tfl.layers.dense({ units: 1 }));
  return {
    step(batch) {
      const { size: B, maxLen: T } = batch;
      let loss = NaN;
      tf.tidy(() => {
        const x = tf.tensor2d(batch.tokens!, [B, T], "int32");
        const y = tf.tensor2d(batch.targets, [B, 1]);
        const { value, grads } = tf.variableGrads(() => {
          const z = model.apply(x, { training: true }) as tf.Tensor2D; // [B, 1] logits
          return tf.sum(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z)))))) as tf.Scalar;
        });
        loss = value.dataSync()[0];
        for (const g of Object.values(grads)) g.dataSync();
      });
      return loss;
    },
    dispose: () => model.dispose(),
  };
}
