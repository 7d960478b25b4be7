/**
 * `cxmpp bench soak`: a gateway under mixed load for a long while, watched for lost stanzas, unbounded
 * tables and memory that keeps growing. Everything runs in this process, on real UDP on 127.0.0.1:
 *
 * - **The gateway**: `startGateway` with a temporary data directory (SQLite, durability `full`), in local
 *   mode; stanzas for other domains go to its durable outbox and are counted at the `outbound` hook.
 * - **Normal nodes** (`--nodes`, default 20; NodeClient, one UDP socket each) behind a seeded lossy relay
 *   (examples/lossy-relay.ts, `--loss` per direction, default 0.2; ACK timeout 100 ms, MAX_RETRANSMIT 4,
 *   the client's own retry after 100 ms). Each node, about every `--interval` ms, sends a reliable
 *   stanza to `sink@elsewhere.example` (outbox), a reliable stanza to another node of the gateway, or a
 *   NON telemetry reading; now and then a reliable stanza too large for one block (Block1). At most 8
 *   reliable stanzas per node await their acknowledgement. Every fourth node observes its downlink;
 *   all poll every 2 s. Each reliable stanza carries its number in its (sender, destination) stream;
 *   once `send()` resolved (= acknowledged: the gateway stored it) it must arrive exactly once and in
 *   order, at the outbox or at the receiving node. Telemetry must arrive at most once.
 * - **Spoofed floods** (`--flood-rate` datagrams/s in all, default 300) from a pool of raw sockets whose
 *   members are replaced all the time (new source ports): connects without Echo and with garbage Echo
 *   (real and unknown identities), GETs with 60 KB paths, Block1 transfers started and never finished,
 *   Observe registrations, forged uplinks with huge acks, captured NON readings replayed; and, through a
 *   node's own socket (what an attacker on the link can do), huge acks and NON replays from the node's
 *   address, which the gateway must refuse (4.22, and the per-device telemetry number).
 * - **Hostile input** in the same stream: random datagrams and mutations of datagrams captured from the
 *   nodes (bit flips, bytes set, truncation, slices repeated, codes and token lengths changed).
 *
 * It samples the CoAP tables (`CoapEndpoint.tables()`, read through the gateway's cxmpp_coap_* gauges)
 * every 250 ms and the memory (heap + ArrayBuffers after a forced full GC, and RSS) every few seconds.
 * When the duration is over, the floods stop, every node's outstanding stanzas are drained (polls until
 * every mailbox is empty), the last samples are taken and the gateway stops.
 *
 * Verdict (exit 0 when it holds, 1 otherwise): no acknowledged stanza lost, none twice, none out of
 * order; no telemetry reading twice; every node made progress; nothing left unacknowledged after the
 * drain; every table at or under its cap; no uncaught exception and no error logged by the gateway;
 * heap after GC grew less than `--heap-bound` MiB (default 64, derived from the caps below); and, for
 * runs of 520 s or more, less than 8 MiB between half time and the end, when every table has long
 * reached its steady state (entries live at most EXCHANGE_LIFETIME, 247 s).
 *
 * Why 64 MiB: what an unauthenticated peer can make the gateway hold is capped (src/core/coap/limits.ts,
 * gateway/defaults.ts): 16,384 deduplication entries and 8 MiB of kept replies (about 9 MiB plus the
 * replies with the per-entry key, record and array overhead, ~570 bytes measured on Node 20; 65,536
 * entries took 36 MiB), 64 Block1 bodies of at most 16 KiB
 * (1 MiB), 1 MiB of Block2 copies, 4,096 observers (about 2 MiB), 10,000 used connect nonces (about
 * 1 MiB); the codec's literal memo (16,384 distinct short strings, ~450 bytes each with their
 * encoded bytes: ~7 MiB; one per process, so the nodes here share the gateway's), the store's outbox
 * cache (4,096 recent stanzas in local mode, a few MiB, emptied when full), the bench's own bounded
 * bookkeeping, and the code V8 compiles as the run warms up.
 *
 * `--json` prints one JSON object (SoakResult) on stdout; progress goes to stderr otherwise.
 */
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { attr, DICTIONARY_V1, el, type XElement } from "../codec/index.js";
import { LossyRelay } from "../examples/lossy-relay.js";
import { GATEWAY_DEFAULTS, loadConfig, type RunningGateway, startGateway } from "../gateway/index.js";
import { DEFAULT_BLOCKWISE } from "../src/core/coap/blockwise.js";
import { DEFAULT_COAP_LIMITS } from "../src/core/coap/limits.js";
import { blockOption } from "../src/core/coap/message.js";
import {
  CoapEndpoint,
  Code,
  ContentFormat,
  codeString,
  type DatagramTransport,
  MessageType,
  NodeClient,
  OptionNumber,
  type PeerAddress,
  pathOptions,
  protocol,
  type Random,
  SessionError,
  seededRandom,
  serializeMessage,
  uintOption,
} from "../src/core/index.js";
import { nodeMac, systemClock, timerScheduler, UdpTransport } from "../src/node/index.js";
import { fmt, integer, round, runBenchCommand, sleep, table, UsageError } from "./common.js";
import { fullGc as gc, MiB } from "./memory.js";

export interface SoakBenchOptions {
  /** Commander hands over strings; numbers are accepted too. */
  readonly duration?: string | number;
  readonly nodes?: string | number;
  readonly loss?: string | number;
  readonly seed?: string | number;
  /** Spoofed and hostile datagrams per second, all kinds together. */
  readonly floodRate?: string | number;
  /** Mean milliseconds between two things a node sends. */
  readonly interval?: string | number;
  /** Allowed growth of the heap after GC, MiB. */
  readonly heapBound?: string | number;
  readonly json?: boolean;
}

export interface SoakConfig {
  readonly durationS: number;
  readonly nodes: number;
  readonly loss: number;
  readonly seed: number;
  readonly floodRate: number;
  readonly intervalMs: number;
  readonly heapBoundMiB: number;
}

const SINK = "sink@elsewhere.example";
/** Reliable stanzas a node lets wait for their acknowledgement before it holds back. */
const MAX_OUTSTANDING = 8;
const POLL_MS = 2_000;
const TABLE_SAMPLE_MS = 250;
const DRAIN_MS = 120_000;
/** Growth allowed between half time and the end of a long run (tables long steady by then). */
const LATE_GROWTH_MiB = 8;
/** A run this long has its half time after EXCHANGE_LIFETIME (247 s): the late-growth check applies. */
const LATE_CHECK_MIN_S = 520;
/** Shares of what a node sends: telemetry, reliable to another node, the rest reliable to the sink. */
const P_TELEMETRY = 0.2;
const P_LOCAL = 0.15;
/** Share of reliable stanzas to the sink made too large for one CoAP block (Block1 under the flood). */
const P_LARGE = 0.01;
/** Raw sockets of the flood at any moment, and how many are replaced by new ones (new ports) per second. */
const FLOOD_SOCKETS = 32;
const FLOOD_ROTATE_PER_S = 16;
const BIG_PATH_BYTES = 60_000;

// ---------------------------------------------------------------------------------------------------
// Memory after a full collection.

