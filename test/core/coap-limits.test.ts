/**
 * The CoAP stack against an attacker on the link (forged and flooded datagrams, many spoofed source
 * ports), over the in-memory link with the fake clock. Each finding of the hardening probe is
 * reproduced here and must stay bounded: Block2 copies of large (error) answers, Block1 slots held by
 * transfers never finished, observers registered under many tokens (a reflection amplifier), and the
 * deduplication table. Every cap is in coap/limits.ts; `CoapEndpoint.tables()` shows the tables.
 */
import { describe, expect, it } from "vitest";
import { blockOf } from "../../src/core/coap/blockwise.js";
import { CoapEndpoint, type EndpointOptions } from "../../src/core/coap/endpoint.js";
import { limitErrorPayload, type Response } from "../../src/core/coap/exchange-layer.js";
import { DEFAULT_COAP_LIMITS, resolveCoapLimits } from "../../src/core/coap/limits.js";
import {
  blockOption,
  type CoapMessage,
  type CoapOption,
  optionUint,
  parseMessage,
  pathOptions,
  serializeMessage,
  uintOption,
  uriPath,
} from "../../src/core/coap/message.js";
import { Code, ContentFormat, MessageType, OptionNumber } from "../../src/core/coap/registry.js";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { drive, FakeTime, fakeRandom } from "../kit/fake-time.js";
import { LossyNetwork } from "../kit/lossy-link.js";

const CLIENT = "client:1" as PeerAddress;
const SERVER = "server:5683" as PeerAddress;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(b);
const EMPTY = new Uint8Array(0);
const bytes = (n: number, seed = 7): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

type ServerExtra = Pick<EndpointOptions, "limits" | "blockwise" | "transmission">;

/**
 * A server whose handler answers like the gateway does for an unknown resource (4.04 echoing the
 * path), or with `body(path)` when set; a legitimate client; and attackers at any address.
 */
function setup(server: ServerExtra = {}, seed = 1) {
  const time = new FakeTime();
  const net = new LossyNetwork(time, {}, seed);
  const base = { clock: time, scheduler: time };
  const client = new CoapEndpoint({
    ...base,
    transport: net.transport(CLIENT),
    random: fakeRandom(seed),
    blockwise: { szx: 0 },
  });
  const s = new CoapEndpoint({
    ...base,
    ...server,
    transport: net.transport(SERVER),
    random: fakeRandom(seed + 1),
  });
  const handled: { peer: PeerAddress; path: string; payload: Uint8Array }[] = [];
  let body: ((path: string) => Response | undefined) | undefined;
  s.handle((req) => {
    const path = uriPath(req);
    handled.push({ peer: req.peer, path, payload: req.payload });
    const own = body?.(path);
    if (own) return own;
    if (path === "up") return { code: Code.CHANGED, options: [], payload: EMPTY };
    return { code: Code.NOT_FOUND, options: [], payload: text(`no resource /${path}`) };
  });
  /** A raw peer at `address`: sends CoAP messages it builds itself, keeps what comes back. */
  const attackers = new Map<string, { got: CoapMessage[] }>();
  let mid = 0;
  const send = (address: string, m: Partial<CoapMessage> & { options: CoapOption[] }) => {
    let a = attackers.get(address);
    if (!a) {
      const got: CoapMessage[] = [];
      net.transport(address).onReceive((d) => got.push(parseMessage(d)));
      a = { got };
      attackers.set(address, a);
    }
    net.transport(address).send(
      serializeMessage({
        type: MessageType.CON,
        code: Code.GET,
        messageId: mid++ & 0xffff,
        token: Uint8Array.of(mid & 0xff, (mid >> 8) & 0xff, (mid >> 16) & 0xff),
        payload: EMPTY,
        ...m,
      }),
      SERVER,
    );
    return a;
  };
  const got = (address: string) => attackers.get(address)?.got ?? [];
  const datagramsTo = (address: string, since = 0) =>
    net.log.filter((r) => r.to === address && r.from === SERVER && r.at >= since).length;
  return {
    time,
    net,
    client,
    server: s,
    handled,
    send,
    got,
    datagramsTo,
    respondWith: (f: (path: string) => Response | undefined) => {
      body = f;
    },
  };
}

