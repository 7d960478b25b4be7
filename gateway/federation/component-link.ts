/**
 * The XEP-0114 link to the XMPP server, with @xmpp/component. One concern: keep a component session up
 * (connect, handshake, reconnect with backoff, fail over between servers), hand received stanzas on as
 * codec trees, send trees.
 *
 * Several servers (an ejabberd cluster's nodes, whose routes to components are cluster-wide): the link
 * uses one at a time, in the configured order; when the one in use goes down it moves on to the next at
 * once, and only after every server failed in a row does it back off. It stays on whichever works (no
 * fail-back): any member of the cluster routes the component's domain equally well.
 *
 * What to send and when it counts as delivered is the outbox pump's business (outbox-pump.ts): a switch
 * of server is an offline/online pair to it, after which it resends what was not confirmed.
 */
import { performance } from "node:perf_hooks";
import { StringDecoder } from "node:string_decoder";
import { type Component, component } from "@xmpp/component";
import type { XmppError } from "@xmpp/connection";
import type { Element } from "@xmpp/xml";
import { el, JABBER_CLIENT, type XElement } from "../../codec/index.js";
import { type Logger, silentLogger } from "../../src/core/index.js";
import { within } from "../../src/node/index.js";
import { isLoopback } from "../config.js";
import { fromLtx, toXml } from "../xml/stanza-xml.js";
import { StreamParser } from "../xml/xml-parser.js";
import { ComponentAuthError } from "./errors.js";
import { LinkCertificateError, type LinkTls, TlsLinkSocket } from "./tls-socket.js";

export { ComponentAuthError, LinkCertificateError };

export interface ComponentLinkOptions {
  /**
   * The servers' component listeners in order of preference: `xmpp://host:port` (plain TCP) or
   * `xmpps://host:port` (Direct TLS, tls-socket.ts).
   */
  readonly services: readonly string[];
  readonly domain: string;
  readonly secret: string;
  /** How xmpps:// servers are verified; default: the system's CAs and the URL's host name. */
  readonly tls?: LinkTls;
  readonly logger?: Logger;
  /** First reconnect delay after every server failed; doubles up to maxBackoffMs. Default 1 s. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** A server that neither accepts nor refuses within this long counts as down. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /**
   * After this long without a byte from the server the link sends a probe (a message from the component's
   * domain to itself, which the server routes back); default 30 s.
   */
  readonly keepaliveMs?: number;
  /** With nothing received for keepaliveMs + this long, the server counts as gone; default 10 s. */
  readonly keepaliveTimeoutMs?: number;
}

/** The probe's payload; the barrier namespace of the outbox pump, a different element. */
const PROBE_NS = "urn:cxmpp:barrier:0";

export interface LinkEvents {
  stanza(stanza: XElement): void;
  online(): void;
  offline(): void;
}

export class ComponentLink {
  private xmpp: Component | undefined;
  private stopped = false;
  private up = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  /** The server in use, or to be tried next: an index into options.services. */
  private index = 0;
  private readonly logger: Logger;
  /** Times the link came up (for metrics and tests). */
  connects = 0;
  /** Times the link came up on another server than the one before (for metrics and tests). */
  failovers = 0;
  private lastOnline: number | undefined;
  /** When the current connection last received anything (ms, performance clock). */
  private lastInput = 0;
  private keepalive: NodeJS.Timeout | undefined;
  /** Times a silent server was given up on (for metrics and tests). */
  silences = 0;

  constructor(
    private readonly options: ComponentLinkOptions,
    private readonly events: LinkEvents,
  ) {
    if (options.services.length === 0) throw new Error("ComponentLink: no XMPP server to connect to");
    this.logger = options.logger ?? silentLogger;
    this.delay = options.backoffMs ?? 1000;
    for (const service of options.services) {
      const url = new URL(service);
      // XEP-0114 has no encryption of its own: off loopback the stanzas and the handshake are readable.
      if (url.protocol === "xmpp:" && !isLoopback(bareHost(url))) {
        this.logger.log("warn", "federation.plaintext", {
          service,
          advice: "the component stream and its handshake cross the network in the clear; use xmpps://",
        });
      }
    }
  }

  get online(): boolean {
    return this.up;
  }

  /** The server in use (or tried next while the link is down). */
  get service(): string {
    return this.options.services[this.index]!;
  }

  /**
   * Connects. Resolves once the link is up or, if no server can be reached, once each was tried (it
   * keeps trying in the background); rejects with ComponentAuthError when a server refuses the secret,
   * which no retry would change.
   */
  async start(): Promise<void> {
    if (!(await this.round())) this.schedule();
  }

