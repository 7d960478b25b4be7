/**
 * A fuzz run of the whole gateway's datagram input: a real gateway (startGateway: SQLite on disk, real
 * UDP on loopback) gets a few thousand datagrams from four sockets, made by fast-check:
 * - arbitrary byte strings;
 * - structured but hostile CoAP messages: valid headers (and, now and then, a bad version, a token
 *   length of 9-15 or a cut) with random types, codes, message ids and tokens, on the real paths
 *   (/c, /u, /d/N, /.well-known/core) and others, with random options among them Block1, Block2,
 *   Observe, Echo, No-Response, Request-Tag, and payloads that are random bytes or well-formed session
 *   messages with hostile values: connects for known and unknown identities with garbage proofs,
 *   uplinks with any seq, ack, t and wake, and frames that are random bytes or real stanzas with hostile
 *   addresses and text;
 * - mutations of datagrams captured from a legitimate node (bit flips, bytes set, cuts, insertions,
 *   repeated slices, another code or type).
 * One of the sockets holds a session of its own (a provisioned device, "fuzzer", connected by hand over
 * the raw socket), so its uplinks reach the session layer and the codec instead of stopping at 4.01.
 *
 * After each batch the gateway must still answer a probe (GET /.well-known/core from another socket);
 * at the end it must be healthy, a legitimate node connected before the fuzz and one connecting after
 * it must each get a stanza acknowledged and routed with their own JID, and the heap after GC must have
 * grown less than the bound stated below.
 */
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { heapAfterGc, MiB } from "../../bench/memory.js";
import { attr, DICTIONARY_V1, el, SessionEncoder, type XElement } from "../../codec/index.js";
import {
  CoapEndpoint,
  type CoapMessage,
  type CoapOption,
  Code,
  codeString,
  connectOptions,
  type DatagramTransport,
  MessageType,
  NodeClient,
  OptionNumber,
  type PeerAddress,
  parseMessage,
  pathOptions,
  protocol,
  serializeMessage,
  uintOption,
} from "../../src/core/index.js";
import { cryptoRandom, nodeMac, systemClock, timerScheduler, UdpTransport } from "../../src/node/index.js";
import { inProcessGateway, type TestGateway } from "../kit/in-process-gateway.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";

const SINK = "sink@elsewhere.example";
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A raw UDP socket: sends what it is given, counts the answers by code, matches ACKs by message id. */
class RawPeer {
  static async open(to: { host: string; port: number }): Promise<RawPeer> {
    const socket = createSocket("udp4");
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    const peer = new RawPeer(socket, to);
    cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
    return peer;
  }

  readonly answers = new Map<string, number>();
  sent = 0;
  private readonly waiting = new Map<number, (m: CoapMessage) => void>();
  private mid = 1;

  private constructor(
    private readonly socket: Socket,
    private readonly to: { host: string; port: number },
  ) {
    socket.on("message", (d) => {
      let m: CoapMessage;
      try {
        m = parseMessage(new Uint8Array(d));
      } catch {
        this.count("unparsable");
        return;
      }
      this.count(m.type === MessageType.RST ? "RST" : m.code === Code.EMPTY ? "empty" : codeString(m.code));
      if (m.type === MessageType.ACK || m.type === MessageType.RST) {
        const w = this.waiting.get(m.messageId);
        this.waiting.delete(m.messageId);
        w?.({ ...m, payload: m.payload.slice(), token: m.token.slice() });
      }
    });
  }

  private count(k: string): void {
    this.answers.set(k, (this.answers.get(k) ?? 0) + 1);
  }

  send(bytes: Uint8Array): void {
    this.sent++;
    this.socket.send(bytes, this.to.port, this.to.host);
  }

