import { createHmac } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import { CofferError } from '../domain/errors.ts';
import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';
import { errorObject } from '../objects/error.ts';
import { randomIdCharacters } from '../platform/random.ts';
import { coerceToSchema, parameterWithNul, parseForm, parseQuery, queryError, refuseDeepJson } from './form-body.ts';
import { toCofferError } from './http-errors.ts';
import { claimIdempotencyKey, forgetOrStore, releaseClaim, requestHash, storeResponse } from './idempotency.ts';
import { ApiKeyCache, authenticateMerchant } from './merchant-auth.ts';
import { registerRateLimits, type RateLimitSettings } from './rate-limits.ts';
import { resourcesOfRoute, type ApiResource } from '../identity/api-keys.ts';
import { expansions, isListRoute, redactFields } from './routes/common.ts';
import { auditRefusal } from './refusal-audit.ts';
import { merchantScope } from '../store/merchant-scope.ts';
import { signingSecretLabel } from '../identity/merchants.ts';
import { signatureHeaderName, verifySignature } from '../identity/request-signing.ts';
import { openSecret } from '../platform/secret-box.ts';
import { assert } from '../platform/assert.ts';
import './request-context.ts';
import { registerMerchantRoutes } from './routes/index.ts';
import { registerProviderHooks } from './routes/provider-hooks.ts';
import { searchExpansions } from './search-query.ts';
import { registerCheckoutPages } from '../checkout/pages.ts';
import { lazyValidatorFactory } from './validator-compiler.ts';

export interface PublicServerOptions {
  https: { key: string; cert: string; ciphers: string } | null;
  rateLimits: RateLimitSettings;
  /** Called when an assertion fails: the process must stop (see platform/assert.ts). */
  onFatal: (error: unknown) => void;
}

/**
 * Refusals of a request's parameters (Stripe: "incoming parameters failed validation"): when the request did
 * nothing before being refused, its idempotency key is forgotten rather than tied to the refusal, so the
 * corrected request may be sent with the same key.
 */
const parameterRefusals: ReadonlySet<string> = new Set([
  'parameter_unknown', 'parameter_missing', 'parameter_invalid', 'parameter_invalid_integer', 'parameter_invalid_empty',
  'parameters_exclusive', 'currency_invalid', 'amount_too_small', 'amount_too_large', 'invalid_charge_amount', 'url_invalid',
]);

/** Refusals of what the key may do (Stripe: "failed authentication"), kept no more than a refused parameter is. */
const keyRefusals: ReadonlySet<string> = new Set(['insufficient_permissions', 'secret_key_required']);

function isRefusalBeforeWork(statusCode: number, code: string | undefined): boolean {
  if (code === undefined) return false;
  return (statusCode === 400 && parameterRefusals.has(code)) || ((statusCode === 401 || statusCode === 403) && keyRefusals.has(code));
}

/** Responses whose outcome must not be replayed: the request never ran, or may run again safely. */
function mayStoreResponse(statusCode: number, code: string | undefined): boolean {
  if (statusCode === 429 || statusCode === 503) return false;
  return !(code === 'lock_timeout' || (statusCode === 409 && code === 'idempotency_key_in_use'));
}

export function sendError(reply: FastifyReply, request: FastifyRequest, error: CofferError): FastifyReply {
  if (error.details.retryAfterSeconds !== undefined) {
    reply.header('Retry-After', String(error.details.retryAfterSeconds));
    reply.header('Stripe-Should-Retry', error.details.shouldRetry === false ? 'false' : 'true');
  } else if (error.code === 'lock_timeout') {
    // Stripe's SDKs retry a 429 only when told to; a lock held by another request is soon released.
    reply.header('Stripe-Should-Retry', 'true');
  }
  return reply
    .code(error.httpStatus)
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(errorObject(error, request.id)));
}

/**
 * POST and DELETE take their parameters in the body only; a parameter in the URL would otherwise be ignored
 * without a word (and URLs end up in logs and proxies, where card data must never be).
 */
function refuseQueryParameters(query: unknown): void {
  const first = typeof query === 'object' && query !== null ? Object.keys(query)[0] : undefined;
  if (first !== undefined) {
    throw new CofferError('parameter_unknown', `Received unknown parameter in the URL: ${first}. Send this request's parameters in its body.`, { param: first });
  }
}

function routeResources(url: string): ApiResource[] {
  const resources = resourcesOfRoute(url);
  assert(resources !== undefined, `merchant route ${url} belongs to a resource`);
  return resources;
}

