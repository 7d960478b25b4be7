/**
 * Writes test/vectors/*.json, the wire-format contract (FORMAT.md §9): XML ⇄ hex for stateless frames
 * and for sessions (frame sequences with acknowledgements). Run after a deliberate format change:
 * npm run gen:vectors. test/codec/vectors.test.ts checks both directions against the codec.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readCorpus } from "../bench/corpus.js";
import { DICTIONARY_V1, SessionDecoder, SessionEncoder, StatelessEncoder } from "../codec/index.js";
import { parseXml, toXml } from "../gateway/xml/stanza-xml.js";

const ROOT = join(import.meta.dirname, "..");
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Hand-picked stanzas, one per feature of the format. */
const STATIC: Array<[string, string]> = [
  ["empty presence", "<presence xmlns='jabber:client'/>"],
  [
    "message with body",
    "<message xmlns='jabber:client' to='juliet@example.com' type='chat'><body>Hi!</body></message>",
  ],
  [
    "iq with dictionary payload",
    "<iq xmlns='jabber:client' type='get' id='a1'><query xmlns='jabber:iq:roster'/></iq>",
  ],
  ["xml:lang attribute", "<message xmlns='jabber:client' xml:lang='en'><body>x</body></message>"],
  [
    "unknown namespace and names",
    "<message xmlns='jabber:client'><x xmlns='urn:example:unknown' foo='bar'>baz</x></message>",
  ],
  ["unknown element in the inherited namespace", "<iq xmlns='jabber:client' type='set'><gizmo/></iq>"],
  [
    "namespaced attribute",
    "<message xmlns='jabber:client'><x xmlns='urn:a' xmlns:p='urn:b' p:q='1'/></message>",
  ],
  ["integer", "<message xmlns='jabber:client'><x xmlns='urn:a' n='123456'/></message>"],
  ["negative packed decimal", "<message xmlns='jabber:client'><x xmlns='urn:a' t='-12.75'/></message>"],
  [
    "long decimal fraction",
    "<message xmlns='jabber:client'><x xmlns='urn:a' t='0.1234567890123456'/></message>",
  ],
  [
    "UTC timestamp",
    "<message xmlns='jabber:client'><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/></message>",
  ],
  [
    "timestamp with zone and fraction",
    "<message xmlns='jabber:client'><x xmlns='urn:a' t='2002-09-10T23:08:25.123-07:00'/></message>",
  ],
  [
    "timestamp without zone",
    "<message xmlns='jabber:client'><x xmlns='urn:a' t='2013-03-07T16:24:30'/></message>",
  ],
  ["date", "<message xmlns='jabber:client'><x xmlns='urn:a' d='1776-07-04'/></message>"],
  ["hex", "<message xmlns='jabber:client'><x xmlns='urn:a' h='a1b2c3d4e5f60718'/></message>"],
  ["base64", "<message xmlns='jabber:client'><x xmlns='urn:a'>SGVsbG8sIFdvcmxkIQ==</x></message>"],
  ["uuid", "<message xmlns='jabber:client' id='5b1f4bd6-5f0c-4e2e-9c5c-0a9d2b7b2f3a'/>"],
  [
    "JID sharing a domain (in-frame inserts)",
    "<message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.net/balcony'/>",
  ],
  ["non-ASCII text", "<message xmlns='jabber:client'><body>Grüße 👋</body></message>"],
  ["escaped characters", "<message xmlns='jabber:client'><body>a &lt;b&gt; &amp; 'c' \"d\"</body></message>"],
];

interface SessionVector {
  name: string;
  aliases: string[];
  /** SessionCodecOptions.implicitBase of the encoder (FORMAT.md §6.5). */
  implicitBase: boolean;
  /** SessionCodecOptions.templates of the encoder (FORMAT.md §6.6): false writes format 1 only. */
  templates: boolean;
  /** Frames in order; `ack` says whether the peer's acknowledgement reached the encoder before the next. */
  frames: Array<{ xml: string; hex: string; inserted: number[]; ack: boolean }>;
}

function sessionVector(
  name: string,
  aliases: string[],
  stanzas: Array<[string, boolean]>,
  implicitBase = false,
  templates = true,
): SessionVector {
  const enc = new SessionEncoder({ aliases, implicitBase, templates });
  const dec = new SessionDecoder({ aliases });
  const frames: SessionVector["frames"] = [];
  for (const [xml, ack] of stanzas) {
    const f = enc.encode(parseXml(xml));
    dec.decode(f.bytes);
    if (ack) enc.acknowledge(f.inserted);
    frames.push({ xml: toXml(parseXml(xml)), hex: hex(f.bytes), inserted: [...f.inserted], ack });
  }
  return { name, aliases, implicitBase, templates, frames };
}

