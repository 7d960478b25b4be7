/** Small byte-array helpers shared by the CoAP stack and the session layer. */
import type { Random } from "./interfaces.js";

/** UTF-8 in our own code (embedded engines lack the Encoding API): codec/utf8.ts. */
export { utf8Decode, utf8Encode } from "../../codec/utf8.js";

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lowercase hexadecimal, two digits a byte (map keys for tokens, nonces, ETags): the codec's own. */
export { renderHex as toHex } from "../../codec/typed.js";

/** `n` random bytes from `random` (tokens, nonces, resume tokens), low byte of each draw first. */
export function randomBytes(random: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = random.uint32();
    for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (r >>> (8 * j)) & 0xff;
  }
  return out;
}
