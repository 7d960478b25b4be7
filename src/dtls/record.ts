/**
 * The DTLS record layer (RFC 6347 §4.1): records in a datagram, AEAD protection with the explicit
 * nonce and additional data of RFC 5246 §6.2.3.3 (epoch and sequence number in place of TLS's
 * implicit counter, RFC 6347 §4.1.2.1), and the anti-replay window (§4.1.2.6).
 */
import {
  CONTENT_ALERT,
  CONTENT_APPLICATION_DATA,
  CONTENT_CHANGE_CIPHER_SPEC,
  CONTENT_HANDSHAKE,
  DTLS_1_0,
  DTLS_1_2,
  MAX_PLAINTEXT,
  RECORD_HEADER_BYTES,
} from "./constants.js";
import type { DtlsCrypto } from "./crypto.js";
import type { CipherSuite } from "./suites.js";
import { Writer } from "./wire.js";

export { DTLS_1_0, DTLS_1_2, MAX_PLAINTEXT, MAX_SEQUENCE, RECORD_HEADER_BYTES } from "./constants.js";

// Pure: a bundle that uses only the constants (a tiny node's) leaves the object out.
export const ContentType = /* @__PURE__ */ Object.freeze({
  CHANGE_CIPHER_SPEC: CONTENT_CHANGE_CIPHER_SPEC,
  ALERT: CONTENT_ALERT,
  HANDSHAKE: CONTENT_HANDSHAKE,
  APPLICATION_DATA: CONTENT_APPLICATION_DATA,
});

export interface DtlsRecord {
  readonly type: number;
  readonly version: number;
  readonly epoch: number;
  readonly seq: number;
  /** The record's fragment as received: plaintext at epoch 0, protected after. */
  readonly fragment: Uint8Array;
}

/**
 * Splits a datagram into records. A record that runs past the end, or has an unknown content type or
 * a version that is not DTLS, ends the parse: the rest of the datagram is discarded, as §4.1.2.7 says
 * invalid records are (silently).
 */
export function parseRecords(datagram: Uint8Array): DtlsRecord[] {
  const records: DtlsRecord[] = [];
  let at = 0;
  while (at + RECORD_HEADER_BYTES <= datagram.length) {
    const d = datagram;
    const type = d[at]!;
    const version = (d[at + 1]! << 8) | d[at + 2]!;
    if (type < CONTENT_CHANGE_CIPHER_SPEC || type > CONTENT_APPLICATION_DATA) break;
    if (version !== DTLS_1_2 && version !== DTLS_1_0) break;
    const epoch = (d[at + 3]! << 8) | d[at + 4]!;
    const seq =
      ((d[at + 5]! << 8) | d[at + 6]!) * 2 ** 32 +
      (((d[at + 7]! << 24) | (d[at + 8]! << 16) | (d[at + 9]! << 8) | d[at + 10]!) >>> 0);
    const length = (d[at + 11]! << 8) | d[at + 12]!;
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > d.length || length > MAX_PLAINTEXT + 2048) break;
    records.push({ type, version, epoch, seq, fragment: d.subarray(at + RECORD_HEADER_BYTES, end) });
    at = end;
  }
  return records;
}

export function writeRecord(
  w: Writer,
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragment: Uint8Array,
): void {
  w.u8(type).u16(version).u16(epoch).u48(seq).vec16(fragment);
}

export function encodeRecord(
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragment: Uint8Array,
): Uint8Array {
  const w = new Writer(RECORD_HEADER_BYTES + fragment.length);
  writeRecord(w, type, version, epoch, seq, fragment);
  return w.finish();
}

/** seq_num (epoch ‖ sequence) ‖ type ‖ version ‖ length: the AEAD's additional data. */
function additionalData(
  epoch: number,
  seq: number,
  type: number,
  version: number,
  length: number,
): Uint8Array {
  return new Writer(13).u16(epoch).u48(seq).u8(type).u16(version).u16(length).finish();
}

/** One direction's protection at one epoch: AES-128-CCM-8 or AES-128-GCM with a 4 + 8 byte nonce. */
export class RecordProtection {
  constructor(
    private readonly crypto: DtlsCrypto,
    readonly suite: CipherSuite,
    private readonly key: Uint8Array,
    private readonly fixedIv: Uint8Array,
  ) {}

  /** The nonce: the implicit salt, then epoch ‖ sequence as the explicit part (RFC 6655 §3). */
  #nonce(explicit: Uint8Array): Uint8Array {
    const n = new Uint8Array(this.fixedIv.length + explicit.length);
    n.set(this.fixedIv, 0);
    n.set(explicit, this.fixedIv.length);
    return n;
  }

  /** The protected fragment: explicit nonce ‖ ciphertext ‖ tag. */
  seal(type: number, version: number, epoch: number, seq: number, plaintext: Uint8Array): Uint8Array {
    const explicit = new Writer(8).u16(epoch).u48(seq).finish();
    const aad = additionalData(epoch, seq, type, version, plaintext.length);
    const sealed = this.crypto.seal(this.suite.aead, this.key, this.#nonce(explicit), aad, plaintext);
    const out = new Uint8Array(explicit.length + sealed.length);
    out.set(explicit, 0);
    out.set(sealed, explicit.length);
    return out;
  }

  /** The plaintext of a protected record, or undefined when it does not authenticate. */
  open(record: DtlsRecord): Uint8Array | undefined {
    const s = this.suite;
    const overhead = s.recordIvLength + s.tagLength;
    if (record.fragment.length < overhead) return undefined;
    const explicit = record.fragment.subarray(0, s.recordIvLength);
    const plaintextLength = record.fragment.length - overhead;
    if (plaintextLength > MAX_PLAINTEXT) return undefined;
    const aad = additionalData(record.epoch, record.seq, record.type, record.version, plaintextLength);
    return this.crypto.open(
      s.aead,
      this.key,
      this.#nonce(explicit),
      aad,
      record.fragment.subarray(s.recordIvLength),
    );
  }

  /** Bytes this protection adds to a record (explicit nonce and tag). */
  get overhead(): number {
    return this.suite.recordIvLength + this.suite.tagLength;
  }
}

/**
 * The 64-record sliding window of RFC 6347 §4.1.2.6 (RFC 4303 §3.4.3): a record is fresh if it is
 * newer than the newest seen, or within the last 64 and not seen. `mark` only after the record
 * authenticated, so a forged record cannot move the window.
 */
export class ReplayWindow {
  static readonly SIZE = 64;
  /** Newest sequence number marked; -1 before the first. */
  private newest = -1;
  /** Bit `seq % 64` says whether `seq` (within the window) was seen. */
  private readonly seen = new Uint8Array(ReplayWindow.SIZE / 8);

  fresh(seq: number): boolean {
    if (seq > this.newest) return true;
    if (seq <= this.newest - ReplayWindow.SIZE) return false;
    const bit = seq % ReplayWindow.SIZE;
    return (this.seen[bit >>> 3]! & (1 << (bit & 7))) === 0;
  }

  mark(seq: number): void {
    if (seq > this.newest) {
      // Clear the slots the window slides over (at most 64 of them).
      const from = Math.max(this.newest + 1, seq - ReplayWindow.SIZE + 1);
      for (let s = from; s <= seq; s++) {
        const bit = s % ReplayWindow.SIZE;
        this.seen[bit >>> 3]! &= ~(1 << (bit & 7));
      }
      if (seq - this.newest >= ReplayWindow.SIZE) this.seen.fill(0);
      this.newest = seq;
    }
    const bit = seq % ReplayWindow.SIZE;
    this.seen[bit >>> 3]! |= 1 << (bit & 7);
  }
}
