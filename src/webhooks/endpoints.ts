import { CofferError, resourceMissing } from '../domain/errors.ts';
import type { RequestContext, Respond, Services, Tx } from '../flows/context.ts';
import { checkMetadataSize, mergeMetadata } from '../flows/payment-intent-params.ts';
import { recordChange } from '../flows/payment-intent-records.ts';
import { inTransaction } from '../flows/transaction.ts';
import { requestTrail } from '../flows/trail.ts';
import { limits } from '../limits.ts';
import { parseApiVersion, unservedVersionReason } from '../objects/api-version.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import type { WebhookEndpointRow } from '../store/database.ts';
import { sealSecret } from '../platform/secret-box.ts';
import { stripeEventTypes } from './stripe-event-types.ts';
import { parseEndpointUrl, resolveDeliveryAddress } from './url-guard.ts';

export interface EndpointParams {
  url?: string;
  enabled_events?: string[];
  api_version?: string;
  description?: string | '';
  metadata?: Record<string, string> | '';
  disabled?: boolean;
}

export interface EndpointWithSecret {
  endpoint: WebhookEndpointRow;
  secret?: Secret<string>;
}

function newSecret(): Secret<string> {
  return new Secret(`whsec_${randomBase62(32)}`);
}

/** The URL must be well formed and, whatever its name resolves to now, reachable without touching private networks. */
async function checkUrl(services: Services, livemode: boolean, raw: string): Promise<string> {
  const policy = { livemode, allowPrivate: services.webhooks.allowPrivate };
  const url = parseEndpointUrl(raw, policy);
  await resolveDeliveryAddress(url, policy);
  return url.toString();
}

/**
 * Every event type Coffer emits (Stripe's names). A test compares this list with the types in the code. An endpoint
 * may also ask for Stripe's other types (`stripeEventTypes`), so that a configuration made for Stripe, or a plugin's
 * automatic webhook setup, works unchanged; it receives none of those, as the README says.
 */
export const emittedEventTypes: ReadonlySet<string> = new Set([
  'payment_intent.created', 'payment_intent.requires_action', 'payment_intent.amount_capturable_updated', 'payment_intent.succeeded',
  'payment_intent.payment_failed', 'payment_intent.canceled',
  'charge.succeeded', 'charge.captured', 'charge.failed', 'charge.expired', 'charge.refunded', 'charge.updated', 'charge.refund.updated',
  'charge.dispute.created', 'charge.dispute.updated', 'charge.dispute.closed', 'charge.dispute.funds_withdrawn', 'charge.dispute.funds_reinstated',
  'refund.created', 'refund.updated', 'refund.failed',
  'setup_intent.created', 'setup_intent.requires_action', 'setup_intent.succeeded', 'setup_intent.setup_failed', 'setup_intent.canceled',
  'payment_method.attached', 'payment_method.detached', 'payment_method.updated',
  'customer.created', 'customer.updated', 'customer.deleted',
  'product.created', 'product.updated', 'product.deleted', 'price.created', 'price.updated',
  'review.opened', 'review.closed',
  'checkout.session.completed', 'checkout.session.expired',
  'payment_link.created', 'payment_link.updated',
  'coupon.created', 'coupon.updated', 'coupon.deleted', 'promotion_code.created', 'promotion_code.updated',
]);

function checkEvents(events: string[]): string[] {
  if (events.length === 0) throw new CofferError('parameter_invalid_empty', 'enabled_events must list at least one event type, or *.', { param: 'enabled_events' });
  const unknown = events.findIndex((type) => type !== '*' && !emittedEventTypes.has(type) && !stripeEventTypes.has(type));
  if (unknown !== -1) {
    throw new CofferError('parameter_invalid', `Invalid enabled_events[${unknown}]: ${events[unknown]} is not one of Stripe's event types. Use * or the types Coffer sends: ${[...emittedEventTypes].join(', ')}.`,
      { param: `enabled_events[${unknown}]` });
  }
  return [...new Set(events)];
}

export async function findEndpoint(reader: Tx | Services['db'], ctx: RequestContext, id: string, lock = false): Promise<WebhookEndpointRow> {
  let query = reader.selectFrom('webhook_endpoints').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).where('deleted_at', 'is', null);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('webhook_endpoint', id, 'webhook_endpoint');
  return row;
}

