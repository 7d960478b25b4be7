/**
 * Lockstep and loss tests of block-wise transfers (RFC 7959) between two endpoints over the in-memory
 * link with the fake clock, plus a raw peer that scripts blocks the way libcoap sends them.
 */
import { describe, expect, it } from "vitest";
import { BlockwiseError, blockOf } from "../../src/core/coap/blockwise.js";
import { CoapEndpoint, type EndpointOptions } from "../../src/core/coap/endpoint.js";
import {
  blockOption,
  type CoapMessage,
  type CoapOption,
  findOption,
  optionUint,
  parseMessage,
  pathOptions,
  serializeMessage,
} from "../../src/core/coap/message.js";
import { Code, MessageType, OptionNumber } from "../../src/core/coap/registry.js";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { drive, FakeTime, fakeRandom } from "../kit/fake-time.js";
import { type LinkConditions, LossyNetwork } from "../kit/lossy-link.js";

const CLIENT = "client:1" as PeerAddress;
const SERVER = "server:5683" as PeerAddress;
const RAW = "raw:7" as PeerAddress;

type Extra = Pick<EndpointOptions, "blockwise" | "transmission">;

function setup(conditions: LinkConditions = {}, seed = 1, client: Extra = {}, server: Extra = {}) {
  const time = new FakeTime();
  const net = new LossyNetwork(time, conditions, seed);
  const base = { clock: time, scheduler: time };
  const c = new CoapEndpoint({
    ...base,
    ...client,
    transport: net.transport(CLIENT),
    random: fakeRandom(seed),
  });
  const s = new CoapEndpoint({
    ...base,
    ...server,
    transport: net.transport(SERVER),
    random: fakeRandom(seed + 100),
  });
  const bodies: Uint8Array[] = [];
  let reply: (body: Uint8Array) => Uint8Array = () => new Uint8Array(0);
  s.handle((req) => {
    bodies.push(req.payload);
    return { code: Code.CHANGED, options: [], payload: reply(req.payload) };
  });
  return {
    time,
    net,
    client: c,
    server: s,
    bodies,
    respondWith: (f: (body: Uint8Array) => Uint8Array) => {
      reply = f;
    },
    wire: () => net.log.filter((r) => !r.dropped).map((r) => ({ from: r.from, m: parseMessage(r.data) })),
  };
}

const bytes = (n: number, seed = 7): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const post = (payload: Uint8Array, path = "up") => ({ code: Code.POST, options: pathOptions(path), payload });
const block = (m: Pick<CoapMessage, "options">, n: number) => blockOf(m, n);
const hex = (b: Uint8Array | undefined) =>
  b ? [...b].map((x) => x.toString(16).padStart(2, "0")).join("") : "-";

/** A peer speaking raw CoAP: sends scripted messages, collects what it receives. */
function rawPeer(net: LossyNetwork) {
  const raw = net.transport(RAW);
  const got: CoapMessage[] = [];
  raw.onReceive((d) => got.push(parseMessage(d)));
  let mid = 0x100;
  return {
    got,
    send: (token: string, options: CoapOption[], payload: Uint8Array, code: number = Code.POST) =>
      raw.send(
        serializeMessage({
          type: MessageType.CON,
          code,
          messageId: mid++,
          token: new TextEncoder().encode(token),
          options,
          payload,
        }),
        SERVER,
      ),
  };
}

const b1 = (num: number, more: boolean, szx = 0) => blockOption(OptionNumber.BLOCK1, { num, more, szx });
const tagOpt = (t: number): CoapOption => ({ number: OptionNumber.REQUEST_TAG, value: Uint8Array.of(t) });

