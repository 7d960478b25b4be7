/**
 * `cores: 2` (docs/DEPLOY.md §10): the gateway's UDP sockets on a thread of their own. A worker thread
 * owns each listener's socket (receive, send, the system calls and the copies into and out of the
 * kernel) and hands datagrams over in batches, one message per event-loop turn each way, with the
 * bytes transferred, not copied. The gateway itself (DTLS, CoAP, sessions, routing, the store) stays one
 * thread, unchanged: this is only a `DatagramTransport`, so exactly once, in order and "acknowledged
 * means stored" hold as they do on one core (a response is still handed to the socket only after its
 * commit; datagrams keep their order, as on one socket).
 *
 * Datagrams handed over and not yet taken by the gateway's thread are capped (`maxQueued`, 2,048 by
 * default, as a socket's receive buffer is): beyond it the socket thread drops what arrives, counts it
 * and says so at most once a second (`udp.thread_queue_full`), so a flood cannot grow memory without
 * bound while the gateway's thread is busy (docs/PROTOCOL.md §7). The gateway's thread reports what it
 * has taken with its next send batch, or alone when it has nothing to send.
 *
 * The worker's code is the function `socketThread` below, run from its source text (an eval worker):
 * it needs node:dgram and node:worker_threads only, so it runs the same from the compiled program and
 * from the TypeScript sources under the test runner.
 */
import { Worker } from "node:worker_threads";
import { type DatagramTransport, type Logger, type PeerAddress, silentLogger } from "../../src/core/index.js";
import { parsePeerAddress } from "../../src/node/index.js";

/** What the socket thread tells the gateway: bound, a batch of datagrams, an error, closed. */
type FromSocket =
  | { readonly t: "bound"; readonly host: string; readonly port: number }
  | { readonly t: "bind-failed"; readonly error: string }
  | { readonly t: "in"; readonly d: ArrayBuffer[]; readonly p: string[] }
  | { readonly t: "dropped"; readonly n: number }
  | { readonly t: "error"; readonly event: string; readonly error: string }
  | { readonly t: "closed" };

/**
 * What the gateway tells the socket thread: a batch to send ([bytes, host, port] flattened) and how many
 * datagrams it has taken since its last batch (`c`); close.
 */
type ToSocket =
  | { readonly t: "out"; readonly d: (ArrayBuffer | string | number)[]; readonly c: number }
  | { readonly t: "close" };

interface SocketThreadData {
  readonly host: string;
  readonly port: number;
  readonly family: "udp4" | "udp6";
  readonly recvBufferSize: number | undefined;
  readonly sendBufferSize: number | undefined;
  readonly maxQueued: number;
}

/**
 * The socket thread (run from its source text: no imports, no closure over this module). Datagrams
 * received in one turn go to the gateway as one message; a send batch is sent in order.
 */
