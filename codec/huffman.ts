/**
 * Static canonical Huffman coding for string literals (FORMAT.md §5.2), with a token alphabet.
 *
 * Symbols: 0-255 are bytes of the UTF-8 text; 256…256+K-1 are the dictionary's K tokens (protocol words
 * such as `pubsub`, `conference`, `urn:xmpp:`), each standing for its UTF-8 bytes; 256+K is EOS. As in
 * HPACK (RFC 7541 §5.2) EOS has the all-ones longest code and is never sent: a literal is padded to a byte
 * boundary with 1 bits, so a decoder rejects padding of 8 bits or more, padding that is not all ones,
 * and EOS itself. The encoder picks the tokenisation with the fewest bits (a shortest path over the
 * string); any tokenisation decodes to the same bytes.
 */
import { CodecError, overLimit } from "./errors.js";
import { utf8Encode } from "./utf8.js";

/** Code lengths for `freq`, limited to `maxLength` bits by flattening rare frequencies. */
export function huffmanCodeLengths(freq: readonly number[], maxLength: number): number[] {
  let weights = freq.map((f) => Math.max(f, 1e-9));
  for (;;) {
    const lengths = plainLengths(weights);
    if (Math.max(...lengths) <= maxLength) return lengths;
    const floor = Math.max(...weights) / 2 ** (maxLength - 2);
    weights = weights.map((w) => Math.max(w, floor) * (1 + 1e-12));
  }
}

function plainLengths(weights: readonly number[]): number[] {
  // Two-queue Huffman construction over sorted leaves: O(n log n), deterministic on ties (by symbol).
  const n = weights.length;
  const order = weights.map((_, i) => i).sort((a, b) => weights[a]! - weights[b]! || b - a);
  const parent = new Int32Array(2 * n).fill(-1);
  const weight = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) weight[i] = weights[order[i]!]!;
  let leaf = 0;
  let inner = n;
  let next = n;
  const take = (): number =>
    leaf < n && (inner >= next || weight[leaf]! <= weight[inner]!) ? leaf++ : inner++;
  while (next < 2 * n - 1) {
    const a = take();
    const b = take();
    weight[next] = weight[a]! + weight[b]!;
    parent[a] = next;
    parent[b] = next;
    next++;
  }
  const depth = new Int32Array(2 * n);
  for (let i = 2 * n - 3; i >= 0; i--) depth[i] = depth[parent[i]!]! + 1;
  const lengths = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) lengths[order[i]!] = Math.max(1, depth[i]!);
  return lengths;
}

/** Byte-wise order of tokens `a` and `b` in `bytes` (a prefix first). */
function compareTokens(bytes: Uint8Array, start: Uint16Array | Uint32Array, a: number, b: number): number {
  const i = start[a]!;
  const j = start[b]!;
  const m = start[a + 1]! - i;
  const n = start[b + 1]! - j;
  for (let d = 0; d < m && d < n; d++)
    if (bytes[i + d] !== bytes[j + d]) return bytes[i + d]! - bytes[j + d]!;
  return m - n;
}

/** Bits looked up at once when decoding; longer codes continue bit by bit. */
const TABLE_BITS = 10;

/**
 * Tokens given as bytes already: token t is `bytes[start[t]…start[t + 1]]` for t < count (the dictionary's
 * string pool, whose first strings are the tokens: shared, not copied).
 */
export interface TokenBytes {
  readonly bytes: Uint8Array;
  readonly start: Uint16Array | Uint32Array;
  readonly count: number;
}

/**
 * The tokens (of 2+ bytes) as a trie, flat: what the encoder walks to plan a literal. `plan` used to scan
 * every token sharing the first two bytes (up to 140 for `ur`, i.e. `urn:…`) at each string position; the
 * trie walks each position once along the bytes that match, which cut planInto's share of cold encode
 * time in cxmpp bench codec (cold and warm rounds).
 * Node 0 is the root; for a first byte b0 that starts a token, `pairRow[b0]` is 1 + its row and
 * `pairNode[row * 256 + b1]` the node after the two bytes (0: no token starts so); nodes are numbered
 * breadth first, so node v's children are the nodes `childStart[v] + 1 … childStart[v + 1]`, ascending by
 * their byte, and the edge into node c is labelled `childByte[c − 1]`; `terminal[v]` is 1 + the token
 * ending at v (0: none). Some 13,000 nodes for the dictionary's tokens, ~113 KB (a child-node array
 * took 26 KB more before the breadth-first numbering): made on the first `plan`, so that a peer that
 * only decodes never holds it. `pairRow` keeps the two-byte table to the
 * rows of the ~55 first bytes that start a token (28 KB, where a full 65,536-entry table took 128 KB).
 */
