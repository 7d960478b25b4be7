/**
 * Devices and their credentials in the store. The gateway and `cxmpp provision` open the same file:
 * a device added or revoked by the command is seen by the running gateway at its next lookup (the
 * cache is dropped whenever `PRAGMA data_version` says another connection committed), so a revoked
 * device is refused at once.
 */
import { type Device, DeviceConfigError, type DeviceDirectory, MemoryDevices } from "../devices.js";
import type { Db } from "./database.js";

interface Row {
  identity: string;
  jid: string;
  key: Buffer;
  peers: string;
  revoked: number;
  dtls_only: number;
}

export class SqliteDevices implements DeviceDirectory {
  /** The rows as of `version`; our own writes go to both, another connection's make us reload. */
  private cache = new MemoryDevices();
  private version = -1;
  private readonly dataVersion;
  private readonly selectAll;
  private readonly insert;
  private readonly setRevoked;
  private readonly setDtlsOnlyFlag;

  constructor(private readonly db: Db) {
    this.dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.selectAll = db.prepare<[], Row>("SELECT identity, jid, key, peers, revoked, dtls_only FROM devices");
    this.insert = db.prepare(
      "INSERT INTO devices (identity, jid, key, peers, revoked, dtls_only, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.setRevoked = db.prepare("UPDATE devices SET revoked = 1 WHERE identity = ?");
    this.setDtlsOnlyFlag = db.prepare("UPDATE devices SET dtls_only = ? WHERE identity = ?");
  }

  /** Reloads the cache when another connection (a `cxmpp provision` run) changed the database. */
  private fresh(): MemoryDevices {
    const version = this.dataVersion.get() as number;
    if (version === this.version) return this.cache;
    this.version = version;
    this.cache = new MemoryDevices(
      this.selectAll.all().map((row) => ({
        identity: row.identity,
        jid: row.jid,
        key: Uint8Array.from(row.key),
        peers: JSON.parse(row.peers) as string[],
        ...(row.revoked ? { revoked: true } : {}),
        ...(row.dtls_only ? { dtlsOnly: true } : {}),
      })),
    );
    return this.cache;
  }

  find(identity: string): Device | undefined {
    return this.fresh().find(identity);
  }

  byJid(jid: string): Device | undefined {
    return this.fresh().byJid(jid);
  }

  all(): Device[] {
    return this.fresh().all();
  }

  get size(): number {
    return this.fresh().size;
  }

  add(device: Device, now = Date.now()): void {
    const cache = this.fresh();
    if (cache.find(device.identity))
      throw new DeviceConfigError(`a device named '${device.identity}' exists already`);
    if (cache.byJid(device.jid)) throw new DeviceConfigError(`the JID '${device.jid}' is taken`);
    this.insert.run(
      device.identity,
      device.jid,
      Buffer.from(device.key),
      JSON.stringify(device.peers),
      device.revoked ? 1 : 0,
      device.dtlsOnly ? 1 : 0,
      now,
    );
    // Our own write does not change data_version (only other connections' commits do): keep the cache
    // in step here, so adding many devices stays linear.
    cache.add(device);
  }

  /** Marks a device revoked; false when there is no such device. */
  revoke(identity: string): boolean {
    const cache = this.fresh();
    if (this.setRevoked.run(identity).changes === 0) return false;
    cache.revoke(identity);
    return true;
  }

  /**
   * Makes a device DTLS-only, or lets it use plain CoAP too; false when there is no such device. A
   * running gateway applies it at the device's next connect.
   */
  setDtlsOnly(identity: string, dtlsOnly: boolean): boolean {
    const cache = this.fresh();
    if (this.setDtlsOnlyFlag.run(dtlsOnly ? 1 : 0, identity).changes === 0) return false;
    cache.update(identity, { dtlsOnly });
    return true;
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
