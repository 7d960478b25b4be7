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
 * Every table a peer can fill without authenticating (deduplication, Block1 assemblies, Block2 copies,
 * observers) is capped by `limits` (coap/limits.ts); `tables()` shows their sizes and evictions.
 */
import {
  type Clock,
  type DatagramTransport,
  type Logger,
  type PeerAddress,
  type Random,
  type Scheduler,
  silentLogger,
} from "../interfaces.js";
import { TimerQueue } from "../timer-queue.js";
import { BlockwiseClient, type BlockwiseOptions, BlockwiseServer, DEFAULT_BLOCKWISE } from "./blockwise.js";
import {
  ExchangeLayer,
  type ExchangeOptions,
  type Request,
  type RequestHandler,
  type Response,
} from "./exchange-layer.js";
import { type CoapLimits, type CoapTables, resolveCoapLimits } from "./limits.js";
import type { CoapMessage } from "./message.js";
import { MessageLayer } from "./message-layer.js";
import {
  DEFAULT_OBSERVE_SERVER,
  type Observation,
  ObserveClient,
  type ObserveRequestOptions,
  ObserveServer,
  type ObserveServerOptions,
} from "./observe.js";
import { DEFAULT_TRANSMISSION, type TransmissionParameters } from "./registry.js";

export interface EndpointOptions {
  readonly transport: DatagramTransport;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly logger?: Logger;
  readonly transmission?: Readonly<Partial<TransmissionParameters>>;
  readonly exchange?: Readonly<Partial<ExchangeOptions>>;
  /** Block size and limits (RFC 7959); assemblies expire after EXCHANGE_LIFETIME unless set. */
  readonly blockwise?: Readonly<Partial<BlockwiseOptions>>;
  readonly observe?: Readonly<Partial<ObserveServerOptions>>;
  /** Caps on the tables unauthenticated peers can fill; what is left out keeps its default. */
  readonly limits?: Readonly<Partial<CoapLimits>>;
}

export class CoapEndpoint {
  readonly timers: TimerQueue;
  readonly messages: MessageLayer;
  readonly exchanges: ExchangeLayer;
  readonly transmission: TransmissionParameters;
  readonly limits: CoapLimits;
  readonly blockwise: BlockwiseOptions;
  readonly blockServer: BlockwiseServer;
  readonly blockClient: BlockwiseClient;
  readonly observers: ObserveServer;
  readonly observations: ObserveClient;

  constructor(options: EndpointOptions) {
    const logger = options.logger ?? silentLogger;
    this.transmission = deriveLifetimes(
      { ...DEFAULT_TRANSMISSION, ...options.transmission },
      options.transmission ?? {},
    );
    this.limits = resolveCoapLimits(options.limits);
    this.timers = new TimerQueue(options.clock, options.scheduler);
    this.messages = new MessageLayer(
      options.transport,
      this.timers,
      options.clock,
      options.random,
      this.transmission,
      logger,
      this.limits,
    );
    const exchange: ExchangeOptions = {
      tokenLength: 4,
      // MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2) is how long a peer may keep retransmitting its response.
      responseTimeoutMs: maxTransmitWait(this.transmission),
      ...options.exchange,
    };
    this.exchanges = new ExchangeLayer(
      this.messages,
      this.timers,
      options.random,
      exchange,
      logger,
      this.limits,
    );
    this.blockwise = {
      ...DEFAULT_BLOCKWISE,
      assemblyLifetimeMs: this.transmission.exchangeLifetimeMs,
      ...options.blockwise,
    };
    if (!Number.isInteger(this.blockwise.szx) || this.blockwise.szx < 0 || this.blockwise.szx > 6)
      throw new RangeError(`block szx ${this.blockwise.szx} is not 0-6 (RFC 7959 §2.2)`);
    this.blockServer = new BlockwiseServer(this.timers, options.clock, this.blockwise, this.limits);
    this.blockClient = new BlockwiseClient(this.exchanges, options.random, this.blockwise);
    this.observers = new ObserveServer(
      this.messages,
      { ...DEFAULT_OBSERVE_SERVER, ...options.observe },
      logger,
      this.limits,
    );
    this.observations = new ObserveClient(this.exchanges, options.clock);
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

  /** Sends a request, block-wise when its body or its response exceeds one block (RFC 7959). */
  request(peer: PeerAddress, request: Request): Promise<CoapMessage> {
    return this.blockClient.request(peer, request);
  }

  /** Observes `path` on `peer` (RFC 7641); notifications arrive in order, older ones dropped. */
  observe(
    peer: PeerAddress,
    path: string,
    onNotification: (notification: CoapMessage) => void,
    options?: ObserveRequestOptions,
  ): Promise<Observation> {
    return this.observations.observe(peer, path, onNotification, options);
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

  close(): void {
    this.messages.close();
    this.timers.clear();
  }
}

/** MAX_LATENCY, RFC 7252 §4.8.2: the longest a datagram is assumed to be in the network. */
const MAX_LATENCY_MS = 100_000;

/**
 * EXCHANGE_LIFETIME and NON_LIFETIME follow from the other parameters (RFC 7252 §4.8.2) unless given:
 * a peer that retransmits for longer than we remember its message id would be served twice.
 */
export function deriveLifetimes(
  p: TransmissionParameters,
  given: Readonly<Partial<TransmissionParameters>>,
): TransmissionParameters {
  const span = p.ackTimeoutMs * (2 ** p.maxRetransmit - 1) * p.ackRandomFactor; // MAX_TRANSMIT_SPAN
  return {
    ...p,
    exchangeLifetimeMs: given.exchangeLifetimeMs ?? span + 2 * MAX_LATENCY_MS + p.ackTimeoutMs,
    nonLifetimeMs: given.nonLifetimeMs ?? span + MAX_LATENCY_MS,
  };
}

/** MAX_TRANSMIT_WAIT = ACK_TIMEOUT × (2^(MAX_RETRANSMIT + 1) − 1) × ACK_RANDOM_FACTOR (§4.8.2). */
export function maxTransmitWait(p: TransmissionParameters): number {
  return p.ackTimeoutMs * (2 ** (p.maxRetransmit + 1) - 1) * p.ackRandomFactor;
}
