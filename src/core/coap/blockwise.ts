/**
 * Block-wise transfers (RFC 7959): bodies larger than one datagram, as Block1 (request body) and
 * Block2 (response body) blocks. Two small classes, one per side:
 *
 * - `BlockwiseServer` wraps the request handler. It reassembles Block1 requests per
 *   (peer, Uri-Path, Request-Tag) — never per token, because libcoap and others change the token on
 *   every block (RFC 9175 §3.3) — and serves large responses block by block from a short-lived copy.
 * - `BlockwiseClient` sits on the request path. It sends a large request body as Block1 blocks tagged
 *   with a Request-Tag and fetches every Block2 block of a large response, returning one message.
 *
 * Neither knows about message ids, retransmission or Observe: each block is an ordinary exchange of
 * the ExchangeLayer below, with its own token. Block-wise Observe notifications (§2.6) are not done.
 *
 * Any datagram can start a Block1 body or make the server keep a Block2 copy, so both tables are
 * capped (CoapLimits): when full, the least recently used entry is evicted — a flood of never-finished
 * transfers from spoofed ports displaces other idle ones, not a transfer that keeps moving — and error
 * responses are never cut into blocks (a 4.xx/5.xx payload is a short diagnostic, at most one block).
 */

import { equalBytes, toHex, utf8Encode } from "../bytes.js";
import type { Cancellable, Clock, PeerAddress, Random } from "../interfaces.js";
import type { TimerQueue } from "../timer-queue.js";
import { CoapError } from "./errors.js";
import {
  type ExchangeLayer,
  limitErrorPayload,
  type Request,
  type RequestHandler,
  type Response,
  type ServerRequest,
} from "./exchange-layer.js";
import { type CoapLimits, DEFAULT_COAP_LIMITS } from "./limits.js";
import {
  type BlockValue,
  blockOption,
  blockSize,
  type CoapMessage,
  type CoapOption,
  findOption,
  optionUint,
  readBlock,
  uintOption,
  uriPath,
} from "./message.js";
import {
  CODE_BAD_REQUEST,
  CODE_CONTINUE,
  CODE_FETCH,
  CODE_GET,
  CODE_REQUEST_ENTITY_INCOMPLETE,
  CODE_REQUEST_ENTITY_TOO_LARGE,
  codeClass,
  OPT_BLOCK1,
  OPT_BLOCK2,
  OPT_ETAG,
  OPT_OBSERVE,
  OPT_REQUEST_TAG,
  OPT_SIZE1,
  OPT_SIZE2,
} from "./registry.js";

export interface BlockwiseOptions {
  /** Our block size exponent: blocks of 2^(szx + 4) bytes, 0 (16 B) … 6 (1024 B). Default 6. */
  readonly szx: number;
  /**
   * Largest request body the server reassembles (beyond: 4.13 with Size1, RFC 7959 §2.9.3) and the
   * largest response body the client collects. Default 16 KiB.
   */
  readonly maxBodyBytes: number;
  /** How long an incomplete Block1 assembly is kept after its last block. Default EXCHANGE_LIFETIME. */
  readonly assemblyLifetimeMs: number;
  /** How long a response cut into Block2 blocks is kept for its later blocks. Default 60 s. */
  readonly representationLifetimeMs: number;
}

export const DEFAULT_BLOCKWISE: Omit<BlockwiseOptions, "assemblyLifetimeMs"> = Object.freeze({
  szx: 6,
  maxBodyBytes: 16 * 1024,
  representationLifetimeMs: 60_000,
});

/** A block-wise transfer the client cannot complete (bad block sequence, changed representation, too large). */
export class BlockwiseError extends CoapError {
  override readonly name: string = "BlockwiseError";
}

const EMPTY = new Uint8Array(0);

// --- server ---------------------------------------------------------------------------------------

