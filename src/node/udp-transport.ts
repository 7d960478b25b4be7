/**
 * A `DatagramTransport` over node:dgram. One socket, bound to one address; peers are spelled as the
 * core spells them (`peerAddress(host, port)`: `127.0.0.1:5683`, `[::1]:5683`).
 *
 * Network conditions never throw: a send that the kernel refuses (EPERM under an nftables OUTPUT drop,
 * EHOSTUNREACH, ENETUNREACH, a peer string that is not an address) is logged and the datagram is lost,
 * exactly as the core expects of a datagram service. Socket errors are logged, never raised.
 */
import { createSocket, type Socket } from "node:dgram";
import { lookup as dnsLookup } from "node:dns";
import { isIP } from "node:net";
import {
  type DatagramTransport,
  type Logger,
  type PeerAddress,
  peerAddress,
  silentLogger,
} from "../core/interfaces.js";

export interface UdpTransportOptions {
  readonly logger?: Logger;
  /** Let the process exit while the socket is open (e.g. a CLI that ends when its work is done). */
  readonly unref?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes, when the defaults are too small for a burst. */
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
}

/** Splits `host:port` / `[v6]:port` into its parts; undefined when it is not such a string. */
export function parsePeerAddress(peer: string): { host: string; port: number } | undefined {
  let host: string;
  let portText: string;
  if (peer.startsWith("[")) {
    const close = peer.indexOf("]:");
    if (close < 0) return undefined;
    host = peer.slice(1, close);
    portText = peer.slice(close + 2);
  } else {
    const colon = peer.lastIndexOf(":");
    if (colon <= 0) return undefined;
    host = peer.slice(0, colon);
    portText = peer.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65_535 || isIP(host) === 0) return undefined;
  return { host, port };
}

/** Parsed peers kept at most (cleared when full: a send re-parses, nothing else changes). */
const MAX_PARSED_PEERS = 4096;

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

export class UdpTransport implements DatagramTransport {
  /** Binds a new socket (udp6 for an IPv6 host, udp4 otherwise); port 0 picks an ephemeral port. */
  static async bind(host: string, port: number, options: UdpTransportOptions = {}): Promise<UdpTransport> {
    const transport = new UdpTransport(isIP(host) === 6 ? "udp6" : "udp4", options);
    await transport.listen(host, port);
    return transport;
  }

  private readonly socket: Socket;
  private readonly logger: Logger;
  private handler: (data: Uint8Array, peer: PeerAddress) => void = () => {};
  private state: "new" | "bound" | "closed" = "new";
  private boundHost = "";
  private boundPort = 0;
  private readonly closedPromise: Promise<void>;
  /** Datagrams handed to the kernel, refused by it (or unsendable), and received. */
  readonly stats = { sent: 0, sendErrors: 0, received: 0 };
  /** Sends whose callback has not run yet: close() lets them leave first (a DTLS close_notify). */
  private inFlight = 0;
  private closeWhenDrained = false;
  /**
   * Peers as `send` parsed them: a gateway answers the same few thousand peers over and over, and the
   * regular expression and isIP of parsePeerAddress cost more than the lookup.
   */
  private readonly parsed = new Map<PeerAddress, { host: string; port: number; family: 4 | 6 }>();
  /** The IP literal `send` validated and is handing to node:dgram now, and its family (see `lookup`). */
  private sending = "";
  private sendingFamily: 4 | 6 = 4;

  private constructor(
    readonly family: "udp4" | "udp6",
    private readonly options: UdpTransportOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.socket = createSocket({
      type: family,
      ipv6Only: family === "udp6" ? false : undefined,
      lookup: this.lookup,
    });
    this.closedPromise = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.socket.on("message", (msg, rinfo) => {
      this.stats.received++;
      // A plain Uint8Array view (no copy): the core must not depend on Buffer semantics.
      const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      this.handler(data, peerAddress(rinfo.address, rinfo.port));
    });
    this.socket.on("error", (error) => {
      this.logger.log("error", "udp.socket_error", { local: this.localLabel(), error: String(error) });
    });
  }

