// Minimal typings for the untyped xmpp.js packages the gateway and the test kit use: @xmpp/xml 0.14, @xmpp/client 0.14
// and @xmpp/component 0.13.1 (none ships .d.ts files). Only what the kit and the interop tests touch is
// declared; everything else stays invisible on purpose so that a use of an undeclared API shows up here.

declare module "@xmpp/xml" {
  /** An ltx element as xmpp.js builds and parses it. */
  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    children: Array<Element | string>;
    parent: Element | null;
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    toString(): string;
  }
  export type XmlChild = Element | string | null | undefined | false;
  /** `xml(name, attrs, ...children)`: attributes that are undefined are left out. */
  export function xml(
    name: string,
    attrs?: Record<string, string | undefined> | null,
    ...children: XmlChild[]
  ): Element;
  export default xml;
}

declare module "@xmpp/jid" {
  export interface JID {
    local: string;
    domain: string;
    resource: string;
    bare(): JID;
    toString(): string;
  }
}

declare module "@xmpp/connection" {
  import type { JID } from "@xmpp/jid";
  import type { Element } from "@xmpp/xml";

  /** The statuses of @xmpp/connection, emitted both as `status` and as an event of their own name. */
  export type Status =
    | "offline"
    | "connecting"
    | "connect"
    | "opening"
    | "open"
    | "online"
    | "closing"
    | "close"
    | "disconnecting"
    | "disconnect";

  /** RFC 6120 §4.9 stream error as xmpp.js raises it (`StreamError.fromElement`). */
  export interface XmppError extends Error {
    condition?: string;
    text?: string;
    element?: Element;
  }

  export interface Reconnect {
    delay: number;
    start(): void;
    stop(): void;
    on(event: "reconnecting" | "reconnected", listener: () => void): unknown;
  }

  export interface Entity {
    jid: JID | null;
    status: Status;
    reconnect: Reconnect;
    start(): Promise<JID>;
    stop(): Promise<unknown>;
    send(element: Element): Promise<void>;
    on(event: "stanza" | "element" | "nonza", listener: (element: Element) => void): this;
    on(event: "online", listener: (jid: JID) => void): this;
    on(event: "error", listener: (error: XmppError) => void): this;
    on(event: "status", listener: (status: Status, ...args: unknown[]) => void): this;
    on(event: "input" | "output", listener: (text: string) => void): this;
    on(event: "offline" | "disconnect", listener: (...args: unknown[]) => void): this;
    removeListener(event: string, listener: (...args: never[]) => void): this;
    removeAllListeners(event?: string): this;
  }
}

declare module "@xmpp/client" {
  import type { Entity } from "@xmpp/connection";
  import type { Element } from "@xmpp/xml";

  export { xml } from "@xmpp/xml";
  export type Authenticate = (
    credentials: { username: string; password: string },
    mechanism: string,
  ) => Promise<void>;
  export interface ClientOptions {
    service: string;
    domain?: string;
    resource?: string;
    username?: string;
    password?: string;
    /** Called with the server's SASL mechanisms (RFC 6120 §6.4.1); lets the caller pick one. */
    credentials?: (authenticate: Authenticate, mechanisms: string[]) => Promise<void>;
  }
  export interface Client extends Entity {
    readonly options: ClientOptions;
  }
  export function client(options: ClientOptions): Client;
  export type { Element };
}

declare module "@xmpp/component" {
  import type { Entity } from "@xmpp/connection";

  export interface ComponentOptions {
    /** `xmpp://host:port` of the server's XEP-0114 listener. */
    service: string;
    /** The component's domain, as configured on the server. */
    domain: string;
    /** The shared secret of the XEP-0114 §3 handshake. */
    password: string;
  }
  export interface Component extends Entity {
    readonly options: ComponentOptions;
  }
  export function component(options: ComponentOptions): Component;
}
