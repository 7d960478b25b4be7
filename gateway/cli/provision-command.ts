/**
 * `cxmpp provision add|list|show|revoke`: the device registry in the gateway's store, and the device
 * file a builder flashes onto the node (CBOR; `.json` gives the JSON view).
 *
 * Keys are binary: 16 random bytes, or with `--psk TEXT` the bytes of TEXT, for DTLS peers that take
 * only ASCII keys (libcoap's `-k`, node-dtls-client). A device is DTLS-only (`--dtls-only`) by default
 * when the gateway has DTLS (`dtls_listen` on): the gateway then refuses it over plain CoAP.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { DICTIONARY_V1 } from "../../codec/index.js";
import { ConfigError, type GatewayConfig } from "../config.js";
import {
  type DeviceFile,
  encodeDeviceFile,
  formatGatewayUri,
  type GatewayUri,
  parseGatewayUri,
} from "../data-dir.js";
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
  /** The device file's gateway: coaps://HOST:PORT, coap://HOST:PORT, or HOST:PORT (scheme by device). */
  readonly gateway?: string;
  /** The key as text (its UTF-8 bytes): 16-64 printable ASCII characters. Default: 16 random bytes. */
  readonly psk?: string;
  /** Only DTLS for this device; undefined: DTLS-only exactly when `dtls_listen` is on. */
  readonly dtlsOnly?: boolean;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/**
 * An allowed peer: a bare JID, `name@domain` or a domain alone (RFC 6120 §1.4, e.g. a pubsub service,
 * `pubsub.example.org`, whose event notifications a device receives).
 */
const BARE_JID = /^(?:[^@/\s]+@)?[^@/\s]+$/;
/** A text key: printable ASCII (what libcoap's -k and node-dtls-client take), 16-64 bytes. */
const TEXT_PSK = /^[\x20-\x7e]{16,64}$/;
/** A gateway address that names its scheme (coap://, coaps://) rather than a bare HOST:PORT. */
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * The device file's gateway URI: coaps for a DTLS-only device, coap otherwise (coaps when plain CoAP is
 * off). `given` (--gateway) wins; a bare HOST:PORT there takes the device's scheme. Throws a
 * DeviceConfigError when the device cannot be reached that way.
 */
export function gatewayFor(config: GatewayConfig, dtlsOnly: boolean, given?: string): string {
  if (given !== undefined) {
    const uri = parseGatewayUri(given);
    if (!SCHEME.test(given)) return formatGatewayUri({ ...uri, scheme: dtlsOnly ? "coaps" : "coap" });
    if (dtlsOnly && uri.scheme === "coap") {
      throw new DeviceConfigError(
        `--gateway ${given}: the device is DTLS-only, which the gateway refuses over plain coap://; ` +
          "give a coaps:// address, or --no-dtls-only",
      );
    }
    return formatGatewayUri(uri);
  }
  const plain = dtlsOnly ? undefined : config.listen;
  const at: GatewayUri | undefined = plain
    ? { scheme: "coap", ...plain }
    : config.dtlsListen && { scheme: "coaps", ...config.dtlsListen };
  if (!at) {
    throw new DeviceConfigError(
      `the device is DTLS-only but DTLS is off (dtls_listen from ${config.sources.dtls_listen}): ` +
        "set dtls_listen, give --gateway coaps://HOST:PORT, or use --no-dtls-only",
    );
  }
  return formatGatewayUri(at);
}

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
    process.stderr.write(
      `cxmpp provision add: --allow '${bad}' is not a bare JID (name@domain, or a domain)\n`,
    );
    return 2;
  }
  if (opts.psk !== undefined && !TEXT_PSK.test(opts.psk)) {
    // The key itself is never echoed: it may be in a terminal's scrollback or a CI log.
    const bytes = Buffer.byteLength(opts.psk, "utf8");
    const why = /^[\x20-\x7e]*$/.test(opts.psk)
      ? `it has ${bytes} bytes`
      : "it has characters that are not printable ASCII (control characters or non-ASCII)";
    process.stderr.write(
      `cxmpp provision add: --psk must be 16 to 64 printable ASCII characters (its bytes are the key), but ${why}; ` +
        "leave --psk out for a random 16-byte key\n",
    );
    return 2;
  }
  return withStore("add", opts, (store, config) => {
    if (store.devices.find(name)) {
      process.stderr.write(`cxmpp provision add: a device named '${name}' exists already\n`);
      return 1;
    }
    const dtlsOnly = opts.dtlsOnly ?? config.dtlsListen !== undefined;
    const gateway = gatewayFor(config, dtlsOnly, opts.gateway);
    const device: Device = {
      identity: name,
      key: opts.psk === undefined ? Uint8Array.from(randomBytes(16)) : new TextEncoder().encode(opts.psk),
      jid: `${name}@${config.xmppDomain}`, // the component's domain when federating (defaults to domain)
      peers: opts.allow ?? [],
      ...(dtlsOnly ? { dtlsOnly: true } : {}),
    };
    store.devices.add(device);
    const file = deviceFile(device, gateway);
    if (opts.out) {
      const bytes = writeDevice(opts.out, file);
      process.stdout.write(
        `device ${name} (${device.jid}${dtlsOnly ? ", DTLS only" : ""}) registered; device file ` +
          `(${bytes} bytes, gateway ${gateway}) written to ${opts.out}\n`,
      );
    } else process.stdout.write(`${JSON.stringify(file, null, 2)}\n`);
    return 0;
  });
}

