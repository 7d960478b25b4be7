/**
 * Lockstep tests of Observe (RFC 7641) over the in-memory link with the fake clock: registration,
 * notifications (NON, CON every Nth), ordering (§3.4), and every way an observer goes away (§3.6, §4.5).
 */
import { describe, expect, it } from "vitest";
import { CoapEndpoint, type EndpointOptions } from "../../src/core/coap/endpoint.js";
import {
  type CoapMessage,
  optionUint,
  parseMessage,
  pathOptions,
  serializeMessage,
  uintOption,
} from "../../src/core/coap/message.js";
import { isNewer } from "../../src/core/coap/observe.js";
import { Code, MessageType, OptionNumber } from "../../src/core/coap/registry.js";
import type { PeerAddress } from "../../src/core/interfaces.js";
import { drive, FakeTime, fakeRandom } from "../kit/fake-time.js";
import { type LinkConditions, LossyNetwork } from "../kit/lossy-link.js";

const CLIENT = "client:1" as PeerAddress;
const SERVER = "server:5683" as PeerAddress;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const EMPTY = new Uint8Array(0);

function setup(conditions: LinkConditions = {}, seed = 1, server: Pick<EndpointOptions, "observe"> = {}) {
  const time = new FakeTime();
  const net = new LossyNetwork(time, conditions, seed);
  const base = { clock: time, scheduler: time };
  const client = new CoapEndpoint({ ...base, transport: net.transport(CLIENT), random: fakeRandom(seed) });
  const s = new CoapEndpoint({
    ...base,
    ...server,
    transport: net.transport(SERVER),
    random: fakeRandom(seed + 1),
  });
  let state = "s0";
  s.handle(() => ({ code: Code.CONTENT, options: [], payload: text(state) }));
  const got: string[] = [];
  const onNotification = (m: CoapMessage) => got.push(str(m.payload));
  /** Changes the resource and notifies its observers. */
  const change = (value: string, confirmable?: boolean) => {
    state = value;
    return s.notify("temp", { code: Code.CONTENT, options: [], payload: text(value) }, { confirmable });
  };
  const wire = () => net.log.map((r) => ({ from: r.from, dropped: r.dropped, m: parseMessage(r.data) }));
  return { time, net, client, server: s, got, onNotification, change, wire };
}

/** Advances the clock and lets continuations run. */
async function tick(time: FakeTime, ms = 10): Promise<void> {
  time.advance(ms);
  await new Promise((r) => setImmediate(r));
}