async function authenticate(services: Services, keys: ApiKeyCache, request: FastifyRequest): Promise<void> {
  if (request.routeOptions.config.merchantApi !== true) return;
  const authenticated = await authenticateMerchant(
    services.db,
    keys,
    services.logger,
    request.headers.authorization,
    request.headers['stripe-version'],
    new Date(services.clock.nowMs()),
    {
      resources: routeResources(request.routeOptions.url ?? request.url),
      method: request.method,
      address: request.ip,
      publishableAllowed: request.routeOptions.config.publishableAllowed === true,
    },
  );
  request.actor = authenticated.actor;
  request.signingSecretSealed = authenticated.signingSecretSealed;
  // From here on, this request's queries see only its merchant's rows on PostgreSQL (row-level security).
  const scope = merchantScope.getStore();
  assert(scope !== undefined, 'merchant requests run inside a merchant scope');
  scope.merchantId = authenticated.actor.merchantId;
}

/**
 * The parameters an idempotency key remembers (hashed): card numbers and security codes replaced by a keyed
 * hash, so that not even a digest of them is stored.
 */
function hashableBody(services: Services, request: FastifyRequest): unknown {
  const sensitive = request.routeOptions.config.sensitiveParams;
  if (sensitive === undefined || typeof request.body !== 'object' || request.body === null) return request.body;
  const copy = structuredClone(request.body) as Record<string, unknown>;
  for (const path of sensitive) {
    const holder = valueAt(copy, path.slice(0, -1));
    const leaf = path.at(-1);
    if (leaf !== undefined && typeof holder === 'object' && holder !== null && leaf in holder) {
      const value = (holder as Record<string, unknown>)[leaf];
      (holder as Record<string, unknown>)[leaf] = `hmac:${createHmac('sha256', services.fingerprintKey.reveal()).update(String(value)).digest('hex')}`;
    }
  }
  return copy;
}

/** The value at `path` in a parsed body, if any. */
function valueAt(body: unknown, path: readonly string[]): unknown {
  let holder: unknown = body;
  for (const name of path) holder = typeof holder === 'object' && holder !== null ? (holder as Record<string, unknown>)[name] : undefined;
  return holder;
}

/**
 * Card numbers and security codes sent to the live API from the merchant's own servers (a secret or restricted key)
 * are refused unless the operator has allowed that merchant to handle card data (decision 0050): a server that sees
 * card numbers is in PCI DSS scope, which a merchant should enter knowingly, not by a line of code. The shopper's
 * page (the publishable key, the hosted checkout's card frame) is the way in. Test mode takes them: test cards are
 * not card data. The merchant's setting is read only for a request that carries one.
 */
async function refuseRawCardData(services: Services, request: FastifyRequest): Promise<void> {
  const sensitive = request.routeOptions.config.sensitiveParams;
  const actor = request.actor;
  if (sensitive === undefined || actor === null || actor.keyKind === 'publishable' || !actor.livemode) return;
  const sent = sensitive.find((path) => valueAt(request.body, path) !== undefined);
  if (sent === undefined) return;
  const merchant = await services.db.selectFrom('merchants').select('live_raw_card_data').where('id', '=', actor.merchantId).executeTakeFirst();
  if (merchant?.live_raw_card_data === true) return;
  const param = `${sent[0] ?? ''}${sent.slice(1).map((name) => `[${name}]`).join('')}`;
  throw new CofferError('raw_card_data_refused',
    `Card details (${param}) cannot be sent to the live API with a ${actor.keyKind} key: that would put your servers in PCI DSS scope. Collect cards on the shopper's page with the publishable key (the hosted checkout, or /v1/payment_methods from the page), or ask the operator to allow this merchant to handle card data (coffer merchants raw-card-data).`,
    { param, refusedKey: { keyId: actor.apiKeyId, merchantId: actor.merchantId, livemode: actor.livemode } });
}

/**
 * A key that requires signed requests: the signature must match this very request (method, path and query, the
 * headers that change what it does, body bytes), be at most five minutes old or ahead, and carry a nonce this key
 * has not used (identity/request-signing.ts).
 */