function main(): void {
  const enc = new StatelessEncoder();
  const staticVectors = STATIC.map(([name, xml]) => ({
    name,
    xml: toXml(parseXml(xml)),
    hex: hex(enc.encode(parseXml(xml)).bytes),
  }));
  // A few real stanzas from the corpus too (every 200th), so the vectors cover ordinary traffic.
  readCorpus("visible").forEach((e, i) => {
    if (i % 200 !== 0) return;
    const tree = parseXml(e.xml);
    staticVectors.push({
      name: `corpus visible #${i} (XEP-${e.xep})`,
      xml: toXml(tree),
      hex: hex(enc.encode(tree).bytes),
    });
  });
  const reading = (v: string, t: string): string =>
    `<message xmlns='jabber:client' to='sink@iot.example.org'><fields xmlns='urn:xmpp:iot:sensordata' seqnr='${t}'><node nodeId='n1'><timestamp value='2026-11-27T10:0${t}:00Z'><numeric name='Temperature' momentary='true' value='${v}' unit='°C'/></timestamp></node></fields></message>`;
  const timed = (v: string, seq: number, time: string): string =>
    `<message xmlns='jabber:client' to='sink@iot.example.org'><fields xmlns='urn:xmpp:iot:sensordata' seqnr='${seq}' done='true'><node nodeId='n1'><timestamp value='${time}'><numeric name='Temperature' momentary='true' value='${v}' unit='°C'/></timestamp></node></fields></message>`;
  const sessions: SessionVector[] = [
    sessionVector(
      "format 1 encoder (templates off): what a format 1 peer reads",
      ["sensor1@iot.example.org/a", "iot.example.org", "sink@iot.example.org"],
      [
        [reading("21.5", "1"), true],
        [reading("21.7", "2"), true],
        [reading("21.6", "3"), true],
      ],
      false,
      false,
    ),
    sessionVector(
      "templates: readings as instances, counter, time and decimal as deltas or values",
      ["sensor1@iot.example.org/a", "iot.example.org", "sink@iot.example.org"],
      [
        [timed("21.5", 1, "2026-11-27T10:00:00Z"), true],
        [timed("21.7", 2, "2026-11-27T10:01:00Z"), true],
        [timed("21.5", 3, "2026-11-27T10:02:00Z"), true],
        [timed("22.9", 4, "2026-11-27T10:03:00Z"), false],
        [timed("-3.0", 30, "2026-11-27T12:59:30+01:00"), true],
        [timed("21.5", 1, "2026-11-27T10:00:00Z"), true],
      ],
      true,
    ),
    sessionVector(
      "telemetry with acknowledgements",
      ["sensor1@iot.example.org/a", "iot.example.org", "sink@iot.example.org"],
      [
        [reading("21.5", "1"), true],
        [reading("21.7", "2"), true],
        [reading("21.6", "3"), true],
      ],
    ),
    sessionVector(
      "first acknowledgement lost: frame 2 carries what it needs",
      [],
      [
        [reading("21.5", "1"), false],
        [reading("21.7", "2"), true],
        [reading("21.6", "3"), true],
      ],
    ),
    sessionVector(
      "iq exchange with shapes and subtrees",
      [],
      [
        [
          "<iq xmlns='jabber:client' type='get' to='pubsub.example.org' id='q1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='princely_musings'/></pubsub></iq>",
          true,
        ],
        [
          "<iq xmlns='jabber:client' type='get' to='pubsub.example.org' id='q2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='princely_musings'/></pubsub></iq>",
          true,
        ],
        [
          "<iq xmlns='jabber:client' type='set' to='pubsub.example.org' id='q3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='princely_musings'/></pubsub></iq>",
          true,
        ],
      ],
    ),
    sessionVector(
      "implicit insert base (the session layer's setting): left out while everything is acknowledged",
      ["sensor1@iot.example.org/a", "iot.example.org", "sink@iot.example.org"],
      [
        [reading("21.5", "1"), true],
        [reading("21.7", "2"), false],
        [reading("21.6", "3"), true],
        [reading("21.8", "4"), true],
      ],
      true,
    ),
  ];
  const header = {
    dictionary: DICTIONARY_V1.id,
    note: "generated by tools/gen-vectors.ts; see docs/FORMAT.md §9",
  };
  writeFileSync(
    join(ROOT, "test/vectors/static.json"),
    `${JSON.stringify({ ...header, vectors: staticVectors }, null, 1)}\n`,
  );
  writeFileSync(
    join(ROOT, "test/vectors/session.json"),
    `${JSON.stringify({ ...header, sessions }, null, 1)}\n`,
  );
  console.log(`${staticVectors.length} static vectors, ${sessions.length} sessions`);
}

main();
