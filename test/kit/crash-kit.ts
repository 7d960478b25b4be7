/**
 * The crash scenario (docs/PROTOCOL.md §4.1, "acked means stored") for test/gateway/crash.test.ts and
 * crash-dtls.test.ts: `cxmpp gateway` runs as a child process under load from real nodes and is killed
 * with SIGKILL at random moments (seeded), then started again on the same ports and data directory.
 * Whatever the gateway acknowledged must survive exactly once and in order — in the sink node's mailbox
 * and in the outbox for another domain. How the devices are provisioned, the gateway started and a
 * node made (plain CoAP or DTLS) is the test's; the load, the kills and the checks are here.
 */
import { expect } from "vitest";
import { el, type XElement } from "../../codec/index.js";
import { nodeFromDevice } from "../../gateway/cli/node-command.js";
import { openStore } from "../../gateway/store/index.js";
import { NodeClient, type PeerAddress } from "../../src/core/index.js";
import type { DtlsClient } from "../../src/dtls/index.js";
import { createUdpEndpoint, nodeMac } from "../../src/node/index.js";
import type { GatewayProcess } from "./gateway-process.js";
import { seededRandom } from "./seeded-random.js";
import { key } from "./session-harness.js";
import { bodyOf } from "./stanzas.js";
import { sleep, until } from "./wait.js";

export const DOMAIN = "iot.localhost";
export const SINK = `sink@${DOMAIN}`;
const REMOTE = "alice@a.localhost";
export const SENDERS = 3;
/** The device names: the sink, then the senders s0 … */
export const IDENTITIES: readonly string[] = ["sink", ...Array.from({ length: SENDERS }, (_, k) => `s${k}`)];
/**
 * Messages per sender, at least (more while the kills go on, so every kill lands under load), with
 * bodies "s<k>-<i>", alternating: even i to the sink, odd i to the remote JID.
 */
const N = 150;
/** Unacknowledged sends a sender allows itself before it waits. */
const WINDOW = 10;
/** Pause between two sends of one sender. */
const PACE_MS = 50;
const KILLS = 6;
export const SEED = Number(process.env.CXMPP_CRASH_SEED ?? 0xc0ffee);

const msg = (to: string, body: string): XElement =>
  el("jabber:client", "message", { to, type: "chat" }, el("jabber:client", "body", {}, body));

/** What a test gives the scenario. */
/** The test key of each device of IDENTITIES. */
export const keyOf = (identity: string): Uint8Array =>
  key(identity === "sink" ? 100 : Number(identity.slice(1)) + 1);

/** CrashSetup.node over plain CoAP: a NodeClient on its own UDP endpoint, fast retransmission. */
export async function plainCrashNode(
  identity: string,
  gateway: GatewayProcess,
): Promise<{ client: NodeClient; close(): unknown }> {
  const udp = await createUdpEndpoint({ host: "127.0.0.1", transmission: { ackTimeoutMs: 100 } });
  const client = new NodeClient({
    endpoint: udp.endpoint,
    gateway: gateway.address as PeerAddress,
    identity,
    key: keyOf(identity),
    mac: nodeMac,
    retryDelayMs: 100,
  });
  return { client, close: () => udp.close() };
}

/**
 * CrashSetup.node over DTLS: the node as `cxmpp node` makes it from its device file (which says coaps),
 * its DtlsClient kept in `dtls` for the handshake counts.
 */
export function dtlsCrashNode(
  deviceFile: (identity: string) => string,
  dtls: Map<string, DtlsClient>,
): (identity: string) => Promise<{ client: NodeClient; close(): unknown }> {
  return async (identity) => {
    const node = await nodeFromDevice(deviceFile(identity), { udp: { transmission: { ackTimeoutMs: 100 } } });
    const client = (node.udp as { dtls?: DtlsClient }).dtls;
    if (!client) throw new Error(`${identity}: the device file does not say coaps: ${node.device.gateway}`);
    dtls.set(identity, client);
    return { client: node.client, close: () => node.udp.close() };
  };
}

