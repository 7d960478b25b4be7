/**
 * A gateway and nodes on the in-memory lossy network with a fake clock, for session-layer tests.
 * `settle` advances fake time in small steps and lets promise callbacks run between them.
 *
 * Besides the network's own conditions, `drop` cuts datagrams by address (one node, one direction),
 * `exchanges` records every request the gateway's session service handled (after CoAP deduplication)
 * with what its response carried, and `pushes` every Observe notification the gateway attempted.
 */
import { createHmac } from "node:crypto";
import type { XElement } from "../../codec/index.js";
import { MemoryDevices } from "../../gateway/devices.js";
import { attachGateway, type GatewayService } from "../../gateway/index.js";
import type { SessionJournal } from "../../gateway/session/journal.js";
import { DEFAULT_MAILBOX_LIMITS, type MailboxLimits } from "../../gateway/session/mailbox.js";
import {
  CoapEndpoint,
  Code,
  type Mac,
  NodeClient,
  type PeerAddress,
  protocol,
  type Response,
  type ServerRequest,
  uriPath,
} from "../../src/core/index.js";
import { FakeTime, fakeRandom } from "./fake-time.js";
import { type LinkConditions, LossyNetwork } from "./lossy-link.js";

export const nodeMac: Mac = {
  hmacSha256: (key, data) => Uint8Array.from(createHmac("sha256", key).update(data).digest()),
};

export const GATEWAY = "gateway:5683" as PeerAddress;
export const DOMAIN = "iot.example.org";

export function key(n: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (n * 31 + i) & 0xff);
}

export interface HarnessOptions {
  /** Allowed peers (bare JIDs) per device name. */
  readonly peers?: Readonly<Record<string, readonly string[]>>;
  /** Mailbox limits; what is left out keeps its default. */
  readonly mailbox?: Partial<MailboxLimits>;
  readonly sessionExpiryMs?: number;
  readonly maxDownlinkBytes?: number;
  readonly journal?: SessionJournal;
}

/** One request the gateway's session service answered, and what the answer carried. */
export interface ExchangeRecord {
  readonly at: number;
  readonly peer: PeerAddress;
  /** "c", "u", "d/<session>", … */
  readonly path: string;
  readonly code: number;
  /** Downlink carried by a 2.04/2.05 with a payload (undefined for an empty answer or another code). */
  readonly downlink?: {
    readonly dseq: number;
    readonly frames: number;
    readonly bytes: number;
    readonly more: boolean;
  };
}

export interface Harness {
  time: FakeTime;
  net: LossyNetwork;
  gateway: GatewayService;
  gatewayEndpoint: CoapEndpoint;
  devices: MemoryDevices;
  outbound: XElement[];
  /** Requests the gateway handled, in order. */
  exchanges: ExchangeRecord[];
  /** Observe notifications the gateway attempted: path and how many observers got it. */
  pushes: { readonly path: string; readonly observers: number }[];
  /** Datagrams cut by `drop` (they never reach the lossy network). */
  dropped: number;
  /** Cuts every datagram for which `filter(from, to)` is true; undefined: cut nothing. */
  drop(filter: ((from: PeerAddress, to: PeerAddress) => boolean) | undefined): void;
  /** The network address of a node made by `node`. */
  address(node: NodeClient): PeerAddress;
  node(
    identity: string,
    options?: { key?: Uint8Array; address?: string; wake?: number; retryDelayMs?: number },
  ): NodeClient;
  settle(ms?: number, stepMs?: number): Promise<void>;
}