interface MemorySample {
  /** Seconds since the load started. */
  readonly t: number;
  /** heapUsed + arrayBuffers after a full GC, bytes. */
  readonly heap: number;
  readonly rss: number;
}

function sampleMemory(t: number): MemorySample {
  gc();
  const m = process.memoryUsage();
  return { t: round(t, 1), heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

// ---------------------------------------------------------------------------------------------------
// Streams: what was sent and acknowledged, what arrived.

/** One (sender, destination) sequence of reliable stanzas, numbered from 1. */
interface Stream {
  issued: number;
  /** Highest number whose send() resolved (sends resolve in order). */
  highestAcked: number;
  /** Numbers whose send() failed: not expected to arrive. */
  readonly notSent: Set<number>;
  /** Numbers that came back to the sender as stanza errors. */
  readonly bounced: Set<number>;
  maxSeen: number;
  /** Numbers below maxSeen not seen (yet). */
  readonly missing: Set<number>;
  delivered: number;
  duplicates: number;
  outOfOrder: number;
}

const newStream = (): Stream => ({
  issued: 0,
  highestAcked: 0,
  notSent: new Set(),
  bounced: new Set(),
  maxSeen: 0,
  missing: new Set(),
  delivered: 0,
  duplicates: 0,
  outOfOrder: 0,
});

function arrived(s: Stream, k: number): void {
  if (k > s.maxSeen) {
    for (let j = s.maxSeen + 1; j < k; j++) s.missing.add(j);
    s.maxSeen = k;
    s.delivered++;
  } else if (s.missing.delete(k)) {
    s.delivered++;
    s.outOfOrder++;
  } else s.duplicates++;
}

function lostIn(s: Stream): number {
  let lost = 0;
  const expected = (k: number) => !s.notSent.has(k) && !s.bounced.has(k);
  for (const k of s.missing) if (k <= s.highestAcked && expected(k)) lost++;
  for (let k = s.maxSeen + 1; k <= s.highestAcked; k++) if (expected(k)) lost++;
  return lost;
}

/** Telemetry numbers of one node: at most once. A window of recent numbers keeps the memory bounded. */
interface TelemetryTrack {
  sent: number;
  delivered: number;
  duplicates: number;
  /** Arrived below the window: cannot be checked (never expected). */
  stale: number;
  max: number;
  readonly seen: Set<number>;
}

const TELEMETRY_WINDOW = 512;

function telemetryArrived(tr: TelemetryTrack, k: number): void {
  if (k <= tr.max - TELEMETRY_WINDOW) {
    tr.stale++;
    return;
  }
  if (tr.seen.has(k)) {
    tr.duplicates++;
    return;
  }
  tr.seen.add(k);
  tr.delivered++;
  if (k > tr.max) tr.max = k;
  if (tr.seen.size > 2 * TELEMETRY_WINDOW)
    for (const x of tr.seen) if (x <= tr.max - TELEMETRY_WINDOW) tr.seen.delete(x);
}

function bodyText(stanza: XElement): string {
  const body = stanza.children.find((c) => typeof c !== "string" && c.name === "body");
  if (!body || typeof body === "string") return "";
  return body.children.filter((c): c is string => typeof c === "string").join("");
}

/** `r:<sender>:<destination>:<k>[:padding]` or `t:<sender>:<k>`. */
type Parsed =
  | { readonly kind: "r"; readonly sender: number; readonly dest: string; readonly k: number }
  | { readonly kind: "t"; readonly sender: number; readonly k: number };

function parseBody(text: string): Parsed | undefined {
  const parts = text.split(":", 4);
  if (parts[0] === "r" && parts.length === 4)
    return { kind: "r", sender: Number(parts[1]), dest: parts[2]!, k: Number(parts[3]) };
  if (parts[0] === "t" && parts.length >= 3)
    return { kind: "t", sender: Number(parts[1]), k: Number(parts[2]) };
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Captured datagrams: the corpus of the mutations, and the NON readings replayed.

class Capture {
  /** The first datagrams the nodes sent (their connects among them), kept for the whole run. */
  private readonly first: Uint8Array[] = [];
  private readonly ring: Uint8Array[] = [];
  private next = 0;

  add(data: Uint8Array): void {
    const copy = Uint8Array.from(data);
    if (this.first.length < 64) this.first.push(copy);
    else if (this.ring.length < 448) this.ring.push(copy);
    else {
      this.ring[this.next] = copy;
      this.next = (this.next + 1) % this.ring.length;
    }
  }

  pick(random: () => number): Uint8Array | undefined {
    const n = this.first.length + this.ring.length;
    if (n === 0) return undefined;
    const i = Math.floor(random() * n);
    return i < this.first.length ? this.first[i] : this.ring[i - this.first.length];
  }
}

/** A node's transport that records what the node sends and lets an attacker send from its address. */
class NodeTap implements DatagramTransport {
  lastMid = 0;
  /** The node's last NON readings (NON POSTs), for replays. */
  readonly readings: Uint8Array[] = [];

  constructor(
    readonly inner: UdpTransport,
    private readonly capture: Capture,
  ) {}

  send(data: Uint8Array, peer: PeerAddress): void {
    if (data.length >= 4) {
      this.lastMid = (data[2]! << 8) | data[3]!;
      if (((data[0]! >> 4) & 3) === MessageType.NON && data[1] === Code.POST) {
        if (this.readings.length >= 8) this.readings.shift();
        this.readings.push(Uint8Array.from(data));
      }
    }
    this.capture.add(data);
    this.inner.send(data, peer);
  }

  onReceive(handler: (data: Uint8Array, peer: PeerAddress) => void): void {
    this.inner.onReceive(handler);
  }

  close(): void {
    this.inner.close();
  }

  /** Sends `data` from the node's own socket, as an attacker on the link would. */
  inject(data: Uint8Array, peer: PeerAddress): void {
    this.inner.send(data, peer);
  }
}

// ---------------------------------------------------------------------------------------------------
// Nodes.

interface SoakNode {
  readonly index: number;
  readonly identity: string;
  readonly client: NodeClient;
  readonly endpoint: CoapEndpoint;
  readonly tap: NodeTap;
  readonly random: () => number;
  readonly observer: boolean;
  outstanding: number;
  acked: number;
  telemetryNext: number;
  polling: boolean;
  observing: boolean;
  timer: NodeJS.Timeout | undefined;
}

const identityOf = (i: number) => `soak${i}`;

function deviceKey(i: number, seed: number): Uint8Array {
  const r = seededRandom((seed * 65_537 + i * 2_654_435_761) >>> 0);
  return Uint8Array.from({ length: 16 }, () => Math.floor(r() * 256));
}

function coreRandom(seed: number): Random {
  const u = seededRandom(seed >>> 0);
  return { uint32: () => Math.floor(u() * 4_294_967_296) };
}

function randomText(random: () => number, n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
}

const message = (to: string, body: string): XElement =>
  el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));

// ---------------------------------------------------------------------------------------------------
// The flood.

export const FLOOD_KINDS = [
  "connect_no_echo",
  "connect_bad_echo",
  "big_path_get",
  "block1_unfinished",
  "observe_register",
  "forged_huge_ack",
  "replayed_non",
  "random_bytes",
  "mutated_capture",
  "huge_ack_at_node",
  "replay_at_node",
] as const;
export type FloodKind = (typeof FLOOD_KINDS)[number];

/** Relative weights of the kinds in the flood stream. */
const FLOOD_WEIGHTS: Readonly<Record<FloodKind, number>> = {
  connect_no_echo: 12,
  connect_bad_echo: 10,
  big_path_get: 3,
  block1_unfinished: 8,
  observe_register: 10,
  forged_huge_ack: 8,
  replayed_non: 8,
  random_bytes: 15,
  mutated_capture: 20,
  huge_ack_at_node: 3,
  replay_at_node: 3,
};

class FloodPool {
  private readonly sockets: Socket[] = [];
  ports = 0;
  /** Answers the gateway sent to the attacker's sockets, by code (or RST / empty ACK). */
  readonly answers = new Map<string, number>();

  constructor(
    private readonly target: { host: string; port: number },
    private readonly random: () => number,
  ) {
    for (let i = 0; i < FLOOD_SOCKETS; i++) this.sockets.push(this.open());
  }

  private open(): Socket {
    const s = createSocket("udp4");
    s.on("error", () => {});
    s.on("message", (d) => {
      if (d.length < 4) return;
      const type = (d[0]! >> 4) & 3;
      const key = type === MessageType.RST ? "RST" : d[1] === 0 ? "empty ACK" : codeString(d[1]!);
      this.answers.set(key, (this.answers.get(key) ?? 0) + 1);
    });
    s.bind(0, "127.0.0.1"); // sends before the bind completes are queued
    this.ports++;
    return s;
  }

  send(data: Uint8Array): void {
    const s = this.sockets[Math.floor(this.random() * this.sockets.length)]!;
    try {
      s.send(data, this.target.port, this.target.host);
    } catch {
      // a socket closing under us: a lost datagram
    }
  }

  /** Replaces `n` sockets by new ones: new source ports. */
  rotate(n: number): void {
    for (let k = 0; k < n; k++) {
      const i = Math.floor(this.random() * this.sockets.length);
      const old = this.sockets[i]!;
      this.sockets[i] = this.open();
      try {
        old.close();
      } catch {
        // already closed
      }
    }
  }

  close(): Promise<void> {
    return Promise.all(
      this.sockets.splice(0).map(
        (s) =>
          new Promise<void>((done) => {
            try {
              s.close(() => done());
            } catch {
              done();
            }
          }),
      ),
    ).then(() => {});
  }
}

interface Hostile {
  readonly random: () => number;
  bytes(n: number): Uint8Array;
  int(n: number): number;
}

function hostile(seed: number): Hostile {
  const random = seededRandom(seed >>> 0);
  return {
    random,
    int: (n) => Math.floor(random() * n),
    bytes: (n) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256)),
  };
}

