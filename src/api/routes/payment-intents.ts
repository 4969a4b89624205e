import { setupFutureUsageFor } from '../../domain/card-payment-options.ts';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { cancelPaymentIntent, type CancelParams } from '../../flows/cancel-payment-intent.ts';
import { capturePaymentIntent, type CaptureParams } from '../../flows/capture-payment-intent.ts';
import { confirmPaymentIntent, type ConfirmParams } from '../../flows/confirm-payment-intent.ts';
import { incrementAuthorization, type IncrementParams } from '../../flows/increment-authorization.ts';
import { createPaymentIntent, type CreateParams } from '../../flows/create-payment-intent.ts';
import { listPaymentIntents } from '../../flows/list-payment-intents.ts';
import { checkoutOwnsIntent, findPaymentIntent } from '../../flows/payment-intent-records.ts';
import type { PaymentIntentResult, Respond } from '../../flows/respond.ts';
import { updatePaymentIntent, type UpdateParams } from '../../flows/update-payment-intent.ts';
import { limits } from '../../limits.ts';
import { errorObject } from '../../objects/error.ts';
import { chargeListsShown } from '../../objects/api-version.ts';
import { paymentIntentExpandable, paymentIntentObject, publishablePaymentIntentObject, renderPaymentIntent, type PaymentIntentRelated } from '../../objects/payment-intent.ts';
import type { Outcome, RequestContext, Tx } from '../../flows/context.ts';
import type { Kysely } from 'kysely';
import { CofferError } from '../../domain/errors.ts';
import type { Database, PaymentIntentRow } from '../../store/database.ts';
import { assert } from '../../platform/assert.ts';
import type { ApiResource } from '../../identity/api-keys.ts';
import { requestContext } from '../request-context.ts';
import { countOf, parseSearchQuery, searchCondition, searchCursor, searchExpansions, searchResult, type SearchField } from '../search-query.ts';
import { currencies } from '../../domain/currency.ts';
import { paymentIntentStatuses } from '../../domain/payment-intent-machine.ts';
import {
  Amount,
  BillingDetails,
  CardDetails,
  Currency,
  Description,
  Email,
  Expand,
  SearchQuery,
  ListQuery,
  Metadata,
  ObjectId,
  Shipping,
  StatementDescriptor,
  StatementDescriptorSuffix,
  Url,
  emptyable,
  strictObject,
  type ListQueryParams,
} from '../schemas.ts';
import { expansions, expansionsFor, listObject, sameSecret, sendObject, sendOutcome, withoutExpand } from './common.ts';
import { expandObjects } from './expand.ts';

const CaptureMethod = Type.Union([Type.Literal('automatic'), Type.Literal('automatic_async'), Type.Literal('manual')]);
const SetupFutureUsage = Type.Union([Type.Literal('on_session'), Type.Literal('off_session')]);
const PaymentMethodTypes = Type.Array(Type.String({ maxLength: 50 }), { maxItems: 20 });

const WalletType = Type.Union([Type.Literal('alipay'), Type.Literal('wechat_pay')]);
/** A new payment method given with the payment: a wallet (nothing to give up front) or a card's details. */
const PaymentMethodData = strictObject({
  type: Type.Union([WalletType, Type.Literal('card')]),
  // A token is given to POST /v1/payment_methods (card[token]), not with the payment.
  card: Type.Optional(Type.Omit(CardDetails, ['token'], { additionalProperties: false })),
  billing_details: Type.Optional(BillingDetails),
});
/** Card details given in `payment_method_data` never reach an idempotency key's request hash as given. */
const sensitiveParams = [['payment_method_data', 'card', 'number'], ['payment_method_data', 'card', 'cvc']] as const;
/**
 * Each payment method type's options, all kept with the PaymentIntent by create, update and confirm alike (decisions
 * 0040 and 0044). A card payment's own capture method and consent to keep the card override the top-level fields for
 * cards (`''` unsets; Stripe takes only `manual` as a card's capture method); its 3-D Secure request and WeChat Pay's
 * client apply to the confirmation. A wallet's options as a whole take `''`, which unsets them, as Stripe's do.
 */
