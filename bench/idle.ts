/**
 * The idle side of `cxmpp bench session --idle N` (issue 13 items 4 and 6): N simulated nodes connect
 * to the gateway over real UDP through its real connect path (POST /c, the 4.01 Echo challenge, the
 * HMAC proof of the device key, 2.01 with the session) and then say nothing, as sleeping nodes do.
 *
 * How it stays within the machine's limits:
 * - Each node has its own peer address, because the gateway knows a session by where it connected
 *   from: node i binds a socket to its own loopback address 127.(1 + i / 65536).(i / 256 % 256).(i % 256)
 *   (all of 127.0.0.0/8 is local on Linux; 127.0.0.1, which other programs use, is never one of them),
 *   so a million nodes need no relay and no more than `window` file descriptors at a time: a node's
 *   socket is closed once it is connected (an idle node sends nothing more, and the gateway sends an
 *   idle session nothing), and its address is never reused for another node.
 * - The node is a lean client (CoAP messages built with src/core's serializer, its proof with the
 *   same HMAC as NodeClient) rather than a NodeClient with its own CoapEndpoint each: a million of
 *   those would not fit in the load processes, and only the gateway's side is being measured.
 * - `window` connects are in flight per load process; a request unanswered for RETRY_MS is sent again
 *   (same message id, as CoAP retransmits), at most MAX_TRIES times; loopback drops datagrams when a
 *   socket's buffer overflows, which is what retransmission is for.
 */
import { createSocket, type Socket } from "node:dgram";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DICTIONARY_V1 } from "../codec/index.js";
import {
  Code,
  connectOptions,
  findOption,
  MessageType,
  OptionNumber,
  type PeerAddress,
  parseMessage,
  protocol,
  serializeMessage,
} from "../src/core/index.js";
import { nodeMac } from "../src/node/index.js";
import { HmacSha256Key } from "../src/node/mac.js";
import { type BenchChild, type ChildRequest, forkBench } from "./child-process.js";

/** The HMAC key of each seed's device keys, its padded blocks compressed once. */
const seedKeys = new Map<number, HmacSha256Key>();

/**
 * A device's key, derived from its index and the run's seed (the gateway child derives the same):
 * HMAC-SHA-256 under `cxmpp-bench-SEED` of the index in decimal, its first 16 bytes.
 */
export function benchDeviceKey(i: number, seed: number): Uint8Array {
  let signer = seedKeys.get(seed);
  if (!signer) {
    signer = new HmacSha256Key(new TextEncoder().encode(`cxmpp-bench-${seed}`));
    seedKeys.set(seed, signer);
  }
  const index = String(i);
  const data = new Uint8Array(index.length);
  for (let k = 0; k < index.length; k++) data[k] = index.charCodeAt(k);
  return signer.sign(data, new Uint8Array(16));
}

export const benchIdentity = (i: number): string => `node${i}`;

/** Node i's own loopback address (see the file comment); i < 126 × 65,536. */
export function idleAddress(i: number): string {
  return `127.${1 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}`;
}

/** The most idle nodes a run can address (127.1.0.0 … 127.126.255.255). */
export const MAX_IDLE = 126 * 65_536;

const RETRY_MS = 1_000;
const MAX_TRIES = 5;

/** The nodes one load process connects, `from` to `to` (exclusive). */
export interface IdleSlice {
  readonly from: number;
  readonly to: number;
  readonly seed: number;
  /** What the nodes say they sleep (connect `wake`, seconds; 0: always on). */
  readonly wake: number;
  readonly gateway: PeerAddress;
  /** Connects in flight at a time. */
  readonly window: number;
}

export interface IdleReport {
  readonly connected: number;
  readonly failed: number;
  readonly retransmissions: number;
  /** From the first request to the last 2.01 (or failure). */
  readonly wallMs: number;
  /** This process's CPU meanwhile (user + system); summed over the load processes. */
  readonly cpuUs: number;
  /** Each load process's CPU over its wall time: near 1, the load side bounds the rate. */
  readonly busy: readonly number[];
}

interface Pending {
  readonly i: number;
  readonly socket: Socket;
  /** The request in flight, for retransmission. */
  request: Uint8Array;
  messageId: number;
  sentAt: number;
  tries: number;
}

