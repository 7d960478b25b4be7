/**
 * Whether the gateway can answer a XEP-0323 readout for a sleeping node from the fields it last
 * reported (fields-cache.ts), or the request must wait in the node's mailbox for its wake-up. Pure.
 *
 * - Fresh values asked for: a `when` later than now (XEP-0323 §3.2.6, a readout to run at a given
 *   time) can only be run by the node, so it waits. That is the one "fresh" signal: the XEP has no
 *   flag for "not from a cache", and slixmpp sends none.
 * - Field names given: every name must be held (for the requested nodes and categories), else it
 *   waits: a partial answer would say `done` with fields missing.
 * - No field names: at least one held field must match the request.
 * The answer keeps each value's original timestamp: the requester sees how old it is.
 */
import { type ReadoutRequest, requested, type SensorField } from "../../src/core/iot/sensordata.js";

export type ReadoutDecision =
  | { readonly kind: "cached"; readonly fields: readonly SensorField[] }
  | { readonly kind: "queue"; readonly reason: "fresh" | "missing" };

export function decideReadout(
  request: ReadoutRequest,
  held: readonly SensorField[],
  now: number,
): ReadoutDecision {
  if (request.when !== undefined) {
    const when = Date.parse(request.when);
    if (Number.isNaN(when) || when > now) return { kind: "queue", reason: "fresh" };
  }
  const fields = held.filter((f) => requested(request, f));
  if (fields.length === 0) return { kind: "queue", reason: "missing" };
  const names = new Set(fields.map((f) => f.name));
  if (request.fieldNames.some((name) => !names.has(name))) return { kind: "queue", reason: "missing" };
  return { kind: "cached", fields };
}
