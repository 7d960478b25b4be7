/**
 * cxmpp session messages (docs/PROTOCOL.md §3): what travels in CoAP payloads between a node and its
 * gateway. Pure data and parsing; the state machines live in node-client.ts (node side) and gateway/
 * (gateway side).
 *
 *   POST /c   connect        request  {0: identity, 1: dictionary id, 2: resume token?, 3: proof?, 4: wake?,
 *                                      5: downlink frames received?, 6: frame format read?}
 *                            response {0: session id, 1: resume token, 2: h (uplink frames stored),
 *                                      3: node JID, 4: aliases, 5: downlink count expected next,
 *                                      6: next telemetry number, 7: frame format read?}
 *   POST /u   uplink         request  [seq, ack, wake?] bstr(frame)*      CON: reliable
 *   (or /)                            [0, ack, t, wake?] bstr(frame)*     NON: telemetry number t
 *                                     t bstr(frame)*                      NON telemetry, format 2 (§3.3)
 *                            response (2.04) empty = every frame stored; else [h, dseq, more?] bstr(frame)*
 *   GET  /d   downlink       Observe (RFC 7641) for always-on nodes; notification [h, dseq] bstr(frame)*
 */
import { encodeSequence, SessionFormatError, SessionReader, type Value } from "./cbor.js";

export const PATH_CONNECT = "c";
export const PATH_UPLINK = "u";
/** The uplink at the root (no Uri-Path option: 2 bytes less a datagram), for format 2 peers (§3.3). */
export const PATH_UPLINK_ROOT = "";
export const PATH_DOWNLINK = "d";
/** The same paths as one object (the constants are what a bundler inlines, as registry.ts's numbers). */
export const Paths = /* @__PURE__ */ Object.freeze({
  CONNECT: PATH_CONNECT,
  UPLINK: PATH_UPLINK,
  UPLINK_ROOT: PATH_UPLINK_ROOT,
  DOWNLINK: PATH_DOWNLINK,
  CORE: ".well-known/core",
});

/**
 * The frame format this side reads and the session features that come with it (docs/PROTOCOL.md §3.2):
 * 2 = templates and deltas (docs/FORMAT.md §6.6), the uplink at the root, compact NON telemetry.
 */
export const SESSION_FORMAT = 2;

/** The domain-separation label of the connect proof (HMAC-SHA-256 input prefix). */
export const PROOF_LABEL = "cxmpp-connect-v1";
/**
 * Bytes of the gateway nonce carried in the CoAP Echo option (RFC 9175 §2, at most 40): issue time,
 * randomness and the gateway's MAC over both and the node's address, so the gateway keeps no state per
 * challenge (docs/PROTOCOL.md §3.2). The node only echoes it.
 */
export const NONCE_BYTES = 12;
/** Bytes of the connect proof: HMAC-SHA-256 truncated (RFC 2104 §5 allows truncation to ≥ 80 bits). */
export const PROOF_BYTES = 16;

export interface ConnectRequest {
  readonly identity: string;
  readonly dictionary: string;
  readonly resume?: Uint8Array;
  readonly proof?: Uint8Array;
  /** Seconds until the node next wakes; 0 or absent: always on. */
  readonly wake?: number;
  /**
   * Downlink frames the node has received in order, when it still knows (a resume, not a reboot): the
   * gateway counts them delivered before it renumbers the rest, so none is handed to the node twice.
   */
  readonly ack?: number;
  /** The highest frame format the node reads (absent: 1). */
  readonly format?: number;
}

export interface ConnectResponse {
  readonly session: number;
  readonly resume: Uint8Array;
  /** Uplink frames the gateway has stored in this session (the node resends from h + 1). */
  readonly h: number;
  readonly jid: string;
  /** Codec aliases (docs/FORMAT.md §6): the node's JID, the gateway domain, its allowed peers. */
  readonly aliases: readonly string[];
  /** Downlink frames the gateway counts as delivered (the node's `ack` must continue from here). */
  readonly delivered: number;
  /**
   * The next telemetry number the gateway accepts: NON readings are numbered per device, never reset
   * by a connect, so that a replayed reading is never routed twice (docs/PROTOCOL.md §3.3).
   */
  readonly telemetry: number;
  /** The frame format both sides use from now on, min of theirs (absent: 1, a gateway of format 1). */
  readonly format?: number;
}

