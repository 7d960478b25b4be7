/**
 * The XEP-0114 link to the XMPP server, with @xmpp/component. One concern: keep a component session up
 * (connect, handshake, reconnect with backoff), hand received stanzas on as codec trees, send trees.
 *
 * What to send and when it counts as delivered is the outbox pump's business (outbox-pump.ts).
 */
import { StringDecoder } from "node:string_decoder";
import { type Component, component } from "@xmpp/component";
import type { XmppError } from "@xmpp/connection";
import type { Element } from "@xmpp/xml";
import { JABBER_CLIENT, type XElement } from "../../codec/index.js";
import { type Logger, silentLogger } from "../../src/core/index.js";
import { fromLtx, toElement } from "../xml/stanza-xml.js";
import { StreamParser } from "../xml/xml-parser.js";
import { ComponentAuthError } from "./errors.js";

export { ComponentAuthError };

export interface ComponentLinkOptions {
  /** `xmpp://host:port` of the server's component listener. */
  readonly service: string;
  readonly domain: string;
  readonly secret: string;
  readonly logger?: Logger;
  /** First reconnect delay; doubles up to maxBackoffMs. Default 1 s. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
}

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
  private readonly logger: Logger;
  /** Times the link came up (for metrics and tests). */
  connects = 0;

  constructor(
    private readonly options: ComponentLinkOptions,
    private readonly events: LinkEvents,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.delay = options.backoffMs ?? 1000;
  }

  get online(): boolean {
    return this.up;
  }

  /**
   * Connects. Resolves once the link is up or, if the server cannot be reached, once the first attempt
   * failed (it keeps trying in the background); rejects with ComponentAuthError when the server refuses
   * the secret, which no retry would change.
   */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (error) {
      if (error instanceof ComponentAuthError) throw error;
      this.logger.log("warn", "federation.unreachable", {
        service: this.options.service,
        error: (error as Error).message,
        retryMs: this.delay,
      });
      this.schedule();
    }
  }

  private async connect(): Promise<void> {
    const xmpp = component({
      service: this.options.service,
      domain: this.options.domain,
      password: this.options.secret,
    });
    // Our own backoff instead of the plugin's fixed 1 s, and no iq auto-replies: @xmpp/component's
    // iq callee answers every get/set nobody handles with service-unavailable, but iqs to nodes are
    // answered by the nodes, later (its middleware is the only "element" listener).
    xmpp.reconnect.stop();
    xmpp.removeAllListeners("element");
    plugParser(xmpp);
    this.xmpp = xmpp;
    let authError: ComponentAuthError | undefined;
    xmpp.on("error", (error: XmppError) => {
      if (error.condition === "not-authorized") {
        authError = new ComponentAuthError(
          `the XMPP server at ${this.options.service} refused the component secret for ${this.options.domain} (${error.condition}${error.text ? `: ${error.text}` : ""})`,
        );
      } else this.logger.log("debug", "federation.error", { error: error.message }); // said again by unreachable/offline
    });
    xmpp.on("stanza", (element: Element) => {
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
      this.delay = this.options.backoffMs ?? 1000;
      this.logger.log("info", "federation.online", {
        service: this.options.service,
        domain: this.options.domain,
      });
      this.events.online();
    });
    xmpp.on("disconnect", () => this.lost(xmpp));
    try {
      await xmpp.start();
    } catch (error) {
      await this.dispose(xmpp);
      if (authError) throw authError;
      throw error;
    }
    if (authError) throw authError;
  }

  private lost(xmpp: Component): void {
    if (this.xmpp !== xmpp) return;
    const was = this.up;
    this.up = false;
    if (was) {
      this.logger.log("warn", "federation.offline", { service: this.options.service, retryMs: this.delay });
      this.events.offline();
    }
    void this.dispose(xmpp).then(() => this.schedule());
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.options.maxBackoffMs ?? 30_000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.connect().catch((error: Error) => {
        if (error instanceof ComponentAuthError) {
          this.logger.log("error", "federation.refused", { error: error.message });
          return; // a wrong secret stays wrong; the operator must fix the config
        }
        this.logger.log("warn", "federation.unreachable", { error: error.message, retryMs: this.delay });
        this.schedule();
      });
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

  /** Sends a stanza; false when the link is down (the caller keeps it). */
  send(stanza: XElement): boolean {
    const xmpp = this.xmpp;
    if (!xmpp || !this.up) return false;
    xmpp.send(toElement(stanza, JABBER_CLIENT) as never).catch((error: Error) => {
      this.logger.log("warn", "federation.send_failed", { error: error.message });
    });
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
