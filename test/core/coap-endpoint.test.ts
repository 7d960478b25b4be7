/**
 * Lockstep tests of the CoAP endpoint over an in-memory link with a fake clock: the exact datagrams,
 * their timing, and what each layer does on loss, duplication and bad input (RFC 7252 §4, §5).
 */
import { describe, expect, it } from "vitest";
import { CoapEndpoint } from "../../src/core/coap/endpoint.js";
import { ResetByPeer, RetransmitsExceeded } from "../../src/core/coap/errors.js";
import {
  type CoapMessage,
  parseMessage,
  pathOptions,
  serializeMessage,
  uintOption,
  uriPath,
} from "../../src/core/coap/message.js";
import { Code, MessageType } from "../../src/core/coap/registry.js";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { FakeTime, fakeRandom } from "../kit/fake-time.js";
import { type LinkConditions, LossyNetwork } from "../kit/lossy-link.js";

const CLIENT = "client:1" as PeerAddress;
const SERVER = "server:5683" as PeerAddress;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

function setup(conditions: LinkConditions = {}, seed = 1, transmission = {}) {
  const time = new FakeTime();
  const net = new LossyNetwork(time, conditions, seed);
  const client = new CoapEndpoint({
    transport: net.transport(CLIENT),
    clock: time,
    scheduler: time,
    random: fakeRandom(seed),
    transmission,
  });
  const server = new CoapEndpoint({
    transport: net.transport(SERVER),
    clock: time,
    scheduler: time,
    random: fakeRandom(seed + 100),
    transmission,
  });
  const handled: string[] = [];
  server.exchanges.handle((req) => {
    handled.push(str(req.payload));
    return { code: Code.CHANGED, options: [], payload: text(`ok ${str(req.payload)}`) };
  });
  return { time, net, client, server, handled };
}

const post = (payload: string, confirmable = true) => ({
  code: Code.POST,
  options: pathOptions("s"),
  payload: text(payload),
  confirmable,
});

describe("CoAP endpoint, lockstep", () => {
  it("a CON request gets a piggybacked response: exactly two datagrams", async () => {
    const { time, net, client, handled } = setup();
    const pending = client.exchanges.request(SERVER, post("a"));
    time.advance(10);
    const response = await pending;
    expect(response.type).toBe(MessageType.ACK);
    expect(response.code).toBe(Code.CHANGED);
    expect(str(response.payload)).toBe("ok a");
    expect(handled).toEqual(["a"]);
    const wire = net.log.map((r) => ({ from: r.from, m: parseMessage(r.data) }));
    expect(wire.map((w) => [w.from, w.m.type, w.m.code])).toEqual([
      [CLIENT, MessageType.CON, Code.POST],
      [SERVER, MessageType.ACK, Code.CHANGED],
    ]);
    expect(wire[1]!.m.messageId).toBe(wire[0]!.m.messageId);
    expect(wire[1]!.m.token).toEqual(wire[0]!.m.token);
    expect(uriPath(wire[0]!.m)).toBe("s");
  });

  it("retransmits a lost CON after ACK_TIMEOUT·[1, 1.5), then doubles (RFC 7252 §4.2)", async () => {
    const { time, net, client } = setup({}, 3, { maxRetransmit: 4 });
    net.setConditions({ loss: 1 }); // nothing gets through
    const pending = client.exchanges.request(SERVER, post("x"));
    const outcome = expect(pending).rejects.toBeInstanceOf(RetransmitsExceeded);
    time.runAll();
    await outcome;
    const sends = net.log.filter((r) => r.from === CLIENT).map((r) => r.at);
    expect(sends).toHaveLength(5); // first transmission + MAX_RETRANSMIT
    const first = sends[1]! - sends[0]!;
    expect(first).toBeGreaterThanOrEqual(2000);
    expect(first).toBeLessThan(3000);
    for (let i = 2; i < sends.length; i++)
      expect(sends[i]! - sends[i - 1]!).toBeCloseTo(first * 2 ** (i - 1), 6);
    expect(client.messages.stats.retransmissions).toBe(4);
  });

  it("a lost ACK: the retransmitted CON gets the same ACK, the handler runs once (dedup, §4.5)", async () => {
    const { time, net, client, handled } = setup();
    let serverSends = 0;
    // Drop the server's first datagram only.
    const send = (
      net as unknown as { deliver: (f: PeerAddress, t: PeerAddress, d: Uint8Array) => void }
    ).deliver.bind(net);
    (net as unknown as { deliver: typeof send }).deliver = (from, to, data) => {
      if (from === SERVER && serverSends++ === 0) return;
      send(from, to, data);
    };
    const pending = client.exchanges.request(SERVER, post("once"));
    time.advance(4000);
    const response = await pending;
    expect(str(response.payload)).toBe("ok once");
    expect(handled).toEqual(["once"]);
    expect(serverSends).toBe(2); // the lost ACK and the same ACK again
  });

  it("NSTART = 1: a second CON to the same peer waits for the first (§4.7)", async () => {
    const { time, net, client } = setup();
    const a = client.exchanges.request(SERVER, post("a"));
    const b = client.exchanges.request(SERVER, post("b"));
    expect(net.log).toHaveLength(1);
    time.advance(5);
    await a;
    time.advance(5);
    await b;
    const order = net.log.map((r) => [r.from, parseMessage(r.data).type]);
    expect(order).toEqual([
      [CLIENT, MessageType.CON],
      [SERVER, MessageType.ACK],
      [CLIENT, MessageType.CON],
      [SERVER, MessageType.ACK],
    ]);
  });

  it("a NON request gets a NON response", async () => {
    const { time, net, client } = setup();
    const pending = client.exchanges.request(SERVER, post("n", false));
    time.advance(10);
    const response = await pending;
    expect(response.type).toBe(MessageType.NON);
    expect(str(response.payload)).toBe("ok n");
    expect(net.log.map((r) => parseMessage(r.data).type)).toEqual([MessageType.NON, MessageType.NON]);
  });

  it("bad input: a malformed CON gets RST, a malformed NON is dropped, a CoAP ping gets RST", () => {
    const { time, net, server } = setup();
    const raw = net.transport(CLIENT);
    const received: CoapMessage[] = [];
    raw.onReceive((d) => received.push(parseMessage(d)));
    raw.send(Uint8Array.from([0x40, 0x02, 0x12, 0x34, 0xf0]), SERVER); // CON, reserved option nibble
    raw.send(Uint8Array.from([0x50, 0x02, 0x12, 0x35, 0xf0]), SERVER); // NON, same
    raw.send(Uint8Array.from([0x40, 0x00, 0x12, 0x36]), SERVER); // Empty CON = ping
    raw.send(Uint8Array.from([0x01, 0x02]), SERVER); // not even a header
    time.advance(10);
    expect(received.map((m) => [m.type, m.messageId])).toEqual([
      [MessageType.RST, 0x1234],
      [MessageType.RST, 0x1236],
    ]);
    expect(server.messages.stats.malformed).toBe(3);
  });

  it("an unknown critical option is answered 4.02 Bad Option (§5.4.1); an unknown elective one is ignored", async () => {
    const { time, client, handled } = setup();
    const bad = client.exchanges.request(SERVER, {
      ...post("c"),
      options: [...pathOptions("s"), uintOption(2049, 1)],
    });
    time.advance(10);
    expect((await bad).code).toBe(Code.BAD_OPTION);
    const fine = client.exchanges.request(SERVER, {
      ...post("e"),
      options: [...pathOptions("s"), uintOption(2048, 1)],
    });
    time.advance(10);
    expect((await fine).code).toBe(Code.CHANGED);
    expect(handled).toEqual(["e"]);
  });

  it("a response with an unknown token is rejected with RST; RST to a CON fails the request", async () => {
    const { time, net, client } = setup();
    const raw = net.transport("stranger:9" as PeerAddress);
    const got: CoapMessage[] = [];
    raw.onReceive((d) => got.push(parseMessage(d)));
    raw.send(
      serializeMessage({
        type: MessageType.CON,
        code: Code.CONTENT,
        messageId: 77,
        token: text("zz"),
        options: [],
        payload: text("?"),
      }),
      CLIENT,
    );
    time.advance(5);
    expect(got.map((m) => [m.type, m.messageId])).toEqual([[MessageType.RST, 77]]);
    // A peer that resets our request:
    raw.onReceive((d) => {
      const m = parseMessage(d);
      raw.send(
        serializeMessage({
          type: MessageType.RST,
          code: 0,
          messageId: m.messageId,
          token: new Uint8Array(0),
          options: [],
          payload: new Uint8Array(0),
        }),
        CLIENT,
      );
    });
    const p = client.exchanges.request("stranger:9" as PeerAddress, post("r"));
    time.advance(5);
    await expect(p).rejects.toBeInstanceOf(ResetByPeer);
  });
});

