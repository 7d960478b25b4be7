/**
 * `cxmpp provision add|list|show|revoke`: the device registry in the gateway's store, and the device
 * file a builder flashes onto the node (CBOR; `.json` gives the JSON view).
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { DICTIONARY_V1 } from "../../codec/index.js";
import { ConfigError, formatHostPort, type GatewayConfig } from "../config.js";
import { type DeviceFile, encodeDeviceFile } from "../data-dir.js";
import { type Device, DeviceConfigError } from "../devices.js";
import { openStore, type Store, StoreError } from "../store/index.js";
import { settings } from "./settings.js";

export interface ProvisionOptions {
  readonly config?: string;
  readonly dataDir?: string;
  readonly domain?: string;
  readonly json?: boolean;
}

export interface ProvisionAddOptions extends ProvisionOptions {
  readonly allow?: string[];
  readonly out?: string;
  readonly gateway?: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const BARE_JID = /^[^@/\s]+@[^@/\s]+$/;

/** Runs `fn` with the store of the configured data directory; errors become a message and exit code. */
function withStore(
  command: string,
  opts: ProvisionOptions,
  fn: (store: Store, config: GatewayConfig) => number,
): number {
  let store: Store | undefined;
  try {
    const config = settings({ ...opts });
    store = openStore(config.dataDir);
    return fn(store, config);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StoreError || error instanceof DeviceConfigError) {
      process.stderr.write(`cxmpp provision ${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    store?.close();
  }
}

export function runProvisionAdd(name: string, opts: ProvisionAddOptions): number {
  if (!NAME.test(name)) {
    process.stderr.write(
      `cxmpp provision add: '${name}' is not a valid name (a-z, 0-9, '.', '_', '-'; at most 63)\n`,
    );
    return 2;
  }
  const bad = (opts.allow ?? []).find((j) => !BARE_JID.test(j));
  if (bad !== undefined) {
    process.stderr.write(`cxmpp provision add: --allow '${bad}' is not a bare JID (name@domain)\n`);
    return 2;
  }
  return withStore("add", opts, (store, config) => {
    if (store.devices.find(name)) {
      process.stderr.write(`cxmpp provision add: a device named '${name}' exists already\n`);
      return 1;
    }
    const device: Device = {
      identity: name,
      key: Uint8Array.from(randomBytes(16)),
      jid: `${name}@${config.xmppDomain}`, // the component's domain when federating (defaults to domain)
      peers: opts.allow ?? [],
    };
    store.devices.add(device);
    const file = deviceFile(device, opts.gateway ?? formatHostPort(config.listen));
    if (opts.out) {
      const bytes = opts.out.endsWith(".json")
        ? `${JSON.stringify(file, null, 2)}\n`
        : encodeDeviceFile(file);
      writeFileSync(opts.out, bytes, { mode: 0o600 });
      process.stdout.write(
        `device ${name} (${device.jid}) registered; device file (${bytes.length} bytes) written to ${opts.out}\n`,
      );
    } else process.stdout.write(`${JSON.stringify(file, null, 2)}\n`);
    return 0;
  });
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

export function runProvisionList(opts: ProvisionOptions): number {
  return withStore("list", opts, (store) => {
    const devices = store.devices.all();
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(devices.map(summary), null, 2)}\n`);
      return 0;
    }
    for (const d of devices)
      process.stdout.write(`${d.identity}\t${d.jid}\t${d.revoked ? "revoked" : "active"}\n`);
    return 0;
  });
}

export function runProvisionShow(name: string, opts: ProvisionOptions & { gateway?: string }): number {
  return withStore("show", opts, (store, config) => {
    const device = store.devices.find(name);
    if (!device) {
      process.stderr.write(`cxmpp provision show: no device named '${name}'\n`);
      return 1;
    }
    const view = {
      ...summary(device),
      key_hex: Buffer.from(device.key).toString("hex"),
      gateway: opts.gateway ?? formatHostPort(config.listen),
      dictionary: DICTIONARY_V1.id,
    };
    process.stdout.write(
      opts.json
        ? `${JSON.stringify(view, null, 2)}\n`
        : `${Object.entries(view)
            .map(([k, v]) => `${k}: ${v}`)
            .join("\n")}\n`,
    );
    return 0;
  });
}

export function runProvisionRevoke(name: string, opts: ProvisionOptions): number {
  return withStore("revoke", opts, (store) => {
    if (!store.devices.revoke(name)) {
      process.stderr.write(`cxmpp provision revoke: no device named '${name}'\n`);
      return 1;
    }
    process.stdout.write(`device ${name} revoked: a running gateway refuses it from its next exchange\n`);
    return 0;
  });
}

function summary(d: Device) {
  return { identity: d.identity, jid: d.jid, peers: d.peers, revoked: d.revoked === true };
}