/**
 * The device file of `d`. `gateway` is a coap:// or coaps:// URI, or a bare HOST:PORT, which gets
 * coaps:// for a DTLS-only device and coap:// otherwise.
 */
export function deviceFile(d: Device, gateway: string): DeviceFile {
  const uri = parseGatewayUri(gateway);
  return {
    gateway: formatGatewayUri(SCHEME.test(gateway) ? uri : { ...uri, scheme: d.dtlsOnly ? "coaps" : "coap" }),
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
    for (const d of devices) {
      const link = d.dtlsOnly ? "dtls-only" : "coap-or-dtls";
      process.stdout.write(`${d.identity}\t${d.jid}\t${d.revoked ? "revoked" : "active"}\t${link}\n`);
    }
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
    let gateway: string | null;
    try {
      gateway = gatewayFor(config, device.dtlsOnly === true, opts.gateway);
    } catch (error) {
      if (!(error instanceof DeviceConfigError) || opts.gateway !== undefined) throw error;
      gateway = null; // a DTLS-only device and DTLS off: no address reaches it
    }
    const view = {
      ...summary(device),
      key_hex: Buffer.from(device.key).toString("hex"),
      gateway,
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

/** Writes a device file (CBOR, or the JSON view for a name ending in .json), mode 0600; its size. */
function writeDevice(path: string, file: DeviceFile): number {
  const bytes = path.endsWith(".json") ? `${JSON.stringify(file, null, 2)}\n` : encodeDeviceFile(file);
  writeFileSync(path, bytes, { mode: 0o600 });
  return bytes.length;
}

export interface ProvisionSetOptions extends ProvisionOptions {
  readonly dtlsOnly?: boolean;
  readonly out?: string;
  readonly gateway?: string;
}

/**
 * `provision set NAME --dtls-only | --no-dtls-only [--out FILE]`: moves an existing device to DTLS (or
 * back to plain CoAP on a trusted link). A running gateway applies it at the device's next connect; the
 * node needs a device file with the new address, which --out writes.
 */
export function runProvisionSet(name: string, opts: ProvisionSetOptions): number {
  if (opts.dtlsOnly === undefined) {
    process.stderr.write("cxmpp provision set: say what to change: --dtls-only or --no-dtls-only\n");
    return 2;
  }
  const dtlsOnly = opts.dtlsOnly;
  return withStore("set", opts, (store, config) => {
    const gateway = gatewayFor(config, dtlsOnly, opts.gateway);
    if (!store.devices.setDtlsOnly(name, dtlsOnly)) {
      process.stderr.write(`cxmpp provision set: no device named '${name}'\n`);
      return 1;
    }
    const device = store.devices.find(name)!;
    const what = dtlsOnly ? "DTLS only" : "plain CoAP allowed";
    if (opts.out) {
      const bytes = writeDevice(opts.out, deviceFile(device, gateway));
      process.stdout.write(
        `device ${name}: ${what}; new device file (${bytes} bytes, gateway ${gateway}) written to ${opts.out}\n`,
      );
    } else {
      process.stdout.write(
        `device ${name}: ${what} from its next connect; its device file must say ${gateway} ` +
          "(--out FILE writes one)\n",
      );
    }
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
  return {
    identity: d.identity,
    jid: d.jid,
    peers: d.peers,
    revoked: d.revoked === true,
    dtls_only: d.dtlsOnly === true,
  };
}
