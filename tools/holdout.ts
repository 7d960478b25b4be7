/**
 * Held-out measurement: the size targets (docs/ARCHITECTURE.md) are "on stanzas the dictionary was not tuned on". We
 * split the XEPs of visible.jsonl in two by XEP number, build a dictionary from one half (plus the RFC
 * examples and the vocab files, as usual), and measure the codec on the other half, beside the EXI
 * anchors of that half. Both directions are printed. Nothing here changes codec/dictionary/data.ts.
 *
 * Run: npx tsx tools/holdout.ts
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CORPUS_DIR, type CorpusEntry, readCorpus } from "../bench/corpus.js";
import { deflateStream } from "../bench/deflate.js";
import { unpackDictionary } from "../codec/dictionary/tables.js";
import {
  normalize,
  SessionDecoder,
  SessionEncoder,
  StatelessEncoder,
  StaticDictionary,
} from "../codec/index.js";
import { parseXml, toXml } from "../gateway/xml/stanza-xml.js";
import { buildDictionary } from "./gen-dictionary.js";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
};

function anchors(): Map<string, number> {
  const [header, ...rows] = readFileSync(join(CORPUS_DIR, "anchors-visible.csv"), "utf8").trim().split("\n");
  const cols = header!.split(",");
  const at = (name: string) => cols.indexOf(name);
  const out = new Map<string, number>();
  for (const row of rows) {
    const f = row.split(",");
    out.set(
      `${f[at("xep")]}/${f[at("example_index")]}/${f[at("stanza_index")]}`,
      Number(f[at("exi_sch_xeps_bitpacked_lexical")]),
    );
  }
  return out;
}

async function measure(
  train: CorpusEntry[],
  test: CorpusEntry[],
  rfc: CorpusEntry[],
  exi: Map<string, number>,
): Promise<void> {
  const built = buildDictionary(train, rfc);
  const dictionary = new StaticDictionary(built.id, unpackDictionary(built.strings, built.tables));
  const stateless = new StatelessEncoder({ dictionary });
  const ours: number[] = [];
  const session: number[] = [];
  const exiSizes: number[] = [];
  const sessions = new Map<number, { e: SessionEncoder; d: SessionDecoder }>();
  for (const entry of test) {
    const tree = parseXml(entry.xml);
    ours.push(stateless.encode(tree).bytes.length);
    let s = sessions.get(entry.xep!);
    if (!s) {
      // As the session layer runs it, and as bench codec measures it (FORMAT.md §6.5).
      s = {
        e: new SessionEncoder({ dictionary, implicitBase: true }),
        d: new SessionDecoder({ dictionary }),
      };
      sessions.set(entry.xep!, s);
    }
    const frame = s.e.encode(tree);
    s.e.acknowledge(s.d.decode(frame.bytes).inserted);
    session.push(frame.bytes.length);
    const a = exi.get(`${entry.xep}/${entry.example_index}/${entry.stanza_index}`);
    if (a !== undefined) exiSizes.push(a);
  }
  const m = median(ours);
  const e = median(exiSizes);
  // One deflate stream over the measured half in order (the whitespace-free XML bench codec feeds it).
  const stream = median(await deflateStream(test.map((t) => toXml(normalize(parseXml(t.xml))))));
  const sm = median(session);
  console.log(
    `  trained on ${train.length} stanzas, measured on ${test.length}: stateless median ${m} B, EXI (all schemas) median ${e} B → ${(m / e).toFixed(3)}× (target ≤ 0.6); session median ${sm} B, one deflate stream ${stream} B → ${(sm / stream).toFixed(3)}× (target ≤ 1)`,
  );
}

const visible = readCorpus("visible");
const rfc = readCorpus("rfc");
const exi = anchors();
const halfA = visible.filter((e) => Math.floor((e.xep ?? 0) / 2) % 2 === 0);
const halfB = visible.filter((e) => Math.floor((e.xep ?? 0) / 2) % 2 === 1);
console.log("held-out XEPs (split by XEP number: ≡ 0 or 2 mod 4)");
await measure(halfA, halfB, rfc, exi);
await measure(halfB, halfA, rfc, exi);