export interface CrashSetup {
  /** The data directory; its devices (IDENTITIES) are registered before the first start. */
  readonly dataDir: string;
  /** Starts `cxmpp gateway` on the data directory, at the same addresses every time. */
  start(): Promise<GatewayProcess>;
  /** A node for a device (not yet connected) and how to close it. */
  node(identity: string, gateway: GatewayProcess): Promise<{ client: NodeClient; close(): unknown }>;
  /** Called last, however the test ends (afterAll). */
  readonly cleanups: Array<() => unknown>;
}

interface CrashNode {
  readonly identity: string;
  readonly client: NodeClient;
  /** Bodies received, in order. */
  readonly inbox: string[];
  /** NodeClient.connect calls after the first (a client-side count of reconnects). */
  reconnects: number;
}

async function crashNode(setup: CrashSetup, identity: string, gateway: GatewayProcess): Promise<CrashNode> {
  const { client, close } = await setup.node(identity, gateway);
  setup.cleanups.push(close, () => client.close());
  const result: CrashNode = { identity, client, inbox: [], reconnects: 0 };
  client.onStanza((s) =>
    result.inbox.push(bodyOf(s) || `<${s.name} type=${s.attrs.find((a) => a.name === "type")?.value ?? ""}>`),
  );
  // Count connects made behind the test's back (the client reconnects on 4.01).
  const connect = client.connect.bind(client);
  let first = true;
  client.connect = () => {
    if (!first) result.reconnects++;
    first = false;
    return connect();
  };
  return result;
}

/** The `i`s of sender `k` among bodies "s<k>-<i>", in the order they appear. */
const indices = (bodies: readonly string[], k: number): number[] =>
  bodies.filter((b) => b.startsWith(`s${k}-`)).map((b) => Number(b.slice(`s${k}-`.length)));
const expected = (count: number, parity: 0 | 1): number[] =>
  Array.from({ length: count }, (_, i) => i).filter((i) => i % 2 === parity);
/** The first place where sender k's `i`s among `bodies` are not parity, parity + 2, …: a duplicate or a gap. */
function firstAnomaly(bodies: readonly string[], k: number, parity: 0 | 1): string | undefined {
  const got = indices(bodies, k);
  const at = got.findIndex((i, n) => i !== parity + 2 * n);
  return at < 0
    ? undefined
    : `s${k}: expected ${parity + 2 * at}, got ${got[at]} (after ${got[at - 1] ?? "none"})`;
}

export interface CrashRun {
  readonly processes: readonly GatewayProcess[];
  /** Every connect any gateway process logged, less the first connect of each node. */
  readonly connectsAfterStart: readonly unknown[];
  readonly report: {
    readonly kills: readonly { at: number; inFlight: number; acked: number; restartMs: number }[];
    readonly sent: readonly number[];
    readonly acknowledged: number;
    readonly clientReconnects: readonly number[];
    readonly [figure: string]: unknown;
  };
}

/**
 * Runs the scenario and checks what must hold over any transport: (1) every send resolved, (2) the sink
 * got every message for it exactly once and in order, (3) so did the outbox, (4) the gateway really was
 * killed mid-load with acknowledgements on both sides of every kill. The test checks the rest (how the
 * nodes resumed) on what this returns; `label` starts the report line.
 */
