/**
 * CoAP messages on the wire (RFC 7252 §3): parse and serialise, nothing else. A malformed datagram
 * gives a `CoapFormatError` that carries what could be parsed (type, message id, token), so the message
 * layer can answer a bad CON with RST (§4.2) as Californium does.
 */
import { utf8Decode, utf8Encode } from "../bytes.js";
import { CoapError } from "./errors.js";
import type { MessageType } from "./registry.js";

export interface CoapOption {
  readonly number: number;
  readonly value: Uint8Array;
}

export interface CoapMessage {
  readonly type: MessageType;
  /** class << 5 | detail. */
  readonly code: number;
  readonly messageId: number;
  /** 0-8 bytes. */
  readonly token: Uint8Array;
  /** Sorted by number; repeated options keep their order. */
  readonly options: readonly CoapOption[];
  readonly payload: Uint8Array;
}

/** A datagram that is not a CoAP message (RFC 7252 §3): with what the header said, to answer RST or 4.00. */
export class CoapFormatError extends CoapError {
  override readonly name: string = "CoapFormatError";
  constructor(
    message: string,
    /** What the header said, when the first four bytes were there. */
    readonly type?: MessageType,
    readonly messageId?: number,
    readonly token?: Uint8Array,
  ) {
    super(message);
  }
}

const EMPTY = new Uint8Array(0);

export function parseMessage(data: Uint8Array): CoapMessage {
  if (data.length < 4)
    throw new CoapFormatError(`datagram of ${data.length} bytes is shorter than a CoAP header`);
  const b0 = data[0]!;
  const type = ((b0 >>> 4) & 3) as MessageType;
  const messageId = (data[2]! << 8) | data[3]!;
  if (b0 >>> 6 !== 1) throw new CoapFormatError(`unknown CoAP version ${b0 >>> 6}`, type, messageId);
  const tkl = b0 & 15;
  if (tkl > 8) throw new CoapFormatError(`token length ${tkl} is reserved`, type, messageId);
  const code = data[1]!;
  if (4 + tkl > data.length) throw new CoapFormatError("token cut short", type, messageId);
  // A view like the payload's: what keeps a token (an observation) copies it.
  const token = tkl === 0 ? EMPTY : data.subarray(4, 4 + tkl);
  if (code === 0 && data.length !== 4) {
    // An Empty message is only the header (§4.1); anything more is a format error.
    throw new CoapFormatError("empty message with token, options or payload", type, messageId, token);
  }
  const options: CoapOption[] = [];
  let pos = 4 + tkl;
  let number = 0;
  while (pos < data.length) {
    const byte = data[pos]!;
    if (byte === 0xff) {
      pos++;
      if (pos === data.length)
        throw new CoapFormatError("payload marker without payload", type, messageId, token);
      // Views, not copies (here and for option values): a copy is an ArrayBuffer per datagram and per
      // option, a tenth of what a gateway allocates per stanza; what outlives the request (the token
      // of an observation, dedup replies) is copied or built apart.
      return { type, code, messageId, token, options, payload: data.subarray(pos) };
    }
    pos++;
    const delta = extended(byte >>> 4, data, pos);
    if (!delta) throw new CoapFormatError("bad option delta", type, messageId, token);
    pos = delta.pos;
    const length = extended(byte & 15, data, pos);
    if (!length) throw new CoapFormatError("bad option length", type, messageId, token);
    pos = length.pos;
    if (pos + length.value > data.length)
      throw new CoapFormatError("option value cut short", type, messageId, token);
    number += delta.value;
    options.push({ number, value: data.subarray(pos, pos + length.value) });
    pos += length.value;
  }
  return { type, code, messageId, token, options, payload: EMPTY };
}

/** Option delta/length nibble with its extension (§3.1): 13 → +1 byte, 14 → +2 bytes, 15 → error. */
function extended(nibble: number, data: Uint8Array, pos: number): { value: number; pos: number } | undefined {
  if (nibble < 13) return { value: nibble, pos };
  if (nibble === 13) return pos < data.length ? { value: data[pos]! + 13, pos: pos + 1 } : undefined;
  if (nibble === 14) {
    return pos + 1 < data.length
      ? { value: ((data[pos]! << 8) | data[pos + 1]!) + 269, pos: pos + 2 }
      : undefined;
  }
  return undefined;
}

