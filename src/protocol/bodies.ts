// The JSON body of every message kind: its shape (checked field by field when a message is read, so a body that
// arrives over the network is never trusted as it is), its TypeScript type (inferred from the same declaration)
// and the most bytes it may take (checked before it is parsed, so that a large or deeply nested body costs
// nothing but its length check).
//
//   const b = readBody(m, Kind.Gradient, "worker w0");   // GradientBody, or a WireError("malformed")
import { Kind, WireError, kindName, type Message } from "./wire.js";

// ---- a small shape language ---------------------------------------------------------------------------------

/** Checks one value at `path`, returning it typed; throws a message naming the path and what was expected. */
export type Check<T> = (v: unknown, path: string) => T;
type Infer<C> = C extends Check<infer T> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The object a shape describes: fields whose check may give `undefined` are optional. */
type Fields<S extends Record<string, Check<unknown>>> = Simplify<
  { [K in keyof S as undefined extends Infer<S[K]> ? never : K]: Infer<S[K]> } &
  { [K in keyof S as undefined extends Infer<S[K]> ? K : never]?: Infer<S[K]> }
>;

class ShapeError extends Error {}
const fail = (path: string, want: string, v: unknown): never => {
  const got = v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
  throw new ShapeError(`${path} must be ${want}, not ${got}`);
};

const num: Check<number> = (v, p) => (typeof v === "number" && Number.isFinite(v) ? v : fail(p, "a finite number", v));
const int: Check<number> = (v, p) => (Number.isSafeInteger(v) ? (v as number) : fail(p, "an integer", v));
const nat: Check<number> = (v, p) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(p, "an integer ≥ 0", v));
const bool: Check<boolean> = (v, p) => (typeof v === "boolean" ? v : fail(p, "true or false", v));
const str = (max = 256): Check<string> => (v, p) => (typeof v === "string" && v.length <= max ? v : fail(p, `a string of at most ${max} characters`, v));
const oneOf = <T extends string>(...values: T[]): Check<T> => (v, p) => (values.includes(v as T) ? (v as T) : fail(p, `one of ${values.join(", ")}`, v));
const opt = <T>(c: Check<T>): Check<T | undefined> => (v, p) => (v === undefined ? undefined : c(v, p));
/** JSON has no NaN: a non-finite number travels as null. */
const numOrNull: Check<number> = (v, p) => (v === null ? NaN : num(v, p));
const list = <T>(c: Check<T>, max: number): Check<T[]> => (v, p) => {
  if (!Array.isArray(v) || v.length > max) return fail(p, `a list of at most ${max} items`, v);
  return v.map((x, i) => c(x, `${p}[${i}]`));
};
/** An object with exactly these fields checked (others are ignored, not copied). */
const obj = <S extends Record<string, Check<unknown>>>(shape: S): Check<Fields<S>> => (v, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(p, "an object", v);
  const out: Record<string, unknown> = {};
  for (const [k, c] of Object.entries(shape)) {
    const x = c((v as Record<string, unknown>)[k], p ? `${p}.${k}` : k);
    if (x !== undefined) out[k] = x;
  }
  return out as Fields<S>;
};

// ---- the bodies ---------------------------------------------------------------------------------------------

const split = oneOf("train", "val", "test");
/** Batch indices of one task (a step deals a few batches to each worker). */
const batches = list(nat, 4096);

const MODEL = obj({
  cell: oneOf("lstm", "gru"), vocabSize: nat, embedDim: nat, hidden: nat, layers: nat, bidirectional: bool,
  task: opt(oneOf("classify", "lm", "sgns")), lmSamples: opt(nat),
});