const b1 = (num: number, more: boolean, szx = 0) => blockOption(OptionNumber.BLOCK1, { num, more, szx });
const tag = (n: number): CoapOption => ({
  number: OptionNumber.REQUEST_TAG,
  value: Uint8Array.of(n >> 8, n & 0xff),
});
const observe0 = uintOption(OptionNumber.OBSERVE, 0);

describe("limits: defaults and validation", () => {
  it("has documented defaults, and refuses caps that are not positive integers", () => {
    expect(DEFAULT_COAP_LIMITS).toEqual({
      maxDedupEntries: 16_384,
      maxDedupBytes: 8 * 1024 * 1024,
      maxErrorPayloadBytes: 64,
      maxAssemblies: 64,
      maxAssembliesPerPeer: 4,
      maxRepresentations: 256,
      maxRepresentationBytes: 1024 * 1024,
      maxObservers: 4_096,
      maxObserversPerPeer: 8,
    });
    expect(resolveCoapLimits(undefined)).toBe(DEFAULT_COAP_LIMITS);
    expect(resolveCoapLimits({ maxObservers: 10 }).maxObservers).toBe(10);
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => resolveCoapLimits({ maxAssemblies: bad })).toThrow(
        /maxAssemblies must be a positive integer/,
      );
    const time = new FakeTime();
    expect(
      () =>
        new CoapEndpoint({
          clock: time,
          scheduler: time,
          random: fakeRandom(1),
          transport: new LossyNetwork(time).transport("x:1"),
          limits: { maxDedupEntries: 0 },
        }),
    ).toThrow(RangeError);
  });

  it("tables() starts empty, with every counter at 0 and the caps in force", () => {
    const { server } = setup({ limits: { maxObservers: 99 } });
    expect(server.tables()).toEqual({
      dedup: 0,
      dedupBytes: 0,
      assemblies: 0,
      assemblyBytes: 0,
      representations: 0,
      representationBytes: 0,
      observers: 0,
      evicted: { dedup: 0, assemblies: 0, representations: 0, observers: 0 },
      observersReplaced: 0,
      representationsNotKept: 0,
      errorPayloadsCut: 0,
      limits: { ...DEFAULT_COAP_LIMITS, maxObservers: 99 },
    });
  });
});

