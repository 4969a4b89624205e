import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { messageHtml, presentationOf } from '../../src/checkout/presentation.ts';
import { CofferError } from '../../src/domain/errors.ts';

// Goal: a merchant's message on the hosted page (custom_text, decision 0059) can put nothing on the page but text
// and https links: no markup, no attribute, no other scheme, whatever it holds; and a message with a link that is not
// https is refused when the session is made.
describe('the merchant\'s messages on the checkout page', () => {
  test('links: https only, written as parsed and escaped; everything else stays text', () => {
    const cases: Array<[string, string]> = [
      ['Read [our terms](https://shop.example/terms).', 'Read <a href="https://shop.example/terms" target="_blank" rel="noopener noreferrer">our terms</a>.'],
      ['[Upper](HTTPS://SHOP.example/A)', '<a href="https://shop.example/A" target="_blank" rel="noopener noreferrer">Upper</a>'],
      ['[Tea](https://en.wikipedia.org/wiki/Tea_(meal)) time', '<a href="https://en.wikipedia.org/wiki/Tea_(meal)" target="_blank" rel="noopener noreferrer">Tea</a> time'],
      ['[x](javascript:alert(1))', '[x](javascript:alert(1))'],
      ['[x](http://shop.example/)', '[x](http://shop.example/)'],
      ['[x](https://user:pw@shop.example/)', '[x](https://user:pw@shop.example/)'],
      ['[x](data:text/html,<script>alert(1)</script>)', '[x](data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;)'],
      ['<img src=x onerror=alert(1)> & "quotes"', '&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot;'],
      ['[<b>bold</b>](https://shop.example/)', '<a href="https://shop.example/" target="_blank" rel="noopener noreferrer">&lt;b&gt;bold&lt;/b&gt;</a>'],
      ['[q](https://shop.example/a"onmouseover="x)', '<a href="https://shop.example/a%22onmouseover=%22x" target="_blank" rel="noopener noreferrer">q</a>'],
    ];
    for (const [message, html] of cases) assert.equal(messageHtml(message), html, message);
  });

  test('whatever a message holds, the page gets no tag but the links it made, and no attribute but theirs', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300, unit: fc.constantFrom('<', '>', '"', '\'', '&', '[', ']', '(', ')', ':', '/', 'a', 'h', 't', 'p', 's', ' ', '=', 'javascript', 'https://x.example') }), (message) => {
      const html = messageHtml(message);
      const tags = html.match(/<[^>]*>/g) ?? [];
      for (const tag of tags) {
        assert.match(tag, /^(<a href="https:\/\/[^"<>]*" target="_blank" rel="noopener noreferrer">|<\/a>)$/, `${message} gave ${tag}`);
      }
    }), { numRuns: 2_000 });
  });

  test('a link that is not https is refused when the session is made, naming the message', () => {
    for (const message of ['[x](javascript:alert(1))', '[x](http://shop.example/)', '[x](ftp://shop.example/)', '[x](https://user:pw@shop.example/)']) {
      assert.throws(() => presentationOf({ custom_text: { after_submit: { message } } }, false),
        (error: unknown) => error instanceof CofferError && error.details.param === 'custom_text[after_submit][message]' && /https URL/.test(error.message), message);
    }
    assert.deepEqual(presentationOf({ custom_text: { submit: { message: ' [ok](https://shop.example/) ' }, after_submit: '' } }, false).custom_text, { submit: { message: '[ok](https://shop.example/)' } });
  });
});
