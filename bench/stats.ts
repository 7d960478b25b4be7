/**
 * Helpers of `cxmpp bench codec`: corpus and anchor readers, distribution statistics and the SVG chart.
 * Kept apart from bench-codec.ts so that the measuring code there stays readable.
 */

import { readFileSync } from "node:fs";
import type { TelemetrySummary } from "./telemetry.js";

/** One non-blank line of a JSONL corpus: its object, or why it is not one. */
export interface CorpusLine {
  /** 0-based index among the non-blank lines (blank lines, e.g. a trailing newline, are not stanzas). */
  readonly i: number;
  readonly entry?: Readonly<Record<string, unknown>>;
  readonly error?: string;
}

/**
 * Reads a JSONL file. Throws only when the file cannot be read; a line that is not a JSON object comes
 * back with `error` so that the caller can report it and still emit one result per line.
 */
export function readCorpusLines(path: string): CorpusLine[] {
  const text = readFileSync(path, "utf8");
  const lines: CorpusLine[] = [];
  for (const [n, raw] of text.split("\n").entries()) {
    if (raw.trim() === "") continue;
    const i = lines.length;
    try {
      const value: unknown = JSON.parse(raw);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        lines.push({ i, error: `line ${n + 1}: not a JSON object` });
      } else {
        lines.push({ i, entry: value as Record<string, unknown> });
      }
    } catch (error) {
      lines.push({ i, error: `line ${n + 1}: bad JSON: ${(error as Error).message}` });
    }
  }
  return lines;
}

/** The per-stanza figures of other encoders in anchors-visible.csv (see corpus/README.md). */
export const ANCHOR_COLUMNS = [
  "xml_min_bytes",
  "deflate",
  "deflate_dict",
  "exi_bitpacked",
  "exi_compressed",
  "exi_sch_core_bitpacked_lexical",
  "exi_sch_xeps_bitpacked_lexical",
  "cbor_naive",
] as const;
export type AnchorColumn = (typeof ANCHOR_COLUMNS)[number];
export type AnchorRow = Readonly<Record<AnchorColumn, number>>;

/** Join key of a corpus line and an anchor row; `kind` is not needed (the triple is unique). */
export function anchorKey(xep: unknown, exampleIndex: unknown, stanzaIndex: unknown): string {
  return `${String(xep)}|${String(exampleIndex)}|${String(stanzaIndex)}`;
}

/** Reads the anchors CSV (a plain numeric CSV without quoting) keyed by `anchorKey`. */
export function readAnchors(path: string): Map<string, AnchorRow> {
  const [header, ...rows] = readFileSync(path, "utf8").split("\n");
  const names = (header ?? "").trim().split(",");
  const at = (name: string): number => {
    const index = names.indexOf(name);
    if (index < 0) throw new Error(`${path}: no column '${name}'`);
    return index;
  };
  const keyColumns = [at("xep"), at("example_index"), at("stanza_index")] as const;
  const valueColumns = ANCHOR_COLUMNS.map((c) => [c, at(c)] as const);
  const anchors = new Map<string, AnchorRow>();
  for (const line of rows) {
    if (line.trim() === "") continue;
    const cells = line.trim().split(",");
    const row = {} as Record<AnchorColumn, number>;
    for (const [name, index] of valueColumns) row[name] = Number(cells[index]);
    anchors.set(anchorKey(...(keyColumns.map((k) => cells[k]) as [string, string, string])), row);
  }
  return anchors;
}

export interface Distribution {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly p95: number;
  readonly mean: number;
}

/** Linear-interpolation quantile of a sorted array (numpy's default, so medians match the anchors'). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const a = sorted[lo]!;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)]!;
  return a + (b - a) * (pos - lo);
}

/** Median, p90, p95 and mean, rounded to 0.1 byte; null for an empty set. */
export function distribution(values: readonly number[]): Distribution | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((x, y) => x - y);
  const round = (x: number): number => Math.round(x * 10) / 10;
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    n: sorted.length,
    median: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p95: round(quantile(sorted, 0.95)),
    mean: round(sum / sorted.length),
  };
}

/** Share (0…1, 3 decimals) of the values at or below `limit`; null for an empty set. */
export function shareAtMost(values: readonly number[], limit: number): number | null {
  if (values.length === 0) return null;
  return Math.round((values.filter((v) => v <= limit).length / values.length) * 1000) / 1000;
}

export interface ChartSeries {
  readonly label: string;
  readonly values: readonly number[];
}