  /**
   * Tries each server once, from the current one on; true once one is up. A refused secret is thrown:
   * the servers of one deployment share it.
   */
  private async round(): Promise<boolean> {
    for (let tried = 0; tried < this.options.services.length && !this.stopped; tried++) {
      try {
        await this.connect(this.service);
        return true;
      } catch (error) {
        if (error instanceof ComponentAuthError) throw error;
        const next = this.options.services[(this.index + 1) % this.options.services.length]!;
        this.logger.log("warn", "federation.unreachable", {
          service: this.service,
          error: (error as Error).message,
          ...(this.options.services.length > 1 ? { next } : { retryMs: this.delay }),
        });
        this.advance();
      }
    }
    return false;
  }

  private advance(): void {
    this.index = (this.index + 1) % this.options.services.length;
  }

  private async connect(service: string): Promise<void> {
    const xmpp = component({
      service,
      domain: this.options.domain,
      password: this.options.secret,
    });
    // Our own backoff instead of the plugin's fixed 1 s, and no iq auto-replies: @xmpp/component's
    // iq callee answers every get/set nobody handles with service-unavailable, but iqs to nodes are
    // answered by the nodes, later (its middleware is the only "element" listener).
    xmpp.reconnect.stop();
    xmpp.removeAllListeners("element");
    plugParser(xmpp);
    if (new URL(service).protocol === "xmpps:") plugTls(xmpp, this.options.tls ?? {});
    this.xmpp = xmpp;
    let authError: ComponentAuthError | undefined;
    xmpp.on("error", (error: XmppError) => {
      if (error.condition === "not-authorized") {
        authError = new ComponentAuthError(
          `the XMPP server at ${service} refused the component secret for ${this.options.domain} (${error.condition}${error.text ? `: ${error.text}` : ""})`,
        );
      } else if (error instanceof LinkCertificateError) {
        this.logger.log("error", "federation.certificate", { service, error: error.message });
      } else this.logger.log("debug", "federation.error", { error: error.message }); // said again by unreachable/offline
    });
    xmpp.on("input", () => {
      this.lastInput = performance.now();
    });
    xmpp.on("stanza", (element: Element) => {
      if (element.is("message") && element.getChild("probe", PROBE_NS)) return; // our keepalive, back
      let tree: XElement;
      try {
        tree = fromLtx(element as never, JABBER_CLIENT);
      } catch (error) {
        this.logger.log("warn", "federation.bad_stanza", { error: (error as Error).message });
        return;
      }
      this.events.stanza(tree);
    });
    xmpp.on("online", () => {
      this.up = true;
      this.connects++;
      if (this.lastOnline !== undefined && this.lastOnline !== this.index) this.failovers++;
      this.lastOnline = this.index;
      this.delay = this.options.backoffMs ?? 1000;
      this.logger.log("info", "federation.online", { service, domain: this.options.domain });
      this.watch(xmpp);
      this.events.online();
    });
    xmpp.on("disconnect", () => this.lost(xmpp));
    try {
      await within(xmpp.start(), this.options.connectTimeoutMs ?? 10_000, "no answer");
    } catch (error) {
      await this.dispose(xmpp);
      if (authError) throw authError;
      throw error;
    }
    if (authError) throw authError;
  }

  /**
   * A server that vanished without closing the connection (power, network) would otherwise hold the
   * link for as long as TCP retransmits (minutes): silence is probed, and a probe unanswered ends it.
   */
  private watch(xmpp: Component): void {
    clearInterval(this.keepalive);
    const idleMs = this.options.keepaliveMs ?? 30_000;
    const timeoutMs = this.options.keepaliveTimeoutMs ?? 10_000;
    this.lastInput = performance.now();
    let probed = false;
    this.keepalive = setInterval(
      () => {
        if (this.xmpp !== xmpp || !this.up) return;
        const silent = performance.now() - this.lastInput;
        if (silent < idleMs) {
          probed = false;
          return;
        }
        if (silent >= idleMs + timeoutMs) {
          this.silences++;
          this.logger.log("warn", "federation.silent", {
            service: this.service,
            silentMs: Math.round(silent),
          });
          (xmpp as unknown as { socket?: { destroy?(): void } | null }).socket?.destroy?.();
          this.lost(xmpp);
          return;
        }
        if (probed) return;
        probed = true;
        const domain = this.options.domain;
        this.send(el(JABBER_CLIENT, "message", { from: domain, to: domain }, el(PROBE_NS, "probe", {})));
      },
      Math.max(50, Math.min(idleMs, timeoutMs) / 4),
    );
    this.keepalive.unref();
  }

