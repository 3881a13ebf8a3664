// The CPU engines (fused.ts: the classifier; lm.ts, sgns.ts: pretraining) behind the Engine contract. The rows form is handled at this edge: given
// RowParams, the dense part and the rows are written into a full vector this engine keeps (the batch reads
// only those rows, which is checked), and a rows-form result is cut from the full gradient.
//
// Legend: N all parameters, V·E the embedding table, R rows.
import type { ParamLayout } from "../model/layout.js";
import { batchRows, checkRowParams, checkRowsGiven, embeddingShape, isRowParams, toRowStep, writeRowParams } from "./rows.js";
import type { Engine, EngineBatch, EngineParams, EvalResult, StepResult } from "./types.js";

/** What a CPU engine computes on a full parameter vector (FusedModel, LmModel, SgnsModel). */
export interface CpuModel {
  readonly layout: ParamLayout;
  step(params: Float32Array, batch: EngineBatch): StepResult;
  evaluate(params: Float32Array, batch: EngineBatch): EvalResult;
}

export function cpuEngine(model: CpuModel, backend: string): Engine {
  const layout = model.layout;
  let full: Float32Array | undefined; // [N] rows not given hold whatever an earlier step wrote: never read

  /** The full vector the fused model reads for `batch`. */
  const vector = (p: EngineParams, batch: EngineBatch): Float32Array => {
    if (!isRowParams(p)) return p;
    checkRowParams(layout, p);
    const { V } = embeddingShape(layout);
    if (V > 0) checkRowsGiven(batchRows(batch, V), p.rows);
    full ??= new Float32Array(layout.size);
    writeRowParams(layout, p, full);
    return full;
  };

  return {
    backend,
    layout,
    step: async (params, batch) => model.step(params, batch),
    stepRows: async (params, batch) => toRowStep(layout, model.step(vector(params, batch), batch)),
    evaluate: async (params, batch) => model.evaluate(vector(params, batch), batch),
    dispose: () => {},
  };
}
