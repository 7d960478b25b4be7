/** The one error type the codec throws: what went wrong (`code`) and where in the frame (`offset`). */
export type CodecErrorCode =
  | "TRUNCATED" // the frame ends inside an item
  | "TRAILING_BYTES" // bytes after the stanza
  | "BAD_CBOR" // reserved or unsupported CBOR (indefinite lengths, floats, undefined, …)
  | "BAD_STRUCTURE" // valid CBOR that is not a cxmpp frame
  | "UNKNOWN_ID" // a static dictionary id out of range
  | "UNKNOWN_REF" // a session table entry the decoder does not hold
  | "TABLE_CONFLICT" // an insert at an index that holds a different string
  | "TABLE_FULL" // an insert beyond the table limits
  | "BAD_UTF8" // a text string or Huffman literal that is not UTF-8
  | "BAD_HUFFMAN" // a Huffman literal with bad padding or the EOS symbol
  | "BAD_VALUE" // a typed value out of its range
  | "LIMIT" // a configured limit (size, depth, count) exceeded
  | "UNENCODABLE"; // (encoder) the tree cannot be represented (e.g. an empty element name)

export class CodecError extends Error {
  override readonly name = "CodecError";
  constructor(
    readonly code: CodecErrorCode,
    readonly offset: number,
    detail: string,
  ) {
    super(`${code} at byte ${offset}: ${detail}`);
  }
}

// The codec throws from some eighty places: these two spare the commonest a `new` and their code, the
// same words over and over in a tiny node's bundle (and in the source text QuickJS keeps of it).

/** A BAD_STRUCTURE CodecError: valid CBOR that is not a cxmpp frame. */
export function malformed(offset: number, detail: string): CodecError {
  return new CodecError("BAD_STRUCTURE", offset, detail);
}

/** A LIMIT CodecError: a configured limit exceeded. */
export function overLimit(offset: number, detail: string): CodecError {
  return new CodecError("LIMIT", offset, detail);
}