describe("Block1 (RFC 7959 §2.3), lockstep", () => {
  it("40 bytes in 16-byte blocks: 2.31, 2.31, then the handler's response with Block1 of the last block", async () => {
    const { time, client, bodies, wire } = setup({}, 1, { blockwise: { szx: 0 } });
    const body = bytes(40);
    const pending = client.request(SERVER, post(body));
    const response = await drive(time, pending);
    expect(response.code).toBe(Code.CHANGED);
    expect(bodies).toEqual([body]);
    const w = wire();
    expect(w.map(({ from, m }) => [from, m.type, m.code, block(m, OptionNumber.BLOCK1)])).toEqual([
      [CLIENT, MessageType.CON, Code.POST, { num: 0, more: true, szx: 0 }],
      [SERVER, MessageType.ACK, Code.CONTINUE, { num: 0, more: true, szx: 0 }],
      [CLIENT, MessageType.CON, Code.POST, { num: 1, more: true, szx: 0 }],
      [SERVER, MessageType.ACK, Code.CONTINUE, { num: 1, more: true, szx: 0 }],
      [CLIENT, MessageType.CON, Code.POST, { num: 2, more: false, szx: 0 }],
      [SERVER, MessageType.ACK, Code.CHANGED, { num: 2, more: false, szx: 0 }],
    ]);
    const requests = w.filter((x) => x.from === CLIENT).map((x) => x.m);
    // Size1 announces the body on the first block only (§4); one Request-Tag ties the blocks (RFC 9175 §3).
    expect(requests.map((m) => optionUint(m, OptionNumber.SIZE1))).toEqual([40, undefined, undefined]);
    const tags = requests.map((m) => hex(findOption(m, OptionNumber.REQUEST_TAG)?.value));
    expect(new Set(tags).size).toBe(1);
    expect(tags[0]).not.toBe("-");
    // A fresh token per block: the server must not tie blocks together by token.
    expect(new Set(requests.map((m) => hex(m.token))).size).toBe(3);
    expect(requests.map((m) => m.payload.length)).toEqual([16, 16, 8]);
    // Early negotiation (§2.4) rides on the last block only: our blocks are smaller than 1024.
    expect(requests.map((m) => block(m, OptionNumber.BLOCK2))).toEqual([
      undefined,
      undefined,
      { num: 0, more: false, szx: 0 },
    ]);
  });

  it("libcoap style: a new token on every block and a re-sent block (new MID) are reassembled once", () => {
    const { time, net, bodies } = setup();
    const raw = rawPeer(net);
    const p = bytes(16);
    raw.send("t1", [...pathOptions("up"), tagOpt(9), b1(0, true)], p);
    time.advance(5);
    raw.send("t2", [...pathOptions("up"), tagOpt(9), b1(1, true)], p);
    time.advance(5);
    raw.send("t3", [...pathOptions("up"), tagOpt(9), b1(1, true)], p); // the same block again
    time.advance(5);
    raw.send("t4", [...pathOptions("up"), tagOpt(9), b1(2, false)], bytes(3));
    time.advance(5);
    expect(raw.got.map((m) => [m.code, new TextDecoder().decode(m.token)])).toEqual([
      [Code.CONTINUE, "t1"],
      [Code.CONTINUE, "t2"],
      [Code.CONTINUE, "t3"],
      [Code.CHANGED, "t4"],
    ]);
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toEqual(Uint8Array.from([...p, ...p, ...bytes(3)]));
  });

  it("4.08 Request Entity Incomplete for a block that does not continue the body (§2.9.2)", () => {
    const { time, net, bodies, server } = setup();
    const raw = rawPeer(net);
    raw.send("a", [...pathOptions("up"), b1(1, true)], bytes(16)); // no assembly started
    time.advance(5);
    raw.send("b", [...pathOptions("up"), b1(0, true)], bytes(16));
    time.advance(5);
    raw.send("c", [...pathOptions("up"), b1(2, false)], bytes(4)); // gap: block 1 missing
    time.advance(5);
    raw.send("d", [...pathOptions("up"), b1(1, false)], bytes(4)); // the gap dropped the assembly
    time.advance(5);
    expect(raw.got.map((m) => m.code)).toEqual([
      Code.REQUEST_ENTITY_INCOMPLETE,
      Code.CONTINUE,
      Code.REQUEST_ENTITY_INCOMPLETE,
      Code.REQUEST_ENTITY_INCOMPLETE,
    ]);
    expect(bodies).toEqual([]);
    expect(server.blockServer.held.assemblies).toBe(0);
  });

  it("4.13 Request Entity Too Large with Size1 = the maximum (§2.9.3): announced, or found mid-way", async () => {
    const { time, net, client, bodies } = setup(
      {},
      1,
      { blockwise: { szx: 0 } },
      { blockwise: { maxBodyBytes: 40 } },
    );
    // Our client announces Size1 on block 0: refused at once.
    const pending = client.request(SERVER, post(bytes(100)));
    const r = await drive(time, pending);
    expect(r.code).toBe(Code.REQUEST_ENTITY_TOO_LARGE);
    expect(optionUint(r, OptionNumber.SIZE1)).toBe(40);
    expect(net.log.filter((x) => x.from === CLIENT)).toHaveLength(1);
    // A client that does not announce: refused on the block that crosses the limit.
    const raw = rawPeer(net);
    for (let i = 0; i < 3; i++) {
      raw.send(`r${i}`, [...pathOptions("up"), b1(i, true)], bytes(16));
      time.advance(5);
    }
    expect(raw.got.map((m) => [m.code, optionUint(m, OptionNumber.SIZE1)])).toEqual([
      [Code.CONTINUE, undefined],
      [Code.CONTINUE, undefined],
      [Code.REQUEST_ENTITY_TOO_LARGE, 40],
    ]);
    expect(bodies).toEqual([]);
  });

  it("a block of the wrong size (not the last) is a 4.00 (§2.2)", () => {
    const { time, net } = setup();
    const raw = rawPeer(net);
    raw.send("x", [...pathOptions("up"), b1(0, true)], bytes(10));
    time.advance(5);
    expect(raw.got.map((m) => m.code)).toEqual([Code.BAD_REQUEST]);
  });

  it("two interleaved transfers from one peer to one path, told apart by Request-Tag, both complete", async () => {
    const { time, client, bodies, wire } = setup({}, 2, { blockwise: { szx: 0 } });
    const a = bytes(100, 1);
    const b = bytes(90, 2);
    const pa = client.request(SERVER, post(a));
    const pb = client.request(SERVER, post(b));
    const [ra, rb] = await drive(time, Promise.all([pa, pb]));
    expect(ra.code).toBe(Code.CHANGED);
    expect(rb.code).toBe(Code.CHANGED);
    expect(bodies).toHaveLength(2);
    expect(bodies).toContainEqual(a);
    expect(bodies).toContainEqual(b);
    // They really interleaved: the tags alternate on the wire (NSTART = 1 takes turns).
    const tags = wire()
      .filter((x) => x.from === CLIENT)
      .map((x) => hex(findOption(x.m, OptionNumber.REQUEST_TAG)?.value));
    expect(new Set(tags).size).toBe(2);
    expect(tags[0]).not.toBe(tags[1]);
    expect(tags[1]).not.toBe(tags[2]);
  });

  it("an incomplete assembly expires (one sweep on the TimerQueue), then a late block gets 4.08", () => {
    const { time, net, server } = setup({}, 1, {}, { blockwise: { assemblyLifetimeMs: 10_000 } });
    const raw = rawPeer(net);
    raw.send("a", [...pathOptions("up"), b1(0, true)], bytes(16));
    time.advance(5);
    expect(server.blockServer.held.assemblies).toBe(1);
    time.advance(20_000);
    expect(server.blockServer.held.assemblies).toBe(0);
    raw.send("b", [...pathOptions("up"), b1(1, false)], bytes(4));
    time.advance(5);
    expect(raw.got.map((m) => m.code)).toEqual([Code.CONTINUE, Code.REQUEST_ENTITY_INCOMPLETE]);
  });

  it("the server's late negotiation of a smaller block (a 2.31 with smaller szx, §2.5) is followed", async () => {
    const { time, net, bodies } = setup();
    const client = new CoapEndpoint({
      transport: net.transport("late:1"),
      clock: time,
      scheduler: time,
      random: fakeRandom(5),
      blockwise: { szx: 1 },
    });
    // A scripted server that takes 32-byte block 0 but asks for 16-byte blocks.
    const scripted = net.transport("scripted:1");
    const seen: Array<{ num: number; szx: number; length: number }> = [];
    scripted.onReceive((d, from) => {
      const m = parseMessage(d);
      const b = blockOf(m, OptionNumber.BLOCK1)!;
      seen.push({ num: b.num, szx: b.szx, length: m.payload.length });
      const echo = b.more ? { ...b, szx: 0 } : b;
      scripted.send(
        serializeMessage({
          type: MessageType.ACK,
          code: b.more ? Code.CONTINUE : Code.CHANGED,
          messageId: m.messageId,
          token: m.token,
          options: [blockOption(OptionNumber.BLOCK1, echo)],
          payload: new Uint8Array(0),
        }),
        from,
      );
    });
    const pending = client.request("scripted:1" as PeerAddress, post(bytes(70)));
    expect((await drive(time, pending)).code).toBe(Code.CHANGED);
    expect(seen).toEqual([
      { num: 0, szx: 1, length: 32 },
      { num: 2, szx: 0, length: 16 },
      { num: 3, szx: 0, length: 16 },
      { num: 4, szx: 0, length: 6 },
    ]);
    expect(bodies).toEqual([]);
  });
});

