/**
 * Devices the gateway knows: identity, key, JID, allowed peers. `MemoryDevices` serves tests and
 * benchmarks, and is the cache of the durable registry (gateway/store/device-store.ts).
 */
import { readFileSync } from "node:fs";

export interface Device {
  /** The PSK identity / connect identity. */
  readonly identity: string;
  /** The pre-shared key: binary, 16-64 bytes (a `--psk TEXT` key is the text's bytes). */
  readonly key: Uint8Array;
  /** Bare JID, `name@domain`. */
  readonly jid: string;
  /** Bare JIDs the node talks to; they become codec aliases (FORMAT.md §6). */
  readonly peers: readonly string[];
  readonly revoked?: boolean;
  /**
   * The device may only connect over DTLS (coaps): plain CoAP from it, or for it, is refused. Absent:
   * both are allowed.
   */
  readonly dtlsOnly?: boolean;
}

/**
 * The device's access rule: with allowed peers, only they (by bare JID) may reach it, see it or read it
 * out; without, anybody may.
 */
export function allows(device: Device, jid: string): boolean {
  return device.peers.length === 0 || device.peers.includes(jid.split("/")[0]!);
}

export interface DeviceDirectory {
  find(identity: string): Device | undefined;
  /** The device whose bare JID is `jid`, for routing. */
  byJid(jid: string): Device | undefined;
}

export class DeviceConfigError extends Error {
  override readonly name = "DeviceConfigError";
}

export class MemoryDevices implements DeviceDirectory {
  private readonly byIdentity = new Map<string, Device>();
  private readonly byBareJid = new Map<string, Device>();

  constructor(devices: readonly Device[] = []) {
    for (const d of devices) this.add(d);
  }

  add(device: Device): void {
    if (this.byIdentity.has(device.identity))
      throw new DeviceConfigError(`duplicate identity '${device.identity}'`);
    if (this.byBareJid.has(device.jid)) throw new DeviceConfigError(`duplicate JID '${device.jid}'`);
    this.byIdentity.set(device.identity, device);
    this.byBareJid.set(device.jid, device);
  }

  find(identity: string): Device | undefined {
    return this.byIdentity.get(identity);
  }

  /** Marks a device revoked (the gateway refuses it at its next exchange); false when there is none. */
  revoke(identity: string): boolean {
    return this.update(identity, { revoked: true });
  }

  /** Changes a device's flags; false when there is no such device. */
  update(identity: string, change: Partial<Pick<Device, "revoked" | "dtlsOnly">>): boolean {
    const device = this.byIdentity.get(identity);
    if (!device) return false;
    const { dtlsOnly, ...rest } = { ...device, ...change };
    const updated: Device = { ...rest, ...(dtlsOnly ? { dtlsOnly: true } : {}) };
    this.byIdentity.set(identity, updated);
    this.byBareJid.set(device.jid, updated);
    return true;
  }

  byJid(jid: string): Device | undefined {
    return this.byBareJid.get(jid);
  }

  get size(): number {
    return this.byIdentity.size;
  }

  all(): Device[] {
    return [...this.byIdentity.values()];
  }

  /**
   * Reads `[{identity, key_hex, jid, peers?, revoked?, dtls_only?}]` from a JSON file, with errors that
   * name the entry.
   */
  static fromFile(path: string): MemoryDevices {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new DeviceConfigError(`cannot read devices file ${path}: ${(error as Error).message}`);
    }
    if (!Array.isArray(raw)) throw new DeviceConfigError(`${path}: expected a JSON array of devices`);
    return new MemoryDevices(raw.map((entry, i) => parseDevice(entry, `${path}[${i}]`)));
  }
}

export function parseDevice(entry: unknown, where: string): Device {
  if (typeof entry !== "object" || entry === null)
    throw new DeviceConfigError(`${where}: expected an object`);
  const e = entry as Record<string, unknown>;
  const str = (k: string): string => {
    const v = e[k];
    if (typeof v !== "string" || v === "")
      throw new DeviceConfigError(`${where}.${k}: expected a non-empty string`);
    return v;
  };
  const keyHex = str("key_hex");
  if (!/^(?:[0-9a-fA-F]{2}){16,64}$/.test(keyHex)) {
    throw new DeviceConfigError(`${where}.key_hex: expected 16-64 bytes of hex`);
  }
  const jid = str("jid");
  if (!/^[^@/\s]+@[^@/\s]+$/.test(jid))
    throw new DeviceConfigError(`${where}.jid: expected a bare JID name@domain`);
  const peers = e.peers ?? [];
  if (!Array.isArray(peers) || !peers.every((p) => typeof p === "string")) {
    throw new DeviceConfigError(`${where}.peers: expected an array of JIDs`);
  }
  const dtlsOnly = e.dtls_only ?? false;
  if (typeof dtlsOnly !== "boolean")
    throw new DeviceConfigError(`${where}.dtls_only: expected true or false`);
  return {
    identity: str("identity"),
    key: Uint8Array.from(Buffer.from(keyHex, "hex")),
    jid,
    peers: peers as string[],
    ...(e.revoked === true ? { revoked: true } : {}),
    ...(dtlsOnly ? { dtlsOnly: true } : {}),
  };
}
