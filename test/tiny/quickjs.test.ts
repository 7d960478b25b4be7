/**
 * The tiny-node bundle on a real embedded engine (issue 11 item 4): dist/tiny/cxmpp-node.mjs, as
 * tools/build-node.ts builds it, evaluated as an ES module inside QuickJS (quickjs-emscripten) with no
 * polyfills, bridged by test/kit/quickjs-host.ts to a real UDP socket, a clock, one timer and random
 * bytes.
 * (a) The codec inside QuickJS reproduces test/vectors byte for byte, in both directions, as
 *     test/codec/vectors.test.ts checks them on Node: every vector in a bundle of codec/index.ts built
 *     with the node bundle's esbuild options, and the session vectors in the node bundle itself.
 * (b) Against a real gateway (in process, DTLS listener on, a DTLS-only device): connect over coaps on
 *     the pure-JS crypto running inside QuickJS, XEP-0323 readings CON and NON, sleep, a downlink stanza
 *     brought by the wake-up's poll; at 30% loss each way (LossyRelay) every CON reading arrives once.
 * (c) The heap budgets (tools/build-node.ts BUDGETS, QuickJS's own accounting) with the runtime's
 *     limit at heapBytes × peakRatio: after connect ≤ heapBytes, peak ≤ peakRatio × steady.
 */
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { attr, el, sameInfoset, type XElement } from "../../codec/index.js";
import { LossyRelay } from "../../examples/lossy-relay.js";
import { encodeDeviceFile } from "../../gateway/data-dir.js";
import { parseXml } from "../../gateway/xml/stanza-xml.js";
import type { PeerAddress } from "../../src/core/index.js";
import { BUDGETS, buildNodeBundle, CRYPTO_ENTRY, DTLS_ENTRY, TARGETS } from "../../tools/build-node.js";
import { inProcessGateway, type TestGateway } from "../kit/in-process-gateway.js";
import { QuickJsEngine, type QuickJsMemory, QuickJsTinyNode } from "../kit/quickjs-host.js";
import { scratch } from "../kit/scratch.js";
import { key } from "../kit/session-harness.js";
import { bodyOf } from "../kit/stanzas.js";
import { readSessionVectors, readStaticVectors } from "../kit/vectors.js";
import { sleep, until } from "../kit/wait.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const DOMAIN = "iot.localhost";
const JID = `tiny1@${DOMAIN}`;
const SINK = "sink@elsewhere.example";
/** The runtime's limit: the heap budget times the allowed peak ratio. */
const LIMIT = BUDGETS.heapBytes * BUDGETS.peakRatio;

const { root, cleanups } = scratch("cxmpp-quickjs-");

let bundle = "";
let dtlsBundle = "";
let cryptoBundle = "";
let codecBundle = "";
beforeAll(async () => {
  bundle = (await buildNodeBundle(join(root, "cxmpp-node.mjs"))).code;
  // Nor DTLS: the pure-JavaScript client, its own bundle, built apart and loaded beside the node.
  dtlsBundle = (await buildNodeBundle(join(root, "cxmpp-dtls.mjs"), DTLS_ENTRY)).code;
  // QuickJS here has no crypto of its own: the node runs on the pure-JavaScript one, loaded beside it.
  cryptoBundle = (await buildNodeBundle(join(root, "cxmpp-crypto.mjs"), CRYPTO_ENTRY)).code;
  // The codec alone (the stateless coder is not in the node), built as the node bundle is.
  codecBundle = (await buildNodeBundle(join(root, "cxmpp-codec.mjs"), join(ROOT, "codec", "index.ts"))).code;
});

/** The seqnr of a XEP-0323 reading as the gateway passed it on. */
function seqnr(s: XElement): number {
  const fields = s.children.find((c): c is XElement => typeof c !== "string" && c.name === "fields");
  return fields ? Number(attr(fields, "seqnr")) : Number.NaN;
}

async function gateway(name: string, outbound: XElement[]): Promise<TestGateway> {
  const gw = await inProcessGateway(join(root, name), { outbound, flags: { dtls_listen: "127.0.0.1:0" } });
  cleanups.push(() => gw.stop());
  gw.store.devices.add({
    identity: "tiny1",
    key: key(1),
    jid: JID,
    peers: [`peer@${DOMAIN}`],
    dtlsOnly: true,
  });
  gw.store.devices.add({ identity: "peer", key: key(2), jid: `peer@${DOMAIN}`, peers: [JID] });
  return gw;
}