const COLORS = ["#d62728", "#ff7f0e", "#7f7f7f", "#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#8c564b"];
const W = 920;
const H = 520;
const PLOT = { left: 70, right: 610, top: 50, bottom: 460 } as const;
const X_MIN = 8;
const X_MAX = 2048;

function xOf(bytes: number): number {
  const clamped = Math.min(Math.max(bytes, X_MIN), X_MAX);
  const t = Math.log2(clamped / X_MIN) / Math.log2(X_MAX / X_MIN);
  return PLOT.left + t * (PLOT.right - PLOT.left);
}

function yOf(share: number): number {
  return PLOT.bottom - share * (PLOT.bottom - PLOT.top);
}

function escapeSvg(text: string): string {
  return text.replace(/[&<>"]/g, (c) =>
    c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;",
  );
}

/** Step CDF of one series as an SVG path (x clamped to the axis range, so tails end on the frame). */
function cdfPath(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const parts = [`M${xOf(X_MIN).toFixed(1)},${yOf(0).toFixed(1)}`];
  let previous = 0;
  for (let k = 0; k < sorted.length; k++) {
    if (k + 1 < sorted.length && sorted[k + 1] === sorted[k]) continue;
    const x = xOf(sorted[k]!).toFixed(1);
    const share = (k + 1) / sorted.length;
    parts.push(`H${x}`, `V${yOf(share).toFixed(1)}`);
    previous = share;
  }
  if (previous > 0) parts.push(`H${xOf(X_MAX).toFixed(1)}`);
  return parts.join("");
}

function axes(): string[] {
  const out: string[] = [];
  out.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#333"/>`,
  );
  for (let bytes = X_MIN; bytes <= X_MAX; bytes *= 2) {
    const x = xOf(bytes).toFixed(1);
    out.push(`<line x1="${x}" y1="${PLOT.top}" x2="${x}" y2="${PLOT.bottom}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${PLOT.bottom + 18}" text-anchor="middle">${bytes}</text>`);
  }
  for (let tenth = 0; tenth <= 10; tenth += 2) {
    const y = yOf(tenth / 10).toFixed(1);
    out.push(`<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.right}" y2="${y}" stroke="#ddd"/>`);
    out.push(
      `<text x="${PLOT.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${tenth * 10}%</text>`,
    );
  }
  // The one-LoRaWAN-frame budget (EU868 DR0) the IoT targets refer to.
  const x51 = xOf(51).toFixed(1);
  out.push(
    `<line x1="${x51}" y1="${PLOT.top}" x2="${x51}" y2="${PLOT.bottom}" stroke="#000" stroke-dasharray="4 3"/>`,
  );
  out.push(`<text x="${x51}" y="${PLOT.top - 6}" text-anchor="middle">51 B</text>`);
  out.push(
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 40}" text-anchor="middle">bytes per stanza (log scale)</text>`,
    `<text x="18" y="${(PLOT.top + PLOT.bottom) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(PLOT.top + PLOT.bottom) / 2})">share of stanzas at or below</text>`,
  );
  return out;
}

