/**
 * CBOR diagnostic notation (RFC 8949 §8) of a frame, for humans and `cxmpp decode`. Reads the frame as
 * generic CBOR (a CBOR sequence, RFC 8742) with the same strict cursor as the decoder.
 */
import {
  CborReader,
  decodeUtf8Range,
  MAJOR_ARRAY,
  MAJOR_BYTES,
  MAJOR_MAP,
  MAJOR_NEGINT,
  MAJOR_TAG,
  MAJOR_TEXT,
  MAJOR_UINT,
} from "./cbor-reader.js";
import { CodecError } from "./errors.js";

const MAX_DEPTH = 64;

export function diagnostic(bytes: Uint8Array): string {
  const r = new CborReader(bytes);
  const items: string[] = [];
  while (!r.done) items.push(item(r, 0));
  return items.join(", ");
}

function item(r: CborReader, depth: number): string {
  if (depth > MAX_DEPTH) throw new CodecError("LIMIT", r.pos, "nesting too deep");
  r.next();
  const head = { major: r.major, value: r.arg, offset: r.start };
  switch (head.major) {
    case MAJOR_UINT:
      return String(head.value);
    case MAJOR_NEGINT:
      return String(-1 - head.value);
    case MAJOR_BYTES: {
      const from = r.skipBody(bytes(r));
      const body = r.data.subarray(from, r.pos);
      let hex = "";
      for (const b of body) hex += b.toString(16).padStart(2, "0");
      return `h'${hex}'`;
    }
    case MAJOR_TEXT:
      return JSON.stringify(decodeUtf8Range(r.data, r.skipBody(bytes(r)), r.pos, head.offset));
    case MAJOR_ARRAY: {
      const parts: string[] = [];
      for (let i = 0; i < head.value; i++) parts.push(item(r, depth + 1));
      return `[${parts.join(", ")}]`;
    }
    case MAJOR_MAP: {
      const parts: string[] = [];
      for (let i = 0; i < head.value; i++) parts.push(`${item(r, depth + 1)}: ${item(r, depth + 1)}`);
      return `{${parts.join(", ")}}`;
    }
    case MAJOR_TAG:
      return `${head.value}(${item(r, depth + 1)})`;
    default:
      return head.value === 20
        ? "false"
        : head.value === 21
          ? "true"
          : head.value === 22
            ? "null"
            : `simple(${head.value})`;
  }
}

function bytes(r: CborReader): number {
  return r.data.length;
}
