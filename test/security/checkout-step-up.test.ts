import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StepUpRefused } from '../../src/flows/shopper-step-up.ts';
import { checkPaymentPassword } from '../../src/flows/shopper-credentials.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { limits } from '../../src/limits.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';
import { openCheckoutPage, type CheckoutPage } from '../support/checkout-page.ts';

// Goal: the hosted checkout's step-up holds under concurrency. Many wrong payment passwords sent at once count
// exactly five tries and lock; a one-time code sent many times at once is accepted once; bad input (a guessable
// password, an unknown identity) changes nothing it should not; identities that are not the merchant's are counted,
// and close the page's step-up at the bound, even under concurrency. And the payment password policy refuses the
// passwords anyone would try first.
describe('checkout step-up under concurrency', () => {
  let server: TestServer;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock });
    const set = await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: 5 }) });
    assert.equal(set.status, 200, set.body);
  });
  after(() => server.close());

  /** A session's page, and a poster that sends what the page's script would (its origin and token). */
  async function openPage(customerEmail?: string): Promise<{ id: string; post: CheckoutPage['post'] }> {
    const session = await server.stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok', currency: 'cny', ...(customerEmail === undefined ? {} : { customer_email: customerEmail }),
      line_items: [{ price_data: { currency: 'cny', unit_amount: 20_000, product_data: { name: 'Kettle' } }, quantity: 1 }],
    });
    // The email the page asks of a session the merchant gave none: not an identity a step-up may use.
    const page = await openCheckoutPage(server, session, { details: { email: 'shopper@example.com' } });
    return { id: session.id, post: page.post };
  }

  async function codeFor(destination: string): Promise<string> {
    const outbox = await rawRequest(server, 'GET', `/sandbox/outbox?format=json&to=${encodeURIComponent(destination)}`, { key: server.secretKey });
    const [latest] = outbox.json.data as Array<{ body: string }>;
    return /\b(\d{6})\b/.exec(latest?.body ?? '')?.[1] ?? '';
  }

  /** A card PaymentMethod of the merchant, as the card frame would make it. */
  const card = async () => ({
    method: 'card',
    payment_method: (await server.stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id,
  });
  const rowsOf = (sessionId: string) => server.database.db.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', sessionId).execute();

  test('the payment password policy: six digits, none of the first ones anyone would try', () => {
    for (const good of ['739164', '582047', '102938', '000100']) assert.doesNotThrow(() => checkPaymentPassword(good), good);
    const reasonOf = (password: string) => {
      try {
        checkPaymentPassword(password);
        return 'accepted';
      } catch (error) {
        return error instanceof StepUpRefused ? error.reason : 'other';
      }
    };
    for (const weak of ['000000', '111111', '123456', '234567', '890123', '987654', '210987', '121212', '123123', '909090']) assert.equal(reasonOf(weak), 'password_weak', weak);
    for (const malformed of ['12345', '1234567', 'abcdef', '12 456', '']) assert.equal(reasonOf(malformed), 'password_format', malformed);
  });

  test('a code sent many times at once is accepted once; twenty wrong passwords at once count five tries and lock', async () => {
    const email = 'shopper@example.com';
    const first = await openPage();
    assert.equal((await first.post('/confirm', await card())).json.state, 'step_up');
    assert.equal((await first.post('/step-up/send', { destination: 'Shopper@Example.com' })).status, 200);
    const code = await codeFor(email);
    assert.match(code, /^\d{6}$/);
    const weak = await first.post('/step-up/verify', { code, new_password: '111111' });
    assert.equal(weak.status, 400);
    assert.equal((await rowsOf(first.id))[0]?.attempts, 0, 'a refused password spends no try of the code');
    const answers = await Promise.all(Array.from({ length: 10 }, () => first.post('/step-up/verify', { code, new_password: '739164' })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 400, 400, 400, 400, 400, 400, 400, 400, 400], 'one code, one success');
    const paid = await first.post('/confirm', await card());
    assert.equal(paid.json.state, 'complete', paid.body);

    const second = await openPage();
    const tries = await Promise.all(Array.from({ length: 20 }, (_, i) => second.post('/step-up/password', { identity: email, password: String(300_000 + i) })));
    assert.ok(tries.every((answer) => answer.status === 400));
    const [row] = (await rowsOf(second.id)).filter((entry) => entry.method === 'payment_password');
    assert.equal(row?.attempts, 5, 'exactly five tries were counted');
    const counted = await server.database.db.selectFrom('shopper_password_tries').selectAll().where('identity', '=', email).executeTakeFirstOrThrow();
    assert.equal(counted.failed_attempts, 5);
    assert.notEqual(counted.locked_at, null);
    const right = await second.post('/step-up/password', { identity: email, password: '739164' });
    assert.equal(right.status, 400, 'the right password is refused once locked');
    assert.equal(row?.verified_at, null);
    assert.equal((await second.post('/confirm', await card())).json.state, 'step_up', 'the payment still asks');

    // An identity without a password is counted and locked the same way: a lock tells nothing about who has one.
    const third = await openPage();
    for (let i = 0; i < 5; i += 1) await third.post('/step-up/password', { identity: 'nobody@example.com', password: String(400_000 + i) });
    const fourth = await openPage();
    const known = await fourth.post('/step-up/password', { identity: email, password: '400001' });
    const unknown = await fourth.post('/step-up/password', { identity: 'nobody@example.com', password: '400001' });
    assert.equal(known.status, 400);
    assert.match(String(known.json.message), /locked/, 'the identity with a password is locked');
    assert.equal(unknown.json.message, known.json.message, 'the same answer for an identity with a password and one without');
    assert.equal(await server.database.db.selectFrom('shopper_credentials').select('id').where('identity', '=', 'nobody@example.com').executeTakeFirst(), undefined);
    const empty = await fourth.post('/step-up/password', { identity: 'fresh@example.com', password: '' });
    assert.equal(empty.status, 400);
    assert.equal(await server.database.db.selectFrom('shopper_password_tries').select('identity').where('identity', '=', 'fresh@example.com').executeTakeFirst(), undefined, 'an empty password is not a try');
  });

  test('when the merchant gave the shopper\'s email, the step-up must reach it: a stranger\'s own address or password proves nothing', async () => {
    const page = await openPage('Real.Cardholder@example.com');
    assert.equal((await page.post('/confirm', await card())).json.state, 'step_up');
    const messages = async () => (await server.database.db.selectFrom('shopper_messages').select('id').execute()).length;
    const before = { messages: await messages(), rows: (await rowsOf(page.id)).length };
    for (const [path, body] of [
      ['/step-up/send', { destination: 'fraudster@attacker.example' }],
      ['/step-up/send', { destination: '+8613800000000' }],
      ['/step-up/password', { identity: 'fraudster@attacker.example', password: '739164' }],
    ] as const) {
      const refused = await page.post(path, body);
      assert.equal(refused.status, 400, refused.body);
      assert.match(String(refused.json.message), /phone number or email address you gave the shop/, refused.body);
    }
    assert.deepEqual({ messages: await messages(), rows: (await rowsOf(page.id)).length }, before, 'no code sent, no try counted');
    assert.equal(await server.database.db.selectFrom('shopper_password_tries').select('identity').where('identity', '=', 'fraudster@attacker.example').executeTakeFirst(), undefined);
    // The address on file, in any case, gets its code, and the payment goes through.
    assert.equal((await page.post('/step-up/send', { destination: 'real.cardholder@EXAMPLE.com' })).status, 200);
    const code = await codeFor('real.cardholder@example.com');
    assert.equal((await page.post('/step-up/verify', { code })).status, 200);
    assert.equal((await page.post('/confirm', await card())).json.state, 'complete');
  });

  const notOnFile = /phone number or email address you gave the shop/;
  const closed = /Too many tries with a phone number or email address the shop does not have/;
  const refusalsOf = async (sessionId: string) => ({
    counted: (await server.database.db.selectFrom('checkout_sessions').select('step_up_identity_refusals').where('id', '=', sessionId).executeTakeFirstOrThrow()).step_up_identity_refusals,
    audited: (await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'step_up.not_on_file').where('object_id', '=', sessionId).execute()).length,
  });

  test('five identities that are not the one on file close the page\'s step-up: then even the right one is refused, and nothing is sent', async () => {
    const page = await openPage('holder@example.com');
    assert.equal((await page.post('/confirm', await card())).json.state, 'step_up');
    const messages = async () => (await server.database.db.selectFrom('shopper_messages').select('id').execute()).length;
    const before = { messages: await messages(), rows: (await rowsOf(page.id)).length };
    for (let i = 1; i < limits.stepUpIdentityRefusalsMax; i += 1) {
      const guess = i % 2 === 0 ? page.post('/step-up/send', { destination: `guess${i}@example.com` }) : page.post('/step-up/password', { identity: `guess${i}@example.com`, password: '739164' });
      const refused = await guess;
      assert.equal(refused.status, 400, refused.body);
      assert.match(String(refused.json.message), notOnFile, `refusal ${i} asks for the address on file`);
    }
    const last = await page.post('/step-up/send', { destination: 'holder@example.org' });
    assert.equal(last.status, 400);
    assert.match(String(last.json.message), closed, 'the refusal that reaches the bound says the step-up is closed');
    // The right address, a password for it, a code try: all refused now, sending and counting nothing.
    for (const [path, body] of [
      ['/step-up/send', { destination: 'Holder@Example.com' }],
      ['/step-up/password', { identity: 'holder@example.com', password: '739164' }],
      ['/step-up/verify', { code: '123456' }],
    ] as const) {
      const refused = await page.post(path, body);
      assert.equal(refused.status, 400, refused.body);
      assert.match(String(refused.json.message), closed, path);
    }
    assert.deepEqual({ messages: await messages(), rows: (await rowsOf(page.id)).length }, before, 'no code sent, no step-up row written');
    assert.equal(await codeFor('holder@example.com'), '', 'no code reached the address on file');
    assert.deepEqual(await refusalsOf(page.id), { counted: limits.stepUpIdentityRefusalsMax, audited: limits.stepUpIdentityRefusalsMax }, 'refusals after the bound are not counted');
    assert.equal(await server.database.db.selectFrom('shopper_password_tries').select('identity').where('identity', 'in', ['guess1@example.com', 'holder@example.com']).executeTakeFirst(), undefined,
      'no identity\'s password count was touched');
    // Nothing else about the payment changed: it still waits for the shopper, and the page still asks for a step-up.
    const session = await server.stripe.checkout.sessions.retrieve(page.id);
    assert.equal(session.status, 'open');
    const intent = await server.stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.deepEqual([intent.status, intent.latest_charge], ['requires_payment_method', null]);
    assert.equal((await page.post('/confirm', await card())).json.state, 'step_up');
  });

  test('wrong identities sent at once are counted exactly to the bound', async () => {
    const page = await openPage('concurrent.holder@example.com');
    const guesses = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0
      ? page.post('/step-up/send', { destination: `+86138000100${String(i).padStart(2, '0')}` })
      : page.post('/step-up/password', { identity: `guess${i}@example.com`, password: '739164' }))));
    assert.ok(guesses.every((answer) => answer.status === 400), 'every guess refused');
    const said = guesses.map((answer) => (notOnFile.test(String(answer.json.message)) ? 'not_on_file' : closed.test(String(answer.json.message)) ? 'closed' : answer.body));
    assert.deepEqual(said.sort(), [...Array(limits.stepUpIdentityRefusalsMax - 1).fill('not_on_file'), ...Array(9 - limits.stepUpIdentityRefusalsMax).fill('closed')].sort());
    assert.deepEqual(await refusalsOf(page.id), { counted: limits.stepUpIdentityRefusalsMax, audited: limits.stepUpIdentityRefusalsMax });
    const right = await page.post('/step-up/send', { destination: 'concurrent.holder@example.com' });
    assert.match(String(right.json.message), closed, 'the right address is refused after the bound');
    assert.equal(await codeFor('concurrent.holder@example.com'), '');
  });

  // The outbox holds shoppers' addresses, codes and orders: only the merchant's own test secret key opens it.
  test('the sandbox outbox shows a merchant its own test messages only, to its test secret key only', async () => {
    const page = await openPage();
    clock.offsetMs += 31_000;
    const destination = '+8613800138009';
    assert.equal((await page.post('/step-up/send', { destination })).status, 200);
    const url = `/sandbox/outbox?format=json&to=${encodeURIComponent(destination)}`;
    const anonymous = await rawRequest(server, 'GET', url);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="Coffer sandbox outbox/);
    assert.doesNotMatch(anonymous.body, /\d{6}/, 'no code in the refusal');
    const other = await rawRequest(server, 'GET', url, { key: server.otherSecretKey });
    assert.deepEqual([other.status, other.json.data], [200, []], "another merchant sees none of this merchant's messages");
    const live = (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal();
    assert.equal((await rawRequest(server, 'GET', url, { key: live })).status, 403);
    const restricted = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { checkout: 'write' } })).key.reveal();
    assert.equal((await rawRequest(server, 'GET', url, { key: restricted })).status, 403, 'a restricted key does not open it');
    // A browser sends the key as the user name of basic authentication.
    const basic = await rawRequest(server, 'GET', url, { headers: { authorization: `Basic ${Buffer.from(`${server.secretKey}:`).toString('base64')}` } });
    assert.equal(basic.status, 200, basic.body);
    assert.equal((basic.json.data as unknown[]).length, 1);
    assert.match(await codeFor(destination), /^\d{6}$/);
  });

  test('a proof confirms only the amount it was given for; passkey routes refuse on an address host', async () => {
    const page = await openPage();
    const session = await server.stripe.checkout.sessions.retrieve(page.id);
    clock.offsetMs += 31_000;
    assert.equal((await page.post('/step-up/send', { destination: '+8613800138001' })).status, 200);
    assert.equal((await page.post('/step-up/verify', { code: await codeFor('+8613800138001') })).status, 200);
    // The PaymentIntent's amount changes after the proof: the proof no longer applies.
    await server.database.db.updateTable('payment_intents').set({ amount: 30_000n }).where('id', '=', session.payment_intent as string).execute();
    // A page still showing the old amount is sent back to show the new one; one showing the new amount is asked again.
    const stale = await page.post('/confirm', await card());
    assert.deepEqual([stale.json.state, stale.json.redirect], ['redirect', `/pay/${page.id}?lang=en&changed=1`]);
    assert.equal((await page.post('/confirm', { ...(await card()), amount: '30000' })).json.state, 'step_up');
    await server.database.db.updateTable('payment_intents').set({ amount: 20_000n }).where('id', '=', session.payment_intent as string).execute();
    // This server's page is on 127.0.0.1: an IP address cannot be a relying party, so no passkey ceremony starts.
    const options = await page.post('/step-up/passkey/options', {});
    assert.equal(options.status, 400);
    assert.deepEqual((await rowsOf(page.id)).filter((row) => row.method === 'passkey'), [], 'nothing was stored');
    assert.equal((await page.post('/confirm', await card())).json.state, 'complete');
  });

  test('when the risk engine asks for a step-up on a wallet payment, the page asks the shopper first; a card gets 3-D Secure', async () => {
    const json = (method: string, urlPath: string, body: unknown) => rawRequest(server, method, urlPath, { key: server.secretKey, contentType: 'application/json', body: JSON.stringify(body) });
    assert.equal((await json('POST', '/v1/risk/settings', { step_up_above_usd: '' })).status, 200);
    const rules = await json('POST', '/v1/risk/rule_sets', { rules: [{ id: 'ask_everyone', text: 'request_step_up if :amount: > 0' }] });
    assert.equal(rules.status, 200, rules.body);

    const page = await openPage();
    const session = await server.stripe.checkout.sessions.retrieve(page.id);
    const intentId = session.payment_intent as string;
    const asked = await page.post('/confirm', { method: 'alipay' });
    assert.equal(asked.json.state, 'step_up', asked.body);
    const untouched = await server.stripe.paymentIntents.retrieve(intentId);
    assert.equal(untouched.status, 'requires_payment_method');
    assert.equal(untouched.latest_charge, null, 'no attempt was written');
    const decisions = await server.database.db.selectFrom('risk_decisions').select('id').where('payment_intent_id', '=', intentId).execute();
    assert.deepEqual(decisions, [], 'no decision was stored for the attempt that was not made');

    clock.offsetMs += 31_000;
    assert.equal((await page.post('/step-up/send', { destination: '+8613800138002' })).status, 200);
    assert.equal((await page.post('/step-up/verify', { code: await codeFor('+8613800138002') })).status, 200);
    const paying = await page.post('/confirm', { method: 'alipay' });
    assert.equal(paying.json.state, 'redirect', paying.body);
    const charge = await server.database.db.selectFrom('charges').select('risk').where('payment_intent_id', '=', intentId).executeTakeFirstOrThrow();
    assert.deepEqual([charge.risk?.action, charge.risk?.step_up, charge.risk?.shopper_step_up], ['request_step_up', 'provider_authentication', 'sms_code']);

    // A card whose shopper confirmed with a code still goes through the 3-D Secure the risk engine asked for.
    assert.equal((await json('POST', '/v1/risk/settings', { step_up_above_usd: 5 })).status, 200);
    const stepped = await openPage();
    clock.offsetMs += 31_000;
    assert.equal((await stepped.post('/step-up/send', { destination: '+8613800138003' })).status, 200);
    assert.equal((await stepped.post('/step-up/verify', { code: await codeFor('+8613800138003') })).status, 200);
    assert.equal((await stepped.post('/confirm', await card())).json.state, 'complete');
    const steppedSession = await server.stripe.checkout.sessions.retrieve(stepped.id);
    const steppedCharge = await server.database.db.selectFrom('charges').select('risk').where('payment_intent_id', '=', steppedSession.payment_intent as string).executeTakeFirstOrThrow();
    assert.deepEqual([steppedCharge.risk?.step_up, steppedCharge.risk?.shopper_step_up], ['three_d_secure', 'sms_code']);
    assert.equal((await json('POST', '/v1/risk/settings', { step_up_above_usd: '' })).status, 200);

    const cardPage = await openPage();
    const challenged = await cardPage.post('/confirm', await card());
    // 3-D Secure is asked for; this test card's issuer lets it through without a challenge.
    assert.equal(challenged.json.state, 'complete', 'a card goes through 3-D Secure, without the page\'s own step-up');
    const cardSession = await server.stripe.checkout.sessions.retrieve(cardPage.id);
    const cardCharge = await server.database.db.selectFrom('charges').select('risk').where('payment_intent_id', '=', cardSession.payment_intent as string).executeTakeFirstOrThrow();
    assert.equal(cardCharge.risk?.step_up, 'three_d_secure');
  });
});
