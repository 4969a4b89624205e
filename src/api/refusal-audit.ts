import type { FastifyRequest } from 'fastify';
import type { CofferError } from '../domain/errors.ts';
import type { Services } from '../flows/context.ts';
import { recordAudit } from '../store/audit.ts';
import { withoutMerchantScope } from '../store/merchant-scope.ts';

/**
 * The tables whose ids a merchant may name in a URL or a parameter, by id prefix. Products and coupons are not here: a
 * merchant may choose their ids, which are unique only within the merchant and mode.
 */
const tablesByPrefix = {
  pi: 'payment_intents', ch: 'charges', re: 'refunds', dp: 'disputes', cus: 'customers', pm: 'payment_methods',
  seti: 'setup_intents', we: 'webhook_endpoints', evt: 'events', tok: 'tokens', cbtxn: 'customer_balance_transactions',
  cs: 'checkout_sessions', prv: 'reviews', plim: 'payment_limits', rdec: 'risk_decisions', rset: 'risk_rule_sets', sc: 'support_cases',
  price: 'prices', shr: 'shipping_rates', plink: 'payment_links', promo: 'promotion_codes',
} as const;

/**
 * Where a merchant's key asked for an object that exists but belongs to another merchant, or to the other mode
 * (a test key naming a live object, or the reverse). The answer stays the 404 an unknown id gets.
 */
async function ownerElsewhere(services: Services, id: string, merchantId: string, livemode: boolean): Promise<{ merchantId: string; livemode: boolean } | undefined> {
  const prefix = /^([a-z]+)_/.exec(id)?.[1];
  const table = prefix === undefined ? undefined : (tablesByPrefix as Record<string, (typeof tablesByPrefix)[keyof typeof tablesByPrefix]>)[prefix];
  if (table === undefined) return undefined;
  // Across merchants on purpose: outside the request's row-level security scope.
  const row = await withoutMerchantScope(() => services.db.selectFrom(table).select(['merchant_id', 'livemode']).where('id', '=', id).executeTakeFirst());
  if (row === undefined || (row.merchant_id === merchantId && row.livemode === livemode)) return undefined;
  return { merchantId: row.merchant_id, livemode: row.livemode };
}

/**
 * Records the refusals that say something about who is asking: a valid key used beyond its permissions or from
 * an address it is not allowed, and a key naming another merchant's (or the other mode's) object. Each is an
 * audit record of its own; the refused request changed nothing else. A failure to write the record is logged
 * and does not change the answer.
 */
export async function auditRefusal(services: Services, request: FastifyRequest, error: CofferError): Promise<void> {
  try {
    const base = {
      outcome: 'failure' as const, requestId: request.id, origin: request.ip, occurredAt: new Date(services.clock.nowMs()),
    };
    // A restricted key refused a resource it was not granted, wherever the check was made (a route, an expansion).
    const actorKey = request.actor === null ? undefined : { keyId: request.actor.apiKeyId, merchantId: request.actor.merchantId, livemode: request.actor.livemode };
    const refused = error.details.refusedKey ?? (error.code === 'insufficient_permissions' ? actorKey : undefined);
    if (refused !== undefined) {
      await recordAudit(services.db, {
        ...base, merchantId: refused.merchantId, livemode: refused.livemode, actorType: 'api_key', actorId: refused.keyId,
        action: `api_request.${error.code}`, objectType: null, objectId: null,
        details: { method: request.method, route: request.routeOptions.url ?? null, user_agent: request.headers['user-agent'] ?? null },
      });
      return;
    }
    const actor = request.actor;
    const missingId = error.details.missingId;
    if (error.code !== 'resource_missing' || actor === null || missingId === undefined) return;
    const owner = await ownerElsewhere(services, missingId, actor.merchantId, actor.livemode);
    if (owner === undefined) return;
    const crossMerchant = owner.merchantId !== actor.merchantId;
    await recordAudit(services.db, {
      ...base, merchantId: actor.merchantId, livemode: actor.livemode, actorType: 'api_key', actorId: actor.apiKeyId,
      action: crossMerchant ? 'api_request.cross_merchant_access' : 'api_request.cross_mode_access', objectType: null, objectId: missingId,
      details: {
        method: request.method, route: request.routeOptions.url ?? null, user_agent: request.headers['user-agent'] ?? null,
        owner_merchant: owner.merchantId, owner_livemode: owner.livemode,
      },
    });
  } catch (auditError) {
    request.log.error({ err: auditError }, 'could not audit a refused request');
  }
}
