/**
 * The device file a builder flashes onto the node (docs/PROTOCOL.md §5), read on the node itself: one
 * CBOR map {0: gateway URI, 1: identity, 2: key, 3: JID, 4: dictionary id}, as `cxmpp provision add
 * NAME --out FILE` writes it.
 */
import { SessionFormatError, SessionReader, type Value } from "../core/session/cbor.js";

export interface TinyDevice {
  /** `coaps://HOST:PORT` (DTLS) or `coap://HOST:PORT`; a bare `HOST:PORT` is coap. */
  readonly gateway: string;
  /** The PSK identity and connect identity. */
  readonly identity: string;
  /** The device key: the DTLS PSK and the connect key. */
  readonly key: Uint8Array;
  readonly jid?: string;
  readonly dictionary?: string;
}

/** Decodes a CBOR device file; throws SessionFormatError naming what is wrong. */
export function decodeDeviceFile(bytes: Uint8Array): TinyDevice {
  const r = new SessionReader(bytes);
  const m: Value = r.read();
  if (!r.done) throw new SessionFormatError("bytes after the device file's map", r.pos);
  if (!(m instanceof Map)) throw new SessionFormatError("a device file is a CBOR map", 0);
  const text = (k: number, what: string): string => {
    const v = m.get(k);
    if (typeof v !== "string" || v === "") throw new SessionFormatError(`device file: no ${what}`, 0);
    return v;
  };
  const key = m.get(2);
  if (!(key instanceof Uint8Array) || key.length === 0)
    throw new SessionFormatError("device file: no key", 0);
  const jid = m.get(3);
  const dictionary = m.get(4);
  return {
    gateway: text(0, "gateway"),
    identity: text(1, "identity"),
    key,
    ...(typeof jid === "string" ? { jid } : {}),
    ...(typeof dictionary === "string" ? { dictionary } : {}),
  };
}

export interface GatewayAddress {
  readonly secure: boolean;
  /** `HOST:PORT` as the core spells peers (IPv6 in brackets). */
  readonly peer: string;
}

/** `coaps://HOST:PORT`, `coap://HOST:PORT` or `HOST:PORT` (RFC 7252 §6: default ports 5684, 5683). */
export function gatewayAddress(uri: string): GatewayAddress {
  const m = /^(coaps?):\/\/([^/?#@]+?)\/?$/.exec(uri);
  const secure = m?.[1] === "coaps";
  const authority = m ? m[2]! : uri;
  const hasPort = /^(\[[^\]]+\]|[^:[\]]+):\d{1,5}$/.test(authority);
  if (!hasPort && !m) throw new SessionFormatError(`gateway address ${uri}: expected coaps://HOST:PORT`, 0);
  return { secure, peer: hasPort ? authority : `${authority}:${secure ? 5684 : 5683}` };
}