/**
 * Every address here is an IP literal: answered at once. node:dgram's default, dns.lookup, answers an
 * IP literal on the next tick, with its bookkeeping, for each bind and each send.
 */
function literal(address: string, _family: unknown, callback: (e: null, a: string, f: number) => void): void {
  callback(null, address, 4);
}

/**
 * The two connect requests as CoAP bytes, built from one template each (the options never change):
 * header, a one-byte token (the message id's low byte), Uri-Path "c", Content-Format, [Echo], payload.
 * The node's work per connect is then its proof and two copies, not two option lists serialised.
 */
/** A connect request as src/core serializes it: what RequestTemplate's bytes must equal. */
export function connectRequest(mid: number, payload: Uint8Array, echo?: Uint8Array): Uint8Array {
  return serializeMessage({
    type: MessageType.CON,
    code: Code.POST,
    messageId: mid,
    token: Uint8Array.of(mid & 0xff),
    options: connectOptions(echo),
    payload,
  });
}

export class RequestTemplate {
  private readonly head: Uint8Array;
  private readonly headEcho: Uint8Array;

  constructor() {
    const options = connectOptions();
    const bare = { type: MessageType.CON, code: Code.POST, messageId: 0, token: Uint8Array.of(0) };
    const empty = new Uint8Array(0);
    this.head = serializeMessage({ ...bare, options, payload: empty });
    const echo = new Uint8Array(protocol.NONCE_BYTES);
    this.headEcho = serializeMessage({
      ...bare,
      options: [...options, { number: OptionNumber.ECHO, value: echo }],
      payload: empty,
    });
  }

  /** The request with message id `mid`, the Echo option's value `echo` (a nonce, or none) and `payload`. */
  build(mid: number, payload: Uint8Array, echo?: Uint8Array): Uint8Array {
    const head = echo ? this.headEcho : this.head;
    if (echo && echo.length !== protocol.NONCE_BYTES) return connectRequest(mid, payload, echo);
    const out = new Uint8Array(head.length + 1 + payload.length);
    out.set(head);
    if (echo) out.set(echo, head.length - echo.length);
    out[2] = mid >>> 8;
    out[3] = mid & 0xff;
    out[4] = mid & 0xff; // the token
    out[head.length] = 0xff; // payload marker
    out.set(payload, head.length + 1);
    return out;
  }
}

/** Connects the slice's nodes, `window` at a time; resolves when every one connected or gave up. */
export function connectIdle(slice: IdleSlice): Promise<IdleReport> {
  const [host, portText] = splitPeer(slice.gateway);
  const port = Number(portText);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = slice.from;
  let connected = 0;
  let failed = 0;
  let retransmissions = 0;
  let mid = (slice.from * 7) & 0xffff;
  const inFlight = new Set<Pending>();
  const template = new RequestTemplate();
  return new Promise((done) => {
    const finishIfDone = () => {
      if (inFlight.size > 0 || next < slice.to) return;
      clearInterval(retry);
      const cpu = process.cpuUsage(cpu0);
      const wallMs = performance.now() - t0;
      const cpuUs = cpu.user + cpu.system;
      done({ connected, failed, retransmissions, wallMs, cpuUs, busy: [cpuUs / 1000 / wallMs] });
    };
    const end = (p: Pending, ok: boolean) => {
      if (!inFlight.delete(p)) return;
      if (ok) connected++;
      else failed++;
      p.socket.close();
      startNext();
      finishIfDone();
    };
    const send = (p: Pending, payload: Uint8Array, echo?: Uint8Array) => {
      p.messageId = mid = (mid + 1) & 0xffff;
      p.request = template.build(p.messageId, payload, echo);
      p.tries = 1;
      p.sentAt = performance.now();
      p.socket.send(p.request, port, host);
    };
    const startNext = () => {
      if (next >= slice.to) return;
      const i = next++;
      const socket = createSocket({ type: "udp4", lookup: literal });
      const p: Pending = { i, socket, request: new Uint8Array(0), messageId: 0, sentAt: 0, tries: 0 };
      inFlight.add(p);
      const c = {
        identity: benchIdentity(i),
        dictionary: DICTIONARY_V1.id,
        ...(slice.wake > 0 ? { wake: slice.wake } : {}),
      };
      socket.on("error", () => end(p, false));
      socket.on("message", (data) => {
        let m: ReturnType<typeof parseMessage>;
        try {
          m = parseMessage(data);
        } catch {
          return;
        }
        if (m.messageId !== p.messageId || m.type !== MessageType.ACK) return;
        if (m.code === Code.CREATED) return end(p, true);
        const echo = findOption(m, OptionNumber.ECHO)?.value;
        if (m.code !== Code.UNAUTHORIZED || !echo) return end(p, false);
        const proof = nodeMac
          .hmacSha256(benchDeviceKey(i, slice.seed), protocol.proofInput(echo, c))
          .subarray(0, protocol.PROOF_BYTES);
        send(p, protocol.encodeConnectRequest({ ...c, proof }), echo);
      });
      socket.bind({ address: idleAddress(i), port: 0 }, () => send(p, protocol.encodeConnectRequest(c)));
    };
    // One timer for every retransmission (not one per request): at most `window` are looked at.
    const retry = setInterval(() => {
      const now = performance.now();
      for (const p of inFlight) {
        if (p.tries === 0 || now - p.sentAt < RETRY_MS * 2 ** (p.tries - 1)) continue;
        if (p.tries >= MAX_TRIES) {
          end(p, false);
          continue;
        }
        p.tries++;
        retransmissions++;
        p.socket.send(p.request, port, host);
      }
    }, 100);
    for (let k = 0; k < slice.window; k++) startNext();
    finishIfDone();
  });
}

