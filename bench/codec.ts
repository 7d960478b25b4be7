/**
 * `cxmpp bench codec`: per-stanza sizes of the codec (stateless and session) beside XML, deflate and the
 * anchors of the other encoders (EXI, CBOR, deflate with a dictionary), and its speed beside ltx.
 *
 * Contract of `--emit` (other tools read it): one JSON line per non-blank input line, in order,
 * `{"i", "bytes", "hex", "xml"}` for a frame that round-trips exactly, else `{"i", "error"}` — for XML
 * that does not parse, a CodecError, a round-trip mismatch, and also a line that is not JSON (that one
 * is reported on stderr too and makes the exit code 1, after everything else has been written).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { deflateRawSync } from "node:zlib";
import { parse as ltxParse } from "ltx";
import {
  clearDecodeMemo,
  clearLiteralCache,
  normalize,
  SessionDecoder,
  SessionEncoder,
  StatelessDecoder,
  StatelessEncoder,
  sameInfoset,
  type XElement,
} from "../codec/index.js";
import { parseXml, toXml } from "../gateway/xml/stanza-xml.js";
import { CORPUS_DIR } from "./corpus.js";
import { deflateStream } from "./deflate.js";
import {
  ANCHOR_COLUMNS,
  type AnchorColumn,
  type AnchorRow,
  anchorKey,
  cdfChartSvg,
  distribution,
  formatTable,
  type Rate,
  readAnchors,
  readCorpusLines,
  type SpeedSummary,
  type Summary,
  shareAtMost,
  targetChecks,
} from "./stats.js";
import { formatTelemetry, measureTelemetry } from "./telemetry.js";

export interface CodecBenchOptions {
  readonly corpus?: string;
  readonly session?: boolean;
  readonly emit?: string;
  readonly chart?: string;
  readonly json?: boolean;
  /** `--no-speed` sets it to false; undefined means measure. */
  readonly speed?: boolean;
}

export const DEFAULT_CORPUS = join(CORPUS_DIR, "visible.jsonl");
/** docs/ARCHITECTURE.md "Targets": one continuous deflate stream over the visible corpus in order, median bytes per stanza. */
const ANCHOR_DEFLATE_STREAM_MEDIAN = 27;
const IOT_XEPS = [323, 325, 326, 347] as const;

/** A frame that round-tripped exactly, or why it did not. */
type Outcome = { readonly bytes: Uint8Array; readonly xml: string } | { readonly error: string };

interface StanzaResult {
  readonly i: number;
  readonly xep?: number;
  readonly kind?: string;
  readonly tree?: XElement;
  /** Whitespace-normalised XML (toXml of the normalised tree). */
  readonly xmlMin?: string;
  readonly stateless: Outcome;
  readonly session: Outcome;
  readonly anchors?: AnchorRow;
}

/** The halves of a codec that a round trip needs (stateless and session share them). */
interface Encoder {
  encode(tree: XElement): { readonly bytes: Uint8Array };
}
interface Decoder {
  decode(bytes: Uint8Array): { readonly stanza: XElement; readonly inserted: readonly number[] };
}

