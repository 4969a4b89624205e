import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newId, newSecretId, randomBase62, randomIdCharacters } from '../../src/platform/random.ts';

describe('random ids', () => {
  const kinds = [
    ['ids', () => newId('pi'), /^pi_[0-9A-Za-z]{24}$/],
    ['ids that are capabilities (Checkout Sessions)', () => newSecretId('cs_test'), /^cs_test_[0-9A-Za-z]{24}$/],
  ] as const;
  for (const [name, make, shape] of kinds) {
    test(`${name} are 24 base62 characters after their prefix, and 100,000 of them never repeat`, () => {
      const seen = new Set<string>();
      for (let i = 0; i < 100_000; i += 1) {
        const id = make();
        assert.match(id, shape);
        seen.add(id);
      }
      assert.equal(seen.size, 100_000);
    });
  }

  for (const [name, draw] of [['ids (pooled bytes)', randomIdCharacters], ['secrets (fresh bytes)', randomBase62]] as const) {
    test(`${name}: every base62 character is about equally likely (no modulo bias), across many refills`, () => {
      const counts = new Map<string, number>();
      for (let i = 0; i < 10_000; i += 1) for (const char of draw(62)) counts.set(char, (counts.get(char) ?? 0) + 1);
      assert.equal(counts.size, 62);
      // Each character is expected 10,000 times; a chi-square statistic over 61 degrees of freedom stays below 120
      // with probability far above 1 - 1e-6. Bytes 248..255 folded onto the first eight characters would put about
      // 2,000 more on each of them, and the statistic in the thousands.
      let chiSquare = 0;
      for (const count of counts.values()) chiSquare += (count - 10_000) ** 2 / 10_000;
      assert.ok(chiSquare < 120, `chi-square ${chiSquare.toFixed(1)} over 61 degrees of freedom`);
    });
  }

  test('lengths are exact, including 0 and 1', () => {
    for (const length of [0, 1, 2, 24, 61, 4_097]) {
      assert.equal(randomBase62(length).length, length);
      assert.equal(randomIdCharacters(length).length, length);
    }
  });
});