interface Assembly {
  readonly peer: PeerAddress;
  readonly chunks: Uint8Array[];
  length: number;
  /** Offset and num of the last block taken, to answer a re-sent block again without taking it twice. */
  lastOffset: number;
  lastNum: number;
  expires: number;
}

interface Representation {
  readonly response: Response;
  readonly etag: Uint8Array;
  /** Body and key: what keeping it costs. */
  readonly bytes: number;
  expires: number;
}

export interface BlockwiseServerStats {
  /** Assemblies dropped because their peer's share or the whole table was full. */
  assembliesEvicted: number;
  /** Representations dropped because the table was full (by count or bytes). */
  representationsEvicted: number;
  /** Responses larger than the byte cap, served without a copy. */
  representationsNotKept: number;
  /** Error responses cut to maxErrorPayloadBytes (or one block, when smaller) on their way out. */
  errorPayloadsCut: number;
}

/**
 * Server side of RFC 7959. Expired assemblies and representations are dropped by one periodic sweep
 * on the endpoint's TimerQueue, not a timer each. Both maps are kept in least-recently-used order
 * (an entry is moved to the end when used), so the first entry is the one to evict.
 */
export class BlockwiseServer {
  readonly stats: BlockwiseServerStats = {
    assembliesEvicted: 0,
    representationsEvicted: 0,
    representationsNotKept: 0,
    errorPayloadsCut: 0,
  };
  private readonly assemblies = new Map<string, Assembly>();
  /** Assembly keys per peer, least recently used first. */
  private readonly assembliesByPeer = new Map<PeerAddress, Set<string>>();
  private assemblyBytes = 0;
  private readonly representations = new Map<string, Representation>();
  private representationBytes = 0;
  private sweep: Cancellable | undefined;

  constructor(
    private readonly timers: TimerQueue,
    private readonly clock: Clock,
    private readonly options: BlockwiseOptions,
    private readonly limits: CoapLimits = DEFAULT_COAP_LIMITS,
  ) {}

  /** The handler the ExchangeLayer calls: blocks in, whole requests to `inner`, blocks out. */
  wrap(inner: RequestHandler): RequestHandler {
    return (request) => this.serve(request, inner);
  }

  /** Incomplete Block1 assemblies and cached Block2 representations held now, and their bytes. */
  get held(): {
    assemblies: number;
    assemblyBytes: number;
    representations: number;
    representationBytes: number;
  } {
    return {
      assemblies: this.assemblies.size,
      assemblyBytes: this.assemblyBytes,
      representations: this.representations.size,
      representationBytes: this.representationBytes,
    };
  }

  private serve(request: ServerRequest, inner: RequestHandler): Response | Promise<Response> {
    const block2 = blockOf(request, OPT_BLOCK2);
    if (block2 && block2.num > 0) return this.laterBlock(request, block2, inner);
    const block1 = blockOf(request, OPT_BLOCK1);
    if (!block1) return then(inner(request), (r) => this.cut(request, r, block2, 0));
    const step = this.takeBlock(request, block1);
    if ("response" in step) return step.response;
    return then(inner(step.complete), (r) =>
      // RFC 7959 §2.3: the response to the final block carries the Block1 option of that block.
      this.cut(request, { ...r, options: [...r.options, blockOption(OPT_BLOCK1, block1)] }, block2, 0),
    );
  }

