/**
 * A minimal CBOR writer for hand-built hostile frames (RFC 8949 §3). Only generic CBOR: it knows nothing
 * of the cxmpp frame layout, so tests built with it do not depend on the wire format being tuned.
 */
export const MAJOR = Object.freeze({
  uint: 0,
  negint: 1,
  bytes: 2,
  text: 3,
  array: 4,
  map: 5,
  tag: 6,
  simple: 7,
});

/** The head of an item of major type `major` with argument `value` (shortest form, up to 2^64). */
export function head(major: number, value: number | bigint): Uint8Array {
  const v = BigInt(value);
  const m = major << 5;
  if (v < 24n) return Uint8Array.of(m | Number(v));
  const size = v < 256n ? 1 : v < 65_536n ? 2 : v < 4_294_967_296n ? 4 : 8;
  const out = new Uint8Array(1 + size);
  out[0] = m | (size === 1 ? 24 : size === 2 ? 25 : size === 4 ? 26 : 27);
  for (let i = 0; i < size; i++) out[size - i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

export function text(s: string): Uint8Array {
  const body = new TextEncoder().encode(s);
  return concat(head(MAJOR.text, body.length), body);
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function repeat(part: Uint8Array, times: number): Uint8Array {
  const out = new Uint8Array(part.length * times);
  for (let i = 0; i < times; i++) out.set(part, i * part.length);
  return out;
}