/** What encoding uses beside the lengths. */
interface Encoding {
  readonly codes: Uint32Array;
  /** Bytes of each token. */
  readonly tokenLength: Uint16Array;
  readonly trie: Trie;
}

interface Trie {
  readonly pairRow: Uint8Array;
  readonly pairNode: Uint16Array;
  readonly childStart: Uint16Array;
  readonly childByte: Uint8Array;
  readonly terminal: Uint16Array;
}

export class HuffmanCode {
  readonly eos: number;
  private readonly lengths: Uint8Array;
  /**
   * The tokens' UTF-8 bytes back to back: token t is `tokenBytes[tokenStart[t]…tokenStart[t + 1]]`.
   * One array rather than a Uint8Array per token (some 2,700 objects, each with its buffer).
   */
  private readonly tokenBytes: Uint8Array;
  private readonly tokenStart: Uint16Array | Uint32Array;
  /** What only encoding needs (codes, token lengths, the trie): made on the first `plan` or `emit`. */
  private encoding: Encoding | undefined = undefined;
  private readonly sorted: Uint16Array;
  private readonly countPerLength: Uint16Array;
  private readonly maxLength: number;
  /**
   * TABLE_BITS-bit prefix → symbol * 16 + length, or 0 when the code is longer: 16 bits an entry while
   * there are fewer than 4,096 symbols (the dictionary's 2,942), 2 KB of a tiny node's heap less.
   */
  private readonly table: Uint16Array | Uint32Array;

  constructor(lengths: ArrayLike<number>, tokens: readonly string[] | TokenBytes = []) {
    const n = lengths.length;
    const k = "count" in tokens ? tokens.count : tokens.length;
    if (n !== 257 + k) throw new RangeError("Huffman lengths must cover bytes, tokens and EOS");
    this.eos = n - 1;
    if ("count" in tokens) {
      this.tokenBytes = tokens.bytes;
      this.tokenStart = tokens.start;
    } else {
      // Tokens as strings (the generator, tests): their UTF-8 back to back. Not a hot path, so kept
      // short (the tiny node's bundle carries it).
      const parts = tokens.map((t) => utf8Encode(t));
      const start = new Uint32Array(k + 1);
      for (let i = 0; i < k; i++) start[i + 1] = start[i]! + parts[i]!.length;
      const bytes = new Uint8Array(start[k]!);
      for (let i = 0; i < k; i++) bytes.set(parts[i]!, start[i]!);
      this.tokenBytes = bytes;
      this.tokenStart = start;
    }
    // Built in locals, assigned at the end (shorter in a tiny node's bundle than `this.` everywhere).
    // The dictionary's lengths are a Uint8Array already: kept, not copied.
    const own = lengths instanceof Uint8Array ? lengths : Uint8Array.from(lengths);
    let maxLength = 0;
    for (let s = 0; s < n; s++) if (own[s]! > maxLength) maxLength = own[s]!;
    const countPerLength = new Uint16Array(maxLength + 1);
    for (let s = 0; s < n; s++) countPerLength[own[s]!]! += 1;
    countPerLength[0] = 0;
    // Symbols by code length, then by symbol (a counting sort: one pass instead of one per length).
    const slot = new Uint32Array(maxLength + 2);
    for (let len = 1; len <= maxLength; len++) slot[len + 1] = slot[len]! + countPerLength[len]!;
    const sorted = new Uint16Array(slot[maxLength + 1]!);
    for (let s = 0; s < n; s++) {
      const len = own[s]!;
      if (len > 0) sorted[slot[len]!++] = s;
    }
    this.lengths = own;
    this.maxLength = maxLength;
    this.countPerLength = countPerLength;
    this.sorted = sorted;
    const table = n < 4096 ? new Uint16Array(1 << TABLE_BITS) : new Uint32Array(1 << TABLE_BITS);
    const codes = this.#canonicalCodes();
    for (let s = 0; s < n; s++) {
      const len = own[s]!;
      if (len === 0 || len > TABLE_BITS) continue;
      const first = codes[s]! << (TABLE_BITS - len);
      for (let i = 0; i < 1 << (TABLE_BITS - len); i++) table[first + i] = s * 16 + len;
    }
    this.table = table;
  }

