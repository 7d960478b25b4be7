/**
 * A lossy UDP relay inside the test process: real sockets on 127.0.0.1 between CoAP clients and a
 * server, forwarding each datagram with seeded loss, duplication and reordering (a delayed datagram
 * is overtaken by later ones). Clients send to `address`; each client gets its own upstream socket, so
 * the server sees one distinct peer per client.
 */
import { createSocket, type Socket } from "node:dgram";
import { type PeerAddress, peerAddress } from "../../src/core/interfaces.js";
import { parsePeerAddress } from "../../src/node/udp-transport.js";
import { seededRandom } from "../kit/seeded-random.js";

/**
 * Generous receive buffers: when the event loop stalls, the default ~208 KB fills and the kernel drops
 * datagrams (RcvbufErrors) on top of the seeded loss, in bursts the loss model does not intend.
 */
export const RECV_BUFFER = 2 ** 21;

export interface RelayConditions {
  /** Probability a datagram is dropped, per direction. */
  readonly loss: number;
  /** Probability a delivered datagram is delivered twice (the copy after a random delay). */
  readonly duplicate: number;
  /** Probability a datagram is held back by a random delay up to `maxDelayMs`. */
  readonly reorder: number;
  readonly maxDelayMs: number;
}

export interface DirectionStats {
  received: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  /** Datagrams forwarded after one that arrived later than them. */
  reordered: number;
  forwarded: number;
}

class Direction {
  readonly stats: DirectionStats = {
    received: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
    forwarded: 0,
  };
  private arrival = 0;
  private lastForwarded = -1;
  constructor(
    private readonly conditions: RelayConditions,
    private readonly random: () => number,
    private readonly timers: Set<NodeJS.Timeout>,
  ) {}

  pass(data: Buffer, send: (data: Buffer) => void): void {
    const seq = this.arrival++;
    this.stats.received++;
    if (this.random() < this.conditions.loss) {
      this.stats.dropped++;
      return;
    }
    const forward = () => {
      if (seq < this.lastForwarded) this.stats.reordered++;
      else this.lastForwarded = seq;
      this.stats.forwarded++;
      send(data);
    };
    const later = (fn: () => void) => {
      const delay = this.random() * this.conditions.maxDelayMs;
      const t = setTimeout(() => {
        this.timers.delete(t);
        fn();
      }, delay);
      this.timers.add(t);
    };
    if (this.random() < this.conditions.reorder) {
      this.stats.delayed++;
      later(forward);
    } else forward();
    if (this.random() < this.conditions.duplicate) {
      this.stats.duplicated++;
      later(forward);
    }
  }
}

export class LossyUdpRelay {
  static async start(server: PeerAddress, conditions: RelayConditions, seed: number): Promise<LossyUdpRelay> {
    const relay = new LossyUdpRelay(server, conditions, seed);
    await new Promise<void>((resolve, reject) => {
      relay.front.once("error", reject);
      relay.front.bind(0, "127.0.0.1", () => {
        relay.front.off("error", reject);
        relay.front.setRecvBufferSize(RECV_BUFFER);
        resolve();
      });
    });
    return relay;
  }

  private readonly front = createSocket("udp4");
  private readonly upstream = new Map<string, Socket>(); // client address → its socket to the server
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly random: () => number;
  readonly toServer: Direction;
  readonly toClient: Direction;
  private readonly target: { host: string; port: number };

  private constructor(server: PeerAddress, conditions: RelayConditions, seed: number) {
    this.random = seededRandom(seed);
    this.toServer = new Direction(conditions, this.random, this.timers);
    this.toClient = new Direction(conditions, this.random, this.timers);
    const target = parsePeerAddress(server);
    if (!target) throw new Error(`bad server address ${server}`);
    this.target = target;
    this.front.on("message", (data, from) => {
      const client = peerAddress(from.address, from.port);
      const up = this.upstreamFor(client, from.address, from.port);
      this.toServer.pass(data, (d) => up.send(d, this.target.port, this.target.host));
    });
  }

  /** Where clients send their requests. */
  get address(): PeerAddress {
    const a = this.front.address();
    return peerAddress(a.address, a.port);
  }

  private upstreamFor(client: string, host: string, port: number): Socket {
    let socket = this.upstream.get(client);
    if (socket) return socket;
    socket = createSocket("udp4");
    socket.bind(0, "127.0.0.1", () => socket.setRecvBufferSize(RECV_BUFFER)); // sends queue until bound
    socket.on("message", (data) => this.toClient.pass(data, (d) => this.front.send(d, port, host)));
    this.upstream.set(client, socket);
    return socket;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const sockets = [this.front, ...this.upstream.values()];
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