function request(
  h: Hostile,
  type: MessageType,
  code: number,
  options: ReturnType<typeof pathOptions>,
  payload: Uint8Array = new Uint8Array(0),
  mid = h.int(0x10000),
): Uint8Array {
  return serializeMessage({ type, code, messageId: mid, token: h.bytes(h.int(9)), options, payload });
}

/** Mutations of a captured datagram: 1 to 3 of flips, sets, cuts, insertions, repeats, header changes. */
export function mutate(h: Hostile, original: Uint8Array): Uint8Array {
  let d = Uint8Array.from(original);
  const rounds = 1 + h.int(3);
  for (let r = 0; r < rounds; r++) {
    const at = d.length > 0 ? h.int(d.length) : 0;
    switch (h.int(8)) {
      case 0: // bit flips
        for (let k = 1 + h.int(8); k > 0 && d.length > 0; k--) d[h.int(d.length)]! ^= 1 << h.int(8);
        break;
      case 1: // a byte set to an interesting value (option extension markers, payload marker, extremes)
        if (d.length > 0) d[at] = [0x00, 0xff, 0x0d, 0x0e, 0x0f, 0xd0, 0xe0, 0xf0, 0x7f, 0x80][h.int(10)]!;
        break;
      case 2: // truncated
        d = d.slice(0, at);
        break;
      case 3: {
        // random bytes inserted
        const extra = h.bytes(1 + h.int(16));
        d = Uint8Array.from([...d.subarray(0, at), ...extra, ...d.subarray(at)]);
        break;
      }
      case 4: {
        // a slice repeated (options repeated, a payload doubled)
        const len = 1 + h.int(Math.max(1, d.length - at));
        const slice = d.slice(at, at + len);
        d = Uint8Array.from([...d.subarray(0, at + len), ...slice, ...d.subarray(at + len)]);
        break;
      }
      case 5: // another code (a method, a response, a reserved class)
        if (d.length > 1) d[1] = h.int(256);
        break;
      case 6: // another type and token length (a TKL of 9-15 is a format error)
        if (d.length > 0) d[0] = 0x40 | (h.int(4) << 4) | h.int(16);
        break;
      default: // the payload replaced by random bytes
        d = Uint8Array.from([...d.subarray(0, at), 0xff, ...h.bytes(h.int(64))]);
        break;
    }
  }
  return d.length > 65_000 ? d.slice(0, 65_000) : d;
}

interface FloodContext {
  readonly h: Hostile;
  readonly pool: FloodPool;
  readonly nodes: readonly SoakNode[];
  readonly capture: Capture;
  readonly relay: PeerAddress;
  readonly identities: readonly string[];
}

