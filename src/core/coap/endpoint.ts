/**
 * A CoAP endpoint: the layers stacked on one datagram transport (Californium draws its stack the same
 * way, in the file that assembles it):
 *
 *     request()          observe()              notify()        handle(handler)
 *        │                   │                     │                  ▲
 *  ┌─────┴──────────┐ ┌──────┴─────────┐ ┌─────────┴──────────────────┴─────────┐
 *  │ BlockwiseClient│ │ ObserveClient  │ │ ObserveServer   observers, sequence  │
 *  │ Block1 out,    │ │ §3.4 ordering, │ │                 numbers, NON / CON   │
 *  │ Block2 in      │ │ cancel         │ ├──────────────────────────────────────┤
 *  │ (RFC 7959)     │ │ (RFC 7641)     │ │ BlockwiseServer Block1 reassembly,   │
 *  │                │ │                │ │                 Block2 from a copy   │
 *  ├────────────────┴─┴────────────────┴─┴──────────────────────────────────────┤
 *  │ ExchangeLayer   tokens, request/response matching                          │
 *  ├────────────────────────────────────────────────────────────────────────────┤
 *  │ MessageLayer    MIDs, CON/NON/ACK/RST, dedup, retransmission, NSTART       │
 *  ├────────────────────────────────────────────────────────────────────────────┤
 *  │ DatagramTransport (UDP, DTLS, in-memory)                                   │
 *  └────────────────────────────────────────────────────────────────────────────┘
 *
 * A request handed to `handle` passes BlockwiseServer (whole bodies in, blocks out), then
 * ObserveServer (registration), then the application handler. Notifications skip the ExchangeLayer:
 * they are responses with the observer's token, sent by the MessageLayer. One TimerQueue serves every
 * timer of the endpoint; clock, random and scheduler are injected.
 *
 * The client half (MessageLayer, ExchangeLayer, BlockwiseClient, ObserveClient) is CoapClientEndpoint
 * (client-endpoint.ts), which a node that serves nothing uses alone; CoapEndpoint adds the server layers.
 *
 * Every table a peer can fill without authenticating (deduplication, Block1 assemblies, Block2 copies,
 * observers) is capped by `limits` (coap/limits.ts); `tables()` shows their sizes and evictions.
 */
import { type PeerAddress, silentLogger } from "../interfaces.js";
import { BlockwiseServer } from "./blockwise.js";
import { CoapClientEndpoint, type EndpointOptions } from "./client-endpoint.js";
import {
  type ExchangeLayer,
  type RequestHandler,
  type Response,
  ServerExchangeLayer,
} from "./exchange-layer.js";
import type { CoapTables } from "./limits.js";
import { DEFAULT_OBSERVE_SERVER, ObserveServer } from "./observe.js";

export { deriveLifetimes, type EndpointOptions, maxTransmitWait } from "./client-endpoint.js";

/** The whole endpoint: the client half (client-endpoint.ts) and the server layers above the exchanges. */
export class CoapEndpoint extends CoapClientEndpoint {
  declare readonly exchanges: ServerExchangeLayer;
  readonly blockServer: BlockwiseServer;
  readonly observers: ObserveServer;

  constructor(options: EndpointOptions) {
    super(options);
    this.blockServer = new BlockwiseServer(this.timers, options.clock, this.blockwise, this.limits);
    this.observers = new ObserveServer(
      this.messages,
      { ...DEFAULT_OBSERVE_SERVER, ...options.observe },
      options.logger ?? silentLogger,
      this.limits,
    );
  }

  protected override newExchanges(...args: ConstructorParameters<typeof ExchangeLayer>): ServerExchangeLayer {
    return new ServerExchangeLayer(...args);
  }

  /**
   * The server side: `handler` sees whole request bodies; large responses go out block-wise. Only
   * `observable` paths (default: all) take Observe registrations.
   */
  handle(
    handler: RequestHandler,
    options: {
      readonly observable?: (path: string) => boolean;
      /** Peers the handler knows: when the Block1 table is full, unknown peers' transfers go first. */
      readonly trusted?: (peer: PeerAddress) => boolean;
    } = {},
  ): void {
    if (options.observable) this.observers.observable = options.observable;
    if (options.trusted) this.blockServer.trusted = options.trusted;
    this.exchanges.handle(this.blockServer.wrap(this.observers.wrap(handler)));
  }

  /** Notifies every observer of `path` (RFC 7641 §4.2); returns how many there are. */
  notify(path: string, response: Response, options?: { readonly confirmable?: boolean }): number {
    return this.observers.notify(path, response, options);
  }

  /**
   * The sizes of the tables unauthenticated peers can fill and what was evicted from them: sizes and
   * counters the layers already keep, no scan, so metrics may read it every second.
   */
  tables(): CoapTables {
    const held = this.blockServer.held;
    const block = this.blockServer.stats;
    return {
      dedup: this.messages.remembered,
      dedupBytes: this.messages.rememberedBytes,
      assemblies: held.assemblies,
      assemblyBytes: held.assemblyBytes,
      representations: held.representations,
      representationBytes: held.representationBytes,
      observers: this.observers.count(),
      evicted: {
        dedup: this.messages.stats.dedupEvicted,
        assemblies: block.assembliesEvicted,
        representations: block.representationsEvicted,
        observers: this.observers.stats.evicted,
      },
      observersReplaced: this.observers.stats.replaced,
      representationsNotKept: block.representationsNotKept,
      errorPayloadsCut: this.exchanges.errorPayloadsCut + block.errorPayloadsCut,
      limits: this.limits,
    };
  }
}
