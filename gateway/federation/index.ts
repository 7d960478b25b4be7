/**
 * Federation through a real XMPP server as an XEP-0114 component: the link (component-link.ts), the
 * durable outbox's pump (outbox-pump.ts), and stanzas from the network for nodes (network-inbound.ts).
 * Loaded by the gateway only when `xmpp_service` is configured.
 */
export { ComponentAuthError, ComponentLink } from "./component-link.js";
export { NetworkInbound } from "./network-inbound.js";
export { OutboxPump } from "./outbox-pump.js";
