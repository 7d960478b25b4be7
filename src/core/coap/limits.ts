/**
 * Caps on the state an unauthenticated peer can make the CoAP stack hold. Plain CoAP trusts the link
 * (docs/ARCHITECTURE.md, security model): any datagram, from any spoofed address, can start a Block1
 * transfer, make the server keep a Block2 copy, register an observer or fill the deduplication table.
 * Each table therefore has a cap with a safe default; when a table is full the OLDEST entry goes (never
 * the newcomer refused), so a flood cannot lock legitimate peers out for a table's whole lifetime, and
 * every eviction is counted (`CoapEndpoint.tables()`, the gateway's cxmpp_coap_* metrics).
 */
import { mergeLimits } from "../../../codec/limits.js";

export interface CoapLimits {
  /**
   * Deduplication (RFC 7252 §4.5): most (peer, message id) pairs remembered. Default 16,384: every
   * message of EXCHANGE_LIFETIME (247 s) at 66 messages/s. An entry costs about 570 bytes of heap
   * besides its reply (measured by `cxmpp bench soak`), so the default holds the table near 9 MiB
   * plus replies on a border router; 65,536 took 36 MiB. Beyond it the oldest pair is forgotten: a
   * retransmission arriving after that is processed again, which cxmpp survives (the session's `h`
   * stores a CON uplink once, the telemetry number routes a NON reading once).
   */
  readonly maxDedupEntries: number;
  /**
   * Deduplication: most bytes of kept replies (ACKs with piggybacked responses) across all pairs.
   * Default 8 MiB: 65,536 replies of 128 bytes; fewer when replies are large. Beyond it, the oldest go.
   */
  readonly maxDedupBytes: number;
  /**
   * Largest payload of a 4.xx/5.xx response the server sends. Default 64: an error payload is a
   * diagnostic for humans (RFC 7252 §5.5.2); a longer one is cut (text at a character boundary, with
   * "…"), so no handler can make an error answer large, block-wise, or an echo of attacker data.
   */
  readonly maxErrorPayloadBytes: number;
  /**
   * Block1: incomplete request bodies held at once. Default 64 (64 × the 16 KiB body cap = 1 MiB).
   * When full, the least recently continued transfer is dropped (its next block gets 4.08).
   */
  readonly maxAssemblies: number;
  /**
   * Block1: incomplete bodies held for one peer address. Default 4: a node uploads one body at a time
   * (NSTART 1), and 4 leaves room for a body restarted under a new Request-Tag before the old expires.
   * When full, that peer's least recently continued transfer is dropped.
   */
  readonly maxAssembliesPerPeer: number;
  /**
   * Block2: responses kept for their later blocks. Default 256: a copy lives only while one client
   * fetches its blocks (seconds), and a node downloads one response at a time. The oldest go first.
   */
  readonly maxRepresentations: number;
  /**
   * Block2: bytes of kept responses (body and key). Default 1 MiB. A response larger than this is
   * served block by block without a copy (later blocks of GET/FETCH are computed again).
   */
  readonly maxRepresentationBytes: number;
  /**
   * Observe (RFC 7641): observers held at once. Default 4,096: a cxmpp node observes one resource
   * (its downlink, /d/<session>), and a border router serves fewer always-on nodes. When full, the
   * oldest registration is dropped (it gets no more notifications).
   */
  readonly maxObservers: number;
  /**
   * Observe: resources one peer address observes at once. Default 8 (a cxmpp node needs 1). A peer
   * observes each resource once in any case: a new registration for the same resource replaces the
   * earlier one whatever its token. When full, the peer's oldest registration is dropped.
   */
  readonly maxObserversPerPeer: number;
}

export const DEFAULT_COAP_LIMITS: CoapLimits = Object.freeze({
  maxDedupEntries: 16_384,
  maxDedupBytes: 8 * 1024 * 1024,
  maxErrorPayloadBytes: 64,
  maxAssemblies: 64,
  maxAssembliesPerPeer: 4,
  maxRepresentations: 256,
  maxRepresentationBytes: 1024 * 1024,
  maxObservers: 4_096,
  maxObserversPerPeer: 8,
});

export function resolveCoapLimits(partial: Readonly<Partial<CoapLimits>> | undefined): CoapLimits {
  const limits = mergeLimits(DEFAULT_COAP_LIMITS, partial, "CoAP");
  return limits === DEFAULT_COAP_LIMITS ? limits : Object.freeze(limits);
}

/**
 * The sizes of the stack's tables and what was evicted from them since the endpoint started, as
 * `CoapEndpoint.tables()` returns them (cheap: counters and sizes already kept, no scan).
 */
export interface CoapTables {
  /** Remembered (peer, message id) pairs, and the bytes of their kept replies. */
  readonly dedup: number;
  readonly dedupBytes: number;
  /** Incomplete Block1 bodies, and their bytes so far. */
  readonly assemblies: number;
  readonly assemblyBytes: number;
  /** Responses kept for Block2, and their bytes (body and key). */
  readonly representations: number;
  readonly representationBytes: number;
  readonly observers: number;
  /** Entries dropped because their table was full (never by expiry). */
  readonly evicted: {
    readonly dedup: number;
    readonly assemblies: number;
    readonly representations: number;
    readonly observers: number;
  };
  /** Observers replaced by a newer registration of the same peer for the same resource. */
  readonly observersReplaced: number;
  /** Block2 responses served without a copy because they exceed maxRepresentationBytes. */
  readonly representationsNotKept: number;
  /** Error responses whose payload was cut to maxErrorPayloadBytes (or to one block). */
  readonly errorPayloadsCut: number;
  /** The caps in force. */
  readonly limits: CoapLimits;
}