/** Encodes, decodes and compares; `ack` runs only when the peer would have decoded the frame. */
function roundTrip(
  enc: Encoder,
  dec: Decoder,
  tree: XElement,
  ack?: (inserted: readonly number[]) => void,
): Outcome {
  try {
    const { bytes } = enc.encode(tree);
    const decoded = dec.decode(bytes);
    ack?.(decoded.inserted);
    if (!sameInfoset(tree, decoded.stanza)) return { error: "round-trip mismatch" };
    return { bytes, xml: toXml(decoded.stanza) };
  } catch (error) {
    return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

function sizeOf(o: Outcome): number | undefined {
  return "bytes" in o ? o.bytes.length : undefined;
}

/** Runs every line through both modes; session mode keeps one encoder/decoder pair per `xep` value. */
function measure(lines: ReturnType<typeof readCorpusLines>, anchors: Map<string, AnchorRow> | undefined) {
  const stateless = { enc: new StatelessEncoder(), dec: new StatelessDecoder() };
  const sessions = new Map<string, { enc: SessionEncoder; dec: SessionDecoder }>();
  return lines.map((line): StanzaResult => {
    const failed = (error: string): StanzaResult => ({ i: line.i, stateless: { error }, session: { error } });
    if (!line.entry) return failed(line.error ?? "bad line");
    const { xml, xep, kind } = line.entry;
    if (typeof xml !== "string") return failed("no `xml` string field");
    let tree: XElement;
    try {
      tree = parseXml(xml);
    } catch (error) {
      return failed(`${(error as Error).name}: ${(error as Error).message}`);
    }
    const key = xep === undefined ? "" : String(xep);
    let pair = sessions.get(key);
    if (!pair) {
      // As the session layer runs it: frames are decoded once each (PROTOCOL.md §3), so the base is
      // left out while everything is acknowledged (FORMAT.md §6.5).
      pair = { enc: new SessionEncoder({ implicitBase: true }), dec: new SessionDecoder() };
      sessions.set(key, pair);
    }
    const { enc } = pair;
    return {
      i: line.i,
      ...(typeof xep === "number" ? { xep } : {}),
      kind: typeof kind === "string" ? kind : tree.name,
      tree,
      xmlMin: toXml(normalize(tree)),
      stateless: roundTrip(stateless.enc, stateless.dec, tree),
      session: roundTrip(pair.enc, pair.dec, tree, (inserted) => enc.acknowledge(inserted)),
      ...pick(anchors?.get(anchorKey(xep, line.entry.example_index, line.entry.stanza_index))),
    };
  });
}

function pick(anchors: AnchorRow | undefined): { anchors?: AnchorRow } {
  return anchors ? { anchors } : {};
}

/** Seconds one pass takes. */
function timed(pass: () => void): number {
  const t0 = performance.now();
  pass();
  return (performance.now() - t0) / 1000;
}

function rateOf(times: number[], stanzas: number, xmlBytes: number): Rate {
  const sorted = [...times].sort((a, b) => a - b);
  const t = sorted[Math.floor(sorted.length / 2)]!;
  return { stanzas_per_s: Math.round(stanzas / t), mb_per_s: Math.round((xmlBytes / 1e6 / t) * 10) / 10 };
}

/**
 * Throughput of the stateless codec beside ltx parsing the same stanzas. All are fed the
 * whitespace-normalised XML (or its tree), so MB/s counts the same XML bytes for each. Rounds interleave
 * the measurements so that a busy machine slows all of them alike; the first rounds only warm the JIT.
 * "Cold" clears the codec's literal memos before the pass, so every distinct string is encoded or decoded
 * from scratch once per pass; "warm" keeps them, as a long-running gateway would.
 */
function speed(results: readonly StanzaResult[], rounds = 9, warmup = 3): SpeedSummary {
  const ok = results.filter((r) => r.tree && "bytes" in r.stateless);
  const trees = ok.map((r) => r.tree!);
  const frames = ok.map((r) => (r.stateless as { bytes: Uint8Array }).bytes);
  const xmls = ok.map((r) => r.xmlMin!);
  const xmlBytes = xmls.reduce((s, x) => s + Buffer.byteLength(x), 0);
  const enc = new StatelessEncoder();
  const dec = new StatelessDecoder();
  const encodeAll = () => {
    for (const t of trees) enc.encode(t);
  };
  const decodeAll = () => {
    for (const f of frames) dec.decode(f);
  };
  const times = {
    encode: [] as number[],
    encodeWarm: [] as number[],
    decode: [] as number[],
    decodeWarm: [] as number[],
    ltx: [] as number[],
  };
  for (let r = 0; r < warmup + rounds; r++) {
    clearLiteralCache();
    const encode = timed(encodeAll);
    const encodeWarm = timed(encodeAll);
    clearDecodeMemo();
    const decode = timed(decodeAll);
    const decodeWarm = timed(decodeAll);
    const ltx = timed(() => {
      for (const x of xmls) ltxParse(x);
    });
    if (r < warmup) continue;
    times.encode.push(encode);
    times.encodeWarm.push(encodeWarm);
    times.decode.push(decode);
    times.decodeWarm.push(decodeWarm);
    times.ltx.push(ltx);
  }
  const n = ok.length;
  return {
    rounds,
    stanzas: n,
    xml_bytes: xmlBytes,
    encode: rateOf(times.encode, n, xmlBytes),
    decode: rateOf(times.decode, n, xmlBytes),
    encode_warm: rateOf(times.encodeWarm, n, xmlBytes),
    decode_warm: rateOf(times.decodeWarm, n, xmlBytes),
    ltx_parse: rateOf(times.ltx, n, xmlBytes),
  };
}

const defined = <T>(xs: readonly (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);

function sizes(results: readonly StanzaResult[]) {
  return {
    stateless: defined(results.map((r) => sizeOf(r.stateless))),
    session: defined(results.map((r) => sizeOf(r.session))),
    xml: defined(results.map((r) => (r.xmlMin === undefined ? undefined : Buffer.byteLength(r.xmlMin)))),
    deflate: defined(results.map((r) => (r.xmlMin === undefined ? undefined : deflated(r.xmlMin)))),
  };
}

function deflated(xml: string): number {
  return deflateRawSync(xml, { level: 9 }).length;
}

function anchorColumn(results: readonly StanzaResult[], column: AnchorColumn): number[] {
  return defined(results.map((r) => r.anchors?.[column]));
}

async function summarize(corpus: string, results: StanzaResult[], withAnchors: boolean): Promise<Summary> {
  const all = sizes(results);
  const stream = await deflateStream(defined(results.map((r) => r.xmlMin)));
  const anchors = withAnchors
    ? Object.fromEntries(ANCHOR_COLUMNS.map((c) => [c, distribution(anchorColumn(results, c))]))
    : null;
  const byKind = (kind: string) => {
    const s = sizes(results.filter((r) => r.kind === kind));
    return {
      stateless: distribution(s.stateless),
      session: distribution(s.session),
      xml: distribution(s.xml),
    };
  };
  const iot = (xep: number) => {
    const s = sizes(results.filter((r) => r.xep === xep));
    return { session: distribution(s.session), stateless: distribution(s.stateless) };
  };
  const fit = (limit: number) => ({
    stateless: shareAtMost(all.stateless, limit),
    session: shareAtMost(all.session, limit),
    deflate_dict: withAnchors ? shareAtMost(anchorColumn(results, "deflate_dict"), limit) : null,
  });
  const errors = (mode: "stateless" | "session") => results.filter((r) => "error" in r[mode]).length;
  return {
    corpus,
    stanzas: results.length,
    errors: { stateless: errors("stateless"), session: errors("session") },
    stateless: distribution(all.stateless),
    session: distribution(all.session),
    xml: distribution(all.xml),
    deflate: distribution(all.deflate),
    deflate_stream: distribution(stream),
    deflate_stream_anchor_median: withAnchors ? ANCHOR_DEFLATE_STREAM_MEDIAN : null,
    anchors,
    by_kind: { message: byKind("message"), presence: byKind("presence"), iq: byKind("iq") },
    iot: Object.fromEntries(IOT_XEPS.map((x) => [String(x).padStart(4, "0"), iot(x)])),
    fit51: fit(51),
    fit64: fit(64),
    speed: null,
    targets: {},
  };
}

function chartSeries(results: readonly StanzaResult[], withAnchors: boolean) {
  const all = sizes(results);
  const series = [
    { label: "ours, stateless", values: all.stateless },
    { label: "ours, session", values: all.session },
    { label: "XML, whitespace removed", values: all.xml },
    { label: "deflate (stanza alone)", values: all.deflate },
  ];
  if (withAnchors) {
    series.push(
      { label: "deflate + 32 KiB dict", values: anchorColumn(results, "deflate_dict") },
      { label: "EXI, all XEP schemas", values: anchorColumn(results, "exi_sch_xeps_bitpacked_lexical") },
      { label: "CBOR, naive", values: anchorColumn(results, "cbor_naive") },
    );
  }
  return series.map((s) => ({ ...s, label: `${s.label} (median ${distribution(s.values)?.median ?? "—"})` }));
}

function emitLines(results: readonly StanzaResult[], session: boolean): string {
  return results
    .map((r) => {
      const o = session ? r.session : r.stateless;
      if ("error" in o) return JSON.stringify({ i: r.i, error: o.error });
      const hex = Buffer.from(o.bytes).toString("hex");
      return JSON.stringify({ i: r.i, bytes: o.bytes.length, hex, xml: o.xml });
    })
    .map((line) => line + "\n")
    .join("");
}

function writeFile(path: string, text: string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, text);
}

/** Anchors apply only to the visible corpus (they are joined on its xep/example/stanza indices). */
function loadAnchors(corpus: string): Map<string, AnchorRow> | undefined {
  if (basename(corpus) !== "visible.jsonl") return undefined;
  try {
    return readAnchors(join(dirname(corpus), "anchors-visible.csv"));
  } catch (error) {
    process.stderr.write(`cxmpp bench codec: anchors not read (${(error as Error).message})\n`);
    return undefined;
  }
}

async function run(opts: CodecBenchOptions): Promise<number> {
  const corpus = resolve(opts.corpus ?? DEFAULT_CORPUS);
  let lines: ReturnType<typeof readCorpusLines>;
  try {
    lines = readCorpusLines(corpus);
  } catch (error) {
    process.stderr.write(`cxmpp bench codec: cannot read corpus ${corpus}: ${(error as Error).message}\n`);
    return 1;
  }
  const bad = lines.filter((l) => l.error !== undefined);
  for (const l of bad) process.stderr.write(`cxmpp bench codec: ${corpus}: ${l.error}\n`);
  const anchors = loadAnchors(corpus);
  const results = measure(lines, anchors);
  const withAnchors = anchors !== undefined;
  const summary = await summarize(corpus, results, withAnchors);
  if (opts.speed !== false) summary.speed = speed(results);
  // Sensor sequences are the codec's own workload, whatever corpus was given.
  summary.telemetry = await measureTelemetry();
  summary.targets = targetChecks(summary);
  // In JSON mode stdout holds the summary alone, so the paths written go to stderr.
  const note = (s: string) => (opts.json ? process.stderr : process.stdout).write(s + "\n");
  if (opts.json) process.stdout.write(JSON.stringify(summary) + "\n");
  else process.stdout.write(formatTable(summary) + formatTelemetry(summary.telemetry));
  if (opts.emit) {
    writeFile(opts.emit, emitLines(results, opts.session === true));
    note(`emitted ${results.length} lines (${opts.session ? "session" : "stateless"} mode) to ${opts.emit}`);
  }
  if (opts.chart) {
    const title = `cxmpp stanza sizes, ${basename(corpus)} (${results.length} stanzas): cumulative share`;
    writeFile(opts.chart, cdfChartSvg(title, chartSeries(results, withAnchors)));
    note(`chart written to ${opts.chart}`);
  }
  return bad.length > 0 ? 1 : 0;
}

/** Entry point of `cxmpp bench codec`; returns the exit code and never throws. */
export async function runCodecBench(opts: CodecBenchOptions): Promise<number> {
  try {
    return await run(opts);
  } catch (error) {
    process.stderr.write(`cxmpp bench codec: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
