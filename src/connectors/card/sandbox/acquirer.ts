import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { assert, assertNever } from '../../../platform/assert.ts';
import { systemClock, type Clock } from '../../../platform/clock.ts';
import type { Secret } from '../../../platform/secret.ts';
import { signatureHeader } from '../../../platform/timestamped-signature.ts';
import { commitMode, type CommitDurability } from '../../../store/commit-durability.ts';
import { randomBase62, randomDigits } from '../../../platform/random.ts';
import type { Database, SandboxCardPaymentsTable } from '../../../store/database.ts';
import { testCardsByNumber, type CardBrand, type TestCard } from '../test-cards.ts';
import type {
  AcquirerAuthorizeRequest,
  AcquirerCaptureRequest,
  AcquirerDecline,
  AcquirerIncrement,
  AcquirerIncrementRequest,
  AcquirerNotification,
  AcquirerPayment,
  AcquirerRefund,
  AcquirerRefundRequest,
  AcquirerResponse,
  AcquirerThreeDSecure,
  AcquirerThreeDSecureRequest,
  AcquirerVoidRequest,
} from '../wire.ts';
import {
  acsPathPrefix,
  authenticationFailed,
  authenticationResult,
  challengeCodeAttemptsMax,
  challengeRequest,
  challengeTtlMs,
  challengeViewOf,
  decideAuthentication,
  sameSecret,
  validReturnUrl,
  type Authentication,
  type ChallengeAnswer,
  type ChallengeView,
} from './access-control-server.ts';

function fail<T>(httpStatus: number, code: string, message: string): AcquirerResponse<T> {
  return { ok: false, httpStatus, error: { code, message } };
}

/**
 * Fifteen digits, as card networks give them, made to fail the Luhn check so that no transaction id can be
 * mistaken for a card number by a scan of dumps and logs.
 */
function networkTransactionId(): string {
  const id = randomDigits(15);
  return luhnValid(id) ? `${id.slice(0, 14)}${(Number(id[14]) + 1) % 10}` : id;
}