export async function crashUnderLoad(setup: CrashSetup, label: string): Promise<CrashRun> {
  const t0 = Date.now();
  const random = seededRandom(SEED);
  const processes: GatewayProcess[] = [];
  let gateway = await setup.start();
  processes.push(gateway);
  const startupMs = Date.now() - t0;

  const [sink, ...senders] = await Promise.all(IDENTITIES.map((id) => crashNode(setup, id, gateway)));
  if (!sink) throw new Error("no sink");
  for (const n of [sink, ...senders]) await n.client.connect();
  // The log line may arrive over the pipe after the response over UDP.
  await until(
    () => gateway.log("gateway.connected").length >= SENDERS + 1,
    5_000,
    () => gateway.stderr(),
  );
  expect(gateway.log("gateway.connected")).toHaveLength(SENDERS + 1);

  // Stops the loops below however the test ends.
  let running = true;
  setup.cleanups.push(() => {
    running = false;
  });

  // The sink polls (Observe registrations do not survive a restart, polls do).
  const sinkLoop = (async () => {
    while (running) {
      await sink.client.poll().catch(() => {}); // the gateway is down: try again later
      await sleep(200);
    }
  })();

  // Load: each sender sends, paced, at most WINDOW unacknowledged, until it has sent N and the chaos
  // is over.
  const acks: { k: number; i: number; at: number }[] = [];
  const failures: string[] = [];
  const outstanding = Array.from({ length: SENDERS }, () => 0);
  const inFlight = () => outstanding.reduce((a, b) => a + b, 0);
  const issued = Array.from({ length: SENDERS }, () => 0);
  const total = () => issued.reduce((a, b) => a + b, 0);
  let chaos = true;
  let loading = SENDERS;
  let onIssued: (() => void) | undefined;
  const load = async (k: number) => {
    const sender = senders[k]!;
    for (let i = 0; running && (i < N || chaos); i++) {
      while (running && outstanding[k]! >= WINDOW) await sleep(5);
      outstanding[k]!++;
      sender.client
        .send(msg(i % 2 === 0 ? SINK : REMOTE, `s${k}-${i}`))
        .then(
          () => void acks.push({ k, i, at: Date.now() }),
          (error: unknown) => void failures.push(`s${k}-${i}: ${String(error)}`),
        )
        .finally(() => outstanding[k]!--);
      issued[k]!++;
      onIssued?.();
      await sleep(PACE_MS);
    }
    loading--;
  };
  for (let k = 0; k < SENDERS; k++) void load(k);

  const kills: { at: number; inFlight: number; acked: number; restartMs: number }[] = [];
  /** What the test saw so far, for a failure message. */
  const diagnose = () =>
    JSON.stringify({
      sent: issued,
      acknowledged: issued.map((_, k) => acks.filter((a) => a.k === k).length),
      unacknowledged: outstanding,
      failures: failures.slice(0, 5),
      sinkReceived: sink.inbox.length,
      sinkAnomalies: issued.map((_, k) => firstAnomaly(sink.inbox, k, 0)).filter(Boolean),
      kills: kills.length,
      gatewayWarnings: processes.flatMap((p) => p.log().filter((r) => r.level !== "info")).slice(-10),
    });

  // Chaos: KILLS times, a random 300–1500 ms after the gateway listens (and once it has acknowledged
  // something), wait for a send to be issued, give it 0–3 ms to be on its way (0: the next turn) and
  // kill -9 the gateway if a send is still unacknowledged then (else wait for the next one): the kill
  // lands while requests are in flight.
  const nextSendInFlight = (delay: number) =>
    new Promise<void>((resolve, reject) => {
      const stuck = setTimeout(() => {
        onIssued = undefined;
        reject(new Error(`no send for 10 s, the senders are stuck: ${diagnose()}`));
      }, 10_000);
      const arm = () => {
        onIssued = () => {
          onIssued = undefined;
          const check = () => {
            if (inFlight() === 0) return arm();
            clearTimeout(stuck);
            resolve();
          };
          if (delay === 0) setImmediate(check);
          else setTimeout(check, delay);
        };
      };
      arm();
    });
  for (let round = 0; round < KILLS; round++) {
    const ackedAtStart = acks.length;
    await sleep(300 + Math.floor(random() * 1200));
    // This gateway must have acknowledged something first (a node whose exchange timed out while the
    // gateway was down retries a little later).
    await until(
      () => acks.length > ackedAtStart,
      20_000,
      () => `nothing acknowledged since restart ${round}: ${diagnose()}`,
    );
    await nextSendInFlight(Math.floor(random() * 4));
    const at = Date.now();
    const snapshot = { inFlight: inFlight(), acked: acks.length };
    const exit = await gateway.crash();
    expect(exit.signal).toBe("SIGKILL");
    gateway = await setup.start();
    processes.push(gateway);
    kills.push({ at, ...snapshot, restartMs: Date.now() - at });
  }

  // After the last restart everything finishes: all sends resolve, the sink drains.
  chaos = false;
  await until(
    () => loading === 0 && acks.length + failures.length === total(),
    30_000,
    () => `not every send resolved: ${diagnose()}`,
  );
  const sinkTotal = issued.reduce((sum, n) => sum + Math.ceil(n / 2), 0);
  await until(
    () => sink.inbox.length >= sinkTotal,
    20_000,
    () => `the sink received ${sink.inbox.length} of ${sinkTotal}: ${diagnose()}`,
  );
  await sleep(500); // a duplicate would show up now
  running = false;
  await sinkLoop;

  const final = await gateway.stop();
  const runtimeMs = Date.now() - t0;

  const connectsAfterStart = processes.flatMap((p) => p.log("gateway.connected")).slice(SENDERS + 1);
  const report = {
    seed: SEED,
    kills: kills.map((k) => ({ ...k, at: k.at - t0 })),
    sent: issued,
    acknowledged: acks.length,
    ackedBeforeFirstKill: acks.filter((a) => a.at < kills[0]!.at).length,
    ackedAfterLastKill: acks.filter((a) => a.at > kills[kills.length - 1]!.at).length,
    reconnects: connectsAfterStart.length,
    clientReconnects: [sink, ...senders].map((n) => n.reconnects),
    startupMs,
    runtimeMs,
  };
  console.log(`${label}: ${JSON.stringify(report)}`);

  // (1) Every send resolved.
  expect(failures).toEqual([]);
  expect(acks).toHaveLength(total());
  for (const s of senders) expect(s.inbox).toEqual([]); // no error bounced (mailbox full, unavailable)

  // (2) The sink got every message addressed to it exactly once, in order per sender.
  expect(sink.inbox).toHaveLength(sinkTotal);
  for (let k = 0; k < SENDERS; k++)
    expect(indices(sink.inbox, k), `sink, from s${k}`).toEqual(expected(issued[k]!, 0));

  // (3) After a clean stop, the outbox holds every remote-addressed message exactly once, in order.
  expect(final).toEqual({ code: 0, signal: null });
  const after = openStore(setup.dataDir);
  const outbox = after.journal.outbox(0, 10_000).map((o) => bodyOf(o.stanza));
  expect(after.journal.outboxDepth).toBe(total() - sinkTotal);
  after.close();
  for (let k = 0; k < SENDERS; k++)
    expect(indices(outbox, k), `outbox, from s${k}`).toEqual(expected(issued[k]!, 1));

  // (4) The gateway really was killed mid-load, with acknowledgements on both sides of every kill.
  expect(kills).toHaveLength(KILLS);
  kills.forEach((kill, j) => {
    const previous = kills[j - 1]?.at ?? 0;
    const next = kills[j + 1]?.at ?? Number.POSITIVE_INFINITY;
    expect(kill.inFlight, `kill ${j}: sends in flight`).toBeGreaterThan(0);
    expect(
      acks.filter((a) => a.at >= previous && a.at < kill.at).length,
      `kill ${j}: acked before`,
    ).toBeGreaterThan(0);
    expect(
      acks.filter((a) => a.at > kill.at && a.at < next).length,
      `kill ${j}: acked after`,
    ).toBeGreaterThan(0);
  });
  expect(processes.slice(0, -1).every((p) => p.child.signalCode === "SIGKILL")).toBe(true);
  return { processes, connectsAfterStart, report };
}
