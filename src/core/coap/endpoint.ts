/**
 * A CoAP endpoint: the layers stacked on one datagram transport (Californium draws its stack the same
 * way, in the file that assembles it):
 *
 *        request() / observe()            handle(handler)
 *                 │                              ▲
 *        ┌────────┴──────────────────────────────┴────────┐
 *        │ ExchangeLayer   tokens, request/response        │
 *        ├─────────────────────────────────────────────────┤
 *        │ MessageLayer    MIDs, CON/NON/ACK/RST, dedup,   │
 *        │                 retransmission, NSTART          │
 *        ├─────────────────────────────────────────────────┤
 *        │ DatagramTransport (UDP, DTLS, in-memory)        │
 *        └─────────────────────────────────────────────────┘
 *
 * One TimerQueue serves every timer of the endpoint; clock, random and scheduler are injected.
 */
import {
  type Clock,
  type DatagramTransport,
  type Logger,
  type Random,
  type Scheduler,
  silentLogger,
} from "../interfaces.js";
import { TimerQueue } from "../timer-queue.js";
import { ExchangeLayer, type ExchangeOptions } from "./exchange-layer.js";
import { MessageLayer } from "./message-layer.js";
import { DEFAULT_TRANSMISSION, type TransmissionParameters } from "./registry.js";

export interface EndpointOptions {
  readonly transport: DatagramTransport;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly random: Random;
  readonly logger?: Logger;
  readonly transmission?: Readonly<Partial<TransmissionParameters>>;
  readonly exchange?: Readonly<Partial<ExchangeOptions>>;
}

export class CoapEndpoint {
  readonly timers: TimerQueue;
  readonly messages: MessageLayer;
  readonly exchanges: ExchangeLayer;
  readonly transmission: TransmissionParameters;

  constructor(options: EndpointOptions) {
    const logger = options.logger ?? silentLogger;
    this.transmission = deriveLifetimes(
      { ...DEFAULT_TRANSMISSION, ...options.transmission },
      options.transmission ?? {},
    );
    this.timers = new TimerQueue(options.clock, options.scheduler);
    this.messages = new MessageLayer(
      options.transport,
      this.timers,
      options.clock,
      options.random,
      this.transmission,
      logger,
    );
    const exchange: ExchangeOptions = {
      tokenLength: 4,
      // MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2) is how long a peer may keep retransmitting its response.
      responseTimeoutMs: maxTransmitWait(this.transmission),
      ...options.exchange,
    };
    this.exchanges = new ExchangeLayer(this.messages, this.timers, options.random, exchange, logger);
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