export async function createEndpoint(services: Services, ctx: RequestContext, params: EndpointParams & { url: string; enabled_events: string[] }, respond?: Respond<EndpointWithSecret>): Promise<EndpointWithSecret> {
  const url = await checkUrl(services, ctx.actor.livemode, params.url);
  const events = checkEvents(params.enabled_events);
  const apiVersion = params.api_version === undefined ? undefined : parseApiVersion(params.api_version);
  if (params.api_version !== undefined && apiVersion === undefined) {
    throw new CofferError('api_version_invalid', unservedVersionReason(params.api_version), { param: 'api_version' });
  }
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const now = new Date(services.clock.nowMs());
  const id = newId('we');
  const secret = newSecret();
  const endpoint = await inTransaction(services.db, async (tx) => {
    const existing = await tx.selectFrom('webhook_endpoints').select((eb) => eb.fn.countAll<bigint>().as('n'))
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).where('deleted_at', 'is', null).executeTakeFirstOrThrow();
    if (Number(existing.n) >= limits.webhookEndpointsPerMerchantMax) {
      throw new CofferError('parameter_invalid', `A merchant may have at most ${limits.webhookEndpointsPerMerchantMax} webhook endpoints in each mode.`, { param: 'url' });
    }
    const row = await tx.insertInto('webhook_endpoints').values({
      id,
      merchant_id: ctx.actor.merchantId,
      livemode: ctx.actor.livemode,
      created_at: now,
      url,
      description: params.description || null,
      enabled_events: JSON.stringify(events),
      api_version: apiVersion?.name ?? null,
      api_shape: apiVersion?.shape ?? null,
      status: 'enabled',
      metadata: JSON.stringify(metadata),
      secret_ciphertext: sealSecret(services.webhooks.secretKey, id, secret),
      previous_secret_ciphertext: null,
      previous_secret_expires_at: null,
      deleted_at: null,
    }).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'webhook_endpoint.create', objectType: 'webhook_endpoint', objectId: id, details: { url } }, [], now);
    await respond?.(tx, { endpoint: row, secret });
    return row;
  });
  return { endpoint, secret };
}

export async function updateEndpoint(services: Services, ctx: RequestContext, id: string, params: EndpointParams, respond?: Respond<WebhookEndpointRow>): Promise<WebhookEndpointRow> {
  const url = params.url === undefined ? undefined : await checkUrl(services, ctx.actor.livemode, params.url);
  const events = params.enabled_events === undefined ? undefined : checkEvents(params.enabled_events);
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const endpoint = await findEndpoint(tx, ctx, id, true);
    const metadata = mergeMetadata(endpoint.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const after = await tx.updateTable('webhook_endpoints').set({
      url: url ?? endpoint.url,
      enabled_events: JSON.stringify(events ?? endpoint.enabled_events),
      description: params.description === undefined ? endpoint.description : params.description || null,
      metadata: JSON.stringify(metadata),
      status: params.disabled === undefined ? endpoint.status : params.disabled ? 'disabled' : 'enabled',
    }).where('id', '=', endpoint.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'webhook_endpoint.update', objectType: 'webhook_endpoint', objectId: id, details: { fields: Object.keys(params) } }, [], now);
    await respond?.(tx, after);
    return after;
  });
}

export async function deleteEndpoint(services: Services, ctx: RequestContext, id: string): Promise<WebhookEndpointRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const endpoint = await findEndpoint(tx, ctx, id, true);
    const after = await tx.updateTable('webhook_endpoints').set({ deleted_at: now }).where('id', '=', endpoint.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'webhook_endpoint.delete', objectType: 'webhook_endpoint', objectId: id }, [], now);
    return after;
  });
}

/**
 * Gives the endpoint a new secret. The old one keeps signing too (two `v1` signatures per delivery) until it
 * expires, so the receiver can switch without missing a delivery.
 */
export async function rollEndpointSecret(services: Services, ctx: RequestContext, id: string, expiresInSeconds: number, respond?: Respond<EndpointWithSecret>): Promise<EndpointWithSecret> {
  const overlapMs = Math.min(expiresInSeconds * 1000, limits.webhookSecretRollMaxMs);
  const now = new Date(services.clock.nowMs());
  const secret = newSecret();
  const endpoint = await inTransaction(services.db, async (tx) => {
    const current = await findEndpoint(tx, ctx, id, true);
    // One earlier secret is kept at a time: a second overlap would end the first one's early, which its receivers
    // were promised. Rolling with no overlap (expires_in=0) says that on purpose.
    const overlapping = current.previous_secret_expires_at;
    if (overlapMs > 0 && overlapping !== null && overlapping.getTime() > now.getTime()) {
      throw new CofferError('parameter_invalid', `The secret this endpoint had before its last roll is still accepted until ${overlapping.toISOString()}; roll again after that, or with expires_in=0 to stop accepting it now.`, { param: 'expires_in' });
    }
    const after = await tx.updateTable('webhook_endpoints').set({
      secret_ciphertext: sealSecret(services.webhooks.secretKey, current.id, secret),
      previous_secret_ciphertext: overlapMs > 0 ? current.secret_ciphertext : null,
      previous_secret_expires_at: overlapMs > 0 ? new Date(now.getTime() + overlapMs) : null,
    }).where('id', '=', current.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'webhook_endpoint.roll_secret', objectType: 'webhook_endpoint', objectId: id, details: { overlap_seconds: overlapMs / 1000 } }, [], now);
    await respond?.(tx, { endpoint: after, secret });
    return after;
  });
  return { endpoint, secret };
}