  /** One Block1 block (RFC 7959 §2.3, §2.9): 2.31, an error, or the whole request. */
  private takeBlock(
    request: ServerRequest,
    b: BlockValue,
  ): { response: Response } | { complete: ServerRequest } {
    const key = assemblyKey(request);
    const size = blockSize(b.szx);
    const offset = b.num * size;
    if (b.more && request.payload.length !== size)
      return {
        response: status(CODE_BAD_REQUEST, "a block other than the last must be full size (RFC 7959 §2.2)"),
      };
    let a = this.assemblies.get(key);
    if (b.num === 0 && a) {
      this.dropAssembly(key); // block 0 starts the body afresh (RFC 9175 §3.4)
      a = undefined;
    }
    if (a && b.more && offset === a.lastOffset && b.num === a.lastNum) return { response: this.proceed(b) };
    if (offset !== (a?.length ?? 0)) {
      // A gap, or a later block with no assembly started (e.g. expired or evicted): §2.9.2.
      this.dropAssembly(key);
      return { response: status(CODE_REQUEST_ENTITY_INCOMPLETE, "block does not continue the body") };
    }
    const announced = optionUint(request, OPT_SIZE1) ?? 0;
    if (
      offset + request.payload.length > this.options.maxBodyBytes ||
      announced > this.options.maxBodyBytes
    ) {
      this.dropAssembly(key);
      // §2.9.3: 4.13 with Size1 telling the largest body we take.
      return {
        response: {
          code: CODE_REQUEST_ENTITY_TOO_LARGE,
          options: [uintOption(OPT_SIZE1, this.options.maxBodyBytes)],
          payload: EMPTY,
        },
      };
    }
    if (!b.more) {
      this.dropAssembly(key);
      const payload = a
        ? concat([...a.chunks, request.payload], offset + request.payload.length)
        : request.payload;
      const options = request.options.filter((o) => !BLOCK1_ONLY.has(o.number));
      return { complete: { ...request, options, payload } };
    }
    if (!a) {
      this.makeRoomForAssembly(request.peer);
      a = { peer: request.peer, chunks: [], length: 0, lastOffset: 0, lastNum: 0, expires: 0 };
      this.assembliesByPeer.set(
        request.peer,
        (this.assembliesByPeer.get(request.peer) ?? new Set()).add(key),
      );
    } else {
      // Moved to the young end of both orders: a transfer that keeps moving is never the one evicted.
      this.assemblies.delete(key);
      const mine = this.assembliesByPeer.get(request.peer)!;
      mine.delete(key);
      mine.add(key);
    }
    this.assemblies.set(key, a);
    a.chunks.push(request.payload);
    a.length += request.payload.length;
    this.assemblyBytes += request.payload.length;
    a.lastOffset = offset;
    a.lastNum = b.num;
    a.expires = this.clock.now() + this.options.assemblyLifetimeMs;
    this.armSweep();
    return { response: this.proceed(b) };
  }

  /**
   * Which peers the server knows (for the gateway: an address with an authenticated session). When the
   * table is full, transfers of unknown peers are evicted first; default: nobody is known.
   */
  trusted: (peer: PeerAddress) => boolean = () => false;

  /**
   * Before a new assembly of `peer`: evicts that peer's least recently continued one when it holds
   * its share, else, when the table is full, the least recently continued of an unknown peer, or of
   * all if every transfer belongs to a known one.
   */
  private makeRoomForAssembly(peer: PeerAddress): void {
    const mine = this.assembliesByPeer.get(peer);
    if (mine && mine.size >= this.limits.maxAssembliesPerPeer) {
      this.dropAssembly(mine.values().next().value!);
      this.stats.assembliesEvicted++;
    }
    while (this.assemblies.size >= this.limits.maxAssemblies) {
      let victim: string | undefined;
      // Oldest first; at most maxAssemblies entries to look at.
      for (const [key, a] of this.assemblies) {
        if (!this.trusted(a.peer)) {
          victim = key;
          break;
        }
      }
      this.dropAssembly(victim ?? this.assemblies.keys().next().value!);
      this.stats.assembliesEvicted++;
    }
  }

  private dropAssembly(key: string): void {
    const a = this.assemblies.get(key);
    if (!a) return;
    this.assemblies.delete(key);
    this.assemblyBytes -= a.length;
    const mine = this.assembliesByPeer.get(a.peer);
    mine?.delete(key);
    if (mine?.size === 0) this.assembliesByPeer.delete(a.peer);
  }