function firstHeader(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function checkRequestSignature(services: Services, request: FastifyRequest): Promise<void> {
  const sealed = request.signingSecretSealed;
  const actor = request.actor;
  if (sealed === null || actor === null) return;
  const refusedKey = { keyId: actor.apiKeyId, merchantId: actor.merchantId, livemode: actor.livemode };
  const header = request.headers[signatureHeaderName];
  const secret = openSecret(services.requestSigningKey, actor.apiKeyId, sealed, signingSecretLabel);
  const nowMs = services.clock.nowMs();
  const verdict = verifySignature(Array.isArray(header) ? header[0] : header, secret.reveal(),
    {
      method: request.method, pathAndQuery: request.url, body: request.rawBody ?? '',
      contentType: firstHeader(request, 'content-type'), idempotencyKey: firstHeader(request, 'idempotency-key'), stripeVersion: firstHeader(request, 'stripe-version'),
    }, Math.floor(nowMs / 1000));
  if (!verdict.ok) {
    const code = verdict.reason === 'missing' ? 'request_signature_required' : verdict.reason === 'expired' ? 'request_signature_expired' : 'request_signature_invalid';
    const message = verdict.reason === 'missing'
      ? 'This API key requires signed requests: add a Coffer-Signature header (see the README, "Signed requests").'
      : `The request signature was refused: ${verdict.detail}.`;
    throw new CofferError(code, message, { refusedKey });
  }
  const fresh = await services.db.insertInto('request_nonces').values({ key_id: actor.apiKeyId, nonce: verdict.nonce, seen_at: new Date(nowMs) })
    .onConflict((conflict) => conflict.columns(['key_id', 'nonce']).doNothing()).returning('nonce').executeTakeFirst();
  if (fresh === undefined) {
    throw new CofferError('request_replayed', 'This signed request was already received (its nonce was used before); sign each request with a new nonce.', { refusedKey });
  }
}

/**
 * Stripe Connect's headers name another account to act on. Coffer has none: running the request on the key's own
 * account instead would take a payment into the wrong account without a word, so it is refused.
 */
function refuseAccountHeaders(request: FastifyRequest): void {
  if (request.routeOptions.config.merchantApi !== true) return;
  for (const header of ['stripe-account', 'stripe-context']) {
    if (request.headers[header] === undefined) continue;
    const name = header === 'stripe-account' ? 'Stripe-Account' : 'Stripe-Context';
    throw new CofferError('header_unsupported', `Coffer has no connected accounts, so it does not take the ${name} header; send the request without it, with the key of the account it is for.`);
  }
}

/**
 * Bodies are read as UTF-8, so a body that says it is in another character set is refused, not misread, unless it
 * is plain ASCII, which reads the same in any of them (generic HTTP clients often label forms ISO-8859-1).
 */
function refuseCharset(request: FastifyRequest, body: Buffer): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
  // Looked at only when another character set is named: most requests name none, or UTF-8.
  if (charset === undefined || /^utf-?8$/i.test(charset)) return;
  const ascii = body.every((byte) => byte < 0x80) && !/%[89a-f][0-9a-f]/i.test(body.toString('latin1'));
  if (!ascii) throw new CofferError('content_type_unsupported', `Send the request body in UTF-8; charset=${charset} is not supported.`);
}

// ignoreBOM: a leading byte-order mark stays in the text, so that a signature over the body's bytes still matches.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body as text: bytes that are not UTF-8 are refused, not replaced with U+FFFD and stored so. */
function utf8Body(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new CofferError('request_body_invalid', 'The request body is not valid UTF-8 text.');
  }
}

/** A NUL character fits in no text column: a parameter holding one is refused by name, before anything runs. */
function refuseNul(request: FastifyRequest): void {
  for (const source of [request.params, request.query, request.body]) {
    const param = parameterWithNul(source);
    if (param === undefined) continue;
    const name = param === '' ? 'the request body' : param;
    throw new CofferError('parameter_invalid', `Invalid value for ${name}: it contains a NUL character (U+0000), which Coffer does not accept in text.`,
      param === '' ? {} : { param });
  }
}

/** Form-encoded bodies and query strings carry strings only; give the schema the types it asks for. */
function coerce(request: FastifyRequest): void {
  const schema = request.routeOptions.schema as { body?: object; querystring?: object } | undefined;
  if (schema?.querystring !== undefined) request.query = coerceToSchema(schema.querystring, request.query);
  if (schema?.body === undefined) return;
  // A POST without a body (`curl -X POST …/cancel`) has no parameters, which is an empty object.
  if (request.body === undefined || request.body === null) request.body = {};
  const contentType = request.headers['content-type'] ?? '';
  if (contentType.startsWith('application/x-www-form-urlencoded')) request.body = coerceToSchema(schema.body, request.body);
}

