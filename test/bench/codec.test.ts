import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runCodecBench } from "../../bench/codec.js";
import { type TelemetrySummary, telemetrySequences } from "../../bench/telemetry.js";
import { sameInfoset } from "../../codec/index.js";
import { parseXml, toXml } from "../../gateway/xml/stanza-xml.js";

/** Two XEP sessions, interleaved, plus one line of broken XML. */
const STANZAS = [
  {
    xep: 323,
    xml: "<iq xmlns='jabber:client' from='a@b.c/r' to='d@e.f' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
  },
  {
    xep: 199,
    xml: "<message xmlns='jabber:client' to='a@b.c' type='chat'>\n  <body>Hi there</body>\n</message>",
  },
  { xep: 323, xml: "<iq xmlns='jabber:client' from='a@b.c/r' to='d@e.f' type='result' id='1'/>" },
  { xep: 199, xml: "<presence xmlns='jabber:client'><show>away" },
];
const BROKEN = 3;

interface EmitLine {
  i: number;
  bytes?: number;
  hex?: string;
  xml?: string;
  error?: string;
}

describe("cxmpp bench codec", () => {
  let dir: string;
  let stdout: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bench-codec-"));
    stdout = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      stdout.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  });

  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  function writeCorpus(lines: readonly string[]): string {
    const corpus = join(dir, "tiny.jsonl");
    writeFileSync(corpus, lines.join("\n") + "\n");
    return corpus;
  }

  it("emits one round-tripping frame per line, an error for broken XML, a JSON summary and a chart", async () => {
    const corpus = writeCorpus(STANZAS.map((s) => JSON.stringify(s)));
    const emit = join(dir, "out", "frames.jsonl");
    const chart = join(dir, "charts", "sizes.svg");

    const code = await runCodecBench({ corpus, emit, chart, session: true, speed: false, json: true });

    expect(code).toBe(0);
    const lines = readFileSync(emit, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as EmitLine);
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2, 3]);
    for (const line of lines) {
      if (line.i === BROKEN) {
        expect(line.error).toMatch(/XML/);
        expect(line.bytes).toBeUndefined();
        continue;
      }
      expect(line.error).toBeUndefined();
      expect(line.bytes).toBe(line.hex!.length / 2);
      expect(line.hex).toMatch(/^[0-9a-f]+$/);
      expect(sameInfoset(parseXml(line.xml!), parseXml(STANZAS[line.i]!.xml))).toBe(true);
    }

    const summary = JSON.parse(stdout.join("")) as Record<string, unknown>;
    expect(summary.stanzas).toBe(4);
    expect(summary).toHaveProperty("stateless.median");
    expect(summary).toHaveProperty("session.median");
    expect(summary.anchors).toBeNull();
    expect(summary.speed).toBeNull();
    expect(readFileSync(chart, "utf8").startsWith("<svg")).toBe(true);
    // The seeded sensor sequences: every reading exact, and both sizes measured.
    const telemetry = summary.telemetry as TelemetrySummary;
    expect(telemetry.exact).toBe(true);
    expect(telemetry.sensors * telemetry.readings_per_sensor).toBe(900);
    expect(telemetry.session_median).toBeGreaterThan(0);
    expect(telemetry.ratio).toBeCloseTo(telemetry.session_median / telemetry.deflate_stream_median, 2);
  });

  it("the telemetry generator is seeded: the same seed, the same readings; another seed, others", () => {
    const xml = (seed: number) =>
      telemetrySequences(seed, 2, 5)
        .flat()
        .map((s) => toXml(s));
    expect(xml(7)).toEqual(xml(7));
    expect(xml(7)).not.toEqual(xml(8));
    expect(new Set(xml(7)).size).toBe(10);
  });

  it("prints the table with targets and measures speed unless told not to", async () => {
    const corpus = writeCorpus(STANZAS.slice(0, 3).map((s) => JSON.stringify(s)));
    expect(await runCodecBench({ corpus })).toBe(0);
    const text = stdout.join("");
    expect(text).toContain("ours, stateless");
    expect(text).toContain("ltx parse");
  });

  it("returns 1 for an unreadable corpus and for a line that is not JSON, without throwing", async () => {
    expect(await runCodecBench({ corpus: join(dir, "missing.jsonl"), speed: false })).toBe(1);

    const corpus = writeCorpus([JSON.stringify(STANZAS[0]), "{not json"]);
    const emit = join(dir, "frames.jsonl");
    expect(await runCodecBench({ corpus, emit, speed: false, json: true })).toBe(1);
    const lines = readFileSync(emit, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as EmitLine);
    expect(lines[0]?.bytes).toBeGreaterThan(0);
    expect(lines[1]).toMatchObject({ i: 1, error: expect.stringMatching(/bad JSON/) });
  });
});
