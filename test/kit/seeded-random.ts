/** The core's seeded PRNG (mulberry32), re-exported for tests: same seed, same sequence. */
export { seededRandom } from "../../src/core/seeded-random.js";