function socketThread(): void {
  // An eval worker is a CommonJS script: require, not import.
  const { parentPort, workerData } = require("node:worker_threads");
  const dgram = require("node:dgram");
  const net = require("node:net");
  const dns = require("node:dns");
  const data = workerData as SocketThreadData;
  const post = (m: FromSocket, transfer: ArrayBuffer[] = []) => parentPort.postMessage(m, transfer);
  // The host of the datagram being sent: dgram's lookup answers it at once (an IP literal, checked by
  // the gateway's side), not through dns.lookup's extra tick per datagram.
  let sending = "";
  const socket = dgram.createSocket({
    type: data.family,
    ipv6Only: data.family === "udp6" ? false : undefined,
    lookup: (
      host: string,
      options: unknown,
      callback: (e: Error | null, address: string, family: number) => void,
    ) => {
      if (host === sending && host !== "") callback(null, host, net.isIP(host));
      else dns.lookup(host, options, callback);
    },
  });
  let inBytes: ArrayBuffer[] = [];
  let inPeers: string[] = [];
  let flushing = false;
  // Datagrams handed over (or batched) that the gateway's thread has not said it took; drops since the
  // last report, and when that was.
  let queued = 0;
  let dropped = 0;
  let reported = 0;
  const flush = () => {
    flushing = false;
    const d = inBytes;
    const p = inPeers;
    inBytes = [];
    inPeers = [];
    post({ t: "in", d, p }, d);
  };
  socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    if (queued >= data.maxQueued) {
      dropped++;
      const now = Date.now();
      if (now - reported >= 1000) {
        reported = now;
        post({ t: "dropped", n: dropped });
        dropped = 0;
      }
      return;
    }
    queued++;
    // Each datagram arrives in a buffer of its own, handed over as it is (a shared one is copied).
    const own = msg.byteOffset === 0 && msg.buffer.byteLength === msg.byteLength;
    inBytes.push(own ? (msg.buffer as ArrayBuffer) : msg.slice().buffer);
    const a = rinfo.address;
    inPeers.push(a.includes(":") ? `[${a}]:${rinfo.port}` : `${a}:${rinfo.port}`);
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
  });
  const afterSend = (error: (Error & { address?: string; port?: number }) | null) => {
    if (error) post({ t: "error", event: "udp.send_failed", error: String(error) });
  };
  socket.on("error", (error: Error) => post({ t: "error", event: "udp.socket_error", error: String(error) }));
  socket.once("error", (error: Error) => {
    if (!bound) post({ t: "bind-failed", error: error.message });
  });
  let bound = false;
  socket.bind({ address: data.host, port: data.port, exclusive: true }, () => {
    bound = true;
    if (data.recvBufferSize) socket.setRecvBufferSize(data.recvBufferSize);
    if (data.sendBufferSize) socket.setSendBufferSize(data.sendBufferSize);
    const a = socket.address();
    post({ t: "bound", host: a.address, port: a.port });
  });
  parentPort.on("message", (m: ToSocket) => {
    if (m.t === "out") {
      queued -= m.c;
      if (dropped > 0 && Date.now() - reported >= 1000) {
        reported = Date.now();
        post({ t: "dropped", n: dropped });
        dropped = 0;
      }
      const d = m.d;
      for (let i = 0; i < d.length; i += 3) {
        sending = d[i + 1] as string;
        try {
          socket.send(new Uint8Array(d[i] as ArrayBuffer), d[i + 2] as number, sending, afterSend);
        } catch (error) {
          post({ t: "error", event: "udp.send_failed", error: String(error) });
        }
        sending = "";
      }
    } else {
      // Sends already handed to the socket go out before it closes (dgram queues the close behind them).
      socket.close(() => {
        post({ t: "closed" });
        parentPort.close();
      });
    }
  });
}

// esbuild (the test runner's transform) may wrap named functions in __name(…): defined for the eval.
const SOURCE = `var __name = (f) => f;\n(${socketThread.toString()})();`;

export interface UdpThreadOptions {
  readonly logger?: Logger;
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
  /** Datagrams handed to the gateway's thread and not yet taken, at most (default 2,048). */
  readonly maxQueued?: number;
}

/** A UDP socket owned by a worker thread, as a DatagramTransport for the gateway's thread. */
export class UdpThreadTransport implements DatagramTransport {
  /** Binds HOST:PORT (0: any free port) on a new socket thread; rejects as a bind would. */
  static async bind(host: string, port: number, options: UdpThreadOptions = {}): Promise<UdpThreadTransport> {
    const data: SocketThreadData = {
      host,
      port,
      family: host.includes(":") ? "udp6" : "udp4",
      recvBufferSize: options.recvBufferSize,
      sendBufferSize: options.sendBufferSize,
      maxQueued: options.maxQueued ?? 2048,
    };
    const worker = new Worker(SOURCE, { eval: true, workerData: data });
    const transport = new UdpThreadTransport(worker, options.logger ?? silentLogger);
    await transport.bound;
    return transport;
  }