describe("CoAP endpoint under loss", () => {
  it("every CON request is handled exactly once despite 30% loss each way, duplication and reordering", async () => {
    const { time, client, handled } = setup(
      { loss: 0.3, duplicate: 0.1, reorder: 0.2, reorderDelayMs: 700 },
      42,
      { maxRetransmit: 12, ackTimeoutMs: 1000 },
    );
    const results: Array<Promise<CoapMessage>> = [];
    for (let i = 0; i < 300; i++) results.push(client.exchanges.request(SERVER, post(`m${i}`)));
    time.runAll(24 * 3600_000);
    const settled = await Promise.allSettled(results);
    const ok = settled.filter((s) => s.status === "fulfilled").length;
    expect(ok).toBe(300);
    // Deduplication: the handler saw each request exactly once, whatever was retransmitted.
    expect(new Set(handled).size).toBe(300);
    expect(handled).toHaveLength(300);
    expect(client.messages.stats.retransmissions).toBeGreaterThan(50);
  });
});

describe("No-Response (RFC 7967)", () => {
  it("suppresses the classes the client is not interested in, and only those", () => {
    const { time, net, server, handled } = setup();
    const raw = net.transport(CLIENT);
    const got: CoapMessage[] = [];
    raw.onReceive((d) => got.push(parseMessage(d)));
    const request = (mid: number, path: string, noResponse: number) =>
      serializeMessage({
        type: MessageType.NON,
        code: Code.POST,
        messageId: mid,
        token: new Uint8Array(0),
        options: [...pathOptions(path), uintOption(258, noResponse)],
        payload: text(`p${mid}`),
      });
    server.exchanges.handle((req) => {
      handled.push(str(req.payload));
      return uriPath(req) === "bad"
        ? { code: Code.BAD_REQUEST, options: [], payload: new Uint8Array(0) }
        : { code: Code.CHANGED, options: [], payload: new Uint8Array(0) };
    });
    raw.send(request(1, "s", 2), SERVER); // 2.04 suppressed
    raw.send(request(2, "bad", 2), SERVER); // 4.00 still sent
    raw.send(request(3, "bad", 8), SERVER); // 4.00 suppressed
    time.advance(10);
    expect(handled).toEqual(["p1", "p2", "p3"]);
    expect(got.map((m) => m.code)).toEqual([Code.BAD_REQUEST]);
  });
});