  /** The canonical code of every symbol (FORMAT.md §5.2). */
  #canonicalCodes(): Uint32Array {
    const n = this.lengths.length;
    const next = new Uint32Array(this.maxLength + 2);
    let code = 0;
    for (let len = 1; len <= this.maxLength; len++) {
      code = (code + this.countPerLength[len - 1]!) << 1;
      next[len] = code;
    }
    const codes = new Uint32Array(n);
    for (let s = 0; s < n; s++) {
      const len = this.lengths[s]!;
      if (len > 0) codes[s] = next[len]!++;
    }
    return codes;
  }

  #encoder(): Encoding {
    if (this.encoding === undefined) {
      const k = this.eos - 256;
      const tokenLength = new Uint16Array(k);
      for (let i = 0; i < k; i++) tokenLength[i] = this.tokenStart[i + 1]! - this.tokenStart[i]!;
      this.encoding = { codes: this.#canonicalCodes(), tokenLength, trie: this.#buildTrie(tokenLength) };
    }
    return this.encoding;
  }

  /**
   * Builds the trie, flat, without a Map per node: those ~13,000 Maps and their sorted entry arrays were
   * most of what loading the dictionary allocated. Nodes are numbered breadth first, each level in byte
   * order of the prefixes (so each node's children are consecutive, in ascending byte order): node
   * v's children are nodes `childStart[v] + 1 … childStart[v + 1]`, and the edge into node c is
   * `childByte[c - 1]`, so no child-node array is needed. Taken in byte order (equal tokens by index),
   * the tokens give the nodes of each level in order, and a token adds `length − lcp` nodes (its longest
   * common prefix with the token before it), which sizes every array exactly up front: the build's only
   * temporaries are three arrays of one entry per token. Node numbers differ from an insertion-order
   * build; nothing depends on them.
   */
  #buildTrie(tokenLength: Uint16Array): Trie {
    const lengths = this.lengths;
    const tokenBytes = this.tokenBytes;
    const start = this.tokenStart;
    const k = tokenLength.length;
    let m = 0;
    for (let i = 0; i < k; i++) if (tokenLength[i]! >= 2) m++;
    const multi = new Uint16Array(m);
    let longest = 0;
    for (let i = 0, j = 0; i < k; i++) {
      const length = tokenLength[i]!;
      if (length < 2) continue;
      multi[j++] = i;
      if (length > longest) longest = length;
    }
    multi.sort((a, b) => compareTokens(tokenBytes, start, a, b) || a - b);
    /** lcp[j]: bytes token multi[j] shares with multi[j − 1] (0 for the first). */
    const lcp = new Uint16Array(m);
    let nodes = 1;
    for (let j = 0; j < m; j++) {
      const i = multi[j]!;
      const length = tokenLength[i]!;
      let depth = 0;
      if (j > 0) {
        const p = multi[j - 1]!;
        const shared = Math.min(length, tokenLength[p]!);
        const from = start[i]!;
        const other = start[p]!;
        while (depth < shared && tokenBytes[from + depth] === tokenBytes[other + depth]) depth++;
      }
      lcp[j] = depth;
      nodes += length - depth;
    }
    if (nodes >= 65_536) throw new RangeError("too many Huffman token bytes");
    const childStart = new Uint16Array(nodes + 1);
    const childByte = new Uint8Array(nodes);
    const terminal = new Uint16Array(nodes);
    /** at[j]: the node after the first d − 1 (then d) bytes of token multi[j], level by level. */
    const at = new Uint16Array(m);
    let next = 1;
    for (let d = 1; d <= longest; d++) {
      // Tokens of d bytes or more whose first d bytes differ from those of the last such token before
      // them start a node at depth d: the smallest lcp since that token is below d.
      let gap = 0;
      let first = true;
      let node = 0;
      for (let j = 0; j < m; j++) {
        if (lcp[j]! < gap || first) gap = lcp[j]!;
        const i = multi[j]!;
        const length = tokenLength[i]!;
        if (length < d) continue;
        if (first || gap < d) {
          const parent = at[j]!;
          node = next++;
          childByte[node - 1] = tokenBytes[start[i]! + d - 1]!;
          childStart[parent + 1]! += 1;
        }
        first = false;
        gap = 0xffff;
        at[j] = node;
        if (length === d) {
          // Equal tokens: the cheapest wins, the earliest on a tie (what scanning them in order with a
          // strict `<` chose).
          const held = terminal[node]!;
          if (held === 0 || lengths[256 + i]! < lengths[256 + held - 1]!) terminal[node] = i + 1;
        }
      }
    }
    for (let v = 0; v < nodes; v++) childStart[v + 1]! += childStart[v]!;
    const pairRow = new Uint8Array(256);
    const rows = childStart[1]! - childStart[0]!; // the root's children (nodes 1…rows): at most 256
    const pairNode = new Uint16Array(rows * 256);
    for (let v1 = 1; v1 <= rows; v1++) {
      pairRow[childByte[v1 - 1]!] = v1;
      for (let c = childStart[v1]! + 1; c <= childStart[v1 + 1]!; c++)
        pairNode[(v1 - 1) * 256 + childByte[c - 1]!] = c;
    }
    return { pairRow, pairNode, childStart, childByte, terminal };
  }

  get symbolCount(): number {
    return this.lengths.length;
  }

  /**
   * The cheapest symbol sequence for `bytes` (shortest path, ties to the longest token) and its size
   * in bytes. `symbols` is scratch space of at least bytes.length entries; returns the symbol count.
   */
  plan(
    bytes: Uint8Array,
    symbols: Uint16Array,
    cost: Uint32Array,
    back: Uint16Array,
  ): { count: number; size: number } {
    const n = bytes.length;
    const count = this.planInto(bytes, n, symbols, cost, back);
    return { count, size: (cost[n]! + 7) >>> 3 };
  }

  /**
   * `plan` without allocating (the encoder's hot path): plans the first `n` bytes of `bytes` and returns
   * the symbol count; the literal's size in bytes is then `(cost[n] + 7) >>> 3`. `cost` and `back` need
   * n + 1 entries.
   */
  planInto(bytes: Uint8Array, n: number, symbols: Uint16Array, cost: Uint32Array, back: Uint16Array): number {
    const lengths = this.lengths;
    const { trie, tokenLength } = this.encoding ?? this.#encoder();
    const pairRow = trie.pairRow;
    const pairNode = trie.pairNode;
    const childStart = trie.childStart;
    const childByte = trie.childByte;
    const terminal = trie.terminal;
    cost[0] = 0;
    for (let i = 1; i <= n; i++) cost[i] = 0xffffffff;
    // Relaxation order (byte first, then the tokens starting here) and strict `<` fix the tie-breaks:
    // the test vectors pin the resulting bytes. Tokens starting at one position end at distinct
    // positions, so the order among them does not matter.
    for (let i = 0; i < n; i++) {
      const here = cost[i]!;
      const b = bytes[i]!;
      const single = here + lengths[b]!;
      if (single < cost[i + 1]!) {
        cost[i + 1] = single;
        back[i + 1] = b;
      }
      if (i + 1 >= n) continue;
      const row = pairRow[b]!;
      if (row === 0) continue;
      let v = pairNode[(row - 1) * 256 + bytes[i + 1]!]!;
      if (v === 0) continue;
      let end = i + 2;
      for (;;) {
        const t = terminal[v]!;
        if (t !== 0) {
          const c = here + lengths[255 + t]!;
          if (c < cost[end]!) {
            cost[end] = c;
            back[end] = 255 + t;
          }
        }
        if (end >= n) break;
        const next = bytes[end]!;
        const last = childStart[v + 1]!;
        let e = childStart[v]!;
        while (e < last && childByte[e]! < next) e++;
        if (e === last || childByte[e] !== next) break;
        v = e + 1;
        end++;
      }
    }
    // Walk back from the end to recover the path, then reverse it in place.
    let count = 0;
    for (let j = n; j > 0; ) {
      const s = back[j]!;
      symbols[count++] = s;
      j -= s < 256 ? 1 : tokenLength[s - 256]!;
    }
    for (let a = 0, z = count - 1; a < z; a++, z--) {
      const t = symbols[a]!;
      symbols[a] = symbols[z]!;
      symbols[z] = t;
    }
    return count;
  }

  /** Writes `count` planned symbols into `out` at `offset`; returns the end offset. */
  emit(symbols: Uint16Array, count: number, out: Uint8Array, offset: number): number {
    const lengths = this.lengths;
    const codes = (this.encoding ?? this.#encoder()).codes;
    // Codes are at most 32 bits long in theory but the model caps them far lower (maxLength); whole
    // codes go into the accumulator while they fit beside the < 8 pending bits, else 8 bits at a time.
    const whole = this.maxLength <= 24;
    let acc = 0;
    let nbits = 0;
    let o = offset;
    for (let i = 0; i < count; i++) {
      const s = symbols[i]!;
      let len = lengths[s]!;
      const code = codes[s]!;
      if (whole) {
        acc = (acc << len) | code;
        nbits += len;
        while (nbits >= 8) {
          nbits -= 8;
          out[o++] = (acc >>> nbits) & 0xff;
        }
        acc &= (1 << nbits) - 1;
        continue;
      }
      // Emit MSB first, at most 8 bits at a time so `acc` stays small.
      while (len > 0) {
        const take = Math.min(len, 8);
        len -= take;
        acc = (acc << take) | ((code >>> len) & ((1 << take) - 1));
        nbits += take;
        if (nbits >= 8) {
          nbits -= 8;
          out[o++] = (acc >>> nbits) & 0xff;
          acc &= (1 << nbits) - 1;
        }
      }
    }
    if (nbits > 0) out[o++] = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xff;
    return o;
  }

  /** Convenience: the literal for `bytes` as a new array. */
  encode(bytes: Uint8Array): Uint8Array {
    const symbols = new Uint16Array(bytes.length);
    const { count, size } = this.plan(
      bytes,
      symbols,
      new Uint32Array(bytes.length + 1),
      new Uint16Array(bytes.length + 1),
    );
    const out = new Uint8Array(size);
    this.emit(symbols, count, out, 0);
    return out;
  }

  /**
   * Decodes a literal into `out` (capacity = the string limit); returns the byte length. `offset` is
   * where the literal starts in the frame, for errors.
   */
  decode(data: Uint8Array, offset: number, out: Uint8Array): number {
    const totalBits = data.length * 8;
    let pos = 0; // bit position
    let o = 0;
    while (totalBits - pos >= 8 || (pos < totalBits && !this.#onesFrom(data, pos))) {
      const peek = this.#peek(data, pos);
      const entry = this.table[peek]!;
      let symbol: number;
      let len: number;
      if (entry !== 0) {
        symbol = entry >>> 4;
        len = entry & 15;
      } else {
        ({ symbol, len } = this.#slow(data, pos, offset));
      }
      if (pos + len > totalBits)
        throw new CodecError("BAD_HUFFMAN", offset + (pos >>> 3), "code runs past the end");
      pos += len;
      if (symbol === this.eos)
        throw new CodecError("BAD_HUFFMAN", offset + (pos >>> 3), "EOS symbol inside a literal");
      if (symbol < 256) {
        if (o >= out.length) throw overLimit(offset + (pos >>> 3), "string longer than maxStringBytes");
        out[o++] = symbol;
      } else {
        const from = this.tokenStart[symbol - 256]!;
        const to = this.tokenStart[symbol - 255]!;
        if (o + (to - from) > out.length) {
          throw overLimit(offset + (pos >>> 3), "string longer than maxStringBytes");
        }
        const tokenBytes = this.tokenBytes;
        for (let b = from; b < to; b++) out[o++] = tokenBytes[b]!;
      }
    }
    return o;
  }

  /** True when every bit from `pos` to the end is 1 (valid padding, if fewer than 8 bits). */
  #onesFrom(data: Uint8Array, pos: number): boolean {
    const byte = data[pos >>> 3]!;
    const mask = (1 << (8 - (pos & 7))) - 1;
    return (byte & mask) === mask;
  }

  /** The next TABLE_BITS bits from `pos`, with 1 bits beyond the end (as padding would be). */
  #peek(data: Uint8Array, pos: number): number {
    const i = pos >>> 3;
    const word = ((data[i] ?? 0xff) << 16) | ((data[i + 1] ?? 0xff) << 8) | (data[i + 2] ?? 0xff);
    return (word >>> (24 - (pos & 7) - TABLE_BITS)) & ((1 << TABLE_BITS) - 1);
  }

  /** Canonical decoding one bit at a time (RFC 1951 §3.2.2 order), for codes longer than TABLE_BITS. */
  #slow(data: Uint8Array, start: number, offset: number): { symbol: number; len: number } {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= this.maxLength; len++) {
      const pos = start + len - 1;
      const byte = data[pos >>> 3] ?? 0xff;
      code = (code << 1) | ((byte >>> (7 - (pos & 7))) & 1);
      const count = this.countPerLength[len]!;
      if (code - first < count) return { symbol: this.sorted[index + code - first]!, len };
      index += count;
      first = (first + count) << 1;
    }
    throw new CodecError("BAD_HUFFMAN", offset + (start >>> 3), "invalid code");
  }
}