describe("finding: a 4.04 echoing a huge path was kept for Block2, per peer and path, without limit", () => {
  it("2,000 GETs with 2 KB paths: no copy kept, every answer one short datagram without Block2", () => {
    const { time, server, send, got } = setup();
    for (let i = 0; i < 2_000; i++) {
      send("evil:1", { options: pathOptions(`${i}-${"x".repeat(2_048)}`) });
      if (i % 100 === 99) time.advance(2);
    }
    time.advance(5);
    const answers = got("evil:1");
    expect(answers).toHaveLength(2_000);
    for (const a of answers) {
      expect(a.code).toBe(Code.NOT_FOUND);
      expect(blockOf(a, OptionNumber.BLOCK2)).toBeUndefined();
      expect(a.payload.length).toBeLessThanOrEqual(64);
    }
    expect(str(answers[0]!.payload)).toMatch(/^no resource \/0-x+…$/);
    const t = server.tables();
    expect(t.representations).toBe(0);
    expect(t.representationBytes).toBe(0);
    expect(t.errorPayloadsCut).toBe(2_000);
  });

  it("successful large answers: at most 256 copies and 1 MiB, oldest first; an active download survives", async () => {
    const { time, client, server, send, respondWith } = setup();
    const big = (path: string) => bytes(5_000, path.length);
    respondWith((path) =>
      path.startsWith("big") ? { code: Code.CONTENT, options: [], payload: big(path) } : undefined,
    );
    let peak = { count: 0, bytes: 0 };
    let port = 0;
    // The attacker asks for big representations from new ports, 20 per millisecond, while a
    // legitimate client downloads one in 16-byte blocks (313 blocks, about 2 ms each).
    const flood = () => {
      for (let i = 0; i < 20; i++) send(`evil:${++port}`, { options: pathOptions(`big/${port}`) });
      const t = server.tables();
      peak = {
        count: Math.max(peak.count, t.representations),
        bytes: Math.max(peak.bytes, t.representationBytes),
      };
      if (port < 8_000) time.schedule(1, flood);
    };
    flood();
    const response = await drive(
      time,
      client.request(SERVER, { code: Code.GET, options: pathOptions("big/legit"), payload: EMPTY }),
    );
    expect(response.code).toBe(Code.CONTENT);
    expect(response.payload).toEqual(big("big/legit"));
    expect(peak.count).toBeLessThanOrEqual(256);
    expect(peak.bytes).toBeLessThanOrEqual(1024 * 1024);
    const t = server.tables();
    expect(t.evicted.representations).toBeGreaterThan(1_000);
    // 5,000-byte bodies: the byte cap (1 MiB) binds before the count (256), and the table is full.
    expect(t.representations).toBeLessThan(256);
    expect(t.representationBytes).toBeGreaterThan(1024 * 1024 - 5_100);
  });

  it("a response larger than the byte cap is served without a copy (later GET blocks computed again)", async () => {
    const { time, client, server, respondWith } = setup({ limits: { maxRepresentationBytes: 1_000 } });
    respondWith(() => ({ code: Code.CONTENT, options: [], payload: bytes(2_000) }));
    const r = await drive(
      time,
      client.request(SERVER, { code: Code.GET, options: pathOptions("a"), payload: EMPTY }),
    );
    expect(r.payload).toEqual(bytes(2_000));
    expect(server.tables()).toMatchObject({ representations: 0, representationBytes: 0 });
    expect(server.tables().representationsNotKept).toBe(125); // every block computed the body again
  });

  it("no handler can make an error answer large: diagnostics cut at a character, formatted ones emptied", async () => {
    const { time, client, server, respondWith } = setup();
    respondWith((path) => {
      if (path === "text")
        return { code: Code.INTERNAL_SERVER_ERROR, options: [], payload: text("é".repeat(5_000)) };
      if (path === "cbor")
        return {
          code: Code.BAD_REQUEST,
          options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CBOR)],
          payload: bytes(3_000),
        };
      return undefined;
    });
    const get = (path: string) =>
      drive(time, client.request(SERVER, { code: Code.GET, options: pathOptions(path), payload: EMPTY }));
    const t = await get("text");
    expect(t.code).toBe(Code.INTERNAL_SERVER_ERROR);
    // The client asked for 16-byte blocks: an error is cut to fit one, never sent block-wise.
    expect(blockOf(t, OptionNumber.BLOCK2)).toBeUndefined();
    expect(t.payload.length).toBeLessThanOrEqual(16);
    expect(str(t.payload)).toMatch(/^(é)+…$/);
    const c = await get("cbor");
    expect(c.code).toBe(Code.BAD_REQUEST);
    expect(c.payload).toEqual(EMPTY);
    expect(optionUint(c, OptionNumber.CONTENT_FORMAT)).toBeUndefined();
    expect(server.tables()).toMatchObject({ representations: 0, errorPayloadsCut: 2 });
  });

  it("limitErrorPayload: success untouched, errors cut to the limit at a UTF-8 boundary", () => {
    const ok: Response = { code: Code.CONTENT, options: [], payload: bytes(500) };
    expect(limitErrorPayload(ok, 64)).toBe(ok);
    const short: Response = { code: Code.NOT_FOUND, options: [], payload: text("gone") };
    expect(limitErrorPayload(short, 64)).toBe(short);
    const long: Response = { code: Code.NOT_FOUND, options: [], payload: text(`a${"€".repeat(100)}`) };
    const cut = limitErrorPayload(long, 64);
    expect(cut.payload.length).toBeLessThanOrEqual(64);
    expect(str(cut.payload)).toBe(`a${"€".repeat(20)}…`);
    expect(limitErrorPayload(long, 2).payload).toEqual(text("a"));
  });
});

