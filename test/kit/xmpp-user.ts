/**
 * An XMPP user for interop tests: xmpp.js 0.14 (`@xmpp/client`) logged in over plain c2s on loopback,
 * with every received stanza queued for `waitFor`.
 *
 * PLAIN is forced: xmpp.js picks SCRAM-SHA-1 on an unencrypted stream, which costs ~1.35 s per login
 * against ~0.02 s for PLAIN (docs/INTEROP.md); the test Prosody allows PLAIN without TLS.
 */
import { type Client, client } from "@xmpp/client";
import type { XmppError } from "@xmpp/connection";
import { type Element, xml } from "@xmpp/xml";

/**
 * Received items in arrival order. `waitFor` resolves with the first item not yet taken that matches,
 * waiting for one if none has arrived, and takes it: a second `waitFor` with the same predicate needs a
 * second matching item, so a test cannot pass on a stanza an earlier step already used.
 */
export class Inbox<T> {
  /** Every item ever received, taken or not (for diagnostics). */
  readonly received: T[] = [];
  private readonly pending: T[] = [];
  private readonly waiters = new Set<{
    match: (item: T) => boolean;
    take: (item: T) => void;
    fail: (error: Error) => void;
  }>();
  private failure: Error | undefined;

  constructor(private readonly describe: (item: T) => string) {}

  push(item: T): void {
    this.received.push(item);
    for (const w of this.waiters)
      if (w.match(item)) {
        w.take(item);
        return;
      }
    this.pending.push(item);
  }

  /** Rejects current and future waits: the peer is gone, nothing more will arrive. */
  fail(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiters) w.fail(error);
  }

  waitFor(predicate: (item: T) => boolean, timeoutMs = 5_000, what = "a matching item"): Promise<T> {
    const index = this.pending.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.pending.splice(index, 1)[0]!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const waiter = {
        match: predicate,
        take: (item: T) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(item);
        },
        fail: (error: Error) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const seen = this.pending.map(this.describe).join("\n  ") || "(nothing)";
        reject(new Error(`no ${what} within ${timeoutMs} ms; not taken so far:\n  ${seen}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}

export interface UserOptions {
  /** `xmpp://host:port`, e.g. `Prosody.c2sService`. */
  readonly service: string;
  readonly domain: string;
  readonly username: string;
  readonly password: string;
  /** Resource to request at binding (RFC 6120 §7.7). Default: the server chooses. */
  readonly resource?: string;
  /**
   * Send initial presence after login (RFC 6121 §4.2). Default true: without it the server does not
   * deliver messages addressed to the bare JID to this resource (RFC 6121 §8.5.2.1.1).
   */
  readonly presence?: boolean;
}

export interface XmppUser {
  /** The full JID the server bound. */
  readonly jid: string;
  /** The xmpp.js client, for what the kit does not wrap. */
  readonly client: Client;
  /** Every stanza received since login (taken by `waitFor` or not). */
  readonly received: readonly Element[];
  /** Every `error` event the client emitted (stream errors, socket errors). */
  readonly errors: readonly XmppError[];
  send(stanza: Element): Promise<void>;
  /** The first received stanza, not taken yet, that matches; see `Inbox`. Default timeout 5 s. */
  waitFor(predicate: (stanza: Element) => boolean, timeoutMs?: number): Promise<Element>;
  /** Closes the stream; no reconnect is attempted afterwards. */
  stop(): Promise<void>;
}

export async function connectUser(options: UserOptions): Promise<XmppUser> {
  const { service, domain, username, password, resource } = options;
  const xmpp = client({
    service,
    domain,
    username,
    password,
    ...(resource === undefined ? {} : { resource }),
    credentials: (authenticate, mechanisms) => {
      if (!mechanisms.includes("PLAIN"))
        throw new Error(`server offers no PLAIN (only ${mechanisms.join(", ")})`);
      return authenticate({ username, password }, "PLAIN");
    },
  });
  const inbox = new Inbox<Element>((s) => s.toString());
  const errors: XmppError[] = [];
  // Without a listener an `error` event would be thrown by the EventEmitter and crash the test worker.
  xmpp.on("error", (error) => {
    errors.push(error);
  });
  xmpp.on("stanza", (stanza) => inbox.push(stanza));
  xmpp.on("offline", () => inbox.fail(new Error(`${username}@${domain} is offline`)));

  try {
    await xmpp.start();
  } catch (error) {
    xmpp.reconnect.stop();
    await xmpp.stop().catch(() => undefined);
    throw new Error(`${username}@${domain} could not log in at ${service}: ${String(error)}`);
  }
  if (options.presence ?? true) await xmpp.send(xml("presence"));

  return {
    jid: xmpp.jid!.toString(),
    client: xmpp,
    received: inbox.received,
    errors,
    send: (stanza) => xmpp.send(stanza),
    waitFor: (predicate, timeoutMs) =>
      inbox.waitFor(predicate, timeoutMs, `stanza for ${username}@${domain}`),
    stop: async () => {
      // The reconnect plugin would otherwise schedule a reconnect on `disconnect` and hold the process ~1 s.
      xmpp.reconnect.stop();
      await xmpp.stop();
    },
  };
}