  /** 2.31 Continue echoing the block taken (§2.3). */
  private proceed(b: BlockValue): Response {
    return { code: CODE_CONTINUE, options: [blockOption(OPT_BLOCK1, b)], payload: EMPTY };
  }

  /** A request for Block2 num > 0: from the kept copy, else (safe methods only) computed again. */
  private laterBlock(
    request: ServerRequest,
    b: BlockValue,
    inner: RequestHandler,
  ): Response | Promise<Response> {
    const key = representationKey(request);
    const kept = this.representations.get(key);
    if (kept && kept.expires > this.clock.now()) {
      kept.expires = this.clock.now() + this.options.representationLifetimeMs;
      this.representations.delete(key); // to the young end: in use, not to be evicted
      this.representations.set(key, kept);
      return this.slice(kept, b);
    }
    if (request.code !== CODE_GET && request.code !== CODE_FETCH)
      return status(CODE_REQUEST_ENTITY_INCOMPLETE, "the response to this request is gone");
    const options = request.options.filter((o) => o.number !== OPT_BLOCK2);
    return then(inner({ ...request, options }), (r) => this.cut(request, r, b, b.num));
  }

  /**
   * A response larger than one block is kept and its block `num` returned (block 0 normally). The
   * block size is ours, or smaller when the request asked for smaller (early negotiation, §2.4).
   * An error response is never kept nor cut into blocks: its payload is cut to fit one block (and
   * maxErrorPayloadBytes) instead.
   */
  private cut(
    request: ServerRequest,
    response: Response,
    asked: BlockValue | undefined,
    num: number,
  ): Response {
    const szx = Math.min(this.options.szx, asked?.szx ?? this.options.szx);
    if (codeClass(response.code) >= 4) {
      const short = limitErrorPayload(response, Math.min(blockSize(szx), this.limits.maxErrorPayloadBytes));
      if (short !== response) this.stats.errorPayloadsCut++;
      return short;
    }
    if (response.payload.length <= blockSize(szx) && num === 0) return response;
    // An ETag lets the client notice the representation changing between blocks (§2.4).
    const etag = findOption(response, OPT_ETAG)?.value ?? fnv1a(response.payload);
    const key = representationKey(request);
    const kept: Representation = {
      response,
      etag,
      bytes: response.payload.length + key.length,
      expires: this.clock.now() + this.options.representationLifetimeMs,
    };
    this.dropRepresentation(key);
    if (kept.bytes > this.limits.maxRepresentationBytes) {
      // Served without a copy: later blocks of a GET/FETCH are computed again, others get 4.08.
      this.stats.representationsNotKept++;
    } else {
      while (
        this.representations.size >= this.limits.maxRepresentations ||
        this.representationBytes + kept.bytes > this.limits.maxRepresentationBytes
      ) {
        this.dropRepresentation(this.representations.keys().next().value!);
        this.stats.representationsEvicted++;
      }
      this.representations.set(key, kept);
      this.representationBytes += kept.bytes;
      this.armSweep();
    }
    return this.slice(kept, { num, more: false, szx: asked?.szx ?? szx });
  }

  private dropRepresentation(key: string): void {
    const r = this.representations.get(key);
    if (!r) return;
    this.representations.delete(key);
    this.representationBytes -= r.bytes;
  }

  private slice(kept: Representation, asked: BlockValue): Response {
    const { response, etag } = kept;
    const szx = Math.min(this.options.szx, asked.szx);
    // A client asking with larger blocks than ours gets ours; its num is rescaled (§2.4).
    const num = asked.num * 2 ** (asked.szx - szx);
    const size = blockSize(szx);
    const offset = num * size;
    const total = response.payload.length;
    if (offset >= total && num > 0) return status(CODE_BAD_REQUEST, "block beyond the end of the body");
    const more = offset + size < total;
    const options: CoapOption[] = [
      ...response.options.filter((o) => !BLOCK2_OWN.has(o.number)),
      { number: OPT_ETAG, value: etag },
      blockOption(OPT_BLOCK2, { num, more, szx }),
    ];
    if (num === 0) options.push(uintOption(OPT_SIZE2, total)); // §4: the whole size up front
    return { code: response.code, options, payload: response.payload.subarray(offset, offset + size) };
  }