describe("finding: 200 Block1 transfers from spoofed sources, never finished, took every slot for 247 s", () => {
  it("a legitimate block-wise POST completes while new transfers keep starting from many ports", async () => {
    const { time, client, server, send, handled } = setup();
    let port = 0;
    let peak = 0;
    const start = (n: number) => {
      for (let i = 0; i < n; i++)
        send(`evil:${++port}`, {
          code: Code.POST,
          options: [...pathOptions("up"), b1(0, true)],
          payload: bytes(16),
        });
      peak = Math.max(peak, server.tables().assemblies);
    };
    start(200); // the slots are taken before the node starts
    time.advance(5);
    expect(server.tables().assemblies).toBe(64);
    // ... and the attacker keeps starting 10 more every millisecond (20 per round trip of the node).
    let flooding = true;
    const flood = () => {
      start(10);
      if (flooding) time.schedule(1, flood);
    };
    flood();
    const body = bytes(800);
    const response = await drive(
      time,
      client.request(SERVER, { code: Code.POST, options: pathOptions("up"), payload: body }),
    );
    flooding = false;
    time.advance(5);
    expect(response.code).toBe(Code.CHANGED);
    expect(handled.filter((h) => h.peer === CLIENT).map((h) => h.payload)).toEqual([body]);
    expect(peak).toBeLessThanOrEqual(64);
    const t = server.tables();
    expect(t.assemblies).toBeLessThanOrEqual(64);
    expect(t.assemblyBytes).toBeLessThanOrEqual(64 * 16);
    expect(t.evicted.assemblies).toBe(port - t.assemblies);
  });

  it("when the table is full, strangers' transfers are evicted before a known peer's, however old", () => {
    const { time, server, send, got } = setup();
    // What the gateway says of an address with an authenticated session.
    server.handle(
      (req) => ({ code: uriPath(req) === "up" ? Code.CHANGED : Code.NOT_FOUND, options: [], payload: EMPTY }),
      { trusted: (peer) => peer === "node:1" },
    );
    const block = (address: string, t: number, num: number, more: boolean) =>
      send(address, {
        code: Code.POST,
        options: [...pathOptions("up"), tag(t), b1(num, more)],
        payload: bytes(16),
      });
    block("node:1", 1, 0, true); // the oldest transfer of all
    time.advance(1);
    for (let port = 0; port < 200; port++) block(`evil:${port}`, 1000 + port, 0, true);
    time.advance(5);
    expect(server.tables().assemblies).toBe(64);
    // The node's transfer survived 200 starts by strangers: its next block continues it, the last one completes it.
    block("node:1", 1, 1, false);
    time.advance(5);
    expect(got("node:1").map((m) => m.code)).toEqual([Code.CONTINUE, Code.CHANGED]);
    // Without that knowledge the oldest goes first, as before.
    expect(got("evil:0").map((m) => m.code)).toEqual([Code.CONTINUE]);
    block("evil:0", 1000, 1, false);
    time.advance(5);
    expect(got("evil:0").at(-1)?.code).toBe(Code.REQUEST_ENTITY_INCOMPLETE);
  });

  it("one address holds at most 4 transfers (its oldest evicted), and assemblies still expire", () => {
    const { time, server, send, got } = setup({ blockwise: { assemblyLifetimeMs: 10_000 } });
    for (let i = 0; i < 50; i++)
      send("evil:1", {
        code: Code.POST,
        options: [...pathOptions("up"), tag(i), b1(0, true)],
        payload: bytes(16),
      });
    time.advance(5);
    expect(server.tables()).toMatchObject({ assemblies: 4, evicted: { assemblies: 46 } });
    // The newest four are held: continuing one of them works, continuing an evicted one gets 4.08.
    send("evil:1", {
      code: Code.POST,
      options: [...pathOptions("up"), tag(49), b1(1, true)],
      payload: bytes(16),
    });
    send("evil:1", {
      code: Code.POST,
      options: [...pathOptions("up"), tag(0), b1(1, true)],
      payload: bytes(16),
    });
    time.advance(5);
    expect(
      got("evil:1")
        .slice(-2)
        .map((m) => m.code),
    ).toEqual([Code.CONTINUE, Code.REQUEST_ENTITY_INCOMPLETE]);
    time.advance(20_000);
    expect(server.tables()).toMatchObject({ assemblies: 0, assemblyBytes: 0 });
  });
});

