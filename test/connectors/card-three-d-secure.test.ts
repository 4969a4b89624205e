import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { CardConnector } from '../../src/connectors/card/client.ts';
import { CardAcquirerSandbox } from '../../src/connectors/card/sandbox/acquirer.ts';
import { registerCardAcsSandbox } from '../../src/connectors/card/sandbox/acs.ts';
import { testCardExpiry } from '../../src/connectors/card/test-cards.ts';
import { toAuthorizeResult } from '../../src/connectors/card/transformers.ts';
import type { AcquirerPayment } from '../../src/connectors/card/wire.ts';
import type { Approval, AttemptRef, AuthorizeRequest, AuthorizeResult, Decline, SyncResult } from '../../src/connectors/connector.ts';
import { findCurrency, type CurrencyInfo } from '../../src/domain/currency.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { Secret } from '../../src/platform/secret.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * 3-D Secure 2 end to end on the card connector's side: the connector sends the 3-D Secure request, the
 * acquirer sandbox and its access control server decide by Stripe's test cards, the challenge page is driven over
 * real HTTP like a browser would (read the page, post the form, follow nothing but the 303), and the connector
 * reads the final outcome back. A real migrated database throughout (PGlite, or PostgreSQL when
 * COFFER_TEST_DATABASE_URL is set).
 */

const returnUrl = 'https://shop.example/hooks/card/3ds/ch_return';
const cavvPattern = /^[A-Za-z0-9+/]{27}=$/;

let database: TestDatabase;
let app: FastifyInstance;
let origin = '';
let sandbox: CardAcquirerSandbox;
let connector: CardConnector;
const clock = new TestClock();
const logLines: string[] = [];
/** Every authentication value the tests saw: none may appear in any log line. */
const authenticationValues = new Set<string>();
/** Calls of the host server's own form parser, which must never run for the ACS routes. */
let hostParserCalls = 0;

const usd = findCurrency('usd') as CurrencyInfo;

before(async () => {
  database = await openTestDatabase();
  const logger = createLogger('trace', new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  }));
  app = Fastify({ loggerInstance: logger }) as unknown as FastifyInstance;
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, _body, done) => {
    hostParserCalls += 1;
    done(new Error('the host parser ran'), undefined);
  });
  const notificationSecret = new Secret('whsec_three_d_secure_test');
  sandbox = new CardAcquirerSandbox(database.db, { clock, notificationSecret, acsBaseUrl: () => `${origin}/sandbox/card/acs` });
  connector = new CardConnector(sandbox, logger, { notificationSecret, clock });
  registerCardAcsSandbox(app, sandbox);
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await app.close();
  await database.drop();
});

/** `null`: no 3-D Secure request at all (an off-session payment). */
function authorizeRequest(
  number: string,
  threeDSecure: AuthorizeRequest['threeDSecure'] | null = { request: 'automatic', returnUrl, cardSetUp: false },
  capture = true,
): AuthorizeRequest {
  return {
    idempotencyKey: `key_${randomUUID()}`,
    reference: `ch_${randomUUID().replaceAll('-', '')}`,
    amountMinor: 1000n,
    currency: usd,
    capture,
    card: { number: new Secret(number), expMonth: testCardExpiry.month, expYear: testCardExpiry.year },
    statementDescriptor: null,
    threeDSecure: threeDSecure ?? undefined,
  };
}

function attemptOf(request: AuthorizeRequest): AttemptRef {
  return { idempotencyKey: request.idempotencyKey, reference: request.reference, amountMinor: request.amountMinor, currency: request.currency };
}

function remember(result: AuthorizeResult | SyncResult): void {
  if ((result.status === 'authorized' || result.status === 'captured' || result.status === 'declined') && result.threeDSecure?.authenticationValue) {
    authenticationValues.add(result.threeDSecure.authenticationValue);
  }
}

async function authorize(request: AuthorizeRequest): Promise<AuthorizeResult> {
  const result = await connector.authorize(request);
  remember(result);
  return result;
}

async function sync(request: AuthorizeRequest): Promise<SyncResult> {
  const result = await connector.syncPayment(attemptOf(request));
  remember(result);
  return result;
}

/** For assertion messages: results hold bigint amounts, which JSON cannot show. */
function show(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? String(item) : item));
}

