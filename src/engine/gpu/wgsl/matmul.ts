// WGSL: tiled matmul with arbitrary strides (so transposes cost nothing), an optional bias epilogue and
// split-K. C[z][m, n] = Σ_{k in chunk z} A(m, k)·B(k, n) (+ bias1[n] + bias2[n] when flags say so).
//
//   A(m, k) = A[aOff + m·aRs + k·aCs]     (aRs = aCs = 0 reads one constant, e.g. a 1.0: column sums)
//   B(k, n) = Bm[bOff + k·bRs + n·bCs]
//   C index = cOff + z·cSplit + m·ldc + n
// Workgroup 16×16 threads computes a 64×64 tile (4×4 per thread) with BK = 16, both operand tiles staged
// in workgroup memory; tile loads follow whichever operand axis is contiguous. Grid: (⌈N/64⌉, ⌈M/64⌉, splits).
export const MATMUL_UNIFORM_WORDS = 16;

export const MATMUL_WGSL = /* wgsl */ `
struct MM {
  M: u32, N: u32, K: u32, kChunk: u32,
  aOff: u32, aRs: u32, aCs: u32, bOff: u32,
  bRs: u32, bCs: u32, cOff: u32, ldc: u32,
  cSplit: u32, bias1: u32, bias2: u32, flags: u32,   // flags: 1 add Bm[bias1 + n], 2 add Bm[bias2 + n]
}
@group(0) @binding(0) var<uniform> p: MM;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> Bm: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

var<workgroup> As: array<f32, 1024>; // [16 k][64 m]
var<workgroup> Bs: array<f32, 1024>; // [16 k][64 n]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u) {
  let m0 = w.y * 64u;
  let n0 = w.x * 64u;
  let kBeg = w.z * p.kChunk;
  let kEnd = min(p.K, kBeg + p.kChunk);
  let lid = l.y * 16u + l.x;
  // 4×4 outputs per thread in four vec4 registers (rows l.y + 16i, columns l.x + 16j).
  var c0 = vec4f(0.0); var c1 = vec4f(0.0); var c2 = vec4f(0.0); var c3 = vec4f(0.0);
  for (var k0 = kBeg; k0 < kEnd; k0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let idx = lid + 256u * q;
      var mm: u32; var kk: u32;
      if (p.aCs == 1u) { mm = idx / 16u; kk = idx % 16u; } else { kk = idx / 64u; mm = idx % 64u; }
      var av = 0.0;
      if (m0 + mm < p.M && k0 + kk < kEnd) { av = A[p.aOff + (m0 + mm) * p.aRs + (k0 + kk) * p.aCs]; }
      As[kk * 64u + mm] = av;
      var nn: u32;
      if (p.bCs == 1u) { kk = idx / 64u; nn = idx % 64u; } else { nn = idx / 16u; kk = idx % 16u; }
      var bv = 0.0;
      if (n0 + nn < p.N && k0 + kk < kEnd) { bv = Bm[p.bOff + (k0 + kk) * p.bRs + (n0 + nn) * p.bCs]; }
      Bs[kk * 64u + nn] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let b = vec4f(Bs[kk * 64u + l.x], Bs[kk * 64u + l.x + 16u], Bs[kk * 64u + l.x + 32u], Bs[kk * 64u + l.x + 48u]);
      c0 += As[kk * 64u + l.y] * b;
      c1 += As[kk * 64u + l.y + 16u] * b;
      c2 += As[kk * 64u + l.y + 32u] * b;
      c3 += As[kk * 64u + l.y + 48u] * b;
    }
    workgroupBarrier();
  }
  store(m0 + l.y, n0 + l.x, w.z, c0);
  store(m0 + l.y + 16u, n0 + l.x, w.z, c1);
  store(m0 + l.y + 32u, n0 + l.x, w.z, c2);
  store(m0 + l.y + 48u, n0 + l.x, w.z, c3);
}

// Row m, columns n + 16j of the thread's outputs, with the bias epilogue.
fn store(m: u32, n: u32, z: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let c = n + 16u * j;
    if (c >= p.N) { continue; }
    var x = v[j];
    if ((p.flags & 1u) != 0u) { x += Bm[p.bias1 + c]; }
    if ((p.flags & 2u) != 0u) { x += Bm[p.bias2 + c]; }
    C[p.cOff + z * p.cSplit + m * p.ldc + c] = x;
  }
}
`;

// dst[dOff + i] = Σ_{s < S} src[s·stride + i] for i < n (the split-K partial sums, in order).
export const REDUCE_WGSL = /* wgsl */ `
struct R { n: u32, S: u32, stride: u32, dOff: u32 }
@group(0) @binding(0) var<uniform> r: R;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = g.y * nw.x * 256u + g.x;
  if (i >= r.n) { return; }
  var s = 0.0;
  for (var z = 0u; z < r.S; z++) { s += src[z * r.stride + i]; }
  dst[r.dOff + i] = s;
}
`;