function deviceFile(gatewayUri: string): Uint8Array {
  return encodeDeviceFile({
    gateway: gatewayUri,
    identity: "tiny1",
    key_hex: Buffer.from(key(1)).toString("hex"),
    jid: JID,
    dictionary: "",
  });
}

/** Starts the node in QuickJS; a failure (the heap over its limit at load) reports the heap as it was. */
async function startNode(
  gatewayAt: PeerAddress,
  options: { wake?: number; strip?: "none" | "source" | "debug"; memoryLimit?: number } = {},
): Promise<QuickJsTinyNode> {
  const q = await QuickJsTinyNode.start({
    bundle,
    dtls: dtlsBundle,
    crypto: cryptoBundle,
    gateway: gatewayAt,
    deviceFile: deviceFile(`coaps://${gatewayAt}`),
    ackTimeoutMs: 300,
    memoryLimit: LIMIT,
    ...options,
  });
  cleanups.push(() => q.close());
  return q;
}

// ---- (a) test/vectors inside QuickJS ----

const staticFile = readStaticVectors();
const sessionFile = readSessionVectors();

/**
 * The encode/decode calls of test/codec/vectors.test.ts, inside QuickJS: trees go in as JSON (parsed on
 * Node by the gateway's XML parser, which the node does not carry), bytes as hex, decoded trees come out
 * as JSON.
 */
const VECTOR_GLUE = `
(() => {
  const lib = globalThis.lib;
  const hex = (b) => { let s = ""; for (const x of b) s += (x < 16 ? "0" : "") + x.toString(16); return s; };
  const bytes = (h) => { const b = new Uint8Array(h.length / 2); for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(2 * i, 2), 16); return b; };
  globalThis.statelessEncode = (tree) => hex(new lib.StatelessEncoder().encode(JSON.parse(tree)).bytes);
  globalThis.statelessDecode = (h) => JSON.stringify(new lib.StatelessDecoder().decode(bytes(h)).stanza);
  let encoder, decoder;
  globalThis.sessionStart = (aliases, implicitBase, templates) => {
    encoder = new lib.SessionEncoder({ aliases: JSON.parse(aliases), implicitBase, templates });
    decoder = new lib.SessionDecoder({ aliases: JSON.parse(aliases) });
  };
  globalThis.sessionFrame = (tree, h, ack) => {
    const e = encoder.encode(JSON.parse(tree));
    const d = decoder.decode(bytes(h));
    if (ack) encoder.acknowledge(e.inserted);
    return JSON.stringify({ hex: hex(e.bytes), inserted: [...e.inserted], stanza: d.stanza, decodedInserted: [...d.inserted] });
  };
})();
`;

async function vectorEngine(code: string, filename: string): Promise<QuickJsEngine> {
  const engine = await QuickJsEngine.start();
  cleanups.push(() => engine.dispose());
  engine.loadModule("lib", filename, code);
  engine.evaluate(VECTOR_GLUE, "vector-glue.js");
  return engine;
}

function checkSessions(engine: QuickJsEngine): number {
  let frames = 0;
  for (const s of sessionFile.sessions) {
    engine.call("sessionStart", JSON.stringify(s.aliases), s.implicitBase === true, s.templates !== false);
    for (const f of s.frames) {
      const tree = parseXml(f.xml);
      const r = JSON.parse(engine.call("sessionFrame", JSON.stringify(tree), f.hex, f.ack) as string) as {
        hex: string;
        inserted: number[];
        stanza: XElement;
        decodedInserted: number[];
      };
      expect(r.hex, `${s.name}, frame ${frames}`).toBe(f.hex);
      expect(r.inserted).toEqual(f.inserted);
      expect(sameInfoset(r.stanza, tree), `${s.name}: decoded`).toBe(true);
      expect(r.decodedInserted).toEqual(f.inserted);
      frames++;
    }
  }
  return frames;
}