export function harness(
  names: string[],
  conditions: LinkConditions = {},
  seed = 1,
  options: HarnessOptions = {},
): Harness {
  const time = new FakeTime();
  const net = new LossyNetwork(time, conditions, seed);
  const devices = new MemoryDevices(
    names.map((name, i) => ({
      identity: name,
      key: key(i + 1),
      jid: `${name}@${DOMAIN}`,
      peers: options.peers?.[name] ?? [],
    })),
  );
  let filter: ((from: PeerAddress, to: PeerAddress) => boolean) | undefined;
  const transport = (address: string) => {
    const t = net.transport(address);
    return {
      address: t.address,
      send: (data: Uint8Array, peer: PeerAddress) => {
        if (filter?.(t.address, peer)) {
          h.dropped++;
          return;
        }
        t.send(data, peer);
      },
      onReceive: t.onReceive,
      close: t.close,
    };
  };
  const transmission = { ackTimeoutMs: 500, maxRetransmit: 6 };
  const gatewayEndpoint = new CoapEndpoint({
    transport: transport(GATEWAY),
    clock: time,
    scheduler: time,
    random: fakeRandom(seed + 1000),
    transmission,
  });
  const outbound: XElement[] = [];
  const exchanges: ExchangeRecord[] = [];
  const pushes: { path: string; observers: number }[] = [];
  // Every Observe push is recorded as it leaves (the gateway wires itself to the endpoint's notify).
  const notify = gatewayEndpoint.notify.bind(gatewayEndpoint);
  gatewayEndpoint.notify = (path, response) => {
    const observers = notify(path, response);
    pushes.push({ path, observers });
    return observers;
  };
  const gateway = attachGateway(gatewayEndpoint, {
    devices,
    domain: DOMAIN,
    random: fakeRandom(seed + 2000),
    clock: time,
    outbound: (s) => outbound.push(s),
    ...(options.mailbox ? { mailbox: { ...DEFAULT_MAILBOX_LIMITS, ...options.mailbox } } : {}),
    ...(options.sessionExpiryMs !== undefined ? { sessionExpiryMs: options.sessionExpiryMs } : {}),
    ...(options.maxDownlinkBytes !== undefined ? { maxDownlinkBytes: options.maxDownlinkBytes } : {}),
    ...(options.journal ? { journal: options.journal } : {}),
  });
  const record = (request: ServerRequest, response: Response): Response => {
    // The uplink is recorded as "u" whether it came to /u (format 1) or to the root (format 2).
    const raw = uriPath(request);
    const path = raw === protocol.Paths.UPLINK_ROOT ? protocol.Paths.UPLINK : raw;
    const carries =
      (path === protocol.Paths.UPLINK || path.startsWith(`${protocol.Paths.DOWNLINK}/`)) &&
      (response.code === Code.CHANGED || response.code === Code.CONTENT) &&
      response.payload.length > 0;
    const down = carries ? protocol.decodeDownlink(response.payload) : undefined;
    exchanges.push({
      at: time.now(),
      peer: request.peer,
      path,
      code: response.code,
      ...(down
        ? {
            downlink: {
              dseq: down.dseq,
              frames: down.frames.length,
              bytes: down.frames.reduce((n, f) => n + f.length, 0),
              more: down.more === true,
            },
          }
        : {}),
    });
    return response;
  };
  gatewayEndpoint.handle((request) => {
    const response = gateway.handle(request);
    return response instanceof Promise ? response.then((r) => record(request, r)) : record(request, response);
  });
  const addresses = new Map<NodeClient, PeerAddress>();
  let n = 0;
  const h: Harness = {
    time,
    net,
    gateway,
    gatewayEndpoint,
    devices,
    outbound,
    exchanges,
    pushes,
    dropped: 0,
    drop(f) {
      filter = f;
    },
    address(node) {
      const a = addresses.get(node);
      if (!a) throw new Error("not a node of this harness");
      return a;
    },
    node(identity, nodeOptions = {}) {
      n++;
      const t = transport(nodeOptions.address ?? `${identity}:${n}`);
      const endpoint = new CoapEndpoint({
        transport: t,
        clock: time,
        scheduler: time,
        random: fakeRandom(seed + n),
        transmission,
        exchange: { tokenLength: 1 },
      });
      const index = names.indexOf(identity);
      const client = new NodeClient({
        endpoint,
        gateway: GATEWAY,
        identity,
        key: nodeOptions.key ?? key(index + 1),
        mac: nodeMac,
        retryDelayMs: nodeOptions.retryDelayMs ?? 200,
        ...(nodeOptions.wake !== undefined ? { wake: nodeOptions.wake } : {}),
      });
      addresses.set(client, t.address);
      return client;
    },
    async settle(ms = 5_000, stepMs = 20) {
      for (let t = 0; t < ms; t += stepMs) {
        time.advance(stepMs);
        await new Promise((r) => setImmediate(r));
      }
    },
  };
  return h;
}