/** Sends one datagram of `kind`; false when there was nothing to send it with (no capture yet). */
function floodOne(kind: FloodKind, c: FloodContext): boolean {
  const { h, pool } = c;
  const identity = () =>
    h.random() < 0.5 ? c.identities[h.int(c.identities.length)]! : `ghost${h.int(1e6)}`;
  const connect = (withEcho: boolean) => {
    const garbageDictionary = h.random() < 0.1;
    const payload = protocol.encodeConnectRequest({
      identity: identity(),
      dictionary: garbageDictionary ? randomTextOf(h, 1 + h.int(20)) : DICTIONARY_V1.id,
      ...(withEcho ? { proof: h.bytes(h.random() < 0.8 ? protocol.PROOF_BYTES : h.int(40)) } : {}),
      ...(h.random() < 0.2 ? { resume: h.bytes(h.int(24)) } : {}),
    });
    const options = [
      ...pathOptions(protocol.Paths.CONNECT),
      uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.CXMPP_SESSION),
      ...(withEcho
        ? [
            {
              number: OptionNumber.ECHO,
              value: h.bytes(h.random() < 0.7 ? protocol.NONCE_BYTES : h.int(41)),
            },
          ]
        : []),
    ];
    pool.send(request(h, MessageType.CON, Code.POST, options, payload));
  };
  switch (kind) {
    case "connect_no_echo":
      connect(false);
      return true;
    case "connect_bad_echo":
      connect(true);
      return true;
    case "big_path_get": {
      const path = `${h.int(1e6)}${"p".repeat(BIG_PATH_BYTES)}`;
      pool.send(request(h, MessageType.CON, Code.GET, pathOptions(path)));
      return true;
    }
    case "block1_unfinished": {
      const options = [
        ...pathOptions(protocol.Paths.UPLINK),
        { number: OptionNumber.REQUEST_TAG, value: h.bytes(1 + h.int(4)) },
        blockOption(OptionNumber.BLOCK1, { num: 0, more: true, szx: 6 }),
      ];
      pool.send(request(h, MessageType.CON, Code.POST, options, h.bytes(1024)));
      return true;
    }
    case "observe_register": {
      const path =
        h.random() < 0.8 ? protocol.Paths.CORE : `${protocol.Paths.DOWNLINK}/${h.int(c.nodes.length + 5)}`;
      pool.send(
        request(h, MessageType.CON, Code.GET, [...pathOptions(path), uintOption(OptionNumber.OBSERVE, 0)]),
      );
      return true;
    }
    case "forged_huge_ack": {
      const payload = protocol.encodeUplink({
        seq: 1 + h.int(1000),
        ack: 1_000_000 + h.int(2 ** 31),
        frames: h.random() < 0.5 ? [] : [h.bytes(1 + h.int(40))],
      });
      const type = h.random() < 0.5 ? MessageType.CON : MessageType.NON;
      pool.send(request(h, type, Code.POST, pathOptions(protocol.Paths.UPLINK), payload));
      return true;
    }
    case "replayed_non": {
      const node = c.nodes[h.int(c.nodes.length)];
      const reading = node?.tap.readings[h.int(node.tap.readings.length)];
      if (!reading) return false;
      const copy = Uint8Array.from(reading);
      if (h.random() < 0.5) {
        copy[2] = h.int(256);
        copy[3] = h.int(256);
      }
      pool.send(copy);
      return true;
    }
    case "random_bytes": {
      const r = h.random();
      const n = r < 0.7 ? h.int(65) : r < 0.95 ? 64 + h.int(960) : 1024 + h.int(477);
      const d = h.bytes(n);
      if (n > 0 && h.random() < 0.5) d[0] = 0x40 | (h.int(4) << 4) | h.int(9); // a plausible header
      pool.send(d);
      return true;
    }
    case "mutated_capture": {
      const original = c.capture.pick(h.random);
      if (!original) return false;
      pool.send(mutate(h, original));
      return true;
    }
    case "huge_ack_at_node": {
      const node = c.nodes[h.int(c.nodes.length)];
      if (!node) return false;
      const payload = protocol.encodeUplink({ seq: 1, ack: 1_000_000 + h.int(2 ** 31), frames: [] });
      // A message id far from the node's own (it would take the node 32,768 messages to get there).
      const mid = (node.tap.lastMid + 0x8000 + h.int(0x1000)) & 0xffff;
      node.tap.inject(
        request(h, MessageType.NON, Code.POST, pathOptions(protocol.Paths.UPLINK), payload, mid),
        c.relay,
      );
      return true;
    }
    case "replay_at_node": {
      const node = c.nodes[h.int(c.nodes.length)];
      const reading = node?.tap.readings[h.int(node.tap.readings.length)];
      if (!node || !reading) return false;
      const copy = Uint8Array.from(reading);
      const mid = (node.tap.lastMid + 0x8000 + h.int(0x1000)) & 0xffff;
      copy[2] = mid >> 8;
      copy[3] = mid & 0xff;
      node.tap.inject(copy, c.relay);
      return true;
    }
  }
}

function randomTextOf(h: Hostile, n: number): string {
  return randomText(h.random, n);
}

// ---------------------------------------------------------------------------------------------------
// Tables.

/** Entries, and bytes where the table keeps data, of each CoAP table, with the caps in force. */
export interface TableSample {
  readonly dedup: number;
  readonly dedup_bytes: number;
  readonly block1_assemblies: number;
  readonly block1_bytes: number;
  readonly block2_representations: number;
  readonly block2_bytes: number;
  readonly observers: number;
  readonly used_nonces: number;
}

type TableName = keyof TableSample;

async function metricValues(gw: RunningGateway, name: string): Promise<Map<string, number>> {
  const metric = gw.metrics!.registry.getSingleMetric(name);
  const out = new Map<string, number>();
  if (!metric) return out;
  const got = await metric.get();
  for (const v of got.values) out.set(String(v.labels.table ?? ""), v.value);
  return out;
}

async function sampleTables(gw: RunningGateway): Promise<TableSample> {
  const entries = await metricValues(gw, "cxmpp_coap_table_entries");
  const bytes = await metricValues(gw, "cxmpp_coap_table_bytes");
  return {
    dedup: entries.get("dedup") ?? 0,
    dedup_bytes: bytes.get("dedup") ?? 0,
    block1_assemblies: entries.get("block1_assemblies") ?? 0,
    block1_bytes: bytes.get("block1_assemblies") ?? 0,
    block2_representations: entries.get("block2_representations") ?? 0,
    block2_bytes: bytes.get("block2_representations") ?? 0,
    observers: entries.get("observers") ?? 0,
    used_nonces: gw.service.usedNonces,
  };
}

async function tableCaps(gw: RunningGateway): Promise<TableSample> {
  const limits = await metricValues(gw, "cxmpp_coap_table_limit");
  const maxAssemblies = limits.get("block1_assemblies") ?? DEFAULT_COAP_LIMITS.maxAssemblies;
  return {
    dedup: limits.get("dedup") ?? DEFAULT_COAP_LIMITS.maxDedupEntries,
    // Kept replies are capped at maxDedupBytes (the gateway runs with the default limits).
    dedup_bytes: DEFAULT_COAP_LIMITS.maxDedupBytes,
    block1_assemblies: maxAssemblies,
    block1_bytes: maxAssemblies * DEFAULT_BLOCKWISE.maxBodyBytes,
    block2_representations: limits.get("block2_representations") ?? DEFAULT_COAP_LIMITS.maxRepresentations,
    block2_bytes: DEFAULT_COAP_LIMITS.maxRepresentationBytes,
    observers: limits.get("observers") ?? DEFAULT_COAP_LIMITS.maxObservers,
    used_nonces: GATEWAY_DEFAULTS.maxUsedNonces,
  };
}

// ---------------------------------------------------------------------------------------------------
// The result.

