import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, type RawResponse, type TestServer } from '../support/server.ts';
import { currentApiVersion, releasedApiVersions } from '../../src/objects/api-version.ts';

// Goal: every bad request is refused with Stripe's error envelope naming the problem (status, type, code, param,
// a message a developer can act on), and a refused request changes nothing: no row, no event, no ledger movement.
describe('Refused requests', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    // Some history, so that "nothing changed" is checked against non-empty tables and ledger accounts.
    await server.stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    await server.stripe.paymentIntents.create({ amount: 900, currency: 'eur', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  interface Expected {
    status: number;
    code: string;
    type?: string;
    /** Omitted: the error must carry no `param`. */
    param?: string;
    message: string | RegExp;
    /** The refusal is a security event: exactly one audit record, with this action, and nothing else changes. */
    audited?: string;
  }

  /** Row counts of every table a request could change, and every ledger account's balances. */
  async function snapshot() {
    const accounts = await server.database.db
      .selectFrom('ledger_accounts')
      .select(['id', 'debits_pending', 'debits_posted', 'credits_pending', 'credits_posted'])
      .orderBy('id')
      .execute();
    return { counts: await stateCounts(server.database.db), accounts };
  }

  /** Sends the request, checks the error it gets in every detail, and that state and ledger are as they were. */
  async function refused(send: () => Promise<RawResponse>, expected: Expected): Promise<Record<string, unknown>> {
    const before = await snapshot();
    const response = await send();
    const context = `expected ${expected.code}, got ${response.status} ${response.body.slice(0, 400)}`;
    assert.equal(response.status, expected.status, context);
    assert.match(String(response.headers['content-type']), /^application\/json/, context);
    const error = response.json.error as Record<string, unknown> | undefined;
    assert.ok(typeof error === 'object' && error !== null, `Stripe's error envelope: ${context}`);
    assert.equal(error.type, expected.type ?? 'invalid_request_error', context);
    assert.equal(error.code, expected.code, context);
    if (expected.param === undefined) assert.equal(error.param, undefined, context);
    else assert.equal(error.param, expected.param, context);
    if (typeof expected.message === 'string') assert.equal(error.message, expected.message, context);
    else assert.match(String(error.message), expected.message, context);
    assert.equal(error.request_id, response.headers['request-id']);
    assert.equal(response.headers['cache-control'], 'no-cache, no-store', context);
    const expectedAfter = expected.audited === undefined ? before : { ...before, counts: { ...before.counts, audit_log: before.counts.audit_log + 1 } };
    assert.deepEqual(await snapshot(), expectedAfter, `a refused request changes nothing (${expected.code})`);
    if (expected.audited !== undefined) {
      const record = await server.database.db.selectFrom('audit_log').select(['action', 'request_id']).orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
      assert.deepEqual(record, { action: expected.audited, request_id: response.headers['request-id'] });
    }
    return error;
  }

  const form = (path: string, body: string, key = server.secretKey, headers: Record<string, string> = {}) =>
    rawRequest(server, 'POST', path, { key, body, headers });
  /** `key: null` sends no Authorization header. */
  const get = (path: string, key: string | null = server.secretKey, headers: Record<string, string> = {}) =>
    rawRequest(server, 'GET', path, { ...(key === null ? {} : { key }), headers });
  const create = (body: string) => form('/v1/payment_intents', body);
  const createJson = (body: string) =>
    rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body, contentType: 'application/json' });

  const invalidInteger = (value: string): Expected => ({ status: 400, code: 'parameter_invalid_integer', param: 'amount', message: `Invalid integer: ${value}` });
  const metadataKeys = Array.from({ length: 51 }, (_, i) => `metadata[k${i}]=v`).join('&');
  const createCases: Array<[string, string, Expected]> = [
    ['off_session without confirm', 'amount=100&currency=usd&payment_method=pm_card_visa&off_session=true',
      { status: 400, code: 'parameter_invalid', param: 'off_session', message: /^off_session can only be given with confirm=true/ }],
    ['return_url without confirm', 'amount=100&currency=usd&return_url=https://shop.example/back',
      { status: 400, code: 'parameter_invalid', param: 'return_url', message: /^return_url can only be given with confirm=true/ }],
    ['an unknown parameter', 'amount=100&currency=usd&foo=1', { status: 400, code: 'parameter_unknown', param: 'foo', message: 'Received unknown parameter: foo' }],
    ['an unknown nested parameter', 'amount=100&currency=usd&shipping[name]=A&shipping[address][city]=B&shipping[foo]=1',
      { status: 400, code: 'parameter_unknown', param: 'shipping[foo]', message: 'Received unknown parameter: shipping[foo]' }],
    ['an unknown nested parameter alone', 'amount=100&currency=usd&shipping[foo]=1',
      { status: 400, code: 'parameter_unknown', param: 'shipping[foo]', message: 'Received unknown parameter: shipping[foo]' }],
    ['a parameter the form parser drops (__proto__)', 'amount=100&currency=usd&__proto__[x]=1',
      { status: 400, code: 'parameter_unknown', param: '__proto__[x]', message: 'Received unknown parameter: __proto__[x]' }],
    ['a parameter named like an Object member (toString)', 'amount=100&currency=usd&toString=1',
      { status: 400, code: 'parameter_unknown', param: 'toString', message: 'Received unknown parameter: toString' }],
    ['a nested parameter named like an Object member', 'amount=100&currency=usd&shipping[name]=A&shipping[address][hasOwnProperty]=1',
      { status: 400, code: 'parameter_unknown', param: 'shipping[address][hasOwnProperty]', message: 'Received unknown parameter: shipping[address][hasOwnProperty]' }],
    ['a missing amount', 'currency=usd', { status: 400, code: 'parameter_missing', param: 'amount', message: 'Missing required param: amount.' }],
    ['a missing currency', 'amount=100', { status: 400, code: 'parameter_missing', param: 'currency', message: 'Missing required param: currency.' }],
    ['a decimal amount', 'amount=12.5&currency=usd', invalidInteger('12.5')],
    ['an exponent amount', 'amount=1e3&currency=usd', invalidInteger('1e3')],
    ['a non-numeric amount', 'amount=abc&currency=usd', invalidInteger('abc')],
    ['a negative amount', 'amount=-5&currency=usd', { status: 400, code: 'parameter_invalid_integer', param: 'amount', message: 'This value must be greater than or equal to 1.' }],
    ['a zero amount', 'amount=0&currency=usd', { status: 400, code: 'parameter_invalid_integer', param: 'amount', message: 'This value must be greater than or equal to 1.' }],
    ['an amount of nine digits', 'amount=100000000&currency=usd',
      { status: 400, code: 'amount_too_large', param: 'amount', message: 'Amount must be no more than 999999.99 usd' }],
    ['an amount below the currency minimum', 'amount=49&currency=usd',
      { status: 400, code: 'amount_too_small', param: 'amount', message: 'Amount must be at least 0.50 usd' }],
    ['an unknown currency', 'amount=100&currency=xyz',
      { status: 400, code: 'currency_invalid', param: 'currency', message: /^Invalid currency: xyz\. Coffer supports these currencies: .*\busd\b/ }],
    ['a three-decimal amount not ending in 0', 'amount=1235&currency=bhd',
      { status: 400, code: 'invalid_charge_amount', param: 'amount', message: /^Amounts in bhd must be a multiple of 10 \(got 1235\)/ }],
    ['an ISK amount that is not whole units', 'amount=5550&currency=isk',
      { status: 400, code: 'invalid_charge_amount', param: 'amount', message: /^Amounts in isk must be a multiple of 100 \(got 5550\)/ }],
    ['an amount below the floor of a currency Stripe publishes no minimum for', 'amount=399999&currency=idr',
      { status: 400, code: 'amount_too_small', param: 'amount', message: "Amount must be at least 4000.00 idr (about 0.25 usd: Coffer's floor for a currency without a published minimum)" }],
    ['a value outside an enum', 'amount=100&currency=usd&capture_method=sometimes',
      { status: 400, code: 'parameter_invalid', param: 'capture_method', message: /capture_method.*\bautomatic, automatic_async,? (or )?manual\b/ }],
    ['a card capture_method other than manual (the only one Stripe takes there)', 'amount=100&currency=usd&payment_method_options[card][capture_method]=automatic',
      { status: 400, code: 'parameter_invalid', param: 'payment_method_options[card][capture_method]', message: 'Invalid payment_method_options[card][capture_method]: must be one of manual (got automatic)' }],
    ['a card capture_method with confirm=true', 'amount=100&currency=usd&payment_method=pm_card_visa&confirm=true&payment_method_options[card][capture_method]=automatic_async',
      { status: 400, code: 'parameter_invalid', param: 'payment_method_options[card][capture_method]', message: 'Invalid payment_method_options[card][capture_method]: must be one of manual (got automatic_async)' }],
    ['an unknown card setup_future_usage', 'amount=100&currency=usd&payment_method_options[card][setup_future_usage]=always',
      { status: 400, code: 'parameter_invalid', param: 'payment_method_options[card][setup_future_usage]', message: 'Invalid payment_method_options[card][setup_future_usage]: must be one of none, on_session, off_session (got always)' }],
    ['an unknown card option', 'amount=100&currency=usd&payment_method_options[card][capture]=manual',
      { status: 400, code: 'parameter_unknown', param: 'payment_method_options[card][capture]', message: 'Received unknown parameter: payment_method_options[card][capture]' }],
    ['a non-boolean flag', 'amount=100&currency=usd&confirm=maybe',
      { status: 400, code: 'parameter_invalid', param: 'confirm', message: 'Invalid confirm: expected a boolean, got maybe' }],
    ['51 metadata keys', `amount=100&currency=usd&${metadataKeys}`,
      { status: 400, code: 'parameter_invalid', param: 'metadata', message: 'Invalid metadata: must have at most 50 keys' }],
    ['a 41-character metadata key', `amount=100&currency=usd&metadata[${'k'.repeat(41)}]=v`,
      { status: 400, code: 'parameter_invalid', param: 'metadata', message: /\bkeys?\b.*\b40 characters/i }],
    ['an empty metadata key (the SDK sends metadata[]=…)', 'amount=100&currency=usd&metadata[]=x',
      { status: 400, code: 'parameter_invalid', param: 'metadata', message: 'Invalid metadata key in metadata[]: metadata keys cannot be empty.' }],
    ['a metadata key with square brackets', 'amount=100&currency=usd&metadata[a[b]]=x',
      { status: 400, code: 'parameter_invalid', param: 'metadata', message: "Invalid metadata: the key 'a[b]' holds a square bracket, which keys cannot (keys are 1 to 40 characters, without [ or ])." }],
    ['a 501-character metadata value', `amount=100&currency=usd&metadata[key]=${'v'.repeat(501)}`,
      { status: 400, code: 'parameter_invalid', param: 'metadata[key]', message: 'Invalid metadata[key]: must be at most 500 characters' }],
    ['a description over 1000 characters', `amount=100&currency=usd&description=${'d'.repeat(1001)}`,
      { status: 400, code: 'parameter_invalid', param: 'description', message: 'Invalid description: must be at most 1000 characters' }],
    ['an empty amount', 'amount=&currency=usd',
      { status: 400, code: 'parameter_invalid_empty', param: 'amount', message: /^You passed an empty string for 'amount'.*'amount' cannot be unset/ }],
    ['an empty currency', 'amount=100&currency=',
      { status: 400, code: 'parameter_invalid_empty', param: 'currency', message: /^You passed an empty string for 'currency'.*'currency' cannot be unset/ }],
    ['form nesting deeper than allowed', 'amount=100&currency=usd&metadata[a][b][c][d][e][f][g]=1',
      { status: 400, code: 'request_body_invalid', message: /could not be parsed: .*depth.* 5\b/ }],
    ['an unexpandable path', 'amount=100&currency=usd&expand[]=foo',
      { status: 400, code: 'parameter_invalid', param: 'expand', message: 'This property cannot be expanded (foo); what can be expanded here: latest_charge, payment_method, latest_charge.balance_transaction, customer.' }],
    ['an unknown payment method', 'amount=100&currency=usd&payment_method=pm_nope&confirm=true',
      { status: 404, code: 'resource_missing', param: 'payment_method', message: "No such PaymentMethod: 'pm_nope'" }],
  ];
  for (const [name, body, expected] of createCases) {
    test(`create with ${name} is refused`, async () => {
      await refused(() => create(body), expected);
    });
  }

  // The body as a whole: encodings, sizes and shapes the API does not take.
  test('JSON bodies: a string where an integer goes, malformed JSON', async () => {
    await refused(() => createJson('{"amount": 2000, "currency": "us'),
      { status: 400, code: 'request_body_invalid', message: /^The request body could not be parsed/ });
    await refused(() => createJson('{"amount":100,"currency":"usd","__proto__":{"x":1}}'),
      { status: 400, code: 'request_body_invalid', message: /^The request body could not be parsed/ });
    const error = await refused(() => createJson(JSON.stringify({ amount: '2000', currency: 'usd' })),
      { status: 400, code: 'parameter_invalid_integer', param: 'amount', message: /^Invalid integer: / });
    assert.match(String(error.message), /"2000"|string/, 'the message shows that a string was sent, not an integer');
  });

  test('metadata keys named like Object members are kept, in a form as in JSON, not dropped', async () => {
    const body = 'amount=100&currency=usd&metadata[toString]=a&metadata[valueOf]=b&metadata[hasOwnProperty]=c';
    const fromForm = await create(body);
    assert.equal(fromForm.status, 200, fromForm.body);
    const fromJson = await createJson('{"amount":100,"currency":"usd","metadata":{"toString":"a","valueOf":"b","hasOwnProperty":"c"}}');
    assert.equal(fromJson.status, 200, fromJson.body);
    for (const response of [fromForm, fromJson]) assert.deepEqual(response.json.metadata, { toString: 'a', valueOf: 'b', hasOwnProperty: 'c' });
  });

  test('a body over 256 KiB is refused before anything runs', async () => {
    const body = `amount=100&currency=usd&description=${'x'.repeat(256 * 1024)}`;
    await refused(() => create(body), { status: 400, code: 'request_body_too_large', message: 'The request body is larger than 262144 bytes.' });
  });

  test('an unsupported content type is named as such', async () => {
    const message = 'Send the request body as application/x-www-form-urlencoded or application/json.';
    for (const contentType of ['multipart/form-data; boundary=x', 'application/xml', 'text/plain']) {
      await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=100&currency=usd', contentType }),
        { status: 400, code: 'content_type_unsupported', message });
    }
  });

  test('text Coffer could not store or read as sent is refused by name: NUL characters, broken URL encoding, other character sets', async () => {
    const nul = (param: string) => ({ status: 400, code: 'parameter_invalid', param, message: `Invalid value for ${param}: it contains a NUL character (U+0000), which Coffer does not accept in text.` });
    await refused(() => create('amount=100&currency=usd&description=a%00b'), nul('description'));
    await refused(() => create('amount=100&currency=usd&metadata[order]=1%002'), nul('metadata[order]'));
    await refused(() => create('amount=100&currency=usd&metadata[or%00der]=1'), nul('metadata[or\u0000der]'));
    await refused(() => createJson(JSON.stringify({ amount: 100, currency: 'usd', shipping: { name: 'A\u0000', address: {} } })), nul('shipping[name]'));
    await refused(() => get('/v1/payment_intents?starting_after=pi_a%00b'), nul('starting_after'));
    await refused(() => get('/v1/payment_intents/pi_a%00b'), nul('intent'));
    await refused(() => get('/v1/customers/search?query=name%3A%27a%00%27'), nul('query'));
    await refused(() => create('amount=100&currency=usd&description=%ZZ'),
      { status: 400, code: 'parameter_invalid', param: 'description', message: 'Invalid value for description: it is not valid URL encoding of UTF-8 text.' });
    await refused(() => create('amount=100&currency=usd&description=%FF%FE'),
      { status: 400, code: 'parameter_invalid', param: 'description', message: 'Invalid value for description: it is not valid URL encoding of UTF-8 text.' });
    await refused(() => create('amount=100&currency=usd&descr%E0%A4%A=x'),
      { status: 400, code: 'request_body_invalid', message: 'The parameter name "descr%E0%A4%A" is not valid URL encoding of UTF-8 text.' });
    await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=100&currency=usd&description=%E9', contentType: 'application/x-www-form-urlencoded; charset=iso-8859-1' }),
      { status: 400, code: 'content_type_unsupported', message: 'Send the request body in UTF-8; charset=iso-8859-1 is not supported.' });
    // Bytes that are not UTF-8, sent as they are (not URL-encoded): refused, in a form or in JSON, not stored as U+FFFD.
    const notUtf8 = { status: 400, code: 'request_body_invalid', message: 'The request body is not valid UTF-8 text.' };
    await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: Buffer.from('amount=100&currency=usd&description=caf\u00e9', 'latin1') }), notUtf8);
    await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', {
      key: server.secretKey, body: Buffer.from('{"amount":100,"currency":"usd","description":"caf\u00e9"}', 'latin1'), contentType: 'application/json',
    }), notUtf8);
    const accepted = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=100&currency=usd&description=caf%C3%A9', contentType: 'application/x-www-form-urlencoded; charset=UTF-8' });
    assert.equal(accepted.json.description, 'café', 'UTF-8, said or not, is read as such');
    const ascii = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=100&currency=usd&description=Order+7', contentType: 'application/x-www-form-urlencoded; charset=ISO-8859-1' });
    assert.equal(ascii.json.description, 'Order 7', 'plain ASCII reads the same whatever the label');
  });

  test('Stripe Connect\'s account headers are refused, not ignored: nothing runs on the key\'s own account instead', async () => {
    for (const header of ['Stripe-Account', 'Stripe-Context']) {
      const message = `Coffer has no connected accounts, so it does not take the ${header} header; send the request without it, with the key of the account it is for.`;
      await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', server.secretKey, { [header]: 'acct_other' }), { status: 400, code: 'header_unsupported', message });
      await refused(() => get('/v1/balance', server.secretKey, { [header]: 'acct_other' }), { status: 400, code: 'header_unsupported', message });
    }
  });

  test('a create without any body says which parameter is missing', async () => {
    await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey }),
      { status: 400, code: 'parameter_missing', param: 'amount', message: 'Missing required param: amount.' });
  });

  // Confirm naming a payment method that does not exist must leave the PaymentIntent exactly as it was.
  test('confirm with an unknown payment method changes nothing', async () => {
    const withoutMethod = await server.stripe.paymentIntents.create({ amount: 1500, currency: 'usd', metadata: { order: 'v-1' } });
    const withMethod = await server.stripe.paymentIntents.create({ amount: 1600, currency: 'usd', payment_method: 'pm_card_visa' });
    for (const intent of [withoutMethod, withMethod]) {
      const before = await get(`/v1/payment_intents/${intent.id}`);
      await refused(() => form(`/v1/payment_intents/${intent.id}/confirm`, 'payment_method=pm_nope'),
        { status: 404, code: 'resource_missing', param: 'payment_method', message: "No such PaymentMethod: 'pm_nope'" });
      const after = await get(`/v1/payment_intents/${intent.id}`);
      assert.equal(after.status, 200);
      assert.deepEqual(after.json, before.json, 'the PaymentIntent is exactly as it was');
    }
    const still = await server.stripe.paymentIntents.retrieve(withMethod.id);
    assert.equal(still.status, 'requires_confirmation');
    assert.equal(still.latest_charge, null);
  });

  test('bad card options on update and confirm are refused by name and change nothing', async () => {
    const intent = await server.stripe.paymentIntents.create({
      amount: 1700, currency: 'usd', payment_method: 'pm_card_visa', payment_method_options: { card: { capture_method: 'manual', setup_future_usage: 'on_session' } },
    });
    const cases: Array<[string, string, string, string]> = [
      ['', 'payment_method_options[card][capture_method]=automatic&metadata[note]=x', 'payment_method_options[card][capture_method]', 'must be one of manual (got automatic)'],
      ['', 'payment_method_options[card][setup_future_usage]=later', 'payment_method_options[card][setup_future_usage]', 'must be one of none, on_session, off_session (got later)'],
      ['/confirm', 'payment_method_options[card][capture_method]=automatic', 'payment_method_options[card][capture_method]', 'must be one of manual (got automatic)'],
      ['/confirm', 'payment_method_options[card][setup_future_usage]=sometimes', 'payment_method_options[card][setup_future_usage]', 'must be one of none, on_session, off_session (got sometimes)'],
    ];
    for (const [action, body, param, problem] of cases) {
      const before = await get(`/v1/payment_intents/${intent.id}`);
      await refused(() => form(`/v1/payment_intents/${intent.id}${action}`, body), { status: 400, code: 'parameter_invalid', param, message: `Invalid ${param}: ${problem}` });
      assert.deepEqual((await get(`/v1/payment_intents/${intent.id}`)).json, before.json, 'the PaymentIntent is exactly as it was');
    }
    // The options a confirmation applies are kept too (decision 0044): a bad value is refused by name, on update and
    // on a creation without confirm=true alike.
    for (const [body, param, problem] of [
      ['payment_method_options[card][request_three_d_secure]=always', 'payment_method_options[card][request_three_d_secure]', 'must be one of automatic, any, challenge (got always)'],
      ['payment_method_options[wechat_pay][client]=desktop', 'payment_method_options[wechat_pay][client]', 'must be one of web, mobile_web, jsapi (got desktop)'],
    ] as const) {
      const before = await get(`/v1/payment_intents/${intent.id}`);
      await refused(() => form(`/v1/payment_intents/${intent.id}`, body), { status: 400, code: 'parameter_invalid', param, message: `Invalid ${param}: ${problem}` });
      assert.deepEqual((await get(`/v1/payment_intents/${intent.id}`)).json, before.json, 'the PaymentIntent is exactly as it was');
      await refused(() => form('/v1/payment_intents', `amount=1000&currency=cny&${body}`), { status: 400, code: 'parameter_invalid', param, message: `Invalid ${param}: ${problem}` });
    }
    const still = await server.stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual([still.status, still.latest_charge, still.metadata], ['requires_confirmation', null, {}]);
    assert.deepEqual([still.payment_method_options?.card?.capture_method, still.payment_method_options?.card?.setup_future_usage], ['manual', 'on_session']);
  });

  // Who is asking: a missing, malformed, unknown or publishable key never reaches the data.
  test('requests without a usable secret key are refused with 401', async () => {
    await refused(() => get('/v1/payment_intents', null), {
      status: 401,
      code: 'api_key_missing',
      message: /^You did not provide an API key\. You need to provide your API key in the Authorization header/,
    });
    await refused(() => rawRequest(server, 'POST', '/v1/payment_intents', { body: 'amount=100&currency=usd' }),
      { status: 401, code: 'api_key_missing', message: /^You did not provide an API key/ });
    const malformed = await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', 'not-a-key-abcd'),
      { status: 401, code: 'api_key_invalid', message: 'Invalid API Key provided: ****abcd' });
    assert.doesNotMatch(String(malformed.message), /not-a-key/);
    const unknownKey = `sk_test_${'Q'.repeat(44)}wxyz`;
    const unknown = await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', unknownKey),
      { status: 401, code: 'api_key_invalid', message: 'Invalid API Key provided: sk_test_****wxyz' });
    assert.ok(!String(unknown.message).includes(unknownKey), 'the key is masked');
    const publishable = { status: 401, code: 'secret_key_required', message: 'This API call cannot be made with a publishable API key. Please use a secret API key.' };
    await refused(() => get('/v1/payment_intents', server.publishableKey), publishable);
    await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', server.publishableKey), publishable);
  });

  test("another merchant's key gets 404 on a PaymentIntent exactly as for an unknown id, and nothing changes", async () => {
    const mine = await server.stripe.paymentIntents.create({ amount: 3000, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    assert.equal(mine.status, 'requires_capture');
    const before = await get(`/v1/payment_intents/${mine.id}`);
    const unknownId = 'pi_doesnotexist000000000000';
    const calls: Array<[string, (id: string) => Promise<RawResponse>]> = [
      ['retrieve', (id) => get(`/v1/payment_intents/${id}`, server.otherSecretKey)],
      ['update', (id) => form(`/v1/payment_intents/${id}`, 'description=hijacked&metadata[x]=1', server.otherSecretKey)],
      ['cancel', (id) => form(`/v1/payment_intents/${id}/cancel`, 'cancellation_reason=fraudulent', server.otherSecretKey)],
      ['capture', (id) => form(`/v1/payment_intents/${id}/capture`, 'amount_to_capture=3000', server.otherSecretKey)],
      ['confirm', (id) => form(`/v1/payment_intents/${id}/confirm`, 'payment_method=pm_card_visa', server.otherSecretKey)],
    ];
    const normalized = (error: Record<string, unknown>, id: string) => ({ ...error, request_id: '', message: String(error.message).replace(id, '<id>') });
    for (const [name, call] of calls) {
      const theirs = await refused(() => call(mine.id), {
        status: 404, code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${mine.id}'`, audited: 'api_request.cross_merchant_access',
      });
      const unknown = await refused(() => call(unknownId), { status: 404, code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${unknownId}'` });
      assert.deepEqual(normalized(theirs, mine.id), normalized(unknown, unknownId), `${name}: indistinguishable from an unknown id`);
    }
    await refused(() => get(`/v1/payment_intents?starting_after=${mine.id}`, server.otherSecretKey),
      { status: 404, code: 'resource_missing', param: 'starting_after', message: `No such payment_intent: '${mine.id}'`, audited: 'api_request.cross_merchant_access' });
    const after = await get(`/v1/payment_intents/${mine.id}`);
    assert.deepEqual(after.json, before.json, 'the owner sees the PaymentIntent exactly as before');
  });

  // Headers, URLs and list parameters.
  test('an invalid Stripe-Version is refused before the request runs: only versions Stripe released are served', async () => {
    // Unreleased dates, and release names that are not that date's, are refused rather than guessed at.
    for (const version of ['banana', '2019-01-01', '2999-01-01', '2024-05-01', '2025-03-31.acacia', '2025-04-01.basil', '2024-04-10.basil', '2026-10-28.Endive']) {
      await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', server.secretKey, { 'stripe-version': version }),
        { status: 400, code: 'api_version_invalid', param: 'Stripe-Version', message: `Invalid Stripe API version: ${version}; send one of Stripe's released versions from 2020-08-27 to ${currentApiVersion}.` });
    }
    // Stripe's releases before 2022-11-15 put charges on the PaymentIntent and refunds on the Charge: served in that
    // shape (test/e2e/api-versions-before-2022-11-15.test.ts).
    for (const version of ['2020-08-27', '2022-08-01']) {
      const made = await form('/v1/payment_intents', 'amount=100&currency=usd', server.secretKey, { 'stripe-version': version });
      assert.equal(made.status, 200, made.body);
      assert.deepEqual(made.json.charges, { object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/charges?payment_intent=${String(made.json.id)}` });
    }
    assert.equal(releasedApiVersions.at(-1), currentApiVersion, 'the current version is the newest released');
    // automatic_payment_methods is enabled by default from 2023-08-16, as at Stripe.
    const defaults = async (version: string) => {
      const made = await form('/v1/payment_intents', 'amount=100&currency=usd', server.secretKey, { 'stripe-version': version });
      assert.equal(made.status, 200, made.body);
      return [made.json.automatic_payment_methods, made.json.payment_method_types];
    };
    assert.deepEqual(await defaults('2022-11-15'), [null, ['card']]);
    assert.deepEqual(await defaults('2023-08-16'), [{ allow_redirects: 'always', enabled: true }, ['card']]);
    // Every released version is served, a named one also by its date alone, in the shape of its era.
    for (const version of [...releasedApiVersions, '2025-03-31', '2024-09-30']) {
      const answered = await get('/v1/payment_intents?limit=1', server.secretKey, { 'stripe-version': version });
      assert.equal(answered.status, 200, version);
      assert.equal(answered.headers['stripe-version'], version);
    }
  });

  test('an unknown URL or method is url_unknown', async () => {
    await refused(() => get('/v1/nope'), { status: 404, code: 'url_unknown', message: 'Unrecognized request URL (GET: /v1/nope).' });
    await refused(() => form('/v1/payment_intent', 'amount=100&currency=usd'),
      { status: 404, code: 'url_unknown', message: 'Unrecognized request URL (POST: /v1/payment_intent).' });
    await refused(() => rawRequest(server, 'DELETE', '/v1/payment_intents/pi_x', { key: server.secretKey }),
      { status: 404, code: 'url_unknown', message: 'Unrecognized request URL (DELETE: /v1/payment_intents/pi_x).' });
  });

  // A JSON answer loads nothing: its policy is exactly "nothing, and in no frame", without a library's defaults.
  test('API answers carry a content security policy that allows nothing, and HSTS', async () => {
    const response = await rawRequest(server, 'GET', '/v1/balance', { key: server.secretKey });
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'");
    assert.match(String(response.headers['strict-transport-security']), /^max-age=31536000; includeSubDomains/);
  });

  test('an over-long id gets an answer in Stripe\'s error envelope', async () => {
    const response = await get(`/v1/payment_intents/pi_${'x'.repeat(300)}`);
    assert.ok([400, 404, 414].includes(response.status), `status ${response.status}`);
    const error = response.json.error as Record<string, unknown> | string | undefined;
    assert.equal(typeof error, 'object', `Stripe's envelope, got ${response.body.slice(0, 200)}`);
    assert.equal((error as Record<string, unknown>).type, 'invalid_request_error');
  });

  test('list parameters out of range name the parameter', async () => {
    await refused(() => get('/v1/payment_intents?limit=0'), { status: 400, code: 'parameter_invalid_integer', param: 'limit', message: 'Invalid limit: must be at least 1' });
    await refused(() => get('/v1/payment_intents?limit=101'), { status: 400, code: 'parameter_invalid_integer', param: 'limit', message: 'Invalid limit: must be at most 100' });
    await refused(() => get('/v1/payment_intents?limit=ten'), { status: 400, code: 'parameter_invalid_integer', param: 'limit', message: 'Invalid integer: ten' });
    await refused(() => get('/v1/payment_intents?starting_after=pi_nope'),
      { status: 404, code: 'resource_missing', param: 'starting_after', message: "No such payment_intent: 'pi_nope'" });
    await refused(() => get('/v1/payment_intents?expand[]=data.nope'),
      { status: 400, code: 'parameter_invalid', param: 'expand', message: 'This property cannot be expanded (data.nope); what can be expanded here: data.latest_charge, data.payment_method, data.latest_charge.balance_transaction, data.customer.' });
    await refused(() => get('/v1/payment_intents?colour=red'), { status: 400, code: 'parameter_unknown', param: 'colour', message: 'Received unknown parameter: colour' });
    // Events: type or types, as at Stripe, and a wildcard only at the end (elsewhere it would match nothing, silently).
    await refused(() => get('/v1/events?type=charge.succeeded&types[]=charge.refunded'),
      { status: 400, code: 'parameter_invalid', param: 'types', message: 'You may pass either type or types, but not both.' });
    await refused(() => get('/v1/events?type=*.created'),
      { status: 400, code: 'parameter_invalid', param: 'type', message: 'Invalid type: *.created. A wildcard may only end the type, as in charge.*.' });
    assert.equal((await get('/v1/events?type=charge.*')).status, 200);
    // `*` alone is every type.
    const every = await get('/v1/events?type=*&limit=5');
    const unfiltered = await get('/v1/events?limit=5');
    assert.ok((every.json.data as unknown[]).length > 0);
    assert.deepEqual(every.json.data, unfiltered.json.data);
    const listed = await get('/v1/payment_intents?limit=100');
    assert.equal(listed.status, 200, 'the bounds themselves are accepted');
  });

  test('retrieve with an unknown expand path names expand', async () => {
    const intent = await server.stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    await refused(() => get(`/v1/payment_intents/${intent.id}?expand[]=customer.nope`),
      { status: 400, code: 'parameter_invalid', param: 'expand', message: 'This property cannot be expanded (customer.nope); what can be expanded here: latest_charge, payment_method, latest_charge.balance_transaction, customer.' });
  });

  test('a partial capture that is not a whole step of its currency is refused, and the hold can still be captured', async () => {
    // UGX and ISK are charged in whole units given with two zero decimals; KWD's third decimal is 0.
    for (const [currency, amount, capture, step] of [['ugx', 200_000, 150_050, 100], ['isk', 10_000, 9_950, 100], ['kwd', 2_000, 1_005, 10]] as const) {
      const intent = await server.stripe.paymentIntents.create({ amount, currency, payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
      assert.equal(intent.status, 'requires_capture');
      const before = await get(`/v1/payment_intents/${intent.id}`);
      await refused(() => form(`/v1/payment_intents/${intent.id}/capture`, `amount_to_capture=${capture}`), {
        status: 400, code: 'invalid_charge_amount', param: 'amount_to_capture',
        message: new RegExp(`^Amounts in ${currency} must be a multiple of ${step} \\(got ${capture}\\): `),
      });
      assert.deepEqual((await get(`/v1/payment_intents/${intent.id}`)).json, before.json, `${currency}: the PaymentIntent is as it was`);
      const captured = await server.stripe.paymentIntents.capture(intent.id, { amount_to_capture: capture - (capture % step) });
      assert.equal(captured.status, 'succeeded');
      assert.equal(captured.amount_received, capture - (capture % step));
      // A refund and a customer's balance are held to the same step.
      const stepMessage = (sent: number) => new RegExp(`^Amounts in ${currency} must be a multiple of ${step} \\(got ${sent}\\): `);
      await refused(() => form('/v1/refunds', `payment_intent=${intent.id}&amount=${step / 2}`),
        { status: 400, code: 'invalid_charge_amount', param: 'amount', message: stepMessage(step / 2) });
      const customer = await server.stripe.customers.create({ email: `${currency}@example.com` });
      await refused(() => form(`/v1/customers/${customer.id}/balance_transactions`, `amount=-${step / 2}&currency=${currency}&description=late`),
        { status: 400, code: 'invalid_charge_amount', param: 'amount', message: stepMessage(-step / 2) });
    }
    assert.equal((await get('/health', null)).status, 200, 'the server keeps serving');
  });

  test('list and created filters out of range name the parameter', async () => {
    for (const path of ['/v1/payment_intents', '/v1/events']) {
      await refused(() => get(`${path}?created[gte]=253402300800`),
        { status: 400, code: 'parameter_invalid_integer', param: 'created[gte]', message: 'Invalid created[gte]: must be at most 253402300798' });
      await refused(() => get(`${path}?created[lt]=-62135596801`),
        { status: 400, code: 'parameter_invalid_integer', param: 'created[lt]', message: 'Invalid created[lt]: must be at least 0' });
      const last = await get(`${path}?created[gt]=253402300798`);
      assert.equal(last.status, 200, last.body);
      assert.deepEqual(last.json.data, []);
    }
    // A list index past the longest list a parameter takes.
    await refused(() => get('/v1/payment_intents?expand[150]=data.latest_charge'),
      { status: 400, code: 'parameter_invalid', param: 'expand', message: /^Invalid expand: expected an array/ });
  });

  test('a JSON body nested deeper than forms may be is refused in the error envelope, and a long value is not repeated whole', async () => {
    // Written out by hand: JSON.stringify itself cannot go this deep.
    const nested = `${'{"a":'.repeat(5000)}"x"${'}'.repeat(5000)}`;
    await refused(() => createJson(`{"amount":2000,"currency":"usd","metadata":${nested}}`),
      { status: 400, code: 'request_body_invalid', message: 'The request body could not be parsed: its values are nested deeper than 5 levels.' });
    // The limit itself: objects at levels 0 to 5 below a parameter are parsed (and then refused by the schema,
    // naming the parameter); one more level is refused as the body.
    const levels = (count: number) => `${'{"k":'.repeat(count)}"x"${'}'.repeat(count)}`;
    await refused(() => createJson(`{"amount":2000,"currency":"usd","metadata":${levels(6)}}`),
      { status: 400, code: 'parameter_invalid', param: 'metadata[k]', message: /^Invalid metadata\[k\]: expected a string/ });
    await refused(() => createJson(`{"amount":2000,"currency":"usd","metadata":${levels(7)}}`),
      { status: 400, code: 'request_body_invalid', message: 'The request body could not be parsed: its values are nested deeper than 5 levels.' });
    const error = await refused(() => createJson(JSON.stringify({ amount: 2000, currency: 'usd', description: { text: 'y'.repeat(5000) } })),
      { status: 400, code: 'parameter_invalid', param: 'description', message: /^Invalid description: expected a string, got / });
    assert.ok(String(error.message).length < 400, `the message shows the start of the value only: ${String(error.message).length} characters`);
  });

  test('confirming a canceled PaymentIntent without a payment method names its status', async () => {
    const intent = await server.stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    await server.stripe.paymentIntents.cancel(intent.id);
    await refused(() => form(`/v1/payment_intents/${intent.id}/confirm`, ''), {
      status: 400, code: 'payment_intent_unexpected_state',
      message: /^This PaymentIntent could not be confirmed because it has a status of canceled\. Only a PaymentIntent with one of the following statuses may be confirmed: requires_payment_method, requires_confirmation, requires_action\.$/,
    });
  });

  test('an impossible Stripe-Version date is refused; answers name the version they are shaped for', async () => {
    await refused(() => form('/v1/payment_intents', 'amount=100&currency=usd', server.secretKey, { 'stripe-version': '2024-02-30' }),
      { status: 400, code: 'api_version_invalid', param: 'Stripe-Version', message: `Invalid Stripe API version: 2024-02-30; send one of Stripe's released versions from 2020-08-27 to ${currentApiVersion}.` });
    const legacy = await get('/v1/payment_intents?limit=1', server.secretKey, { 'stripe-version': '2024-04-10' });
    assert.equal(legacy.headers['stripe-version'], '2024-04-10');
    const current = await get('/v1/payment_intents?limit=1');
    assert.match(String(current.headers['stripe-version']), /^\d{4}-\d{2}-\d{2}\.[a-z]+$/);
  });

  test('a Basic header that holds no key is refused without echoing its bytes', async () => {
    await refused(() => get('/v1/payment_intents', null, { authorization: 'Basic xxx' }),
      { status: 401, code: 'api_key_invalid', message: 'Invalid API Key provided: ****' });
  });

  // Last, because today it takes the server down: a query string nested too deep must be a 400 like a body.
  test('a query string nested deeper than allowed is a 400 and the server keeps serving', async () => {
    const send = get('/v1/payment_intents?created[a][b][c][d][e][f][g]=1', null);
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s: the server did not survive')), 5000).unref());
    const response = await Promise.race([send, timeout]);
    assert.equal(response.status, 400, response.body);
    assert.equal((response.json.error as Record<string, unknown>).type, 'invalid_request_error');
    assert.match(String((response.json.error as Record<string, unknown>).message), /depth|nest/i);
    assert.equal((await get('/health', null)).status, 200);
  });
});
