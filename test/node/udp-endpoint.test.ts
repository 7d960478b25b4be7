/**
 * The CoAP endpoint over real UDP sockets on 127.0.0.1: request/response through node:dgram, and
 * exactly-once delivery through a lossy relay (seeded loss, duplication, reordering) under load.
 */
import { createSocket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { RetransmitsExceeded } from "../../src/core/coap/errors.js";
import { pathOptions, uriPath } from "../../src/core/coap/message.js";
import { Code, MessageType } from "../../src/core/coap/registry.js";
import type { LogLevel, PeerAddress, Random } from "../../src/core/interfaces.js";
import { createUdpEndpoint, type UdpEndpoint, UdpTransport } from "../../src/node/index.js";
import { seededRandom } from "../kit/seeded-random.js";
import { LossyUdpRelay, RECV_BUFFER } from "./lossy-udp-relay.js";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const seeded = (seed: number): Random => {
  const r = seededRandom(seed);
  return { uint32: () => Math.floor(r() * 4_294_967_296) };
};

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function endpoint(
  options: Partial<Parameters<typeof createUdpEndpoint>[0]> = {},
): Promise<UdpEndpoint> {
  const e = await createUdpEndpoint({ host: "127.0.0.1", ...options });
  cleanup.push(() => e.close());
  return e;
}

function captureLogger() {
  const lines: Array<{ level: LogLevel; event: string; fields?: Readonly<Record<string, unknown>> }> = [];
  return {
    lines,
    log: (level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>) =>
      lines.push({ level, event, fields }),
  };
}

describe("UdpTransport", () => {
  it("binds an ephemeral port and reports it; datagrams flow both ways with peer addresses", async () => {
    const a = await UdpTransport.bind("127.0.0.1", 0);
    const b = await UdpTransport.bind("127.0.0.1", 0);
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    expect(a.port).toBeGreaterThan(0);
    expect(a.address).toBe(`127.0.0.1:${a.port}`);
    const got = new Promise<[Uint8Array, PeerAddress]>((resolve) => b.onReceive((d, p) => resolve([d, p])));
    a.send(Uint8Array.from([1, 2, 3]), b.address);
    const [data, from] = await got;
    expect(data).toBeInstanceOf(Uint8Array);
    expect([...data]).toEqual([1, 2, 3]);
    expect(from).toBe(a.address);
  });

  it("never throws on send: bad addresses and sends after close are logged and dropped; close is idempotent", async () => {
    const logger = captureLogger();
    const t = await UdpTransport.bind("127.0.0.1", 0, { logger });
    expect(() => t.send(Uint8Array.of(1), "nonsense" as PeerAddress)).not.toThrow();
    expect(() => t.send(Uint8Array.of(1), "127.0.0.1:0" as PeerAddress)).not.toThrow();
    expect(() => t.send(Uint8Array.of(1), "[::1" as PeerAddress)).not.toThrow();
    t.close();
    expect(() => t.close()).not.toThrow();
    expect(() => t.send(Uint8Array.of(1), "127.0.0.1:9" as PeerAddress)).not.toThrow();
    await t.whenClosed();
    expect(t.closed).toBe(true);
    expect(t.stats.sendErrors).toBe(4);
    expect(logger.lines.filter((l) => l.event === "udp.send_failed")).toHaveLength(4);
  });

  it("a port already in use rejects bind", async () => {
    const a = await UdpTransport.bind("127.0.0.1", 0);
    cleanup.push(() => a.close());
    await expect(UdpTransport.bind("127.0.0.1", a.port)).rejects.toThrow(/EADDRINUSE/);
  });
});

describe("CoAP endpoint over UDP", () => {
  it("CON and NON requests get their responses over real sockets", async () => {
    const server = await endpoint();
    const client = await endpoint();
    const seen: PeerAddress[] = [];
    server.endpoint.exchanges.handle((req) => {
      seen.push(req.peer);
      return { code: Code.CONTENT, options: [], payload: text(`${uriPath(req)}:${str(req.payload)}`) };
    });
    const con = await client.endpoint.exchanges.request(server.transport.address, {
      code: Code.POST,
      options: pathOptions("echo"),
      payload: text("hello"),
    });
    expect(con.type).toBe(MessageType.ACK);
    expect(con.code).toBe(Code.CONTENT);
    expect(str(con.payload)).toBe("echo:hello");
    const non = await client.endpoint.exchanges.request(server.transport.address, {
      code: Code.GET,
      options: pathOptions("a/b"),
      payload: text("n"),
      confirmable: false,
    });
    expect(non.type).toBe(MessageType.NON);
    expect(str(non.payload)).toBe("a/b:n");
    expect(seen).toEqual([client.transport.address, client.transport.address]);
  });

  it("a raw malformed CON gets RST over UDP and the server keeps serving", async () => {
    const server = await endpoint();
    server.endpoint.exchanges.handle(() => ({ code: Code.CONTENT, options: [], payload: text("ok") }));
    const raw = createSocket("udp4");
    cleanup.push(() => new Promise<void>((r) => raw.close(() => r())));
    await new Promise<void>((r) => raw.bind(0, "127.0.0.1", () => r()));
    const reply = new Promise<Buffer>((r) => raw.once("message", (m) => r(m)));
    raw.send(Uint8Array.from([0x40, 0x01, 0xbe, 0xef, 0xf0]), server.transport.port, "127.0.0.1");
    const rst = await reply;
    expect([...rst]).toEqual([0x70, 0x00, 0xbe, 0xef]); // RST, Empty, same message id
    const client = await endpoint();
    const ok = await client.endpoint.exchanges.request(server.transport.address, {
      code: Code.GET,
      options: [],
      payload: new Uint8Array(0),
    });
    expect(str(ok.payload)).toBe("ok");
  });

  it("2,000 CON requests from 5 clients through a relay with 30% loss each way, 5% duplication and " +
    "reordering: each reaches the handler at most once, every success exactly once", async () => {
    // Round-trip loss is 1 − 0.7² = 51%: an attempt (CON there, ACK back) succeeds with p = 0.49, and
    // RFC 7252 back-off doubles the wait after each failed one. P(one request fails) =
    // 0.51^(maxRetransmit+1) = 0.51^17 ≈ 1.1·10⁻⁵, so ≈ 2% of runs see one failure among 2,000; the
    // slowest request takes at most ackTimeout·1.5·(2^17 − 1) ≈ 49 s, typically the run takes 2–5 s.
    // No back-off parameters make all 2,000 certain AND fast, so a failure is allowed, but it must be
    // RetransmitsExceeded and never a duplicate. (Loopback round trips are µs; host timers have 1 ms
    // granularity, so the 0.25 ms ACK timeout only makes the first retransmissions prompt.)
    const transmission = { ackTimeoutMs: 0.25, ackRandomFactor: 1.5, maxRetransmit: 16, nstart: 16 };
    const udp = { recvBufferSize: RECV_BUFFER };
    const server = await endpoint({ transmission, udp, random: seeded(7) });
    const handled = new Map<string, number>();
    server.endpoint.exchanges.handle((req) => {
      const p = str(req.payload);
      handled.set(p, (handled.get(p) ?? 0) + 1);
      return { code: Code.CHANGED, options: [], payload: text(`ok ${p}`) };
    });
    const relay = await LossyUdpRelay.start(
      server.transport.address,
      { loss: 0.3, duplicate: 0.05, reorder: 0.1, maxDelayMs: 4 },
      20_240_601,
    );
    cleanup.push(() => relay.close());
    const clients = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => endpoint({ transmission, udp, random: seeded(100 + i) })),
    );
    const started = performance.now();
    const outcomes = await Promise.all(
      clients.flatMap((c, ci) =>
        Array.from({ length: 400 }, (_, ri) => {
          const payload = `c${ci}-r${ri}`;
          return c.endpoint.exchanges
            .request(relay.address, { code: Code.POST, options: pathOptions("s"), payload: text(payload) })
            .then(
              (response) => ({ payload, ok: true as const, body: str(response.payload) }),
              (error: unknown) => ({ payload, ok: false as const, error }),
            );
        }),
      ),
    );
    const elapsed = performance.now() - started;
    const failed = outcomes.filter((o) => !o.ok);
    const succeeded = outcomes.filter((o) => o.ok);
    console.log(
      JSON.stringify({
        elapsedMs: Math.round(elapsed),
        succeeded: succeeded.length,
        failed: failed.length,
        toServer: relay.toServer.stats,
        toClient: relay.toClient.stats,
        serverDuplicates: server.endpoint.messages.stats.duplicates,
        clientRetransmissions: clients.reduce((n, c) => n + c.endpoint.messages.stats.retransmissions, 0),
      }),
    );
    expect(outcomes).toHaveLength(2_000);
    for (const o of succeeded) {
      expect(o.body).toBe(`ok ${o.payload}`); // the response belongs to this request
      expect(handled.get(o.payload)).toBe(1);
    }
    for (const o of failed) {
      expect(o.error).toBeInstanceOf(RetransmitsExceeded);
      expect(handled.get(o.payload) ?? 0).toBeLessThanOrEqual(1);
    }
    expect(failed.length).toBeLessThanOrEqual(3); // expected ≈ 0.02
    const sent = new Set(outcomes.map((o) => o.payload));
    expect([...handled.keys()].every((k) => sent.has(k))).toBe(true);
    expect(Math.max(...handled.values())).toBe(1);
    // The impairments really happened.
    for (const d of [relay.toServer.stats, relay.toClient.stats]) {
      expect(d.dropped / d.received).toBeGreaterThan(0.25);
      expect(d.dropped / d.received).toBeLessThan(0.35);
      expect(d.duplicated).toBeGreaterThan(0);
      expect(d.reordered).toBeGreaterThan(0);
    }
    expect(server.endpoint.messages.stats.duplicates).toBeGreaterThan(500);
  }, 90_000);
});