export interface SoakCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface SoakResult {
  readonly duration_s: number;
  readonly nodes: number;
  readonly loss: number;
  readonly seed: number;
  readonly flood_rate: number;
  readonly interval_ms: number;
  /** Seconds of load, and of the drain after it. */
  readonly elapsed_s: number;
  readonly drain_s: number;
  readonly stanzas: {
    readonly sent: number;
    readonly acknowledged: number;
    readonly delivered: number;
    /** Delivered, but their send() never resolved (only when the drain deadline cut the run). */
    readonly delivered_unacknowledged: number;
    readonly duplicates: number;
    readonly out_of_order: number;
    readonly lost: number;
    readonly unacknowledged_at_end: number;
    readonly send_failures: number;
    readonly bounced: number;
    readonly to_sink: number;
    readonly to_nodes: number;
    readonly large: number;
    readonly acknowledged_per_s: number;
    /** Fewest stanzas acknowledged to any one node. */
    readonly min_per_node: number;
  };
  readonly telemetry: {
    readonly sent: number;
    readonly delivered: number;
    readonly duplicates: number;
    readonly stale: number;
    /** NON readings the gateway dropped as replays (stats.replayedTelemetry). */
    readonly replays_refused: number;
  };
  readonly flood: {
    readonly sent: Readonly<Record<FloodKind, number>>;
    readonly total: number;
    readonly per_s: number;
    readonly source_ports: number;
    readonly answers: Readonly<Record<string, number>>;
  };
  readonly gateway: {
    readonly connects: number;
    readonly refused_connects: number;
    readonly bad_acks: number;
    readonly replayed_telemetry: number;
    readonly gaps: number;
    readonly bad_frames: number;
    readonly duplicate_frames: number;
    readonly stanzas_in: number;
    readonly telemetry_in: number;
    readonly sessions: number;
    readonly evictions: Readonly<Record<string, number>>;
    readonly observers_replaced: number;
    readonly error_payloads_cut: number;
    /** The gateway's log lines (errors only), by level, event and error. */
    readonly log_lines: Readonly<Record<string, number>>;
  };
  readonly tables: Readonly<
    Record<TableName, { readonly max: number; readonly final: number; readonly cap: number }>
  >;
  readonly memory: {
    readonly heap_start_mib: number;
    readonly heap_max_mib: number;
    readonly heap_end_mib: number;
    readonly heap_growth_mib: number;
    readonly heap_bound_mib: number;
    /** Heap at the end minus heap at half time (null for runs shorter than 520 s). */
    readonly heap_late_growth_mib: number | null;
    readonly rss_start_mib: number;
    readonly rss_max_mib: number;
    readonly rss_end_mib: number;
    /** RSS at the end minus RSS at half time (reported; RSS also holds SQLite's cache and freed pages). */
    readonly rss_late_growth_mib: number;
    readonly samples: readonly { readonly t: number; readonly heap_mib: number; readonly rss_mib: number }[];
  };
  readonly relay: LossyRelay["stats"];
  readonly uncaught: readonly string[];
  /** What went wrong without breaking the verdict: errors the gateway logged, 5.00 answers. */
  readonly findings: readonly string[];
  readonly checks: readonly SoakCheck[];
  readonly ok: boolean;
  readonly verdict: string;
}

const mib = (b: number) => round(b / MiB, 1);

// ---------------------------------------------------------------------------------------------------
// The run.

/**
 * Takes the gateway's JSON log lines off stderr (log_level error: only errors are written) and counts
 * them by event and error, so that a flood's worth of them becomes one line of the report; anything
 * else written to stderr passes through.
 */
function watchErrorLogs(): { counts: Map<string, number>; restore(): void } {
  const counts = new Map<string, number>();
  const original = process.stderr.write;
  const patched = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
    const text =
      typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : "";
    if (!text.includes('"component":"gateway"'))
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      let key = line.slice(0, 200);
      try {
        const record = JSON.parse(line) as { level?: string; event?: string; error?: unknown };
        key = `${record.level} ${record.event}${record.error === undefined ? "" : `: ${String(record.error)}`}`;
      } catch {
        // not one of its records after all: counted as it is
      }
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const callback = rest.find((r): r is () => void => typeof r === "function");
    callback?.();
    return true;
  };
  process.stderr.write = patched as typeof process.stderr.write;
  return {
    counts,
    restore: () => {
      if (process.stderr.write === patched) process.stderr.write = original;
    },
  };
}

