/**
 * Observe (RFC 7641): a client registers interest in a resource with GET Observe=0 and then receives
 * every change as a notification carrying the registration's token. Two small classes:
 *
 * - `ObserveServer` wraps the request handler to keep the list of observers per resource, and sends
 *   notifications (`notify`) through the MessageLayer with increasing sequence numbers, NON with a CON
 *   every Nth, dropping an observer that resets or stops acknowledging (§3.6, §4.5).
 * - `ObserveClient` registers through ExchangeLayer.observe() (which keeps the token open) and hands
 *   on notifications in order, dropping any older than the newest seen (§3.4).
 *
 * Neither knows about blocks: a notification too large for one datagram is not cut (§2.6 of RFC 7959
 * is not implemented).
 *
 * Registration needs no more than one datagram from any address, so the server's list is bounded
 * (CoapLimits): one observer per (peer, resource), a share per peer and a total, the oldest evicted.
 */
import type { Clock, Logger, PeerAddress } from "../interfaces.js";
import {
  type ExchangeLayer,
  limitErrorPayload,
  type RequestHandler,
  type Response,
  type ServerRequest,
} from "./exchange-layer.js";
import { type CoapLimits, DEFAULT_COAP_LIMITS } from "./limits.js";
import type { CoapMessage, CoapOption } from "./message.js";
import { optionUint, pathOptions, uintOption, uriPath } from "./message.js";
import type { MessageLayer } from "./message-layer.js";
import { CODE_GET, codeClass, OPT_OBSERVE } from "./registry.js";

/** Observe option values are 24 bits (RFC 7641 §4.4). */
const SEQUENCE_MODULUS = 1 << 24;
const HALF = 1 << 23;
/** §3.4: after 128 s a notification counts as newer whatever its number (the numbers may have wrapped). */
const FRESHNESS_MS = 128_000;

/**
 * RFC 7641 §3.4: is the notification (v2, received at t2) newer than the newest one seen (v1 at t1)?
 * Sequence numbers compare modulo 2^24; a gap of 128 s makes any number newer.
 */
export function isNewer(v1: number, t1: number, v2: number, t2: number): boolean {
  return (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF) || t2 > t1 + FRESHNESS_MS;
}

// --- server ---------------------------------------------------------------------------------------

export interface ObserveServerOptions {
  /**
   * Every Nth notification to an observer is sent CON, the others NON, so a vanished observer is
   * noticed (RFC 7641 §4.5 asks for a CON at least every 24 hours). 1 = all CON. Default 10.
   */
  readonly confirmEvery: number;
}

export const DEFAULT_OBSERVE_SERVER: ObserveServerOptions = /* @__PURE__ */ Object.freeze({
  confirmEvery: 10,
});

/** What `notify` sends: the response a GET would get now. */
export interface Notification {
  readonly response: Response;
  readonly confirmable: boolean;
}

interface Observer {
  readonly key: string;
  readonly peer: PeerAddress;
  readonly token: Uint8Array;
  readonly path: string;
  /** Notifications sent since the last CON one. */
  sinceConfirmable: number;
  /** A CON notification awaits its ACK; newer state waits in `queued` meanwhile. */
  inFlight: boolean;
  queued: Notification | undefined;
  /** Message ids of the last NON notifications: an RST names one of them (§3.6). */
  readonly recentNon: number[];
}

const RECENT_NON = 8;

export interface ObserveServerStats {
  /** Observers replaced by a newer registration of the same peer for the same resource. */
  replaced: number;
  /** Observers dropped because their peer's share or the whole list was full. */
  evicted: number;
}

export class ObserveServer {
  readonly stats: ObserveServerStats = { replaced: 0, evicted: 0 };
  /** key: peer + token; in registration order, so the first is the oldest (evicted first). */
  private readonly observers = new Map<string, Observer>();
  private readonly byPath = new Map<string, Set<Observer>>();
  /** Each peer's observers, oldest first; at most one per path (see register). */
  private readonly byPeer = new Map<PeerAddress, Map<string, Observer>>();
  /**
   * The last sequence number per observed resource; every notification of the resource takes the next
   * one. Forgotten with the resource's last observer, so paths once observed do not pile up.
   */
  private readonly sequence = new Map<string, number>();

  constructor(
    private readonly messages: MessageLayer,
    private readonly options: ObserveServerOptions,
    private readonly logger: Logger,
    private readonly limits: Pick<
      CoapLimits,
      "maxObservers" | "maxObserversPerPeer" | "maxErrorPayloadBytes"
    > = DEFAULT_COAP_LIMITS,
  ) {
    messages.onReset((peer, messageId) => this.resetBy(peer, messageId));
  }

  /**
   * Which paths can be observed (default: all). Others are served without Observe, which tells the
   * client it is not registered (RFC 7641 §4.1): a resource that never changes takes no table space.
   */
  observable: (path: string) => boolean = () => true;

