// Goal: the scanner finds every Luhn-valid 13–19 digit number, plain or grouped, ignores others, and never reveals one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { luhnValid } from '../../src/vault/card-number.ts';
import { maskCardNumbers, scanForCardNumbers, type PanMatch } from '../../src/vault/pan-scanner.ts';
import { vaultLimits } from '../../src/vault/vault-limits.ts';
import { arbitraryCardDigits, breakCheckDigit, publishedTestCards } from './support/cards.ts';

/** Text with no digits at all, so a number placed in it is the only candidate. */
const noise = fc.string({ unit: fc.constantFrom(...'abcXYZ _-.,:;"{}[]=\n\t/é€'), maxLength: 40 });

/** How people write a card number: together, in fours, or Amex-style 4-6-5, with spaces or dashes. */
function written(digits: string, layout: 'plain' | 'fours' | 'amex', separator: ' ' | '-'): string {
  if (layout === 'plain') return digits;
  const cuts = layout === 'fours' ? [4, 8, 12, 16] : [4, 10];
  const parts: string[] = [];
  let from = 0;
  for (const cut of cuts.filter((cut) => cut < digits.length)) {
    parts.push(digits.slice(from, cut));
    from = cut;
  }
  parts.push(digits.slice(from));
  return parts.join(separator);
}

/**
 * The scanner's documented rule, written the slow and obvious way: split the text into digit groups, chain groups
 * of at most 19 digits joined by exactly one space or dash, and from each group of a chain take the longest sequence of
 * whole groups with 13–19 digits that passes Luhn.
 */
function referenceScan(text: string): PanMatch[] {
  const groups = [...text.matchAll(/[0-9]+/g)].map((group) => ({ start: group.index, end: group.index + group[0].length }));
  const chains: Array<typeof groups> = [];
  let chain: typeof groups = [];
  for (const group of groups) {
    const size = group.end - group.start;
    const previous = chain[chain.length - 1];
    const joined = previous !== undefined && group.start === previous.end + 1 && ' -'.includes(text[previous.end] ?? 'x');
    if (!joined || size > 19) {
      chains.push(chain);
      chain = [];
    }
    if (size <= 19) chain.push(group);
  }
  chains.push(chain);
  const matches: PanMatch[] = [];
  for (const links of chains) {
    for (let first = 0; first < links.length; ) {
      let best: number | undefined;
      for (let last = first; last < links.length; last += 1) {
        const digits = links.slice(first, last + 1).map((group) => text.slice(group.start, group.end)).join('');
        if (digits.length >= 13 && digits.length <= 19 && luhnValid(digits)) best = last;
      }
      if (best === undefined) {
        first += 1;
        continue;
      }
      const start = links[first]!.start;
      const digits = text.slice(start, links[best]!.end).replace(/[ -]/g, '');
      matches.push({ offset: start, length: links[best]!.end - start, digits: digits.length, masked: '*'.repeat(digits.length - 4) + digits.slice(-4) });
      first = best + 1;
    }
  }
  return matches;
}

