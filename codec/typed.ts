/**
 * Typed values: strings the codec can carry in binary because they render back byte-identical.
 * Each `parse*` returns undefined unless `render*(parse*(s)) === s` holds exactly (checked, not assumed),
 * so `41.70` stays `41.70` and `+1` or `007` simply stay strings.
 */

const INT_RE = /^-?(?:0|[1-9][0-9]{0,15})$/;
const DEC_RE = /^(-?)(0|[1-9][0-9]{0,14})\.([0-9]{1,9})$/;
const TS_RE =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?$/;
const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
const HEX_RE = /^(?:[0-9a-f]{2}){4,}$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function parseInteger(s: string): number | undefined {
  if (s.length === 0 || s.length > 17 || !INT_RE.test(s) || s === "-0") return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function renderInteger(n: number): string {
  return String(n);
}

/** A decimal `m × 10^e` (e < 0), as RFC 8949 §3.4.4 decimal fractions carry it. */
export interface Decimal {
  readonly exponent: number;
  readonly mantissa: number;
}

export function parseDecimal(s: string): Decimal | undefined {
  const m = DEC_RE.exec(s);
  if (!m) return undefined;
  const digits = `${m[2]}${m[3]}`;
  const mantissa = Number(digits) * (m[1] === "-" ? -1 : 1);
  if (!Number.isSafeInteger(mantissa) || (mantissa === 0 && m[1] === "-")) return undefined;
  const d = { exponent: -m[3]!.length, mantissa };
  return renderDecimal(d) === s ? d : undefined;
}

export function renderDecimal(d: Decimal): string {
  const scale = -d.exponent;
  const negative = d.mantissa < 0;
  const digits = String(Math.abs(d.mantissa)).padStart(scale + 1, "0");
  const cut = digits.length - scale;
  return `${negative ? "-" : ""}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

/** An XEP-0082 DateTime: seconds since the epoch of the written wall time, zone, optional fraction. */
export interface Timestamp {
  readonly seconds: number;
  /** Minutes east of UTC, null for `Z`, false for no zone designator (xs:dateTime local time). */
  readonly zone: number | null | false;
  readonly fraction: number;
  readonly fractionDigits: number;
}

export function parseTimestamp(s: string): Timestamp | undefined {
  const m = TS_RE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac, zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (!Number.isFinite(ms) || Number(y) < 1000) return undefined;
  let zoneMinutes: number | null | false = null;
  if (zone === undefined) zoneMinutes = false;
  else if (zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    zoneMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
    if (zoneMinutes === 0 && zone[0] === "-") return undefined; // "-00:00" would come back as "+00:00"
  }
  const t: Timestamp = {
    seconds: ms / 1000,
    zone: zoneMinutes,
    fraction: frac === undefined ? 0 : Number(frac),
    fractionDigits: frac === undefined ? 0 : frac.length,
  };
  return renderTimestamp(t) === s ? t : undefined;
}

const pad2 = (n: number): string => String(n).padStart(2, "0");

export function renderTimestamp(t: Timestamp): string {
  const date = new Date(t.seconds * 1000);
  let out = `${String(date.getUTCFullYear()).padStart(4, "0")}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}T${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}`;
  if (t.fractionDigits > 0) out += `.${String(t.fraction).padStart(t.fractionDigits, "0")}`;
  if (t.zone === false) return out;
  if (t.zone === null) return `${out}Z`;
  const abs = Math.abs(t.zone);
  return `${out}${t.zone < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** Days since 1970-01-01 (RFC 8943 tag 100) for an XEP-0082 Date. */
export function parseDate(s: string): number | undefined {
  const m = DATE_RE.exec(s);
  if (!m || Number(m[1]) < 1000) return undefined;
  const days = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 86_400_000;
  return Number.isSafeInteger(days) && renderDate(days) === s ? days : undefined;
}

export function renderDate(days: number): string {
  const date = new Date(days * 86_400_000);
  return `${String(date.getUTCFullYear()).padStart(4, "0")}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}`;
}

/** Lowercase hex of at least 4 bytes (hashes, keys, long ids). */
export function parseHex(s: string): Uint8Array | undefined {
  if (s.length < 8 || !HEX_RE.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function renderHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += (bytes[i]! < 16 ? "0" : "") + bytes[i]!.toString(16);
  return s;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Canonical padded base64 (RFC 4648 §4) of at least 8 characters; non-canonical forms stay strings. */
export function parseBase64(s: string): Uint8Array | undefined {
  if (s.length < 8 || !B64_RE.test(s)) return undefined;
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const n =
      (B64_INDEX[s.charCodeAt(i)]! << 18) |
      (B64_INDEX[s.charCodeAt(i + 1)]! << 12) |
      (Math.max(B64_INDEX[s.charCodeAt(i + 2)]!, 0) << 6) |
      Math.max(B64_INDEX[s.charCodeAt(i + 3)]!, 0);
    if (o < out.length) out[o++] = (n >>> 16) & 0xff;
    if (o < out.length) out[o++] = (n >>> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  return renderBase64(out) === s ? out : undefined;
}

export function renderBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    s += B64[a >>> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >>> 4)]!;
    s += b === undefined ? "=" : B64[((b & 15) << 2) | ((c ?? 0) >>> 6)]!;
    s += c === undefined ? "=" : B64[c & 63]!;
  }
  return s;
}

export function parseUuid(s: string): Uint8Array | undefined {
  return s.length === 36 && UUID_RE.test(s) ? parseHex(s.replace(/-/g, "")) : undefined;
}

export function renderUuid(bytes: Uint8Array): string {
  const h = renderHex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A JID split per RFC 7622 §3.1 at the first '@' and the first '/' after the domain; undefined if not one. */
export interface JidParts {
  readonly local: string | null;
  readonly domain: string;
  readonly resource: string | null;
}

export function splitJid(s: string): JidParts | undefined {
  const slash = s.indexOf("/");
  const bare = slash < 0 ? s : s.slice(0, slash);
  const at = bare.indexOf("@");
  const domain = at < 0 ? bare : bare.slice(at + 1);
  if (domain === "" || !domain.includes(".") || /[\s@<>'"]/.test(domain)) return undefined;
  if (at === 0 || slash === s.length - 1) return undefined;
  if (at < 0 && slash < 0) return undefined; // a bare domain is cheaper as a plain string
  return {
    local: at < 0 ? null : bare.slice(0, at),
    domain,
    resource: slash < 0 ? null : s.slice(slash + 1),
  };
}

export function joinJid(p: JidParts): string {
  return `${p.local === null ? "" : `${p.local}@`}${p.domain}${p.resource === null ? "" : `/${p.resource}`}`;
}

/** The seconds tags 1 and 10 carry: the years 1000-9999 (FORMAT.md §5.3). */
export const MIN_SECONDS = -30_610_224_000;
export const MAX_SECONDS = 253_402_300_799;

/**
 * A delta (FORMAT.md §6.6: an int overriding a number or time) applied to `base`: an integer (tag 8's rendering) plus `d`; a decimal
 * (tag 4's rendering) with `d` added to its mantissa, same fraction digits; a date-time (tag 1 or 10's
 * rendering) `d` seconds later, same zone and fraction. Undefined when `base` is none of these or the
 * result leaves the range its tag allows.
 */
export function applyDelta(base: string, d: number): string | undefined {
  const n = parseInteger(base);
  if (n !== undefined) {
    const r = n + d;
    return Number.isSafeInteger(r) ? renderInteger(r) : undefined;
  }
  const dec = parseDecimal(base);
  if (dec !== undefined) {
    const m = dec.mantissa + d;
    return Number.isSafeInteger(m) ? renderDecimal({ exponent: dec.exponent, mantissa: m }) : undefined;
  }
  const t = parseTimestamp(base);
  if (t !== undefined) {
    const s = t.seconds + d;
    return s >= MIN_SECONDS && s <= MAX_SECONDS ? renderTimestamp({ ...t, seconds: s }) : undefined;
  }
  return undefined;
}

/** Whether a delta may apply to `base` (FORMAT.md §6.6): an integer, a decimal or a date-time. */
export function isDeltaBase(base: string): boolean {
  return (
    parseInteger(base) !== undefined || parseDecimal(base) !== undefined || parseTimestamp(base) !== undefined
  );
}

/** The `d` for which `applyDelta(base, d) === value`, or undefined when there is none. */
export function deltaOf(base: string, value: string): number | undefined {
  let d: number | undefined;
  const n = parseInteger(base);
  if (n !== undefined) {
    const v = parseInteger(value);
    if (v !== undefined) d = v - n;
  } else {
    const dec = parseDecimal(base);
    if (dec !== undefined) {
      const v = parseDecimal(value);
      if (v !== undefined && v.exponent === dec.exponent) d = v.mantissa - dec.mantissa;
    } else {
      const t = parseTimestamp(base);
      const v = t === undefined ? undefined : parseTimestamp(value);
      if (t !== undefined && v !== undefined) d = v.seconds - t.seconds;
    }
  }
  // Checked, not assumed (zone, fraction and digits must match too): the rendering is the contract.
  return d !== undefined && Number.isSafeInteger(d) && applyDelta(base, d) === value ? d : undefined;
}