const PaymentMethodOptions = strictObject({
  card: Type.Optional(strictObject({
    capture_method: Type.Optional(emptyable(Type.Literal('manual'))),
    setup_future_usage: Type.Optional(emptyable(Type.Union([Type.Literal('none'), Type.Literal('on_session'), Type.Literal('off_session')]))),
    request_three_d_secure: Type.Optional(Type.Union([Type.Literal('automatic'), Type.Literal('any'), Type.Literal('challenge')])),
    // Whether the merchant may raise the hold before capture (POST …/increment_authorization); manual capture only.
    request_incremental_authorization: Type.Optional(Type.Union([Type.Literal('if_available'), Type.Literal('never')])),
  })),
  alipay: Type.Optional(emptyable(strictObject({}))),
  wechat_pay: Type.Optional(emptyable(strictObject({
    client: Type.Optional(Type.Union([Type.Literal('web'), Type.Literal('mobile_web'), Type.Literal('jsapi')])),
    openid: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  }))),
});

const RadarOptions = strictObject({ session: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) });

/**
 * The shopper's agreement to a mandate, as Stripe takes it with a confirmation (`mandate_data[customer_acceptance]`):
 * Coffer keeps it in the confirmation's audit record (cards need no mandate object of their own).
 */
const MandateData = strictObject({
  customer_acceptance: strictObject({
    type: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    accepted_at: Type.Optional(Type.Integer({ minimum: 0 })),
    online: Type.Optional(strictObject({
      ip_address: Type.Optional(Type.String({ maxLength: 45 })),
      user_agent: Type.Optional(Type.String({ maxLength: 1000 })),
      infer_from_client: Type.Optional(Type.Boolean()),
    })),
    offline: Type.Optional(strictObject({})),
  }),
});

const CreateBody = strictObject({
  amount: Amount,
  currency: Currency,
  automatic_payment_methods: Type.Optional(
    strictObject({
      enabled: Type.Boolean(),
      allow_redirects: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('never')])),
    }),
  ),
  capture_method: Type.Optional(CaptureMethod),
  confirm: Type.Optional(Type.Boolean()),
  confirmation_method: Type.Optional(Type.Union([Type.Literal('automatic'), Type.Literal('manual')])),
  customer: Type.Optional(ObjectId),
  off_session: Type.Optional(Type.Boolean()),
  error_on_requires_action: Type.Optional(Type.Boolean()),
  description: Type.Optional(Description),
  expand: Type.Optional(Expand),
  metadata: Type.Optional(emptyable(Metadata)),
  payment_method: Type.Optional(ObjectId),
  payment_method_data: Type.Optional(PaymentMethodData),
  payment_method_options: Type.Optional(PaymentMethodOptions),
  radar_options: Type.Optional(RadarOptions),
  payment_method_types: Type.Optional(PaymentMethodTypes),
  allowed_payment_method_types: Type.Optional(PaymentMethodTypes),
  receipt_email: Type.Optional(Email),
  return_url: Type.Optional(Url),
  setup_future_usage: Type.Optional(SetupFutureUsage),
  shipping: Type.Optional(Shipping),
  statement_descriptor: Type.Optional(StatementDescriptor),
  statement_descriptor_suffix: Type.Optional(StatementDescriptorSuffix),
  mandate_data: Type.Optional(MandateData),
  // Stripe.js's own handling of the next action; Coffer has no Stripe.js, so the next action is the same either way.
  use_stripe_sdk: Type.Optional(Type.Boolean()),
});

const UpdateBody = strictObject({
  amount: Type.Optional(Amount),
  customer: Type.Optional(emptyable(ObjectId)),
  currency: Type.Optional(Currency),
  capture_method: Type.Optional(CaptureMethod),
  description: Type.Optional(emptyable(Description)),
  expand: Type.Optional(Expand),
  metadata: Type.Optional(emptyable(Metadata)),
  payment_method: Type.Optional(emptyable(ObjectId)),
  payment_method_options: Type.Optional(PaymentMethodOptions),
  payment_method_types: Type.Optional(PaymentMethodTypes),
  allowed_payment_method_types: Type.Optional(PaymentMethodTypes),
  receipt_email: Type.Optional(emptyable(Email)),
  setup_future_usage: Type.Optional(emptyable(SetupFutureUsage)),
  shipping: Type.Optional(emptyable(Shipping)),
  statement_descriptor: Type.Optional(emptyable(StatementDescriptor)),
  statement_descriptor_suffix: Type.Optional(emptyable(StatementDescriptorSuffix)),
});