describe("finding: 1,000 observe registrations from one address made one notify 1,000 datagrams", () => {
  it("one address, one path, 1,000 tokens: one observer, one datagram per change", () => {
    const { time, server, send, datagramsTo } = setup();
    for (let i = 0; i < 1_000; i++) send("evil:1", { options: [...pathOptions("up"), observe0] });
    time.advance(5);
    expect(server.observers.count("up")).toBe(1);
    expect(server.tables()).toMatchObject({ observers: 1, observersReplaced: 999 });
    const since = time.now();
    expect(server.notify("up", { code: Code.CONTENT, options: [], payload: text("v1") })).toBe(1);
    time.advance(5);
    expect(datagramsTo("evil:1", since)).toBe(1);
  });

  it("a legitimate observer gets exactly one notification per change, also after re-registering", async () => {
    const { time, client, server, send } = setup();
    const seen: string[] = [];
    // A node that re-registers (say after a reboot lost its token): the newer registration wins.
    const first = await drive(
      time,
      client.observe(SERVER, "up", (m) => seen.push(`first:${str(m.payload)}`)),
    );
    const second = await drive(
      time,
      client.observe(SERVER, "up", (m) => seen.push(str(m.payload))),
    );
    expect(first.active && second.active).toBe(true);
    for (let i = 0; i < 300; i++) send(`evil:${i}`, { options: [...pathOptions("up"), observe0] });
    time.advance(5);
    for (let v = 1; v <= 3; v++) {
      server.notify("up", { code: Code.CONTENT, options: [], payload: text(`v${v}`) });
      time.advance(5);
      await new Promise((r) => setImmediate(r));
    }
    expect(seen).toEqual(["v1", "v2", "v3"]);
  });

  it("per-peer and total caps: the oldest registration goes, and is counted", () => {
    const { time, server, send, respondWith } = setup({ limits: { maxObservers: 50 } });
    respondWith(() => ({ code: Code.CONTENT, options: [], payload: text("ok") }));
    for (let p = 0; p < 20; p++) send("evil:1", { options: [...pathOptions(`r/${p}`), observe0] });
    time.advance(5);
    expect(server.tables()).toMatchObject({ observers: 8, evicted: { observers: 12 } });
    expect(server.observers.count("r/19")).toBe(1);
    expect(server.observers.count("r/0")).toBe(0);
    for (let p = 0; p < 100; p++) send(`evil:${p + 2}`, { options: [...pathOptions("s"), observe0] });
    time.advance(5);
    expect(server.tables()).toMatchObject({ observers: 50, evicted: { observers: 12 + 58 } });
    expect(server.notify("s", { code: Code.CONTENT, options: [], payload: text("x") })).toBe(50);
  });
});

describe("finding: deduplication kept every (peer, message id) reply for 247 s without a cap", () => {
  it("the table stays at its entry cap, oldest first; what is lost is a very late retransmission", () => {
    const { time, server, handled, net } = setup({ limits: { maxDedupEntries: 1_000 } });
    const evil = net.transport("evil:1");
    const con = (messageId: number) =>
      serializeMessage({
        type: MessageType.CON,
        code: Code.POST,
        messageId,
        token: Uint8Array.of(1),
        options: pathOptions("up"),
        payload: EMPTY,
      });
    for (let m = 0; m < 5_000; m++) {
      evil.send(con(m), SERVER);
      if (m % 100 === 99) {
        time.advance(2);
        expect(server.tables().dedup).toBeLessThanOrEqual(1_000);
      }
    }
    time.advance(5);
    expect(server.tables()).toMatchObject({ dedup: 1_000, evicted: { dedup: 4_000 } });
    expect(handled).toHaveLength(5_000);
    evil.send(con(4_999), SERVER); // still remembered: answered from the table
    evil.send(con(0), SERVER); // forgotten: processed a second time (the documented loss)
    time.advance(5);
    expect(handled).toHaveLength(5_001);
    expect(server.messages.stats.duplicates).toBe(1);
  });

  it("the table stays within its byte cap with large piggybacked replies", () => {
    const { time, server, net, respondWith } = setup({ limits: { maxDedupBytes: 50_000 } });
    respondWith(() => ({ code: Code.CONTENT, options: [], payload: bytes(500) }));
    const evil = net.transport("evil:1");
    for (let m = 0; m < 1_000; m++)
      evil.send(
        serializeMessage({
          type: MessageType.CON,
          code: Code.GET,
          messageId: m,
          token: Uint8Array.of(1),
          options: pathOptions("r"),
          payload: EMPTY,
        }),
        SERVER,
      );
    time.advance(5);
    const t = server.tables();
    expect(t.dedupBytes).toBeLessThanOrEqual(50_000);
    expect(t.dedup).toBeLessThan(100);
    expect(t.evicted.dedup).toBe(1_000 - t.dedup);
    time.advance(300_000); // and they still expire
    expect(server.tables()).toMatchObject({ dedup: 0, dedupBytes: 0 });
  });
});