function approval(result: AuthorizeResult | SyncResult): Approval {
  assert.ok(result.status === 'authorized' || result.status === 'captured', `approved, not ${show(result)}`);
  return result;
}

function declined(result: AuthorizeResult | SyncResult): Decline {
  assert.equal(result.status, 'declined', show(result));
  return result as Decline;
}

/** Authorizes and checks that the issuer wants a challenge; returns the ACS page's URL. */
async function challenged(request: AuthorizeRequest): Promise<string> {
  const result = await authorize(request);
  assert.equal(result.status, 'requires_action', show(result));
  assert.ok(result.status === 'requires_action');
  assert.match(result.providerReference, /^sbx_/);
  return result.redirectUrl;
}

interface ChallengePage {
  status: number;
  headers: Headers;
  html: string;
  formToken: string | undefined;
  code: string | undefined;
  action: string | undefined;
}

/** The shopper's browser opens the page it was sent to. */
async function openPage(url: string): Promise<ChallengePage> {
  const response = await fetch(url, { redirect: 'manual' });
  return readPage(response);
}

async function readPage(response: Response): Promise<ChallengePage> {
  const html = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    html,
    formToken: /name="form_token" value="([^"]+)"/.exec(html)?.[1],
    code: /<span class="code">(\d{6})<\/span>/.exec(html)?.[1],
    action: /<form method="post" action="([^"]+)"/.exec(html)?.[1],
  };
}