const ConfirmBody = strictObject({
  client_secret: Type.Optional(Type.String({ maxLength: 200 })),
  capture_method: Type.Optional(CaptureMethod),
  radar_options: Type.Optional(RadarOptions),
  payment_method_data: Type.Optional(PaymentMethodData),
  payment_method_options: Type.Optional(PaymentMethodOptions),
  off_session: Type.Optional(Type.Boolean()),
  error_on_requires_action: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
  payment_method: Type.Optional(ObjectId),
  receipt_email: Type.Optional(Email),
  return_url: Type.Optional(Url),
  setup_future_usage: Type.Optional(emptyable(SetupFutureUsage)),
  shipping: Type.Optional(emptyable(Shipping)),
  mandate_data: Type.Optional(MandateData),
  use_stripe_sdk: Type.Optional(Type.Boolean()),
});

const CaptureBody = strictObject({
  amount_to_capture: Type.Optional(Type.Integer()),
  // Stripe's multicapture: `false` leaves the rest capturable, which Coffer does not do (one capture per payment).
  final_capture: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
  metadata: Type.Optional(emptyable(Metadata)),
  statement_descriptor: Type.Optional(StatementDescriptor),
  statement_descriptor_suffix: Type.Optional(StatementDescriptorSuffix),
});

/**
 * Stripe's `increment_authorization`: `amount` is the new total to hold. Its `description`, `metadata` and
 * `statement_descriptor` are not taken here (update the PaymentIntent for the first two; a card payment's descriptor
 * is refused anyway), nor Connect's `application_fee_amount` and `transfer_data` (decision 0056).
 */
const IncrementBody = strictObject({
  amount: Type.Integer(),
  expand: Type.Optional(Expand),
});

const CancelBody = strictObject({
  cancellation_reason: Type.Optional(
    Type.Union([
      Type.Literal('duplicate'),
      Type.Literal('fraudulent'),
      Type.Literal('requested_by_customer'),
      Type.Literal('abandoned'),
    ]),
  ),
  expand: Type.Optional(Expand),
});

const IntentParams = strictObject({ intent: ObjectId });
/** What a PaymentIntent can expand, and the resource a restricted key needs to read each. */
const intentExpansions = { latest_charge: 'charges', payment_method: 'payment_methods' } as const satisfies Record<(typeof paymentIntentExpandable)[number], ApiResource>;
/**
 * Also the charge's balance transaction and the customer, which the walker expands: a change that asks for them
 * writes itself first and renders its response after, in the same transaction (`rendersAfterChange`).
 */
const nestedTransaction = 'latest_charge.balance_transaction';
const readExpansions = { ...intentExpansions, [nestedTransaction]: ['charges', 'balance'], customer: 'customers' } as const;

/**
 * The request's expansions, checked. A version before 2022-11-15 has no `latest_charge` (its PaymentIntent lists its
 * charges in `charges`), so it cannot be expanded there, as Stripe's versions refuse a field they do not have.
 */
function readExpansionsFor(ctx: RequestContext, requested: readonly string[] | undefined, list = false): string[] {
  const paths = expansionsFor(ctx.actor, requested, readExpansions, list);
  const absent = chargeListsShown(ctx.actor.apiVersion) ? paths.find((path) => path.split('.')[0] === 'latest_charge') : undefined;
  if (absent !== undefined) {
    throw new CofferError('parameter_invalid', `This property cannot be expanded (${list ? 'data.' : ''}${absent}): a PaymentIntent has no latest_charge in API version ${ctx.actor.apiVersion.name}; its charges are listed in charges.`, { param: 'expand' });
  }
  return paths;
}

