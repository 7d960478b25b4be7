/**
 * A seeded lossy UDP relay for `cxmpp bench session`: real sockets on loopback between CoAP clients
 * and a server. Each datagram is dropped with probability `loss` in its direction and, optionally,
 * delivered twice. Clients send to `address`; each client gets its own upstream socket, so the server
 * sees one distinct peer per client (as it would without the relay).
 *
 * The same seed gives the same sequence of decisions; which datagram meets which decision still depends
 * on the order in which datagrams arrive, so runs are reproducible in their statistics, not bit for bit.
 */
import { createSocket, type Socket } from "node:dgram";
import { type PeerAddress, peerAddress } from "../src/core/index.js";
import { seededRandom } from "../src/core/seeded-random.js";
import { parsePeerAddress } from "../src/node/index.js";

/** Large receive buffers: a stalled event loop must not add kernel drops to the seeded loss. */
const RECV_BUFFER = 2 ** 21;

export type RelayDirection = "up" | "down";

export interface LossyRelayOptions {
  /** Probability that a datagram is dropped, in each direction independently. 0 ≤ loss < 1. */
  readonly loss: number;
  /** Probability that a forwarded datagram is forwarded a second time (at once). Default 0. */
  readonly duplicate?: number;
  readonly seed: number;
  /** Address the relay listens on. Default 127.0.0.1. */
  readonly host?: string;
  /**
   * Every datagram entering the relay, before the loss decision (what went on air): `up` from a client
   * towards the server, `down` from the server towards `client`.
   */
  readonly onDatagram?: (client: PeerAddress, direction: RelayDirection, bytes: number) => void;
}

export interface RelayDirectionStats {
  received: number;
  dropped: number;
  duplicated: number;
  forwarded: number;
}

export class LossyRelay {
  /** Starts a relay in front of `server`. */
  static async start(server: PeerAddress, options: LossyRelayOptions): Promise<LossyRelay> {
    if (!(options.loss >= 0 && options.loss < 1))
      throw new RangeError(`loss ${options.loss} is not in [0, 1)`);
    const relay = new LossyRelay(server, options);
    await bind(relay.front, options.host ?? "127.0.0.1");
    return relay;
  }

  readonly stats: Record<RelayDirection, RelayDirectionStats> = {
    up: { received: 0, dropped: 0, duplicated: 0, forwarded: 0 },
    down: { received: 0, dropped: 0, duplicated: 0, forwarded: 0 },
  };
  private readonly front = createSocket("udp4");
  /** Client address → its own socket towards the server. */
  private readonly upstream = new Map<string, Socket>();
  private readonly random: () => number;
  private readonly target: { host: string; port: number };
  private closed = false;

  private constructor(
    server: PeerAddress,
    private readonly options: LossyRelayOptions,
  ) {
    const target = parsePeerAddress(server);
    if (!target) throw new RangeError(`not a host:port address: ${server}`);
    this.target = target;
    this.random = seededRandom(options.seed);
    this.front.on("message", (data, from) => {
      const client = peerAddress(from.address, from.port);
      const up = this.upstreamFor(client, from.address, from.port);
      this.pass("up", client, data, (d) => up.send(d, this.target.port, this.target.host));
    });
    this.front.on("error", () => {}); // a datagram service: errors mean lost datagrams
  }

  /** Where clients send their requests. */
  get address(): PeerAddress {
    const a = this.front.address();
    return peerAddress(a.address, a.port);
  }

  private pass(
    direction: RelayDirection,
    client: PeerAddress,
    data: Buffer,
    send: (d: Buffer) => void,
  ): void {
    if (this.closed) return;
    const stats = this.stats[direction];
    stats.received++;
    this.options.onDatagram?.(client, direction, data.length);
    if (this.random() < this.options.loss) {
      stats.dropped++;
      return;
    }
    stats.forwarded++;
    send(data);
    if (this.options.duplicate !== undefined && this.random() < this.options.duplicate) {
      stats.duplicated++;
      send(data);
    }
  }

  private upstreamFor(client: PeerAddress, host: string, port: number): Socket {
    let socket = this.upstream.get(client);
    if (socket) return socket;
    const s = createSocket("udp4");
    s.on("error", () => {});
    // Sends issued before the bind completes are queued by node:dgram.
    s.bind(0, this.options.host ?? "127.0.0.1", () => s.setRecvBufferSize(RECV_BUFFER));
    s.on("message", (data) => this.pass("down", client, data, (d) => this.front.send(d, port, host)));
    this.upstream.set(client, s);
    socket = s;
    return socket;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets = [this.front, ...this.upstream.values()];
    this.upstream.clear();
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve(); // never bound, or already closed
            }
          }),
      ),
    );
  }
}

function bind(socket: Socket, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, host, () => {
      socket.off("error", reject);
      socket.setRecvBufferSize(RECV_BUFFER);
      resolve();
    });
  });
}
