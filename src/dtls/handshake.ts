/**
 * Handshake messages on DTLS's unreliable transport (RFC 6347 §4.2.2-4.2.3): the 12-byte header with
 * message_seq and fragment offsets, fragmentation to fit a datagram, and reassembly that tolerates
 * loss, duplication and reordering, within fixed limits.
 */
import {
  HANDSHAKE_CLIENT_HELLO,
  HANDSHAKE_CLIENT_KEY_EXCHANGE,
  HANDSHAKE_FINISHED,
  HANDSHAKE_HEADER_BYTES,
  HANDSHAKE_HELLO_REQUEST,
  HANDSHAKE_HELLO_VERIFY_REQUEST,
  HANDSHAKE_SERVER_HELLO,
  HANDSHAKE_SERVER_HELLO_DONE,
  HANDSHAKE_SERVER_KEY_EXCHANGE,
} from "./constants.js";
import { decodeError } from "./errors.js";
import { Reader, Writer } from "./wire.js";

export { HANDSHAKE_HEADER_BYTES } from "./constants.js";

// Pure: a bundle that uses only the constants (a tiny node's) leaves the object out.
export const HandshakeType = /* @__PURE__ */ Object.freeze({
  HELLO_REQUEST: HANDSHAKE_HELLO_REQUEST,
  CLIENT_HELLO: HANDSHAKE_CLIENT_HELLO,
  SERVER_HELLO: HANDSHAKE_SERVER_HELLO,
  HELLO_VERIFY_REQUEST: HANDSHAKE_HELLO_VERIFY_REQUEST,
  SERVER_KEY_EXCHANGE: HANDSHAKE_SERVER_KEY_EXCHANGE,
  SERVER_HELLO_DONE: HANDSHAKE_SERVER_HELLO_DONE,
  CLIENT_KEY_EXCHANGE: HANDSHAKE_CLIENT_KEY_EXCHANGE,
  FINISHED: HANDSHAKE_FINISHED,
});

export interface HandshakeMessage {
  readonly type: number;
  readonly seq: number;
  readonly body: Uint8Array;
}

export interface HandshakeFragment {
  readonly type: number;
  readonly length: number;
  readonly seq: number;
  readonly offset: number;
  readonly data: Uint8Array;
}

/** The message as if sent in one fragment: what the Finished hash covers (§4.2.6). */
export function encodeHandshake(m: HandshakeMessage): Uint8Array {
  return new Writer(HANDSHAKE_HEADER_BYTES + m.body.length)
    .u8(m.type)
    .u24(m.body.length)
    .u16(m.seq)
    .u24(0)
    .u24(m.body.length)
    .bytes(m.body)
    .finish();
}

/** The message split into fragments of at most `maxFragment` body bytes each. */
export function fragmentHandshake(m: HandshakeMessage, maxFragment: number): Uint8Array[] {
  if (m.body.length <= maxFragment) return [encodeHandshake(m)];
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < m.body.length; offset += maxFragment) {
    const part = m.body.subarray(offset, Math.min(m.body.length, offset + maxFragment));
    out.push(
      new Writer(HANDSHAKE_HEADER_BYTES + part.length)
        .u8(m.type)
        .u24(m.body.length)
        .u16(m.seq)
        .u24(offset)
        .u24(part.length)
        .bytes(part)
        .finish(),
    );
  }
  return out;
}

/** The handshake fragments in one record's plaintext (a record may carry several). */
export function parseFragments(plaintext: Uint8Array): HandshakeFragment[] {
  const r = new Reader(plaintext);
  const out: HandshakeFragment[] = [];
  while (r.remaining > 0) {
    const type = r.u8("handshake type");
    const length = r.u24("handshake length");
    const seq = r.u16("message_seq");
    const offset = r.u24("fragment_offset");
    const fragmentLength = r.u24("fragment_length");
    if (offset + fragmentLength > length) throw decodeError("handshake fragment beyond its message");
    out.push({ type, length, seq, offset, data: r.bytes(fragmentLength, "handshake fragment") });
  }
  return out;
}

export interface ReassemblyLimits {
  /** Largest handshake message accepted (a ClientHello with every suite is well under 1 KiB). */
  readonly maxMessageBytes: number;
  /** How many messages ahead of the next expected one are buffered. */
  readonly maxAhead: number;
}

export const DEFAULT_REASSEMBLY: ReassemblyLimits = { maxMessageBytes: 4096, maxAhead: 4 };

interface Partial {
  type: number;
  body: Uint8Array;
  /** Received byte ranges, merged: [start, end) pairs. */
  ranges: [number, number][];
}

export interface ReassemblyResult {
  /** Messages now complete, in message_seq order. */
  readonly messages: HandshakeMessage[];
  /** A fragment of an earlier message arrived: the peer is retransmitting its last flight. */
  readonly retransmission: boolean;
}

/**
 * Reassembles handshake messages in message_seq order (§4.2.2). Messages beyond `maxAhead` are
 * dropped (the peer's retransmission brings them again); so is a fragment that disagrees with what
 * came before about its message's type or length.
 */
export class Reassembler {
  private readonly pending = new Map<number, Partial>();

  constructor(
    /** The message_seq expected next. */
    public next: number,
    private readonly limits: ReassemblyLimits = DEFAULT_REASSEMBLY,
  ) {}

  /** Expects `next` from now on and forgets everything buffered (it answered an earlier message). */
  restart(next: number): void {
    this.next = next;
    this.pending.clear();
  }

  add(fragments: readonly HandshakeFragment[]): ReassemblyResult {
    let retransmission = false;
    for (const f of fragments) {
      if (f.seq < this.next) {
        retransmission = true;
        continue;
      }
      if (f.seq >= this.next + this.limits.maxAhead) continue;
      if (f.length > this.limits.maxMessageBytes) throw decodeError(`handshake message of ${f.length} bytes`);
      let p = this.pending.get(f.seq);
      if (!p) {
        p = { type: f.type, body: new Uint8Array(f.length), ranges: [] };
        this.pending.set(f.seq, p);
      } else if (p.type !== f.type || p.body.length !== f.length) continue;
      p.body.set(f.data, f.offset);
      addRange(p.ranges, f.offset, f.offset + f.data.length);
    }
    const messages: HandshakeMessage[] = [];
    for (;;) {
      const p = this.pending.get(this.next);
      if (!p || !complete(p)) break;
      this.pending.delete(this.next);
      messages.push({ type: p.type, seq: this.next, body: p.body });
      this.next++;
    }
    return { messages, retransmission };
  }
}

function complete(p: Partial): boolean {
  if (p.body.length === 0) return true;
  const first = p.ranges[0];
  return p.ranges.length === 1 && first !== undefined && first[0] === 0 && first[1] === p.body.length;
}

/** Adds [start, end) to sorted, disjoint ranges, merging what touches. */
function addRange(ranges: [number, number][], start: number, end: number): void {
  if (end <= start) return;
  ranges.push([start, end]);
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  ranges.length = 0;
  ranges.push(...merged);
}
