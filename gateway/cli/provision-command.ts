/**
 * `cxmpp provision add|list|show|revoke`: the gateway's device registry in its data directory
 * (devices.json), and the device file a builder flashes onto the node.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { DICTIONARY_V1 } from "../../codec/index.js";
import { type DeviceFile, dataDir, loadDevices, saveDevices } from "../data-dir.js";
import type { Device } from "../devices.js";

export interface ProvisionAddOptions {
  readonly allow?: string[];
  readonly out?: string;
  readonly domain?: string;
  readonly gateway?: string;
  readonly dataDir?: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function runProvisionAdd(name: string, opts: ProvisionAddOptions): number {
  if (!NAME.test(name)) {
    process.stderr.write(
      `cxmpp provision add: '${name}' is not a valid name (a-z, 0-9, '.', '_', '-'; at most 63)\n`,
    );
    return 2;
  }
  const dir = dataDir(opts.dataDir);
  const devices = loadDevices(dir);
  if (devices.find(name)) {
    process.stderr.write(`cxmpp provision add: a device named '${name}' exists already\n`);
    return 1;
  }
  const domain = opts.domain ?? process.env.CXMPP_DOMAIN ?? "iot.localhost";
  const device: Device = {
    identity: name,
    key: Uint8Array.from(randomBytes(16)),
    jid: `${name}@${domain}`,
    peers: opts.allow ?? [],
  };
  const all = [...listDevices(dir), device];
  saveDevices(dir, all);
  const file = deviceFile(device, opts.gateway ?? process.env.CXMPP_LISTEN ?? "127.0.0.1:5683");
  const json = `${JSON.stringify(file, null, 2)}\n`;
  if (opts.out) {
    writeFileSync(opts.out, json, { mode: 0o600 });
    process.stdout.write(`device ${name} (${device.jid}) registered; device file written to ${opts.out}\n`);
  } else process.stdout.write(json);
  return 0;
}

export function deviceFile(d: Device, gateway: string): DeviceFile {
  return {
    gateway,
    identity: d.identity,
    key_hex: Buffer.from(d.key).toString("hex"),
    jid: d.jid,
    dictionary: DICTIONARY_V1.id,
  };
}

function listDevices(dir: string): Device[] {
  return loadDevices(dir).all();
}

export function runProvisionList(opts: { dataDir?: string; json?: boolean }): number {
  const devices = listDevices(dataDir(opts.dataDir));
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        devices.map((d) => summary(d)),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  for (const d of devices)
    process.stdout.write(`${d.identity}\t${d.jid}\t${d.revoked ? "revoked" : "active"}\n`);
  return 0;
}

export function runProvisionShow(
  name: string,
  opts: { dataDir?: string; json?: boolean; gateway?: string },
): number {
  const device = loadDevices(dataDir(opts.dataDir)).find(name);
  if (!device) {
    process.stderr.write(`cxmpp provision show: no device named '${name}'\n`);
    return 1;
  }
  const view = { ...summary(device), key_hex: Buffer.from(device.key).toString("hex") };
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(view, null, 2)}\n`
      : Object.entries(view)
          .map(([k, v]) => `${k}: ${v}`)
          .join("\n") + "\n",
  );
  return 0;
}

export function runProvisionRevoke(name: string, opts: { dataDir?: string }): number {
  const dir = dataDir(opts.dataDir);
  const devices = listDevices(dir);
  const device = devices.find((d) => d.identity === name);
  if (!device) {
    process.stderr.write(`cxmpp provision revoke: no device named '${name}'\n`);
    return 1;
  }
  saveDevices(
    dir,
    devices.map((d) => (d.identity === name ? { ...d, revoked: true } : d)),
  );
  process.stdout.write(`device ${name} revoked: the gateway refuses it from its next start\n`);
  return 0;
}

function summary(d: Device) {
  return { identity: d.identity, jid: d.jid, peers: d.peers, revoked: d.revoked === true };
}
