/**
 * Wire constants of the cxmpp frame (FORMAT.md §3): the CBOR major types and simple values it uses, and
 * the CBOR tags with their meaning inside a frame. Registered tags are used where their registered
 * meaning matches (RFC 8949 §3.4, RFC 8943, RFC 9562).
 *
 * Plain constants in a module that imports nothing: esbuild inlines them into bundles (a tiny node's),
 * where the properties of an object, or the constants of a module with imports, stay lookups.
 */

/** CBOR major types (RFC 8949 §3.1). */
export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_TEXT = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;
export const MAJOR_SIMPLE = 7;

/** CBOR simple values (RFC 8949 §3.3). */
export const SIMPLE_FALSE = 20;
export const SIMPLE_TRUE = 21;
export const SIMPLE_NULL = 22;

// The CBOR tags of a frame.
/** RFC 8949 §3.4.2: epoch seconds → XEP-0082 `CCYY-MM-DDThh:mm:ssZ`. */
export const TAG_EPOCH = 1;
/** RFC 8949 §3.4.4 decimal fraction [exponent, mantissa] → `-12.50`. */
export const TAG_DECIMAL = 4;
/** cxmpp: the wrapped value is inserted into the session table at the next index. */
export const TAG_INSERT = 6;
/** cxmpp: a JID as [local|null, domain, resource?]. */
export const TAG_JID = 7;
/** cxmpp: an integer written as canonical decimal text. */
export const TAG_INTEGER = 8;
/**
 * cxmpp: a decimal as one integer x: scale = |x| mod 16 (1-15 fraction digits), mantissa =
 * sign(x) × ⌊|x| / 16⌋. One byte shorter than tag 4 for sensor readings such as `23.4`.
 */
export const TAG_PACKED_DECIMAL = 9;
/** cxmpp: in an element's name position, the element head (name + attributes) becomes a table shape. */
export const TAG_SHAPE = 11;
/** cxmpp: the wrapped element, with everything below it, becomes a table subtree. */
export const TAG_SUBTREE = 13;
/** cxmpp: XEP-0082 DateTime with zone or fraction: [seconds, zoneMinutes|null(Z)|false(none), fraction?, digits?]. */
export const TAG_DATETIME = 10;
/** RFC 8949 §3.4.5.2: bytes written as base64 (RFC 4648 §4, padded). */
export const TAG_BASE64 = 22;
/** RFC 8949 §3.4.5.2: bytes written as lowercase base16. */
export const TAG_BASE16 = 23;
/** RFC 9562 / IANA: 16 bytes written as a lowercase UUID. */
export const TAG_UUID = 37;
/** RFC 8943: days since 1970-01-01 → XEP-0082 `CCYY-MM-DD`. */
export const TAG_DATE = 100;

/** Size of a CBOR head carrying `n` (RFC 8949 §3). */
export function headSize(n: number): number {
  const a = n < 0 ? -1 - n : n;
  return a < 24 ? 1 : a < 256 ? 2 : a < 65_536 ? 3 : a < 4_294_967_296 ? 5 : 9;
}