describe("Observe server and client (RFC 7641), lockstep", () => {
  it("register, then 5 notifications arrive in order with increasing sequence numbers", async () => {
    const { time, client, server, got, onNotification, change, wire } = setup();
    const obs = await drive(time, client.observe(SERVER, "temp", onNotification));
    expect(obs.active).toBe(true);
    expect(str(obs.response.payload)).toBe("s0");
    expect(server.observers.count("temp")).toBe(1);
    for (let i = 1; i <= 5; i++) {
      expect(change(`v${i}`)).toBe(1);
      await tick(time);
    }
    expect(got).toEqual(["v1", "v2", "v3", "v4", "v5"]);
    const w = wire();
    expect(w.map(({ from, m }) => [from, m.type, m.code, optionUint(m, OptionNumber.OBSERVE)])).toEqual([
      [CLIENT, MessageType.CON, Code.GET, 0],
      [SERVER, MessageType.ACK, Code.CONTENT, 0],
      [SERVER, MessageType.NON, Code.CONTENT, 1],
      [SERVER, MessageType.NON, Code.CONTENT, 2],
      [SERVER, MessageType.NON, Code.CONTENT, 3],
      [SERVER, MessageType.NON, Code.CONTENT, 4],
      [SERVER, MessageType.NON, Code.CONTENT, 5],
    ]);
    // Every notification carries the registration's token.
    const token = [...w[0]!.m.token].join();
    expect(w.slice(1).every(({ m }) => [...m.token].join() === token)).toBe(true);
  });

  it("every Nth notification is CON (here N = 3) and the client acknowledges it (§4.5)", async () => {
    const { time, client, got, onNotification, change, wire } = setup({}, 2, {
      observe: { confirmEvery: 3 },
    });
    await drive(time, client.observe(SERVER, "temp", onNotification));
    for (let i = 1; i <= 6; i++) {
      change(`v${i}`);
      await tick(time);
    }
    expect(got).toEqual(["v1", "v2", "v3", "v4", "v5", "v6"]);
    expect(
      wire()
        .slice(2)
        .map(({ from, m }) => [from, m.type]),
    ).toEqual([
      [SERVER, MessageType.NON],
      [SERVER, MessageType.NON],
      [SERVER, MessageType.CON],
      [CLIENT, MessageType.ACK],
      [SERVER, MessageType.NON],
      [SERVER, MessageType.NON],
      [SERVER, MessageType.CON],
      [CLIENT, MessageType.ACK],
    ]);
  });

  it("while a CON notification is unacknowledged, only the latest state waits; it goes out after the ACK (§4.5.2)", async () => {
    const { time, net, server, change } = setup();
    // A raw client that registers and answers the first CON notification only when told.
    const raw = net.transport("raw:3");
    const received: CoapMessage[] = [];
    raw.onReceive((d) => received.push(parseMessage(d)));
    const register = serializeMessage({
      type: MessageType.CON,
      code: Code.GET,
      messageId: 1,
      token: text("ob"),
      options: [...pathOptions("temp"), uintOption(OptionNumber.OBSERVE, 0)],
      payload: EMPTY,
    });
    raw.send(register, SERVER);
    await tick(time);
    expect(server.observers.count()).toBe(1);
    change("c1", true);
    await tick(time);
    change("n2");
    change("n3");
    change("n4");
    await tick(time);
    const first = received[1]!;
    expect([first.type, str(first.payload)]).toEqual([MessageType.CON, "c1"]);
    expect(received).toHaveLength(2); // n2..n4 wait
    raw.send(
      serializeMessage({
        type: MessageType.ACK,
        code: 0,
        messageId: first.messageId,
        token: EMPTY,
        options: [],
        payload: EMPTY,
      }),
      SERVER,
    );
    await tick(time); // the ACK arrives; the queued state leaves
    await tick(time); // and arrives
    const after = received.slice(2);
    expect(after.map((m) => str(m.payload))).toEqual(["n4"]);
    expect(optionUint(after[0]!, OptionNumber.OBSERVE)).toBeGreaterThan(
      optionUint(first, OptionNumber.OBSERVE)!,
    );
  });

  it("re-registration by the same (peer, token) replaces the entry (§4.1)", async () => {
    const { time, net, server, change } = setup();
    const raw = net.transport("raw:4");
    const received: CoapMessage[] = [];
    raw.onReceive((d) => received.push(parseMessage(d)));
    for (const messageId of [1, 2]) {
      raw.send(
        serializeMessage({
          type: MessageType.CON,
          code: Code.GET,
          messageId,
          token: text("same"),
          options: [...pathOptions("temp"), uintOption(OptionNumber.OBSERVE, 0)],
          payload: EMPTY,
        }),
        SERVER,
      );
      await tick(time);
    }
    expect(server.observers.count("temp")).toBe(1);
    expect(change("once")).toBe(1);
    await tick(time);
    expect(received.map((m) => m.type)).toEqual([MessageType.ACK, MessageType.ACK, MessageType.NON]);
  });
});

describe("Observe ordering (§3.4)", () => {
  it("isNewer: 24-bit serial arithmetic and the 128-second rule", () => {
    expect(isNewer(5, 0, 6, 1)).toBe(true);
    expect(isNewer(6, 0, 5, 1)).toBe(false);
    expect(isNewer(5, 0, 5, 1)).toBe(false);
    expect(isNewer(0xffffff, 0, 0, 1)).toBe(true); // wrapped
    expect(isNewer(0, 0, 0xffffff, 1)).toBe(false);
    expect(isNewer(10, 0, 10 + 2 ** 23, 1)).toBe(false); // exactly half way is not newer
    expect(isNewer(6, 0, 5, 128_001)).toBe(true); // more than 128 s later: newer whatever the number
  });

  it("a scripted server: an older notification after a newer one is dropped; a wrapped one and a late one are not", async () => {
    const time = new FakeTime();
    const net = new LossyNetwork(time);
    const client = new CoapEndpoint({
      transport: net.transport(CLIENT),
      clock: time,
      scheduler: time,
      random: fakeRandom(3),
    });
    const fake = net.transport("fake:1");
    let token: Uint8Array = EMPTY;
    let mid = 500;
    fake.onReceive((d, from) => {
      const m = parseMessage(d);
      if (m.type !== MessageType.CON) return;
      token = m.token;
      fake.send(
        serializeMessage({
          type: MessageType.ACK,
          code: Code.CONTENT,
          messageId: m.messageId,
          token,
          options: [uintOption(OptionNumber.OBSERVE, 0xfffffd)],
          payload: text("r"),
        }),
        from,
      );
    });
    const notify = (seq: number, payload: string) =>
      fake.send(
        serializeMessage({
          type: MessageType.NON,
          code: Code.CONTENT,
          messageId: mid++,
          token,
          options: [uintOption(OptionNumber.OBSERVE, seq)],
          payload: text(payload),
        }),
        CLIENT,
      );
    const got: string[] = [];
    await drive(
      time,
      client.observe("fake:1" as PeerAddress, "temp", (m) => got.push(str(m.payload))),
    );
    notify(0xfffffe, "a");
    notify(0xfffffc, "older than the registration");
    await tick(time);
    notify(1, "b (wrapped)");
    notify(0xffffff, "stale after wrap");
    notify(2, "c");
    await tick(time);
    notify(1, "stale");
    await tick(time, 129_000);
    notify(1, "d (128 s later)");
    await tick(time);
    expect(got).toEqual(["a", "b (wrapped)", "c", "d (128 s later)"]);
  });

  it("reordering on the link never delivers an older notification after a newer one", async () => {
    const { time, client, change, wire } = setup({ reorder: 0.4, reorderDelayMs: 250 }, 9);
    const seqs: number[] = [];
    await drive(
      time,
      client.observe(SERVER, "temp", (m) => seqs.push(optionUint(m, OptionNumber.OBSERVE)!)),
    );
    for (let i = 1; i <= 40; i++) {
      change(`v${i}`);
      await tick(time, 100);
    }
    await tick(time, 1_000);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
    expect(seqs.at(-1)).toBe(40);
    expect(seqs.length).toBeLessThan(40); // the link did reorder, and the stale ones were dropped
    // One registration ACK and at most 40 notifications: a state changed while a CON was in flight
    // replaced the queued one (§4.5.2).
    expect(wire().filter(({ from }) => from === SERVER).length).toBeLessThanOrEqual(41);
  });
});