  private armSweep(): void {
    if (this.sweep) return;
    const period = Math.max(
      1_000,
      Math.min(this.options.assemblyLifetimeMs, this.options.representationLifetimeMs) / 4,
    );
    this.sweep = this.timers.after(period, () => {
      this.sweep = undefined;
      const now = this.clock.now();
      for (const [k, a] of this.assemblies) if (a.expires <= now) this.dropAssembly(k);
      for (const [k, r] of this.representations) if (r.expires <= now) this.dropRepresentation(k);
      if (this.assemblies.size + this.representations.size > 0) this.armSweep();
    });
  }
}

/** Options that describe the Block1 transfer, not the reassembled request. */
const BLOCK1_ONLY: ReadonlySet<number> = /* @__PURE__ */ new Set([OPT_BLOCK1, OPT_SIZE1, OPT_REQUEST_TAG]);
/** Options the Block2 server sets itself on every block. */
const BLOCK2_OWN: ReadonlySet<number> = /* @__PURE__ */ new Set([OPT_BLOCK2, OPT_SIZE2, OPT_ETAG]);

/** RFC 9175 §3.3: blocks belong together by endpoint, resource and Request-Tag (absent = empty tag). */
function assemblyKey(r: ServerRequest): string {
  const tag = findOption(r, OPT_REQUEST_TAG)?.value;
  return `${r.peer}\u0000${r.code}\u0000${uriPath(r)}\u0000${tag ? toHex(tag) : "-"}`;
}

function representationKey(r: ServerRequest): string {
  return `${r.peer}\u0000${uriPath(r)}`;
}

// --- client ---------------------------------------------------------------------------------------

/** Client side of RFC 7959: large request bodies go out as Block1, large responses come back whole. */
export class BlockwiseClient {
  constructor(
    private readonly exchanges: ExchangeLayer,
    private readonly random: Random,
    private readonly options: BlockwiseOptions,
  ) {}

  async request(peer: PeerAddress, request: Request): Promise<CoapMessage> {
    const first =
      request.payload.length > blockSize(this.options.szx)
        ? await this.upload(peer, request)
        : await this.exchanges.request(peer, { ...request, options: this.earlyBlock2(request.options) });
    return this.download(peer, request, first);
  }

  /**
   * Block1 (§2.5): one block per exchange, each with a fresh token and the same Request-Tag
   * (RFC 9175 §3), Size1 on the first. A 2.31 may ask for smaller blocks (late negotiation, §2.5).
   */
  private async upload(peer: PeerAddress, request: Request): Promise<CoapMessage> {
    const body = request.payload;
    const tag: CoapOption = { number: OPT_REQUEST_TAG, value: this.newTag() };
    const base = request.options.filter((o) => !BLOCK_OPTIONS.has(o.number));
    let szx = this.options.szx;
    let offset = 0;
    for (;;) {
      const size = blockSize(szx);
      const num = offset / size;
      const end = Math.min(offset + size, body.length);
      const more = end < body.length;
      const options = [...base, tag, blockOption(OPT_BLOCK1, { num, more, szx })];
      if (num === 0) options.push(uintOption(OPT_SIZE1, body.length));
      const block = { ...request, options: more ? options : this.earlyBlock2(options) };
      const response = await this.exchanges.request(peer, { ...block, payload: body.subarray(offset, end) });
      // The last block's response is the response; anything but 2.31 before it ends the transfer.
      if (!more || response.code !== CODE_CONTINUE) return response;
      const echoed = blockOf(response, OPT_BLOCK1);
      if (echoed && echoed.szx < szx) szx = echoed.szx;
      offset = end;
    }
  }

