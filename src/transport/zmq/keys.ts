// CURVE keys: a fresh pair from libzmq's generator, and the Z85 text keys are written in.
import * as zmq from "zeromq";
import type { CurveKeyPair } from "./types.js";

/** A fresh CURVE key pair (libzmq's generator). */
export function newCurveKeyPair(): CurveKeyPair {
  const k = zmq.curveKeyPair();
  return { publicKey: k.publicKey, secretKey: k.secretKey };
}

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** True when `s` is a 32-byte key in Z85 (40 characters of the Z85 alphabet). */
export function isZ85Key(s: string): boolean {
  if (s.length !== 40) return false;
  for (const ch of s) if (!Z85.includes(ch)) return false;
  return true;
}

/** Z85 text of a binary key (length a multiple of 4). */
export function z85Encode(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i + 4 <= b.length; i += 4) {
    let v = ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!;
    let chunk = "";
    for (let j = 0; j < 5; j++) { chunk = Z85[v % 85]! + chunk; v = Math.floor(v / 85); }
    out += chunk;
  }
  return out;
}