  private lost(xmpp: Component): void {
    if (this.xmpp !== xmpp) return;
    clearInterval(this.keepalive);
    const was = this.up;
    this.up = false;
    if (was) {
      const from = this.service;
      // The server in use went away: the next one is tried at once, this one again last.
      if (this.options.services.length > 1) this.advance();
      this.logger.log("warn", "federation.offline", { service: from, next: this.service });
      this.events.offline();
      void this.dispose(xmpp).then(() => this.schedule(this.options.services.length > 1 ? 0 : undefined));
      return;
    }
    void this.dispose(xmpp);
  }

  /** Runs a round after `delayMs`, by default the backoff delay (which then doubles). */
  private schedule(delayMs?: number): void {
    if (this.stopped || this.timer) return;
    let delay = delayMs;
    if (delay === undefined) {
      delay = this.delay;
      this.delay = Math.min(this.delay * 2, this.options.maxBackoffMs ?? 30_000);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.round().then(
        (up) => {
          if (!up) this.schedule();
        },
        (error: Error) => {
          // A wrong secret stays wrong; the operator must fix the config.
          this.logger.log("error", "federation.refused", { error: error.message });
        },
      );
    }, delay);
  }

  private async dispose(xmpp: Component): Promise<void> {
    if (this.xmpp === xmpp) this.xmpp = undefined;
    xmpp.removeAllListeners("disconnect");
    try {
      await xmpp.stop();
    } catch {
      // Already closed: nothing to release.
    }
  }

  /**
   * Sends a stanza; false when the link is down (the caller keeps it). The tree is written as XML text
   * straight to the connection's socket: xmpp.js's send would build an ltx element, serialise it, and
   * make a promise and a write callback per stanza, about a tenth of the gateway's CPU per federated
   * stanza; a socket error still ends the connection through xmpp.js's own listeners.
   */
  send(stanza: XElement): boolean {
    const xmpp = this.xmpp;
    if (!xmpp || !this.up) return false;
    const connection = xmpp as unknown as {
      status: string;
      socket?: { write(data: string): unknown } | null;
    };
    // As Connection.write: nothing more on a stream being closed (RFC 6120 §4.4).
    if (connection.status === "closing" || !connection.socket) {
      this.logger.log("warn", "federation.send_failed", { error: "Connection is closing" });
      return true; // unconfirmed: the pump sends it again after the next connect
    }
    connection.socket.write(toXml(stanza, JABBER_CLIENT));
    return true;
  }

  /**
   * Runs `fn` with the link's socket corked: the stanzas it sends leave in one write (one syscall for a
   * window of the outbox and its barrier, and fewer reads for the server).
   */
  corked(fn: () => void): void {
    const socket = (this.xmpp as { socket?: { cork(): void; uncork(): void } | null } | undefined)?.socket;
    socket?.cork();
    try {
      fn();
    } finally {
      socket?.uncork();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.keepalive);
    const xmpp = this.xmpp;
    this.up = false;
    if (xmpp) await this.dispose(xmpp);
  }
}

/**
 * The stream's XML is read by our conformant parser (xml-parser.ts, saxes) instead of xmpp.js's ltx one,
 * which drops the text after a CDATA section and keeps literal newlines in attribute values. And the
 * socket's bytes become text through one UTF-8 decoder per connection: xmpp.js decodes each chunk on its
 * own, so a character split between two TCP segments (an emoji, any non-ASCII letter) became U+FFFD.
 */
function plugParser(xmpp: Component): void {
  const connection = xmpp as unknown as {
    Parser: unknown;
    parser: { write(text: string): void } | null;
    emit(event: string, ...args: unknown[]): boolean;
    _onData(data: Buffer): void;
    _attachSocket(socket: unknown): void;
  };
  connection.Parser = StreamParser;
  let decoder = new StringDecoder("utf8");
  const attachSocket = connection._attachSocket;
  connection._attachSocket = function (this: typeof connection, socket: unknown) {
    decoder = new StringDecoder("utf8");
    attachSocket.call(this, socket);
  };
  connection._onData = function (this: typeof connection, data: Buffer) {
    const text = decoder.write(data);
    if (text === "") return;
    this.emit("input", text);
    this.parser?.write(text);
  };
}

/** xmpps://: the connection's socket becomes TlsLinkSocket, and its parameters carry how to verify. */
function plugTls(xmpp: Component, tls: LinkTls): void {
  const connection = xmpp as unknown as {
    Socket: unknown;
    socketParameters(service: string): unknown;
  };
  connection.Socket = TlsLinkSocket;
  connection.socketParameters = (service: string) => {
    const url = new URL(service);
    // URL keeps IPv6 literals in brackets; node:tls wants them bare.
    return { host: bareHost(url), port: Number(url.port), tls };
  };
}

/** The URL's host as node:net and node:tls take it: an IPv6 literal without URL's brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}
