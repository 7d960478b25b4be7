/** Limits on what a decoder accepts and an encoder produces. Every field has a safe default. */
export interface CodecLimits {
  /** Largest frame accepted, in bytes. Default 65,536: XMPP servers commonly cap stanzas near this. */
  readonly maxFrameBytes: number;
  /** Deepest element nesting. Default 32 (the corpus needs 12); at most 256, since decoding recurses. */
  readonly maxDepth: number;
  /** Most elements + attributes + text nodes in one stanza. Default 4,096. */
  readonly maxNodes: number;
  /** Longest single string after decoding, in bytes. Default 16,384. */
  readonly maxStringBytes: number;
  /**
   * Most bytes of names, values and text in one decoded stanza. Default 262,144. Bounds what table
   * references can expand to (a small frame may reference the same large entry many times).
   */
  readonly maxStanzaBytes: number;
  /** Session table: most entries (indices are never reused within a session). Default 1,024. */
  readonly maxTableEntries: number;
  /** Session table: most bytes of strings held. Default 16,384. */
  readonly maxTableBytes: number;
  /** Longest string the encoder will insert into the session table. Default 128. */
  readonly maxEntryBytes: number;
}

/** Recursion bound of the decoder and encoder: far below any JavaScript engine's stack. */
export const MAX_DEPTH = 256;

export const DEFAULT_LIMITS: CodecLimits = Object.freeze({
  maxFrameBytes: 65_536,
  maxDepth: 32,
  maxNodes: 4_096,
  maxStringBytes: 16_384,
  maxStanzaBytes: 262_144,
  maxTableEntries: 1_024,
  maxTableBytes: 16_384,
  maxEntryBytes: 128,
});

export function resolveLimits(partial: Readonly<Partial<CodecLimits>> | undefined): CodecLimits {
  // The shared defaults when nothing is overridden: a gateway makes two codecs per session, and a copy
  // each was memory per idle session for nothing (bench session).
  const limits = mergeLimits(DEFAULT_LIMITS, partial, "codec");
  if (limits.maxDepth > MAX_DEPTH) throw new RangeError(`codec limit maxDepth must be at most ${MAX_DEPTH}`);
  return limits;
}

/**
 * `defaults` with `partial` over them, every value a positive integer (a RangeError names the `what`
 * limit that is not); `defaults` itself when nothing is overridden. src/core's CoAP limits use it too.
 */
export function mergeLimits<T extends object>(
  defaults: T,
  partial: Readonly<Partial<T>> | undefined,
  what: string,
): T {
  if (partial === undefined || Object.keys(partial).length === 0) return defaults;
  const limits = { ...defaults, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || (value as number) < 1)
      throw new RangeError(`${what} limit ${key} must be a positive integer`);
  }
  return limits;
}
