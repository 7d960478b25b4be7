/**
 * The exchange layer (RFC 7252 §5.3): tokens, and matching responses to requests — piggybacked in the
 * ACK, or separate (CON/NON carrying the token). Server side: dispatches requests to one handler and
 * sends its response piggybacked (CON) or as a NON (NON request). It knows nothing of resources,
 * blocks or sessions (aiocoap's TokenManager has the same cut).
 */
import { equalBytes, randomBytes, toHex, utf8Encode } from "../bytes.js";
import type { Logger, PeerAddress, Random } from "../interfaces.js";
import type { TimerQueue } from "../timer-queue.js";
import { ResponseTimeout } from "./errors.js";
import { type CoapLimits, DEFAULT_COAP_LIMITS } from "./limits.js";
import { type CoapMessage, type CoapOption, isUtf8, optionUint } from "./message.js";
import { type Incoming, isRequest, type MessageLayer } from "./message-layer.js";
import {
  CF_TEXT_PLAIN,
  CODE_BAD_OPTION,
  CODE_EMPTY,
  CODE_INTERNAL_SERVER_ERROR,
  CODE_NOT_FOUND,
  CON,
  codeClass,
  isCritical,
  KNOWN_OPTIONS,
  OPT_CONTENT_FORMAT,
  OPT_LOCATION_PATH,
  OPT_LOCATION_QUERY,
  OPT_NO_RESPONSE,
  OPT_PROXY_SCHEME,
  OPT_PROXY_URI,
  OPT_URI_HOST,
  OPT_URI_PATH,
  OPT_URI_QUERY,
} from "./registry.js";

export interface Request {
  readonly code: number;
  readonly options: readonly CoapOption[];
  readonly payload: Uint8Array;
  /** CON (reliable, default) or NON. */
  readonly confirmable?: boolean;
}

export interface Response {
  readonly code: number;
  readonly options: readonly CoapOption[];
  readonly payload: Uint8Array;
}

/**
 * A handler's answer to a NON request that gets no response at all (RFC 7252 §5.2.3 leaves it to the
 * resource; cxmpp's NON readings, docs/PROTOCOL.md §3.3). To a CON request it is an empty ACK.
 */
export const NO_ANSWER: Response = Object.freeze({
  code: CODE_EMPTY,
  options: [],
  payload: new Uint8Array(0),
});

/** A request as the server handler sees it. */
export interface ServerRequest extends Request {
  readonly peer: PeerAddress;
  readonly token: Uint8Array;
  readonly messageId: number;
  readonly confirmable: boolean;
}

export type RequestHandler = (request: ServerRequest) => Response | Promise<Response>;

interface Waiting {
  /** The first response resolves the request; with `notify`, later ones are notifications. */
  readonly resolve: (response: CoapMessage) => void;
  readonly reject: (error: Error) => void;
  timer?: { cancel(): void };
}

export interface ExchangeOptions {
  /** Token bytes for our requests: short tokens save bytes on a constrained link. Default 4. */
  readonly tokenLength: number;
  /** How long to wait for a separate response after an empty ACK or a NON request. */
  readonly responseTimeoutMs: number;
}

/** Options whose values are strings (RFC 7252 §5.10 table 4): they must be UTF-8. */
const STRING_OPTIONS = new Set<number>([
  OPT_URI_HOST,
  OPT_LOCATION_PATH,
  OPT_URI_PATH,
  OPT_URI_QUERY,
  OPT_LOCATION_QUERY,
  OPT_PROXY_URI,
  OPT_PROXY_SCHEME,
]);

export class ExchangeLayer {
  private readonly waiting = new Map<string, Waiting>(); // key: peer + token hex
  /** Error responses whose payload was cut to maxErrorPayloadBytes. */
  errorPayloadsCut = 0;

  constructor(
    private readonly messages: MessageLayer,
    private readonly timers: TimerQueue,
    private readonly random: Random,
    private readonly options: ExchangeOptions,
    protected readonly logger: Logger,
    private readonly limits: Pick<CoapLimits, "maxErrorPayloadBytes"> = DEFAULT_COAP_LIMITS,
  ) {
    messages.onIncoming((incoming) => this.incoming(incoming));
  }

  /** Sends a request and resolves with its response message. */
  async request(peer: PeerAddress, request: Request): Promise<CoapMessage> {
    const token = this.newToken(peer);
    return this.exchange(peer, token, request);
  }

  /**
   * Sends a request whose token stays registered: the first response resolves, every later response
   * with the same token (Observe notifications, RFC 7641) goes to `notify`. `forget` unregisters it;
   * a notification arriving afterwards is answered with RST, which cancels the observation.
   */
  async observe(
    peer: PeerAddress,
    request: Request,
    notify: (response: CoapMessage) => void,
  ): Promise<{ response: CoapMessage; token: Uint8Array; forget: () => void }> {
    const token = this.newToken(peer);
    const response = await this.exchange(peer, token, request, notify);
    return { response, token, forget: () => this.waiting.delete(tokenKey(peer, token)) };
  }

