/**
 * The gateway as a XEP-0326 concentrator (Internet of Things - Concentrators, v0.x, retracted but the
 * vocabulary IoT clients of that family speak): on its own domain JID it answers getCapabilities,
 * getAllDataSources (one data source: the gateway's devices), getRootNodes (the devices), getChildNodes
 * (a device has none) and getNodeInfo.
 *
 * Access follows the devices' own rule (network-inbound.ts `accepts`): a requester sees only the
 * devices that allow it (or allow anybody); a device it may not see answers NotFound, as one that does
 * not exist, so that the list of devices does not leak. A response lists at most MAX_NODES devices:
 * XEP-0326 has no paging and one stanza must stay well under the server's stanza size limit.
 */
import { attr, el, type XElement } from "../../codec/index.js";
import { CONTROL } from "../../src/core/iot/control.js";
import { replyAttrs, SENSORDATA } from "../../src/core/iot/sensordata.js";
import { allows, type Device } from "../devices.js";

export const CONCENTRATORS = "urn:xmpp:iot:concentrators";
const CLIENT = "jabber:client";
/** The one data source: the devices this gateway serves. */
export const SOURCE_ID = "cxmpp";
const MAX_NODES = 500;

const OPERATIONS = ["getCapabilities", "getAllDataSources", "getRootNodes", "getChildNodes", "getNodeInfo"];

/** The devices a concentrator lists and finds: a node id is the local part of the device's JID. */
export interface ConcentratorDevices {
  all(): Iterable<Device>;
  byJid(jid: string): Device | undefined;
}

/** A device shows to the requesters its access rule lets in (devices.ts `allows`), unless revoked. */
function visibleTo(device: Device, requester: string): boolean {
  return !device.revoked && allows(device, requester);
}

/** A device's node id: the local part of its JID (unique within the gateway's domain). */
export const nodeIdOf = (device: Device) => device.jid.slice(0, device.jid.indexOf("@"));

export class Concentrator {
  constructor(
    private readonly devices: ConcentratorDevices,
    /** The gateway's domain: node `n` is the device `n@domain`. */
    private readonly domain: string,
  ) {}

  /** The answer to a XEP-0326 iq get to the gateway's domain, or undefined when it is none. */
  answer(iq: XElement): XElement | undefined {
    if (iq.name !== "iq" || attr(iq, "type") !== "get") return undefined;
    const query = iq.children.find((c): c is XElement => typeof c !== "string");
    if (!query || query.ns !== CONCENTRATORS || !OPERATIONS.includes(query.name)) return undefined;
    const requester = attr(iq, "from") ?? "";
    const respond = (result: string, ...children: XElement[]) =>
      el(
        CLIENT,
        "iq",
        replyAttrs(iq, "result"),
        el(CONCENTRATORS, `${query.name}Response`, { result }, ...children),
      );
    switch (query.name) {
      case "getCapabilities":
        return respond("OK", ...OPERATIONS.map((op) => el(CONCENTRATORS, "value", {}, op)));
      case "getAllDataSources":
        return respond(
          "OK",
          el(CONCENTRATORS, "dataSource", {
            sourceId: SOURCE_ID,
            name: "cxmpp devices",
            hasChildren: "false",
          }),
        );
      case "getRootNodes": {
        if (attr(query, "sourceId") !== SOURCE_ID) return respond("NotFound");
        const nodes: XElement[] = [];
        for (const d of this.devices.all()) {
          if (!visibleTo(d, requester)) continue;
          if (nodes.length >= MAX_NODES) break;
          nodes.push(nodeElement(d));
        }
        return respond("OK", ...nodes);
      }
      default: {
        // getChildNodes and getNodeInfo name one node.
        const device = this.find(attr(query, "nodeId") ?? "", requester);
        if (attr(query, "sourceId") !== SOURCE_ID || !device) return respond("NotFound");
        return query.name === "getChildNodes" ? respond("OK") : respond("OK", nodeElement(device));
      }
    }
  }

  /**
   * A readout (XEP-0323 `<req>`) or control (XEP-0325 `<set>`, iq or message) sent to the concentrator
   * for one of its nodes is the device's business: it comes back readdressed to the device's bare JID,
   * without the `<node>` that named it (the device is that node), to be handled as if sent there (the
   * device's own access rule, its sleep, the readout cache). A node the requester may not see is
   * item-not-found, like one that does not exist; several nodes in one request are not passed on
   * (feature-not-implemented: each device answers for itself). Undefined: not such a request.
   */
  passThrough(
    stanza: XElement,
  ):
    | { readonly stanza: XElement }
    | { readonly refused: "item-not-found" | "feature-not-implemented" }
    | undefined {
    const payload = stanza.children.find(
      (c): c is XElement =>
        typeof c !== "string" &&
        ((c.ns === SENSORDATA && c.name === "req") || (c.ns === CONTROL && c.name === "set")),
    );
    if (!payload) return undefined;
    const named = payload.children.filter(
      (c): c is XElement => typeof c !== "string" && c.ns === payload.ns && c.name === "node",
    );
    if (named.length === 0) return undefined; // addressed to the concentrator itself: not a node's
    if (named.length > 1) return { refused: "feature-not-implemented" };
    const node = named[0]!;
    const source = attr(node, "sourceId");
    const device =
      source === undefined || source === SOURCE_ID
        ? this.find(attr(node, "nodeId") ?? "", attr(stanza, "from") ?? "")
        : undefined;
    if (!device) return { refused: "item-not-found" };
    const inner = { ...payload, children: payload.children.filter((c) => c !== node) };
    return {
      stanza: {
        ...stanza,
        attrs: stanza.attrs.map((a) => (a.ns === "" && a.name === "to" ? { ...a, value: device.jid } : a)),
        children: stanza.children.map((c) => (c === payload ? inner : c)),
      },
    };
  }

  private find(nodeId: string, requester: string): Device | undefined {
    if (nodeId === "" || nodeId.includes("@") || nodeId.includes("/")) return undefined;
    const device = this.devices.byJid(`${nodeId}@${this.domain}`);
    return device && visibleTo(device, requester) ? device : undefined;
  }
}

/** A device as a XEP-0326 node: readable (XEP-0323) and controllable (XEP-0325), no children. */
function nodeElement(device: Device): XElement {
  return el(CONCENTRATORS, "node", {
    nodeId: nodeIdOf(device),
    sourceId: SOURCE_ID,
    displayName: device.jid,
    nodeType: "cxmpp.Device",
    state: "None",
    hasChildren: "false",
    isReadable: "true",
    isControllable: "true",
    hasCommands: "false",
  });
}
