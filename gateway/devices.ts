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

const REVOKED = 1;
const DTLS_ONLY = 2;

/**
 * A provisioned device as the directory holds it. A gateway may hold a million of them while few are
 * connected, so each costs about 150 bytes instead of about 450 (issue 13 item 4): the key as a
 * Latin-1 string (a Uint8Array with its ArrayBuffer is about 220 bytes; the bytes are made again for
 * the rare connect or handshake that needs them), the JID as its domain (shared by all devices of the
 * domain) when it is `identity@domain`, the peers list shared by every device with the same list, and
 * the flags in one number.
 */
class StoredDevice implements Device {
  readonly identity: string;
  readonly peers: readonly string[];
  /** The domain of `identity@domain`, or the whole bare JID when the local part is not the identity. */
  private readonly jidPart: string;
  private readonly keyBits: string;
  private readonly flags: number;

  constructor(d: Device, pool: Interner) {
    this.identity = d.identity;
    const at = d.jid.lastIndexOf("@");
    this.jidPart =
      d.jid.slice(0, at) === d.identity ? pool.string(d.jid.slice(at + 1)) : pool.string(`@${d.jid}`);
    this.keyBits = String.fromCharCode(...d.key);
    this.peers = pool.peers(d.peers);
    this.flags = (d.revoked ? REVOKED : 0) | (d.dtlsOnly ? DTLS_ONLY : 0);
  }

  /** Whether the JID is `identity@domain` (no JID kept of its own). */
  get derived(): boolean {
    return !this.jidPart.startsWith("@");
  }

  get jid(): string {
    return this.derived ? `${this.identity}@${this.jidPart}` : this.jidPart.slice(1);
  }

  get key(): Uint8Array {
    const key = new Uint8Array(this.keyBits.length);
    for (let i = 0; i < key.length; i++) key[i] = this.keyBits.charCodeAt(i);
    return key;
  }

  get revoked(): true | undefined {
    return this.flags & REVOKED ? true : undefined;
  }

  get dtlsOnly(): true | undefined {
    return this.flags & DTLS_ONLY ? true : undefined;
  }

  /** The device as a plain object (what callers that copy or change a device get). */
  plain(): Device {
    return {
      identity: this.identity,
      key: this.key,
      jid: this.jid,
      peers: this.peers,
      ...(this.revoked ? { revoked: true } : {}),
      ...(this.dtlsOnly ? { dtlsOnly: true } : {}),
    };
  }
}

/** Shares equal domains and peer lists between devices (most devices of a fleet have the same). */
class Interner {
  private readonly strings = new Map<string, string>();
  private readonly lists = new Map<string, readonly string[]>();
  private static readonly NONE: readonly string[] = Object.freeze([]);

  string(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    // Bounded by the distinct domains of the fleet (a handful); a device with its own JID adds one.
    this.strings.set(s, s);
    return s;
  }

  peers(peers: readonly string[]): readonly string[] {
    if (peers.length === 0) return Interner.NONE;
    const key = peers.join("\n");
    const known = this.lists.get(key);
    if (known) return known;
    const list = Object.freeze(peers.slice());
    this.lists.set(key, list);
    return list;
  }
}

export class MemoryDevices implements DeviceDirectory {
  private readonly byIdentity = new Map<string, StoredDevice>();
  /** Only devices whose JID is not `identity@domain`: the others are found by their local part. */
  private readonly byOtherJid = new Map<string, StoredDevice>();
  private readonly pool = new Interner();

  constructor(devices: readonly Device[] = []) {
    for (const d of devices) this.add(d);
  }

  add(device: Device): void {
    if (this.byIdentity.has(device.identity))
      throw new DeviceConfigError(`duplicate identity '${device.identity}'`);
    if (this.byJid(device.jid)) throw new DeviceConfigError(`duplicate JID '${device.jid}'`);
    this.put(new StoredDevice(device, this.pool));
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
    const { dtlsOnly, revoked, ...rest } = { ...device.plain(), ...change };
    this.put(
      new StoredDevice(
        { ...rest, ...(revoked ? { revoked: true } : {}), ...(dtlsOnly ? { dtlsOnly: true } : {}) },
        this.pool,
      ),
    );
    return true;
  }

  byJid(jid: string): Device | undefined {
    const other = this.byOtherJid.get(jid);
    if (other) return other;
    const at = jid.lastIndexOf("@");
    if (at <= 0) return undefined;
    const device = this.byIdentity.get(jid.slice(0, at));
    return device?.derived && device.jid === jid ? device : undefined;
  }

  get size(): number {
    return this.byIdentity.size;
  }

  all(): Device[] {
    return [...this.byIdentity.values()];
  }

  private put(device: StoredDevice): void {
    this.byIdentity.set(device.identity, device);
    if (!device.derived) this.byOtherJid.set(device.jid, device);
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