async function claimKey(services: Services, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const header = request.headers['idempotency-key'];
  if (request.method !== 'POST' || request.actor === null || header === undefined) return undefined;
  const key = Array.isArray(header) ? (header[0] ?? '') : header;
  const hash = requestHash(request.method, request.url.split('?')[0] ?? request.url, hashableBody(services, request), request.actor);
  const result = await claimIdempotencyKey(services.db, services.commitDurability, request.actor, key, hash, request.method, request.url, request.id);
  reply.header('Idempotency-Key', key);
  if (result.kind === 'claimed') {
    request.idempotency = result.claim;
    return undefined;
  }
  const restore = request.routeOptions.config.replayRestore;
  return reply
    .code(result.statusCode)
    .header('Idempotent-Replayed', 'true')
    .header('Original-Request', result.originalRequestId)
    // The response as it was first sent, labelled with the version it was shaped for, whatever this retry asked.
    .header('Stripe-Version', result.apiVersion ?? request.actor.apiVersion.name)
    .type('application/json; charset=utf-8')
    .send(restore === undefined || result.statusCode !== 200 ? result.body : await restore(request, result.body));
}

/**
 * Refuses an `expand[]` path the route cannot expand, before anything runs. Routes that expand check the paths
 * again with the key's permissions; this makes sure every other route refuses what it would otherwise ignore.
 */
function refuseUnknownExpansions(request: FastifyRequest): void {
  const config = request.routeOptions.config;
  if (config.merchantApi !== true) return;
  const params = (request.method === 'GET' || request.method === 'DELETE' ? request.query : request.body) as { expand?: string[] } | null | undefined;
  // A search also takes `total_count`, which is the result's, not an object's.
  const requested = request.routeOptions.url?.endsWith('/search') === true ? searchExpansions(params?.expand).expand : params?.expand;
  expansions(requested, config.expandable ?? [], isListRoute(request.method, request.routeOptions.schema?.querystring));
}

