/** The pure stanza codec: XML stanza tree ⇄ compact frame. No I/O, no Node.js APIs. */

/** The version of the frame format this codec writes and reads (docs/FORMAT.md's title). */
export const FORMAT_VERSION = 2;

export { clearDecodeMemo, type DecodedFrame, SessionDecoder, StatelessDecoder } from "./decoder.js";
export { diagnostic } from "./diagnostic.js";
export {
  DICTIONARY_V1,
  type DictionaryData,
  type DictionaryLists,
  dictionaryLists,
  StaticDictionary,
} from "./dictionary/index.js";
export {
  type CodecOptions,
  clearLiteralCache,
  type EncodedFrame,
  type SessionCodecOptions,
  SessionEncoder,
  StatelessEncoder,
} from "./encoder.js";
export { CodecError, type CodecErrorCode } from "./errors.js";
export { type CodecLimits, DEFAULT_LIMITS, MAX_DEPTH } from "./limits.js";
export type { Entry as TableEntry, Shape, Subtree } from "./table.js";
export {
  attr,
  el,
  JABBER_CLIENT,
  normalize,
  sameInfoset,
  type XAttr,
  type XElement,
  XML_NS,
  type XNode,
} from "./tree.js";
export { utf8Decode, utf8Encode, utf8Length } from "./utf8.js";
