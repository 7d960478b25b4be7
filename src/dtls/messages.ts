/**
 * The handshake message bodies a PSK handshake uses (RFC 5246 §7.4, RFC 6347 §4.2.1, RFC 4279 §2),
 * and the extensions this layer understands. Everything else a peer offers is parsed past and ignored.
 */
import {
  EXTENSION_EXTENDED_MASTER_SECRET,
  EXTENSION_RENEGOTIATION_INFO,
  EXTENSION_SERVER_NAME,
} from "./constants.js";
import { decodeError } from "./errors.js";
import { DTLS_1_2 } from "./record.js";
import { Reader, Writer } from "./wire.js";

// Pure: a bundle that uses only the constants (a tiny node's) leaves the object out.
export const ExtensionType = /* @__PURE__ */ Object.freeze({
  SERVER_NAME: EXTENSION_SERVER_NAME,
  /** RFC 7627: extended master secret. */
  EXTENDED_MASTER_SECRET: EXTENSION_EXTENDED_MASTER_SECRET,
  /** RFC 5746: renegotiation_info (we never renegotiate; echoing it tells clients so, §3.6). */
  RENEGOTIATION_INFO: EXTENSION_RENEGOTIATION_INFO,
});

export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface ClientHello {
  readonly version: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cookie: Uint8Array;
  readonly suites: readonly number[];
  readonly compressions: Uint8Array;
  readonly extensions: readonly Extension[];
}

function readExtensions(r: Reader): Extension[] {
  if (r.remaining === 0) return [];
  const block = r.vec16("extensions");
  const e = new Reader(block);
  const out: Extension[] = [];
  const seen = new Set<number>();
  while (e.remaining > 0) {
    const type = e.u16("extension type");
    const data = e.vec16("extension data");
    if (seen.has(type)) throw decodeError(`extension ${type} twice`);
    seen.add(type);
    out.push({ type, data });
  }
  return out;
}

function writeExtensions(w: Writer, extensions: readonly Extension[]): void {
  if (extensions.length === 0) return;
  const e = new Writer();
  for (const x of extensions) e.u16(x.type).vec16(x.data);
  w.vec16(e.finish());
}

export function parseClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body);
  const version = r.u16("client_version");
  const random = r.bytes(32, "random");
  const sessionId = r.vec8("session_id");
  if (sessionId.length > 32) throw decodeError("session_id longer than 32 bytes");
  const cookie = r.vec8("cookie");
  const suiteBytes = r.vec16("cipher_suites");
  if (suiteBytes.length === 0 || suiteBytes.length % 2 !== 0) throw decodeError("bad cipher_suites length");
  const suites: number[] = [];
  for (let i = 0; i < suiteBytes.length; i += 2) suites.push((suiteBytes[i]! << 8) | suiteBytes[i + 1]!);
  const compressions = r.vec8("compression_methods");
  if (compressions.length === 0) throw decodeError("no compression_methods");
  const extensions = readExtensions(r);
  r.done("ClientHello");
  return { version, random, sessionId, cookie, suites, compressions, extensions };
}

export function encodeClientHello(h: ClientHello): Uint8Array {
  const w = new Writer(128).u16(h.version).bytes(h.random).vec8(h.sessionId).vec8(h.cookie);
  w.u16(h.suites.length * 2);
  for (const s of h.suites) w.u16(s);
  w.vec8(h.compressions);
  writeExtensions(w, h.extensions);
  return w.finish();
}

export interface ServerHello {
  readonly version: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly suite: number;
  readonly compression: number;
  readonly extensions: readonly Extension[];
}

export function parseServerHello(body: Uint8Array): ServerHello {
  const r = new Reader(body);
  const version = r.u16("server_version");
  const random = r.bytes(32, "random");
  const sessionId = r.vec8("session_id");
  const suite = r.u16("cipher_suite");
  const compression = r.u8("compression_method");
  const extensions = readExtensions(r);
  r.done("ServerHello");
  return { version, random, sessionId, suite, compression, extensions };
}

export function encodeServerHello(h: ServerHello): Uint8Array {
  const w = new Writer(80).u16(h.version).bytes(h.random).vec8(h.sessionId).u16(h.suite).u8(h.compression);
  writeExtensions(w, h.extensions);
  return w.finish();
}

/** HelloVerifyRequest (§4.2.1): DTLS 1.0 as server_version, as the RFC recommends for any version. */
export function encodeHelloVerifyRequest(cookie: Uint8Array, version = 0xfeff): Uint8Array {
  return new Writer(3 + cookie.length).u16(version).vec8(cookie).finish();
}

export function parseHelloVerifyRequest(body: Uint8Array): { version: number; cookie: Uint8Array } {
  const r = new Reader(body);
  const version = r.u16("server_version");
  const cookie = r.vec8("cookie");
  if (cookie.length > 255) throw decodeError("cookie too long");
  r.done("HelloVerifyRequest");
  return { version, cookie };
}

/** ServerKeyExchange of plain PSK: the identity hint (RFC 4279 §2). We never send one. */
export function parsePskServerKeyExchange(body: Uint8Array): Uint8Array {
  const r = new Reader(body);
  const hint = r.vec16("psk_identity_hint");
  r.done("ServerKeyExchange");
  return hint;
}

/** ClientKeyExchange of plain PSK: the identity (RFC 4279 §2; at most 128 bytes, RFC 4279 §5.3). */
export function parsePskClientKeyExchange(body: Uint8Array): Uint8Array {
  const r = new Reader(body);
  const identity = r.vec16("psk_identity");
  r.done("ClientKeyExchange");
  if (identity.length === 0 || identity.length > 128) throw decodeError("psk_identity of bad length");
  return identity;
}

export function encodePskClientKeyExchange(identity: Uint8Array): Uint8Array {
  return new Writer(2 + identity.length).vec16(identity).finish();
}

export function hasExtension(extensions: readonly Extension[], type: number): boolean {
  return extensions.some((e) => e.type === type);
}

/** A ClientHello that can negotiate DTLS 1.2 (versions count down: 1.2 is 0xFEFD, below 1.0's). */
export function offersDtls12(version: number): boolean {
  return version <= DTLS_1_2;
}

/** renegotiation_info for an initial handshake: an empty renegotiated_connection (RFC 5746 §3.6). */
export const EMPTY_RENEGOTIATION_INFO: Extension = {
  type: EXTENSION_RENEGOTIATION_INFO,
  data: Uint8Array.of(0),
};

export const EXTENDED_MASTER_SECRET: Extension = {
  type: EXTENSION_EXTENDED_MASTER_SECRET,
  data: new Uint8Array(0),
};
