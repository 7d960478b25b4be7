import { describe, expect, it } from "vitest";
import { el } from "../../codec/index.js";
import {
  XML_EXACT_STANZAS,
  XML_SAMPLE_EVERY,
  XmlSizeSampler,
  xmlSize,
} from "../../gateway/session/router.js";

const stanza = (i: number) =>
  el(
    "jabber:client",
    "message",
    { to: "sink@elsewhere.example", id: `m${i}` },
    el("jabber:client", "body", {}, "x".repeat(i % 7)),
  );

describe("XmlSizeSampler", () => {
  it("counts the first stanzas exactly", () => {
    const sampler = new XmlSizeSampler();
    let sum = 0;
    let exact = 0;
    for (let i = 0; i < XML_EXACT_STANZAS; i++) {
      sum += sampler.size(stanza(i));
      exact += xmlSize(stanza(i));
    }
    expect(sum).toBe(exact);
  });

  it("then measures every XML_SAMPLE_EVERY-th stanza, counted that many times", () => {
    const sampler = new XmlSizeSampler();
    for (let i = 0; i < XML_EXACT_STANZAS; i++) sampler.size(stanza(i));
    const added: number[] = [];
    for (let i = 0; i < 2 * XML_SAMPLE_EVERY; i++) added.push(sampler.size(stanza(i)));
    const nonZero = added.filter((n) => n > 0);
    expect(nonZero).toHaveLength(2);
    expect(nonZero[0]).toBe(XML_SAMPLE_EVERY * xmlSize(stanza(added.indexOf(nonZero[0]!))));
  });

  it("estimates a long stream's total within a few percent", () => {
    const sampler = new XmlSizeSampler();
    let sum = 0;
    let exact = 0;
    for (let i = 0; i < 10_000; i++) {
      const s = stanza(i * 31);
      sum += sampler.size(s);
      exact += xmlSize(s);
    }
    expect(Math.abs(sum - exact) / exact).toBeLessThan(0.03);
  });
});
