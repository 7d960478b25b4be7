/**
 * The iq requests in flight to and from each node (RFC 6120 §8.2.3: every get/set gets exactly one
 * result or error). It makes iq results unspoofable both ways, and gives requests reaching a node a short
 * id of its own (ids on the network are long; on air every byte counts):
 *   - a request *to* a node is renumbered with a short id; the node's result must carry that id, and
 *     leaves with the original id, to the original requester; any other result from the node is dropped;
 *   - a request *from* a node is remembered by (id, to); a result for the node is delivered only if it
 *     comes from that JID with that id.
 * In memory: a gateway restart forgets requests in flight and their requesters time out, as for any
 * XMPP entity that goes away.
 */
const TTL_MS = 600_000;
const MAX_PER_NODE = 256;

interface Inbound {
  readonly id: string;
  readonly requester: string;
  readonly expires: number;
}

interface Outbound {
  readonly to: string;
  readonly expires: number;
}

class NodeRequests {
  readonly inbound = new Map<string, Inbound>();
  readonly outbound = new Map<string, Outbound>();
  next = 1;
}

export class IqTracker {
  private readonly nodes = new Map<string, NodeRequests>();

  constructor(private readonly now: () => number) {}

  private of(identity: string): NodeRequests {
    let n = this.nodes.get(identity);
    if (!n) {
      n = new NodeRequests();
      this.nodes.set(identity, n);
    }
    return n;
  }

  /** A request for the node: the short id it gets on air. */
  requestToNode(identity: string, id: string, requester: string): string {
    const n = this.of(identity);
    prune(n.inbound, this.now());
    const short = (n.next++).toString(36);
    n.inbound.set(short, { id, requester, expires: this.now() + TTL_MS });
    return short;
  }

  /** The node answered `short`: the original id and requester, or undefined (nothing was asked). */
  resultFromNode(identity: string, short: string): { id: string; requester: string } | undefined {
    const n = this.nodes.get(identity);
    const entry = n?.inbound.get(short);
    if (!entry || entry.expires < this.now()) return undefined;
    n!.inbound.delete(short);
    return entry;
  }

  /** The node asks `to` something. */
  requestFromNode(identity: string, id: string, to: string): void {
    const n = this.of(identity);
    prune(n.outbound, this.now());
    n.outbound.set(id, { to, expires: this.now() + TTL_MS });
  }

  /** A result for the node: true when it answers a request the node sent to `from`. */
  resultToNode(identity: string, id: string, from: string): boolean {
    const n = this.nodes.get(identity);
    const entry = n?.outbound.get(id);
    if (!entry || entry.expires < this.now()) return false;
    if (!sameEntity(entry.to, from)) return false;
    n!.outbound.delete(id);
    return true;
  }
}

/** A request to a bare JID is answered from a full one (RFC 6120 §10.5.4 / §10.5.3.2). */
function sameEntity(to: string, from: string): boolean {
  return to === from || (!to.includes("/") && from.split("/")[0] === to);
}

function prune<T extends { expires: number }>(map: Map<string, T>, now: number): void {
  if (map.size < MAX_PER_NODE) return;
  for (const [k, v] of map) if (v.expires < now || map.size >= MAX_PER_NODE) map.delete(k);
}
