import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { recoverPendingAttempts } from '../../src/jobs/recover-in-flight.ts';
import { deliverSandboxNotifications } from '../../src/jobs/deliver-sandbox-notifications.ts';
import { limits } from '../../src/limits.ts';
import { TestClock } from '../support/clock.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { openPage, pressButton, type SandboxPage } from '../support/sandbox-pages.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: card payments that the issuer wants authenticated go through 3-D Secure 2 as Stripe's test cards
// document: frictionless or challenged, `requires_action` with a redirect to the access control server, the
// shopper back at the merchant's return_url, and ECI, authentication value and liability shift on the charge.
describe('3-D Secure', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();
  const returnUrl = 'https://shop.example/checkout/done';

  before(async () => {
    server = await startTestServer({ clock });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const confirm = (paymentMethod: string, options: Partial<Stripe.PaymentIntentCreateParams> = {}) =>
    stripe.paymentIntents.create({ amount: 4200, currency: 'eur', payment_method: paymentMethod, confirm: true, return_url: returnUrl, ...options });

  async function challenge(intent: Stripe.PaymentIntent): Promise<SandboxPage> {
    assert.equal(intent.status, 'requires_action');
    assert.equal(intent.next_action?.type, 'redirect_to_url');
    assert.equal(intent.next_action?.redirect_to_url?.return_url, returnUrl);
    return openPage(server, intent.next_action?.redirect_to_url?.url ?? '');
  }

  /** The shopper finishes on the ACS, which sends the browser to Coffer's return link, which sends it to the merchant. */
  async function finish(page: SandboxPage, action: 'complete' | 'fail', code?: string): Promise<URL> {
    const oneTimeCode = code ?? /class="code">(\d+)</.exec(page.body)?.[1] ?? '';
    const answered = await pressButton(server, page, action, action === 'complete' ? { code: oneTimeCode } : {});
    assert.equal(answered.status, 303);
    const back = new URL(String(answered.headers.location));
    assert.equal(back.pathname.startsWith('/hooks/return/'), true, 'the ACS returns the shopper to Coffer first');
    const returned = await rawRequest(server, 'GET', `${back.pathname}${back.search}`);
    assert.equal(returned.status, 200);
    const onward = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(returned.body)?.[1] ?? '';
    return new URL(onward.replace(/&amp;/g, '&'));
  }

  test('challenge required (4000002760003184): complete → succeeded, with ECI 05, CAVV and liability shift', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    assert.match(page.body, /42\.00 EUR/);
    const merchantPage = await finish(page, 'complete');
    assert.equal(`${merchantPage.origin}${merchantPage.pathname}`, returnUrl);
    assert.equal(merchantPage.searchParams.get('payment_intent'), intent.id);
    assert.equal(merchantPage.searchParams.get('payment_intent_client_secret'), intent.client_secret);
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'succeeded');
    const done = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(done.status, 'succeeded');
    assert.equal(done.next_action, null);
    const secure = (done.latest_charge as Stripe.Charge).payment_method_details?.card?.three_d_secure as unknown as Record<string, unknown>;
    assert.equal(secure.authentication_flow, 'challenge');
    assert.equal(secure.result, 'authenticated');
    assert.equal(secure.electronic_commerce_indicator, '05');
    assert.equal(secure.liability_shift, true);
    assert.equal(secure.version, '2.2.0');
  });

  test('challenge failed: the PaymentIntent needs another payment method, nothing is authorized', async () => {
    const intent = await confirm('pm_card_threeDSecure2Required');
    const before = await stateCounts(server.database.db);
    const merchantPage = await finish(await challenge(intent), 'fail');
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'failed');
    const failed = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(failed.status, 'requires_payment_method');
    assert.equal(failed.last_payment_error?.code, 'payment_intent_authentication_failure');
    assert.equal((failed.latest_charge as Stripe.Charge).status, 'failed');
    assert.equal((await stateCounts(server.database.db)).ledger_transfers, before.ledger_transfers, 'no money moved');
  });

  test('authenticated, then declined by the issuer (4000008260003178): insufficient_funds', async () => {
    const intent = await confirm('pm_card_authenticationRequiredChargeDeclinedInsufficientFunds');
    await finish(await challenge(intent), 'complete');
    const declined = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(declined.status, 'requires_payment_method');
    assert.equal(declined.last_payment_error?.decline_code, 'insufficient_funds');
  });

  test('frictionless: request_three_d_secure=any on a card that supports it authenticates without a challenge', async () => {
    const intent = await confirm('pm_card_visa', { payment_method_options: { card: { request_three_d_secure: 'any' } }, expand: ['latest_charge'] });
    assert.equal(intent.status, 'succeeded');
    const secure = (intent.latest_charge as Stripe.Charge).payment_method_details?.card?.three_d_secure as unknown as Record<string, unknown>;
    assert.equal(secure.authentication_flow, 'frictionless');
    assert.equal(secure.electronic_commerce_indicator, '05');
    assert.equal(secure.liability_shift, true);
    // Without asking, an ordinary card is not authenticated at all.
    const plain = await confirm('pm_card_visa', { expand: ['latest_charge'] });
    assert.equal((plain.latest_charge as Stripe.Charge).payment_method_details?.card?.three_d_secure, null);
  });

  test('request_three_d_secure=challenge: a card that would pass without one is challenged, and passes it', async () => {
    const intent = await confirm('pm_card_visa', { payment_method_options: { card: { request_three_d_secure: 'challenge' } } });
    assert.equal(intent.status, 'requires_action');
    await finish(await challenge(intent), 'complete');
    const done = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(done.status, 'succeeded');
    assert.equal(((done.latest_charge as Stripe.Charge).payment_method_details?.card?.three_d_secure as unknown as Record<string, unknown>).authentication_flow, 'challenge');
    // A value Stripe does not know is named, with the values it takes (no "(not shown)": options are no card data).
    await assert.rejects(confirm('pm_card_visa', { payment_method_options: { card: { request_three_d_secure: 'always' as 'any' } } }),
      (error: Stripe.errors.StripeError) => error.param === 'payment_method_options[card][request_three_d_secure]' && /automatic, any, challenge \(got always\)/.test(error.message));
  });

  test('a 3-D Secure request given at creation or by an update is kept, and the later confirmation applies it', async () => {
    const publishable = stripeClient(server, server.publishableKey);
    // Created with the merchant's request, confirmed later from the shopper's page with the publishable key.
    const created = await stripe.paymentIntents.create({ amount: 4200, currency: 'eur', payment_method_options: { card: { request_three_d_secure: 'challenge' } } });
    assert.equal(created.payment_method_options?.card?.request_three_d_secure, 'challenge');
    const confirmed = await publishable.paymentIntents.confirm(created.id, { client_secret: created.client_secret ?? '', payment_method: 'pm_card_visa', return_url: returnUrl } as Stripe.PaymentIntentConfirmParams);
    await finish(await challenge(confirmed), 'complete');
    const paid = await stripe.paymentIntents.retrieve(created.id, { expand: ['latest_charge'] });
    assert.equal(paid.status, 'succeeded');
    assert.equal(((paid.latest_charge as Stripe.Charge).payment_method_details?.card?.three_d_secure as unknown as Record<string, unknown>).authentication_flow, 'challenge');

    // Set by an update, unset by another: the confirmation follows what is kept.
    const updated = await stripe.paymentIntents.create({ amount: 4300, currency: 'eur' });
    assert.equal(updated.payment_method_options?.card?.request_three_d_secure, 'automatic');
    assert.equal((await stripe.paymentIntents.update(updated.id, { payment_method_options: { card: { request_three_d_secure: 'challenge' } } })).payment_method_options?.card?.request_three_d_secure, 'challenge');
    assert.equal((await stripe.paymentIntents.update(updated.id, { payment_method_options: { card: { request_three_d_secure: 'automatic' } } })).payment_method_options?.card?.request_three_d_secure, 'automatic');
    const plain = await stripe.paymentIntents.confirm(updated.id, { payment_method: 'pm_card_visa', return_url: returnUrl });
    assert.equal(plain.status, 'succeeded', 'automatic: a card that passes without 3-D Secure is not challenged');

    // A shopper's page may raise the merchant's request, never lower it: refused by name, and nothing changes.
    const guarded = await stripe.paymentIntents.create({ amount: 4400, currency: 'eur', payment_method_options: { card: { request_three_d_secure: 'any' } } });
    const before = [await stateCounts(server.database.db), await stripe.paymentIntents.retrieve(guarded.id)];
    await assert.rejects(publishable.paymentIntents.confirm(guarded.id, {
      client_secret: guarded.client_secret ?? '', payment_method: 'pm_card_visa', return_url: returnUrl, payment_method_options: { card: { request_three_d_secure: 'automatic' } },
    } as Stripe.PaymentIntentConfirmParams), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'payment_method_options[card][request_three_d_secure]' && /may keep or raise it/.test(error.message));
    assert.deepEqual([await stateCounts(server.database.db), await stripe.paymentIntents.retrieve(guarded.id)], before, 'the refused confirmation changed nothing');
    const raised = await publishable.paymentIntents.confirm(guarded.id, {
      client_secret: guarded.client_secret ?? '', payment_method: 'pm_card_visa', return_url: returnUrl, payment_method_options: { card: { request_three_d_secure: 'challenge' } },
    } as Stripe.PaymentIntentConfirmParams);
    await finish(await challenge(raised), 'complete');
    assert.equal((await stripe.paymentIntents.retrieve(guarded.id)).payment_method_options?.card?.request_three_d_secure, 'challenge');

    // A bad value on create or update is refused by name and makes or changes nothing.
    const counts = await stateCounts(server.database.db);
    await assert.rejects(stripe.paymentIntents.create({ amount: 4500, currency: 'eur', payment_method_options: { card: { request_three_d_secure: 'always' as 'any' } } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'payment_method_options[card][request_three_d_secure]');
    await assert.rejects(stripe.paymentIntents.update(updated.id, { payment_method_options: { card: { request_three_d_secure: 'sometimes' as 'any' } } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'payment_method_options[card][request_three_d_secure]');
    assert.deepEqual(await stateCounts(server.database.db), counts);
  });

  test('manual capture after a challenge: requires_capture, then captured', async () => {
    const intent = await confirm('pm_card_authenticationRequired', { capture_method: 'manual' });
    await finish(await challenge(intent), 'complete');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_capture');
    assert.equal((await stripe.paymentIntents.capture(intent.id)).status, 'succeeded');
  });

  /** Saves a card for `customer` with a SetupIntent confirmed at once, as Stripe's guide for saving cards does. */
  const setUp = (customer: string, paymentMethod: string, options: Partial<Stripe.SetupIntentCreateParams> = {}) =>
    stripe.setupIntents.create({ customer, payment_method: paymentMethod, confirm: true, usage: 'off_session', return_url: returnUrl, ...options });

  /** The SetupIntent's challenge page, after checking what the SetupIntent says to do next. */
  async function setupChallenge(setup: Stripe.SetupIntent): Promise<SandboxPage> {
    assert.equal(setup.status, 'requires_action');
    assert.equal(setup.next_action?.type, 'redirect_to_url');
    assert.equal(setup.next_action?.redirect_to_url?.return_url, returnUrl);
    return openPage(server, setup.next_action?.redirect_to_url?.url ?? '');
  }

  const savedCards = async (customer: string) => (await stripe.customers.listPaymentMethods(customer)).data.map((method) => method.id);

  test('setup with a challenge (4000002500003155): requires_action, the card saved only once authenticated, then charged off session without one', async () => {
    const customer = await stripe.customers.create({ email: 'later@example.com' });
    const setup = await setUp(customer.id, 'pm_card_authenticationRequiredOnSetup');
    const page = await setupChallenge(setup);
    assert.match(page.body, /0\.00 USD/, 'the issuer shows a verification of nothing');
    assert.deepEqual(await savedCards(customer.id), [], 'nothing is saved before the cardholder authenticates');
    const waiting = (await stripe.events.list({ type: 'setup_intent.requires_action' })).data.find((event) => (event.data.object as Stripe.SetupIntent).id === setup.id);
    assert.equal((waiting?.data.object as Stripe.SetupIntent | undefined)?.status, 'requires_action');
    const merchantPage = await finish(page, 'complete');
    assert.equal(`${merchantPage.origin}${merchantPage.pathname}`, returnUrl);
    assert.deepEqual([merchantPage.searchParams.get('setup_intent'), merchantPage.searchParams.get('setup_intent_client_secret'), merchantPage.searchParams.get('redirect_status')],
      [setup.id, setup.client_secret, 'succeeded']);
    const done = await stripe.setupIntents.retrieve(setup.id);
    assert.deepEqual([done.status, done.next_action, done.last_setup_error], ['succeeded', null, null]);
    assert.deepEqual(await savedCards(customer.id), [setup.payment_method]);
    const later = await stripe.paymentIntents.create({
      amount: 3100, currency: 'eur', customer: customer.id, payment_method: setup.payment_method as string, off_session: true, confirm: true,
    });
    assert.equal(later.status, 'succeeded');
    // On session the same card, not set up, is challenged.
    assert.equal((await confirm('pm_card_authenticationRequiredOnSetup')).status, 'requires_action');
    // A card that needs no authentication is saved at once, as before.
    const plain = await setUp(customer.id, 'pm_card_visa');
    assert.deepEqual([plain.status, plain.next_action], ['succeeded', null]);
  });

  test('setup challenge failed: the SetupIntent needs another card (setup_intent_authentication_failure); another one is settled by the acquirer\'s notification', async () => {
    const customer = await stripe.customers.create({ email: 'failing@example.com' });
    const setup = await setUp(customer.id, 'pm_card_authenticationRequired');
    const merchantPage = await finish(await setupChallenge(setup), 'fail');
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'failed');
    const failed = await stripe.setupIntents.retrieve(setup.id);
    assert.deepEqual([failed.status, failed.payment_method, failed.next_action, failed.last_setup_error?.code, failed.last_setup_error?.type],
      ['requires_payment_method', null, null, 'setup_intent_authentication_failure', 'invalid_request_error']);
    assert.deepEqual(await savedCards(customer.id), []);
    assert.ok((await stripe.events.list({ type: 'setup_intent.setup_failed' })).data.some((event) => (event.data.object as Stripe.SetupIntent).id === setup.id));

    // Confirmed again with another card; the cardholder authenticates and closes the tab: the acquirer tells Coffer.
    const again = await stripe.setupIntents.confirm(setup.id, { payment_method: 'pm_card_authenticationRequired' });
    const page = await setupChallenge(again);
    const answered = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
    assert.equal(answered.status, 303);
    assert.equal((await stripe.setupIntents.retrieve(setup.id)).status, 'requires_action', 'nothing is believed before Coffer hears of it');
    assert.ok(await deliverSandboxNotifications(server.coffer.services) >= 1, 'the acquirer told Coffer');
    const settled = await stripe.setupIntents.retrieve(setup.id);
    assert.equal(settled.status, 'succeeded');
    assert.deepEqual(await savedCards(customer.id), [settled.payment_method]);
    // This card needs the cardholder on every payment: off session it is declined, set up or not.
    await assert.rejects(
      stripe.paymentIntents.create({ amount: 3200, currency: 'eur', customer: customer.id, payment_method: settled.payment_method as string, off_session: true, confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'authentication_required' && error.decline_code === 'authentication_required',
    );
  });

  test('a SetupIntent canceled during its challenge stays canceled, and its card unsaved, when the challenge is finished afterwards', async () => {
    const customer = await stripe.customers.create({ email: 'canceling@example.com' });
    const setup = await setUp(customer.id, 'pm_card_authenticationRequired');
    const page = await setupChallenge(setup);
    assert.equal((await stripe.setupIntents.cancel(setup.id)).status, 'canceled');
    const merchantPage = await finish(page, 'complete');
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'failed');
    await deliverSandboxNotifications(server.coffer.services);
    const after = await stripe.setupIntents.retrieve(setup.id);
    assert.deepEqual([after.status, after.next_action], ['canceled', null]);
    assert.deepEqual(await savedCards(customer.id), []);
    // A confirmation of a SetupIntent waiting for its challenge, with no new card, is refused and changes nothing.
    const waiting = await setUp(customer.id, 'pm_card_authenticationRequired');
    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.setupIntents.confirm(waiting.id), (error: Stripe.errors.StripeError) => error.code === 'setup_intent_unexpected_state');
    await assert.rejects(stripe.setupIntents.confirm(waiting.id, { return_url: 'javascript:alert(1)' }), (error: Stripe.errors.StripeError) => error.param === 'return_url');
    const { idempotency_keys: _kept, ...unchanged } = await stateCounts(server.database.db);
    const { idempotency_keys: _before, ...counted } = before;
    assert.deepEqual(unchanged, counted);
    assert.equal((await stripe.setupIntents.retrieve(waiting.id)).status, 'requires_action');
  });

  test('error_on_requires_action: a card that would need a challenge is declined authentication_required instead; others pay', async () => {
    await assert.rejects(
      stripe.paymentIntents.create({ amount: 3300, currency: 'eur', payment_method: 'pm_card_authenticationRequired', error_on_requires_action: true, confirm: true }),
      (error: Stripe.errors.StripeCardError) => error.code === 'authentication_required' && error.decline_code === 'authentication_required'
        && error.payment_intent?.status === 'requires_payment_method' && error.payment_intent.next_action === null
        // No advice from the issuer: the field is absent, as Stripe's type has it (a string or nothing), not null.
        && error.payment_intent.last_payment_error !== null && !('advice_code' in error.payment_intent.last_payment_error),
    );
    const plain = await stripe.paymentIntents.create({ amount: 3400, currency: 'eur', payment_method: 'pm_card_visa', error_on_requires_action: true, confirm: true });
    assert.equal(plain.status, 'succeeded', 'a card that needs no challenge is not affected');
    const created = await stripe.paymentIntents.create({ amount: 3500, currency: 'eur', payment_method: 'pm_card_threeDSecure2Required' });
    await assert.rejects(stripe.paymentIntents.confirm(created.id, { error_on_requires_action: true }),
      (error: Stripe.errors.StripeCardError) => error.decline_code === 'authentication_required');
    assert.equal((await confirm('pm_card_authenticationRequired')).status, 'requires_action', 'without it, the shopper is challenged');
    const before = await stateCounts(server.database.db);
    const unconfirmed = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=3600&currency=eur&error_on_requires_action=true' });
    assert.deepEqual([unconfirmed.status, (unconfirmed.json.error as { param?: string }).param], [400, 'error_on_requires_action']);
    const wallet = await rawRequest(server, 'POST', '/v1/payment_intents', {
      key: server.secretKey, body: 'amount=3600&currency=cny&payment_method_data[type]=alipay&confirm=true&error_on_requires_action=true&return_url=https://shop.example/back',
    });
    assert.equal(wallet.status, 400, wallet.body);
    assert.match(String((wallet.json.error as { message?: string }).message), /cannot be used with alipay/);
    const { idempotency_keys: _kept, ...after } = await stateCounts(server.database.db);
    const { idempotency_keys: _before, ...counted } = before;
    assert.deepEqual(after, counted, 'refused before anything is written');
  });

  test('a forged return link changes nothing and leads nowhere', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const forged = await rawRequest(server, 'GET', `/hooks/return/${intent.latest_charge as string}?sig=${'A'.repeat(32)}`);
    assert.equal(forged.status, 404);
    assert.ok(!forged.body.includes(intent.client_secret ?? 'no secret'));
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
  });

  test('cancel during a challenge ends it at the acquirer first: finishing it afterwards charges nothing', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    const canceled = await stripe.paymentIntents.cancel(intent.id);
    assert.equal(canceled.status, 'canceled');
    const late = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
    assert.ok(late.status >= 400, `the ended challenge refuses completion (got ${late.status})`);
    const atAcquirer = await server.database.db.selectFrom('sandbox_card_payments').select(['status', 'amount_captured'])
      .where('merchant_reference', '=', intent.latest_charge as string).executeTakeFirstOrThrow();
    assert.equal(atAcquirer.status, 'abandoned');
    assert.equal(atAcquirer.amount_captured, 0n);
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).status, 'failed');
  });

  test('another card while a challenge is open: the challenge is ended at the acquirer first, and finishing it afterwards charges nothing', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    const firstCharge = intent.latest_charge as string;
    const paid = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    assert.equal(paid.status, 'succeeded', 'the shopper who closed the challenge pays with another card, as at Stripe');
    assert.notEqual(paid.latest_charge, firstCharge);
    const abandoned = await stripe.charges.retrieve(firstCharge);
    assert.deepEqual([abandoned.status, abandoned.failure_code], ['failed', 'payment_intent_authentication_failure']);
    const late = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
    assert.ok(late.status >= 400, `the ended challenge refuses completion (got ${late.status})`);
    const atAcquirer = await server.database.db.selectFrom('sandbox_card_payments').select(['status', 'amount_captured'])
      .where('merchant_reference', '=', firstCharge).executeTakeFirstOrThrow();
    assert.deepEqual([atAcquirer.status, atAcquirer.amount_captured], ['abandoned', 0n]);
    const charges = await stripe.charges.list({ payment_intent: intent.id });
    assert.deepEqual(charges.data.map((charge) => charge.status).sort(), ['failed', 'succeeded'], 'one payment, once');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount_received, 4200);
  });

  test('a new amount or card while a challenge is open: the challenge is ended first, and finishing it afterwards charges nothing', async () => {
    for (const change of [{ amount: 5100 }, { payment_method: 'pm_card_visa' }] as const) {
      const intent = await confirm('pm_card_authenticationRequired');
      const page = await challenge(intent);
      const updated = await stripe.paymentIntents.update(intent.id, change);
      const expected = 'amount' in change
        ? { status: 'requires_payment_method', amount: 5100, payment_method: null }
        : { status: 'requires_confirmation', amount: 4200, payment_method: updated.payment_method };
      assert.deepEqual({ status: updated.status, amount: updated.amount, payment_method: updated.payment_method }, expected);
      const late = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
      assert.ok(late.status >= 400, `the ended challenge refuses completion (got ${late.status})`);
      const atAcquirer = await server.database.db.selectFrom('sandbox_card_payments').select(['status', 'amount_captured'])
        .where('merchant_reference', '=', intent.latest_charge as string).executeTakeFirstOrThrow();
      assert.deepEqual([atAcquirer.status, atAcquirer.amount_captured], ['abandoned', 0n]);
      const paid = await stripe.paymentIntents.confirm(intent.id, 'amount' in change ? { payment_method: 'pm_card_visa' } : {});
      assert.deepEqual([paid.status, paid.amount_received], ['succeeded', expected.amount], 'paid once, for the amount it now has');
    }
  });

  test('an update refused for its own reasons leaves the open challenge alone', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    const refusals = [{ amount: 1 }, { payment_method: 'pm_nonexistent123' }, { amount: 99_999_999_999 }, { amount: 5000, metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }];
    for (const change of refusals) {
      await assert.rejects(stripe.paymentIntents.update(intent.id, change as Stripe.PaymentIntentUpdateParams), (error: Stripe.errors.StripeError) => error.statusCode === 400 || error.statusCode === 404);
    }
    const still = await stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual([still.status, still.amount, still.last_payment_error], ['requires_action', 4200, null], 'nothing changed');
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).status, 'pending', 'the challenge is still open');
    const merchantPage = await finish(page, 'complete');
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'succeeded', 'and the shopper finishes it');
  });

  test('a confirmation that brings no new card, or one that is refused, leaves the open challenge alone', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    const open = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_intent_unexpected_state' && /requires_action/.test(error.message);
    await assert.rejects(stripe.paymentIntents.confirm(intent.id), open);
    await assert.rejects(stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_doesnotexist00000000000' }),
      (error: Stripe.errors.StripeError) => error.statusCode === 404);
    const elsewhere = await stripe.customers.create({ email: 'someone-else@example.com' });
    const theirs = await stripe.paymentMethods.attach((await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031 } })).id, { customer: elsewhere.id });
    await assert.rejects(stripe.paymentIntents.confirm(intent.id, { payment_method: theirs.id }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');
    const still = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(still.status, 'requires_action', 'the challenge is still open');
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).status, 'pending');
    const merchantPage = await finish(page, 'complete');
    assert.equal(merchantPage.searchParams.get('redirect_status'), 'succeeded', 'and the shopper can still finish it');
  });

  test('a challenge finished just before the new confirmation: its payment stands, and the new confirmation is refused', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    // The shopper finishes at the access control server, but the return to Coffer has not arrived yet.
    const answered = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
    assert.equal(answered.status, 303);
    await assert.rejects(stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_mastercard' }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_intent_unexpected_state');
    const settled = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(settled.status, 'succeeded');
    assert.equal(settled.latest_charge, intent.latest_charge, 'paid by the challenged card, once');
    assert.equal((await stripe.charges.list({ payment_intent: intent.id })).data.length, 1);
  });

  test('a shopper who authenticates and closes the tab: the acquirer\'s notification settles the payment at once', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    const page = await challenge(intent);
    const answered = await pressButton(server, page, 'complete', { code: /class="code">(\d+)</.exec(page.body)?.[1] ?? '' });
    assert.equal(answered.status, 303, 'the browser would be sent back, but never follows');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
    assert.ok(await deliverSandboxNotifications(server.coffer.services) >= 1, 'the acquirer told Coffer');
    const paid = await stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual([paid.status, paid.amount_received], ['succeeded', 4200], 'without the return and without the recovery job');
    const events = await stripe.events.list({ type: 'payment_intent.succeeded', limit: 5 });
    assert.ok(events.data.some((event) => (event.data.object as Stripe.PaymentIntent).id === intent.id), 'the merchant hears of it');
    // The shopper's return, if it comes after all, finds the payment made and changes nothing.
    const back = new URL(String(answered.headers.location));
    assert.equal((await rawRequest(server, 'GET', `${back.pathname}${back.search}`)).status, 200);
    assert.equal((await stripe.charges.list({ payment_intent: intent.id })).data.length, 1, 'paid once');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount_received, 4200);
  });

  test('a shopper who never comes back: the challenge is ended by the recovery job, nothing authorized', async () => {
    const intent = await confirm('pm_card_authenticationRequired');
    await challenge(intent);
    clock.offsetMs += limits.threeDSecureWindowMs + 60_000;
    await recoverPendingAttempts(server.coffer.services);
    const ended = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(ended.status, 'requires_payment_method');
    assert.equal(ended.last_payment_error?.code, 'payment_intent_authentication_failure');
    clock.offsetMs = 0;
  });
});