  private handler: (data: Uint8Array, peer: PeerAddress) => void = () => {};
  private out: (ArrayBuffer | string | number)[] = [];
  private outBuffers: ArrayBuffer[] = [];
  private flushing = false;
  private state: "binding" | "bound" | "closed" = "binding";
  private boundHost = "";
  private boundPort = 0;
  private readonly bound: Promise<void>;
  private readonly exited: Promise<void>;
  /** Parsed send targets by peer (cleared when full), as UdpTransport keeps them. */
  private readonly parsed = new Map<string, { host: string; port: number }>();
  /** `dropped`: datagrams the socket thread dropped while the gateway's thread had `maxQueued` to take. */
  readonly stats = { sent: 0, sendErrors: 0, received: 0, dropped: 0 };
  /** Datagrams taken since the last batch told the socket thread. */
  private taken = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly logger: Logger,
  ) {
    this.exited = new Promise((done) => worker.once("exit", () => done()));
    this.bound = new Promise((resolve, reject) => {
      worker.on("message", (m: FromSocket) => {
        switch (m.t) {
          case "in":
            this.stats.received += m.d.length;
            for (let i = 0; i < m.d.length; i++) this.handler(new Uint8Array(m.d[i]!), m.p[i] as PeerAddress);
            this.taken += m.d.length;
            this.schedule();
            break;
          case "dropped":
            this.stats.dropped += m.n;
            this.logger.log("warn", "udp.thread_queue_full", { local: this.address, dropped: m.n });
            break;
          case "bound":
            this.state = "bound";
            this.boundHost = m.host;
            this.boundPort = m.port;
            resolve();
            break;
          case "bind-failed":
            this.state = "closed";
            void worker.terminate();
            reject(new Error(m.error));
            break;
          case "error":
            if (m.event === "udp.send_failed") this.stats.sendErrors++;
            this.logger.log("error", m.event, { local: this.address, error: m.error });
            break;
          case "closed":
            break;
        }
      });
      // The socket thread failing is the gateway losing its ears: fail loudly, as a crash (nothing
      // acknowledged is lost: docs/PROTOCOL.md §4.1) rather than run deaf.
      worker.once("error", (error) => {
        if (this.state === "binding") {
          reject(error);
          return;
        }
        this.logger.log("error", "gateway.udp_thread_failed", { error: String(error) });
        throw error;
      });
    });
  }

  get address(): PeerAddress {
    return (
      this.boundHost.includes(":")
        ? `[${this.boundHost}]:${this.boundPort}`
        : `${this.boundHost}:${this.boundPort}`
    ) as PeerAddress;
  }

  get port(): number {
    return this.boundPort;
  }

  /** The socket thread's id (worker_threads threadId: never 0, the gateway's own thread). */
  get threadId(): number {
    return this.worker.threadId;
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.state !== "bound") return;
    let target = this.parsed.get(peer);
    if (!target) {
      target = parsePeerAddress(peer);
      if (!target) {
        this.stats.sendErrors++;
        this.logger.log("warn", "udp.send_dropped", { peer, reason: "not a host:port address" });
        return;
      }
      if (this.parsed.size >= 4096) this.parsed.clear();
      this.parsed.set(peer, target);
    }
    // The core may reuse its bytes after send returns: the batch takes a copy of its own to transfer.
    const bytes = data.slice().buffer;
    this.out.push(bytes, target.host, target.port);
    this.outBuffers.push(bytes);
    this.stats.sent++;
    this.schedule();
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushing = false;
    if ((this.out.length === 0 && this.taken === 0) || this.state === "closed") return;
    const d = this.out;
    const transfer = this.outBuffers;
    const c = this.taken;
    this.out = [];
    this.outBuffers = [];
    this.taken = 0;
    this.worker.postMessage({ t: "out", d, c } satisfies ToSocket, transfer);
  };

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.handler = handler;
  }

  /** Sends what is batched, closes the socket and ends the thread. */
  close(): void {
    if (this.state === "closed") return;
    this.flush();
    this.state = "closed";
    this.handler = () => {};
    this.worker.postMessage({ t: "close" } satisfies ToSocket);
  }

  whenClosed(): Promise<void> {
    return this.exited;
  }
}
