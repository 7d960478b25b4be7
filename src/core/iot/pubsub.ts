/**
 * XEP-0060 (Publish-Subscribe) publishing: the iq a publisher sends (§7.1.1) and what its result says.
 */
import { attr, el, type XElement } from "../../../codec/index.js";
import { elements } from "./sensordata.js";

export const PUBSUB = "http://jabber.org/protocol/pubsub";
const CLIENT = "jabber:client";

/** An iq set publishing `payload` as one item of `node` at the pubsub `service` (§7.1.1). */
export function publishIq(
  attrs: { readonly to: string; readonly id: string; readonly from?: string },
  node: string,
  payload: XElement,
  itemId?: string,
): XElement {
  return el(
    CLIENT,
    "iq",
    { type: "set", ...attrs },
    el(
      PUBSUB,
      "pubsub",
      {},
      el(
        PUBSUB,
        "publish",
        { node },
        el(PUBSUB, "item", itemId !== undefined ? { id: itemId } : {}, payload),
      ),
    ),
  );
}

/** The id the service gave the published item (§7.1.2), when its result says. */
export function publishedItemId(result: XElement): string | undefined {
  const pubsub = elements(result, PUBSUB, "pubsub")[0];
  const publish = pubsub && elements(pubsub, PUBSUB, "publish")[0];
  const item = publish && elements(publish, PUBSUB, "item")[0];
  return item && attr(item, "id");
}
