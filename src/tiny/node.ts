/**
 * The tiny node: `createTinyNode(host, device)` assembles the portable client — the CoAP endpoint's
 * client half (CoapClientEndpoint: the node serves no requests, so no server layers are bundled), the
 * host's DTLS session when the device file says coaps (TinyHost.dtls: the host's own, or jsDtls from
 * cxmpp-dtls.mjs; no DTLS code is in this bundle), and the cxmpp session (NodeClient) — over the host's
 * few functions (host.ts). Everything runs on one host timer and the host's datagram callbacks; the
 * client is promise-based, so a host whose engine has a job queue (QuickJS) runs pending jobs after
 * each call into the node (docs/TINY-NODE.md).
 */
import type { XElement } from "../../codec/index.js";
import { CoapClientEndpoint } from "../core/coap/client-endpoint.js";
import type {
  Cancellable,
  Clock,
  DatagramTransport,
  Logger,
  PeerAddress,
  Random,
} from "../core/interfaces.js";
import { NodeClient } from "../core/session/node-client.js";
import { TimerQueue } from "../core/timer-queue.js";
import { requireCrypto } from "./crypto.js";
import { gatewayAddress, type TinyDevice } from "./device.js";
import type { TinyDatagrams, TinyDtlsSession, TinyHost } from "./host.js";

export interface TinyNodeOptions {
  /** Seconds the node sleeps between wake-ups; absent: always on. */
  readonly wake?: number;
  /** Largest uplink payload. Default 256. */
  readonly maxPayload?: number;
  /** CoAP ACK timeout in ms (RFC 7252 §4.8: 2000). */
  readonly ackTimeoutMs?: number;
  /** Largest datagram (DTLS fragments its handshake to fit). Default 1200. */
  readonly mtu?: number;
}

export interface TinyNode {
  /** The host calls this with every datagram that arrives from the gateway. */
  receive(datagram: Uint8Array): void;
  /** Handshakes (coaps) and connects the session; resolves with the node's full JID. */
  connect(): Promise<string>;
  /** Sends a stanza reliably: resolves once the gateway stored it. */
  send(stanza: XElement): Promise<void>;
  /** Sends a reading as one NON message: no retransmission, no answer (the first one goes reliably). */
  telemetry(stanza: XElement): void;
  /** Stanzas from the gateway. */
  onStanza(handler: (stanza: XElement) => void): void;
  /** A wake-up: asks for what waits in the mailbox. */
  poll(): Promise<void>;
  /** An always-on node: the gateway pushes downlink as it comes (RFC 7641). */
  observe(): Promise<void>;
  /** Stanzas not yet acknowledged by the gateway. */
  readonly pending: number;
  readonly jid: string | undefined;
  /** Closes the session and DTLS (close_notify). */
  close(): void;
}

/**
 * One host timer for every deadline: the endpoint and the session each keep a TimerQueue, and they and
 * a JavaScript DTLS client (TinyDtlsOptions.after) schedule on this one, which arms the host's timer
 * for the earliest.
 */
function singleTimer(host: TinyHost, clock: Clock): TimerQueue {
  return new TimerQueue(clock, {
    schedule(delayMs: number, task: () => void): Cancellable {
      let live = true;
      host.setTimer(delayMs, () => {
        if (live) task();
      });
      return {
        cancel() {
          if (!live) return;
          live = false;
          host.clearTimer();
        },
      };
    },
  });
}

export function createTinyNode(host: TinyHost, device: TinyDevice, options: TinyNodeOptions = {}): TinyNode {
  const clock: Clock = { now: () => host.now() };
  const timers = singleTimer(host, clock);
  const scheduler = { schedule: (delayMs: number, task: () => void) => timers.after(delayMs, task) };
  const random: Random = {
    uint32() {
      const b = host.random(4);
      return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    },
  };
  const log: Logger["log"] = (level, event, fields) => host.log?.(level, event, fields);
  const address = gatewayAddress(device.gateway);
  const gateway = address.peer as PeerAddress;
  // The host's socket: what it sends goes to the gateway; what it hands node.receive comes here.
  let deliver: (datagram: Uint8Array) => void = () => {};
  const socket: TinyDatagrams = {
    send: (datagram) => host.send(datagram),
    onReceive: (handler) => {
      deliver = handler;
    },
  };
  const dtls = address.secure ? host.dtls : undefined;
  if (address.secure && typeof dtls?.client !== "function")
    throw new TypeError(
      `host.dtls is missing: ${device.gateway} is coaps; give the host's own DTLS, or jsDtls (cxmpp-dtls.mjs)`,
    );
  // Every node signs its connect (hmacSha256); a DTLS client in JavaScript needs more (jsDtls.needs).
  const mac = requireCrypto(host.crypto, ["hmacSha256", ...(dtls?.needs ?? [])]);
  const session: TinyDtlsSession | undefined = dtls?.client(socket, {
    gateway,
    identity: device.identity,
    psk: device.key,
    now: clock.now,
    after: scheduler.schedule,
    random: (n) => host.random(n),
    crypto: host.crypto ?? {},
    log,
    ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
  });
  // The CoAP endpoint's transport: the DTLS session's plaintext (coaps), or the host's socket (coap).
  const below = session ?? socket;
  const transport: DatagramTransport = {
    send: (data) => below.send(data),
    onReceive: (handler) => below.onReceive((data) => handler(data, gateway)),
    close: () => {},
  };
  const logger: Logger = { log };
  const endpoint = new CoapClientEndpoint({
    transport,
    clock,
    scheduler,
    random,
    logger,
    exchange: { tokenLength: 1 },
    ...(options.ackTimeoutMs !== undefined ? { transmission: { ackTimeoutMs: options.ackTimeoutMs } } : {}),
  });
  const client = new NodeClient({
    endpoint,
    gateway,
    identity: device.identity,
    key: device.key,
    mac,
    logger,
    ...(options.wake !== undefined ? { wake: options.wake } : {}),
    ...(options.maxPayload !== undefined ? { maxPayload: options.maxPayload } : {}),
  });
  return {
    receive: (datagram) => deliver(datagram),
    connect: async () => {
      await session?.connect();
      return (await client.connect()).jid;
    },
    send: (stanza) => client.send(stanza),
    telemetry: (stanza) => client.sendTelemetry(stanza),
    onStanza: (handler) => client.onStanza(handler),
    poll: () => client.poll(),
    observe: async () => {
      await client.observeDownlink();
    },
    get pending() {
      return client.unacknowledged;
    },
    get jid() {
      return client.jid;
    },
    close: () => {
      client.close();
      endpoint.close();
      session?.close();
      host.clearTimer();
    },
  };
}
