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
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
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
      let a = vec4f(As[kk * 64u + l.y], As[kk * 64u + l.y + 16u], As[kk * 64u + l.y + 32u], As[kk * 64u + l.y + 48u]);
      let b = vec4f(Bs[kk * 64u + l.x], Bs[kk * 64u + l.x + 16u], Bs[kk * 64u + l.x + 32u], Bs[kk * 64u + l.x + 48u]);
      for (var i = 0u; i < 4u; i++) {
        acc[i * 4u + 0u] += a[i] * b[0];
        acc[i * 4u + 1u] += a[i] * b[1];
        acc[i * 4u + 2u] += a[i] * b[2];
        acc[i * 4u + 3u] += a[i] * b[3];
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + l.y + 16u * i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + l.x + 16u * j;
      if (n >= p.N) { continue; }
      var v = acc[i * 4u + j];
      if ((p.flags & 1u) != 0u) { v += Bm[p.bias1 + n]; }
      if ((p.flags & 2u) != 0u) { v += Bm[p.bias2 + n]; }
      C[p.cOff + w.z * p.cSplit + m * p.ldc + n] = v;
    }
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