  /**
   * Takes every response from `peer` with `token` until cancelled, sending nothing: for fire-and-forget
   * NON requests whose only answers can be errors (No-Response, RFC 7967 §2), so that an error that
   * comes back reaches the sender instead of an RST. The token must not be one our requests use.
   */
  listen(
    peer: PeerAddress,
    token: Uint8Array,
    onResponse: (response: CoapMessage) => void,
  ): { cancel(): void } {
    const k = tokenKey(peer, token);
    const w: Waiting = { resolve: onResponse, reject: () => this.waiting.delete(k) };
    this.waiting.set(k, w);
    return { cancel: () => this.waiting.get(k) === w && this.waiting.delete(k) };
  }

  /**
   * Sends a request with a token the caller chose, e.g. the token of a forgotten observation to
   * deregister it with GET Observe=1 (RFC 7641 §3.6). The token must not be in use.
   */
  requestWithToken(peer: PeerAddress, token: Uint8Array, request: Request): Promise<CoapMessage> {
    if (this.waiting.has(tokenKey(peer, token)))
      return Promise.reject(new Error("token still in use by an open exchange"));
    return this.exchange(peer, token, request);
  }

  private exchange(
    peer: PeerAddress,
    token: Uint8Array,
    request: Request,
    notify?: (response: CoapMessage) => void,
  ): Promise<CoapMessage> {
    const k = tokenKey(peer, token);
    return new Promise<CoapMessage>((resolve, reject) => {
      let settled = false;
      const w: Waiting = {
        resolve: (r) => {
          if (settled) {
            notify?.(r);
            return;
          }
          settled = true;
          w.timer?.cancel();
          if (!notify) this.waiting.delete(k);
          resolve(r);
        },
        reject: (e) => {
          w.timer?.cancel();
          this.waiting.delete(k);
          reject(e);
        },
      };
      this.waiting.set(k, w);
      const message = { code: request.code, token, options: request.options, payload: request.payload };
      const awaitSeparate = () => {
        w.timer = this.timers.after(this.options.responseTimeoutMs, () =>
          w.reject(new ResponseTimeout(`no response from ${peer}`)),
        );
      };
      if (request.confirmable === false) {
        this.messages.sendNonConfirmable(message, peer);
        awaitSeparate();
        return;
      }
      this.messages.sendConfirmable(message, peer).then(
        (ack) => {
          if (ack.code === CODE_EMPTY)
            awaitSeparate(); // separate response follows (§5.2.2)
          else if (equalBytes(ack.token, token)) w.resolve(ack);
          else w.reject(new Error("piggybacked response with a foreign token"));
        },
        (error: Error) => w.reject(error),
      );
    });
  }

  private newToken(peer: PeerAddress): Uint8Array {
    for (;;) {
      const token = randomBytes(this.random, this.options.tokenLength);
      if (!this.waiting.has(tokenKey(peer, token))) return token;
    }
  }

  private incoming(incoming: Incoming): void {
    const { message, peer } = incoming;
    if (isRequest(message.code)) {
      this.serve(incoming);
      return;
    }
    if (codeClass(message.code) >= 2) {
      // A separate response or a notification (CON or NON with our token).
      const w = this.waiting.get(tokenKey(peer, message.token));
      if (!w) {
        incoming.reset(); // unknown token: reject (RFC 7252 §5.3.2)
        return;
      }
      incoming.acknowledge();
      w.resolve(message);
      return;
    }
    incoming.reset(); // reserved code classes (1, 6, 7)
  }

  /**
   * Answers a request that reaches this layer: a client's (no handler: ServerExchangeLayer has one)
   * with 4.04, or 4.02 for an option no handler could read.
   */
  protected serve(incoming: Incoming): void {
    this.reply(
      incoming,
      badOption(incoming.message) ?? { code: CODE_NOT_FOUND, options: [], payload: new Uint8Array(0) },
    );
  }

  /** Sends `answer` to the request `incoming`: piggybacked (CON) or as a NON, unless No-Response asks for none. */
  protected reply(incoming: Incoming, answer: Response): void {
    const { message, peer } = incoming;
    const confirmable = message.type === CON;
    // However a handler got there, an error answer stays a short diagnostic (CoapLimits).
    const response = limitErrorPayload(answer, this.limits.maxErrorPayloadBytes);
    if (response !== answer) this.errorPayloadsCut++;
    if (response === NO_ANSWER || suppressed(message, response.code)) {
      // No-Response (RFC 7967 §2): the client is not interested in this class of answer.
      if (confirmable) incoming.acknowledge();
      return;
    }
    if (confirmable) incoming.acknowledge(response);
    else {
      const { code, options, payload } = response;
      this.messages.sendNonConfirmable({ code, token: message.token, options, payload }, peer);
    }
  }