export async function runSoak(config: SoakConfig, progress: (line: string) => void): Promise<SoakResult> {
  const uncaught: string[] = [];
  const onUncaught = (error: unknown) => {
    if (uncaught.length < 20)
      uncaught.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
  };
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  const errorLogs = watchErrorLogs();
  const dataDir = mkdtempSync(join(tmpdir(), "cxmpp-soak-"));
  const intervals: NodeJS.Timeout[] = [];
  const nodes: SoakNode[] = [];
  let gw: RunningGateway | undefined;
  let relay: LossyRelay | undefined;
  let pool: FloodPool | undefined;
  try {
    const streams = new Map<string, Stream>();
    const stream = (sender: number, dest: string) => {
      const key = `${sender}>${dest}`;
      let s = streams.get(key);
      if (!s) {
        s = newStream();
        streams.set(key, s);
      }
      return s;
    };
    const telemetry = Array.from(
      { length: config.nodes },
      (): TelemetryTrack => ({ sent: 0, delivered: 0, duplicates: 0, stale: 0, max: 0, seen: new Set() }),
    );
    let foreign = 0;
    const arrive = (stanza: XElement) => {
      if (stanza.name !== "message") return; // the gateway's presence for nodes
      const p = parseBody(bodyText(stanza));
      if (!p || !(p.sender >= 0 && p.sender < config.nodes)) {
        foreign++;
        return;
      }
      if (p.kind === "t") telemetryArrived(telemetry[p.sender]!, p.k);
      else arrived(stream(p.sender, p.dest), p.k);
    };

    gw = await startGateway(
      loadConfig({
        env: {},
        flags: {
          data_dir: dataDir,
          listen: "127.0.0.1:0",
          dtls_listen: "off", // the soak's nodes and floods are plain CoAP (bench dtls measures DTLS)
          log_level: "error",
          durability: "full",
          metrics_listen: "127.0.0.1:0",
        },
      }),
      { outbound: arrive },
    );
    const gateway = gw;
    const domain = gateway.config.xmppDomain;
    const identities = Array.from({ length: config.nodes }, (_, i) => identityOf(i));
    for (const [i, identity] of identities.entries())
      gateway.store.devices.add({
        identity,
        key: deviceKey(i, config.seed),
        jid: `${identity}@${domain}`,
        peers: [],
      });
    relay = await LossyRelay.start(gateway.address as PeerAddress, { loss: config.loss, seed: config.seed });
    const relayAddress = relay.address;
    const capture = new Capture();

    // Nodes.
    let bounced = 0;
    for (let i = 0; i < config.nodes; i++) {
      const udp = await UdpTransport.bind("127.0.0.1", 0, { recvBufferSize: 2 ** 18 });
      const tap = new NodeTap(udp, capture);
      const endpoint = new CoapEndpoint({
        transport: tap,
        clock: systemClock,
        scheduler: timerScheduler(),
        random: coreRandom(config.seed * 7_919 + i),
        transmission: { ackTimeoutMs: 100, maxRetransmit: 4 },
      });
      const client = new NodeClient({
        endpoint,
        gateway: relayAddress,
        identity: identityOf(i),
        key: deviceKey(i, config.seed),
        mac: nodeMac,
        retryDelayMs: 100,
      });
      client.onStanza((s) => {
        if (attr(s, "type") === "error") {
          const p = parseBody(bodyText(s));
          if (p?.kind === "r") {
            stream(p.sender, p.dest).bounced.add(p.k);
            bounced++;
          }
          return;
        }
        arrive(s);
      });
      nodes.push({
        index: i,
        identity: identityOf(i),
        client,
        endpoint,
        tap,
        random: seededRandom((config.seed * 100_003 + i) >>> 0),
        observer: i % 4 === 0,
        outstanding: 0,
        acked: 0,
        telemetryNext: 0,
        polling: false,
        observing: false,
        timer: undefined,
      });
    }
    const connectDeadline = performance.now() + 60_000;
    await Promise.all(
      nodes.map(async (n) => {
        for (;;) {
          try {
            await n.client.connect();
            return;
          } catch (error) {
            if (performance.now() > connectDeadline) throw error;
            await sleep(50);
          }
        }
      }),
    );
    const observe = (n: SoakNode) => {
      if (!n.observer || n.observing) return;
      n.observing = true;
      n.client.observeDownlink().catch(() => {
        n.observing = false; // lost on the way: tried again at the next poll
      });
    };
    nodes.forEach(observe);

    const caps = await tableCaps(gateway);
    const tableNames = Object.keys(caps) as TableName[];
    const maxTables = { ...(await sampleTables(gateway)) } as Record<TableName, number>;
    const memory: MemorySample[] = [sampleMemory(0)];
    const start = memory[0]!;
    progress(
      `cxmpp bench soak: ${config.nodes} nodes through ${config.loss * 100}% loss each way, flood ${config.floodRate}/s, ${config.durationS} s; heap after GC ${mib(start.heap)} MiB, RSS ${mib(start.rss)} MiB`,
    );

    const every = (f: () => void, ms: number) => {
      const t = setInterval(f, ms);
      intervals.push(t);
      return t;
    };

    // The load.
    let stopping = false;
    let sent = 0;
    let sendFailures = 0;
    let toSink = 0;
    let toNodes = 0;
    let large = 0;
    const sendReliable = (n: SoakNode) => {
      const r = n.random();
      const local = config.nodes > 1 && r < P_LOCAL / (1 - P_TELEMETRY);
      let dest = "x";
      let to = SINK;
      if (local) {
        const j = (n.index + 1 + Math.floor(n.random() * (config.nodes - 1))) % config.nodes;
        dest = String(j);
        to = `${identityOf(j)}@${domain}`;
        toNodes++;
      } else toSink++;
      const s = stream(n.index, dest);
      const k = ++s.issued;
      let body = `r:${n.index}:${dest}:${k}`;
      if (!local && n.random() < P_LARGE) {
        body += `:${randomText(n.random, 3_000)}`;
        large++;
      }
      n.outstanding++;
      sent++;
      n.client.send(message(to, body)).then(
        () => {
          n.outstanding--;
          n.acked++;
          if (k > s.highestAcked) s.highestAcked = k;
        },
        (error: unknown) => {
          n.outstanding--;
          s.notSent.add(k);
          if (!(error instanceof SessionError && error.kind === "closed")) sendFailures++;
        },
      );
    };
    const sendTelemetry = (n: SoakNode) => {
      const k = ++n.telemetryNext;
      telemetry[n.index]!.sent++;
      try {
        n.client.sendTelemetry(message(SINK, `t:${n.index}:${k}`));
      } catch {
        telemetry[n.index]!.sent--;
      }
    };
    const tick = (n: SoakNode) => {
      if (stopping) return;
      if (n.random() < P_TELEMETRY) sendTelemetry(n);
      else if (n.outstanding < MAX_OUTSTANDING) sendReliable(n);
      n.timer = setTimeout(() => tick(n), config.intervalMs * (0.5 + n.random()));
    };
    const poll = (n: SoakNode) => {
      if (n.polling) return;
      n.polling = true;
      n.client
        .poll()
        .catch(() => {})
        .finally(() => {
          n.polling = false;
        });
    };
    const pollTimer = every(() => {
      for (const n of nodes) {
        poll(n);
        observe(n);
      }
    }, POLL_MS);
    for (const n of nodes) n.timer = setTimeout(() => tick(n), n.random() * config.intervalMs);

    // The flood.
    const h = hostile(config.seed * 31 + 7);
    const [gwHost, gwPort] = [gateway.address.split(":")[0]!, Number(gateway.address.split(":")[1])];
    pool = new FloodPool({ host: gwHost, port: gwPort }, h.random);
    const floodSent = Object.fromEntries(FLOOD_KINDS.map((k) => [k, 0])) as Record<FloodKind, number>;
    const weightSum = FLOOD_KINDS.reduce((s, k) => s + FLOOD_WEIGHTS[k], 0);
    const pickKind = (): FloodKind => {
      let x = h.random() * weightSum;
      for (const k of FLOOD_KINDS) {
        x -= FLOOD_WEIGHTS[k];
        if (x < 0) return k;
      }
      return "random_bytes";
    };
    const floodContext: FloodContext = { h, pool, nodes, capture, relay: relayAddress, identities };
    let budget = 0;
    let rotateBudget = 0;
    let lastFlood = performance.now();
    const floodTimer = every(() => {
      const now = performance.now();
      const dt = Math.min(0.2, (now - lastFlood) / 1000);
      lastFlood = now;
      budget += config.floodRate * dt;
      rotateBudget += FLOOD_ROTATE_PER_S * dt;
      while (budget >= 1) {
        budget--;
        const kind = pickKind();
        if (floodOne(kind, floodContext)) floodSent[kind]++;
      }
      const r = Math.floor(rotateBudget);
      rotateBudget -= r;
      pool?.rotate(r);
    }, 20);

    // Sampling.
    let tableSampling = false;
    const tableTimer = every(() => {
      if (tableSampling) return;
      tableSampling = true;
      sampleTables(gateway)
        .then((t) => {
          for (const name of tableNames) maxTables[name] = Math.max(maxTables[name], t[name]);
        })
        .catch(() => {})
        .finally(() => {
          tableSampling = false;
        });
    }, TABLE_SAMPLE_MS);
    const memoryEveryS = Math.min(5, Math.max(1, config.durationS / 8));
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    let nextProgress = 30;
    const memoryTimer = every(() => {
      const s = sampleMemory(elapsed());
      memory.push(s);
      if (s.t >= nextProgress) {
        nextProgress += 30;
        const acked = nodes.reduce((a, n) => a + n.acked, 0);
        progress(
          `  ${Math.round(s.t)} s: ${fmt(acked)} acknowledged, flood ${fmt(FLOOD_KINDS.reduce((a, k) => a + floodSent[k], 0))} datagrams; heap ${mib(s.heap)} MiB, RSS ${mib(s.rss)} MiB; dedup ${fmt(maxTables.dedup)}, observers ${fmt(maxTables.observers)}`,
        );
      }
    }, memoryEveryS * 1000);

    await sleep(config.durationS * 1000);
    const loadS = elapsed();

    // Drain: no new stanzas, no flood; every outstanding stanza acknowledged, every mailbox emptied.
    stopping = true;
    clearInterval(floodTimer);
    clearInterval(memoryTimer);
    const floodTotal = FLOOD_KINDS.reduce((a, k) => a + floodSent[k], 0);
    await pool.close();
    const d0 = performance.now();
    const drained = () =>
      nodes.every(
        (n) =>
          n.outstanding === 0 &&
          n.client.unacknowledged === 0 &&
          (gateway.service.session(n.identity)?.mailbox.length ?? 0) === 0,
      );
    while (!drained() && performance.now() - d0 < DRAIN_MS) {
      for (const n of nodes) poll(n);
      await sleep(100);
    }
    await sleep(200); // the last acknowledgements' effects
    const drainS = (performance.now() - d0) / 1000;
    clearInterval(pollTimer);
    clearInterval(tableTimer);
    for (const n of nodes) clearTimeout(n.timer);

    const finalTables = await sampleTables(gateway);
    for (const name of tableNames) maxTables[name] = Math.max(maxTables[name], finalTables[name]);
    const end = sampleMemory(elapsed());
    memory.push(end);
    const unacknowledgedAtEnd = nodes.reduce((a, n) => a + n.outstanding, 0);

    // Figures.
    let acknowledged = 0;
    let delivered = 0;
    let deliveredUnacked = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let lost = 0;
    for (const s of streams.values()) {
      delivered += s.delivered;
      duplicates += s.duplicates;
      outOfOrder += s.outOfOrder;
      lost += lostIn(s);
      for (let k = s.highestAcked + 1; k <= s.maxSeen; k++) if (!s.missing.has(k)) deliveredUnacked++;
    }
    for (const n of nodes) acknowledged += n.acked;
    const tel = telemetry.reduce(
      (a, t) => ({
        sent: a.sent + t.sent,
        delivered: a.delivered + t.delivered,
        duplicates: a.duplicates + t.duplicates,
        stale: a.stale + t.stale,
      }),
      { sent: 0, delivered: 0, duplicates: 0, stale: 0 },
    );
    const stats = gateway.service.stats;
    const coap = await metricValues(gateway, "cxmpp_coap_evictions_total");
    const replaced = (
      await gateway.metrics!.registry.getSingleMetric("cxmpp_coap_observers_replaced_total")?.get()
    )?.values[0]?.value;
    const cut = (
      await gateway.metrics!.registry.getSingleMetric("cxmpp_coap_error_payloads_cut_total")?.get()
    )?.values[0]?.value;
    const heapMax = Math.max(...memory.map((m) => m.heap));
    const rssMax = Math.max(...memory.map((m) => m.rss));
    const half = memory.reduce((best, m) =>
      Math.abs(m.t - loadS / 2) < Math.abs(best.t - loadS / 2) ? m : best,
    );
    const lateGrowth = config.durationS >= LATE_CHECK_MIN_S ? end.heap - half.heap : null;
    const minPerNode = Math.min(...nodes.map((n) => n.acked));
    const errorsLogged = Object.fromEntries(errorLogs.counts);

    const checks: SoakCheck[] = [];
    const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
    check("no acknowledged stanza lost", lost === 0, `${lost} lost of ${fmt(acknowledged)} acknowledged`);
    check("no stanza twice", duplicates === 0, `${duplicates} duplicates`);
    check("in order", outOfOrder === 0, `${outOfOrder} out of order`);
    check("no telemetry reading twice", tel.duplicates === 0, `${tel.duplicates} duplicate readings`);
    check(
      "drained",
      unacknowledgedAtEnd === 0 && drained(),
      `${unacknowledgedAtEnd} stanzas unacknowledged after the drain (${round(drainS, 1)} s)`,
    );
    check("every node made progress", minPerNode > 0, `fewest acknowledged to one node: ${minPerNode}`);
    check("no send failed", sendFailures === 0, `${sendFailures} sends failed`);
    const over = tableNames.filter((t) => maxTables[t] > caps[t]);
    check(
      "tables within their caps",
      over.length === 0,
      over.length === 0 ? "every table at or under its cap" : `over the cap: ${over.join(", ")}`,
    );
    check("no crash", uncaught.length === 0, `${uncaught.length} uncaught exceptions`);
    // Not part of the verdict (delivery and memory), but reported: a handler that throws on hostile
    // input (5.00, and one error log line per datagram) is a bug of its own.
    const findings: string[] = [];
    for (const [line, n] of errorLogs.counts) findings.push(`gateway log ×${fmt(n)}: ${line}`);
    const internalErrors = pool.answers.get("5.00") ?? 0;
    if (internalErrors > 0)
      findings.push(`${fmt(internalErrors)} flood datagrams answered 5.00 Internal Server Error`);
    check(
      "heap within bound",
      end.heap - start.heap < config.heapBoundMiB * MiB,
      `heap after GC grew ${mib(end.heap - start.heap)} MiB (bound ${config.heapBoundMiB} MiB)`,
    );
    if (lateGrowth !== null)
      check(
        "heap steady in the second half",
        lateGrowth < LATE_GROWTH_MiB * MiB,
        `heap after GC grew ${mib(lateGrowth)} MiB from half time to the end (bound ${LATE_GROWTH_MiB} MiB)`,
      );
    const failed = checks.filter((c) => !c.ok);
    const verdict =
      failed.length === 0
        ? "every acknowledged stanza arrived exactly once, in order; memory within bounds"
        : `FAILED: ${failed.map((c) => `${c.name} (${c.detail})`).join("; ")}`;

    return {
      duration_s: config.durationS,
      nodes: config.nodes,
      loss: config.loss,
      seed: config.seed,
      flood_rate: config.floodRate,
      interval_ms: config.intervalMs,
      elapsed_s: round(loadS, 1),
      drain_s: round(drainS, 1),
      stanzas: {
        sent,
        acknowledged,
        delivered,
        delivered_unacknowledged: deliveredUnacked,
        duplicates,
        out_of_order: outOfOrder,
        lost,
        unacknowledged_at_end: unacknowledgedAtEnd,
        send_failures: sendFailures,
        bounced,
        to_sink: toSink,
        to_nodes: toNodes,
        large,
        acknowledged_per_s: Math.round(acknowledged / loadS),
        min_per_node: minPerNode,
      },
      telemetry: { ...tel, replays_refused: stats.replayedTelemetry },
      flood: {
        sent: floodSent,
        total: floodTotal,
        per_s: Math.round(floodTotal / loadS),
        source_ports: pool.ports,
        answers: Object.fromEntries([...pool.answers.entries()].sort()),
      },
      gateway: {
        connects: stats.connects,
        refused_connects: stats.refusedConnects,
        bad_acks: stats.badAcks,
        replayed_telemetry: stats.replayedTelemetry,
        gaps: stats.gaps,
        bad_frames: stats.badFrames,
        duplicate_frames: stats.duplicateFrames,
        stanzas_in: stats.stanzasIn,
        telemetry_in: stats.telemetryIn,
        sessions: gateway.service.sessions.length,
        evictions: Object.fromEntries(coap),
        observers_replaced: replaced ?? 0,
        error_payloads_cut: cut ?? 0,
        log_lines: errorsLogged,
      },
      tables: Object.fromEntries(
        tableNames.map((t) => [t, { max: maxTables[t], final: finalTables[t], cap: caps[t] }]),
      ) as SoakResult["tables"],
      memory: {
        heap_start_mib: mib(start.heap),
        heap_max_mib: mib(heapMax),
        heap_end_mib: mib(end.heap),
        heap_growth_mib: mib(end.heap - start.heap),
        heap_bound_mib: config.heapBoundMiB,
        heap_late_growth_mib: lateGrowth === null ? null : mib(lateGrowth),
        rss_start_mib: mib(start.rss),
        rss_max_mib: mib(rssMax),
        rss_end_mib: mib(end.rss),
        rss_late_growth_mib: mib(end.rss - half.rss),
        samples: memory.map((m) => ({ t: m.t, heap_mib: mib(m.heap), rss_mib: mib(m.rss) })),
      },
      relay: structuredClone(relay.stats),
      uncaught,
      findings: [...findings, ...(foreign > 0 ? [`${foreign} stanzas of unknown origin arrived`] : [])],
      checks,
      ok: failed.length === 0,
      verdict,
    };
  } finally {
    for (const t of intervals) clearInterval(t);
    for (const n of nodes) {
      clearTimeout(n.timer);
      n.client.close();
      n.endpoint.close();
      n.tap.close();
    }
    await pool?.close();
    await relay?.close();
    await gw?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    errorLogs.restore();
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
  }
}