describe("Observe deregistration (§3.6, §4.5)", () => {
  it("a client that forgot the observation resets the next NON notification; the server drops it", async () => {
    const { time, client, server, change, wire, onNotification, got } = setup();
    const obs = await drive(time, client.observe(SERVER, "temp", onNotification));
    await obs.cancel({ passive: true });
    expect(obs.active).toBe(false);
    change("unwanted");
    await tick(time);
    expect(got).toEqual([]);
    expect(
      wire()
        .slice(2)
        .map(({ from, m }) => [from, m.type]),
    ).toEqual([
      [SERVER, MessageType.NON],
      [CLIENT, MessageType.RST],
    ]);
    expect(server.observers.count()).toBe(0);
    expect(change("nobody")).toBe(0);
  });

  it("an RST answering a CON notification removes the observer", async () => {
    const { time, client, server, change, wire, onNotification } = setup();
    const obs = await drive(time, client.observe(SERVER, "temp", onNotification));
    await obs.cancel({ passive: true });
    change("unwanted", true);
    await tick(time);
    await tick(time);
    expect(
      wire()
        .slice(2)
        .map(({ from, m }) => [from, m.type]),
    ).toEqual([
      [SERVER, MessageType.CON],
      [CLIENT, MessageType.RST],
    ]);
    expect(server.observers.count()).toBe(0);
  });

  it("a CON notification that is never acknowledged removes the observer after the last retransmission", async () => {
    const { time, net, client, server, change, onNotification } = setup();
    await drive(time, client.observe(SERVER, "temp", onNotification));
    net.setConditions({ loss: 1 });
    change("lost", true);
    for (let i = 0; i < 10 && server.observers.count() > 0; i++) await tick(time, 30_000);
    expect(server.observers.count()).toBe(0);
    const sent = net.log.filter((r) => r.from === SERVER && parseMessage(r.data).type === MessageType.CON);
    expect(sent).toHaveLength(5); // first transmission + MAX_RETRANSMIT (RFC 7252 §4.2)
  });

  it("GET with Observe=1 and the same token deregisters; its response carries no Observe option", async () => {
    const { time, client, server, wire, onNotification } = setup();
    const obs = await drive(time, client.observe(SERVER, "temp", onNotification));
    await drive(time, obs.cancel());
    expect(server.observers.count()).toBe(0);
    const w = wire();
    const [register, , deregister, answer] = w.map((x) => x.m);
    expect(optionUint(deregister!, OptionNumber.OBSERVE)).toBe(1);
    expect([...deregister!.token]).toEqual([...register!.token]);
    expect(answer!.code).toBe(Code.CONTENT);
    expect(optionUint(answer!, OptionNumber.OBSERVE)).toBeUndefined();
  });

  it("an error notification ends the observation on both sides (§4.2)", async () => {
    const { time, client, server, onNotification, got } = setup();
    const obs = await drive(time, client.observe(SERVER, "temp", onNotification));
    server.notify("temp", { code: Code.NOT_FOUND, options: [], payload: text("gone") });
    await tick(time);
    expect(got).toEqual(["gone"]);
    expect(obs.active).toBe(false);
    expect(server.observers.count()).toBe(0);
  });

  it("a GET with Observe=0 that fails registers nobody; a resource that does not register gives an inactive observation", async () => {
    const { time, net, client, server } = setup();
    server.handle(() => ({ code: Code.NOT_FOUND, options: [], payload: EMPTY }));
    const obs = await drive(
      time,
      client.observe(SERVER, "temp", () => {}),
    );
    expect(obs.response.code).toBe(Code.NOT_FOUND);
    expect(obs.active).toBe(false);
    expect(server.observers.count()).toBe(0);
    expect(client.exchanges.open).toBe(0);
    expect(net.log).toHaveLength(2);
  });
});
