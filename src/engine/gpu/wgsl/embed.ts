// WGSL: embedding gather (forward) and a deterministic scatter-add (backward) on a compact table.
// The host maps the batch's distinct token ids to compact rows u < U and uploads only those rows
// (embC [U, E]); ctok [T·B] is the compact row of each time-major position, −1 past a review's end.
// The scatter needs no atomics: the host lists, for each u, the positions holding it (CSR: start [U+1],
// pos [n]); one workgroup per u sums them in order.
import { COMMON_WGSL } from "./common.js";

// X [T·B, E] = embC[ctok[row]] (zero rows past each length). One thread per element, 2-D grid.
export const GATHER_WGSL = COMMON_WGSL + /* wgsl */ `
@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read> embC: array<f32>;
@group(0) @binding(2) var<storage, read> ctok: array<i32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = g.y * nw.x * 256u + g.x;
  if (i >= d.rows * d.E) { return; }
  let row = i / d.E;
  let e = i % d.E;
  let u = ctok[row];
  var v = 0.0;
  if (u >= 0) { v = embC[u32(u) * d.E + e]; }
  X[i] = v;
}
`;

// dEmbC [U, E]: row u = Σ over its positions p of dX[p, :]. Workgroup (64) per u, 2-D grid over u.
export const SCATTER_WGSL = COMMON_WGSL + /* wgsl */ `
struct S { U: u32, E: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> c: S;
@group(0) @binding(1) var<storage, read> dX: array<f32>;
@group(0) @binding(2) var<storage, read> start: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read_write> dEmbC: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let u = w.y * nw.x + w.x;
  if (u >= c.U) { return; }
  let p0 = start[u]; let p1 = start[u + 1u];
  for (var e = l.x; e < c.E; e += 64u) {
    var acc = 0.0;
    for (var p = p0; p < p1; p++) { acc += dX[pos[p] * c.E + e]; }
    dEmbC[u * c.E + e] = acc;
  }
}
`;
