/**
 * Every default of the gateway in one place, with the reason for it (as codec/limits.ts does for the
 * codec). gateway/config.ts reads them for its keys; the session layer reads the same values when a
 * caller (a test, a benchmark) leaves an option out. Operators change them through the config keys.
 */

export const GATEWAY_DEFAULTS = Object.freeze({
  /** Loopback: plain CoAP is only for trusted links (docs/PROTOCOL.md), so nothing listens outside. */
  listen: "127.0.0.1:5683",
  /**
   * CoAP over DTLS (coaps, RFC 7252 §9) on its registered port, beside plain CoAP; `dtls_listen` defaults
   * to the host of `listen` with this port ("127.0.0.1:5684" with the default `listen`).
   */
  dtlsPort: 5684,
  /**
   * Plain CoAP on an address other than loopback must be asked for: on a radio link anyone in range can
   * forge and read it (issue 10).
   */
  allowPlainCoap: false,
  /**
   * DTLS handshakes in progress at once (after the cookie exchange, so each has a real return address):
   * beyond it new ones are refused until one finishes or times out. 1024 is far above a fleet's
   * reconnect wave after a gateway restart, and bounds the memory half-open handshakes hold.
   */
  dtlsMaxHandshakes: 1024,
  /** Established DTLS sessions kept at once; beyond it the longest idle is dropped (it handshakes again). */
  dtlsMaxSessions: 100_000,
  /**
   * A DTLS session silent this long is forgotten: a day, like a mailbox's stanzas (a node asleep longer
   * handshakes again when it wakes: a few hundred bytes).
   */
  dtlsSessionIdleS: 86_400,
  /** `.localhost` never resolves outside this machine (RFC 6761 §6.3). */
  domain: "iot.localhost",
  dataDir: "./cxmpp-data",
  logLevel: "info",
  /** The resource of every node's full JID: name@domain/cxmpp. */
  resource: "cxmpp",
  /**
   * Largest downlink payload in one CoAP response: 512 bytes is 2^(SZX+4) for SZX 5, fits an IPv6
   * minimum MTU (1280) with room for DTLS, and keeps one wake-up's drain to a few datagrams
   * (`cxmpp bench wake`).
   */
  maxDownlinkBytes: 512,
  /** A sleeping node's mailbox: 100 stanzas or 16 KiB, whichever comes first, for a day. */
  mailboxMaxStanzas: 100,
  mailboxMaxBytes: 16_384,
  mailboxTtlS: 86_400,
  /** A silent node's session (and its resume token) is kept a week: a battery swap or a long sleep. */
  sessionExpiryS: 7 * 86_400,
  /** "full" survives power loss (a border router's usual failure), at one fsync per commit. */
  durability: "full",
  /** Threads for the node listeners (config `cores`): 1, or 2 with the UDP sockets on their own. */
  cores: 1,
  asleepPolicy: "queue",
  /** How often mailboxes expire, sleeping nodes are noticed and metrics catch up. */
  tickMs: 1_000,
  /** How long a connect challenge's nonce stays valid (RFC 9175 §2.4: the Echo value's freshness). */
  nonceLifetimeMs: 60_000,
  /**
   * Used nonces remembered (single use). Only connects that prove a device key add one, so this bounds
   * proven connects per nonce lifetime: 10,000 a minute is far above any fleet's reconnect rate; beyond
   * it, a replayed connect within its minute is possible but still needs the captured proof.
   */
  maxUsedNonces: 10_000,
} as const);