/** PaymentIntents read (retrieved or listed) in the request's expansions, their charges' transactions in one query. */
async function renderRead(services: Services, ctx: RequestContext, rows: PaymentIntentRow[], expand: readonly string[]): Promise<Array<Record<string, unknown>>> {
  // The PaymentIntent renders what a change's response renders too; the walker expands the rest (the charge's
  // transaction, expanding the charge on the way, and the customer).
  const own = expand.filter((path) => path in intentExpansions);
  const objects = [];
  for (const row of rows) objects.push(await renderPaymentIntent(services.db, row, ctx.actor.apiVersion.shape, own));
  await expandObjects(services.db, ctx.actor, services.clock.nowMs(), objects, expand.filter((path) => !own.includes(path)));
  return objects;
}
/** What a PaymentIntent search may ask, as Stripe's PaymentIntent search takes it. */
const paymentIntentSearchFields: Record<string, SearchField> = {
  amount: { kind: 'amount', column: 'amount' },
  created: { kind: 'created', column: 'created_at' },
  currency: { kind: 'enum', column: 'currency', values: [...currencies.keys()] },
  customer: { kind: 'exact', column: 'customer_id' },
  metadata: { kind: 'metadata', column: 'metadata' },
  status: { kind: 'enum', column: 'status', values: paymentIntentStatuses },
};
const RetrieveQuery = strictObject({ expand: Type.Optional(Expand), client_secret: Type.Optional(Type.String({ maxLength: 200 })) });
const ListPaymentIntentsQuery = strictObject({ ...ListQuery, customer: Type.Optional(ObjectId) });

function toOutcome(ctx: RequestContext, full: Record<string, unknown>, error: CofferError | undefined): Outcome {
  const object = ctx.actor.keyKind === 'publishable' ? publishablePaymentIntentObject(full) : full;
  if (error === undefined) return { statusCode: 200, body: JSON.stringify(object) };
  error.details.paymentIntentObject = object;
  const lastError = object.last_payment_error as { payment_method?: Record<string, unknown> } | null;
  if (lastError?.payment_method !== undefined) error.details.paymentMethodObject = lastError.payment_method;
  return { statusCode: error.httpStatus, body: JSON.stringify(errorObject(error, ctx.requestId)) };
}

/**
 * Renders the PaymentIntent (or the error that ended its attempt), in the request's version and expansions; to a
 * publishable key, only the fields such a key may read.
 */
/**
 * The answer of the confirmation that captured a payment asynchronously (`automatic_async`, Stripe's default since
 * 2024-06-20) shows no balance transaction on its charge yet, as Stripe's: the `charge.updated` event announces it.
 */
function asCapturedAsynchronously(object: Record<string, unknown>, row: PaymentIntentRow): void {
  if (row.capture_method !== 'automatic_async' || row.status !== 'succeeded') return;
  const charge = object.latest_charge;
  if (typeof charge === 'object' && charge !== null) (charge as Record<string, unknown>).balance_transaction = null;
  // A version before 2022-11-15 shows the charge in the PaymentIntent's `charges`, the newest first.
  const listed = (object.charges as { data?: Array<Record<string, unknown>> } | undefined)?.data?.[0];
  if (listed !== undefined && listed.id === row.latest_charge_id) listed.balance_transaction = null;
}

function paymentIntentResponder(services: Services, ctx: RequestContext, expand: string[], confirming = false): Respond {
  const shape = ctx.actor.apiVersion.shape;
  // The PaymentIntent renders its own expansions; the walker expands the rest (the customer, the charge's balance
  // transaction) from what the transaction sees, after the change is written.
  const own = expand.filter((path) => path in intentExpansions);
  const later = expand.filter((path) => !own.includes(path));
  // A version before 2022-11-15 lists the PaymentIntent's charges, read with the rest after the change is written.
  const readsAfter = later.length > 0 || (chargeListsShown(ctx.actor.apiVersion) && ctx.actor.keyKind !== 'publishable');
  const respond = async (tx: Tx | Kysely<Database>, result: PaymentIntentResult): Promise<Outcome> => {
    const object = await renderPaymentIntent(tx, result.paymentIntent, shape, own);
    if (readsAfter) await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], later);
    if (confirming) asCapturedAsynchronously(object, result.paymentIntent);
    const outcome = toOutcome(ctx, object, result.error);
    if (ctx.idempotency !== undefined) await ctx.idempotency.complete(tx, outcome);
    return outcome;
  };
  const render = (result: PaymentIntentResult, related: PaymentIntentRelated): Outcome => {
    assert(!readsAfter, 'a response with expansions the change makes, or lists, is rendered after it');
    const shown: PaymentIntentRelated = {
      errorPaymentMethod: related.errorPaymentMethod,
      ...(own.includes('latest_charge') ? { latestCharge: related.latestCharge } : {}),
      ...(own.includes('payment_method') ? { paymentMethod: related.paymentMethod } : {}),
    };
    const object = paymentIntentObject(result.paymentIntent, shape, shown);
    if (confirming) asCapturedAsynchronously(object, result.paymentIntent);
    return toOutcome(ctx, object, result.error);
  };
  return Object.assign(respond, { render, rendersAfterChange: readsAfter });
}


