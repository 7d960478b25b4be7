/**
 * A DTLS world for tests: one `DtlsServer` and any number of `DtlsClient`s over the in-memory lossy
 * link (test/kit/lossy-link.ts) on the fake clock, with node:crypto underneath. Records what reaches the
 * layer above on both sides, and can inject datagrams from any (spoofed) address.
 */
import type { DatagramTransport, PeerAddress } from "../../src/core/interfaces.js";
import { fragmentHandshake, HandshakeType, parseFragments } from "../../src/dtls/handshake.js";
import {
  DtlsClient,
  type DtlsClientOptions,
  DtlsServer,
  type DtlsServerOptions,
  type DtlsSessionEvent,
} from "../../src/dtls/index.js";
import {
  EMPTY_RENEGOTIATION_INFO,
  EXTENDED_MASTER_SECRET,
  encodeClientHello,
  parseHelloVerifyRequest,
} from "../../src/dtls/messages.js";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/dtls/record.js";
import { DEFAULT_SUITES } from "../../src/dtls/suites.js";
import { nodeDtlsCrypto } from "../../src/node/dtls-crypto.js";
import { FakeTime } from "../kit/fake-time.js";
import { type LinkConditions, LossyNetwork } from "../kit/lossy-link.js";

export const SERVER = "192.0.2.1:5684" as PeerAddress;

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);
export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** A 16-byte key derived from a name (distinct names, distinct keys). */
export function keyOf(name: string): Uint8Array {
  return nodeDtlsCrypto.sha256(text(`key of ${name}`)).slice(0, 16);
}

