/**
 * The tiny node: `createTinyNode(host, device)` assembles the portable client — the CoAP endpoint's
 * client half (CoapClientEndpoint: the node serves no requests, so no server layers are bundled), DTLS
 * when the device file says coaps, and the cxmpp session (NodeClient) — over the host's few functions
 * (host.ts). Everything runs on one host timer and the host's datagram callbacks; the
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
  Scheduler,
} from "../core/interfaces.js";
import { NodeClient } from "../core/session/node-client.js";
import { TimerQueue } from "../core/timer-queue.js";
import { DtlsClient } from "../dtls/client.js";
import { TLS_PSK_WITH_AES_128_CCM_8 } from "../dtls/suites.js";
import { tinyCrypto } from "./crypto.js";
import { gatewayAddress, type TinyDevice } from "./device.js";
import type { TinyHost } from "./host.js";

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
 * One host timer for every deadline: the endpoint, DTLS and the session each keep a TimerQueue, and
 * they all schedule on this one, which arms the host's timer for the earliest.
 */
function singleTimer(host: TinyHost, clock: Clock): Scheduler {
  const root = new TimerQueue(clock, {
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
  return { schedule: (delayMs, task) => root.after(delayMs, task) };
}

/** The host's socket as the core's DatagramTransport: one peer, the gateway. */
class HostTransport implements DatagramTransport {
  handler: (data: Uint8Array, peer: PeerAddress) => void = () => {};
  constructor(
    private readonly host: TinyHost,
    readonly gateway: PeerAddress,
  ) {}
  send(data: Uint8Array): void {
    this.host.send(data);
  }
  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.handler = handler;
  }
  close(): void {
    this.handler = () => {};
  }
}

export function createTinyNode(host: TinyHost, device: TinyDevice, options: TinyNodeOptions = {}): TinyNode {
  const clock: Clock = { now: () => host.now() };
  const scheduler = singleTimer(host, clock);
  const random: Random = {
    uint32() {
      const b = host.random(4);
      return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    },
  };
  const logger: Logger = { log: (level, event, fields) => host.log?.(level, event, fields) };
  const address = gatewayAddress(device.gateway);
  const crypto = tinyCrypto(host, address.secure);
  const gateway = address.peer as PeerAddress;
  const socket = new HostTransport(host, gateway);
  const dtls = address.secure
    ? new DtlsClient(socket, {
        server: gateway,
        identity: device.identity,
        psk: device.key,
        crypto,
        clock,
        scheduler,
        logger,
        // CoAP's mandatory suite only: its 8-byte tag is the smallest on air, and a tiny node then
        // needs no GCM code (RFC 7925 §4.2).
        suites: [TLS_PSK_WITH_AES_128_CCM_8],
        ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
      })
    : undefined;
  const endpoint = new CoapClientEndpoint({
    transport: dtls ?? socket,
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
    mac: crypto,
    logger,
    ...(options.wake !== undefined ? { wake: options.wake } : {}),
    ...(options.maxPayload !== undefined ? { maxPayload: options.maxPayload } : {}),
  });
  return {
    receive: (datagram) => socket.handler(datagram, gateway),
    connect: async () => {
      await dtls?.connect();
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
      dtls?.close();
      host.clearTimer();
    },
  };
}