/**
 * The PaymentIntent a request names, read after checking its client secret: a publishable key must send it, and a
 * secret that does not match is refused whatever the key.
 */
async function withClientSecret(services: Services, ctx: RequestContext, intent: string, clientSecret: string | undefined): Promise<PaymentIntentRow> {
  if (ctx.actor.keyKind === 'publishable' && clientSecret === undefined) {
    throw new CofferError('secret_key_required', 'This API call cannot be made with a publishable API key without the client_secret of the PaymentIntent.', { param: 'client_secret' });
  }
  const row = await findPaymentIntent(services, ctx.actor, intent);
  if (clientSecret !== undefined && !sameSecret(clientSecret, row.client_secret)) {
    throw new CofferError('parameter_invalid', 'The client_secret provided does not match the client_secret associated with the PaymentIntent.', { param: 'client_secret' });
  }
  return row;
}

/** What a publishable key may expand: the card, which the page shows; never the charge or the customer. */
const publishableExpansions = ['payment_method'];

/**
 * What a publishable key may not set when it confirms: the merchant's decisions, made with the secret key. (Nor may
 * it lower the 3-D Secure request the PaymentIntent keeps: checked by the confirmation, `checkShopperThreeDSecure`.)
 */
const merchantOnlyConfirmParams = ['capture_method', 'off_session'] as const;

function merchantOnlyParamGiven(body: ConfirmParams): string | undefined {
  const given = merchantOnlyConfirmParams.find((param) => body[param] !== undefined);
  // A card's capture method is the top-level capture_method for cards, and as much the merchant's.
  if (given === undefined && body.payment_method_options?.card?.capture_method !== undefined) return 'payment_method_options[card][capture_method]';
  // So is whether the merchant may raise the hold later.
  if (given === undefined && body.payment_method_options?.card?.request_incremental_authorization !== undefined) {
    return 'payment_method_options[card][request_incremental_authorization]';
  }
  return given;
}

/**
 * Checks a confirmation sent with a client secret, as a shopper's page sends it: the secret must be the
 * PaymentIntent's, and a publishable key must send it, may not set what only the merchant decides, and may not
 * confirm a PaymentIntent the merchant confirms itself (`confirmation_method: manual`).
 */
async function checkClientConfirmation(services: Services, ctx: RequestContext, intent: string, body: ConfirmParams, clientSecret: string | undefined): Promise<void> {
  const publishable = ctx.actor.keyKind === 'publishable';
  const refused = publishable ? merchantOnlyParamGiven(body) : undefined;
  if (refused !== undefined) {
    throw new CofferError('parameter_invalid', `${refused} cannot be set with a publishable key: the merchant sets it with its secret key.`, { param: refused });
  }
  const row = await withClientSecret(services, ctx, intent, clientSecret);
  if (publishable && row.confirmation_method === 'manual') {
    throw new CofferError('secret_key_required', `The PaymentIntent ${row.id} has confirmation_method manual: only the merchant's secret key may confirm it.`);
  }
  if (publishable) {
    checkShopperConsentChange('setup_future_usage', row.setup_future_usage, body.setup_future_usage);
    const cardGiven = body.payment_method_options?.card?.setup_future_usage;
    checkShopperConsentChange('payment_method_options[card][setup_future_usage]', row.card_setup_future_usage, cardGiven);
    // And what the two make together for a card: the card's option must not withdraw the top-level consent.
    const after = {
      setup_future_usage: body.setup_future_usage === undefined ? row.setup_future_usage : body.setup_future_usage || null,
      card_setup_future_usage: cardGiven === undefined ? row.card_setup_future_usage : cardGiven || null,
    };
    checkShopperConsentChange(cardGiven === undefined ? 'setup_future_usage' : 'payment_method_options[card][setup_future_usage]',
      setupFutureUsageFor(row, 'card'), setupFutureUsageFor(after, 'card') ?? '');
  }
}

/**
 * As at Stripe: once the merchant set `setup_future_usage`, a publishable key may only raise it from `on_session`
 * to `off_session` (the shopper consenting to more), never lower, remove or otherwise change it.
 */
