/**
 * UTF-8 (RFC 3629) in plain ECMAScript, for engines without the Encoding API (QuickJS, XS,
 * Espruino; issue 11). Byte for byte what the WHATWG Encoding Standard's UTF-8 encoder and decoder give,
 * which test/codec/utf8.test.ts checks against Node's implementation of it:
 * - encoding turns a lone surrogate into U+FFFD (EF BF BD), as the Encoding Standard's encoder does;
 * - fatal decoding throws a `TypeError` exactly where the Encoding Standard's fatal UTF-8 decoder does
 *   (overlong forms, surrogates, code points past U+10FFFF, stray or missing continuation bytes, a
 *   sequence cut short); non-fatal decoding puts one U+FFFD per maximal ill-formed subpart, as it does;
 * - a leading byte order mark is text like any other (`ignoreBOM: true`): a decoded string re-encodes to
 *   the same bytes, so two different CoAP options or CBOR strings never decode to the same string.
 */

const fromCharCode = String.fromCharCode;

/** The UTF-8 byte length of `s` (a lone surrogate counts as U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  const n = s.length;
  let size = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) size += 1;
    else {
      size += 2; // 3 bytes for one unit; a surrogate pair is 4 bytes for two
      if (c < 0xdc00 && c >= 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    }
  }
  return size;
}

/**
 * Writes the UTF-8 of `s` into `out` from `at` and returns the number of bytes written. `out` must have
 * room (`utf8Length(s)`, or at most 3 bytes per UTF-16 unit): a `RangeError` otherwise.
 */
export function utf8EncodeInto(s: string, out: Uint8Array, at = 0): number {
  const n = s.length;
  let pos = at;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[pos++] = c;
    } else if (c < 0x800) {
      out[pos++] = 0xc0 | (c >> 6);
      out[pos++] = 0x80 | (c & 0x3f);
    } else {
      if ((c & 0xf800) === 0xd800) {
        const d = s.charCodeAt(i + 1); // NaN past the end: no pair
        if (c < 0xdc00 && (d & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x3ff) << 10) + (d & 0x3ff);
          i++;
          out[pos++] = 0xf0 | (c >> 18);
          out[pos++] = 0x80 | ((c >> 12) & 0x3f);
          out[pos++] = 0x80 | ((c >> 6) & 0x3f);
          out[pos++] = 0x80 | (c & 0x3f);
          continue;
        }
        c = 0xfffd; // a lone surrogate
      }
      out[pos++] = 0xe0 | (c >> 12);
      out[pos++] = 0x80 | ((c >> 6) & 0x3f);
      out[pos++] = 0x80 | (c & 0x3f);
    }
  }
  // Typed-array writes past the end are dropped silently: say so instead.
  if (pos > out.length) throw new RangeError("no room for the UTF-8 of the string");
  return pos - at;
}

/** The UTF-8 of `s`, as `the Encoding Standard's UTF-8 encode of s` gives it. */
export function utf8Encode(s: string): Uint8Array {
  const out = new Uint8Array(utf8Length(s));
  utf8EncodeInto(s, out, 0);
  return out;
}

/** The text of UTF-8 `bytes`: see `utf8DecodeRange`. */
export function utf8Decode(bytes: Uint8Array, fatal = true): string {
  return utf8DecodeRange(bytes, 0, bytes.length, fatal);
}

/** Code units waiting to become a string (non-ASCII text); 2 KiB, reused by every call. */
const UNITS = 1024;
const units = new Uint16Array(UNITS);

/**
 * The text of UTF-8 `bytes[from, to)`. Ill-formed input throws a `TypeError` when `fatal`, and otherwise
 * decodes to U+FFFD, as the Encoding Standard's UTF-8 decoder (fatal or not, BOM kept) does.
 *
 * Strings are made with `String.fromCharCode` taking 16 arguments at a time: on Node.js 20 several
 * times faster than `String.fromCharCode.apply` over a typed array, and no array is allocated; ASCII
 * text goes straight from `bytes` (decoders keep their own fast path for short ASCII strings, e.g.
 * codec/cbor-reader.ts).
 */
export function utf8DecodeRange(bytes: Uint8Array, from: number, to: number, fatal = true): string {
  let i = from;
  while (i < to && bytes[i]! < 0x80) i++;
  const head = asciiText(bytes, from, i);
  if (i === to) return head;
  let text = head;
  let k = 0;
  while (i < to) {
    if (k > UNITS - 2) {
      text += unitText(k);
      k = 0;
    }
    const b = bytes[i]!;
    if (b < 0x80) {
      units[k++] = b;
      i++;
      continue;
    }
    // The WHATWG UTF-8 decoder: a lead byte says how many continuation bytes follow and the first
    // one's range, which rules out overlongs (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
    let need: number;
    let cp: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else {
      // 80-C1, F5-FF: never a lead byte.
      if (fatal) throw notUtf8();
      units[k++] = 0xfffd;
      i++;
      continue;
    }
    let j = i + 1;
    for (; need > 0; need--, j++) {
      if (j >= to) break; // cut short
      const c = bytes[j]!;
      if (c < lo || c > hi) break; // not a continuation byte here: it starts what follows
      cp = (cp << 6) | (c & 0x3f);
      lo = 0x80;
      hi = 0xbf;
    }
    if (need > 0) {
      // One U+FFFD for the bytes taken so far; the byte that broke the sequence is read again.
      if (fatal) throw notUtf8();
      units[k++] = 0xfffd;
      i = j;
      continue;
    }
    i = j;
    if (cp < 0x10000) units[k++] = cp;
    else {
      units[k++] = 0xd7c0 + (cp >> 10); // 0xd800 + ((cp - 0x10000) >> 10)
      units[k++] = 0xdc00 | (cp & 0x3ff);
    }
  }
  return text + unitText(k);
}

function notUtf8(): TypeError {
  return new TypeError("The encoded data was not valid for encoding utf-8");
}

/**
 * `b[from, to)` as a string of those code units: ASCII bytes, or the decoder's `units`. One function
 * for both (a Uint8Array or a Uint16Array at its two call sites), 16 units a call.
 */
function asciiText(b: Uint8Array | Uint16Array, from: number, to: number): string {
  let s = "";
  let i = from;
  for (; i + 16 <= to; i += 16) {
    s += fromCharCode(
      b[i]!,
      b[i + 1]!,
      b[i + 2]!,
      b[i + 3]!,
      b[i + 4]!,
      b[i + 5]!,
      b[i + 6]!,
      b[i + 7]!,
      b[i + 8]!,
      b[i + 9]!,
      b[i + 10]!,
      b[i + 11]!,
      b[i + 12]!,
      b[i + 13]!,
      b[i + 14]!,
      b[i + 15]!,
    );
  }
  for (; i + 4 <= to; i += 4) s += fromCharCode(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!);
  for (; i < to; i++) s += fromCharCode(b[i]!);
  return s;
}

/** The first `k` code units of `units` as a string. */
function unitText(k: number): string {
  return asciiText(units, 0, k);
}