/** A self-contained SVG of the cumulative size distributions, one curve per series, with a legend. */
export function cdfChartSvg(title: string, series: readonly ChartSeries[]): string {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeSvg(title)}</text>`,
    ...axes(),
  ];
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!;
    out.push(`<path d="${cdfPath(s.values)}" fill="none" stroke="${color}" stroke-width="1.8"/>`);
    const y = PLOT.top + 10 + k * 22;
    out.push(
      `<line x1="${PLOT.right + 20}" y1="${y}" x2="${PLOT.right + 44}" y2="${y}" stroke="${color}" stroke-width="3"/>`,
    );
    out.push(`<text x="${PLOT.right + 50}" y="${y}" dominant-baseline="middle">${escapeSvg(s.label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

export interface Rate {
  readonly stanzas_per_s: number;
  readonly mb_per_s: number;
}

export interface SpeedSummary {
  readonly rounds: number;
  readonly stanzas: number;
  readonly xml_bytes: number;
  /** Memos cleared before every round: each literal encoded or decoded from scratch once per round. */
  readonly encode: Rate;
  readonly decode: Rate;
  /** Memos kept across rounds, as in a long-running gateway that sees the same JIDs again. */
  readonly encode_warm: Rate;
  readonly decode_warm: Rate;
  readonly ltx_parse: Rate;
}

type Sizes<K extends string> = Readonly<Record<K, Distribution | null>>;
type Shares = Readonly<Record<"stateless" | "session" | "deflate_dict", number | null>>;

export interface TargetCheck {
  readonly value: number | null;
  readonly target: string;
  /** null when the figure cannot be computed (no anchors, speed skipped, empty set). */
  readonly ok: boolean | null;
}

/** The whole result of a run; `--json` prints it as is, so keys are part of the interface. */
export interface Summary {
  readonly corpus: string;
  readonly stanzas: number;
  readonly errors: Readonly<Record<"stateless" | "session", number>>;
  readonly stateless: Distribution | null;
  readonly session: Distribution | null;
  readonly xml: Distribution | null;
  readonly deflate: Distribution | null;
  readonly deflate_stream: Distribution | null;
  readonly deflate_stream_anchor_median: number | null;
  readonly anchors: Readonly<Record<string, Distribution | null>> | null;
  readonly by_kind: Readonly<Record<string, Sizes<"stateless" | "session" | "xml">>>;
  readonly iot: Readonly<Record<string, Sizes<"session" | "stateless">>>;
  readonly fit51: Shares;
  readonly fit64: Shares;
  speed: SpeedSummary | null;
  targets: Readonly<Record<string, TargetCheck>>;
  /** Seeded sensor sequences (bench/telemetry.ts): session frames against a deflate stream. */
  telemetry?: TelemetrySummary;
}

function check(value: number | null | undefined, target: string, ok: (v: number) => boolean): TargetCheck {
  if (value === null || value === undefined || Number.isNaN(value)) return { value: null, target, ok: null };
  return { value, target, ok: ok(value) };
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : Math.round((a / b) * 1000) / 1000;

/** The targets (docs/ARCHITECTURE.md) this corpus can speak to, each with its figure and verdict. */
export function targetChecks(s: Summary): Record<string, TargetCheck> {
  const exact = (errors: number) => (s.stanzas === 0 ? null : 1 - errors / s.stanzas);
  const exi = s.anchors?.exi_sch_xeps_bitpacked_lexical?.median;
  const checks: Record<string, TargetCheck> = {
    stateless_exact: check(exact(s.errors.stateless), "= 100%", (v) => v === 1),
    session_exact: check(exact(s.errors.session), "= 100%", (v) => v === 1),
    stateless_vs_exi_schemas: check(ratio(s.stateless?.median, exi), "≤ 0.6×", (v) => v <= 0.6),
    session_vs_stream_anchor: check(
      ratio(s.session?.median, s.deflate_stream_anchor_median ?? undefined),
      "≤ 1×",
      (v) => v <= 1,
    ),
    session_vs_stream_own: check(ratio(s.session?.median, s.deflate_stream?.median), "≤ 1×", (v) => v <= 1),
  };
  for (const xep of ["0323", "0325"]) {
    checks[`iot_${xep}_session_median`] = check(s.iot[xep]?.session?.median, "≤ 24", (v) => v <= 24);
    checks[`iot_${xep}_session_p95`] = check(s.iot[xep]?.session?.p95, "≤ 51", (v) => v <= 51);
  }
  checks.telemetry_vs_stream = check(s.telemetry?.ratio, "≤ 0.7×", (v) => v <= 0.7);
  const ltx = s.speed?.ltx_parse.stanzas_per_s;
  checks.encode_vs_ltx = check(ratio(s.speed?.encode.stanzas_per_s, ltx), "> 1× ltx", (v) => v > 1);
  checks.decode_vs_ltx = check(ratio(s.speed?.decode.stanzas_per_s, ltx), "> 1× ltx", (v) => v > 1);
  return checks;
}

const mark = (c: TargetCheck | undefined): string =>
  !c || c.ok === null ? "" : `${c.target} ${c.ok ? "✓" : "✗"}`;
const num = (x: number | null | undefined): string => (x === null || x === undefined ? "—" : String(x));
const pct = (x: number | null | undefined): string =>
  x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`;

function row(label: string, cells: readonly string[], widths: readonly number[], note = ""): string {
  const body = cells.map((c, k) => c.padStart(widths[k] ?? 8)).join("");
  return `  ${label.padEnd(42)}${body}${note ? `   ${note}` : ""}`.trimEnd();
}

function sizeRows(s: Summary): string[] {
  const w = [7, 8, 8, 8];
  const line = (label: string, d: Distribution | null | undefined, note = "") =>
    row(label, [num(d?.n), num(d?.median), num(d?.p90), num(d?.mean)], w, note);
  const exi = s.anchors?.exi_sch_xeps_bitpacked_lexical?.median;
  const stream = s.deflate_stream_anchor_median ?? s.deflate_stream?.median;
  const out = [
    row("bytes per stanza", ["n", "median", "p90", "mean"], w, "target (median)"),
    line("ours, stateless", s.stateless, exi === undefined ? "" : `≤ ${num(Math.round(exi * 6) / 10)}`),
    line("ours, session (one session per XEP)", s.session, stream === undefined ? "" : `≤ ${stream}`),
    line("XML, whitespace removed (toXml)", s.xml),
    line("deflate, stanza alone (raw, level 9)", s.deflate),
    line("deflate, one stream, sync flush (ours)", s.deflate_stream),
  ];
  if (s.anchors) {
    out.push(row("anchors (anchors-visible.csv):", [], w));
    for (const [name, d] of Object.entries(s.anchors)) out.push(line(`  ${name}`, d));
    out.push(row("  deflate, one stream (anchor)", ["", num(s.deflate_stream_anchor_median)], w));
  }
  return out;
}

function targetRows(s: Summary): string[] {
  const t = s.targets;
  const line = (label: string, key: string, format = num) =>
    row(label, [format(t[key]?.value)], [10], mark(t[key]));
  return [
    line("exact round trips, stateless", "stateless_exact", pct),
    line("exact round trips, session", "session_exact", pct),
    line("stateless median / EXI all schemas median", "stateless_vs_exi_schemas"),
    line(
      `session median / deflate stream (${num(s.deflate_stream_anchor_median)} B)`,
      "session_vs_stream_anchor",
    ),
    line(`session median / own deflate stream (${num(s.deflate_stream?.median)} B)`, "session_vs_stream_own"),
  ];
}

function groupRows(s: Summary): string[] {
  const w = [7, 11, 11, 11];
  const out = [row("median bytes by kind", ["n", "stateless", "session", "XML"], w)];
  for (const [kind, d] of Object.entries(s.by_kind)) {
    out.push(
      row(kind, [num(d.xml?.n), num(d.stateless?.median), num(d.session?.median), num(d.xml?.median)], w),
    );
  }
  const wi = [7, 11, 11, 11, 11];
  out.push("", row("IoT XEPs", ["n", "sess. med", "sess. p95", "stl. med", "stl. p95"], wi));
  for (const [xep, d] of Object.entries(s.iot)) {
    const targets = [mark(s.targets[`iot_${xep}_session_median`]), mark(s.targets[`iot_${xep}_session_p95`])];
    const cells = [num(d.session?.n), num(d.session?.median), num(d.session?.p95)];
    cells.push(num(d.stateless?.median), num(d.stateless?.p95));
    out.push(row(`XEP-${xep}`, cells, wi, targets.filter((x) => x).join(", ")));
  }
  const wf = [9, 9];
  out.push("", row("share of stanzas fitting in", ["≤ 51 B", "≤ 64 B"], wf));
  for (const key of ["stateless", "session", "deflate_dict"] as const) {
    out.push(
      row(
        key === "deflate_dict" ? "deflate_dict (anchor)" : `ours, ${key}`,
        [pct(s.fit51[key]), pct(s.fit64[key])],
        wf,
      ),
    );
  }
  return out;
}

function speedRows(s: Summary): string[] {
  if (!s.speed) return [];
  const sp = s.speed;
  const w = [13, 9];
  const line = (label: string, r: Rate, note = "") =>
    row(label, [String(r.stanzas_per_s), String(r.mb_per_s)], w, note);
  return [
    "",
    `speed (median of ${sp.rounds} interleaved rounds over ${sp.stanzas} stanzas, ${(sp.xml_bytes / 1e6).toFixed(2)} MB of XML)`,
    row("", ["stanzas/s", "MB/s"], w),
    line("encode, stateless, cold memo", sp.encode, mark(s.targets.encode_vs_ltx)),
    line("encode, stateless, warm memo", sp.encode_warm),
    line("decode, stateless, cold memo", sp.decode, mark(s.targets.decode_vs_ltx)),
    line("decode, stateless, warm memo", sp.decode_warm),
    line("ltx parse of the same XML", sp.ltx_parse),
  ];
}

/** The human-readable report: figures, with the target and ✓/✗ beside each one that has a target. */
export function formatTable(s: Summary): string {
  const head = `cxmpp bench codec — ${s.corpus}: ${s.stanzas} stanzas (failed: stateless ${s.errors.stateless}, session ${s.errors.session})`;
  const lines = [head, "", ...sizeRows(s), "", ...targetRows(s), "", ...groupRows(s), ...speedRows(s)];
  return lines.join("\n") + "\n";
}