export interface Uplink {
  /** Sequence number of the first frame (1-based); with no frames, the next sequence number. */
  readonly seq: number;
  /** Downlink frames the node has received in order (XEP-0198 `h` the other way). */
  readonly ack: number;
  readonly wake?: number;
  /** With seq = 0 (telemetry): the reading's telemetry number, increasing per device. */
  readonly t?: number;
  /**
   * Format 2 NON telemetry: the payload is `t` then the frames, no header array, no ack and no wake
   * (the next CON uplink or poll carries those). Decoded, `ack` is then 0 (acknowledges nothing new).
   */
  readonly compact?: boolean;
  readonly frames: readonly Uint8Array[];
}

export interface Downlink {
  /** Uplink frames stored so far. */
  readonly h: number;
  /** Sequence number of the first frame carried. */
  readonly dseq: number;
  /** More downlink is waiting: the node should poll again now (the mailbox drains over exchanges). */
  readonly more?: boolean;
  readonly frames: readonly Uint8Array[];
}

const text = (v: Value | undefined, what: string): string => {
  if (typeof v !== "string") throw new SessionFormatError(`${what} must be text`, 0);
  return v;
};
const uint = (v: Value | undefined, what: string): number => {
  if (typeof v !== "number") throw new SessionFormatError(`${what} must be an unsigned integer`, 0);
  return v;
};
const bytes = (v: Value | undefined, what: string): Uint8Array => {
  if (!(v instanceof Uint8Array)) throw new SessionFormatError(`${what} must be bytes`, 0);
  return v;
};

function map(data: Uint8Array): Map<number, Value> {
  const r = new SessionReader(data);
  const v = r.read();
  if (!(v instanceof Map) || !r.done) throw new SessionFormatError("expected one CBOR map", 0);
  return v;
}

export function encodeConnectRequest(c: ConnectRequest): Uint8Array {
  const m = new Map<number, Value>([
    [0, c.identity],
    [1, c.dictionary],
  ]);
  if (c.resume) m.set(2, c.resume);
  if (c.proof) m.set(3, c.proof);
  if (c.wake !== undefined) m.set(4, c.wake);
  if (c.ack !== undefined) m.set(5, c.ack);
  if (c.format !== undefined) m.set(6, c.format);
  return encodeSequence([m]);
}

export function decodeConnectRequest(data: Uint8Array): ConnectRequest {
  const m = map(data);
  return {
    identity: text(m.get(0), "identity"),
    dictionary: text(m.get(1), "dictionary"),
    ...(m.has(2) ? { resume: bytes(m.get(2), "resume token") } : {}),
    ...(m.has(3) ? { proof: bytes(m.get(3), "proof") } : {}),
    ...(m.has(4) ? { wake: uint(m.get(4), "wake") } : {}),
    ...(m.has(5) ? { ack: uint(m.get(5), "ack") } : {}),
    ...(m.has(6) ? { format: uint(m.get(6), "format") } : {}),
  };
}

export function encodeConnectResponse(c: ConnectResponse): Uint8Array {
  const m = new Map<number, Value>([
    [0, c.session],
    [1, c.resume],
    [2, c.h],
    [3, c.jid],
    [4, [...c.aliases]],
    [5, c.delivered],
    [6, c.telemetry],
  ]);
  if (c.format !== undefined) m.set(7, c.format);
  return encodeSequence([m]);
}

export function decodeConnectResponse(data: Uint8Array): ConnectResponse {
  const m = map(data);
  const aliases = m.get(4);
  if (!Array.isArray(aliases)) throw new SessionFormatError("aliases must be an array", 0);
  return {
    session: uint(m.get(0), "session"),
    resume: bytes(m.get(1), "resume token"),
    h: uint(m.get(2), "h"),
    jid: text(m.get(3), "jid"),
    aliases: aliases.map((a) => text(a, "alias")),
    delivered: uint(m.get(5), "delivered"),
    telemetry: uint(m.get(6), "telemetry"),
    ...(m.has(7) ? { format: uint(m.get(7), "format") } : {}),
  };
}