  /** A CON request; resolves with its ACK (piggybacked response). Message ids from 1 up (the fuzz uses others too). */
  request(
    code: number,
    options: CoapOption[],
    payload: Uint8Array = new Uint8Array(0),
    timeoutMs = 3_000,
  ): Promise<CoapMessage> {
    const messageId = this.mid++ & 0xffff;
    const bytes = serializeMessage({
      type: MessageType.CON,
      code,
      messageId,
      token: Uint8Array.of(0xf0, messageId & 0xff),
      options,
      payload,
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(messageId);
        reject(new Error(`no answer to message ${messageId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(messageId, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.send(bytes);
    });
  }
}

/** A legitimate node on real UDP whose sent datagrams are recorded (the corpus of the mutations). */
async function legitimateNode(identity: string, n: number, gateway: PeerAddress, corpus: Uint8Array[]) {
  const udp = await UdpTransport.bind("127.0.0.1", 0);
  const transport: DatagramTransport = {
    send: (data, peer) => {
      corpus.push(Uint8Array.from(data));
      udp.send(data, peer);
    },
    onReceive: (handler) => udp.onReceive(handler),
    close: () => udp.close(),
  };
  const endpoint = new CoapEndpoint({
    transport,
    clock: systemClock,
    scheduler: timerScheduler(),
    random: cryptoRandom,
    transmission: { ackTimeoutMs: 200, maxRetransmit: 4 },
  });
  const client = new NodeClient({ endpoint, gateway, identity, key: key(n), mac: nodeMac, retryDelayMs: 50 });
  cleanups.push(() => {
    client.close();
    endpoint.close();
  });
  return client;
}

const message = (to: string, body: string): XElement =>
  el("jabber:client", "message", { to }, el("jabber:client", "body", {}, body));

// ---------------------------------------------------------------------------------------------------
// What fast-check makes.

/** One datagram and the socket (0-3) it leaves from; socket 0 holds the fuzzer's session. */
interface Shot {
  readonly socket: number;
  readonly bytes: Uint8Array;
}

interface World {
  /** The fuzzer session's downlink id and its codec aliases. */
  readonly session: number;
  readonly encoder: SessionEncoder;
  readonly corpus: readonly Uint8Array[];
  readonly domain: string;
}

const OPTION_NUMBERS = [1, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 252, 258, 292];

function arbitraries(w: World) {
  const jids = [
    SINK,
    `legit@${w.domain}`,
    `fuzzer@${w.domain}`,
    `nobody@${w.domain}`,
    `legit@${w.domain}/cxmpp`,
    w.domain,
    "",
    "@",
    "a@",
    "@b",
    "x/y",
    "a@b@c",
    `${"l".repeat(1100)}@${w.domain}`,
  ];
  const text = fc.string({ maxLength: 60 });
  /** A real stanza with hostile addresses and text, encoded for the fuzzer's session. */
  const stanzaFrame = fc
    .record({
      name: fc.constantFrom("message", "iq", "presence"),
      to: fc.oneof(fc.constantFrom(...jids), text),
      from: fc.option(fc.oneof(fc.constantFrom(...jids), text), { nil: undefined }),
      type: fc.option(fc.constantFrom("chat", "get", "set", "result", "error", "probe", "subscribe", ""), {
        nil: undefined,
      }),
      id: fc.option(text, { nil: undefined }),
      body: text,
    })
    .map((s) => {
      const attrs: Record<string, string> = { to: s.to };
      if (s.from !== undefined) attrs.from = s.from;
      if (s.type !== undefined) attrs.type = s.type;
      if (s.id !== undefined) attrs.id = s.id;
      try {
        return w.encoder.encodeUnsequenced(
          el("jabber:client", s.name, attrs, el("jabber:client", "body", {}, s.body)),
        ).bytes;
      } catch {
        return Uint8Array.of(0xff);
      }
    });
  const frame = fc.oneof(fc.uint8Array({ maxLength: 80 }), stanzaFrame);
  const count = fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.nat(20), fc.nat({ max: 2 ** 32 - 1 }));
  const uplink = fc
    .record({
      // Mostly near where the fuzzer's session is (h small, nothing sent to it): past the ack check
      // and into the frames; sometimes anywhere.
      seq: fc.oneof({ weight: 3, arbitrary: fc.nat(6) }, { weight: 1, arbitrary: count }),
      ack: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: count }),
      t: fc.option(count, { nil: undefined }),
      wake: fc.option(count, { nil: undefined }),
      frames: fc.array(frame, { maxLength: 4 }),
    })
    .map((u) => {
      try {
        return protocol.encodeUplink({
          seq: u.seq,
          ack: u.ack,
          frames: u.frames,
          ...(u.seq === 0 ? { t: u.t ?? 1 } : {}),
          ...(u.wake !== undefined ? { wake: u.wake } : {}),
        });
      } catch {
        return Uint8Array.of(0x80);
      }
    });
  const connect = fc
    .record({
      identity: fc.oneof(fc.constantFrom("legit", "fuzzer", "spare", "nobody"), text),
      dictionary: fc.oneof(fc.constant(DICTIONARY_V1.id), text),
      resume: fc.option(fc.uint8Array({ maxLength: 24 }), { nil: undefined }),
      proof: fc.option(fc.uint8Array({ maxLength: 24 }), { nil: undefined }),
      wake: fc.option(count, { nil: undefined }),
      ack: fc.option(count, { nil: undefined }),
    })
    .map((c) => {
      const { resume, proof, wake, ack, ...rest } = c;
      return protocol.encodeConnectRequest({
        ...rest,
        ...(resume ? { resume } : {}),
        ...(proof ? { proof } : {}),
        ...(wake !== undefined ? { wake } : {}),
        ...(ack !== undefined ? { ack } : {}),
      });
    });
  const segment = fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 12 }).map((s) => new TextEncoder().encode(s)) },
    // Not always UTF-8: the gateway must answer a path it cannot read with an error, not a crash.
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) },
  );
  const enc = (s: string) => new TextEncoder().encode(s);
  const path: fc.Arbitrary<readonly Uint8Array[]> = fc.oneof(
    { weight: 3, arbitrary: fc.constant([enc("c")]) },
    { weight: 4, arbitrary: fc.constant([enc("u")]) },
    { weight: 2, arbitrary: fc.constant([enc("d"), enc(String(w.session))]) },
    { weight: 1, arbitrary: fc.nat(50).map((n) => [enc("d"), enc(String(n))]) },
    { weight: 2, arbitrary: fc.constant([enc(".well-known"), enc("core")]) },
    { weight: 2, arbitrary: fc.array(segment, { maxLength: 4 }) },
  );
  const uintValue = fc.oneof(
    fc.constantFrom(0, 1, 2, 6, 8, 14, 15, 16, 22, 0xffffff),
    fc.nat({ max: 0xffffffff }),
  );
  const option = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        number: fc.oneof(fc.constantFrom(...OPTION_NUMBERS), fc.integer({ min: 0, max: 2_000 })),
        value: fc.uint8Array({ maxLength: 16 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          number: fc.constantFrom(
            OptionNumber.BLOCK1,
            OptionNumber.BLOCK2,
            OptionNumber.OBSERVE,
            OptionNumber.NO_RESPONSE,
            OptionNumber.SIZE1,
            OptionNumber.CONTENT_FORMAT,
            OptionNumber.MAX_AGE,
            OptionNumber.ACCEPT,
          ),
          value: uintValue,
        })
        .map((o) => uintOption(o.number, o.value)),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ num: fc.nat(0xfffff), more: fc.boolean(), szx: fc.nat(7) })
        .map((b) => uintOption(OptionNumber.BLOCK1, b.num * 16 + (b.more ? 8 : 0) + b.szx)),
    },
  );
  const anyCode = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(Code.GET, Code.POST, Code.PUT, Code.DELETE, 5, 6, 7) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  );
  const anyPayload = fc.oneof(
    { weight: 2, arbitrary: uplink },
    { weight: 2, arbitrary: connect },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1_100 }) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  );
  const enc2 = (...segments: string[]) => segments.map((x) => new TextEncoder().encode(x));
  /** What the request aims at: mostly a resource with its own method and payload (deep), else anything. */
  const target: fc.Arbitrary<{
    readonly path: readonly Uint8Array[];
    readonly code: number;
    readonly payload: Uint8Array;
  }> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ path: fc.constant(enc2("u")), code: fc.constant(Code.POST), payload: uplink }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ path: fc.constant(enc2("c")), code: fc.constant(Code.POST), payload: connect }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        path: fc.constant(enc2("d", String(w.session))),
        code: fc.constant(Code.GET),
        payload: fc.constant(new Uint8Array(0)),
      }),
    },
    { weight: 3, arbitrary: fc.record({ path, code: anyCode, payload: anyPayload }) },
  );
  const structured = fc
    .record({
      type: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(MessageType.CON, MessageType.NON) },
        { weight: 1, arbitrary: fc.constantFrom(MessageType.ACK, MessageType.RST) },
      ),
      target,
      messageId: fc.integer({ min: 0, max: 0xffff }),
      token: fc.uint8Array({ maxLength: 8 }),
      options: fc.oneof(
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 2, arbitrary: fc.array(option, { maxLength: 5 }) },
      ),
      /** 0: as made; 1: cut; 2: a token length of 9-15; 3: another version. */
      damage: fc.oneof(
        { weight: 6, arbitrary: fc.constant({ kind: 0, n: 0 }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom(1, 2, 3), n: fc.nat(2_000) }) },
      ),
    })
    .map((m) => {
      const options: CoapOption[] = [
        ...m.target.path.map((value) => ({ number: OptionNumber.URI_PATH, value })),
        ...m.options,
      ];
      let bytes = serializeMessage({
        type: m.type,
        code: m.target.code,
        messageId: m.messageId,
        token: m.token,
        options,
        payload: m.target.payload,
      });
      if (m.damage.kind === 1) bytes = bytes.slice(0, m.damage.n % (bytes.length + 1));
      else if (m.damage.kind === 2) bytes[0] = (bytes[0]! & 0xf0) | (9 + (m.damage.n % 7));
      else if (m.damage.kind === 3)
        bytes[0] = (bytes[0]! & 0x3f) | ((m.damage.n % 3 === 0 ? 0 : m.damage.n % 3 === 1 ? 2 : 3) << 6);
      return bytes;
    });
  const mutation = fc.record({
    kind: fc.nat(6),
    at: fc.nat(),
    value: fc.nat(255),
    bytes: fc.uint8Array({ maxLength: 16 }),
  });
  const mutated = fc
    .record({ index: fc.nat(), mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }) })
    .map(({ index, mutations }) => {
      let d = Uint8Array.from(w.corpus[index % w.corpus.length]!);
      for (const m of mutations) {
        const at = d.length > 0 ? m.at % d.length : 0;
        if (m.kind === 0 && d.length > 0) d[at]! ^= 1 << (m.value % 8);
        else if (m.kind === 1 && d.length > 0) d[at] = m.value;
        else if (m.kind === 2) d = d.slice(0, at);
        else if (m.kind === 3) d = Uint8Array.from([...d.subarray(0, at), ...m.bytes, ...d.subarray(at)]);
        else if (m.kind === 4) {
          const slice = d.slice(at, at + 1 + (m.value % 16));
          d = Uint8Array.from([...d.subarray(0, at), ...slice, ...slice, ...d.subarray(at + slice.length)]);
        } else if (m.kind === 5 && d.length > 1) d[1] = m.value;
        else if (d.length > 0) d[0] = 0x40 | ((m.value & 3) << 4) | (d[0]! & 0x0f);
      }
      return d;
    });
  const bytes = fc.oneof(
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 1_500 }) },
    { weight: 6, arbitrary: structured },
    { weight: 2, arbitrary: mutated },
  );
  // Socket 0 (the fuzzer's session) sends two in five, the three strangers the rest.
  const socket = fc.oneof(
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) },
  );
  return fc.record({ socket, bytes }) as fc.Arbitrary<Shot>;
}

// ---------------------------------------------------------------------------------------------------

describe("fuzzing the gateway's datagram input over real UDP", () => {
  let gw: TestGateway;
  let fuzz: RawPeer[];
  let probe: RawPeer;
  let world: World;
  let legit: NodeClient;
  const outbound: XElement[] = [];
  /** The gateway's JSON log lines (errors only) taken off stderr during the fuzz, by event and error. */
  const logged = new Map<string, number>();

  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "cxmpp-fuzz-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    gw = await inProcessGateway(dataDir, { outbound });
    cleanups.push(() => gw.stop());
    const domain = gw.config.xmppDomain;
    for (const [n, identity] of ["legit", "fuzzer", "spare"].entries())
      gw.store.devices.add({ identity, key: key(n + 1), jid: `${identity}@${domain}`, peers: [] });
    const to = { host: gw.host, port: gw.port };

    // The legitimate node, connected before the fuzz; what it sends is the corpus of the mutations.
    const corpus: Uint8Array[] = [];
    legit = await legitimateNode("legit", 1, gw.address as PeerAddress, corpus);
    await legit.connect();
    await legit.send(message(SINK, "before"));
    const routed = async (body: string) => {
      for (let i = 0; i < 200 && !outbound.some((s) => bodyOf(s) === body); i++)
        await new Promise((r) => setTimeout(r, 10));
    };
    legit.sendTelemetry(message(SINK, "reading 1")); // the first goes CON
    await routed("reading 1");
    legit.sendTelemetry(message(SINK, "reading 2")); // NON
    await routed("reading 2");
    await legit.send(message(SINK, "x".repeat(3_000))); // block-wise
    await legit.observeDownlink();
    await legit.poll();

    // The fuzzer's own session on socket 0, connected by hand: the Echo challenge, then the proof.
    fuzz = await Promise.all([0, 1, 2, 3].map(() => RawPeer.open(to)));
    probe = await RawPeer.open(to);
    const request = { identity: "fuzzer", dictionary: DICTIONARY_V1.id };
    const challenge = await fuzz[0]!.request(
      Code.POST,
      connectOptions(),
      protocol.encodeConnectRequest(request),
    );
    const echo = challenge.options.find((o) => o.number === OptionNumber.ECHO)!.value;
    const proof = nodeMac
      .hmacSha256(key(2), protocol.proofInput(echo, request))
      .subarray(0, protocol.PROOF_BYTES);
    const created = await fuzz[0]!.request(
      Code.POST,
      connectOptions(echo),
      protocol.encodeConnectRequest({ ...request, proof }),
    );
    expect(codeString(created.code)).toBe("2.01");
    const session = protocol.decodeConnectResponse(created.payload);
    world = {
      session: session.session,
      encoder: new SessionEncoder({
        dictionary: DICTIONARY_V1,
        aliases: session.aliases,
        implicitBase: true,
      }),
      corpus,
      domain,
    };
    expect(corpus.length).toBeGreaterThanOrEqual(8);
  });

  it("keeps answering through a few thousand hostile datagrams; legitimate nodes still get stanzas acknowledged; heap bounded", async () => {
    const original = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
      if (!text.includes('"component":"gateway"'))
        return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
      for (const line of text.split("\n").filter((l) => l.trim() !== "")) {
        const r = JSON.parse(line) as { event?: string; error?: string };
        const k = `${r.event}: ${r.error ?? ""}`;
        logged.set(k, (logged.get(k) ?? 0) + 1);
      }
      return true;
    });
    const shots = fc.array(arbitraries(world), { minLength: 25, maxLength: 35 });
    const run = async (batch: Shot[]) => {
      for (const s of batch) fuzz[s.socket]!.send(s.bytes);
      // The gateway still answers (a probe after the batch, in the same queue behind it).
      const answer = await probe.request(Code.GET, pathOptions(protocol.Paths.CORE));
      return answer.code === Code.CONTENT;
    };
    try {
      // A warm-up round: the code paths the fuzz reaches are compiled before the baseline.
      await fc.assert(fc.asyncProperty(shots, run), { numRuns: 10, seed: 1 });
      const heapBefore = heapAfterGc();
      const t0 = Date.now();
      await fc.assert(fc.asyncProperty(shots, run), { numRuns: 100, seed: 20_251_207 });
      const fuzzMs = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 300)); // the last answers

      const sent = fuzz.reduce((a, f) => a + f.sent, 0);
      expect(sent).toBeGreaterThanOrEqual(2_500 + 250);
      expect(gw.health().ok).toBe(true);

      // The node connected before the fuzz: a stanza acknowledged and routed with its own JID.
      await legit.send(message(SINK, "after"));
      // A node connecting after it: the whole connect, then a stanza acknowledged end to end.
      const spare = await legitimateNode("spare", 3, gw.address as PeerAddress, []);
      await spare.connect();
      await spare.send(message(SINK, "spare after"));
      // What left with each legitimate JID is exactly what that node sent, once and in order (the
      // fuzzer's replays of the node's frames are routed, if at all, as the fuzzer's: from is stamped).
      const sentBy = (identity: string) =>
        outbound.filter((s) => attr(s, "from") === `${identity}@${world.domain}/cxmpp`).map(bodyOf);
      expect(sentBy("legit")).toEqual(["before", "reading 1", "reading 2", "x".repeat(3_000), "after"]);
      expect(sentBy("spare")).toEqual(["spare after"]);

      const heapAfter = heapAfterGc();
      const answers = new Map<string, number>();
      for (const f of fuzz) for (const [k, n] of f.answers) answers.set(k, (answers.get(k) ?? 0) + n);
      const tables = await gw.metrics!.registry.getSingleMetric("cxmpp_coap_table_entries")!.get();
      console.info(
        `fuzz: ${sent} datagrams in ${fuzzMs} ms; answers ${[...answers].map(([k, n]) => `${k} ×${n}`).join(", ")}; ` +
          `tables ${tables.values.map((v) => `${v.labels.table} ${v.value}`).join(", ")}; ` +
          `heap + ArrayBuffers after GC ${(heapBefore / MiB).toFixed(1)} → ${(heapAfter / MiB).toFixed(1)} MiB; ` +
          `stanzas routed for the fuzzer ${outbound.filter((s) => attr(s, "from")?.startsWith("fuzzer@")).length}, ` +
          `gateway error log lines: ${logged.size === 0 ? "none" : [...logged].map(([k, n]) => `${k} ×${n}`).join("; ")}`,
      );
      // What ~2,800 datagrams can make the gateway hold, by its caps: as many deduplication entries
      // (each under 500 bytes with its key and its reply of at most ~100), at most 64 Block1 bodies
      // of 16 KiB (1 MiB), Block2 copies within 1 MiB, one observer, two mailboxes of at most 16 KiB
      // and the fuzzer's stanzas in the outbox cache (a few hundred, under 1 KiB each): about 4 MiB.
      // 8 MiB leaves room for what V8 compiles late; a leak of a few kilobytes a datagram breaks it.
      expect(heapAfter - heapBefore).toBeLessThan(8 * MiB);
    } finally {
      vi.restoreAllMocks();
    }
  }, 180_000);

  // A finding of this fuzz run: a Uri-Path that is not UTF-8 (`41 01 00 64 00 b1 ff`: CON GET, Uri-Path
  // 0xff) made uriPath() throw, so the gateway answered 5.00 and wrote an error log line per datagram (a
  // way to fill the log). String options are checked in the exchange layer now: 4.02 Bad Option.
  it("answers a Uri-Path that is not UTF-8 with a 4.xx, not 5.00", async () => {
    const to = { host: gw.host, port: gw.port };
    const peer = await RawPeer.open(to);
    const original = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) =>
      String(chunk).includes('"component":"gateway"')
        ? true
        : (original as (...a: unknown[]) => boolean)(chunk, ...rest),
    );
    try {
      for (const path of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80]]) {
        const answer = await peer.request(Code.GET, [
          { number: OptionNumber.URI_PATH, value: Uint8Array.from(path) },
        ]);
        expect(codeString(answer.code)).toMatch(/^4\./);
      }
    } finally {
      vi.restoreAllMocks();
    }
  });
});