describe("Block2 (RFC 7959 §2.4), lockstep", () => {
  it("a 3,000-byte response comes back whole in 1024-byte blocks with ETag and Size2", async () => {
    const { time, client, respondWith, wire, bodies } = setup();
    const big = bytes(3000, 3);
    respondWith(() => big);
    const pending = client.request(SERVER, {
      code: Code.GET,
      options: pathOptions("big"),
      payload: new Uint8Array(0),
    });
    const r = await drive(time, pending);
    expect(r.code).toBe(Code.CHANGED);
    expect(r.payload).toEqual(big);
    expect(findOption(r, OptionNumber.BLOCK2)).toBeUndefined();
    const w = wire();
    expect(w.map(({ from, m }) => [from, m.type, block(m, OptionNumber.BLOCK2), m.payload.length])).toEqual([
      [CLIENT, MessageType.CON, undefined, 0],
      [SERVER, MessageType.ACK, { num: 0, more: true, szx: 6 }, 1024],
      [CLIENT, MessageType.CON, { num: 1, more: false, szx: 6 }, 0],
      [SERVER, MessageType.ACK, { num: 1, more: true, szx: 6 }, 1024],
      [CLIENT, MessageType.CON, { num: 2, more: false, szx: 6 }, 0],
      [SERVER, MessageType.ACK, { num: 2, more: false, szx: 6 }, 952],
    ]);
    const replies = w.filter((x) => x.from === SERVER).map((x) => x.m);
    expect(replies.map((m) => optionUint(m, OptionNumber.SIZE2))).toEqual([3000, undefined, undefined]);
    const etags = replies.map((m) => hex(findOption(m, OptionNumber.ETAG)?.value));
    expect(etags[0]).not.toBe("-");
    expect(new Set(etags).size).toBe(1);
    // The later blocks came from the kept copy: the handler ran once.
    expect(bodies).toHaveLength(1);
  });

  it("early negotiation: a client with 64-byte blocks asks for them in its first request (§2.4)", async () => {
    const { time, client, respondWith, wire } = setup({}, 4, { blockwise: { szx: 2 } });
    const big = bytes(3000, 9);
    respondWith(() => big);
    const pending = client.request(SERVER, {
      code: Code.GET,
      options: pathOptions("big"),
      payload: new Uint8Array(0),
    });
    expect((await drive(time, pending)).payload).toEqual(big);
    const w = wire();
    expect(block(w[0]!.m, OptionNumber.BLOCK2)).toEqual({ num: 0, more: false, szx: 2 });
    const server = w.filter((x) => x.from === SERVER).map((x) => x.m);
    expect(server).toHaveLength(Math.ceil(3000 / 64));
    expect(server.every((m) => m.payload.length <= 64)).toBe(true);
  });

  it("a Block1 upload whose response is large: combined Block1 + Block2 (§3.3)", async () => {
    const { time, client, respondWith, bodies } = setup({}, 6, { blockwise: { szx: 0 } });
    const up = bytes(50, 4);
    respondWith((b) => Uint8Array.from({ length: 100 }, (_, i) => b[i % b.length]!));
    const pending = client.request(SERVER, post(up));
    const r = await drive(time, pending);
    expect(bodies).toEqual([up]);
    expect(r.payload).toEqual(Uint8Array.from({ length: 100 }, (_, i) => up[i % up.length]!));
  });

  it("a later block of a GET whose copy expired is computed again; a changed representation is detected", async () => {
    const { time, client, net } = setup({}, 8, {}, { blockwise: { representationLifetimeMs: 1_000 } });
    let version = 0;
    const server = new CoapEndpoint({
      transport: net.transport("changing:1"),
      clock: time,
      scheduler: time,
      random: fakeRandom(8),
      blockwise: { representationLifetimeMs: 1_000 },
    });
    server.handle(() => ({ code: Code.CONTENT, options: [], payload: bytes(2000, version++) }));
    // Delay every reply from the changing server by 2 s so its copy expires between blocks.
    net.setConditions({ delayMs: 2_500 });
    const pending = client.request("changing:1" as PeerAddress, {
      code: Code.GET,
      options: pathOptions("v"),
      payload: new Uint8Array(0),
    });
    await expect(drive(time, pending)).rejects.toBeInstanceOf(BlockwiseError);
    expect(version).toBe(2); // block 1 was computed again, and its ETag differed
  });
});

