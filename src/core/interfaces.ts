/**
 * The narrow interfaces the portable core depends on (docs/ARCHITECTURE.md: src/core). Everything with a side
 * effect — sending datagrams, reading the time, drawing random numbers, arming timers, logging — comes
 * in through these, so the same core runs on Node.js, on an embedded engine, and in deterministic tests
 * with a fake clock and a lossy in-memory link.
 */

/** A transport address as the transport spells it (e.g. `127.0.0.1:5683`, `[::1]:5683`). */
export type PeerAddress = string & { readonly __brand: "PeerAddress" };

export function peerAddress(host: string, port: number): PeerAddress {
  return (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`) as PeerAddress;
}

export interface DatagramTransport {
  /** Sends one datagram; never throws for network conditions (a lost datagram is simply lost). */
  send(data: Uint8Array, peer: PeerAddress): void;
  /** Registers the one receiver of incoming datagrams. */
  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void;
  close(): void;
}

/** Milliseconds on a monotonic clock. */
export interface Clock {
  now(): number;
}

export interface Random {
  /** A uniformly distributed integer in [0, 2^32). */
  uint32(): number;
}

export interface Cancellable {
  cancel(): void;
}

/** One-shot timers; the core keeps its own queue on top (see TimerQueue), so it asks for few. */
export interface Scheduler {
  /** Runs `task` once, `delayMs` from now (on the clock the scheduler belongs to). */
  schedule(delayMs: number, task: () => void): Cancellable;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** A logger that drops everything (the default where none is given). */
export const silentLogger: Logger = { log: () => {} };

/** HMAC-SHA-256 (RFC 2104), injected: Node.js has node:crypto, an embedded engine brings its own. */
export interface Mac {
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
}