describe("test/vectors inside QuickJS", () => {
  it("a bundle of codec/ reproduces every static and session vector byte for byte, both ways", async () => {
    const engine = await vectorEngine(codecBundle, "cxmpp-codec.mjs");
    expect(engine.call("eval", "lib.DICTIONARY_V1.id")).toBe(staticFile.dictionary);
    expect(sessionFile.dictionary).toBe(staticFile.dictionary);
    expect(staticFile.vectors.length).toBeGreaterThan(20);
    for (const v of staticFile.vectors) {
      const tree = parseXml(v.xml);
      expect(engine.call("statelessEncode", JSON.stringify(tree)), v.name).toBe(v.hex);
      const decoded = JSON.parse(engine.call("statelessDecode", v.hex) as string) as XElement;
      expect(sameInfoset(decoded, tree), `${v.name}: decoded`).toBe(true);
    }
    expect(checkSessions(engine)).toBeGreaterThan(0);
    expect(engine.errors).toEqual([]);
  });

  it("the node bundle's own session codec reproduces the session vectors", async () => {
    const engine = await vectorEngine(bundle, "cxmpp-node.mjs");
    expect(checkSessions(engine)).toBeGreaterThan(0);
    expect(engine.errors).toEqual([]);
  });
});

// ---- (b) and (c): the node in QuickJS against a real gateway ----

interface Figures {
  empty: number;
  load: number;
  loadPeak: number;
  steady: number;
  steadyBeforeCollect: number;
  steadyDetail: QuickJsMemory;
  steadyDump: string;
  idle: number;
  peak: number;
  peakAt: string;
  peakAfterCalls: number;
  perInFlight: number;
  encodeUs: number;
  sendMs: number;
  samples: number;
}
let figures: Figures | undefined;
let loadFailure: string | undefined;

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

/**
 * Timing inside QuickJS with the host's clock, the best of 5 rounds (the cores are shared): the codec
 * alone (a reading as a NON frame, encodeUnsequenced, tables primed by one acknowledged reading), and a
 * whole NON reading (encode, CoAP, DTLS CCM_8 in JS, the datagram handed to the host).
 */
const BENCH = `
globalThis.benchEncode = (n, aliases) => {
  const encoder = new cxmpp.SessionEncoder({ aliases: JSON.parse(aliases), implicitBase: true });
  encoder.acknowledge(encoder.encode(device.reading(${JSON.stringify(SINK)}, 0)).inserted);
  const readings = [];
  for (let i = 1; i <= n; i++) readings.push(device.reading(${JSON.stringify(SINK)}, i));
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = __host.now();
    for (const r of readings) encoder.encodeUnsequenced(r);
    best = Math.min(best, (__host.now() - t0) / n);
  }
  return best;
};
globalThis.benchTelemetry = (n, first) => {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = __host.now();
    for (let i = 0; i < n; i++) device.telemetry(${JSON.stringify(SINK)}, first + round * n + i);
    best = Math.min(best, (__host.now() - t0) / n);
  }
  return best;
};
`;

/**
 * The node's life in QuickJS against a real gateway, as `strip` builds it (QuickJsEngineOptions.strip),
 * with the runtime's heap limit at `memoryLimit`: connect over coaps (pure-JS crypto in QuickJS), CON
 * and NON readings, readings in flight, sleep, a downlink stanza at the wake-up; then its timing.
 */