/** After the response is produced: keep it for the key's retries, unless the flow already did in its transaction. */
async function finishKey(services: Services, request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> {
  const claim = request.idempotency;
  if (claim === null) return;
  // The request's work is done (and committed); its response is neither sent nor, unless its flow kept it, stored.
  services.faults.reach('request.before_response');
  // A response the flow kept is final; an error after it may mean its transaction did not commit, and is kept or
  // released as any other (each of which leaves a response that did commit alone).
  if (claim.completed && reply.statusCode < 400) return;
  let code: string | undefined;
  if (typeof payload === 'string' && reply.statusCode >= 400) {
    code = (JSON.parse(payload) as { error?: { code?: string } }).error?.code;
  }
  if (typeof payload === 'string' && isRefusalBeforeWork(reply.statusCode, code)) {
    await forgetOrStore(services.db, claim, { statusCode: reply.statusCode, body: payload });
  } else if (typeof payload === 'string' && mayStoreResponse(reply.statusCode, code)) {
    const redacts = request.routeOptions.config.replayRedacts;
    const body = redacts === undefined || reply.statusCode >= 400 ? payload : redactFields(payload, redacts);
    await storeResponse(services.db, claim, { statusCode: reply.statusCode, body });
  } else {
    await releaseClaim(services.db, claim);
  }
}

export interface MerchantRoute {
  method: string;
  url: string;
  /** The resources it reaches; a restricted key needs each (the first is the route's own). */
  resources: ApiResource[];
  publishableAllowed: boolean;
  /** The schemas its query and body are validated with (docs/api-reference.md is written from them). */
  querystring?: unknown;
  body?: unknown;
  expandable: readonly string[];
}

const merchantRoutes = new WeakMap<FastifyInstance, MerchantRoute[]>();

/** The merchant API's routes as registered, with the resource each belongs to (for tests that walk them all). */
export function merchantRoutesOf(app: FastifyInstance): readonly MerchantRoute[] {
  return merchantRoutes.get(app) ?? [];
}

export async function buildPublicServer(services: Services, options: PublicServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.https === null
      ? {}
      : { https: { ...options.https, minVersion: 'TLSv1.2' as const, honorCipherOrder: true } }),
    loggerInstance: services.logger,
    bodyLimit: limits.requestBodyBytesMax,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: false,
    genReqId: () => `req_${randomIdCharacters(14)}`,
    routerOptions: { maxParamLength: limits.pathParamLengthMax, querystringParser: (text: string) => parseQuery(text) },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: true, verbose: true } },
    schemaController: { compilersFactory: { buildValidator: lazyValidatorFactory } },
    return503OnClosing: true,
    frameworkErrors: (error, request, reply) => {
      reply.header('Request-Id', request.id);
      const message = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `An id in the URL is longer than ${limits.pathParamLengthMax} characters.`
        : 'The request URL is not valid.';
      void sendError(reply, request, new CofferError('url_invalid', message));
    },
  }) as unknown as FastifyInstance;
  const keys = new ApiKeyCache();
  app.decorateRequest('actor', null);
  app.decorateRequest('idempotency', null);
  app.decorateRequest('rawBody', null);
  app.decorateRequest('signingSecretSealed', null);
  await app.register(helmet, { hsts: { maxAge: 31536000, includeSubDomains: true }, contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      refuseCharset(request, body as Buffer);
      const text = utf8Body(body as Buffer);
      request.rawBody = text;
      done(null, parseForm(text));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      refuseCharset(request, body as Buffer);
      text = utf8Body(body as Buffer);
      request.rawBody = text;
    } catch (refusal) {
      return done(refusal as Error, undefined);
    }
    parseJson(request, text, (error: Error | null, parsed?: unknown) => {
      if (error !== null) return done(error, undefined);
      try {
        refuseDeepJson(parsed);
      } catch (refusal) {
        return done(refusal as Error, undefined);
      }
      done(null, parsed);
    });
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('Request-Id', request.id);
    // API answers hold client secrets and shoppers' details: no cache (a proxy's, a browser's) may keep them.
    if (request.url.startsWith('/v1/')) reply.header('Cache-Control', 'no-cache, no-store');
  });
  // Everything after this hook (other hooks, the handler) runs inside the request's merchant scope.
  app.addHook('onRequest', (_request, _reply, done) => merchantScope.run({ merchantId: null }, done));
  // Before authentication, so that requests with wrong keys count too (see rate-limits.ts).
  await registerRateLimits(app, options.rateLimits, services.logger);
  app.addHook('onRequest', async (request, reply) => {
    const invalid = queryError(request.query);
    if (invalid !== undefined) throw invalid;
    // The providers' sandboxes speak the providers' wire formats, which put parameters in the URL (Alipay's gateway).
    const sandbox = request.url.startsWith('/sandbox/');
    if (request.method !== 'GET' && request.method !== 'HEAD' && !sandbox) refuseQueryParameters(request.query);
    refuseAccountHeaders(request);
    await authenticate(services, keys, request);
    // As Stripe does: every authenticated answer names the API version its objects are shaped for.
    if (request.actor !== null) reply.header('Stripe-Version', request.actor.apiVersion.name);
  });
  app.addHook('preValidation', async (request) => {
    await checkRequestSignature(services, request);
    refuseNul(request);
    coerce(request);
  });
  app.addHook('preHandler', async (request) => refuseUnknownExpansions(request));
  app.addHook('preHandler', async (request) => refuseRawCardData(services, request));
  app.addHook('preHandler', async (request, reply) => claimKey(services, request, reply));
  app.addHook('onSend', async (request, reply, payload) => {
    await finishKey(services, request, reply, payload);
    return payload;
  });
  app.setErrorHandler(async (error, request, reply) => {
    // The merchant API's limit; provider notifications and the sandboxes' pages have limits of their own.
    const { error: cofferError, severity } = toCofferError(error, request.url.startsWith('/v1/') ? limits.requestBodyBytesMax : undefined);
    await auditRefusal(services, request, cofferError);
    if (severity === 'fatal') {
      request.log.fatal({ err: error }, 'assertion failed');
      reply.raw.once('finish', () => options.onFatal(error));
    } else if (severity === 'error') {
      request.log.error({ err: error }, 'unexpected error');
    }
    return sendError(reply, request, cofferError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      request,
      new CofferError('url_unknown', `Unrecognized request URL (${request.method}: ${request.url.split('?')[0]}).`),
    ),
  );
  app.get('/health', async () => ({ status: 'ok' }));
  // Every merchant route belongs to a resource that restricted keys' permissions name: one that does not would be
  // reachable by no restricted key, or worse, so Coffer refuses to start with it.
  const routes: MerchantRoute[] = [];
  merchantRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    if (route.config?.merchantApi !== true) return;
    const resources = resourcesOfRoute(route.url);
    if (resources === undefined) throw new Error(`merchant route ${String(route.method)} ${route.url} belongs to no resource in identity/api-keys.ts`);
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, resources, publishableAllowed: route.config.publishableAllowed === true,
        querystring: route.schema?.querystring, body: route.schema?.body, expandable: route.config.expandable ?? [] });
    }
  });
  registerMerchantRoutes(app, services);
  registerProviderHooks(app, services);
  registerCheckoutPages(app, services);
  // Test mode's providers: the sandboxes answer the connectors' calls and serve the pages a tester pays on.
  services.connectors.registerSandboxRoutes(app);
  return app;
}
