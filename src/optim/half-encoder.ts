// The fp16 gradient encoding (../protocol/gradcodec.ts: halfScale, then encodeHalf) at SIMD speed, for the
// processes that send gradients: the values are copied once into an arena, their largest magnitude found and
// their half bits worked out by the kernels (./wasm-kernels.ts: maxAbs, halfEncode); the rare blocks of 8 with a
// value past the halves (NaN, Inf, an overflow), and the tail past the last whole block, go through encodeHalf.
// The same scale and the same bits as halfScale and encodeHalf (the tests compare them), in a fraction of the
// time: a gradient of 670,000 values is converted on the worker's CPU after every step.
import { Arena, Kernels } from "./kernels.js";
import { encodeHalf, halfExponent } from "../protocol/gradcodec.js";

class HalfEncoder {
  private cap = 0;
  private k!: Kernels;
  private src!: Float32Array;
  private dst!: Uint16Array;
  private specials!: Int32Array;
  private scratch!: Float32Array;

  /** Room for n values (a new arena when it grows: WebAssembly memory is never given back). */
  private ensure(n: number): void {
    if (n <= this.cap) return;
    const cap = Math.ceil((n * 1.25) / 8) * 8;
    const arena = new Arena(Arena.floatsFor(cap, cap / 2, cap / 8, 4) + 16);
    this.k = new Kernels(arena);
    this.src = arena.alloc(cap);
    this.dst = arena.allocHalf(cap);
    this.specials = arena.allocInt(cap / 8);
    this.scratch = arena.alloc(4);
    this.cap = cap;
  }

  encode(g: Float32Array): { values: Uint16Array; scale: number } {
    const n = g.length;
    if (n === 0) return { values: new Uint16Array(0), scale: 2 ** halfExponent(0) }; // a slice's empty piece
    this.ensure(n);
    const src = this.src.subarray(0, n);
    src.set(g);
    const e = halfExponent(this.k.maxAbs(src, this.scratch)), scale = 2 ** e;
    // a fresh array (a message in flight may still hold the last one), left unfilled: every value is written
    const bytes = Buffer.allocUnsafeSlow(n * 2);
    const out = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const q = n - (n % 8);
    const count = this.k.halfEncode(this.dst, src, 0, q, e, this.specials);
    out.set(this.dst.subarray(0, q));
    for (let s = 0; s < count; s++) { const at = this.specials[s]!; encodeHalf(g.subarray(at, at + 8), scale, out.subarray(at, at + 8)); }
    if (q < n) encodeHalf(g.subarray(q), scale, out.subarray(q));
    return { values: out, scale };
  }
}

let shared: HalfEncoder | null = null;

/** halfScale(g) and encodeHalf(g, that scale): the scale and the half bits (a new array each call). */
export function toHalves(g: Float32Array): { values: Uint16Array; scale: number } {
  return (shared ??= new HalfEncoder()).encode(g);
}
