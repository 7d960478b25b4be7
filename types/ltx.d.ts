// Minimal typings for ltx 3.1 (the XML element library under @xmpp/xml), for what cxmpp uses.
declare module "ltx" {
  export class Element {
    constructor(name: string, attrs?: Record<string, string>);
    name: string;
    attrs: Record<string, string | undefined>;
    children: Array<Element | string>;
    parent: Element | null;
    toString(): string;
  }
  export function parse(xml: string): Element;
}
