/**
 * The last value each device reported for each of its XEP-0323 fields (§3.4), with the reading's own
 * timestamp: what the gateway answers a readout with while the node sleeps (readout-desk.ts).
 *
 * In memory, not in the store: the cache is only ever a shortcut. After a gateway restart it is empty
 * and a readout for a sleeping node waits in the mailbox for the node instead (the answer is later,
 * never wrong); the node's next report fills it again. Writing every reading to SQLite would add a
 * row write to each NON reading, the one path that is meant to cost nothing.
 *
 * Bounded three ways, since every provisioned node can grow it: at most `maxFieldsPerDevice` fields per
 * device (the least recently reported one is evicted), at most `maxFieldBytes` per field (larger ones
 * are not kept), and at most `maxDevices` devices (the least recently reporting one goes); `sweep`
 * drops devices that are no longer provisioned, so the table follows the device directory.
 */
import type { SensorField } from "../../src/core/iot/sensordata.js";

export interface FieldsCacheLimits {
  readonly maxFieldsPerDevice: number;
  readonly maxFieldBytes: number;
  readonly maxDevices: number;
}

export const DEFAULT_FIELDS_CACHE_LIMITS: FieldsCacheLimits = Object.freeze({
  maxFieldsPerDevice: 64,
  maxFieldBytes: 1024,
  // A cap above any gateway's device count: the real bound is the directory, through sweep().
  maxDevices: 100_000,
});

/** Counts since start, for metrics. */
export interface FieldsCacheStats {
  /** Field values stored (new or newer). */
  stored: number;
  /** Fields evicted to make room (per-device limit, device limit, or the device left). */
  evicted: number;
  /** Field values not kept for being larger than maxFieldBytes. */
  tooLarge: number;
  /** Values older than the one held (a reading that came late), not kept. */
  stale: number;
}

const encoder = new TextEncoder();

/** The bytes a field holds (all its strings): what maxFieldBytes limits. */
function fieldBytes(f: SensorField): number {
  let n = f.type.length;
  for (const s of [f.name, f.value, f.unit ?? "", f.timestamp, f.nodeId, ...f.flags])
    n += encoder.encode(s).length;
  return n;
}

/** The field's key within its device: the sensor node and the field name (XEP-0323 §3.3). */
const keyOf = (f: SensorField) => `${f.nodeId}\u0000${f.name}`;

export class FieldsCache {
  /** Device identity → field key → latest field; both maps in least-recently-reported order. */
  private readonly devices = new Map<string, Map<string, SensorField>>();
  private entries = 0;
  readonly stats: FieldsCacheStats = { stored: 0, evicted: 0, tooLarge: 0, stale: 0 };

  constructor(private readonly limits: FieldsCacheLimits = DEFAULT_FIELDS_CACHE_LIMITS) {}

  /** Fields held, all devices together (a gauge). */
  get size(): number {
    return this.entries;
  }

  /** Devices with at least one field held. */
  get deviceCount(): number {
    return this.devices.size;
  }

  /** Takes the fields a device reported; each replaces the one held unless it is older. */
  record(identity: string, fields: readonly SensorField[]): void {
    if (fields.length === 0) return;
    let held = this.devices.get(identity);
    if (held)
      this.devices.delete(identity); // re-inserted last: most recently reporting
    else {
      held = new Map();
      while (this.devices.size >= this.limits.maxDevices) this.dropDevice(this.devices.keys().next().value!);
    }
    this.devices.set(identity, held);
    for (const f of fields) this.put(held, f);
    if (held.size === 0) this.devices.delete(identity);
  }

  private put(held: Map<string, SensorField>, f: SensorField): void {
    if (fieldBytes(f) > this.limits.maxFieldBytes) {
      this.stats.tooLarge++;
      return;
    }
    const key = keyOf(f);
    const before = held.get(key);
    if (before && Date.parse(f.timestamp) < Date.parse(before.timestamp)) {
      this.stats.stale++;
      return;
    }
    if (before) held.delete(key);
    else if (held.size >= this.limits.maxFieldsPerDevice) {
      held.delete(held.keys().next().value!);
      this.entries--;
      this.stats.evicted++;
    }
    held.set(key, f);
    if (!before) this.entries++;
    this.stats.stored++;
  }

  /** The fields held for a device, in the order they were last reported (oldest first). */
  fields(identity: string): readonly SensorField[] {
    const held = this.devices.get(identity);
    return held ? [...held.values()] : [];
  }

  /** Forgets the devices `keep` says no (removed or revoked): the table follows the directory. */
  sweep(keep: (identity: string) => boolean): void {
    for (const identity of [...this.devices.keys()]) if (!keep(identity)) this.dropDevice(identity);
  }

  private dropDevice(identity: string): void {
    const held = this.devices.get(identity);
    if (!held) return;
    this.devices.delete(identity);
    this.entries -= held.size;
    this.stats.evicted += held.size;
  }
}
