/**
 * mulberry32: a small, well-known, seedable 32-bit generator returning floats
 * in [0, 1). Used where runs must be reproducible: the catalog's fixed random
 * projections, the load test's arrival schedules and traffic, benchmarks.
 * Not for anything security-related.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