// ---------------------------------------------------------------------------------------------------
// Output.

/** About a dozen samples, evenly spread, first and last included. */
function timeline(samples: SoakResult["memory"]["samples"]): string {
  const step = Math.max(1, Math.ceil((samples.length - 1) / 12));
  const picked = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  return picked.map((x) => `${Math.round(x.t)}: ${x.heap_mib} / ${Math.round(x.rss_mib)}`).join(", ");
}

export function formatSoak(r: SoakResult): string {
  const s = r.stanzas;
  const t = r.telemetry;
  const m = r.memory;
  const lines = [
    `cxmpp bench soak: ${r.nodes} nodes through ${r.loss * 100}% loss each way (seed ${r.seed}), flood ${r.flood_rate} datagrams/s, ${r.elapsed_s} s of load + ${r.drain_s} s drain`,
    "",
    "Reliable stanzas (exactly once, in order, per sender and destination)",
    `  sent ${fmt(s.sent)}  acknowledged ${fmt(s.acknowledged)}  delivered ${fmt(s.delivered)}  duplicates ${s.duplicates}  out of order ${s.out_of_order}  lost ${s.lost}`,
    `  to the outbox ${fmt(s.to_sink)}, to other nodes ${fmt(s.to_nodes)}, block-wise (3 KB) ${s.large}; ${fmt(s.acknowledged_per_s)} acknowledged/s, fewest to one node ${fmt(s.min_per_node)}`,
    `  unacknowledged after the drain ${s.unacknowledged_at_end}, failed sends ${s.send_failures}, bounced ${s.bounced}, delivered before their acknowledgement ${s.delivered_unacknowledged}`,
    "",
    "Telemetry (NON, at most once)",
    `  sent ${fmt(t.sent)}  delivered ${fmt(t.delivered)}  duplicates ${t.duplicates}  replays refused by the gateway ${fmt(t.replays_refused)}`,
    "",
    `Flood: ${fmt(r.flood.total)} datagrams (${fmt(r.flood.per_s)}/s) from ${fmt(r.flood.source_ports)} source ports`,
    table(
      ["kind", "sent"],
      FLOOD_KINDS.map((k) => [k, fmt(r.flood.sent[k])]),
    ),
    `  answers to the attacker: ${Object.entries(r.flood.answers)
      .map(([code, n]) => `${code} ×${fmt(n)}`)
      .join(", ")}`,
    `  gateway: connects ${r.gateway.connects}, refused ${fmt(r.gateway.refused_connects)}, bad acks refused ${fmt(r.gateway.bad_acks)}, telemetry replays ${fmt(r.gateway.replayed_telemetry)}, gaps ${fmt(r.gateway.gaps)}, bad frames ${r.gateway.bad_frames}, duplicate frames ${fmt(r.gateway.duplicate_frames)}`,
    "",
    "Tables (max during the run / at the end / cap)",
    table(
      ["table", "max", "final", "cap", "evicted"],
      (Object.keys(r.tables) as TableName[]).map((name) => {
        const x = r.tables[name];
        const evicted =
          name === "dedup" || name === "observers"
            ? r.gateway.evictions[name]
            : name === "block1_assemblies"
              ? r.gateway.evictions.block1_assemblies
              : name === "block2_representations"
                ? r.gateway.evictions.block2_representations
                : undefined;
        return [name, fmt(x.max), fmt(x.final), fmt(x.cap), evicted === undefined ? "" : fmt(evicted)];
      }),
    ),
    `  observers replaced ${fmt(r.gateway.observers_replaced)}, error payloads cut ${fmt(r.gateway.error_payloads_cut)}`,
    "",
    "Memory (whole process: gateway, nodes, relay, flood)",
    `  heap + ArrayBuffers after GC: start ${m.heap_start_mib} MiB, max ${m.heap_max_mib}, end ${m.heap_end_mib} (grew ${m.heap_growth_mib}, bound ${m.heap_bound_mib})${m.heap_late_growth_mib === null ? "" : `; half time → end ${m.heap_late_growth_mib} MiB`}`,
    `  RSS: start ${m.rss_start_mib} MiB, max ${m.rss_max_mib}, end ${m.rss_end_mib}; half time → end ${m.rss_late_growth_mib} MiB`,
    `  over time (s: heap / RSS MiB): ${timeline(m.samples)}`,
    `  relay: up ${fmt(r.relay.up.received)} in, ${fmt(r.relay.up.dropped)} dropped; down ${fmt(r.relay.down.received)} in, ${fmt(r.relay.down.dropped)} dropped`,
  ];
  if (r.uncaught.length > 0) lines.push("", "Uncaught:", ...r.uncaught.map((u) => `  ${u}`));
  if (r.findings.length > 0)
    lines.push("", "Findings (not part of the verdict):", ...r.findings.map((f) => `  ${f}`));
  const failed = r.checks.filter((c) => !c.ok);
  if (failed.length > 0) lines.push("", "Failed checks:", ...failed.map((c) => `  ${c.name}: ${c.detail}`));
  lines.push("", r.verdict, "");
  return lines.join("\n");
}