describe('PAN scanner', () => {
  test('finds a Luhn-valid number in noise, however it is written, at its offset, masked', () => {
    const layouts = fc.constantFrom('plain' as const, 'fours' as const, 'amex' as const);
    fc.assert(
      fc.property(noise, arbitraryCardDigits(13, 19), layouts, fc.constantFrom(' ' as const, '-' as const), noise, (before, digits, layout, separator, after) => {
        const number = written(digits, layout, separator);
        const text = before + number + after;
        const result = scanForCardNumbers(text);
        assert.deepEqual(result, {
          matches: [{ offset: before.length, length: number.length, digits: digits.length, masked: '*'.repeat(digits.length - 4) + digits.slice(-4) }],
          truncated: false,
        });
        // Never the number itself: not whole, not as written, not as its first 8 digits.
        const reported = JSON.stringify(result);
        for (const secret of [digits, number, digits.slice(0, 8)]) assert.ok(!reported.includes(secret));
        // The same bytes in a Buffer (UTF-8: é and € take several bytes) are found at their byte offset.
        const bytes = Buffer.from(text);
        assert.deepEqual(
          scanForCardNumbers(bytes).matches.map((match) => match.offset),
          [Buffer.byteLength(before)],
        );
      }),
      { numRuns: 500 },
    );
  });

  test('ignores numbers that fail Luhn, and numbers too short or too long', () => {
    fc.assert(
      fc.property(noise, arbitraryCardDigits(13, 19), noise, (before, digits, after) => {
        assert.deepEqual(scanForCardNumbers(before + breakCheckDigit(digits) + after).matches, []);
      }),
      { numRuns: 500 },
    );
    assert.deepEqual(scanForCardNumbers('id 424242424242 and 4242 4242 4242').matches, [], '12 digits');
    assert.deepEqual(scanForCardNumbers('t=4242424242424242424242 n=42424242424242424242').matches, [], 'a run of 20+ digits');
    assert.deepEqual(scanForCardNumbers('4242424242424242424242 4242').matches, [], 'nor any part of one');
    assert.deepEqual(scanForCardNumbers('4242  4242  4242  4242 | 4242_4242_4242_4242').matches, [], 'other separators');
  });

  test('finds every published test card in a log, each once, and nothing else', () => {
    const lines = publishedTestCards.map((card, index) => `2024-05-01T10:00:0${index}Z pm_${index} amount=1999 card=${card.number} ok`);
    const result = scanForCardNumbers(lines.join('\n'));
    assert.deepEqual(
      result.matches.map((match) => match.masked.slice(-4)),
      publishedTestCards.map((card) => card.number.slice(-4)),
    );
  });

  test('a number next to other grouped numbers is still found ("1000 4242 4242 4242 4242")', () => {
    const text = 'amount 1000 4242 4242 4242 4242 EUR';
    assert.deepEqual(scanForCardNumbers(text).matches, [{ offset: 12, length: 19, digits: 16, masked: '************4242' }]);
  });

  test('agrees with the slow reference on random digit-heavy text, including chains of hundreds of groups', () => {
    const unit = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...'0123456789') },
      { weight: 2, arbitrary: fc.constantFrom(' ', '-') },
      { weight: 1, arbitrary: fc.constantFrom('x', '\n', '  ') },
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 400 }), (text) => {
        assert.deepEqual(scanForCardNumbers(text).matches, referenceScan(text));
      }),
      { numRuns: 2000 },
    );
    // Chains of hundreds of groups, decided a few groups at a time.
    const long = fc.sample(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 3, maxLength: 6 }), { numRuns: 300, seed: 7 });
    for (const separator of [' ', '-']) {
      const text = long.join(separator);
      const expected = referenceScan(text);
      assert.ok(expected.length > 10, 'the long chain holds candidates');
      assert.deepEqual(scanForCardNumbers(text).matches, expected);
    }
  });

  test('stops at panScanMatchesMax and says so', () => {
    const text = '4242424242424242 '.repeat(30);
    const limits = { ...vaultLimits, panScanMatchesMax: 10 };
    assert.deepEqual(
      { count: scanForCardNumbers(text, limits).matches.length, truncated: scanForCardNumbers(text, limits).truncated },
      { count: 10, truncated: true },
    );
    const exact = scanForCardNumbers('4242424242424242 x '.repeat(10), limits);
    assert.deepEqual({ count: exact.matches.length, truncated: exact.truncated }, { count: 10, truncated: false });
  });

  test('maskCardNumbers replaces each number by its masked form and leaves the rest of the text as it was', () => {
    const layouts = fc.constantFrom('plain' as const, 'fours' as const, 'amex' as const);
    fc.assert(
      fc.property(noise, arbitraryCardDigits(13, 19), layouts, noise, arbitraryCardDigits(13, 19), noise, (before, first, layout, middle, second, after) => {
        const text = `${before}${written(first, layout, '-')}${middle}, ${second}${after}`;
        const masked = maskCardNumbers(text);
        assert.deepEqual(scanForCardNumbers(masked).matches, [], 'nothing left to find');
        assert.ok(masked.startsWith(before) && masked.endsWith(after), 'the text around the numbers is kept');
        assert.ok(masked.includes(`${'*'.repeat(first.length - 4)}${first.slice(-4)}`), 'the first number, masked');
        assert.ok(masked.includes(`${'*'.repeat(second.length - 4)}${second.slice(-4)}`), 'the second number, masked');
        assert.equal(masked.includes(first.slice(0, 8)) || masked.includes(second.slice(0, 8)), false);
      }),
    );
    assert.equal(maskCardNumbers("No such PaymentMethod: '4242424242424242'"), "No such PaymentMethod: '************4242'");
    assert.equal(maskCardNumbers('amount 1000, order 12345'), 'amount 1000, order 12345');
    assert.equal(maskCardNumbers('4242424242424242 '.repeat(3), { ...vaultLimits, panScanMatchesMax: 2 }), '**************** '.repeat(3));
  });

  test('scans 32 MB of log text in linear time and finds the numbers hidden in it', () => {
    const line = '{"t":"2024-05-01T10:00:00.123Z","id":"ch_3MtwBwLkdIwHu7ix28a3tqPa","amount":2000,"created":1680800504,"ip":"10.1.2.3","tel":"+1 415-555-0123"}\n';
    const lines = Math.ceil((32 * 1024 * 1024) / line.length);
    const text = Buffer.from(line.repeat(lines));
    const hidden = [1000, Math.floor(lines / 2), lines - 3].map((index) => index * line.length + 6);
    for (const offset of hidden) text.write('4242-4242-4242-4242', offset, 'latin1');
    const started = performance.now();
    const result = scanForCardNumbers(text);
    const elapsedMs = performance.now() - started;
    console.log(`scanned ${(text.length / 1e6).toFixed(1)} MB in ${elapsedMs.toFixed(0)} ms`);
    assert.deepEqual(result.matches.map((match) => match.offset), hidden);
    // A generous bound: it catches a quadratic blowup (minutes), not a slow machine (the figure is printed).
    assert.ok(elapsedMs < 20_000, `${elapsedMs} ms`);
  });
});
