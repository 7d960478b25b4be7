/**
 * The client half of a CoAP endpoint (endpoint.ts draws the whole stack): MessageLayer, ExchangeLayer,
 * BlockwiseClient and ObserveClient on one datagram transport, without the server layers
 * (BlockwiseServer, ObserveServer). A node that only ever sends requests — the tiny node — builds this
 * one and carries no server code; a request that reaches it anyway gets the ExchangeLayer's default
 * answer, 4.04. `CoapEndpoint` (endpoint.ts) extends it with the server side.
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
import { BlockwiseClient, type BlockwiseOptions, DEFAULT_BLOCKWISE } from "./blockwise.js";
import { ExchangeLayer, type ExchangeOptions, type Request } from "./exchange-layer.js";
import { type CoapLimits, resolveCoapLimits } from "./limits.js";
import type { CoapMessage } from "./message.js";
import { MessageLayer } from "./message-layer.js";
import {
  type Observation,
  ObserveClient,
  type ObserveRequestOptions,
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
  /** The server side's (CoapEndpoint); a CoapClientEndpoint ignores it. */
  readonly observe?: Readonly<Partial<ObserveServerOptions>>;
  /** Caps on the tables unauthenticated peers can fill; what is left out keeps its default. */
  readonly limits?: Readonly<Partial<CoapLimits>>;
}
export class CoapClientEndpoint {
  readonly timers: TimerQueue;
  readonly messages: MessageLayer;
  readonly exchanges: ExchangeLayer;
  readonly transmission: TransmissionParameters;
  readonly limits: CoapLimits;
  readonly blockwise: BlockwiseOptions;
  readonly blockClient: BlockwiseClient;
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
    this.exchanges = this.newExchanges(
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
    this.blockClient = new BlockwiseClient(this.exchanges, options.random, this.blockwise);
    this.observations = new ObserveClient(this.exchanges, options.clock);
  }

  /** The exchange layer: a client's answers every request 4.04 (CoapEndpoint makes a server's). */
  protected newExchanges(...args: ConstructorParameters<typeof ExchangeLayer>): ExchangeLayer {
    return new ExchangeLayer(...args);
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