  private listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => {
        this.state = "closed";
        try {
          this.socket.close();
        } catch {
          // already closed
        }
        reject(error);
      };
      this.socket.once("error", failed);
      this.socket.bind({ address: host, port, exclusive: true }, () => {
        this.socket.off("error", failed);
        this.state = "bound";
        const address = this.socket.address();
        this.boundHost = address.address;
        this.boundPort = address.port;
        if (this.options.recvBufferSize) this.socket.setRecvBufferSize(this.options.recvBufferSize);
        if (this.options.sendBufferSize) this.socket.setSendBufferSize(this.options.sendBufferSize);
        if (this.options.unref) this.socket.unref();
        this.logger.log("debug", "udp.bound", { local: this.localLabel() });
        resolve();
      });
    });
  }

  /** The bound IP address (as the kernel reports it). */
  get host(): string {
    return this.boundHost;
  }

  /** The bound port (the ephemeral one when bound with port 0). */
  get port(): number {
    return this.boundPort;
  }

  /** This socket's own address as a peer would see it. */
  get address(): PeerAddress {
    return peerAddress(this.boundHost, this.boundPort);
  }

  get closed(): boolean {
    return this.state === "closed";
  }

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.state !== "bound") {
      this.dropped(peer, data.length, "socket not open");
      return;
    }
    let target = this.parsed.get(peer);
    if (!target) {
      const parsed = parsePeerAddress(peer);
      if (!parsed) {
        this.dropped(peer, data.length, "not a host:port address");
        return;
      }
      target = { ...parsed, family: isIP(parsed.host) === 6 ? 6 : 4 };
      if (this.parsed.size >= MAX_PARSED_PEERS) this.parsed.clear();
      this.parsed.set(peer, target);
    }
    try {
      this.inFlight++;
      this.sending = target.host;
      this.sendingFamily = target.family;
      // One callback for every send (no closure per datagram): it learns the peer from the error.
      this.socket.send(data, target.port, target.host, this.afterSend);
      this.stats.sent++;
    } catch (error) {
      this.inFlight--;
      this.dropped(peer, data.length, String(error));
    } finally {
      this.sending = "";
    }
  }

  private readonly afterSend = (error: Error | null): void => {
    this.inFlight--;
    if (error) {
      const e = error as Error & { address?: string; port?: number };
      const peer = e.address !== undefined && e.port !== undefined ? peerAddress(e.address, e.port) : "?";
      this.dropped(peer as PeerAddress, undefined, String(error));
    }
    if (this.closeWhenDrained && this.inFlight === 0) this.closeSocket();
  };

  /**
   * node:dgram resolves every destination through a lookup before sending, which for an IP literal is
   * dns.lookup answering on the next tick: a deferred call and its bookkeeping per datagram. The
   * address `send` has just validated as an IP literal is answered at once; anything else (a host name
   * given to bind) goes to dns.lookup as before.
   */
  private readonly lookup = (address: string, family: unknown, callback: LookupCallback): void => {
    if (address !== "" && address === this.sending) {
      callback(null, address, this.sendingFamily);
      return;
    }
    dnsLookup(address, family as number, callback);
  };

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.handler = handler;
  }

  /**
   * Stops receiving at once; the socket itself closes once the datagrams already handed to it have
   * left (node:dgram drops a send still queued when its socket closes: a DTLS close_notify sent just
   * before close() would never reach the peer).
   */
  close(): void {
    if (this.state === "closed") return;
    const wasBound = this.state === "bound";
    this.state = "closed";
    this.handler = () => {};
    if (!wasBound) return;
    if (this.inFlight > 0) this.closeWhenDrained = true;
    else this.closeSocket();
  }

  private closeSocket(): void {
    this.closeWhenDrained = false;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }

  private dropped(peer: PeerAddress, bytes: number | undefined, reason: string): void {
    this.stats.sendErrors++;
    this.logger.log("warn", "udp.send_failed", {
      local: this.localLabel(),
      peer,
      ...(bytes !== undefined ? { bytes } : {}),
      reason,
    });
  }

  private localLabel(): string {
    return this.state === "new" ? "(unbound)" : peerAddress(this.boundHost, this.boundPort);
  }
}