async function scenario(strip: "none" | "debug", memoryLimit: number): Promise<Figures> {
  const outbound: XElement[] = [];
  const gw = await gateway(`clean-${strip}`, outbound);
  const q = await startNode(gw.secureAddress as PeerAddress, { wake: 60, strip, memoryLimit });
  const load = q.loadFigures!;

  // Connect: the DTLS handshake (PSK, AES-128-CCM_8 in JS) and the session's HMAC proof, in QuickJS.
  expect(await q.connect()).toBe(`${JID}/cxmpp`);
  expect(gw.dtls?.tables().sessions).toBe(1);
  const steadyBeforeCollect = q.engine.memory().memory_used_size;
  q.engine.collect();
  const steadyDetail = q.engine.memory();
  const steadyDump = q.engine.dumpMemory();

  // Readings: CON (resolves once stored), then NON (the first NON of a session goes reliably).
  await q.send(SINK, 1);
  q.telemetry(SINK, 2);
  await until(() => outbound.length === 2);
  q.telemetry(SINK, 3);
  q.telemetry(SINK, 4);
  await until(() => outbound.length === 4);
  expect(outbound.map(seqnr)).toEqual([1, 2, 3, 4]);
  expect(outbound.every((s) => attr(s, "from") === `${JID}/cxmpp`)).toBe(true);
  expect(q.pending).toBe(0);
  const idle = q.engine.collect();

  // Stanzas in flight: the gateway's answers held back while 8 CON readings wait for them.
  const IN_FLIGHT = 8;
  q.hold();
  const sends = Array.from({ length: IN_FLIGHT }, (_, i) => q.send(SINK, 5 + i));
  expect(q.pending).toBe(IN_FLIGHT);
  const perInFlight = (q.engine.collect() - idle) / IN_FLIGHT;
  q.release();
  await Promise.all(sends);
  await until(() => outbound.length === 4 + IN_FLIGHT);
  expect(outbound.map(seqnr)).toEqual(Array.from({ length: 4 + IN_FLIGHT }, (_, i) => i + 1));

  // Asleep: nothing on air while a stanza for the node arrives at the gateway and waits there.
  const messages = () => q.inbox.filter((s) => s.name === "message");
  await sleep(100);
  const before = q.datagrams.out;
  gw.service.route(
    el(
      "jabber:client",
      "message",
      { from: `peer@${DOMAIN}/x`, to: JID },
      el("jabber:client", "body", {}, "on"),
    ),
  );
  await sleep(1000);
  expect(q.datagrams.out).toBe(before);
  expect(messages()).toEqual([]);
  // The wake-up: a poll brings it.
  await q.poll();
  await until(() => messages().length === 1);
  expect(messages().map(bodyOf)).toEqual(["on"]);
  expect(attr(messages()[0]!, "from")).toBe(`peer@${DOMAIN}/x`);

  // Timing inside QuickJS, last (its garbage is not the node's).
  const peak = q.engine.peakWithin;
  const peakAt = q.engine.peakAt;
  const peakAfterCalls = q.engine.peak;
  q.engine.evaluate(BENCH, "bench.js");
  const aliases = JSON.stringify([`${JID}/cxmpp`, DOMAIN, SINK]);
  const encodeMs = q.engine.unsampled(() => q.engine.call("benchEncode", 50, aliases) as number);
  const sendMs = q.engine.unsampled(() => q.engine.call("benchTelemetry", 4, 100) as number);
  await until(() => outbound.length === 4 + IN_FLIGHT + 20);

  expect(q.engine.errors).toEqual([]);
  expect(q.logs).toEqual([]);
  await q.close();
  return {
    ...load,
    steady: steadyDetail.memory_used_size,
    steadyBeforeCollect,
    steadyDetail,
    steadyDump,
    idle,
    peak,
    peakAt,
    peakAfterCalls,
    perInFlight,
    encodeUs: encodeMs * 1000,
    sendMs,
    samples: q.engine.samples,
  };
}

