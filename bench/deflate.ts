/**
 * The stateful baseline the session codec is measured against: one raw deflate stream (level 9) over
 * stanzas in order, with a sync flush after each so that it could be sent on its own. It cannot survive
 * a lost packet; the session codec can.
 */
import { constants, createDeflateRaw } from "node:zlib";

/** Bytes each of `texts` adds to one deflate stream over all of them, in order. */
export async function deflateStream(texts: readonly string[]): Promise<number[]> {
  const z = createDeflateRaw({ level: 9 });
  let total = 0;
  z.on("data", (chunk: Buffer) => {
    total += chunk.length;
  });
  const sizes: number[] = [];
  for (const text of texts) {
    const before = total;
    await new Promise<void>((done) => {
      z.write(text);
      z.flush(constants.Z_SYNC_FLUSH, () => done());
    });
    sizes.push(total - before);
  }
  z.destroy();
  return sizes;
}