describe("block-wise under loss", () => {
  it("a 5,000-byte upload in 16-byte blocks through 20% loss each way: the handler sees the exact body once", async () => {
    const { time, client, bodies, server } = setup(
      { loss: 0.2, duplicate: 0.05 },
      11,
      { blockwise: { szx: 0 }, transmission: { maxRetransmit: 10, ackTimeoutMs: 1_000 } },
      { blockwise: { maxBodyBytes: 8_192 }, transmission: { maxRetransmit: 10, ackTimeoutMs: 1_000 } },
    );
    const body = bytes(5000, 5);
    const pending = client.request(SERVER, post(body));
    const r = await drive(time, pending, 48 * 3600_000);
    expect(r.code).toBe(Code.CHANGED);
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toEqual(body);
    expect(client.messages.stats.retransmissions).toBeGreaterThan(20);
    expect(server.blockServer.held.assemblies).toBe(0);
  });

  it("a 3,000-byte download in 64-byte blocks through 20% loss reassembles exactly", async () => {
    const { time, client, respondWith } = setup(
      { loss: 0.2 },
      12,
      { blockwise: { szx: 2 }, transmission: { maxRetransmit: 10, ackTimeoutMs: 1_000 } },
      { blockwise: { representationLifetimeMs: 600_000 } },
    );
    const big = bytes(3000, 6);
    respondWith(() => big);
    const pending = client.request(SERVER, {
      code: Code.GET,
      options: pathOptions("big"),
      payload: new Uint8Array(0),
    });
    expect((await drive(time, pending)).payload).toEqual(big);
  });
});

describe("block options", () => {
  it("szx outside 0-6 is refused at construction", () => {
    const time = new FakeTime();
    const net = new LossyNetwork(time);
    expect(
      () =>
        new CoapEndpoint({
          transport: net.transport("x:1"),
          clock: time,
          scheduler: time,
          random: fakeRandom(1),
          blockwise: { szx: 7 },
        }),
    ).toThrow(RangeError);
  });

  it("Block2 request beyond the end of a kept body is a 4.00", () => {
    const { time, net, respondWith } = setup();
    respondWith(() => bytes(2000));
    const raw = rawPeer(net);
    raw.send("g", pathOptions("big"), new Uint8Array(0), Code.GET);
    time.advance(5);
    raw.send(
      "h",
      [...pathOptions("big"), blockOption(OptionNumber.BLOCK2, { num: 9, more: false, szx: 6 })],
      new Uint8Array(0),
      Code.GET,
    );
    time.advance(5);
    expect(raw.got.map((m) => m.code)).toEqual([Code.CHANGED, Code.BAD_REQUEST]);
  });
});