describe("the tiny node inside QuickJS against a real gateway", () => {
  it("connects over coaps (pure-JS crypto in QuickJS), sends CON and NON readings, sleeps, wakes to a downlink stanza", async () => {
    try {
      figures = await scenario("none", LIMIT);
    } catch (error) {
      loadFailure = error instanceof Error ? error.message : String(error);
      throw error;
    }
  }, 120_000);

  it("at 30% loss each way (a seeded LossyRelay), delivers every CON reading exactly once", async () => {
    const outbound: XElement[] = [];
    const gw = await gateway("lossy", outbound);
    const relay = await LossyRelay.start(gw.secureAddress as PeerAddress, { loss: 0.3, seed: 11 });
    cleanups.push(() => relay.close());
    const q = await startNode(relay.address);
    expect(await q.connect(5)).toBe(`${JID}/cxmpp`);
    // One at a time (an exchange each), then a burst (batched into few uplinks).
    const N = 20;
    for (let n = 1; n <= 10; n++) await q.send(SINK, n);
    await Promise.all(Array.from({ length: N - 10 }, (_, i) => q.send(SINK, 11 + i)));
    await until(() => outbound.length >= N);
    await sleep(1000); // a late duplicate would show here
    expect(outbound.map(seqnr)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(q.pending).toBe(0);
    expect(relay.stats.up.dropped).toBeGreaterThan(0);
    expect(relay.stats.down.dropped).toBeGreaterThan(0);
    expect(q.engine.errors).toEqual([]);
    process.stdout.write(
      `quickjs lossy: ${N} CON readings once each; relay up ${relay.stats.up.dropped}/${relay.stats.up.received} dropped, down ${relay.stats.down.dropped}/${relay.stats.down.received}; heap peak ${kb(q.engine.peakWithin)}\n`,
    );
    await q.close();
  }, 180_000);

  it("a device build (qjsc -s, JS_SetStripInfo: no source text, no debug info) holds the heap TARGETS: after connect ≤ heapBytes, peak ≤ peakRatio × steady", async () => {
    if (!figures) throw new Error(`no heap figures: the node did not run (${loadFailure ?? "see above"})`);
    // The same life as the node above, compiled as a device build compiles it, within the target's limit.
    const device = await scenario("debug", TARGETS.heapBytes * TARGETS.peakRatio);
    // The source text alone stripped (JS_STRIP_SOURCE), for the record: after connect.
    const gw = await gateway("strip-source", []);
    const q = await startNode(gw.secureAddress as PeerAddress, { strip: "source" });
    expect(await q.connect()).toBe(`${JID}/cxmpp`);
    const source = q.engine.collect();
    await q.close();
    console.log(
      `quickjs heap after connect: as quickjs-emscripten keeps it ${kb(figures.steady)} (budget ${kb(BUDGETS.heapBytes)}), ` +
        `source text stripped ${kb(source)}, debug info stripped too (the device build) ${kb(device.steady)} / target ${kb(TARGETS.heapBytes)}, ` +
        `peak ${kb(device.peak)} ${device.peakAt} (${(device.peak / device.steady).toFixed(2)}× steady) / limit ${kb(TARGETS.heapBytes * TARGETS.peakRatio)}; ` +
        `idle after readings ${kb(device.idle)}, per in-flight stanza ${device.perInFlight.toFixed(0)} B`,
    );
    // The source text QuickJS keeps is most of the function objects' size (docs/TINY-NODE.md).
    expect(source).toBeLessThan(figures.steady - 100 * 1024);
    expect(device.steady).toBeLessThan(source);
    expect(device.steady).toBeLessThanOrEqual(TARGETS.heapBytes);
    expect(device.peak).toBeLessThanOrEqual(TARGETS.peakRatio * device.steady);
  }, 120_000);

  it("holds the heap budgets inside QuickJS as quickjs-emscripten runs it (source kept): after connect ≤ heapBytes, peak ≤ peakRatio × steady", () => {
    if (!figures) throw new Error(`no heap figures: the node did not run (${loadFailure ?? "see above"})`);
    const f = figures;
    const d = f.steadyDetail;
    const rest =
      d.memory_used_size -
      (d.js_func_size + d.js_func_code_size + d.js_func_pc2line_size + d.atom_size + d.str_size) -
      (d.obj_size + d.prop_size + d.shape_size + 8 * d.fast_array_elements);
    process.stdout.write(
      `quickjs heap (memory_used_size): empty ${kb(f.empty)}, load ${kb(f.load)} (peak ${kb(f.loadPeak)}), ` +
        `steady after connect ${kb(f.steady)} (${kb(f.steadyBeforeCollect)} before collecting cycles) / budget ${kb(BUDGETS.heapBytes)}, ` +
        `idle after readings ${kb(f.idle)}, ` +
        `peak ${kb(f.peak)} ${f.peakAt} (${(f.peak / f.steady).toFixed(2)}× steady; after calls ${kb(f.peakAfterCalls)}) / limit ${kb(LIMIT)}, ` +
        `per in-flight stanza ${f.perInFlight.toFixed(0)} B; encode ${f.encodeUs.toFixed(0)} µs/reading, ` +
        `NON reading sent in ${f.sendMs.toFixed(2)} ms (${f.samples} samples)\n` +
        `  steady: bytecode functions ${d.js_func_count} ${kb(d.js_func_size)} (with the source text QuickJS keeps for each; code ${kb(d.js_func_code_size)}, pc2line ${kb(d.js_func_pc2line_size)}), ` +
        `atoms ${d.atom_count} ${kb(d.atom_size)}, strings ${d.str_count} ${kb(d.str_size)}, objects ${d.obj_count} ${kb(d.obj_size)}, ` +
        `properties ${kb(d.prop_size)}, shapes ${d.shape_count} ${kb(d.shape_size)}, arrays ${d.fast_array_count} (${d.fast_array_elements} elements, ${kb(8 * d.fast_array_elements)}), ` +
        `the rest (ArrayBuffer bytes, module and runtime records) ${kb(rest)}\n`,
    );
    expect(f.steady).toBeLessThanOrEqual(BUDGETS.heapBytes);
    expect(f.peak).toBeLessThanOrEqual(BUDGETS.peakRatio * f.steady);
  });
});
