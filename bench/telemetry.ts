/**
 * Seeded sensor telemetry for the codec benchmark (issue: session mode on telemetry against a continuous
 * deflate stream). Each sensor reports XEP-0323 fields messages at its own period with jitter: a
 * temperature and a humidity that drift as random walks, a battery voltage that sags, an energy counter
 * that only grows, a door contact that flips now and then, and now and then a status text; field sets
 * vary as real devices vary them (the door only when it changed, the status only when there is one).
 * Nothing in it comes from the corpus or the dictionary, so it measures what a sensor would send.
 */
import { el, SessionDecoder, SessionEncoder, sameInfoset, type XElement } from "../codec/index.js";
import { toXml } from "../gateway/xml/stanza-xml.js";
import { seededRandom } from "../src/core/index.js";
import { median } from "./common.js";
import { deflateStream } from "./deflate.js";

const SD = "urn:xmpp:iot:sensordata";
const START = Date.UTC(2026, 10, 2, 6, 0, 0) / 1000;
const iso = (s: number) => new Date(s * 1000).toISOString().replace(".000Z", "Z");

interface SensorState {
  readonly name: string;
  readonly period: number;
  t: number;
  seq: number;
  temperature: number;
  humidity: number;
  battery: number;
  energy: number;
  door: boolean;
}

/** One reading of `s`, advancing its state (period ± 10% jitter, random walks, rare events). */
function nextReading(s: SensorState, random: () => number): XElement {
  s.t += Math.round(s.period * (0.9 + random() * 0.2));
  s.seq++;
  s.temperature += (random() - 0.5) * 0.4;
  s.humidity = Math.min(99, Math.max(5, s.humidity + (random() - 0.5) * 1.5));
  s.battery -= random() * 0.0004;
  s.energy += Math.floor(random() * 40);
  const doorChanged = random() < 0.05;
  if (doorChanged) s.door = !s.door;
  const fields: XElement[] = [
    el(SD, "numeric", {
      name: "temperature",
      momentary: "true",
      automaticReadout: "true",
      value: s.temperature.toFixed(1),
      unit: "°C",
    }),
    el(SD, "numeric", {
      name: "humidity",
      momentary: "true",
      automaticReadout: "true",
      value: s.humidity.toFixed(0),
      unit: "%",
    }),
    el(SD, "numeric", { name: "battery", status: "true", value: s.battery.toFixed(2), unit: "V" }),
    el(SD, "int", { name: "energy", cumulative: "true", value: String(s.energy) }),
  ];
  if (doorChanged) fields.push(el(SD, "boolean", { name: "door", momentary: "true", value: String(s.door) }));
  if (random() < 0.02)
    fields.push(
      el(SD, "string", {
        name: "status",
        status: "true",
        value: random() < 0.5 ? "recalibrated" : "low signal",
      }),
    );
  return el(
    "jabber:client",
    "message",
    { to: "historian@iot.example.org" },
    el(
      SD,
      "fields",
      { seqnr: String(s.seq), done: "true" },
      el(SD, "node", { nodeId: s.name }, el(SD, "timestamp", { value: iso(s.t) }, ...fields)),
    ),
  );
}

/** `readings` readings from each of `sensors` sensors, per sensor in order (seeded). */
export function telemetrySequences(seed: number, sensors = 3, readings = 300): XElement[][] {
  const random = seededRandom(seed);
  return Array.from({ length: sensors }, (_, i) => {
    const s: SensorState = {
      name: `env-${i + 1}`,
      period: [60, 300, 30][i % 3]!,
      t: START + Math.floor(random() * 60),
      seq: 0,
      temperature: 15 + random() * 10,
      humidity: 40 + random() * 20,
      battery: 3.6 - random() * 0.2,
      energy: Math.floor(random() * 100_000),
      door: false,
    };
    return Array.from({ length: readings }, () => nextReading(s, random));
  });
}

export interface TelemetrySummary {
  readonly seed: number;
  readonly sensors: number;
  readonly readings_per_sensor: number;
  /** Median frame of the session codec (one session per sensor, acknowledged at once), bytes. */
  readonly session_median: number;
  /** Median bytes a reading adds to one raw deflate stream per sensor, level 9, sync flush after each. */
  readonly deflate_stream_median: number;
  readonly ratio: number;
  /** Median of the session frames of readings 5-9 and 296-300 of each sensor: does the 300th cost more? */
  readonly session_early_median: number;
  readonly session_late_median: number;
  /** Median XML bytes of a reading (whitespace-free). */
  readonly xml_median: number;
  readonly exact: boolean;
}

/** Session frames against deflate streams over the seeded sequences. */
export async function measureTelemetry(seed = 1, sensors = 3, readings = 300): Promise<TelemetrySummary> {
  const all = telemetrySequences(seed, sensors, readings);
  const session: number[] = [];
  const deflate: number[] = [];
  const early: number[] = [];
  const late: number[] = [];
  const xml: number[] = [];
  let exact = true;
  for (const sequence of all) {
    const enc = new SessionEncoder({ implicitBase: true });
    const dec = new SessionDecoder();
    sequence.forEach((stanza, i) => {
      const f = enc.encode(stanza);
      exact &&= sameInfoset(dec.decode(f.bytes).stanza, stanza);
      enc.acknowledge(f.inserted);
      session.push(f.bytes.length);
      if (i >= 4 && i < 9) early.push(f.bytes.length);
      if (i >= readings - 5) late.push(f.bytes.length);
    });
    const xmls = sequence.map((s) => toXml(s));
    for (const x of xmls) xml.push(Buffer.byteLength(x));
    deflate.push(...(await deflateStream(xmls)));
  }
  const s = median(session);
  const d = median(deflate);
  return {
    seed,
    sensors,
    readings_per_sensor: readings,
    session_median: s,
    deflate_stream_median: d,
    ratio: Math.round((s / d) * 1000) / 1000,
    session_early_median: median(early),
    session_late_median: median(late),
    xml_median: median(xml),
    exact,
  };
}

export function formatTelemetry(t: TelemetrySummary): string {
  return [
    "",
    `  telemetry sequences (seeded generator, seed ${t.seed}: ${t.sensors} sensors × ${t.readings_per_sensor} XEP-0323 readings, 4-6 fields each; one session / one deflate stream per sensor)`,
    `    ours, session: median ${t.session_median} B a reading (readings 5-9: ${t.session_early_median} B, the last 5: ${t.session_late_median} B); XML ${t.xml_median} B`,
    `    deflate, one stream per sensor, sync flush: median ${t.deflate_stream_median} B`,
    `    session / deflate stream: ${t.ratio}× (target ≤ 0.7×) ${t.ratio <= 0.7 ? "✓" : "✗"}; exact round trips: ${t.exact ? "all" : "NOT ALL"}`,
    "",
  ].join("\n");
}