async function post(page: ChallengePage, fields: Record<string, string>): Promise<Response> {
  assert.ok(page.action !== undefined, 'the page has a form');
  return fetch(`${origin}${page.action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });
}

async function complete(page: ChallengePage, code = page.code ?? ''): Promise<Response> {
  return post(page, { form_token: page.formToken ?? '', action: 'complete', code });
}

async function failAuthentication(page: ChallengePage): Promise<Response> {
  return post(page, { form_token: page.formToken ?? '', action: 'fail' });
}

async function paymentRow(request: AuthorizeRequest): Promise<{ status: string; acs_attempts: number }> {
  const rows = await sql<{ status: string; acs_attempts: number }>`
    SELECT status, acs_attempts FROM sandbox_card_payments WHERE idempotency_key = ${request.idempotencyKey}`.execute(database.db);
  assert.equal(rows.rows.length, 1);
  return rows.rows[0] as { status: string; acs_attempts: number };
}

describe('3-D Secure in the card acquirer sandbox and connector', () => {
  it('asks for a challenge on the cards whose issuer requires it, with a CReq naming the ACS transaction', async () => {
    // Goal: every "3DS required" test card answers requires_action (automatic or any), pointing at the ACS page.
    const required: Array<[string, 'automatic' | 'any']> = [
      ['4000002760003184', 'automatic'], ['4000002760003184', 'any'], ['4000000000003220', 'automatic'],
      ['4000008260003178', 'automatic'], ['4000008400001629', 'any'], ['4000002500003155', 'automatic'],
    ];
    for (const [number, asked] of required) {
      const url = new URL(await challenged(authorizeRequest(number, { request: asked, returnUrl, cardSetUp: false })));
      assert.equal(url.origin, origin);
      const acsTransId = url.pathname.replace('/sandbox/card/acs/challenge/', '');
      assert.match(acsTransId, /^[0-9a-f-]{36}$/, url.pathname);
      const creq = JSON.parse(Buffer.from(url.searchParams.get('creq') ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      assert.equal(creq.acsTransID, acsTransId);
      assert.equal(creq.messageType, 'CReq');
      assert.equal(creq.messageVersion, '2.2.0');
      assert.equal(creq.challengeWindowSize, '05');
      assert.match(String(creq.threeDSServerTransID), /^[0-9a-f-]{36}$/);
    }
  });

  it('authenticates frictionless when asked (any) on cards that support it, and not at all otherwise', async () => {
    // Goal: `any` gives an authenticated frictionless result with ECI and CAVV; `automatic` and Amex give none.
    for (const [number, eci] of [['4242424242424242', '05'], ['4000000000003055', '05'], ['5555555555554444', '02'], ['3566002020360505', '05']] as const) {
      const request = authorizeRequest(number, { request: 'any', returnUrl, cardSetUp: false });
      const result = approval(await authorize(request));
      assert.equal(result.status, 'captured');
      const threeDSecure = result.threeDSecure;
      assert.ok(threeDSecure !== undefined, `${number} was authenticated`);
      assert.equal(threeDSecure.result, 'authenticated');
      assert.equal(threeDSecure.flow, 'frictionless');
      assert.equal(threeDSecure.version, '2.2.0');
      assert.equal(threeDSecure.eci, eci);
      assert.equal(threeDSecure.liabilityShift, true);
      assert.match(threeDSecure.authenticationValue ?? '', cavvPattern);
      assert.match(threeDSecure.dsTransactionId, /^[0-9a-f-]{36}$/);
      // The acquirer's record says the same later, CAVV included.
      assert.deepEqual(approval(await sync(request)).threeDSecure, threeDSecure);
    }
    const plain: Array<[string, AuthorizeRequest['threeDSecure'] | null]> = [
      ['4242424242424242', { request: 'automatic', returnUrl, cardSetUp: false }],
      ['4000000000003055', { request: 'automatic', returnUrl, cardSetUp: false }],
      ['4000000000003097', { request: 'automatic', returnUrl, cardSetUp: false }],
      ['378282246310005', { request: 'any', returnUrl, cardSetUp: false }],
      ['4000002500003155', { request: 'automatic', returnUrl, cardSetUp: true }],
      ['4242424242424242', null],
    ];
    for (const [number, threeDSecure] of plain) {
      const result = approval(await authorize(authorizeRequest(number, threeDSecure)));
      assert.equal(result.threeDSecure, undefined, `${number} with ${JSON.stringify(threeDSecure)} ran no 3-D Secure`);
      assert.match(result.authorizationCode, /^\d{6}$/);
    }
    const setUp = approval(await authorize(authorizeRequest('4000002500003155', { request: 'any', returnUrl, cardSetUp: true })));
    assert.equal(setUp.threeDSecure?.result, 'authenticated', 'a set-up card is still authenticated when asked, without a challenge');
    assert.equal(setUp.threeDSecure.flow, 'frictionless');
  });

  it('follows Stripe for the cards whose authentication errs, and declines required ones without a shopper', async () => {
    // Goal: 3097 (optional, errs when asked) goes on unauthenticated; 1280 (required, lookup fails) is a
    // processing error; a card that requires authentication, sent off session (no 3-D Secure), is a soft decline.
    const optionalError = approval(await authorize(authorizeRequest('4000000000003097', { request: 'any', returnUrl, cardSetUp: false })));
    assert.deepEqual(
      { result: optionalError.threeDSecure?.result, eci: optionalError.threeDSecure?.eci, cavv: optionalError.threeDSecure?.authenticationValue, shift: optionalError.threeDSecure?.liabilityShift },
      { result: 'not_supported', eci: '07', cavv: null, shift: false },
    );
    const lookupError = declined(await authorize(authorizeRequest('4000008400001280')));
    assert.equal(lookupError.code, 'processing_error');
    assert.equal(lookupError.networkStatus, 'not_sent_to_network');
    for (const number of ['4000002760003184', '4000002500003155']) {
      const offSession = declined(await authorize(authorizeRequest(number, null)));
      assert.equal(offSession.code, 'authentication_required');
      assert.equal(offSession.declineCode, 'authentication_required');
      assert.equal(offSession.threeDSecure, undefined);
    }
  });

  it('completes a challenge: the page, the right code, a 303 to the return URL, then the approval with liability shift', async () => {
    // Goal: the whole browser leg of a challenge, for a captured and an authorize-only payment.
    for (const [number, capture] of [['4000002760003184', true], ['4000000000003220', false]] as const) {
      const request = authorizeRequest(number, { request: 'automatic', returnUrl, cardSetUp: false }, capture);
      const url = await challenged(request);
      const page = await openPage(url);
      assert.equal(page.status, 200);
      const csp = page.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /form-action 'self' https:\/\/shop\.example(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /script-src|unsafe-inline/);
      assert.doesNotMatch(page.html, /<script/i);
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.match(page.html, /10\.00 USD/);
      assert.match(page.html, new RegExp(`•••• ${number.slice(-4)}`));
      assert.match(page.code ?? '', /^\d{6}$/);
      assert.match(page.formToken ?? '', /^[0-9A-Za-z]{32}$/);
      const pending = await sync(request);
      assert.equal(pending.status, 'requires_action', 'nothing is decided before the shopper answers');

      const answered = await complete(page);
      assert.equal(answered.status, 303);
      assert.equal(answered.headers.get('location'), returnUrl);

      const result = approval(await sync(request));
      assert.equal(result.status, capture ? 'captured' : 'authorized');
      assert.equal(result.threeDSecure?.result, 'authenticated');
      assert.equal(result.threeDSecure.flow, 'challenge');
      assert.equal(result.threeDSecure.eci, '05');
      assert.equal(result.threeDSecure.liabilityShift, true);
      assert.match(result.threeDSecure.authenticationValue ?? '', cavvPattern);
      assert.equal((await paymentRow(request)).status, capture ? 'captured' : 'authorized');

      // The ended challenge: the page says so, and answering again changes nothing.
      const ended = await openPage(url);
      assert.equal(ended.status, 409);
      assert.match(ended.html, /already ended/);
      assert.equal(ended.formToken, undefined, 'no form on an ended challenge');
      assert.equal((await complete(page)).status, 409);
      assert.equal((await failAuthentication(page)).status, 409);
      assert.deepEqual(await sync(request), result);
    }
    // The card that needs authentication also when asked `any` is challenged, not frictionless.
    assert.equal((await authorize(authorizeRequest('4000002760003184', { request: 'any', returnUrl, cardSetUp: false }))).status, 'requires_action');
  });

  it('declines after a successful challenge when the issuer then declines, keeping the 3-D Secure result', async () => {
    // Goal: 3178 authenticates and is declined insufficient_funds; 1629 is declined card_declined.
    for (const [number, declineCode] of [['4000008260003178', 'insufficient_funds'], ['4000008400001629', 'generic_decline']] as const) {
      const request = authorizeRequest(number);
      const page = await openPage(await challenged(request));
      const answered = await complete(page);
      assert.equal(answered.status, 303);
      assert.equal(answered.headers.get('location'), returnUrl);
      const result = declined(await sync(request));
      assert.equal(result.code, 'card_declined');
      assert.equal(result.declineCode, declineCode);
      assert.equal(result.networkStatus, 'declined_by_network');
      assert.equal(result.threeDSecure?.result, 'authenticated');
      assert.equal(result.threeDSecure.eci, '05');
      assert.equal(result.threeDSecure.liabilityShift, true);
      assert.equal((await paymentRow(request)).status, 'declined');
    }
  });

  it('fails authentication with the Fail button: declined payment_intent_authentication_failure, not sent to the network', async () => {
    const request = authorizeRequest('4000000000003220');
    const page = await openPage(await challenged(request));
    const answered = await failAuthentication(page);
    assert.equal(answered.status, 303);
    assert.equal(answered.headers.get('location'), returnUrl);
    const result = declined(await sync(request));
    assert.equal(result.code, 'payment_intent_authentication_failure');
    assert.equal(result.networkStatus, 'not_sent_to_network');
    assert.deepEqual(
      { result: result.threeDSecure?.result, flow: result.threeDSecure?.flow, eci: result.threeDSecure?.eci, cavv: result.threeDSecure?.authenticationValue, shift: result.threeDSecure?.liabilityShift },
      { result: 'failed', flow: 'challenge', eci: '07', cavv: null, shift: false },
    );
    // The right code afterwards changes nothing.
    assert.equal((await complete(page)).status, 409);
    assert.deepEqual(await sync(request), result);
  });

  it('shows the page again on a wrong code, and fails the authentication at the third', async () => {
    const request = authorizeRequest('4000002760003184');
    const url = await challenged(request);
    const page = await openPage(url);
    for (const left of [2, 1]) {
      const again = await readPage(await complete(page, '000000' === page.code ? '111111' : '000000'));
      assert.equal(again.status, 200);
      assert.match(again.html, new RegExp(`not right: ${left} tr(y|ies) left`));
      assert.equal(again.formToken, page.formToken, 'the same form goes on');
      assert.equal((await sync(request)).status, 'requires_action');
      assert.equal((await paymentRow(request)).acs_attempts, 3 - left);
    }
    const third = await complete(page, 'abcdef');
    assert.equal(third.status, 303);
    assert.equal(third.headers.get('location'), returnUrl);
    const result = declined(await sync(request));
    assert.equal(result.code, 'payment_intent_authentication_failure');
    assert.equal(result.threeDSecure?.result, 'failed');
    assert.equal((await complete(page)).status, 409, 'the right code after the failure changes nothing');
    assert.equal(declined(await sync(request)).code, 'payment_intent_authentication_failure');
  });

  it('abandons a payment waiting for its challenge: a later Complete changes nothing and the key is closed', async () => {
    const request = authorizeRequest('4000002760003184');
    const url = await challenged(request);
    const page = await openPage(url);
    assert.deepEqual(await connector.abandonAttempt(attemptOf(request)), { status: 'not_found' });
    assert.equal((await paymentRow(request)).status, 'abandoned');
    const answered = await complete(page);
    assert.equal(answered.status, 409);
    assert.equal((await paymentRow(request)).status, 'abandoned', 'the answer after abandonment changed nothing');
    assert.equal((await openPage(url)).formToken, undefined);
    assert.deepEqual(await sync(request), { status: 'not_found' });
    const retried = await authorize(request);
    assert.equal(retried.status, 'unknown');
    assert.match(retried.status === 'unknown' ? retried.reason : '', /idempotency_key_abandoned/);
  });

  it('orders an abandonment racing the shopper\'s answer: one of them wins, wholly', async () => {
    // Goal: whichever commits first, the other sees it: abandoned means the answer changed nothing; answered
    // means the abandonment returns the finished payment, as the acquirer's record says.
    for (let round = 0; round < 6; round += 1) {
      const request = authorizeRequest('4000002760003184');
      const page = await openPage(await challenged(request));
      const [answered, abandoned] = await Promise.all([complete(page), connector.abandonAttempt(attemptOf(request))]);
      const row = await paymentRow(request);
      if (row.status === 'abandoned') {
        assert.equal(answered.status, 409, 'the answer after abandonment is refused');
        assert.deepEqual(abandoned, { status: 'not_found' });
        assert.deepEqual(await sync(request), { status: 'not_found' });
      } else {
        assert.equal(row.status, 'captured');
        assert.equal(answered.status, 303);
        assert.deepEqual(abandoned, await sync(request));
        assert.equal(approval(abandoned).threeDSecure?.flow, 'challenge');
      }
    }
  });

  it('replays the same requires_action for the same key, and refuses the key with another request', async () => {
    const request = authorizeRequest('4000000000003220');
    const first = await authorize(request);
    const second = await authorize(request);
    assert.equal(first.status, 'requires_action');
    assert.deepEqual(second, first);
    assert.deepEqual(await sync(request), first, 'the acquirer reports the waiting payment as such');
    // A retry after a restart may come from another listener address: the return URL is not what is paid.
    const movedReturn = await authorize({ ...request, threeDSecure: { request: 'automatic', returnUrl: 'https://127.0.0.1:9443/hooks/card/3ds/x', cardSetUp: false } });
    assert.deepEqual(movedReturn, first);
    const other = await authorize({ ...request, threeDSecure: { request: 'any', returnUrl, cardSetUp: false } });
    assert.equal(other.status, 'unknown', 'the same key with another 3-D Secure request is refused');
    // Once the shopper answered, the same key replays the outcome.
    assert.equal((await complete(await openPage(first.status === 'requires_action' ? first.redirectUrl : ''))).status, 303);
    const done = approval(await authorize(request));
    assert.equal(done.threeDSecure?.flow, 'challenge');
  });

  it('refuses an expired challenge, a forged form and a mismatched CReq, changing nothing', async () => {
    const request = authorizeRequest('4000002760003184');
    const url = await challenged(request);
    const page = await openPage(url);
    const wrongToken = await post(page, { form_token: 'x'.repeat(32), action: 'complete', code: page.code ?? '' });
    assert.equal(wrongToken.status, 403);
    const noAction = await post(page, { form_token: page.formToken ?? '', code: page.code ?? '' });
    assert.equal(noAction.status, 400);
    const asJson = await fetch(`${origin}${page.action ?? ''}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', redirect: 'manual' });
    assert.equal(asJson.status, 415);
    const otherCreq = new URL(url);
    otherCreq.searchParams.set('creq', Buffer.from(JSON.stringify({ acsTransID: randomUUID(), messageType: 'CReq' })).toString('base64url'));
    assert.equal((await openPage(otherCreq.toString())).status, 400);
    assert.equal((await openPage(`${origin}/sandbox/card/acs/challenge/${randomUUID()}`)).status, 404);
    assert.equal((await paymentRow(request)).status, 'requires_action');

    clock.offsetMs += 11 * 60_000;
    try {
      const expired = await openPage(url);
      assert.equal(expired.status, 410);
      assert.match(expired.html, /expired/);
      assert.equal(expired.formToken, undefined);
      assert.equal((await complete(page)).status, 410);
      assert.equal((await paymentRow(request)).status, 'requires_action', 'an expired challenge changes nothing');
      assert.equal((await sync(request)).status, 'requires_action');
    } finally {
      clock.offsetMs = 0;
    }
    assert.equal(hostParserCalls, 0, "the host server's form parser never ran for the ACS");
  });

  it('keeps the waiting-payment invariant in the database: requires_action needs its ACS transaction', async () => {
    await assert.rejects(sql`
      INSERT INTO sandbox_card_payments (id, idempotency_key, request_hash, merchant_reference, amount, currency, test_card, status, response)
      VALUES ('sbx_bad', ${randomUUID()}, 'x', 'ch_x', 100, 'usd', '3184', 'requires_action', '{}'::jsonb)`.execute(database.db), /check constraint/i);
  });

  it('maps 3-D Secure values it does not know to an unknown outcome, never a guess', () => {
    const expected = { reference: 'ch_map', amountMinor: 1000n, currency: usd };
    const base: AcquirerPayment = {
      id: 'sbx_map', reference: 'ch_map', status: 'captured', amount: 1000, currency: 'usd', amount_captured: 1000,
      authorization_code: '123456', network_transaction_id: '123456789012345', cvc_check: 'pass', available_immediately: false, decline: null,
      three_d_secure: { version: '2.2.0', trans_status: 'Y', flow: 'frictionless', eci: '05', authentication_value: 'A'.repeat(27) + '=', ds_trans_id: randomUUID() },
    };
    assert.equal(toAuthorizeResult(base, expected).status, 'captured');
    const secure = base.three_d_secure;
    assert.ok(secure !== undefined && secure !== null);
    const variants: Array<Partial<AcquirerPayment>> = [
      { three_d_secure: { ...secure, trans_status: 'X' } },
      { three_d_secure: { ...secure, eci: '99' } },
      { three_d_secure: { ...secure, flow: 'decoupled' } },
      { three_d_secure: { ...secure, version: '2.1.0' } },
      { three_d_secure: { ...secure, authentication_value: null } },
      { three_d_secure: { ...secure, eci: '07' } },
      { status: 'requires_action', next_action: null },
    ];
    for (const variant of variants) {
      assert.equal(toAuthorizeResult({ ...base, ...variant }, expected).status, 'unknown', JSON.stringify(variant));
    }
    const action = toAuthorizeResult({ ...base, status: 'requires_action', three_d_secure: null, next_action: { redirect_url: 'https://acs.example/c' } }, expected);
    assert.deepEqual(action, { status: 'requires_action', providerReference: 'sbx_map', redirectUrl: 'https://acs.example/c' });
  });

  it('never logs an authentication value', async () => {
    // Goal: the logs of everything above (requests to the ACS, the connector's own lines) hold no CAVV. The
    // control: the logs are there, and a refused request made the connector log.
    const mismatch = authorizeRequest('4242424242424242', { request: 'any', returnUrl, cardSetUp: false });
    const frictionless = approval(await authorize(mismatch)).threeDSecure?.authenticationValue;
    assert.equal((await authorize({ ...mismatch, amountMinor: 2000n })).status, 'unknown');
    const challenge = authorizeRequest('4000000000003220');
    assert.equal((await complete(await openPage(await challenged(challenge)))).status, 303);
    const challenged3ds = approval(await sync(challenge)).threeDSecure?.authenticationValue;
    const logs = logLines.join('');
    assert.match(logs, /acquirer refused a request/);
    assert.match(logs, /\/sandbox\/card\/acs\/challenge\//);
    assert.ok(frictionless !== null && frictionless !== undefined && authenticationValues.has(frictionless));
    assert.ok(challenged3ds !== null && challenged3ds !== undefined && authenticationValues.has(challenged3ds));
    for (const value of authenticationValues) assert.equal(logs.includes(value), false, 'a CAVV reached the logs');
  });
});