function luhnValid(number: string): boolean {
  let sum = 0;
  for (let i = 0; i < number.length; i += 1) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** Refused before the network, whatever the card's issuer would say: a wrong number, a live card, Radar. */
function screen(card: TestCard | undefined, number: string): { declined: AcquirerDecline } | { card: TestCard } {
  if (!/^\d{12,19}$/.test(number) || !luhnValid(number)) {
    return { declined: {
      code: 'incorrect_number',
      decline_code: 'incorrect_number',
      message: 'Your card number is incorrect.',
      param: 'number',
      advice_code: 'confirm_card_data',
      network_status: 'not_sent_to_network',
      blocked: false,
    } };
  }
  if (card === undefined) {
    return { declined: {
      code: 'card_declined',
      decline_code: 'test_mode_live_card',
      message: 'Your card was declined. Your request was in test mode, but used a non test card.',
      param: null,
      advice_code: null,
      network_status: 'not_sent_to_network',
      blocked: false,
    } };
  }
  if (card.behaviour.kind === 'block') {
    return { declined: {
      code: 'card_declined',
      decline_code: 'fraudulent',
      message: 'Your card was declined.',
      param: null,
      advice_code: null,
      network_status: 'not_sent_to_network',
      blocked: true,
    } };
  }
  return { card };
}

/** The issuer's answer to the authorization (after any 3-D Secure authentication). */
function issuerDeclineFor(card: TestCard): AcquirerDecline | null {
  const behaviour = card.behaviour;
  switch (behaviour.kind) {
    case 'approve':
    case 'block': // refused by `screen` before it reaches the issuer
      return null;
    case 'decline':
      return {
        code: behaviour.code,
        decline_code: behaviour.declineCode,
        message: behaviour.message,
        param: behaviour.param,
        advice_code: behaviour.adviceCode,
        network_status: 'declined_by_network',
        blocked: false,
      };
    default:
      return assertNever(behaviour, 'test card behaviour');
  }
}

/** What the acquirer does with an authorization: answer now, or first have the shopper answer a challenge. */
type Plan =
  | { kind: 'now'; decline: AcquirerDecline | null; threeDSecure: AcquirerThreeDSecure | null }
  | { kind: 'challenge'; issuerDecline: AcquirerDecline | null };

function plan(
  card: TestCard | undefined,
  number: string,
  threeDSecure: AcquirerThreeDSecureRequest | null,
  verification: boolean,
): Plan {
  const screened = screen(card, number);
  if ('declined' in screened) return { kind: 'now', decline: screened.declined, threeDSecure: null };
  const issuerDecline = issuerDeclineFor(screened.card);
  // A verification moves no money. Without 3-D Secure (a caller that cannot take a challenge) the issuer only checks
  // the card; with it, the issuer authenticates the cardholder as for a payment, and a card is never yet set up.
  const authentication: Authentication = verification && threeDSecure === null ? { kind: 'none' }
    : decideAuthentication(screened.card, verification && threeDSecure !== null ? { ...threeDSecure, card_set_up: false } : threeDSecure);
  switch (authentication.kind) {
    case 'none':
      return { kind: 'now', decline: issuerDecline, threeDSecure: null };
    case 'frictionless':
      return { kind: 'now', decline: issuerDecline, threeDSecure: authentication.result };
    case 'refused':
      return { kind: 'now', decline: authentication.decline, threeDSecure: null };
    case 'challenge':
      return { kind: 'challenge', issuerDecline };
    default:
      return assertNever(authentication, 'authentication');
  }
}

function invalidAuthorizeRequest(request: AcquirerAuthorizeRequest, verification: boolean): string | undefined {
  const minimum = verification ? 0 : 1;
  if (!Number.isSafeInteger(request.amount) || request.amount < minimum || !/^[a-z]{3}$/.test(request.currency)) {
    return 'amount must be a positive integer and currency three lower-case letters';
  }
  // A caller that predates 3-D Secure sends no field at all: the same as null.
  const threeDSecure = request.three_d_secure ?? null;
  if (threeDSecure === null) return undefined;
  if (!['automatic', 'any', 'challenge'].includes(threeDSecure.request)) return 'three_d_secure.request must be automatic, any or challenge';
  if (!validReturnUrl(threeDSecure.return_url)) return 'three_d_secure.return_url must be an absolute http(s) URL';
  if (typeof threeDSecure.card_set_up !== 'boolean') return 'three_d_secure.card_set_up must be a boolean';
  if (threeDSecure.off_session !== undefined && typeof threeDSecure.off_session !== 'boolean') return 'three_d_secure.off_session must be a boolean';
  if (threeDSecure.no_challenge !== undefined && typeof threeDSecure.no_challenge !== 'boolean') return 'three_d_secure.no_challenge must be a boolean';
  return undefined;
}

/** The fields an authorization sets, approved or declined: at once, or when the shopper finished a challenge. */
function authorizationOutcome(amount: number, decline: AcquirerDecline | null, capture: boolean, verification: boolean) {
  const approved = decline === null;
  return {
    status: approved ? (verification ? 'voided' : capture ? 'captured' : 'authorized') : 'declined',
    amount_captured: approved && capture ? amount : 0,
    authorization_code: approved ? randomDigits(6) : null,
    network_transaction_id: approved ? networkTransactionId() : null,
    // The issuer checked the security code: it passed, unless that is why it declined.
    cvc_check: approved ? 'pass' : decline.code === 'incorrect_cvc' ? 'fail' : null,
    decline,
  } satisfies Partial<AcquirerPayment>;
}

/** The brands whose networks let a hold be raised before capture, as Stripe offers it online. */
const incrementableBrands: ReadonlySet<CardBrand> = new Set(['visa', 'mastercard', 'amex', 'discover']);

/**
 * Whether the hold of this authorization can be raised later: asked for, not captured at once, not a verification,
 * and a brand that allows it. A challenged payment keeps the answer made here when its challenge ends.
 */
function incrementalAuthorization(request: AcquirerAuthorizeRequest, card: TestCard | undefined, verification: boolean): 'available' | 'unavailable' {
  const eligible = request.incremental_authorization === true && !request.capture && !verification && card !== undefined && incrementableBrands.has(card.brand);
  return eligible ? 'available' : 'unavailable';
}

/** How far the sandbox's issuers let a hold be raised: to twice the amount first authorized, then they decline. */
export const incrementCeilingFactor = 2n;

const insufficientFundsForIncrement: AcquirerDecline = {
  code: 'card_declined',
  decline_code: 'insufficient_funds',
  message: 'Your card has insufficient funds.',
  param: null,
  advice_code: 'try_again_later',
  network_status: 'declined_by_network',
  blocked: false,
};

function newPayment(
  request: AcquirerAuthorizeRequest,
  card: TestCard | undefined,
  decided: Plan,
  challenge: Challenge | null,
  verification: boolean,
): AcquirerPayment {
  const base = {
    id: `sbx_${randomBase62(20)}`,
    reference: request.reference,
    amount: request.amount,
    currency: request.currency,
    available_immediately: card?.behaviour.kind === 'approve' && card.behaviour.availableImmediately,
    incremental_authorization: incrementalAuthorization(request, card, verification),
  };
  if (decided.kind === 'now') {
    const outcome = authorizationOutcome(request.amount, decided.decline, request.capture, verification);
    const checks = card?.behaviour.kind === 'approve' && outcome.decline === null ? card.behaviour.checks : undefined;
    return {
      ...base, ...outcome,
      ...(checks?.cvc === undefined ? {} : { cvc_check: checks.cvc }),
      ...(checks?.addressLine1 === undefined ? {} : { address_line1_check: checks.addressLine1 }),
      ...(checks?.postalCode === undefined ? {} : { address_postal_code_check: checks.postalCode }),
      three_d_secure: decided.threeDSecure, next_action: null,
    };
  }
  assert(challenge !== null, 'a challenge is planned only for a request that allows one');
  return {
    ...base,
    status: 'requires_action',
    amount_captured: 0,
    authorization_code: null,
    network_transaction_id: null,
    cvc_check: null,
    decline: null,
    three_d_secure: null,
    next_action: { redirect_url: challenge.redirectUrl },
  };
}

/**
 * Test controls of the sandbox, as a provider's test environment offers them: make the next answers slow (the
 * acquirer acts, then its answer arrives late or never), to exercise timeouts and unknown outcomes; and how
 * long after a refund of the refund-failure test card its failure is notified.
 */
export class SandboxControls {
  #slowAnswers = 0;
  #slowByMs = 0;
  refundFailureAfterMs = 5_000;
  /**
   * How long after the capture of a dispute test card (4000000000000259, 4000000000001976) the dispute is opened,
   * and after evidence marked `winning_evidence` or `losing_evidence` is submitted that it is decided.
   */
  disputeAfterMs = 2_000;

  /** The next `count` answers arrive `delayMs` late; the acquirer has already acted when they do. */
  delayAnswers(delayMs: number, count = 1): void {
    this.#slowByMs = delayMs;
    this.#slowAnswers = count;
  }

  async beforeAnswer(): Promise<void> {
    if (this.#slowAnswers <= 0) return;
    this.#slowAnswers -= 1;
    await new Promise((resolve) => setTimeout(resolve, this.#slowByMs));
  }
}

type PaymentStatus = SandboxCardPaymentsTable['status'];

/** The ACS transaction of a payment that waits for its challenge, kept with the payment. */
interface Challenge {
  acsTransId: string;
  dsTransId: string;
  code: string;
  formToken: string;
  returnUrl: string;
  expiresAt: Date;
  redirectUrl: string;
}

export interface CardAcquirerSandboxOptions {
  durability?: CommitDurability;
  clock?: Clock;
  notificationSecret: Secret<string>;
  /**
   * The public base URL of the ACS pages (`registerCardAcsSandbox`), read at each challenge, for example
   * `https://127.0.0.1:8443/sandbox/card/acs`. Without it, challenge URLs are the path alone (same origin).
   */
  acsBaseUrl?: () => string;
}

/**
 * The acquirer's side of the card connector in test mode: it authorizes, captures and voids by Stripe's test
 * card numbers, keeps its own records, and is idempotent by the caller's key exactly as a real acquirer is (the
 * same key returns the first answer; the same key with another request is refused).
 * With 3-D Secure, its access control server (access-control-server.ts) decides which payments need the
 * shopper first.
 */
export class CardAcquirerSandbox {
  readonly #db: Kysely<Database>;
  readonly #durability: CommitDurability;
  readonly #clock: Clock;
  readonly #notificationSecret: Secret<string>;
  readonly #acsBaseUrl: () => string;
  readonly controls = new SandboxControls();

  constructor(db: Kysely<Database>, options: CardAcquirerSandboxOptions) {
    this.#db = db;
    this.#durability = options.durability ?? 'flush_every_commit';
    this.#clock = options.clock ?? systemClock;
    this.#notificationSecret = options.notificationSecret;
    this.#acsBaseUrl = options.acsBaseUrl ?? (() => acsPathPrefix);
  }

  /**
   * Authorizes, after 3-D Secure when the card's issuer and the request call for it. A challenge leaves the
   * payment in `requires_action`, with the ACS page's URL in `next_action`, until the shopper answers it there.
   */
  async authorize(request: AcquirerAuthorizeRequest, verification = false): Promise<AcquirerResponse<AcquirerPayment>> {
    const invalid = invalidAuthorizeRequest(request, verification);
    if (invalid !== undefined) return fail(400, 'invalid_request', invalid);
    const number = request.card.number;
    const threeDSecure = request.three_d_secure ?? null;
    // The return URL is where to send a browser, not what is paid: a retry after a restart may come from another
    // listener address, and must still find the first answer.
    const requestHash = createHash('sha256')
      .update(JSON.stringify([
        request.reference, request.amount, request.currency, request.capture, number.slice(-4),
        ...(threeDSecure === null ? [] : [threeDSecure.request]),
        ...(request.incremental_authorization === true ? ['incremental'] : []),
      ]))
      .digest('hex');
    // Insert first: a new key is the common case, and a repeated one finds the first answer on conflict.
    const card = testCardsByNumber.get(number);
    const decided = plan(card, number, threeDSecure, verification);
    const challenge = decided.kind === 'challenge' && threeDSecure !== null ? this.#newChallenge(threeDSecure.return_url) : null;
    const payment = newPayment(request, card, decided, challenge, verification);
    const disputes = card?.behaviour.kind === 'approve' ? card.behaviour.disputesAfterCapture : undefined;
    const issuerDecline = decided.kind === 'challenge' ? decided.issuerDecline : null;
    // The acquirer's record is made durable by the outcome Coffer commits next (see commit-durability.ts).
    const inserted = await sql<{ id: string }>`
      INSERT INTO sandbox_card_payments (id, idempotency_key, request_hash, merchant_reference, amount, currency,
                                         test_card, status, amount_captured, response, refund_fails, disputes_after_capture,
                                         dispute_is_inquiry, dispute_reason, capture, card_brand, issuer_decline, acs_trans_id,
                                         acs_ds_trans_id, acs_code, acs_form_token, acs_return_url, acs_expires_at)
      SELECT ${payment.id}, ${request.idempotency_key}, ${requestHash}, ${request.reference}, ${request.amount},
             ${request.currency}, ${number.slice(-4)}, ${payment.status}, ${payment.amount_captured},
             ${JSON.stringify(payment)}::jsonb, ${card?.behaviour.kind === 'approve' && card.behaviour.refundFails === true},
             ${disputes !== undefined}, ${disputes === 'inquiry'},
             ${card?.behaviour.kind === 'approve' ? card.behaviour.disputeReason ?? 'fraudulent' : 'fraudulent'}, ${request.capture}, ${card?.brand ?? null},
             ${issuerDecline === null ? null : JSON.stringify(issuerDecline)}::jsonb, ${challenge?.acsTransId ?? null},
             ${challenge?.dsTransId ?? null}, ${challenge?.code ?? null}, ${challenge?.formToken ?? null},
             ${challenge?.returnUrl ?? null}, ${challenge?.expiresAt ?? null}::timestamptz
      FROM (SELECT set_config('synchronous_commit', ${commitMode(this.#durability)}, true)) AS commit_mode
      ON CONFLICT (idempotency_key) DO NOTHING
      RETURNING id`.execute(this.#db);
    if (inserted.rows.length > 0) {
      if (payment.status === 'captured' && disputes !== undefined) await this.#disputeIfDue(payment.id);
      await this.controls.beforeAnswer();
      return { ok: true, body: payment };
    }
    // A concurrent request with the same key won the insert: answer as it did.
    const winner = await this.#findByKey(request.idempotency_key);
    return winner === undefined ? fail(500, 'internal', 'lost record') : this.#replay(winner, requestHash);
  }

  #newChallenge(returnUrl: string): Challenge {
    const acsTransId = randomUUID();
    const creq = challengeRequest(randomUUID(), acsTransId);
    return {
      acsTransId,
      dsTransId: randomUUID(),
      code: randomDigits(6),
      formToken: randomBase62(32),
      returnUrl,
      expiresAt: new Date(this.#clock.nowMs() + challengeTtlMs),
      redirectUrl: `${this.#acsBaseUrl().replace(/\/+$/, '')}/challenge/${acsTransId}?creq=${creq}`,
    };
  }

  /**
   * A zero-amount check that the card can be charged later: the same answers as an authorization (declines
   * included), but nothing is held and nothing kept beyond the answer, which is idempotent by key. With 3-D Secure,
   * a card whose issuer requires it is challenged first, as for a payment (the challenge page shows 0.00).
   */
  async verify(request: AcquirerAuthorizeRequest): Promise<AcquirerResponse<AcquirerPayment>> {
    if (request.amount !== 0) return fail(400, 'invalid_amount', 'a verification is for amount 0');
    return this.authorize({ ...request, amount: 0, capture: false, three_d_secure: request.three_d_secure ?? null }, true);
  }

  async capture(request: AcquirerCaptureRequest): Promise<AcquirerResponse<AcquirerPayment>> {
    const answer = await this.#operate(request.idempotency_key, request.payment, 'capture', request.amount);
    if (answer.ok) await this.#disputeIfDue(request.payment);
    await this.controls.beforeAnswer();
    return answer;
  }

  /**
   * Raises an authorized payment's hold to `amount` (the new total), when the authorization allowed it. The issuer
   * approves up to twice the amount first authorized and declines beyond (`insufficient_funds`), leaving the hold as
   * it was. Idempotent by key, declines included, like the other operations.
   */
  async increment(request: AcquirerIncrementRequest): Promise<AcquirerResponse<AcquirerIncrement>> {
    const answer = await this.#db.transaction().execute(async (tx): Promise<AcquirerResponse<AcquirerIncrement>> => {
      // The payment's row first: two sendings of one key wait for each other, and the second finds the first's answer.
      const row = await tx.selectFrom('sandbox_card_payments').selectAll().where('id', '=', request.payment).forUpdate().executeTakeFirst();
      const previous = await tx.selectFrom('sandbox_card_operations').select(['payment_id', 'kind', 'amount', 'response'])
        .where('idempotency_key', '=', request.idempotency_key).executeTakeFirst();
      if (previous !== undefined) {
        if (previous.payment_id !== request.payment || previous.kind !== 'increment' || previous.amount !== BigInt(request.amount)) {
          return fail(409, 'idempotency_mismatch', 'idempotency key reused with a different request');
        }
        return { ok: true, body: previous.response as unknown as AcquirerIncrement };
      }
      if (row === undefined) return fail(404, 'not_found', `no payment ${request.payment}`);
      if (row.status !== 'authorized') return fail(409, 'invalid_state', `payment ${request.payment} is ${row.status}, not authorized`);
      const payment = row.response as unknown as AcquirerPayment;
      if (payment.incremental_authorization !== 'available') {
        return fail(409, 'incremental_authorization_unavailable', `the authorization of payment ${request.payment} cannot be raised`);
      }
      if (!Number.isSafeInteger(request.amount) || BigInt(request.amount) <= row.amount) {
        return fail(400, 'invalid_amount', `an increment raises the hold above ${row.amount}, not to ${request.amount}`);
      }
      const first = row.first_amount ?? row.amount;
      const approved = BigInt(request.amount) <= first * incrementCeilingFactor;
      const body: AcquirerIncrement = {
        payment: row.id,
        amount: approved ? request.amount : Number(row.amount),
        status: approved ? 'approved' : 'declined',
        decline: approved ? null : insufficientFundsForIncrement,
      };
      if (approved) {
        await tx.updateTable('sandbox_card_payments').set({
          amount: BigInt(request.amount),
          first_amount: first,
          response: JSON.stringify({ ...payment, amount: request.amount }),
          updated_at: new Date(),
        }).where('id', '=', row.id).execute();
      }
      await tx.insertInto('sandbox_card_operations').values({
        idempotency_key: request.idempotency_key, payment_id: row.id, kind: 'increment', amount: BigInt(request.amount), response: JSON.stringify(body),
      }).execute();
      return { ok: true, body };
    });
    await this.controls.beforeAnswer();
    return answer;
  }

  async void(request: AcquirerVoidRequest): Promise<AcquirerResponse<AcquirerPayment>> {
    const answer = await this.#operate(request.idempotency_key, request.payment, 'void', 0);
    await this.controls.beforeAnswer();
    return answer;
  }

  async retrieveByKey(idempotencyKey: string): Promise<AcquirerResponse<AcquirerPayment>> {
    const row = await this.#findByKey(idempotencyKey);
    if (row === undefined) return fail(404, 'not_found', `no payment with idempotency key ${idempotencyKey}`);
    return { ok: true, body: row.response as unknown as AcquirerPayment };
  }

  /**
   * Closes an idempotency key: a later authorization with it is refused. Returns the payment if one exists. A
   * payment still waiting for its challenge (the shopper never came back) is abandoned with its ACS transaction,
   * so that an answer on the page later changes nothing; the row lock orders this against such an answer.
   */
  async abandon(idempotencyKey: string): Promise<AcquirerResponse<AcquirerPayment>> {
    await sql`
      UPDATE sandbox_card_payments
      SET status = 'abandoned', response = response || '{"status": "abandoned", "next_action": null}'::jsonb,
          updated_at = now()
      WHERE idempotency_key = ${idempotencyKey} AND status = 'requires_action'`.execute(this.#db);
    const abandoned: AcquirerPayment = {
      id: `sbx_${randomBase62(20)}`,
      reference: '',
      status: 'abandoned',
      amount: 0,
      currency: 'xxx',
      amount_captured: 0,
      authorization_code: null,
      network_transaction_id: null,
      cvc_check: null,
      available_immediately: false,
      decline: null,
    };
    await this.#db
      .insertInto('sandbox_card_payments')
      .values({
        id: abandoned.id,
        idempotency_key: idempotencyKey,
        request_hash: 'abandoned',
        merchant_reference: '',
        amount: 1n,
        currency: 'xxx',
        test_card: '',
        status: 'abandoned',
        amount_captured: 0n,
        response: JSON.stringify(abandoned),
      })
      .onConflict((conflict) => conflict.column('idempotency_key').doNothing())
      .execute();
    return this.retrieveByKey(idempotencyKey);
  }

  /** The challenge as its page shows it, or undefined if the ACS has no such transaction. */
  async challengeView(acsTransId: string): Promise<ChallengeView | undefined> {
    const row = await this.#db.selectFrom('sandbox_card_payments').selectAll().where('acs_trans_id', '=', acsTransId).executeTakeFirst();
    return row === undefined ? undefined : challengeViewOf(row, this.#clock.nowMs());
  }

  /**
   * The shopper's answer on the ACS page. The right code authenticates (transStatus Y) and the issuer then decides
   * the authorization; `fail`, or too many wrong codes, fails authentication (N) and declines the payment. Both
   * end the challenge and send the shopper back to the merchant. Nothing changes once it has ended or expired.
   */
  async answerChallenge(acsTransId: string, formToken: string, answer: { action: 'complete'; code: string } | { action: 'fail' }): Promise<ChallengeAnswer> {
    const { answer: answered, captured } = await this.#db.transaction().execute(async (tx): Promise<{ answer: ChallengeAnswer; captured: string | null }> => {
      const row = await tx.selectFrom('sandbox_card_payments').selectAll().where('acs_trans_id', '=', acsTransId).forUpdate().executeTakeFirst();
      const refused = (httpStatus: 403 | 404 | 409 | 410, message: string) => ({ answer: { kind: 'refused' as const, httpStatus, message }, captured: null });
      if (row === undefined) return refused(404, 'There is no such authentication.');
      if (row.status !== 'requires_action') return refused(409, 'This authentication has already ended.');
      assert(row.acs_form_token !== null && row.acs_code !== null && row.acs_expires_at !== null && row.acs_return_url !== null
        && row.acs_ds_trans_id !== null && row.card_brand !== null, 'a payment waiting for a challenge has its ACS transaction');
      if (!sameSecret(formToken, row.acs_form_token)) return refused(403, 'This form is not valid; open the page again.');
      if (this.#clock.nowMs() >= row.acs_expires_at.getTime()) return refused(410, 'This authentication has expired.');
      const attempts = answer.action === 'complete' && !sameSecret(answer.code, row.acs_code) ? row.acs_attempts + 1 : row.acs_attempts;
      if (attempts > row.acs_attempts && attempts < challengeCodeAttemptsMax) {
        await tx.updateTable('sandbox_card_payments').set({ acs_attempts: attempts, updated_at: new Date() }).where('id', '=', row.id).execute();
        const view = challengeViewOf({ ...row, acs_attempts: attempts }, this.#clock.nowMs());
        assert(view !== undefined, 'a payment waiting for a challenge has its ACS transaction');
        return { answer: { kind: 'wrong_code', view }, captured: null };
      }
      const authenticated = answer.action === 'complete' && attempts === row.acs_attempts;
      const brand = row.card_brand as CardBrand;
      const threeDSecure = authenticationResult(brand, authenticated ? 'Y' : 'N', 'challenge', row.acs_ds_trans_id);
      const decline = authenticated ? (row.issuer_decline as AcquirerDecline | null) : authenticationFailed;
      const payment: AcquirerPayment = {
        ...(row.response as unknown as AcquirerPayment),
        // Only a verification has no amount (an authorization is of at least one minor unit).
        ...authorizationOutcome(Number(row.amount), decline, row.capture, Number(row.amount) === 0),
        three_d_secure: threeDSecure,
        next_action: null,
      };
      await tx.updateTable('sandbox_card_payments').set({
        status: payment.status as PaymentStatus,
        amount_captured: BigInt(payment.amount_captured),
        response: JSON.stringify(payment),
        acs_attempts: attempts,
        updated_at: new Date(),
      }).where('id', '=', row.id).execute();
      // The merchant hears of it at once, whether or not the shopper's browser comes back through the return URL.
      const ended: AcquirerNotification = {
        id: `sbn_${randomBase62(20)}`, type: 'payment.authentication_ended', created: Math.floor(this.#clock.nowMs() / 1000),
        payment: { id: row.id, reference: row.merchant_reference },
      };
      await tx.insertInto('sandbox_card_notifications').values({
        id: ended.id, due_at: new Date(this.#clock.nowMs()), payload: JSON.stringify(ended), delivered_at: null,
      }).execute();
      return { answer: { kind: 'finished', returnUrl: row.acs_return_url }, captured: payment.status === 'captured' ? row.id : null };
    });
    if (captured !== null) await this.#disputeIfDue(captured);
    return answered;
  }

  /**
   * Refunds part or all of a captured payment, never more than was captured and not yet refunded. A payment made
   * with the refund-failure test card is refunded now and reported failed later by a notification.
   */
  async refund(request: AcquirerRefundRequest): Promise<AcquirerResponse<AcquirerRefund>> {
    if (!Number.isSafeInteger(request.amount) || request.amount <= 0) {
      return fail(400, 'invalid_amount', 'amount must be a positive integer');
    }
    const answer = await this.#db.transaction().execute(async (tx) => {
      const previous = await tx.selectFrom('sandbox_card_refunds').select(['payment_id', 'amount', 'response', 'status'])
        .where('idempotency_key', '=', request.idempotency_key).executeTakeFirst();
      if (previous?.status === 'abandoned') {
        return fail<AcquirerRefund>(409, 'idempotency_key_abandoned', 'this refund key was abandoned by the caller');
      }
      if (previous !== undefined) {
        if (previous.payment_id !== request.payment || previous.amount !== BigInt(request.amount)) {
          return fail<AcquirerRefund>(409, 'idempotency_mismatch', 'idempotency key reused with a different request');
        }
        return { ok: true as const, body: previous.response as unknown as AcquirerRefund };
      }
      const payment = await tx.selectFrom('sandbox_card_payments').selectAll().where('id', '=', request.payment)
        .forUpdate().executeTakeFirst();
      if (payment === undefined) return fail<AcquirerRefund>(404, 'not_found', `no payment ${request.payment}`);
      if (payment.status !== 'captured') return fail<AcquirerRefund>(409, 'invalid_state', `payment is ${payment.status}`);
      const refunded = await tx.selectFrom('sandbox_card_refunds')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<bigint>('amount'), eb.lit(0)).as('total'))
        .where('payment_id', '=', payment.id).where('status', 'in', ['succeeded']).executeTakeFirstOrThrow();
      if (BigInt(refunded.total) + BigInt(request.amount) > payment.amount_captured) {
        return fail<AcquirerRefund>(400, 'amount_too_large', 'refund exceeds the captured amount not yet refunded');
      }
      const refusal = await this.#creditBeforeDispute(tx, payment, BigInt(refunded.total) + BigInt(request.amount));
      if (refusal !== undefined) return refusal;
      const refund: AcquirerRefund = {
        id: `sbr_${randomBase62(20)}`,
        payment: payment.id,
        reference: request.reference,
        amount: request.amount,
        currency: payment.currency,
        status: 'succeeded',
        failure_reason: null,
      };
      await tx.insertInto('sandbox_card_refunds').values({
        id: refund.id,
        idempotency_key: request.idempotency_key,
        payment_id: payment.id,
        reference: request.reference,
        amount: BigInt(request.amount),
        status: 'succeeded',
        response: JSON.stringify(refund),
      }).execute();
      if (payment.refund_fails) await this.#scheduleRefundFailure(tx, refund);
      return { ok: true as const, body: refund };
    });
    await this.controls.beforeAnswer();
    return answer;
  }

  async retrieveRefundByKey(idempotencyKey: string): Promise<AcquirerResponse<AcquirerRefund>> {
    const row = await this.#db.selectFrom('sandbox_card_refunds').select(['response', 'status'])
      .where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
    if (row === undefined || row.status === 'abandoned') {
      return fail(404, 'not_found', `no refund with idempotency key ${idempotencyKey}`);
    }
    return { ok: true, body: row.response as unknown as AcquirerRefund };
  }

  /** Closes a refund key: a refund request arriving later with it is refused. Returns the refund if it exists. */
  async abandonRefund(idempotencyKey: string): Promise<AcquirerResponse<AcquirerRefund>> {
    const existing = await this.retrieveRefundByKey(idempotencyKey);
    if (existing.ok) return existing;
    await this.#db.insertInto('sandbox_card_refunds').values({
      id: `sbr_${randomBase62(20)}`,
      idempotency_key: idempotencyKey,
      payment_id: null,
      reference: '',
      amount: 1n,
      status: 'abandoned',
      response: JSON.stringify({}),
    }).onConflict((conflict) => conflict.column('idempotency_key').doNothing()).execute();
    return this.retrieveRefundByKey(idempotencyKey);
  }

  async #scheduleRefundFailure(tx: Kysely<Database>, refund: AcquirerRefund): Promise<void> {
    const failed: AcquirerRefund = { ...refund, status: 'failed', failure_reason: 'expired_or_canceled_card' };
    const notification: AcquirerNotification = {
      id: `sbn_${randomBase62(20)}`,
      type: 'refund.failed',
      created: Math.floor(this.#clock.nowMs() / 1000),
      refund: failed,
    };
    await tx.insertInto('sandbox_card_notifications').values({
      id: notification.id,
      due_at: new Date(this.#clock.nowMs() + this.controls.refundFailureAfterMs),
      payload: JSON.stringify(notification),
      delivered_at: null,
    }).execute();
  }

  /**
   * Sends the notifications that are due, signed, to `deliver` (Coffer's notification endpoint in test mode).
   * One that is not accepted is retried later with a growing delay, as providers do. Returns how many went out.
   */
  async deliverDueNotifications(deliver: (body: string, signature: string) => Promise<void>, batchSize: number): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const due = await this.#db.selectFrom('sandbox_card_notifications').selectAll()
      .where('delivered_at', 'is', null).where('due_at', '<=', new Date(nowMs)).orderBy('due_at').limit(batchSize).execute();
    let delivered = 0;
    for (const notification of due) {
      // Claimed first, in a statement of its own: a refund changing this notice (#creditBeforeDispute, under a row
      // lock) either commits before, and the claim sends what it wrote, or comes after, finds the notice no longer
      // waiting (its due time is past) and is refused as a refund of a disputed payment. Never both.
      const claimed = await this.#db.updateTable('sandbox_card_notifications').set({ due_at: new Date(0) })
        .where('id', '=', notification.id).where('delivered_at', 'is', null).returning('payload').executeTakeFirst();
      if (claimed === undefined) continue; // delivered meanwhile, or withdrawn by a refund that gave everything back
      const payload = claimed.payload;
      const signature = signatureHeader([this.#notificationSecret.reveal()], payload, Math.floor(nowMs / 1000));
      try {
        await deliver(payload, signature);
        await this.#db.transaction().execute(async (tx) => {
          await tx.updateTable('sandbox_card_notifications').set({ delivered_at: new Date(nowMs) }).where('id', '=', notification.id).execute();
          const body = JSON.parse(payload) as AcquirerNotification;
          if (body.refund !== undefined) {
            await tx.updateTable('sandbox_card_refunds').set({ status: 'failed', response: JSON.stringify(body.refund) })
              .where('id', '=', body.refund.id).execute();
          }
        });
        delivered += 1;
      } catch {
        const retryInMs = Math.min(60_000 * 2 ** notification.attempts, 3_600_000);
        await this.#db.updateTable('sandbox_card_notifications')
          .set({ attempts: notification.attempts + 1, due_at: new Date(nowMs + retryInMs) })
          .where('id', '=', notification.id).execute();
      }
    }
    return delivered;
  }

  /** A dispute test card is disputed (as fraudulent, or for a product not received) a little after its capture, once: as a chargeback or an inquiry. */
  async #disputeIfDue(paymentId: string): Promise<void> {
    const payment = await this.#db.selectFrom('sandbox_card_payments').selectAll().where('id', '=', paymentId).executeTakeFirst();
    if (payment === undefined || !payment.disputes_after_capture) return;
    const existing = await this.#db.selectFrom('sandbox_card_disputes').select('id').where('payment_id', '=', paymentId).executeTakeFirst();
    if (existing !== undefined) return;
    const id = `sbd_${randomBase62(20)}`;
    const status = payment.dispute_is_inquiry ? 'warning_needs_response' : 'needs_response';
    await this.#db.transaction().execute(async (tx) => {
      await tx.insertInto('sandbox_card_disputes').values({ id, payment_id: paymentId, amount: payment.amount_captured, status, reason: payment.dispute_reason, evidence: JSON.stringify({}) }).execute();
      await this.#notifyDispute(tx, 'dispute.created', id, this.controls.disputeAfterMs);
    });
  }

  /**
   * A refund reaches the card network before a chargeback its issuer has not filed yet: the dispute is then filed
   * only for what the shopper was not given back, and not at all if that is nothing (a fully refunded payment
   * cannot be disputed). A dispute already filed (its notification due) refuses the refund, as acquirers do: the
   * dispute decides where that money goes (an inquiry closed without escalation does not). `refundedAfter` counts
   * this refund.
   */
  async #creditBeforeDispute(tx: Kysely<Database>, payment: { id: string; amount_captured: bigint }, refundedAfter: bigint): Promise<AcquirerResponse<AcquirerRefund> | undefined> {
    const dispute = await tx.selectFrom('sandbox_card_disputes').select(['id', 'amount', 'status']).where('payment_id', '=', payment.id).forUpdate().executeTakeFirst();
    // An inquiry closed without escalation leaves the payment refundable.
    if (dispute === undefined || dispute.amount === 0n || dispute.status === 'warning_closed') return undefined;
    // Filed once its notice is due: the delivery loop takes due notices only, so a notice still to come cannot be
    // on its way to Coffer while a refund changes it.
    // A notice whose delivery was tried (and failed) was filed all the same: only one never tried is still to come.
    const filing = await tx.selectFrom('sandbox_card_notifications').select(['id', 'payload']).where('delivered_at', 'is', null)
      .where('due_at', '>', new Date(this.#clock.nowMs())).where('attempts', '=', 0)
      .where(sql<boolean>`payload::jsonb ->> 'type' = 'dispute.created' AND payload::jsonb -> 'dispute' ->> 'id' = ${dispute.id}`)
      .forUpdate().executeTakeFirst();
    if (filing === undefined) return fail(409, 'charge_disputed', `payment ${payment.id} is disputed; the dispute decides where its money goes`);
    const rest = payment.amount_captured - refundedAfter;
    // Amount 0: never filed (the row stays, so that a retried capture does not dispute the payment again).
    const amount = rest < dispute.amount ? (rest > 0n ? rest : 0n) : dispute.amount;
    await tx.updateTable('sandbox_card_disputes').set({ amount }).where('id', '=', dispute.id).execute();
    if (amount === 0n) {
      await tx.deleteFrom('sandbox_card_notifications').where('id', '=', filing.id).execute();
    } else {
      const body = JSON.parse(filing.payload) as AcquirerNotification & { dispute: NonNullable<AcquirerNotification['dispute']> };
      body.dispute.amount = Number(amount);
      await tx.updateTable('sandbox_card_notifications').set({ payload: JSON.stringify(body) }).where('id', '=', filing.id).execute();
    }
    return undefined;
  }

  async #notifyDispute(tx: Kysely<Database>, type: 'dispute.created' | 'dispute.updated' | 'dispute.closed', disputeId: string, afterMs: number): Promise<void> {
    const dispute = await tx.selectFrom('sandbox_card_disputes').innerJoin('sandbox_card_payments', 'sandbox_card_payments.id', 'sandbox_card_disputes.payment_id')
      .select(['sandbox_card_disputes.id', 'sandbox_card_disputes.amount', 'sandbox_card_disputes.status', 'sandbox_card_disputes.reason',
        'sandbox_card_payments.id as payment', 'sandbox_card_payments.merchant_reference', 'sandbox_card_payments.currency'])
      .where('sandbox_card_disputes.id', '=', disputeId).executeTakeFirstOrThrow();
    const notification: AcquirerNotification = {
      id: `sbn_${randomBase62(20)}`,
      type,
      created: Math.floor(this.#clock.nowMs() / 1000),
      dispute: {
        id: dispute.id, payment: dispute.payment, reference: dispute.merchant_reference, amount: Number(dispute.amount),
        currency: dispute.currency, status: dispute.status, reason: dispute.reason,
        // Visa's reason codes: 10.4 card-absent fraud, 13.1 merchandise or services not received.
        network_reason_code: dispute.reason === 'product_not_received' ? '13.1' : '10.4',
      },
    };
    await tx.insertInto('sandbox_card_notifications').values({
      id: notification.id, due_at: new Date(this.#clock.nowMs() + afterMs), payload: JSON.stringify(notification), delivered_at: null,
    }).execute();
  }

  /**
   * The merchant's evidence; submitting it puts the dispute (or inquiry) under review, and `decideDispute` ends
   * it. As in Stripe's test mode, submitted evidence whose `uncategorized_text` is `winning_evidence` or
   * `losing_evidence` has the issuer decide so, `disputeAfterMs` later. Submitting again exactly the evidence the
   * dispute went under review with answers as the first submission did (a merchant retrying after a lost answer);
   * any other change once under review is refused.
   */
  async submitDisputeEvidence(disputeId: string, evidence: Record<string, string>, submit: boolean): Promise<AcquirerResponse<{ status: string }>> {
    const answer = await this.#db.transaction().execute(async (tx): Promise<AcquirerResponse<{ status: string }>> => {
      const dispute = await tx.selectFrom('sandbox_card_disputes').selectAll().where('id', '=', disputeId).forUpdate().executeTakeFirst();
      if (dispute === undefined) return fail(404, 'not_found', `no dispute ${disputeId}`);
      const underReview = dispute.status === 'under_review' || dispute.status === 'warning_under_review';
      const alreadyTaken = Object.entries(evidence).every(([field, value]) => dispute.evidence[field] === value);
      if (underReview && submit && alreadyTaken) {
        return { ok: true, body: { status: dispute.status } };
      }
      if (dispute.status !== 'needs_response' && dispute.status !== 'warning_needs_response') return fail(409, 'invalid_state', `dispute is ${dispute.status}`);
      const inquiry = dispute.status === 'warning_needs_response';
      const status = !submit ? dispute.status : inquiry ? 'warning_under_review' : 'under_review';
      const merged = { ...dispute.evidence, ...evidence };
      await tx.updateTable('sandbox_card_disputes').set({ evidence: JSON.stringify(merged), status }).where('id', '=', disputeId).execute();
      const verdict = merged.uncategorized_text === 'winning_evidence' ? 'won' : merged.uncategorized_text === 'losing_evidence' ? 'lost' : undefined;
      if (submit && verdict !== undefined) await this.#decide(tx, disputeId, verdict, this.controls.disputeAfterMs);
      return { ok: true, body: { status } };
    });
    // Taken (or refused), then answered late if the test asked for a slow acquirer.
    await this.controls.beforeAnswer();
    return answer;
  }

  /** The merchant accepts: a chargeback is lost; an inquiry is closed with nothing withdrawn. */
  async acceptDispute(disputeId: string): Promise<AcquirerResponse<{ status: string }>> {
    const dispute = await this.#db.selectFrom('sandbox_card_disputes').select('status').where('id', '=', disputeId).executeTakeFirst();
    if (dispute === undefined) return fail(404, 'not_found', `no dispute ${disputeId}`);
    const inquiry = dispute.status === 'warning_needs_response' || dispute.status === 'warning_under_review';
    const from = inquiry ? ['warning_needs_response', 'warning_under_review'] as const : ['needs_response', 'under_review'] as const;
    const status = inquiry ? 'warning_closed' : 'lost';
    const updated = await this.#db.updateTable('sandbox_card_disputes').set({ status })
      .where('id', '=', disputeId).where('status', 'in', from).returning('id').executeTakeFirst();
    if (updated === undefined) return fail(409, 'invalid_state', `dispute ${disputeId} cannot be accepted now`);
    return { ok: true, body: { status } };
  }

  /**
   * Test control: the issuer decides an open dispute and the acquirer notifies the outcome. A chargeback is won or
   * lost; an inquiry "won" is closed with nothing withdrawn, one "lost" is escalated to a chargeback.
   */
  async decideDispute(disputeId: string, outcome: 'won' | 'lost'): Promise<void> {
    await this.#db.transaction().execute(async (tx) => this.#decide(tx, disputeId, outcome, 0));
  }

  async #decide(tx: Kysely<Database>, disputeId: string, outcome: 'won' | 'lost', afterMs: number): Promise<void> {
    const dispute = await tx.selectFrom('sandbox_card_disputes').select('status').where('id', '=', disputeId).forUpdate().executeTakeFirst();
    const status = dispute?.status;
    if (status === 'warning_needs_response' || status === 'warning_under_review') {
      const escalated = outcome === 'lost';
      await tx.updateTable('sandbox_card_disputes').set({ status: escalated ? 'needs_response' : 'warning_closed', evidence: JSON.stringify({}) }).where('id', '=', disputeId).execute();
      await this.#notifyDispute(tx, escalated ? 'dispute.updated' : 'dispute.closed', disputeId, afterMs);
      return;
    }
    if (status !== 'needs_response' && status !== 'under_review') throw new Error(`dispute ${disputeId} is not open`);
    await tx.updateTable('sandbox_card_disputes').set({ status: outcome }).where('id', '=', disputeId).execute();
    await this.#notifyDispute(tx, 'dispute.closed', disputeId, afterMs);
  }

  async #findByKey(idempotencyKey: string) {
    return this.#db
      .selectFrom('sandbox_card_payments')
      .select(['id', 'request_hash', 'response', 'status'])
      .where('idempotency_key', '=', idempotencyKey)
      .executeTakeFirst();
  }

  #replay(row: { request_hash: string; response: unknown; status: string }, requestHash: string) {
    if (row.status === 'abandoned') {
      return fail<AcquirerPayment>(409, 'idempotency_key_abandoned', 'this idempotency key was abandoned by the caller');
    }
    if (row.request_hash !== requestHash) {
      return fail<AcquirerPayment>(409, 'idempotency_mismatch', 'idempotency key reused with a different request');
    }
    return { ok: true as const, body: row.response as AcquirerPayment };
  }

  async #operate(
    idempotencyKey: string,
    paymentId: string,
    kind: 'capture' | 'void',
    amount: number,
  ): Promise<AcquirerResponse<AcquirerPayment>> {
    return this.#db.transaction().execute(async (tx) => {
      // The payment's row first: two sendings of one key wait for each other, and the second finds the first's answer.
      const row = await tx
        .selectFrom('sandbox_card_payments')
        .selectAll()
        .where('id', '=', paymentId)
        .forUpdate()
        .executeTakeFirst();
      const previous = await tx
        .selectFrom('sandbox_card_operations')
        .select(['payment_id', 'kind', 'amount', 'response'])
        .where('idempotency_key', '=', idempotencyKey)
        .executeTakeFirst();
      if (previous !== undefined) {
        if (previous.payment_id !== paymentId || previous.kind !== kind || previous.amount !== BigInt(amount)) {
          return fail<AcquirerPayment>(409, 'idempotency_mismatch', 'idempotency key reused with a different request');
        }
        return { ok: true as const, body: previous.response as unknown as AcquirerPayment };
      }
      if (row === undefined) return fail<AcquirerPayment>(404, 'not_found', `no payment ${paymentId}`);
      if (row.status !== 'authorized') {
        return fail<AcquirerPayment>(409, 'invalid_state', `payment ${paymentId} is ${row.status}, not authorized`);
      }
      if (kind === 'capture' && (!Number.isSafeInteger(amount) || amount <= 0 || BigInt(amount) > row.amount)) {
        return fail<AcquirerPayment>(400, 'invalid_amount', `cannot capture ${amount} of ${row.amount}`);
      }
      const payment: AcquirerPayment = {
        ...(row.response as unknown as AcquirerPayment),
        status: kind === 'capture' ? 'captured' : 'voided',
        amount_captured: kind === 'capture' ? amount : 0,
      };
      await tx
        .updateTable('sandbox_card_payments')
        .set({
          status: payment.status as 'captured' | 'voided',
          amount_captured: BigInt(payment.amount_captured),
          response: JSON.stringify(payment),
          updated_at: new Date(),
        })
        .where('id', '=', paymentId)
        .execute();
      await tx
        .insertInto('sandbox_card_operations')
        .values({
          idempotency_key: idempotencyKey,
          payment_id: paymentId,
          kind,
          amount: BigInt(amount),
          response: JSON.stringify(payment),
        })
        .execute();
      return { ok: true as const, body: payment };
    });
  }
}