export function encodeUplink(u: Uplink): Uint8Array {
  if (u.seq === 0 && u.t === undefined)
    throw new SessionFormatError("a telemetry uplink carries its number t", 0);
  if (u.compact === true) {
    if (u.seq !== 0) throw new SessionFormatError("only telemetry is compact", 0);
    return encodeSequence([u.t!, ...u.frames]);
  }
  const header: Value[] = [u.seq, u.ack];
  if (u.seq === 0) header.push(u.t!);
  if (u.wake !== undefined) header.push(u.wake);
  return encodeSequence([header, ...u.frames]);
}

/** Frames are CBOR byte strings after the header; anything else after the header is an error. */
function frames(r: SessionReader): Uint8Array[] {
  const out: Uint8Array[] = [];
  while (!r.done) {
    const at = r.pos;
    const f = r.read();
    if (!(f instanceof Uint8Array)) throw new SessionFormatError("a frame is a byte string", at);
    out.push(f);
  }
  return out;
}

export function decodeUplink(data: Uint8Array): Uplink {
  const r = new SessionReader(data);
  const header = r.read();
  if (typeof header === "number") {
    // Format 2 NON telemetry: `t`, then the frames (§3.3).
    if (header < 1) throw new SessionFormatError("telemetry numbers start at 1", 0);
    return { seq: 0, ack: 0, t: header, compact: true, frames: frames(r) };
  }
  const telemetry = Array.isArray(header) && header[0] === 0;
  if (!Array.isArray(header) || header.length < (telemetry ? 3 : 2) || header.length > (telemetry ? 4 : 3)) {
    throw new SessionFormatError(
      "uplink header is [seq, ack, wake?], or [0, ack, t, wake?] for telemetry",
      0,
    );
  }
  const w = telemetry ? 3 : 2;
  return {
    seq: uint(header[0], "seq"),
    ack: uint(header[1], "ack"),
    ...(telemetry ? { t: uint(header[2], "t") } : {}),
    ...(header.length > w ? { wake: uint(header[w], "wake") } : {}),
    frames: frames(r),
  };
}

export function encodeDownlink(d: Downlink): Uint8Array {
  return encodeSequence([d.more ? [d.h, d.dseq, 1] : [d.h, d.dseq], ...d.frames]);
}

export function decodeDownlink(data: Uint8Array): Downlink {
  const r = new SessionReader(data);
  const header = r.read();
  if (!Array.isArray(header) || header.length < 2 || header.length > 3) {
    throw new SessionFormatError("downlink header is [h, dseq, more?]", 0);
  }
  const more = header.length === 3 && uint(header[2], "more") === 1;
  return {
    h: uint(header[0], "h"),
    dseq: uint(header[1], "dseq"),
    ...(more ? { more } : {}),
    frames: frames(r),
  };
}

/** The bytes the connect proof covers: label, nonce, identity, dictionary id, resume token, ack if sent. */
export function proofInput(
  nonce: Uint8Array,
  c: Pick<ConnectRequest, "identity" | "dictionary" | "resume" | "ack" | "format">,
): Uint8Array {
  const fields: Value[] = [PROOF_LABEL, nonce, c.identity, c.dictionary, c.resume ?? new Uint8Array(0)];
  if (c.ack !== undefined) fields.push(c.ack);
  // The format too (named, so it is never read as an ack), so an on-path rewrite cannot change it.
  if (c.format !== undefined) fields.push("format", c.format);
  return encodeSequence(fields);
}

/** /.well-known/core (RFC 6690): the session resources and the dictionary id. */
export function linkFormat(dictionaryId: string): string {
  return [
    `</c>;rt="cxmpp.connect";dict="${dictionaryId}"`,
    `</u>;rt="cxmpp.uplink";ct=65101`,
    `</>;rt="cxmpp.uplink";ct=65101`,
    `</d>;rt="cxmpp.downlink";obs;ct=65101`,
  ].join(",");
}
