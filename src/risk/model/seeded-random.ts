/** A small seeded generator (mulberry32): training draws its subsamples from it, so a seed fixes the model. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct indexes below `size`, in increasing order (a partial Fisher-Yates shuffle). */
export function sampleIndexes(size: number, count: number, random: () => number): Int32Array {
  const pool = Int32Array.from({ length: size }, (_, i) => i);
  for (let i = 0; i < count; i += 1) {
    const j = i + Math.floor(random() * (size - i));
    const swap = pool[i] as number;
    pool[i] = pool[j] as number;
    pool[j] = swap;
  }
  return pool.slice(0, count).sort();
}
