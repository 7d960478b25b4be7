/**
 * The XEP-0323 sensor-data message that `cxmpp demo`, `bench session` and `bench wake` send: one field
 * of one node, with a sequence number and a timestamp. One builder, so that the benchmarks measure the
 * same stanza shape the demo shows.
 */
import { el, type XElement } from "../codec/index.js";

export const SENSORDATA = "urn:xmpp:iot:sensordata";

export interface SensorField {
  /** The sensor node's id within the device (XEP-0323 `node@nodeId`). */
  readonly nodeId: string;
  readonly seqnr: number;
  /** ISO 8601 instant of the reading. */
  readonly timestamp: string;
  /** The one field, e.g. `el(SENSORDATA, "numeric", { name, momentary: "true", value, unit })`. */
  readonly field: XElement;
}

/** A jabber:client message with `attrs` (to, from, …) carrying one XEP-0323 fields result. */
export function sensorDataMessage(attrs: Readonly<Record<string, string>>, f: SensorField): XElement {
  return el(
    "jabber:client",
    "message",
    attrs,
    el(
      SENSORDATA,
      "fields",
      { seqnr: String(f.seqnr), done: "true" },
      el(
        SENSORDATA,
        "node",
        { nodeId: f.nodeId },
        el(SENSORDATA, "timestamp", { value: f.timestamp }, f.field),
      ),
    ),
  );
}
