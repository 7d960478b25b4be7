/** `cxmpp decode HEX|FILE`: a frame as CBOR diagnostic notation and as XML. */
import { existsSync, readFileSync } from "node:fs";
import { CodecError, diagnostic, SessionDecoder, StatelessDecoder } from "../../codec/index.js";
import { toXml } from "../xml/stanza-xml.js";

const HEX = /^(?:[0-9a-fA-F]{2})+$/;

/** Reads the frame from a hex argument, or from a file holding binary or hex. */
export function readFrameArgument(arg: string): Uint8Array {
  const compact = arg.replace(/\s+/g, "");
  if (HEX.test(compact) && !existsSync(arg)) return Uint8Array.from(Buffer.from(compact, "hex"));
  if (!existsSync(arg)) throw new Error(`'${arg}' is neither hex nor a file`);
  const raw = readFileSync(arg);
  const text = raw.toString("latin1").replace(/\s+/g, "");
  return HEX.test(text) ? Uint8Array.from(Buffer.from(text, "hex")) : Uint8Array.from(raw);
}

export async function runDecode(arg: string, opts: { sessionAliases?: string }): Promise<number> {
  let frame: Uint8Array;
  try {
    frame = readFrameArgument(arg);
  } catch (error) {
    process.stderr.write(`cxmpp decode: ${(error as Error).message}\n`);
    return 2;
  }
  process.stdout.write(`frame: ${frame.length} bytes\n`);
  try {
    process.stdout.write(`cbor:  ${diagnostic(frame)}\n`);
  } catch (error) {
    process.stdout.write(`cbor:  (not well-formed: ${(error as Error).message})\n`);
  }
  try {
    const aliases = opts.sessionAliases?.split(",") ?? [];
    const decoder = aliases.length > 0 ? new SessionDecoder({ aliases }) : new StatelessDecoder();
    const { stanza } = decoder.decode(frame);
    process.stdout.write(`xml:   ${toXml(stanza)}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    process.stderr.write(`cxmpp decode: ${error.message}\n`);
    process.stderr.write(
      error.code === "UNKNOWN_REF"
        ? "  (a session frame: it refers to table entries inserted by earlier frames)\n"
        : "",
    );
    return 1;
  }
}