function parse(opts: SoakBenchOptions): SoakConfig {
  const loss =
    opts.loss === undefined ? 0.2 : Number(typeof opts.loss === "string" ? opts.loss.trim() : opts.loss);
  if (!Number.isFinite(loss) || loss < 0 || loss >= 1)
    throw new UsageError(`--loss must be a probability in [0, 1), not '${opts.loss}'`);
  return {
    durationS: integer("duration", opts.duration, 60, 5, 86_400),
    nodes: integer("nodes", opts.nodes, 20, 1, 200),
    loss,
    seed: integer("seed", opts.seed, 1, 0, 2 ** 31 - 1),
    floodRate: integer("flood-rate", opts.floodRate, 300, 0, 5_000),
    intervalMs: integer("interval", opts.interval, 100, 5, 60_000),
    heapBoundMiB: integer("heap-bound", opts.heapBound, 64, 1, 4_096),
  };
}

/** Entry point of `cxmpp bench soak`; returns the exit code and never throws. */
export function runSoakBench(opts: SoakBenchOptions): Promise<number> {
  return runBenchCommand(
    "soak",
    () => parse(opts),
    async (config) => {
      const result = await runSoak(config, (line) => {
        if (!opts.json) process.stderr.write(`${line}\n`);
      });
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatSoak(result));
      return result.ok ? 0 : 1;
    },
  );
}
