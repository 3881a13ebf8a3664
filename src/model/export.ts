// The TensorFlow.js LayersModel export: Embedding(V, E, maskZero) → LSTM(H) [× layers] → Dense(1, sigmoid),
// written as model.json + weights.bin that `tf.loadLayersModel` reads in a browser or in Node.
//
// Padding: Keras' maskZero masks token id 0, but our <pad> is 1 and <unk> is 0. The export swaps ids 0 and 1
// (embedding rows and the exported vocabulary), so that exported id 0 = <pad> is masked; a masked step carries
// the LSTM state forward, so the output is the state at each review's own last token, as in training.
// Weights need no reordering: our w_ih [E,4H] / w_hh [H,4H] use gate order i,f,g,o like Keras' kernel
// [E,4H] / recurrent kernel [H,4H] (i,f,c,o); Keras has one bias = b_ih + b_hh. recurrentActivation must be
// "sigmoid" (tfjs' default is hardSigmoid).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelConfig } from "../config.js";
import { PAD_ID, UNK_ID } from "../config.js";
import { UnavailableError, InputError } from "../errors.js";
import { paramLayout, view } from "./layout.js";
import { tf, loadLayers, useBackend, currentBackend, type LayersModel, type Tensor, type WeightsManifestEntry } from "../tfjs.js";

export const TFJS_DIR = "tfjs";

/** Our token id → the exported model's id (0 and 1 swapped). */
export function exportedId(id: number): number {
  return id === PAD_ID ? 0 : id === UNK_ID ? 1 : id;
}

type Layers = Awaited<ReturnType<typeof loadLayers>>;

/** tfjs needs a backend before building layers: whatever this process runs, else wasm. */
async function ready(): Promise<Layers> {
  await useBackend(currentBackend() ? "auto" : "wasm");
  return await loadLayers();
}

async function buildModel(layers: Layers, cfg: ModelConfig): Promise<LayersModel> {
  const model = layers.sequential();
  model.add(layers.layers.embedding({ inputDim: cfg.vocabSize, outputDim: cfg.embedDim, maskZero: true, inputShape: [null], embeddingsInitializer: "zeros", name: "embedding" }));
  for (let l = 0; l < cfg.layers; l++) {
    model.add(layers.layers.lstm({ units: cfg.hidden, recurrentActivation: "sigmoid", activation: "tanh", returnSequences: l < cfg.layers - 1,
      // weights are set right after: skip the (slow, and on wasm failing) orthogonal initialiser
      kernelInitializer: "zeros", recurrentInitializer: "zeros", biasInitializer: "zeros", unitForgetBias: false, name: `lstm_${l}` }));
  }
  model.add(layers.layers.dense({ units: 1, activation: "sigmoid", kernelInitializer: "zeros", name: "fc" }));
  return model;
}

/** Write `dir`/model.json and `dir`/weights.bin for an LSTM model (GRU and bidirectional are not exported). */
export async function exportLayersModel(dir: string, cfg: ModelConfig, params: Float32Array, vocabTokens: readonly string[]): Promise<void> {
  if ((cfg.task ?? "classify") !== "classify") throw new UnavailableError(`the TensorFlow.js export is for the classifier (this model's task is ${cfg.task}: fine-tune a classifier from it)`);
  if (cfg.cell !== "lstm" || cfg.bidirectional) throw new UnavailableError(`the TensorFlow.js export supports unidirectional LSTM models (this one is ${cfg.bidirectional ? "bidirectional " : ""}${cfg.cell})`);
  const layers = await ready();
  const layout = paramLayout(cfg);
  const model = await buildModel(layers, cfg);
  const E = cfg.embedDim;
  const emb = Float32Array.from(view(layout, params, "embedding.weight")); // [V, E]
  const row0 = emb.slice(0, E);
  emb.copyWithin(0, E, 2 * E);
  emb.set(row0, E); // swap rows 0 and 1
  const weights: Tensor[] = [tf.tensor2d(emb, [cfg.vocabSize, E])];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `rnn.l${l}`;
    const wih = view(layout, params, `${p}.w_ih`), whh = view(layout, params, `${p}.w_hh`);
    const bih = view(layout, params, `${p}.b_ih`), bhh = view(layout, params, `${p}.b_hh`);
    const inDim = wih.length / (4 * cfg.hidden);
    const bias = new Float32Array(bih.length);
    for (let i = 0; i < bias.length; i++) bias[i] = bih[i]! + bhh[i]!;
    weights.push(tf.tensor2d(Float32Array.from(wih), [inDim, 4 * cfg.hidden]), tf.tensor2d(Float32Array.from(whh), [cfg.hidden, 4 * cfg.hidden]), tf.tensor1d(bias));
  }
  const K = cfg.hidden;
  weights.push(tf.tensor2d(Float32Array.from(view(layout, params, "fc.weight")), [K, 1]), tf.tensor1d(Float32Array.from(view(layout, params, "fc.bias"))));
  model.setWeights(weights);
  weights.forEach((w) => w.dispose());
  mkdirSync(dir, { recursive: true });
  await model.save({
    save: async (art) => {
      const data = art.weightData;
      const buf = data === undefined ? Buffer.alloc(0)
        : Array.isArray(data) ? Buffer.concat(data.map((d) => Buffer.from(d)))
        : Buffer.from(data as ArrayBuffer);
      writeFileSync(join(dir, "weights.bin"), buf);
      const json = {
        format: "layers-model", generatedBy: "imdb-train", convertedBy: null,
        modelTopology: art.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: art.weightSpecs ?? [] }],
        userDefinedMetadata: { tokenIds: "exported id 0 = <pad> (masked), 1 = <unk>, others as in vocab.json; see vocab.json here", maxLen: null },
      };
      writeFileSync(join(dir, "model.json"), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    },
  });
  const tokens = [...vocabTokens];
  [tokens[0], tokens[1]] = [tokens[1]!, tokens[0]!];
  writeFileSync(join(dir, "vocab.json"), JSON.stringify({ format: "imdb-train-tfjs-vocab/1", note: "index = exported token id (0 = <pad>, masked)", tokens }));
  model.dispose();
}

/** Load an exported model with `tf.loadLayersModel` (reading the two files from disk). */
export async function loadExported(dir: string): Promise<LayersModel> {
  const layers = await ready();
  let json: { modelTopology: object; weightsManifest: { paths: string[]; weights: WeightsManifestEntry[] }[] };
  try {
    json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
  } catch (err) {
    throw new InputError(`cannot read model.json: ${(err as Error).message}`, { path: dir, cause: err });
  }
  const w = readFileSync(join(dir, json.weightsManifest[0]!.paths[0]!));
  const weightData = w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer;
  return await layers.loadLayersModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights), weightData, format: "layers-model" }),
  });
}

/** Positive probabilities of padded batches of our token ids ([B*T] row-major, PAD_ID padding) with the exported model. */
export async function predictExported(model: LayersModel, tokens: Int32Array, B: number, T: number): Promise<Float32Array> {
  const ids = new Int32Array(tokens.length);
  for (let i = 0; i < ids.length; i++) ids[i] = exportedId(tokens[i]!);
  const x = tf.tensor2d(ids, [B, T], "int32");
  const y = model.predict(x) as Tensor;
  const out = (await y.data()) as Float32Array;
  x.dispose(); y.dispose();
  return Float32Array.from(out);
}