  /** The handler the layer below calls: registers and deregisters observers around `inner`. */
  wrap(inner: RequestHandler): RequestHandler {
    return (request) => {
      const observe = optionUint(request, OPT_OBSERVE);
      if (request.code !== CODE_GET || observe === undefined) return inner(request);
      if (observe === 1) {
        // §3.6: deregister, then serve the GET as usual (the response carries no Observe option).
        this.remove(observerKey(request.peer, request.token));
        return inner(request);
      }
      if (observe !== 0) return inner(request);
      const result = inner(request);
      return result instanceof Promise
        ? result.then((r) => this.register(request, r))
        : this.register(request, result);
    };
  }

  /**
   * Sends `response` to every observer of `path`; returns how many there are. `confirmable` forces
   * CON for this one (otherwise every `confirmEvery`th is CON). A non-2.xx response ends the
   * observations (§4.2: it is sent without Observe and the observers are removed).
   */
  notify(path: string, response: Response, options: { readonly confirmable?: boolean } = {}): number {
    const set = this.byPath.get(path);
    if (!set || set.size === 0) return 0;
    this.sequence.set(path, ((this.sequence.get(path) ?? 0) + 1) % SEQUENCE_MODULUS);
    const n: Notification = { response, confirmable: options.confirmable ?? false };
    const count = set.size;
    for (const o of [...set]) {
      // §4.5.2: while a CON notification is unacknowledged only the latest state is worth sending.
      if (o.inFlight) o.queued = n;
      else this.transmit(o, n);
    }
    return count;
  }

  /** Observers of `path`, or of every resource. */
  count(path?: string): number {
    return path === undefined ? this.observers.size : (this.byPath.get(path)?.size ?? 0);
  }

  private register(request: ServerRequest, response: Response): Response {
    const key = observerKey(request.peer, request.token);
    if (codeClass(response.code) !== 2) {
      this.remove(key); // only a success response establishes the observation (§4.1)
      return response;
    }
    const path = uriPath(request);
    if (!this.observable(path)) return response;
    // Read before any replacement below can leave the path without observers (which forgets it).
    const value = this.sequence.get(path) ?? 0;
    // §4.1: the same (endpoint, token) replaces the earlier entry.
    this.remove(key);
    // We go further: one endpoint observes a resource once. A second registration from the same
    // address for the same path, whatever its token, is a client that re-registers having lost its
    // token (a reboot) or an attacker; keeping both would send every change twice to one address,
    // and N registrations would make one notify() N datagrams (a reflection amplifier).
    const mine = this.byPeer.get(request.peer);
    const earlier = mine?.get(path);
    if (earlier) {
      this.remove(earlier.key);
      this.stats.replaced++;
    }
    const share = this.byPeer.get(request.peer);
    if (share && share.size >= this.limits.maxObserversPerPeer) this.evict(share.values().next().value!);
    while (this.observers.size >= this.limits.maxObservers) this.evict(this.observers.values().next().value!);
    const o: Observer = {
      key,
      peer: request.peer,
      token: request.token.slice(), // kept for the observation's life: not a view of its datagram
      path,
      sinceConfirmable: 0,
      inFlight: false,
      queued: undefined,
      recentNon: [],
    };
    this.observers.set(key, o);
    const set = this.byPath.get(path) ?? new Set<Observer>();
    set.add(o);
    this.byPath.set(path, set);
    this.byPeer.set(
      request.peer,
      (this.byPeer.get(request.peer) ?? new Map<string, Observer>()).set(path, o),
    );
    this.sequence.set(path, value);
    return { ...response, options: [...response.options, uintOption(OPT_OBSERVE, value)] };
  }

  private transmit(o: Observer, n: Notification): void {
    const final = codeClass(n.response.code) !== 2;
    // A final error notification is a short diagnostic too, like every error answer (CoapLimits).
    const response = limitErrorPayload(n.response, this.limits.maxErrorPayloadBytes);
    const options: readonly CoapOption[] = final
      ? response.options
      : [...response.options, uintOption(OPT_OBSERVE, this.sequence.get(o.path) ?? 0)];
    const message = { code: response.code, token: o.token, options, payload: response.payload };
    if (final) this.remove(o.key);
    o.sinceConfirmable++;
    if (!n.confirmable && o.sinceConfirmable < this.options.confirmEvery) {
      o.recentNon.push(this.messages.sendNonConfirmable(message, o.peer));
      if (o.recentNon.length > RECENT_NON) o.recentNon.shift();
      return;
    }
    o.sinceConfirmable = 0;
    o.inFlight = true;
    this.messages.sendConfirmable(message, o.peer).then(
      () => {
        o.inFlight = false;
        const next = o.queued;
        o.queued = undefined;
        if (next && this.observers.get(o.key) === o) this.transmit(o, next);
      },
      (error: Error) => {
        // RST (§3.6) or no ACK after all retransmissions (§4.5): the client is gone or not interested.
        this.logger.log("info", "coap.observer_removed", { peer: o.peer, path: o.path, reason: error.name });
        if (this.observers.get(o.key) === o) this.remove(o.key);
      },
    );
  }