export const SHAPES = {
  [Kind.Join]: obj({ name: str(128), pid: opt(nat), host: opt(str(256)), backend: opt(str(32)), rejoin: opt(bool) }),
  [Kind.Welcome]: obj({
    runId: nat, slot: nat, model: MODEL, dataset: str(4096), layoutHash: str(64), layoutSize: nat, maxBytes: nat, heartbeatMs: nat,
    coordinator: opt(str(256)),
    grad: opt(obj({ dtype: oneOf("fp32", "fp16"), rows: bool })),
    pull: opt(oneOf("rows", "dense")),
    dropout: opt(obj({ rate: num, seed: int })),
    seed: opt(int),
    shards: opt(obj({ own: nat, others: list(obj({ port: nat, offset: nat, length: nat, endpoint: opt(str(256)), serverKey: opt(str(40)) }), 64) })),
  }),
  [Kind.Heartbeat]: obj({}),
  [Kind.Assign]: obj({ task: nat, epoch: nat, split, batches }),
  [Kind.Gradient]: obj({
    task: nat, lossSum: opt(num), correct: opt(nat), count: opt(nat), tokens: opt(nat), seconds: opt(num),
    ids: opt(list(int, 1 << 16)), gradScale: opt(num),
  }),
  [Kind.Eval]: obj({ task: nat, epoch: opt(nat), split, batches }),
  [Kind.EvalResult]: obj({ task: nat, lossSum: num, correct: nat, count: nat }),
  [Kind.Reject]: obj({ reason: str(64), message: str(4096), rejoin: opt(bool) }),
  [Kind.Stop]: obj({ reason: str(1024), final: opt(bool) }),
  [Kind.Leave]: obj({ reason: str(1024) }),
  [Kind.Ready]: obj({ backend: str(32) }),
  [Kind.Started]: obj({ task: nat }),
  [Kind.Dense]: obj({}),
  [Kind.Params]: obj({ offset: nat, task: opt(nat) }),
  [Kind.ShardInit]: obj({
    runId: nat, offset: nat, length: nat, layoutHash: str(64), version: nat, chunk: nat,
    adam: obj({ lr: num, beta1: num, beta2: num, eps: num, weightDecay: opt(num), t: nat }),
    block: opt(obj({ offset: nat, rows: nat, width: nat })),
    pull: opt(oneOf("rows", "dense")),
  }),
  [Kind.ShardReduce]: obj({ step: nat, tasks: list(nat, 1 << 16), peers: list(str(128), 1 << 16), count: nat }),
  [Kind.ShardNorm]: obj({ step: opt(nat), sumsq: opt(numOrNull), bad: opt(list(nat, 1 << 16)), ready: opt(bool) }),
  [Kind.ShardApply]: obj({ step: nat, version: nat, scale: num, coef: num, lr: num, skip: opt(bool) }),
  [Kind.ShardFetch]: obj({}),
  [Kind.ShardState]: obj({ offset: nat, t: nat, version: nat }),
  [Kind.ShardPull]: obj({ task: opt(nat), peer: opt(str(256)), finish: opt(bool) }),
} satisfies Record<Kind, Check<unknown>>;

/** The body of each kind, as its shape declares it. */
export type Bodies = { [K in Kind]: Infer<(typeof SHAPES)[K]> };
export type JoinBody = Bodies[Kind.Join];
export type WelcomeBody = Bodies[Kind.Welcome];
export type AssignBody = Bodies[Kind.Assign];
export type GradientBody = Bodies[Kind.Gradient];
export type EvalBody = Bodies[Kind.Eval];
export type EvalResultBody = Bodies[Kind.EvalResult];
export type RejectBody = Bodies[Kind.Reject];
export type ShardInitBody = Bodies[Kind.ShardInit];
export type ShardReduceBody = Bodies[Kind.ShardReduce];
export type ShardApplyBody = Bodies[Kind.ShardApply];
export type ShardPullBody = Bodies[Kind.ShardPull];

/** Most bytes a body of each kind may take (a gradient lists the sample ids it used; Welcome carries a path). */
export const BODY_LIMIT: Record<Kind, number> = Object.fromEntries(
  Object.values(Kind).filter((k): k is Kind => typeof k === "number").map((k) => [k, k === Kind.Gradient || k === Kind.ShardReduce || k === Kind.ShardNorm ? 1 << 20 : 16 << 10]),
) as Record<Kind, number>;

/**
 * The body of `m`, which must be of `kind`, checked against its shape. Throws `WireError("malformed")` naming
 * the sender and the first field that is wrong — before parsing when the body is over its kind's limit.
 */
export function readBody<K extends Kind>(m: Message, kind: K, from: string): Bodies[K] {
  if (m.header.kind !== kind) throw new WireError("malformed", `${kindName(m.header.kind)} from ${from} read as ${kindName(kind)}`);
  const bytes = m.bodyBytes;
  if (bytes.length > BODY_LIMIT[kind]) throw new WireError("malformed", `${kindName(kind)} from ${from}: body of ${bytes.length} bytes, over the ${BODY_LIMIT[kind]} bytes a ${kindName(kind)} may take`);
  let json: unknown;
  try {
    json = bytes.length ? JSON.parse(bytes.toString("utf8")) : {};
  } catch {
    throw new WireError("malformed", `${kindName(kind)} from ${from}: body is not valid JSON`);
  }
  try {
    return (SHAPES[kind] as Check<Bodies[K]>)(json, "");
  } catch (err) {
    if (err instanceof ShapeError) throw new WireError("malformed", `${kindName(kind)} from ${from}: ${err.message}`);
    throw err;
  }
}