function splitPeer(peer: PeerAddress): [string, string] {
  const at = peer.lastIndexOf(":");
  return [peer.slice(0, at), peer.slice(at + 1)];
}

// ---------------------------------------------------------------------------------------------------
// Several load processes: the slices spread over children forked from this file.

const HERE = fileURLToPath(import.meta.url);
const CHILD_FLAG = "--cxmpp-bench-idle-child";

/**
 * Connects nodes `from` … `to` − 1 spread over `processes` load processes (forked from this file; in
 * this process when 1), and sums what they report; wall time is the slowest one's.
 */
export async function connectIdleSpread(
  base: Omit<IdleSlice, "from" | "to">,
  from: number,
  to: number,
  processes: number,
): Promise<IdleReport> {
  const n = to - from;
  if (n <= 0) return { connected: 0, failed: 0, retransmissions: 0, wallMs: 0, cpuUs: 0, busy: [] };
  const k = Math.max(1, Math.min(processes, Math.ceil(n / 1_000)));
  if (k === 1) return connectIdle({ ...base, from, to });
  const children: BenchChild[] = [];
  try {
    for (let j = 0; j < k; j++) {
      const slice: IdleSlice = {
        ...base,
        from: from + Math.floor((j * n) / k),
        to: from + Math.floor(((j + 1) * n) / k),
      };
      children.push(forkBench(HERE, [CHILD_FLAG, JSON.stringify(slice)], "idle load"));
    }
    const reports = await Promise.all(children.map(async (c) => (await c.first).report as IdleReport));
    return {
      connected: reports.reduce((s, r) => s + r.connected, 0),
      failed: reports.reduce((s, r) => s + r.failed, 0),
      retransmissions: reports.reduce((s, r) => s + r.retransmissions, 0),
      wallMs: Math.max(...reports.map((r) => r.wallMs)),
      cpuUs: reports.reduce((s, r) => s + r.cpuUs, 0),
      busy: reports.flatMap((r) => r.busy),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

if (process.send !== undefined && process.argv[2] === CHILD_FLAG && resolve(process.argv[1] ?? "") === HERE) {
  const slice = JSON.parse(process.argv[3] ?? "{}") as IdleSlice;
  process.on("disconnect", () => process.exit(0));
  process.on("message", (_m: ChildRequest) => {});
  connectIdle(slice).then(
    (report) => process.send?.({ id: 0, report }),
    (error: unknown) => {
      process.stderr.write(`cxmpp bench session (idle load): ${String(error)}\n`);
      process.exit(1);
    },
  );
}