  /** An RST answering one of our NON notifications removes that observer (§3.6). */
  private resetBy(peer: PeerAddress, messageId: number): void {
    // Only the peer's own observers are searched: a flood of RSTs costs at most its share each.
    for (const o of this.byPeer.get(peer)?.values() ?? []) {
      if (o.recentNon.includes(messageId)) {
        this.logger.log("info", "coap.observer_removed", { peer, path: o.path, reason: "RST" });
        this.remove(o.key);
        return;
      }
    }
  }

  private evict(o: Observer): void {
    this.logger.log("debug", "coap.observer_evicted", { peer: o.peer, path: o.path });
    this.remove(o.key);
    this.stats.evicted++;
  }

  private remove(key: string): void {
    const o = this.observers.get(key);
    if (!o) return;
    this.observers.delete(key);
    const set = this.byPath.get(o.path);
    set?.delete(o);
    if (set?.size === 0) {
      this.byPath.delete(o.path);
      this.sequence.delete(o.path);
    }
    const mine = this.byPeer.get(o.peer);
    if (mine?.get(o.path) === o) mine.delete(o.path);
    if (mine?.size === 0) this.byPeer.delete(o.peer);
  }
}

// --- client ---------------------------------------------------------------------------------------

export interface Observation {
  /** The response to the registration (without Observe if the server did not register us). */
  readonly response: CoapMessage;
  /** True while notifications may still arrive. */
  readonly active: boolean;
  /**
   * Ends the observation. By default sends GET with Observe=1 and the same token (§3.6); `passive`
   * only forgets the token, so the next notification is answered with RST.
   */
  cancel(options?: { readonly passive?: boolean }): Promise<void>;
}

export interface ObserveRequestOptions {
  /** Extra options for the GET (Accept, Uri-Query …). */
  readonly options?: readonly CoapOption[];
  /** CON (default) or NON registration. */
  readonly confirmable?: boolean;
}

export class ObserveClient {
  constructor(
    private readonly exchanges: ExchangeLayer,
    private readonly clock: Clock,
  ) {}

  /**
   * Registers for `path` on `peer`; `onNotification` gets every notification newer than the newest
   * seen, in order. A notification without Observe, or with an error code, is the last (§3.2).
   */
  async observe(
    peer: PeerAddress,
    path: string,
    onNotification: (notification: CoapMessage) => void,
    options: ObserveRequestOptions = {},
  ): Promise<Observation> {
    const extra = options.options ?? [];
    const request = (value: number) => ({
      code: CODE_GET,
      options: [...pathOptions(path), ...extra, uintOption(OPT_OBSERVE, value)],
      payload: new Uint8Array(0),
      confirmable: options.confirmable ?? true,
    });
    const order = new Ordering(this.clock);
    let active = true;
    let forget: (() => void) | undefined;
    const end = () => {
      active = false;
      forget?.();
    };
    const registered = await this.exchanges.observe(peer, request(0), (m) => {
      if (!active || !order.accept(m)) return;
      if (optionUint(m, OPT_OBSERVE) === undefined || codeClass(m.code) !== 2) end();
      onNotification(m);
    });
    forget = registered.forget;
    const { response, token } = registered;
    order.accept(response);
    if (optionUint(response, OPT_OBSERVE) === undefined || codeClass(response.code) !== 2) end();
    else if (!active) forget(); // a final notification overtook the registration response
    return {
      response,
      get active() {
        return active;
      },
      cancel: async (how = {}) => {
        if (!active) return;
        end();
        if (how.passive) return;
        await this.exchanges.requestWithToken(peer, token, request(1));
      },
    };
  }
}

/** §3.4 ordering: remembers the newest sequence number seen and when it arrived. */
class Ordering {
  private newest: { value: number; at: number } | undefined;

  constructor(private readonly clock: Clock) {}

  accept(m: CoapMessage): boolean {
    const value = optionUint(m, OPT_OBSERVE);
    if (value === undefined) return true; // a final response is never stale
    const now = this.clock.now();
    if (this.newest && !isNewer(this.newest.value, this.newest.at, value, now)) return false;
    this.newest = { value, at: now };
    return true;
  }
}

const observerKey = (peer: PeerAddress, token: Uint8Array): string => {
  let hex = "";
  for (const b of token) hex += (b < 16 ? "0" : "") + b.toString(16);
  return `${peer}#${hex}`;
};
