/**
 * What a host gives the tiny node (docs/TINY-NODE.md): the few side effects the portable client needs,
 * as plain functions an embedded runtime can implement in its own glue. Nothing else is assumed: no
 * timers API, no sockets, no crypto, no TextEncoder.
 */
import type { LogLevel } from "../core/interfaces.js";

export interface TinyHost {
  /** Puts one datagram on the wire to the gateway. Never throws for network conditions. */
  send(datagram: Uint8Array): void;
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /**
   * Arms the host's one timer: `fire` runs once, `delayMs` from now. A new call replaces the pending
   * one; the node keeps its own queue of deadlines on top of it.
   */
  setTimer(delayMs: number, fire: () => void): void;
  /** Disarms the timer (nothing is due). */
  clearTimer(): void;
  /** `n` cryptographically random bytes (keys, nonces, tokens): the host's hardware RNG. */
  random(n: number): Uint8Array;
  /**
   * The node's cryptography: the host's own (a hardware AES engine, mbedTLS), or the pure-JavaScript
   * `jsCrypto` (js-crypto.ts, bundled apart as cxmpp-crypto.mjs) where it has none. Every node needs
   * `hmacSha256` (the connect proof); a coaps node on jsDtls all four (TinyDtls.needs).
   */
  readonly crypto?: TinyCrypto;
  /**
   * DTLS for a coaps:// device: the host's own (Zephyr's DTLS sockets, ESP-IDF esp-tls, RIOT sock_dtls,
   * mbedTLS or tinydtls over the chip's crypto), or the pure-JavaScript `jsDtls` (js-dtls.ts, bundled
   * apart as cxmpp-dtls.mjs) where it has none. A plain coap:// device needs none.
   */
  readonly dtls?: TinyDtls;
  /** Optional log sink. */
  log?(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Cryptography for the tiny node: AES-128-CCM-8 only, the one suite it offers. */
export interface TinyCrypto {
  readonly sha256?: (data: Uint8Array) => Uint8Array;
  readonly hmacSha256?: (key: Uint8Array, data: Uint8Array) => Uint8Array;
  /** AES-128-CCM with an 8-byte tag, 12-byte nonce: ciphertext ‖ tag. */
  readonly aes128Ccm8Seal?: (
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
  ) => Uint8Array;
  /** Undefined when the tag does not verify. */
  readonly aes128Ccm8Open?: (
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
  ) => Uint8Array | undefined;
}

/**
 * A datagram path to the gateway, one way each: what the node hands a DTLS client below it (its raw
 * socket: `host.send`, and the datagrams the host gives `node.receive`), and what a DTLS session is
 * above it (the same shape, carrying plaintext).
 */
export interface TinyDatagrams {
  /** Puts one datagram on the way to the gateway. */
  send(datagram: Uint8Array): void;
  /** Sets the one hook that gets each datagram from the gateway (a new call replaces it). */
  onReceive(handler: (datagram: Uint8Array) => void): void;
}

/** A DTLS session to the gateway: plaintext datagrams in and out once `connect()` resolved. */
export interface TinyDtlsSession extends TinyDatagrams {
  /** Handshakes unless a session is up; resolves once it is, rejects if it fails (node.connect with it). */
  connect(): Promise<void>;
  /** Ends the session (close_notify). */
  close(): void;
}

/** What a DTLS client gets from the node: the device file's credentials and the node's own services. */
export interface TinyDtlsOptions {
  /** The gateway, `HOST:PORT` (IPv6 in brackets), from the device file's `coaps://` URI. */
  readonly gateway: string;
  /** The PSK identity (the device file's identity). */
  readonly identity: string;
  /** The PSK (the device file's key). */
  readonly psk: Uint8Array;
  /** Largest datagram (TinyNodeOptions.mtu), if the application set one. */
  readonly mtu?: number;
  /** The host's clock (TinyHost.now). */
  readonly now: () => number;
  /**
   * A deadline on the node's own timer queue, which shares the host's one timer with the node's other
   * deadlines: a DTLS client in JavaScript schedules its flights here instead of keeping a queue.
   */
  readonly after: (delayMs: number, task: () => void) => { cancel(): void };
  /** The host's random bytes (TinyHost.random). */
  readonly random: (n: number) => Uint8Array;
  /** The host's crypto (TinyHost.crypto), with every function `TinyDtls.needs` names. */
  readonly crypto: TinyCrypto;
  /** The host's log sink (TinyHost.log), or a no-op. */
  readonly log: (level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>) => void;
}

/**
 * DTLS as a host gives it: `client` makes the session of a coaps node (once, in createTinyNode).
 * `socket` is the node's raw datagram path, which a DTLS client in JavaScript runs over; a host whose
 * own DTLS socket talks to the gateway itself ignores it, and hands the session's plaintext to its
 * receive hook instead of calling `node.receive`.
 */
export interface TinyDtls {
  client(socket: TinyDatagrams, options: TinyDtlsOptions): TinyDtlsSession;
  /**
   * The TinyCrypto functions `client` uses from `options.crypto`: createTinyNode checks them with its
   * own needs and throws one TypeError naming all that the host lacks. A host's own DTLS needs none.
   */
  readonly needs?: readonly (keyof TinyCrypto)[];
}