/** Client addresses on distinct hosts (so per-host limits do not interfere unless a test wants them). */
export function clientAddress(i: number, port = 40_000): PeerAddress {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${port}` as PeerAddress;
}

export interface WorldOptions {
  readonly conditions?: LinkConditions;
  readonly seed?: number;
  readonly server?: Partial<Omit<DtlsServerOptions, "crypto" | "clock" | "scheduler">>;
  /** Identities the server knows (name → key); default node-1..node-4 with keyOf(name). */
  readonly identities?: readonly string[];
}

export interface Delivery {
  readonly data: string;
  readonly peer: PeerAddress;
  readonly at: number;
}

export function dtlsWorld(options: WorldOptions = {}) {
  const time = new FakeTime();
  const net = new LossyNetwork(time, options.conditions ?? {}, options.seed ?? 1);
  const keys = new Map<string, Uint8Array>();
  for (const name of options.identities ?? ["node-1", "node-2", "node-3", "node-4"])
    keys.set(name, keyOf(name));
  const toServer: Delivery[] = [];
  const established: DtlsSessionEvent[] = [];
  const closed: (DtlsSessionEvent & { reason: string })[] = [];

  const makeServer = (transport: DatagramTransport): DtlsServer => {
    const s = new DtlsServer(transport, {
      psk: (identity) => keys.get(identity),
      crypto: nodeDtlsCrypto,
      clock: time,
      scheduler: time,
      ...options.server,
    });
    s.onReceive((data, peer) => toServer.push({ data: str(data), peer, at: time.now() }));
    s.onEstablished = (e) => established.push(e);
    s.onClosed = (e) => closed.push(e);
    return s;
  };
  const clients: DtlsClient[] = [];
  /** What each client's upper layer received, by client address. */
  const toClient = new Map<PeerAddress, Delivery[]>();

  function client(
    address: PeerAddress,
    identity = "node-1",
    extra: Partial<Omit<DtlsClientOptions, "crypto" | "clock" | "scheduler">> = {},
    wrap: (lower: DatagramTransport) => DatagramTransport = (lower) => lower,
  ): DtlsClient {
    const c = new DtlsClient(wrap(net.transport(address)), {
      server: SERVER,
      identity,
      psk: keyOf(identity),
      crypto: nodeDtlsCrypto,
      clock: time,
      scheduler: time,
      ...extra,
    });
    const got: Delivery[] = [];
    toClient.set(address, got);
    c.onReceive((data, peer) => got.push({ data: str(data), peer, at: time.now() }));
    clients.push(c);
    return c;
  }

  /** Sends a datagram to the server as if from `from` (no handler registered: a pure spoofer). */
  function inject(data: Uint8Array, from: PeerAddress, to: PeerAddress = SERVER): void {
    net.transport(from).send(data, to);
  }

  /** Runs the fake clock until `p` settles (at most `limitMs`; then it rejects instead of hanging). */
  async function run<T>(p: Promise<T>, limitMs = 120_000): Promise<T> {
    let settled = false;
    const watched = p.finally(() => {
      settled = true;
    });
    watched.catch(() => {});
    await until(() => settled, limitMs);
    if (!settled) throw new Error(`did not settle within ${limitMs} ms of fake time`);
    return watched;
  }

  /**
   * Runs the fake clock, due task by due task with the microtasks in between (like test/kit drive()),
   * until `done()` or `limitMs` of fake time has passed; says which.
   */
  async function until(done: () => boolean, limitMs: number): Promise<boolean> {
    const end = time.now() + limitMs;
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (done()) return true;
      const at = time.nextDueAt();
      if (at === undefined || at > end) return false;
      time.advance(at - time.now());
    }
  }

  /** Connects and drives; resolves with the error (if any) instead of rejecting. */
  async function connect(c: DtlsClient, limitMs = 120_000): Promise<unknown> {
    try {
      await run(c.connect(), limitMs);
      return undefined;
    } catch (error) {
      return error;
    }
  }

  /** Datagrams on the link since index `from` (of net.log), optionally between two addresses. */
  function wire(from = 0, between?: { from?: PeerAddress; to?: PeerAddress }) {
    return net.log
      .slice(from)
      .filter((w) => (!between?.from || w.from === between.from) && (!between?.to || w.to === between.to));
  }

  /**
   * A crash and restart: the server's socket goes dead (nothing it sends arrives, nothing reaches it),
   * and a fresh server with no sessions binds the same address.
   */
  function restartServer(): DtlsServer {
    crash();
    current.server.close(); // stops its timers; its close_notify alerts go nowhere
    current = crashable(net.transport(SERVER));
    return current.server;
  }

  function crashable(lower: DatagramTransport) {
    let dead = false;
    const transport: DatagramTransport = {
      send: (data, peer) => {
        if (!dead) lower.send(data, peer);
      },
      onReceive: (handler) =>
        lower.onReceive((data, peer) => {
          if (!dead) handler(data, peer);
        }),
      close: () => {
        if (!dead) lower.close();
      },
    };
    const crash = () => {
      dead = true;
    };
    return { server: makeServer(transport), crash };
  }
  let current = crashable(net.transport(SERVER));
  const server = current.server;
  const crash = () => current.crash();

  /**
   * A peer that speaks only the first half of a handshake: a ClientHello, then the same hello with the
   * cookie the server sent, and nothing after (a half-open handshake with a valid cookie). Returns what
   * it received; `cookie` says whether a HelloVerifyRequest came.
   */
  function halfOpen(address: PeerAddress, random = nodeDtlsCrypto.randomBytes(32)) {
    const got: Uint8Array[] = [];
    const t = net.transport(address);
    t.onReceive((data) => got.push(data));
    t.send(clientHello(random, new Uint8Array(0), 0), SERVER);
    time.advance(3);
    const cookie = got.flatMap(helloVerifyCookies)[0];
    if (cookie) t.send(clientHello(random, cookie, 1), SERVER);
    time.advance(3);
    return { got, cookie, random, transport: t };
  }

  return {
    time,
    net,
    keys,
    server,
    toServer,
    toClient,
    established,
    closed,
    clients,
    client,
    inject,
    run,
    until,
    connect,
    wire,
    restartServer,
    makeServer,
    halfOpen,
  };
}

export type DtlsWorld = ReturnType<typeof dtlsWorld>;

/**
 * A transport that holds back the first datagram `match` picks and sends it right after the next
 * one: a deterministic reordering of two datagrams.
 */
export function holdFirst(match: (datagram: Uint8Array) => boolean) {
  return (lower: DatagramTransport): DatagramTransport => {
    let held: { data: Uint8Array; peer: PeerAddress } | undefined;
    let used = false;
    return {
      send(data, peer) {
        if (!used && match(data)) {
          used = true;
          held = { data, peer };
          return;
        }
        lower.send(data, peer);
        if (held) {
          lower.send(held.data, held.peer);
          held = undefined;
        }
      },
      onReceive: (handler) => lower.onReceive(handler),
      close: () => lower.close(),
    };
  };
}

/** A ClientHello datagram as DtlsClient sends it (message_seq `seq`, record sequence `seq`). */
export function clientHello(
  random: Uint8Array,
  cookie: Uint8Array,
  seq: number,
  suites: readonly number[] = DEFAULT_SUITES,
): Uint8Array {
  const body = encodeClientHello({
    version: DTLS_1_2,
    random,
    sessionId: new Uint8Array(0),
    cookie,
    suites,
    compressions: Uint8Array.of(0),
    extensions: [EXTENDED_MASTER_SECRET, EMPTY_RENEGOTIATION_INFO],
  });
  const [fragment] = fragmentHandshake({ type: HandshakeType.CLIENT_HELLO, seq, body }, body.length);
  return encodeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, seq, fragment!);
}

/** The cookies of the HelloVerifyRequests in a datagram. */
export function helloVerifyCookies(datagram: Uint8Array): Uint8Array[] {
  return parseRecords(datagram)
    .filter((r) => r.epoch === 0 && r.type === ContentType.HANDSHAKE)
    .flatMap((r) => parseFragments(r.fragment))
    .filter((f) => f.type === HandshakeType.HELLO_VERIFY_REQUEST)
    .map((f) => parseHelloVerifyRequest(f.data).cookie.slice());
}

/** The alerts (level, description, epoch) in a datagram, as far as they can be read in plain. */
export function plainAlerts(datagram: Uint8Array): { level: number; description: number; epoch: number }[] {
  return parseRecords(datagram)
    .filter((r) => r.type === ContentType.ALERT && r.epoch === 0 && r.fragment.length === 2)
    .map((r) => ({ level: r.fragment[0]!, description: r.fragment[1]!, epoch: r.epoch }));
}