function checkShopperConsentChange(param: string, current: string | null, given: string | undefined): void {
  if (current === null || given === undefined || given === current) return;
  if (current === 'on_session' && given === 'off_session') return;
  throw new CofferError('parameter_invalid', `${param} is ${current} on this PaymentIntent; a publishable key may only change it from on_session to off_session (got ${given === '' ? 'an empty value' : given}).`, { param });
}

export function registerPaymentIntentRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true, expandable: Object.keys(readExpansions) };
  const readConfig = { merchantApi: true, expandable: Object.keys(readExpansions) };
  app.post('/v1/payment_intents', { config: { ...config, sensitiveParams }, schema: { body: CreateBody } }, async (request, reply) => {
    const body = request.body as CreateParams & { expand?: string[] };
    const ctx = requestContext(request);
    const respond = paymentIntentResponder(services, ctx, readExpansionsFor(ctx, body.expand), true);
    return sendOutcome(reply, await createPaymentIntent(services, ctx, withoutExpand(body), respond));
  });

  app.get('/v1/payment_intents', { config: readConfig, schema: { querystring: ListPaymentIntentsQuery } }, async (request, reply) => {
    const query = request.query as ListQueryParams & { customer?: string };
    const ctx = requestContext(request);
    const expand = readExpansionsFor(ctx, query.expand, true);
    const page = await listPaymentIntents(services, ctx.actor, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/payment_intents', await renderRead(services, ctx, page.data, expand), page.hasMore));
  });

  app.get('/v1/payment_intents/search', { config: readConfig, schema: { querystring: SearchQuery } }, async (request, reply) => {
    const query = request.query as { query: string; limit?: number; page?: string; expand?: string[] };
    const ctx = requestContext(request);
    const asked = searchExpansions(query.expand);
    const expand = readExpansionsFor(ctx, asked.expand, true);
    const search = parseSearchQuery(query.query, paymentIntentSearchFields);
    const limit = query.limit ?? limits.listLimitDefault;
    const found = services.db.selectFrom('payment_intents').where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).where(searchCondition(search, paymentIntentSearchFields));
    let select = found.selectAll();
    if (query.page !== undefined) select = select.where('seq', '<', searchCursor(query.page, '/v1/payment_intents/search', query.query));
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const data = await renderRead(services, ctx, rows.slice(0, limit), expand);
    const total = asked.totalCount ? await countOf(found) : undefined;
    return sendObject(reply, searchResult('/v1/payment_intents/search', query.query, data, rows, limit, total));
  });

  // A publishable key may read a PaymentIntent given its client secret (a payment page following its payment), and
  // then only the fields Stripe gives such keys; a client secret that does not match is refused whatever the key.
  app.get('/v1/payment_intents/:intent', { config: { ...readConfig, publishableAllowed: true }, schema: { params: IntentParams, querystring: RetrieveQuery } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const query = request.query as { expand?: string[]; client_secret?: string };
    const ctx = requestContext(request);
    const publishable = ctx.actor.keyKind === 'publishable';
    const row = await withClientSecret(services, ctx, intent, query.client_secret);
    const expand = publishable ? expansions(query.expand, publishableExpansions) : readExpansionsFor(ctx, query.expand);
    const [object] = await renderRead(services, ctx, [row], expand);
    assert(object !== undefined, 'one PaymentIntent rendered');
    return sendObject(reply, publishable ? publishablePaymentIntentObject(object) : object);
  });

  app.post('/v1/payment_intents/:intent', { config, schema: { params: IntentParams, body: UpdateBody } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const body = request.body as UpdateParams & { expand?: string[] };
    const ctx = requestContext(request);
    const respond = paymentIntentResponder(services, ctx, readExpansionsFor(ctx, body.expand));
    return sendOutcome(reply, await stateErrorsShowIntent(services, ctx, intent, () => updatePaymentIntent(services, ctx, intent, withoutExpand(body), respond)));
  });

  // A publishable key may confirm with the PaymentIntent's client secret: the shopper's page pays with a card it
  // has just given the vault (Stripe.js's flow). What the merchant decides stays with the secret key.
  app.post('/v1/payment_intents/:intent/confirm', { config: { ...config, publishableAllowed: true, sensitiveParams }, schema: { params: IntentParams, body: ConfirmBody } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const { client_secret: clientSecret, ...body } = (request.body ?? {}) as ConfirmParams & { expand?: string[]; client_secret?: string };
    const ctx = requestContext(request);
    const publishable = ctx.actor.keyKind === 'publishable';
    if (publishable || clientSecret !== undefined) await checkClientConfirmation(services, ctx, intent, body, clientSecret);
    const expand = publishable ? expansions(body.expand, publishableExpansions) : readExpansionsFor(ctx, body.expand);
    return sendOutcome(reply, await stateErrorsShowIntent(services, ctx, intent, () => confirmPaymentIntent(services, ctx, intent, withoutExpand(body), paymentIntentResponder(services, ctx, expand, true))));
  });

  app.post('/v1/payment_intents/:intent/capture', { config, schema: { params: IntentParams, body: CaptureBody } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const body = (request.body ?? {}) as CaptureParams & { expand?: string[] };
    const ctx = requestContext(request);
    const respond = paymentIntentResponder(services, ctx, readExpansionsFor(ctx, body.expand));
    return sendOutcome(reply, await stateErrorsShowIntent(services, ctx, intent, () => capturePaymentIntent(services, ctx, intent, withoutExpand(body), respond)));
  });

  app.post('/v1/payment_intents/:intent/increment_authorization', { config, schema: { params: IntentParams, body: IncrementBody } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const body = (request.body ?? {}) as IncrementParams & { expand?: string[] };
    const ctx = requestContext(request);
    const respond = paymentIntentResponder(services, ctx, readExpansionsFor(ctx, body.expand));
    return sendOutcome(reply, await stateErrorsShowIntent(services, ctx, intent, () => incrementAuthorization(services, ctx, intent, withoutExpand(body), respond)));
  });

  app.post('/v1/payment_intents/:intent/cancel', { config, schema: { params: IntentParams, body: CancelBody } }, async (request, reply) => {
    const { intent } = request.params as { intent: string };
    const body = (request.body ?? {}) as CancelParams & { expand?: string[] };
    const ctx = requestContext(request);
    const respond = paymentIntentResponder(services, ctx, readExpansionsFor(ctx, body.expand));
    return sendOutcome(reply, await stateErrorsShowIntent(services, ctx, intent, async () => {
      await refuseCheckoutCancel(services, ctx, intent);
      return cancelPaymentIntent(services, ctx, intent, withoutExpand(body), respond);
    }));
  });
}

