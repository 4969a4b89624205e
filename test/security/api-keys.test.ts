import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { merchantRoutesOf } from '../../src/api/public-server.ts';
import { addressAllowed, apiResources, parseAddressList, parsePermissions, type Permissions } from '../../src/identity/api-keys.ts';
import { createHash, createHmac } from 'node:crypto';
import { createApiKey, revokeApiKey, rollApiKey } from '../../src/identity/merchants.ts';
import { signRequest } from '../../src/identity/request-signing.ts';
import { reapRequestNonces } from '../../src/jobs/reap-idempotency-keys.ts';
import { stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';

const errorCode = (error: unknown) => (error as Stripe.errors.StripeError).code;

// Goal: a key does what its kind and permissions allow and nothing more: restricted keys per resource (every
// merchant route belongs to one), keys limited to addresses work from those only, rolled keys overlap and then
// stop, a key never reaches another merchant's or the other mode's objects (the same 404 as an unknown id), and
// every such refusal changes nothing and leaves an audit record.
describe('API keys', { concurrency: false }, () => {
  let server: TestServer;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({ clock });
  });
  after(async () => server.close());

  async function restricted(grants: string[], options: { allow?: string[] } = {}): Promise<string> {
    const created = await createApiKey(server.database.db, server.merchantId, 'restricted', false, {
      permissions: parsePermissions(grants), ...(options.allow === undefined ? {} : { allowedAddresses: parseAddressList(options.allow) }),
    });
    return created.key.reveal();
  }

  async function auditActions(actorId: string): Promise<string[]> {
    const rows = await server.database.db.selectFrom('audit_log').select(['action', 'outcome']).where('actor_id', '=', actorId).orderBy('seq').execute();
    return rows.map((row) => `${row.action}:${row.outcome}`);
  }

  test('a restricted key does what it was granted, and is refused the rest with 403 and nothing changed', async () => {
    const key = await restricted(['payment_intents:write', 'refunds:read']);
    const stripe = stripeClient(server, key);
    const intent = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(intent.status, 'succeeded');
    assert.deepEqual((await stripe.refunds.list()).data, []);
    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id }), (error: unknown) => {
      assert.ok(error instanceof Stripe.errors.StripePermissionError, String(error));
      assert.equal(errorCode(error), 'insufficient_permissions');
      assert.match((error as Error).message, /does not have write permission on refunds/);
      assert.doesNotMatch((error as Error).message, new RegExp(key), 'the key is masked in the message');
      return true;
    });
    await assert.rejects(stripe.customers.list(), (error: unknown) => errorCode(error) === 'insufficient_permissions');
    assert.deepEqual(await stateCounts(server.database.db), { ...before, audit_log: before.audit_log + 2 }, 'only the refusals were recorded');
    const keyId = (await server.database.db.selectFrom('api_keys').select('id').where('key_last4', '=', key.slice(-4)).executeTakeFirstOrThrow()).id;
    const actions = await auditActions(keyId);
    assert.deepEqual(actions.slice(-2), ['api_request.insufficient_permissions:failure', 'api_request.insufficient_permissions:failure']);
    // A refusal of an expansion is the same refusal, and recorded the same.
    const expanded = await rawRequest(server, 'GET', `/v1/payment_intents/${intent.id}?expand[]=customer`, { key });
    assert.equal((expanded.json.error as { code?: string }).code, 'insufficient_permissions', expanded.body);
    assert.deepEqual((await auditActions(keyId)).slice(-3), [...actions.slice(-2), 'api_request.insufficient_permissions:failure']);
  });

  test('every merchant route belongs to a resource, and a restricted key reaches a route only with each resource it reaches', async () => {
    const routes = merchantRoutesOf(server.coffer.app);
    assert.ok(routes.length >= 45, `${routes.length} merchant routes`);
    const everything = Object.fromEntries(apiResources.map((resource) => [resource, 'write'])) as Permissions;
    const make = async (permissions: Permissions) => (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions })).key.reveal();
    const without = new Map<string, string>();
    for (const resource of apiResources) {
      const permissions: Permissions = { ...everything };
      delete permissions[resource];
      without.set(resource, await make(permissions));
    }
    const readOnly = new Map<string, string>();
    // A route that lists another resource's objects under its own path needs both.
    assert.deepEqual(routes.find((route) => route.url === '/v1/customers/:customer/payment_methods')?.resources, ['customers', 'payment_methods']);
    for (const route of routes) {
      const url = route.url.replace(/:[a-z_]+/g, 'x_unknown');
      const body = route.method === 'GET' || route.method === 'DELETE' ? {} : { body: '' };
      for (const resource of route.resources) {
        const refused = await rawRequest(server, route.method, url, { key: without.get(resource) ?? '', ...body });
        assert.equal(refused.status, 403, `${route.method} ${route.url} with every permission but ${resource}: ${refused.body}`);
      }
      const name = route.resources.join('+');
      if (!readOnly.has(name)) readOnly.set(name, await make(Object.fromEntries(route.resources.map((resource) => [resource, 'read']))));
      const reading = await rawRequest(server, route.method, url, { key: readOnly.get(name) ?? '', ...body });
      if (route.method === 'GET') assert.notEqual(reading.status, 403, `${route.method} ${route.url} with ${name} read: ${reading.body}`);
      else assert.equal(reading.status, 403, `${route.method} ${route.url} needs ${name} write`);
    }
  });

  test('a publishable key only collects cards; a secret key is not limited by resource', async () => {
    const publishable = stripeClient(server, server.publishableKey);
    await assert.rejects(publishable.paymentIntents.list(), (error: unknown) => errorCode(error) === 'secret_key_required');
    const method = await publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034 } });
    assert.match(method.id, /^pm_/);
    assert.ok((await server.stripe.customers.list()).object === 'list');
  });

  test('a key limited to some addresses works from them only', async () => {
    const elsewhere = await restricted(['balance:read'], { allow: ['10.0.0.0/8', '2001:db8::/32'] });
    const refused = await rawRequest(server, 'GET', '/v1/balance', { key: elsewhere });
    assert.equal(refused.status, 403);
    assert.equal((refused.json.error as { code: string }).code, 'api_key_address_not_allowed');
    assert.match((refused.json.error as { message: string }).message, /cannot be used from 127\.0\.0\.1/);
    const here = await restricted(['balance:read'], { allow: ['127.0.0.0/8'] });
    assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key: here })).status, 200);
    // An IPv6 range never admits IPv4 clients through their mapped form, and the other way round.
    assert.equal(addressAllowed(parseAddressList(['203.0.113.0/24', '::/0']), '8.8.8.8'), false);
    assert.equal(addressAllowed(parseAddressList(['::ffff:0:0/96']), '198.51.100.4'), false);
    assert.equal(addressAllowed(parseAddressList(['::/0']), '2001:db8::1'), true);
    assert.equal(addressAllowed(parseAddressList(['203.0.113.0/24']), '::ffff:203.0.113.9'), true, 'a mapped peer address is its IPv4 address');
    assert.equal(addressAllowed(parseAddressList(['0.0.0.0/0']), '2001:db8::1'), false);
    assert.throws(() => parseAddressList(['10.0.0.0/33']), /"10\.0\.0\.0\/33" is not an IP address or a CIDR range/);
    assert.throws(() => parseAddressList(['localhost']), /"localhost" is not an IP address/);
    assert.throws(() => parsePermissions(['payouts:write']), /Unknown resource in permission "payouts:write"/);
    assert.throws(() => parsePermissions(['refunds:delete']), /must end in :read or :write/);
  });

  test('a rolled key works beside its successor for the overlap, then stops; a revoked key stops', async () => {
    const old = await createApiKey(server.database.db, server.merchantId, 'secret', false);
    const rolled = await rollApiKey(server.database.db, old.id, 2, new Date(clock.nowMs()));
    for (const key of [old.key.reveal(), rolled.key.reveal()]) {
      assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key })).status, 200);
    }
    await assert.rejects(rollApiKey(server.database.db, old.id, 1), /already rolled/);
    // A key rolled because it leaked can still be revoked at once, inside its overlap.
    const leaked = await createApiKey(server.database.db, server.merchantId, 'secret', false);
    await rollApiKey(server.database.db, leaked.id, 24, new Date(clock.nowMs()));
    await revokeApiKey(server.database.db, leaked.id, new Date(clock.nowMs()));
    clock.offsetMs += 11_000;
    assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key: leaked.key.reveal() })).status, 401, 'revoked during its overlap');
    await assert.rejects(rollApiKey(server.database.db, rolled.id, 24 * 8), /from 0 to 168/);
    clock.offsetMs += 2 * 3_600_000 + 1_000;
    assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key: old.key.reveal() })).status, 401, 'the old key expired with the overlap');
    assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key: rolled.key.reveal() })).status, 200);
    await revokeApiKey(server.database.db, rolled.id, new Date(clock.nowMs()));
    clock.offsetMs += 11_000;
    assert.equal((await rawRequest(server, 'GET', '/v1/balance', { key: rolled.key.reveal() })).status, 401, 'revoked (seen once the key cache entry expires)');
    const actions = await server.database.db.selectFrom('audit_log').select('action').where('object_id', 'in', [old.id, rolled.id]).orderBy('seq').execute();
    assert.deepEqual(actions.map((row) => row.action), ['api_key.create', 'api_key.roll', 'api_key.revoke']);
  });

  test("another merchant's object, or the other mode's, gets the 404 of an unknown id, and the attempt is audited", async () => {
    const intent = await server.stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
    const other = stripeClient(server, server.otherSecretKey);
    const theirs = await other.paymentIntents.retrieve(intent.id).catch((error: unknown) => error as Stripe.errors.StripeError);
    const unknown = await other.paymentIntents.retrieve('pi_000000000000000000000000').catch((error: unknown) => error as Stripe.errors.StripeError);
    assert.ok(theirs instanceof Stripe.errors.StripeInvalidRequestError && unknown instanceof Stripe.errors.StripeInvalidRequestError);
    assert.equal(theirs.statusCode, 404);
    assert.deepEqual([theirs.code, theirs.type, theirs.param], [unknown.code, unknown.type, unknown.param]);
    assert.equal(theirs.message, `No such payment_intent: '${intent.id}'`);
    await assert.rejects(other.paymentIntents.update(intent.id, { metadata: { taken: 'yes' } }), (error: unknown) => errorCode(error) === 'resource_missing');
    assert.deepEqual((await server.stripe.paymentIntents.retrieve(intent.id)).metadata, {}, 'the update changed nothing');

    const live = await createApiKey(server.database.db, server.merchantId, 'secret', true);
    const liveResponse = await rawRequest(server, 'GET', `/v1/payment_intents/${intent.id}`, { key: live.key.reveal() });
    assert.equal(liveResponse.status, 404, 'a live key does not see test objects');

    const records = await server.database.db.selectFrom('audit_log').select(['action', 'merchant_id', 'object_id', 'details', 'outcome', 'origin', 'request_id'])
      .where('object_id', '=', intent.id).where('action', 'like', 'api_request.%').orderBy('seq').execute();
    assert.deepEqual(records.map((row) => row.action), ['api_request.cross_merchant_access', 'api_request.cross_merchant_access', 'api_request.cross_mode_access']);
    assert.equal(records[0]?.outcome, 'failure');
    assert.equal(records[0]?.origin, '127.0.0.1');
    assert.match(String(records[0]?.request_id), /^req_/);
    assert.equal((records[0]?.details as { owner_merchant?: string }).owner_merchant, server.merchantId);
    // So is naming another merchant's checkout session, review or payment limit.
    const session = await rawRequest(server, 'POST', '/v1/checkout/sessions', { key: server.secretKey,
      body: 'mode=payment&success_url=https%3A%2F%2Fshop.example%2Fthanks&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=999&line_items[0][price_data][product_data][name]=Tea&line_items[0][quantity]=1' });
    const limit = await rawRequest(server, 'POST', '/v1/risk/limits', { key: server.secretKey, body: 'subject=merchant&kind=amount_max&currency=usd&value=900000' });
    assert.equal(limit.status, 200, limit.body);
    for (const id of [String(session.json.id), String(limit.json.id)]) {
      const path = id.startsWith('cs_') ? `/v1/checkout/sessions/${id}` : `/v1/risk/limits/${id}`;
      assert.equal((await rawRequest(server, 'GET', path, { key: server.otherSecretKey })).status, 404, path);
      const probe = await server.database.db.selectFrom('audit_log').select('action').where('object_id', '=', id).where('action', 'like', 'api_request.%').execute();
      assert.deepEqual(probe.map((row) => row.action), ['api_request.cross_merchant_access'], id);
    }
    const unknownRecords = await server.database.db.selectFrom('audit_log').select('id').where('object_id', '=', 'pi_000000000000000000000000').execute();
    assert.equal(unknownRecords.length, 0, 'an unknown id is not an attempt on anyone');
  });

  test('a key that requires signing: unsigned, tampered, stale, replayed or wrongly keyed requests are refused and change nothing', async () => {
    const services = server.coffer.services;
    const created = await createApiKey(server.database.db, server.merchantId, 'secret', false, { requireSigning: services.requestSigningKey });
    const key = created.key.reveal();
    const secret = created.signingSecret?.reveal() ?? '';
    assert.match(secret, /^ssec_\w{48}$/);
    const body = 'amount=4100&currency=usd';
    const nowSeconds = () => Math.floor(clock.nowMs() / 1000);
    const form = 'application/x-www-form-urlencoded';
    const signed = (method: string, pathAndQuery: string, payload: string, options: { at?: number; nonce?: string; secret?: string; idempotencyKey?: string; stripeVersion?: string; contentType?: string } = {}) =>
      signRequest(options.secret ?? secret, {
        method, pathAndQuery, body: payload, contentType: payload === '' ? undefined : (options.contentType ?? form),
        idempotencyKey: options.idempotencyKey, stripeVersion: options.stripeVersion,
      }, options.at ?? nowSeconds(), options.nonce);
    const send = (header: string | undefined, payload = body, headers: Record<string, string> = {}) =>
      rawRequest(server, 'POST', '/v1/payment_intents', { key, body: payload, headers: { ...headers, ...(header === undefined ? {} : { 'coffer-signature': header }) } });
    const code = (response: { json: Record<string, unknown> }) => (response.json.error as { code?: string } | undefined)?.code;
    const intents = async () => (await stateCounts(server.database.db)).payment_intents;

    const countBefore = await intents();
    const unsigned = await send(undefined);
    assert.equal(unsigned.status, 401);
    assert.equal(code(unsigned), 'request_signature_required');

    const header = signed('POST', '/v1/payment_intents', body);
    const accepted = await send(header);
    assert.equal(accepted.status, 200, accepted.body);
    assert.equal(accepted.json.amount, 4100);
    const listed = await rawRequest(server, 'GET', '/v1/payment_intents?limit=1', { key, headers: { 'coffer-signature': signed('GET', '/v1/payment_intents?limit=1', '') } });
    assert.equal(listed.status, 200, listed.body);

    const refusals: Array<[string, Promise<RawResponseLike>, string]> = [
      ['replayed', send(header), 'request_replayed'],
      ['body changed', send(signed('POST', '/v1/payment_intents', body), 'amount=9900&currency=usd'), 'request_signature_invalid'],
      ['path changed', send(signed('POST', '/v1/refunds', body)), 'request_signature_invalid'],
      ['six minutes old', send(signed('POST', '/v1/payment_intents', body, { at: nowSeconds() - 360 })), 'request_signature_expired'],
      ['six minutes ahead', send(signed('POST', '/v1/payment_intents', body, { at: nowSeconds() + 360 })), 'request_signature_expired'],
      ['another secret', send(signed('POST', '/v1/payment_intents', body, { secret: 'ssec_not_the_secret' })), 'request_signature_invalid'],
      ['malformed', send('t=1,v1=00'), 'request_signature_invalid'],
      // The headers that change what a request does are signed: an idempotency key stripped from a retry (making it
      // a second payment), added, or changed; another API version; another content type.
      ['idempotency key stripped', send(signed('POST', '/v1/payment_intents', body, { idempotencyKey: 'order-77' })), 'request_signature_invalid'],
      ['idempotency key added', send(signed('POST', '/v1/payment_intents', body), body, { 'idempotency-key': 'order-78' }), 'request_signature_invalid'],
      ['idempotency key changed', send(signed('POST', '/v1/payment_intents', body, { idempotencyKey: 'order-79' }), body, { 'idempotency-key': 'order-80' }), 'request_signature_invalid'],
      ['API version changed', send(signed('POST', '/v1/payment_intents', body, { stripeVersion: '2024-04-10' }), body, { 'stripe-version': '2026-10-28.endive' }), 'request_signature_invalid'],
      ['content type changed', send(signed('POST', '/v1/payment_intents', body, { contentType: 'application/json' })), 'request_signature_invalid'],
    ];
    for (const [name, pending, expected] of refusals) {
      const response = await pending;
      assert.equal(response.status, 401, `${name}: ${response.body}`);
      assert.equal(code(response), expected, name);
    }
    assert.equal(await intents(), countBefore + 1, 'only the one correctly signed, fresh request created anything');
    // A JSON body that starts with a byte-order mark is signed over its bytes, the mark included, and verifies.
    const withMark = '\uFEFF{"amount":4200,"currency":"usd"}';
    const marked = await rawRequest(server, 'POST', '/v1/payment_intents', {
      key, body: withMark, contentType: 'application/json',
      headers: { 'idempotency-key': 'order-81', 'stripe-version': '2024-04-10', 'coffer-signature': signed('POST', '/v1/payment_intents', withMark, { contentType: 'application/json', idempotencyKey: 'order-81', stripeVersion: '2024-04-10' }) },
    });
    assert.equal(marked.status, 200, marked.body);
    assert.equal(marked.json.amount, 4200);
    const audited = await auditActions(created.id);
    assert.equal(audited.filter((action) => action.startsWith('api_request.request_')).length, refusals.length + 1, audited.join(', '));

    // The documented algorithm, computed here without Coffer's helper, is what Coffer checks.
    const t = nowSeconds();
    const nonce = 'hand-made-nonce-0001';
    const handBody = 'amount=300&currency=eur';
    const payload = [t, nonce, 'POST', '/v1/payment_intents', form, 'order-82', '', createHash('sha256').update(handBody).digest('hex')].join('\n');
    const byHand = `t=${t},nonce=${nonce},v2=${createHmac('sha256', secret).update(payload).digest('hex')}`;
    const handResponse = await send(byHand, handBody, { 'idempotency-key': 'order-82' });
    assert.equal(handResponse.status, 200, handResponse.body);
    // The first scheme (v1: no headers covered) is refused with a message that says what to do.
    const v1Payload = [t, 'hand-made-nonce-0002', 'POST', '/v1/payment_intents', createHash('sha256').update(handBody).digest('hex')].join('\n');
    const v1 = await send(`t=${t},nonce=hand-made-nonce-0002,v1=${createHmac('sha256', secret).update(v1Payload).digest('hex')}`, handBody);
    assert.equal(code(v1), 'request_signature_invalid');
    assert.match((v1.json.error as { message: string }).message, /v1 signatures are no longer accepted: sign v2/);

    // Nonces are kept past the window, then reaped; a request that old is refused by its timestamp anyway.
    const nonces = async () => (await server.database.db.selectFrom('request_nonces').select('nonce').where('key_id', '=', created.id).execute()).length;
    assert.equal(await nonces(), 4);
    clock.offsetMs += 16 * 60_000;
    await reapRequestNonces(services);
    assert.equal(await nonces(), 0);
    const late = await send(header);
    assert.equal(code(late), 'request_signature_expired');

    // Rolling keeps the requirement, with a new secret.
    const rolled = await rollApiKey(server.database.db, created.id, 0, new Date(clock.nowMs()), services.requestSigningKey);
    const newSecret = rolled.signingSecret?.reveal() ?? '';
    assert.ok(newSecret !== '' && newSecret !== secret);
    const withOld = await rawRequest(server, 'GET', '/v1/balance', { key: rolled.key.reveal(), headers: { 'coffer-signature': signed('GET', '/v1/balance', '') } });
    assert.equal(code(withOld), 'request_signature_invalid');
    const withNew = await rawRequest(server, 'GET', '/v1/balance', { key: rolled.key.reveal(), headers: { 'coffer-signature': signed('GET', '/v1/balance', '', { secret: newSecret }) } });
    assert.equal(withNew.status, 200, withNew.body);
  });
});

type RawResponseLike = Awaited<ReturnType<typeof rawRequest>>;