  /** Open client exchanges (requests awaiting a response, and observations). */
  get open(): number {
    return this.waiting.size;
  }
}

/**
 * RFC 7252 §5.4.1: an unrecognised critical option in a request gets 4.02 Bad Option; so does a string
 * option (§3.2) that is not UTF-8, which no handler could read (§5.4.1 treats a malformed critical
 * option like an unrecognised one).
 */
function badOption(message: CoapMessage): Response | undefined {
  const bad = message.options.find(
    (o) =>
      (isCritical(o.number) && !KNOWN_OPTIONS.has(o.number)) ||
      (STRING_OPTIONS.has(o.number) && !isUtf8(o.value)),
  );
  return bad && { code: CODE_BAD_OPTION, options: [], payload: utf8Encode(`option ${bad.number}`) };
}

/**
 * The exchange layer of a server (CoapEndpoint's): requests go to one handler. Apart from
 * ExchangeLayer so that a client (the tiny node) carries none of it.
 */
export class ServerExchangeLayer extends ExchangeLayer {
  private handler: RequestHandler = () => ({ code: CODE_NOT_FOUND, options: [], payload: new Uint8Array(0) });

  /** The server side: one handler for every request that reaches this endpoint. */
  handle(handler: RequestHandler): void {
    this.handler = handler;
  }

  /**
   * Answers a request. A handler that returns its response directly is answered in the same turn (the
   * ACK leaves before anything else happens); one that returns a promise is answered when it settles.
   */
  protected override serve(incoming: Incoming): void {
    const { message, peer } = incoming;
    const reply = (answer: Response) => this.reply(incoming, answer);
    const failed = (error: unknown) => {
      this.logger.log("error", "coap.handler_failed", { peer, error: String(error) });
      reply({ code: CODE_INTERNAL_SERVER_ERROR, options: [], payload: new Uint8Array(0) });
    };
    const bad = badOption(message);
    if (bad) {
      reply(bad);
      return;
    }
    let result: Response | Promise<Response>;
    try {
      result = this.handler({
        code: message.code,
        options: message.options,
        payload: message.payload,
        peer,
        token: message.token,
        messageId: message.messageId,
        confirmable: message.type === CON,
      });
    } catch (error) {
      failed(error);
      return;
    }
    if (result instanceof Promise) result.then(reply, failed);
    else reply(result);
  }
}

const ELLIPSIS = utf8Encode("…");

/**
 * A 4.xx/5.xx response with at most `maxBytes` of payload: the same object when it already fits. A
 * diagnostic (no Content-Format, or text/plain; RFC 7252 §5.5.2) is cut at a UTF-8 character boundary
 * and ends with "…"; a payload in another format loses it and its Content-Format, since a cut
 * representation would not parse. Success responses are returned as they are.
 */
export function limitErrorPayload(response: Response, maxBytes: number): Response {
  if (codeClass(response.code) < 4 || response.payload.length <= maxBytes) return response;
  const format = optionUint(response, OPT_CONTENT_FORMAT);
  if (format !== undefined && format !== CF_TEXT_PLAIN) {
    const options = response.options.filter((o) => o.number !== OPT_CONTENT_FORMAT);
    return { ...response, options, payload: new Uint8Array(0) };
  }
  const room = maxBytes >= ELLIPSIS.length * 2 ? maxBytes - ELLIPSIS.length : maxBytes;
  let end = room;
  // Back over UTF-8 continuation bytes (10xxxxxx): never split a character.
  while (end > 0 && (response.payload[end]! & 0xc0) === 0x80) end--;
  const payload = new Uint8Array(end + (room < maxBytes ? ELLIPSIS.length : 0));
  payload.set(response.payload.subarray(0, end));
  if (room < maxBytes) payload.set(ELLIPSIS, end);
  return { ...response, payload };
}

/** RFC 7967 §2.1: bit 2 suppresses 2.xx, bit 8 4.xx, bit 16 5.xx responses. */
function suppressed(request: CoapMessage, code: number): boolean {
  const option = request.options.find((o) => o.number === OPT_NO_RESPONSE);
  if (!option) return false;
  let mask = 0;
  for (const b of option.value) mask = mask * 256 + b;
  const cls = codeClass(code);
  return (
    (cls === 2 && (mask & 2) !== 0) || (cls === 4 && (mask & 8) !== 0) || (cls === 5 && (mask & 16) !== 0)
  );
}

function tokenKey(peer: PeerAddress, token: Uint8Array): string {
  return `${peer}#${toHex(token)}`;
}