/**
 * A change refused for the PaymentIntent's status (`payment_intent_unexpected_state`) carries the PaymentIntent as it
 * is, as Stripe's error does (`error.payment_intent`), so that a client that lost a race can see who won.
 */
async function stateErrorsShowIntent<T>(services: Services, ctx: RequestContext, id: string, change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (error instanceof CofferError && error.code === 'payment_intent_unexpected_state' && error.details.paymentIntentObject === undefined) {
      const row = await services.db.selectFrom('payment_intents').selectAll().where('id', '=', id)
        .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
      if (row !== undefined) {
        const [object] = await renderRead(services, ctx, [row], []);
        assert(object !== undefined, 'one PaymentIntent rendered');
        error.details.paymentIntentObject = ctx.actor.keyKind === 'publishable' ? publishablePaymentIntentObject(object) : object;
      }
    }
    throw error;
  }
}

/**
 * A Checkout Session's PaymentIntent is canceled by expiring the session until it is authorized; from
 * `requires_capture` on, the merchant cancels the hold itself, as at Stripe. Checked before the cancellation starts,
 * which may end an open attempt at a provider; a PaymentIntent never goes back to a status before `requires_capture`.
 */
async function refuseCheckoutCancel(services: Services, ctx: RequestContext, id: string): Promise<void> {
  const row = await services.db.selectFrom('payment_intents')
    .innerJoin('checkout_sessions', (join) => join.onRef('checkout_sessions.payment_intent_id', '=', 'payment_intents.id').on('checkout_sessions.kind', '=', 'checkout'))
    .select(['payment_intents.status', 'checkout_sessions.id as session'])
    .where('payment_intents.id', '=', id).where('payment_intents.merchant_id', '=', ctx.actor.merchantId).where('payment_intents.livemode', '=', ctx.actor.livemode)
    .executeTakeFirst();
  if (row !== undefined && ['requires_payment_method', 'requires_confirmation', 'requires_action', 'processing'].includes(row.status)) {
    throw checkoutOwnsIntent(id, row.session, 'cancel it before it is authorized');
  }
}