  /** Block2 (§2.4): follow M=1 with the same request and Block2 num = next, until M=0. */
  private async download(peer: PeerAddress, request: Request, first: CoapMessage): Promise<CoapMessage> {
    let block = blockOf(first, OPT_BLOCK2);
    if (!block?.more) return first;
    if (block.num !== 0) throw new BlockwiseError(`first response block is ${block.num}, not 0`);
    const etag = findOption(first, OPT_ETAG)?.value;
    const base = request.options.filter((o) => !BLOCK_OPTIONS.has(o.number) && o.number !== OPT_OBSERVE);
    const parts = [first.payload];
    let length = first.payload.length;
    while (block.more) {
      const next = length / blockSize(block.szx);
      const options = [...base, blockOption(OPT_BLOCK2, { num: next, more: false, szx: block.szx })];
      const r = await this.exchanges.request(peer, { ...request, options, payload: EMPTY });
      if (codeClass(r.code) !== 2) return r; // the server gave up mid-way: the caller sees why
      const got = blockOf(r, OPT_BLOCK2);
      if (!got || got.num * blockSize(got.szx) !== length)
        throw new BlockwiseError(`expected the block at offset ${length}`);
      const tag = findOption(r, OPT_ETAG)?.value;
      if (etag && (!tag || !equalBytes(tag, etag)))
        throw new BlockwiseError("the representation changed during the transfer (ETag)");
      length += r.payload.length;
      if (length > this.options.maxBodyBytes)
        throw new BlockwiseError(`response body beyond ${this.options.maxBodyBytes} bytes`);
      parts.push(r.payload);
      block = got;
    }
    const options = first.options.filter((o) => o.number !== OPT_BLOCK2 && o.number !== OPT_SIZE2);
    return { ...first, options, payload: concat(parts, length) };
  }

  /**
   * Early negotiation (§2.4): when our blocks are smaller than the 1024-byte default, say so in the
   * request, so the server never sends a response block our link cannot carry.
   */
  private earlyBlock2(options: readonly CoapOption[]): readonly CoapOption[] {
    if (this.options.szx >= 6 || options.some((o) => o.number === OPT_BLOCK2)) return options;
    return [...options, blockOption(OPT_BLOCK2, { num: 0, more: false, szx: this.options.szx })];
  }

  private newTag(): Uint8Array {
    const r = this.random.uint32();
    return Uint8Array.of(r >>> 24, (r >>> 16) & 0xff, (r >>> 8) & 0xff, r & 0xff);
  }
}

const BLOCK_OPTIONS: ReadonlySet<number> = new Set([
  OPT_BLOCK1,
  OPT_BLOCK2,
  OPT_SIZE1,
  OPT_SIZE2,
  OPT_REQUEST_TAG,
]);

// --- helpers --------------------------------------------------------------------------------------

/** A Block1/Block2 option of a message, or undefined when absent or malformed. */
export function blockOf(m: Pick<CoapMessage, "options">, number: number): BlockValue | undefined {
  const o = findOption(m, number);
  return o ? readBlock(o.value) : undefined;
}

/** Applies `f` now for a direct result (the ACK then leaves in the same turn), later for a promise. */
function then<T>(result: T | Promise<T>, f: (value: T) => T): T | Promise<T> {
  return result instanceof Promise ? result.then(f) : f(result);
}

function status(code: number, reason: string): Response {
  return { code, options: [], payload: utf8Encode(reason) };
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** FNV-1a, 32 bits: a cheap, portable ETag for a representation (collisions only cost a refetch). */
function fnv1a(data: Uint8Array): Uint8Array {
  let h = 0x811c9dc5;
  for (const b of data) h = Math.imul(h ^ b, 0x01000193);
  return Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
}