export function serializeMessage(m: CoapMessage): Uint8Array {
  if (m.token.length > 8) throw new RangeError("a token has at most 8 bytes");
  const options = [...m.options].sort((a, b) => a.number - b.number); // stable: repeats keep order
  let size = 4 + m.token.length + (m.payload.length > 0 ? 1 + m.payload.length : 0);
  let previous = 0;
  for (const o of options) {
    size += 1 + extSize(o.number - previous) + extSize(o.value.length) + o.value.length;
    previous = o.number;
  }
  const out = new Uint8Array(size);
  out[0] = (1 << 6) | (m.type << 4) | m.token.length;
  out[1] = m.code;
  out[2] = (m.messageId >>> 8) & 0xff;
  out[3] = m.messageId & 0xff;
  out.set(m.token, 4);
  let pos = 4 + m.token.length;
  previous = 0;
  for (const o of options) {
    const delta = o.number - previous;
    previous = o.number;
    const head = pos++;
    const d = writeExt(delta, out, pos);
    pos = d.pos;
    const l = writeExt(o.value.length, out, pos);
    pos = l.pos;
    out[head] = (d.nibble << 4) | l.nibble;
    out.set(o.value, pos);
    pos += o.value.length;
  }
  if (m.payload.length > 0) {
    out[pos++] = 0xff;
    out.set(m.payload, pos);
  }
  return out;
}

const extSize = (n: number): number => (n < 13 ? 0 : n < 269 ? 1 : 2);

function writeExt(n: number, out: Uint8Array, pos: number): { nibble: number; pos: number } {
  if (n < 13) return { nibble: n, pos };
  if (n < 269) {
    out[pos] = n - 13;
    return { nibble: 13, pos: pos + 1 };
  }
  if (n > 65_804) throw new RangeError("option delta or length beyond 65804");
  out[pos] = ((n - 269) >>> 8) & 0xff;
  out[pos + 1] = (n - 269) & 0xff;
  return { nibble: 14, pos: pos + 2 };
}

// --- option values (§3.2): uint (minimal big-endian), string (UTF-8), opaque ------------------------

/**
 * Whether `bytes` is well-formed UTF-8 (RFC 3629 §4: no overlongs, no surrogates, nothing past
 * U+10FFFF). String options (RFC 7252 §3.2) must be; a request whose are not gets 4.02 Bad Option.
 */
export function isUtf8(bytes: Uint8Array): boolean {
  // The codec's strict decoder checks exactly that (and throws where a byte is wrong).
  try {
    utf8Decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export function uintOption(number: number, value: number): CoapOption {
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return { number, value: Uint8Array.from(bytes) };
}

export function stringOption(number: number, value: string): CoapOption {
  return { number, value: utf8Encode(value) };
}

export function readUint(value: Uint8Array): number {
  let n = 0;
  for (const b of value) n = n * 256 + b;
  return n;
}

/** The first option with `number`, or undefined. */
export function findOption(m: Pick<CoapMessage, "options">, number: number): CoapOption | undefined {
  return m.options.find((o) => o.number === number);
}

export function optionUint(m: Pick<CoapMessage, "options">, number: number): number | undefined {
  const o = findOption(m, number);
  return o ? readUint(o.value) : undefined;
}

/** Uri-Path segments joined with '/', no leading slash (e.g. ".well-known/core"). */
export function uriPath(m: Pick<CoapMessage, "options">): string {
  return m.options
    .filter((o) => o.number === 11)
    .map((o) => utf8Decode(o.value))
    .join("/");
}

export function uriQueries(m: Pick<CoapMessage, "options">): string[] {
  return m.options.filter((o) => o.number === 15).map((o) => utf8Decode(o.value));
}

export function pathOptions(path: string): CoapOption[] {
  return path
    .split("/")
    .filter((s) => s !== "")
    .map((s) => stringOption(11, s));
}

/** A Block1/Block2 value (RFC 7959 §2.2). */
export interface BlockValue {
  readonly num: number;
  readonly more: boolean;
  /** Block size exponent: size = 2^(szx + 4), 0-6. */
  readonly szx: number;
}

export function readBlock(value: Uint8Array): BlockValue | undefined {
  if (value.length > 3) return undefined;
  const v = readUint(value);
  const szx = v & 7;
  if (szx === 7) return undefined; // reserved (BERT only over reliable transports, RFC 8323)
  return { num: v >>> 4, more: (v & 8) !== 0, szx };
}

export function blockOption(number: number, b: BlockValue): CoapOption {
  return uintOption(number, b.num * 16 + (b.more ? 8 : 0) + b.szx);
}

export const blockSize = (szx: number): number => 1 << (szx + 4);
