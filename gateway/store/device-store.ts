/**
 * Devices and their credentials in the store. The gateway and `cxmpp provision` open the same file:
 * a device added or revoked by the command is seen by the running gateway at its next lookup (the
 * cache is dropped whenever `PRAGMA data_version` says another connection committed), so a revoked
 * device is refused at once.
 */
import { type Device, DeviceConfigError, type DeviceDirectory } from "../devices.js";
import type { Db } from "./database.js";

interface Row {
  identity: string;
  jid: string;
  key: Buffer;
  peers: string;
  revoked: number;
}

export class SqliteDevices implements DeviceDirectory {
  private byIdentity = new Map<string, Device>();
  private byBareJid = new Map<string, Device>();
  private version = -1;
  private readonly dataVersion;
  private readonly selectAll;
  private readonly insert;
  private readonly setRevoked;

  constructor(private readonly db: Db) {
    this.dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.selectAll = db.prepare<[], Row>("SELECT identity, jid, key, peers, revoked FROM devices");
    this.insert = db.prepare(
      "INSERT INTO devices (identity, jid, key, peers, revoked, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.setRevoked = db.prepare("UPDATE devices SET revoked = 1 WHERE identity = ?");
  }

  /** Reloads the cache when another connection (a `cxmpp provision` run) changed the database. */
  private fresh(): void {
    const version = this.dataVersion.get() as number;
    if (version === this.version) return;
    this.version = version;
    this.byIdentity = new Map();
    this.byBareJid = new Map();
    for (const row of this.selectAll.all()) {
      const device: Device = {
        identity: row.identity,
        jid: row.jid,
        key: Uint8Array.from(row.key),
        peers: JSON.parse(row.peers) as string[],
        ...(row.revoked ? { revoked: true } : {}),
      };
      this.byIdentity.set(device.identity, device);
      this.byBareJid.set(device.jid, device);
    }
  }

  find(identity: string): Device | undefined {
    this.fresh();
    return this.byIdentity.get(identity);
  }

  byJid(jid: string): Device | undefined {
    this.fresh();
    return this.byBareJid.get(jid);
  }

  all(): Device[] {
    this.fresh();
    return [...this.byIdentity.values()];
  }

  get size(): number {
    this.fresh();
    return this.byIdentity.size;
  }

  add(device: Device, now = Date.now()): void {
    this.fresh();
    if (this.byIdentity.has(device.identity))
      throw new DeviceConfigError(`a device named '${device.identity}' exists already`);
    if (this.byBareJid.has(device.jid)) throw new DeviceConfigError(`the JID '${device.jid}' is taken`);
    this.insert.run(
      device.identity,
      device.jid,
      Buffer.from(device.key),
      JSON.stringify(device.peers),
      device.revoked ? 1 : 0,
      now,
    );
    // Our own write does not change data_version (only other connections' commits do): keep the cache
    // in step here, so adding many devices stays linear.
    this.byIdentity.set(device.identity, device);
    this.byBareJid.set(device.jid, device);
  }

  /** Marks a device revoked; false when there is no such device. */
  revoke(identity: string): boolean {
    const changed = this.setRevoked.run(identity).changes > 0;
    const device = this.find(identity);
    if (changed && device) {
      const revoked = { ...device, revoked: true };
      this.byIdentity.set(identity, revoked);
      this.byBareJid.set(device.jid, revoked);
    }
    return changed;
  }

  /** Imports a devices list (the JSON registry of earlier releases) into an empty table. */
  importAll(devices: readonly Device[]): number {
    if (this.size > 0) return 0;
    this.db.transaction(() => {
      for (const d of devices) this.add(d);
    })();
    return devices.length;
  }
}
