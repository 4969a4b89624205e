import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { createRequire } from 'node:module';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { stateCounts } from '../support/ledger.ts';

/** stripe@15.12.0 pins API version 2024-04-10; its call signatures are those of the current SDK for what we use. */
const StripeV15 = createRequire(import.meta.url)('stripe-v15') as new (key: string, config: Stripe.StripeConfig) => Stripe;

// Goal: a platform engineer's first payments through the official Stripe SDK behave as Stripe documents them,
// every status path and amount is right, and the ledger verifies after each test.
describe('PaymentIntents through the Stripe SDK', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  test('create without a payment method waits for one', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1500, currency: 'eur', metadata: { order: 'A-1' } });
    assert.equal(intent.object, 'payment_intent');
    assert.match(intent.id, /^pi_[A-Za-z0-9]{24}$/);
    assert.equal(intent.status, 'requires_payment_method');
    assert.equal(intent.amount, 1500);
    assert.equal(intent.currency, 'eur');
    assert.deepEqual(intent.metadata, { order: 'A-1' });
    assert.equal(intent.latest_charge, null);
    assert.match(intent.client_secret ?? '', new RegExp(`^${intent.id}_secret_`));
    const again = await stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual(again, intent);
  });

  test('automatic capture: create and confirm in one call succeeds and shows the card', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 2000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
      expand: ['latest_charge', 'payment_method'],
    });
    assert.equal(intent.status, 'succeeded');
    assert.equal(intent.amount_received, 2000);
    assert.equal(intent.amount_capturable, 0);
    const charge = intent.latest_charge as Stripe.Charge;
    assert.equal(charge.object, 'charge');
    assert.equal(charge.status, 'succeeded');
    assert.equal(charge.captured, true);
    assert.equal(charge.amount_captured, 2000);
    assert.equal(charge.paid, true);
    assert.equal(charge.outcome?.network_status, 'approved_by_network');
    assert.equal(charge.outcome?.type, 'authorized');
    const card = charge.payment_method_details?.card;
    assert.equal(card?.brand, 'visa');
    assert.equal(card?.last4, '4242');
    assert.equal(card?.exp_month, 12);
    assert.equal(card?.exp_year, 2034);
    assert.equal(card?.country, 'US');
    assert.match(card?.fingerprint ?? '', /^[A-Za-z0-9]{16}$/);
    const method = intent.payment_method as Stripe.PaymentMethod;
    assert.equal(method.object, 'payment_method');
    assert.match(method.id, /^pm_/);
    assert.notEqual(method.id, 'pm_card_visa');
    assert.equal(method.card?.fingerprint, card?.fingerprint);
  });

  test('the same card has the same fingerprint, another card another', async () => {
    const pay = (pm: string) =>
      stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: pm, confirm: true, expand: ['latest_charge'] });
    const fingerprint = (intent: Stripe.PaymentIntent) => (intent.latest_charge as Stripe.Charge).payment_method_details?.card?.fingerprint;
    const [a, b, c] = await Promise.all([pay('pm_card_visa'), pay('pm_card_visa'), pay('pm_card_mastercard')]);
    assert.equal(fingerprint(a), fingerprint(b));
    assert.notEqual(fingerprint(a), fingerprint(c));
  });

  test('create, then confirm separately', async () => {
    const created = await stripe.paymentIntents.create({ amount: 3100, currency: 'gbp', payment_method: 'pm_card_mastercard' });
    assert.equal(created.status, 'requires_confirmation');
    const confirmed = await stripe.paymentIntents.confirm(created.id);
    assert.equal(confirmed.status, 'succeeded');
    assert.equal(confirmed.amount_received, 3100);
    const charge = await stripe.charges.retrieve(confirmed.latest_charge as string);
    assert.equal(charge.payment_method_details?.card?.brand, 'mastercard');
    assert.equal(charge.payment_intent, created.id);
  });

  test('confirm supplies the payment method', async () => {
    const created = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
    const confirmed = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_amex' });
    assert.equal(confirmed.status, 'succeeded');
  });

  test('a charge shows the shipping its PaymentIntent had when the attempt was made', async () => {
    const shipping = { name: 'Ada Lovelace', address: { line1: '12 St James\'s Square', city: 'London', postal_code: 'SW1Y 4JH', country: 'GB' } };
    const created = await stripe.paymentIntents.create({ amount: 2100, currency: 'gbp', shipping, capture_method: 'manual' });
    const first = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_chargeDeclined' }).catch((error: Stripe.errors.StripeCardError) => error.payment_intent);
    const declined = await stripe.charges.retrieve(first?.latest_charge as string);
    assert.deepEqual(declined.shipping, created.shipping, 'the PaymentIntent\'s shipping, as Stripe copies it');
    assert.deepEqual(created.shipping, {
      address: { city: 'London', country: 'GB', line1: '12 St James\'s Square', line2: null, postal_code: 'SW1Y 4JH', state: null },
      carrier: null, name: 'Ada Lovelace', phone: null, tracking_number: null,
    }, 'every key Stripe declares, null where none was given');
    const moved = { ...shipping, address: { ...shipping.address, line1: '1 Dorset Street' } };
    const confirmed = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_visa', shipping: moved });
    const charge = await stripe.charges.retrieve(confirmed.latest_charge as string);
    assert.equal(charge.shipping?.address?.line1, '1 Dorset Street', 'shipping given with the confirmation');
    assert.deepEqual(charge.shipping, confirmed.shipping);
    assert.equal((await stripe.charges.retrieve(declined.id)).shipping?.address?.line1, '12 St James\'s Square', 'an earlier attempt keeps what it had');
    const plain = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const plainCharge = await stripe.charges.retrieve(plain.latest_charge as string);
    assert.equal(plainCharge.shipping, null);
    assert.equal(plainCharge.calculated_statement_descriptor, 'COFFER');
    const suffixed = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, statement_descriptor_suffix: 'order 42' });
    assert.equal((await stripe.charges.retrieve(suffixed.latest_charge as string)).calculated_statement_descriptor, 'COFFER* ORDER 42', 'prefix and suffix, as Stripe shows them');
  });

  test('statement descriptors follow Stripe\'s rules: a whole one is 5 to 22 characters and is refused for card payments, where the suffix goes', async () => {
    const tooShort = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'statement_descriptor' && /at least 5 characters/.test(error.message);
    await assert.rejects(stripe.paymentIntents.create({ amount: 500, currency: 'usd', statement_descriptor: 'ABCD' }), tooShort);
    const intent = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', statement_descriptor: 'MY SHOP', payment_method: 'pm_card_visa' });
    const before = await stateCounts(server.database.db);
    const forCards = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'parameter_invalid' && error.param === 'statement_descriptor'
      && /cannot be used for card payments.*statement_descriptor_suffix/.test(error.message);
    await assert.rejects(stripe.paymentIntents.confirm(intent.id), forCards);
    const { idempotency_keys: _a, ...after } = await stateCounts(server.database.db);
    const { idempotency_keys: _b, ...expected } = before;
    assert.deepEqual(after, expected, 'the refused confirmation changed nothing');
    // Unset, with a suffix instead, the card pays.
    const fixed = await stripe.paymentIntents.update(intent.id, { statement_descriptor: '', statement_descriptor_suffix: 'MY SHOP' });
    assert.equal((await stripe.paymentIntents.confirm(fixed.id)).status, 'succeeded');
    // Nor may a card capture set one; nor a Checkout Session that can take cards.
    const held = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    await assert.rejects(stripe.paymentIntents.capture(held.id, { statement_descriptor: 'MY SHOP' }), forCards);
    assert.equal((await stripe.paymentIntents.retrieve(held.id)).status, 'requires_capture');
    await assert.rejects(stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/done', payment_intent_data: { statement_descriptor: 'MY SHOP' },
      line_items: [{ price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Tea' } }, quantity: 1 }],
    }), (error: Stripe.errors.StripeError) => error.param === 'payment_intent_data[statement_descriptor]' && /cannot be used for card payments/.test(error.message));
  });

  test('what plugins send: use_stripe_sdk is taken, mandate_data is audited with the confirmation, final_capture=false is refused', async () => {
    const acceptance = { type: 'online' as const, online: { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0 (shop test)' } };
    const paid = await stripe.paymentIntents.create({
      amount: 2100, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, use_stripe_sdk: true, mandate_data: { customer_acceptance: acceptance },
    } as Stripe.PaymentIntentCreateParams);
    assert.equal(paid.status, 'succeeded');
    const audited = await server.database.db.selectFrom('audit_log').select('details').where('object_id', '=', paid.id).where('action', '=', 'payment_intent.confirm').executeTakeFirstOrThrow();
    assert.deepEqual((audited.details as { customer_acceptance?: unknown }).customer_acceptance, acceptance);
    const later = await stripe.paymentIntents.create({ amount: 2200, currency: 'usd' });
    const confirmed = await stripe.paymentIntents.confirm(later.id, { payment_method: 'pm_card_visa', use_stripe_sdk: true, mandate_data: { customer_acceptance: { type: 'offline', offline: {} } } } as Stripe.PaymentIntentConfirmParams);
    assert.equal(confirmed.status, 'succeeded');

    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.paymentIntents.create({ amount: 2300, currency: 'usd', mandate_data: { customer_acceptance: acceptance } } as Stripe.PaymentIntentCreateParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'mandate_data' && /only be given with confirm=true/.test(error.message));
    await assert.rejects(stripe.paymentIntents.create({ amount: 2300, currency: 'usd', confirm: true, payment_method: 'pm_card_visa', mandate_data: { customer_acceptance: { type: 'sometimes' } } } as unknown as Stripe.PaymentIntentCreateParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'mandate_data[customer_acceptance][type]');
    assert.deepEqual(await stateCounts(server.database.db), before, 'the refused creations made nothing');
    const held = await stripe.paymentIntents.create({ amount: 2400, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    const heldBefore = [await stateCounts(server.database.db), await stripe.paymentIntents.retrieve(held.id)];
    await assert.rejects(stripe.paymentIntents.capture(held.id, { amount_to_capture: 1000, final_capture: false }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'final_capture' && /multicapture/.test(error.message));
    assert.deepEqual([await stateCounts(server.database.db), await stripe.paymentIntents.retrieve(held.id)], heldBefore, 'the refused capture changed nothing');
    const captured = await stripe.paymentIntents.capture(held.id, { amount_to_capture: 1000, final_capture: true });
    assert.deepEqual([captured.status, captured.amount_received], ['succeeded', 1000]);
  });

  test('manual capture: full capture', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 4000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
      confirm: true,
      expand: ['latest_charge'],
    });
    assert.equal(intent.status, 'requires_capture');
    assert.equal(intent.amount_capturable, 4000);
    assert.equal(intent.amount_received, 0);
    const held = intent.latest_charge as Stripe.Charge;
    assert.equal(held.captured, false);
    assert.equal(held.status, 'succeeded');
    assert.equal(typeof held.payment_method_details?.card?.capture_before, 'number');
    const captured = await stripe.paymentIntents.capture(intent.id, { expand: ['latest_charge'] });
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 4000);
    assert.equal(captured.amount_capturable, 0);
    assert.equal((captured.latest_charge as Stripe.Charge).captured, true);
  });

  test('manual capture: a partial capture releases the rest', async () => {
    const intent = await stripe.paymentIntents.create({
      amount: 10_000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
      confirm: true,
    });
    const captured = await stripe.paymentIntents.capture(intent.id, { amount_to_capture: 7_500 }, { idempotencyKey: `cap-${intent.id}` });
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 7_500);
    assert.equal(captured.amount_capturable, 0);
    const charge = await stripe.charges.retrieve(captured.latest_charge as string);
    assert.equal(charge.amount_captured, 7_500);
    assert.equal(charge.amount_refunded, 2_500, 'the released remainder is reported as refunded, as Stripe does');
    assert.equal(charge.refunded, false);
    const transfers = await server.database.db
      .selectFrom('ledger_transfers')
      .select(['kind', 'amount'])
      .where('payment_intent_id', '=', intent.id)
      .orderBy('id')
      .execute();
    assert.deepEqual(transfers, [
      { kind: 'pending', amount: 10_000n },
      { kind: 'post_pending', amount: 7_500n },
    ]);
  });

  test('capture more than capturable is refused and changes nothing', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    await assert.rejects(stripe.paymentIntents.capture(intent.id, { amount_to_capture: 1001 }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.type, 'StripeInvalidRequestError');
      assert.equal(error.code, 'amount_too_large');
      assert.equal(error.param, 'amount_to_capture');
      return true;
    });
    const unchanged = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(unchanged.status, 'requires_capture');
    assert.equal(unchanged.amount_capturable, 1000);
    // Below the currency's minimum (0.50 usd) a capture is refused too, as at Stripe, and changes nothing.
    await assert.rejects(stripe.paymentIntents.capture(intent.id, { amount_to_capture: 49 }), (error: Stripe.errors.StripeError) =>
      error.code === 'amount_too_small' && error.param === 'amount_to_capture' && /at least \$?0\.50/.test(error.message));
    const still = await stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual([still.status, still.amount_capturable, still.amount_received], ['requires_capture', 1000, 0]);
    assert.equal((await stripe.paymentIntents.capture(intent.id, { amount_to_capture: 50 })).amount_received, 50, 'the minimum itself is taken');
  });

  test('payment_method_options[card][capture_method]=manual holds a card payment whatever the top-level capture_method, on create, update and confirm', async () => {
    const cardOptions = (intent: Stripe.PaymentIntent) => intent.payment_method_options?.card;
    // Given at creation with confirm: the card is authorized only; the top-level field keeps its own value.
    const held = await stripe.paymentIntents.create({
      amount: 3100, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'automatic', confirm: true,
      payment_method_options: { card: { capture_method: 'manual' } }, expand: ['latest_charge'],
    });
    assert.deepEqual([held.status, held.capture_method, held.amount_capturable, held.amount_received], ['requires_capture', 'automatic', 3100, 0]);
    assert.equal(cardOptions(held)?.capture_method, 'manual');
    assert.equal((held.latest_charge as Stripe.Charge).captured, false);
    assert.deepEqual(await stripe.paymentIntents.retrieve(held.id), { ...held, latest_charge: (held.latest_charge as Stripe.Charge).id }, 'kept as answered');
    const captured = await stripe.paymentIntents.capture(held.id);
    assert.deepEqual([captured.status, captured.amount_received], ['succeeded', 3100]);

    // Not given: shown absent, as the SDK declares it (an optional key), and the card is captured.
    const plain = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    assert.deepEqual(cardOptions(plain), { installments: null, mandate_options: null, network: null, request_three_d_secure: 'automatic' });

    // Set by an update before confirmation, then unset with '' (the top-level capture then applies again).
    const updated = await stripe.paymentIntents.update(plain.id, { payment_method_options: { card: { capture_method: 'manual' } } });
    assert.equal(cardOptions(updated)?.capture_method, 'manual');
    const unset = await stripe.paymentIntents.update(plain.id, { payment_method_options: { card: { capture_method: '' } } });
    assert.equal(Object.hasOwn(cardOptions(unset) ?? {}, 'capture_method'), false, "'' unsets it");
    const paid = await stripe.paymentIntents.confirm(plain.id, { payment_method: 'pm_card_visa' });
    assert.deepEqual([paid.status, paid.amount_received], ['succeeded', 1000]);

    // Given with the confirmation (the top-level field asks for automatic_async by default): held, and kept.
    const later = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd', payment_method: 'pm_card_visa' });
    const confirmed = await stripe.paymentIntents.confirm(later.id, { payment_method_options: { card: { capture_method: 'manual' } } });
    assert.deepEqual([confirmed.status, confirmed.capture_method, cardOptions(confirmed)?.capture_method], ['requires_capture', 'automatic_async', 'manual']);

    // Like the top-level capture_method, it changes only before confirmation; the refused update changes nothing.
    await assert.rejects(stripe.paymentIntents.update(confirmed.id, { payment_method_options: { card: { capture_method: '' } }, metadata: { note: 'x' } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_intent_unexpected_state'
        && error.param === 'payment_method_options[card][capture_method]' && /payment_method_options\[card\]\[capture_method\] could not be updated/.test(error.message));
    const unchanged = await stripe.paymentIntents.retrieve(confirmed.id);
    assert.deepEqual([unchanged.status, cardOptions(unchanged)?.capture_method, unchanged.metadata], ['requires_capture', 'manual', {}]);

    // A publishable key may not set it, as it may not set capture_method: both are the merchant's decision.
    const shopperSide = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', payment_method: 'pm_card_visa' });
    const publishable = stripeClient(server, server.publishableKey);
    await assert.rejects(publishable.paymentIntents.confirm(shopperSide.id, { client_secret: shopperSide.client_secret ?? '', payment_method_options: { card: { capture_method: 'manual' } } } as Stripe.PaymentIntentConfirmParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'payment_method_options[card][capture_method]');
    assert.equal((await stripe.paymentIntents.retrieve(shopperSide.id)).status, 'requires_confirmation', 'the refused confirmation changed nothing');
  });

  test('cancel before confirmation, and cancel of an authorization releases the hold', async () => {
    const early = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    const canceledEarly = await stripe.paymentIntents.cancel(early.id, { cancellation_reason: 'abandoned' });
    assert.equal(canceledEarly.status, 'canceled');
    assert.equal(canceledEarly.cancellation_reason, 'abandoned');
    assert.equal(typeof canceledEarly.canceled_at, 'number');

    const held = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    const canceled = await stripe.paymentIntents.cancel(held.id, { cancellation_reason: 'requested_by_customer' });
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.amount_capturable, 0);
    const charge = await stripe.charges.retrieve(canceled.latest_charge as string);
    assert.equal(charge.amount_refunded, 900);
    assert.equal(charge.refunded, true);
    assert.equal(charge.captured, false);
    const sandbox = await server.database.db.selectFrom('sandbox_card_payments').select('status').where('merchant_reference', '=', charge.id).executeTakeFirstOrThrow();
    assert.equal(sandbox.status, 'voided', 'the acquirer released the hold');
  });

  test('a succeeded PaymentIntent cannot be canceled, captured or confirmed again', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    // Its events carry no previous_attributes, as Stripe's PaymentIntent events (the type says what changed).
    const succeeded = (await stripe.events.list({ type: 'payment_intent.succeeded', limit: 10 })).data.find((event) => (event.data.object as Stripe.PaymentIntent).id === intent.id);
    assert.ok(succeeded !== undefined);
    assert.equal(succeeded.data.previous_attributes, undefined);
    for (const call of [
      () => stripe.paymentIntents.cancel(intent.id),
      () => stripe.paymentIntents.capture(intent.id),
      () => stripe.paymentIntents.confirm(intent.id),
    ]) {
      await assert.rejects(call(), (error: Stripe.errors.StripeError) => {
        assert.equal(error.code, 'payment_intent_unexpected_state');
        assert.equal(error.statusCode, 400);
        // As Stripe's: the error carries the PaymentIntent as it is, for a client that lost a race to see who won.
        assert.deepEqual([error.payment_intent?.id, error.payment_intent?.status, error.payment_intent?.amount_received], [intent.id, 'succeeded', 800]);
        return true;
      });
    }
  });

  const declines: Array<[string, string, string, string]> = [
    ['pm_card_chargeDeclined', 'card_declined', 'generic_decline', 'Your card was declined.'],
    ['pm_card_visa_chargeDeclined', 'card_declined', 'generic_decline', 'Your card was declined.'],
    ['pm_card_chargeDeclinedInsufficientFunds', 'card_declined', 'insufficient_funds', 'Your card has insufficient funds.'],
    ['pm_card_chargeDeclinedLostCard', 'card_declined', 'lost_card', 'Your card was declined.'],
    ['pm_card_chargeDeclinedStolenCard', 'card_declined', 'stolen_card', 'Your card was declined.'],
    ['pm_card_chargeDeclinedExpiredCard', 'expired_card', 'expired_card', 'Your card has expired.'],
    ['pm_card_chargeDeclinedIncorrectCvc', 'incorrect_cvc', 'incorrect_cvc', "Your card's security code is incorrect."],
    ['pm_card_chargeDeclinedProcessingError', 'processing_error', 'processing_error', 'An error occurred while processing your card. Try again in a little bit.'],
    ['pm_card_chargeDeclinedVelocityLimitExceeded', 'card_declined', 'card_velocity_exceeded', 'Your card was declined for making repeated attempts too frequently or exceeding its amount limit.'],
    ['pm_card_radarBlock', 'card_declined', 'fraudulent', 'Your card was declined.'],
  ];
  for (const [paymentMethod, code, declineCode, message] of declines) {
    test(`${paymentMethod} is declined with ${code}/${declineCode}`, async () => {
      const created = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
      await assert.rejects(stripe.paymentIntents.confirm(created.id, { payment_method: paymentMethod }), (error: Stripe.errors.StripeError) => {
        assert.equal(error.type, 'StripeCardError');
        assert.equal(error.statusCode, 402);
        assert.equal(error.code, code);
        assert.equal(error.decline_code, declineCode);
        assert.equal(error.message, message);
        assert.match(error.requestId ?? '', /^req_/);
        assert.equal(error.payment_intent?.id, created.id);
        assert.equal(error.payment_intent?.status, 'requires_payment_method');
        assert.match(error.charge ?? '', /^ch_/);
        return true;
      });
      const after = await stripe.paymentIntents.retrieve(created.id, { expand: ['latest_charge'] });
      assert.equal(after.status, 'requires_payment_method');
      assert.equal(after.payment_method, null);
      assert.equal(after.last_payment_error?.code, code);
      assert.equal(after.last_payment_error?.decline_code, declineCode);
      assert.equal(after.last_payment_error?.payment_method?.object, 'payment_method');
      const charge = after.latest_charge as Stripe.Charge;
      assert.equal(charge.status, 'failed');
      assert.equal(charge.failure_code, code);
      assert.equal(charge.paid, false);
      // The security code failed the issuer's check only where that is the decline's reason.
      assert.equal(charge.payment_method_details?.card?.checks?.cvc_check, code === 'incorrect_cvc' ? 'fail' : null);
      if (paymentMethod === 'pm_card_radarBlock') {
        assert.equal(charge.outcome?.type, 'blocked');
        assert.equal(charge.outcome?.risk_level, 'highest');
      } else {
        assert.equal(charge.outcome?.type, 'issuer_declined');
        assert.equal(charge.outcome?.network_status, 'declined_by_network');
      }
    });
  }

  // Stripe's check-failure test cards are approved: the failed check is on the charge, for the merchant's rules.
  const checked: Array<[string, { cvc_check: string | null; address_line1_check: string | null; address_postal_code_check: string | null }]> = [
    ['pm_card_visa', { cvc_check: 'pass', address_line1_check: null, address_postal_code_check: null }],
    ['pm_card_cvcCheckFail', { cvc_check: 'fail', address_line1_check: null, address_postal_code_check: null }],
    ['pm_card_avsFail', { cvc_check: 'pass', address_line1_check: 'fail', address_postal_code_check: 'fail' }],
    ['pm_card_avsLine1Fail', { cvc_check: 'pass', address_line1_check: 'fail', address_postal_code_check: 'pass' }],
    ['pm_card_avsZipFail', { cvc_check: 'pass', address_line1_check: 'pass', address_postal_code_check: 'fail' }],
    ['pm_card_avsUnchecked', { cvc_check: 'pass', address_line1_check: 'unavailable', address_postal_code_check: 'unavailable' }],
  ];
  test('check-failure test cards are approved, with the failed check on the charge', async () => {
    for (const [paymentMethod, checks] of checked) {
      const paid = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', payment_method: paymentMethod, confirm: true, expand: ['latest_charge'] });
      assert.equal(paid.status, 'succeeded', paymentMethod);
      assert.deepEqual((paid.latest_charge as Stripe.Charge).payment_method_details?.card?.checks, checks, paymentMethod);
    }
    const international = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', payment_method: 'pm_card_bypassPendingInternational', capture_method: 'automatic', confirm: true, expand: ['latest_charge'] });
    assert.equal((international.latest_charge as Stripe.Charge).payment_method_details?.card?.country, 'BR');
    const transaction = await stripe.balanceTransactions.retrieve(String((international.latest_charge as Stripe.Charge).balance_transaction));
    assert.equal(transaction.status, 'available', 'straight to the available balance');
  });

  test('after a decline, another attempt with a good card succeeds and both attempts are kept', async () => {
    const created = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd' });
    await assert.rejects(stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_chargeDeclined' }));
    const succeeded = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_visa' });
    assert.equal(succeeded.status, 'succeeded');
    assert.equal(succeeded.last_payment_error, null);
    const charges = await stripe.charges.list({ payment_intent: created.id });
    assert.deepEqual(charges.data.map((charge) => charge.status), ['succeeded', 'failed']);
  });

  test('update changes amount and metadata before confirmation; an empty value removes a key', async () => {
    const created = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', metadata: { a: '1', b: '2' }, description: 'first' });
    const updated = await stripe.paymentIntents.update(created.id, { amount: 1800, metadata: { a: '', c: '3' }, description: '' });
    assert.equal(updated.amount, 1800);
    assert.deepEqual(updated.metadata, { b: '2', c: '3' });
    assert.equal(updated.description, null);
    const withMethod = await stripe.paymentIntents.update(created.id, { payment_method: 'pm_card_visa' });
    assert.equal(withMethod.status, 'requires_confirmation');
    const confirmed = await stripe.paymentIntents.confirm(created.id);
    assert.equal(confirmed.amount_received, 1800);
    await assert.rejects(stripe.paymentIntents.update(created.id, { amount: 100 }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.code, 'payment_intent_unexpected_state');
      assert.equal(error.param, 'amount');
      assert.equal(error.payment_intent?.amount, 1800, 'the PaymentIntent, unchanged');
      return true;
    });
    const metadataLater = await stripe.paymentIntents.update(created.id, { metadata: { shipped: 'yes' } });
    assert.deepEqual(metadataLater.metadata, { b: '2', c: '3', shipped: 'yes' });
  });

  test('zero-decimal and three-decimal currencies', async () => {
    const yen = await stripe.paymentIntents.create({ amount: 500, currency: 'jpy', payment_method: 'pm_card_jcb', confirm: true });
    assert.equal(yen.status, 'succeeded');
    assert.equal(yen.amount_received, 500);
    const dinar = await stripe.paymentIntents.create({ amount: 1230, currency: 'bhd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(dinar.amount_received, 1230);
    await assert.rejects(stripe.paymentIntents.create({ amount: 1235, currency: 'bhd' }), /multiple of 10/);
    await assert.rejects(stripe.paymentIntents.create({ amount: 49, currency: 'jpy' }), (error: Stripe.errors.StripeError) => error.code === 'amount_too_small');
    const krona = await stripe.paymentIntents.create({ amount: 50_000, currency: 'isk', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(krona.status, 'succeeded');
    const acquired = await server.database.db.selectFrom('sandbox_card_payments').select(['amount', 'currency']).where('merchant_reference', '=', krona.latest_charge as string).executeTakeFirstOrThrow();
    assert.deepEqual(acquired, { amount: 500n, currency: 'isk' }, 'the acquirer gets ISO minor units: 500 kronur, not 50,000');
  });

  test('balance: captured funds are pending, bypass-pending funds available, authorizations in neither', async () => {
    const fresh = await startTestServer();
    try {
      await fresh.stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
      await fresh.stripe.paymentIntents.create({ amount: 300, currency: 'usd', payment_method: 'pm_card_bypassPending', confirm: true });
      await fresh.stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
      await fresh.stripe.paymentIntents.create({ amount: 700, currency: 'eur', payment_method: 'pm_card_visa', confirm: true });
      const balance = await fresh.stripe.balance.retrieve();
      assert.equal(balance.object, 'balance');
      assert.equal(balance.livemode, false);
      const find = (list: Stripe.Balance.Available[] | Stripe.Balance.Pending[], currency: string) => list.find((item) => item.currency === currency)?.amount;
      assert.equal(find(balance.pending, 'usd'), 1000);
      assert.equal(find(balance.available, 'usd'), 300);
      assert.equal(find(balance.pending, 'eur'), 700);
      assert.equal(find(balance.available, 'eur'), 0);
      // Captured by hand, a bypass-pending card's funds are available at once too (a partial capture's part).
      const held = await fresh.stripe.paymentIntents.create({ amount: 4000, currency: 'usd', payment_method: 'pm_card_bypassPending', capture_method: 'manual', confirm: true });
      const captured = await fresh.stripe.paymentIntents.capture(held.id, { amount_to_capture: 3000 });
      const after = await fresh.stripe.balance.retrieve();
      assert.deepEqual([find(after.pending, 'usd'), find(after.available, 'usd')], [1000, 300 + 3000]);
      const charge = await fresh.stripe.charges.retrieve(captured.latest_charge as string, { expand: ['balance_transaction'] });
      assert.equal((charge.balance_transaction as Stripe.BalanceTransaction).status, 'available');
      await assertLedgerConsistent(fresh.database.db);
    } finally {
      await fresh.close();
    }
  });

  test('list pages newest first with limit, starting_after, ending_before and created filters', async () => {
    const fresh = await startTestServer();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 7; i += 1) ids.push((await fresh.stripe.paymentIntents.create({ amount: 100 + i, currency: 'usd' })).id);
      const newestFirst = [...ids].reverse();
      const first = await fresh.stripe.paymentIntents.list({ limit: 3 });
      assert.equal(first.object, 'list');
      assert.equal(first.url, '/v1/payment_intents');
      assert.deepEqual(first.data.map((item) => item.id), newestFirst.slice(0, 3));
      assert.equal(first.has_more, true);
      const second = await fresh.stripe.paymentIntents.list({ limit: 3, starting_after: first.data[2]?.id });
      assert.deepEqual(second.data.map((item) => item.id), newestFirst.slice(3, 6));
      const third = await fresh.stripe.paymentIntents.list({ limit: 3, starting_after: second.data[2]?.id });
      assert.deepEqual(third.data.map((item) => item.id), newestFirst.slice(6));
      assert.equal(third.has_more, false);
      const back = await fresh.stripe.paymentIntents.list({ limit: 2, ending_before: third.data[0]?.id });
      assert.deepEqual(back.data.map((item) => item.id), newestFirst.slice(4, 6));
      assert.equal(back.has_more, true);
      const all: string[] = [];
      for await (const item of fresh.stripe.paymentIntents.list({ limit: 2 })) all.push(item.id);
      assert.deepEqual(all, newestFirst, 'the SDK auto-pagination walks every object once');
      const created = first.data[0]?.created ?? 0;
      const none = await fresh.stripe.paymentIntents.list({ created: { gt: created } });
      assert.deepEqual(none.data, []);
      const some = await fresh.stripe.paymentIntents.list({ created: { gte: created - 60, lte: created }, limit: 100 });
      assert.equal(some.data.length, 7);
      const expanded = await fresh.stripe.paymentIntents.list({ limit: 1, expand: ['data.payment_method'] });
      assert.equal(expanded.data.length, 1);
    } finally {
      await fresh.close();
    }
  });

  test('metadata limits are Stripe\'s', async () => {
    const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', metadata: tooMany }), (error: Stripe.errors.StripeError) => error.param === 'metadata');
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', metadata: { ['k'.repeat(41)]: 'v' } }), (error: Stripe.errors.StripeError) => error.param === 'metadata');
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', metadata: { key: 'v'.repeat(501) } }), (error: Stripe.errors.StripeError) => error.param === `metadata[key]`);
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'.repeat(500)]));
    const ok = await stripe.paymentIntents.create({ amount: 100, currency: 'usd', metadata: fifty });
    assert.equal(Object.keys(ok.metadata).length, 50);
  });

  test('metadata keys that look like numbers stay keys, and lists take both bracket forms', async () => {
    const numbered = { '0': 'a', '1': 'b', '5': 'c', '12345': 'd', '007': 'e' };
    const created = await stripe.paymentIntents.create({ amount: 100, currency: 'usd', metadata: numbered });
    assert.deepEqual(created.metadata, numbered);
    const updated = await stripe.paymentIntents.update(created.id, { metadata: { '0': '', '99': 'z' } });
    assert.deepEqual(updated.metadata, { '1': 'b', '5': 'c', '12345': 'd', '007': 'e', '99': 'z' });
    // `expand[]=…` twice, and an explicit index mixed with an empty bracket, are both lists of two.
    const paid = await stripe.paymentIntents.create({ amount: 700, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    for (const query of ['expand[]=latest_charge&expand[]=payment_method', 'expand[1]=payment_method&expand[]=latest_charge']) {
      const response = await rawRequest(server, 'GET', `/v1/payment_intents/${paid.id}?${query}`, { key: server.secretKey });
      assert.equal(response.status, 200, response.body);
      assert.equal((response.json.latest_charge as { object?: string }).object, 'charge', query);
      assert.equal((response.json.payment_method as { object?: string }).object, 'payment_method', query);
    }
  });

  test('a publishable key reads a PaymentIntent with its client secret, and only the fields Stripe gives such keys', async () => {
    const created = await stripe.paymentIntents.create({
      amount: 1200, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, metadata: { order: 'private-1' }, description: 'shown',
    });
    const publishable = stripeClient(server, server.publishableKey);
    const seen = await publishable.paymentIntents.retrieve(created.id, { client_secret: created.client_secret ?? '' });
    const seenFields = Object.keys(seen).filter((field) => field !== 'lastResponse').sort();
    assert.deepEqual(seenFields, [
      'amount', 'automatic_payment_methods', 'canceled_at', 'cancellation_reason', 'capture_method', 'client_secret',
      'confirmation_method', 'created', 'currency', 'description', 'id', 'last_payment_error', 'livemode', 'next_action',
      'object', 'payment_method', 'payment_method_configuration_details', 'payment_method_types', 'processing',
      'receipt_email', 'setup_future_usage', 'shipping', 'status',
    ]);
    assert.equal(seen.status, 'succeeded');
    assert.equal(seen.description, 'shown');
    const expanded = await publishable.paymentIntents.retrieve(created.id, { client_secret: created.client_secret ?? '', expand: ['payment_method'] });
    assert.equal((expanded.payment_method as Stripe.PaymentMethod).card?.last4, '4242');
    // Each call is made when its turn comes: a rejection must never wait unhandled while an earlier one is checked.
    const refusals: Array<[() => Promise<unknown>, number, string]> = [
      [() => publishable.paymentIntents.retrieve(created.id), 401, 'secret_key_required'],
      [() => publishable.paymentIntents.retrieve(created.id, { client_secret: `${created.id}_secret_wrong` }), 400, 'parameter_invalid'],
      [() => stripe.paymentIntents.retrieve(created.id, { client_secret: `${created.id}_secret_wrong` }), 400, 'parameter_invalid'],
      [() => publishable.paymentIntents.retrieve(created.id, { client_secret: created.client_secret ?? '', expand: ['latest_charge'] }), 400, 'parameter_invalid'],
      [() => publishable.paymentIntents.update(created.id, { metadata: { order: 'changed' } }), 401, 'secret_key_required'],
    ];
    for (const [call, status, code] of refusals) {
      await assert.rejects(call(), (error: Stripe.errors.StripeError) => error.statusCode === status && error.code === code);
    }
    assert.deepEqual((await stripe.paymentIntents.retrieve(created.id)).metadata, { order: 'private-1' }, 'a secret key still sees everything');
  });

  test('another merchant\'s PaymentIntent is not found, exactly like an unknown id', async () => {
    const mine = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const other = stripeClient(server, server.otherSecretKey);
    for (const id of [mine.id, 'pi_doesnotexist000000000000']) {
      await assert.rejects(other.paymentIntents.retrieve(id), (error: Stripe.errors.StripeError) => {
        assert.equal(error.statusCode, 404);
        assert.equal(error.code, 'resource_missing');
        assert.equal(error.message, `No such payment_intent: '${id}'`);
        return true;
      });
    }
    await assert.rejects(other.paymentIntents.cancel(mine.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    assert.equal((await stripe.paymentIntents.retrieve(mine.id)).status, 'requires_payment_method');
  });

  test('capture is asynchronous by default from 2024-06-20, as Stripe\'s: the balance transaction is announced by charge.updated', async () => {
    const eventsOf = async (id: string, chargeId: string) => (await stripe.events.list({ limit: 20 })).data
      .filter((event) => [id, chargeId].includes(String((event.data.object as { id: string }).id))).reverse();
    const paid = await stripe.paymentIntents.create({ amount: 2300, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, expand: ['latest_charge'] });
    assert.deepEqual([paid.capture_method, paid.status], ['automatic_async', 'succeeded']);
    const answered = paid.latest_charge as Stripe.Charge;
    assert.equal(answered.balance_transaction, null, 'the confirmation\'s answer shows none yet');
    const events = await eventsOf(paid.id, answered.id);
    assert.deepEqual(events.map((event) => event.type), ['payment_intent.created', 'charge.succeeded', 'payment_intent.succeeded', 'charge.updated']);
    assert.equal((events[1]?.data.object as Stripe.Charge).balance_transaction, null, 'charge.succeeded shows none');
    const announced = events[3];
    assert.match(String((announced?.data.object as Stripe.Charge).balance_transaction), /^txn_/);
    assert.deepEqual(announced?.data.previous_attributes, { balance_transaction: null });
    const charge = await stripe.charges.retrieve(answered.id);
    assert.equal(charge.balance_transaction, (announced?.data.object as Stripe.Charge).balance_transaction, 'the charge has it now');
    assert.equal((await stripe.balanceTransactions.retrieve(String(charge.balance_transaction))).amount, 2300);

    // Asked for synchronous capture: the answer has it, and no charge.updated follows.
    const sync = await stripe.paymentIntents.create({ amount: 2400, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'automatic', confirm: true, expand: ['latest_charge'] });
    const syncCharge = sync.latest_charge as Stripe.Charge;
    assert.match(String(syncCharge.balance_transaction), /^txn_/);
    assert.deepEqual((await eventsOf(sync.id, syncCharge.id)).map((event) => event.type), ['payment_intent.created', 'charge.succeeded', 'payment_intent.succeeded']);
    // Confirmed separately, the same.
    const later = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: 'pm_card_visa' });
    const confirmed = await stripe.paymentIntents.confirm(later.id, { expand: ['latest_charge.balance_transaction'] });
    assert.equal((confirmed.latest_charge as Stripe.Charge).balance_transaction, null);
  });

  test('the 2024-04-10 SDK (stripe@15) gets that version\'s shapes', async () => {
    const old = new StripeV15(server.secretKey, {
      host: '127.0.0.1',
      port: server.port,
      protocol: 'https',
      httpAgent: server.agent,
      telemetry: false,
    });
    const intent = await old.paymentIntents.create({
      amount: 2200,
      currency: 'usd',
      payment_method_types: ['card'],
      payment_method: 'pm_card_visa',
      confirm: true,
      expand: ['latest_charge'],
    } as Stripe.PaymentIntentCreateParams);
    assert.equal(intent.status, 'succeeded');
    const raw = intent as unknown as Record<string, unknown>;
    assert.equal(raw.invoice, null, '2024-04-10 has invoice');
    assert.equal('managed_payments' in raw, false, 'and not the newer fields');
    const charge = intent.latest_charge as unknown as Record<string, unknown>;
    assert.equal(charge.invoice, null);
    const card = (charge.payment_method_details as { card: Record<string, unknown> }).card;
    assert.equal('network_transaction_id' in card, false);
    assert.equal(intent.capture_method, 'automatic', 'before 2024-06-20, capture is synchronous by default');
    assert.match(String(charge.balance_transaction), /^txn_/, 'and the answer shows the balance transaction');
    const current = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal('invoice' in (current as unknown as Record<string, unknown>), false);
    assert.equal((current as unknown as Record<string, unknown>).managed_payments, null);
    await assert.rejects(old.paymentIntents.create({ amount: 100, currency: 'usd' }, { apiVersion: '2019-01-01' } as never), /Invalid Stripe API version/);
  });
});
