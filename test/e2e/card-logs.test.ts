import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { scanForCardNumbers } from '../../src/vault/pan-scanner.ts';
import { scanOutsideIdentifiers } from '../support/card-scan.ts';
import { createMigratedTestDatabaseUrl } from '../support/database.ts';
import { spawnCoffer } from '../support/process.ts';
import { rawRequest } from '../support/server.ts';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-card-logs-'));

const visa = '4242424242424242';
const amex = '378282246310005';
const mastercard = '5555555555554444';

// Goal: at the most verbose log level, nothing Coffer prints holds a card number, whatever the request does with
// it: a valid card, a refused one, a card in the URL, in a header, in a body too large or malformed, in a JSON
// body, a saved card decrypted to pay. The process's whole output is scanned; its own log lines are the control.
describe('card numbers never reach the logs', { concurrency: false }, () => {
  after(() => fs.rmSync(home, { recursive: true, force: true }));

  test('trace-level output of a running coffer holds no card number', async () => {
    const url = await createMigratedTestDatabaseUrl();
    const server = await spawnCoffer(home, { ...(url === undefined ? {} : { DATABASE_URL: url }), COFFER_LOG_LEVEL: 'trace', COFFER_JOBS: 'false' });
    const { publishableKey } = JSON.parse(fs.readFileSync(path.join(home, 'demo-merchant.json'), 'utf8')) as { publishableKey: string };
    const call = (method: string, urlPath: string, options: Parameters<typeof rawRequest>[3]) => rawRequest(server, method, urlPath, options);
    try {
      const saved = await call('POST', '/v1/payment_methods', { key: publishableKey, body: `type=card&card[number]=${visa}&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123` });
      assert.equal(saved.status, 200, saved.body);
      const paid = await call('POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&confirm=true&payment_method=${String(saved.json.id)}` });
      assert.equal(paid.status, 200, paid.body);
      assert.equal(paid.json.status, 'succeeded');

      const refusals: Array<[string, string, Parameters<typeof rawRequest>[3], number]> = [
        ['POST', '/v1/payment_methods', { key: publishableKey, body: `type=card&card[number]=${amex}&card[exp_month]=13&card[exp_year]=2031` }, 402],
        ['POST', '/v1/payment_methods', { key: publishableKey, body: `type=card&card[number]=${mastercard}&card[exp_month]=1&card[exp_year]=2031&card[cvc]=12x` }, 402],
        ['POST', '/v1/tokens', { key: publishableKey, body: `card[number]=${mastercard}&card[exp_month]=1&card[exp_year]=2001` }, 402],
        ['GET', `/v1/payment_methods?card[number]=${visa}&card[cvc]=123&customer=cus_x`, { key: server.secretKey }, 400],
        ['GET', `/v1/payment_methods?customer=cus_x&card%5Bcvc%5D=123&cvv=456`, { key: server.secretKey }, 400],
        ['POST', `/v1/payment_methods?card[number]=${amex}`, { key: publishableKey, body: `type=card&card[number]=${amex}&card[exp_month]=1&card[exp_year]=2031` }, 400],
        ['POST', `/v1/payment_methods/${visa}`, { key: server.secretKey, body: 'metadata[a]=b' }, 404],
        ['POST', '/v1/payment_methods', { key: `sk_test_${visa}`, body: `type=card&card[number]=${visa}` }, 401],
        ['POST', '/v1/payment_methods', { key: publishableKey, headers: { 'idempotency-key': mastercard }, body: `type=card&card[number]=${mastercard}&card[exp_month]=1&card[exp_year]=2031` }, 200],
        ['POST', '/v1/payment_methods', { key: publishableKey, contentType: 'application/json', body: JSON.stringify({ type: 'card', card: { number: visa } }) }, 400],
        ['POST', '/v1/payment_methods', { key: publishableKey, body: `type=card&card[number]=${visa}&card[exp_month]=1&card[exp_year]=2031&%zz` }, 400],
        // Refused by its length before it is read: the answer may lose the race with the rest of the body (status 0).
        ['POST', '/v1/payment_methods', { key: publishableKey, body: `type=card&card[number]=${amex}&padding=${'x'.repeat(2_000_000)}`, resetAllowed: true }, 400],
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&payment_method=${visa}` }, 404],
        // Card details given with the payment: paid, declined, refused as a bad number, and sent without confirm.
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&confirm=true&payment_method_data[type]=card&payment_method_data[card][number]=${visa}&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=2031&payment_method_data[card][cvc]=123` }, 200],
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=1000&currency=usd&confirm=true&payment_method_data[type]=card&payment_method_data[card][number]=4000000000000002&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=2031' }, 402],
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&confirm=true&payment_method_data[type]=card&payment_method_data[card][number]=${amex.slice(0, -1)}0&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=2031` }, 402],
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&payment_method_data[type]=card&payment_method_data[card][number]=${mastercard}` }, 400],
        // Of the wrong type, the number is not repeated in the error (a list, or a JSON number).
        ['POST', '/v1/payment_intents', { key: server.secretKey, body: `amount=1000&currency=usd&confirm=true&payment_method_data[type]=card&payment_method_data[card][number][]=${visa}` }, 400],
        ['POST', '/v1/payment_intents', { key: server.secretKey, contentType: 'application/json', body: `{"amount":1000,"currency":"usd","confirm":true,"payment_method_data":{"type":"card","card":{"number":${mastercard},"exp_month":1,"exp_year":2031}}}` }, 400],
      ];
      for (const [method, urlPath, options, status] of refusals) {
        const response = await call(method, urlPath, options);
        const expected = options?.resetAllowed === true && response.status === 0 ? 0 : status;
        assert.equal(response.status, expected, `${method} ${urlPath.slice(0, 60)}: ${response.body.slice(0, 300)}`);
        const inResponse = scanForCardNumbers(response.body);
        assert.deepEqual(inResponse.matches.map((match) => match.masked), [], `the response to ${method} ${urlPath.slice(0, 40)} holds no card number`);
      }
    } finally {
      await server.kill('SIGTERM');
    }
    const output = server.output();
    // The control: the output is the trace-level log of those requests, so the scan read what it should have.
    const requestLines = output.split('\n').filter((line) => line.includes('"msg":"incoming request"'));
    assert.ok(requestLines.length >= 14, `every request was logged (${requestLines.length} lines)`);
    const found = scanOutsideIdentifiers(output);
    const context = found.matches.slice(0, 3).map((match) => output.slice(Math.max(0, match.offset - 200), match.offset));
    assert.deepEqual(found.matches.map((match) => match.masked), [], `a card number in the output, after: ${JSON.stringify(context)}`);
    for (const number of [visa, amex, mastercard]) assert.equal(output.includes(number), false);
    // Nor any security code: no log line has a cvc field or parameter (`cvc_check`, the issuer's verdict, may appear).
    const cvc = /"cvc"\s*:|(cvc|cvv)(\]|%5D)?=(?!\[redacted\])/i.exec(output);
    assert.equal(cvc, null, `a security code in the output: ${output.slice(Math.max(0, (cvc?.index ?? 0) - 200), (cvc?.index ?? 0) + 40)}`);
    assert.ok(output.includes('card[cvc]=[redacted]') && output.includes('card%5Bcvc%5D=[redacted]&cvv=[redacted]'), 'the URLs with security codes were logged, redacted');
  });
});
